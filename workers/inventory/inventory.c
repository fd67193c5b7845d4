/* The inventory tools: stock look-ups, the low-stock list, and reorders (the one side effect).
 * Arguments arrive validated against the inputSchemas below; handlers still check what they rely on,
 * because they are the last line before the database. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "workers/inventory/inventory.h"
#include "workers/records.h"
#include "workers/worker.h"

#define SKU_PROPERTY \
        "\"sku\":{\"type\":\"string\",\"description\":\"SKU code, e.g. SKU-1001\"," \
        "\"pattern\":\"^SKU-[0-9]{4}$\",\"minLength\":8,\"maxLength\":8}"
#define WAREHOUSE_PROPERTY(what) \
        "\"warehouse\":{\"type\":\"string\",\"description\":\"" what "\"," \
        "\"pattern\":\"^WH-[A-Z]{3}$\",\"minLength\":6,\"maxLength\":6}"
#define REORDER_SCHEMA \
        "{\"type\":\"object\",\"properties\":{" \
        "\"reorder_id\":{\"type\":\"integer\"},\"sku\":{\"type\":\"string\"},\"warehouse\":{\"type\":\"string\"}," \
        "\"quantity\":{\"type\":\"integer\"},\"status\":{\"type\":\"string\"}," \
        "\"created_at\":{\"type\":\"string\"},\"requested_by\":{\"type\":[\"string\",\"null\"]}}," \
        "\"required\":[\"reorder_id\",\"sku\",\"warehouse\",\"quantity\",\"status\",\"created_at\",\"requested_by\"]," \
        "\"additionalProperties\":false}"

/* Integer argument (2020-12: 5.0 is an integer too). Returns false when absent or not whole. */
static bool arg_int(const json_t *args, const char *key, long long *ret) {
        const json_t *v = json_object_get(args, key);

        if (json_is_integer(v)) {
                *ret = json_integer_value(v);
                return true;
        }
        if (json_is_real(v) && json_real_value(v) >= -9e15 && json_real_value(v) <= 9e15 &&
            (double) (long long) json_real_value(v) == json_real_value(v)) {
                *ret = (long long) json_real_value(v);
                return true;
        }
        return false;
}

/* 1 when the row exists, 0 when not, negative errno on failure. */
static int lookup(struct records *inv, sqlite3_stmt *st, const char *key) {
        _cleanup_(records_resetp) sqlite3_stmt *q = st;

        sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
        return records_step(inv, q);
}

/* 0 when every name given (NULL = not asked) exists; 1 when *ret holds the isError answer naming the
 * unknown one; negative errno on failure. */
static int check_known(struct records *inv, const char *sku, const char *warehouse, json_t **ret) {
        int r;

        if (sku) {
                r = lookup(inv, inv->st[INV_SKU], sku);
                if (r < 0)
                        return r;
                if (r == 0)
                        return tool_fail(ret, "unknown SKU: %s", sku) < 0 ? -ENOMEM : 1;
        }
        if (warehouse) {
                r = lookup(inv, inv->st[INV_WAREHOUSE], warehouse);
                if (r < 0)
                        return r;
                if (r == 0)
                        return tool_fail(ret, "unknown warehouse: %s", warehouse) < 0 ? -ENOMEM : 1;
        }
        return 0;
}

/* The optional "limit" argument, or the default. */
static json_t *reorder_from_row(sqlite3_stmt *st) {
        return json_pack("{s:I, s:s, s:s, s:I, s:s, s:s, s:s?}",
                         "reorder_id", (json_int_t) sqlite3_column_int64(st, 0), "sku", col_text(st, 1),
                         "warehouse", col_text(st, 2), "quantity", (json_int_t) sqlite3_column_int64(st, 3),
                         "status", col_text(st, 4), "created_at", col_text(st, 5), "requested_by", col_text(st, 6));
}

static void reorder_describe(FILE *f, sqlite3_stmt *st) {
        fprintf(f, "Reorder %lld: %lld x %s for %s, status %s, created %s by %s",
                (long long) sqlite3_column_int64(st, 0), (long long) sqlite3_column_int64(st, 3), col_text(st, 1),
                col_text(st, 2), col_text(st, 4), col_text(st, 5), col_text(st, 6) ?: "(no principal)");
}

/* ---- get_stock ---- */

static int stock_row_append(json_t *rows, const char *warehouse, long long on_hand, struct strbuf *text) {
        json_t *row = json_object();

        /* jansson's set_new and append_new take their value even when they fail. */
        if (!row || json_object_set_new_nocheck(row, "warehouse", json_string(warehouse)) < 0 ||
            json_object_set_new_nocheck(row, "on_hand", json_integer(on_hand)) < 0) {
                json_decref(row);
                return -ENOMEM;
        }
        if (json_array_append_new(rows, row) < 0)
                return -ENOMEM;
        /* " — WH-BER 12, WH-CHI 8" */
        strbuf_puts(text, json_array_size(rows) > 1 ? ", " : " — ");
        strbuf_puts(text, warehouse);
        strbuf_putn(text, " ", 1);
        strbuf_put_ll(text, on_hand);
        return 0;
}

/* The rows as JSON and as text (" — WH-BER 12, WH-CHI 8"). */
static int stock_rows(struct records *inv, const char *sku, const char *warehouse, json_t *rows,
                      struct strbuf *text, long long *ret_total) {
        _cleanup_(records_resetp) sqlite3_stmt *st = inv->st[INV_STOCK];
        long long total = 0;
        int r;

        /* Static: the arguments outlive the statement's bindings, which records_resetp clears. */
        sqlite3_bind_text(st, 1, sku, -1, SQLITE_STATIC);
        if (warehouse)
                sqlite3_bind_text(st, 2, warehouse, -1, SQLITE_STATIC);
        while ((r = records_step(inv, st)) > 0) {
                long long on_hand = sqlite3_column_int64(st, 1);

                total += on_hand;
                if (stock_row_append(rows, col_text(st, 0), on_hand, text) < 0)
                        return -ENOMEM;
        }
        /* A known warehouse that never stocked this SKU has zero on hand. */
        if (r == 0 && warehouse && json_array_size(rows) == 0 && stock_row_append(rows, warehouse, 0, text) < 0)
                return -ENOMEM;
        *ret_total = total;
        return r;
}

static int get_stock(struct tool_call *call, json_t **ret) {
        struct records *inv = call->domain_state;
        const char *sku = json_string_value(json_object_get(call->arguments, "sku"));
        const char *warehouse = json_string_value(json_object_get(call->arguments, "warehouse"));
        _cleanup_(records_resetp) sqlite3_stmt *k = inv->st[INV_SKU];
        _cleanup_(strbuf_done) struct strbuf rows_text, text;
        _cleanup_json_ json_t *rows = json_array(), *structured = NULL;
        long long total;
        int r;

        strbuf_init(&rows_text);
        strbuf_init(&text);
        if (!sku)
                return tool_fail(ret, "sku is required");
        if (!rows)
                return -ENOMEM;
        sqlite3_bind_text(k, 1, sku, -1, SQLITE_STATIC);
        r = records_step(inv, k);
        if (r <= 0)
                return r < 0 ? r : tool_fail(ret, "unknown SKU: %s", sku);
        r = check_known(inv, NULL, warehouse, ret);
        if (r != 0)
                return r < 0 ? r : 0;
        r = stock_rows(inv, sku, warehouse, rows, &rows_text, &total);
        if (r < 0)
                return r;

        strbuf_printf(&text, "%s (%s): %lld on hand%s%s; reorder point %d.", sku, col_text(k, 0), total,
                      warehouse ? "" : " in total", rows_text.s, sqlite3_column_int(k, 1));
        structured = json_object();
        if (rows_text.failed || text.failed || !structured ||
            json_object_set_new_nocheck(structured, "sku", json_string(sku)) < 0 ||
            json_object_set_new_nocheck(structured, "name", json_string(col_text(k, 0))) < 0 ||
            json_object_set_new_nocheck(structured, "reorder_point", json_integer(sqlite3_column_int(k, 1))) < 0 ||
            json_object_set_nocheck(structured, "warehouses", rows) < 0 ||
            json_object_set_new_nocheck(structured, "total", json_integer(total)) < 0)
                return -ENOMEM;
        *ret = tool_result_text(TAKE_PTR(structured), text.s);
        return *ret ? 0 : -ENOMEM;
}

/* ---- list_low_stock ---- */

static int list_low_stock(struct tool_call *call, json_t **ret) {
        struct records *inv = call->domain_state;
        const char *warehouse = json_string_value(json_object_get(call->arguments, "warehouse"));
        _cleanup_(records_resetp) sqlite3_stmt *st = inv->st[INV_LOW];
        _cleanup_json_ json_t *items = json_array();
        _cleanup_free_ char *text = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        size_t len = 0;
        long long limit;
        int r;

        if (!records_arg_limit(call->arguments, &limit))
                return tool_fail(ret, "limit must be between 1 and %d", RECORDS_MAX_LIST);
        r = check_known(inv, NULL, warehouse, ret);
        if (r != 0)
                return r < 0 ? r : 0;
        f = open_memstream(&text, &len);
        if (!f || !items)
                return -ENOMEM;
        tool_call_progress(call, 0, 1, "Scanning stock levels");
        if (warehouse)
                sqlite3_bind_text(st, 1, warehouse, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, limit);
        while ((r = records_step(inv, st)) > 0) {
                json_array_append_new(items, json_pack("{s:s, s:s, s:s, s:I, s:I, s:I}",
                                                       "sku", col_text(st, 0), "name", col_text(st, 1),
                                                       "warehouse", col_text(st, 2),
                                                       "on_hand", (json_int_t) sqlite3_column_int64(st, 3),
                                                       "reorder_point", (json_int_t) sqlite3_column_int64(st, 4),
                                                       "reorder_qty", (json_int_t) sqlite3_column_int64(st, 5)));
                fprintf(f, "\n%s (%s) at %s: %lld on hand, reorder point %lld, reorder quantity %lld",
                        col_text(st, 0), col_text(st, 1), col_text(st, 2), (long long) sqlite3_column_int64(st, 3),
                        (long long) sqlite3_column_int64(st, 4), (long long) sqlite3_column_int64(st, 5));
        }
        if (r < 0)
                return r;
        if (fflush(f) != 0)
                return -ENOMEM;
        tool_call_progress(call, 1, 1, NULL);
        *ret = tool_result_ok(json_pack("{s:I, s:O}", "count", (json_int_t) json_array_size(items), "items", items),
                              "%zu row(s) at or below their reorder point%s%s:%s", json_array_size(items),
                              warehouse ? " in " : "", warehouse ?: "", text);
        return 0;
}

/* ---- reorders ---- */

static int reorder_result(struct records *inv, long long id, json_t **ret) {
        _cleanup_(records_resetp) sqlite3_stmt *st = inv->st[INV_REORDER];
        _cleanup_free_ char *text = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        size_t len = 0;
        int r;

        sqlite3_bind_int64(st, 1, id);
        r = records_step(inv, st);
        if (r <= 0)
                return r < 0 ? r : tool_fail(ret, "unknown reorder: %lld", id);
        f = open_memstream(&text, &len);
        if (!f)
                return -ENOMEM;
        reorder_describe(f, st);
        if (fflush(f) != 0)
                return -ENOMEM;
        *ret = tool_result_ok(reorder_from_row(st), "%s.", text);
        return 0;
}

static int create_reorder(struct tool_call *call, json_t **ret) {
        struct records *inv = call->domain_state;
        const char *sku = json_string_value(json_object_get(call->arguments, "sku"));
        const char *warehouse = json_string_value(json_object_get(call->arguments, "warehouse"));
        const struct worker_principal *p = call->principal;
        _cleanup_(records_resetp) sqlite3_stmt *st = inv->st[INV_INSERT_REORDER];
        long long quantity, id;
        int r;

        if (!sku || !warehouse)
                return tool_fail(ret, "sku and warehouse are required");
        if (!arg_int(call->arguments, "quantity", &quantity) || quantity < 1 || quantity > INVENTORY_MAX_REORDER_QTY)
                return tool_fail(ret, "quantity must be a whole number between 1 and %d", INVENTORY_MAX_REORDER_QTY);
        r = check_known(inv, sku, warehouse, ret);
        if (r != 0)
                return r < 0 ? r : 0;
        sqlite3_bind_text(st, 1, sku, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(st, 2, warehouse, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 3, quantity);
        if (p->present)
                sqlite3_bind_text(st, 4, p->sub, -1, SQLITE_TRANSIENT);
        r = records_step(inv, st);
        if (r < 0)
                return r;
        id = sqlite3_last_insert_rowid(inv->db);
        log_info("Reorder %lld: %lld x %s for %s requested by %s", id, quantity, sku, warehouse,
                 p->present ? p->sub : "(no principal)");
        return reorder_result(inv, id, ret);
}

static int get_reorder(struct tool_call *call, json_t **ret) {
        long long id;

        if (!arg_int(call->arguments, "reorder_id", &id) || id < 1)
                return tool_fail(ret, "reorder_id must be a positive whole number");
        return reorder_result(call->domain_state, id, ret);
}

static int list_reorders(struct tool_call *call, json_t **ret) {
        struct records *inv = call->domain_state;
        const char *sku = json_string_value(json_object_get(call->arguments, "sku"));
        _cleanup_(records_resetp) sqlite3_stmt *st = inv->st[INV_REORDERS];
        _cleanup_json_ json_t *list = json_array();
        _cleanup_free_ char *text = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        size_t len = 0;
        long long limit;
        int r;

        if (!records_arg_limit(call->arguments, &limit))
                return tool_fail(ret, "limit must be between 1 and %d", RECORDS_MAX_LIST);
        f = open_memstream(&text, &len);
        if (!f || !list)
                return -ENOMEM;
        if (sku)
                sqlite3_bind_text(st, 1, sku, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, limit);
        while ((r = records_step(inv, st)) > 0) {
                json_array_append_new(list, reorder_from_row(st));
                fputc('\n', f);
                reorder_describe(f, st);
        }
        if (r < 0)
                return r;
        if (fflush(f) != 0)
                return -ENOMEM;
        *ret = tool_result_ok(json_pack("{s:I, s:O}", "count", (json_int_t) json_array_size(list), "reorders", list),
                              "%zu reorder(s)%s%s, newest first:%s", json_array_size(list), sku ? " of " : "",
                              sku ?: "", text);
        return 0;
}

static const struct tool inventory_tools[] = {
        {
                .name = "get_stock",
                .title = "Get stock level",
                .description = "On-hand quantity of one SKU per warehouse and in total.",
                .input_schema = "{\"type\":\"object\",\"properties\":{" SKU_PROPERTY ","
                                WAREHOUSE_PROPERTY("Warehouse id, e.g. WH-BER; every warehouse when omitted") "},"
                                "\"required\":[\"sku\"],\"additionalProperties\":false}",
                .output_schema = "{\"type\":\"object\",\"properties\":{\"sku\":{\"type\":\"string\"},"
                                 "\"name\":{\"type\":\"string\"},\"reorder_point\":{\"type\":\"integer\"},"
                                 "\"warehouses\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
                                 "\"warehouse\":{\"type\":\"string\"},\"on_hand\":{\"type\":\"integer\"}},"
                                 "\"required\":[\"warehouse\",\"on_hand\"],\"additionalProperties\":false}},"
                                 "\"total\":{\"type\":\"integer\"}},"
                                 "\"required\":[\"sku\",\"name\",\"reorder_point\",\"warehouses\",\"total\"],"
                                 "\"additionalProperties\":false}",
                .read_only = true, .idempotent = true,
                .handler = get_stock,
        },
        {
                .name = "list_low_stock",
                .title = "List low stock",
                .description = "Stock rows at or below their SKU's reorder point, ordered by SKU and warehouse.",
                .input_schema = "{\"type\":\"object\",\"properties\":{"
                                WAREHOUSE_PROPERTY("Only this warehouse, e.g. WH-RTM") "," RECORDS_LIMIT_PROPERTY "},"
                                "\"additionalProperties\":false}",
                .output_schema = "{\"type\":\"object\",\"properties\":{\"count\":{\"type\":\"integer\"},"
                                 "\"items\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{"
                                 "\"sku\":{\"type\":\"string\"},\"name\":{\"type\":\"string\"},"
                                 "\"warehouse\":{\"type\":\"string\"},\"on_hand\":{\"type\":\"integer\"},"
                                 "\"reorder_point\":{\"type\":\"integer\"},\"reorder_qty\":{\"type\":\"integer\"}},"
                                 "\"required\":[\"sku\",\"name\",\"warehouse\",\"on_hand\",\"reorder_point\","
                                 "\"reorder_qty\"],\"additionalProperties\":false}}},"
                                 "\"required\":[\"count\",\"items\"],\"additionalProperties\":false}",
                .read_only = true, .idempotent = true,
                .handler = list_low_stock,
        },
        {
                .name = "create_reorder",
                .title = "Create reorder",
                .description = "Request a purchase reorder of a SKU for a warehouse. Returns the new reorder's id.",
                .input_schema = "{\"type\":\"object\",\"properties\":{" SKU_PROPERTY ","
                                "\"quantity\":{\"type\":\"integer\",\"description\":\"Units to reorder\","
                                "\"minimum\":1,\"maximum\":100000},"
                                WAREHOUSE_PROPERTY("Receiving warehouse, e.g. WH-BER") "},"
                                "\"required\":[\"sku\",\"quantity\",\"warehouse\"],\"additionalProperties\":false}",
                .output_schema = REORDER_SCHEMA,
                .handler = create_reorder,
        },
        {
                .name = "get_reorder",
                .title = "Get reorder",
                .description = "One reorder by its id.",
                .input_schema = "{\"type\":\"object\",\"properties\":{\"reorder_id\":{\"type\":\"integer\","
                                "\"description\":\"Id returned by create_reorder\",\"minimum\":1,"
                                "\"maximum\":9007199254740991}},"
                                "\"required\":[\"reorder_id\"],\"additionalProperties\":false}",
                .output_schema = REORDER_SCHEMA,
                .read_only = true, .idempotent = true,
                .handler = get_reorder,
        },
        {
                .name = "list_reorders",
                .title = "List reorders",
                .description = "Reorders, newest first, optionally of one SKU.",
                .input_schema = "{\"type\":\"object\",\"properties\":{" SKU_PROPERTY "," RECORDS_LIMIT_PROPERTY "},"
                                "\"additionalProperties\":false}",
                .output_schema = "{\"type\":\"object\",\"properties\":{\"count\":{\"type\":\"integer\"},"
                                 "\"reorders\":{\"type\":\"array\",\"items\":" REORDER_SCHEMA "}},"
                                 "\"required\":[\"count\",\"reorders\"],\"additionalProperties\":false}",
                .read_only = true, .idempotent = true,
                .handler = list_reorders,
        },
};

const struct domain inventory_domain = {
        .name = "inventory",
        .server_name = "bastion-inventory",
        .open = inventory_open,
        .close = records_close,
        .tools = inventory_tools,
        .n_tools = ELEMENTSOF(inventory_tools),
};
