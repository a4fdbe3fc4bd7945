/* SPDX-License-Identifier: MIT */
/* Test harness for tiny guests (see harness.h); uses nothing but the HAV API. */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define GDT_ADDR 0x800
#define PML4_ADDR 0x1000
#define PDPT_ADDR 0x2000
#define PD_ADDR 0x3000 /* four pages: 4 GiB of 2 MiB pages */

const char *harness_exit_name(enum hav_exit_reason r)
{
    static const char *const names[] = {
        [HAV_EXIT_IO] = "io",
        [HAV_EXIT_MMIO] = "mmio",
        [HAV_EXIT_HLT] = "hlt",
        [HAV_EXIT_SHUTDOWN] = "shutdown",
        [HAV_EXIT_HYPERCALL] = "hypercall",
        [HAV_EXIT_SYSTEM_EVENT] = "system-event",
        [HAV_EXIT_IRQ_WINDOW] = "irq-window",
        [HAV_EXIT_ENTRY_FAILED] = "entry-failed",
        [HAV_EXIT_INTERNAL_ERROR] = "internal-error",
        [HAV_EXIT_KICKED] = "kicked",
        [HAV_EXIT_MSR] = "msr",
    };
    return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

static void build_tables(uint8_t *ram)
{
    uint64_t *gdt = (uint64_t *)(ram + GDT_ADDR);
    gdt[0] = 0;
    gdt[1] = 0x00af9a000000ffffull; /* 0x08 ring-0 code, long mode */
    gdt[2] = 0x00cf92000000ffffull; /* 0x10 ring-0 data */
    gdt[3] = 0x00affa000000ffffull; /* 0x18 ring-3 code, long mode */
    gdt[4] = 0x00cff2000000ffffull; /* 0x20 ring-3 data */
    uint64_t *pml4 = (uint64_t *)(ram + PML4_ADDR), *pdpt = (uint64_t *)(ram + PDPT_ADDR);
    uint64_t *pd = (uint64_t *)(ram + PD_ADDR);
    /* present | writable | user, and PS for the 2 MiB leaves; user so ring-3 guests work */
    pml4[0] = PDPT_ADDR | 7;
    for (uint64_t i = 0; i < 4; i++)
        pdpt[i] = (PD_ADDR + i * 0x1000) | 7;
    for (uint64_t i = 0; i < 4 * 512; i++)
        pd[i] = (i << 21) | 0x87;
}

static struct hav_x86_segment seg(uint16_t sel, uint8_t type, int ring, int code)
{
    return (struct hav_x86_segment){
        .base = 0,
        .limit = 0xffffffff,
        .selector = (uint16_t)(sel | ring),
        .type = type,
        .s = 1,
        .dpl = (uint8_t)ring,
        .present = 1,
        .l = (uint8_t)code,
        .db = (uint8_t)!code,
        .g = 1,
    };
}

void harness_initial_state(struct hav_x86_state *st, unsigned index, int ring)
{
    memset(st, 0, sizeof(*st));
    st->segs.cs = seg(ring ? 0x18 : 0x08, 0xb, ring, 1);
    st->segs.ds = st->segs.es = st->segs.fs = st->segs.gs = st->segs.ss =
        seg(ring ? 0x20 : 0x10, 0x3, ring, 0);
    st->segs.tr = (struct hav_x86_segment){.limit = 0x67, .type = 0xb, .present = 1};
    st->segs.ldtr = (struct hav_x86_segment){.type = 0x2, .present = 1, .unusable = 1};
    st->segs.gdt = (struct hav_x86_table){GDT_ADDR, 5 * 8 - 1};
    st->segs.idt = (struct hav_x86_table){0, 0};
    st->crs.cr0 = 0x80000033; /* PG | NE | ET | MP | PE */
    st->crs.cr3 = PML4_ADDR;
    st->crs.cr4 = 0x620;            /* OSXMMEXCPT | OSFXSR | PAE */
    st->crs.efer = 0x500;           /* LMA | LME */
    st->crs.apic_base = 0xfee00900; /* enabled, BSP flag set below */
    if (index == 0)
        st->crs.apic_base |= 0x100;
    else
        st->crs.apic_base &= ~0x100ull;
    st->gprs.rip = GUEST_LOAD;
    st->gprs.rsp = GUEST_STACK_TOP - index * 0x10000ull;
    st->gprs.rdi = index;
    st->gprs.rflags = 0x2 | (ring ? 0x3000 : 0); /* IOPL 3 lets a ring-3 guest do port I/O */
}

static int load_image(struct harness *h, const char *guest)
{
    const char *dir = getenv("GUEST_DIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/g_%s.bin", dir ? dir : ".", guest);
    FILE *f = fopen(path, "rb");
    if (!f) {
        printf("# cannot open guest image %s: %s\n", path, strerror(errno));
        return -ENOENT;
    }
    size_t max = GUEST_STACK_TOP - 0x40000 - GUEST_LOAD;
    size_t n = fread(h->ram + GUEST_LOAD, 1, max, f);
    int too_big = fgetc(f) != EOF;
    fclose(f);
    if (n == 0 || too_big) {
        printf("# guest image %s is empty or larger than %zu bytes\n", path, max);
        return -EFBIG;
    }
    return 0;
}

int harness_open(struct harness *h, const char *guest, const struct hav_vm_config *config,
                 unsigned nvcpus, int ring, uint32_t mask_caps)
{
    memset(h, 0, sizeof(*h));
    int r = hav_open(NULL, &h->b);
    if (r < 0) {
        printf("# hav_open: %s\n", hav_last_error());
        return r;
    }
    hav_mask_caps(h->b, mask_caps);
    if ((r = hav_vm_create(h->b, config, &h->vm)) < 0) {
        printf("# hav_vm_create: %s\n", hav_last_error());
        goto fail;
    }
    h->ram = mmap(NULL, GUEST_RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (h->ram == MAP_FAILED) {
        h->ram = NULL;
        r = -ENOMEM;
        goto fail;
    }
    build_tables(h->ram);
    if ((r = load_image(h, guest)) < 0)
        goto fail;
    if ((r = hav_vm_attach_memory(h->vm, 0, h->ram, GUEST_RAM_SIZE, 0)) < 0) {
        printf("# attach RAM: %s\n", hav_last_error());
        goto fail;
    }
    for (unsigned i = 0; i < nvcpus; i++) {
        struct hav_x86_state st;
        if ((r = hav_vcpu_create(h->vm, i, &h->vcpu[i])) < 0) {
            printf("# hav_vcpu_create %u: %s\n", i, hav_last_error());
            goto fail;
        }
        h->nvcpus++;
        harness_initial_state(&st, i, ring);
        uint32_t mask = HAV_X86_GPRS | HAV_X86_SEGS | HAV_X86_CRS;
        if ((r = hav_vcpu_set_state(h->vcpu[i], &st, mask)) < 0) {
            printf("# set_state %u: %s\n", i, hav_last_error());
            goto fail;
        }
    }
    return 0;
fail:
    harness_close(h);
    return r;
}

void harness_close(struct harness *h)
{
    for (unsigned i = 0; i < h->nvcpus; i++)
        hav_vcpu_destroy(h->vcpu[i]);
    h->nvcpus = 0;
    hav_vm_destroy(h->vm);
    h->vm = NULL;
    if (h->ram)
        munmap(h->ram, GUEST_RAM_SIZE);
    h->ram = NULL;
    hav_close(h->b);
    h->b = NULL;
}

void harness_input(struct harness *h, unsigned i, uint32_t value)
{
    if (h->ninput[i] < 8)
        h->input[i][h->ninput[i]++] = value;
}

int harness_run(struct harness *h, unsigned i, struct hav_exit *e)
{
    for (;;) {
        int r = hav_vcpu_run(h->vcpu[i], e);
        if (r < 0) {
            printf("# hav_vcpu_run: %s\n", hav_last_error());
            return r;
        }
        if (harness_is_out(e, PORT_REPORT, -1)) {
            if (h->nreports[i] < HARNESS_MAX_REPORTS)
                memcpy(&h->reports[i][h->nreports[i]++], e->u.io.data, 4);
            continue;
        }
        if (e->reason == HAV_EXIT_IO && !e->u.io.write && e->u.io.port == PORT_INPUT &&
            h->input_pos[i] < h->ninput[i]) {
            uint32_t v = h->input[i][h->input_pos[i]++];
            memcpy(e->u.io.data, &v, e->u.io.size);
            continue;
        }
        return 0;
    }
}

int harness_is_out(const struct hav_exit *e, uint16_t port, long long value)
{
    if (e->reason != HAV_EXIT_IO || !e->u.io.write || e->u.io.port != port || e->u.io.size != 4 ||
        e->u.io.count != 1)
        return 0;
    uint32_t v;
    memcpy(&v, e->u.io.data, 4);
    return value < 0 || v == (uint32_t)value;
}

int harness_run_to_done(struct harness *h, unsigned i)
{
    struct hav_exit e;
    if (harness_run(h, i, &e) < 0)
        return -1;
    if (!harness_is_out(&e, PORT_DONE, -1)) {
        printf("# vCPU %u: expected the guest to finish, got a %s exit", i,
               harness_exit_name(e.reason));
        if (e.reason == HAV_EXIT_IO)
            printf(" (port 0x%x, %s)", e.u.io.port, e.u.io.write ? "out" : "in");
        if (e.reason == HAV_EXIT_MMIO)
            printf(" (0x%llx)", (unsigned long long)e.u.mmio.addr);
        if (e.reason == HAV_EXIT_ENTRY_FAILED || e.reason == HAV_EXIT_INTERNAL_ERROR)
            printf(" (%s)", e.u.failure.why);
        printf("\n");
        return -1;
    }
    uint32_t v;
    memcpy(&v, e.u.io.data, 4);
    return (int)v;
}
