/* Both MCP eras over Streamable HTTP (shared/reference/mcp-requirements.md c2, c3, a7). Each legacy
 * session and each modern request is a virtual client (fd -1) of broker/mcp/server.c; what the server
 * sends it is routed here: a response answers the HTTP request that carried its id (as JSON, or as the
 * last event of an SSE stream), a message related to a request (progress, elicitation) opens or
 * continues that request's SSE stream.
 *
 * Legacy (2025-11-25): initialize mints Mcp-Session-Id (libsodium randomness); the session is bound to
 * the principal's source and sub and to the server: the same id with anybody else's token is answered
 * 404, exactly like an unknown id. DELETE ends it; it also ends after HTTP_SESSION_IDLE_SEC idle.
 * Modern (2026-07-28): every POST is validated on its own (headers against the body), answered, and
 * its client is freed; closing its stream (FRONT_CANCEL) cancels it. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "broker/http/http.h"
#include "jsonrpc.h"
#include "log.h"
#include "util.h"

static const char *const legacy_versions[] = { "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05" };

static uint64_t mono_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool legacy_version(const char *v) {
        for (size_t i = 0; v && i < ELEMENTSOF(legacy_versions); i++)
                if (streq(v, legacy_versions[i]))
                        return true;
        return false;
}

/* ---- virtual clients ---- */

static struct client *client_virtual(struct http_state *h, const struct server_config *s, const struct principal *p) {
        struct client *c = calloc(1, sizeof(*c));

        if (!c)
                return NULL;
        c->b = h->b;
        c->fd = -1;
        c->http = true;
        c->have_preamble = true;
        snprintf(c->server, sizeof(c->server), "%s", s->name);
        c->principal = *p;
        c->next = h->b->clients;
        h->b->clients = c;
        return c;
}

static int on_client_free(sd_event_source *s, void *userdata) {
        struct client *c = userdata;

        client_free(c);
        return 0;
}

/* A modern request's client goes once its answer is out — later, because the answer is sent from
 * deep inside code that still holds the client. */
static void client_retire(struct client *c) {
        if (c->http_free)
                return;
        if (sd_event_add_defer(c->b->event, &c->http_free, on_client_free, c) < 0)
                log_oom();
}

/* ---- exchanges: HTTP requests waiting for their JSON-RPC answer ---- */

static struct http_exchange *exchange_new(struct http_state *h, const struct http_request *r, struct client *c,
                                          json_t *rpc_id, bool modern) {
        struct http_exchange *x = calloc(1, sizeof(*x));

        if (!x)
                return NULL;
        x->conn = r->conn;
        x->stream = r->stream;
        x->client = c;
        x->rpc_id = json_incref(rpc_id);
        x->modern = modern;
        x->next = h->exchanges;
        h->exchanges = x;
        h->n_exchanges++;
        return x;
}

static void exchange_free(struct http_state *h, struct http_exchange *x) {
        for (struct http_exchange **p = &h->exchanges; *p; p = &(*p)->next)
                if (*p == x) {
                        *p = x->next;
                        break;
                }
        h->n_exchanges--;
        json_decref(x->rpc_id);
        free(x);
}

static struct http_exchange *exchange_for(struct http_state *h, const struct client *c, const json_t *id) {
        struct http_exchange *only = NULL;
        unsigned n = 0;

        for (struct http_exchange *x = h->exchanges; x; x = x->next) {
                if (x->client != c)
                        continue;
                if (id && !json_is_null(id) && json_equal(x->rpc_id, (json_t *) id))
                        return x;
                only = x, n++;
        }
        /* An answer without a usable id (a parse error) belongs to the client's one open request. */
        return (!id || json_is_null(id)) && n == 1 ? only : NULL;
}

/* HTTP status of a modern error answer (c2, a6); legacy errors travel in 200 responses. */
static int modern_status(const json_t *msg) {
        json_int_t code = json_integer_value(json_object_get(json_object_get(msg, "error"), "code"));

        switch (code) {
        case JSONRPC_METHOD_NOT_FOUND:
                return 404;
        case JSONRPC_PARSE_ERROR:
        case JSONRPC_INVALID_REQUEST:
        case MCP_HEADER_MISMATCH:
        case MCP_MISSING_CLIENT_CAPABILITY:
        case MCP_UNSUPPORTED_PROTOCOL_VERSION:
                return 400;
        }
        return 200;
}

static json_t *session_headers(const struct http_exchange *x) {
        const struct client *c = x->client;

        if (!x->modern && c->session)
                return json_pack("[[s, s]]", "mcp-session-id", c->session->id);
        return json_array();
}

static void exchange_answer(struct http_state *h, struct http_exchange *x, json_t *msg) {
        struct client *c = x->client;
        bool ok = json_object_get(msg, "result") != NULL;
        bool modern = x->modern, announce = x->announce_session;

        if (x->sse) {
                http_sse_event(h, x->conn, x->stream, msg);
                http_sse_end(h, x->conn, x->stream);
        } else
                http_respond_json(h, x->conn, x->stream, modern ? modern_status(msg) : 200,
                                  announce && ok ? session_headers(x) : NULL, json_incref(msg));
        json_decref(msg);
        exchange_free(h, x);
        if (modern || (announce && !ok))
                /* A modern request is done; a refused initialize made no session. */
                client_retire(c);
}

/* A cancelled 2025-11-25 request gets no answer (the spec says not to respond): its HTTP request ends
 * with an SSE stream that carries nothing more. */
static void exchange_abandon(struct http_state *h, struct http_exchange *x) {
        if (!x)
                return;
        if (!x->sse)
                http_sse_start(h, x->conn, x->stream, session_headers(x));
        http_sse_end(h, x->conn, x->stream);
        exchange_free(h, x);
}

void http_client_send(struct client *c, json_t *msg, const json_t *related_id) {
        struct http_state *h = c->b->http;
        bool response = json_object_get(msg, "result") || json_object_get(msg, "error");
        struct http_exchange *x;

        if (!h) {
                json_decref(msg);
                return;
        }
        x = exchange_for(h, c, response ? json_object_get(msg, "id") : related_id);
        if (!x || (!response && !related_id)) {
                /* Its HTTP request is gone (cancelled, or the front restarted): nowhere to send it. */
                log_debug("http client %s: dropping a message for a request that is gone", c->principal.sub);
                json_decref(msg);
                return;
        }
        if (response)
                return exchange_answer(h, x, msg);
        if (!x->sse) {
                http_sse_start(h, x->conn, x->stream, session_headers(x));
                x->sse = true;
        }
        http_sse_event(h, x->conn, x->stream, msg);
        json_decref(msg);
}

/* ---- sessions ---- */

static void session_end(struct http_state *h, struct http_session *sess) {
        /* client_free -> http_client_gone unlinks and frees the session. */
        client_free(sess->client);
}

static struct http_session *session_new(struct http_state *h, const struct server_config *s,
                                        const struct principal *p) {
        struct http_session *sess = calloc(1, sizeof(*sess));
        uint8_t rnd[HTTP_SESSION_ID_BYTES];

        if (!sess)
                return NULL;
        sess->client = client_virtual(h, s, p);
        if (!sess->client) {
                free(sess);
                return NULL;
        }
        randombytes_buf(rnd, sizeof(rnd));
        sodium_bin2hex(sess->id, sizeof(sess->id), rnd, sizeof(rnd));
        sess->client->session = sess;
        sess->last_used_us = mono_us();
        sess->next = h->sessions;
        h->sessions = sess;
        h->n_sessions++;
        return sess;
}

/* Constant-time comparison: the id is a bearer secret of the session (never its authentication, which
 * the token is). Refused alike whether unknown or someone else's. */
static struct http_session *session_find(struct http_state *h, const char *id, const struct server_config *s,
                                         const struct principal *p) {
        if (strlen(id) != HTTP_SESSION_ID_LEN)
                return NULL;
        for (struct http_session *sess = h->sessions; sess; sess = sess->next)
                if (sodium_memcmp(sess->id, id, HTTP_SESSION_ID_LEN) == 0) {
                        if (!principal_same(&sess->client->principal, p) || !streq(sess->client->server, s->name)) {
                                log_notice("session %.8s… of %s presented by %s: refused", sess->id,
                                           sess->client->principal.sub, p->sub);
                                return NULL;
                        }
                        return sess;
                }
        return NULL;
}

static bool session_busy(const struct http_state *h, const struct http_session *sess) {
        if (sess->client->inflight > 0)
                return true;
        for (const struct http_exchange *x = h->exchanges; x; x = x->next)
                if (x->client == sess->client)
                        return true;
        return false;
}

/* Ends the caller's least recently used idle session when it holds its share already. */
static void session_make_room(struct http_state *h, const struct principal *p) {
        struct http_session *lru = NULL;
        unsigned n = 0;

        for (struct http_session *sess = h->sessions; sess; sess = sess->next) {
                if (!principal_same(&sess->client->principal, p))
                        continue;
                n++;
                if (!session_busy(h, sess) && (!lru || sess->last_used_us < lru->last_used_us))
                        lru = sess;
        }
        if (n >= HTTP_MAX_SESSIONS_PER_SUBJECT && lru) {
                log_info("session %.8s… of %s ended: the caller opened more than %d", lru->id, p->sub,
                         HTTP_MAX_SESSIONS_PER_SUBJECT);
                session_end(h, lru);
        }
}

void http_sessions_sweep(struct http_state *h) {
        uint64_t now = mono_us();

        for (struct http_session *sess = h->sessions, *n; sess; sess = n) {
                n = sess->next;
                if (!session_busy(h, sess) && now - sess->last_used_us > (uint64_t) HTTP_SESSION_IDLE_SEC * 1000000) {
                        log_info("session %.8s… of %s expired", sess->id, sess->client->principal.sub);
                        session_end(h, sess);
                }
        }
}

void http_client_gone(struct client *c) {
        struct http_state *h = c->b->http;

        c->http_free = sd_event_source_disable_unref(c->http_free);
        if (!h)
                return;
        for (struct http_exchange *x = h->exchanges, *n; x; x = n) {
                n = x->next;
                if (x->client != c)
                        continue;
                /* The session ended (DELETE, the server was removed, the broker stops): the request
                 * ends too, not in silence. */
                if (x->sse)
                        http_sse_end(h, x->conn, x->stream);
                else
                        http_respond_json(h, x->conn, x->stream, 503, NULL,
                                          json_pack("{s:s}", "error", "session ended"));
                exchange_free(h, x);
        }
        if (c->session) {
                for (struct http_session **p = &h->sessions; *p; p = &(*p)->next)
                        if (*p == c->session) {
                                *p = c->session->next;
                                break;
                        }
                h->n_sessions--;
                free(c->session);
                c->session = NULL;
        }
}

/* ---- requests ---- */

static void reply_rpc_error(struct http_state *h, const struct http_request *r, int status, json_t *id, int code,
                            const char *message, json_t *data) {
        http_respond_json(h, r->conn, r->stream, status, NULL, jsonrpc_error(id, code, message, data));
}

/* tools/call of a tool the caller's role or token does not allow: 403 with the scopes it needs, over
 * HTTP (the local transport answers with an isError result instead). True when answered. */
static bool scope_refused(struct http_state *h, const struct http_request *r, const struct server_config *s,
                          const struct principal *p, const struct jsonrpc_msg *m) {
        const char *name = json_string_value(json_object_get(m->params, "name")), *missing;
        const struct tool_policy *tp;
        _cleanup_free_ char *needed = NULL;
        char msg[512];
        size_t n = 1;

        if (!streq(m->method, "tools/call") || !name || !(tp = server_find_tool(s, name)))
                return false;
        missing = policy_missing_scope(&h->b->config, p, tp->scopes, tp->n_scopes);
        if (!missing)
                return false;
        for (size_t i = 0; i < tp->n_scopes; i++)
                n += strlen(tp->scopes[i]) + 1;
        needed = calloc(1, n);
        if (!needed)
                return log_oom(), true;
        for (size_t i = 0; i < tp->n_scopes; i++) {
                if (i)
                        strcat(needed, " ");
                strcat(needed, tp->scopes[i]);
        }
        snprintf(msg, sizeof(msg), "Forbidden: tool %s requires scope %s, which this token or role %s does not grant",
                 tp->name, missing, p->role[0] ? p->role : "(none)");
        log_notice("denied %s: %s/%s needs %s", p->sub, s->name, tp->name, missing);
        record_denial_as(h->b, p, s->name, tp->name, msg);
        http_forbidden(h, r, s, needed, jsonrpc_error(m->id, HTTP_ERROR_FORBIDDEN, msg,
                                                      json_pack("{s:s, s:s}", "scope", needed, "missing", missing)));
        return true;
}

/* Hands the body to the MCP server as the client's next line (a copy: it may parse in place; the
 * length, not a NUL, ends it). */
static void feed(struct client *c, const struct http_request *r) {
        _cleanup_free_ char *line = malloc(r->body_len + 1);

        if (!line)
                return (void) log_oom();
        memcpy(line, r->body, r->body_len);
        line[r->body_len] = '\0';
        mcp_handle_line(c, line, r->body_len);
}

static void legacy_post(struct http_state *h, const struct http_request *r, const struct server_config *s,
                        const struct principal *p, const struct jsonrpc_msg *m) {
        const char *sid = http_header(r, "mcp-session-id"), *version = http_header(r, "mcp-protocol-version");
        struct http_session *sess;
        struct http_exchange *x;

        if (!sid) {
                if (m->kind != JSONRPC_REQUEST || !streq(m->method, "initialize"))
                        return reply_rpc_error(h, r, 400, m->id, JSONRPC_INVALID_REQUEST,
                                               "Bad Request: Mcp-Session-Id header is required", NULL);
                session_make_room(h, p);
                if (h->n_sessions >= HTTP_MAX_SESSIONS)
                        return reply_rpc_error(h, r, 503, m->id, BASTION_ERROR_OVERLOADED, "Too many sessions", NULL);
                sess = session_new(h, s, p);
                x = sess ? exchange_new(h, r, sess->client, m->id, false) : NULL;
                if (!x) {
                        if (sess)
                                session_end(h, sess);
                        return (void) log_oom();
                }
                x->announce_session = true;
                log_info("session %.8s… opened by %s on %s", sess->id, p->sub, s->name);
                return feed(sess->client, r);
        }
        sess = session_find(h, sid, s, p);
        if (!sess)
                return reply_rpc_error(h, r, 404, m->id, JSONRPC_INVALID_REQUEST, "Session not found", NULL);
        if (version && !legacy_version(version))
                return reply_rpc_error(h, r, 400, m->id, JSONRPC_INVALID_REQUEST,
                                       "Bad Request: unsupported MCP-Protocol-Version", NULL);
        /* The same caller, with the claims of the token it presents now. */
        sess->client->principal = *p;
        sess->last_used_us = mono_us();
        if (m->kind != JSONRPC_REQUEST) {
                feed(sess->client, r);
                json_t *rid = json_object_get(m->params, "requestId");
                if (m->kind == JSONRPC_NOTIFICATION && streq(m->method, "notifications/cancelled") &&
                    (json_is_string(rid) || json_is_integer(rid)))
                        exchange_abandon(h, exchange_for(h, sess->client, rid));
                return http_respond(h, r->conn, r->stream, 202, NULL, "", 0);
        }
        if (scope_refused(h, r, s, p, m))
                return;
        if (!exchange_new(h, r, sess->client, m->id, false))
                return (void) log_oom();
        feed(sess->client, r);
}

/* Mcp-Name may carry the "=?base64?…?=" sentinel for values that are not plain header text. */
static bool header_value_is(const char *header, const char *value) {
        size_t n = header ? strlen(header) : 0, len;
        char buf[1024];

        if (!header || !value)
                return false;
        if (n > 12 && strncmp(header, "=?base64?", 9) == 0 && streq(header + n - 2, "?=")) {
                if (sodium_base642bin((unsigned char *) buf, sizeof(buf) - 1, header + 9, n - 11, NULL, &len, NULL,
                                      sodium_base64_VARIANT_ORIGINAL) < 0)
                        return false;
                buf[len] = '\0';
                return len == strlen(value) && memcmp(buf, value, len) == 0;
        }
        return streq(header, value);
}

/* SEP-2243: an argument whose inputSchema property declares `x-mcp-header: NAME` travels in the header
 * Mcp-Param-NAME as well, and the two must agree: a header without its argument, an argument without its
 * header, an undecodable "=?base64?…?=" value or another value is a mismatch. Strings compare exactly,
 * integers numerically, booleans as "true"/"false". Returns the NAME that does not match, or NULL. */
static const char *param_header_mismatch(const struct http_request *r, const json_t *schema, const json_t *args) {
        const char *key;
        json_t *prop;

        json_object_foreach(json_object_get(schema, "properties"), key, prop) {
                const char *name = json_string_value(json_object_get(prop, "x-mcp-header")), *hv;
                const json_t *v = json_object_get(args, key);
                char lname[128], text[32];

                if (!name || snprintf(lname, sizeof(lname), "mcp-param-%s", name) >= (int) sizeof(lname))
                        continue;
                for (char *c = lname; *c; c++)
                        *c = (char) (*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
                hv = http_header(r, lname);
                if (!v || json_is_null(v)) {
                        if (hv)
                                return name;
                        continue;
                }
                if (!hv)
                        return name;
                if (json_is_string(v)) {
                        if (!header_value_is(hv, json_string_value(v)))
                                return name;
                } else if (json_is_integer(v)) {
                        char *end;
                        long long n;

                        errno = 0;
                        n = strtoll(hv, &end, 10);
                        if (errno || end == hv || *end || n != json_integer_value(v))
                                return name;
                } else if (json_is_boolean(v)) {
                        snprintf(text, sizeof(text), "%s", json_is_true(v) ? "true" : "false");
                        if (!streq(hv, text))
                                return name;
                } else
                        return name;    /* x-mcp-header belongs on strings, integers and booleans only */
        }
        return NULL;
}

static void modern_post(struct http_state *h, const struct http_request *r, const struct server_config *s,
                        const struct principal *p, const struct jsonrpc_msg *m) {
        const char *hv = http_header(r, "mcp-protocol-version"), *method = http_header(r, "mcp-method");
        json_t *meta = json_object_get(m->params, "_meta");
        const char *mv = json_string_value(json_object_get(meta, META_PROTOCOL_VERSION));
        struct client *c;

        if (m->kind == JSONRPC_RESPONSE)
                return reply_rpc_error(h, r, 400, NULL, JSONRPC_INVALID_REQUEST,
                                       "Invalid Request: a 2026-07-28 client sends no responses", NULL);
        if (!hv)
                return reply_rpc_error(h, r, 400, m->id, MCP_HEADER_MISMATCH,
                                       "Header mismatch: MCP-Protocol-Version is required", NULL);
        if (m->kind == JSONRPC_REQUEST && (!mv || !json_is_object(json_object_get(meta, META_CLIENT_CAPS))))
                return reply_rpc_error(h, r, 400, m->id, JSONRPC_INVALID_PARAMS,
                                       "Invalid params: _meta must carry io.modelcontextprotocol/protocolVersion and "
                                       "io.modelcontextprotocol/clientCapabilities", NULL);
        if (mv && !streq(hv, mv))
                return reply_rpc_error(h, r, 400, m->id, MCP_HEADER_MISMATCH,
                                       "Header mismatch: MCP-Protocol-Version differs from _meta", NULL);
        if (!streq(hv, MCP_MODERN_VERSION))
                return reply_rpc_error(h, r, 400, m->id, MCP_UNSUPPORTED_PROTOCOL_VERSION,
                                       "Unsupported protocol version",
                                       json_pack("{s:[s], s:s}", "supported", MCP_MODERN_VERSION, "requested", hv));
        if (!method || !streq(method, m->method))
                return reply_rpc_error(h, r, 400, m->id, MCP_HEADER_MISMATCH,
                                       "Header mismatch: Mcp-Method must equal the method", NULL);
        if (streq(m->method, "tools/call") || streq(m->method, "prompts/get") || streq(m->method, "resources/read")) {
                const char *name = json_string_value(json_object_get(m->params,
                                                     streq(m->method, "resources/read") ? "uri" : "name"));
                if (!header_value_is(http_header(r, "mcp-name"), name))
                        return reply_rpc_error(h, r, 400, m->id, MCP_HEADER_MISMATCH,
                                               "Header mismatch: Mcp-Name must equal the name or uri", NULL);
        }
        /* SEP-2663: the task methods name their task in Mcp-Name (a request without a taskId is refused
         * by the broker as invalid params). */
        if ((streq(m->method, "tasks/get") || streq(m->method, "tasks/update") || streq(m->method, "tasks/cancel")) &&
            json_is_string(json_object_get(m->params, "taskId")) &&
            !header_value_is(http_header(r, "mcp-name"), json_string_value(json_object_get(m->params, "taskId"))))
                return reply_rpc_error(h, r, 400, m->id, MCP_HEADER_MISMATCH,
                                       "Header mismatch: Mcp-Name must equal params.taskId", NULL);
        if (streq(m->method, "tools/call")) {
                struct upstream *u = upstream_get(h->b, s->name);
                const json_t *tool = u ? upstream_tool(u, json_string_value(json_object_get(m->params, "name"))) : NULL;
                const char *bad = tool ? param_header_mismatch(r, json_object_get(tool, "inputSchema"),
                                                               json_object_get(m->params, "arguments")) : NULL;
                if (bad) {
                        char msg[192];

                        snprintf(msg, sizeof(msg), "Header mismatch: Mcp-Param-%.100s must carry the argument it mirrors",
                                 bad);
                        return reply_rpc_error(h, r, 400, m->id, MCP_HEADER_MISMATCH, msg,
                                               json_pack("{s:s}", "header", bad));
                }
        }
        if (m->kind == JSONRPC_NOTIFICATION)
                /* Cancellation is closing the stream; nothing else is acted on. */
                return http_respond(h, r->conn, r->stream, 202, NULL, "", 0);
        if (scope_refused(h, r, s, p, m))
                return;
        c = client_virtual(h, s, p);
        if (!c || !exchange_new(h, r, c, m->id, true)) {
                if (c)
                        client_free(c);
                return (void) log_oom();
        }
        feed(c, r);
}

static bool has_modern_meta(const json_t *params) {
        return json_object_get(json_object_get(params, "_meta"), META_PROTOCOL_VERSION) != NULL;
}

static void session_delete(struct http_state *h, const struct http_request *r, const struct server_config *s,
                           const struct principal *p) {
        const char *sid = http_header(r, "mcp-session-id");
        struct http_session *sess;

        if (!sid)
                return http_respond_json(h, r->conn, r->stream, 400, NULL,
                                         json_pack("{s:s}", "error", "Mcp-Session-Id header is required"));
        sess = session_find(h, sid, s, p);
        if (!sess)
                return http_respond_json(h, r->conn, r->stream, 404, NULL,
                                         json_pack("{s:s}", "error", "session not found"));
        log_info("session %.8s… of %s ended by DELETE", sess->id, p->sub);
        session_end(h, sess);
        http_respond(h, r->conn, r->stream, 200, NULL, "", 0);
}

void http_mcp(struct http_state *h, const struct http_request *r, const struct server_config *s,
              const struct principal *p) {
        struct jsonrpc_msg m;
        json_t *error = NULL;
        bool legacy;

        if (streq(r->method, "DELETE"))
                return session_delete(h, r, s, p);
        if (jsonrpc_parse(r->body, r->body_len, &m, &error) < 0)
                return http_respond_json(h, r->conn, r->stream, 400, NULL,
                                         error ?: jsonrpc_error(NULL, JSONRPC_PARSE_ERROR, "Parse error", NULL));
        /* a7: a session id, a legacy initialize, or a legacy version header with no modern _meta. */
        legacy = http_header(r, "mcp-session-id") ||
                 (!has_modern_meta(m.params) &&
                  ((m.kind == JSONRPC_REQUEST && streq(m.method, "initialize")) ||
                   legacy_version(http_header(r, "mcp-protocol-version"))));
        if (legacy)
                legacy_post(h, r, s, p, &m);
        else
                modern_post(h, r, s, p, &m);
        jsonrpc_msg_done(&m);
}

void http_cancel(struct http_state *h, uint64_t conn, uint64_t stream) {
        for (struct http_exchange *x = h->exchanges; x; x = x->next) {
                struct client *c = x->client;
                _cleanup_json_ json_t *id = NULL;
                bool modern = x->modern;

                if (x->conn != conn || x->stream != stream)
                        continue;
                id = json_incref(x->rpc_id);
                exchange_free(h, x);
                /* 2026-07-28: closing the stream is cancellation. 2025-11-25: it is not; the answer is
                 * dropped when it comes. */
                if (modern) {
                        upstream_cancel(upstream_get(h->b, c->server), c, id);
                        client_retire(c);
                }
                return;
        }
}

void http_exchanges_drop(struct http_state *h) {
        while (h->exchanges) {
                struct http_exchange *x = h->exchanges;
                struct client *c = x->client;
                bool modern = x->modern;

                exchange_free(h, x);
                if (modern)
                        client_retire(c);
        }
}
