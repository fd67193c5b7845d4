/* bastionctl: one command table (cli/bastionctl.c), one file per command group, each handler
 * `int ctl_X(int argc, char **argv)` with argv[0] the command name, returning the exit status. */
#pragma once

#include <stdbool.h>

#include <jansson.h>

/* Set by the global options (bastionctl [--socket PATH] [--json] COMMAND …). */
extern const char *arg_socket;
extern bool arg_json;

#define BASTIONCTL_DEFAULT_SOCKET "/run/bastion/control.sock"

/* One request on the control socket, its answer in *ret (an object with "ok"). Errors are logged;
 * returns 0 or a negative errno. */
int control_call(json_t *request, json_t **ret);
/* Prints an {"ok":false,"error":…} answer on stderr (or the raw JSON with --json); returns 1. */
int control_print_error(json_t *reply);

/* cli/ctl_daemon.c: status, workers, reload (the supervisor). */
int ctl_status(int argc, char **argv);
int ctl_workers(int argc, char **argv);
int ctl_reload(int argc, char **argv);
/* cli/ctl_approvals.c: approvals list|approve|deny (the broker, through the supervisor). */
int ctl_approvals(int argc, char **argv);
/* cli/ctl_audit.c: audit verify|tail|pubkey (reads the log files; no daemon needed). */
int ctl_audit(int argc, char **argv);
/* cli/ctl_secrets.c: secrets init|set|list|rm (the encrypted store; values from stdin only). */
int ctl_secrets(int argc, char **argv);
