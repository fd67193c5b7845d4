/* The real bastion-worker under the real sandbox: spawned like the supervisor spawns it, attested, and
 * then driven through every tool of its domain, reads and writes, over its channel. A system call the
 * worker needs but its allowlist lacks shows up here as a SIGSYS death, not in production. */
#include "config.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bounds.h"
#include "sandbox.h"
#include "util.h"

#define WORKER_UID 4000220

static char dir[64];
static int chan = -1;
static FILE *chan_in;

static json_t *call(int id, const char *method, json_t *params) {
        _cleanup_free_ char *text = NULL;
        json_t *req = json_pack("{s:s, s:i, s:s, s:o}", "jsonrpc", "2.0", "id", id, "method", method, "params", params);
        static char line[BASTION_MAX_LINE];
        json_error_t e;
        json_t *reply;

        text = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        cr_assert_gt(dprintf(chan, "%s\n", text), 0);
        cr_assert_not_null(fgets(line, sizeof(line), chan_in), "the worker closed its channel (killed?)");
        reply = json_loads(line, 0, &e);
        cr_assert_not_null(reply, "not JSON: %s", line);
        cr_assert_not_null(json_object_get(reply, "result"), "error reply: %s", line);
        return reply;
}

static json_t *tool(int id, const char *name, json_t *args) {
        json_t *reply = call(id, "tools/call", json_pack("{s:s, s:o, s:{s:{s:s, s:i, s:[s]}}}", "name", name,
                                                        "arguments", args, "_meta", "dev.bastion/principal",
                                                        "sub", "tester", "uid", 0, "scopes", "inventory:read"));
        json_t *result = json_object_get(reply, "result");

        cr_assert(!json_is_true(json_object_get(result, "isError")), "%s failed: %s", name,
                  json_string_value(json_object_get(json_array_get(json_object_get(result, "content"), 0), "text")));
        return reply;
}

/* A fresh state dir owned by the worker uid, and the worker spawned into it like the supervisor does:
 * attested once its ready fd hangs up, which it does only when its lockdown is complete (no retry).
 * The filter socket it was handed (fd 4, after the channel) is closed by then. */
static pid_t spawn_worker(const char *domain) {
        struct sandbox_attestation a;
        struct pollfd p;
        struct stat st;
        char db[128], path[64];
        int sv[2], ready;
        pid_t pid;

        strcpy(dir, "/tmp/bastion-sbworker.XXXXXX");
        cr_assert_not_null(mkdtemp(dir));
        cr_assert_eq(chmod(dir, 0700), 0);
        cr_assert_eq(chown(dir, WORKER_UID, WORKER_UID), 0);
        snprintf(db, sizeof(db), "%s/%s.db", dir, domain);
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        cr_assert_eq(sandbox_spawn_notify(&(struct sandbox_spawn) {
                .name = domain, .role = SANDBOX_ROLE_WORKER, .host_uid = WORKER_UID, .host_gid = WORKER_UID,
                .state_dir = dir, .fds = &sv[1], .n_fds = 1, .memory_max = 512ULL << 20,
                .argv = (char *[]) { BASTION_WORKER_PATH, (char *) domain, "--db", db, "--fd", "3", "--demo-data",
                                     "--sandbox", NULL },
        }, &pid, &ready), 0);
        close(sv[1]);
        chan = sv[0];
        chan_in = fdopen(dup(chan), "r");
        cr_assert_geq(ready, 0);
        p = (struct pollfd) { .fd = ready, .events = 0 };
        cr_assert_eq(poll(&p, 1, BASTION_ATTEST_TIMEOUT_MS), 1, "%s: no hang-up", domain);
        close(ready);
        cr_assert_eq(sandbox_attest(pid, SANDBOX_ROLE_WORKER, WORKER_UID, &a), 0, "%s: %s", domain, a.reason);
        snprintf(path, sizeof(path), "/proc/%d/fd/4", (int) pid);
        cr_assert_eq(lstat(path, &st), -1, "%s: the filter socket is still open", domain);
        json_decref(call(1, "initialize", json_pack("{s:s, s:{}, s:{s:s, s:s}}", "protocolVersion", "2025-11-25",
                                                    "capabilities", "clientInfo", "name", "test", "version", "1")));
        cr_assert_gt(dprintf(chan, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n"), 0);
        return pid;
}

/* Still confined after the work, and a clean exit on EOF. */
static void stop_worker(pid_t pid) {
        struct sandbox_attestation a;
        char cmd[128];
        int status;

        cr_assert_eq(sandbox_attest(pid, SANDBOX_ROLE_WORKER, WORKER_UID, &a), 0, "%s", a.reason);
        close(chan);
        fclose(chan_in);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker status %#x", status);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        cr_assert_eq(system(cmd), 0);
}

Test(sandboxed_worker, inventory_serves_reads_and_writes_under_its_filter, .timeout = 30) {
        json_t *r, *item;
        pid_t pid;

        cr_assert_null(getpwuid(WORKER_UID));
        pid = spawn_worker("inventory");
        json_decref(call(2, "tools/list", json_object()));
        r = tool(3, "list_low_stock", json_object());
        item = json_array_get(json_object_get(json_object_get(json_object_get(r, "result"), "structuredContent"),
                                              "items"), 0);
        cr_assert_not_null(item, "the demo data set has no low stock");
        json_decref(tool(4, "get_stock", json_pack("{s:O}", "sku", json_object_get(item, "sku"))));
        /* A write: the WAL grows and is synced inside the sandbox. */
        json_decref(tool(5, "create_reorder", json_pack("{s:O, s:i, s:O}", "sku", json_object_get(item, "sku"),
                                                        "quantity", 7, "warehouse", json_object_get(item, "warehouse"))));
        json_decref(tool(6, "get_reorder", json_pack("{s:i}", "reorder_id", 1)));
        json_decref(tool(7, "list_reorders", json_object()));
        json_decref(r);
        stop_worker(pid);
}

/* Every domain the binary offers (its --help lists them) starts, seeds, locks down and lists its tools. */
Test(sandboxed_worker, every_domain_starts_and_lists_tools_under_its_filter, .timeout = 60) {
        char help[4096] = "", *domains;
        FILE *f = popen(BASTION_WORKER_PATH " --help", "r");
        size_t n;
        int count = 0;

        cr_assert_not_null(f);
        n = fread(help, 1, sizeof(help) - 1, f);
        help[n] = '\0';
        pclose(f);
        domains = strstr(help, "Domains:");
        cr_assert_not_null(domains, "no domain list in --help");
        for (char *d = strtok(domains + strlen("Domains:"), " \n"); d; d = strtok(NULL, " \n")) {
                char name[64];
                pid_t pid;
                json_t *r;

                snprintf(name, sizeof(name), "%s", d);
                pid = spawn_worker(name);
                r = call(2, "tools/list", json_object());
                cr_assert_gt(json_array_size(json_object_get(json_object_get(r, "result"), "tools")), 0, "%s", name);
                json_decref(r);
                stop_worker(pid);
                count++;
        }
        cr_assert_gt(count, 0);
}
