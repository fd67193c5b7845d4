/* bastion-front: the network-facing process. It terminates TLS, parses each request with the strict
 * HTTP/1.1 subset (http.h), decides what the transport alone can decide (limits, timeouts, connection
 * caps, Host and Origin, routing, a token in the URL) and forwards everything else to the broker over
 * the channel of lib/front_proto.h, then writes back exactly what the broker answers. It opens nothing,
 * connects nowhere and holds nothing but its TLS key. docs/front.md describes it.
 *
 *   main.c      start-up, the supervisor channel (config, TLS, listener, broker channel), lock-down
 *   conn.c      one client connection: accept and caps, TLS, reading, parsing, writing, timeouts
 *   request.c   the checks of a parsed request and the FRONT_REQUEST it becomes
 *   relay.c     the broker channel: requests and cancellations out, responses and SSE events back */
#pragma once

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "conf.h"
#include "front/http.h"
#include "front/origin.h"
#include "front/tls.h"
#include "front_proto.h"
#include "linebuf.h"

#define FRONT_SUPERVISOR_FD 3
/* Connection and per-address lookups: buckets of two small hash tables. */
#define FRONT_CONN_BUCKETS 4096
#define FRONT_PEER_BUCKETS 1024
/* Bytes read from a socket in one call. */
#define FRONT_READ_CHUNK (64 * 1024)
/* After an error answer the connection is closed for writing and whatever the client still sends is
 * read and dropped for this long, so the answer is not destroyed by a reset (RFC 9112 §9.6). */
#define FRONT_LINGER_MS 1000
/* A TLS connection on which nothing happened for this long hands OpenSSL's read and write buffers
 * (16 KiB and more each) back: 1,000 idle keep-alive connections hold none of them, and a busy one keeps
 * its own rather than cleansing, freeing and allocating them again for every request. */
#define FRONT_TLS_IDLE_MS 1000

enum conn_state {
        CONN_HANDSHAKE,         /* TLS handshake */
        CONN_READ,              /* waiting for (the rest of) a request */
        CONN_BROKER,            /* a request is with the broker */
        CONN_SSE,               /* the broker streams the answer */
        CONN_CLOSING,           /* the last answer is being written, then the connection closes */
        CONN_LINGER,            /* written and shut down for writing; draining the client */
};

struct peer {
        struct in6_addr addr;   /* IPv4 as v4-mapped */
        unsigned n;
        struct peer *next;
};

struct front;

struct conn {
        struct front *f;
        uint64_t id;
        int fd;
        bool use_tls;
        struct tls_conn tls;
        enum conn_state state;
        sd_event_source *io, *timer;
        /* CLOCK_MONOTONIC µs, 0: none. The timer is set for timer_at, never later than the other two. */
        uint64_t deadline;              /* the timeout running */
        uint64_t release_at;            /* of the TLS buffers, after FRONT_TLS_IDLE_MS without a step */
        uint64_t timer_at;
        struct peer *peer;
        char addr[INET6_ADDRSTRLEN];
        uint32_t want_read, want_write; /* what the last -EAGAIN waits for */
        /* A read may find bytes: epoll said so since the last read came back short, or the last one
         * filled the room, or OpenSSL holds bytes it has read ahead (epoll cannot see those). */
        bool may_read;

        char *in;                       /* bytes received, a request at the start */
        size_t in_len, in_cap;
        struct outbuf out;

        /* The request being handled. */
        uint64_t stream;                /* number of the current request (1, 2, …) */
        size_t consumed;                /* its length in `in`, dropped when it is answered */
        bool head_checked, continue_sent, keep_alive;
        char *origin;                   /* its (allowed) Origin: CORS headers on the answer */
        int sse_status;                 /* the status of its SSE answer, for the access log */
        char method[8];
        char path[96];                  /* for the access log; never the query */
        uint64_t started;

        struct conn *next, *prev;       /* all connections */
        struct conn *bucket_next;       /* by id */
};

/* An allowed Origin: a scheme and one authority. */
struct front_origin {
        bool tls;
        struct front_authority authority;
};

struct relay_msg {
        uint32_t type;
        struct front_out out;
        struct relay_msg *next;
};

struct front {
        sd_event *event;
        sd_event_source *sup_io, *sigterm, *sigint;
        struct bastion_config config;
        bool have_config;
        struct tls_server tls;          /* .ctx NULL until CHAN_TLS (and always with plain HTTP) */
        struct http_limits limits;
        struct front_authority *hosts;
        size_t n_hosts;
        struct front_origin *origins;
        size_t n_origins;
        bool locked;
        bool exiting;                   /* the loop is ending: nothing more goes to the broker */

        int listen_fd;
        sd_event_source *listen_io;
        struct conn *conns;
        unsigned n_conns;
        uint64_t next_conn_id;
        struct conn *by_id[FRONT_CONN_BUCKETS];
        sd_event_source *trim;          /* malloc_trim() after TLS buffers were released */
        struct peer *peers[FRONT_PEER_BUCKETS];

        int broker_fd;
        sd_event_source *broker_io;
        struct relay_msg *queue_head, *queue_tail;      /* waiting for room in the channel */

        struct outbuf scratch;          /* one SSE event before it becomes a chunk */
        struct http_request req;        /* the request being parsed (large: one per process) */
};

/* main.c */
/* Ends the event loop with code; connections are closed once it has returned. */
void front_exit(struct front *f, int code);

/* conn.c */
int conn_accept(struct front *f);
struct conn *conn_find(struct front *f, uint64_t id);
/* Pumps a connection: handshake, writes, reads, parsing, until nothing moves; then watches what it
 * waits for. The connection may be freed: callers must not use c afterwards. */
void conn_run(struct conn *c);
void conn_close(struct conn *c, const char *why);
void conns_close_all(struct front *f, const char *why);
/* The current request is answered completely: keep the connection for the next one, or close it. */
void conn_request_done(struct conn *c, bool keep, int status);
/* An answer of the front itself: a JSON-RPC error body (no id); the connection closes after it unless
 * keep is set. */
void conn_write_error(struct conn *c, int status, const char *message, bool keep);
/* The output buffer is full (a client that does not read), or a write was refused. */
void conn_write_failed(struct conn *c, int r);
void conn_watch_output(struct conn *c);

/* request.c */
/* Checks a complete head (Host, Origin, route, method, token in the URL); answers and returns false
 * when the front refuses or answers it itself. */
bool request_check_head(struct conn *c, const struct http_request *req);
/* Sends the complete request to the broker; answers the client itself when it cannot. */
void request_forward(struct conn *c, const struct http_request *req);
/* CORS headers for an answer to an allowed Origin: appended to h (room for 3), returns the count. */
size_t request_cors_headers(const struct conn *c, struct http_header *h);

/* relay.c */
int relay_start(struct front *f, int fd);
/* Sends or queues a message to the broker; takes o (done with it either way). -EMSGSIZE when it is too
 * large for the channel, -EINVAL when a string holds a NUL. */
int relay_send(struct front *f, uint32_t type, struct front_out *o);
void relay_cancel(struct conn *c);
