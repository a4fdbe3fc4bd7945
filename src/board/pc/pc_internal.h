/* SPDX-License-Identifier: MIT */
/* What the PC board's files share among themselves (not for the application). */
#ifndef REVIRT_BOARD_PC_PC_INTERNAL_H
#define REVIRT_BOARD_PC_PC_INTERNAL_H

#include "pc.h"

/* The --serial2 file; opened with the images, so that a path that cannot be written is bad
 * input. */
int pc_open_serial2(struct pc *pc, bool restarted);
int pc_create_devices(struct pc *pc);
int pc_create_virtio(struct pc *pc);
/* The level of interrupt line gsi (an irq_set_fn for the devices' struct irq_line). */
void pc_set_irq(void *opaque, unsigned gsi, bool level);
/* Fill pc->msi and pc->ioevent. */
void pc_plumbing_init(struct pc *pc);

#endif
