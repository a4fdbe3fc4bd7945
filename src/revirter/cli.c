/* SPDX-License-Identifier: MIT */
/* revirter's command line, modelled on what QEMU and kvmtool users type. */
#include "cli.h"

#include "revirt/hav.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cli_usage[] =
    "usage: revirter run --kernel FILE [options]\n"
    "       revirter --help | --version\n"
    "\n"
    "Boot a kernel in a virtual machine; the guest's serial console is this terminal.\n"
    "\n"
    "  --kernel FILE        bzImage, ELF vmlinux with a PVH note, or multiboot kernel\n"
    "  --initrd FILE        initial ramdisk\n"
    "  --cmdline STR        kernel command line (default \"" VMM_DEFAULT_CMDLINE "\")\n"
    "  --cpus N             vCPUs, 1-254 (default 1)\n"
    "  --memory SIZE        guest RAM: 256M, 1G, ... (default 256M)\n"
    "  --on-reboot=ACTION   exit (default) or restart when the guest reboots\n"
    "  --debug-exit         port 0xf4 ends the VM with status (value << 1) | 1\n"
    "  --hav NAME           virtualization backend (default: auto, or $REVIRT_HAV)\n"
    "  --irqchip=MODE       kernel: the backend's interrupt controllers and PIT; user:\n"
    "                       revirter's own (local APICs, IOAPIC, PICs, PIT); default:\n"
    "                       kernel where the backend has them, else user\n"
    "  --serial2 PATH       COM2 (16550A at 0x2f8, IRQ 3, the guest's ttyS1): its output is\n"
    "                       written to PATH (created or truncated at start, kept across\n"
    "                       guest reboots); it has no input\n"
    "\n"
    "Devices (virtio over PCI with MSI-X; see docs/devices.md):\n"
    "  --disk PATH[,ro][,id=NAME][,direct=off][,aio=uring|threads]\n"
    "                                  virtio-blk on a raw image (repeatable); aio: I/O\n"
    "                                  through io_uring or worker threads (default: io_uring\n"
    "                                  where the kernel allows it, else threads)\n"
    "  --net tap=IFNAME[,mac=MAC][,vhost=on]\n"
    "  --net user[,mac=MAC][,hostfwd=[tcp|udp]:[ADDR]:HOSTPORT-[ADDR]:GUESTPORT]...\n"
    "                                  virtio-net on a TAP device or user-mode (libslirp)\n"
    "  --rng                           virtio-rng fed by getrandom()\n"
    "  --console serial|virtio         guest console on the UART (default) or hvc0\n"
    "  --vsock cid=N,uds=PATH          virtio-vsock, host side on Unix sockets\n"
    "\n"
    "Exit status: 0 guest power-off or reboot, 1 guest crash (triple fault) or VMM error,\n"
    "2 bad command line. Console: Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A.\n";

static enum cli_action fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return CLI_ERROR;
}

int cli_parse_size(const char *s, uint64_t *out)
{
    if (!s || !isdigit((unsigned char)s[0]))
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -1;
    unsigned shift = 0;
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        shift = 10;
        end++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        end++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        end++;
        break;
    case 't':
    case 'T':
        shift = 40;
        end++;
        break;
    default:
        return -1;
    }
    if ((*end == 'i' || *end == 'I') && shift) /* 256MiB */
        end++;
    if ((*end == 'b' || *end == 'B') && shift)
        end++;
    if (*end || (shift && v > (UINT64_MAX >> shift)))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

/* --flag VALUE or --flag=VALUE; *i advances past what was used. NULL if the value is missing. */
static const char *value_of(int argc, char *const *argv, int *i, const char *flag)
{
    const char *a = argv[*i];
    size_t n = strlen(flag);
    if (a[n] == '=')
        return a + n + 1;
    if (*i + 1 < argc) {
        (*i)++;
        return argv[*i];
    }
    return NULL;
}

static bool is_flag(const char *arg, const char *flag)
{
    size_t n = strlen(flag);
    return !strncmp(arg, flag, n) && (arg[n] == '\0' || arg[n] == '=');
}

/* A backend name is checked here, with the other flags, so that a typo is bad input (status 2)
 * on every machine; whether the backend works here is only known once it is opened. */
static bool known_backend(const char *name, char *err, size_t err_len)
{
    const char *const *names = hav_backend_list();
    char list[128] = "";
    size_t used = 0;
    if (!strcmp(name, "auto"))
        return true;
    for (size_t i = 0; names[i]; i++) {
        if (!strcmp(names[i], name))
            return true;
        int n = snprintf(list + used, sizeof(list) - used, "%s%s", used ? ", " : "", names[i]);
        if (n > 0 && (size_t)n < sizeof(list) - used)
            used += (size_t)n;
    }
    fail(err, err_len, "--hav: no HAV backend named '%s' (built in: %s, or auto)", name, list);
    return false;
}

enum cli_action cli_parse(int argc, char *const *argv, struct vmm_config *cfg, char *err,
                          size_t err_len)
{
    *cfg = (struct vmm_config){.cpus = 1, .memory = 256ull << 20};
    if (argc < 2)
        return fail(err, err_len, "no command given (try --help)");
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))
        return CLI_HELP;
    if (!strcmp(argv[1], "--version"))
        return CLI_VERSION;
    if (strcmp(argv[1], "run"))
        return fail(err, err_len, "unknown command '%s' (the command is 'run'; try --help)",
                    argv[1]);
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h"))
            return CLI_HELP;
        if (!strcmp(a, "--version"))
            return CLI_VERSION;
        if (!strcmp(a, "--debug-exit")) {
            cfg->debug_exit = true;
            continue;
        }
        if (!strcmp(a, "--rng")) {
            cfg->rng = true;
            continue;
        }
        static const char *const with_value[] = {
            "--kernel", "--initrd", "--cmdline", "--cpus",  "--memory",  "--on-reboot", "--hav",
            "--disk",   "--net",    "--console", "--vsock", "--serial2", "--irqchip"};
        const char *flag = NULL;
        for (size_t k = 0; k < sizeof(with_value) / sizeof(with_value[0]); k++)
            if (is_flag(a, with_value[k]))
                flag = with_value[k];
        if (!flag)
            return fail(err, err_len, "%s: unknown option (try --help)", a);
        if (!(v = value_of(argc, argv, &i, flag)))
            return fail(err, err_len, "%s: needs a value", flag);
        int r = 0;
        if (!strcmp(flag, "--disk"))
            r = cli_parse_disk(cfg, v, err, err_len);
        else if (!strcmp(flag, "--net"))
            r = cli_parse_net(cfg, v, err, err_len);
        else if (!strcmp(flag, "--vsock"))
            r = cli_parse_vsock(cfg, v, err, err_len);
        else if (!strcmp(flag, "--console"))
            r = cli_parse_console(cfg, v, err, err_len);
        if (r < 0)
            return CLI_ERROR;
        if (!strcmp(flag, "--kernel")) {
            if (!*v)
                return fail(err, err_len, "--kernel: empty file name");
            cfg->kernel = v;
        } else if (!strcmp(flag, "--initrd")) {
            if (!*v)
                return fail(err, err_len, "--initrd: empty file name");
            cfg->initrd = v;
        } else if (!strcmp(flag, "--cmdline")) {
            cfg->cmdline = v;
        } else if (!strcmp(flag, "--serial2")) {
            if (!*v)
                return fail(err, err_len, "--serial2: empty file name");
            if (cfg->serial2)
                return fail(err, err_len, "--serial2: given twice (there is one COM2)");
            cfg->serial2 = v;
        } else if (!strcmp(flag, "--hav")) {
            if (!known_backend(v, err, err_len))
                return CLI_ERROR;
            cfg->hav = v;
        } else if (!strcmp(flag, "--cpus")) {
            char *end;
            errno = 0;
            unsigned long n = strtoul(v, &end, 10);
            if (!isdigit((unsigned char)*v) || *end || errno || n < 1 || n > VMM_MAX_CPUS)
                return fail(err, err_len, "--cpus: '%s' is not a number from 1 to %u", v,
                            VMM_MAX_CPUS);
            cfg->cpus = (unsigned)n;
        } else if (!strcmp(flag, "--memory")) {
            uint64_t m;
            if (cli_parse_size(v, &m) < 0)
                return fail(err, err_len, "--memory: '%s' is not a size (use 256M, 1G)", v);
            if (m < (16ull << 20))
                return fail(err, err_len, "--memory: %s is too small (at least 16M)", v);
            if (m > (1ull << 40))
                return fail(err, err_len, "--memory: %s is too large (at most 1T)", v);
            if (m % 4096)
                return fail(err, err_len, "--memory: %s is not a multiple of 4K", v);
            cfg->memory = m;
        } else if (!strcmp(flag, "--irqchip")) {
            if (!strcmp(v, "kernel"))
                cfg->irqchip = VMM_IRQCHIP_KERNEL;
            else if (!strcmp(v, "user"))
                cfg->irqchip = VMM_IRQCHIP_USER;
            else
                return fail(err, err_len, "--irqchip: '%s' is not 'kernel' or 'user'", v);
        } else if (!strcmp(flag, "--on-reboot")) {
            if (!strcmp(v, "exit"))
                cfg->on_reboot = VMM_REBOOT_EXIT;
            else if (!strcmp(v, "restart"))
                cfg->on_reboot = VMM_REBOOT_RESTART;
            else
                return fail(err, err_len, "--on-reboot: '%s' is not 'exit' or 'restart'", v);
        }
    }
    if (!cfg->kernel)
        return fail(err, err_len, "--kernel: missing (the kernel to boot is required)");
    return CLI_RUN;
}
