/* The inventory database: opened, migrated, seeded and its statements prepared before the sandbox
 * locks the worker down, so nothing after lockdown needs to open a file.
 *
 * Journal: WAL with locking_mode=EXCLUSIVE. The worker is the database's only user, and in exclusive
 * mode SQLite keeps its wal-index in heap memory (no -shm file, no shared mapping); the -wal file is
 * opened by the first read below and stays open (and, persistent, is not unlinked on close), so after
 * lockdown SQLite only reads and writes descriptors it already holds. temp_store=MEMORY keeps sorts
 * and temporary tables off the disk. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "workers/inventory/inventory.h"

#define INVENTORY_SCHEMA_VERSION 1

static const char schema_sql[] =
        "BEGIN IMMEDIATE;"
        "CREATE TABLE IF NOT EXISTS warehouses ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  name TEXT NOT NULL,"
        "  city TEXT NOT NULL);"
        "CREATE TABLE IF NOT EXISTS skus ("
        "  sku TEXT PRIMARY KEY NOT NULL,"
        "  name TEXT NOT NULL,"
        "  reorder_point INTEGER NOT NULL CHECK (reorder_point >= 0),"
        "  reorder_qty INTEGER NOT NULL CHECK (reorder_qty > 0));"
        "CREATE TABLE IF NOT EXISTS stock ("
        "  sku TEXT NOT NULL REFERENCES skus(sku),"
        "  warehouse TEXT NOT NULL REFERENCES warehouses(id),"
        "  on_hand INTEGER NOT NULL CHECK (on_hand >= 0),"
        "  PRIMARY KEY (sku, warehouse));"
        "CREATE TABLE IF NOT EXISTS reorders ("
        "  id INTEGER PRIMARY KEY,"
        "  sku TEXT NOT NULL REFERENCES skus(sku),"
        "  warehouse TEXT NOT NULL REFERENCES warehouses(id),"
        "  quantity INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 100000),"
        "  status TEXT NOT NULL,"
        "  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),"
        "  requested_by TEXT);"
        "CREATE INDEX IF NOT EXISTS reorders_by_sku ON reorders (sku, id);"
        "PRAGMA user_version = 1;"
        "COMMIT;";

/* Pragmas in this order: exclusive locking must be set before WAL is first used (no -shm). */
static const char pragmas_sql[] =
        "PRAGMA locking_mode = EXCLUSIVE;"
        "PRAGMA journal_mode = WAL;"
        "PRAGMA synchronous = FULL;"
        "PRAGMA trusted_schema = OFF;"
        "PRAGMA secure_delete = ON;"
        "PRAGMA foreign_keys = ON;"
        "PRAGMA temp_store = MEMORY;";

static const struct { const char *id, *name, *city; } demo_warehouses[] = {
        { "WH-BER", "Berlin distribution centre", "Berlin" },
        { "WH-RTM", "Rotterdam port warehouse", "Rotterdam" },
        { "WH-CHI", "Chicago distribution centre", "Chicago" },
};

static const struct { const char *sku, *name; int reorder_point, reorder_qty; } demo_skus[] = {
        { "SKU-1001", "Pallet jack", 5, 10 },
        { "SKU-1002", "Stretch wrap roll 500 mm", 200, 1000 },
        { "SKU-1003", "Corrugated box 40x30x20 cm", 500, 2000 },
        { "SKU-1004", "Packing tape 50 m", 300, 1200 },
        { "SKU-1005", "Handheld barcode scanner", 10, 20 },
        { "SKU-1006", "Thermal label roll 100x150 mm", 150, 600 },
        { "SKU-1007", "Safety gloves (pair)", 100, 500 },
        { "SKU-1008", "Forklift battery 48 V", 2, 4 },
        { "SKU-1009", "High-visibility vest", 50, 200 },
        { "SKU-1010", "Dock bumper", 4, 8 },
};

/* Seven rows sit at or below their reorder point; SKU-1010 is not stocked in Rotterdam. */
static const struct { const char *sku, *warehouse; int on_hand; } demo_stock[] = {
        { "SKU-1001", "WH-BER", 12 },   { "SKU-1001", "WH-RTM", 3 },    { "SKU-1001", "WH-CHI", 8 },
        { "SKU-1002", "WH-BER", 850 },  { "SKU-1002", "WH-RTM", 420 },  { "SKU-1002", "WH-CHI", 150 },
        { "SKU-1003", "WH-BER", 2400 }, { "SKU-1003", "WH-RTM", 1800 }, { "SKU-1003", "WH-CHI", 3100 },
        { "SKU-1004", "WH-BER", 280 },  { "SKU-1004", "WH-RTM", 950 },  { "SKU-1004", "WH-CHI", 610 },
        { "SKU-1005", "WH-BER", 25 },   { "SKU-1005", "WH-RTM", 14 },   { "SKU-1005", "WH-CHI", 10 },
        { "SKU-1006", "WH-BER", 900 },  { "SKU-1006", "WH-RTM", 700 },  { "SKU-1006", "WH-CHI", 1200 },
        { "SKU-1007", "WH-BER", 640 },  { "SKU-1007", "WH-RTM", 90 },   { "SKU-1007", "WH-CHI", 380 },
        { "SKU-1008", "WH-BER", 6 },    { "SKU-1008", "WH-RTM", 1 },    { "SKU-1008", "WH-CHI", 3 },
        { "SKU-1009", "WH-BER", 310 },  { "SKU-1009", "WH-RTM", 260 },  { "SKU-1009", "WH-CHI", 45 },
        { "SKU-1010", "WH-BER", 9 },    { "SKU-1010", "WH-CHI", 12 },
};

static int db_error(struct inventory *inv, const char *what) {
        return log_error_errno(EIO, "SQLite: %s: %s", what, sqlite3_errmsg(inv->db));
}

static int exec_sql(struct inventory *inv, const char *sql, const char *what) {
        if (sqlite3_exec(inv->db, sql, NULL, NULL, NULL) != SQLITE_OK)
                return db_error(inv, what);
        return 0;
}

static void finalizep(sqlite3_stmt **st) {
        sqlite3_finalize(*st);
}

void inventory_stmt_resetp(sqlite3_stmt **st) {
        if (*st) {
                sqlite3_reset(*st);
                sqlite3_clear_bindings(*st);
        }
}

int inventory_step(struct inventory *inv, sqlite3_stmt *st) {
        int r = sqlite3_step(st);

        if (r == SQLITE_ROW)
                return 1;
        if (r == SQLITE_DONE)
                return 0;
        return db_error(inv, sqlite3_sql(st));
}

static int prepare(struct inventory *inv, sqlite3_stmt **ret, const char *sql) {
        if (sqlite3_prepare_v3(inv->db, sql, -1, SQLITE_PREPARE_PERSISTENT, ret, NULL) != SQLITE_OK)
                return db_error(inv, sql);
        return 0;
}

static int prepare_all(struct inventory *inv) {
        const struct { sqlite3_stmt **st; const char *sql; } stmts[] = {
                { &inv->sku, "SELECT name, reorder_point, reorder_qty FROM skus WHERE sku = ?1" },
                { &inv->warehouse, "SELECT name, city FROM warehouses WHERE id = ?1" },
                { &inv->stock, "SELECT warehouse, on_hand FROM stock WHERE sku = ?1 "
                               "AND (?2 IS NULL OR warehouse = ?2) ORDER BY warehouse" },
                { &inv->low, "SELECT s.sku, k.name, s.warehouse, s.on_hand, k.reorder_point, k.reorder_qty "
                             "FROM stock s JOIN skus k ON k.sku = s.sku "
                             "WHERE s.on_hand <= k.reorder_point AND (?1 IS NULL OR s.warehouse = ?1) "
                             "ORDER BY s.sku, s.warehouse LIMIT ?2" },
                { &inv->insert_reorder, "INSERT INTO reorders (sku, warehouse, quantity, status, requested_by) "
                                        "VALUES (?1, ?2, ?3, 'requested', ?4)" },
                { &inv->reorder, "SELECT id, sku, warehouse, quantity, status, created_at, requested_by "
                                 "FROM reorders WHERE id = ?1" },
                { &inv->reorders, "SELECT id, sku, warehouse, quantity, status, created_at, requested_by "
                                  "FROM reorders WHERE (?1 IS NULL OR sku = ?1) ORDER BY id DESC LIMIT ?2" },
        };

        for (size_t i = 0; i < ELEMENTSOF(stmts); i++) {
                int r = prepare(inv, stmts[i].st, stmts[i].sql);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int insert_demo_rows(struct inventory *inv) {
        _cleanup_(finalizep) sqlite3_stmt *w = NULL, *k = NULL, *s = NULL;
        int r;

        if ((r = prepare(inv, &w, "INSERT INTO warehouses (id, name, city) VALUES (?1, ?2, ?3)")) < 0 ||
            (r = prepare(inv, &k, "INSERT INTO skus (sku, name, reorder_point, reorder_qty) VALUES (?1, ?2, ?3, ?4)")) < 0 ||
            (r = prepare(inv, &s, "INSERT INTO stock (sku, warehouse, on_hand) VALUES (?1, ?2, ?3)")) < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(demo_warehouses) && r >= 0; i++) {
                sqlite3_bind_text(w, 1, demo_warehouses[i].id, -1, SQLITE_STATIC);
                sqlite3_bind_text(w, 2, demo_warehouses[i].name, -1, SQLITE_STATIC);
                sqlite3_bind_text(w, 3, demo_warehouses[i].city, -1, SQLITE_STATIC);
                r = inventory_step(inv, w);
                sqlite3_reset(w);
        }
        for (size_t i = 0; i < ELEMENTSOF(demo_skus) && r >= 0; i++) {
                sqlite3_bind_text(k, 1, demo_skus[i].sku, -1, SQLITE_STATIC);
                sqlite3_bind_text(k, 2, demo_skus[i].name, -1, SQLITE_STATIC);
                sqlite3_bind_int(k, 3, demo_skus[i].reorder_point);
                sqlite3_bind_int(k, 4, demo_skus[i].reorder_qty);
                r = inventory_step(inv, k);
                sqlite3_reset(k);
        }
        for (size_t i = 0; i < ELEMENTSOF(demo_stock) && r >= 0; i++) {
                sqlite3_bind_text(s, 1, demo_stock[i].sku, -1, SQLITE_STATIC);
                sqlite3_bind_text(s, 2, demo_stock[i].warehouse, -1, SQLITE_STATIC);
                sqlite3_bind_int(s, 3, demo_stock[i].on_hand);
                r = inventory_step(inv, s);
                sqlite3_reset(s);
        }
        return r < 0 ? r : 0;
}

static int database_is_empty(struct inventory *inv) {
        _cleanup_(finalizep) sqlite3_stmt *st = NULL;
        int r;

        r = prepare(inv, &st, "SELECT NOT EXISTS (SELECT 1 FROM warehouses) AND NOT EXISTS (SELECT 1 FROM skus) "
                              "AND NOT EXISTS (SELECT 1 FROM stock) AND NOT EXISTS (SELECT 1 FROM reorders)");
        if (r < 0)
                return r;
        r = inventory_step(inv, st);
        return r < 0 ? r : r > 0 && sqlite3_column_int(st, 0);
}

int inventory_seed(struct inventory *inv) {
        int r;

        /* One write transaction: the emptiness check and the rows are atomic, a crash leaves nothing. */
        r = exec_sql(inv, "BEGIN IMMEDIATE", "begin seed");
        if (r < 0)
                return r;
        r = database_is_empty(inv);
        if (r > 0)
                r = insert_demo_rows(inv);
        else if (r == 0) {
                log_info("Database already holds data, not seeding the demo data set");
                exec_sql(inv, "ROLLBACK", "rollback");
                return 0;
        }
        if (r < 0) {
                exec_sql(inv, "ROLLBACK", "rollback");
                return r;
        }
        r = exec_sql(inv, "COMMIT", "commit seed");
        if (r < 0)
                return r;
        log_info("Seeded the demo data set");
        return 1;
}

static int pragma_value(struct inventory *inv, const char *sql, char *buf, size_t len) {
        _cleanup_(finalizep) sqlite3_stmt *st = NULL;
        int r = prepare(inv, &st, sql);

        if (r >= 0)
                r = inventory_step(inv, st);
        if (r < 0)
                return r;
        snprintf(buf, len, "%s", r > 0 && sqlite3_column_text(st, 0) ? (const char *) sqlite3_column_text(st, 0) : "");
        return 0;
}

static int configure_db(struct inventory *inv) {
        char value[32];
        int r;

        /* Defensive: no writes to sqlite_master or shadow tables from SQL, no untrusted schema functions. */
        if (sqlite3_db_config(inv->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL) != SQLITE_OK ||
            sqlite3_db_config(inv->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL) != SQLITE_OK ||
            sqlite3_busy_timeout(inv->db, INVENTORY_BUSY_TIMEOUT_MS) != SQLITE_OK)
                return db_error(inv, "configure");
        /* Keep the -wal file on close instead of unlinking it: the locked-down worker never removes a
         * file, not even on its way out. */
        if (sqlite3_file_control(inv->db, "main", SQLITE_FCNTL_PERSIST_WAL, &(int) { 1 }) != SQLITE_OK)
                return db_error(inv, "persistent WAL");
        r = exec_sql(inv, pragmas_sql, "pragmas");
        if (r < 0)
                return r;
        /* journal_mode answers with the mode in force: make sure WAL was taken. */
        r = pragma_value(inv, "PRAGMA journal_mode", value, sizeof(value));
        if (r < 0)
                return r;
        if (!streq(value, "wal"))
                return log_error_errno(EIO, "SQLite refused journal_mode=WAL (got %s)", value);
        r = pragma_value(inv, "PRAGMA user_version", value, sizeof(value));
        if (r < 0)
                return r;
        if (atoi(value) > INVENTORY_SCHEMA_VERSION)
                return log_error_errno(EPROTO, "Database schema version %s is newer than this worker (%d)",
                                       value, INVENTORY_SCHEMA_VERSION);
        /* Up to date: nothing to write. The script would commit its user_version again, which costs
         * a WAL frame and two fdatasyncs at every worker start (bench/spawn). */
        if (atoi(value) == INVENTORY_SCHEMA_VERSION)
                return 0;
        return exec_sql(inv, schema_sql, "create schema");
}

void inventory_close(void *state) {
        struct inventory *inv = state;

        if (!inv)
                return;
        sqlite3_finalize(inv->sku);
        sqlite3_finalize(inv->warehouse);
        sqlite3_finalize(inv->stock);
        sqlite3_finalize(inv->low);
        sqlite3_finalize(inv->insert_reorder);
        sqlite3_finalize(inv->reorder);
        sqlite3_finalize(inv->reorders);
        sqlite3_close(inv->db);
        free(inv);
}

int inventory_open(const char *path, bool demo_data, void **ret_state) {
        struct inventory *inv = calloc(1, sizeof(*inv));
        int r;

        if (!inv)
                return log_oom();
        /* NOFOLLOW: the state directory is ours; a symlink there is not. */
        if (sqlite3_open_v2(path, &inv->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                            SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK) {
                r = log_error_errno(EIO, "Failed to open database %s: %s", path,
                                    inv->db ? sqlite3_errmsg(inv->db) : "out of memory");
                goto fail;
        }
        r = configure_db(inv);
        if (r >= 0 && demo_data)
                r = inventory_seed(inv);
        if (r >= 0)
                r = prepare_all(inv);
        /* The emptiness probe of the seed already read the database; without --demo-data, read it here so
         * the -wal file and the exclusive lock are taken now, before lockdown. */
        if (r >= 0 && !demo_data)
                r = database_is_empty(inv);
        if (r < 0)
                goto fail;
        *ret_state = inv;
        return 0;
fail:
        inventory_close(inv);
        return r;
}
