/* SPDX-License-Identifier: MIT */
/* MSI-X for a PCI function (PCI Local Bus 3.0 §6.8.2): the capability, a vector table and a
 * pending-bit array inside one of the function's memory BARs, delivered through eventfds bound
 * to MSI routes, so a device thread raises an interrupt with one write and no VMM round trip. */
#ifndef REVIRT_PCI_MSIX_H
#define REVIRT_PCI_MSIX_H

#include <stdbool.h>
#include <stdint.h>

#include "pci.h"

#define MSIX_MAX_VECTORS 64u
#define MSIX_ENTRY_SIZE 16u
#define MSIX_NO_VECTOR 0xffffu /* virtio's VIRTIO_MSI_NO_VECTOR */

struct msix;

/* Add the MSI-X capability to d with nvec vectors (1..MSIX_MAX_VECTORS); the table lives at
 * table_off and the PBA at pba_off of memory BAR bar (both 8-byte aligned, inside the BAR, not
 * overlapping; the BAR must be declared already). Each vector gets an eventfd bound through msi
 * (bound lazily, at the first guest write that enables MSI-X). If a bind fails, that enable is
 * refused: Enable reads back 0, INTx stays in use, msix_refused turns true and one line is
 * logged; the vectors still unbound are tried again at the next enable. msi is copied; its
 * callbacks run on vCPU threads with the MSI-X lock held, and route may also run in msix_notify to
 * retry one that failed. Call before pci_host_add. -EINVAL for bad arguments, -ENOSPC without room
 * for the capability, or an eventfd error. */
__attribute__((warn_unused_result)) int msix_create(struct pci_device *d, unsigned nvec,
                                                    unsigned bar, uint32_t table_off,
                                                    uint32_t pba_off, const struct msi_ops *msi,
                                                    struct msix **out);
/* Unbind the vectors and close their eventfds; no device thread may still notify. NULL is
 * ignored. */
void msix_destroy(struct msix *m);

/* The owning device forwards these: guest accesses to the table and PBA (offsets relative to
 * table_off / pba_off), and every configuration-space write (from its config_written hook).
 * Only aligned 4- and 8-byte accesses inside the table or PBA count; anything else reads 0 and
 * is dropped, as is every PBA write. */
void msix_table_access(struct msix *m, uint64_t off, uint8_t *data, uint32_t len, bool write);
void msix_pba_access(struct msix *m, uint64_t off, uint8_t *data, uint32_t len, bool write);
void msix_config_written(struct msix *m, uint32_t off, uint32_t len);

/* MSI-X enabled by the guest (then INTx is off for this function). */
bool msix_enabled(const struct msix *m);
/* The guest's last attempt to enable MSI-X was refused because a vector could not be bound
 * (until an enable succeeds). A transport reports its vector mappings as failed meanwhile, so
 * the driver falls back to INTx. Any thread. */
bool msix_refused(const struct msix *m);
/* Raise vector: delivered at once unless it or the function is masked, in which case its
 * pending bit is set and it is delivered when unmasked. Out-of-range vectors (a guest may
 * program any number) are ignored and return false. Any thread. */
bool msix_notify(struct msix *m, unsigned vector);
/* The eventfd that raises vector directly, bypassing masking (for vhost's call fd); -1 if
 * vector is out of range or MSI-X is not enabled. */
int msix_vector_fd(const struct msix *m, unsigned vector);

#endif
