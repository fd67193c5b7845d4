/* sandbox_spawn(): the supervisor's side of DESIGN §3 — clone into fresh namespaces, write the uid/gid
 * maps from outside, lay out the fds, drop credentials and exec. The child reports a failure before
 * exec through a CLOEXEC pipe, so the caller gets a real errno instead of an anonymous exit.
 * A worker also gets its seccomp filter ready-made (compiled once per supervisor, see
 * sandbox-internal.h) on a socket whose hang-up tells the supervisor its lockdown is over. */
#include "config.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "bounds.h"
#include "log.h"
#include "rawsys.h"
#include "sandbox-internal.h"
#include "util.h"

enum spawn_step {
        STEP_SYNC,
        STEP_SIGNALS,
        STEP_SETSID,
        STEP_FDS,
        STEP_RLIMITS,
        STEP_IDS,
        STEP_CAPS,
        STEP_NNP,
        STEP_EXEC,
        _STEP_MAX,
};

static const char *const step_names[_STEP_MAX] = {
        [STEP_SYNC] = "waiting for the supervisor",
        [STEP_SIGNALS] = "resetting signals",
        [STEP_SETSID] = "setsid",
        [STEP_FDS] = "placing file descriptors",
        [STEP_RLIMITS] = "setting rlimits",
        [STEP_IDS] = "switching uid/gid",
        [STEP_CAPS] = "dropping capabilities",
        [STEP_NNP] = "setting no_new_privs",
        [STEP_EXEC] = "exec",
};

struct spawn_report {
        int step;
        int error;
};

/* The clone's stack until its exec: a few hundred bytes of frames, an array of fds and the spawn_ctx
 * copy; a guard page below it. */
#define SPAWN_STACK_SIZE (64 * 1024)

/* Everything the child needs, computed before the clone so the child only makes system calls. */
struct spawn_ctx {
        const struct sandbox_spawn *s;
        bool userns;
        pid_t parent;
        int report_fd;          /* write end, CLOEXEC: closes silently on a successful exec */
        int go_fd;              /* read end: the supervisor has written our maps (userns only) */
        int filter_fd;          /* the child's end of the filter socket (workers), -1 for none */
        int parent_fds[3];      /* the supervisor's ends, closed first so EOF on go_fd means it died */
        unsigned long last_cap;
        char *envp[10];
};

/* Variables a confined program may inherit: log verbosity, and the sanitizer runtimes' options. */
static const char *const kept_env[] = {
        "BASTION_LOG_LEVEL", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS",
};

/* The environment a child gets, built before the clone; it lives on the spawner's stack until the
 * child's exec has copied it. */
struct spawn_env {
        char kept[ELEMENTSOF(kept_env) + 1][512];      /* kept_env[], or an ASAN_OPTIONS of ours */
        char filter[64];
        char credentials[512];
};

/* Everything from here to spawn_child() runs in the clone, which shares the supervisor's memory until
 * its exec: raw system calls only (seccomp/rawsys.h), nothing that allocates or writes errno, and no
 * write to memory but its own stack (it works on its own copy of the spawn_ctx). */

/* `to` becomes `from`, inherited across exec: dup3() (aarch64 has no dup2), which refuses equal fds;
 * for those (dup2 would leave CLOEXEC set) the flag is cleared instead — /dev/null opened CLOEXEC at 0
 * when the supervisor runs with stdin closed. */
static long raw_dup2(int from, int to) {
        long r;

        if (from == to)
                return (r = raw_syscall(SYS_fcntl, from, F_SETFD, 0)) < 0 ? r : to;
        return raw_syscall(SYS_dup3, from, to, 0);
}

_Noreturn static void child_fail(const struct spawn_ctx *c, int step, int error) {
        struct spawn_report rep = { .step = step, .error = error > 0 ? error : EIO };

        (void) raw_syscall(SYS_write, c->report_fd, &rep, sizeof(rep));
        for (;;)
                (void) raw_syscall(SYS_exit_group, 127);
}

static int child_sync(const struct spawn_ctx *c) {
        char go;
        long r;

        /* PDEATHSIG first, then make sure the parent did not die before it was armed. In a new pid
         * namespace getppid() is 0, so there the go byte is the check: EOF means the parent is gone. */
        if ((r = raw_syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)) < 0)
                return (int) r;
        if (!c->userns)
                return raw_syscall(SYS_getppid, 0) == c->parent ? 0 : -ESRCH;
        if (raw_syscall(SYS_read, c->go_fd, &go, 1) != 1)
                return -ESRCH;
        return 0;
}

/* A change of effective uid clears the parent-death signal (the kernel's commit_creds), and every
 * child changes uid in child_ids(): arm it again after that, then check once more that the parent is
 * there — it may have died in between. The supervisor holds the go pipe's write end until our exec or
 * our report, so in a pid namespace (getppid() is 0) a readable or hung-up go pipe means it is gone. */
static int child_rearm_pdeathsig(const struct spawn_ctx *c) {
        struct pollfd p = { .fd = c->go_fd, .events = POLLIN };
        struct timespec now = { 0, 0 };
        long r;

        if ((r = raw_syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)) < 0)
                return (int) r;
        if (!c->userns)
                return raw_syscall(SYS_getppid, 0) == c->parent ? 0 : -ESRCH;
        return raw_syscall(SYS_ppoll, &p, 1, &now, NULL, 0) == 0 ? 0 : -ESRCH;
}

/* The kernel's struct sigaction (rt_sigaction), for SIG_DFL: no restorer needed. */
struct raw_sigaction {
        void (*handler)(int);
        unsigned long flags;
        void (*restorer)(void);
        uint64_t mask;
};

/* Every handler back to the default, then the mask the supervisor blocked for the clone emptied. */
static int child_signals(void) {
        const struct raw_sigaction dfl = { .handler = SIG_DFL };
        const uint64_t none = 0;
        long r;

        for (int sig = 1; sig <= 64; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) raw_syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof(uint64_t));
        r = raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof(uint64_t));
        return r < 0 ? (int) r : 0;
}

/* fds[] to 3, 4, …; then the filter socket (workers, inherited, its number in the environment);
 * stdin and stdout to /dev/null; stderr kept; the rest closed. The report pipe moves to just above
 * them and stays CLOEXEC. */
static int child_fds(struct spawn_ctx *c) {
        const struct sandbox_spawn *s = c->s;
        int tmp[BASTION_SANDBOX_MAX_FDS], base = 3 + (int) s->n_fds, high = base + 3;
        long r, null;

        /* Move everything out of the target range first, so no dup2 overwrites a source. */
        if ((r = raw_syscall(SYS_fcntl, c->report_fd, F_DUPFD_CLOEXEC, high)) < 0)
                return (int) r;
        c->report_fd = (int) r;
        if ((r = raw_syscall(SYS_fcntl, c->go_fd, F_DUPFD_CLOEXEC, high)) < 0)
                return (int) r;
        c->go_fd = (int) r;
        if (c->filter_fd >= 0) {
                if ((r = raw_syscall(SYS_fcntl, c->filter_fd, F_DUPFD_CLOEXEC, high)) < 0)
                        return (int) r;
                c->filter_fd = (int) r;
        }
        for (unsigned i = 0; i < s->n_fds; i++) {
                tmp[i] = -1;
                if (s->fds[i] < 0)
                        continue;
                if ((r = raw_syscall(SYS_fcntl, s->fds[i], F_DUPFD_CLOEXEC, high)) < 0)
                        return (int) r;
                tmp[i] = (int) r;
        }
        for (unsigned i = 0; i < s->n_fds; i++) {
                if (tmp[i] < 0)
                        (void) raw_syscall(SYS_close, 3 + (int) i);
                else if ((r = raw_dup2(tmp[i], 3 + (int) i)) < 0)     /* dup2 clears CLOEXEC: inherited */
                        return (int) r;
        }
        if (c->filter_fd >= 0) {
                if ((r = raw_dup2(c->filter_fd, base)) < 0)
                        return (int) r;
                c->filter_fd = base++;
        }
        if ((r = raw_dup2(c->report_fd, base)) < 0)
                return (int) r;
        c->report_fd = base;
        if ((r = raw_syscall(SYS_fcntl, base, F_SETFD, FD_CLOEXEC)) < 0)
                return (int) r;
        /* The go pipe stays until exec too: child_rearm_pdeathsig() looks at it after the uid switch. */
        if ((r = raw_dup2(c->go_fd, base + 1)) < 0)
                return (int) r;
        c->go_fd = base + 1;
        if ((r = raw_syscall(SYS_fcntl, c->go_fd, F_SETFD, FD_CLOEXEC)) < 0)
                return (int) r;
        if ((r = raw_syscall(SYS_close_range, (unsigned) base + 2, ~0U, 0U)) < 0)
                return (int) r;
        null = raw_syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDWR | O_CLOEXEC);
        if (null < 0)
                return (int) null;
        if ((r = raw_dup2((int) null, STDIN_FILENO)) < 0 || (r = raw_dup2((int) null, STDOUT_FILENO)) < 0)
                return (int) r;
        if (null > STDERR_FILENO)
                (void) raw_syscall(SYS_close, null);
        return 0;
}

static int child_rlimit(int resource, uint64_t limit) {
        const struct rlimit rl = { limit, limit };
        long r = raw_syscall(SYS_prlimit64, 0, resource, &rl, NULL);

        return r < 0 ? (int) r : 0;
}

static int child_rlimits(const struct sandbox_spawn *s) {
        int r = child_rlimit(RLIMIT_CORE, 0);

        if (r < 0)
                return r;
#ifndef BASTION_SANITIZERS
        /* ASan reserves terabytes of shadow address space: the sanitizer build runs without this. */
        if (s->memory_max > 0 && (r = child_rlimit(RLIMIT_AS, s->memory_max)) < 0)
                return r;
#endif
        return 0;
}

/* In the worker's user namespace uid 0 is host_uid. Switch to it at once: until then the process
 * still has host kuid 0, and owner permission bits on root-owned host files would apply. The raw
 * calls act on this process alone (glibc's would broadcast to the supervisor's threads). */
static int child_ids(const struct spawn_ctx *c) {
        const struct sandbox_spawn *s = c->s;
        uid_t uid = c->userns ? 0 : s->host_uid;
        gid_t gid = c->userns ? 0 : s->host_gid;
        long r;

        if ((r = raw_syscall(SYS_setresgid, gid, gid, gid)) < 0 ||
            (r = raw_syscall(SYS_setgroups, 0, NULL)) < 0 ||
            (r = raw_syscall(SYS_setresuid, uid, uid, uid)) < 0)
                return (int) r;
        /* The switch reset the (shared) memory's dumpable flag to fs.suid_dumpable: clear it again
         * (vm_share_begin()). */
        r = raw_syscall(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
        return r < 0 ? (int) r : 0;
}

/* A worker keeps CAP_SYS_ADMIN (its mount tree) and CAP_SETPCAP (securebits, bounding set) for
 * sandbox_lockdown(); the exec as uid 0 of its userns hands it exactly the bounding set. */
static int child_bound_worker(const struct spawn_ctx *c) {
        long r;

        for (unsigned long cap = 0; cap <= c->last_cap; cap++)
                if (cap != CAP_SYS_ADMIN && cap != CAP_SETPCAP &&
                    (r = raw_syscall(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0)) < 0 && r != -EINVAL)
                        return (int) r;
        r = raw_syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        return r < 0 ? (int) r : 0;
}

static int child_exec(const struct spawn_ctx *c) {
        return (int) raw_syscall(SYS_execve, c->s->argv[0], c->s->argv, c->envp);
}

/* The clone's entry, on the stack sandbox_spawn_notify() gave it. */
static int spawn_child(void *arg) {
        struct spawn_ctx ctx = *(const struct spawn_ctx *) arg, *c = &ctx;
        long r;

        for (size_t i = 0; i < ELEMENTSOF(c->parent_fds); i++)
                if (c->parent_fds[i] >= 0)
                        (void) raw_syscall(SYS_close, c->parent_fds[i]);
        if ((r = child_sync(c)) < 0)
                child_fail(c, STEP_SYNC, (int) -r);
        if ((r = child_signals()) < 0)
                child_fail(c, STEP_SIGNALS, (int) -r);
        if ((r = raw_syscall(SYS_setsid, 0)) < 0)
                child_fail(c, STEP_SETSID, (int) -r);
        if ((r = child_fds(c)) < 0)
                child_fail(c, STEP_FDS, (int) -r);
        if ((r = raw_syscall(SYS_chdir, "/")) < 0)
                child_fail(c, STEP_FDS, (int) -r);
        if ((r = child_rlimits(c->s)) < 0)
                child_fail(c, STEP_RLIMITS, (int) -r);
        if (c->userns) {
                if ((r = child_ids(c)) < 0)
                        child_fail(c, STEP_IDS, (int) -r);
                if ((r = child_rearm_pdeathsig(c)) < 0)
                        child_fail(c, STEP_SYNC, (int) -r);
                if ((r = child_bound_worker(c)) < 0)
                        child_fail(c, STEP_CAPS, (int) -r);
        } else {
                /* Securebits (NO_SETUID_FIXUP among them) need CAP_SETPCAP, so they go before the
                 * uid switch; the switch therefore does not clear the sets, sandbox_drop_caps does. */
                if ((r = sandbox_drop_bounding_caps(c->last_cap)) < 0)
                        child_fail(c, STEP_CAPS, (int) -r);
                if ((r = child_ids(c)) < 0)
                        child_fail(c, STEP_IDS, (int) -r);
                if ((r = child_rearm_pdeathsig(c)) < 0)
                        child_fail(c, STEP_SYNC, (int) -r);
                if ((r = sandbox_clear_cap_sets()) < 0)
                        child_fail(c, STEP_CAPS, (int) -r);
        }
        if ((r = raw_syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) < 0)
                child_fail(c, STEP_NNP, (int) -r);
        r = child_exec(c);
        child_fail(c, STEP_EXEC, (int) -r);
}

/* stack_top: the highest address of the child's stack (it grows down from there). */
static pid_t spawn_clone(struct spawn_ctx *c, void *stack_top) {
        unsigned long flags = SIGCHLD | (c->userns ? SANDBOX_SPAWN_NS_FLAGS : 0);
#ifdef BASTION_SANITIZERS
        /* ASan knows no stack but the thread's, and would keep the shadow of the child's frames for
         * memory we unmap and reuse: the sanitizer build clones with fork semantics (a copy of our
         * memory, the child on its copy of our stack). */
        pid_t pid = (pid_t) syscall(SYS_clone, flags, NULL, NULL, NULL, 0);

        (void) stack_top;
        if (pid == 0)
                (void) spawn_child(c);
        return pid;
#else
        return clone(spawn_child, stack_top, (int) (CLONE_VM | flags), c);
#endif
}

static int write_map(pid_t pid, const char *file, unsigned long host_id) {
        char path[64], map[64];
        _cleanup_close_ int fd = -1;
        int n;

        snprintf(path, sizeof(path), "/proc/%d/%s", (int) pid, file);
        n = snprintf(map, sizeof(map), "0 %lu 1\n", host_id);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (write(fd, map, n) != n)
                return -errno;
        return 0;
}

#ifdef BASTION_SANITIZERS
/* LeakSanitizer needs /proc and ptrace of itself, neither of which a locked-down process has. */
#define SANITIZER_ENV_SUFFIX ":detect_leaks=0"
#else
#define SANITIZER_ENV_SUFFIX ""
#endif

static void build_env(struct spawn_ctx *c, struct spawn_env *e) {
        char (*buf)[512] = e->kept, *filter_env = e->filter, *cred_env = e->credentials;
        const char *cred = getenv("CREDENTIALS_DIRECTORY");
        bool have_asan = false;
        unsigned n = 0;

        for (unsigned i = 0; i < ELEMENTSOF(kept_env); i++) {
                const char *v = getenv(kept_env[i]);
                bool asan = streq(kept_env[i], "ASAN_OPTIONS");

                if (v && snprintf(buf[n], sizeof(e->kept[n]), "%s=%s%s", kept_env[i], v,
                                  asan ? SANITIZER_ENV_SUFFIX : "") < (int) sizeof(buf[n])) {
                        c->envp[n] = buf[n], n++;
                        have_asan |= asan;
                }
        }
        if (!have_asan && SANITIZER_ENV_SUFFIX[0]) {
                snprintf(buf[n], sizeof(e->kept[n]), "ASAN_OPTIONS=%s", SANITIZER_ENV_SUFFIX + 1);
                c->envp[n] = buf[n], n++;
        }
        if (c->filter_fd >= 0) {
                /* child_fds() puts it right after the caller's fds. */
                snprintf(filter_env, sizeof(e->filter), SANDBOX_FILTER_FD_ENV "=%u", 3 + c->s->n_fds);
                c->envp[n++] = filter_env;
        }
        /* Where systemd put the service's credentials (the secrets store key, plain credentials by
         * name): only the broker's first start, which may create the store with that key, learns where.
         * The broker proper gets the files as fds from bastiond. */
        if (c->s->credentials_directory && cred &&
            snprintf(cred_env, sizeof(e->credentials), "CREDENTIALS_DIRECTORY=%s", cred) < (int) sizeof(e->credentials))
                c->envp[n++] = cred_env;
        c->envp[n] = NULL;
}

/* What the spawner sets up for the time the child runs in its memory. */
struct vm_share {
        void *map, *stack;              /* the mapping, and the stack above its guard page */
        size_t map_size, size;
        int dumpable;                   /* ours before, restored at the end */
        uint64_t sigmask;               /* ours before, restored right after the clone */
};

/* One spawn at a time per process: the dumpable flag below is the whole memory's. */
static pthread_mutex_t vm_share_lock = PTHREAD_MUTEX_INITIALIZER;

/* Before the clone:
 * - a stack of its own for the child, a guard page below it (an overflow faults, it does not write
 *   into our heap);
 * - our memory not dumpable: while the child runs in it, a process that may ptrace the child (its
 *   uid, and no capability the child lacks — it drops all of its own) could otherwise read and write
 *   us through it (ptrace, process_vm_writev, /proc/PID/mem). The child clears the flag again after
 *   its uid switch, which resets it to fs.suid_dumpable;
 * - every signal blocked, glibc's own two included, so that none of our handlers can run in the child
 *   before child_signals() has reset them. */
static int vm_share_begin(struct vm_share *vm, const char *name) {
        static const uint64_t all = ~(uint64_t) 0;
        size_t page = (size_t) sysconf(_SC_PAGESIZE);

        *vm = (struct vm_share) { .size = SPAWN_STACK_SIZE, .map_size = SPAWN_STACK_SIZE + page, .dumpable = -1 };
        vm->map = mmap(NULL, vm->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (vm->map == MAP_FAILED)
                return log_error_errno(errno, "Failed to allocate the clone stack of %s: %m", name);
        vm->stack = (char *) vm->map + page;
        if (mprotect(vm->map, page, PROT_NONE) < 0) {
                int r = log_error_errno(errno, "Failed to guard the clone stack of %s: %m", name);

                (void) munmap(vm->map, vm->map_size);
                return r;
        }
        (void) pthread_mutex_lock(&vm_share_lock);
        vm->dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
        if (vm->dumpable != 0 && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) {
                int r = log_error_errno(errno, "Failed to make our memory non-dumpable for %s: %m", name);

                (void) pthread_mutex_unlock(&vm_share_lock);
                (void) munmap(vm->map, vm->map_size);
                return r;
        }
        (void) raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &vm->sigmask, sizeof(uint64_t));
        return 0;
}

static void vm_share_unblock(struct vm_share *vm) {
        (void) raw_syscall(SYS_rt_sigprocmask, SIG_SETMASK, &vm->sigmask, NULL, sizeof(uint64_t));
}

/* After the child's exec (or its death): the stack goes, our dumpable flag comes back. */
static void vm_share_end(struct vm_share *vm) {
        (void) munmap(vm->map, vm->map_size);
        if (vm->dumpable > 0)
                (void) prctl(PR_SET_DUMPABLE, vm->dumpable, 0, 0, 0);
        (void) pthread_mutex_unlock(&vm_share_lock);
}

static int spawn_validate(const struct sandbox_spawn *s) {
        if (!s || !s->argv || !s->argv[0] || s->argv[0][0] != '/')
                return -EINVAL;
        if (s->n_fds > BASTION_SANDBOX_MAX_FDS || (s->n_fds > 0 && !s->fds))
                return -EINVAL;
        if (s->role < 0 || s->role >= _SANDBOX_ROLE_MAX)
                return -EINVAL;
        if (s->role == SANDBOX_ROLE_WORKER && (s->host_uid == 0 || s->credentials_directory))
                return -EINVAL;         /* a worker's host uid is dedicated, never root; no credentials */
        return 0;
}

/* Supervisor side after the clone: maps, go, then the child's verdict. */
static int spawn_parent(const struct sandbox_spawn *s, pid_t pid, bool userns, int go_fd, int report_fd) {
        struct spawn_report rep;
        ssize_t n;
        int r;

        if (userns) {
                r = write_map(pid, "uid_map", s->host_uid);
                if (r < 0)
                        return log_error_errno(r, "Failed to write uid_map of %s: %m", s->name);
                r = write_map(pid, "gid_map", s->host_gid);
                if (r < 0)
                        return log_error_errno(r, "Failed to write gid_map of %s: %m", s->name);
                if (write(go_fd, "g", 1) != 1)
                        return log_error_errno(errno, "Failed to release %s: %m", s->name);
        }
        do
                n = read(report_fd, &rep, sizeof(rep));
        while (n < 0 && errno == EINTR);
        if (n == 0)
                return 0;               /* CLOEXEC closed it: exec succeeded */
        if (n != sizeof(rep) || rep.step < 0 || rep.step >= _STEP_MAX)
                return log_error_errno(EIO, "Sandbox setup of %s failed without a report", s->name);
        return log_error_errno(rep.error, "Sandbox setup of %s failed while %s: %m", s->name,
                               step_names[rep.step]);
}

/* A worker's filter, compiled once per process, queued on a fresh socketpair before the clone:
 * the child finds it there at exec, and our end hangs up when the child closes its own. */
static int filter_socket(const struct sandbox_spawn *s, int *ret_ours, int *ret_theirs) {
        const struct sandbox_filter_msg *msg;
        _cleanup_close_ int ours = -1, theirs = -1;
        int pair[2], r;
        ssize_t n;

        r = sandbox_filter_program(s->role, &msg);
        if (r < 0)
                return log_error_errno(r, "Failed to compile the %s seccomp filter: %m", sandbox_role_to_string(s->role));
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
                return log_error_errno(errno, "Failed to create the filter socket of %s: %m", s->name);
        ours = pair[0], theirs = pair[1];
        n = send(ours, msg, SANDBOX_FILTER_MSG_SIZE(msg->len), MSG_NOSIGNAL);
        if (n != (ssize_t) SANDBOX_FILTER_MSG_SIZE(msg->len))
                return log_error_errno(n < 0 ? errno : EIO, "Failed to send the seccomp filter of %s: %m", s->name);
        *ret_ours = TAKE_FD(ours);
        *ret_theirs = TAKE_FD(theirs);
        return 0;
}

int sandbox_spawn_notify(const struct sandbox_spawn *s, pid_t *ret_pid, int *ret_ready_fd) {
        _cleanup_close_ int report_r = -1, report_w = -1, go_r = -1, go_w = -1, filter_ours = -1, filter_theirs = -1;
        struct spawn_ctx c = { .filter_fd = -1 };
        struct vm_share vm;
        struct spawn_env env;
        int report[2], go[2], r;
        pid_t pid;

        if (ret_ready_fd)
                *ret_ready_fd = -1;
        r = spawn_validate(s);
        if (r < 0)
                return log_error_errno(r, "Invalid sandbox spawn request for %s", s && s->name ? s->name : "?");
        c.s = s;
        c.userns = s->role == SANDBOX_ROLE_WORKER;
        c.parent = getpid();
        c.last_cap = sandbox_cap_last_cap();
        if (c.userns) {
                r = filter_socket(s, &filter_ours, &filter_theirs);
                if (r < 0)
                        return r;
                c.filter_fd = filter_theirs;
        }
        build_env(&c, &env);
        if (pipe2(report, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0)
                return log_error_errno(errno, "Failed to create sandbox pipes: %m");
        report_r = report[0], report_w = report[1], go_r = go[0], go_w = go[1];
        c.report_fd = report_w;
        c.go_fd = go_r;
        c.parent_fds[0] = report_r;
        c.parent_fds[1] = go_w;
        c.parent_fds[2] = filter_ours;

        /* One clone, so the namespaces exist from the first instruction and the pid we get back is
         * the confined program itself, pid 1 inside. The mount namespace comes with its lockdown
         * (SANDBOX_SPAWN_NS_FLAGS); until then it holds no capability over the host's. CLONE_VM: the
         * child runs in our memory, on its own stack, until its exec — no copy of our page tables to
         * make and tear down again (≈ 0.7 ms a spawn here, docs/sandbox.md "Spawn latency"); what
         * it may do meanwhile is said above child_fail(), and vm_share_begin() says what guards us. */
        r = vm_share_begin(&vm, s->name);
        if (r < 0)
                return r;
        pid = spawn_clone(&c, (char *) vm.stack + vm.size);
        r = pid < 0 ? -errno : 0;
        vm_share_unblock(&vm);
        if (r < 0) {
                vm_share_end(&vm);
                return log_error_errno(r, "Failed to clone %s: %m", s->name);
        }

        report_w = safe_close(report_w);
        go_r = safe_close(go_r);
        /* From here on the child holds the only other end: its hang-up is the child's. */
        filter_theirs = safe_close(filter_theirs);
        r = spawn_parent(s, pid, c.userns, go_w, report_r);
        if (r < 0) {
                (void) kill(pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        /* The child has exec'd (the report pipe closed at its exec, after the kernel gave it its own
         * memory) or is reaped: nothing runs in our memory any more. */
        vm_share_end(&vm);
        if (r < 0)
                return r;
        *ret_pid = pid;
        if (ret_ready_fd)
                *ret_ready_fd = TAKE_FD(filter_ours);
        return 0;
}

int sandbox_spawn(const struct sandbox_spawn *s, pid_t *ret_pid) {
        return sandbox_spawn_notify(s, ret_pid, NULL);
}
