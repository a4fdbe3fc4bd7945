/* SPDX-License-Identifier: MIT */
/* The modern virtio PCI transport (virtio 1.2 §4.1): common, notify, ISR and device
 * configuration structures and the MSI-X table in one memory BAR; queue notifications through
 * ioevents, interrupts through MSI-X (INTx when the driver does not enable it). */
#ifndef REVIRT_VIRTIO_VIRTIO_PCI_H
#define REVIRT_VIRTIO_VIRTIO_PCI_H

#include "pci/pci.h"
#include "virtio.h"
#include "core/msi.h"

struct virtio_pci;

/* Wrap v in a PCI function and add it to host; msi and ioevent are the VMM's (copied).
 * Destroy after pci_host_destroy and before the device: it resets the device first. */
__attribute__((warn_unused_result)) int
virtio_pci_create(struct pci_host *host, struct virtio_device *v, const struct msi_ops *msi,
                  const struct ioevent_ops *ioevent, struct virtio_pci **out);
void virtio_pci_destroy(struct virtio_pci *p);

#endif
