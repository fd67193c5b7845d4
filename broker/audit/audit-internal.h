/* Private to broker/audit: the pieces the writer, the verifier and the journal mirror share. */
#pragma once

#include "audit.h"

/* "2026-11-26T20:43:43.123Z" */
#define AUDIT_TS_MAX 32
/* The hash member is always last, so the hashed body is the line with this suffix cut off. */
#define AUDIT_HASH_MEMBER ",\"hash\":\""
#define AUDIT_CHECKPOINT_MSG_MAX (sizeof(AUDIT_CHECKPOINT_DOMAIN) + 24 + AUDIT_TS_MAX + AUDIT_HASH_HEX + 4)

uint64_t audit_now_mono(void);
void audit_format_ts(char ret[AUDIT_TS_MAX]);
void audit_checkpoint_message(uint64_t seq, const char *ts, const char *prev, char ret[AUDIT_CHECKPOINT_MSG_MAX]);
void audit_journal_mirror(uint64_t seq, const char *type, json_t *fields, const char *line, size_t len);
