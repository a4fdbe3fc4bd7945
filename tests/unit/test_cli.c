/* SPDX-License-Identifier: MIT */
/* revirter's command line: good flags parse, every bad one gets a message naming the flag. */
#include "check.h"
#include "vmm/cli.h"

#include <stdarg.h>

static enum cli_action parse(struct vmm_config *c, char *err, int argc, ...)
{
    char *argv[16];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    return cli_parse(argc, argv, c, err, 200);
}

static void test_good(void)
{
    struct vmm_config c;
    char err[200] = "";
    CHECK_EQ(parse(&c, err, 12, "revirter", "run", "--kernel", "vmlinuz", "--initrd=rd.gz",
                   "--cmdline", "console=ttyS0 quiet", "--cpus", "4", "--memory=1G",
                   "--on-reboot=restart", "--debug-exit"),
             CLI_RUN);
    CHECK(!strcmp(c.kernel, "vmlinuz") && !strcmp(c.initrd, "rd.gz"), "files");
    CHECK(!strcmp(c.cmdline, "console=ttyS0 quiet"), "cmdline");
    CHECK_EQ(c.cpus, 4);
    CHECK_EQ(c.memory, 1ull << 30);
    CHECK_EQ(c.on_reboot, VMM_REBOOT_RESTART);
    CHECK(c.debug_exit, "debug exit");
    CHECK_EQ(parse(&c, err, 4, "revirter", "run", "--kernel", "k"), CLI_RUN);
    CHECK(c.cpus == 1 && c.memory == 256ull << 20 && !c.initrd && !c.debug_exit, "defaults");
    CHECK_EQ(parse(&c, err, 2, "revirter", "--help"), CLI_HELP);
    CHECK_EQ(parse(&c, err, 2, "revirter", "--version"), CLI_VERSION);
    CHECK_EQ(parse(&c, err, 3, "revirter", "run", "--help"), CLI_HELP);
}

static void bad(const char *why, const char *expect, int argc, char *a2, char *a3, char *a4,
                char *a5)
{
    struct vmm_config c;
    char err[200] = "";
    char *argv[] = {"revirter", "run", a2, a3, a4, a5};
    CHECK(cli_parse(argc, argv, &c, err, sizeof(err)) == CLI_ERROR, "%s: accepted", why);
    CHECK(strstr(err, expect) != NULL, "%s: message '%s' lacks '%s'", why, err, expect);
}

static void test_bad(void)
{
    bad("no kernel", "--kernel", 2, NULL, NULL, NULL, NULL);
    bad("unknown flag", "--frobnicate", 3, "--frobnicate", NULL, NULL, NULL);
    bad("missing value", "--cpus: needs a value", 5, "--kernel", "k", "--cpus", NULL);
    bad("zero cpus", "--cpus: '0'", 6, "--kernel", "k", "--cpus", "0");
    bad("too many cpus", "--cpus: '255'", 6, "--kernel", "k", "--cpus", "255");
    bad("junk cpus", "--cpus: '2x'", 6, "--kernel", "k", "--cpus", "2x");
    bad("negative cpus", "--cpus: '-1'", 6, "--kernel", "k", "--cpus", "-1");
    bad("junk memory", "--memory: '12Q'", 6, "--kernel", "k", "--memory", "12Q");
    bad("tiny memory", "too small", 6, "--kernel", "k", "--memory", "1M");
    bad("huge memory", "too large", 6, "--kernel", "k", "--memory", "2T");
    bad("odd memory", "multiple of 4K", 6, "--kernel", "k", "--memory", "16777217");
    bad("bad reboot", "--on-reboot: 'later'", 5, "--kernel", "k", "--on-reboot=later", NULL);
    bad("empty kernel", "--kernel: empty", 3, "--kernel=", NULL, NULL, NULL);
    struct vmm_config c;
    char err[200];
    char *argv[] = {"revirter", "boot"};
    CHECK_EQ(cli_parse(2, argv, &c, err, sizeof(err)), CLI_ERROR);
    CHECK(strstr(err, "unknown command 'boot'") != NULL, "%s", err);
    CHECK_EQ(cli_parse(1, argv, &c, err, sizeof(err)), CLI_ERROR);
}

static void test_sizes(void)
{
    uint64_t v;
    CHECK(cli_parse_size("256M", &v) == 0 && v == 256ull << 20, "256M");
    CHECK(cli_parse_size("2G", &v) == 0 && v == 2ull << 30, "2G");
    CHECK(cli_parse_size("512MiB", &v) == 0 && v == 512ull << 20, "512MiB");
    CHECK(cli_parse_size("4096", &v) == 0 && v == 4096, "bytes");
    CHECK(cli_parse_size("", &v) < 0, "empty");
    CHECK(cli_parse_size("M", &v) < 0, "no digits");
    CHECK(cli_parse_size("1GG", &v) < 0, "double suffix");
    CHECK(cli_parse_size("99999999999T", &v) < 0, "overflow");
    CHECK(cli_parse_size("18446744073709551616", &v) < 0, "overflow of the number");
}

int main(void)
{
    RUN(test_good);
    RUN(test_bad);
    RUN(test_sizes);
    return check_done();
}
