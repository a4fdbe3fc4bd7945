/* SPDX-License-Identifier: MIT */
/* Test harness for tiny guests: a VM with 4 MiB of RAM, identity paging over 4 GiB, a flat
 * guest image at 1 MiB, and a run loop that collects the guest's reports. HAV API only. */
#ifndef REVIRT_TEST_HARNESS_H
#define REVIRT_TEST_HARNESS_H

#include <revirt/hav.h>

#include "guest_abi.h"

#define HARNESS_MAX_VCPUS 4
#define HARNESS_MAX_REPORTS 64

struct harness {
    struct hav_backend *b;
    struct hav_vm *vm;
    uint8_t *ram;
    struct hav_vcpu *vcpu[HARNESS_MAX_VCPUS];
    unsigned nvcpus;
    /* per vCPU: values the guest reported, values to answer PORT_INPUT reads with */
    uint32_t reports[HARNESS_MAX_VCPUS][HARNESS_MAX_REPORTS];
    unsigned nreports[HARNESS_MAX_VCPUS];
    uint32_t input[HARNESS_MAX_VCPUS][8];
    unsigned ninput[HARNESS_MAX_VCPUS], input_pos[HARNESS_MAX_VCPUS];
};

/* Open the backend (REVIRT_HAV or auto), hide mask_caps, create the VM with config, load the
 * guest image g_<guest>.bin from $GUEST_DIR, and create nvcpus vCPUs in 64-bit ring `ring`
 * (0 or 3) at the image's entry with RDI = vCPU index. Prints the reason and returns -errno on
 * failure. */
int harness_open(struct harness *h, const char *guest, const struct hav_vm_config *config,
                 unsigned nvcpus, int ring, uint32_t mask_caps);
void harness_close(struct harness *h);

/* The long-mode state harness_open gives a vCPU (for tests that rebuild it). */
void harness_initial_state(struct hav_x86_state *st, unsigned index, int ring);

/* Queue a value for the guest's next PORT_INPUT read on vCPU i. */
void harness_input(struct harness *h, unsigned i, uint32_t value);

/* Run vCPU i, consuming PORT_REPORT writes and PORT_INPUT reads, until any other exit. */
int harness_run(struct harness *h, unsigned i, struct hav_exit *e);

/* Run vCPU i to PORT_DONE; any other exit is a failure (printed). Returns the guest's verdict
 * (0 = fine) or -1. */
int harness_run_to_done(struct harness *h, unsigned i);

/* True if e is a 32-bit OUT to port with the given value (any value if value < 0). */
int harness_is_out(const struct hav_exit *e, uint16_t port, long long value);

const char *harness_exit_name(enum hav_exit_reason r);

#endif
