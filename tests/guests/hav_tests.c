/* SPDX-License-Identifier: MIT */
/* The backend-neutral HAV suite: each test runs a tiny guest and checks what the guest and the
 * harness observed. Run one with `hav_tests NAME` (GUEST_DIR names the guest images). */
#include "harness.h"
#include "unit/check.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static struct harness h;

static int open_or_fail(const char *guest, const struct hav_vm_config *c, unsigned n, int ring,
                        uint32_t mask)
{
    int r = harness_open(&h, guest, c, n, ring, mask);
    CHECK(r == 0, "harness_open(%s) = %d", guest, r);
    return r;
}

static uint64_t report64_at(unsigned vcpu, unsigned i)
{
    return h.reports[vcpu][i] | (uint64_t)h.reports[vcpu][i + 1] << 32;
}

static void test_pio(void)
{
    if (open_or_fail("pio", NULL, 1, 0, 0))
        return;
    struct hav_exit e;
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(e.reason == HAV_EXIT_IO && e.u.io.write && e.u.io.port == 0x80 && e.u.io.size == 1 &&
              e.u.io.count == 1 && e.u.io.data[0] == 0x5a,
          "outb 0x5a to 0x80");
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    uint16_t w = 0;
    if (e.reason == HAV_EXIT_IO)
        memcpy(&w, e.u.io.data, 2);
    CHECK(e.reason == HAV_EXIT_IO && e.u.io.port == 0x82 && e.u.io.size == 2 && w == 0xbeef,
          "outw 0xbeef to 0x82 (got 0x%x)", w);
    harness_input(&h, 0, 0x12345678);
    harness_input(&h, 0, 0xabcd);
    harness_input(&h, 0, 0x99);
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    CHECK_EQ(h.nreports[0], 4);
    CHECK_EQ(h.reports[0][0], 0xcafebabe);
    CHECK_EQ(h.reports[0][1], 0x12345678);
    CHECK_EQ(h.reports[0][2], 0xabcd);
    CHECK_EQ(h.reports[0][3], 0x99);
    harness_close(&h);
}

static void test_mmio(void)
{
    if (open_or_fail("mmio", NULL, 1, 0, 0))
        return;
    struct hav_exit e;
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    uint32_t v = 0;
    if (e.reason == HAV_EXIT_MMIO)
        memcpy(&v, e.u.mmio.data, 4);
    CHECK(e.reason == HAV_EXIT_MMIO && e.u.mmio.write && e.u.mmio.addr == GUEST_MMIO + 0x10 &&
              e.u.mmio.len == 4 && v == 0xdeadbeef,
          "write 0xdeadbeef to MMIO+0x10 (got %s 0x%x)", harness_exit_name(e.reason), v);
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(e.reason == HAV_EXIT_MMIO && !e.u.mmio.write && e.u.mmio.addr == GUEST_MMIO + 0x18 &&
              e.u.mmio.len == 8,
          "8-byte read of MMIO+0x18");
    uint64_t answer = 0x0123456789abcdefull;
    if (e.reason == HAV_EXIT_MMIO)
        memcpy(e.u.mmio.data, &answer, 8);
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    CHECK(h.nreports[0] == 2 && report64_at(0, 0) == answer, "guest read the harness value");
    harness_close(&h);
}

static void test_hlt(void)
{
    if (open_or_fail("hlt", NULL, 1, 0, 0))
        return;
    struct hav_exit e;
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(e.reason == HAV_EXIT_HLT, "HLT exit (got %s)", harness_exit_name(e.reason));
    CHECK_EQ(h.nreports[0], 1);
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    CHECK_EQ(h.nreports[0], 2);
    harness_close(&h);
}

static void test_cpuid(void)
{
    if (open_or_fail("cpuid", NULL, 1, 0, 0))
        return;
    struct hav_cpuid_entry t[HAV_CPUID_MAX];
    int n = hav_supported_cpuid(h.b, t, HAV_CPUID_MAX);
    CHECK(n > 0, "supported CPUID: %s", hav_last_error());
    CHECK_EQ(hav_supported_cpuid(h.b, t, 1), -ENOSPC);
    n = hav_supported_cpuid(h.b, t, HAV_CPUID_MAX);
    if (n <= 0 || n > (int)HAV_CPUID_MAX - 3) {
        harness_close(&h);
        return;
    }
    /* Hypervisor leaves no CPU has: 0x40000000, and 0x40000002 with two sub-leaves. */
    int hv = -1;
    for (int i = 0; i < n; i++)
        if (t[i].function == 0x40000000)
            hv = i;
    if (hv < 0)
        hv = n++;
    t[hv] = (struct hav_cpuid_entry){.function = 0x40000000,
                                     .eax = 0x40000002,
                                     .ebx = 0x69766552,
                                     .ecx = 0x65547472,
                                     .edx = 0x00007473};
    t[n++] = (struct hav_cpuid_entry){
        .function = 0x40000002, .index = 0, .indexed = true, .eax = 0xa0a0};
    t[n++] = (struct hav_cpuid_entry){
        .function = 0x40000002, .index = 1, .indexed = true, .eax = 0x5a5a};
    CHECK(hav_vcpu_set_cpuid(h.vcpu[0], t, (unsigned)n) == 0, "set_cpuid: %s", hav_last_error());
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    CHECK_EQ(h.nreports[0], 5);
    CHECK_EQ(h.reports[0][0], 0x40000002);
    CHECK_EQ(h.reports[0][1], 0x69766552); /* "RevirtTest" */
    CHECK_EQ(h.reports[0][2], 0x65547472);
    CHECK_EQ(h.reports[0][3], 0x00007473);
    CHECK_EQ(h.reports[0][4], 0x5a5a);
    harness_close(&h);
}

static void test_msr(void)
{
    if (open_or_fail("msr", NULL, 1, 0, 0))
        return;
    struct hav_x86_state st = {
        .msrs = {.count = 1, .entries = {{0xc0000102, 0xffff888812345678ull}}}};
    CHECK(hav_vcpu_set_state(h.vcpu[0], &st, HAV_X86_MSRS) == 0, "set MSR: %s", hav_last_error());
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    CHECK(h.nreports[0] == 4, "reports %u", h.nreports[0]);
    CHECK(report64_at(0, 0) == 0xffff888812345678ull, "guest read the harness's MSR value");
    CHECK(report64_at(0, 2) == 0x0023001000000000ull, "guest read back its own STAR");
    st.msrs.count = 2;
    st.msrs.entries[0] = (struct hav_x86_msr){.index = 0xc0000102};
    st.msrs.entries[1] = (struct hav_x86_msr){.index = 0xc0000081};
    CHECK(hav_vcpu_get_state(h.vcpu[0], &st, HAV_X86_MSRS) == 0, "get MSRs: %s", hav_last_error());
    CHECK(st.msrs.entries[0].value == 0xffff800012345000ull, "harness sees the guest's write");
    CHECK(st.msrs.entries[1].value == 0x0023001000000000ull, "harness sees STAR");
    /* An MSR no CPU has is refused with a message naming it. */
    st.msrs.count = 1;
    st.msrs.entries[0].index = 0x4b564dff;
    CHECK(hav_vcpu_get_state(h.vcpu[0], &st, HAV_X86_MSRS) < 0, "bogus MSR refused");
    CHECK(strstr(hav_last_error(), "0x4b564dff") != NULL, "message: %s", hav_last_error());
    harness_close(&h);
}

static void test_hypercall(void)
{
    if (open_or_fail("hypercall", NULL, 1, 0, 0))
        return;
    struct hav_exit e;
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(e.reason == HAV_EXIT_HYPERCALL, "hypercall exit (got %s)", harness_exit_name(e.reason));
    CHECK_EQ(e.u.hypercall.nr, 42);
    const uint64_t want[6] = {1, 2, 0x300000003ull, 4, 5, 0xfedcba9876543210ull};
    for (int i = 0; i < 6; i++)
        CHECK(e.u.hypercall.args[i] == want[i], "arg %d = 0x%llx", i,
              (unsigned long long)e.u.hypercall.args[i]);
    e.u.hypercall.ret = 0x8000000000000042ull;
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(e.reason == HAV_EXIT_HYPERCALL && e.u.hypercall.nr == 7, "second hypercall");
    e.u.hypercall.ret = 9;
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    CHECK(h.nreports[0] == 4 && report64_at(0, 0) == 0x8000000000000042ull &&
              report64_at(0, 2) == 9,
          "guest got both results in RAX");
    harness_close(&h);
}

static void test_triple_fault(void)
{
    if (open_or_fail("triple", NULL, 1, 0, 0))
        return;
    struct hav_exit e;
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(e.reason == HAV_EXIT_SHUTDOWN, "shutdown (got %s)", harness_exit_name(e.reason));
    CHECK(h.nreports[0] == 1 && h.reports[0][0] == 1, "guest got as far as the ud2, no further");
    harness_close(&h);
}

static void test_readonly(void)
{
    if (open_or_fail("readonly", NULL, 1, 0, 0))
        return;
    uint8_t *ro = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ((uint32_t *)ro)[0x10] = 0x600dcafe;
    int r = hav_vm_attach_memory(h.vm, GUEST_RO, ro, 0x1000, HAV_MEM_READONLY);
    CHECK(r == 0, "attach read-only: %s", hav_last_error());
    struct hav_exit e;
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    uint32_t v = 0;
    if (e.reason == HAV_EXIT_MMIO)
        memcpy(&v, e.u.mmio.data, 4);
    CHECK(e.reason == HAV_EXIT_MMIO && e.u.mmio.write && e.u.mmio.addr == GUEST_RO + 0x40 &&
              v == 0x0badf00d,
          "write to read-only memory exits as MMIO (got %s)", harness_exit_name(e.reason));
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    CHECK(h.nreports[0] == 2 && h.reports[0][0] == 0x600dcafe && h.reports[0][1] == 0x600dcafe,
          "guest reads the original value before and after");
    CHECK_EQ(((uint32_t *)ro)[0x10], 0x600dcafe);
    harness_close(&h);
    munmap(ro, 0x1000);
}

static void test_dirty_log(void)
{
    if (open_or_fail("dirty", NULL, 1, 0, 0))
        return;
    size_t size = GUEST_DIRTY_PAGES * 0x1000;
    uint8_t *d = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    int r = hav_vm_attach_memory(h.vm, GUEST_DIRTY, d, size, HAV_MEM_DIRTY_LOG);
    CHECK(r == 0, "attach tracked: %s", hav_last_error());
    uint64_t bm[1] = {~0ull};
    CHECK_EQ(hav_vm_dirty_log(h.vm, GUEST_DIRTY, bm, 1), 0);
    CHECK(bm[0] == 0, "nothing dirty before the guest ran (0x%llx)", (unsigned long long)bm[0]);
    CHECK_EQ(hav_vm_dirty_log(h.vm, GUEST_DIRTY, bm, 0), -ENOSPC);
    CHECK_EQ(hav_vm_dirty_log(h.vm, 0, bm, 1), -EINVAL); /* RAM is not tracked */
    struct hav_exit e;
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(harness_is_out(&e, PORT_SYNC, 1), "guest reached its sync point");
    CHECK_EQ(hav_vm_dirty_log(h.vm, GUEST_DIRTY, bm, 1), 0);
    CHECK(bm[0] == ((1ull << 1) | (1ull << 5) | (1ull << 13)), "dirty 0x%llx, want pages 1 5 13",
          (unsigned long long)bm[0]);
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    CHECK_EQ(hav_vm_dirty_log(h.vm, GUEST_DIRTY, bm, 1), 0);
    CHECK(bm[0] == (1ull << 2), "after sync only page 2 (0x%llx)", (unsigned long long)bm[0]);
    CHECK(d[5 * 4096] == 2 && d[13 * 4096 + 4095] == 3, "writes landed in host memory");
    harness_close(&h);
    munmap(d, size);
}

/* No irqchip: inject from the VMM through the interrupt window. */
static void test_irq_inject(void)
{
    if (open_or_fail("irq", NULL, 1, 0, 0))
        return;
    harness_input(&h, 0, 2); /* two interrupts */
    harness_input(&h, 0, 0); /* no local APIC */
    struct hav_exit e;
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(harness_is_out(&e, PORT_SYNC, 1), "guest ready (got %s)", harness_exit_name(e.reason));
    const uint8_t vectors[2] = {0x31, 0x33};
    for (int i = 0; i < 2; i++) {
        /* Interrupts are off at the OUT: ask for the window, inject when it opens. */
        hav_vcpu_request_irq_window(h.vcpu[0], true);
        do {
            CHECK_EQ(harness_run(&h, 0, &e), 0);
        } while (e.reason == HAV_EXIT_HLT && !hav_vcpu_irq_ready(h.vcpu[0]));
        CHECK(e.reason == HAV_EXIT_IRQ_WINDOW || hav_vcpu_irq_ready(h.vcpu[0]),
              "window opened (got %s)", harness_exit_name(e.reason));
        hav_vcpu_request_irq_window(h.vcpu[0], false);
        CHECK(hav_vcpu_inject_irq(h.vcpu[0], vectors[i]) == 0, "inject: %s", hav_last_error());
    }
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    CHECK(h.nreports[0] == 2 && h.reports[0][0] == 0x31 && h.reports[0][1] == 0x33,
          "handlers for 0x31 and 0x33 ran in order");
    harness_close(&h);
}

/* In-kernel irqchip: an MSI, an irq notifier on an MSI route, and an io notifier. Run natively
 * and again with the notifier capabilities hidden, to test the portable fallbacks. */
static void irqchip_case(uint32_t mask)
{
    struct hav_vm_config c = {.irqchip = HAV_IRQCHIP_KERNEL};
    if (open_or_fail("irq", &c, 1, 0, mask))
        return;
    CHECK((hav_caps(h.b) & mask) == 0, "masked capabilities hidden");
    harness_input(&h, 0, 3); /* three interrupts */
    harness_input(&h, 0, 1); /* enable the local APIC */
    int irqfd = eventfd(0, EFD_CLOEXEC), iofd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    CHECK(hav_vm_set_msi_route(h.vm, 40, 0xfee00000, 0x32) == 0, "route: %s", hav_last_error());
    CHECK_EQ(hav_vm_set_msi_route(h.vm, 5, 0xfee00000, 0x32), -EINVAL);
    CHECK(hav_vm_irq_notifier(h.vm, irqfd, 40) == 0, "irq notifier: %s", hav_last_error());
    struct hav_io_notifier io = {.space = HAV_IO_PIO,
                                 .addr = PORT_SYNC,
                                 .len = 4,
                                 .has_match = true,
                                 .match = 7,
                                 .fd = iofd};
    CHECK(hav_vm_io_notifier(h.vm, &io) == 0, "io notifier: %s", hav_last_error());
    struct hav_exit e;
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(harness_is_out(&e, PORT_SYNC, 1), "guest ready (got %s)", harness_exit_name(e.reason));
    /* The guest is halted with interrupts on (in the kernel): deliver from this thread. */
    CHECK(hav_vm_signal_msi(h.vm, 0xfee00000, 0x31) == 0, "MSI: %s", hav_last_error());
    uint64_t one = 1;
    CHECK(write(irqfd, &one, 8) == 8, "eventfd write");
    /* Re-route GSI 40, as a guest reprogramming an MSI-X vector would, and fire it again;
     * the first edge must have been taken under the old route (the fallback takes it on
     * another thread). */
    usleep(50000);
    CHECK(hav_vm_set_msi_route(h.vm, 40, 0xfee00000, 0x33) == 0, "re-route");
    CHECK(write(irqfd, &one, 8) == 8, "eventfd write");
    /* Wait until the local APIC has all three pending (IRR bits 0x31-0x33), so the order the
     * guest takes them in is the APIC's, not the fallback thread's timing. */
    struct hav_x86_state *st = calloc(1, sizeof(*st));
    uint32_t irr = 0;
    for (int ms = 0; ms < 2000 && (irr & 0xe0000) != 0xe0000; ms++) {
        CHECK_EQ(hav_vcpu_get_state(h.vcpu[0], st, HAV_X86_LAPIC), 0);
        memcpy(&irr, st->lapic.regs + 0x210, 4);
        usleep(1000);
    }
    free(st);
    CHECK((irr & 0xe0000) == 0xe0000, "IRR has 0x31-0x33 pending (0x%x)", irr);
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    CHECK(h.nreports[0] == 3, "three interrupts seen (%u)", h.nreports[0]);
    /* All three were pending when the vCPU resumed: the local APIC takes the highest first. */
    CHECK(h.reports[0][0] == 0x33 && h.reports[0][1] == 0x32 && h.reports[0][2] == 0x31,
          "re-routed 0x33, notifier 0x32, MSI 0x31 (got 0x%x 0x%x 0x%x)", h.reports[0][0],
          h.reports[0][1], h.reports[0][2]);
    uint64_t count = 0;
    CHECK(read(iofd, &count, 8) < 0, "io notifier not signalled by a non-matching write");
    CHECK(hav_vm_remove_irq_notifier(h.vm, irqfd, 40) == 0, "remove irq notifier");
    CHECK_EQ(hav_vm_remove_irq_notifier(h.vm, irqfd, 40), -ENOENT);
    CHECK(hav_vm_clear_msi_route(h.vm, 40) == 0, "clear route");
    harness_close(&h);
    close(irqfd);
    close(iofd);
}

static void test_irqchip(void)
{
    irqchip_case(0);
}

static void test_irqchip_fallback(void)
{
    irqchip_case(HAV_CAP_IRQ_NOTIFIER | HAV_CAP_IO_NOTIFIER);
}

/* An io notifier takes a matching guest write without an exit (or in the fallback, without
 * one reaching the VMM). */
static void io_notifier_case(uint32_t mask)
{
    if (open_or_fail("pio", NULL, 1, 0, mask))
        return;
    int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct hav_io_notifier n = {.space = HAV_IO_PIO, .addr = 0x80, .len = 1, .fd = fd};
    CHECK(hav_vm_io_notifier(h.vm, &n) == 0, "io notifier: %s", hav_last_error());
    CHECK_EQ(hav_vm_io_notifier(h.vm, &n), -EEXIST);
    struct hav_io_notifier bad = n;
    bad.len = 3;
    CHECK_EQ(hav_vm_io_notifier(h.vm, &bad), -EINVAL);
    struct hav_exit e;
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(e.reason == HAV_EXIT_IO && e.u.io.port == 0x82, "first exit is the outw to 0x82");
    uint64_t count = 0;
    CHECK(read(fd, &count, 8) == 8 && count == 1, "the outb to 0x80 signalled the fd");
    CHECK(hav_vm_remove_io_notifier(h.vm, &n) == 0, "remove: %s", hav_last_error());
    harness_input(&h, 0, 1);
    harness_input(&h, 0, 2);
    harness_input(&h, 0, 3);
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    harness_close(&h);
    close(fd);
}

static void test_io_notifier(void)
{
    io_notifier_case(0);
}

static void test_io_notifier_fallback(void)
{
    io_notifier_case(HAV_CAP_IO_NOTIFIER);
}

/* Two vCPUs on two threads run at once; the main thread kicks each and they resume. */
struct smp_thread {
    unsigned index;
    atomic_int kicks;
    atomic_int state; /* 0 running, 1 done, -1 failed */
};

static void *smp_main(void *arg)
{
    struct smp_thread *t = arg;
    struct hav_exit e;
    for (;;) {
        if (harness_run(&h, t->index, &e) < 0)
            break;
        if (e.reason == HAV_EXIT_KICKED) {
            atomic_fetch_add(&t->kicks, 1);
            continue;
        }
        if (harness_is_out(&e, PORT_DONE, 0)) {
            atomic_store(&t->state, 1);
            return NULL;
        }
        printf("# vCPU %u: unexpected %s exit\n", t->index, harness_exit_name(e.reason));
        break;
    }
    atomic_store(&t->state, -1);
    return NULL;
}

static uint64_t counter(unsigned i)
{
    return __atomic_load_n((uint64_t *)(h.ram + GUEST_SHARED) + 1 + i, __ATOMIC_SEQ_CST);
}

static int wait_progress(unsigned i, uint64_t from)
{
    for (int ms = 0; ms < 10000; ms++) {
        if (counter(i) > from + 10)
            return 1;
        usleep(1000);
    }
    return 0;
}

static void test_smp_kick(void)
{
    enum { N = 2 };
    if (open_or_fail("smp", NULL, N, 0, 0))
        return;
    /* A kick before the first run makes that run return at once. */
    hav_vcpu_kick(h.vcpu[0]);
    struct hav_exit e;
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(e.reason == HAV_EXIT_KICKED, "pre-run kick (got %s)", harness_exit_name(e.reason));

    struct smp_thread t[N];
    pthread_t th[N];
    for (unsigned i = 0; i < N; i++) {
        t[i] = (struct smp_thread){.index = i};
        pthread_create(&th[i], NULL, smp_main, &t[i]);
    }
    for (unsigned i = 0; i < N; i++)
        CHECK(wait_progress(i, 0), "vCPU %u runs", i);
    /* Both counters advance over the same interval: the vCPUs really run concurrently. The
     * interval may stretch (up to 5 s) on a loaded machine that does not schedule a thread. */
    uint64_t a0 = counter(0), b0 = counter(1);
    for (int ms = 0; ms < 5000 && !(counter(0) > a0 && counter(1) > b0); ms += 10)
        usleep(10000);
    CHECK(counter(0) > a0 && counter(1) > b0, "both advance together");
    for (int round = 1; round <= 3; round++) {
        for (unsigned i = 0; i < N; i++) {
            hav_vcpu_kick(h.vcpu[i]);
            for (int ms = 0; ms < 5000 && atomic_load(&t[i].kicks) < round; ms++)
                usleep(1000);
            CHECK(atomic_load(&t[i].kicks) == round, "vCPU %u saw kick %d promptly", i, round);
            CHECK(wait_progress(i, counter(i)), "vCPU %u resumed after kick %d", i, round);
        }
    }
    __atomic_store_n((uint64_t *)(h.ram + GUEST_SHARED), 1, __ATOMIC_SEQ_CST);
    for (unsigned i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        CHECK(atomic_load(&t[i].state) == 1, "vCPU %u finished", i);
        CHECK(h.nreports[i] == 1 && h.reports[i][0] == i, "vCPU %u reported its index", i);
    }
    harness_close(&h);
}

/* Every group round-trips on its own, and a set touches only the groups in its mask. */
static void test_state(void)
{
    struct hav_vm_config c = {.irqchip = HAV_IRQCHIP_KERNEL};
    if (open_or_fail("state", &c, 1, 0, 0))
        return;
    struct hav_vcpu *v = h.vcpu[0];
    struct hav_x86_state *st = calloc(1, sizeof(*st)), *back = calloc(1, sizeof(*back));

    CHECK_EQ(hav_vcpu_get_state(v, st, HAV_X86_ALL & ~HAV_X86_MSRS), 0);
    CHECK(st->gprs.rip == GUEST_LOAD && st->crs.cr3 == 0x1000 && st->segs.cs.l == 1,
          "harness state read back");
    st->gprs.rbx = 0x1111222233334444ull;
    st->gprs.r12 = 0x5555666677778888ull;
    /* a set of GPRS alone must not apply other groups' garbage */
    memset(&st->crs, 0xff, sizeof(st->crs));
    memset(&st->segs, 0xff, sizeof(st->segs));
    CHECK_EQ(hav_vcpu_set_state(v, st, HAV_X86_GPRS), 0);
    memset(back, 0, sizeof(*back));
    CHECK_EQ(hav_vcpu_get_state(v, back, HAV_X86_GPRS | HAV_X86_CRS | HAV_X86_SEGS), 0);
    CHECK(back->gprs.rbx == st->gprs.rbx && back->gprs.r12 == st->gprs.r12, "GPRS round trip");
    CHECK(back->crs.cr3 == 0x1000 && back->crs.cr0 == 0x80000033, "CRS untouched");
    CHECK(back->segs.cs.selector == 0x08 && back->segs.gdt.limit == 39, "SEGS untouched");
    /* get of one group leaves the rest of the caller's struct alone */
    memset(back, 0xab, sizeof(*back));
    CHECK_EQ(hav_vcpu_get_state(v, back, HAV_X86_DEBUG), 0);
    CHECK(back->gprs.rax == 0xababababababababull, "get DEBUG did not write GPRS");

    /* CRS: CR4 gains OSXSAVE's neighbour TSD, visible to the guest. */
    CHECK_EQ(hav_vcpu_get_state(v, st, HAV_X86_CRS | HAV_X86_SEGS), 0);
    st->crs.cr4 |= 0x4; /* TSD */
    st->segs.fs.base = 0x7f0000001000ull;
    CHECK_EQ(hav_vcpu_set_state(v, st, HAV_X86_CRS | HAV_X86_SEGS), 0);
    CHECK_EQ(hav_vcpu_get_state(v, back, HAV_X86_CRS | HAV_X86_SEGS), 0);
    CHECK(back->crs.cr4 == st->crs.cr4 && back->segs.fs.base == 0x7f0000001000ull,
          "CRS/SEGS round trip");

    CHECK_EQ(hav_vcpu_get_state(v, st, HAV_X86_DEBUG), 0);
    st->debug.dr[0] = 0x401000;
    st->debug.dr[3] = 0x402000;
    CHECK_EQ(hav_vcpu_set_state(v, st, HAV_X86_DEBUG), 0);
    CHECK_EQ(hav_vcpu_get_state(v, back, HAV_X86_DEBUG), 0);
    CHECK(back->debug.dr[0] == 0x401000 && back->debug.dr[3] == 0x402000, "DEBUG round trip");

    CHECK_EQ(hav_vcpu_get_state(v, st, HAV_X86_FPU), 0);
    CHECK(st->fpu.xcr0 & 1, "XCR0 has x87 (0x%llx)", (unsigned long long)st->fpu.xcr0);
    memset(st->fpu.xsave + 160, 0x5c, 16); /* XMM0 in the legacy area... */
    st->fpu.xsave[512] |= 2;               /* ...live, per XSTATE_BV in the XSAVE header */
    CHECK_EQ(hav_vcpu_set_state(v, st, HAV_X86_FPU), 0);
    CHECK_EQ(hav_vcpu_get_state(v, back, HAV_X86_FPU), 0);
    CHECK(!memcmp(back->fpu.xsave + 160, st->fpu.xsave + 160, 16), "FPU round trip (XMM0)");

    st->msrs.count = 2;
    st->msrs.entries[0] = (struct hav_x86_msr){0xc0000102, 0xffff888000001000ull};
    st->msrs.entries[1] = (struct hav_x86_msr){0x174, 0x10}; /* SYSENTER_CS */
    CHECK_EQ(hav_vcpu_set_state(v, st, HAV_X86_MSRS), 0);
    back->msrs.count = 2;
    back->msrs.entries[0].index = 0xc0000102;
    back->msrs.entries[1].index = 0x174;
    CHECK_EQ(hav_vcpu_get_state(v, back, HAV_X86_MSRS), 0);
    CHECK(back->msrs.entries[0].value == 0xffff888000001000ull &&
              back->msrs.entries[1].value == 0x10,
          "MSRS round trip");
    st->msrs.count = HAV_X86_MSRS_MAX + 1;
    CHECK_EQ(hav_vcpu_get_state(v, st, HAV_X86_MSRS), -EINVAL);

    CHECK_EQ(hav_vcpu_get_state(v, st, HAV_X86_EVENTS), 0);
    st->events.nmi_masked = true;
    CHECK_EQ(hav_vcpu_set_state(v, st, HAV_X86_EVENTS), 0);
    CHECK_EQ(hav_vcpu_get_state(v, back, HAV_X86_EVENTS), 0);
    CHECK(back->events.nmi_masked && !back->events.exception_pending, "EVENTS round trip");
    st->events.nmi_masked = false;
    CHECK_EQ(hav_vcpu_set_state(v, st, HAV_X86_EVENTS), 0);

    CHECK_EQ(hav_vcpu_get_state(v, st, HAV_X86_LAPIC), 0);
    uint32_t tpr_off = 0x80;
    st->lapic.regs[tpr_off] = 0x20; /* TPR */
    CHECK_EQ(hav_vcpu_set_state(v, st, HAV_X86_LAPIC), 0);
    CHECK_EQ(hav_vcpu_get_state(v, back, HAV_X86_LAPIC), 0);
    CHECK_EQ(back->lapic.regs[tpr_off], 0x20);
    CHECK_EQ(hav_vcpu_get_state(v, st, 1u << 20), -EINVAL);

    /* What the guest sees is what was set: RBX, R12, CR4 and DR0. */
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    CHECK(h.nreports[0] == 8, "reports %u", h.nreports[0]);
    CHECK(report64_at(0, 0) == 0x1111222233334444ull, "guest RBX");
    CHECK(report64_at(0, 2) == 0x5555666677778888ull, "guest R12");
    CHECK(report64_at(0, 4) & 0x4, "guest CR4.TSD");
    CHECK(report64_at(0, 6) == 0x401000, "guest DR0");
    free(st);
    free(back);
    harness_close(&h);
}

static void test_memory_errors(void)
{
    if (open_or_fail("mmio", NULL, 1, 0, 0))
        return;
    size_t size = 0x4000;
    uint8_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK_EQ(hav_vm_attach_memory(h.vm, 0x1000000 + 0x800, m, size, 0), -EINVAL);
    CHECK_EQ(hav_vm_attach_memory(h.vm, 0x1000000, m + 8, size, 0), -EINVAL);
    CHECK_EQ(hav_vm_attach_memory(h.vm, 0x1000000, m, 0x1001, 0), -EINVAL);
    CHECK_EQ(hav_vm_attach_memory(h.vm, 0x1000000, m, 0, 0), -EINVAL);
    CHECK_EQ(hav_vm_attach_memory(h.vm, 0xfffffffffffff000ull, m, size, 0), -EINVAL);
    CHECK_EQ(hav_vm_attach_memory(h.vm, 0x1000000, m, size, 1u << 9), -EINVAL);
    CHECK_EQ(hav_vm_attach_memory(h.vm, GUEST_RAM_SIZE - 0x1000, m, size, 0), -EEXIST);
    CHECK(strstr(hav_last_error(), "overlaps") != NULL, "message: %s", hav_last_error());
    CHECK_EQ(hav_vm_attach_memory(h.vm, GUEST_MMIO, m, size, 0), 0);
    CHECK_EQ(hav_vm_attach_memory(h.vm, GUEST_MMIO + 0x3000, m, size, 0), -EEXIST);
    CHECK_EQ(hav_vm_detach_memory(h.vm, GUEST_MMIO + 0x1000), -ENOENT);
    /* attached, the former MMIO addresses are plain memory: no exit, the write is stored */
    ((uint64_t *)m)[3] = 0x1122334455667788ull;
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    uint32_t stored;
    memcpy(&stored, m + 0x10, 4);
    CHECK_EQ(stored, 0xdeadbeef);
    CHECK(h.nreports[0] == 2 && report64_at(0, 0) == 0x1122334455667788ull,
          "guest read attached memory");
    harness_close(&h);
    munmap(m, size);
}

static void test_detach(void)
{
    if (open_or_fail("mmio", NULL, 1, 0, 0))
        return;
    size_t size = 0x1000;
    uint8_t *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK_EQ(hav_vm_attach_memory(h.vm, GUEST_MMIO, m, size, 0), 0);
    CHECK_EQ(hav_vm_detach_memory(h.vm, GUEST_MMIO), 0);
    CHECK_EQ(hav_vm_detach_memory(h.vm, GUEST_MMIO), -ENOENT);
    /* detached again: the write exits */
    struct hav_exit e;
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(e.reason == HAV_EXIT_MMIO && e.u.mmio.write, "write exits after detach");
    uint32_t none = 0;
    CHECK(!memcmp(m + 0x10, &none, 4), "nothing stored in detached memory");
    harness_close(&h);
    munmap(m, size);
}

static void test_backend_missing(void)
{
    struct hav_backend *b = (struct hav_backend *)1;
    CHECK_EQ(hav_open("nosuch", &b), -ENOENT);
    CHECK(b == NULL, "no backend handed out");
    /* Backend-neutral: the message names the request and every backend that exists. */
    const char *const *names = hav_backend_list();
    CHECK(names[0] != NULL, "at least one backend is built in");
    CHECK(strstr(hav_last_error(), "nosuch") != NULL, "message names the request: %s",
          hav_last_error());
    for (unsigned i = 0; names[i]; i++)
        CHECK(strstr(hav_last_error(), names[i]) != NULL, "message lists %s: %s", names[i],
              hav_last_error());
    setenv("REVIRT_HAV", "revirt-k", 1);
    CHECK_EQ(hav_open(NULL, &b), -ENOENT);
    CHECK(strstr(hav_last_error(), "revirt-k") != NULL, "REVIRT_HAV honoured: %s",
          hav_last_error());
    unsetenv("REVIRT_HAV");
    CHECK(hav_open(NULL, &b) == 0, "auto works here: %s", hav_last_error());
    if (b) {
        struct hav_vm_config bad = {.irqchip = HAV_IRQCHIP_NONE, .pit = true};
        struct hav_vm *vm;
        CHECK_EQ(hav_vm_create(b, &bad, &vm), -ENOTSUP);
        CHECK(strstr(hav_last_error(), "PIT") != NULL, "message: %s", hav_last_error());
        hav_close(b);
    }
}

/* ---------------------------------------------------------------- the PC platform in user space */

/* Run vCPU i to its next exit that is not a report or an input; that must be an MSR exit for
 * index, of the given direction. Returns 1 if it was. */
static int expect_msr(unsigned i, struct hav_exit *e, uint32_t index, bool write)
{
    if (harness_run(&h, i, e) < 0)
        return 0;
    int ok = e->reason == HAV_EXIT_MSR && e->u.msr.index == index && e->u.msr.write == write;
    CHECK(ok, "MSR %s of 0x%x (got %s, MSR 0x%x %s)", write ? "write" : "read", index,
          harness_exit_name(e->reason), e->reason == HAV_EXIT_MSR ? e->u.msr.index : 0,
          e->reason == HAV_EXIT_MSR && e->u.msr.write ? "write" : "read");
    if (ok && !write)
        CHECK(e->u.msr.value == 0 && !e->u.msr.gp, "a read exit starts with value 0, no #GP");
    return ok;
}

static bool need_cap(uint32_t cap, const char *name)
{
    struct hav_backend *b;
    if (hav_open(NULL, &b) < 0) {
        CHECK(0, "hav_open: %s", hav_last_error());
        return false;
    }
    bool has = (hav_caps(b) & cap) != 0;
    if (!has)
        CHECK_SKIP("backend %s has no %s", hav_backend_name(b), name);
    hav_close(b);
    return has;
}

/* No irqchip: the local-APIC MSRs and an unknown one exit; reads take the harness's values,
 * writes bring the guest's, a refusal is a #GP in the guest; the backend's own MSRs do not exit. */
static void test_msr_exit(void)
{
    if (!need_cap(HAV_CAP_MSR_EXIT, "HAV_CAP_MSR_EXIT") || open_or_fail("msrexit", NULL, 1, 0, 0))
        return;
    harness_input(&h, 0, 0);
    struct hav_exit e;
    if (expect_msr(0, &e, 0x808, false))
        e.u.msr.value = 0xa5a5000000000010ull;
    if (expect_msr(0, &e, 0x4b564dff, false))
        e.u.msr.value = 0x0123456789abcdefull;
    if (expect_msr(0, &e, 0x1b, false))
        e.u.msr.value = 0xfee00d00ull;
    if (expect_msr(0, &e, 0x830, true))
        CHECK(e.u.msr.value == 0x0000000200004608ull, "ICR write 0x%llx",
              (unsigned long long)e.u.msr.value);
    if (expect_msr(0, &e, 0x6e0, true))
        CHECK(e.u.msr.value == 0x1122334455667788ull, "TSC deadline write 0x%llx",
              (unsigned long long)e.u.msr.value);
    if (expect_msr(0, &e, 0x4b564dfe, false))
        e.u.msr.gp = true;
    if (expect_msr(0, &e, 0x4b564dfe, true)) {
        CHECK(e.u.msr.value == 5, "refused write 0x%llx", (unsigned long long)e.u.msr.value);
        e.u.msr.gp = true;
    }
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    CHECK(h.nreports[0] == 12, "reports %u", h.nreports[0]);
    CHECK(report64_at(0, 0) == 0xa5a5000000000010ull, "x2APIC TPR read 0x%llx",
          (unsigned long long)report64_at(0, 0));
    CHECK(report64_at(0, 2) == 0x0123456789abcdefull, "unknown MSR read");
    CHECK(report64_at(0, 4) == 0xfee00d00ull, "APIC base read");
    CHECK(report64_at(0, 6) == 0xffff800000abc000ull, "KERNEL_GS_BASE stayed in the backend");
    CHECK(h.reports[0][8] == 0x6d000000 && h.reports[0][9] == 1, "#GP(0) on the refused read");
    CHECK(h.reports[0][10] == 0x6d000000 && h.reports[0][11] == 2, "#GP(0) on the refused write");
    harness_close(&h);
}

/* In-kernel irqchip: the local-APIC MSRs stay in the backend (x2APIC mode included), an
 * unknown MSR still exits. */
static void test_msr_exit_irqchip(void)
{
    struct hav_vm_config c = {.irqchip = HAV_IRQCHIP_KERNEL};
    if (!need_cap(HAV_CAP_MSR_EXIT, "HAV_CAP_MSR_EXIT") || open_or_fail("msrexit", &c, 1, 0, 0))
        return;
    harness_input(&h, 0, 1);
    struct hav_exit e;
    if (expect_msr(0, &e, 0x4b564dff, false))
        e.u.msr.value = 0x77;
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    CHECK(h.nreports[0] == 8, "reports %u", h.nreports[0]);
    CHECK(report64_at(0, 0) == 0xfee00900ull, "APIC base from the backend 0x%llx",
          (unsigned long long)report64_at(0, 0));
    CHECK(report64_at(0, 2) == 0xfee00d00ull, "x2APIC mode on 0x%llx",
          (unsigned long long)report64_at(0, 2));
    CHECK(report64_at(0, 4) == 0x30, "x2APIC TPR from the backend 0x%llx",
          (unsigned long long)report64_at(0, 4));
    CHECK(report64_at(0, 6) == 0x77, "unknown MSR answered by the harness");
    harness_close(&h);
}

/* HAV_CAP_MSR_EXIT masked: the VM still works, and what the backend does not handle is #GP. */
static void test_msr_exit_masked(void)
{
    if (open_or_fail("msrexit", NULL, 1, 0, HAV_CAP_MSR_EXIT))
        return;
    CHECK(!(hav_caps(h.b) & HAV_CAP_MSR_EXIT), "masked");
    harness_input(&h, 0, 2);
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    CHECK(h.nreports[0] == 4 && h.reports[0][0] == 0x6d000000 && h.reports[0][1] == 1 &&
              h.reports[0][2] == 0x6d000000 && h.reports[0][3] == 2,
          "two #GPs (reports %u: 0x%x 0x%x 0x%x 0x%x)", h.nreports[0], h.reports[0][0],
          h.reports[0][1], h.reports[0][2], h.reports[0][3]);
    harness_close(&h);
}

/* NMIs: delivered with interrupts off, ending a HLT; one queued during the handler waits for
 * its IRET, a third merges into it. The contract wants the held NMI right after the IRET. A
 * backend that cannot observe the IRET delivers it at the vCPU's next entry instead: the first
 * exit after the IRET (here the guest's HLT) then finds it still pending while NMIs are no
 * longer blocked, which is how this case recognises such a backend. Both forms are what the
 * contract allows; either way nothing may be lost, nested or duplicated. */
static void test_nmi(void)
{
    if (!need_cap(HAV_CAP_NMI, "HAV_CAP_NMI") || open_or_fail("nmi", NULL, 1, 0, 0))
        return;
    struct hav_exit e;
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(harness_is_out(&e, PORT_SYNC, 1), "guest ready (got %s)", harness_exit_name(e.reason));
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(e.reason == HAV_EXIT_HLT && !e.if_flag, "HLT with IF off (got %s, IF %d)",
          harness_exit_name(e.reason), e.if_flag);
    CHECK(hav_vcpu_inject_nmi(h.vcpu[0]) == 0, "inject NMI: %s", hav_last_error());
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(harness_is_out(&e, PORT_SYNC, 0x4e01), "in the first handler (got %s)",
          harness_exit_name(e.reason));
    CHECK(h.nreports[0] == 1 && h.reports[0][0] == 0x4e01, "handler 1 entered");
    CHECK(hav_vcpu_inject_nmi(h.vcpu[0]) == 0, "inject NMI 2: %s", hav_last_error());
    CHECK(hav_vcpu_inject_nmi(h.vcpu[0]) == 0, "inject NMI 3: %s", hav_last_error());
    struct hav_x86_state st;
    CHECK_EQ(hav_vcpu_get_state(h.vcpu[0], &st, HAV_X86_EVENTS), 0);
    CHECK(st.events.nmi_pending && st.events.nmi_masked,
          "inside the handler: one NMI pending, NMIs blocked (%d %d)", st.events.nmi_pending,
          st.events.nmi_masked);
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    if (e.reason == HAV_EXIT_HLT) {
        CHECK_EQ(hav_vcpu_get_state(h.vcpu[0], &st, HAV_X86_EVENTS), 0);
        bool late = st.events.nmi_pending && !st.events.nmi_masked;
        CHECK(late,
              "HLT after the IRET: the NMI is neither delivered nor held (pending %d, "
              "blocked %d)",
              st.events.nmi_pending, st.events.nmi_masked);
        printf("# backend %s: the held NMI waits for the next entry after the IRET\n",
               hav_backend_name(h.b));
        CHECK_EQ(harness_run(&h, 0, &e), 0);
    }
    CHECK(harness_is_out(&e, PORT_SYNC, 0x4e02), "in the second handler (got %s)",
          harness_exit_name(e.reason));
    CHECK(h.nreports[0] == 3 && h.reports[0][1] == 0x4e81 && h.reports[0][2] == 0x4e02,
          "the second NMI came after the first handler's IRET (reports %u: 0x%x 0x%x)",
          h.nreports[0], h.reports[0][1], h.reports[0][2]);
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    CHECK(h.nreports[0] == 4 && h.reports[0][3] == 0x4e82, "handler 2 left, no third NMI");
    harness_close(&h);
}

/* HLT without an in-kernel irqchip: the HLT is complete at the exit; the vCPU thread waits
 * for another thread's signal, then injects, and the guest's handler runs. Other threads
 * are refused the vCPU-thread calls. */
struct waker {
    int fd;
    int inject_irq, inject_nmi, set_cr8; /* what the vCPU-thread calls answered here */
};

static void *waker_main(void *arg)
{
    struct waker *w = arg;
    usleep(100000);
    w->inject_irq = hav_vcpu_inject_irq(h.vcpu[0], 0x30);
    w->inject_nmi = hav_vcpu_inject_nmi(h.vcpu[0]);
    w->set_cr8 = hav_vcpu_set_cr8(h.vcpu[0], 1);
    uint64_t one = 1;
    if (write(w->fd, &one, 8) != 8)
        w->fd = -1;
    return NULL;
}

static void test_hlt_wake(void)
{
    if (open_or_fail("irq", NULL, 1, 0, 0))
        return;
    harness_input(&h, 0, 1); /* one interrupt */
    harness_input(&h, 0, 0); /* no local APIC */
    struct hav_exit e;
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(harness_is_out(&e, PORT_SYNC, 1), "guest ready (got %s)", harness_exit_name(e.reason));
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(e.reason == HAV_EXIT_HLT, "HLT exit (got %s)", harness_exit_name(e.reason));
    CHECK(e.if_flag && e.irq_ready, "the guest halted ready for interrupts (IF %d, ready %d)",
          e.if_flag, e.irq_ready);
    struct hav_x86_state st;
    CHECK_EQ(hav_vcpu_get_state(h.vcpu[0], &st, HAV_X86_GPRS), 0);
    CHECK(st.gprs.rip > GUEST_LOAD && st.gprs.rip < GUEST_RAM_SIZE &&
              h.ram[st.gprs.rip - 1] == 0xf4,
          "RIP 0x%llx is just past the HLT", (unsigned long long)st.gprs.rip);

    struct waker w = {.fd = eventfd(0, EFD_CLOEXEC)};
    pthread_t th;
    pthread_create(&th, NULL, waker_main, &w);
    struct pollfd p = {.fd = w.fd, .events = POLLIN};
    CHECK(poll(&p, 1, 10000) == 1, "the other thread signalled");
    pthread_join(th, NULL);
    CHECK_EQ(w.inject_irq, -EPERM);
    CHECK_EQ(w.inject_nmi, -EPERM);
    CHECK_EQ(w.set_cr8, -EPERM);
    CHECK(hav_vcpu_irq_ready(h.vcpu[0]), "still ready after the wait");
    CHECK(hav_vcpu_inject_irq(h.vcpu[0], 0x32) == 0, "inject: %s", hav_last_error());
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    CHECK(h.nreports[0] == 1 && h.reports[0][0] == 0x32, "handler 0x32 ran (reports %u)",
          h.nreports[0]);
    close(w.fd);
    harness_close(&h);
}

/* CR8 in every exit record, and taken by the guest from hav_vcpu_set_cr8 or the CRS group. */
static void test_cr8(void)
{
    if (open_or_fail("cr8", NULL, 1, 0, 0))
        return;
    struct hav_exit e;
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(harness_is_out(&e, PORT_SYNC, 1) && e.cr8 == 5, "CR8 5 at the exit (got %s, %u)",
          harness_exit_name(e.reason), e.cr8);
    CHECK(hav_vcpu_set_cr8(h.vcpu[0], 9) == 0, "set_cr8: %s", hav_last_error());
    struct hav_x86_state st;
    CHECK_EQ(hav_vcpu_get_state(h.vcpu[0], &st, HAV_X86_CRS), 0);
    CHECK_EQ(st.crs.cr8, 9);
    CHECK_EQ(hav_vcpu_set_cr8(h.vcpu[0], 16), -EINVAL);
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(harness_is_out(&e, PORT_SYNC, 2) && e.cr8 == 9 && e.if_flag,
          "CR8 9 and IF on (got %s, %u, %d)", harness_exit_name(e.reason), e.cr8, e.if_flag);
    CHECK(h.nreports[0] == 1 && h.reports[0][0] == 9, "the guest read CR8 9");
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(harness_is_out(&e, PORT_SYNC, 3) && !e.if_flag && !e.irq_ready, "IF off (got %s, %d)",
          harness_exit_name(e.reason), e.if_flag);
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(harness_is_out(&e, PORT_SYNC, 4) && e.cr8 == 12, "CR8 12 (got %u)", e.cr8);
    CHECK_EQ(hav_vcpu_get_state(h.vcpu[0], &st, HAV_X86_CRS), 0);
    CHECK_EQ(st.crs.cr8, 12);
    st.crs.cr8 = 3;
    CHECK_EQ(hav_vcpu_set_state(h.vcpu[0], &st, HAV_X86_CRS), 0);
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    CHECK(h.nreports[0] == 2 && h.reports[0][1] == 3, "the guest read CR8 3 set with CRS");
    harness_close(&h);
}

/* The VMM starts APs itself: vCPUs 1 and 2 are created in the reset state, do not run until
 * the harness gives them the STARTUP state, and then run the real-mode trampoline. */
static void start_ap(unsigned ap, uint8_t vector)
{
    struct hav_x86_state st;
    CHECK_EQ(hav_vcpu_get_state(h.vcpu[ap], &st, HAV_X86_GPRS | HAV_X86_SEGS | HAV_X86_CRS), 0);
    uint64_t apic_base = st.crs.apic_base;
    st.gprs.rbx = 0x5a5a;
    CHECK_EQ(hav_x86_sipi_state(&st, vector), 0);
    CHECK(st.segs.cs.selector == vector << 8 && st.segs.cs.base == (uint64_t)vector << 12 &&
              st.gprs.rip == 0 && st.gprs.rbx == 0 && st.crs.cr0 == 0x60000010 &&
              st.crs.apic_base == apic_base,
          "STARTUP state for vector 0x%x", vector);
    CHECK(hav_vcpu_set_state(h.vcpu[ap], &st, HAV_X86_GPRS | HAV_X86_SEGS | HAV_X86_CRS) == 0,
          "set STARTUP state: %s", hav_last_error());
    CHECK_EQ(harness_run_to_done(&h, ap), 0);
}

static void test_ap_start(void)
{
    if (open_or_fail("sipi", NULL, 1, 0, 0))
        return;
    for (unsigned i = 1; i < 3; i++) {
        CHECK(hav_vcpu_create(h.vm, i, &h.vcpu[i]) == 0, "vCPU %u: %s", i, hav_last_error());
        if (!h.vcpu[i]) {
            harness_close(&h);
            return;
        }
        h.nvcpus = i + 1;
        struct hav_x86_state st;
        CHECK_EQ(hav_vcpu_get_state(h.vcpu[i], &st, HAV_X86_GPRS | HAV_X86_SEGS | HAV_X86_CRS), 0);
        CHECK(st.gprs.rip == 0xfff0 && st.segs.cs.selector == 0xf000 &&
                  st.segs.cs.base == 0xffff0000 && !(st.crs.cr0 & 1),
              "vCPU %u in the reset state (CS 0x%x:0x%llx)", i, st.segs.cs.selector,
              (unsigned long long)st.gprs.rip);
    }
    volatile uint32_t *ticket = (volatile uint32_t *)(h.ram + 0x7000);
    struct hav_exit e;
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(harness_is_out(&e, PORT_SYNC, (2 << 16) | 0x4608), "STARTUP for vCPU 2 (got %s)",
          harness_exit_name(e.reason));
    CHECK(*ticket == 0 && h.nreports[1] == 0 && h.nreports[2] == 0, "no AP has run yet");
    start_ap(2, 0x08);
    CHECK_EQ(harness_run(&h, 0, &e), 0);
    CHECK(harness_is_out(&e, PORT_SYNC, (1 << 16) | 0x4609), "STARTUP for vCPU 1 (got %s)",
          harness_exit_name(e.reason));
    CHECK(h.nreports[1] == 0, "vCPU 1 still parked");
    start_ap(1, 0x09);
    CHECK_EQ(harness_run_to_done(&h, 0), 0);
    uint32_t ip = h.reports[0][0];
    CHECK(h.nreports[0] == 3 && ip > 0 && ip < 0x100 && h.reports[0][1] == 1 &&
              h.reports[0][2] == 2,
          "BSP saw tickets 1 then 2 (reports %u)", h.nreports[0]);
    CHECK(h.nreports[2] == 3 && h.reports[2][0] == 0 && h.reports[2][1] == 0x0800 &&
              h.reports[2][2] == ip,
          "vCPU 2 took ticket 0 at 0800:0 (%u reports: 0x%x 0x%x 0x%x, IP want 0x%x)",
          h.nreports[2], h.reports[2][0], h.reports[2][1], h.reports[2][2], ip);
    CHECK(h.nreports[1] == 3 && h.reports[1][0] == 1 && h.reports[1][1] == 0x0900 &&
              h.reports[1][2] == ip,
          "vCPU 1 took ticket 1 at 0900:0 (%u reports: 0x%x 0x%x 0x%x)", h.nreports[1],
          h.reports[1][0], h.reports[1][1], h.reports[1][2]);
    harness_close(&h);
}

/* Bad arguments to the user-space-platform calls are refused with a message, before any
 * backend sees them. */
static void test_platform_errors(void)
{
    struct hav_exit e;
    CHECK_EQ(hav_vcpu_run(NULL, &e), -EINVAL);
    CHECK(strstr(hav_last_error(), "NULL") != NULL, "message: %s", hav_last_error());
    CHECK_EQ(hav_vcpu_inject_nmi(NULL), -EINVAL);
    CHECK_EQ(hav_vcpu_inject_irq(NULL, 0x30), -EINVAL);
    CHECK_EQ(hav_vcpu_set_cr8(NULL, 1), -EINVAL);
    CHECK_EQ(hav_x86_sipi_state(NULL, 8), -EINVAL);
    CHECK(strstr(hav_last_error(), "hav_x86_sipi_state") != NULL, "message: %s", hav_last_error());
    struct hav_x86_state st;
    CHECK_EQ(hav_vcpu_get_state(NULL, &st, HAV_X86_GPRS), -EINVAL);
    CHECK_EQ(hav_vcpu_set_state(NULL, &st, HAV_X86_GPRS), -EINVAL);

    struct hav_vm_config c = {.irqchip = HAV_IRQCHIP_KERNEL};
    if (open_or_fail("hlt", &c, 1, 0, 0))
        return;
    CHECK_EQ(hav_vcpu_run(h.vcpu[0], NULL), -EINVAL);
    CHECK_EQ(hav_vcpu_get_state(h.vcpu[0], NULL, HAV_X86_GPRS), -EINVAL);
    CHECK_EQ(hav_vcpu_set_cpuid(h.vcpu[0], NULL, 3), -EINVAL);
    CHECK(strstr(hav_last_error(), "entries") != NULL, "message: %s", hav_last_error());
    CHECK_EQ(hav_vcpu_inject_irq(h.vcpu[0], 0x30), -EINVAL);
    CHECK(strstr(hav_last_error(), "in-kernel irqchip") != NULL, "message: %s", hav_last_error());
    CHECK_EQ(hav_vcpu_inject_nmi(h.vcpu[0]), -EINVAL);
    CHECK(strstr(hav_last_error(), "NMI") != NULL, "message: %s", hav_last_error());
    CHECK_EQ(hav_vcpu_set_cr8(h.vcpu[0], 1), -EINVAL);
    CHECK(strstr(hav_last_error(), "TPR") != NULL, "message: %s", hav_last_error());
    harness_close(&h);

    if (open_or_fail("hlt", NULL, 1, 0, HAV_CAP_NMI))
        return;
    CHECK_EQ(hav_vcpu_inject_nmi(h.vcpu[0]), -ENOTSUP);
    CHECK(strstr(hav_last_error(), "NMI") != NULL, "message: %s", hav_last_error());
    CHECK_EQ(hav_vcpu_set_cr8(h.vcpu[0], 200), -EINVAL);
    CHECK(strstr(hav_last_error(), "200") != NULL, "message: %s", hav_last_error());
    harness_close(&h);
}

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    {"pio", test_pio},
    {"mmio", test_mmio},
    {"hlt", test_hlt},
    {"cpuid", test_cpuid},
    {"msr", test_msr},
    {"hypercall", test_hypercall},
    {"triple-fault", test_triple_fault},
    {"readonly", test_readonly},
    {"dirty-log", test_dirty_log},
    {"irq-inject", test_irq_inject},
    {"irqchip", test_irqchip},
    {"irqchip-fallback", test_irqchip_fallback},
    {"io-notifier", test_io_notifier},
    {"io-notifier-fallback", test_io_notifier_fallback},
    {"smp-kick", test_smp_kick},
    {"state", test_state},
    {"memory-errors", test_memory_errors},
    {"detach", test_detach},
    {"backend-missing", test_backend_missing},
    {"msr-exit", test_msr_exit},
    {"msr-exit-irqchip", test_msr_exit_irqchip},
    {"msr-exit-masked", test_msr_exit_masked},
    {"nmi", test_nmi},
    {"hlt-wake", test_hlt_wake},
    {"cr8", test_cr8},
    {"ap-start", test_ap_start},
    {"platform-errors", test_platform_errors},
};

static void on_timeout(int sig)
{
    (void)sig;
    static const char msg[] = "not ok - timed out: a guest or a vCPU thread hangs\n";
    if (write(1, msg, sizeof(msg) - 1) < 0)
        _exit(3);
    _exit(1);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* A lost interrupt or kick would otherwise hang the test until meson's timeout. */
    signal(SIGALRM, on_timeout);
    alarm(60);
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        if (argc > 1 && strcmp(argv[1], tests[i].name))
            continue;
        int before = check_failures;
        check_skip_reason[0] = 0;
        tests[i].fn();
        printf("%s %d - %s%s%s\n", check_failures == before ? "ok" : "not ok", ++check_cases,
               tests[i].name, check_skip_reason[0] ? " # SKIP " : "", check_skip_reason);
    }
    if (!check_cases) {
        printf("# no test named %s\n", argc > 1 ? argv[1] : "?");
        return 2;
    }
    return check_done();
}
