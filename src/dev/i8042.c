/* SPDX-License-Identifier: MIT */
/* i8042 keyboard controller with a keyless keyboard and no mouse (IBM PC/AT tech. reference). */
#include "i8042.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* Status register (port 0x64 read). */
#define STR_OBF 0x01     /* output buffer full */
#define STR_SYS 0x04     /* system flag, mirrors CTR bit 2 */
#define STR_CMD 0x08     /* last write went to port 0x64 */
#define STR_KEYLOCK 0x10 /* 1: keyboard not inhibited by the key lock */
#define STR_AUXDATA 0x20 /* the output byte came from the AUX port */
#define STR_TIMEOUT 0x40

/* Controller configuration byte (CTR, RAM byte 0). */
#define CTR_KBDINT 0x01
#define CTR_AUXINT 0x02
#define CTR_SYS 0x04
#define CTR_KBDDIS 0x10
#define CTR_AUXDIS 0x20
#define CTR_XLATE 0x40

/* Output port (commands 0xD0/0xD1): bit 0 is the CPU reset line (active low), bit 1 A20. */
#define OUTP_RESET_N 0x01
#define OUTP_A20 0x02

/* Controller commands. */
#define CMD_READ_RAM 0x20  /* 0x20-0x3f: read RAM byte (0 is the CTR) */
#define CMD_WRITE_RAM 0x60 /* 0x60-0x7f: write RAM byte */
#define CMD_AUX_DISABLE 0xa7
#define CMD_AUX_ENABLE 0xa8
#define CMD_AUX_TEST 0xa9
#define CMD_SELF_TEST 0xaa
#define CMD_KBD_TEST 0xab
#define CMD_KBD_DISABLE 0xad
#define CMD_KBD_ENABLE 0xae
#define CMD_READ_INPUT 0xc0
#define CMD_READ_OUTP 0xd0
#define CMD_WRITE_OUTP 0xd1
#define CMD_WRITE_KBD_OUT 0xd2 /* next data byte comes back as keyboard data */
#define CMD_WRITE_AUX_OUT 0xd3 /* next data byte comes back as AUX data (loop test) */
#define CMD_WRITE_AUX 0xd4     /* next data byte goes to the AUX device */
#define CMD_READ_TEST 0xe0
#define CMD_PULSE 0xf0 /* 0xf0-0xff: pulse output lines whose bit is 0; bit 0 = reset */

#define RET_SELF_TEST_OK 0x55
#define RET_PORT_TEST_OK 0x00

/* PS/2 keyboard commands and replies. */
#define KBD_SET_LEDS 0xed
#define KBD_ECHO 0xee
#define KBD_SCANSET 0xf0
#define KBD_GETID 0xf2
#define KBD_TYPEMATIC 0xf3
#define KBD_RESEND 0xfe
#define KBD_RESET 0xff
#define KBD_ACK 0xfa
#define KBD_NAK 0xfe
#define KBD_BAT_OK 0xaa

#define OUTQ_SIZE 16

struct outq_entry {
    uint8_t byte;
    uint8_t status; /* STR_AUXDATA / STR_TIMEOUT to show while this byte is in the buffer */
};

struct i8042 {
    struct bus *pio;
    struct i8042_config cfg;
    pthread_mutex_t lock;
    uint8_t ram[32]; /* ram[0] is the CTR */
    uint8_t outp;
    uint8_t status_cmd;    /* STR_CMD */
    uint8_t pending_cmd;   /* controller command waiting for its data byte, 0 if none */
    uint8_t kbd_param_for; /* keyboard command waiting for its parameter, 0 if none */
    uint8_t kbd_last;      /* last byte the keyboard sent, for KBD_RESEND */
    uint8_t last_out;      /* last byte read from port 0x60 */
    struct outq_entry q[OUTQ_SIZE];
    unsigned q_head, q_count;
    bool kbd_level, aux_level;
};

static void out_push(struct i8042 *k, uint8_t byte, uint8_t status)
{
    if (k->q_count == OUTQ_SIZE)
        return; /* a real controller would hold the device off; nothing we send is critical */
    k->q[(k->q_head + k->q_count) % OUTQ_SIZE] = (struct outq_entry){byte, status};
    k->q_count++;
}

static void kbd_send(struct i8042 *k, uint8_t byte)
{
    k->kbd_last = byte;
    out_push(k, byte, 0);
}

/* ISA IRQs 1 and 12 are edge-triggered; the lines are driven as levels that are high while the
 * output buffer holds a byte of that port with its interrupt enabled in the CTR, so every byte
 * the guest reads and that is followed by another gives a new rising edge (see irq_pulse_low).
 * Called with the lock held. */
static void irq_update(struct i8042 *k)
{
    bool kbd = false, aux = false;
    if (k->q_count) {
        bool from_aux = k->q[k->q_head].status & STR_AUXDATA;
        kbd = !from_aux && (k->ram[0] & CTR_KBDINT);
        aux = from_aux && (k->ram[0] & CTR_AUXINT);
    }
    if (kbd != k->kbd_level) {
        k->kbd_level = kbd;
        irq_line_set(&k->cfg.kbd_irq, kbd);
    }
    if (aux != k->aux_level) {
        k->aux_level = aux;
        irq_line_set(&k->cfg.aux_irq, aux);
    }
}

/* Reading port 0x60 empties the buffer, which drops the line, before the next byte (if any)
 * fills it again: the edge the 8259/IOAPIC needs to see a second byte. */
static void irq_pulse_low(struct i8042 *k)
{
    if (k->kbd_level) {
        k->kbd_level = false;
        irq_line_set(&k->cfg.kbd_irq, false);
    }
    if (k->aux_level) {
        k->aux_level = false;
        irq_line_set(&k->cfg.aux_irq, false);
    }
}

/* A byte for the keyboard. It answers like an MF2 keyboard that never has a key pressed, which
 * is what Linux's atkbd probe (GETID, then LEDs, rate, enable) needs to finish without
 * timeouts. */
static void kbd_write(struct i8042 *k, uint8_t b)
{
    if (k->kbd_param_for) {
        uint8_t cmd = k->kbd_param_for;
        k->kbd_param_for = 0;
        kbd_send(k, KBD_ACK);
        if (cmd == KBD_SCANSET && b == 0)
            kbd_send(k, (k->ram[0] & CTR_XLATE) ? 0x41 : 0x02); /* set 2, as translated */
        return;
    }
    switch (b) {
    case KBD_SET_LEDS:
    case KBD_SCANSET:
    case KBD_TYPEMATIC:
        k->kbd_param_for = b;
        kbd_send(k, KBD_ACK);
        break;
    case KBD_ECHO:
        kbd_send(k, KBD_ECHO);
        break;
    case KBD_GETID:
        kbd_send(k, KBD_ACK);
        kbd_send(k, 0xab);
        /* MF2 ID 0x83; a translating controller turns it into 0x41. */
        kbd_send(k, (k->ram[0] & CTR_XLATE) ? 0x41 : 0x83);
        break;
    case KBD_RESEND:
        out_push(k, k->kbd_last, 0);
        break;
    case KBD_RESET:
        kbd_send(k, KBD_ACK);
        kbd_send(k, KBD_BAT_OK);
        break;
    default:
        /* 0xF4-0xFD (enable, disable, defaults, set-3 key modes) just acknowledge; anything
         * below 0xED is not a command and is refused. */
        kbd_send(k, b >= 0xf4 ? KBD_ACK : KBD_NAK);
        break;
    }
}

/* Returns true when the command asks for a CPU reset. */
static bool ctl_command(struct i8042 *k, uint8_t cmd)
{
    if (cmd >= CMD_READ_RAM && cmd < CMD_READ_RAM + 0x20) {
        out_push(k, k->ram[cmd & 0x1f], 0);
        return false;
    }
    if ((cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + 0x20) || cmd == CMD_WRITE_OUTP ||
        cmd == CMD_WRITE_KBD_OUT || cmd == CMD_WRITE_AUX_OUT || cmd == CMD_WRITE_AUX) {
        k->pending_cmd = cmd;
        return false;
    }
    /* Pulse commands: a 0 in bits 0-3 pulses that output line low; bit 0 is CPU reset. */
    if (cmd >= CMD_PULSE)
        return !(cmd & OUTP_RESET_N);
    switch (cmd) {
    case CMD_AUX_DISABLE:
        k->ram[0] |= CTR_AUXDIS;
        break;
    case CMD_AUX_ENABLE:
        k->ram[0] &= (uint8_t)~CTR_AUXDIS;
        break;
    case CMD_AUX_TEST:
    case CMD_KBD_TEST:
        out_push(k, RET_PORT_TEST_OK, 0);
        break;
    case CMD_SELF_TEST:
        k->ram[0] |= CTR_SYS;
        out_push(k, RET_SELF_TEST_OK, 0);
        break;
    case CMD_KBD_DISABLE:
        k->ram[0] |= CTR_KBDDIS;
        break;
    case CMD_KBD_ENABLE:
        k->ram[0] &= (uint8_t)~CTR_KBDDIS;
        break;
    case CMD_READ_INPUT:
    case CMD_READ_TEST:
        out_push(k, 0x00, 0);
        break;
    case CMD_READ_OUTP:
        out_push(k, k->outp, 0);
        break;
    default:
        break; /* vendor commands: ignored, as many real controllers do */
    }
    return false;
}

/* Returns true when the byte asks for a CPU reset. */
static bool data_write(struct i8042 *k, uint8_t b)
{
    uint8_t cmd = k->pending_cmd;
    k->pending_cmd = 0;
    if (cmd >= CMD_WRITE_RAM && cmd < CMD_WRITE_RAM + 0x20) {
        k->ram[cmd & 0x1f] = b;
        return false;
    }
    switch (cmd) {
    case CMD_WRITE_OUTP:
        k->outp = b | OUTP_A20; /* A20 is not modelled: always enabled */
        return !(b & OUTP_RESET_N);
    case CMD_WRITE_KBD_OUT:
        out_push(k, b, 0);
        return false;
    case CMD_WRITE_AUX_OUT:
        out_push(k, b, STR_AUXDATA);
        return false;
    case CMD_WRITE_AUX:
        /* No mouse: the controller reports a timeout on the AUX port, which Linux's psmouse
         * takes as "no device" at once instead of waiting for its own timeout. */
        out_push(k, KBD_NAK, STR_AUXDATA | STR_TIMEOUT);
        return false;
    default:
        kbd_write(k, b);
        return false;
    }
}

static void port_access(struct i8042 *k, bool cmd_port, uint8_t *data, uint32_t len, bool write)
{
    bool reset = false;
    if (len != 1) {
        /* Byte registers: a wider access is not decoded, like on the ISA bus. */
        if (!write)
            memset(data, 0xff, len);
        return;
    }
    pthread_mutex_lock(&k->lock);
    if (cmd_port && !write) {
        uint8_t st = (uint8_t)(STR_KEYLOCK | k->status_cmd | (k->ram[0] & CTR_SYS));
        if (k->q_count)
            st |= (uint8_t)(STR_OBF | k->q[k->q_head].status);
        data[0] = st;
    } else if (cmd_port) {
        k->status_cmd = STR_CMD;
        k->pending_cmd = 0;
        reset = ctl_command(k, data[0]);
    } else if (write) {
        k->status_cmd = 0;
        reset = data_write(k, data[0]);
    } else {
        /* With the buffer empty the last byte is read again, as on real controllers. */
        if (k->q_count) {
            k->last_out = k->q[k->q_head].byte;
            k->q_head = (k->q_head + 1) % OUTQ_SIZE;
            k->q_count--;
            irq_pulse_low(k);
        }
        data[0] = k->last_out;
    }
    irq_update(k);
    pthread_mutex_unlock(&k->lock);
    if (reset && k->cfg.reset)
        k->cfg.reset(k->cfg.opaque);
}

static void data_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write)
{
    (void)offset;
    port_access(opaque, false, data, len, write);
}

static void cmd_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool write)
{
    (void)offset;
    port_access(opaque, true, data, len, write);
}

int i8042_create(struct bus *pio, const struct i8042_config *cfg, struct i8042 **out)
{
    if (!pio || !cfg || !out)
        return -EINVAL;
    struct i8042 *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    k->pio = pio;
    k->cfg = *cfg;
    pthread_mutex_init(&k->lock, NULL);
    /* What a PC BIOS leaves behind: both interrupts on, self-test passed, translation on. */
    k->ram[0] = CTR_KBDINT | CTR_AUXINT | CTR_SYS | CTR_XLATE;
    k->outp = OUTP_RESET_N | OUTP_A20;
    int ret = bus_register(pio, I8042_DATA_PORT, 1, data_access, k, "i8042-data");
    if (ret)
        goto err_free;
    ret = bus_register(pio, I8042_CMD_PORT, 1, cmd_access, k, "i8042-cmd");
    if (ret)
        goto err_data;
    *out = k;
    return 0;

err_data:
    bus_unregister(pio, I8042_DATA_PORT, k);
err_free:
    pthread_mutex_destroy(&k->lock);
    free(k);
    return ret;
}

void i8042_destroy(struct i8042 *k)
{
    if (!k)
        return;
    bus_unregister(k->pio, I8042_DATA_PORT, k);
    bus_unregister(k->pio, I8042_CMD_PORT, k);
    pthread_mutex_destroy(&k->lock);
    free(k);
}
