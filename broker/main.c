/* bastion-broker entry point and the supervisor channel dispatcher. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <sodium.h>

#include "broker.h"
#include "broker/audit/audit.h"
#include "json_alloc.h"
#include "broker/secrets/store.h"
#include "chan.h"
#include "log.h"
#include "sandbox.h"
#include "util.h"

#define SUPERVISOR_FD 3

int broker_send_supervisor(struct broker *b, uint32_t type, json_t *payload) {
        int r = chan_send(b->sup_fd, type, 0, payload, NULL, 0);

        json_decref(payload);
        if (r < 0)
                log_error_errno(r, "Failed to send message %u to the supervisor: %m", type);
        return r;
}

static void broker_maybe_ready(struct broker *b) {
        if (b->ready_sent || !b->have_config || b->listen_fd < 0)
                return;
        if (broker_send_supervisor(b, CHAN_READY, json_object()) >= 0)
                b->ready_sent = true;
        log_info("ready: %zu server(s) configured, listening", b->config.n_servers);
}

static int on_listen(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct broker *b = userdata;

        /* Accept everything queued; client_accept logs and survives per-connection failures. */
        while (client_accept(b) > 0)
                ;
        return 0;
}

static int apply_config(struct broker *b, json_t *payload) {
        struct bastion_config next;
        int r;

        r = config_from_json(payload, &next);
        if (r < 0)
                return log_error_errno(r, "Supervisor sent a configuration that does not parse: %m");

        /* Workers of servers that are gone: fail their calls, forget them, drop their clients. */
        for (struct upstream *u = b->upstreams, *n; u; u = n) {
                n = u->next;
                if (!config_find_server(&next, u->name)) {
                        clients_drop_server(b, u->name);
                        upstream_remove(u, "removed from the configuration");
                }
        }
        for (size_t i = 0; i < next.n_servers; i++)
                if (!upstream_ensure(b, next.servers[i].name))
                        return log_oom();
        config_free(&b->config);
        b->config = next;
        if (!b->have_config) {
                b->have_config = true;
                log_info("configuration %s applied", b->config.path);
                /* Secrets and the audit log are opened once, with the first configuration. */
                r = record_open(b);
                if (r < 0)
                        return r;
                /* From here on nothing is opened but the next audit file (docs/sandbox.md). A failure
                 * ends the broker with status 1 (on_supervisor): it is half confined. */
                r = sandbox_lockdown(&(struct sandbox_lockdown) {
                        .role = SANDBOX_ROLE_BROKER,
                        .append_dir = b->config.audit_dir ?: AUDIT_DEFAULT_DIR,
                });
                if (r < 0)
                        return r;
                /* Confined now: the audit log's sync thread may start (it inherits the confinement). */
                if (b->audit)
                        (void) audit_sync_in_background(b->audit);
                return 0;
        }
        log_info("configuration %s reloaded", b->config.path);
        record_reload(b, true, NULL);
        return 0;
}

static int set_listener(struct broker *b, int fd) {
        int r;

        if (b->listen_fd >= 0) {
                safe_close(fd);
                return log_error_errno(EEXIST, "Supervisor sent a second listener");
        }
        r = fcntl(fd, F_SETFL, O_NONBLOCK);
        if (r < 0) {
                safe_close(fd);
                return log_error_errno(errno, "Failed to make the listener non-blocking: %m");
        }
        b->listen_fd = fd;
        r = sd_event_add_io(b->event, &b->listen_io, fd, EPOLLIN, on_listen, b);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the listener: %m");
        return 0;
}

static int worker_up(struct broker *b, struct chan_msg *m) {
        const char *name;
        json_int_t generation;
        struct upstream *u;
        int fd;

        if (json_unpack(m->payload, "{s:s, s:I}", "server", &name, "generation", &generation) < 0)
                return -EBADMSG;
        fd = chan_msg_take_fd(m, 0);
        if (fd < 0)
                return fd;
        u = upstream_get(b, name);
        if (!u) {
                safe_close(fd);
                log_warning("Supervisor announced worker %s, which is not configured; ignored", name);
                return 0;
        }
        upstream_attach(u, fd, generation);
        record_worker(b, true, name, generation, NULL);
        return 0;
}

static int worker_down(struct broker *b, struct chan_msg *m) {
        const char *name, *reason = "worker exited";
        json_int_t generation = -1;
        int failed = 0;
        struct upstream *u;

        if (json_unpack(m->payload, "{s:s, s?I, s?s, s?b}", "server", &name, "generation", &generation,
                        "reason", &reason, "failed", &failed) < 0)
                return -EBADMSG;
        u = upstream_get(b, name);
        /* A late word about an older generation must not take down its successor. */
        if (u && !(u->fd >= 0 && generation >= 0 && (uint64_t) generation != u->generation)) {
                upstream_down(u, reason, failed);
                record_worker(b, false, name, generation < 0 ? 0 : generation, reason);
        }
        return 0;
}

void broker_maybe_finish_stop(struct broker *b) {
        static bool done;

        /* Calls finishing in the loop's last iteration may each get here: STOPPED goes once. */
        /* Corked, the last answers and their records are still held: broker_uncork() comes back here. */
        if (!b->stopping || done || b->corked || broker_calls_in_flight(b) > 0)
                return;
        /* A finished call is only finished once its answer has left: flush what we can now, and come back
         * from the client's write handler for the rest (the supervisor's stop deadline bounds the wait). */
        for (struct client *c = b->clients; c; c = c->next)
                if (c->fd >= 0 && outbuf_pending(&c->out) && outbuf_flush(&c->out, c->fd) >= 0 &&
                    outbuf_pending(&c->out))
                        return;
        done = true;
        log_info("no calls in flight; stopping");
        broker_send_supervisor(b, CHAN_STOPPED, json_object());
        sd_event_exit(b->event, 0);
}

static int begin_stop(struct broker *b) {
        b->stopping = true;
        /* Stop accepting; established clients may finish the calls they have in flight. */
        b->listen_io = sd_event_source_disable_unref(b->listen_io);
        b->listen_fd = safe_close(b->listen_fd);
        log_info("stop requested; %u call(s) in flight", broker_calls_in_flight(b));
        broker_maybe_finish_stop(b);
        return 0;
}

/* The supervisor is more privileged than we are, but its messages are still checked: a type we do
 * not expect, or one with the wrong number of fds, ends the broker (the supervisor restarts it). */
static int dispatch_supervisor(struct broker *b, struct chan_msg *m) {
        static const struct {
                uint32_t type;
                unsigned n_fds;
        } expected[] = {
                { CHAN_CONFIG, 0 }, { CHAN_LISTENER, 1 }, { CHAN_WORKER_UP, 1 },
                { CHAN_WORKER_DOWN, 0 }, { CHAN_STOP, 0 }, { CHAN_APPROVALS, 0 }, { CHAN_CREDENTIAL_REQ, 0 },
                { CHAN_FRONT, 1 }, { CHAN_JWKS, 0 }, { CHAN_SECRET_FILE, 0 }, { CHAN_SECRET_FILE, 1 },
        };
        bool known = false;
        json_t *reply;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(expected); i++)
                if (expected[i].type == m->type && expected[i].n_fds == m->n_fds)
                        known = true;
        if (!known)
                return -EBADMSG;

        switch (m->type) {
        case CHAN_CONFIG:
                return apply_config(b, m->payload);
        case CHAN_SECRET_FILE:
                /* Only before the first configuration: after it the broker reads no file. */
                return b->have_config ? -EBADMSG : record_secret_file(b, m);
        case CHAN_LISTENER:
                return set_listener(b, chan_msg_take_fd(m, 0));
        case CHAN_WORKER_UP:
                return worker_up(b, m);
        case CHAN_WORKER_DOWN:
                return worker_down(b, m);
        case CHAN_STOP:
                return begin_stop(b);
        case CHAN_CREDENTIAL_REQ:
                return record_credential_request(b, m->id, m->payload);
        case CHAN_FRONT:
                return http_front_attach(b, chan_msg_take_fd(m, 0));
        case CHAN_JWKS:
                return http_jwks_update(b, m->payload);
        case CHAN_APPROVALS:
                /* A reply that cannot be sent is that request's failure, not the broker's. */
                r = chan_send(b->sup_fd, CHAN_APPROVALS_REPLY, m->id, reply = approvals_command(b, m->payload), NULL, 0);
                json_decref(reply);
                if (r < 0) {
                        log_warning_errno(r, "Cannot send the approvals reply to the supervisor: %m");
                        reply = json_pack("{s:b, s:s}", "ok", 0, "error", "the broker could not send its answer");
                        (void) chan_send(b->sup_fd, CHAN_APPROVALS_REPLY, m->id, reply, NULL, 0);
                        json_decref(reply);
                }
                return 0;
        }
        return -EBADMSG;
}

static int on_supervisor(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct broker *b = userdata;
        struct chan_msg m;
        int r;

        r = chan_recv(fd, &m);
        if (r == -EAGAIN)
                return 0;
        if (r == 0) {
                log_info("supervisor closed the channel; exiting");
                return sd_event_exit(b->event, 0);
        }
        if (r < 0) {
                log_error_errno(r, "Bad message from the supervisor: %m");
                return sd_event_exit(b->event, 1);
        }
        r = dispatch_supervisor(b, &m);
        chan_msg_done(&m);
        if (r < 0) {
                log_error_errno(r, "Cannot act on supervisor message: %m");
                return sd_event_exit(b->event, 1);
        }
        broker_maybe_ready(b);
        return 0;
}

static void broker_done(struct broker *b) {
        while (b->clients)
                client_free(b->clients);
        while (b->upstreams)
                upstream_remove(b->upstreams, "the broker is stopping");
        http_done(b);
        sd_event_source_disable_unref(b->listen_io);
        sd_event_source_disable_unref(b->sup_io);
        safe_close(b->listen_fd);
        record_close(b);
        config_free(&b->config);
        sd_event_unref(b->event);
}

int main(int argc, char **argv) {
        struct broker b = { .sup_fd = SUPERVISOR_FD, .listen_fd = -1 };
        int r;

        log_open("broker");
        if (argc >= 3 && argc <= 4 && streq(argv[1], "--first-start")) {
                /* bastiond starts this as uid 0 without capabilities when there is no store yet; the
                 * broker proper then gets the files as fds (docs/sandbox.md). */
                umask(0077);
                if (sodium_init() < 0)
                        return log_error("libsodium failed to initialise"), 1;
                if (secrets_harden_process() < 0)
                        return 1;
                return record_first_start(argv[2], argc == 4 ? argv[3] : NULL) < 0 ? 1 : 0;
        }
        if (argc > 1) {
                fprintf(stderr, "bastion-broker is started by bastiond(8), with its channel at fd 3; it takes no arguments\n"
                        "(bastiond also runs `bastion-broker --first-start STORE [KEY_FILE]` once on a fresh host,\n"
                        "see bastiond(8); `bastionctl secrets init` does the same by hand).\n");
                return 2;
        }
        if (fcntl(SUPERVISOR_FD, F_GETFD) < 0) {
                log_error("fd 3 is not open: bastion-broker must be started by bastiond");
                return 2;
        }
        (void) signal(SIGPIPE, SIG_IGN);
        /* A file-size limit (LimitFSIZE=) reached by the audit log is a failed write (EFBIG): the log
         * fails closed with its reason, instead of a SIGXFSZ killing the broker at every restart. */
        (void) signal(SIGXFSZ, SIG_IGN);
        /* jansson's small blocks are kept for the next message (lib/json_alloc.c). */
        json_alloc_install();
        /* Libraries that open files lazily are initialised now, before any lock-down. */
        json_object_seed(0);
        if (sodium_init() < 0)
                return log_error("libsodium failed to initialise"), 1;
        r = confirm_init();
        if (r < 0)
                return log_error_errno(r, "Failed to create the confirmation key: %m"), 1;

        r = sd_event_new(&b.event);
        if (r < 0)
                return log_error_errno(r, "Failed to create the event loop: %m"), 1;
        r = fcntl(SUPERVISOR_FD, F_SETFL, O_NONBLOCK);
        if (r < 0)
                return log_error_errno(errno, "Failed to set up fd 3: %m"), 1;
        r = sd_event_add_io(b.event, &b.sup_io, SUPERVISOR_FD, EPOLLIN, on_supervisor, &b);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the supervisor channel: %m"), 1;

        r = sd_event_loop(b.event);
        broker_done(&b);
        return r < 0 ? 1 : r;
}
