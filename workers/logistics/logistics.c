/* The logistics domain (TMS): shipments with their tracking events, and rerouting a shipment through
 * another warehouse (the one side effect: the shipment changes and a "rerouted" event is recorded,
 * in one transaction). Warehouses are shared reference data; shipments belong to a tenant. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "workers/records.h"

#define NOW_SQL "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')"

static const char schema_sql[] =
        "BEGIN IMMEDIATE;"
        "CREATE TABLE IF NOT EXISTS warehouses ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  name TEXT NOT NULL,"
        "  city TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS shipments ("
        "  shipment_id TEXT PRIMARY KEY NOT NULL,"
        "  tenant TEXT NOT NULL,"
        "  order_id TEXT NOT NULL,"
        "  carrier TEXT NOT NULL,"
        "  status TEXT NOT NULL CHECK (status IN ('label_created','in_transit','delivered','cancelled')),"
        "  warehouse TEXT NOT NULL REFERENCES warehouses(id),"
        "  destination TEXT NOT NULL,"
        "  eta TEXT NOT NULL,"
        "  updated_at TEXT NOT NULL);"
        "CREATE INDEX IF NOT EXISTS shipments_by_tenant ON shipments (tenant, shipment_id);"
        "CREATE TABLE IF NOT EXISTS shipment_events ("
        "  id INTEGER PRIMARY KEY,"
        "  shipment_id TEXT NOT NULL REFERENCES shipments(shipment_id),"
        "  tenant TEXT NOT NULL,"
        "  at TEXT NOT NULL,"
        "  kind TEXT NOT NULL,"
        "  detail TEXT,"
        "  actor TEXT);"
        "CREATE INDEX IF NOT EXISTS shipment_events_by_shipment ON shipment_events (shipment_id, id);"
        "PRAGMA user_version = 1;"
        "COMMIT;";

enum { ST_SHIPMENT, ST_EVENTS, ST_WAREHOUSE, ST_REROUTE, ST_REROUTE_EVENT, _ST_MAX };

#define TENANT_IS "(:tenant IS NULL OR tenant = :tenant)"

static const struct records_stmt stmts[_ST_MAX] = {
        [ST_SHIPMENT] = { "SELECT shipment_id, tenant, order_id, carrier, status, warehouse, destination, eta, "
                          "updated_at FROM shipments WHERE shipment_id = ?1 AND " TENANT_IS },
        [ST_EVENTS] = { "SELECT at, kind, detail, actor FROM shipment_events "
                        "WHERE shipment_id = ?1 AND " TENANT_IS " ORDER BY id" },
        /* Warehouses are the company's, not a customer's. */
        [ST_WAREHOUSE] = { "SELECT name, city FROM warehouses WHERE id = ?1", .global = true },
        [ST_REROUTE] = { "UPDATE shipments SET warehouse = ?2, updated_at = " NOW_SQL " "
                         "WHERE shipment_id = ?1 AND status IN ('label_created','in_transit') AND " TENANT_IS },
        [ST_REROUTE_EVENT] = { "INSERT INTO shipment_events (shipment_id, tenant, at, kind, detail, actor) "
                               "SELECT shipment_id, tenant, " NOW_SQL ", 'rerouted', ?2, ?3 FROM shipments "
                               "WHERE shipment_id = ?1 AND " TENANT_IS },
};

static const struct { const char *id, *name, *city; } demo_warehouses[] = {
        { "WH-BER", "Berlin distribution centre", "Berlin" },
        { "WH-RTM", "Rotterdam port warehouse", "Rotterdam" },
        { "WH-CHI", "Chicago distribution centre", "Chicago" },
};

static int seed_event(struct records *rs, sqlite3_stmt *e, const struct demo_order *d, const char *at,
                      const char *kind) {
        int r;

        sqlite3_bind_text(e, 1, d->shipment_id, -1, SQLITE_STATIC);
        sqlite3_bind_text(e, 2, d->tenant, -1, SQLITE_STATIC);
        sqlite3_bind_text(e, 3, at, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(e, 4, kind, -1, SQLITE_STATIC);
        r = records_step(rs, e);
        sqlite3_reset(e);
        return r;
}

/* label_created when the order was placed, in_transit the next morning, delivered on the ETA. */
static int seed_events(struct records *rs, sqlite3_stmt *e, const struct demo_order *d) {
        bool moving = !streq(d->shipment_status, "label_created"), delivered = streq(d->shipment_status, "delivered");
        char at[32];
        int r;

        r = seed_event(rs, e, d, d->created_at, "label_created");
        if (r >= 0 && moving) {
                snprintf(at, sizeof(at), "%.10sT23:00:00Z", d->created_at);
                r = seed_event(rs, e, d, at, "in_transit");
        }
        if (r >= 0 && delivered) {
                snprintf(at, sizeof(at), "%sT11:30:00Z", d->eta);
                r = seed_event(rs, e, d, at, "delivered");
        }
        return r;
}

static int seed(struct records *rs) {
        _cleanup_(records_finalizep) sqlite3_stmt *w = NULL, *s = NULL, *e = NULL;
        int r;

        if ((r = records_prepare(rs, "INSERT INTO warehouses (id, name, city) VALUES (?1, ?2, ?3)", &w)) < 0 ||
            (r = records_prepare(rs, "INSERT INTO shipments (shipment_id, tenant, order_id, carrier, status, warehouse, "
                                     "destination, eta, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)", &s)) < 0 ||
            (r = records_prepare(rs, "INSERT INTO shipment_events (shipment_id, tenant, at, kind, actor) "
                                     "VALUES (?1, ?2, ?3, ?4, 'carrier')", &e)) < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(demo_warehouses) && r >= 0; i++) {
                sqlite3_bind_text(w, 1, demo_warehouses[i].id, -1, SQLITE_STATIC);
                sqlite3_bind_text(w, 2, demo_warehouses[i].name, -1, SQLITE_STATIC);
                sqlite3_bind_text(w, 3, demo_warehouses[i].city, -1, SQLITE_STATIC);
                r = records_step(rs, w);
                sqlite3_reset(w);
        }
        for (size_t i = 0; i < demo_n_orders && r >= 0; i++) {
                const struct demo_order *d = &demo_orders[i];

                sqlite3_bind_text(s, 1, d->shipment_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(s, 2, d->tenant, -1, SQLITE_STATIC);
                sqlite3_bind_text(s, 3, d->order_id, -1, SQLITE_STATIC);
                sqlite3_bind_text(s, 4, d->carrier, -1, SQLITE_STATIC);
                sqlite3_bind_text(s, 5, d->shipment_status, -1, SQLITE_STATIC);
                sqlite3_bind_text(s, 6, d->warehouse, -1, SQLITE_STATIC);
                sqlite3_bind_text(s, 7, d->destination, -1, SQLITE_STATIC);
                sqlite3_bind_text(s, 8, d->eta, -1, SQLITE_STATIC);
                sqlite3_bind_text(s, 9, d->created_at, -1, SQLITE_STATIC);
                r = records_step(rs, s);
                sqlite3_reset(s);
                if (r >= 0)
                        r = seed_events(rs, e, d);
        }
        return r < 0 ? r : 0;
}

static const struct records_spec logistics_spec = {
        .name = "logistics",
        .schema_sql = schema_sql,
        .schema_version = 1,
        .empty_sql = "SELECT NOT EXISTS (SELECT 1 FROM warehouses) AND NOT EXISTS (SELECT 1 FROM shipments) "
                     "AND NOT EXISTS (SELECT 1 FROM shipment_events)",
        .seed = seed,
        .stmts = stmts,
        .n_stmts = _ST_MAX,
};

static int logistics_open(const char *path, bool demo_data, void **ret_state) {
        return records_open(&logistics_spec, path, demo_data, ret_state);
}

/* ---- tools ---- */

static int events_json(struct records *rs, const struct worker_principal *p, const char *id, json_t *events,
                       FILE *f) {
        _cleanup_(records_resetp) sqlite3_stmt *st = records_stmt(rs, ST_EVENTS, p);
        int r;

        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        while ((r = records_step(rs, st)) > 0) {
                json_array_append_new(events, json_pack("{s:s, s:s, s:o, s:o}", "at", col_text(st, 0),
                                                        "kind", col_text(st, 1), "detail", col_json_text(st, 2),
                                                        "actor", col_json_text(st, 3)));
                fprintf(f, "\n%s %s%s%s", col_text(st, 0), col_text(st, 1), col_text(st, 2) ? ": " : "",
                        col_text(st, 2) ?: "");
        }
        return r;
}

/* The shipment as track_shipment shows it; another tenant's is unknown, exactly like a missing one. */
static int shipment_result(struct records *rs, const struct worker_principal *p, const char *id, json_t **ret) {
        _cleanup_(records_resetp) sqlite3_stmt *st = records_stmt(rs, ST_SHIPMENT, p);
        _cleanup_(textbuf_done) struct textbuf t = {};
        _cleanup_json_ json_t *events = json_array();
        int r;

        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        r = records_step(rs, st);
        if (r <= 0)
                return r < 0 ? r : tool_fail(ret, "unknown shipment: %s", id);
        if (!events || textbuf_open(&t) < 0)
                return -ENOMEM;
        fprintf(t.f, "Shipment %s of order %s: %s with %s via %s to %s, ETA %s. Events:", col_text(st, 0),
                col_text(st, 2), col_text(st, 4), col_text(st, 3), col_text(st, 5), col_text(st, 6), col_text(st, 7));
        r = events_json(rs, p, id, events, t.f);
        if (r < 0)
                return r;
        return textbuf_result(&t, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:O}",
                                            "shipment_id", col_text(st, 0), "tenant", col_text(st, 1),
                                            "order_id", col_text(st, 2), "carrier", col_text(st, 3),
                                            "status", col_text(st, 4), "warehouse", col_text(st, 5),
                                            "destination", col_text(st, 6), "eta", col_text(st, 7),
                                            "updated_at", col_text(st, 8), "events", events), ret);
}

static int track_shipment(struct tool_call *call, json_t **ret) {
        const char *id = records_arg_string(call->arguments, "shipment_id");

        if (!id)
                return tool_fail(ret, "shipment_id is required");
        return shipment_result(call->domain_state, call->principal, id, ret);
}

/* 0 when the shipment can be rerouted to `to`; 1 with *ret set to the refusal; negative errno. */
static int reroute_check(struct records *rs, const struct worker_principal *p, const char *id, const char *to,
                         json_t **ret) {
        _cleanup_(records_resetp) sqlite3_stmt *w = records_stmt(rs, ST_WAREHOUSE, p);
        _cleanup_(records_resetp) sqlite3_stmt *st = NULL;
        int r;

        sqlite3_bind_text(w, 1, to, -1, SQLITE_TRANSIENT);
        r = records_step(rs, w);
        if (r <= 0)
                return r < 0 ? r : tool_fail(ret, "unknown warehouse: %s", to) ?: 1;
        st = records_stmt(rs, ST_SHIPMENT, p);
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        r = records_step(rs, st);
        if (r <= 0)
                return r < 0 ? r : tool_fail(ret, "unknown shipment: %s", id) ?: 1;
        if (!streq(col_text(st, 4), "label_created") && !streq(col_text(st, 4), "in_transit"))
                return tool_fail(ret, "shipment %s is %s and can no longer be rerouted", id, col_text(st, 4)) ?: 1;
        if (streq(col_text(st, 5), to))
                return tool_fail(ret, "shipment %s already routes via %s", id, to) ?: 1;
        return 0;
}

static int reroute_apply(struct records *rs, const struct worker_principal *p, const char *id, const char *to) {
        _cleanup_(records_resetp) sqlite3_stmt *u = records_stmt(rs, ST_REROUTE, p);
        _cleanup_(records_resetp) sqlite3_stmt *e = NULL;
        _cleanup_free_ char *detail = NULL;
        int r;

        sqlite3_bind_text(u, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(u, 2, to, -1, SQLITE_TRANSIENT);
        r = records_step(rs, u);
        if (r < 0)
                return r;
        if (sqlite3_changes(rs->db) != 1)
                return -ESTALE;         /* checked inside the same transaction: cannot happen */
        if (asprintf(&detail, "rerouted via %s", to) < 0)
                return -ENOMEM;
        e = records_stmt(rs, ST_REROUTE_EVENT, p);
        sqlite3_bind_text(e, 1, id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(e, 2, detail, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(e, 3, records_actor(p), -1, SQLITE_TRANSIENT);
        r = records_step(rs, e);
        return r < 0 ? r : 0;
}

static int reroute_shipment(struct tool_call *call, json_t **ret) {
        struct records *rs = call->domain_state;
        const char *id = records_arg_string(call->arguments, "shipment_id");
        const char *to = records_arg_string(call->arguments, "warehouse");
        int r;

        if (!id || !to)
                return tool_fail(ret, "shipment_id and warehouse are required");
        r = records_begin(rs);
        if (r < 0)
                return r;
        r = reroute_check(rs, call->principal, id, to, ret);
        if (r == 0)
                r = reroute_apply(rs, call->principal, id, to);
        if (r == 0)
                r = records_commit(rs);
        if (r != 0) {
                records_rollback(rs);
                return r < 0 ? r : 0;
        }
        log_info("Shipment %s rerouted via %s by %s", id, to, records_actor(call->principal) ?: "(no principal)");
        return shipment_result(rs, call->principal, id, ret);
}

/* ---- the table ---- */

#define SHIPMENT_ID_PROPERTY \
        "\"shipment_id\":{\"type\":\"string\",\"description\":\"Shipment id, e.g. SHP-2001\"," \
        "\"pattern\":\"^SHP-[0-9]{4}$\",\"minLength\":8,\"maxLength\":8}"
#define SHIPMENT_SCHEMA \
        "{\"type\":\"object\",\"properties\":{\"shipment_id\":{\"type\":\"string\"},\"tenant\":{\"type\":\"string\"}," \
        "\"order_id\":{\"type\":\"string\"},\"carrier\":{\"type\":\"string\"},\"status\":{\"type\":\"string\"}," \
        "\"warehouse\":{\"type\":\"string\"},\"destination\":{\"type\":\"string\"},\"eta\":{\"type\":\"string\"}," \
        "\"updated_at\":{\"type\":\"string\"},\"events\":{\"type\":\"array\",\"items\":{\"type\":\"object\"," \
        "\"properties\":{\"at\":{\"type\":\"string\"},\"kind\":{\"type\":\"string\"}," \
        "\"detail\":{\"type\":[\"string\",\"null\"]},\"actor\":{\"type\":[\"string\",\"null\"]}}," \
        "\"required\":[\"at\",\"kind\",\"detail\",\"actor\"],\"additionalProperties\":false}}}," \
        "\"required\":[\"shipment_id\",\"tenant\",\"order_id\",\"carrier\",\"status\",\"warehouse\",\"destination\"," \
        "\"eta\",\"updated_at\",\"events\"],\"additionalProperties\":false}"

static const struct tool logistics_tools[] = {
        {
                .name = "track_shipment",
                .title = "Track shipment",
                .description = "A shipment's status, route and tracking events.",
                .input_schema = "{\"type\":\"object\",\"properties\":{" SHIPMENT_ID_PROPERTY "},"
                                "\"required\":[\"shipment_id\"],\"additionalProperties\":false}",
                .output_schema = SHIPMENT_SCHEMA,
                .read_only = true, .idempotent = true,
                .handler = track_shipment,
        },
        {
                .name = "reroute_shipment",
                .title = "Reroute shipment",
                .description = "Route a shipment that is not yet delivered through another warehouse.",
                .input_schema = "{\"type\":\"object\",\"properties\":{" SHIPMENT_ID_PROPERTY ","
                                "\"warehouse\":{\"type\":\"string\",\"description\":\"Warehouse id, e.g. WH-RTM\","
                                "\"pattern\":\"^WH-[A-Z]{3}$\",\"minLength\":6,\"maxLength\":6}},"
                                "\"required\":[\"shipment_id\",\"warehouse\"],\"additionalProperties\":false}",
                .output_schema = SHIPMENT_SCHEMA,
                .handler = reroute_shipment,
        },
};

const struct domain logistics_domain = {
        .name = "logistics",
        .server_name = "bastion-logistics",
        .open = logistics_open,
        .close = records_close,
        .tools = logistics_tools,
        .n_tools = ELEMENTSOF(logistics_tools),
};
