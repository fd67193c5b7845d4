/* bastionctl audit: verify the hash chain and checkpoint signatures, follow the log for people and
 * scripts, print the public key that verifies it. Reads files only; never talks to the supervisor. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "broker/audit/audit.h"
#include "broker/secrets/store.h"
#include "cli/bastionctl.h"
#include "log.h"
#include "util.h"

#define TAIL_DEFAULT_LINES 10
#define FOLLOW_POLL_MS 250

struct key_source {
        const char *pubkey_file;
        const char *store;
        const char *key_file;
};

/* The public key from a file, or derived from the signing key in the secrets store (root). */
static int load_pubkey(const struct key_source *k, uint8_t ret[AUDIT_PUBKEY_BYTES]) {
        _cleanup_(secrets_store_freep) struct secrets_store *s = NULL;
        _cleanup_secret_ struct secret *key = NULL, *seed = NULL;
        int r;

        if (k->pubkey_file) {
                r = audit_pubkey_read(k->pubkey_file, ret);
                return r < 0 ? log_error_errno(r, "Cannot read public key %s: %m", k->pubkey_file) : 0;
        }
        r = secrets_key_load(k->key_file, &key);
        if (r == -ENOENT)
                return log_error_errno(r, "No store key %s to derive the public key from; use --pubkey FILE",
                                       k->key_file ?: SECRETS_DEFAULT_KEY_FILE);
        if (r < 0)
                return r;
        r = secrets_store_open(k->store, key, false, &s);
        if (r < 0)
                return log_error_errno(r, "Cannot open secrets store %s: %m", k->store);
        r = secrets_store_get(s, AUDIT_SIGNING_KEY_NAME, &seed);
        if (r < 0 || seed->size != AUDIT_SEED_BYTES)
                return log_error_errno(r < 0 ? r : -EBADMSG, "No usable " AUDIT_SIGNING_KEY_NAME " in %s (run `bastionctl secrets init`)", k->store);
        return audit_pubkey_from_seed(seed->data, ret);
}

static int cmd_pubkey(const struct key_source *k) {
        uint8_t pk[AUDIT_PUBKEY_BYTES];
        char hex[AUDIT_PUBKEY_HEX];

        if (load_pubkey(k, pk) < 0)
                return 1;
        sodium_bin2hex(hex, sizeof(hex), pk, sizeof(pk));
        printf("%s\n", hex);
        return 0;
}

static int cmd_verify(const struct key_source *k, const char *dir, bool allow_tail, char **files, size_t n_files) {
        struct audit_verify_report rep;
        uint8_t pk[AUDIT_PUBKEY_BYTES];
        char **paths = files;
        size_t n = n_files;
        int r;

        if (load_pubkey(k, pk) < 0)
                return 1;
        if (n == 0 && (r = audit_list_files(dir, &paths, &n)) < 0)
                return log_error_errno(r, "Cannot list %s: %m", dir), 1;
        r = audit_verify(paths, n, pk, allow_tail ? AUDIT_VERIFY_ALLOW_TAIL : 0, &rep);
        if (r == -EBADMSG)
                fprintf(stderr, "%s:%lu: seq %" PRIu64 ": %s: %s\n", rep.file ?: (n ? paths[0] : dir), rep.line, rep.seq,
                        audit_verify_error_to_string(rep.error), rep.reason);
        else if (r < 0)
                log_error_errno(r, "Cannot read %s: %m", rep.file ?: dir);
        else
                printf("OK: %" PRIu64 " records (seq %" PRIu64 "..%" PRIu64 ") in %zu file(s), %" PRIu64
                       " checkpoints, last at seq %" PRIu64 "%s%s\n", rep.n_records, rep.first_seq, rep.last_seq, n,
                       rep.n_checkpoints, rep.last_checkpoint_seq, rep.anchored ? "" : "; starts at a link to earlier files",
                       rep.unvouched ? "; unsigned tail allowed" : "");
        if (paths != files)
                audit_free_paths(paths, n);
        return r < 0 ? 1 : 0;
}

/* ---- tail ---- */

struct filter {
        const char *server, *tool, *sub, *since;
        bool json;
};

static const char *member(json_t *o, const char *a, const char *b) {
        json_t *v = json_object_get(o, a);

        if (b)
                v = json_object_get(v, b);
        return json_string_value(v);
}

static bool matches(const struct filter *f, json_t *o) {
        const char *ts = member(o, "ts", NULL);

        if (f->server && !streq(member(o, "server", NULL), f->server))
                return false;
        if (f->tool && !streq(member(o, "tool", NULL), f->tool))
                return false;
        if (f->sub && !streq(member(o, "principal", "sub"), f->sub))
                return false;
        /* Timestamps are fixed-width UTC, so string order is time order, and a prefix like
         * 2026-11-26T10 compares as the start of that hour. */
        return !f->since || (ts && strcmp(ts, f->since) >= 0);
}

static void print_record(const struct filter *f, json_t *o, const char *line) {
        json_t *v;
        const char *what = member(o, "status", NULL) ?: member(o, "reason", NULL) ?: member(o, "credential", NULL);

        if (f->json) {
                printf("%s\n", line);
                return;
        }
        v = json_object_get(o, "seq");
        printf("%s %" JSON_INTEGER_FORMAT " %s", member(o, "ts", NULL) ?: "?", json_integer_value(v), member(o, "type", NULL) ?: "?");
        if (member(o, "principal", "sub"))
                printf(" %s", member(o, "principal", "sub"));
        if (member(o, "server", NULL))
                printf(" %s%s%s", member(o, "server", NULL), member(o, "tool", NULL) ? "/" : "", member(o, "tool", NULL) ?: "");
        if (what)
                printf(" %s", what);
        if (member(o, "error", NULL))
                printf(" (%s)", member(o, "error", NULL));
        printf("\n");
}

/* Keeps the last `max` matching lines (0 = all, printed as they come). */
struct ring {
        char **lines;
        size_t max, next, n;
};

static void emit(const struct filter *f, struct ring *ring, const char *line) {
        _cleanup_json_ json_t *o = json_loads(line, 0, NULL);

        if (!json_is_object(o) || !matches(f, o))
                return;
        if (ring->max == 0) {
                print_record(f, o, line);
                return;
        }
        free(ring->lines[ring->next]);
        ring->lines[ring->next] = strdup(line);
        ring->next = (ring->next + 1) % ring->max;
        if (ring->n < ring->max)
                ring->n++;
}

static void ring_flush(const struct filter *f, struct ring *ring) {
        for (size_t i = 0; i < ring->n; i++) {
                size_t k = (ring->next + ring->max - ring->n + i) % ring->max;
                _cleanup_json_ json_t *o = json_loads(ring->lines[k], 0, NULL);

                if (o)
                        print_record(f, o, ring->lines[k]);
                free(ring->lines[k]);
                ring->lines[k] = NULL;
        }
        ring->n = 0;
        ring->max = 0;          /* from now on (follow mode) print as lines arrive */
}

/* Reads complete lines from f; a partial last line stays unread until its newline arrives. */
static void read_lines(FILE *in, const struct filter *f, struct ring *ring) {
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        ssize_t n;

        for (;;) {
                long pos = ftell(in);

                n = getline(&line, &cap, in);
                if (n <= 0)
                        break;
                if (line[n - 1] != '\n') {
                        fseek(in, pos, SEEK_SET);
                        break;
                }
                line[n - 1] = '\0';
                emit(f, ring, line);
        }
        clearerr(in);
}

static char *newest_file(const char *dir) {
        char **paths, *p = NULL;
        size_t n;

        if (audit_list_files(dir, &paths, &n) < 0)
                return NULL;
        if (n > 0)
                p = strdup(paths[n - 1]);
        audit_free_paths(paths, n);
        return p;
}

static int cmd_tail(const struct filter *f, const char *dir, const char *file, bool follow, size_t lines) {
        _cleanup_free_ char *path = file ? strdup(file) : newest_file(dir);
        _cleanup_fclose_ FILE *in = NULL;
        struct ring ring = { .max = f->since ? 0 : lines };

        if (!path)
                return log_error("No audit log in %s", dir), 1;
        in = fopen(path, "re");
        if (!in)
                return log_error_errno(errno, "Cannot open %s: %m", path), 1;
        ring.lines = calloc(ring.max ?: 1, sizeof(char *));
        if (!ring.lines)
                return log_oom(), 1;
        read_lines(in, f, &ring);
        ring_flush(f, &ring);
        free(ring.lines);
        fflush(stdout);
        while (follow) {
                _cleanup_free_ char *newest = NULL;

                nanosleep(&(struct timespec) { 0, FOLLOW_POLL_MS * 1000000L }, NULL);
                read_lines(in, f, &ring);
                fflush(stdout);
                /* Rotation: once the old file is finished, continue with the new one from its start. */
                newest = file ? NULL : newest_file(dir);
                if (newest && !streq(newest, path)) {
                        read_lines(in, f, &ring);
                        fclose(in);
                        in = fopen(newest, "re");
                        if (!in)
                                return log_error_errno(errno, "Cannot open %s: %m", newest), 1;
                        free(path);
                        path = TAKE_PTR(newest);
                }
        }
        return 0;
}

static void help(FILE *out) {
        fprintf(out, "bastionctl audit verify [--pubkey FILE] [--dir DIR] [--allow-tail] [FILE…]\n"
               "bastionctl audit tail [-f] [-n N] [--server S] [--tool T] [--sub X] [--since TIME] [--json] [--dir DIR] [FILE]\n"
               "bastionctl audit pubkey [--store FILE] [--key-file FILE]\n"
               "See bastionctl(8) and bastion-audit(5).\n");
}

int ctl_audit(int argc, char **argv) {
        enum { ARG_PUBKEY = 0x100, ARG_DIR, ARG_ALLOW_TAIL, ARG_SERVER, ARG_TOOL, ARG_SUB, ARG_SINCE, ARG_JSON, ARG_STORE, ARG_KEY_FILE };
        static const struct option options[] = {
                { "pubkey", required_argument, NULL, ARG_PUBKEY },
                { "dir", required_argument, NULL, ARG_DIR },
                { "allow-tail", no_argument, NULL, ARG_ALLOW_TAIL },
                { "server", required_argument, NULL, ARG_SERVER },
                { "tool", required_argument, NULL, ARG_TOOL },
                { "sub", required_argument, NULL, ARG_SUB },
                { "since", required_argument, NULL, ARG_SINCE },
                { "json", no_argument, NULL, ARG_JSON },
                { "store", required_argument, NULL, ARG_STORE },
                { "key-file", required_argument, NULL, ARG_KEY_FILE },
                { "follow", no_argument, NULL, 'f' },
                { "lines", required_argument, NULL, 'n' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        struct key_source k = { .store = SECRETS_DEFAULT_STORE };
        struct filter f = { .json = arg_json };
        const char *dir = AUDIT_DEFAULT_DIR, *sub;
        bool allow_tail = false, follow = false;
        size_t lines = TAIL_DEFAULT_LINES;
        _cleanup_free_ char *since = NULL;
        int c;

        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h"))
                return help(argc < 2 ? stderr : stdout), argc < 2 ? 2 : 0;
        log_open("bastionctl");
        if (sodium_init() < 0)
                return log_error("libsodium failed to initialise"), 1;
        sub = argv[1];
        argc--, argv++;
        optind = 0;
        while ((c = getopt_long(argc, argv, "fn:h", options, NULL)) >= 0)
                switch (c) {
                case ARG_PUBKEY: k.pubkey_file = optarg; break;
                case ARG_DIR: dir = optarg; break;
                case ARG_ALLOW_TAIL: allow_tail = true; break;
                case ARG_SERVER: f.server = optarg; break;
                case ARG_TOOL: f.tool = optarg; break;
                case ARG_SUB: f.sub = optarg; break;
                case ARG_SINCE:
                        /* "2026-11-26 10:00" reads as 2026-11-26T10:00 (UTC). */
                        free(since);
                        since = strdup(optarg);
                        if (since && strchr(since, ' '))
                                *strchr(since, ' ') = 'T';
                        f.since = since;
                        break;
                case ARG_JSON: f.json = true; break;
                case ARG_STORE: k.store = optarg; break;
                case ARG_KEY_FILE: k.key_file = optarg; break;
                case 'f': follow = true; break;
                case 'n': lines = strtoul(optarg, NULL, 10); break;
                case 'h': return help(stdout), 0;
                default: return 2;
                }
        if (streq(sub, "verify"))
                return cmd_verify(&k, dir, allow_tail, argv + optind, (size_t) (argc - optind));
        if (streq(sub, "tail") && argc - optind <= 1)
                return cmd_tail(&f, dir, argc > optind ? argv[optind] : NULL, follow, lines);
        if (streq(sub, "pubkey") && argc == optind)
                return cmd_pubkey(&k);
        help(stderr);
        return 2;
}
