/* SPDX-License-Identifier: MIT */
/* virtio-vsock connections: the table, the Unix socket side of each stream, and credit-based
 * flow control (virtio 1.2 §5.10.6.3) in both directions. */
#include "vsock_conn.h"

#include "sys/ioloop.h"
#include "lib/iov.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * Lifecycle. A host-initiated connection starts in CONN_LINE (reading "CONNECT <port>\n"),
 * moves to CONN_CONNECTING with a REQUEST owed to the guest, and opens on the guest's RESPONSE;
 * a guest-initiated one is CONN_OPEN from the start with a RESPONSE owed. Either ends in
 * CONN_RESET (Unix socket closed, RST owed) or is freed at once when the guest sent the RST.
 *
 * Host -> guest data is read from the Unix socket straight into the guest's receive buffers,
 * only as far as the guest's credit allows, so nothing is buffered on that side. Guest -> host
 * data is written to the Unix socket at once; what it cannot take is kept in buf, which the
 * credit we advertise (VSOCK_BUF_ALLOC ahead of fwd_cnt) bounds.
 *
 * Readiness is tracked as an edge: EPOLLIN is watched only while c->readable is false, and a
 * read that would block clears it again. A hang-up cannot be masked in epoll, so once seen the
 * socket leaves the loop and the rest of it is read without waiting.
 */

/* ---------------------------------------------------------------- headers */

void vsock_hdr_fill(const struct vsock_dev *d, struct vsock_hdr *h, uint32_t local_port,
                    uint32_t peer_port, uint16_t op)
{
    *h = (struct vsock_hdr){
        .src_cid = VSOCK_HOST_CID,
        .dst_cid = d->guest_cid,
        .src_port = local_port,
        .dst_port = peer_port,
        .type = VSOCK_TYPE_STREAM,
        .op = op,
    };
}

/* ---------------------------------------------------------------- the table */

static bool ready_unlink(struct vsock_dev *d, struct vsock_conn *c)
{
    if (!c->ready)
        return false;
    if (c->rprev)
        c->rprev->rnext = c->rnext;
    else
        d->ready_head = c->rnext;
    if (c->rnext)
        c->rnext->rprev = c->rprev;
    else
        d->ready_tail = c->rprev;
    c->rprev = c->rnext = NULL;
    c->ready = false;
    return true;
}

struct vsock_conn *vsock_conn_ready_pop(struct vsock_dev *d)
{
    struct vsock_conn *c = d->ready_head;
    if (c)
        ready_unlink(d, c);
    return c;
}

static void ready_append(struct vsock_dev *d, struct vsock_conn *c)
{
    if (c->ready)
        return;
    c->rprev = d->ready_tail;
    c->rnext = NULL;
    if (d->ready_tail)
        d->ready_tail->rnext = c;
    else
        d->ready_head = c;
    d->ready_tail = c;
    c->ready = true;
}

static void set_events(struct vsock_dev *d, struct vsock_conn *c, uint32_t events)
{
    if (c->registered && c->events != events && ioloop_modify(d->loop, c->fd, events) == 0)
        c->events = events;
}

static void unregister(struct vsock_dev *d, struct vsock_conn *c)
{
    if (c->registered)
        (void)ioloop_remove(d->loop, c->fd);
    c->registered = false;
}

static void close_unix(struct vsock_dev *d, struct vsock_conn *c)
{
    unregister(d, c);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->buf);
    c->buf = NULL;
    c->head = c->tail = c->cap = 0;
}

static void on_event(void *opaque, uint32_t events);

struct vsock_conn *vsock_conn_new(struct vsock_dev *d, int fd, enum vsock_conn_state state)
{
    struct vsock_conn *c = d->nconns < VSOCK_MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
    if (!c) {
        close(fd);
        return NULL;
    }
    c->dev = d;
    c->fd = fd;
    c->state = state;
    c->events = state == CONN_OPEN || state == CONN_LINE ? EPOLLIN : 0;
    if (ioloop_add(d->loop, fd, c->events, on_event, c) < 0) {
        close(fd);
        free(c);
        return NULL;
    }
    c->registered = true;
    c->next = d->conns;
    if (d->conns)
        d->conns->prev = c;
    d->conns = c;
    d->nconns++;
    return c;
}

struct vsock_conn *vsock_conn_find(struct vsock_dev *d, uint32_t local_port, uint32_t peer_port)
{
    for (struct vsock_conn *c = d->conns; c; c = c->next)
        if (c->state != CONN_LINE && c->local_port == local_port && c->peer_port == peer_port)
            return c;
    return NULL;
}

void vsock_conn_free(struct vsock_dev *d, struct vsock_conn *c)
{
    close_unix(d, c);
    ready_unlink(d, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        d->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    d->nconns--;
    free(c);
    /* A descriptor is free again: accepting may work now if it ran out of them. */
    if (d->listen_paused && ioloop_modify(d->loop, d->listen_fd, EPOLLIN) == 0)
        d->listen_paused = false;
}

void vsock_conn_free_all(struct vsock_dev *d)
{
    while (d->conns)
        vsock_conn_free(d, d->conns);
}

void vsock_conn_reset(struct vsock_dev *d, struct vsock_conn *c)
{
    if (c->state == CONN_RESET)
        return;
    /* A connection the guest never heard of (no REQUEST sent yet) is just dropped. */
    bool known = c->state != CONN_LINE && !(c->state == CONN_CONNECTING && (c->ctl & CTL_REQUEST));
    close_unix(d, c);
    c->state = CONN_RESET;
    c->ctl = known ? CTL_RST : 0;
}

uint32_t vsock_conn_alloc_port(struct vsock_dev *d)
{
    /* At most VSOCK_MAX_CONNS ports are taken, so one of this many candidates is free. */
    for (unsigned tries = 0; tries <= VSOCK_MAX_CONNS; tries++) {
        uint32_t p = d->next_port;
        d->next_port = p == UINT32_MAX ? VSOCK_EPHEMERAL_BASE : p + 1;
        bool used = false;
        for (struct vsock_conn *c = d->conns; c && !used; c = c->next)
            used = c->state != CONN_LINE && c->local_port == p;
        if (!used)
            return p;
    }
    return 0;
}

/* ---------------------------------------------------------------- flow control */

static size_t buffered(const struct vsock_conn *c)
{
    return c->tail - c->head;
}

/* Bytes we may still send: peer_buf_alloc - (tx_cnt - peer_fwd_cnt), never negative, whatever
 * figures the guest sent. */
static uint32_t credit(const struct vsock_conn *c)
{
    uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;
    return in_flight >= c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

void vsock_conn_peer_credit(struct vsock_conn *c, const struct vsock_hdr *h)
{
    c->peer_buf_alloc = h->buf_alloc;
    c->peer_fwd_cnt = h->fwd_cnt;
}

/* We forwarded bytes: if the guest's view of our free space is low, it may be waiting for
 * credit, so owe it an update. */
static void credit_check(struct vsock_conn *c)
{
    uint32_t seen = c->rx_cnt - c->fwd_cnt_sent;
    uint32_t guest_free = seen >= VSOCK_BUF_ALLOC ? 0 : VSOCK_BUF_ALLOC - seen;
    if (c->fwd_cnt != c->fwd_cnt_sent && guest_free < VSOCK_CREDIT_LOW)
        c->ctl |= CTL_CREDIT;
}

/* Send to the Unix socket without blocking: bytes taken, or -1 when it is gone. */
static ssize_t send_unix(int fd, struct iovec *iov, unsigned n)
{
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = n};
    for (;;) {
        ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0)
            return w;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
}

/* Push buffered guest bytes to the Unix socket. */
static void flush(struct vsock_dev *d, struct vsock_conn *c)
{
    if (!buffered(c) || c->state != CONN_OPEN)
        return;
    struct iovec iov = {c->buf + c->head, buffered(c)};
    ssize_t w = send_unix(c->fd, &iov, 1);
    if (w < 0) {
        vsock_conn_reset(d, c); /* the bytes can no longer be delivered */
        return;
    }
    c->head += (size_t)w;
    c->fwd_cnt += (uint32_t)w;
    if (c->head == c->tail) {
        c->head = c->tail = 0;
        if (c->cap > VSOCK_MAX_PKT) {
            free(c->buf); /* keep idle connections small */
            c->buf = NULL;
            c->cap = 0;
        }
    }
    credit_check(c);
}

/* Room for len more bytes at tail (the credit check guarantees buffered + len <= BUF_ALLOC). */
static bool reserve(struct vsock_conn *c, size_t len)
{
    if (c->cap - c->tail >= len)
        return true;
    if (c->head) {
        memmove(c->buf, c->buf + c->head, buffered(c));
        c->tail -= c->head;
        c->head = 0;
    }
    if (c->cap - c->tail >= len)
        return true;
    size_t cap = c->cap ? 2 * c->cap : 4096;
    while (cap < c->tail + len)
        cap *= 2;
    if (cap > VSOCK_BUF_ALLOC)
        cap = VSOCK_BUF_ALLOC;
    uint8_t *p = realloc(c->buf, cap);
    if (!p)
        return false;
    c->buf = p;
    c->cap = cap;
    return true;
}

void vsock_conn_data(struct vsock_dev *d, struct vsock_conn *c, const struct iovec *iov, unsigned n,
                     size_t skip, uint32_t len)
{
    /* Data before the connection is open, after the guest said it would send no more, or
     * beyond the credit we gave: the stream is broken. */
    if (c->state != CONN_OPEN || (c->peer_shut & VSOCK_SHUTDOWN_SEND) || c->wr_done ||
        len > VSOCK_BUF_ALLOC - buffered(c)) {
        vsock_conn_reset(d, c);
        return;
    }
    if (len == 0)
        return;
    c->rx_cnt += len;
    if (c->hup) {
        /* The Unix peer is gone and reads nothing more: the bytes are dropped (as a socket
         * whose peer closed would), while what it wrote before closing still reaches the
         * guest. Counting them forwarded keeps the credit consistent. */
        c->fwd_cnt += len;
        return;
    }
    size_t sent = 0;
    if (!buffered(c)) {
        struct iovec part[VIRTQ_MAX_CHAIN];
        unsigned k = iov_slice(iov, n, skip, len, part);
        ssize_t w = send_unix(c->fd, part, k);
        if (w < 0) {
            vsock_conn_reset(d, c);
            return;
        }
        sent = (size_t)w;
        c->fwd_cnt += (uint32_t)w;
    }
    if (sent < len) {
        if (!reserve(c, len - sent)) {
            vsock_conn_reset(d, c);
            return;
        }
        c->tail += iov_read(iov, n, skip + sent, c->buf + c->tail, len - sent);
    }
    credit_check(c);
}

/* ---------------------------------------------------------------- connection events */

void vsock_conn_established(struct vsock_dev *d, struct vsock_conn *c)
{
    char ok[24];
    int n = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);
    struct iovec iov = {ok, (size_t)n};
    /* A fresh socket's buffer always has room for a dozen bytes; if not, give up. */
    if (send_unix(c->fd, &iov, 1) != n) {
        vsock_conn_reset(d, c);
        return;
    }
    c->state = CONN_OPEN; /* vsock_conn_update starts watching for input */
}

void vsock_conn_shutdown(struct vsock_dev *d, struct vsock_conn *c, uint32_t flags)
{
    (void)d;
    flags &= VSOCK_SHUTDOWN_BOTH;
    uint8_t added = (uint8_t)(flags & ~c->peer_shut);
    c->peer_shut |= (uint8_t)flags;
    /* The guest reads no more: the Unix peer's writes now fail, as on a shut-down socket. The
     * send side is shut in vsock_conn_update once buffered bytes are out. */
    if ((added & VSOCK_SHUTDOWN_RCV) && c->fd >= 0)
        (void)shutdown(c->fd, SHUT_RD);
}

/* "CONNECT <port>\n": decimal digits only, the value a 32-bit port. */
static bool parse_connect(const char *line, uint32_t *port)
{
    static const char prefix[] = "CONNECT ";
    if (strncmp(line, prefix, sizeof(prefix) - 1) != 0)
        return false;
    const char *p = line + sizeof(prefix) - 1;
    uint64_t v = 0;
    unsigned digits = 0;
    for (; *p; p++, digits++) {
        if (*p < '0' || *p > '9' || digits == 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (digits == 0 || v > UINT32_MAX)
        return false;
    *port = (uint32_t)v;
    return true;
}

/* Read the CONNECT line a byte at a time (whatever follows it is stream data for the guest). */
static void read_line(struct vsock_dev *d, struct vsock_conn *c)
{
    for (;;) {
        char ch;
        ssize_t r = recv(c->fd, &ch, 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0 || (ch != '\n' && c->line_len == VSOCK_LINE_MAX - 1)) {
            vsock_conn_reset(d, c); /* EOF, error or an overlong line */
            return;
        }
        if (ch == '\n')
            break;
        c->line[c->line_len++] = ch;
    }
    c->line[c->line_len] = '\0';
    uint32_t port, local;
    if (!parse_connect(c->line, &port) || (local = vsock_conn_alloc_port(d)) == 0) {
        vsock_conn_reset(d, c);
        return;
    }
    c->local_port = local;
    c->peer_port = port;
    c->state = CONN_CONNECTING;
    c->ctl |= CTL_REQUEST;
}

static void on_event(void *opaque, uint32_t events)
{
    struct vsock_conn *c = opaque;
    struct vsock_dev *d = c->dev;
    switch (c->state) {
    case CONN_LINE:
        read_line(d, c);
        break;
    case CONN_CONNECTING:
        /* Nothing is watched but a hang-up: the host gave up before the guest answered. */
        vsock_conn_reset(d, c);
        break;
    case CONN_OPEN:
        if (events & (EPOLLHUP | EPOLLERR)) {
            c->hup = true; /* reads return the rest, then 0 or an error, without blocking */
            unregister(d, c);
        }
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            c->readable = true;
        if ((events & EPOLLOUT) && !c->hup)
            flush(d, c);
        break;
    case CONN_RESET:
        break;
    }
    vsock_conn_update(d, c);
    vsock_dev_run(d);
}

/* ---------------------------------------------------------------- state and readiness */

static bool can_send_data(const struct vsock_conn *c)
{
    return c->state == CONN_OPEN && c->readable && !c->rd_eof &&
           !(c->peer_shut & VSOCK_SHUTDOWN_RCV) && credit(c) > 0;
}

bool vsock_conn_wants_rx(const struct vsock_conn *c)
{
    return c->ctl != 0 || can_send_data(c);
}

void vsock_conn_update(struct vsock_dev *d, struct vsock_conn *c)
{
    if (c->state == CONN_OPEN) {
        if (!c->wr_done && (c->peer_shut & VSOCK_SHUTDOWN_SEND) && !buffered(c)) {
            (void)shutdown(c->fd, SHUT_WR); /* the Unix peer reads EOF */
            c->wr_done = true;
        }
        /* Both directions finished (or can never carry data again): close with an RST, which
         * also ends the guest's wait after it shut down both sides (§5.10.6.5). */
        bool to_guest_done = c->rd_eof || (c->peer_shut & VSOCK_SHUTDOWN_RCV);
        bool to_host_done = c->wr_done || c->hup;
        if (to_guest_done && to_host_done)
            vsock_conn_reset(d, c);
    }
    switch (c->state) {
    case CONN_LINE:
        set_events(d, c, EPOLLIN);
        break;
    case CONN_CONNECTING:
        set_events(d, c, 0);
        break;
    case CONN_OPEN: {
        uint32_t ev = 0;
        if (!c->readable && !c->rd_eof && !(c->peer_shut & VSOCK_SHUTDOWN_RCV))
            ev |= EPOLLIN;
        if (buffered(c) && !c->wr_done)
            ev |= EPOLLOUT;
        set_events(d, c, ev);
        break;
    }
    case CONN_RESET:
        if (!c->ctl) {
            vsock_conn_free(d, c);
            return;
        }
        break;
    }
    if (vsock_conn_wants_rx(c))
        ready_append(d, c);
    else
        ready_unlink(d, c);
}

/* ---------------------------------------------------------------- packets to the guest */

static size_t put_hdr(struct vsock_conn *c, struct vsock_hdr *h, const struct iovec *iov,
                      unsigned n)
{
    h->buf_alloc = VSOCK_BUF_ALLOC;
    h->fwd_cnt = c->fwd_cnt;
    /* Every packet carries our credit figures, so none is owed after this one. */
    c->fwd_cnt_sent = c->fwd_cnt;
    c->ctl &= ~CTL_CREDIT;
    return vsock_hdr_put(h, iov, n);
}

size_t vsock_conn_next_packet(struct vsock_dev *d, struct vsock_conn *c, const struct iovec *iov,
                              unsigned n, size_t capacity)
{
    struct vsock_hdr h;
    static const struct {
        unsigned bit;
        uint16_t op;
    } order[] = {
        {CTL_RST, VSOCK_OP_RST},
        {CTL_REQUEST, VSOCK_OP_REQUEST},
        {CTL_RESPONSE, VSOCK_OP_RESPONSE},
        {CTL_SHUTDOWN, VSOCK_OP_SHUTDOWN},
        {CTL_CREDIT, VSOCK_OP_CREDIT_UPDATE},
    };
    for (unsigned i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if (!(c->ctl & order[i].bit))
            continue;
        vsock_hdr_fill(d, &h, c->local_port, c->peer_port, order[i].op);
        if (order[i].bit == CTL_SHUTDOWN)
            h.flags = VSOCK_SHUTDOWN_SEND;
        c->ctl &= ~order[i].bit;
        if (order[i].bit == CTL_RST)
            c->ctl = 0; /* nothing else matters now */
        return put_hdr(c, &h, iov, n);
    }
    if (!can_send_data(c))
        return 0;

    size_t room = capacity - sizeof(h);
    uint32_t want = credit(c);
    if (want > VSOCK_MAX_PKT)
        want = VSOCK_MAX_PKT;
    if (want > room)
        want = (uint32_t)room;
    if (want == 0) {
        /* A receive buffer with room for a header only: use it for credit figures. */
        vsock_hdr_fill(d, &h, c->local_port, c->peer_port, VSOCK_OP_CREDIT_UPDATE);
        return put_hdr(c, &h, iov, n);
    }
    struct iovec part[VIRTQ_MAX_CHAIN];
    unsigned k = iov_slice(iov, n, sizeof(h), want, part);
    ssize_t r;
    do
        r = readv(c->fd, part, (int)k);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        c->readable = false;
        return 0;
    }
    if (r < 0) {
        vsock_conn_reset(d, c);
        return vsock_conn_next_packet(d, c, iov, n, capacity);
    }
    if (r == 0) {
        /* EOF: the host sends no more. The SHUTDOWN follows all data already sent. */
        c->rd_eof = true;
        c->readable = false;
        vsock_hdr_fill(d, &h, c->local_port, c->peer_port, VSOCK_OP_SHUTDOWN);
        h.flags = VSOCK_SHUTDOWN_SEND;
        return put_hdr(c, &h, iov, n);
    }
    c->tx_cnt += (uint32_t)r;
    vsock_hdr_fill(d, &h, c->local_port, c->peer_port, VSOCK_OP_RW);
    h.len = (uint32_t)r;
    return put_hdr(c, &h, iov, n) + (size_t)r;
}

/* ---------------------------------------------------------------- header encoding */

size_t vsock_hdr_put(const struct vsock_hdr *h, const struct iovec *iov, unsigned n)
{
    struct vsock_hdr le = {
        .src_cid = htole64(h->src_cid),
        .dst_cid = htole64(h->dst_cid),
        .src_port = htole32(h->src_port),
        .dst_port = htole32(h->dst_port),
        .len = htole32(h->len),
        .type = htole16(h->type),
        .op = htole16(h->op),
        .flags = htole32(h->flags),
        .buf_alloc = htole32(h->buf_alloc),
        .fwd_cnt = htole32(h->fwd_cnt),
    };
    return iov_write(iov, n, 0, &le, sizeof(le));
}

bool vsock_hdr_get(struct vsock_hdr *h, const struct iovec *iov, unsigned n)
{
    struct vsock_hdr le;
    if (iov_read(iov, n, 0, &le, sizeof(le)) != sizeof(le))
        return false;
    *h = (struct vsock_hdr){
        .src_cid = le64toh(le.src_cid),
        .dst_cid = le64toh(le.dst_cid),
        .src_port = le32toh(le.src_port),
        .dst_port = le32toh(le.dst_port),
        .len = le32toh(le.len),
        .type = le16toh(le.type),
        .op = le16toh(le.op),
        .flags = le32toh(le.flags),
        .buf_alloc = le32toh(le.buf_alloc),
        .fwd_cnt = le32toh(le.fwd_cnt),
    };
    return true;
}
