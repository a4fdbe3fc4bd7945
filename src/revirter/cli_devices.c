/* SPDX-License-Identifier: MIT */
/* The device options of revirter's command line (--disk, --net, --rng, --console, --vsock):
 * comma-separated KEY=VALUE lists as QEMU and Firecracker users write them. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

static int fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Copy s[0..n) into the config's string storage; NULL when full. */
static const char *keep(struct vmm_config *cfg, const char *s, size_t n)
{
    if (n + 1 > sizeof(cfg->strings) - cfg->strings_used)
        return NULL;
    char *d = cfg->strings + cfg->strings_used;
    memcpy(d, s, n);
    d[n] = '\0';
    cfg->strings_used += n + 1;
    return d;
}

/* Next comma-separated item of *p (its start and length); advances *p; false at the end. */
static bool next_item(const char **p, const char **item, size_t *len)
{
    if (!*p)
        return false;
    const char *comma = strchr(*p, ',');
    *item = *p;
    *len = comma ? (size_t)(comma - *p) : strlen(*p);
    *p = comma ? comma + 1 : NULL;
    return true;
}

/* item is "key=..." (returns the value) */
static const char *key_value(const char *item, size_t len, const char *key, size_t *vlen)
{
    size_t k = strlen(key);
    if (len <= k || strncmp(item, key, k) || item[k] != '=')
        return NULL;
    *vlen = len - k - 1;
    return item + k + 1;
}

static bool parse_u32(const char *s, size_t len, uint32_t max, uint32_t *out)
{
    if (len == 0 || len > 10)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max)
        return false;
    *out = (uint32_t)v;
    return true;
}

static bool parse_mac(const char *s, size_t len, uint8_t mac[6])
{
    if (len != 17)
        return false;
    for (int i = 0; i < 6; i++) {
        if (!isxdigit((unsigned char)s[3 * i]) || !isxdigit((unsigned char)s[3 * i + 1]) ||
            (i < 5 && s[3 * i + 2] != ':'))
            return false;
        mac[i] = (uint8_t)strtoul((char[]){s[3 * i], s[3 * i + 1], 0}, NULL, 16);
    }
    /* A multicast source address would never be delivered back. */
    return !(mac[0] & 1);
}

/* "1.2.3.4" (len bytes, may be 0 for any) into host byte order. */
static bool parse_ipv4(const char *s, size_t len, uint32_t *out)
{
    *out = 0;
    if (len == 0)
        return true;
    uint32_t a = 0;
    const char *p = s, *end = s + len;
    for (int i = 0; i < 4; i++) {
        const char *q = p;
        while (q < end && *q != '.')
            q++;
        uint32_t byte;
        if (!parse_u32(p, (size_t)(q - p), 255, &byte) || (i < 3) != (q < end))
            return false;
        a = a << 8 | byte;
        p = q + 1;
    }
    *out = a;
    return true;
}

/* QEMU's form: [tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport */
static bool parse_hostfwd(const char *s, size_t len, struct virtio_net_fwd *f)
{
    const char *end = s + len;
    const char *c1 = memchr(s, ':', len);
    if (!c1)
        return false;
    if (c1 - s == 3 && !strncmp(s, "udp", 3))
        f->udp = true;
    else if (!(c1 == s || (c1 - s == 3 && !strncmp(s, "tcp", 3))))
        return false;
    const char *c2 = memchr(c1 + 1, ':', (size_t)(end - c1 - 1));
    const char *dash = c2 ? memchr(c2 + 1, '-', (size_t)(end - c2 - 1)) : NULL;
    const char *c3 = dash ? memchr(dash + 1, ':', (size_t)(end - dash - 1)) : NULL;
    uint32_t hp, gp;
    if (!c3 || !parse_ipv4(c1 + 1, (size_t)(c2 - c1 - 1), &f->host_addr) ||
        !parse_u32(c2 + 1, (size_t)(dash - c2 - 1), 65535, &hp) ||
        !parse_ipv4(dash + 1, (size_t)(c3 - dash - 1), &f->guest_addr) ||
        !parse_u32(c3 + 1, (size_t)(end - c3 - 1), 65535, &gp) || hp == 0 || gp == 0)
        return false;
    f->host_port = (uint16_t)hp;
    f->guest_port = (uint16_t)gp;
    return true;
}

int cli_parse_disk(struct vmm_config *cfg, const char *arg, char *err, size_t err_len)
{
    if (cfg->ndisks == VMM_MAX_DISKS)
        return fail(err, err_len, "--disk: at most %u disks", VMM_MAX_DISKS);
    struct virtio_blk_config *d = &cfg->disks[cfg->ndisks];
    *d = (struct virtio_blk_config){0};
    const char *p = arg, *item = "", *v;
    size_t len = 0, vlen = 0;
    next_item(&p, &item, &len);
    if (len == 0)
        return fail(err, err_len, "--disk: missing image path (--disk PATH[,ro][,id=NAME])");
    if (!(d->path = keep(cfg, item, len)))
        return fail(err, err_len, "--disk: options too long");
    while (next_item(&p, &item, &len)) {
        if (len == 2 && !strncmp(item, "ro", 2)) {
            d->readonly = true;
        } else if ((v = key_value(item, len, "id", &vlen))) {
            if (vlen == 0 || vlen > VIRTIO_BLK_ID_BYTES)
                return fail(err, err_len, "--disk: id must be 1 to %d characters",
                            VIRTIO_BLK_ID_BYTES);
            d->id = keep(cfg, v, vlen);
        } else if ((v = key_value(item, len, "direct", &vlen))) {
            if (vlen == 3 && !strncmp(v, "off", 3))
                d->buffered = true;
            else if (!(vlen == 2 && !strncmp(v, "on", 2)))
                return fail(err, err_len, "--disk: direct must be on or off");
        } else if ((v = key_value(item, len, "aio", &vlen))) {
            if (vlen == 5 && !strncmp(v, "uring", 5))
                d->aio = VIRTIO_BLK_AIO_URING;
            else if (vlen == 7 && !strncmp(v, "threads", 7))
                d->aio = VIRTIO_BLK_AIO_THREADS;
            else
                return fail(err, err_len, "--disk: aio must be uring or threads");
        } else {
            return fail(
                err, err_len,
                "--disk: unknown option '%.*s' (ro, id=NAME, direct=off, aio=uring|threads)",
                (int)len, item);
        }
    }
    cfg->ndisks++;
    return 0;
}

int cli_parse_net(struct vmm_config *cfg, const char *arg, char *err, size_t err_len)
{
    if (cfg->nnics == VMM_MAX_NICS)
        return fail(err, err_len, "--net: at most %u network devices", VMM_MAX_NICS);
    struct virtio_net_config *n = &cfg->nics[cfg->nnics];
    *n = (struct virtio_net_config){0};
    const char *p = arg, *item = "", *v;
    size_t len = 0, vlen = 0;
    next_item(&p, &item, &len);
    if ((v = key_value(item, len, "tap", &vlen))) {
        if (vlen == 0 || vlen >= 16)
            return fail(err, err_len, "--net: tap interface name must be 1 to 15 characters");
        n->backend = VIRTIO_NET_TAP;
        n->ifname = keep(cfg, v, vlen);
    } else if (len == 4 && !strncmp(item, "user", 4)) {
        n->backend = VIRTIO_NET_USER;
    } else {
        return fail(err, err_len, "--net: '%.*s': expected tap=IFNAME or user", (int)len, item);
    }
    while (next_item(&p, &item, &len)) {
        if ((v = key_value(item, len, "mac", &vlen))) {
            if (!parse_mac(v, vlen, n->mac))
                return fail(err, err_len, "--net: mac '%.*s' is not a unicast xx:xx:xx:xx:xx:xx",
                            (int)vlen, v);
            n->has_mac = true;
        } else if ((v = key_value(item, len, "vhost", &vlen)) && n->backend == VIRTIO_NET_TAP) {
            if (vlen == 2 && !strncmp(v, "on", 2))
                n->vhost = true;
            else if (!(vlen == 3 && !strncmp(v, "off", 3)))
                return fail(err, err_len, "--net: vhost must be on or off");
        } else if ((v = key_value(item, len, "hostfwd", &vlen)) && n->backend == VIRTIO_NET_USER) {
            if (n->nfwd == VIRTIO_NET_MAX_FWD)
                return fail(err, err_len, "--net: at most %d hostfwd rules", VIRTIO_NET_MAX_FWD);
            if (!parse_hostfwd(v, vlen, &n->fwd[n->nfwd]))
                return fail(err, err_len,
                            "--net: hostfwd '%.*s' is not [tcp|udp]:[HOSTADDR]:HOSTPORT-"
                            "[GUESTADDR]:GUESTPORT",
                            (int)vlen, v);
            n->nfwd++;
        } else {
            return fail(err, err_len, "--net: unknown option '%.*s' for %s", (int)len, item,
                        n->backend == VIRTIO_NET_TAP ? "tap (mac=, vhost=on|off)"
                                                     : "user (mac=, hostfwd=)");
        }
    }
    if (n->backend == VIRTIO_NET_TAP && !n->ifname)
        return fail(err, err_len, "--net: options too long");
    cfg->nnics++;
    return 0;
}

int cli_parse_vsock(struct vmm_config *cfg, const char *arg, char *err, size_t err_len)
{
    if (cfg->has_vsock)
        return fail(err, err_len, "--vsock: only one vsock device");
    struct virtio_vsock_config *s = &cfg->vsock;
    *s = (struct virtio_vsock_config){0};
    const char *p = arg, *item = "", *v;
    size_t len = 0, vlen = 0;
    bool has_cid = false;
    while (next_item(&p, &item, &len)) {
        if ((v = key_value(item, len, "cid", &vlen))) {
            if (!parse_u32(v, vlen, UINT32_MAX - 1, &s->guest_cid) || s->guest_cid < 3)
                return fail(err, err_len, "--vsock: cid '%.*s' must be a number from 3 to %u",
                            (int)vlen, v, UINT32_MAX - 1);
            has_cid = true;
        } else if ((v = key_value(item, len, "uds", &vlen))) {
            /* Leave room for "_<port>" that guest-initiated connections append. */
            if (vlen == 0 || vlen + 11 >= sizeof(((struct sockaddr_un *)0)->sun_path))
                return fail(err, err_len, "--vsock: uds path must be 1 to %zu characters",
                            sizeof(((struct sockaddr_un *)0)->sun_path) - 12);
            s->uds = keep(cfg, v, vlen);
        } else {
            return fail(err, err_len, "--vsock: unknown option '%.*s' (cid=N,uds=PATH)", (int)len,
                        item);
        }
    }
    if (!has_cid || !s->uds)
        return fail(err, err_len, "--vsock: needs cid=N and uds=PATH");
    cfg->has_vsock = true;
    return 0;
}

int cli_parse_console(struct vmm_config *cfg, const char *arg, char *err, size_t err_len)
{
    if (!strcmp(arg, "virtio"))
        cfg->console = VMM_CONSOLE_VIRTIO;
    else if (!strcmp(arg, "serial"))
        cfg->console = VMM_CONSOLE_SERIAL;
    else
        return fail(err, err_len, "--console: '%s' is not 'serial' or 'virtio'", arg);
    return 0;
}
