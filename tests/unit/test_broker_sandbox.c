/* The broker's and the front's lockdown, tried from the inside the way an attacker who took over the
 * process would. A forked child of this (root) test calls the same sandbox_lockdown() the real
 * bastion-broker calls (role BROKER, an audit directory as append_dir; or role FRONT), then runs
 * every attempt in a forked grandchild (a seccomp kill must not end the drill) and reports
 * "attempt\toutcome" lines; the test prints the table, checks each outcome exactly, checks the files
 * it planted are untouched, and attests the locked-down child as the supervisor does.
 * Then the real thing: bastiond with its real bastion-broker, whose /proc must show the filter, and
 * which must still serve a tool call and rotate its audit log on SIGHUP after its lockdown. */
#include "config.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"
#include "util.h"

#define KILLED (-SIGSYS)
#define OLD_LOG "audit-00000000000000000001.jsonl"
#define NEW_LOG "audit-00000000000000000002.jsonl"
#define HISTORY "{\"seq\":1,\"type\":\"start\"}\n"
#define CANARY "/etc/bastion-broker-sandbox-canary"

/* What the attempts work on; set up before the fork, as the supervisor's fds would be. */
static struct {
        char dir[64], audit[96], outside[96], old_log[160], new_log[160], other_sock[96], mcp_sock[96];
        int listener, client;           /* a listener "passed" to the broker, and a client queued on it */
        int spare_unix, spare_inet;     /* sockets made before lockdown: connect/bind must still fail */
        int tcp_port;
} t;

static int fail(void) { return errno ? errno : EIO; }

static int open_rc(const char *path, int flags) {
        int fd = open(path, flags | O_CLOEXEC, 0600);

        return fd < 0 ? fail() : 0;
}

/* ---- what the broker must still be able to do ---- */

static int create_and_append_audit_file(void) {
        int fd = openat(AT_FDCWD, t.new_log, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        int flags;

        if (fd < 0 || write(fd, "{\"seq\":2}\n", 10) != 10 || fdatasync(fd) < 0 || fsync(fd) < 0)
                return fail();
        /* broker/audit asks for the append-only flag: reading works, setting is the kernel's EPERM. */
        if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
                return fail();
        flags |= FS_APPEND_FL;
        if (ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0 || errno != EPERM)
                return EPROTO;
        return 0;
}

static int sealed_memfd(void) {
        int fd = memfd_create("credential", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        if (fd < 0 || write(fd, "rk_secret", 9) != 9 ||
            fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return fail();
        return write(fd, "x", 1) < 0 && errno == EPERM ? 0 : EPROTO;
}

static int accept_on_passed_listener(void) {
        int fd = accept4(t.listener, NULL, NULL, SOCK_CLOEXEC);

        if (fd < 0 || write(fd, "hello", 5) != 5)
                return fail();
        return 0;
}

/* A channel for a worker, its end passed over another unix socket. */
static int socketpair_and_pass_fd(void) {
        int pair[2], carrier[2];
        char c = 'x', cbuf[CMSG_SPACE(sizeof(int))] = {};
        struct iovec iov = { &c, 1 };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0 ||
            socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, carrier) < 0)
                return fail();
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &pair[1], sizeof(int));
        if (sendmsg(carrier[0], &mh, 0) != 1 || recvmsg(carrier[1], &mh, 0) != 1)
                return fail();
        return 0;
}

static int random_bytes(void) {
        char buf[32];

        return getrandom(buf, sizeof(buf), 0) == (ssize_t) sizeof(buf) ? 0 : fail();
}

/* ---- what it must not ---- */

static int exec_shell(void) {
        execve("/bin/sh", (char *[]) { "sh", "-c", "true", NULL }, (char *[]) { NULL });
        return fail();
}
static int socket_inet(void) { return socket(AF_INET, SOCK_STREAM, 0) < 0 ? fail() : 0; }
static int socket_inet6(void) { return socket(AF_INET6, SOCK_DGRAM, 0) < 0 ? fail() : 0; }
static int socket_netlink(void) { return socket(AF_NETLINK, SOCK_RAW, 0) < 0 ? fail() : 0; }
static int socket_unix(void) { return socket(AF_UNIX, SOCK_STREAM, 0) < 0 ? fail() : 0; }
static int socketpair_inet(void) {
        int p[2];

        return socketpair(AF_INET, SOCK_STREAM, 0, p) < 0 ? fail() : 0;
}
static int connect_unix_path(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        strncpy(sa.sun_path, t.other_sock, sizeof(sa.sun_path) - 1);
        return connect(t.spare_unix, (struct sockaddr *) &sa, sizeof(sa)) < 0 ? fail() : 0;
}
static int connect_tcp_localhost(void) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t) t.tcp_port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

        return connect(t.spare_inet, (struct sockaddr *) &sa, sizeof(sa)) < 0 ? fail() : 0;
}
static int bind_unix(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", t.outside);
        return bind(t.spare_unix, (struct sockaddr *) &sa, sizeof(sa)) < 0 ? fail() : 0;
}
static int read_shadow(void) { return open_rc("/etc/shadow", O_RDONLY); }
static int read_passwd(void) { return open_rc("/etc/passwd", O_RDONLY); }
static int read_proc_environ(void) { return open_rc("/proc/1/environ", O_RDONLY); }
static int read_old_log(void) { return open_rc(t.old_log, O_RDONLY); }
static int reopen_old_log_append(void) { return open_rc(t.old_log, O_WRONLY | O_APPEND); }
static int truncate_old_log(void) { return open_rc(t.old_log, O_WRONLY | O_TRUNC); }
static int o_path_shadow(void) { return open_rc("/etc/shadow", O_PATH | O_CREAT | O_EXCL | O_APPEND); }
static int openat2_shadow(void) {
        struct { uint64_t flags, mode, resolve; } how = { .flags = O_RDONLY };

        return syscall(SYS_openat2, AT_FDCWD, "/etc/shadow", &how, sizeof(how)) < 0 ? fail() : 0;
}
static int create_outside(void) {
        char p[160];

        snprintf(p, sizeof(p), "%s/x", t.outside);
        return open_rc(p, O_WRONLY | O_CREAT | O_EXCL | O_APPEND);
}
static int create_in_etc(void) { return open_rc(CANARY, O_WRONLY | O_CREAT | O_EXCL | O_APPEND); }
static int truncate_new_file(void) {
        char p[160];
        int fd;

        snprintf(p, sizeof(p), "%s/audit-scratch", t.audit);
        fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0 || write(fd, "abc", 3) != 3)
                return EIO;
        return ftruncate(fd, 0) < 0 ? fail() : 0;
}
static int unlink_old_log(void) { return unlink(t.old_log) < 0 ? fail() : 0; }
static int unlinkat_old_log(void) { return unlinkat(AT_FDCWD, t.old_log, 0) < 0 ? fail() : 0; }
static int rename_old_log(void) {
        char p[160];

        snprintf(p, sizeof(p), "%s/renamed", t.audit);
        return rename(t.old_log, p) < 0 ? fail() : 0;
}
static int renameat2_old_log(void) {
        char p[160];

        snprintf(p, sizeof(p), "%s/renamed", t.audit);
        return syscall(SYS_renameat2, AT_FDCWD, t.old_log, AT_FDCWD, p, 0) < 0 ? fail() : 0;
}
static int link_old_log_out(void) {
        char p[160];

        snprintf(p, sizeof(p), "%s/linked", t.outside);
        return link(t.old_log, p) < 0 ? fail() : 0;
}
static int mkdir_in_audit(void) {
        char p[160];

        snprintf(p, sizeof(p), "%s/sub", t.audit);
        return mkdir(p, 0700) < 0 ? fail() : 0;
}
static int symlink_in_audit(void) {
        char p[160];

        snprintf(p, sizeof(p), "%s/shadow", t.audit);
        return symlink("/etc/shadow", p) < 0 ? fail() : 0;
}
static int chmod_shadow(void) { return chmod("/etc/shadow", 0644) < 0 ? fail() : 0; }
static int ptrace_init(void) { return syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, 1, 0, 0) < 0 ? fail() : 0; }
static int kill_init(void) { return kill(1, 0) < 0 ? fail() : 0; }
static int kill_all(void) { return kill(-1, 0) < 0 ? fail() : 0; }
static int mount_tmpfs(void) { return mount("tmpfs", t.outside, "tmpfs", 0, NULL) < 0 ? fail() : 0; }
static int unshare_user(void) { return unshare(CLONE_NEWUSER) < 0 ? fail() : 0; }
static int unshare_mount(void) { return unshare(CLONE_NEWNS) < 0 ? fail() : 0; }
static int clone_newuser(void) {
        long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);

        if (pid == 0)
                _exit(0);
        return pid < 0 ? fail() : 0;
}
static int setns_init(void) { return syscall(SYS_setns, -1, CLONE_NEWNS) < 0 ? fail() : 0; }
static int make_dumpable(void) { return prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0 ? fail() : 0; }
static int memfd_exec_mapping(void) {
        int fd = memfd_create("code", MFD_CLOEXEC);

        if (fd < 0 || ftruncate(fd, 4096) < 0)
                return EIO;
        return mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0) == MAP_FAILED ? fail() : 0;
}
static int setresuid_other(void) { return syscall(SYS_setresuid, 1, 1, 1) < 0 ? fail() : 0; }
static int process_vm_readv_init(void) {
        char buf[8];
        struct iovec l = { buf, sizeof(buf) }, r = { (void *) 0x400000, sizeof(buf) };

        return syscall(SYS_process_vm_readv, 1, &l, 1, &r, 1, 0) < 0 ? fail() : 0;
}
static int bpf_prog(void) { return syscall(SYS_bpf, 5 /* BPF_PROG_LOAD */, NULL, 0) < 0 ? fail() : 0; }
static int io_uring(void) { return syscall(SYS_io_uring_setup, 1, NULL) < 0 ? fail() : 0; }
static int keyctl_join(void) { return syscall(SYS_keyctl, 1 /* JOIN_SESSION_KEYRING */, NULL) < 0 ? fail() : 0; }

struct attempt {
        const char *what;
        int (*fn)(void);
        int broker, front;              /* 0 = it worked, an errno, or KILLED (SIGSYS) */
};

static const struct attempt attempts[] = {
        /* allowed for the broker */
        { "create+append+fsync a new file in the audit dir", create_and_append_audit_file, 0, EACCES },
        { "memfd_create + write + F_ADD_SEALS", sealed_memfd, 0, KILLED },
        { "accept4 on the passed listener, write", accept_on_passed_listener, 0, 0 },
        { "socketpair(AF_UNIX) + pass an fd (SCM_RIGHTS)", socketpair_and_pass_fd, 0, KILLED },
        { "getrandom", random_bytes, 0, 0 },
        /* blocked */
        { "execve /bin/sh", exec_shell, KILLED, KILLED },
        { "socket(AF_INET)", socket_inet, EACCES, EACCES },
        { "socket(AF_INET6)", socket_inet6, EACCES, EACCES },
        { "socket(AF_NETLINK)", socket_netlink, EACCES, EACCES },
        { "socket(AF_UNIX)", socket_unix, EACCES, EACCES },
        { "socketpair(AF_INET)", socketpair_inet, EACCES, KILLED },
        { "connect a held AF_UNIX socket to a path", connect_unix_path, KILLED, KILLED },
        { "connect a held socket to 127.0.0.1", connect_tcp_localhost, KILLED, KILLED },
        { "bind a held AF_UNIX socket", bind_unix, KILLED, KILLED },
        { "open /etc/shadow", read_shadow, EACCES, EACCES },
        { "open /etc/passwd", read_passwd, EACCES, EACCES },
        { "open /proc/1/environ", read_proc_environ, EACCES, EACCES },
        { "open an old audit file for reading", read_old_log, EACCES, EACCES },
        { "reopen an old audit file O_APPEND", reopen_old_log_append, EACCES, EACCES },
        { "open an old audit file O_TRUNC", truncate_old_log, EACCES, EACCES },
        { "O_PATH|O_CREAT|O_EXCL|O_APPEND /etc/shadow", o_path_shadow, EACCES, EACCES },
        { "openat2 /etc/shadow", openat2_shadow, ENOSYS, ENOSYS },
        { "create a file outside the audit dir", create_outside, EACCES, EACCES },
        { "create " CANARY, create_in_etc, EACCES, EACCES },
        { "ftruncate a file created after lockdown", truncate_new_file, EACCES, EIO },
        { "unlink an old audit file", unlink_old_log, KILLED, KILLED },
        { "unlinkat an old audit file", unlinkat_old_log, KILLED, KILLED },
        { "rename an old audit file", rename_old_log, KILLED, KILLED },
        { "renameat2 an old audit file", renameat2_old_log, KILLED, KILLED },
        { "hard-link an old audit file out", link_old_log_out, KILLED, KILLED },
        { "mkdir in the audit dir", mkdir_in_audit, KILLED, KILLED },
        { "symlink in the audit dir", symlink_in_audit, KILLED, KILLED },
        { "chmod /etc/shadow", chmod_shadow, KILLED, KILLED },
        { "ptrace(ATTACH, 1)", ptrace_init, KILLED, KILLED },
        { "kill(1, 0)", kill_init, KILLED, KILLED },
        { "kill(-1, 0)", kill_all, KILLED, KILLED },
        { "mount tmpfs", mount_tmpfs, KILLED, KILLED },
        { "unshare(CLONE_NEWUSER)", unshare_user, KILLED, KILLED },
        { "unshare(CLONE_NEWNS)", unshare_mount, KILLED, KILLED },
        { "clone(CLONE_NEWUSER)", clone_newuser, EPERM, EPERM },
        { "setns", setns_init, KILLED, KILLED },
        { "prctl(PR_SET_DUMPABLE, 1)", make_dumpable, EPERM, EPERM },
        { "mmap PROT_EXEC of a memfd", memfd_exec_mapping, KILLED, KILLED },
        { "setresuid(1)", setresuid_other, KILLED, KILLED },
        { "process_vm_readv(1)", process_vm_readv_init, KILLED, KILLED },
        { "bpf(PROG_LOAD)", bpf_prog, KILLED, KILLED },
        { "io_uring_setup", io_uring, KILLED, KILLED },
        { "keyctl", keyctl_join, KILLED, KILLED },
};

/* In the locked-down process: one grandchild per attempt, one line per outcome. */
static int run_attempt(const struct attempt *a) {
        int status;
        pid_t pid = fork();

        if (pid < 0)
                return -1000;
        if (pid == 0) {
                errno = 0;
                _exit(a->fn());
        }
        if (waitpid(pid, &status, 0) != pid)
                return -1001;
        return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

static const char *outcome_name(int o, char *buf, size_t size) {
        if (o == 0)
                return "allowed";
        if (o < 0)
                snprintf(buf, size, "killed (SIG%s)", sigabbrev_np(-o) ?: "?");
        else
                snprintf(buf, size, "blocked (%s)", strerrorname_np(o) ?: "?");
        return buf;
}

static int unix_listener(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        cr_assert_geq(fd, 0);
        strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
        cr_assert_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        cr_assert_eq(listen(fd, 8), 0);
        return fd;
}

static int tcp_listener(int *ret_port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        cr_assert_geq(fd, 0);
        cr_assert_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        cr_assert_eq(listen(fd, 8), 0);
        cr_assert_eq(getsockname(fd, (struct sockaddr *) &sa, &len), 0);
        *ret_port = ntohs(sa.sin_port);
        return fd;
}

static void write_file(const char *path, const char *content) {
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

        cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
        cr_assert_eq(write(fd, content, strlen(content)), (ssize_t) strlen(content));
        close(fd);
}

static char *read_file(const char *path) {
        static char buf[256];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n;

        cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        cr_assert_geq(n, 0);
        buf[n] = '\0';
        return buf;
}

static void setup(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

#ifdef BASTION_SANITIZERS
        return;                 /* the tests skip themselves, and criterion runs no .fini after a skip */
#endif
        strcpy(t.dir, "/tmp/bastion-broker-box.XXXXXX");
        cr_assert_not_null(mkdtemp(t.dir));
        snprintf(t.audit, sizeof(t.audit), "%s/audit", t.dir);
        snprintf(t.outside, sizeof(t.outside), "%s/outside", t.dir);
        snprintf(t.old_log, sizeof(t.old_log), "%s/" OLD_LOG, t.audit);
        snprintf(t.new_log, sizeof(t.new_log), "%s/" NEW_LOG, t.audit);
        snprintf(t.other_sock, sizeof(t.other_sock), "%s/control.sock", t.dir);
        snprintf(t.mcp_sock, sizeof(t.mcp_sock), "%s/mcp.sock", t.dir);
        cr_assert_eq(mkdir(t.audit, 0700), 0);
        cr_assert_eq(mkdir(t.outside, 0755), 0);
        write_file(t.old_log, HISTORY);
        (void) unix_listener(t.other_sock);
        (void) tcp_listener(&t.tcp_port);
        t.listener = unix_listener(t.mcp_sock);
        t.client = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        strncpy(sa.sun_path, t.mcp_sock, sizeof(sa.sun_path) - 1);
        cr_assert_eq(connect(t.client, (struct sockaddr *) &sa, sizeof(sa)), 0);
        t.spare_unix = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        t.spare_inet = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert(t.spare_unix >= 0 && t.spare_inet >= 0);
        (void) unlink(CANARY);
}

static void teardown(void) {
        char cmd[128];

        if (!t.dir[0])
                return;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t.dir);
        if (system(cmd) != 0)
                cr_log_warn("could not remove %s", t.dir);
}

/* Forks the locked-down process: it reports "index outcome" lines on *ret_results, then waits for
 * *ret_hold to close before it exits (so that it can be attested meanwhile). */
static pid_t spawn_locked(enum sandbox_role role, int *ret_results, int *ret_hold) {
        int res[2], hold[2];
        pid_t pid;

        cr_assert_eq(pipe2(res, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(hold, O_CLOEXEC), 0);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                char line[32], c;

                close(res[0]);
                close(hold[1]);
                if (sandbox_lockdown(&(struct sandbox_lockdown) {
                            .role = role, .append_dir = role == SANDBOX_ROLE_BROKER ? t.audit : NULL }) < 0)
                        _exit(100);
                for (size_t i = 0; i < ELEMENTSOF(attempts); i++) {
                        int n = snprintf(line, sizeof(line), "%zu %d\n", i, run_attempt(&attempts[i]));

                        if (write(res[1], line, (size_t) n) != n)
                                _exit(101);
                }
                close(res[1]);
                _exit(read(hold[0], &c, 1) == 0 ? 0 : 102);
        }
        close(res[1]);
        close(hold[0]);
        *ret_results = res[0];
        *ret_hold = hold[1];
        return pid;
}

static void check_table(enum sandbox_role role, int results) {
        FILE *f = fdopen(results, "re");
        char buf[64], line[64];
        int failures = 0, seen = 0;
        size_t i;
        int got;

        cr_assert_not_null(f);
        printf("%s after sandbox_lockdown():\n", sandbox_role_to_string(role));
        while (fgets(line, sizeof(line), f) && sscanf(line, "%zu %d", &i, &got) == 2 && i < ELEMENTSOF(attempts)) {
                const struct attempt *a = &attempts[i];
                int want = role == SANDBOX_ROLE_BROKER ? a->broker : a->front;
                char wbuf[64];

                printf("  %-48s → %-24s%s\n", a->what, outcome_name(got, buf, sizeof(buf)),
                       got == want ? "" : "  UNEXPECTED");
                if (got != want) {
                        cr_log_error("%s: %s: got %s, want %s", sandbox_role_to_string(role), a->what,
                                     outcome_name(got, buf, sizeof(buf)), outcome_name(want, wbuf, sizeof(wbuf)));
                        failures++;
                }
                seen++;
        }
        fclose(f);
        fflush(stdout);
        cr_assert_eq(seen, (int) ELEMENTSOF(attempts), "the locked-down process reported %d of %zu attempts",
                     seen, ELEMENTSOF(attempts));
        cr_assert_eq(failures, 0, "%d attempts behave differently from the %s profile", failures,
                     sandbox_role_to_string(role));
}

/* As the supervisor sees it: Seccomp 2, no_new_privs, no capabilities, uid 0 (the broker keeps root's
 * DAC identity), and the host's namespaces. */
static void check_attested(pid_t pid, enum sandbox_role role) {
        struct sandbox_attestation a;

        cr_assert_eq(sandbox_attest(pid, role, 0, &a), 0, "%s", a.reason);
        cr_assert_eq(a.seccomp_mode, 2);
        cr_assert(a.no_new_privs);
        cr_assert_eq(a.cap_inh | a.cap_prm | a.cap_eff | a.cap_bnd | a.cap_amb, 0);
        cr_assert_not(a.own_namespaces);
        cr_assert_eq(a.landlock_abi, sandbox_landlock_abi());
        cr_assert_eq(sandbox_attest(pid, role, 12345, &a), -EPERM);
}

static void drill(enum sandbox_role role) {
        int results, hold, status;
        pid_t pid;

        cr_assert_geq(sandbox_landlock_abi(), 3, "this drill expects Landlock with the truncate right");
        pid = spawn_locked(role, &results, &hold);
        check_table(role, results);
        check_attested(pid, role);
        close(hold);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "locked-down process status %#x", status);
}

/* Nothing the attempts were refused left a trace; the old history is intact. */
static void check_untouched(void) {
        struct stat st;

        cr_assert_str_eq(read_file(t.old_log), HISTORY);
        cr_assert_eq(stat(CANARY, &st), -1);
        cr_assert_eq(rmdir(t.outside), 0, "something was created outside the audit dir");
}

Test(broker_sandbox, attacker_in_the_broker, .init = setup, .fini = teardown, .timeout = 60) {
        char hello[8] = {};

#ifdef BASTION_SANITIZERS
        cr_skip_test("the sanitizer build loads no seccomp filter");
#endif
        drill(SANDBOX_ROLE_BROKER);
        check_untouched();
        cr_assert_str_eq(read_file(t.new_log), "{\"seq\":2}\n");
        /* The connection the locked-down broker accepted is the one queued by our client. */
        cr_assert_eq(read(t.client, hello, 5), 5);
        cr_assert_str_eq(hello, "hello");
}

Test(broker_sandbox, attacker_in_the_front, .init = setup, .fini = teardown, .timeout = 60) {
        char hello[8] = {};
        struct stat st;

#ifdef BASTION_SANITIZERS
        cr_skip_test("the sanitizer build loads no seccomp filter");
#endif
        drill(SANDBOX_ROLE_FRONT);
        check_untouched();
        cr_assert_eq(stat(t.new_log, &st), -1, "the front created a file");
        cr_assert_eq(read(t.client, hello, 5), 5);
        cr_assert_str_eq(hello, "hello");
}

/* A directory for a role that does not use it would silently stay unreachable (or, for a worker,
 * writable where nobody meant it): refused before anything is applied. */
Test(broker_sandbox, refuses_directories_for_the_wrong_role) {
        cr_assert_eq(sandbox_lockdown(&(struct sandbox_lockdown) { .role = SANDBOX_ROLE_WORKER, .append_dir = "/tmp" }),
                     -EINVAL);
        cr_assert_eq(sandbox_lockdown(&(struct sandbox_lockdown) { .role = SANDBOX_ROLE_FRONT, .append_dir = "/tmp" }),
                     -EINVAL);
        cr_assert_eq(sandbox_lockdown(&(struct sandbox_lockdown) { .role = SANDBOX_ROLE_BROKER, .state_dir = "/tmp" }),
                     -EINVAL);
        cr_assert_eq(sandbox_lockdown(&(struct sandbox_lockdown) {
                             .role = SANDBOX_ROLE_BROKER, .append_dir = "/nonexistent/audit" }), -ENOENT);
        /* Still unconfined: */
        cr_assert_eq(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0), 0);
}

/* ---- the real broker under bastiond ---- */

#define REAL_UID_MIN 4000240            /* a block no account and no other test uses */
#define REAL_TIMEOUT_MS 15000

static char real_dir[64];

static void closedirp(DIR **d) {
        if (*d)
                closedir(*d);
}
#define _cleanup_closedir_ _cleanup_(closedirp)

static uint64_t ms_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

static void write_real_config(const char *path) {
        FILE *f = fopen(path, "we");

        cr_assert_not_null(f);
        fprintf(f,
                "bastion = {\n"
                "  socket = \"%1$s/run/mcp.sock\"; control_socket = \"%1$s/run/control.sock\";\n"
                "  state_dir = \"%1$s/state\"; runtime_dir = \"%1$s/run\"; libexec_dir = \"" BUILD_DIR "\";\n"
                "  audit_dir = \"%1$s/audit\"; secrets_key_file = \"%1$s/secrets.key\";\n"
                "  worker_uids = [ %2$d, %3$d ];\n"
                "};\n"
                "roles = { manager = { scopes = [ \"inventory:read\" ]; }; };\n"
                "users = ( { user = \"root\"; role = \"manager\"; } );\n"
                "servers = { inventory = { domain = \"inventory\"; demo_data = true;\n"
                "  tools = { get_stock = { scopes = [ \"inventory:read\" ]; }; }; }; };\n",
                real_dir, REAL_UID_MIN, REAL_UID_MIN + 15);
        cr_assert_eq(fclose(f), 0);
}

static pid_t start_bastiond(void) {
        char conf[128], log[128];
        pid_t pid;

        snprintf(conf, sizeof(conf), "%s/test.conf", real_dir);
        snprintf(log, sizeof(log), "%s/bastiond.log", real_dir);
        write_real_config(conf);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

                if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
                        _exit(127);
                execl(BUILD_DIR "/bastiond", "bastiond", "--config", conf, (char *) NULL);
                _exit(127);
        }
        return pid;
}

/* The child of bastiond running bastion-broker, or 0. */
static pid_t find_broker(pid_t daemon) {
        _cleanup_closedir_ DIR *d = opendir("/proc");
        struct dirent *de;

        cr_assert_not_null(d);
        while ((de = readdir(d))) {
                char path[300], buf[512];
                int ppid = 0, fd;
                ssize_t n;
                char *p;

                if (de->d_name[0] < '1' || de->d_name[0] > '9')
                        continue;
                snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
                fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        continue;
                n = read(fd, buf, sizeof(buf) - 1);
                close(fd);
                if (n <= 0)
                        continue;
                buf[n] = '\0';
                p = strrchr(buf, ')');
                if (!p || sscanf(p + 2, "%*c %d", &ppid) != 1 || ppid != daemon)
                        continue;
                if (strstr(buf, "(bastion-broker)"))
                        return (pid_t) atoi(de->d_name);
        }
        return 0;
}

static pid_t await_attested_broker(pid_t daemon) {
        uint64_t deadline = ms_now() + REAL_TIMEOUT_MS;
        struct sandbox_attestation a = {};
        pid_t broker = 0;
        int r = -ESRCH;

        while (ms_now() < deadline) {
                broker = broker ?: find_broker(daemon);
                /* Its own uid: bastion.broker_uid unset, the one right below the worker range. */
                if (broker && (r = sandbox_attest(broker, SANDBOX_ROLE_BROKER, REAL_UID_MIN - 1, &a)) == 0)
                        return broker;
                /* Gone: on a first start that was `bastion-broker --first-start`, which creates the
                 * store and exits before the broker proper starts. */
                if (r == -ENOENT || r == -ESRCH)
                        broker = 0;
                usleep(20000);
        }
        cr_assert_fail("the broker (pid %d) was not attested: %s %s", (int) broker, strerror(-r), a.reason);
        return 0;
}

/* One line from a unix stream socket with a receive timeout. */
static bool read_line(int fd, char *buf, size_t size) {
        size_t n = 0;

        while (n + 1 < size) {
                ssize_t k = read(fd, buf + n, 1);

                if (k <= 0)
                        return false;
                if (buf[n] == '\n')
                        break;
                n++;
        }
        buf[n] = '\0';
        return true;
}

/* A whole session over the broker's socket: preamble, initialize, initialized, one tool call. */
static bool tool_call_works(void) {
        static const char *const requests[] = {
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":"
                "\"2025-11-25\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"0\"}}}\n",
                "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n",
                "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"get_stock\","
                "\"arguments\":{\"sku\":\"SKU-1001\"}}}\n",
        };
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct timeval tv = { .tv_sec = 5 };
        static char line[65536];
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/run/mcp.sock", real_dir);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
            connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || dprintf(fd, "server inventory\n") < 0 ||
            !read_line(fd, line, sizeof(line)) || !streq(line, "ok"))
                return false;
        for (size_t i = 0; i < ELEMENTSOF(requests); i++) {
                if (write(fd, requests[i], strlen(requests[i])) != (ssize_t) strlen(requests[i]))
                        return false;
                if (i != 1 && !read_line(fd, line, sizeof(line)))
                        return false;
        }
        return strstr(line, "\"id\":2") && strstr(line, "on hand") && !strstr(line, "isError\":true");
}

static unsigned count_audit_files(void) {
        char path[128];
        _cleanup_closedir_ DIR *d = NULL;
        struct dirent *de;
        unsigned n = 0;

        snprintf(path, sizeof(path), "%s/audit", real_dir);
        d = opendir(path);
        while (d && (de = readdir(d)))
                n += strncmp(de->d_name, "audit-", 6) == 0;
        return n;
}

static void stop_bastiond(pid_t daemon) {
        uint64_t deadline = ms_now() + 5000;

        kill(daemon, SIGTERM);
        while (ms_now() < deadline && waitpid(daemon, NULL, WNOHANG) == 0)
                usleep(20000);
        /* Its children die with it (PR_SET_PDEATHSIG). */
        if (kill(daemon, SIGKILL) == 0)
                (void) waitpid(daemon, NULL, 0);
}

static void real_setup(void) {
        char sub[128];

#ifdef BASTION_SANITIZERS
        return;
#endif
        strcpy(real_dir, "/tmp/bastion-broker-real.XXXXXX");
        cr_assert_not_null(mkdtemp(real_dir));
        cr_assert_eq(chmod(real_dir, 0755), 0);
        snprintf(sub, sizeof(sub), "%s/state", real_dir);
        cr_assert_eq(mkdir(sub, 0755), 0);
        snprintf(sub, sizeof(sub), "%s/run", real_dir);
        cr_assert_eq(mkdir(sub, 0755), 0);
}

static void real_teardown(void) {
        char cmd[256];

        if (!real_dir[0])
                return;
        /* bastiond makes the audit files append-only (bastion-audit(5)). */
        snprintf(cmd, sizeof(cmd), "chattr -R -a '%s/audit' 2>/dev/null; rm -rf '%s'", real_dir, real_dir);
        if (system(cmd) != 0)
                cr_log_warn("could not remove %s", real_dir);
}

Test(broker_sandbox, real_broker_is_locked_down_and_still_serves, .init = real_setup, .fini = real_teardown,
     .timeout = 60) {
        char cmd[512];
        uint64_t deadline;
        pid_t daemon, broker;
        bool served = false;

#ifdef BASTION_SANITIZERS
        cr_skip_test("the sanitizer build loads no seccomp filter");
#endif
        for (int u = REAL_UID_MIN - 1; u <= REAL_UID_MIN + 15; u++)
                cr_assert_null(getpwuid((uid_t) u), "test uid %d is a real account", u);
        daemon = start_bastiond();
        broker = await_attested_broker(daemon);

        deadline = ms_now() + REAL_TIMEOUT_MS;
        while (!served && ms_now() < deadline)
                if (!(served = tool_call_works()))
                        usleep(50000);
        cr_assert(served, "no tool call got through the locked-down broker (see %s/bastiond.log)", real_dir);

        /* SIGHUP: the broker, long locked down, creates the next audit file in its audit dir. */
        cr_assert_eq(count_audit_files(), 1);
        cr_assert_eq(kill(daemon, SIGHUP), 0);
        deadline = ms_now() + REAL_TIMEOUT_MS;
        while (count_audit_files() < 2 && ms_now() < deadline)
                usleep(20000);
        cr_assert_eq(count_audit_files(), 2, "no rotation after SIGHUP (see %s/bastiond.log)", real_dir);
        cr_assert_eq(find_broker(daemon), broker, "the broker was restarted");
        cr_assert_eq(await_attested_broker(daemon), broker);
        cr_assert(tool_call_works(), "the broker stopped serving after the rotation");
        stop_bastiond(daemon);

        /* The chain across both files verifies with the key from the store the broker created. */
        snprintf(cmd, sizeof(cmd),
                 "cd '%1$s' && '" BUILD_DIR "/bastionctl' audit pubkey --store state/secrets.store"
                 " --key-file secrets.key > audit.pub &&"
                 " '" BUILD_DIR "/bastionctl' audit verify --pubkey audit.pub --dir audit --allow-tail",
                 real_dir);
        cr_assert_eq(system(cmd), 0, "bastionctl audit verify failed");
}
