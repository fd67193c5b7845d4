/* The broker's end of the broker <-> front channel (lib/front_proto.h): every FRONT_REQUEST is checked
 * against what the front may say, then routed; any malformed message ends the channel (the front is
 * less privileged: the supervisor restarts it). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include <sodium.h>

#include "broker/http/http.h"
#include "chan.h"
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

struct front_queued {
        uint32_t type;
        struct front_out o;
};

static void queue_drop(struct http_state *h) {
        for (size_t i = 0; i < h->n_queued; i++)
                front_out_done(&h->queued[i].o);
        h->n_queued = 0;
}

static void front_close(struct http_state *h) {
        queue_drop(h);
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

static void front_transmit(struct http_state *h, uint32_t type, struct front_out *o) {
        int r;

        if (h->fd < 0 || h->drop)
                return front_out_done(o);
        r = chan_send_raw(h->fd, type, 0, o->buf, o->len, NULL, 0);
        if (r == -EAGAIN) {
                /* The front reads promptly; a short wait covers a burst, a longer one is a stuck front. */
                struct pollfd p = { .fd = h->fd, .events = POLLOUT };
                if (poll(&p, 1, HTTP_FRONT_SEND_WAIT_MS) == 1)
                        r = chan_send_raw(h->fd, type, 0, o->buf, o->len, NULL, 0);
        }
        front_out_done(o);
        if (r < 0) {
                log_error_errno(r, "Cannot send message %u to the front: %m", type);
                front_fail(h);
        }
}

/* Sends a built message (queued while the broker is corked); a channel that stays full or fails is
 * dropped (front_fail). */
static void front_send(struct http_state *h, uint32_t type, struct front_out *o) {
        int r = front_out_finish(o);

        if (r < 0) {
                log_error_errno(r, "Cannot build message %u for the front: %m", type);
                return front_out_done(o);
        }
        if (h->fd < 0 || h->drop)
                return front_out_done(o);
        if (!h->b->corked)
                return front_transmit(h, type, o);
        if (h->n_queued == h->cap_queued) {
                size_t cap = h->cap_queued ? h->cap_queued * 2 : 16;
                struct front_queued *q = reallocarray(h->queued, cap, sizeof(*q));

                if (!q) {
                        log_oom();
                        return front_out_done(o);
                }
                h->queued = q;
                h->cap_queued = cap;
        }
        h->queued[h->n_queued++] = (struct front_queued) { .type = type, .o = *o };
        *o = (struct front_out) {};
}

#define FRONT_MMSG_MAX 64

/* Hands as many queued messages to the kernel as one sendmmsg(2) takes (up to FRONT_MMSG_MAX, none
 * with fds): the number sent, or a negative errno. */
static int queue_sendmmsg(struct http_state *h, size_t from) {
        struct mmsghdr mm[FRONT_MMSG_MAX];
        struct chan_hdr hdr[FRONT_MMSG_MAX];
        struct iovec iov[FRONT_MMSG_MAX][2];
        unsigned n = 0;
        int r;

        for (; n < FRONT_MMSG_MAX && from + n < h->n_queued; n++) {
                const struct front_queued *q = &h->queued[from + n];

                if (q->o.len > BASTION_MAX_CHAN_PAYLOAD)
                        break;
                hdr[n] = (struct chan_hdr) { .type = q->type, .len = (uint32_t) q->o.len };
                iov[n][0] = (struct iovec) { &hdr[n], sizeof(hdr[n]) };
                iov[n][1] = (struct iovec) { q->o.buf, q->o.len };
                mm[n] = (struct mmsghdr) { .msg_hdr = { .msg_iov = iov[n], .msg_iovlen = 2 } };
        }
        if (n == 0)
                return 0;
        do
                r = sendmmsg(h->fd, mm, n, MSG_NOSIGNAL);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return errno == EAGAIN ? 0 : -errno;
        for (int i = 0; i < r; i++)
                if (mm[i].msg_len != sizeof(hdr[i]) + h->queued[from + i].o.len)
                        return -EMSGSIZE;
        return r;
}

void http_uncork(struct broker *b) {
        struct http_state *h = b->http;
        size_t i = 0;

        if (!h)
                return;
        /* Batches through sendmmsg while the channel takes them; the rest (a full channel, a message
         * sendmmsg cannot send) one by one through front_transmit(), which waits a little or drops the
         * channel. Either may drop the channel, and the queue with it, half way. */
        while (i < h->n_queued && h->fd >= 0 && !h->drop) {
                int r = queue_sendmmsg(h, i);

                if (r < 0) {
                        log_error_errno(r, "Cannot send to the front: %m");
                        front_fail(h);
                        break;
                }
                for (int k = 0; k < r; k++)
                        front_out_done(&h->queued[i + (size_t) k].o);
                i += (size_t) r;
                if (r == 0 && i < h->n_queued) {
                        front_transmit(h, h->queued[i].type, &h->queued[i].o);
                        i++;
                }
        }
        queue_drop(h);
}

/* [[name, value], ...] (taken; may be NULL) as string pairs. */
static void out_headers(struct front_out *o, json_t *headers) {
        size_t i;
        json_t *v;

        json_array_foreach(headers, i, v) {
                const char *name = json_string_value(json_array_get(v, 0));
                const char *value = json_string_value(json_array_get(v, 1));

                if (!name || !value) {
                        o->error = -EINVAL;
                        break;
                }
                front_out_cstr(o, name);
                front_out_cstr(o, value);
        }
        json_decref(headers);
}

void http_respond(struct http_state *h, uint64_t conn, uint64_t stream, int status, json_t *headers,
                  const char *body, size_t len) {
        struct front_out o;

        front_out_init(&o, &(struct front_wire) { .conn = conn, .stream = stream, .status = (uint16_t) status });
        front_out_str(&o, body ?: "", body ? len : 0);
        out_headers(&o, headers);
        front_send(h, FRONT_RESPONSE, &o);
}

void http_respond_json(struct http_state *h, uint64_t conn, uint64_t stream, int status, json_t *headers,
                       json_t *body) {
        _cleanup_free_ char *alloc = NULL;
        char buf[4096];
        const char *text;
        struct front_out o;
        size_t n = 0;

        /* Compact, straight into the message to the front (which copies it): no allocation for most. */
        text = body ? json_dump_buf(body, JSON_COMPACT, buf, sizeof(buf), &alloc, &n) : NULL;
        json_decref(body);
        if (!text) {
                json_decref(headers);
                return (void) log_oom();
        }
        front_out_init(&o, &(struct front_wire) { .conn = conn, .stream = stream, .status = (uint16_t) status });
        front_out_str(&o, text, n);
        out_headers(&o, headers);
        front_out_cstr(&o, "content-type");
        front_out_cstr(&o, "application/json");
        front_send(h, FRONT_RESPONSE, &o);
}

void http_sse_start(struct http_state *h, uint64_t conn, uint64_t stream, json_t *headers) {
        struct front_out o;

        front_out_init(&o, &(struct front_wire) { .conn = conn, .stream = stream, .status = 200 });
        out_headers(&o, headers);
        front_send(h, FRONT_SSE_START, &o);
}

void http_sse_event(struct http_state *h, uint64_t conn, uint64_t stream, const json_t *msg) {
        _cleanup_free_ char *alloc = NULL;
        char buf[4096];
        const char *text;
        struct front_out o;
        size_t n = 0;

        text = json_dump_buf(msg, JSON_COMPACT, buf, sizeof(buf), &alloc, &n);
        if (!text)
                return (void) log_oom();
        front_out_init(&o, &(struct front_wire) { .conn = conn, .stream = stream, .retry = -1,
                                                  .flags = FRONT_FLAG_EVENT });
        front_out_str(&o, text, n);
        front_out_cstr(&o, "message");
        front_send(h, FRONT_SSE_EVENT, &o);
}

void http_sse_end(struct http_state *h, uint64_t conn, uint64_t stream) {
        struct front_out o;

        front_out_init(&o, &(struct front_wire) { .conn = conn, .stream = stream });
        front_send(h, FRONT_SSE_END, &o);
}

const char *http_header(const struct http_request *r, const char *name) {
        for (size_t i = 0; i < r->n_headers; i++)
                if (streq(r->headers[2 * i].s, name))
                        return r->headers[2 * i + 1].s;
        return NULL;
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

/* The shape the front promised (front_request_check); anything else is a violation. */
static int parse_request(const struct front_msg *m, struct http_request *ret) {
        static const char *const methods[] = {
                [FRONT_METHOD_GET] = "GET", [FRONT_METHOD_POST] = "POST",
                [FRONT_METHOD_DELETE] = "DELETE", [FRONT_METHOD_OPTIONS] = "OPTIONS",
        };

        if (front_request_check(m) < 0)
                return -EBADMSG;
        *ret = (struct http_request) {
                .conn = m->w.conn, .stream = m->w.stream, .method = methods[m->w.method],
                .server = m->str[0].s, .path = m->str[1].s, .peer = m->str[2].s,
                .body = m->str[3].s, .body_len = m->str[3].len,
                .tls = m->w.flags & FRONT_FLAG_TLS,
                .headers = m->str + 4, .n_headers = (m->n - 4) / 2,
        };
        return 0;
}

static int dispatch(struct http_state *h, const struct front_msg *m) {
        struct http_request r;

        switch (m->type) {
        case FRONT_REQUEST:
                if (parse_request(m, &r) < 0 || exchange_exists(h, r.conn, r.stream))
                        return -EBADMSG;
                if (h->n_exchanges >= HTTP_MAX_EXCHANGES) {
                        respond_error(h, &r, 503, "too many requests in flight", NULL);
                        return 0;
                }
                handle_request(h, &r);
                return 0;
        case FRONT_CANCEL:
                if (m->n != 0 || m->w.flags || m->w.method || m->w.conn > INT64_MAX || m->w.stream > INT64_MAX)
                        return -EBADMSG;
                http_cancel(h, m->w.conn, m->w.stream);
                return 0;
        }
        return -EBADMSG;
}

/* Up to 64 messages per wake-up, so one busy front cannot starve the workers, received CHAN_RECV_BATCH
 * at a time: a short batch means the channel is empty, and epoll wakes us for the next. */
static void front_batch(struct http_state *h, int fd) {
        for (unsigned total = 0; total < 64 && h->fd >= 0 && !h->drop;) {
                struct chan_raw raw[CHAN_RECV_BATCH];
                int n = chan_recv_raw_batch(fd, raw, CHAN_RECV_BATCH);

                if (n == -EAGAIN)
                        return;
                if (n == 0) {
                        log_info("the front closed its channel");
                        front_close(h);
                        return;
                }
                if (n < 0) {
                        log_error_errno(n, "Bad message from the front: %m; closing its channel");
                        front_close(h);
                        return;
                }
                for (int i = 0; i < n; i++) {
                        struct front_msg m;
                        uint32_t type = raw[i].type;
                        int r = h->fd < 0 || h->drop ? 0 : front_parse(&raw[i], &m);

                        if (r == 0) {
                                chan_raw_done(&raw[i]);         /* the channel went while we handled the batch */
                                continue;
                        }
                        if (r > 0) {
                                r = dispatch(h, &m);
                                front_msg_done(&m);
                                broker_batch_slice(h->b, total + (unsigned) i + 1);
                        }
                        if (r < 0) {
                                log_error("The front sent a message that breaks the protocol (type %u); closing its channel",
                                          type);
                                front_close(h);
                                for (int k = i + 1; k < n; k++)
                                        chan_raw_done(&raw[k]);
                                return;
                        }
                }
                total += (unsigned) n;
                if (n < CHAN_RECV_BATCH)
                        return;
        }
}

static int on_front(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct http_state *h = userdata;

        broker_cork(h->b);
        front_batch(h, fd);
        broker_uncork(h->b);
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
        free(h->queued);
        free(h);
        b->http = NULL;
}
