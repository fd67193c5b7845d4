/* The inventory database: its schema, statements and demo data. Opening, configuring, seeding and
 * preparing are workers/records.c's, like every domain's, all before the sandbox locks the worker down.
 *
 * Journal: WAL with locking_mode=EXCLUSIVE. The worker is the database's only user, and in exclusive
 * mode SQLite keeps its wal-index in heap memory (no -shm file, no shared mapping); the -wal file is
 * opened by the first read at open and stays open (and, persistent, is not unlinked on close), so after
 * lockdown SQLite only reads and writes descriptors it already holds. temp_store=MEMORY keeps sorts
 * and temporary tables off the disk. Inventory data belongs to no tenant: every statement is global. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "workers/inventory/inventory.h"
#include "workers/records.h"

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

static const struct records_stmt stmts[_INV_MAX] = {
        [INV_SKU] = { "SELECT name, reorder_point, reorder_qty FROM skus WHERE sku = ?1", true },
        [INV_WAREHOUSE] = { "SELECT name, city FROM warehouses WHERE id = ?1", true },
        [INV_STOCK] = { "SELECT warehouse, on_hand FROM stock WHERE sku = ?1 "
                        "AND (?2 IS NULL OR warehouse = ?2) ORDER BY warehouse", true },
        [INV_LOW] = { "SELECT s.sku, k.name, s.warehouse, s.on_hand, k.reorder_point, k.reorder_qty "
                      "FROM stock s JOIN skus k ON k.sku = s.sku "
                      "WHERE s.on_hand <= k.reorder_point AND (?1 IS NULL OR s.warehouse = ?1) "
                      "ORDER BY s.sku, s.warehouse LIMIT ?2", true },
        [INV_INSERT_REORDER] = { "INSERT INTO reorders (sku, warehouse, quantity, status, requested_by) "
                                 "VALUES (?1, ?2, ?3, 'requested', ?4)", true },
        [INV_REORDER] = { "SELECT id, sku, warehouse, quantity, status, created_at, requested_by "
                          "FROM reorders WHERE id = ?1", true },
        [INV_REORDERS] = { "SELECT id, sku, warehouse, quantity, status, created_at, requested_by "
                           "FROM reorders WHERE (?1 IS NULL OR sku = ?1) ORDER BY id DESC LIMIT ?2", true },
};

static int seed(struct records *rs) {
        _cleanup_(records_finalizep) sqlite3_stmt *w = NULL, *k = NULL, *s = NULL;
        int r;

        if ((r = records_prepare(rs, "INSERT INTO warehouses (id, name, city) VALUES (?1, ?2, ?3)", &w)) < 0 ||
            (r = records_prepare(rs, "INSERT INTO skus (sku, name, reorder_point, reorder_qty) "
                                     "VALUES (?1, ?2, ?3, ?4)", &k)) < 0 ||
            (r = records_prepare(rs, "INSERT INTO stock (sku, warehouse, on_hand) VALUES (?1, ?2, ?3)", &s)) < 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(demo_warehouses) && r >= 0; i++) {
                sqlite3_bind_text(w, 1, demo_warehouses[i].id, -1, SQLITE_STATIC);
                sqlite3_bind_text(w, 2, demo_warehouses[i].name, -1, SQLITE_STATIC);
                sqlite3_bind_text(w, 3, demo_warehouses[i].city, -1, SQLITE_STATIC);
                r = records_step(rs, w);
                sqlite3_reset(w);
        }
        for (size_t i = 0; i < ELEMENTSOF(demo_skus) && r >= 0; i++) {
                sqlite3_bind_text(k, 1, demo_skus[i].sku, -1, SQLITE_STATIC);
                sqlite3_bind_text(k, 2, demo_skus[i].name, -1, SQLITE_STATIC);
                sqlite3_bind_int(k, 3, demo_skus[i].reorder_point);
                sqlite3_bind_int(k, 4, demo_skus[i].reorder_qty);
                r = records_step(rs, k);
                sqlite3_reset(k);
        }
        for (size_t i = 0; i < ELEMENTSOF(demo_stock) && r >= 0; i++) {
                sqlite3_bind_text(s, 1, demo_stock[i].sku, -1, SQLITE_STATIC);
                sqlite3_bind_text(s, 2, demo_stock[i].warehouse, -1, SQLITE_STATIC);
                sqlite3_bind_int(s, 3, demo_stock[i].on_hand);
                r = records_step(rs, s);
                sqlite3_reset(s);
        }
        return r < 0 ? r : 0;
}

static const struct records_spec inventory_spec = {
        .name = "inventory",
        .schema_sql = schema_sql,
        .schema_version = 1,
        .empty_sql = "SELECT NOT EXISTS (SELECT 1 FROM warehouses) AND NOT EXISTS (SELECT 1 FROM skus) "
                     "AND NOT EXISTS (SELECT 1 FROM stock) AND NOT EXISTS (SELECT 1 FROM reorders)",
        .seed = seed,
        .stmts = stmts,
        .n_stmts = _INV_MAX,
};

int inventory_open(const char *path, bool demo_data, void **ret_state) {
        return records_open(&inventory_spec, path, demo_data, ret_state);
}
