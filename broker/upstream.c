/* The MCP client side of one worker: handshake, forwarding, progress relay, deadlines, and failing
 * every outstanding call the moment the worker goes away. The worker is less trusted than we are:
 * anything it sends that we did not ask for ends its channel.
 *
 * Pass-through: prompts, resource templates, completion and subscriptions are forwarded as calls and
 * their answers filtered by the policy. What a worker sends while serving a call (progress, log
 * messages, and its requests to the client: sampling, elicitation, roots) names that call (the progress
 * token we gave it, or _meta["dev.bastion/related"]) and goes to that call's client only, never to
 * anyone else; the client's answers go back under the worker's own ids. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <regex.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "bounds.h"
#include "broker.h"
#include "broker/audit/audit.h"
#include "jsonrpc.h"
#include "log.h"
#include "util.h"

static void upstream_write(struct upstream *u);

static void upstream_send(struct upstream *u, json_t *msg) {
        _cleanup_free_ char *alloc = NULL;
        char buf[4096];
        const char *s;
        size_t n = 0;

        /* Compact (no raw newline), straight into the out buffer: no allocation for most messages. */
        s = json_dump_buf(msg, JSON_COMPACT, buf, sizeof(buf), &alloc, &n);
        json_decref(msg);
        if (!s || u->fd < 0)
                return;
        if (outbuf_put(&u->out, s, n, true) < 0) {
                /* Callers still hold calls of this worker: never tear it down from here. Shutting the
                 * channel makes the next loop iteration see EOF and take the normal upstream_down() path. */
                log_warning("worker %s is not reading its channel; closing it", u->name);
                (void) shutdown(u->fd, SHUT_RDWR);
                return;
        }
        /* Corked: the batch's audit records are not written yet (broker_uncork() sends). */
        if (u->b->corked) {
                u->corked_output = true;
                return;
        }
        upstream_write(u);
}

/* Write now rather than on the next EPOLLOUT: a worker that reads keeps its pipe empty, so this saves
 * two epoll_ctl() and a loop iteration per call. Only what the pipe does not take waits. */
static void upstream_write(struct upstream *u) {
        if (outbuf_flush(&u->out, u->fd) < 0) {
                (void) shutdown(u->fd, SHUT_RDWR);      /* as above: upstream_down() runs on the EOF */
                return;
        }
        (void) sd_event_source_set_io_events(u->io, EPOLLIN | (outbuf_pending(&u->out) ? EPOLLOUT : 0));
}

void broker_cork(struct broker *b) {
        if (b->corked++ == 0 && b->audit)
                audit_hold(b->audit);
}

void broker_uncork(struct broker *b) {
        int r;

        if (b->corked == 0 || --b->corked > 0)
                return;
        r = b->audit ? audit_release(b->audit) : 0;
        if (r < 0 && !b->audit_failed) {
                b->audit_failed = true;
                log_error_errno(r, "AUDIT LOG WRITE FAILED (batch): %m; calls are refused from now on");
        }
        for (struct upstream *u = b->upstreams; u; u = u->next) {
                if (!u->corked_output)
                        continue;
                u->corked_output = false;
                if (u->fd < 0)
                        continue;
                if (r < 0)
                        /* The batch's intents are not on record: none of it may reach the worker. */
                        upstream_down(u, "the audit log cannot be written", false);
                else
                        upstream_write(u);
        }
        /* Results are on record (or the log has failed, which does not hold an answer back: the call ran). */
        http_uncork(b);
        broker_maybe_finish_stop(b);
}

void broker_batch_slice(struct broker *b, unsigned handled) {
        if (b->corked == 1 && handled % BROKER_BATCH_SLICE == 0) {
                broker_uncork(b);
                broker_cork(b);
        }
}

struct upstream *upstream_get(struct broker *b, const char *name) {
        for (struct upstream *u = b->upstreams; u; u = u->next)
                if (streq(u->name, name))
                        return u;
        return NULL;
}

struct upstream *upstream_ensure(struct broker *b, const char *name) {
        struct upstream *u = upstream_get(b, name);

        if (u)
                return u;
        u = calloc(1, sizeof(*u));
        if (!u || !(u->name = strdup(name))) {
                free(u);
                return NULL;
        }
        u->b = b;
        u->fd = -1;
        u->next_id = 1;
        linebuf_init(&u->in, BASTION_MAX_LINE);
        outbuf_init(&u->out, BASTION_MAX_UPSTREAM_BACKLOG);
        snprintf(u->reason, sizeof(u->reason), "server %s is starting", name);
        u->next = b->upstreams;
        b->upstreams = u;
        return u;
}

const json_t *upstream_tool(const struct upstream *u, const char *tool) {
        size_t i;
        json_t *t;

        json_array_foreach(u->tools, i, t)
                if (streq(json_string_value(json_object_get(t, "name")), tool))
                        return t;
        return NULL;
}

unsigned broker_calls_in_flight(struct broker *b) {
        unsigned n = 0;

        /* A stop does not wait for tasks: nobody waits on their calls, which are cancelled at the end. */
        for (struct upstream *u = b->upstreams; u; u = u->next)
                for (struct call *c = u->calls; c; c = c->next)
                        if (!c->client || !c->client->task)
                                n++;
        return n + confirm_held_count(b);
}

static const char *const log_levels[] = { "debug", "info", "notice", "warning", "error", "critical", "alert",
                                          "emergency" };

int mcp_log_level(const char *name) {
        for (size_t i = 0; name && i < ELEMENTSOF(log_levels); i++)
                if (streq(name, log_levels[i]))
                        return (int) i;
        return -1;
}

static void relays_drop(struct call *call, const char *why) {
        for (struct relay *r = call->relays, *n; r; r = n) {
                n = r->next;
                /* The worker is waiting for this answer: it must not wait for its own deadline. */
                if (call->up->fd >= 0 && call->up->state == UPSTREAM_READY)
                        upstream_send(call->up, jsonrpc_error(r->worker_id, JSONRPC_INTERNAL_ERROR, why, NULL));
                json_decref(r->worker_id);
                free(r);
        }
        call->relays = NULL;
}

static void call_unlink(struct call *call) {
        for (struct call **p = &call->up->calls; *p; p = &(*p)->next)
                if (*p == call) {
                        *p = call->next;
                        break;
                }
}

/* Ends a call: answers the client (when msg is given and the client is still there) and frees it. */
static void call_finish(struct call *call, json_t *msg) {
        struct broker *b = call->up->b;

        call_unlink(call);
        relays_drop(call, "the call this request belonged to has ended");
        record_result(b, call, msg);
        if (call->client) {
                call->client->inflight--;
                if (msg)
                        client_send(call->client, msg);
                else
                        json_decref(msg);
        } else
                json_decref(msg);
        sd_event_source_disable_unref(call->timer);
        json_decref(call->client_id);
        json_decref(call->progress_token);
        json_decref(call->pending);
        json_decref(call->client_caps);
        free(call->uri);
        free(call);
        broker_maybe_finish_stop(b);
}

static void call_fail(struct call *call, int code, const char *message) {
        call_finish(call, jsonrpc_error(call->client_id, code, message,
                                        json_pack("{s:s, s:s}", "server", call->up->name, "tool", call->tool)));
}

static void send_cancel(struct upstream *u, int64_t upstream_id, const char *reason) {
        if (u->fd >= 0 && u->state == UPSTREAM_READY)
                upstream_send(u, jsonrpc_notification("notifications/cancelled",
                                json_pack("{s:I, s:s}", "requestId", (json_int_t) upstream_id, "reason", reason)));
}

static int on_call_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct call *call = userdata;
        char msg[256];

        snprintf(msg, sizeof(msg), "Tool call %s timed out; it was cancelled", call->tool);
        log_warning("call %s/%s (id %" PRId64 ") timed out", call->up->name, call->tool, call->upstream_id);
        if (!call->pending)
                send_cancel(call->up, call->upstream_id, "timeout");
        call_fail(call, BASTION_ERROR_TIMEOUT, msg);
        return 0;
}

/* Client _meta minus everything the client must not be able to say to a worker. */
static json_t *forward_meta(json_t *client_meta, int64_t upstream_id, bool progress) {
        json_t *meta = json_object(), *v;
        const char *k;

        json_object_foreach(client_meta, k, v) {
                if (strncmp(k, META_PREFIX_BASTION, strlen(META_PREFIX_BASTION)) == 0 ||
                    strncmp(k, "io.modelcontextprotocol/", 24) == 0 || streq(k, "progressToken"))
                        continue;
                json_object_set(meta, k, v);
        }
        if (progress)
                json_object_set_new(meta, "progressToken", json_integer(upstream_id));
        return meta;
}

/* A new call record with its forwarded _meta (principal and approval included); NULL when refused
 * (the client has been answered). */
static struct call *call_new(struct upstream *u, struct client *c, json_t *client_id, enum era era,
                             enum call_kind kind, const char *label, json_t *client_meta, json_t *approval,
                             json_t **ret_meta) {
        json_t *token = json_object_get(client_meta, "progressToken");
        json_t *principal;
        struct call *call;

        if (u->state == UPSTREAM_FAILED) {
                json_decref(approval);
                client_send(c, jsonrpc_error(client_id, BASTION_ERROR_SERVER_UNAVAILABLE, u->reason,
                                             json_pack("{s:s}", "server", u->name)));
                return NULL;
        }
        call = calloc(1, sizeof(*call));
        if (!call) {
                json_decref(approval);
                log_oom();
                return NULL;
        }
        call->up = u;
        call->client = c;
        call->client_id = json_incref(client_id);
        call->era = era;
        call->kind = kind;
        call->upstream_id = u->next_id++;
        snprintf(call->tool, sizeof(call->tool), "%s", label);
        if (kind == CALL_TOOL && (json_is_string(token) || json_is_integer(token)))
                call->progress_token = json_incref(token);
        /* What the client can be asked and which log messages it wants: remembered for a legacy
         * connection, carried by each 2026-07-28 request (no logLevel: no log messages). */
        if (era == ERA_MODERN) {
                json_t *caps = json_object_get(client_meta, META_CLIENT_CAPS);
                call->client_caps = json_is_object(caps) ? json_deep_copy(caps) : NULL;
                call->log_level = mcp_log_level(json_string_value(json_object_get(client_meta, META_LOG_LEVEL)));
        } else {
                /* Shared, not copied: capabilities are only ever read once declared. */
                call->client_caps = json_is_object(c->client_caps) ? json_incref(c->client_caps) : NULL;
                call->log_level = c->log_level;
        }
        *ret_meta = forward_meta(client_meta, call->upstream_id, call->progress_token != NULL);
        /* The worker learns what it may ask the client: the capabilities the client declared. */
        json_object_set_new(*ret_meta, META_CLIENT_CAPS, call->client_caps ? json_incref(call->client_caps) :
                            json_object());
        principal = principal_to_meta(&u->b->config, &c->principal);
        json_object_set_new(principal, "approval", approval ? approval : json_null());
        json_object_set_new(*ret_meta, META_PRINCIPAL, principal);
        return call;
}

/* Arms the deadline and sends (or, while the worker is not ready, queues) the request. */
static void call_start(struct call *call, struct client *c, const char *method, json_t *params,
                       const json_t *audit_args, bool side_effect) {
        struct upstream *u = call->up;
        const struct server_config *s = config_find_server(&u->b->config, u->name);
        unsigned timeout_ms = s && s->call_timeout_ms ? s->call_timeout_ms : u->b->config.call_timeout_ms;
        _cleanup_json_ json_t *idj = json_integer(call->upstream_id);
        int r;

        call->pending = jsonrpc_request(idj, method, params);
        call->side_effect = side_effect;
        call->next = u->calls;
        u->calls = call;
        c->inflight++;
        /* The intent is on record (on disk, for a side effect) before the worker hears of the call. */
        r = record_intent(u->b, call, c, audit_args,
                          json_object_get(json_object_get(json_object_get(params, "_meta"), META_PRINCIPAL), "approval"),
                          side_effect);
        if (r < 0) {
                call->intent_seq = 0;
                call_fail(call, BASTION_ERROR_AUDIT, "Refused: the audit log cannot be written, so nothing may run");
                return;
        }
        r = sd_event_add_time_relative(u->b->event, &call->timer, CLOCK_MONOTONIC, (uint64_t) timeout_ms * 1000,
                                       timer_accuracy_usec((uint64_t) timeout_ms * 1000), on_call_timeout, call);
        if (r < 0)
                log_error_errno(r, "Failed to arm a call deadline: %m");
        if (u->state == UPSTREAM_READY)
                upstream_send(u, TAKE_PTR(call->pending));
        /* Otherwise it waits for the worker (re)start, bounded by its deadline. */
}

void upstream_call(struct upstream *u, struct client *c, json_t *client_id, enum era era, const char *tool,
                   json_t *arguments, json_t *client_meta, json_t *approval) {
        upstream_call_ex(u, c, client_id, era, tool, arguments, client_meta, approval, NULL);
}

void upstream_call_ex(struct upstream *u, struct client *c, json_t *client_id, enum era era, const char *tool,
                      json_t *arguments, json_t *client_meta, json_t *approval, const json_t *extra) {
        const struct server_config *s = config_find_server(&u->b->config, u->name);
        const struct tool_policy *tp = s ? server_find_tool(s, tool) : NULL;
        const json_t *annotations = json_object_get(upstream_tool(u, tool), "annotations");
        _cleanup_json_ json_t *args = arguments ? json_incref(arguments) : json_object();
        json_t *meta, *params, *v;
        struct call *call = call_new(u, c, client_id, era, CALL_TOOL, tool, client_meta, approval, &meta);
        /* A side effect unless the policy asks no approval and the worker says it only reads. */
        bool side_effect = !tp || tp->approval != APPROVAL_NONE ||
                           !json_is_true(json_object_get(annotations, "readOnlyHint"));
        const char *k;

        if (!call)
                return;
        params = json_pack("{s:s, s:O, s:o}", "name", tool, "arguments", args, "_meta", meta);
        json_object_foreach((json_t *) extra, k, v)
                if (!json_object_get(params, k))
                        json_object_set(params, k, v);
        call_start(call, c, "tools/call", params, args, side_effect);
}

void upstream_forward(struct upstream *u, struct client *c, json_t *client_id, enum era era, enum call_kind kind,
                      const char *method, json_t *params) {
        _cleanup_json_ json_t *audit_args = json_is_object(params) ? json_deep_copy(params) : json_object();
        json_t *meta, *out;
        struct call *call;

        json_object_del(audit_args, "_meta");
        call = call_new(u, c, client_id, era, kind, method, json_object_get(params, "_meta"), NULL, &meta);
        if (!call)
                return;
        call->uri = json_is_string(json_object_get(params, "uri")) ?
                    strdup(json_string_value(json_object_get(params, "uri"))) : NULL;
        out = json_deep_copy(audit_args);
        json_object_set_new(out, "_meta", meta);
        call_start(call, c, method, out, audit_args, false);
}

void upstream_resource(struct upstream *u, struct client *c, json_t *client_id, enum era era, enum call_kind kind,
                       const char *uri, json_t *client_meta) {
        _cleanup_json_ json_t *audit_args = uri ? json_pack("{s:s}", "uri", uri) : json_object();
        json_t *meta, *params;
        struct call *call = call_new(u, c, client_id, era, kind, kind == CALL_RESOURCE_READ ? "resources/read" :
                                     "resources/list", client_meta, NULL, &meta);

        if (!call)
                return;
        call->uri = uri ? strdup(uri) : NULL;
        params = json_pack("{s:o}", "_meta", meta);
        if (uri)
                json_object_set_new(params, "uri", json_string(uri));
        call_start(call, c, kind == CALL_RESOURCE_READ ? "resources/read" : "resources/list", params, audit_args,
                   false);
}

static struct call *call_by_client(struct upstream *u, struct client *c, json_t *client_id) {
        for (struct call *call = u->calls; call; call = call->next)
                if (call->client == c && json_equal(call->client_id, client_id))
                        return call;
        return NULL;
}

void upstream_cancel(struct upstream *u, struct client *c, json_t *client_id) {
        struct call *call = u ? call_by_client(u, c, client_id) : NULL;

        /* Unknown or finished ids are ignored (the race is normal). No response is sent. */
        if (!call)
                return;
        if (!call->pending)
                send_cancel(u, call->upstream_id, "cancelled by the client");
        call_finish(call, NULL);
}

void upstream_client_gone(struct broker *b, struct client *c) {
        for (struct upstream *u = b->upstreams; u; u = u->next)
                for (struct call *call = u->calls, *n; call; call = n) {
                        n = call->next;
                        if (call->client != c)
                                continue;
                        if (!call->pending)
                                send_cancel(u, call->upstream_id, "client disconnected");
                        call->client = NULL;
                        call_finish(call, NULL);
                }
}

static void upstream_close(struct upstream *u) {
        u->io = sd_event_source_disable_unref(u->io);
        u->handshake_timer = sd_event_source_disable_unref(u->handshake_timer);
        u->fd = safe_close(u->fd);
        linebuf_done(&u->in);
        outbuf_done(&u->out);
        u->handshake_id = 0;
        json_decref(u->tools_next);
        u->tools_next = NULL;
        u->handshake_listing = false;
}

/* The worker is gone (channel EOF, a protocol violation, or the supervisor's word). Every call it had
 * been sent is answered now; calls not yet sent wait for the restart unless the server has failed. */
void upstream_down(struct upstream *u, const char *reason, bool failed) {
        char msg[256];

        if (u->fd >= 0)
                log_warning("worker %s down: %s", u->name, reason);
        upstream_close(u);
        if (failed || u->state != UPSTREAM_FAILED) {
                u->state = failed ? UPSTREAM_FAILED : UPSTREAM_DOWN;
                snprintf(u->reason, sizeof(u->reason), "server %s is unavailable: %s", u->name, reason);
        }
        for (struct call *call = u->calls, *n; call; call = n) {
                n = call->next;
                if (call->pending && u->state != UPSTREAM_FAILED)
                        continue;
                snprintf(msg, sizeof(msg), "Tool call %s failed: server %s went away (%s); it may or may not "
                         "have taken effect", call->tool, u->name, reason);
                call_fail(call, BASTION_ERROR_SERVER_UNAVAILABLE, msg);
        }
}

void upstream_remove(struct upstream *u, const char *reason) {
        struct broker *b = u->b;

        upstream_down(u, reason, true);
        for (struct upstream **p = &b->upstreams; *p; p = &(*p)->next)
                if (*p == u) {
                        *p = u->next;
                        break;
                }
        json_decref(u->tools);
        json_decref(u->caps);
        free(u->name);
        free(u);
}

static void upstream_violation(struct upstream *u, const char *what) {
        log_error("worker %s broke protocol (%s); dropping its channel", u->name, what);
        upstream_down(u, "protocol violation", false);
}

static void handshake_request(struct upstream *u, const char *method, json_t *params) {
        _cleanup_json_ json_t *id = json_integer(u->next_id);

        u->handshake_id = u->next_id++;
        upstream_send(u, jsonrpc_request(id, method, params));
}

/* A tool the worker offers must be well-formed to be offered onwards at all. */
static bool tool_acceptable(const json_t *t) {
        static regex_t name_re;
        static bool compiled;
        const char *name = json_string_value(json_object_get(t, "name"));
        json_t *schema = json_object_get(t, "inputSchema");

        if (!compiled) {
                compiled = regcomp(&name_re, "^[A-Za-z0-9_.-]{1,128}$", REG_EXTENDED | REG_NOSUB) == 0;
                if (!compiled)
                        return false;
        }
        return name && regexec(&name_re, name, 0, NULL, 0) == 0 && json_is_object(schema) &&
               streq(json_string_value(json_object_get(schema, "type")), "object");
}

static void handshake_ready(struct upstream *u) {
        json_decref(u->tools);
        u->tools = TAKE_PTR(u->tools_next);
        u->handshake_id = 0;
        u->handshake_listing = false;
        u->handshake_timer = sd_event_source_disable_unref(u->handshake_timer);
        u->state = UPSTREAM_READY;
        log_info("worker %s ready (generation %" PRIu64 "), %zu tool(s)", u->name, u->generation,
                 json_array_size(u->tools));
        for (struct call *call = u->calls; call; call = call->next)
                if (call->pending)
                        upstream_send(u, TAKE_PTR(call->pending));
}

static void handshake_response(struct upstream *u, const struct jsonrpc_msg *m) {
        json_t *tools, *t, *cursor;
        size_t i;

        if (m->error || !json_is_object(m->result))
                return upstream_violation(u, "handshake request failed");
        if (!u->handshake_listing) {
                upstream_send(u, jsonrpc_notification("notifications/initialized", NULL));
                json_decref(u->caps);
                u->caps = json_incref(json_object_get(m->result, "capabilities"));
                u->handshake_listing = true;
                u->tools_next = json_array();
                return handshake_request(u, "tools/list", NULL);
        }
        tools = json_object_get(m->result, "tools");
        if (!json_is_array(tools))
                return upstream_violation(u, "tools/list without tools");
        json_array_foreach(tools, i, t) {
                if (tool_acceptable(t))
                        json_array_append(u->tools_next, t);
                else
                        log_warning("worker %s offers a malformed tool; not offered to clients", u->name);
        }
        cursor = json_object_get(m->result, "nextCursor");
        if (json_is_string(cursor) && json_array_size(u->tools_next) < 1024)
                return handshake_request(u, "tools/list", json_pack("{s:O}", "cursor", cursor));
        handshake_ready(u);
}

static bool bastion_key_in(json_t *requests) {
        const char *k;
        json_t *v;

        json_object_foreach(requests, k, v)
                if (strncmp(k, META_PREFIX_BASTION, strlen(META_PREFIX_BASTION)) == 0)
                        return true;
        return false;
}

/* A 2026-07-28 InputRequiredResult: the worker asks the client something through the result. */
static bool input_required(const struct call *call, const json_t *result) {
        return call->era == ERA_MODERN && streq(json_string_value(json_object_get(result, "resultType")), "input_required") &&
               json_is_object(json_object_get(result, "inputRequests"));
}

static struct call *call_by_upstream_id(struct upstream *u, int64_t id) {
        for (struct call *call = u->calls; call; call = call->next)
                if (call->upstream_id == id && !call->pending)
                        return call;
        return NULL;
}

/* Only the resources the policy names and the caller's scopes allow are passed on. */
static json_t *resources_filtered(const struct call *call, const json_t *resources) {
        json_t *out, *r;
        size_t i;

        if (!json_is_array(resources))
                return NULL;
        out = json_array();
        json_array_foreach(resources, i, r) {
                const char *uri = json_string_value(json_object_get(r, "uri"));
                if (call->client && policy_resource_allowed(&call->up->b->config, &call->client->principal,
                                                            call->up->name, uri, NULL))
                        json_array_append(out, r);
        }
        return json_pack("{s:o}", "resources", out);
}

/* The entries of a list result the policy lets this caller see: prompts by name, templates by the URI
 * prefix of their template. */
static json_t *list_filtered(const struct call *call, const json_t *result, const char *key, const char *field) {
        const struct bastion_config *cfg = &call->up->b->config;
        const struct server_config *s = config_find_server(cfg, call->up->name);
        json_t *list = json_object_get(result, key), *out, *e;
        size_t i;

        if (!json_is_array(list) || !s)
                return NULL;
        out = json_array();
        json_array_foreach(list, i, e) {
                const char *v = json_string_value(json_object_get(e, field));
                bool ok = false;
                if (!v || !call->client)
                        continue;
                if (call->kind == CALL_PROMPTS_LIST) {
                        const struct prompt_policy *pp = server_find_prompt(s, v);
                        ok = pp && !policy_missing_scope(cfg, &call->client->principal, pp->scopes, pp->n_scopes);
                } else
                        ok = policy_resource_allowed(cfg, &call->client->principal, call->up->name, v, NULL);
                if (ok)
                        json_array_append(out, e);
        }
        return json_pack("{s:o}", key, out);
}

/* Worker errors are passed on with code and message only. A legacy "resource not found" (-32002)
 * becomes -32602 for a 2026-07-28 client, which must never see -32002. */
static void relay_error(struct call *call, const json_t *error) {
        const char *message = json_string_value(json_object_get(error, "message"));
        json_int_t code = json_integer_value(json_object_get(error, "code"));
        json_t *data = NULL;

        /* The -310xx codes are the broker's own statements (unavailable, timeout, overloaded, audit): a
         * worker may not speak for the broker. */
        if (code <= BASTION_ERROR_RESERVED_MAX && code >= BASTION_ERROR_RESERVED_MIN) {
                log_warning("worker %s answered with the broker's reserved error code %lld; passed on as an "
                            "internal error", call->up->name, (long long) code);
                code = JSONRPC_INTERNAL_ERROR;
        }
        if (call->kind == CALL_RESOURCE_READ && code == MCP_RESOURCE_NOT_FOUND) {
                data = json_pack("{s:s}", "uri", call->uri ? call->uri : "");
                if (call->era == ERA_MODERN)
                        code = JSONRPC_INVALID_PARAMS;
        }
        /* A capability the client must declare: only the capability names are passed on. */
        if (code == MCP_MISSING_CLIENT_CAPABILITY) {
                json_t *req = json_object_get(json_object_get(error, "data"), "requiredCapabilities"), *v;
                const char *k;
                data = json_object();
                json_object_foreach(req, k, v)
                        if (strlen(k) < 64)
                                json_object_set_new(data, k, json_object());
                data = json_pack("{s:o}", "requiredCapabilities", data);
        }
        call_finish(call, jsonrpc_error(call->client_id, code, message ? message : "error", data));
}

static void relay_response(struct upstream *u, const struct jsonrpc_msg *m) {
        int64_t id = json_integer_value(m->id);
        struct call *call;
        json_t *result = NULL;

        if (!json_is_integer(m->id) || id <= 0 || id >= u->next_id)
                return upstream_violation(u, "response to a request never sent");
        if (u->handshake_id && id == u->handshake_id)
                return handshake_response(u, m);
        call = call_by_upstream_id(u, id);
        if (!call)
                return;         /* answered after a cancel or a deadline: dropped */
        if (m->error)
                return relay_error(call, m->error);
        if (!json_is_object(m->result))
                return upstream_violation(u, "result is not an object");
        switch (call->kind) {
        case CALL_TOOL:
                if (!json_is_array(json_object_get(m->result, "content")) && !input_required(call, m->result))
                        return upstream_violation(u, "tools/call result without content");
                /* Taken, not copied: the message is dropped after this, and nothing else refers to it. */
                result = json_incref(m->result);
                if (result && input_required(call, result)) {
                        /* A 2026-07-28 worker may ask the client through its result (MRTR), but never under a
                         * dev.bastion/ key, which is how the broker's own confirmation asks: the client must be
                         * able to tell the two apart. */
                        if (bastion_key_in(json_object_get(result, "inputRequests"))) {
                                log_warning("worker %s: %s asked under a " META_PREFIX_BASTION " key, which only "
                                            "Bastion's confirmations use; refused", u->name, call->tool);
                                json_decref(result);
                                result = json_pack("{s:[{s:s, s:s}], s:b}", "content", "type", "text", "text",
                                                   "Refused: the server asked for input under the name Bastion uses "
                                                   "for its own confirmations; nothing was asked", "isError", 1);
                        }
                } else if (result && ((json_object_get(result, "resultType") &&
                                       !streq(json_string_value(json_object_get(result, "resultType")), "complete")) ||
                                      json_object_get(result, "inputRequests") || json_object_get(result, "requestState"))) {
                        /* Outside MRTR these fields are the broker's alone (approval/confirm.c). */
                        log_warning("worker %s: %s result carried resultType/inputRequests/requestState; removed",
                                    u->name, call->tool);
                        json_object_del(result, "resultType");
                        json_object_del(result, "inputRequests");
                        json_object_del(result, "requestState");
                }
                break;
        case CALL_TEMPLATES_LIST:
                result = list_filtered(call, m->result, "resourceTemplates", "uriTemplate");
                if (!result)
                        return upstream_violation(u, "resources/templates/list result without resourceTemplates");
                break;
        case CALL_PROMPTS_LIST:
                result = list_filtered(call, m->result, "prompts", "name");
                if (!result)
                        return upstream_violation(u, "prompts/list result without prompts");
                break;
        case CALL_PROMPT_GET:
                if (!json_is_array(json_object_get(m->result, "messages")) && !input_required(call, m->result))
                        return upstream_violation(u, "prompts/get result without messages");
                result = json_deep_copy(m->result);
                break;
        case CALL_COMPLETE:
                if (!json_is_array(json_object_get(json_object_get(m->result, "completion"), "values")))
                        return upstream_violation(u, "completion/complete result without values");
                result = json_pack("{s:O}", "completion", json_object_get(m->result, "completion"));
                break;
        case CALL_SUBSCRIBE:
                if (call->client && call->uri && streq(call->tool, "resources/subscribe"))
                        json_object_set_new(call->client->subscriptions, call->uri, json_true());
                result = json_object();
                break;
        case CALL_RESOURCES_LIST:
                result = resources_filtered(call, json_object_get(m->result, "resources"));
                if (!result)
                        return upstream_violation(u, "resources/list result without resources");
                break;
        case CALL_RESOURCE_READ:
                if (!json_is_array(json_object_get(m->result, "contents")))
                        return upstream_violation(u, "resources/read result without contents");
                result = json_deep_copy(m->result);
                break;
        }
        if (call->era == ERA_MODERN && (call->kind == CALL_RESOURCES_LIST || call->kind == CALL_RESOURCE_READ ||
                                        call->kind == CALL_TEMPLATES_LIST || call->kind == CALL_PROMPTS_LIST)) {
                json_object_set_new(result, "ttlMs", json_integer(0));
                json_object_set_new(result, "cacheScope", json_string("private"));
        }
        call_finish(call, jsonrpc_result(call->client_id, call->client ? mcp_finish_result(call->client, call->era,
                                                                                           result) : result));
}

/* params (a copy) without any dev.bastion/ key in its _meta (and without an empty _meta). */
static json_t *params_for_client(const json_t *params) {
        json_t *out = json_is_object(params) ? json_deep_copy(params) : json_object();
        json_t *meta = json_object_get(out, "_meta"), *v;
        const char *k;
        void *tmp;

        if (json_is_object(meta)) {
                json_object_foreach_safe(meta, tmp, k, v)
                        if (strncmp(k, META_PREFIX_BASTION, strlen(META_PREFIX_BASTION)) == 0)
                                json_object_del(meta, k);
                if (json_object_size(meta) == 0)
                        json_object_del(out, "_meta");
        } else if (meta)
                json_object_del(out, "_meta");
        return out;
}

/* The call a worker message belongs to, by its _meta["dev.bastion/related"]. */
static struct call *call_related(struct upstream *u, const json_t *params) {
        json_t *id = json_object_get(json_object_get(params, "_meta"), META_RELATED);

        return json_is_integer(id) ? call_by_upstream_id(u, json_integer_value(id)) : NULL;
}

static void relay_progress(struct upstream *u, const struct jsonrpc_msg *m) {
        json_t *token = json_object_get(m->params, "progressToken"), *params;
        struct call *call = json_is_integer(token) ? call_by_upstream_id(u, json_integer_value(token)) : NULL;

        if (!call || !call->client || !call->progress_token)
                return;
        params = params_for_client(m->params);
        json_object_set(params, "progressToken", call->progress_token);
        client_send_related(call->client, jsonrpc_notification("notifications/progress", params), call->client_id);
}

static void relay_log(struct upstream *u, const struct jsonrpc_msg *m) {
        struct call *call = call_related(u, m->params);
        int level = mcp_log_level(json_string_value(json_object_get(m->params, "level")));

        /* Log messages outside a call have no client to go to. */
        if (!call || !call->client || level < 0 || call->log_level < 0 || level < call->log_level)
                return;
        client_send_related(call->client, jsonrpc_notification("notifications/message", params_for_client(m->params)),
                            call->client_id);
}

/* To every client of this server subscribed to the URI that may still read it. */
static void relay_resource_updated(struct upstream *u, const struct jsonrpc_msg *m) {
        const char *uri = json_string_value(json_object_get(m->params, "uri"));

        if (!uri)
                return;
        for (struct client *c = u->b->clients; c; c = c->next)
                if (streq(c->server, u->name) && json_object_get(c->subscriptions, uri) &&
                    policy_resource_allowed(&u->b->config, &c->principal, u->name, uri, NULL))
                        client_send(c, jsonrpc_notification("notifications/resources/updated",
                                                            json_pack("{s:s}", "uri", uri)));
}

static void relay_notification(struct upstream *u, const struct jsonrpc_msg *m) {
        if (streq(m->method, "notifications/progress"))
                relay_progress(u, m);
        else if (streq(m->method, "notifications/message"))
                relay_log(u, m);
        else if (streq(m->method, "notifications/resources/updated"))
                relay_resource_updated(u, m);
        /* anything else is not relayed: we did not ask for it */
}

/* A worker asks the client of one of its calls something. Only a 2025-11-25 client that declared the
 * capability can be asked; everyone else is refused and the worker decides what to do. */
static void relay_request(struct upstream *u, const struct jsonrpc_msg *m) {
        static const struct { const char *method, *capability; } askable[] = {
                { "sampling/createMessage", "sampling" },
                { "elicitation/create", "elicitation" },
                { "roots/list", "roots" },
        };
        static uint64_t next_relay = 1;
        _cleanup_json_ json_t *rid = NULL;
        const char *capability = NULL;
        unsigned n;
        struct call *call;
        struct relay *r;
        char msg[160];

        for (size_t i = 0; i < ELEMENTSOF(askable); i++)
                if (streq(m->method, askable[i].method))
                        capability = askable[i].capability;
        if (!capability)
                return upstream_send(u, jsonrpc_error(m->id, JSONRPC_METHOD_NOT_FOUND, "Method not found", NULL));
        call = call_related(u, m->params);
        if (!call || !call->client)
                return upstream_send(u, jsonrpc_error(m->id, JSONRPC_INVALID_REQUEST,
                                                      "Invalid Request: not part of a call in progress", NULL));
        if (call->era != ERA_LEGACY)
                return upstream_send(u, jsonrpc_error(m->id, JSONRPC_METHOD_NOT_FOUND, "Method not found: a "
                                                      "2026-07-28 client is asked through an InputRequiredResult",
                                                      NULL));
        if (!json_object_get(call->client_caps, capability)) {
                snprintf(msg, sizeof(msg), "The client did not declare the %s capability", capability);
                return upstream_send(u, jsonrpc_error(m->id, MCP_MISSING_CLIENT_CAPABILITY, msg,
                                                      json_pack("{s:{s:{}}}", "requiredCapabilities", capability)));
        }
        n = 0;
        for (struct relay *i = call->relays; i; i = i->next)
                n++;
        if (n >= BASTION_MAX_RELAYS_PER_CALL)
                return upstream_send(u, jsonrpc_error(m->id, JSONRPC_INVALID_REQUEST, "Invalid Request: too many "
                                                      "requests to the client outstanding for this call", NULL));
        r = calloc(1, sizeof(*r));
        if (!r)
                return (void) log_oom();
        r->worker_id = json_incref(m->id);
        snprintf(r->client_id, sizeof(r->client_id), "bastion-relay-%" PRIu64, next_relay++);
        r->next = call->relays;
        call->relays = r;
        rid = json_string(r->client_id);
        client_send_related(call->client, jsonrpc_request(rid, m->method, params_for_client(m->params)),
                            call->client_id);
}

/* The relay a client's answer is for: its own, by the id we chose. Unlinked from its call. */
static struct relay *relay_take(struct client *c, const char *id, struct upstream **ret_up) {
        for (struct upstream *u = c->b->upstreams; u; u = u->next)
                for (struct call *call = u->calls; call; call = call->next)
                        for (struct relay **p = &call->relays; call->client == c && *p; p = &(*p)->next)
                                if (streq((*p)->client_id, id)) {
                                        struct relay *r = *p;
                                        *p = r->next;
                                        *ret_up = u;
                                        return r;
                                }
        return NULL;
}

bool upstream_relay_answer(struct client *c, const struct jsonrpc_msg *m) {
        const char *id = json_string_value(m->id), *message;
        struct upstream *u;
        struct relay *r = id ? relay_take(c, id, &u) : NULL;
        json_int_t code;

        if (!r)
                return false;
        if (m->error) {
                /* Code and message only, as for every error that crosses the broker. */
                message = json_string_value(json_object_get(m->error, "message"));
                code = json_integer_value(json_object_get(m->error, "code"));
                upstream_send(u, jsonrpc_error(r->worker_id, code ? (int) code : JSONRPC_INTERNAL_ERROR,
                                               message ? message : "error", NULL));
        } else
                upstream_send(u, jsonrpc_result(r->worker_id, json_is_object(m->result) ? json_deep_copy(m->result) :
                                                json_object()));
        json_decref(r->worker_id);
        free(r);
        return true;
}

static void handle_worker_line(struct upstream *u, char *line, size_t len) {
        struct jsonrpc_msg m;

        if (jsonrpc_parse(line, len, &m, NULL) < 0)
                return upstream_violation(u, "malformed message");
        switch (m.kind) {
        case JSONRPC_RESPONSE:
                relay_response(u, &m);
                break;
        case JSONRPC_NOTIFICATION:
                relay_notification(u, &m);
                break;
        case JSONRPC_REQUEST:
                /* ping is harmless; sampling, elicitation and roots go to the client of the call. */
                if (streq(m.method, "ping"))
                        upstream_send(u, jsonrpc_result(m.id, json_object()));
                else
                        relay_request(u, &m);
                break;
        }
        jsonrpc_msg_done(&m);
}

static int on_upstream(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct upstream *u = userdata;
        unsigned handled = 0;
        char *line;
        size_t len;
        int r;

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t n = linebuf_fill(&u->in, fd);
                if (n == 0 || (n < 0 && n != -EAGAIN)) {
                        upstream_down(u, n == 0 ? "worker closed its channel" : "channel error", false);
                        return 0;
                }
                broker_cork(u->b);
                while (u->fd >= 0 && (r = linebuf_next(&u->in, &line, &len)) != 0) {
                        if (r < 0) {
                                upstream_violation(u, "oversized message");
                                break;
                        }
                        handle_worker_line(u, line, len);
                        broker_batch_slice(u->b, ++handled);
                }
                broker_uncork(u->b);
        }
        if (u->fd >= 0 && outbuf_pending(&u->out)) {
                r = outbuf_flush(&u->out, fd);
                if (r < 0) {
                        upstream_down(u, "channel write failed", false);
                        return 0;
                }
        }
        if (u->fd >= 0)
                (void) sd_event_source_set_io_events(u->io, EPOLLIN | (outbuf_pending(&u->out) ? EPOLLOUT : 0));
        return 0;
}

static int on_handshake_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct upstream *u = userdata;

        upstream_down(u, "did not complete the MCP handshake in time", false);
        return 0;
}

void upstream_attach(struct upstream *u, int fd, uint64_t generation) {
        int r;

        if (u->fd >= 0)
                upstream_down(u, "replaced by a new worker", false);
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
                log_error_errno(errno, "worker %s: cannot set up its channel: %m", u->name);
                safe_close(fd);
                return;
        }
        linebuf_init(&u->in, BASTION_MAX_LINE);
        outbuf_init(&u->out, BASTION_MAX_UPSTREAM_BACKLOG);
        r = sd_event_add_io(u->b->event, &u->io, fd, EPOLLIN, on_upstream, u);
        if (r < 0) {
                log_error_errno(r, "worker %s: cannot watch its channel: %m", u->name);
                safe_close(fd);
                return;
        }
        u->fd = fd;
        u->generation = generation;
        u->state = UPSTREAM_HANDSHAKE;
        (void) sd_event_add_time_relative(u->b->event, &u->handshake_timer, CLOCK_MONOTONIC,
                                          BASTION_HANDSHAKE_TIMEOUT_MS * 1000ULL, 1000, on_handshake_timeout, u);
        handshake_request(u, "initialize",
                          json_pack("{s:s, s:{}, s:{s:s, s:s}}", "protocolVersion", MCP_LEGACY_VERSION,
                                    "capabilities", "clientInfo", "name", "bastion-broker", "version", BROKER_VERSION));
}
