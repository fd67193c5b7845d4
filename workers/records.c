/* SQLite plumbing of the record-keeping domains: open, configure, migrate, seed, prepare — all before
 * the sandbox locks the worker down — and the per-call tenant binding every statement goes through.
 * The journal set-up is the inventory's (see workers/inventory/store.c): exclusive-locking WAL, so
 * after lockdown SQLite only uses descriptors it already holds. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>            /* isfinite: a macro, no libm */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"
#include "workers/records.h"

/* Exclusive locking must be set before WAL is first used (no -shm file). */
static const char pragmas_sql[] =
        "PRAGMA locking_mode = EXCLUSIVE;"
        "PRAGMA journal_mode = WAL;"
        "PRAGMA synchronous = FULL;"
        "PRAGMA trusted_schema = OFF;"
        "PRAGMA secure_delete = ON;"
        "PRAGMA foreign_keys = ON;"
        "PRAGMA temp_store = MEMORY;";

static int db_error(struct records *rs, const char *what) {
        return log_error_errno(EIO, "SQLite (%s): %s: %s", rs->spec->name, what, sqlite3_errmsg(rs->db));
}

int records_exec(struct records *rs, const char *sql) {
        if (sqlite3_exec(rs->db, sql, NULL, NULL, NULL) != SQLITE_OK)
                return db_error(rs, sql);
        return 0;
}

int records_begin(struct records *rs) {
        return records_exec(rs, "BEGIN IMMEDIATE");
}

int records_commit(struct records *rs) {
        return records_exec(rs, "COMMIT");
}

void records_rollback(struct records *rs) {
        if (!sqlite3_get_autocommit(rs->db))
                records_exec(rs, "ROLLBACK");
}

int records_prepare(struct records *rs, const char *sql, sqlite3_stmt **ret) {
        if (sqlite3_prepare_v3(rs->db, sql, -1, SQLITE_PREPARE_PERSISTENT, ret, NULL) != SQLITE_OK)
                return db_error(rs, sql);
        return 0;
}

void records_finalizep(sqlite3_stmt **st) {
        sqlite3_finalize(*st);
}

void records_resetp(sqlite3_stmt **st) {
        if (*st) {
                sqlite3_reset(*st);
                sqlite3_clear_bindings(*st);
        }
}

int records_step(struct records *rs, sqlite3_stmt *st) {
        int r = sqlite3_step(st);

        if (r == SQLITE_ROW)
                return 1;
        if (r == SQLITE_DONE)
                return 0;
        return db_error(rs, sqlite3_sql(st));
}

sqlite3_stmt *records_stmt(struct records *rs, size_t idx, const struct worker_principal *p) {
        sqlite3_stmt *st = rs->st[idx];
        const char *tenant = records_tenant(p);
        int i = sqlite3_bind_parameter_index(st, ":tenant");

        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        if (i > 0 && tenant)
                sqlite3_bind_text(st, i, tenant, -1, SQLITE_TRANSIENT);
        return st;
}

/* The highest "?N" in sql (0 when none). String literals in our SQL never contain '?'. */
static int max_numbered_param(const char *sql) {
        int max = 0;

        for (const char *p = strchr(sql, '?'); p; p = strchr(p + 1, '?'))
                if (p[1] >= '0' && p[1] <= '9') {
                        int n = atoi(p + 1);
                        if (n > max)
                                max = n;
                }
        return max;
}

void records_bind_list(sqlite3_stmt *st, const char *status, long long limit) {
        if (status)
                sqlite3_bind_text(st, sqlite3_bind_parameter_index(st, ":status"), status, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":limit"), limit);
}

static int prepare_all(struct records *rs) {
        const struct records_spec *spec = rs->spec;

        rs->st = calloc(spec->n_stmts, sizeof(*rs->st));
        if (!rs->st)
                return log_oom();
        for (size_t i = 0; i < spec->n_stmts; i++) {
                int r = records_prepare(rs, spec->stmts[i].sql, &rs->st[i]);
                if (r < 0)
                        return r;
                /* Fail at start-up when a statement could run unconfined by the caller's tenant, or when
                 * binding another argument could overwrite the tenant. */
                if (!spec->stmts[i].global &&
                    sqlite3_bind_parameter_index(rs->st[i], ":tenant") <= max_numbered_param(spec->stmts[i].sql))
                        return log_error_errno(EINVAL, "%s statement %zu is not tenant-scoped: %s", spec->name, i,
                                               spec->stmts[i].sql);
        }
        return 0;
}

static int database_is_empty(struct records *rs) {
        _cleanup_(records_finalizep) sqlite3_stmt *st = NULL;
        int r = records_prepare(rs, rs->spec->empty_sql, &st);

        if (r >= 0)
                r = records_step(rs, st);
        return r < 0 ? r : r > 0 && sqlite3_column_int(st, 0);
}

int records_seed(struct records *rs) {
        int r;

        /* One write transaction: the emptiness check and the rows are atomic, a crash leaves nothing. */
        r = records_begin(rs);
        if (r < 0)
                return r;
        r = database_is_empty(rs);
        if (r > 0)
                r = rs->spec->seed(rs);
        else if (r == 0) {
                log_info("Database already holds data, not seeding the demo data set");
                records_rollback(rs);
                return 0;
        }
        if (r < 0) {
                records_rollback(rs);
                return r;
        }
        r = records_commit(rs);
        if (r < 0)
                return r;
        log_info("Seeded the %s demo data set", rs->spec->name);
        return 1;
}

static int user_version(struct records *rs, int *ret) {
        _cleanup_(records_finalizep) sqlite3_stmt *st = NULL;
        int r = records_prepare(rs, "PRAGMA user_version", &st);

        if (r >= 0)
                r = records_step(rs, st);
        if (r < 0)
                return r;
        *ret = r > 0 ? sqlite3_column_int(st, 0) : 0;
        return 0;
}

static int journal_is_wal(struct records *rs) {
        _cleanup_(records_finalizep) sqlite3_stmt *st = NULL;
        int r = records_prepare(rs, "PRAGMA journal_mode", &st);

        if (r >= 0)
                r = records_step(rs, st);
        if (r < 0)
                return r;
        if (r == 0 || !streq(col_text(st, 0), "wal"))
                return log_error_errno(EIO, "SQLite refused journal_mode=WAL for %s", rs->spec->name);
        return 0;
}

static int configure_db(struct records *rs) {
        int version, r;

        /* Defensive: no writes to sqlite_master or shadow tables from SQL, no untrusted schema functions. */
        if (sqlite3_db_config(rs->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL) != SQLITE_OK ||
            sqlite3_db_config(rs->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL) != SQLITE_OK ||
            sqlite3_busy_timeout(rs->db, RECORDS_BUSY_TIMEOUT_MS) != SQLITE_OK)
                return db_error(rs, "configure");
        /* The locked-down worker never removes a file, not even the -wal on its way out. */
        if (sqlite3_file_control(rs->db, "main", SQLITE_FCNTL_PERSIST_WAL, &(int) { 1 }) != SQLITE_OK)
                return db_error(rs, "persistent WAL");
        if ((r = records_exec(rs, pragmas_sql)) < 0 || (r = journal_is_wal(rs)) < 0 ||
            (r = user_version(rs, &version)) < 0)
                return r;
        if (version > rs->spec->schema_version)
                return log_error_errno(EPROTO, "Database schema version %d is newer than this worker (%d)", version,
                                       rs->spec->schema_version);
        /* Up to date: nothing to write (the script would commit its user_version again: a WAL frame and
         * two fdatasyncs at every worker start, bench/spawn). Version 0 is a fresh database, or a
         * script that sets none: run it (it only creates what is missing). */
        if (version > 0 && version == rs->spec->schema_version)
                return 0;
        return records_exec(rs, rs->spec->schema_sql);
}

void records_close(void *state) {
        struct records *rs = state;

        if (!rs)
                return;
        for (size_t i = 0; rs->st && i < rs->spec->n_stmts; i++)
                sqlite3_finalize(rs->st[i]);
        free(rs->st);
        sqlite3_close(rs->db);
        free(rs);
}

int records_open(const struct records_spec *spec, const char *path, bool demo_data, void **ret_state) {
        struct records *rs = calloc(1, sizeof(*rs));
        int r;

        if (!rs)
                return log_oom();
        rs->spec = spec;
        /* NOFOLLOW: the state directory is ours; a symlink there is not. */
        if (sqlite3_open_v2(path, &rs->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
                            SQLITE_OPEN_NOFOLLOW, NULL) != SQLITE_OK) {
                r = log_error_errno(EIO, "Failed to open database %s: %s", path,
                                    rs->db ? sqlite3_errmsg(rs->db) : "out of memory");
                goto fail;
        }
        r = configure_db(rs);
        if (r >= 0 && demo_data)
                r = records_seed(rs);
        if (r >= 0)
                r = prepare_all(rs);
        /* Read the database now, so the -wal file and the exclusive lock are taken before lockdown. */
        if (r >= 0)
                r = database_is_empty(rs);
        if (r < 0)
                goto fail;
        *ret_state = rs;
        return 0;
fail:
        records_close(rs);
        return r;
}

/* ---- arguments and values ---- */

json_t *col_json_text(sqlite3_stmt *st, int i) {
        const char *s = col_text(st, i);

        return s ? json_string(s) : json_null();
}

const char *records_arg_string(const json_t *args, const char *key) {
        return json_string_value(json_object_get(args, key));
}

size_t utf8_length(const char *s) {
        size_t n = 0;

        for (; *s; s++)
                if (((unsigned char) *s & 0xc0) != 0x80)
                        n++;
        return n;
}

bool records_arg_limit(const json_t *args, long long *ret) {
        const json_t *v = json_object_get(args, "limit");
        double d;

        *ret = RECORDS_DEFAULT_LIST;
        if (!v)
                return true;
        /* 2020-12: 5.0 is an integer too. */
        if (json_is_integer(v))
                *ret = json_integer_value(v);
        else if (json_is_real(v) && (d = json_real_value(v)) >= 1 && d <= RECORDS_MAX_LIST && d == (double) (long long) d)
                *ret = (long long) d;
        else
                return false;
        return *ret >= 1 && *ret <= RECORDS_MAX_LIST;
}

json_t *money_json(long long cents) {
        return json_real((double) cents / 100.0);
}

void money_print(FILE *f, long long cents, const char *currency) {
        fprintf(f, "%lld.%02lld %s", cents / 100, cents % 100, currency);
}

bool money_from_json(const json_t *v, long long *ret_cents) {
        double d, c;

        if (!json_is_number(v))
                return false;
        d = json_number_value(v);
        if (!isfinite(d) || d <= 0)
                return false;
        if (d * 100.0 > (double) RECORDS_MAX_AMOUNT_CENTS)
                return false;
        c = (double) (long long) (d * 100.0 + 0.5);
        /* Two decimals at most: 0.001 is a typo, not a refund. */
        if (c < 1 || c - d * 100.0 > 1e-6 || d * 100.0 - c > 1e-6)
                return false;
        *ret_cents = (long long) c;
        return true;
}

void untrusted_print(FILE *f, const char *text) {
        int run = 0;

        fputs(UNTRUSTED_HEADER "\n" UNTRUSTED_OPEN "\n", f);
        for (const char *p = text; *p; p++) {
                run = *p == '>' ? run + 1 : 0;
                if (run == 3) {
                        fputc(' ', f);
                        run = 1;
                }
                fputc(*p, f);
        }
        fputs("\n" UNTRUSTED_CLOSE, f);
}

/* ---- text blocks ---- */

void strbuf_printf(struct strbuf *b, const char *fmt, ...) {
        size_t room = b->cap - b->len;
        va_list ap;
        int n;

        if (b->failed)
                return;
        va_start(ap, fmt);
        n = vsnprintf(b->s + b->len, room, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t) n >= room) {
                size_t want = b->cap * 2 > b->len + n + 1 ? b->cap * 2 : b->len + n + 1;
                char *p = b->s == b->stack ? malloc(want) : realloc(b->s, want);

                if (!p) {
                        b->s[b->len] = '\0';
                        b->failed = true;
                        return;
                }
                if (b->s == b->stack)
                        memcpy(p, b->stack, b->len);
                b->s = p;
                b->cap = want;
                va_start(ap, fmt);
                n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
                va_end(ap);
        }
        if (n < 0) {
                b->s[b->len] = '\0';
                b->failed = true;
                return;
        }
        b->len += n;
}

/* Room for n more bytes and the NUL; false (and failed) without. */
static bool strbuf_grow(struct strbuf *b, size_t n) {
        size_t want;
        char *p;

        if (b->failed)
                return false;
        if (b->cap - b->len > n)
                return true;
        want = b->cap * 2 > b->len + n + 1 ? b->cap * 2 : b->len + n + 1;
        p = b->s == b->stack ? malloc(want) : realloc(b->s, want);
        if (!p) {
                b->failed = true;
                return false;
        }
        if (b->s == b->stack)
                memcpy(p, b->stack, b->len + 1);
        b->s = p;
        b->cap = want;
        return true;
}

void strbuf_putn(struct strbuf *b, const char *s, size_t n) {
        if (!strbuf_grow(b, n))
                return;
        memcpy(b->s + b->len, s, n);
        b->len += n;
        b->s[b->len] = '\0';
}

void strbuf_put_ll(struct strbuf *b, long long v) {
        char tmp[24], *p = tmp + sizeof(tmp);
        /* Negated as unsigned: the most negative value has no positive counterpart. */
        unsigned long long u = v < 0 ? -(unsigned long long) v : (unsigned long long) v;

        do
                *--p = (char) ('0' + u % 10);
        while ((u /= 10) > 0);
        if (v < 0)
                *--p = '-';
        strbuf_putn(b, p, tmp + sizeof(tmp) - p);
}

void strbuf_done(struct strbuf *b) {
        if (b->s != b->stack)
                free(b->s);
        strbuf_init(b);
}

int textbuf_open(struct textbuf *t) {
        *t = (struct textbuf) {};
        t->f = open_memstream(&t->buf, &t->len);
        return t->f ? 0 : -ENOMEM;
}

void textbuf_done(struct textbuf *t) {
        if (t->f)
                fclose(t->f);
        free(t->buf);
        *t = (struct textbuf) {};
}

int textbuf_result(struct textbuf *t, json_t *structured, json_t **ret) {
        if (!structured || fflush(t->f) != 0) {
                json_decref(structured);
                return -ENOMEM;
        }
        *ret = tool_result_ok(structured, "%s", t->buf);
        return *ret ? 0 : -ENOMEM;
}

int textbuf_list_result(struct textbuf *t, json_t *structured, size_t count, const char *noun, const char *status,
                        json_t **ret) {
        if (!structured || fflush(t->f) != 0) {
                json_decref(structured);
                return -ENOMEM;
        }
        *ret = tool_result_ok(structured, "%zu %s(s)%s%s:%s", count, noun, status ? " with status " : "",
                              status ?: "", t->buf);
        return *ret ? 0 : -ENOMEM;
}

int records_list(struct tool_call *call, const struct records_list_spec *spec, const char *status, long long limit,
                 json_t **ret) {
        struct records *rs = call->domain_state;
        _cleanup_(records_resetp) sqlite3_stmt *st = records_stmt(rs, spec->stmt, call->principal);
        _cleanup_(textbuf_done) struct textbuf t = {};
        _cleanup_json_ json_t *list = json_array();
        int r;

        if (!list || textbuf_open(&t) < 0)
                return -ENOMEM;
        records_bind_list(st, status, limit);
        while ((r = records_step(rs, st)) > 0) {
                json_array_append_new(list, spec->row_json(st));
                fputc('\n', t.f);
                spec->describe(t.f, st);
        }
        if (r < 0)
                return r;
        return textbuf_list_result(&t, json_pack("{s:I, s:O}", "count", (json_int_t) json_array_size(list),
                                                 spec->key, list),
                                   json_array_size(list), spec->noun, status, ret);
}

int records_list_tool(struct tool_call *call, const struct records_list_spec *spec, json_t **ret) {
        long long limit;

        if (!records_arg_limit(call->arguments, &limit))
                return tool_fail(ret, "limit must be between 1 and %d", RECORDS_MAX_LIST);
        return records_list(call, spec, records_arg_string(call->arguments, "status"), limit, ret);
}
