/* Pieces of the sandbox shared between its files (not for callers outside seccomp/ and its tests). */
#pragma once

#include <seccomp.h>
#include <stdint.h>

#include "sandbox.h"

/* Namespace flags: the set a worker gets, and the set nothing confined may create again. */
#define SANDBOX_WORKER_NS_FLAGS (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | \
                                 CLONE_NEWIPC | CLONE_NEWUTS)
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

/* Builds the role's filter without loading it (the tests export and inspect it). */
int sandbox_filter_build(enum sandbox_role role, scmp_filter_ctx *ret);
int sandbox_seccomp_apply(enum sandbox_role role);

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
