/* SPDX-License-Identifier: MIT */
/* The modern virtio PCI transport (virtio 1.2 §4.1): one 32 KiB memory BAR holds the common,
 * ISR, device and notify structures and the MSI-X table, each on its own page. */
#include "virtio_pci.h"

#include "pci/msix.h"
#include "lib/le.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define VIRTIO_PCI_VENDOR 0x1af4u
#define VIRTIO_PCI_DEVICE_BASE 0x1040u /* + device ID: modern-only devices (§4.1.2.1) */

/* BAR 0 layout */
#define BAR_SIZE 0x8000u
#define COMMON_OFF 0x0000u
#define COMMON_LEN 0x0038u
#define ISR_OFF 0x1000u
#define DEVICE_OFF 0x2000u
#define DEVICE_LEN 0x1000u
#define NOTIFY_OFF 0x3000u
#define NOTIFY_MULT 4u /* queue q is notified at NOTIFY_OFF + q * 4 */
#define MSIX_TABLE_OFF 0x4000u
#define MSIX_PBA_OFF 0x5000u

/* virtio_pci_cap.cfg_type (§4.1.4) */
enum { CAP_COMMON = 1, CAP_NOTIFY = 2, CAP_ISR = 3, CAP_DEVICE = 4 };

struct virtio_pci {
    struct pci_device pci;
    struct virtio_device *v;
    struct msix *msix;
    unsigned nvec;
    struct ioevent_ops ioevent;
    uint64_t notify_base; /* guest address of the notify area while ioevents are registered */
    uint32_t device_feature_select, driver_feature_select;
    uint16_t queue_select;
};

static uint32_t device_class(uint16_t id)
{
    switch (id) {
    case VIRTIO_ID_NET:
        return 0x020000; /* network controller, Ethernet */
    case VIRTIO_ID_BLOCK:
        return 0x018000; /* mass storage, other */
    case VIRTIO_ID_CONSOLE:
        return 0x078000; /* communication controller, other */
    default:
        return 0x00ff00; /* unclassified */
    }
}

/* ---------------------------------------------------------------- interrupts */

static void raise_vector(struct virtio_pci *p, uint16_t vector)
{
    if (msix_enabled(p->msix)) {
        if (vector != MSIX_NO_VECTOR)
            msix_notify(p->msix, vector);
    } else {
        /* INTx: the ISR bit was set by the core; the driver's ISR read lowers the line. */
        pci_device_set_intx(&p->pci, true);
    }
}

static void notify_queue(void *opaque, unsigned q)
{
    struct virtio_pci *p = opaque;
    raise_vector(p, p->v->queues[q].msix_vector);
}

static void notify_config(void *opaque)
{
    struct virtio_pci *p = opaque;
    raise_vector(p, p->v->config_msix_vector);
}

static int queue_irq_fd(void *opaque, unsigned q)
{
    struct virtio_pci *p = opaque;
    uint16_t vec = p->v->queues[q].msix_vector;
    return vec == MSIX_NO_VECTOR ? -1 : msix_vector_fd(p->msix, vec);
}

static const struct virtio_transport_ops pci_transport = {
    .notify_queue = notify_queue,
    .notify_config = notify_config,
    .queue_irq_fd = queue_irq_fd,
};

/* ---------------------------------------------------------------- common configuration */

static struct virtio_queue *selected(struct virtio_pci *p)
{
    return p->queue_select < p->v->ops->num_queues ? &p->v->queues[p->queue_select] : NULL;
}

/* Value of the field that starts at off (a field boundary) and its width; 0 width for holes. */
static uint64_t common_read_field(struct virtio_pci *p, uint32_t off, uint32_t *width)
{
    struct virtio_device *v = p->v;
    struct virtio_queue *q = selected(p);
    *width = 4;
    switch (off) {
    case 0x00:
        return p->device_feature_select;
    case 0x04:
        return virtio_host_features(v, p->device_feature_select);
    case 0x08:
        return p->driver_feature_select;
    case 0x0c:
        return p->driver_feature_select < 2
                   ? (uint32_t)(v->driver_features >> (32 * p->driver_feature_select))
                   : 0;
    }
    /* While MSI-X is refused (a vector could not be bound), every mapping reads back as failed
     * (§4.1.5.1.2), which is what makes a driver give MSI-X up and use INTx. */
    bool refused = msix_refused(p->msix);
    *width = 2;
    switch (off) {
    case 0x10:
        return refused ? MSIX_NO_VECTOR : v->config_msix_vector;
    case 0x12:
        return v->ops->num_queues;
    case 0x16:
        return p->queue_select;
    case 0x18:
        return q ? q->size : 0; /* 0: the selected queue does not exist (§4.1.4.3.2) */
    case 0x1a:
        return q && !refused ? q->msix_vector : MSIX_NO_VECTOR;
    case 0x1c:
        return q ? q->enabled : 0;
    case 0x1e:
        return q ? p->queue_select : 0; /* queue_notify_off: times NOTIFY_MULT */
    }
    *width = 1;
    switch (off) {
    case 0x14:
        return virtio_status(v);
    case 0x15:
        return __atomic_load_n(&v->config_generation, __ATOMIC_SEQ_CST);
    }
    *width = 8;
    switch (off) {
    case 0x20:
        return q ? q->desc : 0;
    case 0x28:
        return q ? q->avail : 0;
    case 0x30:
        return q ? q->used : 0;
    }
    *width = 0;
    return 0;
}

static void common_read(struct virtio_pci *p, uint32_t off, uint8_t *data, uint32_t len)
{
    /* Find the field holding off: fields are at most 8 bytes and naturally aligned. */
    memset(data, 0, len);
    for (uint32_t start = off & ~7u; start <= off; start++) {
        uint32_t width;
        uint64_t val = common_read_field(p, start, &width);
        if (width && off < start + width) {
            uint32_t shift = off - start;
            for (uint32_t i = 0; i < len && shift + i < width; i++)
                data[i] = (uint8_t)(val >> (8 * (shift + i)));
            return;
        }
    }
}

static void set_u64_half(uint64_t *field, uint32_t off_in_field, uint32_t len, uint64_t val)
{
    if (len == 8 && off_in_field == 0) {
        *field = val;
    } else if (len == 4 && (off_in_field == 0 || off_in_field == 4)) {
        uint64_t mask = 0xffffffffull << (8 * off_in_field);
        *field = (*field & ~mask) | ((val & 0xffffffffull) << (8 * off_in_field));
    }
}

static void common_write(struct virtio_pci *p, uint32_t off, uint32_t len, uint64_t val)
{
    struct virtio_device *v = p->v;
    struct virtio_queue *q = selected(p);
    /* Queue registers are frozen once the driver is running (§4.1.4.3.2). */
    bool queue_writable = q && !(v->status & VIRTIO_STATUS_DRIVER_OK);
    if (off >= 0x20 && off < 0x38) {
        if (!queue_writable)
            return;
        uint64_t *field = off < 0x28 ? &q->desc : off < 0x30 ? &q->avail : &q->used;
        set_u64_half(field, off & 7, len, val);
        return;
    }
    switch (off) {
    case 0x00:
        if (len == 4)
            p->device_feature_select = (uint32_t)val;
        break;
    case 0x08:
        if (len == 4)
            p->driver_feature_select = (uint32_t)val;
        break;
    case 0x0c:
        if (len == 4)
            virtio_write_driver_features(v, p->driver_feature_select, (uint32_t)val);
        break;
    case 0x10:
        if (len == 2)
            v->config_msix_vector = val < p->nvec ? (uint16_t)val : MSIX_NO_VECTOR;
        break;
    case 0x14:
        if (len == 1) {
            virtio_write_status(v, (uint8_t)val);
            if (val == 0) /* reset also drops a pending INTx */
                pci_device_set_intx(&p->pci, false);
        }
        break;
    case 0x16:
        if (len == 2)
            p->queue_select = (uint16_t)val;
        break;
    case 0x18:
        /* Any size up to the maximum; virtq_setup checks it is a power of two. */
        if (len == 2 && queue_writable && val && val <= v->ops->queue_size)
            q->size = (uint16_t)val;
        break;
    case 0x1a:
        if (len == 2 && q)
            q->msix_vector = val < p->nvec ? (uint16_t)val : MSIX_NO_VECTOR;
        break;
    case 0x1c:
        if (len == 2 && queue_writable && val == 1)
            q->enabled = true;
        break;
    }
}

/* ---------------------------------------------------------------- BAR 0 */

static void device_cfg_access(struct virtio_pci *p, uint32_t off, uint8_t *data, uint32_t len,
                              bool write)
{
    struct virtio_device *v = p->v;
    if (off >= v->config_size || len > v->config_size - off) {
        if (!write)
            memset(data, 0, len);
        return;
    }
    if (write) {
        virtio_config_write(v, off, data, len);
    } else {
        memcpy(data, v->config + off, len);
    }
}

static void kick(struct virtio_pci *p, uint32_t off)
{
    /* Reached only when the write was not consumed by an ioevent (none registered, or a width
     * other than the 2 bytes Linux uses). */
    unsigned q = off / NOTIFY_MULT;
    if (q < p->v->ops->num_queues) {
        uint64_t one = 1;
        if (write(p->v->queues[q].kick_fd, &one, sizeof(one)) < 0) {
            /* The counter saturated: a kick is already pending, which is all a kick means. */
        }
    }
}

static void bar0_access(void *opaque, uint64_t off, uint8_t *data, uint32_t len, bool write)
{
    struct virtio_pci *p = opaque;
    if (off >= MSIX_PBA_OFF && off < MSIX_PBA_OFF + 0x1000) {
        msix_pba_access(p->msix, off - MSIX_PBA_OFF, data, len, write);
        return;
    }
    if (off >= MSIX_TABLE_OFF && off < MSIX_TABLE_OFF + 0x1000) {
        msix_table_access(p->msix, off - MSIX_TABLE_OFF, data, len, write);
        return;
    }
    if (off >= NOTIFY_OFF && off < NOTIFY_OFF + 0x1000) {
        if (write)
            kick(p, (uint32_t)(off - NOTIFY_OFF));
        else
            memset(data, 0, len);
        return;
    }
    if (off == ISR_OFF && !write) {
        /* Reading ISR acknowledges the interrupt (§4.1.4.5). */
        memset(data, 0, len);
        data[0] = (uint8_t)atomic_exchange(&p->v->isr, 0);
        pci_device_set_intx(&p->pci, false);
        return;
    }
    pthread_mutex_lock(&p->v->lock);
    if (off >= DEVICE_OFF && off < DEVICE_OFF + DEVICE_LEN) {
        device_cfg_access(p, (uint32_t)(off - DEVICE_OFF), data, len, write);
    } else if (off < COMMON_OFF + COMMON_LEN) {
        if (write)
            common_write(p, (uint32_t)off, len, le_get(data, len));
        else
            common_read(p, (uint32_t)off, data, len);
    } else if (!write) {
        memset(data, 0, len);
    }
    pthread_mutex_unlock(&p->v->lock);
}

/* ---------------------------------------------------------------- PCI hooks */

static void notifiers(struct virtio_pci *p, uint64_t base, bool add)
{
    if (!p->ioevent.add)
        return;
    for (unsigned q = 0; q < p->v->ops->num_queues; q++) {
        uint64_t addr = base + NOTIFY_OFF + q * NOTIFY_MULT;
        int fd = p->v->queues[q].kick_fd;
        if (add)
            (void)p->ioevent.add(p->ioevent.opaque, addr, 2, fd);
        else
            (void)p->ioevent.del(p->ioevent.opaque, addr, 2, fd);
    }
}

static void bar_mapped(void *opaque, unsigned bar, uint64_t addr)
{
    struct virtio_pci *p = opaque;
    if (bar != 0)
        return;
    /* Notifications skip the VMM at the BAR's current address only; if one is missed while
     * the BAR moves, the MMIO handler above still turns it into a kick. */
    if (p->notify_base)
        notifiers(p, p->notify_base, false);
    p->notify_base = addr;
    if (addr)
        notifiers(p, addr, true);
}

static void config_written(void *opaque, uint32_t off, uint32_t len)
{
    struct virtio_pci *p = opaque;
    msix_config_written(p->msix, off, len);
}

static const struct pci_device_ops virtio_pci_ops = {
    .bar_mapped = bar_mapped,
    .config_written = config_written,
};

static int add_cap(struct virtio_pci *p, uint8_t type, uint32_t off, uint32_t len)
{
    uint8_t cap[20] = {PCI_CAP_ID_VNDR, 0, type == CAP_NOTIFY ? 20 : 16, type, 0 /* bar */};
    le_put32(cap + 8, off);
    le_put32(cap + 12, len);
    le_put32(cap + 16, NOTIFY_MULT);
    return pci_device_add_cap(&p->pci, cap, cap[2], NULL);
}

int virtio_pci_create(struct pci_host *host, struct virtio_device *v, const struct msi_ops *msi,
                      const struct ioevent_ops *ioevent, struct virtio_pci **out)
{
    if (v->config_size > DEVICE_LEN || v->ops->num_queues * NOTIFY_MULT > 0x1000)
        return -EINVAL;
    struct virtio_pci *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->v = v;
    if (ioevent)
        p->ioevent = *ioevent;
    p->nvec = v->ops->num_queues + 1; /* one per queue and one for configuration changes */
    uint16_t id = v->ops->device_id;
    pci_device_init(&p->pci, v->ops->name, VIRTIO_PCI_VENDOR,
                    (uint16_t)(VIRTIO_PCI_DEVICE_BASE + id), device_class(id), 1, VIRTIO_PCI_VENDOR,
                    0x40, &virtio_pci_ops, p);
    struct pci_bar_desc bar = {.size = BAR_SIZE, .access = bar0_access, .opaque = p};
    int r;
    if ((r = pci_device_set_bar(&p->pci, 0, &bar)) < 0 ||
        (r = add_cap(p, CAP_COMMON, COMMON_OFF, COMMON_LEN)) < 0 ||
        (r = add_cap(p, CAP_ISR, ISR_OFF, 1)) < 0 ||
        (r = add_cap(p, CAP_NOTIFY, NOTIFY_OFF, v->ops->num_queues * NOTIFY_MULT)) < 0 ||
        (v->config_size && (r = add_cap(p, CAP_DEVICE, DEVICE_OFF, v->config_size)) < 0) ||
        (r = msix_create(&p->pci, p->nvec, 0, MSIX_TABLE_OFF, MSIX_PBA_OFF, msi, &p->msix)) < 0)
        goto fail;
    v->transport = &pci_transport;
    v->transport_opaque = p;
    if ((r = pci_host_add(host, &p->pci)) < 0)
        goto fail;
    *out = p;
    return 0;
fail:
    v->transport = NULL;
    msix_destroy(p->msix);
    free(p);
    return r;
}

void virtio_pci_destroy(struct virtio_pci *p)
{
    if (!p)
        return;
    /* Stop the device first: its threads raise interrupts through p until then. */
    pthread_mutex_lock(&p->v->lock);
    virtio_write_status(p->v, 0);
    p->v->transport = NULL;
    pthread_mutex_unlock(&p->v->lock);
    if (p->notify_base)
        notifiers(p, p->notify_base, false);
    msix_destroy(p->msix);
    free(p);
}
