/* The inventory domain against a real SQLite database in a temporary directory. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "schema.h"
#include "worker_test.h"

static struct worker_fixture f;

static void setup(void) {
        fixture_open(&f, true);
}

static void teardown(void) {
        fixture_close(&f);
}

TestSuite(inventory, .init = setup, .fini = teardown);

static long long count_rows(void *state, const char *sql) {
        struct records *inv = state;
        sqlite3_stmt *st;
        long long n;

        cr_assert_eq(sqlite3_prepare_v2(inv->db, sql, -1, &st, NULL), SQLITE_OK, "%s", sql);
        cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
        n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        return n;
}

/* Every row of the seeded tables, in key order, as one string. */
static char *dump(void *state) {
        static const char *const queries[] = {
                "SELECT id || '|' || name || '|' || city FROM warehouses ORDER BY id",
                "SELECT sku || '|' || name || '|' || reorder_point || '|' || reorder_qty FROM skus ORDER BY sku",
                "SELECT sku || '|' || warehouse || '|' || on_hand FROM stock ORDER BY sku, warehouse",
        };
        struct records *inv = state;
        char *out = NULL;
        size_t len = 0;
        FILE *m = open_memstream(&out, &len);

        for (size_t i = 0; i < ELEMENTSOF(queries); i++) {
                sqlite3_stmt *st;
                cr_assert_eq(sqlite3_prepare_v2(inv->db, queries[i], -1, &st, NULL), SQLITE_OK);
                while (sqlite3_step(st) == SQLITE_ROW)
                        fprintf(m, "%s\n", sqlite3_column_text(st, 0));
                sqlite3_finalize(st);
        }
        fclose(m);
        return out;
}

static const struct tool *find_tool(const char *name) {
        for (size_t i = 0; i < inventory_domain.n_tools; i++)
                if (streq(inventory_domain.tools[i].name, name))
                        return &inventory_domain.tools[i];
        cr_assert_fail("no tool %s", name);
        return NULL;
}

/* A successful result honours the tool's declared outputSchema exactly. */
static void assert_conforms(const char *tool, json_t *result) {
        json_t *schema = json_loads(find_tool(tool)->output_schema, 0, NULL);
        char err[256] = "";

        cr_assert(!json_is_true(json_object_get(result, "isError")), "%s failed: %s", tool, result_text(result));
        cr_assert_eq(schema_validate(schema, json_object_get(result, "structuredContent"), err, sizeof(err)), 0,
                     "%s: %s", tool, err);
        json_decref(schema);
}

static void assert_tool_error(json_t *result, const char *text) {
        cr_assert(json_is_true(json_object_get(result, "isError")));
        cr_assert_null(json_object_get(result, "structuredContent"));
        cr_assert_str_eq(result_text(result), text);
        json_decref(result);
}

Test(inventory, seed_is_deterministic_and_complete) {
        struct worker_fixture other;
        char *a, *b;

        fixture_open(&other, true);
        a = dump(f.state);
        b = dump(other.state);
        cr_assert_str_eq(a, b);
        cr_assert_eq(count_rows(f.state, "SELECT count(*) FROM warehouses"), 3);
        cr_assert_eq(count_rows(f.state, "SELECT count(*) FROM skus"), 10);
        cr_assert_eq(count_rows(f.state, "SELECT count(*) FROM stock"), 29);
        cr_assert_eq(count_rows(f.state, "SELECT count(*) FROM reorders"), 0);
        cr_assert(strstr(a, "WH-BER|Berlin distribution centre|Berlin\n") != NULL);
        cr_assert(strstr(a, "SKU-1001|Pallet jack|5|10\n") != NULL);
        free(a);
        free(b);
        fixture_close(&other);
}

Test(inventory, seed_never_touches_a_database_with_data) {
        struct worker_fixture empty;

        /* Seeding the already seeded database again changes nothing. */
        cr_assert_eq(records_seed(f.state), 0);
        cr_assert_eq(count_rows(f.state, "SELECT count(*) FROM stock"), 29);

        /* A database holding only someone's own warehouse is not "empty" either. */
        fixture_open(&empty, false);
        cr_assert_eq(count_rows(empty.state, "SELECT count(*) FROM skus"), 0);
        cr_assert_eq(sqlite3_exec(((struct records *) empty.state)->db,
                                  "INSERT INTO warehouses VALUES ('WH-OWN', 'Own', 'Here')", NULL, NULL, NULL), SQLITE_OK);
        cr_assert_eq(records_seed(empty.state), 0);
        cr_assert_eq(count_rows(empty.state, "SELECT count(*) FROM skus"), 0);
        cr_assert_eq(count_rows(empty.state, "SELECT count(*) FROM warehouses"), 1);
        fixture_close(&empty);
}

Test(inventory, reopening_with_demo_data_keeps_reorders) {
        void *again;

        json_decref(fixture_call(&f, "create_reorder", "{\"sku\":\"SKU-1002\",\"quantity\":7,\"warehouse\":\"WH-CHI\"}", "uid:1000"));
        mcp_server_done(&f.server);
        inventory_domain.close(f.state);
        cr_assert_eq(inventory_domain.open(f.db, true, &again), 0);
        f.state = again;
        cr_assert_eq(mcp_server_init(&f.server, &inventory_domain, f.state, -1), 0);
        cr_assert_eq(count_rows(f.state, "SELECT count(*) FROM reorders"), 1);
        cr_assert_eq(count_rows(f.state, "SELECT count(*) FROM stock"), 29);
}

Test(inventory, reopening_an_up_to_date_database_writes_nothing) {
        mcp_server_done(&f.server);
        assert_reopen_writes_nothing(&inventory_domain, f.db, &f.state);
        cr_assert_eq(mcp_server_init(&f.server, &inventory_domain, f.state, -1), 0);
        cr_assert_eq(count_rows(f.state, "SELECT count(*) FROM stock"), 29);
}

Test(inventory, get_stock_totals_every_warehouse) {
        json_t *r = fixture_call(&f, "get_stock", "{\"sku\":\"SKU-1001\"}", NULL);
        json_t *want = json_loads("{\"sku\":\"SKU-1001\",\"name\":\"Pallet jack\",\"reorder_point\":5,\"warehouses\":["
                                  "{\"warehouse\":\"WH-BER\",\"on_hand\":12},{\"warehouse\":\"WH-CHI\",\"on_hand\":8},"
                                  "{\"warehouse\":\"WH-RTM\",\"on_hand\":3}],\"total\":23}", 0, NULL);

        assert_conforms("get_stock", r);
        cr_assert(json_equal(json_object_get(r, "structuredContent"), want));
        cr_assert_str_eq(result_text(r), "SKU-1001 (Pallet jack): 23 on hand in total — WH-BER 12, WH-CHI 8, "
                                         "WH-RTM 3; reorder point 5.");
        json_decref(want);
        json_decref(r);
}

/* Many warehouses: the text outgrows the stack part of its buffer, and every row is in both forms. */
Test(inventory, get_stock_of_a_sku_in_many_warehouses) {
        struct records *rs = f.state;
        char sql[256], want_text[4096], row[64];
        long long total = 23;
        json_t *r;

        snprintf(want_text, sizeof(want_text), " — WH-BER 12, WH-CHI 8");
        for (int i = 0; i < 60; i++) {
                snprintf(sql, sizeof(sql), "INSERT INTO warehouses (id, name, city) VALUES ('WH-M%02d', 'Many %d', 'X');"
                         "INSERT INTO stock (sku, warehouse, on_hand) VALUES ('SKU-1001', 'WH-M%02d', %d);", i, i, i,
                         1000000 + i);
                cr_assert_eq(sqlite3_exec(rs->db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(rs->db));
                snprintf(row, sizeof(row), ", WH-M%02d %d", i, 1000000 + i);
                strcat(want_text, row);
                total += 1000000 + i;
        }
        strcat(want_text, ", WH-RTM 3");
        r = fixture_call(&f, "get_stock", "{\"sku\":\"SKU-1001\"}", NULL);
        assert_conforms("get_stock", r);
        cr_assert_eq(json_array_size(json_object_get(json_object_get(r, "structuredContent"), "warehouses")), 63);
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "structuredContent"), "total")), total);
        snprintf(sql, sizeof(sql), "SKU-1001 (Pallet jack): %lld on hand in total", total);
        cr_assert_gt(strlen(want_text), 512);
        cr_assert(strncmp(result_text(r), sql, strlen(sql)) == 0, "%s", result_text(r));
        cr_assert(strncmp(result_text(r) + strlen(sql), want_text, strlen(want_text)) == 0, "%s", result_text(r));
        cr_assert_str_eq(result_text(r) + strlen(sql) + strlen(want_text), "; reorder point 5.");
        json_decref(r);
}

Test(inventory, strbuf_grows_from_its_stack_part_to_the_heap) {
        struct strbuf b;
        char want[4096] = "";

        strbuf_init(&b);
        for (int i = 0; i < 300; i++) {
                char piece[32];

                snprintf(piece, sizeof(piece), "[%d]", i);
                strcat(want, piece);
                if (i % 2)
                        strbuf_printf(&b, "[%d]", i);
                else {
                        strbuf_putn(&b, "[", 1);
                        strbuf_put_ll(&b, i);
                        strbuf_puts(&b, "]");
                }
        }
        strbuf_put_ll(&b, LLONG_MIN);
        strbuf_put_ll(&b, LLONG_MAX);
        strbuf_put_ll(&b, 0);
        strcat(want, "-922337203685477580892233720368547758070");
        cr_assert(!b.failed);
        cr_assert_neq(b.s, b.stack);
        cr_assert_eq(b.len, strlen(want));
        cr_assert_str_eq(b.s, want);
        strbuf_done(&b);
        cr_assert_eq(b.s, b.stack);
}

Test(inventory, get_stock_of_one_warehouse) {
        json_t *r = fixture_call(&f, "get_stock", "{\"sku\":\"SKU-1003\",\"warehouse\":\"WH-CHI\"}", NULL);

        assert_conforms("get_stock", r);
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "structuredContent"), "total")), 3100);
        json_decref(r);
        /* Rotterdam never stocked SKU-1010: zero, not an error. */
        r = fixture_call(&f, "get_stock", "{\"sku\":\"SKU-1010\",\"warehouse\":\"WH-RTM\"}", NULL);
        assert_conforms("get_stock", r);
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "structuredContent"), "total")), 0);
        json_decref(r);
}

Test(inventory, get_stock_rejects_unknown_sku_and_warehouse) {
        assert_tool_error(fixture_call(&f, "get_stock", "{\"sku\":\"SKU-9999\"}", NULL), "unknown SKU: SKU-9999");
        assert_tool_error(fixture_call(&f, "get_stock", "{\"sku\":\"SKU-1001\",\"warehouse\":\"WH-XXX\"}", NULL),
                          "unknown warehouse: WH-XXX");
        assert_tool_error(fixture_call(&f, "get_stock", "{\"sku\":\"1001\"}", NULL),
                          "Invalid arguments: sku: must be at least 8 characters long");
}

Test(inventory, list_low_stock_lists_rows_at_or_below_the_reorder_point) {
        json_t *r = fixture_call(&f, "list_low_stock", "{}", NULL);
        json_t *s = json_object_get(r, "structuredContent");
        static const char *const expect[][2] = {
                { "SKU-1001", "WH-RTM" }, { "SKU-1002", "WH-CHI" }, { "SKU-1004", "WH-BER" }, { "SKU-1005", "WH-CHI" },
                { "SKU-1007", "WH-RTM" }, { "SKU-1008", "WH-RTM" }, { "SKU-1009", "WH-CHI" },
        };

        assert_conforms("list_low_stock", r);
        cr_assert_eq(json_integer_value(json_object_get(s, "count")), ELEMENTSOF(expect));
        for (size_t i = 0; i < ELEMENTSOF(expect); i++) {
                json_t *item = json_array_get(json_object_get(s, "items"), i);
                cr_assert_str_eq(json_string_value(json_object_get(item, "sku")), expect[i][0]);
                cr_assert_str_eq(json_string_value(json_object_get(item, "warehouse")), expect[i][1]);
        }
        json_decref(r);
        r = fixture_call(&f, "list_low_stock", "{\"warehouse\":\"WH-RTM\",\"limit\":2}", NULL);
        assert_conforms("list_low_stock", r);
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "structuredContent"), "count")), 2);
        json_decref(r);
        assert_tool_error(fixture_call(&f, "list_low_stock", "{\"limit\":101}", NULL),
                          "Invalid arguments: limit: must be <= 100");
}

Test(inventory, create_reorder_inserts_exactly_one_row_and_returns_its_id) {
        json_t *r = fixture_call(&f, "create_reorder", "{\"sku\":\"SKU-1001\",\"quantity\":40,\"warehouse\":\"WH-RTM\"}",
                                 "uid:1000");
        json_t *s = json_object_get(r, "structuredContent"), *back;

        assert_conforms("create_reorder", r);
        cr_assert_eq(json_integer_value(json_object_get(s, "reorder_id")), 1);
        cr_assert_str_eq(json_string_value(json_object_get(s, "status")), "requested");
        cr_assert_str_eq(json_string_value(json_object_get(s, "requested_by")), "uid:1000");
        cr_assert_eq(count_rows(f.state, "SELECT count(*) FROM reorders"), 1);
        cr_assert_eq(count_rows(f.state, "SELECT count(*) FROM reorders WHERE id = 1 AND sku = 'SKU-1001' AND "
                                         "warehouse = 'WH-RTM' AND quantity = 40 AND requested_by = 'uid:1000'"), 1);

        back = fixture_call(&f, "get_reorder", "{\"reorder_id\":1}", NULL);
        assert_conforms("get_reorder", back);
        cr_assert(json_equal(json_object_get(back, "structuredContent"), s));
        json_decref(back);
        back = fixture_call(&f, "list_reorders", "{\"sku\":\"SKU-1001\"}", NULL);
        assert_conforms("list_reorders", back);
        cr_assert(json_equal(json_array_get(json_object_get(json_object_get(back, "structuredContent"), "reorders"), 0), s));
        json_decref(back);
        json_decref(r);

        r = fixture_call(&f, "create_reorder", "{\"sku\":\"SKU-1002\",\"quantity\":1000,\"warehouse\":\"WH-CHI\"}", NULL);
        assert_conforms("create_reorder", r);
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(r, "structuredContent"), "reorder_id")), 2);
        cr_assert(json_is_null(json_object_get(json_object_get(r, "structuredContent"), "requested_by")));
        json_decref(r);
}

Test(inventory, create_reorder_rejects_bad_requests_without_writing) {
        assert_tool_error(fixture_call(&f, "create_reorder", "{\"sku\":\"SKU-9999\",\"quantity\":5,\"warehouse\":\"WH-BER\"}",
                                       "uid:1000"), "unknown SKU: SKU-9999");
        assert_tool_error(fixture_call(&f, "create_reorder", "{\"sku\":\"SKU-1001\",\"quantity\":5,\"warehouse\":\"WH-ZZZ\"}",
                                       "uid:1000"), "unknown warehouse: WH-ZZZ");
        assert_tool_error(fixture_call(&f, "create_reorder", "{\"sku\":\"SKU-1001\",\"quantity\":0,\"warehouse\":\"WH-BER\"}",
                                       "uid:1000"), "Invalid arguments: quantity: must be >= 1");
        assert_tool_error(fixture_call(&f, "create_reorder", "{\"sku\":\"SKU-1001\",\"quantity\":-3,\"warehouse\":\"WH-BER\"}",
                                       "uid:1000"), "Invalid arguments: quantity: must be >= 1");
        assert_tool_error(fixture_call(&f, "create_reorder", "{\"sku\":\"SKU-1001\",\"warehouse\":\"WH-BER\"}", "uid:1000"),
                          "Invalid arguments: quantity: required");
        cr_assert_eq(count_rows(f.state, "SELECT count(*) FROM reorders"), 0);
}

/* The handler's own checks, for a caller that skipped the skeleton's validation. */
Test(inventory, create_reorder_handler_rejects_zero_quantity_itself) {
        struct worker_principal p = { .present = true, .sub = "uid:1000", .uid = 1000 };
        json_t *args = json_loads("{\"sku\":\"SKU-1001\",\"quantity\":0,\"warehouse\":\"WH-BER\"}", 0, NULL);
        struct tool_call call = { .domain_state = f.state, .principal = &p, .arguments = args };
        json_t *result = NULL;

        cr_assert_eq(find_tool("create_reorder")->handler(&call, &result), 0);
        assert_tool_error(result, "quantity must be a whole number between 1 and 100000");
        json_decref(args);
        cr_assert_eq(count_rows(f.state, "SELECT count(*) FROM reorders"), 0);
}

Test(inventory, get_reorder_of_unknown_id_is_a_tool_error) {
        assert_tool_error(fixture_call(&f, "get_reorder", "{\"reorder_id\":42}", NULL), "unknown reorder: 42");
}

Test(inventory, journal_is_wal_without_a_shared_memory_file) {
        char path[160];
        struct stat st;

        cr_assert_eq(stat(f.db, &st), 0);
        snprintf(path, sizeof(path), "%s-wal", f.db);
        cr_assert_eq(access(path, F_OK), 0, "WAL journal expected");
        snprintf(path, sizeof(path), "%s-shm", f.db);
        cr_assert_eq(access(path, F_OK), -1, "exclusive WAL keeps its index in memory");
}
