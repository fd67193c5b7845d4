/* The broker <-> front channel (DESIGN §2 "Channels"): a SOCK_SEQPACKET socketpair made by the supervisor
 * with chan_socketpair(), framed with lib/chan (chan_send/chan_recv), one message per HTTP request,
 * response or SSE event. The front is at fd 3 of its own process for the supervisor channel and gets its
 * end of this channel with CHAN_FRONT; the broker gets its end with CHAN_FRONT too.
 *
 * The front parses HTTP and TLS and enforces the transport rules it can decide alone (limits, Origin and
 * Host, chunked → 411, timeouts, connections per address, a token in the query string → 400). Everything
 * about identity and MCP is decided by the broker: the front forwards the raw Authorization header and
 * the body, and writes back exactly what the broker answers.
 *
 * Keys: conn is a connection number, unique for the life of the front process (never reused); stream is
 * a request number, unique within its connection. Requests on one connection are handled one at a time,
 * in order (no pipelining concurrency): the front sends the next FRONT_REQUEST of a connection only after
 * the previous one got FRONT_RESPONSE or FRONT_SSE_END. Concurrency comes from many connections.
 *
 * Both sides treat any malformed message from the other as fatal for the channel (the front is less
 * privileged: the broker drops the channel and the supervisor restarts the front). */
#pragma once

#include "chan.h"

/* Every message is binary, not JSON (chan_send_raw/chan_recv_raw; no fds): parsing and printing a JSON
 * envelope around each request and answer cost ~25 µs of the ~200 µs a call took through both processes
 * (bench/http). The payload is a struct front_wire, then n_strings strings, each a uint32_t length,
 * the bytes and a NUL. No string may contain a NUL byte. Which strings, in order, per type: */
enum front_msg_type {
        /* front -> broker */
        FRONT_REQUEST = 200,    /* conn, stream, method (FRONT_METHOD_*), flags FRONT_FLAG_TLS;
                                 * strings: server, path, peer, body, then name/value pairs of headers.
                                 * server is the <server> of /mcp/<server> or of
                                 * /.well-known/oauth-protected-resource/mcp/<server> (path tells which);
                                 * headers carries only: authorization, accept, content-type, mcp-session-id,
                                 * mcp-protocol-version, mcp-method, mcp-name, last-event-id, mcp-param-*,
                                 * lowercase, each at most once, values printable ASCII. body is the request
                                 * body (POST; "" otherwise), at most HTTP_MAX_BODY bytes of UTF-8. */
        FRONT_CANCEL,           /* conn, stream; no strings: the client went away (or the connection was
                                 * closed for a timeout or backpressure) before the response ended; stream
                                 * is the one in progress. The broker forgets the stream; it must not send
                                 * for it again (messages for unknown conn/stream are dropped by the front
                                 * silently). */

        /* broker -> front */
        FRONT_RESPONSE = 232,   /* conn, stream, status, flags FRONT_FLAG_CLOSE; strings: body, then
                                 * name/value pairs of headers: a complete response (Content-Length); CLOSE
                                 * asks the front to close the connection after writing it. */
        FRONT_SSE_START,        /* conn, stream, status; strings: name/value pairs of headers: the response
                                 * is an SSE stream (text/event-stream, chunked, keep-alive afterwards) */
        FRONT_SSE_EVENT,        /* conn, stream, retry (ms, or -1), flags FRONT_FLAG_ID/FRONT_FLAG_EVENT;
                                 * strings: data, then id if FLAG_ID, then event if FLAG_EVENT */
        FRONT_SSE_END,          /* conn, stream; no strings: the stream is complete */
        _FRONT_MSG_MAX,
};

enum front_method { FRONT_METHOD_GET = 1, FRONT_METHOD_POST, FRONT_METHOD_DELETE, FRONT_METHOD_OPTIONS };

enum front_flags {
        FRONT_FLAG_TLS = 1 << 0,
        FRONT_FLAG_CLOSE = 1 << 1,
        FRONT_FLAG_ID = 1 << 2,
        FRONT_FLAG_EVENT = 1 << 3,
};

/* At most this many strings per message: 4 fixed, and header pairs. */
#define FRONT_MAX_STRINGS 260

struct front_wire {
        uint64_t conn;
        uint64_t stream;
        int64_t retry;
        uint16_t status;
        uint8_t method;
        uint8_t flags;
        uint16_t n_strings;
        uint16_t zero;          /* must be 0 */
};

struct front_str {
        const char *s;          /* NUL-terminated, no NUL inside */
        size_t len;
};

/* A message being built; front_out_send() sends it (or the caller queues out.buf/out.len). */
struct front_out {
        char *buf;
        size_t len, cap;
        int error;
};
int front_out_init(struct front_out *o, const struct front_wire *w);
void front_out_str(struct front_out *o, const char *s, size_t len);
static inline void front_out_cstr(struct front_out *o, const char *s) { front_out_str(o, s, __builtin_strlen(s)); }
/* 0, or a negative errno (of building it: -ENOMEM, -EINVAL for a NUL in a string, -EMSGSIZE). */
int front_out_finish(struct front_out *o);
void front_out_done(struct front_out *o);

/* A received message, checked: the fixed part and its strings, pointing into raw.data. */
struct front_msg {
        uint32_t type;
        struct front_wire w;
        unsigned n;
        struct front_str str[FRONT_MAX_STRINGS];
        struct chan_raw raw;
};
/* The front's "peer" in FRONT_REQUEST: an IPv6 address with port and brackets fits easily. */
#define FRONT_MAX_PEER 64

/* One message (chan_recv_raw_batch() of one, then front_parse()): 1, 0 at EOF, -EAGAIN, -EBADMSG for
 * anything not in the shape above (fds, lengths, NULs, counts). The broker and the front receive
 * batches themselves; this is the same path for one. */
int front_recv(int fd, struct front_msg *ret);
/* The same check on a payload already received (takes raw->data; raw->data[raw->len] must be 0). */
int front_parse(struct chan_raw *raw, struct front_msg *ret);
void front_msg_done(struct front_msg *m);
/* What a FRONT_REQUEST promises beyond the framing: 0, or -EBADMSG. A known method, only the TLS flag,
 * conn and stream below 2^63, server at most BASTION_MAX_NAME bytes, a path starting with '/', a
 * printable peer of at most FRONT_MAX_PEER bytes, header names non-empty, lowercase and each once (two
 * copies would let two readers disagree), values printable ASCII (and tab). */
int front_request_check(const struct front_msg *m);
