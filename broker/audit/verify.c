/* The audit verifier: re-derives every hash, the sequence, the chain across rotated files and every
 * checkpoint signature from the files alone and the public key, and names the first bad record. */
#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <sodium.h>

#include "audit-internal.h"
#include "bounds.h"
#include "util.h"

static const char *const error_names[] = {
        [AUDIT_VERIFY_OK] = "ok",
        [AUDIT_VERIFY_MALFORMED] = "malformed record",
        [AUDIT_VERIFY_TRUNCATED] = "truncated",
        [AUDIT_VERIFY_HASH_MISMATCH] = "hash mismatch",
        [AUDIT_VERIFY_SEQUENCE_GAP] = "sequence gap",
        [AUDIT_VERIFY_PREV_MISMATCH] = "prev mismatch",
        [AUDIT_VERIFY_BAD_LINK] = "bad link",
        [AUDIT_VERIFY_BAD_SIGNATURE] = "bad signature",
        [AUDIT_VERIFY_UNVOUCHED] = "unvouched records",
        [AUDIT_VERIFY_EMPTY] = "empty file",
};

const char *audit_verify_error_to_string(enum audit_verify_error e) {
        return (unsigned) e < ELEMENTSOF(error_names) ? error_names[e] : "unknown";
}

/* One record's members after parsing; strings point into the parsed JSON. */
struct rec {
        uint64_t seq;
        const char *ts, *type, *prev, *hash;
        json_t *json;
};

struct verifier {
        const uint8_t *pubkey;
        struct audit_verify_report *rep;
        bool started;
        uint64_t seq;                   /* last good record */
        char prev[AUDIT_HASH_HEX];      /* hash of the last good line */
        /* The first record after the last checkpoint, for the unvouched-tail report. */
        const char *tail_file;
        unsigned long tail_line;
        uint64_t tail_seq;
};

static int fail(struct verifier *v, enum audit_verify_error e, uint64_t seq, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int fail(struct verifier *v, enum audit_verify_error e, uint64_t seq, const char *fmt, ...) {
        va_list ap;

        v->rep->error = e;
        v->rep->seq = seq;
        va_start(ap, fmt);
        vsnprintf(v->rep->reason, sizeof(v->rep->reason), fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

static bool is_hex(const char *s, size_t len) {
        if (!s || strlen(s) != len)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        return true;
}

static int parse(struct verifier *v, const char *line, size_t len, struct rec *r) {
        json_error_t err;
        json_t *seq;

        r->json = json_loadb(line, len, JSON_REJECT_DUPLICATES, &err);
        if (!json_is_object(r->json))
                return fail(v, AUDIT_VERIFY_MALFORMED, 0, "not a JSON object: %s", r->json ? "wrong type" : err.text);
        seq = json_object_get(r->json, "seq");
        r->seq = json_is_integer(seq) && json_integer_value(seq) > 0 ? (uint64_t) json_integer_value(seq) : 0;
        r->ts = json_string_value(json_object_get(r->json, "ts"));
        r->type = json_string_value(json_object_get(r->json, "type"));
        r->prev = json_string_value(json_object_get(r->json, "prev"));
        r->hash = json_string_value(json_object_get(r->json, "hash"));
        if (r->seq == 0 || !r->ts || !r->type || !is_hex(r->prev, 64) || !is_hex(r->hash, 64))
                return fail(v, AUDIT_VERIFY_MALFORMED, r->seq, "missing or invalid seq, ts, type, prev or hash");
        return 0;
}

/* The hashed body is the line without its final ,"hash":"…" member (which must be last). */
static int check_hash(struct verifier *v, const char *line, size_t len, const struct rec *r) {
        size_t suffix = strlen(AUDIT_HASH_MEMBER) + 64 + 2;
        _cleanup_free_ char *body = NULL;
        char h[AUDIT_HASH_HEX];

        if (len < suffix + 2 || memcmp(line + len - suffix, AUDIT_HASH_MEMBER, strlen(AUDIT_HASH_MEMBER)) != 0 ||
            memcmp(line + len - 66, r->hash, 64) != 0 || memcmp(line + len - 2, "\"}", 2) != 0)
                return fail(v, AUDIT_VERIFY_MALFORMED, r->seq, "the hash member is not the last member");
        body = malloc(len - suffix + 1);
        if (!body)
                return -ENOMEM;
        memcpy(body, line, len - suffix);
        body[len - suffix] = '}';
        audit_hash_hex(body, len - suffix + 1, h);
        if (!streq(h, r->hash))
                return fail(v, AUDIT_VERIFY_HASH_MISMATCH, r->seq, "record hash %.16s… does not match its content (%.16s…)", r->hash, h);
        return 0;
}

static int check_chain(struct verifier *v, const struct rec *r, bool first_in_file) {
        static const char zero[AUDIT_HASH_HEX] = "0000000000000000000000000000000000000000000000000000000000000000";
        json_t *pseq;

        if (!v->started) {
                v->rep->first_seq = r->seq;
                v->rep->anchored = r->seq == 1;
                if (r->seq == 1 && !streq(r->prev, zero))
                        return fail(v, AUDIT_VERIFY_PREV_MISMATCH, r->seq, "the first record's prev is not zero");
                if (r->seq != 1 && !streq(r->type, "link"))
                        return fail(v, AUDIT_VERIFY_BAD_LINK, r->seq, "the chain starts at seq %" PRIu64 " without a link record", r->seq);
                return 0;
        }
        if (first_in_file) {
                pseq = json_object_get(r->json, "prev_seq");
                if (!streq(r->type, "link"))
                        return fail(v, AUDIT_VERIFY_BAD_LINK, r->seq, "the file does not start with a link record");
                if (!json_is_integer(pseq) || (uint64_t) json_integer_value(pseq) != v->seq)
                        return fail(v, AUDIT_VERIFY_BAD_LINK, r->seq, "link names prev_seq other than %" PRIu64 ", the previous file's last record", v->seq);
        }
        if (r->seq != v->seq + 1)
                return fail(v, AUDIT_VERIFY_SEQUENCE_GAP, r->seq, "expected seq %" PRIu64 ", found %" PRIu64 "%s",
                            v->seq + 1, r->seq, r->seq <= v->seq ? " (duplicate or reordered record)" : " (records missing)");
        if (!streq(r->prev, v->prev))
                return fail(v, first_in_file ? AUDIT_VERIFY_BAD_LINK : AUDIT_VERIFY_PREV_MISMATCH, r->seq,
                            "prev does not match the hash of the record before it");
        return 0;
}

static int check_signature(struct verifier *v, const struct rec *r) {
        const char *sighex = json_string_value(json_object_get(r->json, "sig"));
        char msg[AUDIT_CHECKPOINT_MSG_MAX];
        uint8_t sig[crypto_sign_BYTES];

        if (!is_hex(sighex, crypto_sign_BYTES * 2) ||
            sodium_hex2bin(sig, sizeof(sig), sighex, strlen(sighex), NULL, NULL, NULL) < 0)
                return fail(v, AUDIT_VERIFY_MALFORMED, r->seq, "checkpoint without a valid sig member");
        audit_checkpoint_message(r->seq, r->ts, r->prev, msg);
        if (crypto_sign_verify_detached(sig, (const uint8_t *) msg, strlen(msg), v->pubkey) < 0)
                return fail(v, AUDIT_VERIFY_BAD_SIGNATURE, r->seq, "checkpoint signature does not verify with the given public key");
        return 0;
}

static int check_line(struct verifier *v, const char *path, unsigned long lineno, const char *line, size_t len, bool first_in_file) {
        struct rec r = {};
        int ret;

        ret = parse(v, line, len, &r);
        if (ret >= 0)
                ret = check_hash(v, line, len, &r);
        if (ret >= 0)
                ret = check_chain(v, &r, first_in_file);
        if (ret >= 0 && streq(r.type, "checkpoint"))
                ret = check_signature(v, &r);
        if (ret >= 0) {
                v->started = true;
                v->seq = r.seq;
                audit_hash_hex(line, len, v->prev);
                v->rep->n_records++;
                v->rep->last_seq = r.seq;
                if (streq(r.type, "checkpoint")) {
                        v->rep->n_checkpoints++;
                        v->rep->last_checkpoint_seq = r.seq;
                        v->rep->unvouched = 0;
                } else if (v->rep->unvouched++ == 0) {
                        v->tail_file = path;
                        v->tail_line = lineno;
                        v->tail_seq = r.seq;
                }
        }
        json_decref(r.json);
        return ret;
}

static int verify_buffer(struct verifier *v, const char *path, const char *data, size_t size) {
        unsigned long lineno = 0;
        size_t off = 0;
        int r;

        if (size == 0) {
                v->rep->file = path;
                v->rep->line = 1;
                return fail(v, AUDIT_VERIFY_EMPTY, 0, "the file holds no records");
        }
        while (off < size) {
                const char *nl = memchr(data + off, '\n', size - off);
                size_t len = nl ? (size_t) (nl - (data + off)) : size - off;

                v->rep->file = path;
                v->rep->line = ++lineno;
                if (!nl)
                        return fail(v, AUDIT_VERIFY_TRUNCATED, 0, "the last line is incomplete (%zu bytes without a newline)", len);
                if (len > BASTION_AUDIT_MAX_RECORD)
                        return fail(v, AUDIT_VERIFY_MALFORMED, 0, "line longer than %d bytes", BASTION_AUDIT_MAX_RECORD);
                r = check_line(v, path, lineno, data + off, len, lineno == 1);
                if (r < 0)
                        return r;
                off += len + 1;
        }
        return 0;
}

static int verify_file(struct verifier *v, const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        void *p;
        int r;

        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if (st.st_size == 0)
                return verify_buffer(v, path, "", 0);
        p = mmap(NULL, (size_t) st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        r = verify_buffer(v, path, p, (size_t) st.st_size);
        munmap(p, (size_t) st.st_size);
        return r;
}

int audit_verify(char *const *paths, size_t n, const uint8_t pubkey[AUDIT_PUBKEY_BYTES], unsigned flags,
                 struct audit_verify_report *report) {
        struct verifier v = { .pubkey = pubkey, .rep = report };
        int r;

        *report = (struct audit_verify_report) {};
        if (n == 0)
                return fail(&v, AUDIT_VERIFY_EMPTY, 0, "no audit files given");
        for (size_t i = 0; i < n; i++) {
                r = verify_file(&v, paths[i]);
                if (r < 0) {
                        if (r != -EBADMSG)
                                report->file = paths[i];
                        return r;
                }
        }
        report->file = NULL;
        report->line = 0;
        if (report->unvouched > 0 && !(flags & AUDIT_VERIFY_ALLOW_TAIL)) {
                report->file = v.tail_file;
                report->line = v.tail_line;
                return fail(&v, AUDIT_VERIFY_UNVOUCHED, v.tail_seq,
                            "%" PRIu64 " record(s) after the last checkpoint (seq %" PRIu64 ") cannot be vouched for",
                            report->unvouched, report->last_checkpoint_seq);
        }
        return 0;
}
