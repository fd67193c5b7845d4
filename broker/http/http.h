/* Streamable HTTP in the broker (docs/auth.md, docs/broker.md "Over HTTP"): bastion-front forwards each
 * HTTP request (lib/front_proto.h) with the raw bearer token; here the token is verified, the caller
 * rate-limited, and the MCP message handed to broker/mcp/server.c through a virtual client whose
 * answers go back to the front as a response or an SSE stream.
 *
 *   front.c      the channel: receive, validate, route; send responses and SSE events
 *   auth.c       the key set (CHAN_JWKS), bearer tokens -> principals, 401/403 challenges, RFC 9728
 *   ratelimit.c  token buckets per subject and per tenant
 *   mcp.c        both MCP eras over HTTP: legacy sessions, modern stateless requests, virtual clients */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "broker/auth/jwt.h"
#include "broker/broker.h"

/* Session ids: 256 bits from libsodium's CSPRNG, hex (visible ASCII, as the spec requires). */
#define HTTP_SESSION_ID_BYTES 32
#define HTTP_SESSION_ID_LEN (2 * HTTP_SESSION_ID_BYTES)
/* Legacy sessions: each is a virtual client with its own state; bounded, and forgotten when idle. */
#define HTTP_MAX_SESSIONS 4096
/* One caller's share: opening more ends that caller's least recently used session (a client that
 * never DELETEs cannot crowd out everybody else). */
#define HTTP_MAX_SESSIONS_PER_SUBJECT 64
#define HTTP_SESSION_IDLE_SEC (30 * 60)
#define HTTP_SESSION_SWEEP_SEC 60
/* HTTP requests awaiting their answer: the front serves each connection one request at a time, so
 * this is its connection limit with room to spare. */
#define HTTP_MAX_EXCHANGES 8192
/* A front that does not take its messages for this long is treated as broken (its channel ends). */
#define HTTP_FRONT_SEND_WAIT_MS 200
/* Rate-limit buckets kept at once (subjects and tenants); idle full buckets are reused first. */
#define HTTP_RATE_BUCKETS 4096
#define HTTP_RATE_PROBE 16

/* Our JSON-RPC code for a call refused over HTTP for a missing scope (HTTP 403; outside the reserved range). */
#define HTTP_ERROR_FORBIDDEN -31010

/* One FRONT_REQUEST, checked once at the edge; strings are borrowed from the message. */
struct http_request {
        uint64_t conn, stream;
        const char *method;             /* "GET" | "POST" | "DELETE" | "OPTIONS" */
        const char *server;
        const char *path;
        const char *peer;
        bool tls;
        const struct front_str *headers; /* name, value, name, value…: lowercase names, each once */
        size_t n_headers;               /* pairs */
        const char *body;               /* NUL-terminated; "" when absent */
        size_t body_len;
};

/* An HTTP request waiting for its JSON-RPC answer. */
struct http_exchange {
        struct http_exchange *next;
        uint64_t conn, stream;
        struct client *client;
        json_t *rpc_id;
        bool sse;                       /* the SSE head went out: the answer is the last event */
        bool modern;
        bool announce_session;          /* legacy initialize: the answer carries Mcp-Session-Id */
};

struct http_session {
        struct http_session *next;
        char id[HTTP_SESSION_ID_LEN + 1];
        struct client *client;
        uint64_t last_used_us;          /* CLOCK_MONOTONIC */
};

struct rate_bucket {
        uint8_t key[16];                /* keyed BLAKE2b of "s:" sub or "t:" tenant */
        bool used;
        double tokens;
        uint64_t at_us;
};

struct http_state {
        struct broker *b;
        int fd;                         /* the front channel, -1 when none */
        sd_event_source *io;
        sd_event_source *drop;          /* deferred teardown after a broken channel */
        struct http_exchange *exchanges;
        unsigned n_exchanges;
        struct http_session *sessions;
        unsigned n_sessions;
        sd_event_source *sweep;
        struct jwks *jwks;
        struct jwt_cache *cache;
        struct rate_bucket *buckets;
        uint8_t bucket_key[16];
        struct front_queued *queued;    /* built while the broker was corked (broker_cork()) */
        size_t n_queued, cap_queued;
};

/* front.c */
struct http_state *http_get(struct broker *b);
const char *http_header(const struct http_request *r, const char *name);
/* headers: an array of [name, value] pairs (stolen, may be NULL). */
void http_respond(struct http_state *h, uint64_t conn, uint64_t stream, int status, json_t *headers,
                  const char *body, size_t len);
void http_respond_json(struct http_state *h, uint64_t conn, uint64_t stream, int status, json_t *headers,
                       json_t *body);
void http_sse_start(struct http_state *h, uint64_t conn, uint64_t stream, json_t *headers);
void http_sse_event(struct http_state *h, uint64_t conn, uint64_t stream, const json_t *msg);
void http_sse_end(struct http_state *h, uint64_t conn, uint64_t stream);

/* auth.c */
char *http_resource_uri(const struct bastion_config *cfg, const char *server);
char *http_metadata_url(const struct bastion_config *cfg, const char *server);
/* The server's scopes (tools, then resources), space-separated, each once; caller frees. */
char *http_server_scopes(const struct server_config *s);
void http_metadata(struct http_state *h, const struct http_request *r, const struct server_config *s);
/* Fills *ret and returns true, or answers 401 (audited) and returns false. */
bool http_authenticate(struct http_state *h, const struct http_request *r, const struct server_config *s,
                       struct principal *ret);
/* 403 with the insufficient_scope challenge naming `scopes`. */
void http_forbidden(struct http_state *h, const struct http_request *r, const struct server_config *s,
                    const char *scopes, json_t *body);

/* ratelimit.c: true when allowed; otherwise answers 429 with Retry-After (audited) and returns false. */
bool http_rate_allow(struct http_state *h, const struct http_request *r, const struct principal *p);

/* mcp.c */
void http_mcp(struct http_state *h, const struct http_request *r, const struct server_config *s,
              const struct principal *p);
void http_cancel(struct http_state *h, uint64_t conn, uint64_t stream);
/* The front is gone: forget every exchange (modern calls are cancelled; sessions stay). */
void http_exchanges_drop(struct http_state *h);
void http_sessions_sweep(struct http_state *h);
