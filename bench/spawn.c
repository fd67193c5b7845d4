/* bench/spawn: how long a worker takes from sandbox_spawn_notify() to a passing attestation (median
 * and p95 over BENCH_SPAWNS spawns of the real bastion-worker with --sandbox, attested when its ready
 * fd hangs up, as bastiond does), and the idle RSS of each process kind. Targets (issue #3): median
 * under 10 ms, idle worker RSS under 4 MiB. Baselines measured in the same run, interleaved with the
 * sandboxed spawns so that both see the same machine load: posix_spawn of /bin/true, of
 * `bastion-worker --help`, and of the same worker without any sandbox until it answers a ping (the
 * sandboxed one answers the same ping after its attestation). The ratios printed last are what the
 * sandbox costs over those floors.
 * Usage: bench/spawn [BUILDDIR]   (default: the build tree it was compiled in). Run as root. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "sandbox.h"
#include "util.h"

#define BENCH_SPAWNS 200
#define BENCH_UID 4000300
/* Idle = attested, then left alone this long so lazy start-up work is done. */
#define BENCH_IDLE_MS 200

static double now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

static long rss_kib(pid_t pid) {
        char path[64], line[256];
        long kib = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld", &kib) == 1)
                        break;
        fclose(f);
        return kib;
}

/* The shared objects mapped into pid, by file name, space-separated (each one costs every start its
 * loading: docs/sandbox.md "Spawn latency"). */
static void shared_objects(pid_t pid, char *buf, size_t size) {
        char path[64], line[512];
        size_t len = 0;
        FILE *f;

        buf[0] = '\0';
        snprintf(path, sizeof(path), "/proc/%d/maps", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return;
        while (fgets(line, sizeof(line), f)) {
                char *name = strrchr(line, '/'), *nl;

                if (!name || !strstr(name, ".so"))
                        continue;
                name++;
                if ((nl = strchr(name, '\n')))
                        *nl = '\0';
                if (strstr(buf, name))
                        continue;
                len += (size_t) snprintf(buf + len, len < size ? size - len : 0, "%s%s", len ? " " : "", name);
                if (len >= size)
                        break;
        }
        fclose(f);
}

struct kind {
        const char *name;
        enum sandbox_role role;
        uid_t uid;
        char *argv[10];
};

/* Spawns one process of the kind with a socketpair at fd 3; returns its pid, our end and its ready
 * fd (-1 for kinds that have none). */
static int spawn_kind(const struct kind *k, const char *state_dir, pid_t *ret_pid, int *ret_fd, int *ret_ready) {
        int sv[2], r;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        r = sandbox_spawn_notify(&(struct sandbox_spawn) {
                .name = k->name, .role = k->role, .argv = k->argv, .host_uid = k->uid, .host_gid = k->uid,
                .state_dir = state_dir, .fds = &sv[1], .n_fds = 1,
        }, ret_pid, ret_ready);
        close(sv[1]);
        if (r < 0) {
                close(sv[0]);
                return r;
        }
        *ret_fd = sv[0];
        return 0;
}

/* What bastiond does: wait for the ready fd to hang up, then attest (polling only if it still says
 * pending, which a worker that completed its lockdown never does). */
static int wait_attested(const struct kind *k, pid_t pid, int ready, struct sandbox_attestation *a) {
        int r;

        if (ready >= 0) {
                struct pollfd p = { .fd = ready, .events = 0 };

                (void) poll(&p, 1, BASTION_ATTEST_TIMEOUT_MS);
                close(ready);
                r = sandbox_attest(pid, k->role, k->uid, a);
                if (r != -EAGAIN)
                        return r;
        }
        return sandbox_attest_wait(pid, k->role, k->uid, BASTION_ATTEST_TIMEOUT_MS, a);
}

/* One MCP ping over the channel, answered. */
static int ping(int fd) {
        static const char req[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n";
        char buf[256];
        ssize_t n;

        if (write(fd, req, sizeof(req) - 1) != (ssize_t) sizeof(req) - 1)
                return -errno;
        n = read(fd, buf, sizeof(buf));
        return n > 0 && memchr(buf, '\n', (size_t) n) ? 0 : -EIO;
}

static void stop(pid_t pid, int fd) {
        close(fd);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

struct series {
        const char *label, *note;
        double t[BENCH_SPAWNS];
};

static double median(struct series *x) {
        qsort(x->t, BENCH_SPAWNS, sizeof(x->t[0]), cmp_double);
        return x->t[BENCH_SPAWNS / 2];
}

static void print_series(struct series *x) {
        qsort(x->t, BENCH_SPAWNS, sizeof(x->t[0]), cmp_double);
        printf("%-34s %8.2f ms %8.2f ms %8.2f ms   (%s)\n", x->label, x->t[BENCH_SPAWNS / 2],
               x->t[BENCH_SPAWNS * 95 / 100], x->t[BENCH_SPAWNS - 1], x->note);
}

/* posix_spawn + exit of a program, no sandbox at all. */
static int plain_exit(char *const argv[]) {
        char *const envp[] = { NULL };
        posix_spawn_file_actions_t fa;
        pid_t pid;
        int r;

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
        r = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        if (r != 0)
                return -r;
        return waitpid(pid, NULL, 0) == pid ? 0 : -errno;
}

/* The same worker, no sandbox: posix_spawn with the channel at fd 3, until it answers a ping. */
static int plain_worker(char *const argv[]) {
        char *const envp[] = { (char *) "BASTION_LOG_LEVEL=4", NULL };
        posix_spawn_file_actions_t fa;
        int sv[2], r;
        pid_t pid;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
        r = posix_spawn(&pid, argv[0], &fa, NULL, argv, envp);
        posix_spawn_file_actions_destroy(&fa);
        close(sv[1]);
        if (r != 0)
                return close(sv[0]), -r;
        r = ping(sv[0]);
        stop(pid, sv[0]);
        return r;
}

/* Spawn → attested (→ ping answered) of the sandboxed worker, interleaved round by round with the
 * baselines so that a burst of load on the machine hits all of them alike. */
static int bench_spawn(const struct kind *k, const char *state_dir, char *const plain_argv[]) {
        static struct series att = { .label = "worker spawn→attested", .note = "target median < 10 ms" },
                exec = { .label = "  of which spawn→exec'd", .note = "namespaces, maps, fds, exec" },
                pinged = { .label = "worker spawn→attested→ping", .note = "sandboxed, answering" },
                plain = { .label = "worker spawn→ping, no sandbox", .note = "baseline: posix_spawn, same worker and db" },
                help = { .label = "exec bastion-worker --help", .note = "baseline: exec + dynamic linking" },
                truth = { .label = "exec /bin/true", .note = "baseline: the machine's exec floor" };
        char *true_argv[] = { (char *) "/bin/true", NULL }, *help_argv[] = { plain_argv[0], (char *) "--help", NULL };
        struct sandbox_attestation a;

        for (int i = 0; i < BENCH_SPAWNS; i++) {
                double start = now_ms();
                pid_t pid;
                int fd, ready, r;

                r = spawn_kind(k, state_dir, &pid, &fd, &ready);
                if (r < 0)
                        return fprintf(stderr, "spawn %s: %s\n", k->name, strerror(-r)), r;
                exec.t[i] = now_ms() - start;
                r = wait_attested(k, pid, ready, &a);
                att.t[i] = now_ms() - start;
                if (r < 0) {
                        stop(pid, fd);
                        return fprintf(stderr, "attest %s: %s (%s)\n", k->name, a.reason, strerror(-r)), r;
                }
                r = ping(fd);
                pinged.t[i] = now_ms() - start;
                stop(pid, fd);
                if (r < 0)
                        return fprintf(stderr, "ping %s: %s\n", k->name, strerror(-r)), r;

                start = now_ms();
                if ((r = plain_worker(plain_argv)) < 0)
                        return fprintf(stderr, "unsandboxed worker: %s\n", strerror(-r)), r;
                plain.t[i] = now_ms() - start;
                start = now_ms();
                if ((r = plain_exit(help_argv)) < 0)
                        return fprintf(stderr, "%s --help: %s\n", help_argv[0], strerror(-r)), r;
                help.t[i] = now_ms() - start;
                start = now_ms();
                if ((r = plain_exit(true_argv)) < 0)
                        return fprintf(stderr, "/bin/true: %s\n", strerror(-r)), r;
                truth.t[i] = now_ms() - start;
        }
        printf("%-34s %11s %11s %11s   (%d rounds)\n", "measure", "median", "p95", "max", BENCH_SPAWNS);
        print_series(&att);
        print_series(&exec);
        print_series(&pinged);
        print_series(&plain);
        print_series(&help);
        print_series(&truth);
        printf("\n%-34s %8.2f×   (the sandbox's cost over the same worker unconfined)\n",
               "ratio attested→ping / no sandbox", median(&pinged) / median(&plain));
        printf("%-34s %8.2f×\n", "ratio attested / exec --help", median(&att) / median(&help));
        printf("%-34s %8.2f×\n", "ratio attested / exec /bin/true", median(&att) / median(&truth));
        return 0;
}

static void bench_rss(const struct kind *k, const char *state_dir) {
        struct sandbox_attestation a;
        char libs[512];
        pid_t pid;
        int fd, ready;

        if (access(k->argv[0], X_OK) < 0) {
                printf("%-26s %10s   (%s not built)\n", k->name, "n/a", k->argv[0]);
                return;
        }
        if (spawn_kind(k, state_dir, &pid, &fd, &ready) < 0) {
                printf("%-26s %10s   (spawn failed)\n", k->name, "n/a");
                return;
        }
        (void) wait_attested(k, pid, ready, &a);
        usleep(BENCH_IDLE_MS * 1000);
        shared_objects(pid, libs, sizeof(libs));
        printf("%-26s %7.2f MiB   (VmRSS after %d ms idle)\n", k->name, rss_kib(pid) / 1024.0, BENCH_IDLE_MS);
        printf("%-26s %10s   shared objects: %s\n", "", "", libs);
        stop(pid, fd);
}

int main(int argc, char **argv) {
        const char *build = argc > 1 ? argv[1] : BENCH_BUILDDIR;
        char worker[512], broker[512], state[] = "/tmp/bastion-bench.XXXXXX", plain[] = "/tmp/bastion-bench.XXXXXX";
        char db[600], plain_db[600], cmd[128];
        int r;

        snprintf(worker, sizeof(worker), "%s/bastion-worker", build);
        snprintf(broker, sizeof(broker), "%s/bastion-broker", build);
        if (!mkdtemp(state) || chown(state, BENCH_UID, BENCH_UID) < 0 || !mkdtemp(plain))
                return perror("state dir"), 1;
        /* The unconfined worker runs as root: its own copy of the same demo database. */
        snprintf(db, sizeof(db), "%s/inventory.db", state);
        snprintf(plain_db, sizeof(plain_db), "%s/inventory.db", plain);
        struct kind kinds[] = {
                { "worker (inventory)", SANDBOX_ROLE_WORKER, BENCH_UID,
                  { worker, "inventory", "--db", db, "--fd", "3", "--demo-data", "--sandbox", NULL } },
                { "broker", SANDBOX_ROLE_BROKER, 0, { broker, NULL } },
        };

        /* The workers' start-up lines would drown the table. */
        setenv("BASTION_LOG_LEVEL", "4", 1);
        r = bench_spawn(&kinds[0], state, (char *[]) { worker, (char *) "inventory", (char *) "--db", plain_db,
                                                      (char *) "--fd", (char *) "3", (char *) "--demo-data", NULL });
        printf("\n%-26s %10s\n", "process kind", "idle RSS");
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
                bench_rss(&kinds[i], kinds[i].role == SANDBOX_ROLE_WORKER ? state : NULL);
        printf("%-26s %7.2f MiB   (this process: the supervisor side of spawn)\n", "bench (supervisor side)",
               rss_kib(getpid()) / 1024.0);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", state, plain);
        (void) !system(cmd);
        return r < 0 ? 1 : 0;
}
