/* What the broker and the workers have in common as children: watching them die, telling a crash
 * from a requested stop, exponential backoff, and the crash-loop verdict. */
#include "config.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "bastiond.h"
#include "log.h"
#include "util.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x) STRINGIFY_(x)

static const char *const state_names[_CHILD_STATE_MAX] = {
        [CHILD_STARTING] = "starting",
        [CHILD_RUNNING] = "running",
        [CHILD_BACKOFF] = "backoff",
        [CHILD_FAILED] = "failed",
        [CHILD_STOPPING] = "stopping",
};

const char *child_state_to_string(enum child_state s) {
        return s < _CHILD_STATE_MAX ? state_names[s] : "unknown";
}

uint64_t now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

void child_init(struct child *c, struct supervisor *sup, enum child_kind kind, char *name) {
        *c = (struct child) { .sup = sup, .kind = kind, .name = name, .chan_fd = -1 };
}

void child_free(struct child *c) {
        c->child_source = sd_event_source_disable_unref(c->child_source);
        c->timer_source = sd_event_source_disable_unref(c->timer_source);
        c->io_source = sd_event_source_disable_unref(c->io_source);
        c->chan_fd = safe_close(c->chan_fd);
        free(c->name);
        c->name = NULL;
}

int child_spawn(struct child *c) {
        if (c->kind == CHILD_FRONT)
                return front_spawn(c->sup);
        return c->kind == CHILD_BROKER ? broker_spawn(c->sup) : worker_spawn(c);
}

static void describe_exit(const siginfo_t *si, char *buf, size_t n) {
        char culprit[64];

        if (si->si_code == CLD_EXITED)
                snprintf(buf, n, "exited with status %d", si->si_status);
        else if (si->si_status == SIGSYS && sandbox_seccomp_culprit(si->si_pid, culprit, sizeof(culprit)) >= 0)
                snprintf(buf, n, "killed by signal %d (SIGSYS: seccomp violation, system call %s)", si->si_status, culprit);
        else if (si->si_status == SIGSYS)
                snprintf(buf, n, "killed by signal %d (SIGSYS: seccomp violation)", si->si_status);
        else
                snprintf(buf, n, "killed by signal %d%s", si->si_status, si->si_code == CLD_DUMPED ? " (core dumped)" : "");
}

/* Crashes within the crash-loop window, this one included. */
static unsigned record_crash(struct child *c) {
        uint64_t now = now_usec();
        unsigned recent = 0;

        c->crashes[c->n_crashes++ % BASTION_CRASHLOOP_COUNT] = now;
        for (unsigned i = 0; i < BASTION_CRASHLOOP_COUNT && i < c->n_crashes; i++)
                if (now - c->crashes[i] < (uint64_t) BASTION_CRASHLOOP_WINDOW_MS * 1000)
                        recent++;
        return recent;
}

static int on_restart_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct child *c = userdata;

        c->timer_source = sd_event_source_disable_unref(c->timer_source);
        (void) child_spawn(c);
        return 0;
}

/* Schedules the restart after a crash, or gives up on a crash-looping worker. Returns true when the
 * child is now failed. */
static bool child_crashed(struct child *c, pid_t pid, const char *reason) {
        unsigned recent = record_crash(c), delay_ms;

        if (c->kind == CHILD_WORKER && recent >= BASTION_CRASHLOOP_COUNT) {
                c->state = CHILD_FAILED;
                if (pid > 0)
                        log_error(CHILD_FMT " (pid %d) %s", CHILD_ARGS(c), (int) pid, reason);
                log_error(CHILD_FMT " failed: crash loop (%d crashes in %d s)", CHILD_ARGS(c),
                          BASTION_CRASHLOOP_COUNT, BASTION_CRASHLOOP_WINDOW_MS / 1000);
                return true;
        }
        delay_ms = BASTION_BACKOFF_MIN_MS;
        for (unsigned i = 1; i < recent && delay_ms < BASTION_BACKOFF_MAX_MS; i++)
                delay_ms *= 2;
        if (delay_ms > BASTION_BACKOFF_MAX_MS)
                delay_ms = BASTION_BACKOFF_MAX_MS;
        if (pid > 0)
                log_warning(CHILD_FMT " (pid %d) %s; restarting in %u ms", CHILD_ARGS(c), (int) pid, reason, delay_ms);
        else
                log_warning(CHILD_FMT " %s; restarting in %u ms", CHILD_ARGS(c), reason, delay_ms);
        c->state = CHILD_BACKOFF;
        c->timer_source = sd_event_source_disable_unref(c->timer_source);
        if (sd_event_add_time_relative(c->sup->event, &c->timer_source, CLOCK_MONOTONIC, (uint64_t) delay_ms * 1000, 0,
                                       on_restart_timer, c) < 0)
                log_error(CHILD_FMT ": cannot schedule the restart", CHILD_ARGS(c));
        return false;
}

/* A child that was asked to stop is gone (or never had a process): respawn, forget, or rest. */
static void child_settle(struct child *c) {
        struct supervisor *sup = c->sup;

        if (c->remove) {
                worker_free(c);
        } else if (c->respawn && !sup->stopping) {
                c->stop_requested = c->respawn = false;
                (void) child_spawn(c);
        }
        supervisor_check_stopped(sup);
}

static int on_child_exit(sd_event_source *s, const siginfo_t *si, void *userdata) {
        struct child *c = userdata;
        pid_t pid = c->pid;
        bool failed = false, requested = c->stop_requested || c->sup->stopping;
        char reason[128];

        describe_exit(si, reason, sizeof(reason));
        c->pid = 0;
        c->attested = false;
        c->timer_source = sd_event_source_disable_unref(c->timer_source);
        if (requested)
                log_info(CHILD_FMT " (pid %d) stopped: %s", CHILD_ARGS(c), (int) pid, reason);
        else
                failed = child_crashed(c, pid, reason);

        if (c->kind == CHILD_BROKER)
                broker_exited(c->sup);
        else if (c->kind == CHILD_FRONT)
                front_exited(c);
        else
                worker_exited(c, c->kill_reason[0] ? c->kill_reason : reason, failed);
        c->kill_reason[0] = '\0';
        if (requested)
                child_settle(c);
        else
                supervisor_check_ready(c->sup);
        return 0;
}

int child_watch(struct child *c, pid_t pid) {
        int r;

        c->pid = pid;
        c->state = CHILD_STARTING;
        if (c->generation++ > 0)
                c->restarts++;
        c->child_source = sd_event_source_disable_unref(c->child_source);
        r = sd_event_add_child(c->sup->event, &c->child_source, pid, WEXITED, on_child_exit, c);
        if (r < 0) {
                /* Without a watch it could never be restarted: better not to run it at all. */
                (void) kill(pid, SIGKILL);
                (void) waitpid(pid, NULL, 0);
                c->pid = 0;
                return log_error_errno(r, "Cannot watch " CHILD_FMT " (pid %d): %m", CHILD_ARGS(c), (int) pid);
        }
        return 0;
}

void child_spawn_failed(struct child *c, int error) {
        char reason[160];

        snprintf(reason, sizeof(reason), "could not be started (%s)", strerror(error < 0 ? -error : error));
        if (child_crashed(c, 0, reason) && c->kind == CHILD_WORKER)
                worker_send_down(c, "crash loop", true);
        supervisor_check_ready(c->sup);
}

static int on_kill_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct child *c = userdata;

        c->timer_source = sd_event_source_disable_unref(c->timer_source);
        if (c->pid > 0) {
                log_warning(CHILD_FMT " (pid %d) did not stop within %d ms; killing it", CHILD_ARGS(c), (int) c->pid,
                            BASTION_KILL_TIMEOUT_MS);
                (void) kill(c->pid, SIGKILL);
        }
        return 0;
}

void child_stop(struct child *c, int sig, bool respawn, bool remove) {
        c->stop_requested = true;
        c->respawn = respawn;
        c->remove = remove;
        c->timer_source = sd_event_source_disable_unref(c->timer_source);
        if (c->pid <= 0) {
                child_settle(c);
                return;
        }
        c->state = CHILD_STOPPING;
        (void) kill(c->pid, sig);
        if (sig != SIGKILL &&
            sd_event_add_time_relative(c->sup->event, &c->timer_source, CLOCK_MONOTONIC,
                                       (uint64_t) BASTION_KILL_TIMEOUT_MS * 1000, 0, on_kill_timer, c) < 0)
                (void) kill(c->pid, SIGKILL);
}

/* A worker's io_source is its ready fd while it is being attested (the broker's is its channel, and
 * the broker is attested elsewhere). */
static void drop_ready_fd(struct child *c) {
        if (c->kind == CHILD_WORKER)
                c->io_source = sd_event_source_disable_unref(c->io_source);
}

static int attest_done(struct child *c, int r) {
        c->timer_source = sd_event_source_disable_unref(c->timer_source);
        drop_ready_fd(c);
        if (r < 0) {
                snprintf(c->kill_reason, sizeof(c->kill_reason), "failed attestation: %s",
                         r == -EPERM ? c->att.reason :
                         r == -ETIMEDOUT ? "lockdown not complete within " STRINGIFY(BASTION_ATTEST_TIMEOUT_MS) " ms" :
                         strerror(-r));
                log_error(CHILD_FMT " (pid %d) %s; killing it", CHILD_ARGS(c), (int) c->pid, c->kill_reason);
                (void) kill(c->pid, SIGKILL);
                return 0;
        }
        c->attested = true;
        if (c->kind == CHILD_FRONT)
                front_attested(c);
        else
                worker_attested(c);
        return 0;
}

/* A worker locks itself down after opening its database; until its seccomp filter is on,
 * sandbox_attest() says -EAGAIN. While its ready fd is open the next look is at the deadline (the
 * hang-up brings it forward); without one the check is repeated from the timer, up to the deadline. */
static int on_attest_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct child *c = userdata;
        uint64_t now = now_usec();
        int r;

        if (c->pid <= 0)
                return 0;
        r = sandbox_attest(c->pid, c->attest_role, c->attest_uid, &c->att);
        if (r == 0 || r == -EPERM)
                return attest_done(c, r);
        if (r != -EAGAIN)
                return 0;               /* it died; the exit handler takes over */
        if (now >= c->attest_deadline)
                return attest_done(c, -ETIMEDOUT);
        r = sd_event_source_set_time(s, c->io_source ? c->attest_deadline :
                                     now + (uint64_t) BASTION_ATTEST_POLL_MS * 1000);
        if (r >= 0)
                r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return r < 0 ? attest_done(c, r) : 0;
}

/* The worker closed its end of the filter socket (its lockdown's last step) or died: look now. */
static int on_attest_ready(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct child *c = userdata;
        int r;

        drop_ready_fd(c);
        if (!c->timer_source)
                return 0;
        r = sd_event_source_set_time(c->timer_source, 0);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer_source, SD_EVENT_ONESHOT);
        return r < 0 ? attest_done(c, r) : 0;
}

void child_attest(struct child *c, enum sandbox_role role, uid_t uid, int ready_fd) {
        _cleanup_close_ int ready = ready_fd;
        uint64_t first = 0;
        int r;

        c->attested = false;
        c->att = (struct sandbox_attestation) { .landlock_abi = -1 };
        c->attest_role = role;
        c->attest_uid = uid;
        c->attest_deadline = now_usec() + (uint64_t) BASTION_ATTEST_TIMEOUT_MS * 1000;
        c->timer_source = sd_event_source_disable_unref(c->timer_source);
        drop_ready_fd(c);
        if (ready >= 0 && c->kind == CHILD_WORKER) {
                r = sd_event_add_io(c->sup->event, &c->io_source, ready, EPOLLHUP, on_attest_ready, c);
                if (r >= 0)
                        r = sd_event_source_set_io_fd_own(c->io_source, true);
                if (r >= 0) {
                        ready = -1;     /* the source owns it now */
                        first = c->attest_deadline;
                } else {
                        c->io_source = sd_event_source_disable_unref(c->io_source);
                }
        }
        r = sd_event_add_time(c->sup->event, &c->timer_source, CLOCK_MONOTONIC, first, 0, on_attest_timer, c);
        if (r < 0) {
                log_error_errno(r, "Cannot attest " CHILD_FMT ": %m; killing it", CHILD_ARGS(c));
                (void) kill(c->pid, SIGKILL);
        }
}
