/* SPDX-License-Identifier: MIT */
/* For tests of what reaches the host's log: run a function with stderr sent to a temporary file
 * and count the lines it wrote. */
#ifndef REVIRT_TESTS_STDERR_CAPTURE_H
#define REVIRT_TESTS_STDERR_CAPTURE_H

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Run fn(arg) with stderr (fd 2) going to a temporary file; returns how many lines it wrote,
 * and the last of them in last (len bytes, may be NULL). */
static inline unsigned stderr_capture(void (*fn)(void *), void *arg, char *last, size_t len)
{
    FILE *tmp = tmpfile();
    if (!tmp)
        return 0;
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    dup2(fileno(tmp), STDERR_FILENO);
    fn(arg);
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    unsigned lines = 0;
    char buf[1024];
    if (last && len)
        last[0] = '\0';
    while (fgets(buf, sizeof(buf), tmp)) {
        lines++;
        size_t k = strlen(buf);
        if (last && len) {
            k = k < len - 1 ? k : len - 1;
            memcpy(last, buf, k);
            last[k] = '\0';
        }
    }
    fclose(tmp);
    return lines;
}

#endif
