/* Per-role seccomp allowlists (DESIGN §3). Everything not listed kills the process. Calls listed under
 * `deny` are ones our code or its libraries may merely probe: they get an errno instead of a kill.
 * Rules every role shares (clone without namespace flags, clone3 → ENOSYS, ioctl on its low 32 bits,
 * mmap/mprotect without PROT_EXEC unless the role may exec, tgkill on itself only, fchmod without
 * setuid/setgid bits) are in filter.c.
 * x86-64 names; another architecture's filter is rejected at build time by an unknown name. */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <termios.h>

#include "sandbox-internal.h"

/* Memory, time, signals, exit: what any C program linked against glibc needs to keep running. */
#define ALLOW_RUNTIME                                                                           \
        "brk", "munmap", "mremap", "madvise", "futex", "set_robust_list", "get_robust_list",   \
        "rseq", "sched_yield", "sched_getaffinity", "getpid", "gettid", "getppid", "getuid",   \
        "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getpgrp", "uname",           \
        "getrandom", "clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep",      \
        "clock_nanosleep", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending",   \
        "rt_sigtimedwait", "sigaltstack", "restart_syscall", "exit", "exit_group", "wait4",     \
        "waitid", "getrlimit", "sysinfo", "close", "close_range", "dup", "dup3", "fcntl",       \
        "fstat", "newfstatat", "statx", "lseek"

/* Reading and writing fds it already holds, and waiting on them. */
#define ALLOW_FD_IO                                                                             \
        "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev",         \
        "poll", "ppoll", "select", "pselect6", "epoll_create1", "epoll_ctl", "epoll_wait",      \
        "epoll_pwait", "epoll_pwait2", "eventfd2", "timerfd_create", "timerfd_settime",         \
        "timerfd_gettime", "signalfd4", "recvfrom", "recvmsg", "sendto", "sendmsg", "shutdown", \
        "getsockopt", "getsockname", "getpeername"

/* SQLite in its state directory (Landlock confines the paths): files, locks, journal, WAL. */
#define ALLOW_SQLITE                                                                            \
        "openat", "fsync", "fdatasync", "ftruncate", "fallocate", "flock", "unlink", "unlinkat",\
        "rename", "renameat", "access", "faccessat", "faccessat2", "getcwd", "readlink",        \
        "readlinkat", "fchown", "getdents64", "fstatfs"

static const char *const worker_allow[] = { ALLOW_RUNTIME, ALLOW_FD_IO, ALLOW_SQLITE, NULL };

/* The broker keeps its sockets and files open from start-up and passes fds around: it accepts
 * connections on the listener it was given, makes channels (socketpair AF_UNIX only, filter.c) and
 * sealed memfds (credentials for workers, sealed with fcntl), writes and syncs its audit log, and
 * creates the next audit file on rotation (openat O_CREAT|O_EXCL|O_APPEND only, filter.c; Landlock
 * keeps it in the audit directory). libsodium mlock()s the keys it holds; messages to and from the front
 * go in batches (sendmmsg, recvmmsg). No exec, no new socket. */
static const char *const broker_allow[] = {
        ALLOW_RUNTIME, ALLOW_FD_IO, "accept", "accept4", "fsync", "fdatasync", "ftruncate", "pipe2",
        "memfd_create", "mlock", "munlock", "sendmmsg", "recvmmsg", NULL,
};
/* The front terminates TLS on the listener it was given and relays to the broker over fds it holds;
 * OpenSSL needs only getrandom (ALLOW_RUNTIME) once initialised; the broker's answers come in batches
 * (recvmmsg). It opens nothing. */
static const char *const front_allow[] = { ALLOW_RUNTIME, ALLOW_FD_IO, "accept", "accept4", "recvmmsg", NULL };

/* An external interpreter is exec'd inside the sandbox: it needs the dynamic loader's calls too. */
static const char *const exec_runtime_allow[] = {
        ALLOW_RUNTIME, ALLOW_FD_IO, ALLOW_SQLITE, "execve", "arch_prctl", "set_tid_address",
        "prlimit64", "pipe2", "mkdir", "mkdirat", "rmdir", NULL,
};

/* Probed, not needed: the caller copes with the errno (OpenSSH answers openat the same way). */
static const struct sandbox_errno_rule deny_common[] = {
        { "socket", EACCES },
        { "open", EACCES },
        { "prctl", EPERM },
        { "kill", EPERM },
        { "prlimit64", EPERM },
        { NULL, 0 },
};

static const struct sandbox_errno_rule deny_exec_runtime[] = {
        { "socket", EACCES },
        { "open", EACCES },
        { "prctl", EPERM },
        { "kill", EPERM },
        { NULL, 0 },
};

/* openat: EACCES unless the broker's create-only form (filter.c); openat2 hides its flags in memory
 * BPF cannot read, so it answers ENOSYS and glibc stays with openat. */
static const struct sandbox_errno_rule deny_broker[] = {
        { "socket", EACCES },
        { "open", EACCES },
        { "openat2", ENOSYS },
        { "prctl", EPERM },
        { "prlimit64", EPERM },
        { NULL, 0 },
};

static const struct sandbox_errno_rule deny_front[] = {
        { "socket", EACCES },
        { "openat", EACCES },
        { "open", EACCES },
        { "openat2", ENOSYS },
        { "prctl", EPERM },
        { "prlimit64", EPERM },
        { NULL, 0 },
};

static const unsigned long ioctls_fd[] = { FIONREAD, FIONBIO, FIOCLEX, FIONCLEX, 0 };
/* The audit log asks for the append-only inode flag (broker/audit): reading the flags is harmless;
 * setting them needs CAP_LINUX_IMMUTABLE, which the broker never has, so the filter gives the
 * kernel's own answer without entering filesystem code. */
static const unsigned long ioctls_broker[] = { FIONREAD, FIONBIO, FIOCLEX, FIONCLEX, FS_IOC_GETFLAGS, 0 };
static const unsigned long ioctls_broker_eperm[] = { FS_IOC_SETFLAGS, 0 };

const struct sandbox_policy sandbox_policies[_SANDBOX_ROLE_MAX] = {
        [SANDBOX_ROLE_WORKER] = { .allow = worker_allow, .deny = deny_common, .ioctls = ioctls_fd },
        [SANDBOX_ROLE_BROKER] = {
                .allow = broker_allow, .deny = deny_broker, .ioctls = ioctls_broker,
                .ioctls_eperm = ioctls_broker_eperm, .open_create_only = true, .socketpair_unix = true,
        },
        [SANDBOX_ROLE_FRONT] = { .allow = front_allow, .deny = deny_front, .ioctls = ioctls_fd },
        [SANDBOX_ROLE_EXEC_RUNTIME] = {
                .allow = exec_runtime_allow, .deny = deny_exec_runtime, .ioctls = ioctls_fd, .exec = true,
        },
};
