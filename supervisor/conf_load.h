/* Loading bastion.conf(5) with libconfig into lib/conf.h's struct. Every error, syntactic or
 * semantic, comes back as one line "FILE:LINE: message". */
#pragma once

#include <stdbool.h>
#include <sys/socket.h>

#include "conf.h"

/* Returns 0 and fills *ret, or -EINVAL (bad configuration; *ret_error = "FILE:LINE: message") or
 * another negative errno (the file cannot be read; *ret_error says so). *ret_error is malloc'd. */
int config_load(const char *path, struct bastion_config *ret, char **ret_error);

/* A reload keeps each surviving server on the uid it already runs as (when the new range still
 * holds it); the others get the lowest free uid of the new range. */
void config_inherit_uids(struct bastion_config *c, const struct bastion_config *previous);

/* True when the two server entries would start a different worker process (domain, paths, uid,
 * limits, demo data); policy differences only need a new CONFIG message for the broker. */
bool server_config_process_differs(const struct server_config *a, const struct server_config *b);

/* The socket address of an `http.listen` value ("IPV4:PORT" or "[IPV6]:PORT"): returns the port, or
 * -EINVAL. ret_loopback: 127.0.0.0/8 or ::1; ret_wildcard: 0.0.0.0 or ::. */
int http_listen_address(const char *listen, struct sockaddr_storage *ret, socklen_t *ret_len, bool *ret_loopback,
                        bool *ret_wildcard);
