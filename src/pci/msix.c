/* SPDX-License-Identifier: MIT */
/* MSI-X: capability, vector table, pending bits, and delivery through eventfds bound to routes. */
#include "msix.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "sys/ratelimit.h"
#include "lib/le.h"

/* Capability layout (PCI Local Bus 3.0 §6.8.2.1-6.8.2.5). */
#define CAP_LEN 12
#define CAP_CTRL 2
#define CAP_TABLE 4
#define CAP_PBA 8
#define CTRL_ENABLE (1u << 15)
#define CTRL_FUNCTION_MASK (1u << 14)

/* Table entry words (§6.8.2.6-6.8.2.9): address low, address high, data, vector control. */
#define ENTRY_ADDR_LO 0
#define ENTRY_ADDR_HI 1
#define ENTRY_DATA 2
#define ENTRY_CTRL 3
#define ENTRY_CTRL_MASK 1u /* the only writable bit; the rest are reserved, read 0 */

#define PBA_SIZE 8u /* one QWORD holds MSIX_MAX_VECTORS bits */

struct msix {
    struct pci_device *dev;
    struct msi_ops msi;
    unsigned nvec;
    uint8_t cap;
    /* Guards everything below except enabled_flag and fd: table and PBA accesses come from
     * any vCPU, msix_notify from device threads, capability writes under the configuration
     * lock (which is taken before this one, never after). Never held across a guest wait. */
    pthread_mutex_t lock;
    uint32_t table[MSIX_MAX_VECTORS][4];
    uint64_t pending;
    bool enabled, function_masked; /* Message Control as last written */
    bool dirty[MSIX_MAX_VECTORS];  /* address/data changed since the route was last set */
    int handle[MSIX_MAX_VECTORS];  /* from msi.bind, -1 until bound */
    atomic_bool enabled_flag;      /* enabled, for the lock-free readers */
    atomic_bool refused;           /* the last enable failed to bind a vector (msix_refused) */
    int fd[MSIX_MAX_VECTORS];      /* fixed from create to destroy */
};

int msix_create(struct pci_device *d, unsigned nvec, unsigned bar, uint32_t table_off,
                uint32_t pba_off, const struct msi_ops *msi, struct msix **out)
{
    if (!d || !out || !msi || !msi->bind || !msi->route || nvec < 1 || nvec > MSIX_MAX_VECTORS ||
        bar >= PCI_NUM_BARS || d->host)
        return -EINVAL;
    /* Both structures in one memory BAR, QWORD aligned (the offset fields keep bits 31:3 only)
     * and apart (§6.8.2.4-6.8.2.5). */
    const struct pci_bar_desc *b = &d->bars[bar];
    uint64_t table_len = (uint64_t)nvec * MSIX_ENTRY_SIZE;
    if (!b->size || b->io || table_off % 8 || pba_off % 8 || table_off + table_len > b->size ||
        (uint64_t)pba_off + PBA_SIZE > b->size ||
        (pba_off < table_off + table_len && table_off < pba_off + PBA_SIZE))
        return -EINVAL;

    struct msix *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->dev = d;
    m->msi = *msi;
    m->nvec = nvec;
    pthread_mutex_init(&m->lock, NULL);
    atomic_init(&m->enabled_flag, false);
    atomic_init(&m->refused, false);
    int ret = 0;
    unsigned made = 0;
    for (; made < nvec; made++) {
        m->fd[made] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (m->fd[made] < 0) {
            ret = -errno;
            goto err_fds;
        }
        m->handle[made] = -1;
        m->dirty[made] = true;
        m->table[made][ENTRY_CTRL] = ENTRY_CTRL_MASK; /* masked after reset (§6.8.2.9) */
    }

    uint8_t body[CAP_LEN] = {PCI_CAP_ID_MSIX};
    le_put16(body + CAP_CTRL, (uint16_t)(nvec - 1)); /* table size, N - 1 encoded */
    le_put32(body + CAP_TABLE, table_off | bar);
    le_put32(body + CAP_PBA, pba_off | bar);
    uint8_t wmask[CAP_LEN] = {0};
    wmask[CAP_CTRL + 1] = (CTRL_ENABLE | CTRL_FUNCTION_MASK) >> 8;
    ret = pci_device_add_cap(d, body, CAP_LEN, wmask);
    if (ret < 0)
        goto err_fds;
    m->cap = (uint8_t)ret;
    *out = m;
    return 0;

err_fds:
    while (made--)
        close(m->fd[made]);
    pthread_mutex_destroy(&m->lock);
    free(m);
    return ret;
}

void msix_destroy(struct msix *m)
{
    if (!m)
        return;
    for (unsigned v = 0; v < m->nvec; v++) {
        if (m->handle[v] >= 0 && m->msi.unbind)
            m->msi.unbind(m->msi.opaque, m->handle[v], m->fd[v]);
        close(m->fd[v]);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* ---------------------------------------------------------------- delivery (lock held) */

static bool live(const struct msix *m, unsigned v)
{
    return m->enabled && !m->function_masked && !(m->table[v][ENTRY_CTRL] & ENTRY_CTRL_MASK);
}

static void route(struct msix *m, unsigned v)
{
    if (m->handle[v] < 0 || !m->dirty[v])
        return;
    uint64_t addr = (uint64_t)m->table[v][ENTRY_ADDR_HI] << 32 | m->table[v][ENTRY_ADDR_LO];
    /* On failure the route stays dirty and is tried again before the next delivery. */
    if (m->msi.route(m->msi.opaque, m->handle[v], addr, m->table[v][ENTRY_DATA]) == 0)
        m->dirty[v] = false;
}

static void deliver(struct msix *m, unsigned v)
{
    route(m, v);
    uint64_t one = 1;
    /* Only EAGAIN (a counter near 2^64) can fail: the interrupt is pending there anyway. */
    (void)!write(m->fd[v], &one, sizeof(one));
}

/* A vector just became deliverable (or its message changed while it was): bring its route up
 * to date and send what it held back (§6.8.2.9: a pending message is sent once unmasked). */
static void vector_live(struct msix *m, unsigned v)
{
    route(m, v);
    if (m->pending & (1ull << v)) {
        m->pending &= ~(1ull << v);
        deliver(m, v);
    }
}

/* ---------------------------------------------------------------- guest accesses */

void msix_table_access(struct msix *m, uint64_t off, uint8_t *data, uint32_t len, bool write)
{
    if (!write)
        memset(data, 0, len);
    /* DWORD or aligned QWORD accesses only (§6.8.2: other sizes are undefined); ignore the
     * rest and anything past the last entry. */
    uint64_t size = (uint64_t)m->nvec * MSIX_ENTRY_SIZE;
    if ((len != 4 && len != 8) || off % len || off >= size || len > size - off)
        return;
    unsigned v = (unsigned)(off / MSIX_ENTRY_SIZE), w = (unsigned)(off % MSIX_ENTRY_SIZE) / 4;
    pthread_mutex_lock(&m->lock);
    if (!write) {
        for (unsigned i = 0; i < len / 4; i++)
            le_put32(data + 4 * i, m->table[v][w + i]);
        pthread_mutex_unlock(&m->lock);
        return;
    }
    bool was_live = live(m, v);
    for (unsigned i = 0; i < len / 4; i++) {
        uint32_t val = le_get32(data + 4 * i);
        if (w + i == ENTRY_CTRL) {
            m->table[v][ENTRY_CTRL] = val & ENTRY_CTRL_MASK;
        } else if (m->table[v][w + i] != val) {
            m->table[v][w + i] = val;
            m->dirty[v] = true;
        }
    }
    if (live(m, v) && (!was_live || m->dirty[v]))
        vector_live(m, v);
    pthread_mutex_unlock(&m->lock);
}

void msix_pba_access(struct msix *m, uint64_t off, uint8_t *data, uint32_t len, bool write)
{
    if (!write)
        memset(data, 0, len);
    /* Read-only (§6.8.2.10); writes are dropped. */
    if (write || (len != 4 && len != 8) || off % len || off >= PBA_SIZE)
        return;
    pthread_mutex_lock(&m->lock);
    uint64_t bits = m->pending >> (8 * off);
    pthread_mutex_unlock(&m->lock);
    le_put(data, len, bits);
}

/* The guest set MSI-X Enable: bind every vector not bound yet. Vectors are bound at the first
 * enable, so functions a guest drives with INTx (or not at all) never hold routes.
 *
 * If a bind fails (the VMM ran out of routes or GSIs), a message sent to that vector would be
 * lost and the driver would wait for it forever. Refuse the enable instead: Enable reads back 0
 * and the function keeps using INTx (PCI Local Bus 3.0 §6.8.2.3: INTx is used whenever MSI-X is
 * disabled), and msix_refused tells the transport, which then reports every vector mapping as
 * failed (virtio 1.2 §4.1.5.1.2: NO_VECTOR reads back). That is what a Linux guest notices:
 * pci_msix_enable never reads Enable back, but virtio_pci checks each vector it maps and on
 * NO_VECTOR frees its MSI-X vectors and retries with fewer, then with INTx, so the device comes
 * up on INTx. DEVICE_NEEDS_RESET would not do: Linux does not act on it, and the configuration
 * interrupt announcing it would go through the very vectors that failed. Vectors bound already
 * stay bound; the others are tried again at the next enable. With the configuration lock and
 * m->lock held. */
static void bind_or_refuse(struct msix *m, uint32_t ctrl_off)
{
    int err = 0;
    unsigned failed = 0;
    for (unsigned v = 0; v < m->nvec; v++) {
        if (m->handle[v] >= 0)
            continue;
        int h = m->msi.bind(m->msi.opaque, m->fd[v]);
        if (h >= 0) {
            m->handle[v] = h;
            m->dirty[v] = true;
        } else if (!err) {
            err = h;
            failed = v;
        }
    }
    atomic_store(&m->refused, err != 0);
    if (!err)
        return;
    m->enabled = false;
    m->dev->cfg[ctrl_off + 1] &= (uint8_t) ~(CTRL_ENABLE >> 8);
    /* The guest may retry in a loop. */
    static struct ratelimit rl = RATELIMIT_INIT;
    ratelimit_log(&rl,
                  "revirter: %s: MSI-X vector %u cannot be bound: %s; MSI-X refused, INTx is used",
                  m->dev->name ? m->dev->name : "PCI device", failed, strerror(-err));
}

void msix_config_written(struct msix *m, uint32_t off, uint32_t len)
{
    uint32_t ctrl_off = m->cap + CAP_CTRL;
    if (off >= ctrl_off + 2 || ctrl_off >= off + len)
        return;
    /* Called under the configuration lock, so the device's cfg is stable. */
    uint16_t ctrl = (uint16_t)(m->dev->cfg[ctrl_off] | m->dev->cfg[ctrl_off + 1] << 8);
    pthread_mutex_lock(&m->lock);
    bool was_enabled = m->enabled;
    m->enabled = ctrl & CTRL_ENABLE;
    m->function_masked = ctrl & CTRL_FUNCTION_MASK;
    if (m->enabled && !was_enabled)
        bind_or_refuse(m, ctrl_off);
    atomic_store(&m->enabled_flag, m->enabled);
    for (unsigned v = 0; v < m->nvec; v++)
        if (live(m, v))
            vector_live(m, v);
    pthread_mutex_unlock(&m->lock);
}

/* ---------------------------------------------------------------- device side */

bool msix_enabled(const struct msix *m)
{
    return atomic_load(&m->enabled_flag);
}

bool msix_refused(const struct msix *m)
{
    return atomic_load(&m->refused);
}

bool msix_notify(struct msix *m, unsigned vector)
{
    if (vector >= m->nvec)
        return false;
    pthread_mutex_lock(&m->lock);
    if (live(m, vector))
        deliver(m, vector);
    else
        m->pending |= 1ull << vector;
    pthread_mutex_unlock(&m->lock);
    return true;
}

int msix_vector_fd(const struct msix *m, unsigned vector)
{
    if (vector >= m->nvec || !atomic_load(&m->enabled_flag))
        return -1;
    return m->fd[vector];
}
