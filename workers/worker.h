/* bastion-worker: one MCP stdio server per process. The skeleton (mcp_server.c) frames lines, parses
 * JSON-RPC, dispatches the lifecycle methods and runs tools from a domain's table; a domain
 * (workers/DOMAIN/) owns its database and its tools and nothing else. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "linebuf.h"

#define WORKER_PROTOCOL_VERSION "2025-11-25"
#define META_PRINCIPAL "dev.bastion/principal"

/* Who the broker says is calling, parsed once from params._meta["dev.bastion/principal"].
 * Strings are borrowed from the request and live as long as the call. */
struct worker_principal {
        bool present;           /* false when run by hand without a broker */
        const char *sub;
        long long uid;          /* -1 when not given */
        const char *tenant;     /* NULL when not given or null */
        const char *role;       /* NULL when not given or null */
        const json_t *scopes;   /* array of strings; NULL when not given */
};

struct mcp_server;

/* One tools/call as the handler sees it: arguments already validated against the inputSchema. */
struct tool_call {
        struct mcp_server *server;
        void *domain_state;
        const struct worker_principal *principal;
        const json_t *arguments;        /* object, never NULL */
        const json_t *progress_token;   /* _meta.progressToken, or NULL */
        double last_progress;
};

/* Returns 0 and a CallToolResult (tool_result_*) in *ret, or a negative errno for an internal
 * failure, which the caller turns into a generic isError result (details only in the log). */
typedef int (*tool_handler_t)(struct tool_call *call, json_t **ret);

struct tool {
        const char *name;
        const char *title;
        const char *description;
        const char *input_schema;       /* JSON text; root is "type":"object" */
        const char *output_schema;      /* JSON text or NULL; when set, every success honours it */
        bool read_only, destructive, idempotent, open_world;
        tool_handler_t handler;
};

struct domain {
        const char *name;
        const char *server_name;        /* serverInfo.name */
        /* Opens (creating the schema, and seeding when demo_data) everything the domain needs, before
         * the sandbox locks the process down. */
        int (*open)(const char *db_path, bool demo_data, void **ret_state);
        void (*close)(void *state);
        const struct tool *tools;
        size_t n_tools;
        /* Resources, optional: a domain without resource_read declares no resources capability.
         * resources_list appends the Resource objects this principal may see to `resources`;
         * resource_read sets *ret_contents to the contents array and returns 0, or returns -ENOENT for
         * a URI that does not exist or that the principal may not see (the two are never told apart),
         * another negative errno on failure. */
        int (*resources_list)(void *state, const struct worker_principal *p, json_t *resources);
        int (*resource_read)(void *state, const struct worker_principal *p, const char *uri, json_t **ret_contents);
};

extern const struct domain inventory_domain;
extern const struct domain orders_domain;
extern const struct domain logistics_domain;
extern const struct domain returns_domain;
extern const struct domain payments_domain;

/* ---- credential.c ---- */

/* The fd bastiond passes a worker's credential at (DESIGN §3: channel at 3, credential at 4). */
#define WORKER_CREDENTIAL_FD 4

/* At start, before the lockdown: 1 when fd 4 holds a sealed credential memfd (kept open for the
 * domain), 0 when the worker has no credential. */
int worker_credential_take(void);
/* Bytes of the credential, -1 when there is none. */
ssize_t worker_credential_size(void);
/* Copies the credential into buf (size at least worker_credential_size()); returns its length, -ENOENT
 * without a credential. For a backend client; the value must never reach a log line or a tool result. */
int worker_credential_read(void *buf, size_t size);

/* ---- mcp_server.c ---- */

struct mcp_server {
        const struct domain *domain;
        void *domain_state;
        json_t **input_schemas;         /* parsed, per tool */
        json_t *tools_list;             /* the tools/list result, built once */
        struct linebuf in;
        struct outbuf out;
        int out_fd;                     /* -1: replies stay queued in `out` (tests) */
        bool initialized;
};

int mcp_server_init(struct mcp_server *s, const struct domain *d, void *domain_state, int out_fd);
void mcp_server_done(struct mcp_server *s);
/* Handles every complete line buffered in s->in, queueing (and, with an out_fd, writing) replies.
 * Negative errno only when the channel itself failed. */
int mcp_server_process(struct mcp_server *s);
/* Serves on in_fd/out_fd until EOF or mcp_server_stop() (0), or a channel error (negative errno). */
int mcp_server_run(struct mcp_server *s, int in_fd);
/* Async-signal-safe: the run loop returns 0 once the call in progress (if any) is answered. */
void mcp_server_stop(void);

int principal_parse(const json_t *params, struct worker_principal *ret);

/* CallToolResult builders: a text block for people and older clients plus structuredContent. */
json_t *tool_result_ok(json_t *structured, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
json_t *tool_result_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* For handlers: answers the call with an isError result (*ret) and returns 0. */
int tool_fail(json_t **ret, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends notifications/progress when the call asked for it (progress must increase). */
int tool_call_progress(struct tool_call *call, double progress, double total, const char *message);
