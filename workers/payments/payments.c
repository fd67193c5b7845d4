/* The payments domain (PSP / ledger): payments of the orders, and releasing a held payment (the one
 * side effect: the payment changes and a "released" ledger event is recorded, in one transaction). */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "workers/records.h"

#define NOW_SQL "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"
#define TENANT_IS "(:tenant IS NULL OR tenant = :tenant)"

static const char schema_sql[] =
        "BEGIN IMMEDIATE;"
        "CREATE TABLE IF NOT EXISTS payments ("
        "  payment_id TEXT PRIMARY KEY NOT NULL,"
        "  tenant TEXT NOT NULL,"
        "  order_id TEXT NOT NULL,"
        "  amount_cents INTEGER NOT NULL CHECK (amount_cents >= 0),"
        "  currency TEXT NOT NULL,"
        "  method TEXT NOT NULL,"
        "  status TEXT NOT NULL CHECK (status IN ('authorized','held','captured','released','refunded')),"
        "  created_at TEXT NOT NULL,"
        "  updated_at TEXT NOT NULL,"
        "  released_by TEXT);"
        "CREATE INDEX IF NOT EXISTS payments_by_tenant ON payments (tenant, payment_id);"
        "CREATE TABLE IF NOT EXISTS payment_events ("
        "  id INTEGER PRIMARY KEY,"
        "  payment_id TEXT NOT NULL REFERENCES payments(payment_id),"
        "  tenant TEXT NOT NULL,"
        "  at TEXT NOT NULL,"
        "  kind TEXT NOT NULL,"
        "  actor TEXT);"
        "PRAGMA user_version = 1;"
        "COMMIT;";

enum { ST_PAYMENT, ST_PAYMENTS, ST_RELEASE, ST_RELEASE_EVENT, _ST_MAX };

#define PAYMENT_COLUMNS \
        "payment_id, tenant, order_id, amount_cents, currency, method, status, created_at, updated_at, released_by"

static const struct records_stmt stmts[_ST_MAX] = {
        [ST_PAYMENT] = { "SELECT " PAYMENT_COLUMNS " FROM payments WHERE payment_id = ?1 AND " TENANT_IS },
        [ST_PAYMENTS] = { "SELECT " PAYMENT_COLUMNS " FROM payments WHERE (:status IS NULL OR status = :status) AND "
                          TENANT_IS " ORDER BY payment_id LIMIT :limit" },
        [ST_RELEASE] = { "UPDATE payments SET status = 'released', updated_at = " NOW_SQL ", released_by = ?2 "
                         "WHERE payment_id = ?1 AND status = 'held' AND " TENANT_IS },
        [ST_RELEASE_EVENT] = { "INSERT INTO payment_events (payment_id, tenant, at, kind, actor) "
                               "SELECT payment_id, tenant, " NOW_SQL ", 'released', ?2 FROM payments "
                               "WHERE payment_id = ?1 AND " TENANT_IS },
};

static int seed(struct records *rs) {
        _cleanup_(records_finalizep) sqlite3_stmt *p = NULL;
        int r;

        r = records_prepare(rs, "INSERT INTO payments (payment_id, tenant, order_id, amount_cents, currency, method, "
                                "status, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)", &p);
        for (size_t i = 0; i < demo_n_orders && r >= 0; i++) {
                const struct demo_order *d = &demo_orders[i];

                sqlite3_bind_text(p, 1, d->payment_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(p, 2, d->tenant, -1, SQLITE_STATIC);
                sqlite3_bind_text(p, 3, d->order_id, -1, SQLITE_STATIC);
                sqlite3_bind_int64(p, 4, d->total_cents);
                sqlite3_bind_text(p, 5, d->currency, -1, SQLITE_STATIC);
                sqlite3_bind_text(p, 6, d->payment_method, -1, SQLITE_STATIC);
                sqlite3_bind_text(p, 7, d->payment_status, -1, SQLITE_STATIC);
                sqlite3_bind_text(p, 8, d->created_at, -1, SQLITE_STATIC);
                r = records_step(rs, p);
                sqlite3_reset(p);
        }
        return r < 0 ? r : 0;
}

static const struct records_spec payments_spec = {
        .name = "payments",
        .schema_sql = schema_sql,
        .schema_version = 1,
        .empty_sql = "SELECT NOT EXISTS (SELECT 1 FROM payments) AND NOT EXISTS (SELECT 1 FROM payment_events)",
        .seed = seed,
        .stmts = stmts,
        .n_stmts = _ST_MAX,
};

static int payments_open(const char *path, bool demo_data, void **ret_state) {
        return records_open(&payments_spec, path, demo_data, ret_state);
}

/* ---- rows ---- */

static json_t *payment_json(sqlite3_stmt *st) {
        return json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:s, s:s, s:o}",
                         "payment_id", col_text(st, 0), "tenant", col_text(st, 1), "order_id", col_text(st, 2),
                         "amount", money_json(sqlite3_column_int64(st, 3)), "currency", col_text(st, 4),
                         "method", col_text(st, 5), "status", col_text(st, 6), "created_at", col_text(st, 7),
                         "updated_at", col_text(st, 8), "released_by", col_json_text(st, 9));
}

static void payment_describe(FILE *f, sqlite3_stmt *st) {
        fprintf(f, "%s for order %s: ", col_text(st, 0), col_text(st, 2));
        money_print(f, sqlite3_column_int64(st, 3), col_text(st, 4));
        fprintf(f, " by %s, %s, updated %s", col_text(st, 5), col_text(st, 6), col_text(st, 8));
}

/* The payment as get_payment shows it; another tenant's is unknown, exactly like a missing one. */
static int payment_result(struct records *rs, const struct worker_principal *p, const char *id, json_t **ret) {
        _cleanup_(records_resetp) sqlite3_stmt *st = records_stmt(rs, ST_PAYMENT, p);
        _cleanup_(textbuf_done) struct textbuf t = {};
        int r;

        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        r = records_step(rs, st);
        if (r <= 0)
                return r < 0 ? r : tool_fail(ret, "unknown payment: %s", id);
        if (textbuf_open(&t) < 0)
                return -ENOMEM;
        fputs("Payment ", t.f);
        payment_describe(t.f, st);
        fputc('.', t.f);
        return textbuf_result(&t, payment_json(st), ret);
}

/* ---- tools ---- */

static int get_payment(struct tool_call *call, json_t **ret) {
        const char *id = records_arg_string(call->arguments, "payment_id");

        if (!id)
                return tool_fail(ret, "payment_id is required");
        return payment_result(call->domain_state, call->principal, id, ret);
}

static int list_payments(struct tool_call *call, json_t **ret) {
        static const struct records_list_spec spec = {
                .stmt = ST_PAYMENTS, .key = "payments", .noun = "payment",
                .row_json = payment_json, .describe = payment_describe,
        };

        return records_list_tool(call, &spec, ret);
}

/* 0 when the payment can be released; 1 with *ret set to the refusal; negative errno. */
static int release_check(struct records *rs, const struct worker_principal *p, const char *id, json_t **ret) {
        _cleanup_(records_resetp) sqlite3_stmt *st = records_stmt(rs, ST_PAYMENT, p);
        int r;

        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        r = records_step(rs, st);
        if (r <= 0)
                return r < 0 ? r : tool_fail(ret, "unknown payment: %s", id) ?: 1;
        if (!streq(col_text(st, 6), "held"))
                return tool_fail(ret, "payment %s is %s; only a held payment can be released", id,
                                 col_text(st, 6)) ?: 1;
        return 0;
}

static int release_apply(struct records *rs, const struct worker_principal *p, const char *id) {
        _cleanup_(records_resetp) sqlite3_stmt *u = records_stmt(rs, ST_RELEASE, p);
        _cleanup_(records_resetp) sqlite3_stmt *e = NULL;
        int r;

        sqlite3_bind_text(u, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(u, 2, records_actor(p), -1, SQLITE_TRANSIENT);
        r = records_step(rs, u);
        if (r < 0)
                return r;
        if (sqlite3_changes(rs->db) != 1)
                return -ESTALE;         /* checked inside the same transaction: cannot happen */
        e = records_stmt(rs, ST_RELEASE_EVENT, p);
        sqlite3_bind_text(e, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(e, 2, records_actor(p), -1, SQLITE_TRANSIENT);
        r = records_step(rs, e);
        return r < 0 ? r : 0;
}

static int release_payment(struct tool_call *call, json_t **ret) {
        struct records *rs = call->domain_state;
        const char *id = records_arg_string(call->arguments, "payment_id");
        int r;

        if (!id)
                return tool_fail(ret, "payment_id is required");
        r = records_begin(rs);
        if (r < 0)
                return r;
        r = release_check(rs, call->principal, id, ret);
        if (r == 0)
                r = release_apply(rs, call->principal, id);
        if (r == 0)
                r = records_commit(rs);
        if (r != 0) {
                records_rollback(rs);
                return r < 0 ? r : 0;
        }
        log_info("Payment %s released by %s", id, records_actor(call->principal) ?: "(no principal)");
        return payment_result(rs, call->principal, id, ret);
}

/* ---- the table ---- */

#define PAYMENT_ID_PROPERTY \
        "\"payment_id\":{\"type\":\"string\",\"description\":\"Payment id, e.g. PAY-3001\"," \
        "\"pattern\":\"^PAY-[0-9]{4}$\",\"minLength\":8,\"maxLength\":8}"
#define PAYMENT_SCHEMA \
        "{\"type\":\"object\",\"properties\":{\"payment_id\":{\"type\":\"string\"},\"tenant\":{\"type\":\"string\"}," \
        "\"order_id\":{\"type\":\"string\"},\"amount\":{\"type\":\"number\"},\"currency\":{\"type\":\"string\"}," \
        "\"method\":{\"type\":\"string\"},\"status\":{\"type\":\"string\"},\"created_at\":{\"type\":\"string\"}," \
        "\"updated_at\":{\"type\":\"string\"},\"released_by\":{\"type\":[\"string\",\"null\"]}}," \
        "\"required\":[\"payment_id\",\"tenant\",\"order_id\",\"amount\",\"currency\",\"method\",\"status\"," \
        "\"created_at\",\"updated_at\",\"released_by\"],\"additionalProperties\":false}"

static const struct tool payments_tools[] = {
        {
                .name = "get_payment",
                .title = "Get payment",
                .description = "One payment with its amount, method and status.",
                .input_schema = "{\"type\":\"object\",\"properties\":{" PAYMENT_ID_PROPERTY "},"
                                "\"required\":[\"payment_id\"],\"additionalProperties\":false}",
                .output_schema = PAYMENT_SCHEMA,
                .read_only = true, .idempotent = true,
                .handler = get_payment,
        },
        {
                .name = "list_payments",
                .title = "List payments",
                .description = "Payments ordered by id, optionally only those in one status.",
                .input_schema = "{\"type\":\"object\",\"properties\":{\"status\":{\"type\":\"string\","
                                "\"description\":\"Only payments in this status\","
                                "\"enum\":[\"authorized\",\"held\",\"captured\",\"released\",\"refunded\"]},"
                                RECORDS_LIMIT_PROPERTY "},\"additionalProperties\":false}",
                .output_schema = "{\"type\":\"object\",\"properties\":{\"count\":{\"type\":\"integer\"},"
                                 "\"payments\":{\"type\":\"array\",\"items\":" PAYMENT_SCHEMA "}},"
                                 "\"required\":[\"count\",\"payments\"],\"additionalProperties\":false}",
                .read_only = true, .idempotent = true,
                .handler = list_payments,
        },
        {
                .name = "release_payment",
                .title = "Release payment",
                .description = "Release a held payment to the merchant. Only a payment in status held can be "
                               "released.",
                .input_schema = "{\"type\":\"object\",\"properties\":{" PAYMENT_ID_PROPERTY "},"
                                "\"required\":[\"payment_id\"],\"additionalProperties\":false}",
                .output_schema = PAYMENT_SCHEMA,
                .destructive = true,
                .handler = release_payment,
        },
};

const struct domain payments_domain = {
        .name = "payments",
        .server_name = "bastion-payments",
        .open = payments_open,
        .close = records_close,
        .tools = payments_tools,
        .n_tools = ELEMENTSOF(payments_tools),
};
