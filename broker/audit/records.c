/* The records the broker emits (bastion-audit(5) lists their members). Everything here is built from
 * typed values; nothing takes a secret or a token, so none can end up in the log. */
#include "config.h"

#include <string.h>

#include "audit-internal.h"
#include "bounds.h"
#include "jsonrpc.h"
#include "util.h"

static const char *const status_names[] = {
        [AUDIT_STATUS_OK] = "ok",
        [AUDIT_STATUS_ERROR] = "error",
        [AUDIT_STATUS_DENIED] = "denied",
        [AUDIT_STATUS_TIMEOUT] = "timeout",
};

static const char *const approval_types[] = {
        [AUDIT_APPROVAL_REQUESTED] = "approval.requested",
        [AUDIT_APPROVAL_GRANTED] = "approval.granted",
        [AUDIT_APPROVAL_DENIED] = "approval.denied",
        [AUDIT_APPROVAL_EXPIRED] = "approval.expired",
};

static const char *const worker_types[] = {
        [AUDIT_WORKER_START] = "worker.start",
        [AUDIT_WORKER_CRASH] = "worker.crash",
        [AUDIT_WORKER_ATTESTATION_FAILURE] = "worker.attestation_failure",
};

static const char *const task_types[] = {
        [AUDIT_TASK_CREATED] = "task.created",
        [AUDIT_TASK_UPDATED] = "task.updated",
        [AUDIT_TASK_CANCELLED] = "task.cancelled",
};

const char *audit_status_to_string(enum audit_status s) {
        return (unsigned) s < ELEMENTSOF(status_names) ? status_names[s] : NULL;
}

/* A string member from text a peer may have influenced (error messages, reasons): bounded, and
 * never the reason an audit record is lost, even if it is not UTF-8. */
static json_t *text(const char *s) {
        _cleanup_free_ char *ascii = NULL;
        size_t len = strnlen(s, BASTION_AUDIT_MAX_TEXT + 1);
        json_t *j;

        if (len > BASTION_AUDIT_MAX_TEXT) {
                len = BASTION_AUDIT_MAX_TEXT;
                while (len > 0 && ((unsigned char) s[len] & 0xc0) == 0x80)
                        len--;
        }
        j = json_stringn(s, len);
        if (j)
                return j;
        ascii = strndup(s, len);
        if (!ascii)
                return NULL;
        for (char *p = ascii; *p; p++)
                if ((unsigned char) *p >= 0x80)
                        *p = '?';
        return json_string(ascii);
}

/* Sets key to a string, or to null when s is NULL (absent and unknown read the same in the log). */
static int set_str(json_t *o, const char *key, const char *s) {
        return json_object_set_new(o, key, s ? text(s) : json_null()) < 0 ? -ENOMEM : 0;
}

static json_t *principal_json(const struct audit_principal *p) {
        json_t *o;

        if (!p)
                return json_null();
        o = json_object();
        if (!o || set_str(o, "sub", p->sub) < 0 ||
            json_object_set_new(o, "uid", p->uid >= 0 ? json_integer(p->uid) : json_null()) < 0 ||
            set_str(o, "tenant", p->tenant) < 0 || set_str(o, "role", p->role) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

static json_t *base(const struct audit_principal *p, const char *server, const char *tool) {
        json_t *o = json_object();

        if (!o || json_object_set_new(o, "principal", principal_json(p)) < 0 ||
            set_str(o, "server", server) < 0 || set_str(o, "tool", tool) < 0) {
                json_decref(o);
                return NULL;
        }
        return o;
}

/* Arguments are recorded verbatim up to a bound; past it, size and digest still pin down exactly
 * what was run without letting one call blow up the log. */
static json_t *arguments_json(const json_t *args) {
        const size_t flags = JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY;
        _cleanup_free_ char *s = NULL;
        char hash[AUDIT_HASH_HEX];
        size_t len;

        if (!args)
                return json_null();
        /* Sized without building the text; within the bound the record holds the caller's value itself
         * (a reference: nothing changes it before the record is written, and the caller keeps its own). */
        len = json_dump_size(args, flags);
        if (len == 0)
                return NULL;
        if (len <= BASTION_AUDIT_MAX_ARGUMENTS)
                return json_incref((json_t *) args);
        s = malloc(len);
        if (!s || json_dumpb(args, s, len, flags) != len)
                return NULL;
        audit_hash_hex(s, len, hash);
        return json_pack("{s:s, s:I, s:s}", "omitted", "too large", "bytes", (json_int_t) len, "blake2b", hash);
}

static int append_owned(struct audit_log *log, const char *type, json_t *o, unsigned flags, uint64_t *ret_seq) {
        int r;

        if (!o)
                return -ENOMEM;
        r = audit_append(log, type, o, flags, ret_seq);
        json_decref(o);
        return r;
}

int audit_call_intent(struct audit_log *log, const struct audit_principal *p, const char *server,
                      const char *tool, const json_t *arguments, const struct audit_approval *approval,
                      unsigned flags, uint64_t *ret_seq) {
        json_t *o = base(p, server, tool), *a = NULL;
        char now[AUDIT_TS_MAX];

        if (o && json_object_set_new(o, "arguments", arguments_json(arguments)) < 0)
                goto fail;
        if (o && approval) {
                if (!approval->when)
                        audit_format_ts(now);
                a = json_object();
                if (!a || set_str(a, "who", approval->who) < 0 || set_str(a, "how", approval->how) < 0 ||
                    set_str(a, "when", approval->when ?: now) < 0)
                        goto fail;
        }
        if (o && json_object_set_new(o, "approval", a ?: json_null()) < 0) {
                a = NULL;
                goto fail;
        }
        return append_owned(log, "call.intent", o, flags, ret_seq);
fail:
        json_decref(a);
        json_decref(o);
        return -ENOMEM;
}

int audit_call_result(struct audit_log *log, uint64_t intent_seq, const struct audit_principal *p,
                      const char *server, const char *tool, enum audit_status status,
                      const char *error, uint64_t result_bytes, unsigned flags) {
        json_t *o = base(p, server, tool);

        if (!audit_status_to_string(status))
                return json_decref(o), -EINVAL;
        if (o && (json_object_set_new(o, "intent_seq", json_integer((json_int_t) intent_seq)) < 0 ||
                  set_str(o, "status", audit_status_to_string(status)) < 0 || set_str(o, "error", error) < 0 ||
                  json_object_set_new(o, "result_bytes", json_integer((json_int_t) result_bytes)) < 0))
                return json_decref(o), -ENOMEM;
        return append_owned(log, "call.result", o, flags, NULL);
}

int audit_denial(struct audit_log *log, const struct audit_principal *p, const char *server,
                 const char *tool, const char *reason) {
        json_t *o = base(p, server, tool);

        if (o && set_str(o, "reason", reason) < 0)
                return json_decref(o), -ENOMEM;
        return append_owned(log, "call.denied", o, AUDIT_BATCHED, NULL);
}

int audit_auth_failure(struct audit_log *log, const char *who, const char *reason) {
        json_t *o = json_object();

        if (o && (set_str(o, "who", who) < 0 || set_str(o, "reason", reason) < 0))
                return json_decref(o), -ENOMEM;
        return append_owned(log, "auth.failure", o, AUDIT_BATCHED, NULL);
}

int audit_approval_event(struct audit_log *log, enum audit_approval_event ev, const char *approval_id,
                         const struct audit_principal *requester, const char *server, const char *tool,
                         const char *decided_by) {
        json_t *o;

        if ((unsigned) ev >= ELEMENTSOF(approval_types))
                return -EINVAL;
        o = base(requester, server, tool);
        if (o && (set_str(o, "approval_id", approval_id) < 0 || set_str(o, "decided_by", decided_by) < 0))
                return json_decref(o), -ENOMEM;
        /* A grant lets a side effect happen: it is on disk before anyone acts on it. */
        return append_owned(log, approval_types[ev], o, ev == AUDIT_APPROVAL_GRANTED ? AUDIT_DURABLE : AUDIT_BATCHED, NULL);
}

int audit_worker_event(struct audit_log *log, enum audit_worker_event ev, const char *server,
                       uint64_t generation, const char *detail) {
        json_t *o;

        if ((unsigned) ev >= ELEMENTSOF(worker_types))
                return -EINVAL;
        o = json_object();
        if (o && (set_str(o, "server", server) < 0 ||
                  json_object_set_new(o, "generation", json_integer((json_int_t) generation)) < 0 ||
                  set_str(o, "detail", detail) < 0))
                return json_decref(o), -ENOMEM;
        return append_owned(log, worker_types[ev], o, AUDIT_BATCHED, NULL);
}

int audit_task_event(struct audit_log *log, enum audit_task_event ev, const struct audit_principal *p,
                     const char *server, const char *tool, const char *task_id, const char *detail) {
        json_t *o;

        if ((unsigned) ev >= ELEMENTSOF(task_types))
                return -EINVAL;
        o = base(p, server, tool);
        if (o && (set_str(o, "task_id", task_id) < 0 || set_str(o, "detail", detail) < 0))
                return json_decref(o), -ENOMEM;
        return append_owned(log, task_types[ev], o, AUDIT_BATCHED, NULL);
}

int audit_config_reload(struct audit_log *log, const char *path, bool ok, const char *detail) {
        json_t *o = json_object();

        if (o && (set_str(o, "path", path) < 0 || json_object_set_new(o, "ok", json_boolean(ok)) < 0 ||
                  set_str(o, "detail", detail) < 0))
                return json_decref(o), -ENOMEM;
        return append_owned(log, "config.reload", o, AUDIT_BATCHED, NULL);
}

int audit_credential_handed(struct audit_log *log, const char *server, const char *credential_name) {
        json_t *o = json_object();

        if (o && (set_str(o, "server", server) < 0 || set_str(o, "credential", credential_name) < 0))
                return json_decref(o), -ENOMEM;
        return append_owned(log, "credential.handed", o, AUDIT_BATCHED, NULL);
}
