/* The control socket (bastionctl): one JSON request per line, one JSON answer per line. Only root and
 * members of admin_group get an answer; the socket's mode keeps others out, SO_PEERCRED checks again. */
#include "config.h"

#include <grp.h>
#include <string.h>
#include <sys/socket.h>

#include "bastiond.h"
#include "chan.h"
#include "log.h"
#include "util.h"

#define MAX_PEER_GROUPS 256

struct control_client {
        struct supervisor *sup;
        int fd;
        sd_event_source *io;
        struct ucred cred;
        gid_t groups[MAX_PEER_GROUPS];
        unsigned n_groups;
        struct linebuf in;
        struct outbuf out;
        uint32_t pending_id;            /* an approvals request waiting for the broker; 0 = none */
        bool closing;                   /* flush, then close */
        struct control_client *next;
};

static void client_free(struct control_client *c) {
        struct supervisor *sup = c->sup;

        for (struct control_client **p = &sup->control_clients; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        sup->n_control_clients--;
        sd_event_source_disable_unref(c->io);
        safe_close(c->fd);
        linebuf_done(&c->in);
        outbuf_done(&c->out);
        free(c);
}

static void client_reply(struct control_client *c, json_t *reply) {
        _cleanup_free_ char *s = reply ? json_dumps(reply, JSON_COMPACT) : NULL;

        json_decref(reply);
        if (!s || outbuf_put(&c->out, s, strlen(s), true) < 0)
                c->closing = true;
}

static json_t *error_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *error_reply(const char *fmt, ...) {
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return json_pack("{s:b, s:s}", "ok", false, "error", msg);
}

/* bastionctl approvals …: the broker decides (it knows roles and requesters); we add who is asking. */
static json_t *forward_approvals(struct control_client *c, json_t *req) {
        struct supervisor *sup = c->sup;
        const char *op = NULL, *id = NULL;
        json_t *groups, *msg;

        if (json_unpack(req, "{s:s, s?s}", "op", &op, "id", &id) < 0 ||
            !(streq(op, "list") || streq(op, "approve") || streq(op, "deny")) || (!streq(op, "list") && !id))
                return error_reply("approvals needs op list, or approve/deny with an id");
        if (!broker_up(sup) || !sup->broker_ready)
                return error_reply("the broker is not running");
        groups = json_array();
        for (unsigned i = 0; i < c->n_groups; i++)
                json_array_append_new(groups, json_integer(c->groups[i]));
        msg = json_pack("{s:s, s:I, s:I, s:o}", "op", op, "uid", (json_int_t) c->cred.uid, "gid",
                        (json_int_t) c->cred.gid, "groups", groups);
        if (msg && id)
                json_object_set_new(msg, "id", json_string(id));
        c->pending_id = ++sup->next_request_id ?: ++sup->next_request_id;
        if (broker_send(sup, CHAN_APPROVALS, c->pending_id, msg, -1) < 0) {
                c->pending_id = 0;
                return error_reply("the broker is not running");
        }
        return NULL;
}

static json_t *control_dispatch(struct control_client *c, const char *line) {
        _cleanup_json_ json_t *req = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
        json_t *cmd = json_object_get(req, "command");

        if (!json_is_object(req) || !json_is_string(cmd))
                return error_reply("expected a JSON object with a \"command\"");
        if (streq(json_string_value(cmd), "status"))
                return supervisor_status_json(c->sup);
        if (streq(json_string_value(cmd), "workers"))
                return supervisor_workers_json(c->sup);
        if (streq(json_string_value(cmd), "reload"))
                return supervisor_reload(c->sup);
        if (streq(json_string_value(cmd), "approvals"))
                return forward_approvals(c, req);
        return error_reply("unknown command \"%s\"", json_string_value(cmd));
}

static void client_update_events(struct control_client *c) {
        (void) sd_event_source_set_io_events(c->io, (c->pending_id ? 0 : EPOLLIN) |
                                                    (outbuf_pending(&c->out) ? EPOLLOUT : 0));
}

/* Handles buffered lines (one at a time while an approvals answer is outstanding), then flushes. */
static void client_process(struct control_client *c) {
        char *line;
        size_t len;
        int r;

        while (!c->pending_id && !c->closing && (r = linebuf_next(&c->in, &line, &len)) != 0) {
                json_t *reply = r < 0 ? error_reply("request longer than %d bytes", BASTION_MAX_CONTROL_LINE)
                                      : control_dispatch(c, line);
                if (reply)
                        client_reply(c, reply);
        }
        r = outbuf_flush(&c->out, c->fd);
        if (r < 0 || (c->closing && !c->pending_id && !outbuf_pending(&c->out))) {
                client_free(c);
                return;
        }
        client_update_events(c);
}

static int on_client(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct control_client *c = userdata;

        if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                ssize_t n = linebuf_fill(&c->in, fd);
                if (n == 0 || (n < 0 && n != -EAGAIN)) {
                        /* The peer is done: answer what it sent, then close. */
                        c->closing = true;
                }
        }
        client_process(c);
        return 0;
}

static bool peer_is_admin(const struct control_client *c, gid_t admin, bool has_admin) {
        if (c->cred.uid == 0)
                return true;
        if (!has_admin)
                return false;
        if (c->cred.gid == admin)
                return true;
        for (unsigned i = 0; i < c->n_groups; i++)
                if (c->groups[i] == admin)
                        return true;
        return false;
}

static int client_identify(struct control_client *c) {
        socklen_t len = sizeof(c->cred);
        socklen_t glen = sizeof(c->groups);

        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) < 0)
                return -errno;
        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, c->groups, &glen) < 0)
                return -errno;          /* ERANGE: more groups than we look at — refused, not guessed */
        c->n_groups = glen / sizeof(gid_t);
        return 0;
}

static void client_refuse(struct control_client *c) {
        const struct bastion_config *cfg = &c->sup->config;
        struct group *g = cfg->has_admin_gid ? getgrgid(cfg->admin_gid) : NULL;
        char who[64];

        if (g)
                snprintf(who, sizeof(who), "group \"%s\"", g->gr_name);
        else
                snprintf(who, sizeof(who), "gid %u", (unsigned) cfg->admin_gid);
        log_notice("control socket: refused uid %u (pid %d): not root%s%s", (unsigned) c->cred.uid, (int) c->cred.pid,
                   cfg->has_admin_gid ? " and not in " : "", cfg->has_admin_gid ? who : "");
        if (cfg->has_admin_gid)
                client_reply(c, error_reply("permission denied: uid %u is not root and not in %s", (unsigned) c->cred.uid, who));
        else
                client_reply(c, error_reply("permission denied: uid %u is not root (no admin_group is configured)",
                                            (unsigned) c->cred.uid));
        c->closing = true;
}

static int on_accept(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct supervisor *sup = userdata;
        struct control_client *c;
        int cfd, r;

        cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd < 0)
                return 0;
        if (sup->n_control_clients >= BASTION_MAX_CONTROL_CLIENTS) {
                log_warning("control socket: %d connections already; refusing another", BASTION_MAX_CONTROL_CLIENTS);
                safe_close(cfd);
                return 0;
        }
        c = calloc(1, sizeof(*c));
        if (!c) {
                safe_close(cfd);
                return log_oom(), 0;
        }
        c->sup = sup;
        c->fd = cfd;
        linebuf_init(&c->in, BASTION_MAX_CONTROL_LINE);
        outbuf_init(&c->out, BASTION_MAX_CONTROL_LINE * 4);
        c->next = sup->control_clients;
        sup->control_clients = c;
        sup->n_control_clients++;
        r = sd_event_add_io(sup->event, &c->io, cfd, EPOLLIN, on_client, c);
        if (r < 0 || (r = client_identify(c)) < 0) {
                log_warning_errno(r, "control socket: cannot serve a connection: %m");
                client_free(c);
                return 0;
        }
        if (!peer_is_admin(c, sup->config.admin_gid, sup->config.has_admin_gid))
                client_refuse(c);
        client_process(c);
        return 0;
}

int control_start(struct supervisor *sup) {
        const struct bastion_config *c = &sup->config;
        int r;

        r = setup_listen_socket(c->control_socket_path, 0660, c->has_admin_gid ? c->admin_gid : 0, &sup->control_fd);
        if (r < 0)
                return r;
        r = sd_event_add_io(sup->event, &sup->control_source, sup->control_fd, EPOLLIN, on_accept, sup);
        if (r < 0)
                return log_error_errno(r, "Cannot watch the control socket: %m");
        return 0;
}

void control_stop(struct supervisor *sup) {
        while (sup->control_clients)
                client_free(sup->control_clients);
        sup->control_source = sd_event_source_disable_unref(sup->control_source);
        sup->control_fd = safe_close(sup->control_fd);
}

void control_approvals_reply(struct supervisor *sup, uint32_t id, json_t *payload) {
        for (struct control_client *c = sup->control_clients; c; c = c->next)
                if (id != 0 && c->pending_id == id) {
                        c->pending_id = 0;
                        client_reply(c, json_incref(payload));
                        client_process(c);
                        return;
                }
        log_debug("approvals answer %u for a client that has gone", id);
}

/* Requests the broker took with it: answered now rather than never. */
void control_broker_gone(struct supervisor *sup) {
        struct control_client *next;

        for (struct control_client *c = sup->control_clients; c; c = next) {
                next = c->next;
                if (c->pending_id) {
                        c->pending_id = 0;
                        client_reply(c, error_reply("the broker exited before answering"));
                        client_process(c);
                }
        }
}
