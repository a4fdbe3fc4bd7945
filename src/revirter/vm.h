/* SPDX-License-Identifier: MIT */
/* One virtual machine as revirter runs it: RAM, buses, platform devices, vCPU threads. */
#ifndef REVIRT_REVIRTER_VM_H
#define REVIRT_REVIRTER_VM_H

#include "board/pc/config.h"

#include <stdbool.h>

/* How a VM run ended. */
enum vm_end {
    VM_END_POWEROFF,   /* the guest powered off: exit 0 */
    VM_END_REBOOT,     /* the guest rebooted: exit 0, or boot again with --on-reboot=restart */
    VM_END_CRASH,      /* triple fault or an exit the VMM cannot handle: exit 1 */
    VM_END_ERROR,      /* the VMM failed to set up or run the VM: exit 1 */
    VM_END_DEBUG_EXIT, /* the guest wrote the debug-exit port: exit with its status */
    VM_END_QUIT,       /* the user pressed the escape sequence: exit 0 */
    VM_END_BAD_INPUT,  /* a file named on the command line is unusable (message printed): exit 2 */
};

/* Build the VM described by cfg, boot it, and run it until it ends. restarted: this boot follows
 * a guest reboot in the same process (--on-reboot=restart), so files the VM writes are continued
 * rather than truncated. For VM_END_DEBUG_EXIT *status holds the exit status. Errors are printed
 * on stderr as one line each. */
enum vm_end vm_run(const struct vmm_config *cfg, bool restarted, int *status);

#endif
