/* SPDX-License-Identifier: MIT */
/* ACPI fixed hardware: PM1a event/control blocks, PM timer and reset register the FADT names. */
#ifndef REVIRT_DEV_ACPI_PM_H
#define REVIRT_DEV_ACPI_PM_H

#include "acpi/acpi.h"
#include "core/bus.h"
#include "core/irq.h"

struct acpi_pm;

struct acpi_pm_config {
    struct acpi_ports ports; /* the same values given to acpi_tables_write */
    /* The SCI, driven as a level: high while an enabled PM1 status bit is set. */
    struct irq_line sci;
    /* Called on the vCPU thread that wrote the register, with no device lock held. The VMM
     * stops the vCPUs; the device does nothing more. */
    void (*power_off)(void *opaque);
    void (*reset)(void *opaque);
    void *opaque;
};

/* Register the PM1a event block (4 ports), PM1a control (2), PM timer (4, if pm_tmr) and reset
 * register (1, if reset) on pio. -EINVAL for a zero PM1 port, -EEXIST on a port clash, -ENOMEM.
 *
 * The reset register defaults to 0x60C, not the PIIX/ICH 0xCF9: that byte belongs to the PCI
 * host bridge's CONFIG_ADDRESS (0xCF8-0xCFB), which src/pci claims whole. */
__attribute__((warn_unused_result)) int
acpi_pm_create(struct bus *pio, const struct acpi_pm_config *cfg, struct acpi_pm **out);
/* Press the power button: sets PWRBTN_STS and raises the SCI if the guest enabled it, so an
 * ACPI guest shuts down in an orderly way. Thread-safe. */
void acpi_pm_power_button(struct acpi_pm *pm);
/* Unregister and free; vCPUs must be stopped. NULL is ignored. */
void acpi_pm_destroy(struct acpi_pm *pm);

#endif
