/* bastion-broker: the policy hub. An MCP server to local clients (both protocol eras), an MCP client
 * to each worker, and the only place where identity, scopes and routing are decided.
 *
 * Processes it talks to: the supervisor (fd 3, lib/chan framing), one client per accepted local
 * connection (MCP lines after a one-line preamble), one upstream per worker (MCP lines). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <systemd/sd-event.h>

#include "bounds.h"
#include "conf.h"
#include "linebuf.h"

#define BROKER_VERSION PACKAGE_VERSION
#define MCP_LEGACY_VERSION "2025-11-25"
#define MCP_MODERN_VERSION "2026-07-28"
#define META_PRINCIPAL "dev.bastion/principal"
#define META_PREFIX_BASTION "dev.bastion/"
/* The inputRequests key of the broker's own confirmation (2026-07-28). Keys under dev.bastion/ are the
 * broker's: no worker may ask under one (upstream.c). */
#define BROKER_CONFIRM_KEY META_PREFIX_BASTION "confirm"
#define META_PROTOCOL_VERSION "io.modelcontextprotocol/protocolVersion"
#define META_CLIENT_CAPS "io.modelcontextprotocol/clientCapabilities"
#define META_SERVER_INFO "io.modelcontextprotocol/serverInfo"
#define META_LOG_LEVEL "io.modelcontextprotocol/logLevel"
/* A worker tags what it sends while serving a request with that request's id (workers/worker.h). */
#define META_RELATED "dev.bastion/related"

struct broker;
struct chan_msg;
struct client;
struct upstream;
struct jsonrpc_msg;
struct audit_log;
struct secrets_store;
struct http_state;
struct http_session;
struct task;

enum era { ERA_UNKNOWN, ERA_LEGACY, ERA_MODERN };

/* Who is calling. A local caller is derived from SO_PEERCRED once, at accept time; a remote caller from
 * a verified bearer token on every HTTP request (broker/http/). Role scopes are looked up in the current
 * configuration on every request, so a reload takes effect immediately. */
enum principal_source {
        PRINCIPAL_LOCAL,        /* uid, gid, groups from the kernel; role from the users map */
        PRINCIPAL_TOKEN,        /* sub, role, tenant, scope from a verified access token */
        PRINCIPAL_ANONYMOUS,    /* oauth.anonymous_role on plain loopback HTTP (tests only) */
};

struct principal {
        enum principal_source source;
        uid_t uid;                              /* local only; (uid_t) -1 otherwise */
        gid_t gid;
        gid_t groups[64];
        int n_groups;
        char sub[BASTION_JWT_MAX_SUB + 1];      /* "uid:N", or the token's sub */
        char role[BASTION_JWT_MAX_ROLE + 1];    /* token/anonymous: the role name ("" = none) */
        char tenant[BASTION_JWT_MAX_TENANT + 1];/* token: the tenant claim ("" = none) */
        char scope[BASTION_JWT_MAX_SCOPE + 1];  /* token: its scopes, space-separated */
};

enum call_kind {
        CALL_TOOL, CALL_RESOURCES_LIST, CALL_RESOURCE_READ,
        /* passed through to workers that offer them (upstream_forward) */
        CALL_TEMPLATES_LIST, CALL_PROMPTS_LIST, CALL_PROMPT_GET, CALL_COMPLETE, CALL_SUBSCRIBE,
};

/* A request a worker sent the client of one of its calls (sampling/createMessage, elicitation/create,
 * roots/list), relayed under an id the broker chose; the answer goes back under the worker's id. */
struct relay {
        struct relay *next;             /* in call->relays */
        json_t *worker_id;
        char client_id[40];             /* "bastion-relay-N" */
};

/* A request forwarded to a worker and not yet answered. */
struct call {
        enum call_kind kind;
        struct call *next;              /* in upstream->calls */
        struct upstream *up;
        struct client *client;          /* NULL once the client has gone */
        json_t *client_id;              /* the id the client used */
        json_t *progress_token;         /* the client's token, or NULL */
        int64_t upstream_id;
        uint64_t intent_seq;            /* its audit intent record; 0 = none */
        bool side_effect;               /* its intent and result records are durable before anyone acts */
        enum era era;
        json_t *pending;                /* message not yet sent (worker still handshaking) */
        sd_event_source *timer;
        char tool[128];                 /* tool name, or the resources method */
        char *uri;                      /* resources/read: the URI asked for */
        json_t *client_caps;            /* what the client can be asked (either era), or NULL */
        int log_level;                  /* notifications/message at or above it are relayed; -1: none */
        struct relay *relays;           /* the worker's requests to the client, unanswered */
};

/* A 2025-11-25 call held while the human at the host is asked to confirm it. */
struct held_call {
        struct held_call *next;
        struct client *client;
        json_t *client_id;
        json_t *arguments;              /* validated; what is confirmed is exactly what runs */
        json_t *meta;
        int64_t elicit_id;
        sd_event_source *timer;
        char tool[128];
};

enum upstream_state { UPSTREAM_DOWN, UPSTREAM_HANDSHAKE, UPSTREAM_READY, UPSTREAM_FAILED };

struct upstream {
        struct upstream *next;
        struct broker *b;
        char *name;
        int fd;
        sd_event_source *io;
        struct linebuf in;
        struct outbuf out;
        uint64_t generation;
        enum upstream_state state;
        json_t *tools;                  /* the worker's tools/list, kept across restarts */
        json_t *tools_next;             /* tools/list pages gathered during a handshake */
        json_t *caps;                   /* the worker's capabilities (initialize), kept across restarts */
        int64_t next_id;
        int64_t handshake_id;           /* initialize, then tools/list pages; 0 when idle */
        bool handshake_listing;
        sd_event_source *handshake_timer;
        struct call *calls;
        bool corked_output;             /* written to while corked: flushed by broker_uncork() */
        char reason[160];               /* why it is down or failed */
};

struct client {
        struct client *next;
        struct broker *b;
        int fd;
        sd_event_source *io;
        struct linebuf in;
        struct outbuf out;
        bool have_preamble;
        bool closing;                   /* flush what is queued, then close */
        bool read_closed;               /* the client sent EOF: answer what is in flight, then close */
        char server[BASTION_NAME_BUF];
        struct principal principal;
        enum era era;
        bool initialized;               /* legacy: initialize answered */
        json_t *client_caps;            /* legacy: capabilities declared at initialize */
        unsigned inflight;
        int log_level;                  /* legacy: logging/setLevel (index into mcp_log_levels) */
        json_t *subscriptions;          /* legacy: resources/subscribe, URI -> true */
        /* HTTP (broker/http/): a virtual client (fd -1) serving one legacy session or one modern request;
         * what is sent to it goes to the front as responses and SSE events. */
        bool http;
        struct http_session *session;   /* legacy; NULL for a modern request */
        sd_event_source *http_free;     /* modern: freed once its answer is out */
        /* A task's own client (mcp/tasks.c): no connection; what is sent to it is the task's worker call
         * answering, and goes to the task. */
        struct task *task;
};

struct broker {
        sd_event *event;
        int sup_fd;
        sd_event_source *sup_io;
        int listen_fd;
        sd_event_source *listen_io;
        struct bastion_config config;
        bool have_config;
        bool ready_sent;
        bool stopping;
        struct client *clients;
        unsigned n_clients;
        struct upstream *upstreams;
        struct held_call *held;
        struct audit_log *audit;
        bool audit_failed;              /* sticky: every call is refused once the log cannot be written */
        struct secrets_store *store;
        struct secret_file *secret_files;       /* what bastiond opened for record_open; then closed */
        struct http_state *http;        /* the front channel, sessions, token keys (broker/http/) */
        struct task *tasks;             /* io.modelcontextprotocol/tasks (mcp/tasks.c) */
        unsigned n_tasks;
        unsigned corked;                /* broker_cork() depth: sends wait for the audit records */
};

/* main.c */
int broker_send_supervisor(struct broker *b, uint32_t type, json_t *payload);
void broker_maybe_finish_stop(struct broker *b);

/* upstream.c: one batch of incoming messages is handled corked. Audit records are held (audit_hold())
 * and what the batch sends to workers and to the front is queued; broker_uncork() writes the records
 * with one write(2), then sends. So a call's intent is in the kernel before its worker hears of it and
 * its result before the client does, as without the cork, with a system call per batch instead of per
 * record. If the records cannot be written, the workers the batch wrote to are dropped unsent
 * (their calls fail) and the broker refuses calls from then on. Nests. */
void broker_cork(struct broker *b);
void broker_uncork(struct broker *b);
/* Within a corked batch: every BROKER_BATCH_SLICE messages, what the slice produced is written and sent
 * (uncork, cork again), so the worker and the front start on it while the rest of the batch is handled.
 * Measured on bench/http at 16 connections: ~10-20 % more calls per second than one write for the whole
 * batch, at the same CPU per call. */
#define BROKER_BATCH_SLICE 4
void broker_batch_slice(struct broker *b, unsigned handled);

/* client.c */
int client_accept(struct broker *b);
void client_send(struct client *c, json_t *msg);        /* steals msg */
/* A notification or server->client request that belongs to the client's request `related_id` (progress,
 * log messages, elicitation and sampling requests). On a local connection it is client_send(); over HTTP
 * it goes on that request's SSE stream (or is dropped when the stream is gone). */
void client_send_related(struct client *c, json_t *msg, const json_t *related_id);
void client_free(struct client *c);
void clients_drop_server(struct broker *b, const char *server);

/* http/ — Streamable HTTP through bastion-front, OAuth bearer tokens (docs/auth.md) */
int http_front_attach(struct broker *b, int fd);          /* CHAN_FRONT */
int http_jwks_update(struct broker *b, json_t *payload);  /* CHAN_JWKS */
void http_client_send(struct client *c, json_t *msg, const json_t *related_id);  /* steals msg */
void http_client_gone(struct client *c);
void http_config_changed(struct broker *b);
void http_done(struct broker *b);
void http_uncork(struct broker *b);   /* sends what front_send() queued while corked */

/* mcp/server.c — the MCP server side of one client connection */
void mcp_handle_line(struct client *c, char *line, size_t len);
json_t *mcp_finish_result(const struct client *c, enum era era, json_t *result);
/* What a 2026-07-28 tools/call retry of the worker's own InputRequiredResult hands back to it: its
 * inputResponses and requestState (an object, empty when there are none). */
json_t *mcp_retry_extra(const json_t *params);

/* mcp/era.c */
enum era mcp_detect_era(enum era current, const char *method, const json_t *params);

/* mcp/principal.c */
int principal_from_socket(int fd, struct principal *ret);
const struct principal_map *principal_lookup(const struct bastion_config *cfg, const struct principal *p);
json_t *principal_to_meta(const struct bastion_config *cfg, const struct principal *p);
/* The caller's role name and tenant, whatever the source; NULL when none. */
const char *principal_role_name(const struct bastion_config *cfg, const struct principal *p);
const char *principal_tenant(const struct bastion_config *cfg, const struct principal *p);
/* The same caller: same source and same sub (a token sub "uid:0" is not local root). */
bool principal_same(const struct principal *a, const struct principal *b);

/* policy/policy.c */
const struct role *policy_role(const struct bastion_config *cfg, const struct principal *p);
bool policy_tool_visible(const struct bastion_config *cfg, const struct principal *p,
                         const char *server, const char *tool);
/* The first of `scopes` the caller lacks, or NULL when every one is held. */
const char *policy_missing_scope(const struct bastion_config *cfg, const struct principal *p,
                                 char *const *scopes, size_t n_scopes);
/* A resource is allowed when a policy entry matches its URI and the caller holds its scopes;
 * *ret_missing (if given) names the missing scope, or stays NULL when no entry matches. */
bool policy_resource_allowed(const struct bastion_config *cfg, const struct principal *p, const char *server,
                             const char *uri, const char **ret_missing);
bool policy_server_has_resources(const struct bastion_config *cfg, const char *server);

/* approval/confirm.c — `confirm` approvals in both eras */
int confirm_init(void);
void confirm_call(struct client *c, enum era era, json_t *id, const char *tool, json_t *arguments,
                  json_t *meta, json_t *params);
bool confirm_legacy_answer(struct client *c, const struct jsonrpc_msg *m);
void confirm_client_gone(struct broker *b, struct client *c);
unsigned confirm_held_count(const struct broker *b);

/* approval/approver.c — `approver` (four-eyes) approvals */
void approver_call(struct client *c, enum era era, json_t *id, const char *tool, json_t *arguments, json_t *meta);
json_t *approvals_command(struct broker *b, json_t *request);

/* record.c — the audit log and the secrets the broker holds */
/* A CHAN_SECRET_FILE from the supervisor: kept until record_open reads it. The broker opens no secret
 * file by path: the store key, the store and plain systemd credentials all come as fds. */
struct secret_file {
        struct secret_file *next;
        char *what;                     /* "key", "store" or "credential" */
        char *name;                     /* a file's path, or a credential's name */
        bool credential;                /* key: from $CREDENTIALS_DIRECTORY (no owner check) */
        int fd;                         /* -1: err says why there is none */
        int err;
};
int record_secret_file(struct broker *b, struct chan_msg *m);
/* `bastion-broker --first-start STORE [KEY_FILE]`: creates what is missing of the key, the store and
 * the audit signing key (never replaces anything). */
int record_first_start(const char *store_path, const char *key_file);
int record_open(struct broker *b);
void record_close(struct broker *b);
int record_intent(struct broker *b, struct call *call, const struct client *c, const json_t *arguments,
                  const json_t *approval, bool side_effect);
void record_result(struct broker *b, const struct call *call, const json_t *msg);
void record_denial(struct broker *b, const struct client *c, const char *tool, const char *reason);
/* The same for a caller that has no client (an HTTP request refused before MCP: rate limit, scope). */
void record_denial_as(struct broker *b, const struct principal *who, const char *server, const char *tool,
                      const char *reason);
void record_approval(struct broker *b, int event, const char *id, const struct principal *who,
                     const char *server, const char *tool, const char *decided_by);
/* ev: an enum audit_task_event. A task's id is recorded: it grants nothing without its principal. */
void record_task(struct broker *b, int ev, const struct principal *who, const char *server, const char *tool,
                 const char *task_id, const char *detail);
void record_worker(struct broker *b, bool up, const char *server, uint64_t generation, const char *detail);
void record_reload(struct broker *b, bool ok, const char *detail);
/* Answers a CHAN_CREDENTIAL_REQ (same header id): a sealed memfd of the server's configured credential,
 * or no fd and an error; the hand-over is audited by name. Negative only when the channel failed. */
int record_credential_request(struct broker *b, uint32_t id, json_t *payload);
/* who: where the request came from and what it asked for; reason: why it was refused (never a token). */
void record_auth_failure(struct broker *b, const char *who, const char *reason);

/* upstream.c — the MCP client side of one worker */
struct upstream *upstream_get(struct broker *b, const char *name);
struct upstream *upstream_ensure(struct broker *b, const char *name);
void upstream_attach(struct upstream *u, int fd, uint64_t generation);
void upstream_down(struct upstream *u, const char *reason, bool failed);
void upstream_remove(struct upstream *u, const char *reason);
/* Forwards a tools/call; answers the client itself on every outcome. */
void upstream_call(struct upstream *u, struct client *c, json_t *client_id, enum era era,
                   const char *tool, json_t *arguments, json_t *client_meta, json_t *approval);
/* The same, passing on `extra` (borrowed; e.g. a 2026-07-28 retry's inputResponses and requestState). */
void upstream_call_ex(struct upstream *u, struct client *c, json_t *client_id, enum era era, const char *tool,
                      json_t *arguments, json_t *client_meta, json_t *approval, const json_t *extra);
void upstream_resource(struct upstream *u, struct client *c, json_t *client_id, enum era era, enum call_kind kind,
                       const char *uri, json_t *client_meta);
/* Passes one of the CALL_TEMPLATES_LIST … CALL_SUBSCRIBE requests through, params as the client sent
 * them minus its _meta; answers the client on every outcome. */
void upstream_forward(struct upstream *u, struct client *c, json_t *client_id, enum era era, enum call_kind kind,
                      const char *method, json_t *params);
/* The client's answer to a request relayed from a worker. False if it answers nothing we relayed. */
bool upstream_relay_answer(struct client *c, const struct jsonrpc_msg *m);
/* notifications/message levels, most verbose first; -1 for an unknown name. */
int mcp_log_level(const char *name);
void upstream_cancel(struct upstream *u, struct client *c, json_t *client_id);
void upstream_client_gone(struct broker *b, struct client *c);
const json_t *upstream_tool(const struct upstream *u, const char *tool);
unsigned broker_calls_in_flight(struct broker *b);
