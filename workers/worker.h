/* bastion-worker: one MCP stdio server per process. The skeleton (mcp_server.c) frames lines, parses
 * JSON-RPC, dispatches the lifecycle methods and runs tools from a domain's table; a domain
 * (workers/DOMAIN/) owns its database and its tools and nothing else. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "json_write.h"
#include "linebuf.h"

#define WORKER_PROTOCOL_VERSION "2025-11-25"
#define META_PRINCIPAL "dev.bastion/principal"
/* On a notification or request the worker sends while serving a request: that request's id, so the
 * broker can route it to the client call it belongs to (and strips it before passing it on). */
#define META_RELATED "dev.bastion/related"
#define META_CLIENT_CAPABILITIES "io.modelcontextprotocol/clientCapabilities"

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
        const json_t *params;           /* the whole request params (inputResponses, requestState, _meta) */
        /* Set by a handler that must answer with a JSON-RPC error rather than a result (e.g. -32021 for a
         * capability the client did not declare); error_data is stolen. */
        int error_code;
        const char *error_message;
        json_t *error_data;
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
        /* NULL: listed only. Its input_schema may then use keywords lib/schema cannot enforce; it is
         * offered verbatim and every call is refused (the broker refuses such a call too). */
        tool_handler_t handler;
};

/* One prompts/get: arguments is an object of strings (never NULL). Same contract as tool_handler_t,
 * but *ret is a GetPromptResult, or an InputRequiredResult for the 2026-07-28 round trip. A prompt
 * that does not exist is answered by the skeleton; a handler returns -EINVAL for missing arguments. */
struct prompt_call {
        struct mcp_server *server;
        void *domain_state;
        const struct worker_principal *principal;
        const json_t *arguments;
        const json_t *params;
};

struct prompt {
        const char *name;
        const char *title;
        const char *description;
        const char *arguments;          /* JSON text: array of PromptArgument, or NULL */
        int (*handler)(struct prompt_call *call, json_t **ret);
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
        /* Resource templates, optional: JSON text of the resourceTemplates array. */
        const char *resource_templates;
        /* Prompts, optional: a domain without prompts declares no prompts capability. */
        const struct prompt *prompts;
        size_t n_prompts;
        /* completion/complete, optional: sets *ret_values to an array of strings for the argument of
         * the prompt or resource template `ref`. Declares the completions capability. */
        int (*complete)(void *state, const json_t *ref, const char *argument, const char *value,
                        json_t **ret_values);
        /* Optional: a tool's tools/list execution.taskSupport ("optional" or "required"), or NULL. The
         * broker may then run its calls as tasks of the io.modelcontextprotocol/tasks extension
         * (docs/broker.md, Tasks). */
        const char *(*task_support)(const char *tool);
        /* Declares the logging capability (notifications/message, logging/setLevel). */
        bool logging;
        /* Declares resources.subscribe: subscriptions are tracked by the skeleton (see
         * mcp_server_resource_updated). */
        bool subscribe;
};

extern const struct domain inventory_domain;
extern const struct domain orders_domain;
extern const struct domain logistics_domain;
extern const struct domain returns_domain;
extern const struct domain payments_domain;
extern const struct domain conformance_domain;

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
        int in_fd;                      /* for mcp_server_request(); -1: requests to the client fail */
        int log_level;                  /* index into the syslog-style MCP levels; lower is more verbose */
        const json_t *current_id;       /* id of the request being served, or NULL */
        json_t *deferred;               /* array of lines read while waiting for a client answer */
        json_t *subscriptions;          /* object: subscribed URI -> true */
        json_t *prompts_list;           /* the prompts/list result, built once */
        int64_t next_request_id;
};

int mcp_server_init(struct mcp_server *s, const struct domain *d, void *domain_state, int out_fd);
void mcp_server_done(struct mcp_server *s);
/* Handles every complete line buffered in s->in, queueing the replies and then (with an out_fd) writing
 * them out together; a message a handler sends meanwhile (progress, log, a request to the client) is
 * written at once, after the replies queued before it. Negative errno only when the channel failed. */
int mcp_server_process(struct mcp_server *s);
/* Serves on in_fd/out_fd until EOF or mcp_server_stop() (0), or a channel error (negative errno). */
int mcp_server_run(struct mcp_server *s, int in_fd);
/* Async-signal-safe: the run loop returns 0 once the call in progress (if any) is answered. */
void mcp_server_stop(void);

int principal_parse(const json_t *params, struct worker_principal *ret);

/* CallToolResult builders: a text block for people and older clients plus structuredContent. */
json_t *tool_result_ok(json_t *structured, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
json_t *tool_result_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* tool_result_ok() of text as it is (no format). */
json_t *tool_result_text(json_t *structured, const char *text);
/* For handlers: answers the call with an isError result (*ret) and returns 0. */
int tool_fail(json_t **ret, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sends notifications/progress when the call asked for it (progress must increase). */
int tool_call_progress(struct tool_call *call, double progress, double total, const char *message);
/* Sends notifications/message at `level` ("debug" … "emergency") unless the level set with
 * logging/setLevel filters it out. `data` is stolen. */
int mcp_server_log(struct mcp_server *s, const char *level, const char *logger, json_t *data);
/* Sends a request to the client (sampling/createMessage, elicitation/create, roots/list) on behalf
 * of the request being served, and waits up to timeout_ms for its answer; other messages that arrive
 * meanwhile are handled afterwards. Returns 0 with *ret_result (owned), or 0 with *ret_error (owned;
 * the client or the broker refused), or a negative errno (-ETIMEDOUT, -EPIPE, ...). */
int mcp_server_request(struct mcp_server *s, const char *method, json_t *params, unsigned timeout_ms,
                       json_t **ret_result, json_t **ret_error);
/* Waits ms milliseconds on behalf of the request being served, deferring what arrives meanwhile;
 * -ECANCELED as soon as the broker cancels that request (notifications/cancelled), so a long tool
 * does not hold the worker for a call nobody waits for. 0 when the time is up. */
int mcp_server_sleep(struct mcp_server *s, unsigned ms);
/* Sends notifications/resources/updated when the URI is subscribed. */
int mcp_server_resource_updated(struct mcp_server *s, const char *uri);
/* The client capabilities the request carries (_meta io.modelcontextprotocol/clientCapabilities, which
 * the broker fills in for both eras), or NULL. */
const json_t *request_client_caps(const json_t *params);
