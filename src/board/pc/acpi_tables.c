/* SPDX-License-Identifier: MIT */
/* ACPI table generation: a PC-compatible (not hardware-reduced) platform. */
#include "acpi_tables.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "acpi/aml.h"
#include "lib/le.h"

#define AREA_SIZE (ACPI_AREA_END - ACPI_AREA_START)

#define SDT_HEADER_LEN 36u
#define RSDP_LEN 36u
#define FACS_LEN 64u
#define FADT_LEN 276u /* revision 6 layout (ACPI 6.5 §5.2.9, Table 5.9) */
#define MADT_FIXED_LEN 44u

/* MADT structure types and lengths (ACPI 6.5 §5.2.12). */
#define MADT_LAPIC 0
#define MADT_LAPIC_LEN 8u
#define MADT_IOAPIC 1
#define MADT_IOAPIC_LEN 12u
#define MADT_ISO 2
#define MADT_ISO_LEN 10u
#define MADT_LAPIC_NMI 4
#define MADT_LAPIC_NMI_LEN 6u
#define MADT_X2APIC 9
#define MADT_X2APIC_LEN 16u
#define MADT_X2APIC_NMI 10
#define MADT_X2APIC_NMI_LEN 12u

/* APIC IDs from 255 on need x2APIC structures; 255 itself is the xAPIC broadcast ID and "must
 * use the Processor Local x2APIC structure" (ACPI 6.5 §5.2.12.12). */
#define XAPIC_MAX_ID 254u

/* MPS INTI flags (ACPI 6.5 Table 5.26). */
#define INTI_POLARITY_HIGH 0x1u
#define INTI_TRIGGER_LEVEL 0xcu

/* FADT flags (ACPI 6.5 Table 5.10). */
#define FADT_WBINVD (1u << 0)
#define FADT_PROC_C1 (1u << 2)
#define FADT_SLP_BUTTON (1u << 5) /* 1: no fixed-feature sleep button */
#define FADT_FIX_RTC (1u << 6)    /* 1: RTC wake status is not in the fixed registers */
#define FADT_TMR_VAL_EXT (1u << 8)
#define FADT_RESET_REG_SUP (1u << 10)

/* IA-PC boot architecture flags (ACPI 6.5 Table 5.11). */
#define BOOT_LEGACY_DEVICES (1u << 0)
#define BOOT_8042 (1u << 1)
#define BOOT_VGA_NOT_PRESENT (1u << 2)

#define GAS_SYSTEM_IO 1
#define GAS_ACCESS_BYTE 1

/* CMOS index of the century byte, served by src/dev/rtc (FADT CENTURY). */
#define CMOS_CENTURY 0x32

static const char oem_id[6] = {'R', 'E', 'V', 'I', 'R', 'T'};

static size_t align_up(size_t v, size_t a)
{
    return (v + a - 1) & ~(a - 1);
}

/* ---------------------------------------------------------------- tables */

struct layout {
    size_t rsdp, facs, rsdt, xsdt, fadt, dsdt, madt, extra, end;
    size_t dsdt_len, madt_len, ntables;
};

static size_t madt_len(unsigned vcpus)
{
    size_t x2 = vcpus > XAPIC_MAX_ID + 1 ? vcpus - (XAPIC_MAX_ID + 1) : 0;
    size_t len = MADT_FIXED_LEN + (vcpus - x2) * MADT_LAPIC_LEN + x2 * MADT_X2APIC_LEN +
                 MADT_IOAPIC_LEN + MADT_ISO_LEN + MADT_LAPIC_NMI_LEN;
    return x2 ? len + MADT_X2APIC_NMI_LEN : len;
}

/* The DSDT body after its header: sleep-state packages, then the caller's devices in \_SB. */
static int dsdt_aml(const struct acpi_config *cfg, uint8_t *buf, size_t cap, size_t *len)
{
    struct acpi_aml a;
    acpi_aml_init(&a, buf, cap);
    /* Sleep states (ACPI 6.5 §7.4.2): SLP_TYPa, SLP_TYPb, two reserved. Only S0 (working) and
     * S5 (soft off) exist; without \_S3_ the guest does not try to suspend to RAM. */
    const uint64_t s0[4] = {0, 0, 0, 0};
    const uint64_t s5[4] = {ACPI_S5_SLP_TYP, ACPI_S5_SLP_TYP, 0, 0};
    acpi_aml_name_package(&a, "\\_S0", s0, 4);
    acpi_aml_name_package(&a, "\\_S5", s5, 4);
    acpi_aml_scope_begin(&a, "\\_SB");
    if (cfg->sb_aml_len)
        acpi_aml_raw(&a, cfg->sb_aml, cfg->sb_aml_len);
    acpi_aml_end(&a);
    return acpi_aml_finish(&a, len);
}

static int layout_compute(const struct acpi_config *cfg, struct layout *l)
{
    if (!cfg || cfg->vcpus == 0 || (cfg->sb_aml_len && !cfg->sb_aml) ||
        (cfg->extra_count && !cfg->extra))
        return -EINVAL;
    if (cfg->sb_aml_len > AREA_SIZE)
        return -ENOSPC;
    memset(l, 0, sizeof(*l));
    size_t scratch_len = cfg->sb_aml_len + 128;
    uint8_t *scratch = malloc(scratch_len);
    if (!scratch)
        return -ENOMEM;
    int ret = dsdt_aml(cfg, scratch, scratch_len, &l->dsdt_len);
    free(scratch);
    if (ret)
        return ret;
    l->dsdt_len += SDT_HEADER_LEN;
    l->madt_len = madt_len(cfg->vcpus);
    l->ntables = 2 + (size_t)cfg->extra_count; /* FADT, MADT, extras; DSDT hangs off the FADT */

    /* RSDP first, so that the legacy scan from 0xE0000 meets it at once. FACS needs 64-byte
     * alignment (ACPI 6.5 §5.2.10); the rest 16 for tidiness. */
    size_t off = RSDP_LEN;
    l->facs = align_up(off, 64);
    off = l->facs + FACS_LEN;
    l->rsdt = align_up(off, 16);
    off = l->rsdt + SDT_HEADER_LEN + 4 * l->ntables;
    l->xsdt = align_up(off, 16);
    off = l->xsdt + SDT_HEADER_LEN + 8 * l->ntables;
    l->fadt = align_up(off, 16);
    off = l->fadt + FADT_LEN;
    l->dsdt = align_up(off, 16);
    off = l->dsdt + l->dsdt_len;
    l->madt = align_up(off, 16);
    off = l->madt + l->madt_len;
    l->extra = off; /* each extra table is aligned where it is placed */
    for (unsigned i = 0; i < cfg->extra_count; i++) {
        const struct acpi_table *t = &cfg->extra[i];
        if (!t->data || t->len < SDT_HEADER_LEN || t->len > AREA_SIZE)
            return -EINVAL;
        if (le_get32((const uint8_t *)t->data + 4) != t->len)
            return -EINVAL;
        off = align_up(off, 16) + t->len;
    }
    l->end = off;
    return 0;
}

size_t acpi_tables_size(const struct acpi_config *cfg)
{
    struct layout l;
    return layout_compute(cfg, &l) ? 0 : l.end;
}

static void sdt_header(uint8_t *p, const char sig[4], uint32_t len, uint8_t rev,
                       const char table_id[8])
{
    memcpy(p, sig, 4);
    le_put32(p + 4, len);
    p[8] = rev;
    memcpy(p + 10, oem_id, sizeof(oem_id));
    memcpy(p + 16, table_id, 8);
    le_put32(p + 24, 1);       /* OEM revision */
    memcpy(p + 28, "RVRT", 4); /* creator ID */
    le_put32(p + 32, 1);       /* creator revision */
}

static void sdt_finish(uint8_t *p)
{
    uint32_t len = le_get32(p + 4);
    p[9] = 0;
    p[9] = (uint8_t)(0x100 - acpi_checksum(p, len));
}

/* Generic Address Structure for a System I/O register (ACPI 6.5 §5.2.3.2). Access size 0
 * ("undefined, legacy") for the PM blocks, whose register widths come from the FADT lengths. */
static void gas_io(uint8_t *p, uint16_t port, uint8_t bits, uint8_t access)
{
    if (!port)
        return; /* an all-zero GAS: register not present */
    p[0] = GAS_SYSTEM_IO;
    p[1] = bits;
    p[2] = 0;
    p[3] = access;
    le_put64(p + 4, port);
}

static void fadt_build(uint8_t *p, const struct acpi_config *cfg, uint32_t facs, uint32_t dsdt)
{
    const struct acpi_ports *io = &cfg->ports;
    /* FADT revision 6, minor 3: the ACPI 6.3 layout (276 bytes), unchanged through 6.5. */
    sdt_header(p, "FACP", FADT_LEN, 6, "RVFACP  ");
    le_put32(p + 36, facs); /* FIRMWARE_CTRL; X_FIRMWARE_CTRL stays 0 as the spec requires */
    le_put32(p + 40, dsdt);
    p[45] = 0;                     /* preferred PM profile: unspecified */
    le_put16(p + 46, io->sci_irq); /* SCI_INT: an ISA IRQ in 8259 mode, a GSI in APIC mode */
    /* SMI_CMD = 0: no SMM hand-over, the platform is always in ACPI mode and SCI_EN reads 1
     * (ACPI 6.5 §4.8.2.1.2 / §5.2.9 SMI_CMD). ACPI_ENABLE/DISABLE are then 0 as well. */
    le_put32(p + 48, 0);
    le_put32(p + 56, io->pm1a_evt);
    le_put32(p + 64, io->pm1a_cnt);
    le_put32(p + 76, io->pm_tmr);
    p[88] = 4; /* PM1_EVT_LEN: 2-byte status + 2-byte enable */
    p[89] = 2; /* PM1_CNT_LEN */
    p[91] = io->pm_tmr ? 4 : 0;
    /* No C2/C3: latencies above 100 / 1000 us mean "not supported" (ACPI 6.5 Table 5.9). */
    le_put16(p + 96, 101);
    le_put16(p + 98, 1001);
    p[108] = CMOS_CENTURY;
    le_put16(p + 109, BOOT_LEGACY_DEVICES | BOOT_8042 | BOOT_VGA_NOT_PRESENT);
    /* PWR_BUTTON clear: the fixed-feature power button (PWRBTN_STS in PM1) exists, so the VMM
     * can ask for an orderly shutdown. */
    uint32_t flags = FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_FIX_RTC;
    if (io->pm_tmr)
        flags |= FADT_TMR_VAL_EXT;
    if (io->reset)
        flags |= FADT_RESET_REG_SUP;
    le_put32(p + 112, flags);
    gas_io(p + 116, io->reset, 8, GAS_ACCESS_BYTE);
    p[128] = io->reset ? io->reset_value : 0;
    p[131] = 3;              /* FADT minor version */
    le_put64(p + 140, dsdt); /* X_DSDT, equal to DSDT so ACPICA sees no 32/64 mismatch */
    /* X_ blocks mirror the 32-bit ones with bit widths equal to 8 * the lengths above. */
    gas_io(p + 148, io->pm1a_evt, 32, 0);
    gas_io(p + 172, io->pm1a_cnt, 16, 0);
    gas_io(p + 208, io->pm_tmr, 32, 0);
    memcpy(p + 268, "REVIRT  ", 8); /* hypervisor vendor identity */
    sdt_finish(p);
}

static void facs_build(uint8_t *p)
{
    /* Required when not hardware-reduced (ACPI 6.5 §5.2.10): no waking vector, no global lock
     * owner. It carries no checksum. */
    memcpy(p, "FACS", 4);
    le_put32(p + 4, FACS_LEN);
    p[32] = 2; /* version */
}

/*
 * Interrupt model. The MADT describes KVM's in-kernel irqchip as the HAV backend sets it up:
 * KVM's default routing sends GSI n to IOAPIC pin n and, for n < 16, to 8259 pin n; the
 * in-kernel PIT raises GSI 0. So ISA IRQ n is identity-mapped to GSI n, which is what the
 * OS assumes when no override exists (ACPI 6.5 §5.2.12.5), and IRQ 0 needs no 0 -> 2
 * override. QEMU emits that override only because it reroutes GSI 0 to IOAPIC pin 2 itself
 * (its irqchip routing skips pin 0); Firecracker and crosvm on KVM's default routing emit none,
 * and Cloud Hypervisor (no PIT) emits an identity IRQ 4 override that changes nothing.
 *
 * The one override we need is for the SCI: without it, OSPM treats the SCI as level-triggered
 * active-low (ACPI 6.5 §5.2.9, SCI_INT), but the VMM drives it as a level asserted high, as
 * KVM's IOAPIC and 8259 (ELCR) expect. So IRQ 9 -> GSI 9, level, active high: the same
 * override QEMU's PIIX4/ICH9 tables carry for their SCI.
 */
static void madt_build(uint8_t *p, size_t len, const struct acpi_config *cfg)
{
    sdt_header(p, "APIC", (uint32_t)len, 5, "RVMADT  ");
    le_put32(p + 36, ACPI_LAPIC_ADDR);
    le_put32(p + 40, 1); /* PCAT_COMPAT: dual 8259s present, the OS must mask them if unused */
    uint8_t *e = p + MADT_FIXED_LEN;
    bool any_x2apic = false;
    /* Boot processor first (ACPI 6.5 §5.2.12.12: listed order is the OS's CPU order). */
    for (unsigned i = 0; i < cfg->vcpus; i++) {
        if (i <= XAPIC_MAX_ID) {
            e[0] = MADT_LAPIC;
            e[1] = MADT_LAPIC_LEN;
            e[2] = (uint8_t)i;  /* ACPI processor UID */
            e[3] = (uint8_t)i;  /* APIC ID */
            le_put32(e + 4, 1); /* enabled */
            e += MADT_LAPIC_LEN;
        } else {
            e[0] = MADT_X2APIC;
            e[1] = MADT_X2APIC_LEN;
            le_put32(e + 4, i);  /* x2APIC ID */
            le_put32(e + 8, 1);  /* enabled */
            le_put32(e + 12, i); /* ACPI processor UID */
            e += MADT_X2APIC_LEN;
            any_x2apic = true;
        }
    }
    /* One IOAPIC, GSIs 0-23. Its ID follows the vCPUs' APIC IDs (the MP-spec habit of one ID
     * space); Linux on x86-64 takes the MADT value as is and never reprograms the chip, and
     * KVM's IOAPIC keeps only 4 ID bits anyway, so the value only needs to be unique here. */
    e[0] = MADT_IOAPIC;
    e[1] = MADT_IOAPIC_LEN;
    e[2] = (uint8_t)(cfg->vcpus <= XAPIC_MAX_ID ? cfg->vcpus : XAPIC_MAX_ID);
    le_put32(e + 4, ACPI_IOAPIC_ADDR);
    le_put32(e + 8, 0);
    e += MADT_IOAPIC_LEN;

    e[0] = MADT_ISO;
    e[1] = MADT_ISO_LEN;
    e[2] = 0; /* ISA */
    e[3] = cfg->ports.sci_irq;
    le_put32(e + 4, cfg->ports.sci_irq);
    le_put16(e + 8, INTI_POLARITY_HIGH | INTI_TRIGGER_LEVEL);
    e += MADT_ISO_LEN;

    /* LINT1 of every local APIC is the NMI input, as on PC firmware (flags 0: conforming). */
    e[0] = MADT_LAPIC_NMI;
    e[1] = MADT_LAPIC_NMI_LEN;
    e[2] = 0xff; /* all processors */
    le_put16(e + 3, 0);
    e[5] = 1;
    e += MADT_LAPIC_NMI_LEN;
    if (any_x2apic) {
        e[0] = MADT_X2APIC_NMI;
        e[1] = MADT_X2APIC_NMI_LEN;
        le_put16(e + 2, 0);
        le_put32(e + 4, 0xffffffffu); /* all processors */
        e[8] = 1;
        e += MADT_X2APIC_NMI_LEN;
    }
    sdt_finish(p);
}

int acpi_tables_write(const struct guest_mem *m, const struct acpi_config *cfg, uint64_t *rsdp)
{
    struct layout l;
    int ret = layout_compute(cfg, &l);
    if (ret)
        return ret;
    if (l.end > AREA_SIZE)
        return -ENOSPC;
    if (!guest_mem_ptr(m, ACPI_AREA_START, AREA_SIZE))
        return -EFAULT;
    /* Build the whole area in a staging buffer and copy it once: the zeros left between and
     * after the tables also erase any RSDP left from a previous boot. */
    uint8_t *area = calloc(1, AREA_SIZE);
    if (!area)
        return -ENOMEM;
    const uint32_t base = ACPI_AREA_START;

    size_t dsdt_body;
    ret = dsdt_aml(cfg, area + l.dsdt + SDT_HEADER_LEN, l.dsdt_len - SDT_HEADER_LEN, &dsdt_body);
    if (ret)
        goto out;
    sdt_header(area + l.dsdt, "DSDT", (uint32_t)l.dsdt_len, 2, "RVDSDT  ");
    sdt_finish(area + l.dsdt);

    facs_build(area + l.facs);
    fadt_build(area + l.fadt, cfg, base + (uint32_t)l.facs, base + (uint32_t)l.dsdt);
    madt_build(area + l.madt, l.madt_len, cfg);

    uint32_t tables[2] = {base + (uint32_t)l.fadt, base + (uint32_t)l.madt};
    uint8_t *rsdt = area + l.rsdt, *xsdt = area + l.xsdt;
    sdt_header(rsdt, "RSDT", (uint32_t)(SDT_HEADER_LEN + 4 * l.ntables), 1, "RVRSDT  ");
    sdt_header(xsdt, "XSDT", (uint32_t)(SDT_HEADER_LEN + 8 * l.ntables), 1, "RVXSDT  ");
    for (size_t i = 0; i < 2; i++) {
        le_put32(rsdt + SDT_HEADER_LEN + 4 * i, tables[i]);
        le_put64(xsdt + SDT_HEADER_LEN + 8 * i, tables[i]);
    }
    size_t off = l.extra;
    for (unsigned i = 0; i < cfg->extra_count; i++) {
        off = align_up(off, 16);
        memcpy(area + off, cfg->extra[i].data, cfg->extra[i].len);
        sdt_finish(area + off);
        le_put32(rsdt + SDT_HEADER_LEN + 4 * (2 + i), base + (uint32_t)off);
        le_put64(xsdt + SDT_HEADER_LEN + 8 * (2 + i), base + (uint32_t)off);
        off += cfg->extra[i].len;
    }
    sdt_finish(rsdt);
    sdt_finish(xsdt);

    /* RSDP revision 2 (ACPI 6.5 §5.2.5.3): checksum over the first 20 bytes (the ACPI 1.0
     * part), extended checksum over all 36. */
    uint8_t *r = area + l.rsdp;
    memcpy(r, "RSD PTR ", 8);
    memcpy(r + 9, oem_id, sizeof(oem_id));
    r[15] = 2;
    le_put32(r + 16, base + (uint32_t)l.rsdt);
    le_put32(r + 20, RSDP_LEN);
    le_put64(r + 24, base + (uint64_t)l.xsdt);
    r[8] = (uint8_t)(0x100 - acpi_checksum(r, 20));
    r[32] = (uint8_t)(0x100 - acpi_checksum(r, RSDP_LEN));

    ret = guest_mem_write(m, ACPI_AREA_START, area, AREA_SIZE);
    if (!ret)
        *rsdp = base + l.rsdp;
out:
    free(area);
    return ret;
}
