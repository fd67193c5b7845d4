/* Pieces of the sandbox shared between its files (not for callers outside seccomp/ and its tests). */
#pragma once

#include <linux/filter.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdint.h>

#include "sandbox.h"

/* Namespace flags: the set a worker gets, and the set nothing confined may create again. */
#define SANDBOX_WORKER_NS_FLAGS (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | \
                                 CLONE_NEWIPC | CLONE_NEWUTS)
/* What sandbox_spawn() clones a worker into: all of them but the mount namespace, which the worker's
 * lockdown creates itself (it would anyway: see build_mount_tree). A mount namespace made by the clone
 * would be dropped again by that unshare, and tearing one down waits for an RCU grace period — the
 * most expensive single step of a spawn (docs/sandbox.md, "Spawn latency"). */
#define SANDBOX_SPAWN_NS_FLAGS (SANDBOX_WORKER_NS_FLAGS & ~CLONE_NEWNS)
#define SANDBOX_ALL_NS_FLAGS (SANDBOX_WORKER_NS_FLAGS | CLONE_NEWCGROUP | CLONE_NEWTIME)

/* One role's seccomp policy as a readable table (seccomp/allowlists.c). */
struct sandbox_errno_rule {
        const char *syscall;
        int error;
};

struct sandbox_policy {
        const char *const *allow;               /* allowed unconditionally, NULL-terminated */
        const struct sandbox_errno_rule *deny;  /* answered with an errno, {NULL,0}-terminated */
        const unsigned long *ioctls;            /* allowed ioctl commands (low 32 bits), 0-terminated */
        const unsigned long *ioctls_eperm;      /* answered EPERM (the kernel would refuse them too) */
        bool exec;                              /* execve and PROT_EXEC mappings allowed */
        bool open_create_only;                  /* openat only O_CREAT|O_EXCL|O_APPEND, no O_PATH;
                                                 * any other openat → EACCES (Landlock says where) */
        bool socketpair_unix;                   /* socketpair(AF_UNIX) allowed, any other family → EACCES */
};

extern const struct sandbox_policy sandbox_policies[_SANDBOX_ROLE_MAX];

/* Builds the role's filter without loading it (the tests export and inspect it). The filter names the
 * process's own pid (tgkill on itself only): sandbox_filter_build() takes getpid(), the _for variant
 * the pid the process will have (1 for a spawned worker, pid 1 of its pid namespace). */
int sandbox_filter_build(enum sandbox_role role, scmp_filter_ctx *ret);
int sandbox_filter_build_for(enum sandbox_role role, pid_t self, scmp_filter_ctx *ret);
int sandbox_seccomp_apply(enum sandbox_role role);

/* The precompiled filter a spawned worker loads instead of compiling its own (spawn.c, lockdown.c):
 * the supervisor compiles each role once (for pid 1), exports the BPF and sends it, as one message
 * of this layout, over a SOCK_SEQPACKET socketpair whose other end the child inherits at the fd
 * named by SANDBOX_FILTER_FD_ENV. The child closes its end as the last step of its lockdown, so the
 * supervisor's end hangs up exactly when the child is ready to be attested (or dead). */
#define SANDBOX_FILTER_MAGIC 0x42534346u        /* "BSCF" */
struct sandbox_filter_msg {
        uint32_t magic;
        uint32_t role;
        uint32_t len;                           /* instructions that follow, 1..BPF_MAXINSNS */
        uint32_t reserved;                      /* 0 */
        struct sock_filter insns[BPF_MAXINSNS];
};
#define SANDBOX_FILTER_MSG_SIZE(n) (offsetof(struct sandbox_filter_msg, insns) + (size_t) (n) * sizeof(struct sock_filter))

/* The role's filter for pid 1, compiled on the first call and kept for the life of the process. */
int sandbox_filter_program(enum sandbox_role role, const struct sandbox_filter_msg **ret);
/* Loads a BPF program as the process's seccomp filter (no_new_privs must be set). */
int sandbox_filter_load(const struct sock_filter *insns, unsigned len);

/* Applies the role's Landlock ruleset: state_dir read-write (worker), append_dir create-and-write
 * (broker), nothing else. Returns the ABI applied (0: kernel has none) or -errno. */
int sandbox_landlock_apply(enum sandbox_role role, const char *state_dir, const char *append_dir);

/* Drops every capability: securebits locked, bounding set, ambient, then eff/prm/inh. The first
 * part alone (which needs CAP_SETPCAP) and the second alone are there for the spawn path, which
 * switches uid between the two. */
int sandbox_drop_caps(unsigned long last_cap);
int sandbox_drop_bounding_caps(unsigned long last_cap);
int sandbox_clear_cap_sets(void);
bool sandbox_have_cap(int cap);         /* in the effective set */
unsigned long sandbox_cap_last_cap(void);
