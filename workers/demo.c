/* The demo data set of the record-keeping domains: three customers (tenants) and their orders, each
 * with its shipment and payment and some with a return. Every domain seeds its own view of these
 * rows, so ORD-1001 in the OMS is the order that SHP-2001, PAY-3001 and RMA-4001 belong to.
 * SKUs and warehouses are the inventory's. Two texts are prompt injections, stored verbatim. */
#include "config.h"

#include "util.h"
#include "workers/records.h"

const struct demo_customer demo_customers[] = {
        { "acme", "Acme GmbH" },
        { "globex", "Globex Corporation" },
        { "initech", "Initech BV" },
};
const size_t demo_n_customers = ELEMENTSOF(demo_customers);

const struct demo_order demo_orders[] = {
        { "ORD-1001", "acme", "delivered", "2026-11-02T09:15:00Z", "SKU-1005", 4, 129900, "EUR",
          "Please deliver to loading dock B before 10:00.",
          "SHP-2001", "DHL", "delivered", "WH-BER", "Acme GmbH, Hafenstrasse 1, Hamburg", "2026-11-06",
          "PAY-3001", "card", "captured",
          "RMA-4001", DEMO_INJECTION_REASON, "requested", 0 },
        { "ORD-1002", "acme", "shipped", "2026-11-20T14:40:00Z", "SKU-1002", 3, 45000, "EUR",
          DEMO_INJECTION_NOTE,
          "SHP-2002", "DHL", "in_transit", "WH-BER", "Acme GmbH, Leopoldstrasse 7, Munich", "2026-11-28",
          "PAY-3002", "invoice", "held",
          NULL, NULL, NULL, 0 },
        { "ORD-1003", "acme", "processing", "2026-11-25T08:05:00Z", "SKU-1007", 10, 8990, "EUR",
          NULL,
          "SHP-2003", "DPD", "label_created", "WH-RTM", "Acme GmbH, Hafenstrasse 1, Hamburg", "2026-12-01",
          "PAY-3003", "card", "authorized",
          NULL, NULL, NULL, 0 },
        { "ORD-1004", "globex", "delivered", "2026-10-28T16:20:00Z", "SKU-1008", 1, 248000, "USD",
          "Call the front desk on arrival.",
          "SHP-2004", "UPS", "delivered", "WH-CHI", "Globex Corporation, 1 Industrial Way, Springfield", "2026-11-03",
          "PAY-3004", "wire", "captured",
          "RMA-4002", "Battery arrived with a cracked casing.", "approved", 0 },
        { "ORD-1005", "globex", "shipped", "2026-11-18T11:00:00Z", "SKU-1003", 300, 61550, "USD",
          NULL,
          "SHP-2005", "UPS", "in_transit", "WH-CHI", "Globex Corporation, 9 Harbor Road, Shelbyville", "2026-11-27",
          "PAY-3005", "wire", "held",
          NULL, NULL, NULL, 0 },
        { "ORD-1006", "globex", "processing", "2026-11-24T13:30:00Z", "SKU-1009", 20, 12000, "USD",
          NULL,
          "SHP-2006", "FedEx", "label_created", "WH-CHI", "Globex Corporation, 1 Industrial Way, Springfield",
          "2026-11-30",
          "PAY-3006", "card", "authorized",
          NULL, NULL, NULL, 0 },
        { "ORD-1007", "initech", "delivered", "2026-11-04T10:45:00Z", "SKU-1010", 2, 34900, "EUR",
          "Deliver to building 3, reception.",
          "SHP-2007", "DB Schenker", "delivered", "WH-RTM", "Initech BV, Stationsplein 3, Utrecht", "2026-11-08",
          "PAY-3007", "card", "captured",
          "RMA-4003", "Wrong size ordered.", "refunded", 17450 },
        { "ORD-1008", "initech", "shipped", "2026-11-21T09:00:00Z", "SKU-1006", 40, 102000, "EUR",
          NULL,
          "SHP-2008", "DB Schenker", "in_transit", "WH-RTM", "Initech BV, Wilhelminakade 12, Rotterdam", "2026-11-27",
          "PAY-3008", "invoice", "held",
          NULL, NULL, NULL, 0 },
        { "ORD-1009", "initech", "pending", "2026-11-26T07:55:00Z", "SKU-1004", 5, 7500, "EUR",
          NULL,
          "SHP-2009", "DPD", "label_created", "WH-BER", "Initech BV, Stationsplein 3, Utrecht", "2026-12-03",
          "PAY-3009", "card", "authorized",
          NULL, NULL, NULL, 0 },
};
const size_t demo_n_orders = ELEMENTSOF(demo_orders);

const char *demo_customer_name(const char *tenant) {
        for (size_t i = 0; i < demo_n_customers; i++)
                if (streq(demo_customers[i].tenant, tenant))
                        return demo_customers[i].name;
        return NULL;
}
