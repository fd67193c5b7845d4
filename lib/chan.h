/* Framed messages between the supervisor and the broker (and later the front): a fixed header,
 * a bounded JSON payload, and file descriptors passed with SCM_RIGHTS only where a type expects them.
 * The channel is a SOCK_SEQPACKET socketpair, so the kernel keeps message boundaries. */
#pragma once

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "bounds.h"

enum chan_type {
        /* supervisor -> broker */
        CHAN_CONFIG = 1,        /* payload: compiled configuration (config_to_json) */
        CHAN_LISTENER,          /* fd: the listening local MCP socket */
        CHAN_WORKER_UP,         /* payload {server, generation}; fd: the worker's MCP channel */
        CHAN_WORKER_DOWN,       /* payload {server, generation, reason, failed} */
        CHAN_STOP,              /* payload {deadline_ms}: finish in-flight calls, then exit */
        CHAN_APPROVALS,         /* payload {op: list|approve|deny, id?, uid, gid, groups[]}: a bastionctl
                                 * request; uid/gid/groups are the control-socket peer's SO_PEERCRED */
        /* broker -> supervisor */
        CHAN_READY = 64,        /* payload {}: configuration applied, listening */
        CHAN_STOPPED,           /* payload {}: drained, about to exit */
        CHAN_APPROVALS_REPLY,   /* payload {ok, error?, approvals?}: answer, same header id as the request */
        _CHAN_TYPE_MAX,
};

struct chan_hdr {
        uint32_t type;
        uint32_t len;           /* payload bytes after the header */
        uint32_t id;
        uint32_t n_fds;         /* fds the sender attached; must match what arrived */
};

struct chan_msg {
        uint32_t type;
        uint32_t id;
        json_t *payload;        /* owned; an object */
        int fds[BASTION_MAX_CHAN_FDS];
        unsigned n_fds;
};

/* Sends one message; fds are duplicated by the kernel, the caller keeps its copies. */
int chan_send(int fd, uint32_t type, uint32_t id, json_t *payload, const int *fds, unsigned n_fds);
/* Receives one message. Returns 1 with *ret filled, 0 on EOF, -EAGAIN, or a negative errno for any
 * protocol violation (oversized, truncated control data, fd count mismatch, bad JSON) — which the
 * caller treats as fatal for that peer. */
int chan_recv(int fd, struct chan_msg *ret);
/* Takes fd i out of the message (the caller owns it afterwards). */
int chan_msg_take_fd(struct chan_msg *m, unsigned i);
/* Frees the payload and closes every fd nobody took. */
void chan_msg_done(struct chan_msg *m);
