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
        CHAN_FRONT,             /* payload {}; fd: the broker's end of the broker <-> front channel
                                 * (lib/front_proto.h). Sent again with a new fd when the front restarts. */
        CHAN_JWKS,              /* payload {jwks: "<file contents>", path}: the OAuth JWKS, read by the
                                 * supervisor at start, on SIGHUP and when the file changes */
        CHAN_CREDENTIAL_REQ,    /* payload {server, generation}: the supervisor is about to spawn this
                                 * worker and asks for its credential */
        CHAN_TLS,               /* supervisor -> front: payload {cert_pem, key_pem}, at start and on SIGHUP */
        CHAN_SECRET_FILE,       /* payload {what: key|store|credential, path?, name?, source?, errno?}; fd (0
                                 * or 1): a secret file the supervisor opened read-only for the broker,
                                 * which may not open it itself (docs/sandbox.md). Sent before the first
                                 * CHAN_CONFIG; without an fd, errno says why (ENOENT: does not exist). */
        /* broker -> supervisor */
        CHAN_READY = 64,        /* payload {}: configuration applied, listening */
        CHAN_STOPPED,           /* payload {}: drained, about to exit */
        CHAN_APPROVALS_REPLY,   /* payload {ok, error?, approvals?}: answer, same header id as the request */
        CHAN_CREDENTIAL,        /* payload {server, generation, name?, error?}; fd (0 or 1): a sealed memfd
                                 * holding only that worker's secret, same header id as the
                                 * CHAN_CREDENTIAL_REQ; without an fd, error says why (never a value) */
        _CHAN_TYPE_MAX,
};

/* chan_recv refuses type 0 and types at or above this; the receiver checks the type it expects (the
 * broker <-> front channel uses the types of lib/front_proto.h, which sit below this limit). */
#define CHAN_TYPE_LIMIT 256

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

/* A SOCK_SEQPACKET socketpair (CLOEXEC) whose send buffers hold a message of the largest payload:
 * a SEQPACKET message must fit in the sender's buffer whole, and the default (~208 KiB) is smaller
 * than BASTION_MAX_CHAN_PAYLOAD. Needs CAP_NET_ADMIN for SO_SNDBUFFORCE (the supervisor has it); falls
 * back to SO_SNDBUF, which the kernel caps at wmem_max. */
int chan_socketpair(int ret[2]);

/* A message whose payload is not JSON (lib/front_proto.h): bytes, no fds. */
struct chan_raw {
        uint32_t type;
        uint32_t id;
        char *data;             /* owned, NUL-terminated copy of the payload */
        size_t len;
};
int chan_send_raw(int fd, uint32_t type, uint32_t id, const void *data, size_t len, const int *fds, unsigned n_fds);
/* Receives up to max (1..CHAN_RECV_BATCH) messages without fds with one recvmmsg(2), each into a copy
 * of its own (NUL-terminated; the caller may receive again while it holds them): how many (> 0); 0 when the channel ended before any; -EAGAIN when
 * none was waiting; -EBADMSG (any bad message, or one with fds: none is returned then, no fd is left
 * open) or -ENOMEM. Fewer than max means the socket had no more at that moment; an EOF after some
 * messages is reported by the next call. */
#define CHAN_RECV_BATCH 16
int chan_recv_raw_batch(int fd, struct chan_raw *ret, unsigned max);
void chan_raw_done(struct chan_raw *m);

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
