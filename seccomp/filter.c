/* Builds and loads a role's seccomp filter from its table (allowlists.c) plus the rules every role
 * shares. Default and bad architecture (i386 via int 0x80, x32) both kill the whole process. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>
#include <linux/seccomp.h>

#include "sandbox-internal.h"
#include "util.h"

static const unsigned long namespace_flags[] = {
        CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
        CLONE_NEWCGROUP,
};

static int add_named(scmp_filter_ctx ctx, uint32_t action, const char *name) {
        int nr = seccomp_syscall_resolve_name(name);

        if (nr == __NR_SCMP_ERROR)
                return -EINVAL;         /* a typo in a table must not silently allow nothing */
        return seccomp_rule_add(ctx, action, nr, 0);
}

/* clone for fork and threads only; namespace flags get EPERM. clone3 hides its flags in memory
 * that BPF cannot read, so it answers ENOSYS and glibc falls back to clone. */
static int add_clone_rules(scmp_filter_ctx ctx) {
        int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                                 SCMP_A0_64(SCMP_CMP_MASKED_EQ, SANDBOX_ALL_NS_FLAGS, 0));

        for (size_t i = 0; r >= 0 && i < sizeof(namespace_flags) / sizeof(namespace_flags[0]); i++)
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                                     SCMP_A0_64(SCMP_CMP_MASKED_EQ, namespace_flags[i], namespace_flags[i]));
        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
        return r;
}

/* The kernel truncates the ioctl command to 32 bits, so compare only those: TIOCSTI with high bits
 * set is still TIOCSTI. isatty() probes with TCGETS. */
static int add_ioctl_rules(scmp_filter_ctx ctx, const unsigned long *cmds, const unsigned long *eperm) {
        int r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                                 SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xffffffffULL, TIOCSTI));

        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOTTY), SCMP_SYS(ioctl), 1,
                                     SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xffffffffULL, TCGETS));
        for (; r >= 0 && cmds && *cmds; cmds++)
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                                     SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xffffffffULL, *cmds));
        for (; r >= 0 && eperm && *eperm; eperm++)
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                                     SCMP_A1_64(SCMP_CMP_MASKED_EQ, 0xffffffffULL, *eperm));
        return r;
}

/* The broker's only open after lockdown is the next audit file: O_CREAT|O_EXCL|O_APPEND, so no
 * existing file (an older log, or anything Landlock would let it write) can be reopened and
 * rewritten. O_PATH would drop O_CREAT and open any existing path, so it is refused too. Every other
 * openat gets EACCES, as an open the code merely tries. (A rule without conditions would override
 * conditional ones in libseccomp, so the complement is spelled out, one rule per missing bit.) */
static int add_open_create_only_rules(scmp_filter_ctx ctx) {
        const uint32_t need = O_CREAT | O_EXCL | O_APPEND;
        int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1,
                                 SCMP_A2_32(SCMP_CMP_MASKED_EQ, need | O_PATH, need));

        for (uint32_t bit = 1; r >= 0 && bit; bit <<= 1)
                if (need & bit)
                        r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 1,
                                             SCMP_A2_32(SCMP_CMP_MASKED_EQ, bit, 0));
        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 1,
                                     SCMP_A2_32(SCMP_CMP_MASKED_EQ, O_PATH, O_PATH));
        return r;
}

/* Channels are unix socketpairs; any other family could autoload a protocol module. */
static int add_socketpair_rules(scmp_filter_ctx ctx) {
        int r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1,
                                 SCMP_A0_32(SCMP_CMP_EQ, AF_UNIX));

        return r < 0 ? r : seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(socketpair), 1,
                                            SCMP_A0_32(SCMP_CMP_NE, AF_UNIX));
}

/* No new executable memory (no memfd or JIT payloads) unless the role runs an interpreter. */
static int add_memory_rules(scmp_filter_ctx ctx, bool exec) {
        int r;

        if (exec) {
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 0);
                return r < 0 ? r : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 0);
        }
        r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                             SCMP_A2_64(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
        if (r >= 0)
                r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
                                     SCMP_A2_64(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
        return r;
}

/* SQLite fixes a journal's mode with fchmod; a setuid or setgid bit is never part of that. */
static int add_fchmod_rule(scmp_filter_ctx ctx) {
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fchmod), 1,
                                SCMP_A1_32(SCMP_CMP_MASKED_EQ, S_ISUID | S_ISGID, 0));
}

/* abort() and raise() signal the process itself; nothing else may be signalled. */
static int add_signal_rules(scmp_filter_ctx ctx, pid_t self) {
        return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
                                SCMP_A0_32(SCMP_CMP_EQ, (uint32_t) self));
}

static int build_rules(scmp_filter_ctx ctx, const struct sandbox_policy *p, pid_t self) {
        int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);

        for (const char *const *n = p->allow; r >= 0 && *n; n++)
                r = add_named(ctx, SCMP_ACT_ALLOW, *n);
        for (const struct sandbox_errno_rule *d = p->deny; r >= 0 && d->syscall; d++)
                r = add_named(ctx, SCMP_ACT_ERRNO(d->error), d->syscall);
        if (r >= 0)
                r = add_clone_rules(ctx);
        if (r >= 0)
                r = add_ioctl_rules(ctx, p->ioctls, p->ioctls_eperm);
        if (r >= 0 && p->open_create_only)
                r = add_open_create_only_rules(ctx);
        if (r >= 0 && p->socketpair_unix)
                r = add_socketpair_rules(ctx);
        if (r >= 0)
                r = add_memory_rules(ctx, p->exec);
        if (r >= 0)
                r = add_signal_rules(ctx, self);
        if (r >= 0)
                r = add_fchmod_rule(ctx);
        return r;
}

int sandbox_filter_build_for(enum sandbox_role role, pid_t self, scmp_filter_ctx *ret) {
        scmp_filter_ctx ctx;
        int r;

        if (role < 0 || role >= _SANDBOX_ROLE_MAX || self <= 0)
                return -EINVAL;
        ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
        if (!ctx)
                return -ENOMEM;
        r = build_rules(ctx, &sandbox_policies[role], self);
        if (r < 0) {
                seccomp_release(ctx);
                return r;
        }
        *ret = ctx;
        return 0;
}

int sandbox_filter_build(enum sandbox_role role, scmp_filter_ctx *ret) {
        return sandbox_filter_build_for(role, getpid(), ret);
}

/* libseccomp 2.5 exports BPF only to a file descriptor: through a memfd into memory. */
static int export_program(scmp_filter_ctx ctx, struct sandbox_filter_msg *msg) {
        _cleanup_close_ int fd = memfd_create("bastion-seccomp", MFD_CLOEXEC);
        struct stat st;
        ssize_t n;
        int r;

        if (fd < 0)
                return -errno;
        r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                return r;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_size <= 0 || st.st_size % sizeof(struct sock_filter) != 0 ||
            st.st_size > (off_t) sizeof(msg->insns))
                return -E2BIG;
        n = pread(fd, msg->insns, (size_t) st.st_size, 0);
        if (n != st.st_size)
                return n < 0 ? -errno : -EIO;
        msg->len = (uint32_t) (st.st_size / sizeof(struct sock_filter));
        return 0;
}

int sandbox_filter_program(enum sandbox_role role, const struct sandbox_filter_msg **ret) {
        static struct sandbox_filter_msg programs[_SANDBOX_ROLE_MAX];
        scmp_filter_ctx ctx;
        int r;

        if (role < 0 || role >= _SANDBOX_ROLE_MAX)
                return -EINVAL;
        if (programs[role].magic == SANDBOX_FILTER_MAGIC) {
                *ret = &programs[role];
                return 0;
        }
        r = sandbox_filter_build_for(role, 1, &ctx);
        if (r < 0)
                return r;
        r = export_program(ctx, &programs[role]);
        seccomp_release(ctx);
        if (r < 0)
                return r;
        programs[role].role = (uint32_t) role;
        programs[role].reserved = 0;
        programs[role].magic = SANDBOX_FILTER_MAGIC;
        *ret = &programs[role];
        return 0;
}

/* What seccomp_load() does with our attributes (no TSYNC, no logging flags; no_new_privs is already
 * set by the lockdown), without libseccomp having to compile anything first. */
int sandbox_filter_load(const struct sock_filter *insns, unsigned len) {
        struct sock_fprog prog = { .len = (unsigned short) len, .filter = (struct sock_filter *) insns };

        if (len == 0 || len > BPF_MAXINSNS)
                return -EINVAL;
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
                return -errno;
        return 0;
}

int sandbox_seccomp_apply(enum sandbox_role role) {
        scmp_filter_ctx ctx;
        int r = sandbox_filter_build(role, &ctx);

        if (r < 0)
                return r;
        r = seccomp_load(ctx);
        seccomp_release(ctx);
        return r;
}
