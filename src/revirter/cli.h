/* SPDX-License-Identifier: MIT */
/* revirter's command line: parsing into a struct vmm_config, with one-line errors. */
#ifndef REVIRT_REVIRTER_CLI_H
#define REVIRT_REVIRTER_CLI_H

#include <stddef.h>

#include "board/pc/config.h"

enum cli_action { CLI_RUN, CLI_HELP, CLI_VERSION, CLI_ERROR };

/* Parse argv (argv[0] is the program, argv[1] the command "run"). On CLI_ERROR err holds one
 * line naming the flag and the reason, e.g. "--memory: '12Q' is not a size (use 256M, 1G)". */
enum cli_action cli_parse(int argc, char *const *argv, struct vmm_config *cfg, char *err,
                          size_t err_len);

/* "256M" -> bytes. Accepts K, M, G, T suffixes (powers of 1024) and plain bytes; -1 on junk or
 * overflow. */
int cli_parse_size(const char *s, uint64_t *out);

/* Device options (cli_devices.c): add what arg describes to cfg, or -EINVAL with one line in err
 * naming the flag. */
int cli_parse_disk(struct vmm_config *cfg, const char *arg, char *err, size_t err_len);
int cli_parse_net(struct vmm_config *cfg, const char *arg, char *err, size_t err_len);
int cli_parse_vsock(struct vmm_config *cfg, const char *arg, char *err, size_t err_len);
int cli_parse_console(struct vmm_config *cfg, const char *arg, char *err, size_t err_len);

extern const char cli_usage[];

#endif
