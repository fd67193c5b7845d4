/* The inventory domain (WMS): warehouses, SKUs, stock levels and reorders in one SQLite database. */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>

/* Tool limits, mirrored exactly in the inputSchemas of inventory.c. */
#define INVENTORY_MAX_REORDER_QTY 100000        /* one purchase order line, not a typo'd 10^9 */
/* Rows per list call: RECORDS_MAX_LIST and RECORDS_DEFAULT_LIST (workers/records.h), as every domain. */
/* The prepared statements (store.c), indexes into struct records .st. */
enum {
        INV_SKU,                /* ?1 sku → name, reorder_point, reorder_qty */
        INV_WAREHOUSE,          /* ?1 id → name, city */
        INV_STOCK,              /* ?1 sku, ?2 warehouse|NULL → warehouse, on_hand */
        INV_LOW,                /* ?1 warehouse|NULL, ?2 limit → low rows */
        INV_INSERT_REORDER,     /* ?1 sku, ?2 warehouse, ?3 quantity, ?4 requested_by|NULL */
        INV_REORDER,            /* ?1 id → the reorder row */
        INV_REORDERS,           /* ?1 sku|NULL, ?2 limit → reorder rows, newest first */
        _INV_MAX,
};

/* store.c: the database through workers/records.c (records_close closes it, records_seed seeds it). */
int inventory_open(const char *path, bool demo_data, void **ret_state);
