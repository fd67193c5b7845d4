/* bench/spawn: how long a worker takes from sandbox_spawn() to a passing attestation (median and p95
 * over BENCH_SPAWNS spawns of the real bastion-worker with --sandbox), and the idle RSS of each process
 * kind. Targets (issue #3): median under 10 ms, idle worker RSS under 4 MiB.
 * Usage: bench/spawn [BUILDDIR]   (default: the build tree it was compiled in). Run as root. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
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

struct kind {
        const char *name;
        enum sandbox_role role;
        uid_t uid;
        char *argv[10];
};

/* Spawns one process of the kind with a socketpair at fd 3; returns its pid and our end. */
static int spawn_kind(const struct kind *k, const char *state_dir, pid_t *ret_pid, int *ret_fd) {
        int sv[2], r;

        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        r = sandbox_spawn(&(struct sandbox_spawn) {
                .name = k->name, .role = k->role, .argv = k->argv, .host_uid = k->uid, .host_gid = k->uid,
                .state_dir = state_dir, .fds = &sv[1], .n_fds = 1,
        }, ret_pid);
        close(sv[1]);
        if (r < 0) {
                close(sv[0]);
                return r;
        }
        *ret_fd = sv[0];
        return 0;
}

static void stop(pid_t pid, int fd) {
        close(fd);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
}

/* The floor this machine sets: plain posix_spawn + exit of a program, no sandbox at all. */
static void bench_baseline(const char *label, char *const argv[]) {
        static double t[BENCH_SPAWNS];
        char *const envp[] = { NULL };
        posix_spawn_file_actions_t fa;

        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
        for (int i = 0; i < BENCH_SPAWNS; i++) {
                double start = now_ms();
                pid_t pid;

                if (posix_spawn(&pid, argv[0], &fa, NULL, argv, envp) != 0)
                        break;
                waitpid(pid, NULL, 0);
                t[i] = now_ms() - start;
        }
        posix_spawn_file_actions_destroy(&fa);
        qsort(t, BENCH_SPAWNS, sizeof(t[0]), cmp_double);
        printf("%-26s %8.2f ms %8.2f ms %8.2f ms   (baseline, no sandbox)\n", label, t[BENCH_SPAWNS / 2],
               t[BENCH_SPAWNS * 95 / 100], t[BENCH_SPAWNS - 1]);
}

static int bench_spawn_to_attested(const struct kind *k, const char *state_dir) {
        static double t[BENCH_SPAWNS], e[BENCH_SPAWNS];
        struct sandbox_attestation a;

        for (int i = 0; i < BENCH_SPAWNS; i++) {
                double start = now_ms();
                pid_t pid;
                int fd, r;

                r = spawn_kind(k, state_dir, &pid, &fd);
                if (r < 0)
                        return fprintf(stderr, "spawn %s: %s\n", k->name, strerror(-r)), r;
                e[i] = now_ms() - start;
                r = sandbox_attest_wait(pid, k->role, k->uid, BASTION_ATTEST_TIMEOUT_MS, &a);
                t[i] = now_ms() - start;
                stop(pid, fd);
                if (r < 0)
                        return fprintf(stderr, "attest %s: %s (%s)\n", k->name, a.reason, strerror(-r)), r;
        }
        qsort(t, BENCH_SPAWNS, sizeof(t[0]), cmp_double);
        qsort(e, BENCH_SPAWNS, sizeof(e[0]), cmp_double);
        printf("%-26s %8.2f ms %8.2f ms %8.2f ms   (%d spawns, target median < 10 ms)\n",
               "worker spawn→attested", t[BENCH_SPAWNS / 2], t[BENCH_SPAWNS * 95 / 100], t[BENCH_SPAWNS - 1],
               BENCH_SPAWNS);
        printf("%-26s %8.2f ms %8.2f ms %8.2f ms   (namespaces, maps, fds, exec)\n",
               "  of which spawn→exec'd", e[BENCH_SPAWNS / 2], e[BENCH_SPAWNS * 95 / 100], e[BENCH_SPAWNS - 1]);
        return 0;
}

static void bench_rss(const struct kind *k, const char *state_dir) {
        struct sandbox_attestation a;
        pid_t pid;
        int fd;

        if (access(k->argv[0], X_OK) < 0) {
                printf("%-26s %10s   (%s not built)\n", k->name, "n/a", k->argv[0]);
                return;
        }
        if (spawn_kind(k, state_dir, &pid, &fd) < 0) {
                printf("%-26s %10s   (spawn failed)\n", k->name, "n/a");
                return;
        }
        (void) sandbox_attest_wait(pid, k->role, k->uid, BASTION_ATTEST_TIMEOUT_MS, &a);
        usleep(BENCH_IDLE_MS * 1000);
        printf("%-26s %7.2f MiB   (VmRSS after %d ms idle)\n", k->name, rss_kib(pid) / 1024.0, BENCH_IDLE_MS);
        stop(pid, fd);
}

int main(int argc, char **argv) {
        const char *build = argc > 1 ? argv[1] : BENCH_BUILDDIR;
        char worker[512], broker[512], state[] = "/tmp/bastion-bench.XXXXXX", db[600];
        int r;

        snprintf(worker, sizeof(worker), "%s/bastion-worker", build);
        snprintf(broker, sizeof(broker), "%s/bastion-broker", build);
        if (!mkdtemp(state) || chown(state, BENCH_UID, BENCH_UID) < 0)
                return perror("state dir"), 1;
        snprintf(db, sizeof(db), "%s/inventory.db", state);
        struct kind kinds[] = {
                { "worker (inventory)", SANDBOX_ROLE_WORKER, BENCH_UID,
                  { worker, "inventory", "--db", db, "--fd", "3", "--demo-data", "--sandbox", NULL } },
                { "broker", SANDBOX_ROLE_BROKER, 0, { broker, NULL } },
        };

        /* The workers' start-up lines would drown the table. */
        setenv("BASTION_LOG_LEVEL", "4", 1);
        printf("%-26s %11s %11s %11s\n", "measure", "median", "p95", "max");
        r = bench_spawn_to_attested(&kinds[0], state);
        bench_baseline("  exec /bin/true", (char *[]) { (char *) "/bin/true", NULL });
        bench_baseline("  exec bastion-worker -h", (char *[]) { worker, (char *) "--help", NULL });
        printf("\n%-26s %10s\n", "process kind", "idle RSS");
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
                bench_rss(&kinds[i], kinds[i].role == SANDBOX_ROLE_WORKER ? state : NULL);
        printf("%-26s %7.2f MiB   (this process: the supervisor side of spawn)\n", "bench (supervisor side)",
               rss_kib(getpid()) / 1024.0);
        {
                char cmd[128];

                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state);
                (void) !system(cmd);
        }
        return r < 0 ? 1 : 0;
}
