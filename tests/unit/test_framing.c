/* The worker's framing and JSON-RPC dispatch: what each malformed or unexpected line gets back. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bounds.h"
#include "json_alloc.h"
#include "worker_test.h"

static struct worker_fixture f;

static void setup(void) {
        fixture_open(&f, true);
}

static void teardown(void) {
        fixture_close(&f);
}

TestSuite(framing, .init = setup, .fini = teardown);

Test(framing, oversized_line_gets_invalid_request_with_null_id_and_the_next_line_is_served) {
        size_t n = BASTION_MAX_LINE + 100;
        char *big = malloc(n + 1);
        static const char ping[] = "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\"}\n";
        json_t *replies;

        memset(big, 'x', n);
        big[n] = '\n';
        replies = fixture_feed(&f, big, n + 1);
        free(big);
        assert_reply(replies, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":\"Message too large\"}}");
        assert_reply(fixture_feed(&f, ping, strlen(ping)), "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}");
}

Test(framing, oversized_line_arriving_in_pieces_is_answered_once) {
        size_t chunk = 64 * 1024;
        char *piece = malloc(chunk);
        json_t *all = json_array(), *r;

        memset(piece, 'y', chunk);
        for (size_t sent = 0; sent <= BASTION_MAX_LINE; sent += chunk) {
                r = fixture_feed(&f, piece, chunk);
                json_array_extend(all, r);
                json_decref(r);
        }
        free(piece);
        r = fixture_send(&f, "yyyy");
        json_array_extend(all, r);
        json_decref(r);
        assert_reply(all, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,\"message\":\"Message too large\"}}");
        assert_reply(fixture_send(&f, "{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"ping\"}"),
                     "{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{}}");
}

Test(framing, invalid_json_gets_parse_error_with_null_id) {
        assert_reply(fixture_send(&f, "{\"jsonrpc\":\"2.0\",\"id\":1,"),
                     "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error\"}}");
}

Test(framing, batch_gets_invalid_request) {
        assert_reply(fixture_send(&f, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]"),
                     "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32600,"
                     "\"message\":\"JSON-RPC batching is not supported\"}}");
}

Test(framing, notifications_get_no_response) {
        json_t *r;

        r = fixture_send(&f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
        cr_assert_eq(json_array_size(r), 0);
        json_decref(r);
        r = fixture_send(&f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":{\"requestId\":3}}");
        cr_assert_eq(json_array_size(r), 0);
        json_decref(r);
        r = fixture_send(&f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/no_such_thing\"}");
        cr_assert_eq(json_array_size(r), 0);
        json_decref(r);
        /* A notification naming a request method is still a notification: no answer either. */
        r = fixture_send(&f, "{\"jsonrpc\":\"2.0\",\"method\":\"tools/list\"}");
        cr_assert_eq(json_array_size(r), 0);
        json_decref(r);
        /* Nor when its params are not an object: a notification is never answered. */
        r = fixture_send(&f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/cancelled\",\"params\":[3]}");
        cr_assert_eq(json_array_size(r), 0);
        json_decref(r);
        /* The same with an id is a request, and gets its error. */
        assert_reply(fixture_send(&f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/list\",\"params\":[3]}"),
                     "{\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":-32600,"
                     "\"message\":\"Invalid Request: params must be an object\"}}");
}

Test(framing, unknown_method_gets_method_not_found) {
        assert_reply(fixture_send(&f, "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"method\":\"resources/list\"}"),
                     "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"error\":{\"code\":-32601,\"message\":\"Method not found\"}}");
        /* A notification-only method sent as a request is not a method we answer. */
        assert_reply(fixture_send(&f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"notifications/initialized\"}"),
                     "{\"jsonrpc\":\"2.0\",\"id\":2,\"error\":{\"code\":-32601,\"message\":\"Method not found\"}}");
}

Test(framing, unknown_tool_gets_invalid_params) {
        assert_reply(fixture_send(&f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\","
                                      "\"params\":{\"name\":\"drop_tables\",\"arguments\":{}}}"),
                     "{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32602,\"message\":\"Unknown tool: drop_tables\"}}");
}

Test(framing, malformed_principal_gets_invalid_params) {
        assert_reply(fixture_send(&f, "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{"
                                      "\"name\":\"get_stock\",\"arguments\":{\"sku\":\"SKU-1001\"},"
                                      "\"_meta\":{\"dev.bastion/principal\":{\"sub\":42}}}}"),
                     "{\"jsonrpc\":\"2.0\",\"id\":4,\"error\":{\"code\":-32602,"
                     "\"message\":\"Invalid params: malformed _meta[\\\"dev.bastion/principal\\\"]\"}}");
}

Test(framing, initialize_answers_2025_11_25_whatever_was_asked) {
        static const char *const asked[] = { "2025-11-25", "2025-06-18", "1999-01-01" };

        for (size_t i = 0; i < ELEMENTSOF(asked); i++) {
                char line[256];
                snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{"
                         "\"protocolVersion\":\"%s\",\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}",
                         asked[i]);
                assert_reply(fixture_send(&f, line),
                             "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":\"2025-11-25\","
                             "\"capabilities\":{\"tools\":{\"listChanged\":false}},"
                             "\"serverInfo\":{\"name\":\"bastion-inventory\",\"version\":\"" PACKAGE_VERSION "\"}}}");
        }
}

Test(framing, tools_list_names_every_tool_in_order_with_annotations) {
        json_t *replies = fixture_send(&f, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/list\"}");
        json_t *tools = json_object_get(json_object_get(json_array_get(replies, 0), "result"), "tools");
        static const char *const names[] = { "get_stock", "list_low_stock", "create_reorder", "get_reorder",
                                             "list_reorders" };

        cr_assert_eq(json_array_size(tools), ELEMENTSOF(names));
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                json_t *t = json_array_get(tools, i);
                json_t *a = json_object_get(t, "annotations");
                cr_assert_str_eq(json_string_value(json_object_get(t, "name")), names[i]);
                cr_assert(json_is_false(json_object_get(json_object_get(t, "inputSchema"), "additionalProperties")));
                cr_assert_eq(json_is_true(json_object_get(a, "readOnlyHint")), !streq(names[i], "create_reorder"));
                cr_assert(json_is_false(json_object_get(a, "openWorldHint")));
        }
        json_decref(replies);
}

Test(framing, tool_failure_is_a_result_with_is_error) {
        assert_reply(fixture_send(&f, "{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\","
                                      "\"params\":{\"name\":\"get_stock\",\"arguments\":{\"sku\":\"SKU-9999\"}}}"),
                     "{\"jsonrpc\":\"2.0\",\"id\":6,\"result\":{\"content\":[{\"type\":\"text\","
                     "\"text\":\"unknown SKU: SKU-9999\"}],\"isError\":true}}");
}

Test(framing, progress_is_sent_only_when_asked_and_before_the_result) {
        json_t *r = fixture_send(&f, "{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{"
                                     "\"name\":\"list_low_stock\",\"arguments\":{\"limit\":1},"
                                     "\"_meta\":{\"progressToken\":\"tok\"}}}");

        cr_assert_eq(json_array_size(r), 3);
        for (size_t i = 0; i < 2; i++) {
                json_t *n = json_array_get(r, i);
                cr_assert_str_eq(json_string_value(json_object_get(n, "method")), "notifications/progress");
                cr_assert_str_eq(json_string_value(json_object_get(json_object_get(n, "params"), "progressToken")), "tok");
                cr_assert_eq(json_number_value(json_object_get(json_object_get(n, "params"), "progress")), (double) i);
        }
        cr_assert_eq(json_integer_value(json_object_get(json_array_get(r, 2), "id")), 8);
        json_decref(r);
        r = fixture_send(&f, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":{"
                             "\"name\":\"list_low_stock\",\"arguments\":{\"limit\":1}}}");
        cr_assert_eq(json_array_size(r), 1);
        json_decref(r);
}

Test(framing, blank_lines_and_crlf_are_tolerated) {
        static const char in[] = "\n  \r\n{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\n";

        assert_reply(fixture_feed(&f, in, strlen(in)), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
}

/* ---- the real binary on a socketpair, as bastiond runs it ---- */

static pid_t spawn_worker(const char *const argv[], int chan, int out) {
        pid_t pid = fork();

        cr_assert_neq(pid, -1);
        if (pid == 0) {
                if (dup2(chan, 3) < 0 || dup2(out, STDOUT_FILENO) < 0)
                        _exit(127);
                execv(BASTION_WORKER_PATH, (char *const *) argv);
                _exit(127);
        }
        return pid;
}

static int wait_exit(pid_t pid) {
        int status;

        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status), "worker died by signal %d", WTERMSIG(status));
        return WEXITSTATUS(status);
}

static size_t read_all(int fd, char *buf, size_t max) {
        size_t n = 0;
        ssize_t k;

        while (n < max && (k = read(fd, buf + n, max - n)) > 0)
                n += k;
        buf[n < max ? n : max - 1] = '\0';
        return n;
}

Test(process, serves_on_fd_3_logs_nothing_on_stdout_and_exits_0_on_eof) {
        static const char requests[] =
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\","
                "\"capabilities\":{},\"clientInfo\":{\"name\":\"t\",\"version\":\"1\"}}}\n"
                "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n"
                "not json\n"
                "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"get_stock\","
                "\"arguments\":{\"sku\":\"SKU-1005\",\"warehouse\":\"WH-CHI\"}}}\n";
        char dir[] = "/tmp/bastion-worker-proc.XXXXXX", db[96], buf[8192], cmd[128];
        int sv[2], out[2];
        const char *argv[] = { "bastion-worker", "inventory", "--db", db, "--fd", "3", "--demo-data", NULL };
        json_t *reply;
        char *line;
        pid_t pid;

        cr_assert_not_null(mkdtemp(dir));
        snprintf(db, sizeof(db), "%s/inventory.db", dir);
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
        pid = spawn_worker(argv, sv[1], out[1]);
        close(sv[1]);
        close(out[1]);
        cr_assert_eq(write(sv[0], requests, strlen(requests)), (ssize_t) strlen(requests));
        cr_assert_eq(shutdown(sv[0], SHUT_WR), 0);
        read_all(sv[0], buf, sizeof(buf));
        cr_assert_eq(wait_exit(pid), 0);

        line = strtok(buf, "\n");
        reply = json_loads(line, 0, NULL);
        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(reply, "result"), "protocolVersion")),
                         "2025-11-25");
        json_decref(reply);
        line = strtok(NULL, "\n");
        cr_assert_str_eq(line, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":\"Parse error\"}}");
        line = strtok(NULL, "\n");
        reply = json_loads(line, 0, NULL);
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_object_get(reply, "result"),
                                                                        "structuredContent"), "total")), 10);
        json_decref(reply);
        cr_assert_null(strtok(NULL, "\n"), "one reply per request, none for the notification");
        cr_assert_eq(read_all(out[0], buf, sizeof(buf)), 0, "stdout must stay silent with --fd: %s", buf);
        close(out[0]);
        close(sv[0]);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        cr_assert_eq(system(cmd), 0);
}

Test(process, usage_errors_exit_2) {
        static const char *const cases[][6] = {
                { "bastion-worker", "inventory", NULL },                        /* no --db */
                { "bastion-worker", "payroll", "--db", "/tmp/x.db", NULL },     /* unknown domain */
                { "bastion-worker", "inventory", "--db", "/tmp/x.db", "--fd", "three" },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *argv[7] = {};
                memcpy(argv, cases[i], sizeof(cases[i]));
                cr_assert_eq(wait_exit(spawn_worker(argv, STDIN_FILENO, STDOUT_FILENO)), 2, "case %zu", i);
        }
}

/* ---- principal extraction ---- */

static int parse_principal(const char *params, struct worker_principal *p) {
        json_t *v = json_loads(params, 0, NULL);
        int r;

        cr_assert_not_null(v, "%s", params);
        r = principal_parse(v, p);
        json_decref(v);
        return r;
}

Test(principal, absent_principal_is_not_present) {
        struct worker_principal p;

        cr_assert_eq(parse_principal("{\"name\":\"get_stock\"}", &p), 0);
        cr_assert(!p.present);
        cr_assert_eq(p.uid, -1);
        cr_assert_eq(parse_principal("{\"_meta\":{\"progressToken\":1}}", &p), 0);
        cr_assert(!p.present);
}

Test(principal, every_field_is_typed) {
        json_t *v = json_loads("{\"_meta\":{\"dev.bastion/principal\":{\"sub\":\"uid:1000\",\"uid\":1000,"
                               "\"tenant\":\"acme\",\"role\":\"finance\",\"scopes\":[\"payments:read\"]}}}", 0, NULL);
        struct worker_principal p;

        cr_assert_eq(principal_parse(v, &p), 0);
        cr_assert(p.present);
        cr_assert_str_eq(p.sub, "uid:1000");
        cr_assert_eq(p.uid, 1000);
        cr_assert_str_eq(p.tenant, "acme");
        cr_assert_str_eq(p.role, "finance");
        cr_assert_str_eq(json_string_value(json_array_get(p.scopes, 0)), "payments:read");
        json_decref(v);
}

Test(principal, null_tenant_and_role_are_absent) {
        struct worker_principal p;

        cr_assert_eq(parse_principal("{\"_meta\":{\"dev.bastion/principal\":{\"sub\":\"uid:0\",\"uid\":0,"
                                     "\"tenant\":null,\"role\":null,\"scopes\":[]}}}", &p), 0);
        cr_assert(p.present);
        cr_assert_null(p.tenant);
        cr_assert_null(p.role);
        cr_assert_eq(p.uid, 0);
}

Test(principal, malformed_principals_are_refused) {
        static const char *const bad[] = {
                "{\"_meta\":[]}",
                "{\"_meta\":{\"dev.bastion/principal\":\"uid:0\"}}",
                "{\"_meta\":{\"dev.bastion/principal\":{}}}",
                "{\"_meta\":{\"dev.bastion/principal\":{\"sub\":\"a\",\"uid\":-1}}}",
                "{\"_meta\":{\"dev.bastion/principal\":{\"sub\":\"a\",\"uid\":\"0\"}}}",
                "{\"_meta\":{\"dev.bastion/principal\":{\"sub\":\"a\",\"tenant\":5}}}",
                "{\"_meta\":{\"dev.bastion/principal\":{\"sub\":\"a\",\"role\":[]}}}",
                "{\"_meta\":{\"dev.bastion/principal\":{\"sub\":\"a\",\"scopes\":\"x\"}}}",
                "{\"_meta\":{\"dev.bastion/principal\":{\"sub\":\"a\",\"scopes\":[1]}}}",
        };
        struct worker_principal p;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                cr_assert_eq(parse_principal(bad[i], &p), -EINVAL, "%s", bad[i]);
}

Test(framing, progress_must_increase) {
        json_t *token = json_integer(1);
        struct tool_call call = { .server = &f.server, .progress_token = token, .last_progress = -1 };
        json_t *r;

        cr_assert_eq(tool_call_progress(&call, 1, 0, NULL), 0);
        cr_assert_eq(tool_call_progress(&call, 1, 0, NULL), -EINVAL);
        cr_assert_eq(tool_call_progress(&call, 0.5, 0, NULL), -EINVAL);
        r = fixture_feed(&f, "", 0);
        assert_reply(r, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progressToken\":1,"
                        "\"progress\":1.0}}");
        json_decref(token);
}

static void status_field(pid_t pid, const char *field, char *buf, size_t len) {
        char path[64], line[256];
        FILE *status;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        status = fopen(path, "re");
        cr_assert_not_null(status);
        buf[0] = '\0';
        while (fgets(line, sizeof(line), status))
                if (strncmp(line, field, strlen(field)) == 0 && line[strlen(field)] == ':') {
                        snprintf(buf, len, "%s", line + strlen(field) + 1 + strspn(line + strlen(field) + 1, " \t"));
                        buf[strcspn(buf, "\n")] = '\0';
                }
        fclose(status);
}

/* The database is opened before lockdown; after it the worker still reads and writes it, and the
 * kernel confirms the lockdown took. */
Test(process, sandboxed_worker_is_confined_and_still_writes_its_database) {
        static const char ping[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n";
        static const char call[] =
                "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"create_reorder\","
                "\"arguments\":{\"sku\":\"SKU-1003\",\"quantity\":9,\"warehouse\":\"WH-CHI\"}}}\n";
        char dir[] = "/tmp/bastion-worker-sandbox.XXXXXX", db[96], buf[4096], value[64], cmd[128];
        const char *argv[] = { "bastion-worker", "inventory", "--db", db, "--fd", "3", "--demo-data", "--sandbox", NULL };
        sqlite3_stmt *st;
        void *state;
        int sv[2];
        pid_t pid;
        ssize_t n;

        cr_assert_not_null(mkdtemp(dir));
        snprintf(db, sizeof(db), "%s/inventory.db", dir);
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
#ifdef BASTION_SANITIZERS
        /* LeakSanitizer reads /proc at exit, and the sandbox has none. */
        setenv("ASAN_OPTIONS", "detect_leaks=0", 1);
#endif
        pid = spawn_worker(argv, sv[1], STDOUT_FILENO);
        close(sv[1]);
        /* The answer to a ping means the lockdown is behind it. */
        cr_assert_eq(write(sv[0], ping, strlen(ping)), (ssize_t) strlen(ping));
        n = read(sv[0], buf, sizeof(buf) - 1);
        cr_assert_gt(n, 0);
        buf[n] = '\0';
        cr_assert_str_eq(buf, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n");
        status_field(pid, "NoNewPrivs", value, sizeof(value));
        cr_assert_str_eq(value, "1");
        status_field(pid, "CapEff", value, sizeof(value));
        cr_assert_str_eq(value, "0000000000000000");
        status_field(pid, "CapBnd", value, sizeof(value));
        cr_assert_str_eq(value, "0000000000000000");
#ifndef BASTION_SANITIZERS
        status_field(pid, "Seccomp", value, sizeof(value));
        cr_assert_str_eq(value, "2");
#endif
        cr_assert_eq(write(sv[0], call, strlen(call)), (ssize_t) strlen(call));
        cr_assert_eq(shutdown(sv[0], SHUT_WR), 0);
        read_all(sv[0], buf, sizeof(buf));
        cr_assert(strstr(buf, "\"reorder_id\":1,") != NULL, "%s", buf);
        cr_assert_eq(wait_exit(pid), 0);
        close(sv[0]);

        /* The row is on disk: a fresh, unconfined open of the database sees it. */
        cr_assert_eq(inventory_domain.open(db, false, &state), 0);
        cr_assert_eq(sqlite3_prepare_v2(((struct records *) state)->db, "SELECT count(*) FROM reorders "
                                        "WHERE sku = 'SKU-1003' AND quantity = 9", -1, &st, NULL), SQLITE_OK);
        cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
        cr_assert_eq(sqlite3_column_int(st, 0), 1);
        sqlite3_finalize(st);
        inventory_domain.close(state);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        cr_assert_eq(system(cmd), 0);
}

Test(process, sigterm_between_calls_exits_0) {
        static const char ping[] = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n";
        char dir[] = "/tmp/bastion-worker-term.XXXXXX", db[96], buf[256], cmd[128];
        const char *argv[] = { "bastion-worker", "inventory", "--db", db, "--fd", "3", NULL };
        int sv[2];
        pid_t pid;

        cr_assert_not_null(mkdtemp(dir));
        snprintf(db, sizeof(db), "%s/inventory.db", dir);
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        pid = spawn_worker(argv, sv[1], STDOUT_FILENO);
        close(sv[1]);
        cr_assert_eq(write(sv[0], ping, strlen(ping)), (ssize_t) strlen(ping));
        cr_assert_gt(read(sv[0], buf, sizeof(buf)), 0);
        cr_assert_eq(kill(pid, SIGTERM), 0);
        cr_assert_eq(wait_exit(pid), 0);
        close(sv[0]);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        cr_assert_eq(system(cmd), 0);
}

/* ---- replies written together: order, completeness, and what must not wait ---- */

static uint64_t ms_now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Appends to `replies` every line that arrives on fd until it holds n or timeout_ms has passed. */
static void read_replies(int fd, json_t *replies, size_t n, int timeout_ms) {
        static char buf[1 << 16];
        static size_t len;
        uint64_t deadline = ms_now() + timeout_ms;

        while (json_array_size(replies) < n) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                uint64_t now = ms_now();
                char *nl;
                ssize_t k;

                while ((nl = memchr(buf, '\n', len)) && json_array_size(replies) < n) {
                        json_t *v = json_loadb(buf, nl - buf, 0, NULL);

                        cr_assert_not_null(v, "reply is not JSON: %.*s", (int) (nl - buf), buf);
                        json_array_append_new(replies, v);
                        len -= nl - buf + 1;
                        memmove(buf, nl + 1, len);
                }
                if (json_array_size(replies) >= n)
                        return;
                /* Past the deadline, what has already arrived is still taken. */
                if (poll(&p, 1, now >= deadline ? 0 : (int) (deadline - now)) <= 0) {
                        if (now >= deadline)
                                return;
                        continue;
                }
                cr_assert_lt(len, sizeof(buf));
                k = read(fd, buf + len, sizeof(buf) - len);
                cr_assert_geq(k, 0);
                if (k == 0)
                        return;
                len += k;
        }
}

static json_int_t reply_id(const json_t *replies, size_t i) {
        const json_t *id = json_object_get(json_array_get(replies, i), "id");

        return json_is_integer(id) ? json_integer_value(id) : -1;       /* -1: null (or none) */
}

/* What the broker does under load: many requests in one write. Every request gets its answer, in the
 * order asked, notifications none; a line split across two writes is served once it is whole. */
Test(process, many_requests_in_one_write_are_all_answered_in_order) {
        char dir[] = "/tmp/bastion-worker-batch.XXXXXX", db[96], cmd[128], line[256];
        const char *argv[] = { "bastion-worker", "inventory", "--db", db, "--fd", "3", "--demo-data", NULL };
        static const char split[] = "{\"jsonrpc\":\"2.0\",\"id\":500,\"method\":\"tools/call\",\"params\":{"
                                    "\"name\":\"get_stock\",\"arguments\":{\"sku\":\"SKU-1003\"}}}\n";
        json_int_t want[64];
        size_t n_want = 0, cut = 60;
        json_t *replies = json_array();
        char *batch = NULL;
        size_t batch_len = 0;
        FILE *mem = open_memstream(&batch, &batch_len);
        int sv[2];
        pid_t pid;

        cr_assert_not_null(mkdtemp(dir));
        snprintf(db, sizeof(db), "%s/inventory.db", dir);
        cr_assert_not_null(mem);
        for (int i = 1; i <= 40; i++) {
                if (i % 10 == 3) {
                        fputs("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n", mem);
                        fputs("not json\n\n", mem);
                        want[n_want++] = -1;
                }
                if (i % 7 == 0) {
                        /* Fails validation: the answer is an isError result, still in its place. */
                        snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\","
                                 "\"params\":{\"name\":\"get_stock\",\"arguments\":{\"sku\":\"nope\"}}}\n", i);
                } else if (i % 5 == 0)
                        snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"ping\"}\n", i);
                else
                        snprintf(line, sizeof(line), "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\","
                                 "\"params\":{\"name\":\"get_stock\",\"arguments\":{\"sku\":\"SKU-10%02d\"}}}\n",
                                 i, 1 + i % 10);
                fputs(line, mem);
                want[n_want++] = i;
        }
        cr_assert_eq(fclose(mem), 0);
        want[n_want++] = 500;

        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        pid = spawn_worker(argv, sv[1], STDOUT_FILENO);
        close(sv[1]);
        cr_assert_eq(write(sv[0], batch, batch_len), (ssize_t) batch_len);
        read_replies(sv[0], replies, n_want - 1, 10000);
        cr_assert_eq(json_array_size(replies), n_want - 1, "%zu replies to %zu requests", json_array_size(replies),
                     n_want - 1);
        /* The split line: its first part alone is not answered. */
        cr_assert_eq(write(sv[0], split, cut), (ssize_t) cut);
        read_replies(sv[0], replies, n_want, 200);
        cr_assert_eq(json_array_size(replies), n_want - 1, "a partial line was answered");
        cr_assert_eq(write(sv[0], split + cut, strlen(split) - cut), (ssize_t) (strlen(split) - cut));
        read_replies(sv[0], replies, n_want, 10000);
        cr_assert_eq(json_array_size(replies), n_want);
        cr_assert_eq(shutdown(sv[0], SHUT_WR), 0);
        cr_assert_eq(wait_exit(pid), 0);
        read_replies(sv[0], replies, n_want + 1, 0);
        cr_assert_eq(json_array_size(replies), n_want, "more replies than requests");

        for (size_t i = 0; i < n_want; i++) {
                const json_t *r = json_array_get(replies, i), *result = json_object_get(r, "result");
                json_int_t id = want[i];

                cr_assert_eq(reply_id(replies, i), id, "reply %zu: id %lld, expected %lld", i,
                             (long long) reply_id(replies, i), (long long) id);
                if (id == -1)
                        cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "error"), "code")), -32700);
                else if (id != 500 && id % 7 == 0)
                        cr_assert(json_is_true(json_object_get(result, "isError")), "id %lld", (long long) id);
                else if (id != 500 && id % 5 == 0)
                        cr_assert_eq(json_object_size(result), 0, "id %lld", (long long) id);
                else {
                        char sku[16];

                        snprintf(sku, sizeof(sku), "SKU-10%02d", id == 500 ? 3 : 1 + (int) (id % 10));
                        cr_assert_str_eq(json_string_value(json_object_get(json_object_get(result, "structuredContent"),
                                                                           "sku")), sku, "id %lld", (long long) id);
                }
        }
        json_decref(replies);
        free(batch);
        close(sv[0]);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        cr_assert_eq(system(cmd), 0);
}

/* Answers are written together once a read's lines are handled, but a call that waits (here: works
 * for 1.5 s, cancellable) must not hold back the answers to the lines before it. */
Test(process, answers_queued_before_a_waiting_call_go_out_before_it_waits) {
        char dir[] = "/tmp/bastion-worker-wait.XXXXXX", db[96], cmd[128];
        const char *argv[] = { "bastion-worker", "conformance", "--db", db, "--fd", "3", NULL };
        static const char batch[] =
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\n"
                "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"greet\","
                "\"arguments\":{\"name\":\"Ada\"}}}\n"
                "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"slow_compute\","
                "\"arguments\":{\"seconds\":1.5}}}\n"
                "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"ping\"}\n";
        json_t *replies = json_array();
        uint64_t t0;
        int sv[2];
        pid_t pid;

        cr_assert_not_null(mkdtemp(dir));
        snprintf(db, sizeof(db), "%s/conformance.db", dir);
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        pid = spawn_worker(argv, sv[1], STDOUT_FILENO);
        close(sv[1]);
        t0 = ms_now();
        cr_assert_eq(write(sv[0], batch, strlen(batch)), (ssize_t) strlen(batch));
        read_replies(sv[0], replies, 2, 1000);
        cr_assert_eq(json_array_size(replies), 2, "the answers before the slow call waited for it");
        cr_assert_lt(ms_now() - t0, 1400);
        cr_assert_eq(reply_id(replies, 0), 1);
        cr_assert_eq(reply_id(replies, 1), 2);
        read_replies(sv[0], replies, 4, 10000);
        cr_assert_eq(json_array_size(replies), 4);
        cr_assert_geq(ms_now() - t0, 1500);
        cr_assert_eq(reply_id(replies, 2), 3);
        cr_assert_eq(reply_id(replies, 3), 4);
        cr_assert_eq(shutdown(sv[0], SHUT_WR), 0);
        cr_assert_eq(wait_exit(pid), 0);
        json_decref(replies);
        close(sv[0]);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        cr_assert_eq(system(cmd), 0);
}

/* ---- replies encoded in place: longer than the first reservation, past the line limit, past the queue ---- */

/* A tool answering `size` bytes of text. */
static int big_text(struct tool_call *call, json_t **ret) {
        size_t size = json_integer_value(json_object_get(call->arguments, "size"));
        char *text = malloc(size + 1);

        cr_assert_not_null(text);
        memset(text, 'b', size);
        text[size] = '\0';
        *ret = tool_result_ok(NULL, "%s", text);
        free(text);
        return *ret ? 0 : -ENOMEM;
}

static const struct tool big_tools[] = {
        { .name = "big", .title = "Big", .description = "Answers size bytes of text",
          .input_schema = "{\"type\":\"object\",\"properties\":{\"size\":{\"type\":\"integer\",\"minimum\":0}},"
                          "\"required\":[\"size\"]}",
          .read_only = true, .handler = big_text },
};

static const struct domain big_domain = { .name = "big", .server_name = "big", .tools = big_tools, .n_tools = 1 };

static char *big_call(int id, size_t size) {
        char *line;

        cr_assert(asprintf(&line, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"tools/call\",\"params\":{\"name\":\"big\","
                                  "\"arguments\":{\"size\":%zu}}}\n", id, size) > 0);
        return line;
}

static size_t big_text_len(const json_t *reply) {
        return json_string_length(json_object_get(json_array_get(json_object_get(json_object_get(reply, "result"),
                                                                                 "content"), 0), "text"));
}

Test(encoding, replies_longer_than_the_reservation_and_past_the_line_limit) {
        struct worker_fixture b = {};
        char *l1 = big_call(1, 100), *l2 = big_call(2, 70000), *l3 = big_call(3, BASTION_MAX_LINE),
             *l4 = big_call(4, 5);
        char *all;
        json_t *r;

        cr_assert_eq(mcp_server_init(&b.server, &big_domain, NULL, -1), 0);
        cr_assert(asprintf(&all, "%s%s%s%s", l1, l2, l3, l4) > 0);
        r = fixture_feed(&b, all, strlen(all));
        cr_assert_eq(json_array_size(r), 4);
        cr_assert_eq(reply_id(r, 0), 1);
        cr_assert_eq(big_text_len(json_array_get(r, 0)), 100);
        cr_assert_eq(reply_id(r, 1), 2);
        cr_assert_eq(big_text_len(json_array_get(r, 1)), 70000);
        /* Past the line limit: an error in its place, with its id, and the next call is served. */
        assert_reply(json_pack("[O]", json_array_get(r, 2)),
                     "{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-32603,\"message\":\"Response too large\"}}");
        cr_assert_eq(reply_id(r, 3), 4);
        cr_assert_eq(big_text_len(json_array_get(r, 3)), 5);
        json_decref(r);
        free(all);
        free(l1), free(l2), free(l3), free(l4);
        mcp_server_done(&b.server);
}

static void *drain(void *arg) {
        int fd = *(int *) arg;
        static char buf[1 << 16];
        size_t lines = 0;
        ssize_t k;

        while ((k = read(fd, buf, sizeof(buf))) > 0)
                for (ssize_t i = 0; i < k; i++)
                        lines += buf[i] == '\n';
        return (void *) lines;
}

/* More answers to one read than the output queue holds (4 lines of the limit): the queue is written
 * out whenever the next answer would not fit, and every answer arrives. */
Test(encoding, answers_past_the_queue_are_written_out_on_the_way) {
        struct mcp_server s;
        char *batch = NULL, *l;
        size_t batch_len = 0;
        FILE *mem = open_memstream(&batch, &batch_len);
        pthread_t reader;
        void *lines;
        int sv[2];

        cr_assert_not_null(mem);
        for (int i = 1; i <= 12; i++) {
                l = big_call(i, BASTION_MAX_LINE - 200);
                fputs(l, mem);
                free(l);
        }
        cr_assert_eq(fclose(mem), 0);
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        cr_assert_eq(mcp_server_init(&s, &big_domain, NULL, sv[0]), 0);
        cr_assert_eq(pthread_create(&reader, NULL, drain, &sv[1]), 0);
        cr_assert_eq(linebuf_feed(&s.in, batch, batch_len), 0);
        cr_assert_eq(mcp_server_process(&s), 0);
        cr_assert(!outbuf_pending(&s.out));
        cr_assert_eq(shutdown(sv[0], SHUT_WR), 0);
        cr_assert_eq(pthread_join(reader, &lines), 0);
        cr_assert_eq((size_t) lines, 12);
        mcp_server_done(&s);
        close(sv[0]);
        close(sv[1]);
        free(batch);
}

/* ---- json_write_compact: the same bytes as jansson's compact dump ---- */

/* Both ways: compact, and compact with JSON_ENSURE_ASCII (the broker's audit records). */
static void assert_written_as_jansson(const json_t *v) {
        for (int ascii = 0; ascii <= 1; ascii++) {
                char *want = json_dumps(v, JSON_COMPACT | (ascii ? JSON_ENSURE_ASCII : 0)), got[8192], small[7];
                size_t n = json_write(v, got, sizeof(got), ascii);

                cr_assert_not_null(want);
                cr_assert_eq(n, strlen(want), "ascii %d: length %zu, jansson %zu: %s", ascii, n, strlen(want), want);
                cr_assert(n < sizeof(got) && memcmp(got, want, n) == 0, "ascii %d: got %.*s, jansson %s", ascii,
                          (int) n, got, want);
                /* Too small a buffer, or none: the length it needs. */
                cr_assert_eq(json_write(v, small, sizeof(small), ascii), n);
                cr_assert_eq(json_write(v, NULL, 0, ascii), n);
                if (!ascii)
                        cr_assert_eq(json_write_compact(v, NULL, 0), n);
                free(want);
        }
}

Test(json_write, every_kind_of_value_is_written_as_jansson_writes_it) {
        static const char *const texts[] = {
                "{}", "[]", "[[],{},[{}]]", "{\"a\":{\"b\":{\"c\":[1,2,3]}}}",
                "[0,-1,1,9,10,-10,123456789,9223372036854775807,-9223372036854775808]",
                "[1.0,0.1,-2.5e-10,1e300,100.0,3.141592653589793,-0.0,5e-324,1.7976931348623157e308]",
                "[true,false,null]",
                "[\"\",\"plain\",\"q\\\"uote\",\"back\\\\slash\",\"sl/ash\",\"\\b\\f\\n\\r\\t\",\"\\u0000\\u0001\\u001f\\u007f\"]",
                "[\"caf\\u00e9\",\"\\u2014 dash\",\"\\ud83d\\ude00 emoji\",\"\\u00ff\\u0800\\uffff\\ud800\\udc00\\udbff\\udfff\"]",
                "{\"k\\\"ey\":1,\"k\\u00e9y\":2,\"\\n\":3,\"\":4,\"z\":5,\"a\":6}",
                "{\"jsonrpc\":\"2.0\",\"id\":\"x\\u0002y\",\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"SKU-1001 "
                "(Pallet jack): 23 on hand in total \\u2014 WH-BER 12\"}],\"structuredContent\":{\"total\":23}}}",
        };

        for (size_t i = 0; i < ELEMENTSOF(texts); i++) {
                json_error_t e;
                json_t *v = json_loads(texts[i], JSON_ALLOW_NUL, &e);

                cr_assert_not_null(v, "%s: %s", texts[i], e.text);
                assert_written_as_jansson(v);
                json_decref(v);
        }
}

Test(json_write, keys_with_a_nul_and_every_control_character) {
        json_t *o = json_object(), *a = json_array();
        char s[2] = "";

        cr_assert_eq(json_object_setn_new(o, "a\0b", 3, json_integer(1)), 0);
        for (int c = 1; c < 0x80; c++) {
                s[0] = (char) c;
                json_array_append_new(a, json_string(s));
                json_object_set_new(o, s, json_integer(c));
        }
        json_object_set_new(o, "all", a);
        assert_written_as_jansson(o);
        json_decref(o);
}

/* Every special byte at every position of strings up to 40 bytes (the writer skips plain runs eight
 * bytes at a time). */
Test(json_write, special_bytes_at_every_position) {
        static const char *const specials[] = { "\"", "\\", "\n", "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe2\x80\x94",
                                                "\xf0\x9f\x98\x80" };

        for (size_t len = 0; len <= 40; len++)
                for (size_t at = 0; at <= len; at++)
                        for (size_t k = 0; k < ELEMENTSOF(specials); k++) {
                                char str[64];
                                json_t *a;

                                memset(str, 'a' + (int) (len % 26), len);
                                str[len] = '\0';
                                memcpy(str + at, specials[k], strlen(specials[k]));
                                str[at + strlen(specials[k]) > len ? at + strlen(specials[k]) : len] = '\0';
                                a = json_pack("[s]", str);
                                cr_assert_not_null(a);
                                assert_written_as_jansson(a);
                                json_decref(a);
                        }
}

/* Strings jansson would not write (invalid UTF-8, made with the unchecked constructor) fail here too;
 * a scalar alone is not a document. */
Test(json_write, invalid_utf8_and_bare_scalars_fail_as_in_jansson) {
        static const char *const bad[] = { "\xff", "\xc0\x80", "\xc3", "\xe0\x80\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                           "ok\x80", "\xf8\x88\x80\x80\x80" };
        char buf[64];

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                json_t *a = json_pack("[o]", json_string_nocheck(bad[i]));

                cr_assert_eq(json_dumpb(a, buf, sizeof(buf), JSON_COMPACT), 0, "jansson wrote case %zu", i);
                cr_assert_eq(json_write_compact(a, buf, sizeof(buf)), 0, "case %zu", i);
                cr_assert_eq(json_write(a, buf, sizeof(buf), true), 0, "case %zu", i);
                json_decref(a);
        }
        json_t *one = json_integer(1);
        cr_assert_eq(json_write_compact(one, buf, sizeof(buf)), 0);
        json_decref(one);
}

/* Every reply the batch test gets, and the tools/list answer, against jansson. */
Test(json_write, the_inventory_replies_are_written_as_jansson_writes_them, .init = setup, .fini = teardown) {
        static const char *const lines[] = {
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}",
                "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"get_stock\",\"arguments\":{\"sku\":\"SKU-1001\"}}}",
                "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"list_low_stock\",\"arguments\":{}}}",
                "{\"jsonrpc\":\"2.0\",\"id\":\"s\",\"method\":\"tools/call\",\"params\":{\"name\":\"get_stock\",\"arguments\":{\"sku\":1}}}",
        };

        for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
                json_t *r = fixture_send(&f, lines[i]);

                cr_assert_eq(json_array_size(r), 1);
                assert_written_as_jansson(json_array_get(r, 0));
                json_decref(r);
        }
}

/* ---- jansson's blocks kept between messages (json_alloc.c) ---- */

/* The same answers with the allocator as without; freed blocks are kept and taken again, and blocks
 * pass between it and malloc/free in both directions. */
Test(json_alloc, answers_are_the_same_and_blocks_are_reused, .init = setup, .fini = teardown) {
        static const char batch[] =
                "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"get_stock\",\"arguments\":{\"sku\":\"SKU-1001\"}}}\n"
                "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}\n"
                "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"list_low_stock\",\"arguments\":{}}}\n"
                "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":\"get_stock\",\"arguments\":{\"sku\":\"x\"}}}\n";
        json_t *before = fixture_feed(&f, batch, strlen(batch)), *after, *from_malloc = json_pack("{s:[s,i]}", "a", "b", 1);
        char *text;
        size_t kept;
        bool keeps = json_alloc_install();

        cr_assert_eq(json_alloc_kept(), 0);
        for (int i = 0; i < 50; i++) {
                after = fixture_feed(&f, batch, strlen(batch));
                cr_assert(json_equal(before, after), "round %d differs", i);
                json_decref(after);
        }
        kept = json_alloc_kept();
        cr_assert(keeps ? kept > 0 : kept == 0, "%zu blocks kept", kept);
        cr_assert_leq(kept, 16 * 256);
        after = fixture_feed(&f, batch, strlen(batch));
        cr_assert(json_equal(before, after));
        json_decref(after);
        /* Made by malloc, released here; made here, released by free(). */
        json_decref(from_malloc);
        text = json_dumps(before, JSON_COMPACT);
        cr_assert_not_null(text);
        free(text);
        json_decref(before);
}

/* ---- outbuf_reserve: in-place writing never passes the queue's bound ---- */

Test(outbuf, reserve_offers_room_up_to_max_and_refuses_past_it) {
        struct outbuf ob;
        size_t room;
        char *p;
        int r = 0;

        outbuf_init(&ob, 10000);
        p = outbuf_reserve(&ob, 100, &room, &r);
        cr_assert_not_null(p);
        cr_assert_geq(room, 100);
        cr_assert_leq(room, 10000);
        memset(p, 'a', 100);
        outbuf_commit(&ob, 100);
        cr_assert_eq(outbuf_put(&ob, "bc", 2, true), 0);
        cr_assert_eq(ob.len, 103);
        p = outbuf_reserve(&ob, 9897, &room, &r);
        cr_assert_not_null(p);
        cr_assert_eq(room, 9897, "room past max: %zu", room);
        cr_assert_null(outbuf_reserve(&ob, 9898, &room, &r));
        cr_assert_eq(r, -ENOBUFS);
        cr_assert_eq(outbuf_put(&ob, p, 9898, false), -ENOBUFS);
        cr_assert(memcmp(ob.buf + ob.start, "aaaa", 4) == 0 && memcmp(ob.buf + ob.start + 100, "bc\n", 3) == 0);
        outbuf_done(&ob);
}
