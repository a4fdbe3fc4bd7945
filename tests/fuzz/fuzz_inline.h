/* SPDX-License-Identifier: MIT */
/* Fuzz targets' choice between inline devices (run on the target's thread) and real threads. */
#ifndef REVIRT_TESTS_FUZZ_INLINE_H
#define REVIRT_TESTS_FUZZ_INLINE_H

#include <stdbool.h>
#include <stddef.h>

#include "sys/ioloop.h"
#include "sys/workpool.h"

/*
 * Most inputs run their device's I/O loop and worker pool inline (ioloop_set_inline): the
 * target's waits run the device's callbacks on its own thread, so an input costs what the
 * device does, not thread starts, joins and wake-ups. One input in FUZZ_THREADED_EVERY runs
 * the real threads instead, so the threaded loop, the workers and their races stay fuzzed. The
 * choice goes by the input's length, so that a finding replays alone the same way.
 */
#define FUZZ_THREADED_EVERY 64u

static inline bool fuzz_threaded(size_t size)
{
    return size % FUZZ_THREADED_EVERY == FUZZ_THREADED_EVERY - 1;
}

/* Loops and pools created from now on: inline, or with threads. */
static inline void fuzz_set_inline(bool on)
{
    ioloop_set_inline(on);
    workpool_set_inline(on);
}

/* Run inline devices until none has anything ready (bounded: a device that keeps an fd ready
 * without consuming it must not hang the target; the next wait runs it again). */
static inline void fuzz_run_inline(void)
{
    for (unsigned i = 0; i < 256 && ioloop_poll_inline(0) > 0; i++)
        ;
}

#endif
