/* SPDX-License-Identifier: MIT */
/* revirter's own PC platform (--irqchip=user): the models of src/dev wired into a machine, and
 * the vCPU side of it: interrupt delivery before each run, HLT, MSRs, AP start-up. */
#include "pc_platform.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "board/pc/acpi_tables.h"
#include "dev/apic_bus.h"
#include "dev/apic_msg.h"
#include "dev/ioapic.h"
#include "dev/lapic.h"
#include "dev/pic.h"
#include "dev/pit.h"
#include "pc_internal.h"
#include "sys/ratelimit.h"
#include "sys/vtimer.h"

/* MSI vectors the virtio functions may bind (MSI-X table entries of every device). */
#define MSI_SLOTS 512u

enum cpu_run_state { CPU_PARKED, CPU_RUNNING, CPU_HALTED };

struct pc_cpu {
    struct pc_platform *p;
    unsigned index;
    struct lapic *lapic;
    struct hav_vcpu *vcpu;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    enum cpu_run_state state;
    bool init_seen;  /* INIT received: the next STARTUP starts it (SDM vol. 3A §8.4.4.1) */
    int sipi_vector; /* -1 none */
    bool nmi;        /* taken from the local APIC, not yet injected */
    bool extint;     /* LINT0 in ExtINT mode is asserted: the 8259 has the vector */
    bool window_asked;
    uint8_t cr8; /* as last given to / seen from the vCPU */
};

struct msi_slot {
    struct pc_platform *p;
    int fd; /* -1: free */
    uint64_t address;
    uint32_t data;
};

struct pc_platform {
    struct pc *pc;
    struct vtimer_service *timers;
    struct pic *pic;
    struct ioapic *ioapic;
    struct pit *pit;
    unsigned ncpus;
    struct pc_cpu *cpu;
    struct lapic **lapics; /* the APIC bus: lapics[i] is vCPU i's */
    atomic_bool stopping;
    /* MSI: eventfds read by one thread, each delivering its slot's message. */
    pthread_mutex_t msi_lock;
    struct msi_slot msi[MSI_SLOTS];
    int epfd, stopfd;
    pthread_t msi_thread;
    bool msi_started;
};

/* Which vCPU this thread runs: the local APIC page and the x2APIC MSRs are per CPU, and the
 * bus hands the access to the page's one handler. */
static _Thread_local int current_cpu = -1;

static struct ratelimit platform_log = RATELIMIT_INIT;

/* ---------------------------------------------------------------- wiring between models */

/* A local APIC has something new to deliver: wake the vCPU if it waits in HLT (or, as an AP,
 * for its start), else make its run return so pre_run delivers it. */
static void cpu_kick(void *opaque, unsigned index)
{
    struct pc_platform *p = opaque;
    if (index >= p->ncpus)
        return;
    struct pc_cpu *c = &p->cpu[index];
    pthread_mutex_lock(&c->lock);
    enum cpu_run_state st = c->state;
    pthread_cond_signal(&c->wake);
    pthread_mutex_unlock(&c->lock);
    if (st == CPU_RUNNING && c->vcpu)
        hav_vcpu_kick(c->vcpu);
}

static void deliver(struct pc_platform *p, const struct apic_msg *m, const struct lapic *from)
{
    apic_bus_deliver(p->lapics, p->ncpus, from, m);
}

static void ioapic_deliver(void *opaque, const struct apic_msg *m)
{
    deliver(opaque, m, NULL);
}

static void lapic_send_ipi(void *opaque, const struct lapic *from, const struct apic_msg *m)
{
    deliver(opaque, m, from);
}

static void lapic_eoi_broadcast(void *opaque, uint8_t vector)
{
    struct pc_platform *p = opaque;
    ioapic_eoi(p->ioapic, vector);
}

/* The 8259's INT goes to LINT0 of every local APIC; only one programmed for ExtINT (the BSP's,
 * in virtual-wire mode, MP spec §3.6.2.2) takes it. */
static void pic_intr_changed(void *opaque, bool level)
{
    struct pc_platform *p = opaque;
    for (unsigned i = 0; i < p->ncpus; i++)
        lapic_set_lint(p->cpu[i].lapic, 0, level);
}

void pc_platform_set_irq(struct pc_platform *p, unsigned gsi, bool level)
{
    if (gsi < 16)
        pic_set_irq(p->pic, gsi, level);
    if (gsi < ACPI_IOAPIC_PINS)
        ioapic_set_irq(p->ioapic, gsi, level);
}

static void lapic_page_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
                              bool write)
{
    struct pc_platform *p = opaque;
    if (current_cpu < 0 || (unsigned)current_cpu >= p->ncpus) {
        /* Not from a vCPU (nothing else reaches this page): reads as on an absent device. */
        if (!write)
            memset(data, 0xff, len);
        return;
    }
    lapic_mmio_access(p->cpu[current_cpu].lapic, offset, data, len, write);
}

/* ---------------------------------------------------------------- MSI */

static void *msi_main(void *arg)
{
    struct pc_platform *p = arg;
    struct epoll_event ev[16];
    for (;;) {
        int n = epoll_wait(p->epfd, ev, 16, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == NULL)
                return NULL; /* stopfd */
            struct msi_slot *s = ev[i].data.ptr;
            uint64_t count;
            struct apic_msg m;
            pthread_mutex_lock(&p->msi_lock);
            bool ok = s->fd >= 0 && read(s->fd, &count, sizeof(count)) == sizeof(count) &&
                      apic_msg_from_msi(s->address, s->data, &m);
            pthread_mutex_unlock(&p->msi_lock);
            /* Several writes since the last read are one interrupt, as an edge is. */
            if (ok)
                deliver(p, &m, NULL);
        }
    }
    return NULL;
}

int pc_platform_msi_bind(struct pc_platform *p, int fd)
{
    pthread_mutex_lock(&p->msi_lock);
    int r = -ENOSPC;
    for (unsigned i = 0; i < MSI_SLOTS; i++) {
        struct msi_slot *s = &p->msi[i];
        if (s->fd >= 0)
            continue;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
        /* Routed nowhere until the guest programs it (0: not an APIC message address). */
        *s = (struct msi_slot){.p = p, .fd = fd};
        if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            r = -errno;
            s->fd = -1;
        } else {
            r = (int)i;
        }
        break;
    }
    pthread_mutex_unlock(&p->msi_lock);
    return r;
}

int pc_platform_msi_route(struct pc_platform *p, int handle, uint64_t address, uint32_t data)
{
    if (handle < 0 || (unsigned)handle >= MSI_SLOTS)
        return -EINVAL;
    pthread_mutex_lock(&p->msi_lock);
    p->msi[handle].address = address;
    p->msi[handle].data = data;
    pthread_mutex_unlock(&p->msi_lock);
    return 0;
}

void pc_platform_msi_unbind(struct pc_platform *p, int handle, int fd)
{
    if (handle < 0 || (unsigned)handle >= MSI_SLOTS)
        return;
    pthread_mutex_lock(&p->msi_lock);
    struct msi_slot *s = &p->msi[handle];
    if (s->fd == fd) {
        epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, NULL);
        s->fd = -1;
    }
    pthread_mutex_unlock(&p->msi_lock);
}

/* ---------------------------------------------------------------- vCPUs */

void pc_platform_vcpu_bind(struct pc_platform *p, unsigned index, struct hav_vcpu *vcpu)
{
    struct pc_cpu *c = &p->cpu[index];
    current_cpu = (int)index;
    pthread_mutex_lock(&c->lock);
    c->vcpu = vcpu;
    pthread_mutex_unlock(&c->lock);
}

/* Move what the local APIC has pending into the CPU's own state (under c->lock): INIT and
 * STARTUP drive the start-up (SDM vol. 3A §8.4.4.1: INIT resets the APIC and makes the CPU
 * wait for STARTUP; a STARTUP at any other time is ignored), NMI waits for injection. */
static void take_events(struct pc_cpu *c)
{
    uint8_t sipi = 0;
    unsigned ev = lapic_take_events(c->lapic, &sipi);
    if (ev & LAPIC_EV_INIT) {
        lapic_reset(c->lapic, c->index == 0);
        c->init_seen = true;
        c->sipi_vector = -1;
        c->nmi = false;
    }
    if ((ev & LAPIC_EV_SIPI) && c->init_seen && c->sipi_vector < 0)
        c->sipi_vector = sipi;
    if (ev & LAPIC_EV_NMI)
        c->nmi = true;
    c->extint = (ev & LAPIC_EV_EXTINT) != 0;
}

/* Park until INIT then STARTUP, and start at the STARTUP vector in real mode. */
static bool wait_for_startup(struct pc_platform *p, struct pc_cpu *c)
{
    pthread_mutex_lock(&c->lock);
    c->state = CPU_PARKED;
    for (;;) {
        take_events(c);
        if (c->sipi_vector >= 0 || atomic_load(&p->stopping))
            break;
        pthread_cond_wait(&c->wake, &c->lock);
    }
    int vector = c->sipi_vector;
    c->sipi_vector = -1;
    c->init_seen = false;
    c->state = CPU_RUNNING;
    pthread_mutex_unlock(&c->lock);
    if (vector < 0)
        return false;
    struct hav_x86_state *st = calloc(1, sizeof(*st));
    int r = st ? hav_x86_sipi_state(st, (uint8_t)vector) : -ENOMEM;
    if (r == 0)
        r = hav_vcpu_set_state(c->vcpu, st, HAV_X86_GPRS | HAV_X86_SEGS | HAV_X86_CRS);
    free(st);
    if (r < 0) {
        pc_error("vCPU %u: start at vector 0x%02x: %s", c->index, vector, hav_last_error());
        return false;
    }
    return true;
}

bool pc_platform_vcpu_wait_start(struct pc_platform *p, unsigned index)
{
    struct pc_cpu *c = &p->cpu[index];
    if (index == 0) {
        c->state = CPU_RUNNING;
        return true;
    }
    return wait_for_startup(p, c);
}

void pc_platform_vcpu_pre_run(struct pc_platform *p, unsigned index)
{
    struct pc_cpu *c = &p->cpu[index];
    struct hav_vcpu *v = c->vcpu;
    pthread_mutex_lock(&c->lock);
    take_events(c);
    bool restart = c->init_seen && index != 0;
    bool nmi = c->nmi;
    c->nmi = false;
    bool extint = c->extint;
    pthread_mutex_unlock(&c->lock);
    if (restart && !wait_for_startup(p, c))
        return; /* stopping: the run returns at once (kicked) and the loop ends */
    /* TPR: the guest may have written it through the page; the vCPU's CR8 follows. */
    uint8_t cr8 = lapic_get_tpr(c->lapic);
    if (cr8 != c->cr8 && hav_vcpu_set_cr8(v, cr8) == 0)
        c->cr8 = cr8;
    if (nmi && hav_vcpu_inject_nmi(v) < 0)
        ratelimit_log(&platform_log, "revirter: vCPU %u: NMI: %s", index, hav_last_error());
    int vector = lapic_next_irq(c->lapic);
    if (!extint && vector < 0) {
        if (c->window_asked) {
            hav_vcpu_request_irq_window(v, false);
            c->window_asked = false;
        }
        return;
    }
    if (!hav_vcpu_irq_ready(v)) {
        /* IF clear, an interrupt shadow, or one already queued: come back when it can. */
        if (!c->window_asked) {
            hav_vcpu_request_irq_window(v, true);
            c->window_asked = true;
        }
        return;
    }
    if (extint) {
        /* The 8259 answers the INTA cycle (8259A datasheet, "interrupt sequence"); its
         * requests rank below the local APIC's own vectors here, as the 8259 sits on LINT0. */
        if (vector < 0)
            vector = pic_ack(p->pic);
        else
            lapic_ack_irq(c->lapic, (uint8_t)vector);
    } else {
        lapic_ack_irq(c->lapic, (uint8_t)vector);
    }
    if (hav_vcpu_inject_irq(v, (uint8_t)vector) < 0)
        ratelimit_log(&platform_log, "revirter: vCPU %u: interrupt 0x%02x: %s", index, vector,
                      hav_last_error());
}

/* HLT: sleep until something for this CPU ends the halt (SDM vol. 3A §8.4.4: an interrupt it
 * can take, NMI, INIT). With RFLAGS.IF clear only NMI and INIT do: an interrupt stays pending
 * in the local APIC. */
static void halt(struct pc_platform *p, struct pc_cpu *c, bool if_flag)
{
    pthread_mutex_lock(&c->lock);
    c->state = CPU_HALTED;
    for (;;) {
        take_events(c);
        if (atomic_load(&p->stopping) || c->nmi || c->init_seen ||
            (if_flag && (c->extint || lapic_next_irq(c->lapic) >= 0)))
            break;
        pthread_cond_wait(&c->wake, &c->lock);
    }
    c->state = CPU_RUNNING;
    pthread_mutex_unlock(&c->lock);
}

static void msr(struct pc_platform *p, struct pc_cpu *c, struct hav_exit *e)
{
    (void)p;
    int r;
    if (e->u.msr.write) {
        r = lapic_msr_write(c->lapic, e->u.msr.index, e->u.msr.value);
    } else {
        uint64_t v = 0;
        r = lapic_msr_read(c->lapic, e->u.msr.index, &v);
        e->u.msr.value = v;
    }
    /* Anything the local APIC does not own is refused with #GP, as KVM does for an MSR it does
     * not know: Linux probes optional MSRs with rdmsr_safe and copes. */
    e->u.msr.gp = r < 0;
}

void pc_platform_vcpu_exit(struct pc_platform *p, unsigned index, struct hav_exit *e)
{
    struct pc_cpu *c = &p->cpu[index];
    if (e->cr8 != c->cr8) {
        c->cr8 = e->cr8;
        lapic_set_tpr(c->lapic, e->cr8);
    }
    switch (e->reason) {
    case HAV_EXIT_MSR:
        msr(p, c, e);
        break;
    case HAV_EXIT_HLT:
        halt(p, c, e->if_flag);
        break;
    default:
        break;
    }
}

void pc_platform_stop(struct pc_platform *p)
{
    atomic_store(&p->stopping, true);
    for (unsigned i = 0; i < p->ncpus; i++) {
        struct pc_cpu *c = &p->cpu[i];
        pthread_mutex_lock(&c->lock);
        pthread_cond_broadcast(&c->wake);
        pthread_mutex_unlock(&c->lock);
    }
}

/* ---------------------------------------------------------------- set-up */

int pc_platform_create(struct pc *pc, unsigned cpus, struct pc_platform **out)
{
    struct pc_platform *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->pc = pc;
    p->ncpus = cpus;
    p->epfd = p->stopfd = -1;
    pthread_mutex_init(&p->msi_lock, NULL);
    for (unsigned i = 0; i < MSI_SLOTS; i++)
        p->msi[i].fd = -1;
    int r;
    if (!(p->cpu = calloc(cpus, sizeof(*p->cpu)))) {
        r = -ENOMEM;
        goto fail;
    }
    for (unsigned i = 0; i < cpus; i++) {
        struct pc_cpu *c = &p->cpu[i];
        *c = (struct pc_cpu){.p = p, .index = i, .sipi_vector = -1, .state = CPU_PARKED};
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->wake, NULL);
    }
    if ((r = vtimer_service_create(&p->timers)) < 0)
        goto fail;
    const struct timer_ops *tops = vtimer_service_ops(p->timers);
    if (!(p->lapics = calloc(cpus, sizeof(*p->lapics)))) {
        r = -ENOMEM;
        goto fail;
    }
    for (unsigned i = 0; i < cpus; i++) {
        struct lapic_config lc = {
            .cpu = i,
            .apic_id = i,
            .bsp = i == 0,
            .x2apic = true, /* CPUID.1:ECX.x2APIC as the backend reports it on x86-64 hosts */
            .bus_hz = LAPIC_BUS_HZ,
            .timer = tops,
            .opaque = p,
            .kick = cpu_kick,
            .send_ipi = lapic_send_ipi,
            .eoi_broadcast = lapic_eoi_broadcast,
        };
        if ((r = lapic_create(&lc, &p->cpu[i].lapic)) < 0)
            goto fail;
        p->lapics[i] = p->cpu[i].lapic;
    }
    if ((r = bus_register(&pc->mmio, ACPI_LAPIC_ADDR, 0x1000, lapic_page_access, p, "local APIC")) <
        0)
        goto fail;
    struct ioapic_config ic = {.id = (uint8_t)cpus, .deliver = ioapic_deliver, .opaque = p};
    if ((r = ioapic_create(&pc->mmio, ACPI_IOAPIC_ADDR, &ic, &p->ioapic)) < 0)
        goto fail;
    struct pic_config pcfg = {.intr = pic_intr_changed, .opaque = p};
    if ((r = pic_create(&pc->pio, &pcfg, &p->pic)) < 0)
        goto fail;
    struct pit_config tc = {.timer = tops, .irq0 = {pc_set_irq, pc, PIT_IRQ}};
    if ((r = pit_create(&pc->pio, &tc, &p->pit)) < 0)
        goto fail;
    if ((p->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0 || (p->stopfd = eventfd(0, EFD_CLOEXEC)) < 0) {
        r = -errno;
        goto fail;
    }
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->stopfd, &sev) < 0) {
        r = -errno;
        goto fail;
    }
    if ((r = -pthread_create(&p->msi_thread, NULL, msi_main, p)) < 0)
        goto fail;
    p->msi_started = true;
    *out = p;
    return 0;
fail:
    pc_platform_destroy(p);
    return r;
}

void pc_platform_destroy(struct pc_platform *p)
{
    if (!p)
        return;
    if (p->msi_started) {
        uint64_t one = 1;
        if (write(p->stopfd, &one, sizeof(one)) != sizeof(one))
            pthread_cancel(p->msi_thread);
        pthread_join(p->msi_thread, NULL);
    }
    if (p->epfd >= 0)
        close(p->epfd);
    if (p->stopfd >= 0)
        close(p->stopfd);
    /* The timer callbacks of the PIT and the local APICs end with their models. */
    pit_destroy(p->pit);
    pic_destroy(p->pic);
    ioapic_destroy(p->ioapic);
    if (p->pc && p->cpu)
        bus_unregister(&p->pc->mmio, ACPI_LAPIC_ADDR, p);
    for (unsigned i = 0; p->cpu && i < p->ncpus; i++) {
        lapic_destroy(p->cpu[i].lapic);
        pthread_mutex_destroy(&p->cpu[i].lock);
        pthread_cond_destroy(&p->cpu[i].wake);
    }
    free(p->lapics);
    vtimer_service_destroy(p->timers);
    pthread_mutex_destroy(&p->msi_lock);
    free(p->cpu);
    free(p);
}
