/* What the broker writes to the audit log, and the secrets it holds: the glue between the event
 * loop and broker/audit (the log) and broker/secrets (the store). Every record is written before
 * the action it describes is taken or its result is shown to anyone; a log that cannot be written
 * stops calls (fail closed). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "broker/audit/audit.h"
#include "broker/broker.h"
#include "broker/secrets/store.h"
#include "chan.h"
#include "jsonrpc.h"
#include "log.h"
#include "util.h"

#define DEFAULT_AUDIT_DIR AUDIT_DEFAULT_DIR

/* First start on a fresh host: like ssh-keygen -A, create the store key, the store and the audit
 * signing key, so the audit log is signed from the first record. Never overwrites anything. Runs in
 * `bastion-broker --first-start`, a short-lived uid-0 process without capabilities that bastiond
 * starts when the store does not exist: the broker proper opens no secret file by path. */
int record_first_start(const char *store_path, const char *key_file_opt) {
        _cleanup_(secrets_store_freep) struct secrets_store *store = NULL;
        _cleanup_secret_ struct secret *key = NULL;
        const char *key_file = key_file_opt ? key_file_opt : SECRETS_DEFAULT_KEY_FILE;
        uint8_t seed[AUDIT_SEED_BYTES];
        int r;

        r = secrets_key_load(key_file_opt, &key);
        if (r == -ENOENT) {
                _cleanup_free_ char *dir = strdup(key_file);
                /* The key's directory is root's alone (0700); created on first start if missing. */
                if (!dir)
                        return log_oom();
                if (strrchr(dir, '/') && strrchr(dir, '/') != dir) {
                        *strrchr(dir, '/') = '\0';
                        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                                return log_error_errno(errno, "Failed to create %s: %m", dir);
                }
                r = secrets_key_create(key_file);
                if (r < 0)
                        return log_error_errno(r, "Failed to create the secrets key %s: %m", key_file);
                log_notice("created the secrets key %s", key_file);
                r = secrets_key_load(key_file_opt, &key);
        }
        if (r < 0)
                return log_error_errno(r, "Failed to load the secrets key: %m");
        r = secrets_store_open(store_path, key, true, &store);
        if (r < 0)
                return log_error_errno(r, "Failed to create the secrets store %s: %m", store_path);
        if (secrets_store_count(store) > 0) {
                log_info("the secrets store %s exists; leaving it", store_path);
                return 0;
        }
        randombytes_buf(seed, sizeof(seed));
        r = secrets_store_set(store, AUDIT_SIGNING_KEY_NAME, seed, sizeof(seed));
        sodium_memzero(seed, sizeof(seed));
        if (r >= 0)
                r = secrets_store_save(store);
        if (r < 0)
                return log_error_errno(r, "Failed to store the audit signing key: %m");
        log_notice("created the secrets store %s with a new audit signing key", store_path);
        return 0;
}

static bool name_reserved(const char *name) {
        return strncmp(name, SECRETS_RESERVED_PREFIX, strlen(SECRETS_RESERVED_PREFIX)) == 0;
}

int record_secret_file(struct broker *b, struct chan_msg *m) {
        const char *what = NULL, *name = NULL;
        int credential = 0, err = 0;
        struct secret_file *f;

        if (json_unpack(m->payload, "{s:s, s:s, s?b, s?i}", "what", &what, "name", &name, "credential", &credential,
                        "errno", &err) < 0 ||
            (!streq(what, "key") && !streq(what, "store") && !streq(what, "credential")) ||
            (m->n_fds == 0) != (err > 0))
                return -EBADMSG;
        f = calloc(1, sizeof(*f));
        if (!f || !(f->what = strdup(what)) || !(f->name = strdup(name))) {
                if (f)
                        free(f->what);
                free(f);
                return log_oom();
        }
        f->credential = credential;
        f->err = err;
        f->fd = m->n_fds > 0 ? chan_msg_take_fd(m, 0) : -1;
        f->next = b->secret_files;
        b->secret_files = f;
        return 0;
}

static void secret_files_free(struct broker *b) {
        for (struct secret_file *f = b->secret_files, *n; f; f = n) {
                n = f->next;
                safe_close(f->fd);
                free(f->what);
                free(f->name);
                free(f);
        }
        b->secret_files = NULL;
}

static struct secret_file *secret_file_get(struct broker *b, const char *what) {
        for (struct secret_file *f = b->secret_files; f; f = f->next)
                if (streq(f->what, what))
                        return f;
        return NULL;
}

/* Plain systemd credentials by name win over store entries of the same name. bastiond opened the
 * ones the configuration hands to workers; they are read now, before the lockdown, into the
 * in-memory store (never saved), which is all the broker looks at once it is locked down. */
static void credentials_import(struct broker *b) {
        for (struct secret_file *f = b->secret_files; f; f = f->next) {
                _cleanup_secret_ struct secret *v = NULL;
                int r;

                if (!streq(f->what, "credential") || f->fd < 0 || !secrets_name_valid(f->name) ||
                    name_reserved(f->name))
                        continue;
                r = secrets_credential_load_fd(f->fd, &v);
                if (r >= 0)
                        r = secrets_store_set(b->store, f->name, v->data, v->size);
                if (r < 0)
                        log_warning_errno(r, "Cannot take systemd credential %s: %m", f->name);
                else
                        log_info("credential %s from $CREDENTIALS_DIRECTORY", f->name);
        }
}

static int secrets_open(struct broker *b) {
        _cleanup_secret_ struct secret *key = NULL;
        struct secret_file *kf = secret_file_get(b, "key"), *sf = secret_file_get(b, "store");
        int r;

        if (!kf || !sf)
                return log_error_errno(EPROTO, "The supervisor passed no secrets %s", kf ? "store" : "key");
        if (sf->fd < 0 && sf->err == ENOENT)
                return log_error_errno(ENOENT, "No secrets store %s: `bastionctl secrets init` creates it "
                                       "(bastiond does on a first start)", sf->name);
        if (kf->fd < 0 && kf->err == ENOENT)
                return log_error_errno(ENOENT, "No secrets key %s for the store %s: restore it, or start over "
                                       "with `bastionctl secrets init` (a new key cannot read the old store)",
                                       kf->name, sf->name);
        if (kf->fd < 0)
                return log_error_errno(kf->err, "Cannot open the secrets key %s: %m", kf->name);
        r = secrets_key_load_fd(kf->fd, kf->name, kf->credential, &key);
        if (r < 0)
                return r;
        if (sf->fd < 0)
                return log_error_errno(sf->err, "Failed to open the secrets store %s: %m", sf->name);
        r = secrets_store_open_fd(sf->fd, sf->name, key, &b->store);
        if (r < 0)
                return log_error_errno(r, "Failed to open the secrets store %s: %m", sf->name);
        credentials_import(b);
        return 0;
}

int record_open(struct broker *b) {
        const struct bastion_config *cfg = &b->config;
        _cleanup_secret_ struct secret *seed = NULL;
        uint8_t pub[AUDIT_PUBKEY_BYTES];
        char pub_hex[AUDIT_PUBKEY_HEX];
        int r;

        r = secrets_open(b);
        secret_files_free(b);
        if (r < 0)
                return r;
        r = secrets_store_get(b->store, AUDIT_SIGNING_KEY_NAME, &seed);
        if (r < 0 || seed->size != AUDIT_SEED_BYTES)
                return log_error_errno(r < 0 ? r : EBADMSG, "The secrets store has no usable %s: %m "
                                       "(bastionctl secrets init creates one)", AUDIT_SIGNING_KEY_NAME);
        r = audit_open(&(struct audit_options) {
                               .dir = cfg->audit_dir ? cfg->audit_dir : DEFAULT_AUDIT_DIR,
                               .seed = seed->data,
                               .journal = cfg->audit_journal,
                       }, &b->audit);
        if (r < 0)
                return log_error_errno(r, "Failed to open the audit log in %s: %m",
                                       cfg->audit_dir ? cfg->audit_dir : DEFAULT_AUDIT_DIR);
        r = audit_attach_event(b->audit, b->event);
        if (r < 0)
                return log_error_errno(r, "Failed to schedule audit commits: %m");
        audit_pubkey(b->audit, pub);
        sodium_bin2hex(pub_hex, sizeof(pub_hex), pub, sizeof(pub));
        log_info("audit log %s, signing key %s", audit_current_path(b->audit), pub_hex);
        return 0;
}

void record_close(struct broker *b) {
        int r = audit_close(b->audit);

        secret_files_free(b);
        if (r < 0)
                log_error_errno(r, "Closing the audit log failed: %m");
        b->audit = NULL;
        secrets_store_free(b->store);
        b->store = NULL;
}

/* A failed append is fatal for the log (it stays failed); say so once, loudly. */
static int record_check(struct broker *b, int r, const char *what) {
        if (r < 0 && !b->audit_failed) {
                b->audit_failed = true;
                log_error_errno(r, "AUDIT LOG WRITE FAILED (%s): %m; calls are refused from now on", what);
        }
        return r;
}

/* Token callers are recorded by their sub, never by their token. */
static struct audit_principal principal_of(const struct broker *b, const struct principal *p) {
        return (struct audit_principal) {
                .sub = p->sub,
                .uid = p->source == PRINCIPAL_LOCAL ? (int64_t) p->uid : -1,
                .tenant = principal_tenant(&b->config, p),
                .role = principal_role_name(&b->config, p),
        };
}

int record_intent(struct broker *b, struct call *call, const struct client *c, const json_t *arguments,
                  const json_t *approval, bool side_effect) {
        struct audit_principal p = principal_of(b, &c->principal);
        struct audit_approval a = {
                .who = json_string_value(json_object_get(approval, "who")),
                .how = json_string_value(json_object_get(approval, "how")),
        };

        if (!b->audit)
                return -ENOTCONN;
        return record_check(b, audit_call_intent(b->audit, &p, call->up->name, call->tool, arguments,
                                                 json_is_object(approval) ? &a : NULL, side_effect ? AUDIT_DURABLE : AUDIT_BATCHED,
                                                 &call->intent_seq), "call intent");
}

void record_result(struct broker *b, const struct call *call, const json_t *msg) {
        const json_t *result = json_object_get(msg, "result"), *error = json_object_get(msg, "error");
        struct audit_principal p;
        enum audit_status status = AUDIT_STATUS_OK;
        const char *text = NULL;
        size_t bytes = 0;

        if (!b->audit || !call->intent_seq)
                return;
        p = call->client ? principal_of(b, &call->client->principal) : (struct audit_principal) { .uid = -1 };
        if (error) {
                json_int_t code = json_integer_value(json_object_get(error, "code"));
                status = code == BASTION_ERROR_TIMEOUT ? AUDIT_STATUS_TIMEOUT : AUDIT_STATUS_ERROR;
                text = json_string_value(json_object_get(error, "message"));
        } else if (json_is_true(json_object_get(result, "isError"))) {
                status = AUDIT_STATUS_ERROR;
                text = json_string_value(json_object_get(json_array_get(json_object_get(result, "content"), 0),
                                                         "text"));
        } else if (!msg)
                text = "cancelled: the client went away or cancelled";
        /* Its size as compact JSON: counted without building the text. */
        if (msg)
                bytes = json_dump_size(result ? result : error, JSON_COMPACT);
        /* A side effect's result is on disk before the client hears of it: whatever a client was told
         * happened is in the log even after a power loss (docs/audit-secrets.md). Other results are
         * written before the answer and synced by the next group commit. */
        record_check(b, audit_call_result(b->audit, call->intent_seq, &p, call->up->name, call->tool,
                                          msg ? status : AUDIT_STATUS_ERROR, text, bytes,
                                          call->side_effect ? AUDIT_DURABLE : AUDIT_BATCHED), "call result");
}

void record_denial_as(struct broker *b, const struct principal *who, const char *server, const char *tool,
                      const char *reason) {
        struct audit_principal p = principal_of(b, who);

        if (b->audit)
                record_check(b, audit_denial(b->audit, &p, server, tool, reason), "denial");
}

void record_denial(struct broker *b, const struct client *c, const char *tool, const char *reason) {
        record_denial_as(b, &c->principal, c->server, tool, reason);
}

void record_approval(struct broker *b, int ev, const char *id, const struct principal *who,
                     const char *server, const char *tool, const char *decided_by) {
        struct audit_principal p = principal_of(b, who);

        if (b->audit)
                record_check(b, audit_approval_event(b->audit, ev, id, &p, server, tool, decided_by), "approval");
}

void record_task(struct broker *b, int ev, const struct principal *who, const char *server, const char *tool,
                 const char *task_id, const char *detail) {
        struct audit_principal p = principal_of(b, who);

        if (b->audit)
                record_check(b, audit_task_event(b->audit, ev, &p, server, tool, task_id, detail), "task");
}

void record_worker(struct broker *b, bool up, const char *server, uint64_t generation, const char *detail) {
        if (b->audit)
                record_check(b, audit_worker_event(b->audit, up ? AUDIT_WORKER_START : AUDIT_WORKER_CRASH, server,
                                                   generation, detail), "worker event");
}

void record_auth_failure(struct broker *b, const char *who, const char *reason) {
        if (b->audit)
                record_check(b, audit_auth_failure(b->audit, who, reason), "authentication failure");
}

void record_reload(struct broker *b, bool ok, const char *detail) {
        if (!b->audit)
                return;
        record_check(b, audit_config_reload(b->audit, b->config.path, ok, detail), "reload");
        /* A reload (SIGHUP) also starts a new log file, linked to the last. */
        record_check(b, audit_rotate(b->audit), "rotation");
}

/* CHAN_CREDENTIAL_REQ: the supervisor is about to start a worker. Which secret it gets comes from our
 * configuration, never from the request; the value leaves this process only inside a sealed memfd,
 * and the audit log gets its name (never the value) before it leaves. */
static const char *credential_open_for(struct broker *b, const struct server_config *sc, int *ret_fd) {
        _cleanup_secret_ struct secret *value = NULL;
        int r;

        if (!sc || !sc->credential)
                return "no credential is configured for this server";
        /* The store also holds Bastion's own keys (the audit signing key): never a worker's. */
        if (name_reserved(sc->credential))
                return "names starting with " SECRETS_RESERVED_PREFIX " are reserved";
        if (!b->store)
                return "the secrets store is not open";
        /* The store alone: systemd credentials were imported into it before the lockdown. */
        r = secrets_store_get(b->store, sc->credential, &value);
        if (r == -ENOENT)
                return "no secret of that name in the secrets store";
        if (r >= 0)
                r = secret_sealed_memfd(value, sc->credential, ret_fd);
        if (r < 0)
                return "the secret cannot be read";
        return NULL;
}

int record_credential_request(struct broker *b, uint32_t id, json_t *payload) {
        const struct server_config *sc;
        _cleanup_close_ int fd = -1;
        _cleanup_json_ json_t *reply = NULL;
        const char *server, *error;
        json_int_t generation;
        int r;

        if (json_unpack(payload, "{s:s, s:I}", "server", &server, "generation", &generation) < 0)
                return -EBADMSG;
        sc = config_find_server(&b->config, server);
        error = credential_open_for(b, sc, &fd);
        if (!error && (!b->audit || record_check(b, audit_credential_handed(b->audit, server, sc->credential),
                                                 "credential handed") < 0)) {
                fd = safe_close(fd);
                error = "the audit log cannot be written";
        }
        reply = json_pack("{s:s, s:I}", "server", server, "generation", generation);
        if (!reply || (sc && sc->credential && json_object_set_new(reply, "name", json_string(sc->credential)) < 0) ||
            (error && json_object_set_new(reply, "error", json_string(error)) < 0))
                return log_oom();
        r = chan_send(b->sup_fd, CHAN_CREDENTIAL, id, reply, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
        if (r < 0)
                return log_error_errno(r, "Cannot send the credential of worker %s: %m", server);
        if (error)
                log_warning("no credential for worker %s (generation %lld): %s", server, (long long) generation, error);
        else
                log_info("credential %s handed to worker %s (generation %lld)", sc->credential, server,
                         (long long) generation);
        return 0;
}
