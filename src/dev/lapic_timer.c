/* SPDX-License-Identifier: MIT */
/* The local APIC timer (Intel SDM vol. 3A §11.5.4): one-shot, periodic and TSC-deadline modes
 * on one vtimer, the count computed from the clock rather than ticked. */
#include "lapic_internal.h"

#define NS_PER_S 1000000000ull

/* a * b / c rounded down or up, saturated: the operands are at most 64 bits and c is at most
 * 2^40 times a small factor, so the 128-bit intermediate cannot overflow. */
static uint64_t muldiv(uint64_t a, uint64_t b, uint64_t c, bool up)
{
    unsigned __int128 p = (unsigned __int128)a * b;
    p = up ? (p + c - 1) / c : p / c;
    return p > UINT64_MAX ? UINT64_MAX : (uint64_t)p;
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Divide configuration (§11.5.4, Figure 11-10): bits 0, 1 and 3; 111b is divide by 1. */
static uint64_t divisor(const struct lapic *l)
{
    uint32_t v = (l->dcr & 3) | ((l->dcr >> 1) & 4);
    return v == 7 ? 1 : 2ull << v;
}

static uint64_t now_ns(const struct lapic *l)
{
    return l->cfg.timer->now(l->cfg.timer->opaque);
}

static uint64_t ticks_to_ns(const struct lapic *l, uint64_t ticks)
{
    return muldiv(ticks, NS_PER_S * divisor(l), l->cfg.bus_hz, true);
}

static uint64_t ns_to_ticks(const struct lapic *l, uint64_t ns)
{
    return muldiv(ns, l->cfg.bus_hz, NS_PER_S * divisor(l), false);
}

/* The reserved mode 11b counts like one-shot (period_end and current_at test for periodic and
 * TSC deadline only). */
static unsigned mode(const struct lapic *l)
{
    return TIMER_MODE(l->lvt[LVT_TIMER]);
}

static void arm(struct lapic *l, uint64_t due)
{
    l->armed = true;
    l->timer_due = due;
    l->cfg.timer->arm(l->cfg.timer->opaque, l->vt, due);
}

static void disarm(struct lapic *l)
{
    if (l->armed)
        l->cfg.timer->cancel(l->cfg.timer->opaque, l->vt);
    l->armed = false;
}

/* The end of the k-th period after timer_start. Computed from the start and the programmed
 * count, never from the previous deadline, so rounding to nanoseconds never accumulates: a
 * periodic timer does not drift however long it runs. k only grows as the clock passes the
 * deadlines, so k * count stays within elapsed ticks and the product within 128 bits. */
static uint64_t period_end(const struct lapic *l, uint64_t k)
{
    uint64_t one = ticks_to_ns(l, l->timer_init);
    if (mode(l) != TIMER_PERIODIC)
        return sat_add(l->timer_start, one);
    if (one < LAPIC_MIN_PERIOD_NS)
        return sat_add(l->timer_start, muldiv(k, LAPIC_MIN_PERIOD_NS, 1, false));
    unsigned __int128 num = (unsigned __int128)k * l->timer_init * (NS_PER_S * divisor(l));
    unsigned __int128 q = (num + l->cfg.bus_hz - 1) / l->cfg.bus_hz;
    return sat_add(l->timer_start, q > UINT64_MAX ? UINT64_MAX : (uint64_t)q);
}

/* Periods completed by now (at least those the deadlines say). */
static uint64_t periods_at(const struct lapic *l, uint64_t now)
{
    uint64_t elapsed = now > l->timer_start ? now - l->timer_start : 0;
    if (ticks_to_ns(l, l->timer_init) < LAPIC_MIN_PERIOD_NS)
        return elapsed / LAPIC_MIN_PERIOD_NS;
    return ns_to_ticks(l, elapsed) / l->timer_init;
}

void lapic_timer_stop(struct lapic *l)
{
    disarm(l);
    l->timer_running = false;
}

static void start(struct lapic *l, uint64_t now)
{
    l->timer_start = now;
    l->timer_n = 0;
    l->timer_running = true;
    arm(l, period_end(l, 1));
}

static uint32_t current_at(const struct lapic *l, uint64_t now)
{
    if (!l->timer_running || mode(l) == TIMER_TSC_DEADLINE)
        return 0;
    uint64_t t = ns_to_ticks(l, now > l->timer_start ? now - l->timer_start : 0);
    if (mode(l) == TIMER_PERIODIC)
        return l->timer_init - (uint32_t)(t % l->timer_init);
    return t >= l->timer_init ? 0 : l->timer_init - (uint32_t)t;
}

uint32_t lapic_timer_current(struct lapic *l)
{
    return current_at(l, now_ns(l));
}

/* Keep counting from cur after the rate or the mode changed: the count was loaded with
 * timer_init as long ago as the new rate needs to come down to cur. */
static void rebase(struct lapic *l, uint64_t now, uint32_t cur)
{
    uint64_t back = ticks_to_ns(l, l->timer_init - cur);
    disarm(l);
    start(l, now > back ? now - back : 0);
}

void lapic_timer_write_lvt(struct lapic *l, uint32_t v)
{
    bool was_tsc = mode(l) == TIMER_TSC_DEADLINE, is_tsc = TIMER_MODE(v) == TIMER_TSC_DEADLINE;
    if (was_tsc != is_tsc) {
        /* §11.5.4.1: switching to or from TSC-deadline mode disarms the timer. */
        lapic_timer_stop(l);
        l->timer_init = 0;
        l->tsc_deadline = 0;
        l->lvt[LVT_TIMER] = v;
        return;
    }
    if (l->timer_running && TIMER_MODE(v) != mode(l)) {
        uint64_t now = now_ns(l);
        uint32_t cur = current_at(l, now);
        l->lvt[LVT_TIMER] = v;
        rebase(l, now, cur);
        return;
    }
    l->lvt[LVT_TIMER] = v;
}

/* §11.5.4: writing the initial count (re)starts the count; 0 stops it. Ignored in
 * TSC-deadline mode. */
void lapic_timer_write_init(struct lapic *l, uint32_t v)
{
    if (mode(l) == TIMER_TSC_DEADLINE)
        return;
    lapic_timer_stop(l);
    l->timer_init = v;
    if (v)
        start(l, now_ns(l));
}

void lapic_timer_write_dcr(struct lapic *l, uint32_t v)
{
    if (!l->timer_running) {
        l->dcr = v & 0xb;
        return;
    }
    uint64_t now = now_ns(l);
    uint32_t cur = current_at(l, now);
    l->dcr = v & 0xb;
    rebase(l, now, cur);
}

static uint64_t guest_tsc(const struct lapic *l, uint64_t now)
{
    if (l->cfg.guest_tsc)
        return l->cfg.guest_tsc(l->cfg.opaque, now);
    return muldiv(now, l->cfg.tsc_hz, NS_PER_S, false);
}

/* IA32_TSC_DEADLINE (§11.5.4.1): ignored outside TSC-deadline mode; 0 disarms; a deadline
 * already passed fires at once. */
void lapic_timer_write_deadline(struct lapic *l, uint64_t tsc)
{
    if (mode(l) != TIMER_TSC_DEADLINE)
        return;
    disarm(l);
    l->tsc_deadline = tsc;
    if (!tsc)
        return;
    uint64_t now = now_ns(l), g = guest_tsc(l, now);
    arm(l, tsc <= g ? now : sat_add(now, muldiv(tsc - g, NS_PER_S, l->cfg.tsc_hz, true)));
}

void lapic_timer_fire(void *arg, uint64_t now)
{
    struct lapic *l = arg;
    struct lapic_out o = {.eoi_vector = -1};
    pthread_mutex_lock(&l->lock);
    /* timer_ops contract: a cancel or re-arm may race with this fire; act only on the
     * deadline in force. */
    if (!l->armed || now < l->timer_due) {
        pthread_mutex_unlock(&l->lock);
        return;
    }
    l->armed = false;
    if (mode(l) == TIMER_TSC_DEADLINE) {
        l->tsc_deadline = 0; /* §11.5.4.1: the MSR reads 0 once the timer fired */
    } else if (mode(l) == TIMER_PERIODIC) {
        /* After a stall (host overload, a stopped VM) several periods may have passed. They
         * give one interrupt, not a burst: the IRR holds one bit per vector, so real hardware
         * would coalesce them too, and guests keep time from clocksources, not tick counts.
         * The next deadline stays on the programmed grid. */
        uint64_t k = l->timer_n + 1, passed = periods_at(l, now);
        l->timer_n = passed > k ? passed : k;
        arm(l, period_end(l, l->timer_n + 1));
    } else {
        l->timer_running = false; /* one-shot: the count has reached 0 and stays there */
    }
    lapic_lvt_fire(l, LVT_TIMER, &o);
    pthread_mutex_unlock(&l->lock);
    lapic_flush(l, &o);
}
