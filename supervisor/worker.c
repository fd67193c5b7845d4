/* One sandboxed bastion-worker per configured server: fetch its credential from the broker when it has
 * one, spawn through sandbox_spawn(), attest once its lockdown is complete, and only then hand the
 * broker its channel. */
#include "config.h"

#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "bastiond.h"
#include "chan.h"
#include "log.h"
#include "util.h"

struct child *worker_new(struct supervisor *sup, const char *name) {
        struct child *w = malloc(sizeof(*w));
        char *n = strdup(name);

        if (!w || !n) {
                free(w);
                free(n);
                return NULL;
        }
        child_init(w, sup, CHILD_WORKER, n);
        /* Appended, so bastionctl lists workers in configuration order. */
        struct child **p = &sup->workers;
        while (*p)
                p = &(*p)->next;
        *p = w;
        return w;
}

struct child *worker_find(struct supervisor *sup, const char *name) {
        for (struct child *w = sup->workers; w; w = w->next)
                if (streq(w->name, name))
                        return w;
        return NULL;
}

void worker_free(struct child *w) {
        for (struct child **p = &w->sup->workers; *p; p = &(*p)->next)
                if (*p == w) {
                        *p = w->next;
                        break;
                }
        child_free(w);
        free(w);
}

void worker_send_down(struct child *w, const char *reason, bool failed) {
        /* A stopping broker has dropped its workers already. */
        if (!broker_up(w->sup) || w->sup->stopping)
                return;
        (void) broker_send(w->sup, CHAN_WORKER_DOWN, 0,
                           json_pack("{s:s, s:I, s:s, s:b}", "server", w->name, "generation", (json_int_t) w->generation,
                                     "reason", reason, "failed", failed), -1);
}

void worker_announce(struct child *w) {
        if (w->chan_fd < 0 || !w->attested || !broker_up(w->sup))
                return;
        (void) broker_send(w->sup, CHAN_WORKER_UP, 0,
                           json_pack("{s:s, s:I}", "server", w->name, "generation", (json_int_t) w->generation),
                           w->chan_fd);
        /* The broker holds the channel now; our copy would keep it open after the broker died. */
        w->chan_fd = safe_close(w->chan_fd);
}

void worker_exited(struct child *w, const char *reason, bool failed) {
        w->chan_fd = safe_close(w->chan_fd);
        w->io_source = sd_event_source_disable_unref(w->io_source);     /* its ready fd */
        worker_send_down(w, reason, failed);
}

/* Called by child.c once the worker passed its attestation. */
void worker_attested(struct child *w) {
        w->state = CHILD_RUNNING;
        log_info("worker %s (pid %d) attested: uid %u, seccomp %d, no_new_privs, no capabilities, own namespaces, "
                 "landlock ABI %d", w->name, (int) w->pid, (unsigned) w->att.host_uid, w->att.seccomp_mode,
                 w->att.landlock_abi);
        worker_announce(w);
        supervisor_check_ready(w->sup);
}

static int worker_exec(struct child *w, const struct server_config *sc, int chan_fd, int credential_fd, pid_t *ret_pid,
                       int *ret_ready_fd) {
        _cleanup_free_ char *path = NULL, *label = NULL;
        int fds[2] = { chan_fd, credential_fd };
        char *argv[10];
        size_t n = 0;

        if (asprintf(&path, "%s/bastion-worker", w->sup->config.libexec_dir) < 0 ||
            asprintf(&label, "worker %s", w->name) < 0)
                return -ENOMEM;
        argv[n++] = path;
        argv[n++] = sc->domain;
        argv[n++] = (char *) "--db";
        argv[n++] = sc->db_path;
        argv[n++] = (char *) "--fd";
        argv[n++] = (char *) "3";
        if (sc->demo_data)
                argv[n++] = (char *) "--demo-data";
        argv[n++] = (char *) "--sandbox";
        argv[n] = NULL;
        /* The channel at fd 3, the credential (when the server has one) at fd 4: sandbox_spawn closes
         * every other fd, so no other worker's credential can be inherited. */
        return sandbox_spawn_notify(&(struct sandbox_spawn) {
                .name = label,
                .role = SANDBOX_ROLE_WORKER,
                .argv = argv,
                .host_uid = sc->uid,
                .host_gid = sc->gid,
                .state_dir = sc->state_dir,
                .fds = fds,
                .n_fds = credential_fd >= 0 ? 2 : 1,
                .memory_max = sc->memory_max,
        }, ret_pid, ret_ready_fd);
}

/* Starts the process: everything it needs is at hand (its credential fd, or -1 when it has none). */
static int worker_start(struct child *w, const struct server_config *sc, int credential_fd) {
        _cleanup_close_ int ours = -1, theirs = -1, ready = -1;
        int pair[2], r;
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                return child_spawn_failed(w, -errno), -errno;
        ours = pair[0], theirs = pair[1];
        r = worker_exec(w, sc, theirs, credential_fd, &pid, &ready);
        if (r < 0)
                return child_spawn_failed(w, r), r;
        r = child_watch(w, pid);
        if (r < 0)
                return child_spawn_failed(w, r), r;
        w->chan_fd = TAKE_FD(ours);
        log_info("worker %s (pid %d) started: uid %u, generation %llu%s%s", w->name, (int) pid, (unsigned) sc->uid,
                 (unsigned long long) w->generation, credential_fd >= 0 ? ", credential " : "",
                 credential_fd >= 0 ? sc->credential : "");
        child_attest(w, SANDBOX_ROLE_WORKER, sc->uid, TAKE_FD(ready));
        return 0;
}

/* The supervisor never holds secrets: it asks the broker for the worker's credential and starts the
 * worker when the sealed memfd arrives (worker_credential_received). A broker that dies before it
 * answers takes the request with it; its successor is asked again (broker_bring_up). */
static int worker_request_credential(struct child *w) {
        struct supervisor *sup = w->sup;
        uint32_t id = ++sup->next_request_id ?: ++sup->next_request_id;
        int r;

        r = broker_send(sup, CHAN_CREDENTIAL_REQ, id,
                        json_pack("{s:s, s:I}", "server", w->name, "generation", (json_int_t) (w->generation + 1)), -1);
        if (r < 0)
                return r;
        w->credential_request = id;
        return 0;
}

int worker_spawn(struct child *w) {
        const struct server_config *sc = config_find_server(&w->sup->config, w->name);
        int r;

        if (!sc)
                return -ENOENT;
        w->state = CHILD_STARTING;
        w->pid = 0;
        w->credential_request = 0;
        w->fail_reason[0] = '\0';
        /* Its channel peer would be gone with the broker: start once a broker runs (broker_spawn). */
        if (!broker_up(w->sup))
                return 0;
        r = setup_server_directory(sc);
        if (r < 0)
                return child_spawn_failed(w, r), r;
        if (sc->credential)
                return worker_request_credential(w);
        return worker_start(w, sc, -1);
}

/* Not started at all: a crash loop would only ask again for what is not there. Failed until the next
 * reload, with the reason in the log, in `bastionctl workers` and in the broker's answer to calls. */
static void worker_credential_missing(struct child *w, const struct server_config *sc, const char *why) {
        snprintf(w->fail_reason, sizeof(w->fail_reason), "credential %s is not available (%s)", sc->credential, why);
        log_error("worker %s not started: %s", w->name, w->fail_reason);
        w->state = CHILD_FAILED;
        worker_send_down(w, w->fail_reason, true);
        supervisor_check_ready(w->sup);
}

/* What the broker hands over must be what a worker may safely receive: a memfd sealed against every
 * change (so no channel between broker and worker outside their socket), no larger than a secret. */
static int credential_fd_check(int fd) {
        const int need = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL;
        int seals = fcntl(fd, F_GET_SEALS);
        struct stat st;

        if (seals < 0 || (seals & need) != need)
                return -EPERM;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > BASTION_SECRET_MAX_VALUE)
                return -EPERM;
        return 0;
}

int worker_credential_received(struct supervisor *sup, struct chan_msg *m) {
        _cleanup_close_ int fd = m->n_fds == 1 ? chan_msg_take_fd(m, 0) : -1;
        const char *server, *name = NULL, *error = NULL;
        const struct server_config *sc;
        json_int_t generation;
        struct child *w;

        if (m->n_fds > 1 || json_unpack(m->payload, "{s:s, s:I, s?s, s?s}", "server", &server, "generation", &generation,
                                        "name", &name, "error", &error) < 0)
                return -EBADMSG;
        w = worker_find(sup, server);
        /* An answer nobody waits for any more (the worker was stopped, removed, or asked again since):
         * the fd is closed unused. */
        if (!w || m->id == 0 || w->credential_request != m->id || sup->stopping) {
                log_debug("dropping the broker's credential answer %u for %s: not waited for", m->id, server);
                return 0;
        }
        sc = config_find_server(&sup->config, w->name);
        if (!sc || !sc->credential || generation != (json_int_t) (w->generation + 1))
                return -EBADMSG;
        w->credential_request = 0;
        if (fd < 0) {
                worker_credential_missing(w, sc, error ?: "the broker did not say why");
                return 0;
        }
        if (!streq(name ?: "", sc->credential) || credential_fd_check(fd) < 0)
                return -EBADMSG;
        (void) worker_start(w, sc, fd);
        /* Our copy goes at once (cleanup): from here only the worker holds it. */
        return 0;
}
