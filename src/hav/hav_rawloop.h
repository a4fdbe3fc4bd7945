/* SPDX-License-Identifier: MIT */
/* A raw KVM exit loop with no HAV layer in between, for benchmarks to measure HAV's cost. */
#ifndef REVIRT_HAV_RAWLOOP_H
#define REVIRT_HAV_RAWLOOP_H

#include <revirt/hav.h>

/* Run a guest straight on /dev/kvm: ram (page aligned) at guest address 0, the vCPU in state st
 * (GPRS, SEGS, CRS). Every port-I/O exit is counted and resumed until a 32-bit OUT to
 * done_port. Returns 0 with *exits, *seconds (wall time of the loop) and *launch (seconds from
 * opening /dev/kvm to the first exit), or -errno with hav_last_error() set. */
int hav_kvm_rawloop(void *ram, uint64_t ram_size, const struct hav_x86_state *st,
                    uint16_t done_port, uint64_t *exits, double *seconds, double *launch);

#endif
