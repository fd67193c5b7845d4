/* Test fixture for the worker: the real skeleton and the real inventory domain on a real SQLite file
 * in a fresh temporary directory; replies are taken from the server's output queue. */
#pragma once

#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "workers/inventory/inventory.h"
#include "workers/records.h"
#include "workers/worker.h"

struct worker_fixture {
        char dir[64];
        char db[96];
        void *state;
        struct mcp_server server;
};

static inline void fixture_open(struct worker_fixture *f, bool demo) {
        strcpy(f->dir, "/tmp/bastion-worker-test.XXXXXX");
        cr_assert_not_null(mkdtemp(f->dir));
        snprintf(f->db, sizeof(f->db), "%s/inventory.db", f->dir);
        cr_assert_eq(inventory_domain.open(f->db, demo, &f->state), 0);
        cr_assert_eq(mcp_server_init(&f->server, &inventory_domain, f->state, -1), 0);
}

/* The whole content of a file ("" when it does not exist), for before/after comparisons. */
static inline char *file_bytes(const char *path, size_t *ret_size) {
        FILE *fp = fopen(path, "rb");
        char *buf = NULL;
        size_t size = 0;

        if (fp) {
                cr_assert_eq(fseek(fp, 0, SEEK_END), 0);
                size = (size_t) ftell(fp);
                rewind(fp);
        }
        buf = calloc(1, size + 1);
        cr_assert_not_null(buf);
        if (fp) {
                cr_assert_eq(fread(buf, 1, size, fp), size);
                fclose(fp);
        }
        *ret_size = size;
        return buf;
}

/* Closes the database and opens it again as a worker start does (with --demo-data), asserting that
 * the database and its WAL are byte for byte what they were: an up-to-date database costs a start
 * no write and no fdatasync. */
static inline void assert_reopen_writes_nothing(const struct domain *d, const char *db, void **state) {
        char wal[128];
        size_t db_size, wal_size, n;
        char *db_before, *wal_before, *after;

        snprintf(wal, sizeof(wal), "%s-wal", db);
        d->close(*state);
        *state = NULL;
        db_before = file_bytes(db, &db_size);
        wal_before = file_bytes(wal, &wal_size);
        cr_assert_eq(d->open(db, true, state), 0, "reopen %s", d->name);
        after = file_bytes(db, &n);
        cr_assert(n == db_size && memcmp(after, db_before, n) == 0, "%s: opening wrote to the database", d->name);
        free(after);
        after = file_bytes(wal, &n);
        cr_assert(n == wal_size && memcmp(after, wal_before, n) == 0, "%s: opening wrote to the WAL (%zu -> %zu bytes)",
                  d->name, wal_size, n);
        free(after);
        free(db_before);
        free(wal_before);
}

static inline void fixture_close(struct worker_fixture *f) {
        char cmd[128];

        mcp_server_done(&f->server);
        inventory_domain.close(f->state);
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
        cr_assert_eq(system(cmd), 0);
}

/* Feeds raw bytes and returns every reply queued since, as a JSON array. */
static inline json_t *fixture_feed(struct worker_fixture *f, const char *data, size_t n) {
        struct outbuf *ob = &f->server.out;
        json_t *replies = json_array();
        size_t i = 0;

        cr_assert_eq(linebuf_feed(&f->server.in, data, n), 0);
        cr_assert_eq(mcp_server_process(&f->server), 0);
        while (i < ob->len) {
                const char *line = ob->buf + ob->start + i;
                const char *nl = memchr(line, '\n', ob->len - i);
                json_error_t e;
                json_t *v;

                cr_assert_not_null(nl, "reply without newline");
                v = json_loadb(line, nl - line, 0, &e);
                cr_assert_not_null(v, "reply is not JSON: %.*s", (int) (nl - line), line);
                json_array_append_new(replies, v);
                i += nl - line + 1;
        }
        ob->start = ob->len = 0;
        return replies;
}

static inline json_t *fixture_send(struct worker_fixture *f, const char *line) {
        char *buf;
        json_t *r;

        cr_assert(asprintf(&buf, "%s\n", line) > 0);
        r = fixture_feed(f, buf, strlen(buf));
        free(buf);
        return r;
}

/* Exactly one reply, and it equals `expected` (JSON text). */
static inline void assert_reply(json_t *replies, const char *expected) {
        json_t *want = json_loads(expected, 0, NULL);
        char *got = json_dumps(replies, JSON_COMPACT);

        cr_assert_not_null(want, "bad expectation %s", expected);
        cr_assert_eq(json_array_size(replies), 1, "expected one reply, got %s", got);
        cr_assert(json_equal(json_array_get(replies, 0), want), "expected %s, got %s", expected, got);
        free(got);
        json_decref(want);
        json_decref(replies);
}

/* tools/call of `tool` with `arguments` (JSON text) and an optional principal sub; returns the result. */
static inline json_t *fixture_call(struct worker_fixture *f, const char *tool, const char *arguments,
                                   const char *sub) {
        json_t *args = json_loads(arguments, 0, NULL);
        json_t *params = json_pack("{s:s, s:o}", "name", tool, "arguments", args);
        json_t *req, *replies, *result;
        char *line;

        cr_assert_not_null(args, "bad arguments %s", arguments);
        if (sub)
                json_object_set_new(params, "_meta",
                                    json_pack("{s:{s:s, s:i, s:n, s:s, s:[s]}}", META_PRINCIPAL, "sub", sub,
                                              "uid", 1000, "tenant", "role", "supply-chain-manager", "scopes",
                                              "inventory:reorder"));
        req = json_pack("{s:s, s:i, s:s, s:o}", "jsonrpc", "2.0", "id", 7, "method", "tools/call", "params", params);
        line = json_dumps(req, JSON_COMPACT);
        replies = fixture_send(f, line);
        cr_assert_eq(json_array_size(replies), 1);
        result = json_incref(json_object_get(json_array_get(replies, 0), "result"));
        cr_assert_not_null(result, "no result: %s", line);
        free(line);
        json_decref(req);
        json_decref(replies);
        return result;
}

static inline const char *result_text(const json_t *result) {
        return json_string_value(json_object_get(json_array_get(json_object_get(result, "content"), 0), "text"));
}
