/* The `http` group of bastion.conf (supervisor/conf_load.c): its defaults (loopback, names and origins
 * from the listen address, the front's uid), the normal form of hosts and origins, every refusal with
 * its exact "FILE:LINE: message", and the trip to the front and the broker (config_to_json and back). */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "conf_load.h"
#include "util.h"

static char dir[] = "/tmp/test-conf-http-XXXXXX";

static void make_dir(void) {
        cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void) {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        cr_assert_eq(system(cmd), 0);
}

/* Lines 1-2; the http group starts on line 3. Two servers, a range of three uids. */
#define PREFIX "bastion = { worker_uids = [ 63600, 63602 ]; };\n" \
        "servers = { a = { domain = \"inventory\"; }; b = { domain = \"orders\"; }; };\n"

static int load(const char *text, struct bastion_config *c, char **error) {
        _cleanup_free_ char *path = NULL;
        FILE *f;

        cr_assert_geq(asprintf(&path, "%s/bastion.conf", dir), 0);
        f = fopen(path, "we");
        cr_assert_not_null(f);
        fputs(text, f);
        fclose(f);
        return config_load(path, c, error);
}

static void assert_strv(char **v, size_t n, const char *const *want) {
        size_t k = 0;

        for (; want[k]; k++) {
                cr_assert_lt(k, n, "missing %s", want[k]);
                cr_assert_str_eq(v[k], want[k]);
        }
        cr_assert_eq(n, k, "%zu entries, expected %zu", n, k);
}

Test(conf_http, defaults_are_loopback_with_the_listen_names, .init = make_dir, .fini = remove_dir) {
        struct bastion_config c = {};
        char *error = NULL;

        cr_assert_eq(load(PREFIX "http = {\n  tls_cert = \"c.pem\";\n  tls_key = \"k.pem\";\n};\n", &c, &error), 0, "%s", error);
        cr_assert_not_null(c.http);
        cr_assert_str_eq(c.http->listen, "127.0.0.1:8443");
        cr_assert_not(c.http->plain);
        cr_assert_str_eq(c.http->public_url, "https://127.0.0.1:8443");
        assert_strv(c.http->hosts, c.http->n_hosts,
                    (const char *const[]) { "127.0.0.1:8443", "localhost:8443", "[::1]:8443", NULL });
        assert_strv(c.http->origins, c.http->n_origins, (const char *const[]) {
                    "https://127.0.0.1:8443", "https://localhost:8443", "https://[::1]:8443", NULL });
        cr_assert_eq(c.http->max_connections, 1024);
        cr_assert_eq(c.http->max_connections_per_address, 64);
        cr_assert_eq(c.http->header_timeout_ms, 10000);
        cr_assert_eq(c.http->idle_timeout_ms, 60000);
        cr_assert_eq(c.http->max_body, 1024 * 1024);
        /* Relative to the configuration file's directory. */
        cr_assert(strstr(c.http->tls_cert, dir) == c.http->tls_cert);
        /* The front has the last uid; the servers the others. */
        cr_assert_eq(c.http->uid, 63602);
        cr_assert_eq(c.servers[0].uid, 63600);
        cr_assert_eq(c.servers[1].uid, 63601);
        config_free(&c);
}

Test(conf_http, hosts_and_origins_are_normalised, .init = make_dir, .fini = remove_dir) {
        struct bastion_config c = {};
        char *error = NULL;

        cr_assert_eq(load(PREFIX "http = {\n  listen = \"0.0.0.0:443\";\n  tls_cert = \"/c\";\n  tls_key = \"/k\";\n"
                          "  public_url = \"HTTPS://MCP.Example.com/\";\n"
                          "  hosts = [ \"MCP.example.com\", \"mcp.example.com:443\", \"edge.example.com:8443\" ];\n"
                          "  origins = [ \"https://App.example.com\", \"http://localhost:3000/\" ];\n};\n",
                          &c, &error), 0, "%s", error);
        cr_assert_str_eq(c.http->public_url, "https://mcp.example.com:443");
        assert_strv(c.http->hosts, c.http->n_hosts,
                    (const char *const[]) { "mcp.example.com:443", "edge.example.com:8443", NULL });
        assert_strv(c.http->origins, c.http->n_origins,
                    (const char *const[]) { "https://app.example.com:443", "http://localhost:3000", NULL });
        config_free(&c);
}

Test(conf_http, the_group_round_trips_through_json, .init = make_dir, .fini = remove_dir) {
        struct bastion_config c = {}, back = {};
        char *error = NULL;
        json_t *j, *j2;

        cr_assert_eq(load(PREFIX "http = {\n  listen = \"[::1]:9000\";\n  plain = true;\n  max_connections = 10;\n"
                          "  max_connections_per_address = 5;\n  header_timeout_ms = 100;\n  idle_timeout_ms = 200;\n"
                          "  max_body = \"64K\";\n};\n", &c, &error), 0, "%s", error);
        cr_assert_str_eq(c.http->public_url, "http://[::1]:9000");
        j = config_to_json(&c);
        cr_assert_not_null(j);
        cr_assert_eq(config_from_json(j, &back), 0);
        cr_assert_not_null(back.http);
        j2 = config_to_json(&back);
        cr_assert(json_equal(j, j2));
        cr_assert_eq(back.http->max_body, 64 * 1024);
        cr_assert(back.http->plain);
        cr_assert_null(back.http->tls_cert);
        json_decref(j);
        json_decref(j2);
        config_free(&c);
        config_free(&back);
}

struct bad {
        const char *text;       /* after PREFIX */
        const char *error;      /* after "FILE:" */
};

static const struct bad bad_http[] = {
        { "http = {\n  listen = \"0.0.0.0:8080\";\n  public_url = \"http://x.example:8080\";\n  plain = true;\n};\n",
          "6: http: plain HTTP is only allowed on a loopback address (127.0.0.0/8 or [::1]), not on 0.0.0.0:8080" },
        { "http = {\n  listen = \"127.0.0.1:80\";\n};\n",
          "4: http: tls_cert and tls_key are required (plain = true is allowed on loopback only)" },
        { "http = {\n  plain = true;\n  tls_cert = \"/c\";\n};\n", "5: http: plain = true takes no tls_cert or tls_key" },
        { "http = {\n  listen = \"localhost:80\";\n  plain = true;\n};\n",
          "4: http: invalid listen address \"localhost:80\" (IPV4:PORT or [IPV6]:PORT)" },
        { "http = {\n  listen = \"127.0.0.1:0\";\n  plain = true;\n};\n",
          "4: http: invalid listen address \"127.0.0.1:0\" (IPV4:PORT or [IPV6]:PORT)" },
        { "http = {\n  listen = \"[::]:443\";\n  tls_cert = \"/c\";\n  tls_key = \"/k\";\n};\n",
          "4: http: public_url is required with a wildcard listen address" },
        { "http = {\n  plain = true;\n  public_url = \"https://127.0.0.1:8443\";\n};\n",
          "5: http.public_url: expected http://NAME[:PORT] without a path" },
        { "http = {\n  plain = true;\n  public_url = \"http://127.0.0.1:8443/mcp\";\n};\n",
          "5: http.public_url: expected http://NAME[:PORT] without a path" },
        { "http = {\n  plain = true;\n  hosts = [ \"a b\" ];\n};\n", "5: http.hosts[0]: invalid host \"a b\" (NAME or NAME:PORT)" },
        { "http = {\n  plain = true;\n  origins = [ \"https://x.example/path\" ];\n};\n",
          "5: http.origins[0]: invalid origin \"https://x.example/path\" (https://NAME[:PORT])" },
        { "http = {\n  plain = true;\n  origins = [ \"null\" ];\n};\n",
          "5: http.origins[0]: invalid origin \"null\" (https://NAME[:PORT])" },
        { "http = {\n  plain = true;\n  max_connections = 2000;\n};\n",
          "5: http.max_connections: 2000 is out of range (1…1024)" },
        { "http = {\n  plain = true;\n  max_connections = 10;\n  max_connections_per_address = 20;\n};\n",
          "6: http.max_connections_per_address: must not exceed max_connections (10)" },
        { "http = {\n  plain = true;\n  max_body = \"2M\";\n};\n", "5: http.max_body: must be at most 1048576 bytes" },
        { "http = {\n  plain = true;\n  listn = \"x\";\n};\n", "5: http: unknown key \"listn\"" },
};

Test(conf_http, every_bad_group_is_refused_with_file_and_line, .init = make_dir, .fini = remove_dir) {
        for (size_t i = 0; i < ELEMENTSOF(bad_http); i++) {
                _cleanup_free_ char *text = NULL, *want = NULL;
                struct bastion_config c = {};
                char *error = NULL;

                cr_assert_geq(asprintf(&text, PREFIX "%s", bad_http[i].text), 0);
                cr_assert_geq(asprintf(&want, "%s/bastion.conf:%s", dir, bad_http[i].error), 0);
                cr_assert_eq(load(text, &c, &error), -EINVAL, "case %zu loaded", i);
                cr_assert_str_eq(error, want, "case %zu", i);
                free(error);
        }
}

Test(conf_http, the_front_needs_a_uid_of_its_own, .init = make_dir, .fini = remove_dir) {
        struct bastion_config c = {};
        char *error = NULL, *want = NULL;

        cr_assert_eq(load("bastion = { worker_uids = [ 63600, 63601 ]; };\n"
                          "servers = { a = { domain = \"inventory\"; }; b = { domain = \"orders\"; }; };\n"
                          "http = {\n  plain = true;\n};\n", &c, &error), -EINVAL);
        cr_assert_geq(asprintf(&want, "%s/bastion.conf:3: http: 2 servers and the front need 3 uids, "
                               "bastion.worker_uids has 2", dir), 0);
        cr_assert_str_eq(error, want);
        free(want);
        free(error);
}
