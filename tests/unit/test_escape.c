/* The escape drill (issue #3): a `returns` worker, spawned and locked down exactly like a real one,
 * tries to reach its `payments` neighbour's database and credential, the host, the network and the
 * kernel. Every attempt must be blocked; the table of attempts and outcomes is printed. Then (issue
 * #5) it searches its memory, environment, fds and file system for the payments credential, which
 * the neighbour holds as bastiond hands it over (a sealed memfd at fd 4), and must find nothing,
 * while the same search finds its own credential. */
#include "config.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "sandbox.h"
#include "util.h"

/* Dedicated test uids, far above any distribution's range; the test checks they are unused. */
#define PAYMENTS_UID 4000201
#define RETURNS_UID 4000202
#define SECRET "sk_live_ESCAPE_DRILL_SECRET_4242"
#define OWN_SECRET "rk_returns_OWN_CREDENTIAL_7171"
#define MIN_ATTEMPTS 30
#define SEARCHES 4
#define CONTROLS 5
/* The drill gets the values XOR-masked (escape-worker.c), never in the clear. */
#define NEEDLE_MASK 0x5a

static char dir[64], payments[96], returns[96];

static void mkdir_owned(const char *path, uid_t uid) {
        cr_assert_eq(mkdir(path, 0700), 0, "mkdir %s: %s", path, strerror(errno));
        cr_assert_eq(chown(path, uid, uid), 0);
}

static void write_secret_files(void) {
        char path[160];
        sqlite3 *db;
        int fd;

        snprintf(path, sizeof(path), "%s/credential.key", payments);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, SECRET, strlen(SECRET)), (ssize_t) strlen(SECRET));
        cr_assert_eq(fchown(fd, PAYMENTS_UID, PAYMENTS_UID), 0);
        close(fd);
        snprintf(path, sizeof(path), "%s/payments.db", payments);
        cr_assert_eq(sqlite3_open(path, &db), SQLITE_OK);
        cr_assert_eq(sqlite3_exec(db, "CREATE TABLE cards(pan TEXT); INSERT INTO cards VALUES ('" SECRET "');",
                                  NULL, NULL, NULL), SQLITE_OK);
        sqlite3_close(db);
        cr_assert_eq(chown(path, PAYMENTS_UID, PAYMENTS_UID), 0);
        cr_assert_eq(chmod(path, 0600), 0);
}

static int listen_unix(const char *path, bool abstract) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        socklen_t len = offsetof(struct sockaddr_un, sun_path) + strlen(path) + 1;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        cr_assert_geq(fd, 0);
        strncpy(sa.sun_path + abstract, path, sizeof(sa.sun_path) - 2);
        cr_assert_eq(bind(fd, (struct sockaddr *) &sa, len), 0, "bind %s: %s", path, strerror(errno));
        cr_assert_eq(listen(fd, 4), 0);
        if (!abstract)
                cr_assert_eq(chmod(path, 0777), 0);     /* tempting: only the sandbox may stop it */
        return fd;
}

static int listen_tcp(int *ret_port) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof(sa);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        cr_assert_geq(fd, 0);
        cr_assert_eq(bind(fd, (struct sockaddr *) &sa, sizeof(sa)), 0);
        cr_assert_eq(listen(fd, 4), 0);
        cr_assert_eq(getsockname(fd, (struct sockaddr *) &sa, &len), 0);
        *ret_port = ntohs(sa.sin_port);
        return fd;
}

/* Waits until the child has finished its lockdown (Seccomp 2) and passes attestation. */
static void await_attested(pid_t pid, uid_t uid) {
        struct sandbox_attestation a;

        cr_assert_eq(sandbox_attest_wait(pid, SANDBOX_ROLE_WORKER, uid, BASTION_ATTEST_TIMEOUT_MS, &a), 0,
                     "worker %d not attested: %s", (int) pid, a.reason);
        cr_assert(a.own_namespaces);
#ifndef BASTION_SANITIZERS
        cr_assert_eq(a.seccomp_mode, 2);
#endif
        cr_assert_eq(a.cap_eff | a.cap_prm | a.cap_inh | a.cap_bnd | a.cap_amb, 0);
        cr_assert_geq(a.landlock_abi, 1);
}

/* fds: the channel at 3 and, for the drill worker, its credential at 4. */
static pid_t spawn_escape_worker(const char *name, uid_t uid, const char *state_dir, char **argv, const int *fds,
                                 unsigned n_fds) {
        pid_t pid;

        cr_assert_eq(sandbox_spawn(&(struct sandbox_spawn) {
                .name = name, .role = SANDBOX_ROLE_WORKER, .argv = argv, .host_uid = uid, .host_gid = uid,
                .state_dir = state_dir, .fds = fds, .n_fds = n_fds,
        }, &pid), 0);
        return pid;
}

static char *read_all(int fd) {
        static char buf[16384];
        size_t n = 0;
        ssize_t k;

        while (n < sizeof(buf) - 1 && (k = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0)
                n += k;
        buf[n] = '\0';
        return buf;
}

/* What bastiond hands a worker: a memfd holding the value, sealed against every change. */
static int sealed_credential(const char *value) {
        int fd = memfd_create("credential", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, value, strlen(value)), (ssize_t) strlen(value));
        cr_assert_eq(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL), 0);
        return fd;
}

static void masked_hex(const char *value, char *buf, size_t size) {
        cr_assert_lt(strlen(value) * 2, size);
        for (size_t i = 0; value[i]; i++)
                snprintf(buf + 2 * i, 3, "%02x", (unsigned char) value[i] ^ NEEDLE_MASK);
}

/* Prints the table and counts attempts, escapes, searches and failed controls. */
static void check_table(char *out) {
        int attempts = 0, escaped = 0, controls = 0, searches = 0, found = 0;
        bool done = false;

        fprintf(stderr, "\n%-42s %s\n", "attempt", "outcome");
        for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
                char *tab = strchr(line, '\t');

                cr_assert_not_null(tab, "malformed line: %s", line);
                *tab = '\0';
                fprintf(stderr, "%-42s → %s\n", line, tab + 1);
                if (streq(line, "done"))
                        done = true;
                else if (strncmp(line, "control:", 8) == 0)
                        controls += streq(tab + 1, "ok");
                else if (strncmp(line, "search:", 7) == 0) {
                        searches++;
                        found += strncmp(tab + 1, "not found", 9) != 0;
                } else {
                        attempts++;
                        escaped += strncmp(tab + 1, "blocked", 7) != 0;
                }
        }
        fprintf(stderr, "%d attempts, %d not blocked; %d searches, %d found the payments credential\n", attempts,
                escaped, searches, found);
        cr_assert(done, "the drill did not finish");
        cr_assert_eq(controls, CONTROLS, "the worker could not use its own state dir, fds or credential inside the "
                     "sandbox, or the search does not find what is there");
        cr_assert_geq(attempts, MIN_ATTEMPTS);
        cr_assert_eq(escaped, 0, "%d escape attempts were not blocked", escaped);
        cr_assert_eq(searches, SEARCHES);
        cr_assert_eq(found, 0, "the payments credential was found %d time(s) inside the returns worker", found);
}

static void check_payments_untouched(void) {
        char path[160], buf[64] = "";
        int fd;

        snprintf(path, sizeof(path), "%s/planted", payments);
        cr_assert_eq(access(path, F_OK), -1);
        snprintf(path, sizeof(path), "%s/credential.key", payments);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        cr_assert_gt(read(fd, buf, sizeof(buf) - 1), 0);
        close(fd);
        cr_assert_str_eq(buf, SECRET);
}

Test(escape, returns_worker_cannot_reach_payments_host_network_or_kernel, .timeout = 60) {
        char broker_sock[128], control_sock[128], abstract[64], victim_pid[16], port[16], credential[128];
        char needle[2 * sizeof(SECRET) + 1], own_needle[2 * sizeof(OWN_SECRET) + 1];
        int victim_chan[2], drill_chan[2], fds[2], tcp_port, status;
        pid_t victim, drill;

#ifdef BASTION_SANITIZERS
        cr_skip_test("the sanitizer build loads no seccomp filter");
#endif
        cr_assert_null(getpwuid(PAYMENTS_UID), "test uid %d is a real account", PAYMENTS_UID);
        cr_assert_null(getpwuid(RETURNS_UID), "test uid %d is a real account", RETURNS_UID);
        strcpy(dir, "/tmp/bastion-escape.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        cr_assert_eq(chmod(dir, 0755), 0);
        snprintf(payments, sizeof(payments), "%s/payments", dir);
        snprintf(returns, sizeof(returns), "%s/returns", dir);
        mkdir_owned(payments, PAYMENTS_UID);
        mkdir_owned(returns, RETURNS_UID);
        write_secret_files();
        snprintf(broker_sock, sizeof(broker_sock), "%s/mcp.sock", dir);
        snprintf(control_sock, sizeof(control_sock), "%s/control.sock", dir);
        snprintf(abstract, sizeof(abstract), "bastion-escape-%d", (int) getpid());
        (void) listen_unix(broker_sock, false);
        (void) listen_unix(control_sock, false);
        (void) listen_unix(abstract, true);
        (void) listen_tcp(&tcp_port);

        cr_assert_eq(pipe2(victim_chan, O_CLOEXEC), 0);
        fds[0] = victim_chan[0];
        fds[1] = sealed_credential(SECRET);
        victim = spawn_escape_worker("worker payments", PAYMENTS_UID, payments,
                                     (char *[]) { ESCAPE_WORKER_PATH, "--idle", "--state-dir", payments, NULL },
                                     fds, 2);
        close(fds[0]);
        close(fds[1]);
        await_attested(victim, PAYMENTS_UID);

        snprintf(victim_pid, sizeof(victim_pid), "%d", (int) victim);
        snprintf(port, sizeof(port), "%d", tcp_port);
        cr_assert_eq(pipe2(drill_chan, O_CLOEXEC), 0);
        snprintf(credential, sizeof(credential), "%s/returns.key", dir);
        /* Its own credential on the host (which it must not reach by path) and, as bastiond does, at fd 4. */
        fds[0] = open(credential, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        cr_assert_geq(fds[0], 0);
        cr_assert_eq(write(fds[0], OWN_SECRET, strlen(OWN_SECRET)), (ssize_t) strlen(OWN_SECRET));
        close(fds[0]);
        fds[0] = drill_chan[1];
        fds[1] = sealed_credential(OWN_SECRET);
        masked_hex(SECRET, needle, sizeof(needle));
        masked_hex(OWN_SECRET, own_needle, sizeof(own_needle));
        drill = spawn_escape_worker("worker returns", RETURNS_UID, returns, (char *[]) {
                ESCAPE_WORKER_PATH, "--state-dir", returns, "--victim-dir", payments, "--victim-pid", victim_pid,
                "--broker-socket", broker_sock, "--control-socket", control_sock, "--abstract", abstract,
                "--tcp-port", port, "--credential", credential, "--needle", needle, "--own-needle", own_needle,
                NULL }, fds, 2);
        close(fds[0]);
        close(fds[1]);
        check_table(read_all(drill_chan[0]));
        cr_assert_eq(waitpid(drill, &status, 0), drill);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "drill worker status %#x", status);

        /* The neighbour survived, is still confined, and its secrets are intact. */
        cr_assert_eq(kill(victim, 0), 0);
        await_attested(victim, PAYMENTS_UID);
        check_payments_untouched();
        close(victim_chan[1]);
        cr_assert_eq(waitpid(victim, &status, 0), victim);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "payments worker status %#x", status);
        {
                char cmd[128];

                snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
                cr_assert_eq(system(cmd), 0);
        }
}
