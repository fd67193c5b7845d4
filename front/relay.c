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
                int r = chan_send(f->broker_fd, m->type, 0, m->payload, NULL, 0);

                if (r == -EAGAIN)
                        return 0;
                if (r < 0)
                        return r;
                f->queue_head = m->next;
                if (!f->queue_head)
                        f->queue_tail = NULL;
                json_decref(m->payload);
                free(m);
        }
        return 1;
}

int relay_send(struct front *f, uint32_t type, json_t *payload) {
        struct relay_msg *m;
        int r;

        if (!f->queue_head) {
                r = chan_send(f->broker_fd, type, 0, payload, NULL, 0);
                if (r != -EAGAIN) {
                        json_decref(payload);
                        if (r < 0 && r != -EMSGSIZE) {
                                log_error_errno(r, "Cannot send to the broker: %m");
                                front_exit(f, 1);
                        }
                        return r;
                }
        }
        m = malloc(sizeof(*m));
        if (!m) {
                json_decref(payload);
                return -ENOMEM;
        }
        *m = (struct relay_msg) { .type = type, .payload = payload };
        if (f->queue_tail)
                f->queue_tail->next = m;
        else
                f->queue_head = m;
        f->queue_tail = m;
        relay_update_events(f);
        return 0;
}

void relay_cancel(struct conn *c) {
        if (c->f->exiting)
                return;
        (void) relay_send(c->f, FRONT_CANCEL, json_pack("{s:I, s:I}", "conn", (json_int_t) c->id,
                                                        "stream", (json_int_t) c->stream));
}

/* [[name, value], ...] into h (at most max); -EBADMSG when it is not that shape. */
static int parse_headers(json_t *a, struct http_header *h, size_t max, size_t *ret_n) {
        size_t i;
        json_t *v;

        if (!json_is_array(a) || json_array_size(a) > max)
                return -EBADMSG;
        json_array_foreach(a, i, v) {
                if (!json_is_array(v) || json_array_size(v) != 2 || !json_is_string(json_array_get(v, 0)) ||
                    !json_is_string(json_array_get(v, 1)))
                        return -EBADMSG;
                h[i] = (struct http_header) { json_string_value(json_array_get(v, 0)),
                                              json_string_value(json_array_get(v, 1)) };
        }
        *ret_n = i;
        return 0;
}

/* The broker's answer is written as is; a header it may not send (framing, splitting) closes the
 * connection rather than going out. */
static int on_response(struct conn *c, json_t *p, bool sse) {
        struct http_header h[HTTP_MAX_HEADERS + 3];
        json_int_t conn, stream, status;
        json_t *headers;
        const char *body = NULL;
        size_t n, body_len = 0;
        int close = 0, r;

        /* conn and stream were matched by target(); here only the shape is checked. */
        if (sse ? json_unpack(p, "{s:I, s:I, s:I, s:o !}", "conn", &conn, "stream", &stream, "status", &status,
                              "headers", &headers) < 0 :
                  json_unpack(p, "{s:I, s:I, s:I, s:o, s:s%, s?b !}", "conn", &conn, "stream", &stream, "status",
                              &status, "headers", &headers, "body", &body, &body_len, "close", &close) < 0)
                return -EBADMSG;
        if (status < 200 || status > 599 || parse_headers(headers, h, HTTP_MAX_HEADERS, &n) < 0)
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
                r = http_write_response(&c->out, (int) status, h, n, body, body_len, c->keep_alive && !close);
                if (r < 0)
                        return conn_write_failed(c, r), 0;
                conn_request_done(c, c->keep_alive && !close, (int) status);
        }
        conn_run(c);
        return 0;
}

static int on_sse_event(struct front *f, struct conn *c, json_t *p) {
        const char *data, *id = NULL, *event = NULL;
        json_int_t conn, stream, retry = -1;
        size_t data_len;
        int r;

        if (json_unpack(p, "{s:I, s:I, s:s%, s?s, s?s, s?I !}", "conn", &conn, "stream", &stream, "data", &data, &data_len,
                        "id", &id, "event", &event, "retry", &retry) < 0 || retry < -1 || retry > UINT32_MAX)
                return -EBADMSG;
        if (!c)
                return 0;
        f->scratch.start = f->scratch.len = 0;
        r = retry >= 0 ? sse_format_retry(&f->scratch, (unsigned) retry) : 0;
        if (r >= 0)
                r = sse_format_event(&f->scratch, event, id, data, data_len);
        if (r >= 0)
                r = http_write_chunk(&c->out, f->scratch.buf + f->scratch.start, f->scratch.len);
        if (r < 0)
                return conn_write_failed(c, r), 0;
        conn_watch_output(c);
        conn_run(c);
        return 0;
}

static int on_sse_end(struct conn *c, json_t *p) {
        json_int_t conn, stream;
        int r;

        if (json_unpack(p, "{s:I, s:I !}", "conn", &conn, "stream", &stream) < 0)
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
static struct conn *target(struct front *f, json_t *p, uint32_t type) {
        json_t *jc = json_object_get(p, "conn"), *js = json_object_get(p, "stream");
        struct conn *c;

        if (!json_is_integer(jc) || !json_is_integer(js))
                return NULL;
        c = conn_find(f, (uint64_t) json_integer_value(jc));
        if (!c || c->stream != (uint64_t) json_integer_value(js))
                return NULL;
        if (type == FRONT_RESPONSE || type == FRONT_SSE_START)
                return c->state == CONN_BROKER ? c : NULL;
        return c->state == CONN_SSE ? c : NULL;
}

static int relay_dispatch(struct front *f, struct chan_msg *m) {
        struct conn *c;

        if (m->n_fds > 0)
                return -EBADMSG;
        c = target(f, m->payload, m->type);
        switch (m->type) {
        case FRONT_RESPONSE:
                return on_response(c, m->payload, false);
        case FRONT_SSE_START:
                return on_response(c, m->payload, true);
        case FRONT_SSE_EVENT:
                return on_sse_event(f, c, m->payload);
        case FRONT_SSE_END:
                return on_sse_end(c, m->payload);
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
        /* A bounded batch per wake-up keeps the loop fair to the clients. */
        for (unsigned i = 0; i < 64 && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)); i++) {
                struct chan_msg m;

                r = chan_recv(fd, &m);
                if (r == -EAGAIN)
                        break;
                if (r == 0 || r == -ECONNRESET) {
                        log_error("The broker closed its channel; closing every connection and exiting");
                        return front_exit(f, 1), 0;
                }
                if (r < 0) {
                        log_error_errno(r, "Bad message from the broker: %m");
                        return front_exit(f, 1), 0;
                }
                r = relay_dispatch(f, &m);
                if (r < 0)
                        log_error("Malformed message of type %u from the broker; exiting", m.type);
                chan_msg_done(&m);
                if (r < 0)
                        return front_exit(f, 1), 0;
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
