/* JSON-RPC 2.0 as MCP uses it: parse one line into a classified message, build replies. */
#pragma once

#include <jansson.h>
#include <stddef.h>

/* JSON-RPC and MCP error codes. */
#define JSONRPC_PARSE_ERROR -32700
#define JSONRPC_INVALID_REQUEST -32600
#define JSONRPC_METHOD_NOT_FOUND -32601
#define JSONRPC_INVALID_PARAMS -32602
#define JSONRPC_INTERNAL_ERROR -32603
#define MCP_RESOURCE_NOT_FOUND -32002     /* 2025-11-25 only */
#define MCP_HEADER_MISMATCH -32020
#define MCP_MISSING_CLIENT_CAPABILITY -32021
#define MCP_UNSUPPORTED_PROTOCOL_VERSION -32022
/* Application range, outside -32768..-32000: the server behind this endpoint is unavailable. */
#define BASTION_ERROR_SERVER_UNAVAILABLE -31001
#define BASTION_ERROR_TIMEOUT -31002
#define BASTION_ERROR_OVERLOADED -31003
#define BASTION_ERROR_AUDIT -31004
/* The range the broker keeps for itself: a worker's error in it is passed on as an internal error. */
#define BASTION_ERROR_RESERVED_MIN -31099
#define BASTION_ERROR_RESERVED_MAX -31000

enum jsonrpc_kind {
        JSONRPC_REQUEST,
        JSONRPC_NOTIFICATION,
        JSONRPC_RESPONSE,
};

struct jsonrpc_msg {
        enum jsonrpc_kind kind;
        json_t *root;           /* owned */
        json_t *id;             /* borrowed from root: string or integer (requests, responses) */
        const char *method;     /* borrowed (requests, notifications) */
        json_t *params;         /* borrowed, object or NULL */
        json_t *result;         /* borrowed (responses) */
        json_t *error;          /* borrowed (error responses) */
};

/* Parses and classifies one line. On failure returns a negative errno and, when the peer is owed an
 * answer, sets *ret_error to the JSON-RPC error response to send (-32700 for bad JSON, -32600 for a
 * batch or a malformed envelope). */
int jsonrpc_parse(const char *line, size_t len, struct jsonrpc_msg *ret, json_t **ret_error);
void jsonrpc_msg_done(struct jsonrpc_msg *m);

/* True when the JSON text nests deeper than max (checked before handing it to jansson). */
int json_too_deep(const char *s, size_t len, unsigned max);

/* Builders. `id` is borrowed (copied); `data`, `params` and `result` are stolen. */
json_t *jsonrpc_error(json_t *id, int code, const char *message, json_t *data);
json_t *jsonrpc_result(json_t *id, json_t *result);
json_t *jsonrpc_request(json_t *id, const char *method, json_t *params);
json_t *jsonrpc_notification(const char *method, json_t *params);

/* Compact single-line serialisation (no embedded newline); caller frees. */
char *jsonrpc_dump(const json_t *msg, size_t *ret_len);
/* The same text (json_dumpb `flags`) without the allocation when it fits in buf (cap bytes); when it
 * does not, in *ret_alloc, which the caller frees (set to NULL otherwise). Not NUL-terminated; NULL
 * on failure. For callers that copy the text on anyway (a channel's out buffer, an audit line). */
/* The length of j's JSON text (json_dumpb `flags`; 0 when it cannot be written), without building it. */
size_t json_dump_size(const json_t *j, size_t flags);
const char *json_dump_buf(const json_t *j, size_t flags, char *buf, size_t cap, char **ret_alloc, size_t *ret_len);
