/* The MCP stdio server skeleton every built-in worker shares: one JSON-RPC message per line in and
 * out, the 2025-11-25 lifecycle, tools/list + tools/call over a domain's tool table, and, for a domain
 * that has them, resources (list, read, templates, subscriptions), prompts, completion and logging.
 * A handler may ask the client something (sampling, elicitation, roots) with mcp_server_request(). */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <stdarg.h>
#include <string.h>

#include "bounds.h"
#include "jsonrpc.h"
#include "log.h"
#include "schema.h"
#include "util.h"
#include "workers/worker.h"

/* Room for a few replies: the answers to the lines of one read are queued and written together; the
 * queue is written out first whenever the next message would not fit. */
#define WORKER_MAX_OUT_BACKLOG (4 * BASTION_MAX_LINE)
/* Space reserved at the end of the queue for encoding a message in place; a larger one is encoded again
 * once its size is known. */
#define WORKER_OUT_RESERVE 4096
/* Validation messages quoted back to the caller. */
#define WORKER_MAX_ERROR_TEXT 512
/* Lines that may arrive while a handler waits for the client; requests beyond that are refused. */
#define WORKER_MAX_DEFERRED 256

/* notifications/message levels, most verbose first (RFC 5424 order reversed). */
static const char *const log_levels[] = { "debug", "info", "notice", "warning", "error", "critical", "alert",
                                          "emergency" };

static int log_level_index(const char *level) {
        for (size_t i = 0; level && i < ELEMENTSOF(log_levels); i++)
                if (streq(level, log_levels[i]))
                        return (int) i;
        return -1;
}

struct method {
        const char *name;
        bool notification;
        /* Requests: the reply (result or error). Notifications: NULL. */
        json_t *(*handle)(struct mcp_server *s, const struct jsonrpc_msg *m);
};

static int flush_out(struct mcp_server *s) {
        while (s->out_fd >= 0) {
                struct pollfd p = { .fd = s->out_fd, .events = POLLOUT };
                int r = outbuf_flush(&s->out, s->out_fd);

                if (r != 0)
                        return r < 0 ? r : 0;
                if (poll(&p, 1, -1) < 0 && errno != EINTR)
                        return -errno;
        }
        return 0;
}

/* Space for need bytes at the end of the output queue; when the queue has no room left, what it holds
 * is written out first. */
static char *out_reserve(struct mcp_server *s, size_t need, size_t *ret_room, int *ret_error) {
        char *p = outbuf_reserve(&s->out, need, ret_room, ret_error);

        if (!p && *ret_error == -ENOBUFS && s->out_fd >= 0 && outbuf_pending(&s->out)) {
                int r = flush_out(s);

                if (r < 0) {
                        *ret_error = r;
                        return NULL;
                }
                p = outbuf_reserve(&s->out, need, ret_room, ret_error);
        }
        return p;
}

/* Queues one message (stolen), encoded compactly (control characters escaped, so the text never holds a
 * raw newline) straight into the output queue. Written out by flush_out(). */
static int queue_msg(struct mcp_server *s, json_t *msg) {
        _cleanup_json_ json_t *m = msg;
        size_t need = WORKER_OUT_RESERVE;
        bool replaced = false;

        if (!m)
                return log_oom();
        for (;;) {
                size_t room, n;
                char *p;
                int r;

                p = out_reserve(s, need, &room, &r);
                if (!p)
                        return log_error_errno(r, "Failed to queue reply: %m");
                /* The full length even when it does not fit: then the message is encoded again. */
                n = json_write_compact(m, p, room - 1);
                if (n == 0)
                        return log_oom();
                if (n > BASTION_MAX_LINE) {
                        /* The peer would drop the line; tell it why instead. */
                        json_t *id = json_object_get(m, "id"), *too_large;

                        if (replaced || !id) {
                                /* A notification, or an id so long that even the error is too long. */
                                log_error("Message of %zu bytes exceeds the line limit, dropping it", n);
                                return 0;
                        }
                        log_error("Reply of %zu bytes exceeds the line limit, sending an error instead", n);
                        replaced = true;
                        too_large = jsonrpc_error(id, JSONRPC_INTERNAL_ERROR, "Response too large", NULL);
                        json_decref(m);
                        m = too_large;
                        if (!m)
                                return log_oom();
                        need = WORKER_OUT_RESERVE;
                        continue;
                }
                if (n < room) {
                        p[n] = '\n';
                        outbuf_commit(&s->out, n + 1);
                        return 0;
                }
                need = n + 1;
        }
}

/* Queues one message (stolen) and writes out everything queued. */
static int send_msg(struct mcp_server *s, json_t *msg) {
        int r = queue_msg(s, msg);

        return r < 0 ? r : flush_out(s);
}

/* {"content":[{"type":"text","text":text}], "isError"?, "structuredContent"?}; structured is stolen.
 * Built by hand rather than with json_pack(), whose format parsing costs more than the rest. */
static json_t *result_of_text(bool is_error, json_t *structured, const char *text) {
        _cleanup_json_ json_t *s = structured;
        json_t *block = json_object(), *content, *result;

        /* jansson's set_new and append_new take their value even when they fail. */
        if (!block)
                return NULL;
        if (json_object_set_new_nocheck(block, "type", json_string_nocheck("text")) < 0 ||
            json_object_set_new_nocheck(block, "text", json_string(text)) < 0) {       /* json_string checks UTF-8 */
                json_decref(block);
                return NULL;
        }
        content = json_array();
        if (!content) {
                json_decref(block);
                return NULL;
        }
        if (json_array_append_new(content, block) < 0) {
                json_decref(content);
                return NULL;
        }
        result = json_object();
        if (!result) {
                json_decref(content);
                return NULL;
        }
        if (json_object_set_new_nocheck(result, "content", content) < 0 ||
            (is_error && json_object_set_new_nocheck(result, "isError", json_true()) < 0) ||
            (s && json_object_set_nocheck(result, "structuredContent", s) < 0)) {
                json_decref(result);
                return NULL;
        }
        return result;
}

static json_t *text_result(bool is_error, json_t *structured, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));

static json_t *text_result(bool is_error, json_t *structured, const char *fmt, va_list ap) {
        char *text = NULL;
        json_t *result;

        if (vasprintf(&text, fmt, ap) < 0) {
                json_decref(structured);
                return NULL;
        }
        result = result_of_text(is_error, structured, text);
        free(text);
        return result;
}

json_t *tool_result_text(json_t *structured, const char *text) {
        return result_of_text(false, structured, text);
}

json_t *tool_result_ok(json_t *structured, const char *fmt, ...) {
        va_list ap;
        json_t *r;

        va_start(ap, fmt);
        r = text_result(false, structured, fmt, ap);
        va_end(ap);
        return r;
}

json_t *tool_result_error(const char *fmt, ...) {
        va_list ap;
        json_t *r;

        va_start(ap, fmt);
        r = text_result(true, NULL, fmt, ap);
        va_end(ap);
        return r;
}

int tool_fail(json_t **ret, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        *ret = text_result(true, NULL, fmt, ap);
        va_end(ap);
        return *ret ? 0 : -ENOMEM;
}

int tool_call_progress(struct tool_call *call, double progress, double total, const char *message) {
        json_t *params;

        if (!call->progress_token)
                return 0;
        if (progress <= call->last_progress)
                return -EINVAL;         /* the spec wants progress to increase */
        call->last_progress = progress;
        params = json_pack("{s:O, s:f}", "progressToken", call->progress_token, "progress", progress);
        if (params && total > 0)
                json_object_set_new(params, "total", json_real(total));
        if (params && message)
                json_object_set_new(params, "message", json_string(message));
        return send_msg(call->server, params ? jsonrpc_notification("notifications/progress", params) : NULL);
}

/* Tags params (stolen, returned) with the id of the request being served. */
static json_t *with_related(struct mcp_server *s, json_t *params) {
        json_t *meta;

        if (!params || !s->current_id)
                return params;
        meta = json_object_get(params, "_meta");
        if (!json_is_object(meta)) {
                meta = json_object();
                json_object_set_new(params, "_meta", meta);
        }
        json_object_set(meta, META_RELATED, (json_t *) s->current_id);
        return params;
}

int mcp_server_log(struct mcp_server *s, const char *level, const char *logger, json_t *data) {
        int i = log_level_index(level);
        json_t *params;

        if (i < 0) {
                json_decref(data);
                return -EINVAL;
        }
        if (i < s->log_level) {
                json_decref(data);
                return 0;
        }
        params = json_pack("{s:s, s:o}", "level", level, "data", data ? data : json_null());
        if (params && logger)
                json_object_set_new(params, "logger", json_string(logger));
        return send_msg(s, params ? jsonrpc_notification("notifications/message", with_related(s, params)) : NULL);
}

int mcp_server_resource_updated(struct mcp_server *s, const char *uri) {
        if (!json_object_get(s->subscriptions, uri))
                return 0;
        return send_msg(s, jsonrpc_notification("notifications/resources/updated", json_pack("{s:s}", "uri", uri)));
}

const json_t *request_client_caps(const json_t *params) {
        const json_t *caps = json_object_get(json_object_get(params, "_meta"), META_CLIENT_CAPABILITIES);

        return json_is_object(caps) ? caps : NULL;
}

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* True when the line is the response to request `id`; then *ret_msg holds it. */
static bool is_answer(const char *line, size_t len, int64_t id, struct jsonrpc_msg *ret_msg) {
        if (jsonrpc_parse(line, len, ret_msg, NULL) < 0)
                return false;
        if (ret_msg->kind == JSONRPC_RESPONSE && json_is_integer(ret_msg->id) &&
            json_integer_value(ret_msg->id) == id)
                return true;
        jsonrpc_msg_done(ret_msg);
        return false;
}

/* A request that cannot even wait its turn is answered at once; anything else is dropped. */
static int refuse_busy(struct mcp_server *s, const char *line, size_t len) {
        struct jsonrpc_msg m;
        json_t *reply = NULL;

        if (jsonrpc_parse(line, len, &m, NULL) < 0)
                return 0;
        if (m.kind == JSONRPC_REQUEST)
                reply = jsonrpc_error(m.id, JSONRPC_INTERNAL_ERROR, "Server busy: waiting for a client's answer", NULL);
        jsonrpc_msg_done(&m);
        log_warning("Too many messages while waiting for the client; refusing one");
        return reply ? send_msg(s, reply) : 0;
}

/* Reads the channel until match() claims a line or the deadline passes (then: on_deadline). match()
 * answers 0 (not mine: the line waits in s->deferred for the main loop), 1 (claimed: 0 is returned) or
 * -errno (claimed: returned). */
static int wait_for_line(struct mcp_server *s, uint64_t deadline, int on_deadline,
                         int (*match)(struct mcp_server *s, const char *line, size_t len, void *userdata),
                         void *userdata) {
        /* Replies to the lines read before this one go out before the wait. */
        int r = flush_out(s);

        if (r < 0)
                return r;
        for (;;) {
                struct pollfd p = { .fd = s->in_fd, .events = POLLIN };
                uint64_t now;
                char *line;
                size_t len;
                ssize_t n;

                while (s->in_fd >= 0 && (r = linebuf_next(&s->in, &line, &len)) != 0) {
                        if (r < 0)
                                continue;       /* oversized: dropped; the sender hears of it later */
                        r = match(s, line, len, userdata);
                        if (r != 0)
                                return r > 0 ? 0 : r;
                        if (json_array_size(s->deferred) < WORKER_MAX_DEFERRED)
                                json_array_append_new(s->deferred, json_stringn(line, len));
                        else if ((r = refuse_busy(s, line, len)) < 0)
                                return r;
                }
                now = now_ms();
                if (now >= deadline)
                        return on_deadline;
                r = poll(&p, s->in_fd >= 0 ? 1 : 0, (int) (deadline - now));
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r <= 0)
                        continue;
                n = linebuf_fill(&s->in, s->in_fd);
                if (n == 0)
                        return -EPIPE;
                if (n < 0 && n != -EAGAIN)
                        return (int) n;
        }
}

struct awaited {
        int64_t id;
        json_t **ret_result, **ret_error;
};

static int match_answer(struct mcp_server *s, const char *line, size_t len, void *userdata) {
        struct awaited *a = userdata;
        struct jsonrpc_msg m;

        if (!is_answer(line, len, a->id, &m))
                return 0;
        if (m.error)
                *a->ret_error = json_incref(m.error);
        else
                *a->ret_result = json_incref(m.result);
        jsonrpc_msg_done(&m);
        return 1;
}

int mcp_server_request(struct mcp_server *s, const char *method, json_t *params, unsigned timeout_ms,
                       json_t **ret_result, json_t **ret_error) {
        uint64_t deadline = now_ms() + timeout_ms;
        struct awaited a = { .id = ++s->next_request_id, .ret_result = ret_result, .ret_error = ret_error };
        _cleanup_json_ json_t *idj = json_integer(a.id);
        int r;

        *ret_result = *ret_error = NULL;
        if (s->in_fd < 0) {
                json_decref(params);
                return -ENOTCONN;
        }
        r = send_msg(s, jsonrpc_request(idj, method, with_related(s, params ? params : json_object())));
        if (r < 0)
                return r;
        return wait_for_line(s, deadline, -ETIMEDOUT, match_answer, &a);
}

/* A notifications/cancelled of the request being served. */
static bool cancels_current(const struct mcp_server *s, const char *line, size_t len) {
        struct jsonrpc_msg m;
        bool yes;

        if (!s->current_id || jsonrpc_parse(line, len, &m, NULL) < 0)
                return false;
        yes = m.kind == JSONRPC_NOTIFICATION && streq(m.method, "notifications/cancelled") &&
              json_equal(json_object_get(m.params, "requestId"), (json_t *) s->current_id);
        jsonrpc_msg_done(&m);
        return yes;
}

static int match_cancel(struct mcp_server *s, const char *line, size_t len, void *userdata) {
        return cancels_current(s, line, len) ? -ECANCELED : 0;
}

int mcp_server_sleep(struct mcp_server *s, unsigned ms) {
        /* The cancellation may have come while an earlier call ran, and wait among the deferred lines. */
        for (size_t i = 0; i < json_array_size(s->deferred); i++) {
                json_t *l = json_array_get(s->deferred, i);
                if (cancels_current(s, json_string_value(l), json_string_length(l))) {
                        json_array_remove(s->deferred, i);
                        return -ECANCELED;
                }
        }
        return wait_for_line(s, now_ms() + ms, 0, match_cancel, NULL);
}

/* ---- principal ---- */

static bool optional_string(const json_t *v) {
        return !v || json_is_null(v) || json_is_string(v);
}

int principal_parse(const json_t *params, struct worker_principal *ret) {
        const json_t *meta = json_object_get(params, "_meta"), *p, *uid, *scopes;

        *ret = (struct worker_principal) { .uid = -1 };
        if (!meta)
                return 0;
        if (!json_is_object(meta))
                return -EINVAL;
        p = json_object_get(meta, META_PRINCIPAL);
        if (!p)
                return 0;
        if (!json_is_object(p) || !json_is_string(json_object_get(p, "sub")) ||
            !optional_string(json_object_get(p, "tenant")) || !optional_string(json_object_get(p, "role")))
                return -EINVAL;
        uid = json_object_get(p, "uid");
        if (uid && !json_is_null(uid) && (!json_is_integer(uid) || json_integer_value(uid) < 0))
                return -EINVAL;
        scopes = json_object_get(p, "scopes");
        if (scopes && !json_is_null(scopes)) {
                if (!json_is_array(scopes))
                        return -EINVAL;
                for (size_t i = 0; i < json_array_size(scopes); i++)
                        if (!json_is_string(json_array_get(scopes, i)))
                                return -EINVAL;
                ret->scopes = scopes;
        }
        ret->present = true;
        ret->sub = json_string_value(json_object_get(p, "sub"));
        ret->uid = json_is_integer(uid) ? json_integer_value(uid) : -1;
        ret->tenant = json_string_value(json_object_get(p, "tenant"));
        ret->role = json_string_value(json_object_get(p, "role"));
        return 0;
}

/* ---- methods ---- */

static json_t *on_initialize(struct mcp_server *s, const struct jsonrpc_msg *m) {
        const char *asked = json_string_value(json_object_get(m->params, "protocolVersion"));
        json_t *caps;

        /* We speak one revision; a client asking for another gets ours and decides. */
        if (asked && !streq(asked, WORKER_PROTOCOL_VERSION))
                log_info("Client asked for protocol %s, answering %s", asked, WORKER_PROTOCOL_VERSION);
        s->initialized = true;
        caps = json_pack("{s:{s:b}}", "tools", "listChanged", false);
        /* Only a domain that has resources says so; the others answer the resources methods with -32601. */
        if (caps && s->domain->resource_read)
                json_object_set_new(caps, "resources", json_pack("{s:b, s:b}", "listChanged", false,
                                                                 "subscribe", s->domain->subscribe));
        if (caps && s->domain->n_prompts)
                json_object_set_new(caps, "prompts", json_pack("{s:b}", "listChanged", false));
        if (caps && s->domain->complete)
                json_object_set_new(caps, "completions", json_object());
        if (caps && s->domain->logging)
                json_object_set_new(caps, "logging", json_object());
        return jsonrpc_result(m->id, json_pack("{s:s, s:o, s:{s:s, s:s}}",
                                               "protocolVersion", WORKER_PROTOCOL_VERSION, "capabilities", caps,
                                               "serverInfo", "name", s->domain->server_name,
                                               "version", PACKAGE_VERSION));
}

static json_t *on_initialized(struct mcp_server *s, const struct jsonrpc_msg *m) {
        log_debug("Client initialized");
        return NULL;
}

static json_t *on_cancelled(struct mcp_server *s, const struct jsonrpc_msg *m) {
        /* Calls run to completion before the next line is read, so the one named here has already
         * been answered; the spec says to ignore cancellations of finished requests. */
        log_debug("Ignoring cancellation of a finished request");
        return NULL;
}

static json_t *on_ping(struct mcp_server *s, const struct jsonrpc_msg *m) {
        return jsonrpc_result(m->id, json_object());
}

static json_t *on_tools_list(struct mcp_server *s, const struct jsonrpc_msg *m) {
        /* One page holds every tool, so no cursor is ever valid. */
        if (json_object_get(m->params, "cursor"))
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS, "Invalid cursor", NULL);
        return jsonrpc_result(m->id, json_deep_copy(s->tools_list));
}

static ssize_t tool_find(const struct mcp_server *s, const char *name) {
        for (size_t i = 0; i < s->domain->n_tools; i++)
                if (streq(s->domain->tools[i].name, name))
                        return i;
        return -1;
}

static json_t *tool_run(struct mcp_server *s, size_t idx, const struct worker_principal *principal,
                        const json_t *arguments, const json_t *progress_token, const json_t *params,
                        json_t **ret_error) {
        const struct tool *t = &s->domain->tools[idx];
        char err[WORKER_MAX_ERROR_TEXT];
        struct tool_call call = {
                .server = s,
                .domain_state = s->domain_state,
                .principal = principal,
                .arguments = arguments,
                .progress_token = progress_token,
                .last_progress = -1,
                .params = params,
        };
        json_t *result = NULL;
        int r;

        if (!t->handler)
                return tool_result_error("Tool %s cannot be called: its input schema cannot be enforced", t->name);
        /* The broker validated already; a worker run by hand (or a confused broker) gets the same check.
         * The schema itself was checked at start (tools_prepare) and is not changed after. */
        r = schema_validate_checked(s->input_schemas[idx], arguments, err, sizeof(err));
        if (r == -EINVAL)
                return tool_result_error("Invalid arguments: %s", err);
        if (r < 0) {
                log_error_errno(r, "Input schema of %s cannot be enforced: %s", t->name, err);
                return tool_result_error("Internal error in tool %s", t->name);
        }
        r = t->handler(&call, &result);
        if (r < 0) {
                json_decref(call.error_data);
                json_decref(result);
                log_error_errno(r, "Tool %s failed: %m", t->name);
                return tool_result_error("Internal error in tool %s", t->name);
        }
        if (call.error_code) {
                json_decref(result);
                *ret_error = jsonrpc_error((json_t *) s->current_id, call.error_code, call.error_message ?: "Error",
                                           call.error_data);
                return NULL;
        }
        return result;
}

/* jsonrpc_result(id, result (stolen)) built by hand, without json_pack's format parsing: the envelope of
 * every tools/call answer. */
static json_t *result_reply(json_t *id, json_t *result) {
        json_t *reply;

        if (!result)
                return NULL;
        reply = json_object();
        /* jansson's set_new takes its value even when it fails. */
        if (!reply || json_object_set_new_nocheck(reply, "jsonrpc", json_string_nocheck("2.0")) < 0 ||
            json_object_set_nocheck(reply, "id", id) < 0) {
                json_decref(result);
                json_decref(reply);
                return NULL;
        }
        if (json_object_set_new_nocheck(reply, "result", result) < 0) {
                json_decref(reply);
                return NULL;
        }
        return reply;
}

static json_t *on_tools_call(struct mcp_server *s, const struct jsonrpc_msg *m) {
        const json_t *name = json_object_get(m->params, "name");
        const json_t *arguments = json_object_get(m->params, "arguments");
        const json_t *meta = json_object_get(m->params, "_meta");
        const json_t *token = json_object_get(meta, "progressToken");
        _cleanup_json_ json_t *empty = NULL;
        struct worker_principal principal;
        json_t *result, *error = NULL;
        ssize_t idx;

        if (!json_is_string(name))
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS, "Invalid params: name must be a string", NULL);
        if (arguments && !json_is_object(arguments))
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS, "Invalid params: arguments must be an object",
                                     NULL);
        idx = tool_find(s, json_string_value(name));
        if (idx < 0) {
                _cleanup_free_ char *msg = NULL;
                if (asprintf(&msg, "Unknown tool: %s", json_string_value(name)) < 0)
                        return NULL;
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS, msg, NULL);
        }
        if (principal_parse(m->params, &principal) < 0)
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS,
                                     "Invalid params: malformed _meta[\"" META_PRINCIPAL "\"]", NULL);
        if (token && !json_is_string(token) && !json_is_integer(token))
                token = NULL;
        if (!arguments && !(arguments = empty = json_object()))
                return NULL;
        result = tool_run(s, idx, &principal, arguments, token, m->params, &error);
        if (error)
                return error;
        return result_reply(m->id, result);
}

/* ---- resources ---- */

static json_t *resources_unsupported(struct mcp_server *s, const struct jsonrpc_msg *m) {
        return s->domain->resource_read ? NULL : jsonrpc_error(m->id, JSONRPC_METHOD_NOT_FOUND, "Method not found", NULL);
}

static json_t *on_resources_list(struct mcp_server *s, const struct jsonrpc_msg *m) {
        json_t *no = resources_unsupported(s, m), *list;
        struct worker_principal principal;
        int r;

        if (no)
                return no;
        /* One page holds every resource, so no cursor is ever valid. */
        if (json_object_get(m->params, "cursor"))
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS, "Invalid cursor", NULL);
        if (principal_parse(m->params, &principal) < 0)
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS,
                                     "Invalid params: malformed _meta[\"" META_PRINCIPAL "\"]", NULL);
        list = json_array();
        if (!list)
                return NULL;
        r = s->domain->resources_list ? s->domain->resources_list(s->domain_state, &principal, list) : 0;
        if (r < 0) {
                log_error_errno(r, "Listing resources failed: %m");
                json_decref(list);
                return jsonrpc_error(m->id, JSONRPC_INTERNAL_ERROR, "Internal error", NULL);
        }
        return jsonrpc_result(m->id, json_pack("{s:o}", "resources", list));
}

static json_t *on_resource_templates_list(struct mcp_server *s, const struct jsonrpc_msg *m) {
        json_t *no = resources_unsupported(s, m);

        json_t *list;

        if (no)
                return no;
        if (json_object_get(m->params, "cursor"))
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS, "Invalid cursor", NULL);
        list = s->domain->resource_templates ? json_loads(s->domain->resource_templates, 0, NULL) : json_array();
        return list ? jsonrpc_result(m->id, json_pack("{s:o}", "resourceTemplates", list)) : NULL;
}

static json_t *on_resources_read(struct mcp_server *s, const struct jsonrpc_msg *m) {
        const char *uri = json_string_value(json_object_get(m->params, "uri"));
        json_t *no = resources_unsupported(s, m), *contents = NULL;
        struct worker_principal principal;
        int r;

        if (no)
                return no;
        if (!uri)
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS, "Invalid params: uri must be a string", NULL);
        if (principal_parse(m->params, &principal) < 0)
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS,
                                     "Invalid params: malformed _meta[\"" META_PRINCIPAL "\"]", NULL);
        r = s->domain->resource_read(s->domain_state, &principal, uri, &contents);
        /* Unknown and another tenant's are one answer: the caller cannot tell them apart. */
        if (r == -ENOENT)
                return jsonrpc_error(m->id, MCP_RESOURCE_NOT_FOUND, "Resource not found", json_pack("{s:s}", "uri", uri));
        if (r < 0) {
                log_error_errno(r, "Reading resource %s failed: %m", uri);
                return jsonrpc_error(m->id, JSONRPC_INTERNAL_ERROR, "Internal error", NULL);
        }
        return jsonrpc_result(m->id, json_pack("{s:o}", "contents", contents));
}

static json_t *on_resources_subscribe(struct mcp_server *s, const struct jsonrpc_msg *m) {
        const char *uri = json_string_value(json_object_get(m->params, "uri"));

        if (!s->domain->subscribe)
                return jsonrpc_error(m->id, JSONRPC_METHOD_NOT_FOUND, "Method not found", NULL);
        if (!uri)
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS, "Invalid params: uri must be a string", NULL);
        if (streq(m->method, "resources/subscribe"))
                json_object_set_new(s->subscriptions, uri, json_true());
        else
                json_object_del(s->subscriptions, uri);
        return jsonrpc_result(m->id, json_object());
}

/* ---- prompts ---- */

static json_t *on_prompts_list(struct mcp_server *s, const struct jsonrpc_msg *m) {
        if (!s->domain->n_prompts)
                return jsonrpc_error(m->id, JSONRPC_METHOD_NOT_FOUND, "Method not found", NULL);
        if (json_object_get(m->params, "cursor"))
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS, "Invalid cursor", NULL);
        return jsonrpc_result(m->id, json_deep_copy(s->prompts_list));
}

static const struct prompt *prompt_find(const struct mcp_server *s, const char *name) {
        for (size_t i = 0; name && i < s->domain->n_prompts; i++)
                if (streq(s->domain->prompts[i].name, name))
                        return &s->domain->prompts[i];
        return NULL;
}

static json_t *on_prompts_get(struct mcp_server *s, const struct jsonrpc_msg *m) {
        const char *name = json_string_value(json_object_get(m->params, "name"));
        const json_t *arguments = json_object_get(m->params, "arguments"), *v;
        _cleanup_json_ json_t *empty = json_object();
        struct worker_principal principal;
        const struct prompt *p;
        json_t *result = NULL;
        const char *k;
        int r;

        if (!s->domain->n_prompts)
                return jsonrpc_error(m->id, JSONRPC_METHOD_NOT_FOUND, "Method not found", NULL);
        if (!name)
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS, "Invalid params: name must be a string", NULL);
        if (arguments && !json_is_object(arguments))
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS, "Invalid params: arguments must be an object",
                                     NULL);
        json_object_foreach((json_t *) arguments, k, v)
                if (!json_is_string(v))
                        return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS,
                                             "Invalid params: prompt arguments must be strings", NULL);
        p = prompt_find(s, name);
        if (!p)
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS, "Invalid params: unknown prompt",
                                     json_pack("{s:s}", "name", name));
        if (principal_parse(m->params, &principal) < 0)
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS,
                                     "Invalid params: malformed _meta[\"" META_PRINCIPAL "\"]", NULL);
        r = p->handler(&(struct prompt_call) { .server = s, .domain_state = s->domain_state, .principal = &principal,
                                               .arguments = arguments ? arguments : empty, .params = m->params },
                       &result);
        if (r == -EINVAL)
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS, "Invalid params: missing or invalid prompt "
                                     "arguments", json_pack("{s:s}", "name", name));
        if (r < 0) {
                log_error_errno(r, "Prompt %s failed: %m", name);
                return jsonrpc_error(m->id, JSONRPC_INTERNAL_ERROR, "Internal error", NULL);
        }
        return jsonrpc_result(m->id, result);
}

/* ---- completion, logging ---- */

static json_t *on_complete(struct mcp_server *s, const struct jsonrpc_msg *m) {
        const json_t *ref = json_object_get(m->params, "ref"), *argument = json_object_get(m->params, "argument");
        const char *type = json_string_value(json_object_get(ref, "type"));
        const char *name = json_string_value(json_object_get(argument, "name"));
        const char *value = json_string_value(json_object_get(argument, "value"));
        json_t *values = NULL;
        size_t total;
        int r;

        if (!s->domain->complete)
                return jsonrpc_error(m->id, JSONRPC_METHOD_NOT_FOUND, "Method not found", NULL);
        if (!type || !name || !value ||
            !(streq(type, "ref/prompt") ? json_is_string(json_object_get(ref, "name")) :
              streq(type, "ref/resource") ? json_is_string(json_object_get(ref, "uri")) : false))
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS, "Invalid params: completion/complete needs a "
                                     "ref/prompt or ref/resource ref and an argument name and value", NULL);
        r = s->domain->complete(s->domain_state, ref, name, value, &values);
        if (r == -ENOENT)
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS, "Invalid params: unknown prompt or resource", NULL);
        if (r < 0) {
                log_error_errno(r, "Completion failed: %m");
                return jsonrpc_error(m->id, JSONRPC_INTERNAL_ERROR, "Internal error", NULL);
        }
        /* The spec caps one answer at 100 values. */
        total = json_array_size(values);
        while (json_array_size(values) > 100)
                json_array_remove(values, json_array_size(values) - 1);
        return jsonrpc_result(m->id, json_pack("{s:{s:o, s:I, s:b}}", "completion", "values", values,
                                               "total", (json_int_t) total, "hasMore", total > 100));
}

static json_t *on_set_level(struct mcp_server *s, const struct jsonrpc_msg *m) {
        int i = log_level_index(json_string_value(json_object_get(m->params, "level")));

        if (!s->domain->logging)
                return jsonrpc_error(m->id, JSONRPC_METHOD_NOT_FOUND, "Method not found", NULL);
        if (i < 0)
                return jsonrpc_error(m->id, JSONRPC_INVALID_PARAMS, "Invalid params: unknown log level", NULL);
        s->log_level = i;
        return jsonrpc_result(m->id, json_object());
}

static const struct method methods[] = {
        { "initialize", false, on_initialize },
        { "notifications/initialized", true, on_initialized },
        { "ping", false, on_ping },
        { "tools/list", false, on_tools_list },
        { "tools/call", false, on_tools_call },
        { "notifications/cancelled", true, on_cancelled },
        { "resources/list", false, on_resources_list },
        { "resources/templates/list", false, on_resource_templates_list },
        { "resources/read", false, on_resources_read },
        { "resources/subscribe", false, on_resources_subscribe },
        { "resources/unsubscribe", false, on_resources_subscribe },
        { "prompts/list", false, on_prompts_list },
        { "prompts/get", false, on_prompts_get },
        { "completion/complete", false, on_complete },
        { "logging/setLevel", false, on_set_level },
};

static const struct method *method_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(methods); i++)
                if (streq(methods[i].name, name))
                        return &methods[i];
        return NULL;
}

/* ---- framing and dispatch ---- */

static int handle_line(struct mcp_server *s, const char *line, size_t len) {
        struct jsonrpc_msg m;
        const struct method *method;
        json_t *error = NULL, *reply;
        int r;

        r = jsonrpc_parse(line, len, &m, &error);
        if (r < 0) {
                log_warning_errno(r, "Rejecting malformed message: %m");
                return error ? queue_msg(s, error) : 0;
        }
        if (m.kind == JSONRPC_RESPONSE) {
                /* An answer to a request we gave up on (timeout), or nothing we asked. */
                log_warning("Ignoring a response to no pending request");
                jsonrpc_msg_done(&m);
                return 0;
        }
        method = method_find(m.method);
        if (m.kind == JSONRPC_NOTIFICATION) {
                if (method && method->notification)
                        method->handle(s, &m);
                else
                        log_debug("Ignoring notification %s", m.method);
                jsonrpc_msg_done(&m);
                return 0;
        }
        if (!method || method->notification)
                reply = jsonrpc_error(m.id, JSONRPC_METHOD_NOT_FOUND, "Method not found", NULL);
        else {
                s->current_id = m.id;
                reply = method->handle(s, &m);
                s->current_id = NULL;
                if (!reply)
                        reply = jsonrpc_error(m.id, JSONRPC_INTERNAL_ERROR, "Internal error", NULL);
        }
        jsonrpc_msg_done(&m);
        return queue_msg(s, reply);
}

static bool blank(const char *line, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (!strchr(" \t\r", line[i]))
                        return false;
        return true;
}

/* Handles the oldest line deferred while a handler waited for the client. 0 when there was none. */
static int process_deferred(struct mcp_server *s) {
        _cleanup_json_ json_t *line = NULL;
        int r;

        if (json_array_size(s->deferred) == 0)
                return 0;
        line = json_incref(json_array_get(s->deferred, 0));
        json_array_remove(s->deferred, 0);
        r = handle_line(s, json_string_value(line), json_string_length(line));
        return r < 0 ? r : 1;
}

/* Answers every line buffered (and deferred), queueing the replies; 0 once none is left. */
static int process_lines(struct mcp_server *s) {
        for (;;) {
                char *line;
                size_t len;
                int r = process_deferred(s);

                if (r < 0)
                        return r;
                if (r > 0)
                        continue;
                r = linebuf_next(&s->in, &line, &len);

                if (r == 0)
                        return 0;
                if (r == -E2BIG) {
                        log_warning("Dropping a message longer than %d bytes", BASTION_MAX_LINE);
                        r = queue_msg(s, jsonrpc_error(NULL, JSONRPC_INVALID_REQUEST, "Message too large", NULL));
                } else if (r < 0)
                        return r;
                else if (!blank(line, len))
                        r = handle_line(s, line, len);
                if (r < 0)
                        return r;
        }
}

int mcp_server_process(struct mcp_server *s) {
        /* One write for the answers to all the lines of a read (each system call is dear). */
        int r = process_lines(s), k = flush_out(s);

        return r < 0 ? r : k;
}

static volatile sig_atomic_t stop_requested;

void mcp_server_stop(void) {
        stop_requested = 1;
}

int mcp_server_run(struct mcp_server *s, int in_fd) {
        sigset_t stop_signals, wait_mask;

        /* SIGTERM and SIGINT are delivered only inside ppoll(), so a stop request can neither be lost
         * between the check and the wait nor interrupt a call half way. */
        sigemptyset(&stop_signals);
        sigaddset(&stop_signals, SIGTERM);
        sigaddset(&stop_signals, SIGINT);
        if (sigprocmask(SIG_BLOCK, &stop_signals, &wait_mask) < 0)
                return -errno;
        sigdelset(&wait_mask, SIGTERM);
        sigdelset(&wait_mask, SIGINT);

        s->in_fd = in_fd;
        while (!stop_requested) {
                struct pollfd p = { .fd = in_fd, .events = POLLIN };
                ssize_t n;
                int r;

                if (ppoll(&p, 1, NULL, &wait_mask) < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                n = linebuf_fill(&s->in, in_fd);
                if (n == -EAGAIN)
                        continue;
                if (n < 0)
                        return (int) n;
                if (n == 0)
                        return 0;       /* EOF; an unterminated last line is not a message */
                r = mcp_server_process(s);
                if (r < 0)
                        return r;
        }
        log_info("Stopping on request");
        return 0;
}

/* ---- set-up ---- */

static json_t *tool_describe(const struct domain *dom, const struct tool *t, json_t *input_schema) {
        const char *task_support = dom->task_support ? dom->task_support(t->name) : NULL;
        json_t *d = json_pack("{s:s, s:s, s:s, s:O, s:{s:s, s:b, s:b, s:b, s:b}}",
                              "name", t->name, "title", t->title, "description", t->description,
                              "inputSchema", input_schema,
                              "annotations", "title", t->title, "readOnlyHint", t->read_only,
                              "destructiveHint", t->destructive, "idempotentHint", t->idempotent,
                              "openWorldHint", t->open_world);
        json_t *out;

        if (d && task_support)
                json_object_set_new(d, "execution", json_pack("{s:s}", "taskSupport", task_support));
        if (!d || !t->output_schema)
                return d;
        out = json_loads(t->output_schema, 0, NULL);
        if (!out || schema_check(out, NULL, 0) < 0) {
                log_error("Output schema of tool %s is not usable", t->name);
                json_decref(out);
                json_decref(d);
                return NULL;
        }
        json_object_set_new(d, "outputSchema", out);
        return d;
}

static int tools_prepare(struct mcp_server *s) {
        json_t *list;

        s->input_schemas = calloc(s->domain->n_tools, sizeof(json_t *));
        list = json_array();
        s->tools_list = json_pack("{s:o}", "tools", list);
        if (!s->input_schemas || !s->tools_list)
                return log_oom();
        for (size_t i = 0; i < s->domain->n_tools; i++) {
                const struct tool *t = &s->domain->tools[i];
                char err[WORKER_MAX_ERROR_TEXT];
                json_error_t jerr;

                s->input_schemas[i] = json_loads(t->input_schema, 0, &jerr);
                if (!s->input_schemas[i])
                        return log_error_errno(EINVAL, "Input schema of tool %s: %s", t->name, jerr.text);
                /* Fail at start-up, not per call, when a schema uses what the validator cannot check. */
                if (t->handler && schema_check(s->input_schemas[i], err, sizeof(err)) < 0)
                        return log_error_errno(EINVAL, "Input schema of tool %s: %s", t->name, err);
                if (json_array_append_new(list, tool_describe(s->domain, t, s->input_schemas[i])) < 0)
                        return -EINVAL;
        }
        return 0;
}

static int prompts_prepare(struct mcp_server *s) {
        json_t *list = json_array();

        s->prompts_list = json_pack("{s:o}", "prompts", list);
        if (!s->prompts_list)
                return log_oom();
        for (size_t i = 0; i < s->domain->n_prompts; i++) {
                const struct prompt *p = &s->domain->prompts[i];
                json_t *d = json_pack("{s:s, s:s}", "name", p->name, "description", p->description), *args;

                if (d && p->title)
                        json_object_set_new(d, "title", json_string(p->title));
                if (d && p->arguments) {
                        args = json_loads(p->arguments, 0, NULL);
                        if (!json_is_array(args)) {
                                json_decref(args);
                                json_decref(d);
                                return log_error_errno(EINVAL, "Arguments of prompt %s are not a JSON array", p->name);
                        }
                        json_object_set_new(d, "arguments", args);
                }
                if (json_array_append_new(list, d) < 0)
                        return -EINVAL;
        }
        return 0;
}

int mcp_server_init(struct mcp_server *s, const struct domain *d, void *domain_state, int out_fd) {
        int r;

        *s = (struct mcp_server) { .domain = d, .domain_state = domain_state, .out_fd = out_fd, .in_fd = -1,
                                   .deferred = json_array(), .subscriptions = json_object() };
        linebuf_init(&s->in, BASTION_MAX_LINE);
        outbuf_init(&s->out, WORKER_MAX_OUT_BACKLOG);
        if (!s->deferred || !s->subscriptions)
                return log_oom();
        r = tools_prepare(s);
        return r < 0 ? r : prompts_prepare(s);
}

void mcp_server_done(struct mcp_server *s) {
        for (size_t i = 0; s->input_schemas && i < s->domain->n_tools; i++)
                json_decref(s->input_schemas[i]);
        free(s->input_schemas);
        json_decref(s->tools_list);
        json_decref(s->prompts_list);
        json_decref(s->deferred);
        json_decref(s->subscriptions);
        linebuf_done(&s->in);
        outbuf_done(&s->out);
        *s = (struct mcp_server) { .out_fd = -1, .in_fd = -1 };
}
