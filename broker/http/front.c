/* The broker's end of the broker <-> front channel (lib/front_proto.h): every FRONT_REQUEST is checked
 * against what the front may say, then routed; any malformed message ends the channel (the front is
 * less privileged: the supervisor restarts it). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>

#include <sodium.h>

#include "broker/http/http.h"
#include "front_proto.h"
#include "jsonrpc.h"
#include "log.h"
#include "util.h"

#define METADATA_PREFIX "/.well-known/oauth-protected-resource"

static int on_sweep(sd_event_source *s, uint64_t usec, void *userdata) {
        http_sessions_sweep(userdata);
        (void) sd_event_source_set_time_relative(s, (uint64_t) HTTP_SESSION_SWEEP_SEC * 1000000);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

struct http_state *http_get(struct broker *b) {
        struct http_state *h = b->http;

        if (h)
                return h;
        h = calloc(1, sizeof(*h));
        if (!h)
                return NULL;
        h->b = b;
        h->fd = -1;
        h->buckets = calloc(HTTP_RATE_BUCKETS, sizeof(*h->buckets));
        if (!h->buckets || jwt_cache_new(BASTION_JWT_CACHE_ENTRIES, &h->cache) < 0) {
                free(h->buckets);
                free(h);
                return NULL;
        }
        randombytes_buf(h->bucket_key, sizeof(h->bucket_key));
        (void) sd_event_add_time_relative(b->event, &h->sweep, CLOCK_MONOTONIC,
                                          (uint64_t) HTTP_SESSION_SWEEP_SEC * 1000000, 1000000, on_sweep, h);
        b->http = h;
        return h;
}

static void front_close(struct http_state *h) {
        h->io = sd_event_source_disable_unref(h->io);
        h->drop = sd_event_source_disable_unref(h->drop);
        h->fd = safe_close(h->fd);
        http_exchanges_drop(h);
}

static int on_drop(sd_event_source *s, void *userdata) {
        struct http_state *h = userdata;

        log_error("the front channel is broken; closing it (the supervisor restarts the front)");
        front_close(h);
        return 0;
}

/* Teardown is deferred: a send fails deep inside a call chain that still holds clients. */
static void front_fail(struct http_state *h) {
        if (h->drop || h->fd < 0)
                return;
        (void) sd_event_source_set_enabled(h->io, SD_EVENT_OFF);
        if (sd_event_add_defer(h->b->event, &h->drop, on_drop, h) < 0)
                front_close(h);
}

static void front_send(struct http_state *h, uint32_t type, json_t *payload) {
        int r;

        if (!payload)
                return (void) log_oom();
        if (h->fd < 0 || h->drop) {
                json_decref(payload);
                return;
        }
        r = chan_send(h->fd, type, 0, payload, NULL, 0);
        if (r == -EAGAIN) {
                /* The front reads promptly; a short wait covers a burst, a longer one is a stuck front. */
                struct pollfd p = { .fd = h->fd, .events = POLLOUT };
                if (poll(&p, 1, HTTP_FRONT_SEND_WAIT_MS) == 1)
                        r = chan_send(h->fd, type, 0, payload, NULL, 0);
        }
        json_decref(payload);
        if (r < 0) {
                log_error_errno(r, "Cannot send message %u to the front: %m", type);
                front_fail(h);
        }
}

void http_respond(struct http_state *h, uint64_t conn, uint64_t stream, int status, json_t *headers,
                  const char *body, size_t len) {
        front_send(h, FRONT_RESPONSE, json_pack("{s:I, s:I, s:i, s:o, s:s%}", "conn", (json_int_t) conn,
                                                "stream", (json_int_t) stream, "status", status,
                                                "headers", headers ? headers : json_array(), "body", body, len));
}

void http_respond_json(struct http_state *h, uint64_t conn, uint64_t stream, int status, json_t *headers,
                       json_t *body) {
        _cleanup_free_ char *text = NULL;
        size_t n = 0;

        if (!headers)
                headers = json_array();
        json_array_append_new(headers, json_pack("[s, s]", "content-type", "application/json"));
        text = body ? jsonrpc_dump(body, &n) : NULL;
        json_decref(body);
        if (!text) {
                json_decref(headers);
                return (void) log_oom();
        }
        http_respond(h, conn, stream, status, headers, text, n);
}

void http_sse_start(struct http_state *h, uint64_t conn, uint64_t stream, json_t *headers) {
        front_send(h, FRONT_SSE_START, json_pack("{s:I, s:I, s:i, s:o}", "conn", (json_int_t) conn,
                                                 "stream", (json_int_t) stream, "status", 200,
                                                 "headers", headers ? headers : json_array()));
}

void http_sse_event(struct http_state *h, uint64_t conn, uint64_t stream, const json_t *msg) {
        _cleanup_free_ char *text = NULL;
        size_t n = 0;

        text = jsonrpc_dump(msg, &n);
        if (!text)
                return (void) log_oom();
        front_send(h, FRONT_SSE_EVENT, json_pack("{s:I, s:I, s:s%, s:s}", "conn", (json_int_t) conn,
                                                 "stream", (json_int_t) stream, "data", text, n, "event", "message"));
}

void http_sse_end(struct http_state *h, uint64_t conn, uint64_t stream) {
        front_send(h, FRONT_SSE_END, json_pack("{s:I, s:I}", "conn", (json_int_t) conn, "stream", (json_int_t) stream));
}

const char *http_header(const struct http_request *r, const char *name) {
        return json_string_value(json_object_get(r->headers, name));
}

static void respond_error(struct http_state *h, const struct http_request *r, int status, const char *message,
                          json_t *headers) {
        http_respond_json(h, r->conn, r->stream, status, headers, json_pack("{s:s}", "error", message));
}

/* Which document a path names: 1 the MCP endpoint, 2 the RFC 9728 metadata, 0 neither. */
static int route(const struct http_request *r) {
        const char *p = r->path;

        if (strncmp(p, METADATA_PREFIX, strlen(METADATA_PREFIX)) == 0) {
                p += strlen(METADATA_PREFIX);
                if (strncmp(p, "/mcp/", 5) == 0 && streq(p + 5, r->server))
                        return 2;
                return 0;
        }
        return strncmp(p, "/mcp/", 5) == 0 && streq(p + 5, r->server) ? 1 : 0;
}

static void handle_request(struct http_state *h, const struct http_request *r) {
        const struct server_config *s = config_find_server(&h->b->config, r->server);
        struct principal p;
        int where = route(r);

        if (where == 0 || !s)
                return respond_error(h, r, 404, "not found", NULL);
        if (where == 2)
                return http_metadata(h, r, s);
        if (!streq(r->method, "POST") && !streq(r->method, "DELETE"))
                /* No GET stream: nothing here is sent to a client outside a request (2025-11-25 allows 405). */
                return respond_error(h, r, 405, "method not allowed",
                                     json_pack("[[s, s]]", "allow", "POST, DELETE"));
        if (!http_authenticate(h, r, s, &p) || !http_rate_allow(h, r, &p))
                return;
        http_mcp(h, r, s, &p);
}

static bool exchange_exists(const struct http_state *h, uint64_t conn, uint64_t stream) {
        for (const struct http_exchange *x = h->exchanges; x; x = x->next)
                if (x->conn == conn && x->stream == stream)
                        return true;
        return false;
}

/* The shape the front promised; anything else is a violation. */
static int parse_request(json_t *j, struct http_request *ret) {
        json_int_t conn, stream;
        int tls = 0;
        const char *k;
        json_t *v;

        *ret = (struct http_request) { .body = "" };
        if (json_unpack(j, "{s:I, s:I, s:s, s:s, s:s, s:b, s:s, s:o, s?s% !}", "conn", &conn, "stream", &stream,
                        "method", &ret->method, "server", &ret->server, "path", &ret->path, "tls", &tls,
                        "peer", &ret->peer, "headers", &ret->headers, "body", &ret->body, &ret->body_len) < 0)
                return -EBADMSG;
        if (conn < 0 || stream < 0 || !json_is_object(ret->headers) || strlen(ret->server) > BASTION_MAX_NAME ||
            ret->path[0] != '/' || (!streq(ret->method, "GET") && !streq(ret->method, "POST") &&
                                    !streq(ret->method, "DELETE") && !streq(ret->method, "OPTIONS")))
                return -EBADMSG;
        /* The peer goes into logs and audit records: a short printable address, nothing else. */
        if (strlen(ret->peer) > HTTP_MAX_PEER)
                return -EBADMSG;
        for (const char *c = ret->peer; *c; c++)
                if (*c <= ' ' || *c > '~')
                        return -EBADMSG;
        json_object_foreach(ret->headers, k, v)
                if (!json_is_string(v))
                        return -EBADMSG;
        if (!ret->body)
                ret->body = "";
        ret->conn = conn;
        ret->stream = stream;
        ret->tls = tls;
        return 0;
}

static int dispatch(struct http_state *h, struct chan_msg *m) {
        struct http_request r;
        json_int_t conn, stream;

        if (m->n_fds > 0)
                return -EBADMSG;
        switch (m->type) {
        case FRONT_REQUEST:
                if (parse_request(m->payload, &r) < 0 || exchange_exists(h, r.conn, r.stream))
                        return -EBADMSG;
                if (h->n_exchanges >= HTTP_MAX_EXCHANGES) {
                        respond_error(h, &r, 503, "too many requests in flight", NULL);
                        return 0;
                }
                handle_request(h, &r);
                return 0;
        case FRONT_CANCEL:
                if (json_unpack(m->payload, "{s:I, s:I !}", "conn", &conn, "stream", &stream) < 0)
                        return -EBADMSG;
                http_cancel(h, conn, stream);
                return 0;
        }
        return -EBADMSG;
}

static int on_front(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct http_state *h = userdata;

        /* A bounded batch per wake-up, so one busy front cannot starve the workers. */
        for (int i = 0; i < 64 && h->fd >= 0 && !h->drop; i++) {
                struct chan_msg m;
                int r = chan_recv(fd, &m);

                if (r == -EAGAIN)
                        return 0;
                if (r == 0) {
                        log_info("the front closed its channel");
                        front_close(h);
                        return 0;
                }
                if (r < 0) {
                        log_error_errno(r, "Bad message from the front: %m; closing its channel");
                        front_close(h);
                        return 0;
                }
                r = dispatch(h, &m);
                chan_msg_done(&m);
                if (r < 0) {
                        log_error("The front sent a message that breaks the protocol (type %u); closing its channel",
                                  m.type);
                        front_close(h);
                        return 0;
                }
        }
        return 0;
}

int http_front_attach(struct broker *b, int fd) {
        struct http_state *h = http_get(b);
        int r;

        if (fd < 0)
                return fd;
        if (!h) {
                safe_close(fd);
                return log_oom();
        }
        /* A restarted front: the old channel's requests are gone with it. */
        front_close(h);
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
                safe_close(fd);
                return log_error_errno(errno, "Failed to make the front channel non-blocking: %m");
        }
        h->fd = fd;
        r = sd_event_add_io(b->event, &h->io, fd, EPOLLIN, on_front, h);
        if (r < 0) {
                h->fd = safe_close(h->fd);
                return log_error_errno(r, "Failed to watch the front channel: %m");
        }
        log_info("front channel attached");
        return 0;
}

void http_done(struct broker *b) {
        struct http_state *h = b->http;

        if (!h)
                return;
        front_close(h);
        while (h->sessions)
                client_free(h->sessions->client);
        h->sweep = sd_event_source_disable_unref(h->sweep);
        jwks_free(h->jwks);
        jwt_cache_free(h->cache);
        free(h->buckets);
        free(h);
        b->http = NULL;
}
