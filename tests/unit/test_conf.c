/* bastion.conf loading (supervisor/conf_load.c): every bad configuration is refused with the exact
 * "FILE:LINE: message", and a good one survives the trip to the broker (config_to_json and back). */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "conf_load.h"
#include "util.h"

static char dir[] = "/tmp/test-conf-XXXXXX";

static void make_dir(void) {
        cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void) {
        char cmd[128];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        cr_assert_eq(system(cmd), 0);
}

static char *write_conf(const char *name, const char *text) {
        char *path;
        FILE *f;

        cr_assert_geq(asprintf(&path, "%s/%s", dir, name), 0);
        f = fopen(path, "we");
        cr_assert_not_null(f);
        fputs(text, f);
        fclose(f);
        return path;
}

/* A minimal valid prefix most bad cases build on: line 1-3. */
#define ROLES "roles = {\n  manager = { scopes = [ \"inventory:read\" ]; };\n};\n"

struct bad {
        const char *text;
        const char *error;      /* after "FILE:" */
};

static const struct bad bad_configs[] = {
        { "bastion = {\n  socket = ;\n};\n", "2: syntax error" },
        { "bastoin = {};\n", "1: unknown key \"bastoin\"" },
        { "bastion = {\n  sockets = \"/run/x.sock\";\n};\n", "2: bastion: unknown key \"sockets\"" },
        { "bastion = {\n  max_inflight = \"16\";\n};\n", "2: bastion.max_inflight: expected an integer" },
        { "bastion = {\n  max_inflight = 0;\n};\n", "2: bastion.max_inflight: 0 is out of range (1…2147483647)" },
        { "bastion = {\n  call_timeout_ms = true;\n};\n", "2: bastion.call_timeout_ms: expected an integer" },
        { "bastion = {\n  socket = 5;\n};\n", "2: bastion.socket: expected a string" },
        { "bastion = {\n  admin_group = \"no-such-group-xyz\";\n};\n",
          "2: bastion.admin_group: unknown group \"no-such-group-xyz\"" },
        { "bastion = {\n  worker_uids = [ 1, 10 ];\n};\n",
          "2: bastion.worker_uids: uid 1 of the worker range belongs to user \"daemon\"" },
        { "bastion = {\n  worker_uids = [ 62000, 61000 ];\n};\n",
          "2: bastion.worker_uids: last uid 61000 is below first uid 62000" },
        { "bastion = {\n  worker_uids = [ 61000 ];\n};\n", "2: bastion.worker_uids: expected [ FIRST, LAST ]" },
        { "bastion = {\n  worker_uids = [ 61000, 61010 ];\n  broker_uid = 61005;\n};\n",
          "3: bastion.broker_uid: broker_uid 61005 is inside bastion.worker_uids [ 61000, 61010 ]" },
        { "bastion = {\n  broker_uid = 1;\n};\n", "2: bastion.broker_uid: broker uid 1 belongs to user \"daemon\"" },
        { "bastion = {\n  broker_uid = 0;\n};\n", "2: bastion.broker_uid: 0 is out of range (1…4294967294)" },
        { "bastion = {\n  control_socket = \"/run/b.sock\";\n  socket = \"/run/b.sock\";\n};\n",
          "2: bastion.control_socket: must differ from socket (the control socket is for administrators only)" },
        { "bastion = {\n  socket = \"/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\";\n};\n",
          "2: bastion.socket: socket path \"/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\" is longer than 107 bytes" },
        { "@include \"other.conf\"\n", "1: @include is not allowed" },
        { ROLES "  @include \"other.conf\"\n", "4: @include is not allowed" },
        { "roles = {\n  manager = { scopes = [ ]; };\n};\n", "2: roles.manager.scopes: must not be empty" },
        { "roles = {\n  manager = { scopes = [ \"a\", \"a\" ]; };\n};\n", "2: roles.manager.scopes[1]: duplicate scope \"a\"" },
        { "roles = {\n  manager = { scope = [ \"a\" ]; };\n};\n", "2: roles.manager: unknown key \"scope\"" },
        { "roles = {\n  manager = { };\n};\n", "2: roles.manager: missing key \"scopes\"" },
        { "roles = {\n  manager = { scopes = [ \"a\" ]; };\n  manager = { scopes = [ \"b\" ]; };\n};\n",
          "3: duplicate setting name" },
        { ROLES "users = (\n  { user = \"root\"; role = \"boss\"; }\n);\n", "5: users[0].role: unknown role \"boss\"" },
        { ROLES "users = (\n  { user = \"no-such-user-xyz\"; role = \"manager\"; }\n);\n",
          "5: users[0].user: unknown user \"no-such-user-xyz\"" },
        { ROLES "users = (\n  { group = \"no-such-group-xyz\"; role = \"manager\"; }\n);\n",
          "5: users[0].group: unknown group \"no-such-group-xyz\"" },
        { ROLES "users = (\n  { user = \"root\"; uid = 0; role = \"manager\"; }\n);\n",
          "5: users[0]: exactly one of user, uid, group or gid is allowed" },
        { ROLES "users = (\n  { role = \"manager\"; }\n);\n", "5: users[0]: one of user, uid, group or gid is required" },
        { ROLES "users = (\n  { uid = 0; }\n);\n", "5: users[0]: missing key \"role\"" },
        { ROLES "users = (\n  { user = \"root\"; role = \"manager\"; },\n  { uid = 0; role = \"manager\"; }\n);\n",
          "6: users[1]: duplicate entry for uid 0" },
        { ROLES "users = (\n  { uid = 0; role = \"manager\"; tennant = \"x\"; }\n);\n",
          "5: users[0]: unknown key \"tennant\"" },
        { ROLES "users = { root = \"manager\"; };\n", "4: users: expected a list ( { … }, … )" },
        { "servers = {\n  Inventory = { domain = \"inventory\"; };\n};\n",
          "2: servers.Inventory: invalid server name (lowercase letters, digits, \"_\" and \"-\", starting with a "
          "letter or digit, at most 63 characters)" },
        { "servers = {\n  inventory = { domain = \"warehouse\"; };\n};\n",
          "2: servers.inventory.domain: unknown domain \"warehouse\"" },
        { "servers = {\n  inventory = { demo_data = true; };\n};\n", "2: servers.inventory: missing key \"domain\"" },
        { "servers = {\n  inventory = {\n    domain = \"inventory\";\n    demo_data = \"yes\";\n  };\n};\n",
          "4: servers.inventory.demo_data: expected true or false" },
        { "servers = {\n  inventory = {\n    domain = \"inventory\";\n    memory_max = \"lots\";\n  };\n};\n",
          "4: servers.inventory.memory_max: invalid size \"lots\"" },
        { "servers = {\n  inventory = {\n    domain = \"inventory\";\n    tools = {\n"
          "      get_stock = { scopes = [ ]; };\n    };\n  };\n};\n",
          "5: servers.inventory.tools.get_stock.scopes: must not be empty" },
        { "servers = {\n  inventory = {\n    domain = \"inventory\";\n    tools = {\n"
          "      create_reorder = { scopes = [ \"inventory:reorder\" ]; approval = \"maybe\"; };\n    };\n  };\n};\n",
          "5: servers.inventory.tools.create_reorder.approval: unknown approval \"maybe\" (none, confirm or approver)" },
        { "servers = {\n  inventory = {\n    domain = \"inventory\";\n    tool = { };\n  };\n};\n",
          "4: servers.inventory: unknown key \"tool\"" },
        { "servers = {\n  inventory = {\n    domain = \"inventory\";\n    resources = {\n"
          "      notes = { scopes = [ \"inventory:read\" ]; };\n    };\n  };\n};\n",
          "5: servers.inventory.resources.notes: missing key \"uri_prefix\"" },
        { "bastion = {\n  audit_journal = 1;\n};\n", "2: bastion.audit_journal: expected true or false" },
        { "servers = {\n  inventory = {\n    domain = \"inventory\";\n    credential = \"a b\";\n  };\n};\n",
          "4: servers.inventory.credential: invalid secret name \"a b\"" },
        { "servers = {\n  payments = {\n    domain = \"payments\";\n    credential = \"bastion.audit-signing-key\";\n  };\n};\n",
          "4: servers.payments.credential: secret names starting with \"bastion.\" are reserved for Bastion's own keys" },
        { "servers = {\n  payments = {\n    domain = \"payments\";\n    credential = \".hidden\";\n  };\n};\n",
          "4: servers.payments.credential: invalid secret name \".hidden\"" },
        { "servers = {\n  inventory = {\n    domain = \"inventory\";\n    tools = {\n"
          "      get_stock = { scopes = [ \"inventory:read\" ]; approvals = \"none\"; };\n    };\n  };\n};\n",
          "5: servers.inventory.tools.get_stock: unknown key \"approvals\"" },
        { "bastion = {\n  worker_uids = [ 61000, 61000 ];\n};\nservers = {\n  a = { domain = \"inventory\"; };\n"
          "  b = { domain = \"inventory\"; };\n};\n",
          "4: servers: 2 servers but only 1 uids in bastion.worker_uids" },
};

Test(conf, every_bad_config_is_refused_with_file_and_line, .init = make_dir, .fini = remove_dir) {
        for (size_t i = 0; i < ELEMENTSOF(bad_configs); i++) {
                _cleanup_free_ char *path = write_conf("bad.conf", bad_configs[i].text), *expected = NULL;
                struct bastion_config c = {};
                char *error = NULL;

                cr_assert_eq(config_load(path, &c, &error), -EINVAL, "case %zu was accepted", i);
                cr_assert_geq(asprintf(&expected, "%s:%s", path, bad_configs[i].error), 0);
                cr_expect_str_eq(error, expected, "case %zu: %s", i, error);
                free(error);
        }
}

Test(conf, missing_file_is_reported, .init = make_dir, .fini = remove_dir) {
        _cleanup_free_ char *path = NULL, *expected = NULL;
        struct bastion_config c = {};
        char *error = NULL;

        cr_assert_geq(asprintf(&path, "%s/none.conf", dir), 0);
        cr_assert_eq(config_load(path, &c, &error), -ENOENT);
        cr_assert_geq(asprintf(&expected, "%s: cannot read: No such file or directory", path), 0);
        cr_assert_str_eq(error, expected);
        free(error);
}

static const char good_config[] =
        "bastion = {\n"
        "  socket = \"run/mcp.sock\";\n"
        "  control_socket = \"/tmp/ctl.sock\";\n"
        "  state_dir = \"state\";\n"
        "  runtime_dir = \"run\";\n"
        "  libexec_dir = \"/opt/bastion\";\n"
        "  admin_group = \"root\";\n"
        "  worker_uids = [ 61100, 61199 ];\n"
        "  max_inflight = 4;\n"
        "};\n"
        "roles = {\n"
        "  supply-chain-manager = { scopes = [ \"inventory:read\", \"inventory:reorder\" ]; };\n"
        "  customer = { scopes = [ \"orders:read:own\" ]; };\n"
        "};\n"
        "users = (\n"
        "  { user = \"root\"; role = \"supply-chain-manager\"; },\n"
        "  { gid = 4242; role = \"customer\"; tenant = \"cust-1\"; }\n"
        ");\n"
        "servers = {\n"
        "  inventory = {\n"
        "    domain = \"inventory\";\n"
        "    demo_data = true;\n"
        "    memory_max = \"256M\";\n"
        "    call_timeout_ms = 1500;\n"
        "    tools = {\n"
        "      get_stock = { scopes = [ \"inventory:read\" ]; };\n"
        "      create_reorder = { scopes = [ \"inventory:reorder\" ]; approval = \"confirm\"; };\n"
        "    };\n"
        "    resources = {\n"
        "      notes = { uri_prefix = \"inventory://notes/\"; scopes = [ \"inventory:read\" ]; };\n"
        "    };\n"
        "  };\n"
        "  spare = { domain = \"inventory\"; };\n"
        "};\n";

Test(conf, good_config_loads_with_defaults_and_resolved_ids, .init = make_dir, .fini = remove_dir) {
        _cleanup_free_ char *path = write_conf("good.conf", good_config), *expect = NULL;
        _cleanup_free_ char *real = realpath(dir, NULL);
        struct bastion_config c = {};
        char *error = NULL;

        cr_assert_eq(config_load(path, &c, &error), 0, "%s", error);
        cr_assert_geq(asprintf(&expect, "%s/run/mcp.sock", real), 0);
        cr_expect_str_eq(c.socket_path, expect);
        cr_expect_str_eq(c.control_socket_path, "/tmp/ctl.sock");
        cr_expect_eq(c.call_timeout_ms, 30000);
        cr_expect_eq(c.max_inflight, 4);
        cr_expect(c.has_admin_gid);
        cr_expect_eq(c.admin_gid, 0);
        cr_assert_eq(c.n_principals, 2);
        cr_expect_eq(c.principals[0].kind, PRINCIPAL_UID);
        cr_expect_eq(c.principals[0].id, 0);
        cr_expect_eq(c.principals[1].kind, PRINCIPAL_GID);
        cr_expect_str_eq(c.principals[1].tenant, "cust-1");
        cr_assert_eq(c.n_servers, 2);
        cr_expect_eq(c.servers[0].uid, 61100);
        cr_expect_eq(c.servers[0].gid, 61100);
        /* Unset: the uid right below the worker range. */
        cr_expect_eq(c.broker_uid, 61099);
        cr_expect_eq(c.servers[1].uid, 61101);
        cr_expect_eq(c.servers[0].memory_max, 256ULL << 20);
        cr_expect_eq(c.servers[0].call_timeout_ms, 1500);
        cr_expect_eq(c.servers[1].call_timeout_ms, 30000);
        free(expect);
        cr_assert_geq(asprintf(&expect, "%s/state/inventory/inventory.db", real), 0);
        cr_expect_str_eq(c.servers[0].db_path, expect);
        cr_expect_eq(c.servers[0].tools[1].approval, APPROVAL_CONFIRM);
        cr_expect_eq(c.servers[0].tools[0].approval, APPROVAL_NONE);
        config_free(&c);
}

Test(conf, good_config_round_trips_through_json, .init = make_dir, .fini = remove_dir) {
        _cleanup_free_ char *path = write_conf("good.conf", good_config);
        struct bastion_config c = {}, back = {};
        _cleanup_json_ json_t *j = NULL, *j2 = NULL;
        char *error = NULL;

        cr_assert_eq(config_load(path, &c, &error), 0, "%s", error);
        j = config_to_json(&c);
        cr_assert_not_null(j);
        cr_assert_eq(config_from_json(j, &back), 0);
        j2 = config_to_json(&back);
        cr_assert(json_equal(j, j2));
        cr_expect_str_eq(back.servers[0].resources[0].uri_prefix, "inventory://notes/");
        cr_expect_eq(back.servers[1].uid, 61101);
        config_free(&c);
        config_free(&back);
}

Test(conf, reload_keeps_each_server_on_its_uid, .init = make_dir, .fini = remove_dir) {
        _cleanup_free_ char *p1 = write_conf("a.conf", "servers = {\n  a = { domain = \"inventory\"; };\n"
                                                       "  b = { domain = \"inventory\"; };\n};\n");
        _cleanup_free_ char *p2 = write_conf("b.conf", "servers = {\n  c = { domain = \"inventory\"; };\n"
                                                       "  b = { domain = \"inventory\"; };\n};\n");
        struct bastion_config old = {}, new = {};
        char *error = NULL;

        cr_assert_eq(config_load(p1, &old, &error), 0, "%s", error);
        cr_assert_eq(config_load(p2, &new, &error), 0, "%s", error);
        cr_expect_eq(old.servers[1].uid, 61001);
        config_inherit_uids(&new, &old);
        cr_expect_eq(config_find_server(&new, "b")->uid, 61001);
        cr_expect_eq(config_find_server(&new, "c")->uid, 61000);
        cr_expect(!server_config_process_differs(config_find_server(&new, "b"), config_find_server(&old, "b")));
        config_free(&old);
        config_free(&new);
}

/* ---- prompts (the conformance worker's, and any worker's that offers prompts) ---- */

#define PROMPT_SERVER(body) \
        ROLES "servers = {\n  conformance = {\n    domain = \"conformance\";\n" body "  };\n};\n"

Test(conf, prompts_load_round_trip_and_refuse_bad_entries, .init = make_dir, .fini = remove_dir) {
        static const struct bad bad[] = {
                { PROMPT_SERVER("    prompts = { p = { scopes = [ \"x\" ]; mode = 1; }; };\n"),
                  "7: servers.conformance.prompts.p: unknown key \"mode\"" },
                { PROMPT_SERVER("    prompts = [ 1 ];\n"), "7: servers.conformance.prompts: expected a group { … }" },
                { PROMPT_SERVER("    prompts = { p = { scopes = \"x\"; }; };\n"),
                  "7: servers.conformance.prompts.p.scopes: expected a list of strings [ \"…\", … ]" },
        };
        _cleanup_free_ char *path = write_conf("p.conf", PROMPT_SERVER(
                "    prompts = {\n      test_simple_prompt = { scopes = [ \"inventory:read\" ]; };\n"
                "      other = { scopes = [ \"a\", \"b\" ]; };\n    };\n"));
        struct bastion_config c = {}, back = {};
        _cleanup_json_ json_t *j = NULL, *j2 = NULL;
        char *error = NULL;

        cr_assert_eq(config_load(path, &c, &error), 0, "%s", error);
        cr_assert_eq(c.servers[0].n_prompts, 2);
        cr_expect_str_eq(c.servers[0].prompts[0].name, "test_simple_prompt");
        cr_expect_eq(c.servers[0].prompts[0].n_scopes, 1);
        cr_expect_eq(c.servers[0].prompts[1].n_scopes, 2);
        cr_expect_null(server_find_prompt(&c.servers[0], "nope"));
        j = config_to_json(&c);
        cr_assert_not_null(j);
        cr_assert_eq(config_from_json(j, &back), 0);
        j2 = config_to_json(&back);
        cr_assert(json_equal(j, j2));
        cr_expect_str_eq(server_find_prompt(&back.servers[0], "test_simple_prompt")->scopes[0], "inventory:read");
        config_free(&c);
        config_free(&back);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *p = write_conf("bad.conf", bad[i].text), *expected = NULL;
                struct bastion_config b = {};

                error = NULL;
                cr_assert_eq(config_load(p, &b, &error), -EINVAL, "case %zu was accepted", i);
                cr_assert_geq(asprintf(&expected, "%s:%s", p, bad[i].error), 0);
                cr_expect_str_eq(error, expected, "case %zu: %s", i, error);
                free(error);
        }
}
