/* libFuzzer target: the whole worker behind its channel — framing, dispatch, principal parsing,
 * argument validation and the inventory tools on a real SQLite database in a temporary directory. */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "log.h"
#include "workers/worker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[] = "/tmp/bastion-fuzz-worker.XXXXXX";
static char db[sizeof(dir) + 16];
static struct mcp_server server;
static void *state;

static void cleanup(void) {
        char wal[sizeof(db) + 4];

        mcp_server_done(&server);
        inventory_domain.close(state);
        snprintf(wal, sizeof(wal), "%s-wal", db);
        unlink(wal);
        unlink(db);
        rmdir(dir);
}

static void setup(void) {
        log_set_max_level(LOG_CRIT);    /* every malformed line would be logged otherwise */
        if (!mkdtemp(dir))
                abort();
        snprintf(db, sizeof(db), "%s/inventory.db", dir);
        if (inventory_domain.open(db, true, &state) < 0 || mcp_server_init(&server, &inventory_domain, state, -1) < 0)
                abort();
        atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!state)
                setup();
        if (linebuf_feed(&server.in, data, size) < 0 || mcp_server_process(&server) < 0)
                abort();
        /* Every reply is one line. */
        for (size_t i = 0, start = 0; i < server.out.len; i++)
                if (server.out.buf[server.out.start + i] == '\n') {
                        if (i == start)
                                abort();
                        start = i + 1;
                }
        server.out.start = server.out.len = 0;
        return 0;
}
