/* The broker as a child: spawn it with its supervisor channel at fd 3, give it the configuration and
 * the listening socket, read what it says (lib/chan.h). A broker that breaks the protocol is killed
 * and restarted; whatever it says is checked against what it may say. */
#include "config.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>

#include "bastiond.h"
#include "chan.h"
#include "log.h"
#include "util.h"

bool broker_up(const struct supervisor *sup) {
        return sup->broker.pid > 0 && sup->broker.chan_fd >= 0;
}

static void broker_kill(struct supervisor *sup, const char *why) {
        log_error("broker (pid %d) %s; killing it", (int) sup->broker.pid, why);
        sup->broker.io_source = sd_event_source_disable_unref(sup->broker.io_source);
        if (sup->broker.pid > 0)
                (void) kill(sup->broker.pid, SIGKILL);
}

int broker_send(struct supervisor *sup, uint32_t type, uint32_t id, json_t *payload, int fd) {
        int r;

        if (!payload)
                return log_oom();
        r = chan_send(sup->broker.chan_fd, type, id, payload, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
        json_decref(payload);
        if (r == -EPIPE || r == -ECONNRESET) {
                /* It is exiting; its exit handler takes over. */
                log_debug("broker (pid %d) is gone; message %u not sent", (int) sup->broker.pid, type);
        } else if (r < 0) {
                log_error_errno(r, "Cannot send message %u to the broker: %m", type);
                broker_kill(sup, "does not take its messages");
        }
        return r;
}

int broker_send_config(struct supervisor *sup) {
        return broker_send(sup, CHAN_CONFIG, 0, config_to_json(&sup->config), -1);
}

static int broker_dispatch(struct supervisor *sup, struct chan_msg *m) {
        /* Only a credential answer may carry an fd (worker_credential_received checks it). */
        if (m->type == CHAN_CREDENTIAL)
                return worker_credential_received(sup, m);
        if (m->n_fds > 0)
                return -EBADMSG;
        switch (m->type) {
        case CHAN_READY:
                /* The broker locks itself down on its first configuration, before it says ready:
                 * from now on it must show its filter. */
                if (!sup->broker.attested) {
                        int r = sandbox_attest(sup->broker.pid, SANDBOX_ROLE_BROKER, 0, &sup->broker.att);

                        if (r < 0) {
                                log_error("broker (pid %d) failed attestation: %s", (int) sup->broker.pid,
                                          r == -EPERM || r == -EAGAIN ? sup->broker.att.reason : strerror(-r));
                                broker_kill(sup, "is not confined");
                                return 0;
                        }
                        sup->broker.attested = true;
                        log_info("broker (pid %d) attested: seccomp %d, no_new_privs, no capabilities",
                                 (int) sup->broker.pid, sup->broker.att.seccomp_mode);
                }
                if (!sup->broker_ready) {
                        /* Its log is open and recovered: from now on the files only grow. */
                        audit_flags_seal(sup);
                        sup->broker_ready = true;
                        sup->broker.state = CHILD_RUNNING;
                        log_info("broker (pid %d) ready", (int) sup->broker.pid);
                        supervisor_check_ready(sup);
                }
                return 0;
        case CHAN_STOPPED:
                log_info("broker (pid %d) finished its calls in flight", (int) sup->broker.pid);
                return 0;
        case CHAN_APPROVALS_REPLY:
                control_approvals_reply(sup, m->id, m->payload);
                return 0;
        }
        return -EBADMSG;
}

static int on_broker_message(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct supervisor *sup = userdata;
        struct chan_msg m;
        int r;

        r = chan_recv(fd, &m);
        if (r == -EAGAIN)
                return 0;
        if (r == 0 || r == -ECONNRESET) {
                /* It is exiting; its exit handler restarts it. */
                sup->broker.io_source = sd_event_source_disable_unref(sup->broker.io_source);
                return 0;
        }
        if (r < 0) {
                log_error_errno(r, "Bad message from the broker: %m");
                broker_kill(sup, "broke the channel protocol");
                return 0;
        }
        r = broker_dispatch(sup, &m);
        if (r < 0) {
                log_error("Unexpected message type %u from the broker", m.type);
                broker_kill(sup, "broke the channel protocol");
        }
        chan_msg_done(&m);
        return 0;
}

/* Everything a fresh broker needs: configuration, listener, and the state of every worker. */
static void broker_bring_up(struct supervisor *sup) {
        if (broker_send_config(sup) < 0 || broker_send(sup, CHAN_LISTENER, 0, json_object(), sup->listen_fd) < 0)
                return;
        (void) jwks_send(sup);
        for (struct child *w = sup->workers; w; w = w->next) {
                if (w->state == CHILD_FAILED)
                        worker_send_down(w, w->fail_reason[0] ? w->fail_reason : "crash loop", true);
                else if (w->pid == 0 && w->state == CHILD_STARTING)
                        (void) worker_spawn(w);
        }
        front_broker_up(sup);
}

static int broker_start(struct supervisor *sup, int fd, pid_t *ret_pid) {
        _cleanup_free_ char *path = NULL;
        char *argv[2];

        if (asprintf(&path, "%s/bastion-broker", sup->config.libexec_dir) < 0)
                return -ENOMEM;
        argv[0] = path;
        argv[1] = NULL;
        return sandbox_spawn(&(struct sandbox_spawn) {
                .name = "broker",
                .role = SANDBOX_ROLE_BROKER,
                .argv = argv,
                .host_uid = 0,
                .host_gid = 0,
                .fds = &fd,
                .n_fds = 1,
        }, ret_pid);
}

int broker_spawn(struct supervisor *sup) {
        struct child *b = &sup->broker;
        _cleanup_close_ int ours = -1, theirs = -1;
        int pair[2], r;
        pid_t pid;

        if (chan_socketpair(pair) < 0)
                return child_spawn_failed(b, -errno), -errno;
        ours = pair[0], theirs = pair[1];
        if (fcntl(ours, F_SETFL, O_NONBLOCK) < 0)
                return child_spawn_failed(b, -errno), -errno;
        audit_flags_release(sup);
        r = broker_start(sup, theirs, &pid);
        if (r < 0)
                return child_spawn_failed(b, r), r;
        r = child_watch(b, pid);
        if (r < 0)
                return child_spawn_failed(b, r), r;
        sup->broker_ready = false;
        b->chan_fd = TAKE_FD(ours);
        b->io_source = sd_event_source_disable_unref(b->io_source);
        r = sd_event_add_io(sup->event, &b->io_source, b->chan_fd, EPOLLIN, on_broker_message, sup);
        if (r < 0) {
                broker_kill(sup, "cannot be listened to");
                return r;
        }
        /* It locks itself down on its first configuration and is attested when it says ready
         * (broker_dispatch). */
        b->attested = false;
        b->att = (struct sandbox_attestation) { .landlock_abi = -1 };
        log_info("broker (pid %d) started", (int) pid);
        broker_bring_up(sup);
        return 0;
}

/* The broker is gone: its channel, and with it every worker channel it held. Workers are stopped and
 * respawned for the next broker (a crash) or just stopped (the daemon is stopping). */
void broker_exited(struct supervisor *sup) {
        struct child *b = &sup->broker, *next;

        b->io_source = sd_event_source_disable_unref(b->io_source);
        b->chan_fd = safe_close(b->chan_fd);
        sup->broker_ready = false;
        control_broker_gone(sup);
        front_broker_gone(sup);
        for (struct child *w = sup->workers; w; w = next) {
                next = w->next;
                if (sup->stopping)
                        child_stop(w, SIGTERM, false, w->remove);
                else if (w->pid > 0 || w->state == CHILD_STOPPING)
                        child_stop(w, SIGKILL, !w->remove, w->remove);
        }
}
