/* sandbox_lockdown(): the confined program's own half of DESIGN §3, run after it opened what it needs.
 * Order: mount tree + pivot_root (workers only: needs CAP_SYS_ADMIN in its userns) → rlimits →
 * capabilities → not dumpable → no_new_privs → Landlock (needs NNP, cannot come before the mounts)
 * → seccomp last (it would forbid every call before it) → close the filter socket, which tells the
 * supervisor it may attest now. */
#include "config.h"

#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>

#include "bounds.h"
#include "log.h"
#include "sandbox-internal.h"
#include "util.h"

/* The new root is a tmpfs mounted over this directory of the private mount namespace; it exists on
 * every system and is private under systemd (PrivateTmp=) anyway. */
#define NEWROOT "/tmp"

/* What each role's lockdown does. The broker and the front are not spawned into namespaces (they
 * serve the host's socket and keep the host's mount view); Landlock confines their filesystem
 * instead. The broker keeps RLIMIT_MEMLOCK: libsodium mlock()s the keys it holds. */
static const struct {
        bool mounts, landlock, seccomp;
        bool takes_state_dir, takes_append_dir, keep_memlock;
        rlim_t max_open_files;
} role_stages[_SANDBOX_ROLE_MAX] = {
        [SANDBOX_ROLE_WORKER] = {
                .mounts = true, .landlock = true, .seccomp = true, .takes_state_dir = true,
                .max_open_files = BASTION_SANDBOX_MAX_OPEN_FILES,
        },
        [SANDBOX_ROLE_BROKER] = {
                .landlock = true, .seccomp = true, .takes_append_dir = true, .keep_memlock = true,
                .max_open_files = BASTION_SANDBOX_HUB_MAX_OPEN_FILES,
        },
        [SANDBOX_ROLE_FRONT] = {
                .landlock = true, .seccomp = true, .max_open_files = BASTION_SANDBOX_HUB_MAX_OPEN_FILES,
        },
        [SANDBOX_ROLE_EXEC_RUNTIME] = {
                .mounts = true, .landlock = true, .seccomp = true, .takes_state_dir = true,
                .max_open_files = BASTION_SANDBOX_MAX_OPEN_FILES,
        },
};

static int mkdir_p(char *path) {
        for (char *p = path + 1; *p; p++)
                if (*p == '/') {
                        *p = '\0';
                        if (mkdir(path, 0755) < 0 && errno != EEXIST)
                                return -errno;
                        *p = '/';
                }
        return mkdir(path, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

/* Clone the state dir's mount tree before anything is mounted over its path: the detached copy is
 * what gets attached inside the new root. */
static int grab_state_dir(const char *state_dir) {
        int fd = (int) syscall(SYS_open_tree, AT_FDCWD, state_dir,
                               OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);

        return fd < 0 ? -errno : fd;
}

static int attach_state_dir(int tree, const char *state_dir) {
        char target[PATH_MAX];
        int r;

        if (snprintf(target, sizeof(target), NEWROOT "%s", state_dir) >= (int) sizeof(target))
                return -ENAMETOOLONG;
        r = mkdir_p(target);
        if (r < 0)
                return r;
        if (syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return -errno;
        /* The database is data: never a device, a setuid binary or anything to execute. */
        if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                return -errno;
        return 0;
}

/* A tmpfs root holding only the state directory, at the same path so open database paths stay
 * valid; the old root is detached, so nothing of the host (and of no other worker) is reachable. */
static int build_mount_tree(const char *state_dir) {
        _cleanup_close_ int tree = -1;
        int r;

        /* Our own mount namespace: sandbox_spawn() leaves this step to us (SANDBOX_SPAWN_NS_FLAGS),
         * and a worker run by hand as root must never change the propagation of the host's. */
        if (unshare(CLONE_NEWNS) < 0)
                return -errno;
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return -errno;
        if (state_dir) {
                tree = grab_state_dir(state_dir);
                if (tree < 0)
                        return tree;
        }
        if (mount("tmpfs", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "mode=0755,size=" BASTION_SANDBOX_ROOT_SIZE ",nr_inodes=" BASTION_SANDBOX_ROOT_INODES) < 0)
                return -errno;
        if (state_dir) {
                r = attach_state_dir(tree, state_dir);
                if (r < 0)
                        return r;
        }
        if (chdir(NEWROOT) < 0 || syscall(SYS_pivot_root, ".", ".") < 0)
                return -errno;
        /* pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only ours. */
        if (umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
                return -errno;
        if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                return -errno;
        return 0;
}

_Noreturn static void exit_on_signal(int sig) {
        _exit(128 + sig);
}

/* As pid 1 of its pid namespace (sandbox_spawn), the program would ignore every signal it has no
 * handler for, even the supervisor's SIGTERM. Give the terminating ones their usual meaning back. */
static int restore_pid1_signals(void) {
        static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };

        if (getpid() != 1)
                return 0;
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++) {
                struct sigaction old, sa = { .sa_handler = exit_on_signal };

                if (sigaction(sigs[i], NULL, &old) < 0)
                        return -errno;
                if (old.sa_handler == SIG_DFL && sigaction(sigs[i], &sa, NULL) < 0)
                        return -errno;
        }
        return 0;
}

static int set_rlimits(enum sandbox_role role) {
        const struct {
                int resource;
                rlim_t value;
                bool skip;
        } limits[] = {
                { RLIMIT_CORE, 0, false },
                { RLIMIT_NOFILE, role_stages[role].max_open_files, false },
                { RLIMIT_NPROC, BASTION_SANDBOX_MAX_TASKS, false },
                { RLIMIT_MEMLOCK, 0, role_stages[role].keep_memlock },
                { RLIMIT_MSGQUEUE, 0, false },
        };

        for (size_t i = 0; i < ELEMENTSOF(limits); i++) {
                struct rlimit cur;
                rlim_t v = limits[i].value;

                if (limits[i].skip)
                        continue;
                /* Only ever lower: the spawn path may have set a tighter one (RLIMIT_AS). */
                if (getrlimit(limits[i].resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY && cur.rlim_max < v)
                        v = cur.rlim_max;
                if (setrlimit(limits[i].resource, &(struct rlimit) { v, v }) < 0)
                        return -errno;
        }
        return 0;
}

/* An existing directory, made absolute (Landlock and the mount tree need the real path). */
static int resolve_dir(const char *path, char **ret) {
        struct stat st;

        *ret = NULL;
        if (!path)
                return 0;
        *ret = realpath(path, NULL);
        if (!*ret)
                return -errno;
        if (stat(*ret, &st) < 0)
                return -errno;
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int check_request(const struct sandbox_lockdown *l) {
        if (!l || l->role < 0 || l->role >= _SANDBOX_ROLE_MAX)
                return -EINVAL;
        /* A directory given to a role that does not use it would silently stay unreachable. */
        if (l->state_dir && !role_stages[l->role].takes_state_dir)
                return -EINVAL;
        if (l->append_dir && !role_stages[l->role].takes_append_dir)
                return -EINVAL;
        return 0;
}

static int lockdown_mounts(enum sandbox_role role, const char *state_dir) {
        int r;

        if (!role_stages[role].mounts)
                return 0;
        if (!sandbox_have_cap(CAP_SYS_ADMIN)) {
                /* Started without sandbox_spawn's user namespace (by hand, unprivileged). */
                log_warning("No CAP_SYS_ADMIN: running without a private mount tree; Landlock and seccomp still apply");
                return 0;
        }
        r = build_mount_tree(state_dir);
        if (r < 0)
                return log_error_errno(r, "Failed to build the sandbox mount tree: %m");
        if (state_dir && chdir(state_dir) < 0)
                return log_error_errno(errno, "Failed to enter %s: %m", state_dir);
        return 0;
}

/* The filter the supervisor compiled for us (sandbox_spawn_notify), if it handed one over: taken
 * from the environment at once. *ret_fd is its socket (-1 when there is none), closed last. */
static int take_filter(enum sandbox_role role, struct sandbox_filter_msg *msg, int *ret_fd) {
        const char *e = getenv(SANDBOX_FILTER_FD_ENV);
        _cleanup_close_ int fd = -1;
        int type = 0;
        socklen_t len = sizeof(type);
        char *end;
        ssize_t n;
        long v;

        *ret_fd = -1;
        if (!e)
                return 0;
        errno = 0;
        v = strtol(e, &end, 10);
        if (errno != 0 || end == e || *end != '\0' || v < 3 || v > INT_MAX)
                return -EBADF;
        fd = (int) v;
        (void) unsetenv(SANDBOX_FILTER_FD_ENV);
        if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                return -errno;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_SEQPACKET)
                return -ENOTSOCK;
        /* Queued before we were cloned: it is there, or something is wrong. */
        n = recv(fd, msg, sizeof(*msg), MSG_TRUNC | MSG_DONTWAIT);
        if (n < 0)
                return -errno;
        if ((size_t) n < SANDBOX_FILTER_MSG_SIZE(0) || msg->magic != SANDBOX_FILTER_MAGIC || msg->reserved != 0 ||
            msg->role != (uint32_t) role || msg->len == 0 || msg->len > BPF_MAXINSNS ||
            (size_t) n != SANDBOX_FILTER_MSG_SIZE(msg->len))
                return -EBADMSG;
        /* Compiled for pid 1 of a fresh pid namespace (its tgkill rule names the process itself). */
        if (getpid() != 1)
                return -ESRCH;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int sandbox_lockdown(const struct sandbox_lockdown *l) {
        static struct sandbox_filter_msg filter;
        _cleanup_free_ char *state_dir = NULL, *append_dir = NULL;
        _cleanup_close_ int filter_fd = -1;
        unsigned long last_cap = sandbox_cap_last_cap();
        int r, abi = 0;

        if (check_request(l) < 0)
                return log_error_errno(EINVAL, "Invalid sandbox lockdown request");
        r = take_filter(l->role, &filter, &filter_fd);
        if (r < 0)
                return log_error_errno(r, "Invalid seccomp filter from the supervisor: %m");
        r = resolve_dir(l->state_dir, &state_dir);
        if (r < 0)
                return log_error_errno(r, "Invalid state directory %s: %m", l->state_dir);
        r = resolve_dir(l->append_dir, &append_dir);
        if (r < 0)
                return log_error_errno(r, "Invalid append-only directory %s: %m", l->append_dir);
        /* Libraries that would otherwise open files lazily, later, from a root where they are gone:
         * jansson's hash seed (/dev/urandom) and the time zone (/etc/localtime). */
        json_object_seed(0);
        tzset();
        r = lockdown_mounts(l->role, state_dir);
        if (r < 0)
                return r;
        r = restore_pid1_signals();
        if (r < 0)
                return log_error_errno(r, "Failed to install pid 1 signal handlers: %m");
        r = set_rlimits(l->role);
        if (r < 0)
                return log_error_errno(r, "Failed to set sandbox rlimits: %m");
        r = sandbox_drop_caps(last_cap);
        if (r < 0)
                return log_error_errno(r, "Failed to drop capabilities: %m");
        if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return log_error_errno(errno, "Failed to clear the dumpable flag: %m");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return log_error_errno(errno, "Failed to set no_new_privs: %m");
        if (role_stages[l->role].landlock) {
                abi = sandbox_landlock_apply(l->role, state_dir, append_dir);
                if (abi < 0)
                        return log_error_errno(abi, "Failed to apply Landlock: %m");
        }
#ifndef BASTION_SANITIZERS
        if (role_stages[l->role].seccomp) {
                r = filter_fd >= 0 ? sandbox_filter_load(filter.insns, filter.len) : sandbox_seccomp_apply(l->role);
                if (r < 0)
                        return log_error_errno(r, "Failed to load the %s seccomp filter: %m",
                                               sandbox_role_to_string(l->role));
        }
#endif
        log_debug("Locked down as %s (Landlock ABI %d, %s filter)", sandbox_role_to_string(l->role), abi,
                  filter_fd >= 0 ? "precompiled" : "own");
        /* The very last step: the supervisor's end hangs up, it attests now. */
        filter_fd = safe_close(filter_fd);
        return 0;
}
