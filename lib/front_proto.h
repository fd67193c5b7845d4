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

enum front_msg_type {
        /* front -> broker */
        FRONT_REQUEST = 200,    /* {conn, stream, method: "GET"|"POST"|"DELETE", server, path, tls: bool,
                                 *  peer: "address", headers: {lowercase name: value, ...}, body?: string}
                                 * server is the <server> of /mcp/<server> or of
                                 * /.well-known/oauth-protected-resource/mcp/<server> (path tells which);
                                 * headers carries only: authorization, accept, content-type, mcp-session-id,
                                 * mcp-protocol-version, mcp-method, mcp-name, last-event-id, mcp-param-*.
                                 * body is the request body (POST), at most HTTP_MAX_BODY bytes of UTF-8. */
        FRONT_CANCEL,           /* {conn, stream}: the client went away (or the connection was closed for
                                 * a timeout or backpressure) before the response ended; stream is the one
                                 * in progress. The broker forgets the stream; it must not send for it again
                                 * (messages for unknown conn/stream are dropped by the front silently). */

        /* broker -> front */
        FRONT_RESPONSE = 232,   /* {conn, stream, status, headers: [[name, value], ...], body: string,
                                 *  close?: bool}: a complete response (Content-Length); close asks the
                                 * front to close the connection after writing it. */
        FRONT_SSE_START,        /* {conn, stream, status, headers: [[name, value], ...]}: the response is an
                                 * SSE stream (text/event-stream, chunked, keep-alive afterwards) */
        FRONT_SSE_EVENT,        /* {conn, stream, data: string, id?: string, event?: string, retry?: ms} */
        FRONT_SSE_END,          /* {conn, stream}: the stream is complete */
        _FRONT_MSG_MAX,
};
