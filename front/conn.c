/* One client connection: accepted under the global and per-address caps, TLS handshake, bytes in and
 * out, the parser driven over what has arrived, one request at a time (pipelined bytes wait), and the
 * timeouts that cut off slow clients. */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "front.h"
#include "log.h"
#include "util.h"

static uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

/* ---- per-address counts ---- */

static size_t peer_bucket(const struct in6_addr *a) {
        uint32_t h = 2166136261u;

        for (size_t i = 0; i < sizeof(*a); i++)
                h = (h ^ a->s6_addr[i]) * 16777619u;
        return h % FRONT_PEER_BUCKETS;
}

static struct peer *peer_get(struct front *f, const struct in6_addr *a) {
        struct peer **b = &f->peers[peer_bucket(a)];

        for (struct peer *p = *b; p; p = p->next)
                if (memcmp(&p->addr, a, sizeof(*a)) == 0)
                        return p;
        struct peer *p = calloc(1, sizeof(*p));
        if (!p)
                return NULL;
        p->addr = *a;
        p->next = *b;
        *b = p;
        return p;
}

static void peer_put(struct front *f, struct peer *p) {
        if (!p || --p->n > 0)
                return;
        for (struct peer **b = &f->peers[peer_bucket(&p->addr)]; *b; b = &(*b)->next)
                if (*b == p) {
                        *b = p->next;
                        break;
                }
        free(p);
}

/* ---- lookup by id ---- */

struct conn *conn_find(struct front *f, uint64_t id) {
        for (struct conn *c = f->by_id[id % FRONT_CONN_BUCKETS]; c; c = c->bucket_next)
                if (c->id == id)
                        return c;
        return NULL;
}

static void conn_unlink(struct conn *c) {
        struct front *f = c->f;

        for (struct conn **b = &f->by_id[c->id % FRONT_CONN_BUCKETS]; *b; b = &(*b)->bucket_next)
                if (*b == c) {
                        *b = c->bucket_next;
                        break;
                }
        if (c->prev)
                c->prev->next = c->next;
        else
                f->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        f->n_conns--;
}

/* ---- timers ----
 *
 * A connection has a deadline (header, idle, write or linger timeout; 0: none) and, while its TLS is
 * open, a time to release OpenSSL's buffers (FRONT_TLS_IDLE_MS after it was last busy; 0: none). Both
 * move at every step of a request; the one sd-event timer is moved only when it must fire earlier than
 * it is set for. When it fires it does what is due and is set again for what is not: a busy connection
 * costs one wake-up a second instead of three timer updates per request. */

/* free() keeps the pages of released TLS buffers resident (they sit between live blocks, not at the
 * top of the heap); one trim a while after a run of releases hands them back to the kernel. */
static int on_trim(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) malloc_trim(0);
        return 0;
}

static void trim_later(struct front *f) {
        uint64_t when = now_usec() + (uint64_t) FRONT_TLS_IDLE_MS * 1000;
        int enabled = SD_EVENT_OFF;

        if (!f->trim) {
                (void) sd_event_add_time(f->event, &f->trim, CLOCK_MONOTONIC, when,
                                         timer_accuracy_usec((uint64_t) FRONT_TLS_IDLE_MS * 1000), on_trim, f);
                return;
        }
        if (sd_event_source_get_enabled(f->trim, &enabled) >= 0 && enabled != SD_EVENT_OFF)
                return;
        (void) sd_event_source_set_time(f->trim, when);
        (void) sd_event_source_set_enabled(f->trim, SD_EVENT_ONESHOT);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void timer_update(struct conn *c, uint64_t now) {
        uint64_t when = c->deadline;

        if (c->release_at && (!when || c->release_at < when))
                when = c->release_at;
        if (!when || (c->timer_at && c->timer_at <= when))
                return;
        uint64_t accuracy = timer_accuracy_usec(when > now ? when - now : 0);
        if (!c->timer) {
                if (sd_event_add_time(c->f->event, &c->timer, CLOCK_MONOTONIC, when, accuracy, on_timer, c) < 0) {
                        c->timer = NULL;
                        return;
                }
        } else {
                (void) sd_event_source_set_time(c->timer, when);
                (void) sd_event_source_set_time_accuracy(c->timer, accuracy);
                (void) sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        }
        c->timer_at = when;
}

/* Sets the deadline (0: none) and the release time. */
static void conn_schedule(struct conn *c, uint64_t deadline) {
        uint64_t now = now_usec(), release = now + (uint64_t) FRONT_TLS_IDLE_MS * 1000;

        c->deadline = deadline;
        c->release_at = c->use_tls && c->tls.state == TLS_OPEN && (!deadline || deadline > release) ? release : 0;
        timer_update(c, now);
}

static void conn_arm(struct conn *c, unsigned ms) {
        conn_schedule(c, now_usec() + (uint64_t) ms * 1000);
}

static void conn_disarm(struct conn *c) {
        conn_schedule(c, 0);
}

static void conn_timeout(struct conn *c) {
        switch (c->state) {
        case CONN_LINGER:
        case CONN_CLOSING:
                conn_close(c, NULL);
                break;
        case CONN_READ:
                if (c->in_len > 0) {
                        log_info("%s: conn %llu: request not complete within %u ms; closing", c->addr,
                                 (unsigned long long) c->id, c->f->config.http->header_timeout_ms);
                        struct front *f = c->f;
                        uint64_t id = c->id;

                        conn_write_error(c, 408, "request not complete in time", false);
                        if (conn_find(f, id))
                                conn_run(c);
                } else
                        conn_close(c, NULL);
                break;
        default:
                conn_close(c, c->state == CONN_HANDSHAKE ? "TLS handshake not complete in time" :
                           "the client does not read its answer");
        }
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct conn *c = userdata;
        uint64_t now = now_usec();

        c->timer_at = 0;
        if (c->release_at && c->release_at <= now) {
                c->release_at = 0;
                if (tls_conn_release_buffers(&c->tls))
                        trim_later(c->f);
        }
        if (c->deadline && c->deadline <= now) {
                c->deadline = 0;
                conn_timeout(c);        /* may close c, or set a new deadline */
                return 0;
        }
        timer_update(c, now);
        return 0;
}

/* ---- closing ---- */

void conn_close(struct conn *c, const char *why) {
        struct front *f = c->f;

        if (why)
                log_info("%s: conn %llu closed: %s", c->addr, (unsigned long long) c->id, why);
        if (c->state == CONN_BROKER || c->state == CONN_SSE)
                relay_cancel(c);
        c->io = sd_event_source_disable_unref(c->io);
        c->timer = sd_event_source_disable_unref(c->timer);
        if (c->use_tls) {
                tls_conn_shutdown(&c->tls);
                tls_conn_done(&c->tls);
        }
        safe_close(c->fd);
        conn_unlink(c);
        peer_put(f, c->peer);
        outbuf_done(&c->out);
        if (c->in)
                explicit_bzero(c->in, c->in_cap);       /* the requests held bearer tokens */
        free(c->in);
        free(c->origin);
        free(c);
}

void conns_close_all(struct front *f, const char *why) {
        while (f->conns)
                conn_close(f->conns, why);
}

/* ---- accept ---- */

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata);

static void addr_from(const struct sockaddr_storage *sa, struct in6_addr *ret, char *buf, size_t n) {
        if (sa->ss_family == AF_INET) {
                const struct sockaddr_in *s4 = (const struct sockaddr_in *) sa;
                *ret = (struct in6_addr) {};
                ret->s6_addr[10] = ret->s6_addr[11] = 0xff;
                memcpy(&ret->s6_addr[12], &s4->sin_addr, 4);
                inet_ntop(AF_INET, &s4->sin_addr, buf, (socklen_t) n);
        } else if (sa->ss_family == AF_INET6) {
                *ret = ((const struct sockaddr_in6 *) sa)->sin6_addr;
                inet_ntop(AF_INET6, ret, buf, (socklen_t) n);
        } else {
                *ret = (struct in6_addr) {};
                snprintf(buf, n, "local");
        }
}

/* Accepts one connection: 1, 0 when none is waiting, or a negative errno. */
int conn_accept(struct front *f) {
        const struct http_config *h = f->config.http;
        struct sockaddr_storage sa = {};
        socklen_t len = sizeof(sa);
        _cleanup_close_ int fd = -1;
        struct in6_addr a;
        char addr[INET6_ADDRSTRLEN];
        struct peer *p;
        struct conn *c;

        fd = accept4(f->listen_fd, (struct sockaddr *) &sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
                return errno == EAGAIN || errno == EINTR || errno == ECONNABORTED ? 0 : -errno;
        addr_from(&sa, &a, addr, sizeof(addr));
        /* Over a cap the connection is closed at once: nothing is parsed, nothing is held. */
        if (f->n_conns >= h->max_connections) {
                log_warning("%s: connection refused: %u connections open (http.max_connections)", addr, f->n_conns);
                return 1;
        }
        p = peer_get(f, &a);
        if (!p)
                return -ENOMEM;
        if (p->n >= h->max_connections_per_address) {
                log_warning("%s: connection refused: %u connections from this address "
                            "(http.max_connections_per_address)", addr, p->n);
                p->n++;
                peer_put(f, p);
                return 1;
        }
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        p->n++;
        *c = (struct conn) { .f = f, .id = ++f->next_conn_id, .fd = -1, .peer = p, .state = CONN_HANDSHAKE,
                             .want_read = EPOLLIN, .want_write = EPOLLOUT, .may_read = true };
        memcpy(c->addr, addr, sizeof(addr));
        outbuf_init(&c->out, BASTION_HTTP_MAX_OUTPUT);
        c->next = f->conns;
        if (f->conns)
                f->conns->prev = c;
        f->conns = c;
        c->bucket_next = f->by_id[c->id % FRONT_CONN_BUCKETS];
        f->by_id[c->id % FRONT_CONN_BUCKETS] = c;
        f->n_conns++;
        c->fd = TAKE_FD(fd);
        c->use_tls = !h->plain;
        if (!c->use_tls)
                c->state = CONN_READ;
        else if (tls_conn_new(f->tls.ctx, c->fd, &c->tls) < 0) {
                conn_close(c, "cannot set up TLS");
                return 1;
        }
        if (sd_event_add_io(f->event, &c->io, c->fd, EPOLLIN, on_io, c) < 0) {
                conn_close(c, "cannot watch the connection");
                return 1;
        }
        conn_arm(c, h->header_timeout_ms);
        conn_run(c);
        return 1;
}

/* ---- bytes ---- */

/* 1 drained, 0 waiting, negative errno. */
static int conn_flush(struct conn *c, bool *progress) {
        while (c->out.len > 0) {
                const char *p = c->out.buf + c->out.start;
                ssize_t n;

                if (c->use_tls)
                        n = tls_conn_write(&c->tls, p, c->out.len);
                else {
                        n = write(c->fd, p, c->out.len);
                        if (n < 0)
                                n = errno == EINTR || errno == EAGAIN ? -EAGAIN : -errno;
                }
                if (n == -EAGAIN) {
                        c->want_write = c->use_tls ? c->tls.want_events : EPOLLOUT;
                        return 0;
                }
                if (n < 0)
                        return (int) n;
                c->out.start += (size_t) n;
                c->out.len -= (size_t) n;
                *progress = true;
        }
        c->out.start = 0;
        return 1;
}

static size_t conn_max_input(const struct conn *c) {
        return c->f->limits.max_head + c->f->limits.max_body;
}

static bool conn_reading(const struct conn *c) {
        return c->state != CONN_HANDSHAKE && c->state != CONN_CLOSING &&
               (c->state == CONN_LINGER || c->in_len < conn_max_input(c));
}

/* Bytes read (> 0), 0 at EOF, -EAGAIN, or an error. */
static ssize_t conn_read(struct conn *c) {
        size_t room, max = conn_max_input(c);
        ssize_t n;

        if (c->state == CONN_LINGER) {
                /* Drained and dropped, below TLS: our close_notify has been sent. */
                char sink[4096];

                n = read(c->fd, sink, sizeof(sink));
                c->may_read = n == (ssize_t) sizeof(sink);
                return n < 0 ? (errno == EINTR || errno == EAGAIN ? -EAGAIN : -errno) : n;
        }
        if (c->in_cap - c->in_len < FRONT_READ_CHUNK && c->in_cap < max) {
                size_t cap = c->in_cap ? c->in_cap * 2 : FRONT_READ_CHUNK;
                char *p;

                if (cap > max)
                        cap = max;
                /* Requests carry bearer tokens: the old block must not keep a copy. */
                p = realloc_wiped(c->in, c->in_len, c->in_cap, cap);
                if (!p)
                        return -ENOMEM;
                c->in = p;
                c->in_cap = cap;
        }
        room = c->in_cap - c->in_len;
        if (room == 0)
                return -EAGAIN;
        if (c->use_tls) {
                n = tls_conn_read(&c->tls, c->in + c->in_len, room);
                if (n == -EAGAIN)
                        c->want_read = c->tls.want_events;
        } else {
                n = read(c->fd, c->in + c->in_len, room);
                if (n < 0)
                        n = errno == EINTR || errno == EAGAIN ? -EAGAIN : -errno;
                if (n == -EAGAIN)
                        c->want_read = EPOLLIN;
        }
        /* The socket is watched level-triggered: what is left in the kernel after a short read wakes
         * the loop again, so reading on until EAGAIN would cost a read(2) per request for nothing. */
        c->may_read = n > 0 && ((size_t) n == room || (c->use_tls && tls_conn_has_pending(&c->tls)));
        if (n > 0) {
                if (c->in_len == 0 && c->state == CONN_READ)
                        conn_arm(c, c->f->config.http->header_timeout_ms);
                c->in_len += (size_t) n;
        }
        return n;
}

/* ---- writing answers ---- */

void conn_watch_output(struct conn *c) {
        /* A client that leaves an answer unread is given the idle timeout, then cut off. */
        if (c->out.len > 0 && (c->state == CONN_BROKER || c->state == CONN_SSE))
                conn_arm(c, c->f->config.http->idle_timeout_ms);
}

void conn_write_failed(struct conn *c, int r) {
        if (r == -ENOBUFS)
                log_warning("%s: conn %llu: more than %d bytes of answer unread; closing", c->addr,
                            (unsigned long long) c->id, BASTION_HTTP_MAX_OUTPUT);
        else
                log_error_errno(r, "%s: conn %llu: cannot write the answer: %m; closing", c->addr,
                                (unsigned long long) c->id);
        conn_close(c, NULL);
}

static void access_log(struct conn *c, int status) {
        log_info("%s: %s %s %d %llu ms", c->addr, c->method[0] ? c->method : "-", c->path[0] ? c->path : "-", status,
                 (unsigned long long) ((now_usec() - c->started) / 1000));
}

void conn_request_done(struct conn *c, bool keep, int status) {
        access_log(c, status);
        free(c->origin);
        c->origin = NULL;
        if (!keep) {
                c->state = CONN_CLOSING;
                conn_arm(c, c->f->config.http->idle_timeout_ms);
                return;
        }
        memmove(c->in, c->in + c->consumed, c->in_len - c->consumed);
        c->in_len -= c->consumed;
        /* What the answered request leaves behind the kept bytes (its Authorization among them) goes. */
        explicit_bzero(c->in + c->in_len, c->consumed);
        c->consumed = 0;
        c->head_checked = c->continue_sent = false;
        c->method[0] = c->path[0] = '\0';
        c->state = CONN_READ;
        if (c->in_len > 0)
                conn_arm(c, c->f->config.http->header_timeout_ms);
        else
                conn_arm(c, c->f->config.http->idle_timeout_ms);
}

void conn_write_error(struct conn *c, int status, const char *message, bool keep) {
        struct http_header h[4] = { { "Content-Type", "application/json" } };
        _cleanup_free_ char *body = NULL;
        json_t *j;
        size_t n = 1;
        int r;

        j = json_pack("{s:s, s:{s:i, s:s}}", "jsonrpc", "2.0", "error", "code", -32600, "message", message);
        body = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        n += request_cors_headers(c, h + n);
        r = http_write_response(&c->out, status, h, n, body ?: "", body ? strlen(body) : 0, keep);
        if (r < 0)
                return conn_write_failed(c, r);
        c->state = CONN_BROKER;         /* conn_request_done moves on from an answered request */
        conn_request_done(c, keep, status);
}

/* ---- parsing ---- */

/* What fits of src, NUL-terminated (no printf for every request). */
static void copy_truncated(char *dst, size_t size, const char *src) {
        size_t n = strnlen(src, size - 1);

        memcpy(dst, src, n);
        dst[n] = '\0';
}

static void conn_note_request(struct conn *c, const struct http_request *req) {
        copy_truncated(c->method, sizeof(c->method), http_method_to_string(req->method) ?: "");
        copy_truncated(c->path, sizeof(c->path), req->path);
}

/* Drives the parser over what has arrived; forwards a complete request. The head is checked (and
 * 100 Continue sent) as soon as it is complete, before the body is read. */
static void conn_process_head(struct conn *c) {
        struct front *f = c->f;
        struct http_request *req = &f->req;
        int r;

        if (c->in_len == 0)
                return;
        if (!c->started || c->method[0] == '\0')
                c->started = now_usec();
        r = http_parse_request(c->in, c->in_len, &f->limits, req);
        if (r < 0) {
                /* Status codes from the parser: 400, 411, 413, 414, 417, 431, 501, 505. */
                c->method[0] = '\0';
                return conn_write_error(c, -r, http_status_reason(-r), false);
        }
        if (!c->head_checked) {
                if (r == 0 && http_parse_head(c->in, c->in_len, &f->limits, req) <= 0)
                        return;         /* the head is incomplete */
                conn_note_request(c, req);
                if (!request_check_head(c, req))
                        return;
                c->head_checked = true;
                if (r == 0 && req->expect_continue && !c->continue_sent) {
                        c->continue_sent = true;
                        if ((r = http_write_response(&c->out, 100, NULL, 0, NULL, 0, true)) < 0)
                                return conn_write_failed(c, r);
                        return;
                }
        }
        if (r == 0)
                return;                 /* the body is incomplete */
        c->consumed = (size_t) r;
        c->keep_alive = req->keep_alive;
        request_forward(c, req);
}

/* The parser copies the head (Authorization included) into one buffer shared by every connection:
 * nothing of it outlives the request's turn. Only scan_finish() writes there, and it sets head_len. */
static void conn_process(struct conn *c) {
        struct front *f = c->f;         /* c may be gone afterwards (an error answer closes it) */

        conn_process_head(c);
        explicit_bzero(f->req.head, f->req.head_len < sizeof(f->req.head) ? f->req.head_len + 1 : sizeof(f->req.head));
        f->req.head_len = 0;
}

/* ---- the pump ---- */

static void conn_update_events(struct conn *c) {
        uint32_t ev = 0;

        if (c->state == CONN_HANDSHAKE)
                ev = c->tls.want_events ?: EPOLLIN;
        else {
                if (conn_reading(c))
                        ev |= c->want_read ?: EPOLLIN;
                if (c->out.len > 0)
                        ev |= c->want_write ?: EPOLLOUT;
        }
        (void) sd_event_source_set_io_events(c->io, ev);
}

/* The client went away (or the connection broke): a request cut short gets no answer, one with the
 * broker is cancelled (conn_close). */
static void conn_gone(struct conn *c, ssize_t r) {
        if (c->state == CONN_LINGER || (c->state == CONN_READ && c->in_len == 0) || r == 0)
                return conn_close(c, c->state == CONN_BROKER || c->state == CONN_SSE ?
                                  "the client went away before the answer" : NULL);
        conn_close(c, r == -ECONNRESET ? "connection reset" : "connection error");
}

void conn_run(struct conn *c) {
        struct front *f = c->f;
        uint64_t id = c->id;

        for (;;) {
                bool progress = false;
                ssize_t n;
                int r;

                if (c->state == CONN_HANDSHAKE) {
                        r = tls_conn_handshake(&c->tls);
                        if (r == -EAGAIN)
                                break;
                        if (r < 0)
                                return conn_close(c, NULL);
                        c->state = CONN_READ;
                        c->may_read = true;     /* the first request may have come with the handshake */
                        conn_schedule(c, c->deadline);
                        progress = true;
                }
                if (c->out.len > 0) {
                        r = conn_flush(c, &progress);
                        if (r < 0)
                                return conn_close(c, NULL);
                        if (r > 0 && c->state == CONN_CLOSING) {
                                /* Answer written: shut down our side, drain theirs for a moment. */
                                if (c->use_tls)
                                        tls_conn_shutdown(&c->tls);
                                (void) shutdown(c->fd, SHUT_WR);
                                c->state = CONN_LINGER;
                                c->want_read = EPOLLIN;
                                c->may_read = true;
                                conn_arm(c, FRONT_LINGER_MS);
                                progress = true;
                        } else if (r > 0 && (c->state == CONN_BROKER || c->state == CONN_SSE))
                                conn_disarm(c);
                        else if (progress)
                                conn_watch_output(c);
                }
                if (c->may_read && conn_reading(c)) {
                        n = conn_read(c);
                        if (n == 0 || (n < 0 && n != -EAGAIN))
                                return conn_gone(c, n);
                        if (n > 0)
                                progress = true;
                }
                if (c->state == CONN_READ && c->in_len > 0) {
                        conn_process(c);
                        if (!conn_find(f, id))
                                return;
                        if (c->state != CONN_READ) {
                                progress = true;
                                if (c->state == CONN_BROKER)
                                        conn_disarm(c);
                        }
                }
                if (!progress)
                        break;
        }
        conn_update_events(c);
}

static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct conn *c = userdata;

        if ((revents & (EPOLLHUP | EPOLLERR)) && c->state != CONN_READ && c->state != CONN_HANDSHAKE &&
            !conn_reading(c)) {
                conn_close(c, c->state == CONN_BROKER || c->state == CONN_SSE ?
                           "the client went away before the answer" : NULL);
                return 0;
        }
        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR | c->want_read))
                c->may_read = true;
        conn_run(c);
        return 0;
}
