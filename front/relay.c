/* The broker channel (lib/front_proto.h): FRONT_REQUEST and FRONT_CANCEL out, queued while the channel
 * is full; FRONT_RESPONSE and the SSE messages back, each checked against the connection and request it
 * names. An answer for a connection that is gone is dropped; a malformed message ends the front (the
 * supervisor starts a new one with a new channel). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "front.h"
#include "front_proto.h"
#include "log.h"
#include "util.h"

static void relay_update_events(struct front *f) {
        (void) sd_event_source_set_io_events(f->broker_io, EPOLLIN | (f->queue_head ? EPOLLOUT : 0));
}

/* Sends what is queued; 0 when the channel is full again, negative errno on a broken channel. */
static int relay_flush(struct front *f) {
        while (f->queue_head) {
                struct relay_msg *m = f->queue_head;
                int r = chan_send_raw(f->broker_fd, m->type, 0, m->out.buf, m->out.len, NULL, 0);

                if (r == -EAGAIN)
                        return 0;
                if (r < 0)
                        return r;
                f->queue_head = m->next;
                if (!f->queue_head)
                        f->queue_tail = NULL;
                front_out_done(&m->out);
                free(m);
        }
        return 1;
}

int relay_send(struct front *f, uint32_t type, struct front_out *o) {
        struct relay_msg *m;
        int r = front_out_finish(o);

        if (r < 0) {
                front_out_done(o);
                return r;
        }
        if (!f->queue_head) {
                r = chan_send_raw(f->broker_fd, type, 0, o->buf, o->len, NULL, 0);
                if (r != -EAGAIN) {
                        front_out_done(o);
                        if (r < 0 && r != -EMSGSIZE) {
                                log_error_errno(r, "Cannot send to the broker: %m");
                                front_exit(f, 1);
                        }
                        return r;
                }
        }
        m = malloc(sizeof(*m));
        if (!m) {
                front_out_done(o);
                return -ENOMEM;
        }
        *m = (struct relay_msg) { .type = type, .out = *o };
        *o = (struct front_out) {};
        if (f->queue_tail)
                f->queue_tail->next = m;
        else
                f->queue_head = m;
        f->queue_tail = m;
        relay_update_events(f);
        return 0;
}

void relay_cancel(struct conn *c) {
        struct front_out o;

        if (c->f->exiting)
                return;
        front_out_init(&o, &(struct front_wire) { .conn = c->id, .stream = c->stream });
        (void) relay_send(c->f, FRONT_CANCEL, &o);
}

/* Name/value string pairs from `first` on into h (at most max). */
static int parse_headers(const struct front_msg *m, unsigned first, struct http_header *h, size_t max, size_t *ret_n) {
        size_t n;

        if (first > m->n || (m->n - first) % 2 != 0 || (n = (m->n - first) / 2) > max)
                return -EBADMSG;
        for (size_t i = 0; i < n; i++)
                h[i] = (struct http_header) { m->str[first + 2 * i].s, m->str[first + 2 * i + 1].s };
        *ret_n = n;
        return 0;
}

/* The broker's answer is written as is; a header it may not send (framing, splitting) closes the
 * connection rather than going out. */
static int on_response(struct conn *c, const struct front_msg *m, bool sse) {
        struct http_header h[HTTP_MAX_HEADERS + 3];
        unsigned status = m->w.status;
        bool close = m->w.flags & FRONT_FLAG_CLOSE;
        size_t n;
        int r;

        /* conn and stream were matched by target(); here only the shape is checked. */
        if (status < 200 || status > 599 || m->w.method || m->w.retry || (m->w.flags & ~(sse ? 0 : FRONT_FLAG_CLOSE)) ||
            (!sse && m->n < 1) || parse_headers(m, sse ? 0 : 1, h, HTTP_MAX_HEADERS, &n) < 0)
                return -EBADMSG;
        if (!c)
                return 0;
        n += request_cors_headers(c, h + n);
        if (sse) {
                r = http_write_sse_head(&c->out, (int) status, h, n, c->keep_alive);
                if (r < 0)
                        return conn_write_failed(c, r), 0;
                c->state = CONN_SSE;
                c->sse_status = (int) status;
                conn_watch_output(c);
        } else {
                r = http_write_response(&c->out, (int) status, h, n, m->str[0].s, m->str[0].len,
                                        c->keep_alive && !close);
                if (r < 0)
                        return conn_write_failed(c, r), 0;
                conn_request_done(c, c->keep_alive && !close, (int) status);
        }
        conn_run(c);
        return 0;
}

static int on_sse_event(struct front *f, struct conn *c, const struct front_msg *m) {
        bool has_id = m->w.flags & FRONT_FLAG_ID, has_event = m->w.flags & FRONT_FLAG_EVENT;
        const char *id = has_id ? m->str[1].s : NULL, *event = has_event ? m->str[1 + has_id].s : NULL;
        int r;

        if (m->n != 1u + has_id + has_event || (m->w.flags & ~(FRONT_FLAG_ID | FRONT_FLAG_EVENT)) || m->w.method ||
            m->w.status || m->w.retry < -1 || m->w.retry > UINT32_MAX)
                return -EBADMSG;
        if (!c)
                return 0;
        f->scratch.start = f->scratch.len = 0;
        r = m->w.retry >= 0 ? sse_format_retry(&f->scratch, (unsigned) m->w.retry) : 0;
        if (r >= 0)
                r = sse_format_event(&f->scratch, event, id, m->str[0].s, m->str[0].len);
        if (r >= 0)
                r = http_write_chunk(&c->out, f->scratch.buf + f->scratch.start, f->scratch.len);
        if (r < 0)
                return conn_write_failed(c, r), 0;
        conn_watch_output(c);
        conn_run(c);
        return 0;
}

static int on_sse_end(struct conn *c, const struct front_msg *m) {
        int r;

        if (m->n != 0 || m->w.flags || m->w.method || m->w.status || m->w.retry)
                return -EBADMSG;
        if (!c)
                return 0;
        r = http_write_chunk_end(&c->out);
        if (r < 0)
                return conn_write_failed(c, r), 0;
        conn_request_done(c, c->keep_alive, c->sse_status);
        conn_run(c);
        return 0;
}

/* The connection a message is for, when it still waits for exactly this: the request in flight, in
 * the state this message type belongs to. NULL otherwise (gone, cancelled): the message is dropped. */
static struct conn *target(struct front *f, const struct front_msg *m) {
        struct conn *c = conn_find(f, m->w.conn);

        if (!c || c->stream != m->w.stream)
                return NULL;
        if (m->type == FRONT_RESPONSE || m->type == FRONT_SSE_START)
                return c->state == CONN_BROKER ? c : NULL;
        return c->state == CONN_SSE ? c : NULL;
}

static int relay_dispatch(struct front *f, const struct front_msg *m) {
        struct conn *c = target(f, m);

        switch (m->type) {
        case FRONT_RESPONSE:
                return on_response(c, m, false);
        case FRONT_SSE_START:
                return on_response(c, m, true);
        case FRONT_SSE_EVENT:
                return on_sse_event(f, c, m);
        case FRONT_SSE_END:
                return on_sse_end(c, m);
        }
        return -EBADMSG;
}

static int on_broker(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct front *f = userdata;
        int r;

        if (revents & EPOLLOUT) {
                r = relay_flush(f);
                if (r < 0) {
                        log_error_errno(r, "Cannot send to the broker: %m");
                        return front_exit(f, 1), 0;
                }
                relay_update_events(f);
        }
        /* A bounded batch per wake-up keeps the loop fair to the clients; CHAN_RECV_BATCH messages per
         * recvmmsg, and a short batch means the channel is empty. */
        for (unsigned total = 0; total < 64 && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR));) {
                struct chan_raw raw[CHAN_RECV_BATCH];
                int n = chan_recv_raw_batch(fd, raw, CHAN_RECV_BATCH);

                if (n == -EAGAIN)
                        break;
                if (n == 0 || n == -ECONNRESET) {
                        log_error("The broker closed its channel; closing every connection and exiting");
                        return front_exit(f, 1), 0;
                }
                if (n < 0) {
                        log_error_errno(n, "Bad message from the broker: %m");
                        return front_exit(f, 1), 0;
                }
                for (int i = 0; i < n; i++) {
                        uint32_t type = raw[i].type;
                        struct front_msg m;

                        r = front_parse(&raw[i], &m);
                        if (r > 0) {
                                r = relay_dispatch(f, &m);
                                front_msg_done(&m);
                        }
                        if (r < 0) {
                                log_error("Malformed message of type %u from the broker; exiting", type);
                                for (int k = i + 1; k < n; k++)
                                        chan_raw_done(&raw[k]);
                                return front_exit(f, 1), 0;
                        }
                }
                total += (unsigned) n;
                if (n < CHAN_RECV_BATCH)
                        break;
        }
        return 0;
}

int relay_start(struct front *f, int fd) {
        int r;

        f->broker_fd = fd;
        r = sd_event_add_io(f->event, &f->broker_io, fd, EPOLLIN, on_broker, f);
        if (r < 0)
                return log_error_errno(r, "Cannot watch the broker channel: %m");
        return 0;
}
