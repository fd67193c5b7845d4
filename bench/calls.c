/* bench/calls: round-trip latency (p50, p99) and calls/s of sequential get_stock calls through the
 * whole Bastion chain (local socket -> broker -> sandboxed worker -> SQLite) versus the same worker
 * program on its own stdio (plain, and locked down with --sandbox as bastiond runs it), in one run,
 * printed as a table with the ratio. It prints; it asserts nothing.
 * Usage: bench/calls [BUILDDIR [CALLS]]   (default: the build tree it was compiled in). Run as root:
 * it starts a real bastiond on a temporary configuration. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define BENCH_CALLS 10000
#define BENCH_WARMUP 500
/* Worker uids of the benchmark's daemon: next to the integration tests' blocks (62000-62799). */
#define BENCH_UID_MIN 62900
#define BENCH_UID_MAX 62915
#define BENCH_READY_TIMEOUT_MS 15000
#define BENCH_STOP_TIMEOUT_MS 10000
#define BENCH_MAX_REPLY (256 * 1024)

static const char get_stock_call[] =
        "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\","
        "\"params\":{\"name\":\"get_stock\",\"arguments\":{\"sku\":\"SKU-1001\"}}}\n";
static const char initialize[] =
        "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\","
        "\"capabilities\":{},\"clientInfo\":{\"name\":\"bench-calls\",\"version\":\"0\"}}}\n"
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n";

/* One MCP stdio-transport peer: where to write requests and where replies come from. */
struct peer {
        int in, out;
        char buf[BENCH_MAX_REPLY];
        size_t len;
        bool quiet;             /* failures are expected (readiness probe) */
};

struct result {
        const char *label;
        double p50_us, p99_us, per_sec;
};

static double now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                p += k;
                n -= k;
        }
        return 0;
}

/* Reads one line into p->buf (NUL-terminated, without its newline); the rest stays buffered. */
static int peer_line(struct peer *p, char **ret, size_t *ret_skip) {
        for (;;) {
                char *nl = memchr(p->buf, '\n', p->len);
                ssize_t k;

                if (nl) {
                        *nl = '\0';
                        *ret = p->buf;
                        *ret_skip = nl + 1 - p->buf;
                        return 0;
                }
                if (p->len == sizeof(p->buf))
                        return -E2BIG;
                k = read(p->in, p->buf + p->len, sizeof(p->buf) - p->len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -EPIPE;
                p->len += k;
        }
}

/* Waits for the response with this id (notifications in between are skipped). Returns 0 when it is a
 * result, -EPROTO for an error or a tool error. */
static int peer_wait(struct peer *p, int id) {
        char want[32];
        int r;

        snprintf(want, sizeof(want), "\"id\":%d,", id);
        for (;;) {
                char *line = NULL;
                size_t skip = 0;
                bool mine, ok;

                r = peer_line(p, &line, &skip);
                if (r < 0)
                        return r;
                mine = strstr(line, want) != NULL;
                ok = strstr(line, "\"result\":") && !strstr(line, "\"isError\":true");
                if (mine && !ok && !p->quiet)
                        fprintf(stderr, "bench/calls: call %d failed: %.300s\n", id, line);
                memmove(p->buf, p->buf + skip, p->len - skip);
                p->len -= skip;
                if (mine)
                        return ok ? 0 : -EPROTO;
        }
}

static int peer_initialize(struct peer *p) {
        int r = write_all(p->out, initialize, strlen(initialize));

        return r < 0 ? r : peer_wait(p, 0);
}

static int bench_peer(struct peer *p, const char *label, int calls, struct result *ret) {
        _cleanup_free_ double *lat = calloc(calls, sizeof(double));
        char req[256];
        double start = 0;
        int r;

        if (!lat)
                return -ENOMEM;
        for (int i = 1; i <= BENCH_WARMUP + calls; i++) {
                double t0 = now_us();
                int n = snprintf(req, sizeof(req), get_stock_call, i);

                if (i == BENCH_WARMUP + 1)
                        start = t0;
                if ((r = write_all(p->out, req, n)) < 0 || (r = peer_wait(p, i)) < 0)
                        return r;
                if (i > BENCH_WARMUP)
                        lat[i - BENCH_WARMUP - 1] = now_us() - t0;
        }
        *ret = (struct result) { .label = label, .per_sec = calls / ((now_us() - start) / 1e6) };
        qsort(lat, calls, sizeof(double), cmp_double);
        ret->p50_us = lat[calls / 2];
        ret->p99_us = lat[(size_t) (calls * 0.99)];
        return 0;
}

/* ---- the worker on its own stdio ---- */

static int spawn_worker(const char *builddir, const char *db, bool sandbox, pid_t *ret_pid, struct peer *p) {
        _cleanup_free_ char *bin = NULL;
        int to[2], from[2];
        pid_t pid;

        if (asprintf(&bin, "%s/bastion-worker", builddir) < 0)
                return -ENOMEM;
        if (pipe2(to, O_CLOEXEC) < 0 || pipe2(from, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                if (dup2(to[0], STDIN_FILENO) < 0 || dup2(from[1], STDOUT_FILENO) < 0 ||
                    dup2(null, STDERR_FILENO) < 0)
                        _exit(127);
                execl(bin, bin, "inventory", "--db", db, "--demo-data", sandbox ? "--sandbox" : NULL,
                      (char *) NULL);
                _exit(127);
        }
        close(to[0]);
        close(from[1]);
        p->out = to[1];
        p->in = from[0];
        *ret_pid = pid;
        return 0;
}

/* sandbox: the worker locks itself down (seccomp, Landlock) as under bastiond, which separates the cost
 * of the confinement from the cost of the extra hop through the broker. */
static int bench_direct(const char *builddir, const char *dir, bool sandbox, int calls, struct result *ret) {
        _cleanup_free_ struct peer *p = calloc(1, sizeof(*p));
        char db[PATH_MAX];
        pid_t pid = 0;
        int r;

        if (!p)
                return -ENOMEM;
        snprintf(db, sizeof(db), "%s/direct%s.db", dir, sandbox ? "-sandbox" : "");
        r = spawn_worker(builddir, db, sandbox, &pid, p);
        if (r < 0)
                return r;
        r = peer_initialize(p);
        if (r >= 0)
                r = bench_peer(p, sandbox ? "worker on its stdio, --sandbox" : "worker on its stdio (pipes)",
                               calls, ret);
        close(p->out);          /* EOF: the worker exits 0 */
        close(p->in);
        (void) waitpid(pid, NULL, 0);
        return r;
}

/* ---- the whole chain ---- */

static int write_config(const char *dir, const char *builddir, char *ret_path, size_t size) {
        _cleanup_fclose_ FILE *f = NULL;

        snprintf(ret_path, size, "%s/bastion.conf", dir);
        f = fopen(ret_path, "we");
        if (!f)
                return -errno;
        fprintf(f, "bastion = {\n"
                "  socket = \"%1$s/mcp.sock\"; control_socket = \"%1$s/control.sock\";\n"
                "  state_dir = \"%1$s/state\"; runtime_dir = \"%1$s/run\"; libexec_dir = \"%2$s\";\n"
                "  audit_dir = \"%1$s/audit\"; secrets_key_file = \"%1$s/secrets.key\";\n"
                "  worker_uids = [ %3$d, %4$d ];\n};\n"
                "roles = { reader = { scopes = [ \"inventory:read\" ]; }; };\n"
                "users = ( { user = \"root\"; role = \"reader\"; } );\n"
                "servers = { inventory = { domain = \"inventory\"; demo_data = true;\n"
                "  tools = { get_stock = { scopes = [ \"inventory:read\" ]; }; }; }; };\n",
                dir, builddir, BENCH_UID_MIN, BENCH_UID_MAX);
        return fflush(f) == 0 ? 0 : -errno;
}

static pid_t start_daemon(const char *builddir, const char *dir, const char *config) {
        _cleanup_free_ char *bin = NULL, *log = NULL;
        pid_t pid;

        if (asprintf(&bin, "%s/bastiond", builddir) < 0 || asprintf(&log, "%s/bastiond.log", dir) < 0)
                return -ENOMEM;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* Its own process group, so a daemon that ignores SIGTERM goes down with its children. */
                int fd = setpgid(0, 0) < 0 ? -1 : open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (fd < 0 || dup2(fd, STDERR_FILENO) < 0)
                        _exit(127);
                execl(bin, bin, "--config", config, (char *) NULL);
                _exit(127);
        }
        return pid;
}

/* Connects and names the server. Returns the fd once the broker said "ok". */
static int connect_broker(const char *dir) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char answer[8] = {};

        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/mcp.sock", dir);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return -errno;
        if (write_all(fd, "server inventory\n", 17) < 0 || read(fd, answer, 3) != 3)
                return -EPIPE;
        return streq(answer, "ok\n") ? TAKE_FD(fd) : -ECONNREFUSED;
}

/* Ready = a session can be opened and get_stock answers (the worker is attested and routed). */
static int wait_ready(const char *dir, pid_t daemon, struct peer *p) {
        double deadline = now_us() + BENCH_READY_TIMEOUT_MS * 1e3;

        for (;;) {
                int fd = connect_broker(dir);

                if (fd >= 0) {
                        *p = (struct peer) { .in = fd, .out = fd, .quiet = true };
                        if (peer_initialize(p) == 0 && bench_peer(p, "probe", 1, &(struct result) {}) == 0) {
                                p->quiet = false;
                                return 0;
                        }
                        close(fd);
                }
                if (waitpid(daemon, NULL, WNOHANG) != 0 || now_us() > deadline)
                        return -ETIMEDOUT;
                usleep(50 * 1000);
        }
}

static void stop_daemon(pid_t pid) {
        double deadline = now_us() + BENCH_STOP_TIMEOUT_MS * 1e3;
        int status;

        kill(pid, SIGTERM);
        while (waitpid(pid, &status, WNOHANG) == 0) {
                if (now_us() > deadline) {
                        fprintf(stderr, "bench/calls: bastiond ignored SIGTERM; killing it\n");
                        kill(-pid, SIGKILL);
                        waitpid(pid, &status, 0);
                        return;
                }
                usleep(10 * 1000);
        }
}

static int bench_broker(const char *builddir, const char *dir, int calls, struct result *ret) {
        _cleanup_free_ struct peer *p = calloc(1, sizeof(*p));
        char config[PATH_MAX];
        pid_t daemon;
        int r;

        if (!p)
                return -ENOMEM;
        if ((r = write_config(dir, builddir, config, sizeof(config))) < 0)
                return r;
        daemon = start_daemon(builddir, dir, config);
        if (daemon < 0)
                return daemon;
        r = wait_ready(dir, daemon, p);
        if (r < 0)
                fprintf(stderr, "bench/calls: bastiond did not become ready; see %s/bastiond.log\n", dir);
        else
                r = bench_peer(p, "through the broker (socket, broker, worker)", calls, ret);
        if (r >= 0)
                close(p->in);
        stop_daemon(daemon);
        return r;
}

/* bastiond makes the audit files append-only (bastion-audit(5)): the flag goes before the file. */
static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        if (flag == FTW_F) {
                int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC), attr;

                if (fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0 && (attr & FS_APPEND_FL)) {
                        attr &= ~FS_APPEND_FL;
                        (void) ioctl(fd, FS_IOC_SETFLAGS, &attr);
                }
                if (fd >= 0)
                        close(fd);
        }
        return remove(path) < 0 ? -1 : 0;
}

static void print_table(int calls, const struct result *direct, const struct result *confined,
                        const struct result *broker) {
        printf("bench/calls: %d sequential get_stock calls (SKU-1001) after %d warm-up calls\n\n", calls,
               BENCH_WARMUP);
        printf("%-46s %10s %10s %10s\n", "path", "p50 (us)", "p99 (us)", "calls/s");
        for (const struct result *r = direct; r; r = r == direct ? confined : r == confined ? broker : NULL)
                printf("%-46s %10.1f %10.1f %10.0f\n", r->label, r->p50_us, r->p99_us, r->per_sec);
        printf("%-46s %9.2fx %9.2fx %9.2fx\n", "ratio (through bastion / direct)", broker->p50_us / direct->p50_us,
               broker->p99_us / direct->p99_us, broker->per_sec / direct->per_sec);
}

int main(int argc, char **argv) {
        const char *builddir = argc > 1 ? argv[1] : BENCH_BUILDDIR;
        int calls = argc > 2 ? atoi(argv[2]) : BENCH_CALLS;
        char dir[] = "/tmp/bastion-bench-XXXXXX";
        struct result direct, confined, broker;
        int r;

        if (calls < 100) {
                fprintf(stderr, "Usage: bench/calls [BUILDDIR [CALLS >= 100]]\n");
                return EXIT_FAILURE;
        }
        signal(SIGPIPE, SIG_IGN);
        /* Workers run as unprivileged uids and must reach their state directory below here. */
        if (!mkdtemp(dir) || chmod(dir, 0755) < 0) {
                perror("bench/calls: temporary directory");
                return EXIT_FAILURE;
        }
        r = bench_direct(builddir, dir, false, calls, &direct);
        if (r >= 0)
                r = bench_direct(builddir, dir, true, calls, &confined);
        if (r >= 0)
                r = bench_broker(builddir, dir, calls, &broker);
        if (r >= 0)
                print_table(calls, &direct, &confined, &broker);
        else
                fprintf(stderr, "bench/calls: %s\n", strerror(-r));
        /* On failure the directory stays, with bastiond.log, for a look. */
        if (r >= 0 && nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) < 0)
                fprintf(stderr, "bench/calls: cannot remove %s: %m\n", dir);
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
