/* SPDX-License-Identifier: MIT */
/* revirter: boot a kernel in a VM from the command line. */
#include "cli.h"
#include "vm.h"

#include <stdio.h>

#ifndef REVIRT_VERSION
#define REVIRT_VERSION "unknown"
#endif

int main(int argc, char **argv)
{
    struct vmm_config cfg;
    char err[256];
    switch (cli_parse(argc, argv, &cfg, err, sizeof(err))) {
    case CLI_HELP:
        fputs(cli_usage, stdout);
        return 0;
    case CLI_VERSION:
        printf("revirter %s\n", REVIRT_VERSION);
        return 0;
    case CLI_ERROR:
        fprintf(stderr, "revirter: %s\n", err);
        return 2;
    case CLI_RUN:
        break;
    }
    for (bool restarted = false;; restarted = true) {
        int status = 0;
        switch (vm_run(&cfg, restarted, &status)) {
        case VM_END_POWEROFF:
        case VM_END_QUIT:
            return 0;
        case VM_END_REBOOT:
            if (cfg.on_reboot == VMM_REBOOT_RESTART) {
                fprintf(stderr, "revirter: guest rebooted, restarting\n");
                continue;
            }
            return 0;
        case VM_END_DEBUG_EXIT:
            return status;
        case VM_END_BAD_INPUT:
            return 2;
        case VM_END_CRASH:
        case VM_END_ERROR:
            return 1;
        }
    }
}
