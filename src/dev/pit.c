/* SPDX-License-Identifier: MIT */
/* i8254 PIT model (Intel 8254 datasheet): counters computed from the clock, not from accesses;
 * channel 0 drives IRQ 0 through a one-shot timer, channel 2 is read through port 0x61. */
#include "pit.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#define NS_PER_S 1000000000ull

#define CW_SC(v) ((v) >> 6)
#define CW_RW(v) (((v) >> 4) & 3)
#define CW_BCD 0x01
#define RW_LATCH 0
#define RW_LSB 1
#define RW_MSB 2
#define RW_LOHI 3
#define RB_NOT_COUNT 0x20 /* read-back: 0 latches the count */
#define RB_NOT_STATUS 0x10
#define ST_OUT 0x80
#define ST_NULL 0x40

/* Port 0x61 (PC/AT "port B", ICH NMI_SC): bits 0-3 read/write, 4-7 status. */
#define SC_GATE2 0x01
#define SC_RW 0x0f
#define SC_REFRESH 0x10
#define SC_OUT2 0x20

struct chan {
    uint8_t mode, rw;
    bool bcd;
    uint32_t n;         /* initial count in use: 1..65536 (binary), 1..10000 (BCD) */
    uint32_t pending;   /* modes 2, 3: count written while counting, loaded at period end */
    uint64_t switch_at; /* the absolute tick that period ends */
    uint64_t start;     /* absolute tick at which t = 0, while running */
    uint64_t frozen;    /* t while not running */
    bool loaded;        /* a complete count was written since the control word */
    bool running;       /* the counting element counts */
    bool gate;
    bool null_count;
    bool write_msb, read_msb, latch_msb;
    uint8_t write_lsb;
    bool count_latched, status_latched;
    uint16_t latch;
    uint8_t status;
};

struct pit {
    struct bus *pio;
    struct pit_config cfg;
    pthread_mutex_t lock;
    struct chan ch[3];
    struct vtimer *timer;
    uint64_t deadline_ns; /* armed deadline of channel 0's next rising edge, 0: disarmed */
    uint64_t last_pulse_ns;
    uint8_t nmi_sc;
    bool refresh;
};

/* Ticks of the 1.193182 MHz input clock at ns, and the first ns at which tick n has come.
 * Both split the product so nothing overflows 64 bits and stay exact inverses, which is what
 * makes deadlines computed from an absolute tick free of drift. */
static uint64_t ns_to_ticks(uint64_t ns)
{
    return ns / NS_PER_S * PIT_FREQ_HZ + ns % NS_PER_S * PIT_FREQ_HZ / NS_PER_S;
}

static uint64_t ticks_to_ns(uint64_t t)
{
    return t / PIT_FREQ_HZ * NS_PER_S +
           (t % PIT_FREQ_HZ * NS_PER_S + PIT_FREQ_HZ - 1) / PIT_FREQ_HZ;
}

static uint64_t now_ticks(const struct pit *p)
{
    return ns_to_ticks(p->cfg.timer->now(p->cfg.timer->opaque));
}

static uint32_t modulus(const struct chan *c)
{
    return c->bcd ? 10000 : 65536;
}

/* Modes 2 and 3 divide by n; their smallest initial count is 2 (the datasheet's table of
 * minimum and maximum initial counts), so a 1 is taken as 2 and a period is never empty. */
static uint32_t period(const struct chan *c)
{
    return c->n < 2 ? 2 : c->n;
}

/* A count written in mode 2 or 3 while counting takes effect at the end of the current period
 * ("Mode 2": writing a new count does not affect the current sequence). The datasheet lets
 * mode 3 switch at the end of a half cycle; the whole period is close enough for a square
 * wave. */
static void sync(struct chan *c, uint64_t now)
{
    if (!c->pending || !c->running || now < c->switch_at)
        return;
    c->start = c->switch_at;
    c->n = c->pending;
    c->pending = 0;
    c->null_count = false;
}

static uint64_t elapsed(const struct chan *c, uint64_t now)
{
    return c->running ? now - c->start : c->frozen;
}

/* The counting element at t ticks after the load. The one CLK pulse the 8254 spends loading
 * the count is not modelled (838 ns). */
static uint32_t count_at(const struct chan *c, uint64_t t)
{
    uint32_t m = modulus(c), per = period(c);
    switch (c->mode) {
    case 2:
        return per - (uint32_t)(t % per);
    case 3: {
        /* Decrements by 2 and reloads at each half cycle; the high half is the longer one
         * for odd counts ((N + 1) / 2 high, (N - 1) / 2 low). */
        uint32_t ph = (uint32_t)(t % per), high = (per + 1) / 2;
        return ph < high ? per - 2 * ph : (per & ~1u) - 2 * (ph - high);
    }
    default: /* 0, 1, 4, 5: count down and wrap past zero */
        return (uint32_t)((c->n + m - t % m) % m);
    }
}

/* OUT at t ticks after the load, per the mode's waveform. */
static bool out_at(const struct chan *c, uint64_t t)
{
    switch (c->mode) {
    case 0: /* low from the control word until terminal count, then high */
        return c->loaded && t >= c->n;
    case 1: /* low from the trigger until terminal count */
        return !c->running || t >= c->n;
    case 2: /* one tick low when the count reaches 1; forced high while the gate is low */
        return !c->running || t % period(c) != period(c) - 1;
    case 3:
        return !c->running || t % period(c) < (period(c) + 1) / 2;
    default: /* 4, 5: one tick low at terminal count */
        return !c->running || t != c->n;
    }
}

/* Absolute tick of the next rising edge of OUT after now, or 0 if none will come. */
static uint64_t next_edge(const struct chan *c, uint64_t now)
{
    if (!c->running || !c->loaded)
        return 0;
    uint64_t t = now - c->start;
    switch (c->mode) {
    case 0:
    case 1:
        return t < c->n ? c->start + c->n : 0;
    case 2:
    case 3:
        return c->start + (t / period(c) + 1) * period(c);
    default:
        return t < (uint64_t)c->n + 1 ? c->start + c->n + 1 : 0;
    }
}

static uint32_t from_bcd(uint32_t v)
{
    uint32_t r = 0;
    for (int shift = 12; shift >= 0; shift -= 4) {
        uint32_t d = (v >> shift) & 0xf;
        r = r * 10 + (d > 9 ? 9 : d); /* not BCD: the nearest valid digit, not a wild count */
    }
    return r;
}

static uint16_t to_bcd(uint32_t v)
{
    return (uint16_t)((v / 1000 % 10) << 12 | (v / 100 % 10) << 8 | (v / 10 % 10) << 4 | v % 10);
}

static uint16_t read_count(const struct chan *c, uint64_t now)
{
    uint32_t v = count_at(c, elapsed(c, now)) % modulus(c); /* the count 65536 reads 0 */
    return c->bcd ? to_bcd(v) : (uint16_t)v;
}

/* Channel 0's timer: arm for the next rising edge, or disarm. Called with the lock held. */
static void rearm(struct pit *p, uint64_t now)
{
    const struct timer_ops *ops = p->cfg.timer;
    uint64_t edge = next_edge(&p->ch[0], now);
    if (!edge) {
        p->deadline_ns = 0;
        ops->cancel(ops->opaque, p->timer);
        return;
    }
    /* A count of 2 would ask for 600 kHz of IRQ 0. No guest handles interrupts that fast;
     * capping the rate at 1 / PIT_MIN_PERIOD_NS bounds what a hostile guest costs the timer
     * thread. Edges in between are coalesced, as below. */
    uint64_t dl = ticks_to_ns(edge);
    if (p->last_pulse_ns && dl < p->last_pulse_ns + PIT_MIN_PERIOD_NS)
        dl = p->last_pulse_ns + PIT_MIN_PERIOD_NS;
    p->deadline_ns = dl;
    ops->arm(ops->opaque, p->timer, dl);
}

/* The deadline is the tick of the edge, computed from the programmed start, so a late callback
 * does not push later edges back: the rate stays exact over any number of periods. After a
 * long stall (host suspend, a descheduled VMM) many edges are due at once; one pulse stands for
 * all of them and the next deadline is the first edge still ahead. A burst would not tell the
 * guest more: the PIC latches one request per IRQ 0 until it is serviced, Linux and Windows
 * recover elapsed time from a clocksource rather than by counting ticks, and hundreds of
 * back-to-back interrupts would only stall the guest further. */
static void timer_fire(void *arg, uint64_t now_ns)
{
    struct pit *p = arg;
    (void)now_ns;
    pthread_mutex_lock(&p->lock);
    uint64_t now = p->cfg.timer->now(p->cfg.timer->opaque);
    /* A fire racing with a cancel or re-arm: the contract asks us to check the deadline. */
    if (p->deadline_ns && now >= p->deadline_ns) {
        p->last_pulse_ns = now;
        irq_line_pulse(&p->cfg.irq0);
        uint64_t t = ns_to_ticks(now);
        sync(&p->ch[0], t);
        rearm(p, t);
    } else if (p->deadline_ns) {
        p->cfg.timer->arm(p->cfg.timer->opaque, p->timer, p->deadline_ns);
    }
    pthread_mutex_unlock(&p->lock);
}

/* Start counting from t = 0 at now (a count loaded, a trigger, a gate reload). */
static void restart(struct chan *c, uint64_t now)
{
    c->start = now;
    c->frozen = 0;
    c->running = true;
    c->pending = 0;
    c->null_count = false;
}

/* A complete count was written ("Write Operations"). */
static void load(struct chan *c, uint32_t raw, uint64_t now)
{
    uint32_t v = c->bcd ? from_bcd(raw) : raw;
    uint32_t n = v ? v : modulus(c); /* 0 is the largest count: 2^16, or 10^4 in BCD */
    c->null_count = true;
    if ((c->mode == 2 || c->mode == 3) && c->loaded && c->running) {
        c->pending = n;
        c->switch_at = c->start + ((now - c->start) / period(c) + 1) * period(c);
        return;
    }
    /* Modes 1 and 5 wait for a rising edge of the gate; the datasheet keeps a one-shot under
     * way on its old count until then, here the new count applies to it at once. */
    c->n = n;
    c->loaded = true;
    if (c->mode == 1 || c->mode == 5)
        return;
    if (c->gate) {
        restart(c, now);
    } else {
        c->running = false;
        c->frozen = 0;
    }
}

static void write_count(struct chan *c, uint8_t v, uint64_t now)
{
    switch (c->rw) {
    case RW_LSB:
        load(c, v, now);
        break;
    case RW_MSB:
        load(c, (uint32_t)v << 8, now);
        break;
    default:
        if (!c->write_msb) {
            c->write_lsb = v;
            c->write_msb = true;
            if (c->mode == 0) {
                /* "Mode 0": writing the first byte stops counting and sets OUT low. */
                c->frozen = elapsed(c, now);
                c->running = false;
                c->loaded = false;
            }
        } else {
            c->write_msb = false;
            load(c, c->write_lsb | (uint32_t)v << 8, now);
        }
        break;
    }
}

static uint8_t read_port(struct chan *c, uint64_t now)
{
    if (c->status_latched) {
        c->status_latched = false;
        return c->status;
    }
    uint16_t v;
    bool *msb;
    if (c->count_latched) {
        v = c->latch;
        msb = &c->latch_msb;
    } else {
        v = read_count(c, now);
        msb = &c->read_msb;
    }
    uint8_t r;
    if (c->rw == RW_LSB || (c->rw == RW_LOHI && !*msb))
        r = (uint8_t)v;
    else
        r = (uint8_t)(v >> 8);
    bool done = c->rw != RW_LOHI || *msb;
    if (c->rw == RW_LOHI)
        *msb = !*msb;
    if (done && c->count_latched)
        c->count_latched = false; /* the latch holds until read completely */
    return r;
}

/* "Counter Latch Command": ignored while an earlier latch is unread. */
static void latch_count(struct chan *c, uint64_t now)
{
    if (c->count_latched)
        return;
    c->latch = read_count(c, now);
    c->count_latched = true;
    c->latch_msb = false;
}

static void latch_status(struct chan *c, uint64_t now)
{
    if (c->status_latched)
        return;
    bool out = out_at(c, elapsed(c, now));
    c->status = (uint8_t)((out ? ST_OUT : 0) | (c->null_count ? ST_NULL : 0) | c->rw << 4 |
                          c->mode << 1 | (c->bcd ? CW_BCD : 0));
    c->status_latched = true;
}

static void control_word(struct pit *p, uint8_t v, uint64_t now)
{
    if (CW_SC(v) == 3) { /* "Read-Back Command": bits 1-3 select counters 0-2 */
        for (unsigned i = 0; i < 3; i++) {
            if (!(v & (2u << i)))
                continue;
            if (!(v & RB_NOT_STATUS))
                latch_status(&p->ch[i], now);
            if (!(v & RB_NOT_COUNT))
                latch_count(&p->ch[i], now);
        }
        return;
    }
    struct chan *c = &p->ch[CW_SC(v)];
    if (CW_RW(v) == RW_LATCH) {
        latch_count(c, now);
        return;
    }
    /* A control word resets the counter's logic: it waits for a new count, OUT goes to its
     * initial state (low in mode 0, high otherwise). Modes 6 and 7 are 2 and 3 (X10, X11). */
    uint8_t mode = (v >> 1) & 7;
    c->mode = mode > 5 ? mode - 4 : mode;
    c->rw = CW_RW(v);
    c->bcd = v & CW_BCD;
    c->loaded = c->running = false;
    c->frozen = 0;
    c->pending = 0;
    c->null_count = true;
    c->write_msb = c->read_msb = false;
    c->count_latched = c->status_latched = false;
    if (c->n > modulus(c))
        c->n = modulus(c);
}

/* Channel 2's gate from port 0x61 ("GATE" in each mode's description): modes 0 and 4 pause
 * while it is low; 2 and 3 stop with OUT high and reload on its rising edge; 1 and 5 start
 * (or restart) on its rising edge and ignore its level. */
static void set_gate(struct chan *c, bool gate, uint64_t now)
{
    if (gate == c->gate)
        return;
    c->gate = gate;
    if (!c->loaded)
        return;
    if (gate) {
        if (c->mode == 0 || c->mode == 4) {
            uint64_t t = c->frozen;
            restart(c, now);
            c->start = now - t;
            c->frozen = 0;
        } else {
            restart(c, now); /* 1, 5: trigger; 2, 3: reload */
        }
    } else if (c->mode != 1 && c->mode != 5 && c->running) {
        sync(c, now);
        c->frozen = now - c->start;
        c->running = false;
    }
}

static void pit_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write)
{
    struct pit *p = opaque;
    pthread_mutex_lock(&p->lock);
    uint64_t now = now_ticks(p);
    for (unsigned i = 0; i < 3; i++)
        sync(&p->ch[i], now);
    for (uint32_t n = 0; n < len; n++) {
        unsigned reg = (unsigned)(offset + n) & 3;
        if (reg == 3 && write)
            control_word(p, data[n], now);
        else if (reg == 3)
            data[n] = 0xff; /* the control word register cannot be read */
        else if (write)
            write_count(&p->ch[reg], data[n], now);
        else
            data[n] = read_port(&p->ch[reg], now);
    }
    if (write)
        rearm(p, now);
    pthread_mutex_unlock(&p->lock);
}

static void nmi_sc_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write)
{
    struct pit *p = opaque;
    (void)offset;
    pthread_mutex_lock(&p->lock);
    uint64_t now = now_ticks(p);
    struct chan *c2 = &p->ch[2];
    sync(c2, now);
    for (uint32_t n = 0; n < len; n++) {
        if (write) {
            p->nmi_sc = data[n] & SC_RW;
            set_gate(c2, p->nmi_sc & SC_GATE2, now);
            continue;
        }
        /* The refresh toggle flips on every read, so a loop waiting for it to change (old
         * delay loops) always progresses. No NMI source is ever reported (bits 6, 7). */
        p->refresh = !p->refresh;
        bool out2 = out_at(c2, elapsed(c2, now));
        data[n] = (uint8_t)(p->nmi_sc | (p->refresh ? SC_REFRESH : 0) | (out2 ? SC_OUT2 : 0));
    }
    pthread_mutex_unlock(&p->lock);
}

int pit_create(struct bus *pio, const struct pit_config *cfg, struct pit **out)
{
    if (!pio || !cfg || !out || !cfg->timer || !cfg->timer->now || !cfg->timer->create ||
        !cfg->timer->arm || !cfg->timer->cancel || !cfg->timer->destroy)
        return -EINVAL;
    struct pit *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->pio = pio;
    p->cfg = *cfg;
    pthread_mutex_init(&p->lock, NULL);
    for (unsigned i = 0; i < 3; i++) {
        p->ch[i].n = 65536;
        p->ch[i].rw = RW_LOHI;
        p->ch[i].gate = i != 2; /* channels 0 and 1 have GATE tied high on a PC */
    }
    int ret = -ENOMEM;
    p->timer = cfg->timer->create(cfg->timer->opaque, timer_fire, p);
    if (!p->timer)
        goto err_timer;
    ret = bus_register(pio, PIT_PORT, 4, pit_access, p, "pit");
    if (ret)
        goto err_pit;
    ret = bus_register(pio, PIT_NMI_SC_PORT, 1, nmi_sc_access, p, "nmi-sc");
    if (ret)
        goto err_sc;
    *out = p;
    return 0;

err_sc:
    bus_unregister(pio, PIT_PORT, p);
err_pit:
    cfg->timer->destroy(cfg->timer->opaque, p->timer);
err_timer:
    pthread_mutex_destroy(&p->lock);
    free(p);
    return ret;
}

void pit_destroy(struct pit *p)
{
    if (!p)
        return;
    bus_unregister(p->pio, PIT_NMI_SC_PORT, p);
    bus_unregister(p->pio, PIT_PORT, p);
    p->cfg.timer->destroy(p->cfg.timer->opaque, p->timer);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
