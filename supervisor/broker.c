/* The broker as a child: spawn it with its supervisor channel at fd 3, give it the configuration and
 * the listening socket, read what it says (lib/chan.h). A broker that breaks the protocol is killed
 * and restarted; whatever it says is checked against what it may say. */
#include "config.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "bastiond.h"
#include "broker/secrets/store.h"
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
                        int r = sandbox_attest(sup->broker.pid, SANDBOX_ROLE_BROKER, sup->broker.attest_uid,
                                               &sup->broker.att);

                        if (r < 0) {
                                log_error("broker (pid %d) failed attestation: %s", (int) sup->broker.pid,
                                          r == -EPERM || r == -EAGAIN ? sup->broker.att.reason : strerror(-r));
                                broker_kill(sup, "is not confined");
                                return 0;
                        }
                        sup->broker.attested = true;
                        log_info("broker (pid %d) attested: uid %u, seccomp %d, no_new_privs, no capabilities",
                                 (int) sup->broker.pid, (unsigned) sup->broker.att.host_uid,
                                 sup->broker.att.seccomp_mode);
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

static char *store_path_of(const struct bastion_config *c) {
        char *p = NULL;

        if (c->secrets_store)
                return strdup(c->secrets_store);
        return asprintf(&p, "%s/secrets.store", c->state_dir) < 0 ? NULL : p;
}

/* Opens a secret file for the broker: read-only, without following a symlink or blocking on a FIFO.
 * The supervisor never reads it (DESIGN: it holds no secret); the broker checks what it is (fstat). */
static int open_secret(int dir_fd, const char *path) {
        int fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);

        return fd < 0 ? -errno : fd;
}

static int send_secret_file(struct supervisor *sup, const char *what, const char *name, bool credential, int fd) {
        json_t *p = json_pack("{s:s, s:s, s:b}", "what", what, "name", name, "credential", credential);

        if (p && fd < 0 && json_object_set_new(p, "errno", json_integer(-fd)) < 0)
                p = (json_decref(p), NULL);
        return broker_send(sup, CHAN_SECRET_FILE, 0, p, fd);
}

/* CHAN_SECRET_FILE, before the first configuration: the store key (secrets_key_file; else the systemd
 * credential bastion.secrets-key; else the default key file), the store, and the plain systemd
 * credentials the configuration names. The broker opens none of them itself: it may not be able to
 * (its own uid, docs/sandbox.md), and it should not need to. */
static int broker_send_secrets(struct supervisor *sup) {
        const struct bastion_config *c = &sup->config;
        const char *cred_dir = getenv("CREDENTIALS_DIRECTORY");
        _cleanup_close_ int cred_fd = -1, key_fd = -1, store_fd = -1;
        _cleanup_free_ char *store = store_path_of(c), *key_cred = NULL;
        const char *key = c->secrets_key_file;
        int r;

        if (!store)
                return log_oom();
        if (cred_dir && *cred_dir)
                cred_fd = open(cred_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (!key && cred_fd >= 0) {
                key_fd = open_secret(cred_fd, SECRETS_KEY_CREDENTIAL);
                if (key_fd != -ENOENT && asprintf(&key_cred, "%s/%s", cred_dir, SECRETS_KEY_CREDENTIAL) < 0)
                        return log_oom();
                key = key_cred;
        }
        if (!key) {
                key = SECRETS_DEFAULT_KEY_FILE;
                key_fd = open_secret(AT_FDCWD, key);
        } else if (!key_cred)
                key_fd = open_secret(AT_FDCWD, key);
        store_fd = open_secret(AT_FDCWD, store);
        r = send_secret_file(sup, "key", key, key_cred != NULL, key_fd);
        if (r >= 0)
                r = send_secret_file(sup, "store", store, false, store_fd);
        for (size_t i = 0; r >= 0 && cred_fd >= 0 && i < c->n_servers; i++) {
                const char *name = c->servers[i].credential;
                _cleanup_close_ int fd = -1;

                /* Bastion's own names are never a worker's; a name is a plain file name (conf_load). */
                if (!name || strncmp(name, SECRETS_RESERVED_PREFIX, strlen(SECRETS_RESERVED_PREFIX)) == 0 ||
                    strchr(name, '/'))
                        continue;
                fd = open_secret(cred_fd, name);
                if (fd >= 0)
                        r = send_secret_file(sup, "credential", name, true, fd);
        }
        return r;
}

/* The first start and anything it forked (it leads its own session). */
static void kill_session(pid_t pid) {
        (void) kill(-pid, SIGKILL);
        (void) kill(pid, SIGKILL);
}

/* Waits for the first start, at most BASTION_FIRST_START_TIMEOUT_MS; then kills it. Returns 0 with
 * its wait status, or -ETIMEDOUT (killed and reaped), or -errno. */
static int first_start_wait(pid_t pid, int *ret_status) {
        _cleanup_close_ int pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        uint64_t deadline = now_usec() + (uint64_t) BASTION_FIRST_START_TIMEOUT_MS * 1000;
        int r = 0;

        while (pidfd >= 0) {
                uint64_t now = now_usec();
                struct pollfd p = { .fd = pidfd, .events = POLLIN };
                int n;

                if (now >= deadline) {
                        kill_session(pid);
                        r = -ETIMEDOUT;
                        break;
                }
                n = poll(&p, 1, (int) ((deadline - now + 999) / 1000));
                if (n > 0)
                        break;
                if (n < 0 && errno != EINTR) {
                        r = -errno;
                        kill_session(pid);
                        break;
                }
        }
        /* Without a pidfd (pidfd_open refused), a plain wait: the first start is milliseconds. */
        while (waitpid(pid, ret_status, 0) < 0)
                if (errno != EINTR)
                        return r < 0 ? r : -errno;
        return r;
}

/* No store yet (a fresh host): `bastion-broker --first-start` creates the key (when there is none), the
 * store and the audit signing key, as uid 0 without capabilities, before the broker proper starts; like
 * `bastionctl secrets init`, it never replaces anything. bastiond waits for it (milliseconds; it is
 * killed after BASTION_FIRST_START_TIMEOUT_MS). */
static int broker_first_start(struct supervisor *sup) {
        _cleanup_free_ char *path = NULL, *store = store_path_of(&sup->config);
        char *argv[5];
        struct stat st;
        pid_t pid;
        int r, status;

        if (!store || asprintf(&path, "%s/bastion-broker", sup->config.libexec_dir) < 0)
                return log_oom();
        if (lstat(store, &st) == 0 || errno != ENOENT)
                return 0;
        argv[0] = path;
        argv[1] = (char *) "--first-start";
        argv[2] = store;
        argv[3] = sup->config.secrets_key_file;
        argv[4] = NULL;
        r = sandbox_spawn(&(struct sandbox_spawn) {
                .name = "broker first start",
                .role = SANDBOX_ROLE_BROKER,
                .argv = argv,
                .host_uid = 0,
                .host_gid = 0,
                .credentials_directory = true,
        }, &pid);
        if (r < 0)
                return log_error_errno(r, "Cannot start the first start of the secrets store: %m");
        r = first_start_wait(pid, &status);
        if (r == -ETIMEDOUT)
                return log_error_errno(r, "Creating the secrets store %s did not finish within %d s: killed; "
                                       "`bastionctl secrets init` creates it by hand", store,
                                       BASTION_FIRST_START_TIMEOUT_MS / 1000);
        if (r < 0)
                return log_error_errno(r, "Cannot wait for the first start of the secrets store: %m");
        if (WIFSIGNALED(status))
                return log_error_errno(EIO, "Creating the secrets store %s failed: the process was killed by signal %d; "
                                       "`bastionctl secrets init` creates it by hand", store, WTERMSIG(status));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return log_error_errno(EIO, "Creating the secrets store %s failed with status %d (see above); "
                                       "`bastionctl secrets init` creates it by hand", store,
                                       WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return 0;
}

/* Everything a fresh broker needs: its secret files, configuration, listener, and the state of every
 * worker. */
static void broker_bring_up(struct supervisor *sup) {
        if (broker_send_secrets(sup) < 0 || broker_send_config(sup) < 0 || broker_send(sup, CHAN_LISTENER, 0, json_object(), sup->listen_fd) < 0)
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

static int broker_start(struct supervisor *sup, uid_t uid, int fd, pid_t *ret_pid) {
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
                .host_uid = uid,
                .host_gid = (gid_t) uid,
                .fds = &fd,
                .n_fds = 1,
        }, ret_pid);
}

int broker_spawn(struct supervisor *sup) {
        struct child *b = &sup->broker;
        _cleanup_close_ int ours = -1, theirs = -1;
        int pair[2], r;
        uid_t uid;
        pid_t pid;

        if (chan_socketpair(pair) < 0)
                return child_spawn_failed(b, -errno), -errno;
        ours = pair[0], theirs = pair[1];
        if (fcntl(ours, F_SETFL, O_NONBLOCK) < 0)
                return child_spawn_failed(b, -errno), -errno;
        /* A failed first start is the broker's to report: it says what is missing and which command
         * creates it, and the usual restart policy applies. */
        (void) broker_first_start(sup);
        /* Its own uid (bastion.conf broker_uid), fixed for its lifetime: a reload that changes it takes
         * effect with the next broker. Its audit directory is given to that uid first. */
        uid = sup->config.broker_uid;
        (void) audit_dir_prepare(sup, uid);
        audit_flags_release(sup);
        r = broker_start(sup, uid, theirs, &pid);
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
        b->attest_uid = uid;
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
