/* SPDX-License-Identifier: MIT */
/* bench/exitloop: exits per second through the HAV API next to a raw KVM_RUN loop, same guest,
 * same run, interleaved; prints medians and the ratio (HAV's cost is 1 - ratio). */
#include "../src/hav/hav_rawloop.h"
#include "guests/harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* One run through HAV: returns exits per second, or -1; *launch: hav_open to first exit. */
static double hav_run(uint64_t iterations, int ring, double *launch)
{
    struct harness h;
    double start = now();
    if (harness_open(&h, "loop", NULL, 1, ring, 0) < 0)
        return -1;
    struct hav_x86_state st;
    harness_initial_state(&st, 0, ring);
    st.gprs.rdi = iterations;
    double rate = -1;
    if (hav_vcpu_set_state(h.vcpu[0], &st, HAV_X86_GPRS) < 0)
        goto out;
    struct hav_exit e;
    uint64_t n = 0;
    double t0 = now();
    for (;;) {
        if (hav_vcpu_run(h.vcpu[0], &e) < 0 || e.reason != HAV_EXIT_IO) {
            fprintf(stderr, "exitloop: HAV run failed: %s\n", hav_last_error());
            goto out;
        }
        if (n == 0)
            *launch = now() - start;
        if (e.u.io.port == PORT_DONE)
            break;
        n++;
    }
    double dt = now() - t0;
    if (n != iterations) {
        fprintf(stderr, "exitloop: HAV saw %llu exits, expected %llu\n", (unsigned long long)n,
                (unsigned long long)iterations);
        goto out;
    }
    rate = (double)n / dt;
out:
    harness_close(&h);
    return rate;
}

/* The same guest image and state, run by the raw loop. */
static double raw_run(uint64_t iterations, int ring, double *launch)
{
    struct harness h;
    if (harness_open(&h, "loop", NULL, 0, ring, 0) < 0)
        return -1;
    struct hav_x86_state st;
    harness_initial_state(&st, 0, ring);
    st.gprs.rdi = iterations;
    uint64_t n = 0;
    double dt = 0, rate = -1;
    if (hav_kvm_rawloop(h.ram, GUEST_RAM_SIZE, &st, PORT_DONE, &n, &dt, launch) < 0)
        fprintf(stderr, "exitloop: %s\n", hav_last_error());
    else if (n != iterations)
        fprintf(stderr, "exitloop: raw loop saw %llu exits, expected %llu\n", (unsigned long long)n,
                (unsigned long long)iterations);
    else
        rate = (double)n / dt;
    harness_close(&h);
    return rate;
}

int main(int argc, char **argv)
{
    uint64_t iterations = 100000;
    int runs = 5, ring = 3;
    double limit = 0; /* --max-cost PCT: fail when HAV costs more */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iterations") && i + 1 < argc)
            iterations = strtoull(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ring") && i + 1 < argc)
            ring = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--max-cost") && i + 1 < argc)
            limit = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: exitloop [--iterations N] [--runs N] [--ring 0|3] "
                            "[--max-cost PCT]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 99 || iterations == 0 || (ring != 0 && ring != 3)) {
        fprintf(stderr, "exitloop: --runs must be 1-99, --iterations > 0, --ring 0 or 3\n");
        return 2;
    }
    double hav[99], raw[99], ratios[99], hav_launch[99], raw_launch[99];
    for (int i = 0; i < runs; i++) {
        /* Alternate which goes first so drift in machine load hits both alike. */
        if (i % 2) {
            raw[i] = raw_run(iterations, ring, &raw_launch[i]);
            hav[i] = hav_run(iterations, ring, &hav_launch[i]);
        } else {
            hav[i] = hav_run(iterations, ring, &hav_launch[i]);
            raw[i] = raw_run(iterations, ring, &raw_launch[i]);
        }
        if (hav[i] < 0 || raw[i] < 0)
            return 1;
        /* A pair ran back to back, so its ratio is robust to load that changes between runs. */
        ratios[i] = hav[i] / raw[i];
        printf("run %d: hav %.0f exits/s, raw %.0f exits/s, ratio %.4f\n", i + 1, hav[i], raw[i],
               ratios[i]);
    }
    double mh = median(hav, runs), mr = median(raw, runs);
    double ratio = median(ratios, runs);
    printf("exitloop: %llu port writes in ring %d, median of %d runs\n",
           (unsigned long long)iterations, ring, runs);
    printf("exitloop: hav %.0f exits/s, raw ioctl loop %.0f exits/s (medians)\n", mh, mr);
    printf("exitloop: ratio hav/raw %.4f (median of per-run ratios): HAV costs %.2f%%\n", ratio,
           (1 - ratio) * 100);
    printf("exitloop: launch to first exit: hav %.2f ms, raw ioctl loop %.2f ms (medians)\n",
           median(hav_launch, runs) * 1e3, median(raw_launch, runs) * 1e3);
    if (limit > 0 && (1 - ratio) * 100 > limit) {
        printf("exitloop: HAV costs more than %.1f%%\n", limit);
        return 1;
    }
    return 0;
}
