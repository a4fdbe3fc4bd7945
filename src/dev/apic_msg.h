/* SPDX-License-Identifier: MIT */
/* An interrupt message on the APIC bus, as the IOAPIC's redirection entries, MSI writes and
 * local-APIC IPIs all describe one (Intel SDM vol. 3A §11.6.1 ICR, §11.11 MSI format; 82093AA
 * §3.2.4 redirection table). Models produce and consume these; the board routes them. */
#ifndef REVIRT_DEV_APIC_MSG_H
#define REVIRT_DEV_APIC_MSG_H

#include <stdbool.h>
#include <stdint.h>

enum apic_delivery {
    APIC_DM_FIXED = 0,
    APIC_DM_LOWEST = 1,
    APIC_DM_SMI = 2,
    APIC_DM_NMI = 4,
    APIC_DM_INIT = 5,
    APIC_DM_STARTUP = 6,
    APIC_DM_EXTINT = 7,
};

enum apic_shorthand {
    APIC_SH_NONE = 0,
    APIC_SH_SELF = 1,
    APIC_SH_ALL = 2, /* all including self */
    APIC_SH_ALL_BUT_SELF = 3,
};

struct apic_msg {
    uint8_t vector;
    enum apic_delivery delivery;
    bool logical; /* destination mode: logical (true) or physical */
    bool level;   /* trigger mode: level (true) or edge */
    bool assert;  /* level: assert (INIT level de-assert has assert = false) */
    enum apic_shorthand shorthand;
    uint32_t dest; /* 8-bit xAPIC ID / logical mask, or 32-bit x2APIC */
    bool x2apic;   /* dest is a 32-bit x2APIC destination */
};

/* MSI address/data (SDM vol. 3A §11.11.1, §11.11.2) as an APIC message. False when address
 * is not in the 0xFEEx_xxxx window. */
static inline bool apic_msg_from_msi(uint64_t address, uint32_t data, struct apic_msg *m)
{
    if ((address >> 20) != 0xfee)
        return false;
    *m = (struct apic_msg){
        .vector = (uint8_t)data,
        .delivery = (enum apic_delivery)((data >> 8) & 7),
        .logical = (address >> 2) & 1,
        .level = (data >> 15) & 1,
        .assert = true,
        .dest = (uint32_t)((address >> 12) & 0xff),
    };
    return true;
}

#endif
