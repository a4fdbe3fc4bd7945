/* SPDX-License-Identifier: MIT */
/* revirter's own PC platform on the board (--irqchip=user): local APICs, IOAPIC, 8259 pair and
 * 8254 from src/dev, wired to each other, to the devices' interrupt lines and to the vCPUs. */
#ifndef REVIRT_BOARD_PC_PC_PLATFORM_H
#define REVIRT_BOARD_PC_PC_PLATFORM_H

#include <revirt/hav.h>

#include <stdbool.h>
#include <stdint.h>

struct pc;
struct pc_platform;

/* Create the models on pc's buses, with the timer thread and the MSI thread. Needs pc->hvm. */
int pc_platform_create(struct pc *pc, unsigned cpus, struct pc_platform **out);
void pc_platform_destroy(struct pc_platform *p);

/* Interrupt line gsi: ISA IRQs (< 16) go to the 8259 pair and the IOAPIC pin of the same
 * number (the identity routing the MADT describes), PCI INTx (16-23) to the IOAPIC. */
void pc_platform_set_irq(struct pc_platform *p, unsigned gsi, bool level);

/* MSI vectors of the devices: an eventfd whose writes deliver the message last routed to it. */
int pc_platform_msi_bind(struct pc_platform *p, int fd);
int pc_platform_msi_route(struct pc_platform *p, int handle, uint64_t address, uint32_t data);
void pc_platform_msi_unbind(struct pc_platform *p, int handle, int fd);

/* The vCPU thread of vCPU index, before its first run: this thread's accesses to the local
 * APIC page reach that vCPU's local APIC, and kicks reach vcpu. */
void pc_platform_vcpu_bind(struct pc_platform *p, unsigned index, struct hav_vcpu *vcpu);
/* Application processors wait here for INIT and STARTUP from the BSP (SDM vol. 3A §8.4.4),
 * then start in real mode at the SIPI vector. False when the VM stops first. */
bool pc_platform_vcpu_wait_start(struct pc_platform *p, unsigned index);
/* Before each run: deliver what the local APIC has pending (NMI, the highest interrupt above
 * the TPR, ExtINT from the 8259), or ask for an interrupt window. */
void pc_platform_vcpu_pre_run(struct pc_platform *p, unsigned index);
/* An exit the platform handles (MSR, HLT, IRQ window, and the CR8 every exit carries). */
void pc_platform_vcpu_exit(struct pc_platform *p, unsigned index, struct hav_exit *e);
/* Wake every waiting vCPU thread: the VM is ending. */
void pc_platform_stop(struct pc_platform *p);

#endif
