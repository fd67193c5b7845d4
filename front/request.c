/* What the front decides about a request on its own — Host and Origin (DNS rebinding, cross-site
 * requests), the route, the method, a bearer token in the URL — and the FRONT_REQUEST that carries the
 * rest to the broker: only the headers the broker uses, the raw Authorization among them. */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "front.h"
#include "front_proto.h"
#include "log.h"
#include "util.h"

#define MCP_PREFIX "/mcp/"
#define METADATA_PREFIX "/.well-known/oauth-protected-resource/mcp/"

enum route {
        ROUTE_NONE,
        ROUTE_MCP,              /* /mcp/<server>: POST, GET, DELETE */
        ROUTE_METADATA,         /* RFC 9728 metadata of <server>: GET */
};

/* Headers a browser may send cross-origin to an MCP endpoint, and those it may read back. */
#define CORS_ALLOW_HEADERS "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, " \
        "Mcp-Method, Mcp-Name, Last-Event-ID"
#define CORS_EXPOSE_HEADERS "Mcp-Session-Id, WWW-Authenticate, Retry-After"

/* The configured server named by path after prefix, or NULL. The path is compared undecoded (the
 * parser refuses dot segments), so an encoded name never matches. */
static const char *route_server(const struct front *f, const char *path, const char *prefix) {
        size_t n = strlen(prefix);

        if (strncmp(path, prefix, n) != 0)
                return NULL;
        path += n;
        for (size_t i = 0; i < f->config.n_servers; i++)
                if (streq(f->config.servers[i].name, path))
                        return f->config.servers[i].name;
        return NULL;
}

static enum route route_of(const struct front *f, const char *path, const char **ret_server) {
        if ((*ret_server = route_server(f, path, MCP_PREFIX)))
                return ROUTE_MCP;
        if ((*ret_server = route_server(f, path, METADATA_PREFIX)))
                return ROUTE_METADATA;
        return ROUTE_NONE;
}

static bool origin_allowed(const struct front *f, const char *origin) {
        for (size_t i = 0; i < f->n_origins; i++)
                if (front_origin_allowed(origin, f->origins[i].tls, &f->origins[i].authority, 1))
                        return true;
        return false;
}

size_t request_cors_headers(const struct conn *c, struct http_header *h) {
        if (!c->origin)
                return 0;
        h[0] = (struct http_header) { "Access-Control-Allow-Origin", c->origin };
        h[1] = (struct http_header) { "Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS };
        h[2] = (struct http_header) { "Vary", "Origin" };
        return 3;
}

/* OPTIONS: the CORS preflight of an allowed origin (or a plain OPTIONS), answered here. */
static void answer_options(struct conn *c, enum route route) {
        const char *allow = route == ROUTE_MCP ? "GET, POST, DELETE, OPTIONS" : "GET, OPTIONS";
        struct http_header h[8] = {
                { "Allow", allow },
        };
        size_t n = 1;
        int r;

        if (c->origin) {
                h[n++] = (struct http_header) { "Access-Control-Allow-Methods", allow };
                h[n++] = (struct http_header) { "Access-Control-Allow-Headers", CORS_ALLOW_HEADERS };
                h[n++] = (struct http_header) { "Access-Control-Max-Age", "600" };
                n += request_cors_headers(c, h + n);
        }
        r = http_write_response(&c->out, 204, h, n, NULL, 0, c->keep_alive);
        if (r < 0)
                return conn_write_failed(c, r);
        c->state = CONN_BROKER;
        conn_request_done(c, c->keep_alive, 204);
}

static void refuse_method(struct conn *c, enum route route) {
        struct http_header h[6] = {
                { "Allow", route == ROUTE_MCP ? "GET, POST, DELETE, OPTIONS" : "GET, OPTIONS" },
                { "Content-Type", "application/json" },
        };
        static const char body[] = "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":-32600,\"message\":\"method not allowed\"}}";
        size_t n = 2 + request_cors_headers(c, h + 2);
        int r;

        r = http_write_response(&c->out, 405, h, n, body, sizeof(body) - 1, false);
        if (r < 0)
                return conn_write_failed(c, r);
        c->state = CONN_BROKER;
        conn_request_done(c, false, 405);
}

bool request_check_head(struct conn *c, const struct http_request *req) {
        struct front *f = c->f;
        const char *server;
        enum route route;

        free(c->origin);
        c->origin = NULL;
        if (!front_host_allowed(req->host, c->use_tls, f->hosts, f->n_hosts)) {
                log_warning("%s: Host \"%s\" is not one of this listener's names (http.hosts); refused", c->addr, req->host);
                conn_write_error(c, 403, "Host not allowed", false);
                return false;
        }
        if (req->origin && !origin_allowed(f, req->origin)) {
                log_warning("%s: Origin \"%s\" is not allowed (http.origins); refused", c->addr, req->origin);
                conn_write_error(c, 403, "Origin not allowed", false);
                return false;
        }
        if (req->origin && !(c->origin = strdup(req->origin))) {
                conn_write_error(c, 500, "out of memory", false);
                return false;
        }
        if (http_query_has_param(req->query, "access_token")) {
                conn_write_error(c, 400, "access tokens are not accepted in the URL; send them in the "
                                 "Authorization header (Bearer)", false);
                return false;
        }
        route = route_of(f, req->path, &server);
        if (route == ROUTE_NONE) {
                conn_write_error(c, 404, "no such endpoint", false);
                return false;
        }
        c->keep_alive = req->keep_alive;
        if (req->method == HTTP_OPTIONS) {
                /* Answered once the whole request (a body, if any) is in. */
                return true;
        }
        if (route == ROUTE_METADATA ? req->method != HTTP_GET : false) {
                refuse_method(c, route);
                return false;
        }
        return true;
}

/* Whether s is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF). */
static bool utf8_valid(const char *s, size_t len) {
        const unsigned char *p = (const unsigned char *) s, *end = p + len;

        while (p < end) {
                unsigned c = *p, n;
                uint32_t cp;

                if (c < 0x80) {
                        p++;
                        continue;
                }
                if (c >= 0xc2 && c <= 0xdf)
                        n = 1, cp = c & 0x1f;
                else if (c >= 0xe0 && c <= 0xef)
                        n = 2, cp = c & 0x0f;
                else if (c >= 0xf0 && c <= 0xf4)
                        n = 3, cp = c & 0x07;
                else
                        return false;
                if ((size_t) (end - p) <= n)
                        return false;
                for (unsigned i = 1; i <= n; i++) {
                        if ((p[i] & 0xc0) != 0x80)
                                return false;
                        cp = (cp << 6) | (p[i] & 0x3f);
                }
                if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
                    (cp >= 0xd800 && cp <= 0xdfff))
                        return false;
                p += n + 1;
        }
        return true;
}

/* The headers the broker may read, as name/value pairs; Mcp-Param-* each at most once (two copies
 * would let two readers disagree): -EBADMSG. */
static int request_headers(struct front_out *o, const struct http_request *req) {
        const struct {
                const char *name, *value;
        } fields[] = {
                { "authorization", req->authorization }, { "accept", req->accept },
                { "content-type", req->content_type }, { "mcp-session-id", req->mcp_session_id },
                { "mcp-protocol-version", req->mcp_protocol_version }, { "mcp-method", req->mcp_method },
                { "mcp-name", req->mcp_name }, { "last-event-id", req->last_event_id },
        };

        for (size_t i = 0; i < ELEMENTSOF(fields); i++)
                if (fields[i].value) {
                        front_out_cstr(o, fields[i].name);
                        front_out_cstr(o, fields[i].value);
                }
        for (size_t i = 0; i < req->n_headers; i++) {
                const struct http_header *h = &req->headers[i];

                if (strncmp(h->name, "mcp-param-", 10) != 0)
                        continue;
                for (size_t j = 0; j < i; j++)
                        if (streq(req->headers[j].name, h->name))
                                return -EBADMSG;
                front_out_cstr(o, h->name);
                front_out_cstr(o, h->value);
        }
        return 0;
}

void request_forward(struct conn *c, const struct http_request *req) {
        static const uint8_t methods[] = {
                [HTTP_GET] = FRONT_METHOD_GET, [HTTP_POST] = FRONT_METHOD_POST,
                [HTTP_DELETE] = FRONT_METHOD_DELETE, [HTTP_OPTIONS] = FRONT_METHOD_OPTIONS,
        };
        struct front *f = c->f;
        const char *server, *body = req->method == HTTP_POST && req->body ? req->body : "";
        size_t body_len = req->method == HTTP_POST && req->body ? req->body_len : 0;
        enum route route = route_of(f, req->path, &server);
        struct front_out o;
        int r;

        if (route == ROUTE_NONE)
                return conn_write_error(c, 404, "no such endpoint", false);
        if (req->method == HTTP_OPTIONS)
                return answer_options(c, route);
        /* The broker parses it as JSON text; a NUL cannot be part of that either. */
        if (!utf8_valid(body, body_len) || memchr(body, '\0', body_len))
                return conn_write_error(c, 400, "the body is not UTF-8 text", false);
        front_out_init(&o, &(struct front_wire) { .conn = c->id, .stream = c->stream + 1,
                                                  .method = methods[req->method],
                                                  .flags = c->use_tls ? FRONT_FLAG_TLS : 0 });
        front_out_cstr(&o, server);
        front_out_cstr(&o, req->path);
        front_out_cstr(&o, c->addr);
        front_out_str(&o, body, body_len);
        r = request_headers(&o, req);
        if (r < 0) {
                front_out_done(&o);
                return conn_write_error(c, 400, "an Mcp-Param header appears twice", false);
        }
        c->stream++;
        c->state = CONN_BROKER;
        r = relay_send(f, FRONT_REQUEST, &o);
        if (r < 0) {
                c->state = CONN_READ;
                return conn_write_error(c, r == -EMSGSIZE ? 413 : 503, r == -EMSGSIZE ? "request too large" :
                                        "the broker is not reachable", false);
        }
}
