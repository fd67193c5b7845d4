/* One sandboxed bastion-worker per configured server: spawn through sandbox_spawn(), attest once its
 * lockdown is complete, and only then hand the broker its channel. */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/socket.h>

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

static int worker_exec(struct child *w, const struct server_config *sc, int fd, pid_t *ret_pid, int *ret_ready_fd) {
        _cleanup_free_ char *path = NULL, *label = NULL;
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
        return sandbox_spawn_notify(&(struct sandbox_spawn) {
                .name = label,
                .role = SANDBOX_ROLE_WORKER,
                .argv = argv,
                .host_uid = sc->uid,
                .host_gid = sc->gid,
                .state_dir = sc->state_dir,
                .fds = &fd,
                .n_fds = 1,
                .memory_max = sc->memory_max,
        }, ret_pid, ret_ready_fd);
}

int worker_spawn(struct child *w) {
        const struct server_config *sc = config_find_server(&w->sup->config, w->name);
        _cleanup_close_ int ours = -1, theirs = -1, ready = -1;
        int pair[2], r;
        pid_t pid;

        if (!sc)
                return -ENOENT;
        w->state = CHILD_STARTING;
        w->pid = 0;
        /* Its channel peer would be gone with the broker: start once a broker runs (broker_spawn). */
        if (!broker_up(w->sup))
                return 0;
        r = setup_server_directory(sc);
        if (r < 0)
                return child_spawn_failed(w, r), r;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
                return child_spawn_failed(w, -errno), -errno;
        ours = pair[0], theirs = pair[1];
        r = worker_exec(w, sc, theirs, &pid, &ready);
        if (r < 0)
                return child_spawn_failed(w, r), r;
        r = child_watch(w, pid);
        if (r < 0)
                return child_spawn_failed(w, r), r;
        w->chan_fd = TAKE_FD(ours);
        log_info("worker %s (pid %d) started: uid %u, generation %llu", w->name, (int) pid, (unsigned) sc->uid,
                 (unsigned long long) w->generation);
        child_attest(w, SANDBOX_ROLE_WORKER, sc->uid, TAKE_FD(ready));
        return 0;
}
