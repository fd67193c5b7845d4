/* The kernel sandbox (DESIGN §3): how the supervisor starts a confined process, how that process
 * locks itself down after its own initialisation, and how the supervisor attests the result. */
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

/* Supervisor side: fork + (namespaces, uid maps, fd layout, credential drop) + exec. */
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
};

int sandbox_spawn(const struct sandbox_spawn *s, pid_t *ret_pid);

/* Process side: called by the confined program after it has initialised its libraries and opened
 * what it needs, immediately before its main loop. Nothing after it may need a syscall outside the
 * role's allowlist. */
struct sandbox_lockdown {
        enum sandbox_role role;
        const char *state_dir;          /* kept read-write (workers) */
};

int sandbox_lockdown(const struct sandbox_lockdown *l);

/* Supervisor side: what /proc says about a running child. */
struct sandbox_attestation {
        int seccomp_mode;               /* 2 = filter */
        bool no_new_privs;
        uint64_t cap_inh, cap_prm, cap_eff, cap_bnd, cap_amb;
        uid_t host_uid;
        bool own_namespaces;            /* user, mnt, net, pid, ipc, uts all differ from ours */
        int landlock_abi;               /* as reported by the child at lockdown; -1 unknown */
        char reason[128];               /* why it failed, empty when ok */
};

/* Returns 0 when the child is confined as `role` requires (expected_uid checked when != (uid_t)-1),
 * -EPERM with ret->reason set when it is not, other negative errno when /proc cannot be read. */
int sandbox_attest(pid_t pid, enum sandbox_role role, uid_t expected_uid, struct sandbox_attestation *ret);
