/* SPDX-License-Identifier: MIT */
/* Standalone fuzz driver: replays seed inputs, then runs bounded random mutations of them. */

/*
 * Usage: fuzz_<target> [-t SECONDS] [-n RUNS] [-s SEED] [-m MAX_LEN] [PATH...]
 *
 * Every PATH (a file, or a directory whose regular files are read) is a seed and is run once
 * as is. Then, until SECONDS (default 5) have passed or RUNS mutated inputs (default
 * unlimited) have run, a seed is picked, mutated (bit flips, interesting integers at random
 * offsets, truncation, insertion, deletion, splicing with another seed) and run. Each input
 * is passed in a heap buffer of exactly its size, so a sanitizer catches any read past it.
 * There is no coverage feedback: this is the portable fallback for libFuzzer
 * (run-libfuzzer.sh), good enough to shake out crashes near the seeds in every build.
 *
 * On a crash (signal, or a sanitizer's death callback) the input is written to
 * crash-<target>-<pid>.bin in the current directory (or $FUZZ_ARTIFACT_DIR) and the program
 * dies with the original signal. The run is reproducible from the printed seed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Present only in sanitized builds; lets the driver save the input before the sanitizer exits. */
extern void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));

struct input {
    uint8_t *data;
    size_t size;
};

static struct input *seeds;
static size_t nseeds, seeds_cap;
static const char *target = "fuzz";

/* The input being run, for the crash handler. */
static const uint8_t *volatile cur_data;
static volatile size_t cur_size;
static char crash_path[4096];

static void save_crash(void)
{
    /* Async-signal-safe only: open, write, close. */
    const uint8_t *d = cur_data;
    size_t n = cur_size;
    int fd = open(crash_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return;
    while (d && n) {
        ssize_t w = write(fd, d, n);
        if (w <= 0)
            break;
        d += w;
        n -= (size_t)w;
    }
    close(fd);
    static const char msg[] = "fuzz: crashing input saved to ";
    (void)!write(2, msg, sizeof(msg) - 1);
    (void)!write(2, crash_path, strlen(crash_path));
    (void)!write(2, "\n", 1);
}

static void on_signal(int sig)
{
    save_crash();
    signal(sig, SIG_DFL);
    raise(sig);
}

/* An exact-size heap copy (never NULL), so that reading one byte past the end is caught. */
static uint8_t *dup_exact(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) {
        perror("malloc");
        exit(2);
    }
    if (size)
        memcpy(copy, data, size);
    return copy;
}

static void add_seed(const uint8_t *data, size_t size)
{
    if (nseeds == seeds_cap) {
        seeds_cap = seeds_cap ? 2 * seeds_cap : 16;
        seeds = realloc(seeds, seeds_cap * sizeof(*seeds));
        if (!seeds) {
            perror("realloc");
            exit(2);
        }
    }
    uint8_t *copy = dup_exact(data, size);
    seeds[nseeds++] = (struct input){copy, size};
}

static void read_file(const char *path, size_t max_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "%s: %s: %s\n", target, path, strerror(errno));
        exit(2);
    }
    uint8_t *buf = malloc(max_len);
    if (!buf) {
        perror("malloc");
        exit(2);
    }
    size_t n = fread(buf, 1, max_len, f);
    fclose(f);
    add_seed(buf, n);
    free(buf);
}

static void read_path(const char *path, size_t max_len)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "%s: %s: %s\n", target, path, strerror(errno));
        exit(2);
    }
    if (!S_ISDIR(sb.st_mode)) {
        read_file(path, max_len);
        return;
    }
    struct dirent **names;
    int n = scandir(path, &names, NULL, alphasort); /* sorted: the same order every run */
    if (n < 0) {
        fprintf(stderr, "%s: %s: %s\n", target, path, strerror(errno));
        exit(2);
    }
    for (int i = 0; i < n; i++) {
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", path, names[i]->d_name);
        if (stat(full, &sb) == 0 && S_ISREG(sb.st_mode))
            read_file(full, max_len);
        free(names[i]);
    }
    free(names);
}

/* xorshift64*: small, fast, reproducible from the seed. */
static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static size_t below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

/* Values that sit on the edges parsers get wrong: zero, one, sign bits, all ones, page and
 * megabyte boundaries, and the size of the input itself. */
static uint64_t interesting(size_t size)
{
    static const uint64_t v[] = {
        0,
        1,
        2,
        4,
        0x7f,
        0x80,
        0xff,
        0x100,
        0x200,
        0x1000,
        0x7fff,
        0x8000,
        0xffff,
        0x10000,
        0x100000,
        0x1000000,
        0x7fffffff,
        0x80000000,
        0xfffff000,
        0xffffffff,
        0x100000000ull,
        0x7fffffffffffffffull,
        0x8000000000000000ull,
        0xfffffffffffff000ull,
        0xffffffffffffffffull,
    };
    switch (below(4)) {
    case 0:
        return size + below(16) - 8;
    case 1:
        return rnd();
    default:
        return v[below(sizeof(v) / sizeof(v[0]))];
    }
}

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Apply one mutation to buf[0..*size) (capacity cap). */
static void mutate_once(uint8_t *buf, size_t *size, size_t cap)
{
    size_t n = *size;
    static const unsigned widths[] = {1, 2, 4, 8};

    switch (below(11)) {
    case 0: /* flip a bit */
        if (n)
            buf[below(n)] ^= (uint8_t)(1u << below(8));
        break;
    case 1: /* random byte */
        if (n)
            buf[below(n)] = (uint8_t)rnd();
        break;
    case 2:
    case 3: { /* interesting integer, often aligned as header fields are */
        unsigned w = widths[below(4)];
        if (n < w)
            break;
        size_t off = below(n - w + 1);
        if (below(2))
            off &= ~(size_t)(w - 1);
        put_le(buf + off, interesting(n), w);
        break;
    }
    case 4: { /* small arithmetic on a 32-bit field */
        if (n < 4)
            break;
        size_t off = below(n - 3) & ~(size_t)3;
        uint32_t v = (uint32_t)buf[off] | (uint32_t)buf[off + 1] << 8 |
                     (uint32_t)buf[off + 2] << 16 | (uint32_t)buf[off + 3] << 24;
        put_le(buf + off, v + (uint32_t)below(65) - 32, 4);
        break;
    }
    case 5: /* truncate */
        *size = below(n + 1);
        break;
    case 6: { /* insert random bytes */
        size_t len = 1 + below(64), off = below(n + 1);
        if (n + len > cap)
            break;
        memmove(buf + off + len, buf + off, n - off);
        for (size_t i = 0; i < len; i++)
            buf[off + i] = (uint8_t)rnd();
        *size = n + len;
        break;
    }
    case 7: { /* delete a chunk */
        if (!n)
            break;
        size_t off = below(n), len = 1 + below(n - off);
        memmove(buf + off, buf + off + len, n - off - len);
        *size = n - len;
        break;
    }
    case 8: { /* copy a chunk within the input */
        if (n < 2)
            break;
        size_t from = below(n), to = below(n), len = 1 + below(64);
        if (len > n - from)
            len = n - from;
        if (len > n - to)
            len = n - to;
        memmove(buf + to, buf + from, len);
        break;
    }
    case 9: { /* splice: the same range from another seed */
        const struct input *o = &seeds[below(nseeds)];
        size_t off = below(o->size + 1), len = below(256);
        if (off > n)
            off = n; /* never leave a gap of stale bytes */
        if (len > o->size - off)
            len = off < o->size ? o->size - off : 0;
        if (off + len > cap)
            break;
        memcpy(buf + off, o->data + off, len);
        if (off + len > n)
            *size = off + len;
        break;
    }
    case 10: /* fill a run with one byte */
        if (n) {
            size_t off = below(n), len = 1 + below(32);
            if (len > n - off)
                len = n - off;
            memset(buf + off, below(2) ? 0xff : 0, len);
        }
        break;
    }
}

static void run_one(const uint8_t *data, size_t size)
{
    uint8_t *copy = dup_exact(data, size);
    cur_data = copy;
    cur_size = size;
    LLVMFuzzerTestOneInput(copy, size);
    cur_data = NULL;
    cur_size = 0;
    free(copy);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void usage(void)
{
    fprintf(stderr, "usage: %s [-t SECONDS] [-n RUNS] [-s SEED] [-m MAX_LEN] [PATH...]\n", target);
    exit(2);
}

int main(int argc, char **argv)
{
    double seconds = 5;
    uint64_t max_runs = UINT64_MAX, seed = 0;
    size_t max_len = 1 << 20;
    int opt;

    const char *slash = strrchr(argv[0], '/');
    target = slash ? slash + 1 : argv[0];
    while ((opt = getopt(argc, argv, "t:n:s:m:h")) != -1) {
        switch (opt) {
        case 't':
            seconds = strtod(optarg, NULL);
            break;
        case 'n':
            max_runs = strtoull(optarg, NULL, 0);
            break;
        case 's':
            seed = strtoull(optarg, NULL, 0);
            break;
        case 'm':
            max_len = strtoull(optarg, NULL, 0);
            break;
        default:
            usage();
        }
    }
    if (max_len == 0)
        usage();
    if (seed == 0)
        seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    rng_state = seed | 1;

    const char *dir = getenv("FUZZ_ARTIFACT_DIR");
    snprintf(crash_path, sizeof(crash_path), "%s/crash-%s-%ld.bin", dir ? dir : ".", target,
             (long)getpid());
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        signal(sigs[i], on_signal);
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(save_crash);

    for (int i = optind; i < argc; i++)
        read_path(argv[i], max_len);
    if (nseeds == 0)
        add_seed(NULL, 0);

    for (size_t i = 0; i < nseeds; i++)
        run_one(seeds[i].data, seeds[i].size);

    /* Mutants may grow a little past the largest seed, never past max_len. */
    size_t cap = 0;
    for (size_t i = 0; i < nseeds; i++)
        if (seeds[i].size > cap)
            cap = seeds[i].size;
    cap = cap + 4096 < max_len ? cap + 4096 : max_len;
    uint8_t *buf = malloc(cap);
    if (!buf) {
        perror("malloc");
        return 2;
    }

    const double start = now();
    uint64_t runs = 0;
    while (runs < max_runs) {
        if ((runs & 63) == 0 && now() - start >= seconds)
            break;
        const struct input *s = &seeds[below(nseeds)];
        size_t size = s->size < cap ? s->size : cap;
        memcpy(buf, s->data, size);
        unsigned k = 1 + (unsigned)below(8);
        for (unsigned j = 0; j < k; j++)
            mutate_once(buf, &size, cap);
        run_one(buf, size);
        runs++;
    }
    free(buf);
    printf("%s: %zu seeds, %" PRIu64 " mutated runs in %.1f s, seed 0x%" PRIx64 "\n", target,
           nseeds, runs, now() - start, seed);
    for (size_t i = 0; i < nseeds; i++)
        free(seeds[i].data);
    free(seeds);
    return 0;
}
