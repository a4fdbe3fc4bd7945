/* SPDX-License-Identifier: MIT */
/* The host side of the guest's console: stdin in raw mode feeding the UART, with an escape. */
#ifndef REVIRT_REVIRTER_CONSOLE_H
#define REVIRT_REVIRTER_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

struct console;

/* Escape: Ctrl-A then x quits; Ctrl-A Ctrl-A sends one Ctrl-A. */
#define CONSOLE_ESCAPE 0x01

/* Start reading fd (stdin) on a thread of its own; put it in raw mode when it is a terminal
 * (restored by console_stop, also at exit). Bytes go to feed(opaque, buf, len), which returns
 * how many it took; the rest wait until console_kick. quit(opaque) runs on the escape. */
struct console *console_start(int fd, size_t (*feed)(void *opaque, const uint8_t *buf, size_t len),
                              void (*quit)(void *opaque), void *opaque);
/* The guest made room: retry bytes feed refused. Any thread. */
void console_kick(struct console *c);
void console_stop(struct console *c);

/* The pure escape-sequence filter, exposed for unit tests: consumes in[0..n), writes the bytes
 * to pass on to out, returns their count; *quit is set on Ctrl-A x. *state carries a pending
 * Ctrl-A between calls. */
size_t console_filter(int *state, const uint8_t *in, size_t n, uint8_t *out, int *quit);

#endif
