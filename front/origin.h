/* Host and Origin validation: a request is served only when its Host names this listener and its Origin,
 * if any, is one of the listener's own origins (DNS-rebinding and cross-site protection, MCP Streamable
 * HTTP §Security). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A name a listener answers to: "127.0.0.1", "localhost", "[::1]" (brackets included), "mcp.example.com". */
struct front_authority {
        const char *host;
        uint16_t port;
};

/* The Host header value ("name[:port]", the port defaulting to the scheme's) names one of the listener's
 * authorities. Names compare case-insensitively, ports exactly. */
bool front_host_allowed(const char *host, bool tls, const struct front_authority *names, size_t n);
/* No Origin (a non-browser client) is allowed; otherwise it must be the serialised origin
 * "scheme://name[:port]" of one of the listener's authorities with the listener's own scheme. "null",
 * a path, userinfo or another scheme are refused. */
bool front_origin_allowed(const char *origin, bool tls, const struct front_authority *names, size_t n);
