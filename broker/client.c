/* Local client connections: accept, identify by SO_PEERCRED, read the preamble, then MCP lines.
 * HTTP clients (broker/http/) are virtual clients with fd -1: what is sent to them goes to the front. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>

#include "bounds.h"
#include "broker.h"
#include "broker/mcp/tasks.h"
#include "jsonrpc.h"
#include "log.h"
#include "util.h"

static void client_update_events(struct client *c) {
        uint32_t ev = c->closing || c->read_closed ? 0 : EPOLLIN;

        if (outbuf_pending(&c->out))
                ev |= EPOLLOUT;
        (void) sd_event_source_set_io_events(c->io, ev);
}

void client_free(struct client *c) {
        struct broker *b = c->b;

        upstream_client_gone(b, c);
        tasks_client_gone(b, c);
        confirm_client_gone(b, c);
        if (c->http)
                http_client_gone(c);
        json_decref(c->client_caps);
        json_decref(c->subscriptions);
        for (struct client **p = &b->clients; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        /* Only accepted connections count (a task's own client has no fd). */
        if (!c->http && c->fd >= 0)
                b->n_clients--;
        sd_event_source_disable_unref(c->io);
        safe_close(c->fd);
        linebuf_done(&c->in);
        outbuf_done(&c->out);
        free(c);
        broker_maybe_finish_stop(b);
}

static void client_write_raw(struct client *c, const char *s, size_t n) {
        if (outbuf_put(&c->out, s, n, false) < 0) {
                log_warning("client %s: not reading its replies; dropped", c->principal.sub);
                c->closing = true;
                c->out.len = 0;
        }
}

void client_send(struct client *c, json_t *msg) {
        _cleanup_free_ char *alloc = NULL;
        char buf[4096];
        const char *s;
        size_t n = 0;

        if (!msg)
                return (void) log_oom();
        if (c->http)
                return http_client_send(c, msg, NULL);
        if (c->task)
                return tasks_runner_send(c, msg);
        s = json_dump_buf(msg, JSON_COMPACT, buf, sizeof(buf), &alloc, &n);
        json_decref(msg);
        if (!s || c->closing)
                return;
        if (outbuf_put(&c->out, s, n, true) < 0) {
                log_warning("client %s: not reading its replies; dropped", c->principal.sub);
                c->closing = true;
                c->out.len = 0;
        }
        client_update_events(c);
}

void client_send_related(struct client *c, json_t *msg, const json_t *related_id) {
        if (c->http && msg)
                return http_client_send(c, msg, related_id);
        client_send(c, msg);
}

/* The preamble names the server; the answer is one line. Refusals name their reason. */
static void client_preamble(struct client *c, const char *line) {
        const struct bastion_config *cfg = &c->b->config;
        const char *name;
        char buf[BASTION_MAX_PREAMBLE];

        if (strncmp(line, "server ", 7) != 0) {
                snprintf(buf, sizeof(buf), "error expected \"server NAME\" as the first line\n");
                goto refuse;
        }
        name = line + 7;
        if (strlen(name) > BASTION_MAX_NAME || !config_find_server(cfg, name)) {
                snprintf(buf, sizeof(buf), "error unknown server \"%.*s\"\n", BASTION_MAX_NAME, name);
                goto refuse;
        }
        if (!principal_lookup(cfg, &c->principal)) {
                snprintf(buf, sizeof(buf), "error %.32s is not mapped to a role in %.160s\n", c->principal.sub,
                         cfg->path);
                goto refuse;
        }
        strcpy(c->server, name);
        c->have_preamble = true;
        client_write_raw(c, "ok\n", 3);
        log_info("client %s connected to %s", c->principal.sub, c->server);
        return;
refuse:
        log_notice("client %s refused: %.*s", c->principal.sub, (int) strcspn(buf + 6, "\n"), buf + 6);
        client_write_raw(c, buf, strlen(buf));
        c->closing = true;
}

static void client_read(struct client *c) {
        for (;;) {
                char *line;
                size_t len;
                int r = linebuf_next(&c->in, &line, &len);

                if (r == 0 || c->closing)
                        return;
                if (r == -E2BIG) {
                        if (!c->have_preamble) {
                                c->closing = true;
                                return;
                        }
                        client_send(c, jsonrpc_error(NULL, JSONRPC_INVALID_REQUEST,
                                                     "Invalid Request: message exceeds the line limit", NULL));
                        continue;
                }
                if (r < 0) {
                        log_oom();
                        c->closing = true;
                        return;
                }
                if (!c->have_preamble)
                        client_preamble(c, line);
                else
                        mcp_handle_line(c, line, len);
        }
}

static int on_client(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct client *c = userdata;
        int r;

        if ((revents & EPOLLIN) && !c->read_closed) {
                ssize_t n = linebuf_fill(&c->in, fd);
                if (n < 0 && n != -EAGAIN) {
                        client_free(c);
                        return 0;
                }
                /* EOF is a half-close: what is in flight is still answered, then the connection ends. */
                if (n == 0)
                        c->read_closed = true;
                /* The lines of one read are one batch (broker_cork()); answers go out below, after it. */
                broker_cork(c->b);
                client_read(c);
                broker_uncork(c->b);
        }
        if ((revents & (EPOLLHUP | EPOLLERR)) && !(revents & EPOLLIN)) {
                /* The peer is gone both ways: its calls are cancelled at the workers. */
                client_free(c);
                return 0;
        }
        if (outbuf_pending(&c->out)) {
                r = outbuf_flush(&c->out, fd);
                if (r < 0) {
                        client_free(c);
                        return 0;
                }
                if (c->b->stopping && !outbuf_pending(&c->out))
                        broker_maybe_finish_stop(c->b);
        }
        if ((c->closing || (c->read_closed && c->inflight == 0)) && !outbuf_pending(&c->out)) {
                client_free(c);
                return 0;
        }
        client_update_events(c);
        return 0;
}

int client_accept(struct broker *b) {
        _cleanup_close_ int fd = -1;
        struct client *c;
        int r;

        fd = accept4(b->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
                if (errno != EAGAIN && errno != EINTR)
                        log_warning_errno(errno, "accept failed: %m");
                return 0;
        }
        if (b->n_clients >= BASTION_MAX_CLIENTS || !b->have_config) {
                log_warning("refusing a connection: %s", b->have_config ? "too many clients" : "not configured yet");
                return 1;
        }
        c = calloc(1, sizeof(*c));
        if (!c)
                return log_oom(), 1;
        c->b = b;
        linebuf_init(&c->in, BASTION_MAX_LINE);
        outbuf_init(&c->out, BASTION_MAX_CLIENT_BACKLOG);
        r = principal_from_socket(fd, &c->principal);
        if (r < 0) {
                log_warning_errno(r, "Cannot identify a local peer: %m");
                free(c);
                return 1;
        }
        r = sd_event_add_io(b->event, &c->io, fd, EPOLLIN, on_client, c);
        if (r < 0) {
                log_error_errno(r, "Failed to watch a client: %m");
                free(c);
                return 1;
        }
        c->fd = TAKE_FD(fd);
        c->next = b->clients;
        b->clients = c;
        b->n_clients++;
        return 1;
}

void clients_drop_server(struct broker *b, const char *server) {
        for (struct client *c = b->clients, *n; c; c = n) {
                n = c->next;
                if (c->have_preamble && streq(c->server, server)) {
                        log_info("client %s: server %s was removed from the configuration", c->principal.sub, server);
                        client_free(c);
                }
        }
}
