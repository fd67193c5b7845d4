/* The inventory domain (WMS): warehouses, SKUs, stock levels and reorders in one SQLite database. */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>

/* Tool limits, mirrored exactly in the inputSchemas of inventory.c. */
#define INVENTORY_MAX_REORDER_QTY 100000        /* one purchase order line, not a typo'd 10^9 */
#define INVENTORY_MAX_LIST 100                  /* rows per list call: keeps replies small */
#define INVENTORY_DEFAULT_LIST 20
/* How long a statement waits for a lock held by someone else (only a by-hand sqlite3 session). */
#define INVENTORY_BUSY_TIMEOUT_MS 5000

struct inventory {
        sqlite3 *db;
        sqlite3_stmt *sku;              /* ?1 sku → name, reorder_point, reorder_qty */
        sqlite3_stmt *warehouse;        /* ?1 id → name, city */
        sqlite3_stmt *stock;            /* ?1 sku, ?2 warehouse|NULL → warehouse, on_hand */
        sqlite3_stmt *low;              /* ?1 warehouse|NULL, ?2 limit → low rows */
        sqlite3_stmt *insert_reorder;   /* ?1 sku, ?2 warehouse, ?3 quantity, ?4 requested_by|NULL */
        sqlite3_stmt *reorder;          /* ?1 id → the reorder row */
        sqlite3_stmt *reorders;         /* ?1 sku|NULL, ?2 limit → reorder rows, newest first */
};

/* store.c */
int inventory_open(const char *path, bool demo_data, void **ret_state);
void inventory_close(void *state);
/* Seeds the demo data set when the database holds no data at all. 1 = seeded, 0 = left alone. */
int inventory_seed(struct inventory *inv);
/* Steps a statement that yields at most one row: 1 = row, 0 = none, negative errno on failure. */
int inventory_step(struct inventory *inv, sqlite3_stmt *st);
void inventory_stmt_resetp(sqlite3_stmt **st);
