/* bastion-escape-worker: a test-only worker built from the same sandbox code as bastion-worker. Spawned
 * through sandbox_spawn() like a real worker, it opens its SQLite database, calls sandbox_lockdown()
 * and then tries to break out. Each attempt runs in a forked child (a seccomp kill must not end the
 * drill); one line per attempt goes to the channel at fd 3: "attempt\toutcome". Then it searches
 * everything it can read — its memory, environment, fds and file system — for the neighbour's
 * credential, which it is given only XOR-masked (--needle) so the search itself never puts the value
 * in memory. With --idle it plays the neighbour instead: it holds its database and its credential
 * (from fd 4, read into memory like a backend client would) and waits for EOF on fd 3. */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/bpf.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/sysmacros.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/if_ether.h>
#include <linux/netlink.h>

#include "sandbox.h"
#include "util.h"

#define CHANNEL_FD 3
#define CREDENTIAL_FD 4

static struct {
        const char *state_dir, *victim_dir, *broker_socket, *control_socket, *abstract, *credential;
        const char *needle_hex, *own_needle_hex;
        pid_t victim_pid;
        int tcp_port;
        bool idle;
} arg;

static char path_buf[4096];

static const char *victim_path(const char *file) {
        snprintf(path_buf, sizeof(path_buf), "%s/%s", arg.victim_dir, file);
        return path_buf;
}

/* Every attempt returns 0 when it got through, else the errno that stopped it. */
static int open_read(const char *path) {
        char c;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return errno;
        if (read(fd, &c, 1) < 0)
                return errno;
        return 0;
}

static int try_payments_db(void) { return open_read(victim_path("payments.db")); }
static int try_payments_credential(void) { return open_read(victim_path("credential.key")); }
static int try_etc_shadow(void) { return open_read("/etc/shadow"); }
static int try_own_credential_path(void) { return open_read(arg.credential); }
static int try_dotdot(void) {
        snprintf(path_buf, sizeof(path_buf), "%s/../payments/credential.key", arg.state_dir);
        return open_read(path_buf);
}

static int try_proc_file(const char *what) {
        snprintf(path_buf, sizeof(path_buf), "/proc/%d/%s", (int) arg.victim_pid, what);
        return open_read(path_buf);
}
static int try_proc_root(void) {
        snprintf(path_buf, sizeof(path_buf), "/proc/%d/root%.3000s/credential.key", (int) arg.victim_pid,
                 arg.victim_dir);
        return open_read(path_buf);
}
static int try_proc_environ(void) { return try_proc_file("environ"); }
static int try_proc_mem(void) { return try_proc_file("mem"); }

static int try_process_vm_readv(void) {
        char buf[16];
        struct iovec local = { buf, sizeof(buf) }, remote = { (void *) 0x400000, sizeof(buf) };

        return syscall(SYS_process_vm_readv, arg.victim_pid, &local, 1, &remote, 1, 0) < 0 ? errno : 0;
}
static int try_ptrace(void) { return ptrace(PTRACE_ATTACH, arg.victim_pid, 0, 0) < 0 ? errno : 0; }
static int try_kill_victim(void) { return kill(arg.victim_pid, SIGKILL) < 0 ? errno : 0; }
static int try_kill_all(void) { return kill(-1, SIGKILL) < 0 ? errno : 0; }
static int try_kill_supervisor(void) { return kill(1, SIGTERM) < 0 ? errno : 0; }

static int connect_unix(const char *path, bool abstract) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t len;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return errno;
        if (abstract)
                strncpy(sa.sun_path + 1, path, sizeof(sa.sun_path) - 2);
        else
                strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
        len = offsetof(struct sockaddr_un, sun_path) + (abstract ? 1 + strlen(path) : strlen(path) + 1);
        return connect(fd, (struct sockaddr *) &sa, len) < 0 ? errno : 0;
}
static int try_broker_socket(void) { return connect_unix(arg.broker_socket, false); }
static int try_control_socket(void) { return connect_unix(arg.control_socket, false); }
static int try_abstract_socket(void) { return connect_unix(arg.abstract, true); }

static int try_socket(int family, int type, int proto) {
        return socket(family, type | SOCK_CLOEXEC, proto) < 0 ? errno : 0;
}
static int try_af_inet(void) { return try_socket(AF_INET, SOCK_STREAM, 0); }
static int try_af_inet6(void) { return try_socket(AF_INET6, SOCK_DGRAM, 0); }
static int try_af_netlink(void) { return try_socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE); }
static int try_af_packet(void) { return try_socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)); }
static int try_socketpair(void) {
        int sv[2];

        return socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 ? errno : 0;
}
static int try_tcp_localhost(void) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(arg.tcp_port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return errno;
        return connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 ? errno : 0;
}

static int try_exec(const char *path) {
        char *argv[] = { (char *) path, (char *) "-c", (char *) "exit 0", NULL };

        execve(path, argv, (char *[]) { NULL });
        return errno;
}
static int try_exec_shell(void) { return try_exec("/bin/sh"); }
static int try_exec_setuid(void) { return try_exec("/usr/bin/passwd"); }
static int try_memfd_exec(void) {
        int fd = (int) syscall(SYS_memfd_create, "x", 0);

        if (fd < 0)
                return errno;
        syscall(SYS_execveat, fd, "", (char *[]) { NULL }, (char *[]) { NULL }, AT_EMPTY_PATH);
        return errno;
}
static int try_mmap_exec(void) {
        void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        return p == MAP_FAILED ? errno : 0;
}

static int try_mount(void) { return mount("tmpfs", "/", "tmpfs", 0, NULL) < 0 ? errno : 0; }
static int try_umount(void) { return umount2(arg.state_dir, MNT_DETACH) < 0 ? errno : 0; }
static int try_pivot_root(void) { return syscall(SYS_pivot_root, ".", ".") < 0 ? errno : 0; }
static int try_chroot(void) { return chroot(arg.state_dir) < 0 ? errno : 0; }
static int try_unshare(void) { return unshare(CLONE_NEWUSER) < 0 ? errno : 0; }
static int try_setns(void) { return setns(CHANNEL_FD, 0) < 0 ? errno : 0; }
static int try_clone_newuser(void) {
        long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, 0);

        if (pid == 0)
                _exit(0);
        return pid < 0 ? errno : 0;
}
static int try_clone3(void) {
        struct { uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls; }
                ca = { .flags = CLONE_NEWUSER, .exit_signal = SIGCHLD };
        long pid = syscall(SYS_clone3, &ca, sizeof(ca));

        if (pid == 0)
                _exit(0);
        return pid < 0 ? errno : 0;
}

static int try_bpf(void) {
        union bpf_attr a = { .map_type = BPF_MAP_TYPE_ARRAY, .key_size = 4, .value_size = 4, .max_entries = 1 };

        return syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof(a)) < 0 ? errno : 0;
}
static int try_keyctl(void) {
        return syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0) < 0 ? errno : 0;
}
static int try_add_key(void) {
        return syscall(SYS_add_key, "user", "x", "y", 1, KEY_SPEC_PROCESS_KEYRING) < 0 ? errno : 0;
}
static int try_userfaultfd(void) { return syscall(SYS_userfaultfd, O_CLOEXEC) < 0 ? errno : 0; }
static int try_perf_event_open(void) {
        struct perf_event_attr a = { .type = PERF_TYPE_SOFTWARE, .size = sizeof(a),
                                     .config = PERF_COUNT_SW_CPU_CLOCK };

        return syscall(SYS_perf_event_open, &a, 0, -1, -1, 0) < 0 ? errno : 0;
}
static int try_io_uring(void) {
        char params[120] = {};

        return syscall(SYS_io_uring_setup, 1, params) < 0 ? errno : 0;
}
static int try_kexec_load(void) { return syscall(SYS_kexec_load, 0, 0, NULL, 0) < 0 ? errno : 0; }
static int try_init_module(void) { return syscall(SYS_init_module, "", 0, "") < 0 ? errno : 0; }

static int try_tiocsti(void) {
        char c = 'x';

        return ioctl(STDERR_FILENO, TIOCSTI, &c) < 0 ? errno : 0;
}
static int try_tiocsti_high(void) {
        char c = 'x';

        return syscall(SYS_ioctl, STDERR_FILENO, (1UL << 32) | TIOCSTI, &c) < 0 ? errno : 0;
}
static int try_personality(void) {
        return personality(READ_IMPLIES_EXEC) < 0 ? errno : 0;
}
static int try_capset(void) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[2] = { { ~0U, ~0U, ~0U }, { ~0U, ~0U, ~0U } };

        return syscall(SYS_capset, &h, d) < 0 ? errno : 0;
}
static int try_setuid_root(void) { return syscall(SYS_setresuid, 0, 0, 0) < 0 ? errno : 0; }
static int try_prctl_caps(void) {
        return prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0) < 0 ? errno : 0;
}

static int try_write_root(void) {
        int fd = open("/escaped", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

        return fd < 0 ? errno : 0;
}
static int try_write_victim(void) {
        int fd = open(victim_path("planted"), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

        return fd < 0 ? errno : 0;
}
static int try_symlink_out(void) {
        snprintf(path_buf, sizeof(path_buf), "%s/link", arg.state_dir);
        return symlink("/etc/shadow", path_buf) < 0 ? errno : 0;
}
static int try_setuid_file(void) {
        int fd;

        snprintf(path_buf, sizeof(path_buf), "%s/suid", arg.state_dir);
        fd = open(path_buf, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
                return errno;
        return fchmod(fd, 04755) < 0 ? errno : 0;
}
static int try_mknod(void) {
        snprintf(path_buf, sizeof(path_buf), "%s/dev", arg.state_dir);
        return mknod(path_buf, S_IFCHR | 0600, makedev(1, 3)) < 0 ? errno : 0;
}

/* The "shocker" escape: open a file by inode handle, bypassing every path check. */
static int try_open_by_handle(void) {
        struct { unsigned int bytes; int type; unsigned char h[8]; } fh = { .bytes = 8, .type = 1, .h = { 2 } };

        return syscall(SYS_open_by_handle_at, CHANNEL_FD, &fh, O_RDONLY) < 0 ? errno : 0;
}
static int try_fsopen(void) { return syscall(SYS_fsopen, "tmpfs", 0) < 0 ? errno : 0; }
static int try_chdir_dotdot(void) {
        for (int i = 0; i < 64; i++)
                if (chdir("..") < 0)
                        return errno;
        return open_read("etc/passwd");
}
static int try_rename_out(void) {
        char from[4200];

        snprintf(from, sizeof(from), "%.4000s/returns.db", arg.state_dir);
        return rename(from, "/returns.db") < 0 ? errno : 0;
}
static int try_hardlink(void) {
        char to[4200];

        snprintf(to, sizeof(to), "%.4000s/stolen.db", arg.state_dir);
        return link(victim_path("payments.db"), to) < 0 ? errno : 0;
}
static int try_new_filter(void) {
        return syscall(SYS_seccomp, 1 /* SECCOMP_SET_MODE_FILTER */, 0, NULL) < 0 ? errno : 0;
}

/* i386 getpid through int 0x80 and an x32-numbered getpid: both are a foreign ABI. */
static int try_int80(void) {
        long ret = 20;  /* __NR_getpid on i386 */

        __asm__ volatile("int $0x80" : "+a"(ret) : : "memory");
        return ret < 0 ? (int) -ret : 0;
}
static int try_x32(void) { return syscall(0x40000000 | SYS_getpid) < 0 ? errno : 0; }

static const struct attempt {
        const char *name;
        int (*fn)(void);
} attempts[] = {
        { "read payments database by path", try_payments_db },
        { "read payments credential by path", try_payments_credential },
        { "read payments credential via ../", try_dotdot },
        { "read /etc/shadow", try_etc_shadow },
        { "read own credential by path", try_own_credential_path },
        { "read /proc/<payments>/root/…", try_proc_root },
        { "read /proc/<payments>/environ", try_proc_environ },
        { "read /proc/<payments>/mem", try_proc_mem },
        { "process_vm_readv payments", try_process_vm_readv },
        { "ptrace attach payments", try_ptrace },
        { "kill payments", try_kill_victim },
        { "kill(-1)", try_kill_all },
        { "kill pid 1 / supervisor", try_kill_supervisor },
        { "connect broker socket", try_broker_socket },
        { "connect control socket", try_control_socket },
        { "connect abstract unix socket", try_abstract_socket },
        { "socketpair", try_socketpair },
        { "socket AF_INET", try_af_inet },
        { "socket AF_INET6", try_af_inet6 },
        { "socket AF_NETLINK", try_af_netlink },
        { "socket AF_PACKET", try_af_packet },
        { "connect 127.0.0.1", try_tcp_localhost },
        { "execve /bin/sh", try_exec_shell },
        { "execve setuid /usr/bin/passwd", try_exec_setuid },
        { "memfd_create + execveat", try_memfd_exec },
        { "mmap PROT_EXEC", try_mmap_exec },
        { "mount tmpfs", try_mount },
        { "umount state dir", try_umount },
        { "pivot_root", try_pivot_root },
        { "chroot", try_chroot },
        { "unshare(CLONE_NEWUSER)", try_unshare },
        { "setns", try_setns },
        { "clone(CLONE_NEWUSER)", try_clone_newuser },
        { "clone3(CLONE_NEWUSER)", try_clone3 },
        { "bpf map create", try_bpf },
        { "keyctl", try_keyctl },
        { "add_key", try_add_key },
        { "userfaultfd", try_userfaultfd },
        { "perf_event_open", try_perf_event_open },
        { "io_uring_setup", try_io_uring },
        { "kexec_load", try_kexec_load },
        { "init_module", try_init_module },
        { "ioctl TIOCSTI", try_tiocsti },
        { "ioctl TIOCSTI with high bits", try_tiocsti_high },
        { "personality(READ_IMPLIES_EXEC)", try_personality },
        { "capset all capabilities", try_capset },
        { "setresuid(0)", try_setuid_root },
        { "raise ambient CAP_SYS_ADMIN", try_prctl_caps },
        { "create file outside state dir", try_write_root },
        { "create file in payments dir", try_write_victim },
        { "symlink to /etc/shadow", try_symlink_out },
        { "setuid bit on own file", try_setuid_file },
        { "mknod /dev/null twin", try_mknod },
        { "open_by_handle_at (shocker)", try_open_by_handle },
        { "fsopen (new mount API)", try_fsopen },
        { "chdir(..) x64, read etc/passwd", try_chdir_dotdot },
        { "rename own db out of state dir", try_rename_out },
        { "hardlink payments db", try_hardlink },
        { "load another seccomp filter", try_new_filter },
        { "i386 int 0x80 getpid", try_int80 },
        { "x32 getpid", try_x32 },
};

static void report(const char *name, const char *outcome) {
        dprintf(CHANNEL_FD, "%s\t%s\n", name, outcome);
}

static void run_attempt(const struct attempt *a) {
        char outcome[96];
        int status;
        pid_t pid = fork();

        if (pid < 0) {
                snprintf(outcome, sizeof(outcome), "ERROR fork: %s", strerror(errno));
                return report(a->name, outcome);
        }
        if (pid == 0)
                _exit(a->fn() & 0xff);
        if (waitpid(pid, &status, 0) < 0)
                snprintf(outcome, sizeof(outcome), "ERROR waitpid: %s", strerror(errno));
        else if (WIFSIGNALED(status))
                snprintf(outcome, sizeof(outcome), "blocked (killed by %s)", sigabbrev_np(WTERMSIG(status)));
        else if (WEXITSTATUS(status) == 0)
                snprintf(outcome, sizeof(outcome), "ESCAPED");
        else
                snprintf(outcome, sizeof(outcome), "blocked (%s)", strerrorname_np(WEXITSTATUS(status)));
        report(a->name, outcome);
}

/* The worker must still do its job inside the sandbox, or the drill proves nothing. */
static void run_controls(sqlite3 *db) {
        char *err = NULL;
        int fd;

        report("control: SQLite write in own database",
               sqlite3_exec(db, "INSERT INTO returns(note) VALUES ('inside');", NULL, NULL, &err) == SQLITE_OK ?
               "ok" : "FAILED");
        sqlite3_free(err);
        snprintf(path_buf, sizeof(path_buf), "%s/scratch", arg.state_dir);
        fd = open(path_buf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        report("control: create file in own state dir", fd >= 0 && write(fd, "x", 1) == 1 ? "ok" : "FAILED");
        safe_close(fd);
        /* The credential comes as fd 4 (DESIGN §3): an fd is a capability the path lookup is not. */
        report("control: read credential passed as fd 4", pread(CREDENTIAL_FD, path_buf, 1, 0) == 1 ? "ok" : "FAILED");
}

/* ---- the search for the neighbour's credential ---- */

#define NEEDLE_MASK 0x5a
#define NEEDLE_MAX 256
#define SEARCH_CHUNK (64 * 1024)
#define SEARCH_MAX_DEPTH 16

/* A value to look for, held only XOR-masked: comparing byte by byte unmasks one byte at a time in a
 * register, so a "found" can only come from a copy the process got from elsewhere. */
struct needle {
        unsigned char masked[NEEDLE_MAX];
        size_t len;
};

static int needle_parse(const char *hex, struct needle *n) {
        size_t len = strlen(hex);

        if (len == 0 || len % 2 || len / 2 > NEEDLE_MAX)
                return -EINVAL;
        n->len = len / 2;
        for (size_t i = 0; i < n->len; i++) {
                unsigned v;
                if (sscanf(hex + 2 * i, "%2x", &v) != 1)
                        return -EINVAL;
                n->masked[i] = (unsigned char) v;
        }
        return 0;
}

static bool needle_in(const unsigned char *buf, size_t len, const struct needle *n) {
        for (size_t j = 0; j + n->len <= len; j++) {
                size_t i = 0;

                while (i < n->len && (unsigned char) (buf[j + i] ^ NEEDLE_MASK) == n->masked[i])
                        i++;
                if (i == n->len)
                        return true;
        }
        return false;
}

static unsigned char chunk[SEARCH_CHUNK + NEEDLE_MAX];

/* Reads fd from offset `from` (pread: no file position moves) up to `to` or EOF, in chunks that overlap
 * by the needle's length less one. With skip_holes (memory) a page that cannot be read is stepped over
 * instead of ending the search. Returns the bytes searched; sets *found when the needle was in them. */
static uint64_t search_fd(int fd, uint64_t from, uint64_t to, bool skip_holes, const struct needle *n, bool *found) {
        uint64_t off = from, total = 0;
        size_t keep = 0;        /* bytes carried over from the previous chunk */

        while (off < to) {
                size_t want = to - off < SEARCH_CHUNK ? (size_t) (to - off) : SEARCH_CHUNK, have;
                ssize_t k = pread(fd, chunk + keep, want, (off_t) off);

                if (k <= 0) {
                        if (!skip_holes || k == 0)
                                break;
                        off = (off | 4095) + 1;
                        keep = 0;
                        continue;
                }
                have = keep + (size_t) k;
                total += (uint64_t) k;
                off += (uint64_t) k;
                if (needle_in(chunk, have, n))
                        *found = true;
                keep = have < n->len - 1 ? have : n->len - 1;
                memmove(chunk, chunk + have - keep, keep);
        }
        return total;
}

struct search_fds {
        int maps, mem;          /* /proc/self/maps and /proc/self/mem, opened before the lockdown */
};

/* Every readable mapping of this process, as /proc/self/maps lists it now. */
static void search_memory(const struct search_fds *f, const struct needle *n, bool *found, unsigned *regions,
                          uint64_t *bytes) {
        static char maps[1 << 20];
        size_t len = 0;
        ssize_t k;

        *regions = 0, *bytes = 0;
        while (len < sizeof(maps) - 1 && (k = pread(f->maps, maps + len, sizeof(maps) - 1 - len, (off_t) len)) > 0)
                len += (size_t) k;
        maps[len] = '\0';
        for (char *line = strtok(maps, "\n"); line; line = strtok(NULL, "\n")) {
                unsigned long long start, end;
                char perms[8];

                if (sscanf(line, "%llx-%llx %7s", &start, &end, perms) != 3 || perms[0] != 'r')
                        continue;
                (*regions)++;
                *bytes += search_fd(f->mem, start, end, true, n, found);
        }
}

static void search_environment(const struct needle *n, bool *found, unsigned *count) {
        extern char **environ;

        *count = 0;
        for (char **e = environ; e && *e; e++, (*count)++)
                if (needle_in((const unsigned char *) *e, strlen(*e), n))
                        *found = true;
}

/* Regular files and memfds among the open fds (pipes and sockets are not read: it would take the
 * data from the channel). */
static void search_fds(const struct search_fds *f, const struct needle *n, bool *found, unsigned *count) {
        struct stat st;

        *count = 0;
        for (int fd = 0; fd < 1024; fd++) {
                if (fd == f->maps || fd == f->mem || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                        continue;
                (*count)++;
                (void) search_fd(fd, 0, UINT64_MAX, false, n, found);
        }
}

static void search_tree(const char *path, int depth, const struct needle *n, bool *found, unsigned *files,
                        unsigned *dirs) {
        char child[4096];
        struct dirent *de;
        struct stat st;
        DIR *d;

        if (depth > SEARCH_MAX_DEPTH || lstat(path, &st) < 0)
                return;
        if (S_ISREG(st.st_mode)) {
                int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

                if (fd >= 0) {
                        (*files)++;
                        (void) search_fd(fd, 0, UINT64_MAX, false, n, found);
                        close(fd);
                }
                return;
        }
        if (!S_ISDIR(st.st_mode) || !(d = opendir(path)))
                return;
        (*dirs)++;
        while ((de = readdir(d)))
                if (!streq(de->d_name, ".") && !streq(de->d_name, "..") &&
                    snprintf(child, sizeof(child), "%s/%s", streq(path, "/") ? "" : path, de->d_name) < (int) sizeof(child))
                        search_tree(child, depth + 1, n, found, files, dirs);
        closedir(d);
}

/* The neighbour's credential must be nowhere; the same search must find our own credential, or it
 * proves nothing. */
static void run_search(const struct search_fds *f, const struct needle *theirs, const struct needle *ours) {
        char outcome[128];
        unsigned regions, count, files = 0, dirs = 0;
        uint64_t bytes;
        bool found = false, own = false;

        search_memory(f, ours, &own, &regions, &bytes);
        report("control: search finds own credential in memory", own ? "ok" : "FAILED");
        own = false;
        search_fds(f, ours, &own, &count);
        report("control: search finds own credential in fds", own ? "ok" : "FAILED");

        search_memory(f, theirs, &found, &regions, &bytes);
        snprintf(outcome, sizeof(outcome), "not found (%u regions, %llu bytes)", regions, (unsigned long long) bytes);
        if (found)
                snprintf(outcome, sizeof(outcome), "FOUND");
        report("search: payments credential in own memory", outcome);
        found = false;
        search_environment(theirs, &found, &count);
        snprintf(outcome, sizeof(outcome), "not found (%u variables)", count);
        if (found)
                snprintf(outcome, sizeof(outcome), "FOUND");
        report("search: payments credential in environment", outcome);
        found = false;
        search_fds(f, theirs, &found, &count);
        snprintf(outcome, sizeof(outcome), "not found (%u fds)", count);
        if (found)
                snprintf(outcome, sizeof(outcome), "FOUND");
        report("search: payments credential in open fds", outcome);
        found = false;
        search_tree("/", 0, theirs, &found, &files, &dirs);
        search_tree(arg.state_dir, 0, theirs, &found, &files, &dirs);
        snprintf(outcome, sizeof(outcome), "not found (%u files in %u directories)", files, dirs);
        if (found)
                snprintf(outcome, sizeof(outcome), "FOUND");
        report("search: payments credential in reachable files", outcome);
}

static int open_db(const char *file, sqlite3 **ret) {
        snprintf(path_buf, sizeof(path_buf), "%s/%s", arg.state_dir, file);
        if (sqlite3_open_v2(path_buf, ret, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK)
                return -EIO;
        if (sqlite3_exec(*ret, "PRAGMA journal_mode = WAL; PRAGMA locking_mode = EXCLUSIVE;"
                         "CREATE TABLE IF NOT EXISTS returns(note TEXT);"
                         "INSERT INTO returns(note) VALUES ('before lockdown');", NULL, NULL, NULL) != SQLITE_OK)
                return -EIO;
        return 0;
}

static int parse_args(int argc, char **argv) {
        static const struct option options[] = {
                { "state-dir", required_argument, NULL, 's' },
                { "victim-dir", required_argument, NULL, 'v' },
                { "victim-pid", required_argument, NULL, 'p' },
                { "broker-socket", required_argument, NULL, 'b' },
                { "control-socket", required_argument, NULL, 'c' },
                { "abstract", required_argument, NULL, 'a' },
                { "tcp-port", required_argument, NULL, 't' },
                { "credential", required_argument, NULL, 'k' },
                { "idle", no_argument, NULL, 'i' },
                { "needle", required_argument, NULL, 'n' },
                { "own-needle", required_argument, NULL, 'o' },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (c) {
                case 's': arg.state_dir = optarg; break;
                case 'v': arg.victim_dir = optarg; break;
                case 'p': arg.victim_pid = atoi(optarg); break;
                case 'b': arg.broker_socket = optarg; break;
                case 'c': arg.control_socket = optarg; break;
                case 'a': arg.abstract = optarg; break;
                case 't': arg.tcp_port = atoi(optarg); break;
                case 'k': arg.credential = optarg; break;
                case 'i': arg.idle = true; break;
                case 'n': arg.needle_hex = optarg; break;
                case 'o': arg.own_needle_hex = optarg; break;
                default: return -EINVAL;
                }
        if (!arg.state_dir || (!arg.idle && (!arg.victim_dir || !arg.broker_socket || !arg.control_socket ||
                                             !arg.abstract || !arg.credential || arg.victim_pid <= 0 ||
                                             !arg.needle_hex || !arg.own_needle_hex)))
                return -EINVAL;
        return 0;
}

/* The credential at fd 4 copied into the heap, where a backend client would keep it. */
static char *hold_credential(void) {
        static char held[NEEDLE_MAX + 1];
        ssize_t n = pread(CREDENTIAL_FD, held, NEEDLE_MAX, 0);

        return n > 0 ? strndup(held, (size_t) n) : NULL;
}

int main(int argc, char **argv) {
        struct needle theirs, ours;
        struct search_fds sf = { -1, -1 };
        sqlite3 *db = NULL;
        char c, *held;
        int cred = -1;

        if (parse_args(argc, argv) < 0)
                return 2;
        if (!arg.idle && (needle_parse(arg.needle_hex, &theirs) < 0 || needle_parse(arg.own_needle_hex, &ours) < 0))
                return 2;
        if (open_db(arg.idle ? "payments.db" : "returns.db", &db) < 0)
                return 3;
        held = hold_credential();
        if (arg.idle) {
                snprintf(path_buf, sizeof(path_buf), "%s/credential.key", arg.state_dir);
                cred = open(path_buf, O_RDONLY | O_CLOEXEC);
        } else {
                /* The search's instruments: its own memory map and memory, which any process may read. */
                sf.maps = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
                sf.mem = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
                if (sf.maps < 0 || sf.mem < 0)
                        return 5;
        }
        if (sandbox_lockdown(&(struct sandbox_lockdown) { .role = SANDBOX_ROLE_WORKER, .state_dir = arg.state_dir }) < 0)
                return 4;
        if (arg.idle) {
                /* The neighbour: holds its secrets and waits until the drill is over. */
                while (read(CHANNEL_FD, &c, 1) > 0)
                        ;
                (void) cred;
                free(held);
                return 0;
        }
        run_controls(db);
        for (size_t i = 0; i < ELEMENTSOF(attempts); i++)
                run_attempt(&attempts[i]);
        run_search(&sf, &theirs, &ours);
        report("done", "ok");
        free(held);
        return 0;
}
