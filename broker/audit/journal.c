/* Optional mirror of audit records to the journal, with structured fields (BASTION_AUDIT_*), so
 * `journalctl BASTION_AUDIT_TOOL=release_payment` works. The file stays the record of truth. */
#include "config.h"

#include <ctype.h>
#include <inttypes.h>
#include <string.h>
#include <sys/uio.h>

#include <systemd/sd-journal.h>

#include "audit-internal.h"
#include "util.h"

#define JOURNAL_MAX_FIELDS 24
#define JOURNAL_FIELD_MAX 256

struct fields {
        struct iovec iov[JOURNAL_MAX_FIELDS];
        char buf[JOURNAL_MAX_FIELDS][JOURNAL_FIELD_MAX];
        unsigned n;
};

/* Journal field names are [A-Z0-9_]; anything else in a member name becomes '_'. */
static void add(struct fields *f, const char *prefix, const char *key, const char *value) {
        char *b;
        int k;

        if (f->n >= JOURNAL_MAX_FIELDS)
                return;
        b = f->buf[f->n];
        k = snprintf(b, JOURNAL_FIELD_MAX, "BASTION_AUDIT_%s%s", prefix, key);
        if (k < 0 || k >= JOURNAL_FIELD_MAX - 2)
                return;
        for (char *p = b; *p; p++)
                *p = isalnum((unsigned char) *p) ? (char) toupper((unsigned char) *p) : '_';
        snprintf(b + k, JOURNAL_FIELD_MAX - (size_t) k, "=%s", value);
        f->iov[f->n++] = (struct iovec) { .iov_base = b, .iov_len = strlen(b) };
}

static void add_scalar(struct fields *f, const char *prefix, const char *key, json_t *v) {
        char num[32];

        if (json_is_string(v))
                add(f, prefix, key, json_string_value(v));
        else if (json_is_integer(v)) {
                snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                add(f, prefix, key, num);
        } else if (json_is_boolean(v))
                add(f, prefix, key, json_is_true(v) ? "true" : "false");
}

void audit_journal_mirror(uint64_t seq, const char *type, json_t *fields, const char *line, size_t len) {
        struct fields f = { .n = 0 };
        struct iovec all[JOURNAL_MAX_FIELDS + 3];
        char msg[JOURNAL_FIELD_MAX], seqs[32];
        _cleanup_free_ char *record = NULL;
        const char *key, *k2;
        json_t *v, *v2;

        snprintf(seqs, sizeof(seqs), "%" PRIu64, seq);
        add(&f, "", "SEQ", seqs);
        add(&f, "", "TYPE", type);
        json_object_foreach(fields, key, v) {
                if (json_is_object(v)) {
                        char prefix[64];

                        snprintf(prefix, sizeof(prefix), "%s_", key);
                        json_object_foreach(v, k2, v2)
                                add_scalar(&f, prefix, k2, v2);
                } else
                        add_scalar(&f, "", key, v);
        }
        memcpy(all, f.iov, f.n * sizeof(struct iovec));
        snprintf(msg, sizeof(msg), "MESSAGE=audit %s seq=%" PRIu64, type, seq);
        all[f.n] = (struct iovec) { .iov_base = msg, .iov_len = strlen(msg) };
        all[f.n + 1] = (struct iovec) { .iov_base = (char *) "PRIORITY=6", .iov_len = 10 };
        if (asprintf(&record, "BASTION_AUDIT_RECORD=%.*s", (int) len, line) < 0)
                record = NULL;
        all[f.n + 2] = (struct iovec) { .iov_base = record ?: (char *) "BASTION_AUDIT_RECORD=", .iov_len = record ? strlen(record) : 21 };
        /* Best effort: a journal that is down must not stop auditing to the file. */
        (void) sd_journal_sendv(all, (int) f.n + 3);
}
