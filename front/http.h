/* The front's HTTP/1.1: a strict request-subset parser (pure, incremental, over a byte buffer) and the
 * response, chunk and SSE writers. Rules and reasons: docs/front.md. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "linebuf.h"

/* Limits of one request. The parser takes them in struct http_limits so tests can shrink them; these
 * are the defaults and the ceilings (a request's head is copied into struct http_request, so
 * HTTP_MAX_HEAD and HTTP_MAX_HEADERS also size that struct).
 *
 * Head (request line + header lines + the blank line): an MCP request carries ~12 headers, the largest a
 * bearer JWT of 1-4 KiB; 16 KiB leaves room for a fat token without letting a client park 64 KiB per
 * connection before we have decided anything. */
#define HTTP_MAX_HEAD (16 * 1024)
/* Header lines: MCP needs ~12, browsers add ~10 (sec-fetch-*, user-agent…), Mcp-Param-* a few more. */
#define HTTP_MAX_HEADERS 64
/* Request target: "/mcp/<server>" or the RFC 9728 metadata path; 2 KiB is generous for any query. */
#define HTTP_MAX_TARGET 2048
/* Body: one JSON-RPC message, the same bound as every other channel (BASTION_MAX_LINE). */
#define HTTP_MAX_BODY (1024 * 1024)
/* Longest method token we look at; every method we implement is shorter, so a longer one is 501. */
#define HTTP_MAX_METHOD 16

struct http_limits {
        size_t max_head;        /* clamped to HTTP_MAX_HEAD */
        size_t max_headers;     /* clamped to HTTP_MAX_HEADERS */
        size_t max_target;
        size_t max_body;
};

#define HTTP_LIMITS_DEFAULT ((struct http_limits) {             \
        .max_head = HTTP_MAX_HEAD, .max_headers = HTTP_MAX_HEADERS, \
        .max_target = HTTP_MAX_TARGET, .max_body = HTTP_MAX_BODY })

enum http_method {
        HTTP_GET,
        HTTP_POST,
        HTTP_DELETE,
        HTTP_OPTIONS,
};

struct http_header {
        const char *name;       /* lowercased */
        const char *value;      /* OWS trimmed, case preserved, printable ASCII only */
};

/* A parsed request. Every string is NUL-terminated and lives in .head (a copy of the request head), so
 * it stays valid when the caller's buffer moves; only .body points into the caller's buffer. A header
 * field the front uses is NULL when absent; each of them may appear at most once. */
struct http_request {
        enum http_method method;
        const char *path;               /* origin-form path, not percent-decoded */
        const char *query;              /* after '?', not decoded; NULL when the target has no '?' */
        const char *host;               /* always present */
        const char *origin;
        const char *content_type;
        const char *accept;
        const char *authorization;
        const char *mcp_session_id;
        const char *mcp_protocol_version;
        const char *mcp_method;
        const char *mcp_name;
        const char *last_event_id;
        const char *connection;
        bool has_content_length;
        uint64_t content_length;
        bool expect_continue;           /* "Expect: 100-continue" */
        bool keep_alive;                /* RFC 9112 §9.3 for HTTP/1.1: persistent unless "close" */
        size_t n_headers;
        struct http_header headers[HTTP_MAX_HEADERS];   /* every header line, in order */
        size_t head_len;
        const char *body;               /* points into the parsed buffer; body_len == content_length */
        size_t body_len;
        char head[HTTP_MAX_HEAD + 1];
};

/* Parses one request at the start of buf[0..len).
 *   0      need more bytes (nothing written to ret);
 *   N > 0  a complete request of N bytes (head + body) is in ret; pipelined bytes follow at buf + N;
 *   -S     the request is malformed: answer HTTP status S (400, 411, 413, 414, 417, 431, 501, 505) with
 *          "Connection: close" and close.
 * The function is pure and looks at bytes in order: a verdict never changes when more bytes arrive, so
 * feeding a request byte by byte gives the same result as feeding it whole, and a caller may skip calls
 * until "\r\n\r\n" has arrived or len reaches the head limit. lim NULL means HTTP_LIMITS_DEFAULT. */
int http_parse_request(const char *buf, size_t len, const struct http_limits *lim, struct http_request *ret);
/* The same, but complete once the head is: returns the head length, with .body NULL and .body_len 0.
 * The front uses it to answer "Expect: 100-continue" before the body arrives. */
int http_parse_head(const char *buf, size_t len, const struct http_limits *lim, struct http_request *ret);

const char *http_method_to_string(enum http_method m);
/* Header value by (case-insensitive) name from the generic list, NULL when absent. */
const char *http_request_header(const struct http_request *req, const char *name);
/* Whether the query string has a parameter called name (compared after percent-decoding the name), e.g.
 * "access_token": a bearer token in a URL leaks into logs and histories, so it is refused. */
bool http_query_has_param(const char *query, const char *name);

/* Writers. They append to an outbuf (lib/linebuf.h) and return 0, -EINVAL for a header name or value
 * that could split the response (CR, LF, other controls) or for a framing header the writer owns
 * (Content-Length, Transfer-Encoding, Connection), or -ENOBUFS / -ENOMEM from the outbuf. After an
 * error, part of the message may be queued: the connection must be closed. */
const char *http_status_reason(int status);
/* A complete response with a Content-Length body; "Connection: close" when !keep_alive. 1xx (e.g. 100
 * Continue) and 204 get neither Content-Length nor a body. */
int http_write_response(struct outbuf *ob, int status, const struct http_header *headers, size_t n_headers,
                        const void *body, size_t body_len, bool keep_alive);
/* An SSE response head: text/event-stream, no-cache, X-Accel-Buffering: no and a chunked body, so the
 * connection can be kept alive after the stream ends. Follow with chunks, then http_write_chunk_end(). */
int http_write_sse_head(struct outbuf *ob, int status, const struct http_header *headers, size_t n_headers,
                        bool keep_alive);
int http_write_chunk(struct outbuf *ob, const void *data, size_t len);
int http_write_chunk_end(struct outbuf *ob);

/* SSE framing (the text of one event; wrap it in a chunk on a chunked response). event and id are
 * optional (NULL) single-line strings; data is split at CRLF, CR or LF into one "data:" line each. */
int sse_format_event(struct outbuf *ob, const char *event, const char *id, const char *data, size_t data_len);
/* A comment line (": text"), used as a keep-alive; text must be a single line. */
int sse_format_comment(struct outbuf *ob, const char *text);
int sse_format_retry(struct outbuf *ob, unsigned retry_ms);
