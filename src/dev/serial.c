/* SPDX-License-Identifier: MIT */
/* 16550A UART model (National PC16550D datasheet): registers, RX and TX FIFOs, interrupt logic. */
#include "serial.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Register offsets. */
#define REG_RBR_THR 0 /* DLL with DLAB */
#define REG_IER 1     /* DLM with DLAB */
#define REG_IIR_FCR 2
#define REG_LCR 3
#define REG_MCR 4
#define REG_LSR 5
#define REG_MSR 6
#define REG_SCR 7

#define IER_ERBFI 0x01 /* received data available */
#define IER_ETBEI 0x02 /* transmitter holding register empty */
#define IER_ELSI 0x04  /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */
#define IER_MASK 0x0f

#define IIR_NO_INT 0x01
#define IIR_MSI 0x00
#define IIR_THRI 0x02
#define IIR_RDI 0x04
#define IIR_RLSI 0x06
#define IIR_CTI 0x0c /* character timeout (FIFO mode) */
#define IIR_FIFO_ON 0xc0

#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define FCR_CLEAR_TX 0x04
#define FCR_TRIGGER 0xc0

#define LCR_DLAB 0x80

#define MCR_DTR 0x01
#define MCR_RTS 0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10
#define MCR_MASK 0x1f

#define LSR_DR 0x01
#define LSR_OE 0x02
#define LSR_PE 0x04
#define LSR_FE 0x08
#define LSR_BI 0x10
#define LSR_THRE 0x20
#define LSR_TEMT 0x40
#define LSR_ERRORS (LSR_OE | LSR_PE | LSR_FE | LSR_BI)

#define MSR_DCTS 0x01
#define MSR_DDSR 0x02
#define MSR_TERI 0x04
#define MSR_DDCD 0x08
#define MSR_CTS 0x10
#define MSR_DSR 0x20
#define MSR_RI 0x40
#define MSR_DCD 0x80
#define MSR_DELTAS 0x0f

struct serial {
    struct bus *pio;
    struct serial_config cfg;
    pthread_mutex_t lock;
    uint8_t ier, lcr, mcr, msr, scr, fcr;
    uint8_t lsr_err; /* sticky error bits, cleared by reading LSR */
    uint16_t divisor;
    uint8_t rx[SERIAL_FIFO_SIZE];
    unsigned rx_head, rx_count;
    uint8_t rbr; /* last byte read, what RBR returns when the FIFO is empty */
    /* Bytes written to THR that the sink has not taken yet. On the PC16550D the transmitter
     * drains its FIFO at the line rate; here the sink is the line, and it only holds bytes
     * back while the host side is slow, which the guest sees as a busy transmitter. */
    uint8_t tx[SERIAL_FIFO_SIZE];
    unsigned tx_head, tx_count;
    /* The THRE interrupt is a latch, not the THRE bit: reading IIR while it is the reported
     * source clears it, writing THR clears it too, and the transmit FIFO becoming empty or
     * setting IER.ETBEI while it is empty re-arms it (PC16550D Table IV). */
    bool thr_ipending;
    bool rx_refused; /* serial_receive turned bytes away; tell rx_ready when room appears */
    bool irq_level;
};

/* Both FIFOs hold 16 bytes in FIFO mode and one (RBR, THR) in 16450 mode. */
static unsigned fifo_depth(const struct serial *s)
{
    return (s->fcr & FCR_ENABLE) ? SERIAL_FIFO_SIZE : 1;
}

static unsigned rx_trigger(const struct serial *s)
{
    static const unsigned level[4] = {1, 4, 8, 14};
    return (s->fcr & FCR_ENABLE) ? level[s->fcr >> 6] : 1;
}

/* Interrupt identification in priority order (PC16550D Table IV). */
static uint8_t iir_id(const struct serial *s)
{
    if ((s->ier & IER_ELSI) && (s->lsr_err & LSR_ERRORS))
        return IIR_RLSI;
    if ((s->ier & IER_ERBFI) && s->rx_count) {
        /* Below the trigger level a real FIFO reports a character timeout after four idle
         * character times; host input arrives in bursts with nothing after, so report it at
         * once rather than modelling the timer. Linux treats both IDs alike. */
        return s->rx_count >= rx_trigger(s) ? IIR_RDI : IIR_CTI;
    }
    if ((s->ier & IER_ETBEI) && s->thr_ipending)
        return IIR_THRI;
    if ((s->ier & IER_EDSSI) && (s->msr & MSR_DELTAS))
        return IIR_MSI;
    return IIR_NO_INT;
}

/*
 * Called with the lock held after every state change. On a PC the UART's INTR pin reaches the
 * ISA IRQ through a buffer enabled by OUT2 (hence Linux's "most PC uarts need OUT2 raised"),
 * and in loopback mode the OUT2 pin is forced inactive, so the line is quiet then too.
 *
 * The line is driven as a level that mirrors "an interrupt is pending", like QEMU's
 * qemu_set_irq(level) in its 16550 model, not as pulses. ISA IRQ 4 is edge-triggered: KVM's
 * 8259 (ELCR bit clear) and an IOAPIC pin programmed edge both latch a request on a 0 -> 1
 * transition of this level. Because the level only drops when the guest has cleared every
 * pending source (read IIR/RBR, wrote THR), each new source that appears afterwards gives a
 * fresh rising edge, and one that appears while the line is still high is picked up by the
 * driver's loop over IIR before it returns. A pulse instead could fire while the guest still
 * has a source pending and would be lost if the pin were masked; a level never is.
 * Only changes are passed on, so an access that changes nothing costs no backend call.
 */
static void irq_update(struct serial *s)
{
    bool gate = (s->mcr & MCR_OUT2) && !(s->mcr & MCR_LOOP);
    bool level = gate && iir_id(s) != IIR_NO_INT;
    if (level != s->irq_level) {
        s->irq_level = level;
        irq_line_set(&s->cfg.irq, level);
    }
}

static void rx_clear(struct serial *s)
{
    s->rx_head = s->rx_count = 0;
}

/* A byte arriving on the line (or looped back). Returns false when there was no room. */
static bool rx_push(struct serial *s, uint8_t b)
{
    if (s->rx_count == fifo_depth(s))
        return false;
    s->rx[(s->rx_head + s->rx_count) % SERIAL_FIFO_SIZE] = b;
    s->rx_count++;
    return true;
}

/* Modem status inputs: in loopback DTR->DSR, RTS->CTS, OUT1->RI, OUT2->DCD (PC16550D MCR bit 4);
 * otherwise the line looks like a connected modem (DCD, DSR, CTS), as a console needs. */
static uint8_t msr_inputs(const struct serial *s)
{
    if (!(s->mcr & MCR_LOOP))
        return MSR_DCD | MSR_DSR | MSR_CTS;
    uint8_t v = 0;
    if (s->mcr & MCR_DTR)
        v |= MSR_DSR;
    if (s->mcr & MCR_RTS)
        v |= MSR_CTS;
    if (s->mcr & MCR_OUT1)
        v |= MSR_RI;
    if (s->mcr & MCR_OUT2)
        v |= MSR_DCD;
    return v;
}

static void msr_update(struct serial *s)
{
    uint8_t old = s->msr & 0xf0, now = msr_inputs(s), delta = 0;
    if ((old ^ now) & MSR_CTS)
        delta |= MSR_DCTS;
    if ((old ^ now) & MSR_DSR)
        delta |= MSR_DDSR;
    if ((old & MSR_RI) && !(now & MSR_RI)) /* trailing edge of RI only */
        delta |= MSR_TERI;
    if ((old ^ now) & MSR_DCD)
        delta |= MSR_DDCD;
    s->msr = (uint8_t)(now | (s->msr & MSR_DELTAS) | delta);
}

/* Hand the transmit FIFO to the sink, oldest byte first, until it is empty or the sink is
 * full. THRE and TEMT mean "FIFO empty" here (there is no shift register to model), and the
 * FIFO emptying is what raises the THRE interrupt (PC16550D LSR bits 5-6, IIR priority 3). */
static void tx_drain(struct serial *s)
{
    if (!s->tx_count)
        return;
    while (s->tx_count) {
        unsigned chunk = SERIAL_FIFO_SIZE - s->tx_head;
        if (chunk > s->tx_count)
            chunk = s->tx_count;
        size_t n = s->cfg.out.write ? s->cfg.out.write(s->cfg.out.opaque, s->tx + s->tx_head, chunk)
                                    : chunk;
        if (n > chunk)
            n = chunk;
        s->tx_head = (s->tx_head + (unsigned)n) % SERIAL_FIFO_SIZE;
        s->tx_count -= (unsigned)n;
        if (n < chunk)
            break;
    }
    if (!s->tx_count)
        s->thr_ipending = true;
}

static void tx_byte(struct serial *s, uint8_t b)
{
    if (s->mcr & MCR_LOOP) {
        if (s->rx_count == fifo_depth(s)) {
            /* Overrun: with FIFOs the new byte is lost; in 16450 mode it replaces RBR. */
            s->lsr_err |= LSR_OE;
            if (!(s->fcr & FCR_ENABLE))
                s->rx[s->rx_head] = b;
        } else {
            rx_push(s, b);
        }
        /* Looped back at once: THR is empty again and its interrupt re-arms. */
        s->thr_ipending = s->tx_count == 0;
        return;
    }
    /* Writing THR clears a pending THRE interrupt; tx_drain re-arms it when the byte leaves at
     * once, as it does whenever the host keeps up. */
    s->thr_ipending = false;
    if (s->tx_count == fifo_depth(s)) {
        /* Written while THRE was clear and the FIFO is full: the PC16550D loses the byte, and
         * so do we. A driver that waits for THRE (Linux's 8250 does) never gets here; buffering
         * for one that does not would need unbounded memory. */
        return;
    }
    s->tx[(s->tx_head + s->tx_count) % SERIAL_FIFO_SIZE] = b;
    s->tx_count++;
    tx_drain(s);
}

/* Resetting the XMIT FIFO (FCR bit 2, or FIFO mode toggled) discards what the sink has not
 * taken, as on the chip; Linux does it at port start-up and shut-down, after waiting for
 * TEMT. THR is empty afterwards. */
static void tx_clear(struct serial *s)
{
    if (!s->tx_count)
        return;
    s->tx_head = s->tx_count = 0;
    s->thr_ipending = true;
}

static uint8_t reg_read(struct serial *s, unsigned reg, bool *rx_room)
{
    switch (reg) {
    case REG_RBR_THR:
        if (s->lcr & LCR_DLAB)
            return (uint8_t)s->divisor;
        if (s->rx_count) {
            s->rbr = s->rx[s->rx_head];
            s->rx_head = (s->rx_head + 1) % SERIAL_FIFO_SIZE;
            s->rx_count--;
            *rx_room = true;
        }
        return s->rbr;
    case REG_IER:
        if (s->lcr & LCR_DLAB)
            return (uint8_t)(s->divisor >> 8);
        return s->ier;
    case REG_IIR_FCR: {
        uint8_t id = iir_id(s);
        if (id == IIR_THRI)
            s->thr_ipending = false;
        return (uint8_t)(id | ((s->fcr & FCR_ENABLE) ? IIR_FIFO_ON : 0));
    }
    case REG_LCR:
        return s->lcr;
    case REG_MCR:
        return s->mcr;
    case REG_LSR: {
        /* THRE and TEMT are clear while the sink holds bytes back: the guest waits as it would
         * for a slow line, instead of the vCPU waiting for the host's terminal. */
        uint8_t v = (uint8_t)((s->tx_count ? 0 : LSR_THRE | LSR_TEMT) | s->lsr_err |
                              (s->rx_count ? LSR_DR : 0));
        s->lsr_err = 0;
        return v;
    }
    case REG_MSR: {
        uint8_t v = s->msr;
        s->msr &= (uint8_t)~MSR_DELTAS;
        return v;
    }
    default:
        return s->scr;
    }
}

static void reg_write(struct serial *s, unsigned reg, uint8_t v)
{
    switch (reg) {
    case REG_RBR_THR:
        if (s->lcr & LCR_DLAB) {
            s->divisor = (uint16_t)((s->divisor & 0xff00) | v);
            break;
        }
        tx_byte(s, v);
        break;
    case REG_IER: {
        if (s->lcr & LCR_DLAB) {
            s->divisor = (uint16_t)((s->divisor & 0x00ff) | (v << 8));
            break;
        }
        uint8_t changed = (s->ier ^ v) & IER_MASK;
        s->ier = v & IER_MASK;
        /* Setting ETBEI while THR is empty raises a THRE interrupt even if an earlier one was
         * acknowledged by an IIR read. Linux's 8250 start-up test (serial8250_do_startup)
         * toggles IER.THRI and expects IIR to report THRE both times; if not, it flags the port
         * UART_BUG_THRE and falls back to a polling timer. Clearing ETBEI drops the latch;
         * with bytes still in the FIFO the interrupt comes when it empties. */
        if (changed & IER_ETBEI)
            s->thr_ipending = (s->ier & IER_ETBEI) && s->tx_count == 0;
        break;
    }
    case REG_IIR_FCR:
        /* FCR bit 0 gates the rest; changing it resets both FIFOs (PC16550D FCR). */
        if ((v ^ s->fcr) & FCR_ENABLE) {
            rx_clear(s);
            tx_clear(s);
        }
        if (!(v & FCR_ENABLE)) {
            s->fcr = 0;
            break;
        }
        if (v & FCR_CLEAR_RX)
            rx_clear(s);
        if (v & FCR_CLEAR_TX)
            tx_clear(s);
        s->fcr = (uint8_t)(v & (FCR_ENABLE | FCR_TRIGGER));
        break;
    case REG_LCR:
        s->lcr = v;
        break;
    case REG_MCR:
        s->mcr = v & MCR_MASK;
        msr_update(s);
        break;
    case REG_LSR:
    case REG_MSR:
        break; /* factory test registers: writes ignored */
    default:
        s->scr = v;
        break;
    }
}

static void serial_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write)
{
    struct serial *s = opaque;
    bool rx_room = false, notify = false;
    pthread_mutex_lock(&s->lock);
    /* The UART is byte-wide; a wider access touches consecutive registers, as on the ISA bus. */
    for (uint32_t i = 0; i < len; i++) {
        unsigned reg = (unsigned)(offset + i) & 7;
        if (write)
            reg_write(s, reg, data[i]);
        else
            data[i] = reg_read(s, reg, &rx_room);
    }
    irq_update(s);
    if (rx_room && s->rx_refused) {
        s->rx_refused = false;
        notify = true;
    }
    pthread_mutex_unlock(&s->lock);
    if (notify && s->cfg.rx_ready)
        s->cfg.rx_ready(s->cfg.opaque);
}

size_t serial_receive(struct serial *s, const uint8_t *buf, size_t len)
{
    size_t taken = 0;
    pthread_mutex_lock(&s->lock);
    if (s->mcr & MCR_LOOP) {
        taken = len;
    } else {
        while (taken < len && rx_push(s, buf[taken]))
            taken++;
        if (taken < len)
            s->rx_refused = true;
        irq_update(s);
    }
    pthread_mutex_unlock(&s->lock);
    return taken;
}

void serial_tx_ready(struct serial *s)
{
    pthread_mutex_lock(&s->lock);
    tx_drain(s);
    irq_update(s);
    pthread_mutex_unlock(&s->lock);
}

int serial_create(struct bus *pio, const struct serial_config *cfg, struct serial **out)
{
    if (!pio || !cfg || !out)
        return -EINVAL;
    struct serial *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->pio = pio;
    s->cfg = *cfg;
    pthread_mutex_init(&s->lock, NULL);
    s->divisor = 12; /* 9600 baud from the 1.8432 MHz clock: only stored, never used */
    s->msr = msr_inputs(s);
    int ret = bus_register(pio, cfg->port, 8, serial_access, s, "serial");
    if (ret) {
        pthread_mutex_destroy(&s->lock);
        free(s);
        return ret;
    }
    *out = s;
    return 0;
}

void serial_destroy(struct serial *s)
{
    if (!s)
        return;
    bus_unregister(s->pio, s->cfg.port, s);
    tx_drain(s); /* no vCPU is left to race with */
    pthread_mutex_destroy(&s->lock);
    free(s);
}
