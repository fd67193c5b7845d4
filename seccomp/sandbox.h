/* The kernel sandbox (DESIGN §3): how the supervisor starts a confined process, how that process
 * locks itself down after its own initialisation, and how the supervisor attests the result.
 * docs/sandbox.md describes every step, its order and why. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum sandbox_role {
        SANDBOX_ROLE_WORKER,
        SANDBOX_ROLE_BROKER,
        SANDBOX_ROLE_FRONT,
        SANDBOX_ROLE_EXEC_RUNTIME,
        _SANDBOX_ROLE_MAX,
};

/* Supervisor side: fork + (namespaces, uid maps, fd layout, credential drop) + exec.
 *
 * Role WORKER: the child is cloned into new user, net, pid, ipc and uts namespaces (its mount
 * namespace is made by its own sandbox_lockdown(), which needs one of its own anyway); the
 * supervisor maps uid/gid 0 inside to host_uid/host_gid outside ("0 HOSTUID 1"), and the exec'd
 * program is pid 1 of its pid namespace. It keeps only CAP_SYS_ADMIN and CAP_SETPCAP, and only
 * inside its own user namespace, so that sandbox_lockdown() can build its mount tree; lockdown
 * then drops them. host_uid must not be 0 and should be unused by any account.
 * Other roles: no namespaces yet; setgroups(0)/setresgid/setresuid to host_uid/host_gid, every
 * capability dropped (securebits locked), no_new_privs, then exec.
 *
 * Always: PR_SET_PDEATHSIG(SIGKILL), signal mask and dispositions reset, setsid, fds[] at 3, 4, …,
 * stdin and stdout on /dev/null, stderr kept, everything else closed, cwd "/", RLIMIT_CORE 0,
 * RLIMIT_AS = memory_max, no_new_privs, an environment reduced to BASTION_LOG_LEVEL and the
 * sanitizer options (plus CREDENTIALS_DIRECTORY when credentials_directory is set: the broker's
 * first start, whose store key may be a systemd credential). A failure in the child before exec is returned as its -errno (and logged
 * with the step that failed); the child is reaped. */
struct sandbox_spawn {
        const char *name;               /* for logs, e.g. "worker inventory" */
        enum sandbox_role role;
        char *const *argv;              /* argv[0]: absolute path of the binary */
        uid_t host_uid;                 /* workers: the dedicated host uid; 0 keeps root (broker) */
        gid_t host_gid;
        const char *state_dir;          /* workers: the only host directory they may see; NULL = none */
        const int *fds;                 /* placed at 3, 4, … in the child (-1 entries: left closed) */
        unsigned n_fds;
        uint64_t memory_max;            /* RLIMIT_AS in bytes; 0 = unlimited */
        bool credentials_directory;     /* pass $CREDENTIALS_DIRECTORY on (never to a worker) */
};

int sandbox_spawn(const struct sandbox_spawn *s, pid_t *ret_pid);

/* sandbox_spawn(), and for role WORKER a "ready" fd (else -1) for the caller to own: it hangs up
 * (POLLHUP; it is never readable or to be written) when the child has finished sandbox_lockdown(),
 * or died. Then is the time to attest; before it, attestation can only say "pending". A worker is
 * also handed its seccomp filter precompiled (once per process, for pid 1) on that socket's other
 * end, at fd 3 + n_fds, named by BASTION_SANDBOX_FILTER_FD in its environment; sandbox_lockdown()
 * loads it instead of compiling its own and closes it as its last step. The hang-up is a hint, not
 * a proof: the verdict is still sandbox_attest()'s, from /proc. */
#define SANDBOX_FILTER_FD_ENV "BASTION_SANDBOX_FILTER_FD"

int sandbox_spawn_notify(const struct sandbox_spawn *s, pid_t *ret_pid, int *ret_ready_fd);

/* Process side: called by the confined program after it has initialised its libraries and opened
 * what it needs, immediately before its main loop. A worker started by sandbox_spawn_notify() loads
 * the filter it was handed (it must then be pid 1 and the role must match); started any other way,
 * the process compiles its role's filter itself. Nothing after it may need a syscall outside the
 * role's allowlist. For workers, state_dir must be an existing directory (absolute, or relative to
 * the current directory); it stays reachable read-write at the same absolute path, and the current
 * directory becomes it. For the broker, append_dir (the audit log directory) is the only place it
 * may still open anything: new files only (O_CREAT|O_EXCL|O_APPEND), written, never removed,
 * renamed, truncated or reopened; the front opens nothing at all. Each field is refused (-EINVAL)
 * for a role it does not belong to. Returns 0 or a negative errno (already logged); on error the
 * process must exit, it is half confined. */
struct sandbox_lockdown {
        enum sandbox_role role;
        const char *state_dir;          /* kept read-write (worker, exec-runtime) */
        const char *append_dir;         /* new files may be created and appended to (broker) */
};

int sandbox_lockdown(const struct sandbox_lockdown *l);

/* Supervisor side: what /proc says about a running child. */
struct sandbox_attestation {
        int seccomp_mode;               /* 2 = filter */
        bool no_new_privs;
        uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
        uid_t host_uid;
        bool own_namespaces;            /* user, mnt, net, pid, ipc, uts all differ from ours */
        int landlock_abi;               /* applied by the lockdown (see sandbox_attest); -1 unknown */
        char reason[128];               /* why it failed, empty when ok */
};

/* Returns 0 when the child is confined as `role` requires (expected_uid checked when != (uid_t)-1),
 * -EPERM with ret->reason set when it is not, -EAGAIN (reason set) when a role that needs a filter
 * shows Seccomp 0 (its lockdown has not finished yet: retry until a deadline, then kill it), other
 * negative errno when /proc cannot be read (-ENOENT: the process is gone).
 * WORKER requires Seccomp 2, NoNewPrivs 1, all five capability sets 0, the expected uid and
 * namespaces different from the caller's. BROKER and FRONT require the same except the namespaces
 * (they keep the host's); they lock down after their start-up (the broker on its first
 * configuration), so they say -EAGAIN until then. landlock_abi is the ABI the
 * kernel offers (sandbox_landlock_abi()) when the child has completed its lockdown (Landlock is
 * applied before seccomp, and lockdown fails unless it applied every right that ABI knows),
 * else -1. */
int sandbox_attest(pid_t pid, enum sandbox_role role, uid_t expected_uid, struct sandbox_attestation *ret);

/* sandbox_attest() polled (every BASTION_SANDBOX_ATTEST_POLL_US) while it says -EAGAIN; -ETIMEDOUT
 * after timeout_ms (use BASTION_ATTEST_TIMEOUT_MS). Blocks: an event loop may rather call
 * sandbox_attest() from a timer. Lockdown takes a few milliseconds (bench/spawn). */
int sandbox_attest_wait(pid_t pid, enum sandbox_role role, uid_t expected_uid, unsigned timeout_ms,
                        struct sandbox_attestation *ret);

/* After a child died of SIGSYS: the system call its filter killed it for, as "name (nr)", from the
 * kernel's audit record in /dev/kmsg. -ENOENT when the record is not there (rate-limited, or taken
 * by auditd), -ENODEV when there is no /dev/kmsg (PrivateDevices=), other negative errno when it is
 * unreadable (ProtectKernelLogs=, no CAP_SYSLOG). Under the shipped unit expect no answer: the
 * kernel's record still reaches the journal. */
int sandbox_seccomp_culprit(pid_t pid, char *buf, size_t size);

/* The Landlock ABI version this kernel offers, 0 when Landlock is unavailable. */
int sandbox_landlock_abi(void);

/* The role's name ("worker", "broker", "front", "exec-runtime"), for logs. */
const char *sandbox_role_to_string(enum sandbox_role role);
