/* SPDX-License-Identifier: MIT */
/* revirter's command line: good flags parse, every bad one gets a message naming the flag. */
#include "check.h"
#include "revirter/cli.h"

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
    CHECK_EQ(c.irqchip, VMM_IRQCHIP_AUTO);
    CHECK_EQ(parse(&c, err, 5, "revirter", "run", "--kernel", "k", "--irqchip=user"), CLI_RUN);
    CHECK_EQ(c.irqchip, VMM_IRQCHIP_USER);
    CHECK_EQ(parse(&c, err, 6, "revirter", "run", "--kernel", "k", "--irqchip", "kernel"), CLI_RUN);
    CHECK_EQ(c.irqchip, VMM_IRQCHIP_KERNEL);
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
    bad("bad irqchip", "--irqchip: 'split' is not", 5, "--kernel", "k", "--irqchip=split", NULL);
    bad("empty irqchip", "--irqchip: needs a value", 5, "--kernel", "k", "--irqchip", NULL);
    bad("empty kernel", "--kernel: empty", 3, "--kernel=", NULL, NULL, NULL);
    bad("unknown backend", "--hav: no HAV backend named 'nosuch'", 6, "--kernel", "k", "--hav",
        "nosuch");
    struct vmm_config c;
    char err[200];
    char *argv[] = {"revirter", "boot"};
    CHECK_EQ(cli_parse(2, argv, &c, err, sizeof(err)), CLI_ERROR);
    CHECK(strstr(err, "unknown command 'boot'") != NULL, "%s", err);
    CHECK_EQ(cli_parse(1, argv, &c, err, sizeof(err)), CLI_ERROR);
}

static void test_devices(void)
{
    struct vmm_config c;
    char err[200] = "";
    char *argv[] = {"revirter",
                    "run",
                    "--kernel",
                    "k",
                    "--disk",
                    "root.img",
                    "--disk=data.img,ro,id=serial-1,direct=off,aio=threads",
                    "--disk",
                    "fast.img,aio=uring",
                    "--net",
                    "tap=tap0,mac=52:54:00:12:34:56,vhost=on",
                    "--net",
                    "user,hostfwd=tcp::2222-:22,hostfwd=udp:127.0.0.1:53-10.0.2.15:53",
                    "--rng",
                    "--console",
                    "virtio",
                    "--vsock",
                    "cid=3,uds=/tmp/v.sock"};
    CHECK_EQ(cli_parse(18, argv, &c, err, sizeof(err)), CLI_RUN);
    CHECK(c.ndisks == 3 && !strcmp(c.disks[0].path, "root.img") && !c.disks[0].readonly &&
              !c.disks[0].id,
          "first disk");
    CHECK(!strcmp(c.disks[1].path, "data.img") && c.disks[1].readonly &&
              !strcmp(c.disks[1].id, "serial-1") && c.disks[1].buffered && !c.disks[0].buffered,
          "second disk");
    CHECK(c.disks[0].aio == VIRTIO_BLK_AIO_AUTO && c.disks[1].aio == VIRTIO_BLK_AIO_THREADS &&
              c.disks[2].aio == VIRTIO_BLK_AIO_URING && !strcmp(c.disks[2].path, "fast.img"),
          "aio: default, threads, uring");
    CHECK(c.nnics == 2 && c.nics[0].backend == VIRTIO_NET_TAP &&
              !strcmp(c.nics[0].ifname, "tap0") && c.nics[0].vhost && c.nics[0].has_mac &&
              c.nics[0].mac[5] == 0x56,
          "tap");
    const struct virtio_net_fwd *f = c.nics[1].fwd;
    CHECK(c.nics[1].backend == VIRTIO_NET_USER && c.nics[1].nfwd == 2, "user");
    CHECK(!f[0].udp && f[0].host_addr == 0 && f[0].host_port == 2222 && f[0].guest_port == 22,
          "tcp forward");
    CHECK(f[1].udp && f[1].host_addr == 0x7f000001 && f[1].guest_addr == 0x0a00020f &&
              f[1].guest_port == 53,
          "udp forward with addresses");
    CHECK(c.rng && c.console == VMM_CONSOLE_VIRTIO, "rng, console");
    CHECK(c.has_vsock && c.vsock.guest_cid == 3 && !strcmp(c.vsock.uds, "/tmp/v.sock"), "vsock");

    bad("disk without path", "--disk: missing image path", 6, "--kernel", "k", "--disk", ",ro");
    bad("disk option", "--disk: unknown option 'rw'", 6, "--kernel", "k", "--disk", "a,rw");
    bad("disk direct", "--disk: direct must be on or off", 6, "--kernel", "k", "--disk",
        "a,direct=maybe");
    bad("disk aio", "--disk: aio must be uring or threads", 6, "--kernel", "k", "--disk",
        "a,aio=posix");
    bad("disk empty aio", "--disk: aio must be uring or threads", 6, "--kernel", "k", "--disk",
        "a,aio=");
    bad("disk aio prefix", "--disk: aio must be uring or threads", 6, "--kernel", "k", "--disk",
        "a,aio=uringx");
    bad("disk id", "--disk: id must be", 6, "--kernel", "k", "--disk",
        "a,id=123456789012345678901");
    bad("net kind", "--net: 'bridge=br0'", 6, "--kernel", "k", "--net", "bridge=br0");
    bad("net mac", "--net: mac '01:00:00:00:00:01'", 6, "--kernel", "k", "--net",
        "tap=t,mac=01:00:00:00:00:01");
    bad("net fwd", "--net: hostfwd 'tcp::99999-:22'", 6, "--kernel", "k", "--net",
        "user,hostfwd=tcp::99999-:22");
    bad("fwd on tap", "--net: unknown option 'hostfwd", 6, "--kernel", "k", "--net",
        "tap=t,hostfwd=tcp::1-:2");
    bad("vhost on user", "--net: unknown option 'vhost=on'", 6, "--kernel", "k", "--net",
        "user,vhost=on");
    bad("vsock cid", "--vsock: cid '2'", 6, "--kernel", "k", "--vsock", "cid=2,uds=/x");
    bad("vsock uds", "--vsock: needs cid=N and uds=PATH", 6, "--kernel", "k", "--vsock", "cid=3");
    bad("console", "--console: 'hvc'", 6, "--kernel", "k", "--console", "hvc");
}

/* --serial2: COM2's output file; bad values are refused here, before any VM exists. */
static void test_serial2(void)
{
    struct vmm_config c;
    char err[200] = "";
    CHECK_EQ(parse(&c, err, 4, "revirter", "run", "--kernel", "k"), CLI_RUN);
    CHECK(c.serial2 == NULL, "no COM2 by default");
    CHECK_EQ(parse(&c, err, 6, "revirter", "run", "--kernel", "k", "--serial2", "out/r.txt"),
             CLI_RUN);
    CHECK(c.serial2 && !strcmp(c.serial2, "out/r.txt"), "--serial2 PATH");
    CHECK_EQ(parse(&c, err, 5, "revirter", "run", "--serial2=r.txt", "--kernel", "k"), CLI_RUN);
    CHECK(c.serial2 && !strcmp(c.serial2, "r.txt"), "--serial2=PATH");
    bad("serial2 without a value", "--serial2: needs a value", 5, "--kernel", "k", "--serial2",
        NULL);
    bad("empty serial2", "--serial2: empty file name", 5, "--kernel", "k", "--serial2=", NULL);
    bad("serial2 twice", "--serial2: given twice", 6, "--kernel", "k", "--serial2=a",
        "--serial2=b");
    CHECK(strstr(cli_usage, "--serial2 PATH") != NULL, "--help lists --serial2");
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
    RUN(test_devices);
    RUN(test_serial2);
    RUN(test_sizes);
    return check_done();
}
