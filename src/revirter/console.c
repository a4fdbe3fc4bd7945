/* SPDX-License-Identifier: MIT */
/* Console input: a thread reads stdin (raw when a terminal) and feeds the guest's UART. */
#include "console.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <termios.h>
#include <unistd.h>

struct console {
    int fd, wake; /* wake: eventfd for "room again" and "stop" */
    bool stop;
    bool raw;
    struct termios saved;
    pthread_t thread;
    size_t (*feed)(void *, const uint8_t *, size_t);
    void (*quit)(void *);
    void *opaque;
};

/* Restored at exit too, so a crash or exit() never leaves the user's terminal raw. */
static struct termios saved_tty;
static int saved_tty_fd = -1;

static void restore_tty(void)
{
    if (saved_tty_fd >= 0)
        tcsetattr(saved_tty_fd, TCSANOW, &saved_tty);
    saved_tty_fd = -1;
}

/* A signal that ends revirter (kill, hang-up) must not leave the terminal raw either. */
static void restore_tty_and_die(int sig)
{
    restore_tty();
    signal(sig, SIG_DFL);
    raise(sig);
}

size_t console_filter(int *state, const uint8_t *in, size_t n, uint8_t *out, int *quit)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t b = in[i];
        if (*state) {
            *state = 0;
            if (b == 'x' || b == 'X') {
                *quit = 1;
                return o;
            }
            if (b == CONSOLE_ESCAPE) {
                out[o++] = b;
                continue;
            }
            /* Unknown escape: pass both bytes on. */
            out[o++] = CONSOLE_ESCAPE;
            out[o++] = b;
            continue;
        }
        if (b == CONSOLE_ESCAPE) {
            *state = 1;
            continue;
        }
        out[o++] = b;
    }
    return o;
}

static void *console_main(void *arg)
{
    struct console *c = arg;
    uint8_t in[256], pending[512];
    size_t npending = 0;
    int esc = 0;
    bool eof = false;
    while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
        struct pollfd p[2] = {{c->wake, POLLIN, 0}, {c->fd, POLLIN, 0}};
        /* Read more only when everything read so far went to the guest. */
        int np = (npending == 0 && !eof) ? 2 : 1;
        if (poll(p, np, -1) < 0 && errno != EINTR)
            break;
        if (p[0].revents) {
            uint64_t v;
            if (read(c->wake, &v, 8) < 0 && errno != EAGAIN)
                break;
        }
        if (np == 2 && p[1].revents) {
            ssize_t r = read(c->fd, in, sizeof(in));
            if (r <= 0) {
                eof = true; /* input closed: the guest keeps running without it */
            } else {
                int quit = 0;
                npending = console_filter(&esc, in, (size_t)r, pending, &quit);
                if (quit) {
                    c->quit(c->opaque);
                    break;
                }
            }
        }
        if (npending) {
            size_t took = c->feed(c->opaque, pending, npending);
            memmove(pending, pending + took, npending - took);
            npending -= took;
        }
    }
    return NULL;
}

struct console *console_start(int fd, size_t (*feed)(void *, const uint8_t *, size_t),
                              void (*quit)(void *), void *opaque)
{
    struct console *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    *c = (struct console){.fd = fd, .feed = feed, .quit = quit, .opaque = opaque};
    c->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->wake < 0) {
        free(c);
        return NULL;
    }
    if (isatty(fd) && tcgetattr(fd, &c->saved) == 0) {
        struct termios raw = c->saved;
        cfmakeraw(&raw);
        raw.c_oflag |= OPOST | ONLCR; /* our own messages still end lines properly */
        if (tcsetattr(fd, TCSANOW, &raw) == 0) {
            c->raw = true;
            saved_tty = c->saved;
            saved_tty_fd = fd;
            atexit(restore_tty);
            signal(SIGTERM, restore_tty_and_die);
            signal(SIGHUP, restore_tty_and_die);
            signal(SIGINT, restore_tty_and_die);
        }
    }
    if (pthread_create(&c->thread, NULL, console_main, c) != 0) {
        restore_tty();
        close(c->wake);
        free(c);
        return NULL;
    }
    return c;
}

void console_kick(struct console *c)
{
    uint64_t one = 1;
    if (c && write(c->wake, &one, 8) < 0) {
        /* a full eventfd still wakes the thread */
    }
}

void console_stop(struct console *c)
{
    if (!c)
        return;
    __atomic_store_n(&c->stop, true, __ATOMIC_RELEASE);
    console_kick(c);
    pthread_join(c->thread, NULL);
    if (c->raw)
        restore_tty();
    close(c->wake);
    free(c);
}
