/* The tamper-evident audit log (DESIGN §7, bastion-audit(5)): hash-chained JSON lines with signed
 * checkpoints, written by the broker from its event loop; and the verifier bastionctl uses.
 *
 * Event-loop contract: nothing here blocks except the write(2) of a record and the fdatasync(2)
 * of AUDIT_DURABLE records (and of audit_flush()/audit_tick() when a group commit is due). Either
 * the caller re-arms one timer to audit_next_deadline() after every append or tick, or it lets
 * audit_attach_event() do exactly that on its sd-event loop. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#define AUDIT_HASH_BYTES 32                     /* BLAKE2b-256 */
#define AUDIT_HASH_HEX (AUDIT_HASH_BYTES * 2 + 1)
#define AUDIT_SEED_BYTES 32                     /* Ed25519 seed */
#define AUDIT_PUBKEY_BYTES 32
#define AUDIT_PUBKEY_HEX (AUDIT_PUBKEY_BYTES * 2 + 1)
#define AUDIT_SIGNING_KEY_NAME "bastion.audit-signing-key"
#define AUDIT_DEFAULT_DIR "/var/log/bastion/audit"
/* Prefix of the message a checkpoint signs; the version lets the format change without ambiguity. */
#define AUDIT_CHECKPOINT_DOMAIN "bastion-audit/1 checkpoint"

enum audit_flags {
        AUDIT_BATCHED = 0,              /* written now, fdatasync'd by the next group commit */
        AUDIT_DURABLE = 1 << 0,         /* written and fdatasync'd before audit_append() returns */
};

struct audit_options {
        const char *dir;                        /* directory of audit-<seq>.jsonl files */
        const uint8_t *seed;                    /* AUDIT_SEED_BYTES; copied into guarded memory */
        unsigned checkpoint_records;            /* 0 = BASTION_AUDIT_CHECKPOINT_RECORDS */
        unsigned checkpoint_sec;                /* 0 = BASTION_AUDIT_CHECKPOINT_SEC */
        unsigned group_commit_ms;               /* 0 = BASTION_AUDIT_GROUP_COMMIT_MS */
        uint64_t rotate_bytes;                  /* 0 = BASTION_AUDIT_ROTATE_BYTES */
        bool journal;                           /* also send each record to the journal */
};

struct audit_log;

/* Opens (or creates) the log in opts->dir, recovers a torn tail, and appends a "start" record. */
int audit_open(const struct audit_options *opts, struct audit_log **ret);
/* Writes a "close" checkpoint, syncs and frees. Safe with NULL. Returns the first error seen. */
int audit_close(struct audit_log *log);
static inline void audit_closep(struct audit_log **l) { audit_close(*l); *l = NULL; }

/* Appends one record of `type` with the members of `fields` (borrowed; may be NULL). Reserved
 * member names (seq, ts, type, prev, hash, sig) are refused with -EINVAL. On success *ret_seq (if
 * not NULL) is the record's sequence number. A failed write or sync is sticky: every later append
 * fails too, so the broker fails closed. */
int audit_append(struct audit_log *log, const char *type, json_t *fields, unsigned flags, uint64_t *ret_seq);

/* Between audit_hold() and audit_release() appended records are numbered, chained and counted as
 * usual but kept in memory, and audit_release() writes them with one write(2) (its errno, sticky like a
 * failed append's, when that fails or the log failed while they were held; 0 when none is held). The broker holds the log while it handles one batch of messages and
 * lets nothing leave the process until the release has returned 0. A durable append, a flush, a rotation
 * and closing write what is held first. */
void audit_hold(struct audit_log *log);
int audit_release(struct audit_log *log);

/* CLOCK_MONOTONIC µs at which audit_tick() has work (group commit or timed checkpoint);
 * UINT64_MAX when nothing is pending. */
uint64_t audit_next_deadline(const struct audit_log *log);
/* Does whatever is due at `now` (CLOCK_MONOTONIC µs): group commit, timed checkpoint. */
int audit_tick(struct audit_log *log, uint64_t now);
/* From now on the group commit's fdatasync runs on a thread of its own (started at its first use) instead
 * of in the event loop; AUDIT_DURABLE appends, rotation and close still sync in the caller. Call it only
 * once the process is confined: the thread inherits the filter and Landlock domain of its creator. */
int audit_sync_in_background(struct audit_log *log);
/* Group commit now: fdatasync everything written so far. */
int audit_flush(struct audit_log *log);
/* Checkpoint + sync the current file, then continue in a new file headed by a link record. */
int audit_rotate(struct audit_log *log);

uint64_t audit_last_seq(const struct audit_log *log);
const char *audit_current_path(const struct audit_log *log);
void audit_pubkey(const struct audit_log *log, uint8_t ret[AUDIT_PUBKEY_BYTES]);

/* Convenience for an sd-event loop: one CLOCK_MONOTONIC timer, re-armed by the log itself after every
 * append, flush, checkpoint and tick, that runs audit_tick() when due. With it the broker only appends,
 * calls audit_rotate() on SIGHUP and audit_close() at exit. The timer goes with audit_close(). */
struct sd_event;
int audit_attach_event(struct audit_log *log, struct sd_event *e);

/* Helpers shared with the verifier and bastionctl. */
void audit_hash_hex(const void *data, size_t len, char ret[AUDIT_HASH_HEX]);
int audit_pubkey_from_seed(const uint8_t seed[AUDIT_SEED_BYTES], uint8_t ret[AUDIT_PUBKEY_BYTES]);
/* Reads a public key file: 64 hex digits (whitespace around is fine) or 32 raw bytes. */
int audit_pubkey_read(const char *path, uint8_t ret[AUDIT_PUBKEY_BYTES]);
/* The files of a log directory in chain order (audit-<first seq>.jsonl, ascending). */
int audit_list_files(const char *dir, char ***ret_paths, size_t *ret_n);
void audit_free_paths(char **paths, size_t n);

/* ---- typed records the broker emits (records.c). Strings may be NULL where noted. ---- */

struct audit_principal {
        const char *sub;                /* "uid:1000" or a token subject */
        int64_t uid;                    /* -1 when not a local user */
        const char *tenant;             /* NULL for staff */
        const char *role;               /* NULL when no role matched */
};

struct audit_approval {
        const char *who;                /* the approving human: sub, or "host-user" for confirm */
        const char *how;                /* "confirm" | "approver" */
        const char *when;               /* RFC 3339; NULL = now */
};

enum audit_status { AUDIT_STATUS_OK, AUDIT_STATUS_ERROR, AUDIT_STATUS_DENIED, AUDIT_STATUS_TIMEOUT };

enum audit_approval_event {
        AUDIT_APPROVAL_REQUESTED,
        AUDIT_APPROVAL_GRANTED,
        AUDIT_APPROVAL_DENIED,
        AUDIT_APPROVAL_EXPIRED,
};

enum audit_worker_event { AUDIT_WORKER_START, AUDIT_WORKER_CRASH, AUDIT_WORKER_ATTESTATION_FAILURE };

enum audit_task_event { AUDIT_TASK_CREATED, AUDIT_TASK_UPDATED, AUDIT_TASK_CANCELLED };

/* Intent of a call, before the worker is asked. Side-effecting calls pass AUDIT_DURABLE.
 * *ret_seq is the id the matching result record refers to. */
int audit_call_intent(struct audit_log *log, const struct audit_principal *p, const char *server,
                      const char *tool, const json_t *arguments, const struct audit_approval *approval,
                      unsigned flags, uint64_t *ret_seq);
int audit_call_result(struct audit_log *log, uint64_t intent_seq, const struct audit_principal *p,
                      const char *server, const char *tool, enum audit_status status,
                      const char *error, uint64_t result_bytes, unsigned flags);
int audit_denial(struct audit_log *log, const struct audit_principal *p, const char *server,
                 const char *tool, const char *reason);
int audit_auth_failure(struct audit_log *log, const char *who, const char *reason);
int audit_approval_event(struct audit_log *log, enum audit_approval_event ev, const char *approval_id,
                         const struct audit_principal *requester, const char *server, const char *tool,
                         const char *decided_by);
int audit_worker_event(struct audit_log *log, enum audit_worker_event ev, const char *server,
                       uint64_t generation, const char *detail);
/* A task of the io.modelcontextprotocol/tasks extension: created (announced to its client), updated
 * (tasks/update) or cancelled (tasks/cancel); detail says what became of it. */
int audit_task_event(struct audit_log *log, enum audit_task_event ev, const struct audit_principal *p,
                     const char *server, const char *tool, const char *task_id, const char *detail);
int audit_config_reload(struct audit_log *log, const char *path, bool ok, const char *detail);
/* Only the credential's name is recorded, never its value. */
int audit_credential_handed(struct audit_log *log, const char *server, const char *credential_name);

const char *audit_status_to_string(enum audit_status s);

/* ---- verification (verify.c) ---- */

enum audit_verify_flags {
        AUDIT_VERIFY_ALLOW_TAIL = 1 << 0,       /* a live log: unsigned records after the last checkpoint are fine */
};

enum audit_verify_error {
        AUDIT_VERIFY_OK,
        AUDIT_VERIFY_MALFORMED,
        AUDIT_VERIFY_TRUNCATED,
        AUDIT_VERIFY_HASH_MISMATCH,
        AUDIT_VERIFY_SEQUENCE_GAP,
        AUDIT_VERIFY_PREV_MISMATCH,
        AUDIT_VERIFY_BAD_LINK,
        AUDIT_VERIFY_BAD_SIGNATURE,
        AUDIT_VERIFY_UNVOUCHED,
        AUDIT_VERIFY_EMPTY,
        _AUDIT_VERIFY_ERROR_MAX,
};

struct audit_verify_report {
        uint64_t n_records;
        uint64_t n_checkpoints;
        uint64_t first_seq, last_seq;
        uint64_t last_checkpoint_seq;           /* 0 = none */
        uint64_t unvouched;                     /* records after the last checkpoint */
        bool anchored;                          /* chain starts at seq 1 (not at a link to files not given) */
        /* The first bad record, when verification fails: */
        enum audit_verify_error error;
        const char *file;                       /* points into the paths passed in */
        unsigned long line;                     /* 1-based */
        uint64_t seq;                           /* as found in the record; 0 when unreadable */
        char reason[256];
};

/* 0 when every file verifies and the chain runs through them in order; -EBADMSG with the report
 * naming the first bad record otherwise; another negative errno when a file cannot be read. */
int audit_verify(char *const *paths, size_t n, const uint8_t pubkey[AUDIT_PUBKEY_BYTES], unsigned flags,
                 struct audit_verify_report *report);
const char *audit_verify_error_to_string(enum audit_verify_error e);
