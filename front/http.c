/* Strict HTTP/1.1 request-subset parser. One forward scan over the bytes received so far: every verdict
 * is taken at a byte position from the bytes before it, so running out of bytes only ever means "need
 * more", and the result never depends on how the request was split across reads. */
#include "config.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>
#include <sys/param.h>

#include "http.h"
#include "util.h"

/* Internal scan results besides a negative HTTP status. */
#define SCAN_OK 0
#define SCAN_AGAIN 1

struct span {
        uint32_t off, len;
};

struct scan_header {
        struct span name, value;
};

/* The headers the front needs, each extracted into a field of struct http_request. Host comes first:
 * scan_head() checks it by index. */
#define KNOWN_HOST 0
static const struct {
        const char *name;
        size_t field;
} known_headers[] = {
        { "host",                 offsetof(struct http_request, host) },
        { "origin",               offsetof(struct http_request, origin) },
        { "content-type",         offsetof(struct http_request, content_type) },
        { "accept",               offsetof(struct http_request, accept) },
        { "authorization",        offsetof(struct http_request, authorization) },
        { "mcp-session-id",       offsetof(struct http_request, mcp_session_id) },
        { "mcp-protocol-version", offsetof(struct http_request, mcp_protocol_version) },
        { "mcp-method",           offsetof(struct http_request, mcp_method) },
        { "mcp-name",             offsetof(struct http_request, mcp_name) },
        { "last-event-id",        offsetof(struct http_request, last_event_id) },
        { "connection",           offsetof(struct http_request, connection) },
};

struct scan {
        const char *buf;
        size_t len;
        size_t pos;
        struct http_limits lim;
        enum http_method method;
        struct span path, query;
        bool has_query;
        size_t n_headers;
        struct scan_header headers[HTTP_MAX_HEADERS];
        int known[ELEMENTSOF(known_headers)];   /* header index, or -1 */
        bool has_content_length, expect_continue;
        uint64_t content_length;
};

static bool is_tchar(unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

/* RFC 3986 pchar without '%' (checked separately), plus '/' and '?': what an origin-form target holds. */
static bool is_target_char(unsigned char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                (c != 0 && strchr("-._~!$&'()*+,;=:@/?", c));
}

static bool is_hex(unsigned char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int hex_value(unsigned char c) {
        return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* The byte at pos + ahead, or SCAN_AGAIN; past the head limit the request is 431 whatever follows. */
static int scan_peek(const struct scan *s, size_t ahead, unsigned char *ret) {
        size_t p = s->pos + ahead;

        if (p >= s->lim.max_head)
                return -431;
        if (p >= s->len)
                return SCAN_AGAIN;
        *ret = (unsigned char) s->buf[p];
        return SCAN_OK;
}

static bool span_is(const struct scan *s, struct span sp, const char *lower) {
        return strlen(lower) == sp.len && strncasecmp(s->buf + sp.off, lower, sp.len) == 0;
}

static int method_from_token(const char *p, size_t n) {
        static const char *const names[] = {
                [HTTP_GET] = "GET", [HTTP_POST] = "POST", [HTTP_DELETE] = "DELETE", [HTTP_OPTIONS] = "OPTIONS",
        };

        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                if (strlen(names[i]) == n && memcmp(names[i], p, n) == 0)
                        return (int) i;
        /* A well-formed token we do not implement (PUT, HEAD, CONNECT, …). */
        return -501;
}

static int scan_method(struct scan *s) {
        unsigned char c;
        size_t n;
        int r;

        for (n = 0;; n++) {
                r = scan_peek(s, n, &c);
                if (r != SCAN_OK)
                        return r;
                if (c == ' ')
                        break;
                if (!is_tchar(c))
                        return -400;
                if (n >= HTTP_MAX_METHOD)
                        return -501;
        }
        if (n == 0)
                return -400;
        r = method_from_token(s->buf + s->pos, n);
        if (r < 0)
                return r;
        s->method = (enum http_method) r;
        s->pos += n + 1;
        return SCAN_OK;
}

/* "." or ".." spelled with literal or percent-encoded dots. */
static bool segment_is_dots(const char *p, size_t n) {
        size_t dots = 0;

        for (size_t i = 0; i < n; dots++) {
                if (p[i] == '.')
                        i++;
                else if (n - i >= 3 && p[i] == '%' && p[i + 1] == '2' && (p[i + 2] | 0x20) == 'e')
                        i += 3;
                else
                        return false;
        }
        return dots == 1 || dots == 2;
}

static bool path_has_dot_segment(const char *p, size_t n) {
        size_t start = 0;

        for (size_t i = 0; i <= n; i++)
                if (i == n || p[i] == '/') {
                        if (segment_is_dots(p + start, i - start))
                                return true;
                        start = i + 1;
                }
        return false;
}

static int scan_target(struct scan *s) {
        unsigned char c, h1, h2;
        size_t n, query_at = 0;
        int r;

        for (n = 0;; n++) {
                r = scan_peek(s, n, &c);
                if (r != SCAN_OK)
                        return r;
                if (c == ' ')
                        break;
                if (n >= s->lim.max_target)
                        return -414;
                /* Origin-form only: absolute-form, authority-form and "*" are refused. */
                if (n == 0 && c != '/')
                        return -400;
                if (c == '%') {
                        if ((r = scan_peek(s, n + 1, &h1)) != SCAN_OK || (r = scan_peek(s, n + 2, &h2)) != SCAN_OK)
                                return r;
                        if (!is_hex(h1) || !is_hex(h2) || (h1 == '0' && h2 == '0'))
                                return -400;
                        n += 2;
                        continue;
                }
                if (!is_target_char(c))
                        return -400;
                if (c == '?' && query_at == 0)
                        query_at = n;
        }
        if (n == 0)
                return -400;
        if (n > s->lim.max_target)
                return -414;
        s->path = (struct span) { s->pos, query_at ? query_at : n };
        if (query_at) {
                s->has_query = true;
                s->query = (struct span) { s->pos + query_at + 1, n - query_at - 1 };
        }
        if (path_has_dot_segment(s->buf + s->path.off, s->path.len))
                return -400;
        s->pos += n + 1;
        return SCAN_OK;
}

static int scan_crlf(struct scan *s) {
        unsigned char cr, lf;
        int r;

        if ((r = scan_peek(s, 0, &cr)) != SCAN_OK)
                return r;
        if (cr != '\r')
                return -400;
        if ((r = scan_peek(s, 1, &lf)) != SCAN_OK)
                return r;
        if (lf != '\n')
                return -400;
        s->pos += 2;
        return SCAN_OK;
}

static int scan_version(struct scan *s) {
        static const char want[] = "HTTP/1.1";
        unsigned char v[sizeof(want) - 1];
        int r;

        for (size_t i = 0; i < sizeof(v); i++)
                if ((r = scan_peek(s, i, &v[i])) != SCAN_OK)
                        return r;
        if (memcmp(v, want, sizeof(v)) != 0) {
                /* A well-formed HTTP-version we do not speak (1.0, 2.0, …) is 505; anything else 400. */
                bool shaped = memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' && v[5] <= '9' && v[6] == '.' &&
                        v[7] >= '0' && v[7] <= '9';
                return shaped ? -505 : -400;
        }
        s->pos += sizeof(v);
        return scan_crlf(s);
}

/* Content-Length: 1*DIGIT, nothing else (no sign, space, list or hex), at most once. */
static int parse_content_length(struct scan *s, struct span v) {
        uint64_t n = 0;
        bool too_big = false;

        if (s->has_content_length || v.len == 0)
                return -400;
        for (uint32_t i = 0; i < v.len; i++) {
                unsigned char c = (unsigned char) s->buf[v.off + i];
                if (c < '0' || c > '9')
                        return -400;
                if (!too_big) {
                        n = n * 10 + (uint64_t) (c - '0');
                        too_big = n > s->lim.max_body;
                }
        }
        if (too_big)
                return -413;
        s->has_content_length = true;
        s->content_length = n;
        return SCAN_OK;
}

/* What a complete header line means for framing and for the fields we extract. */
static int header_meaning(struct scan *s, size_t idx) {
        struct span name = s->headers[idx].name, value = s->headers[idx].value;

        /* Any Transfer-Encoding, even "identity": only Content-Length framing exists here, so two
         * parsers can never disagree about where a request ends (no request smuggling). */
        if (span_is(s, name, "transfer-encoding"))
                return -411;
        if (span_is(s, name, "content-length"))
                return parse_content_length(s, value);
        if (span_is(s, name, "expect")) {
                if (s->expect_continue || !span_is(s, value, "100-continue"))
                        return -417;
                s->expect_continue = true;
                return SCAN_OK;
        }
        for (size_t k = 0; k < ELEMENTSOF(known_headers); k++)
                if (span_is(s, name, known_headers[k].name)) {
                        /* Twice would let the front check one copy and the broker read the other. */
                        if (s->known[k] >= 0)
                                return -400;
                        s->known[k] = (int) idx;
                }
        return SCAN_OK;
}

static int scan_header_name(struct scan *s, struct span *ret) {
        unsigned char c;
        size_t n;
        int r;

        for (n = 0;; n++) {
                if ((r = scan_peek(s, n, &c)) != SCAN_OK)
                        return r;
                if (c == ':')
                        break;
                /* Whitespace before the colon, an obs-fold continuation line, CR, LF, NUL: all 400. */
                if (!is_tchar(c))
                        return -400;
        }
        if (n == 0)
                return -400;
        *ret = (struct span) { s->pos, n };
        s->pos += n + 1;
        return SCAN_OK;
}

/* field-value restricted to printable ASCII, SP and HTAB, OWS trimmed on both sides. */
static int scan_header_value(struct scan *s, struct span *ret) {
        unsigned char c;
        size_t n, first = SIZE_MAX, last = 0;
        int r;

        for (n = 0;; n++) {
                if ((r = scan_peek(s, n, &c)) != SCAN_OK)
                        return r;
                if (c == '\r')
                        break;
                if (c == ' ' || c == '\t')
                        continue;
                if (c < 0x21 || c > 0x7e)
                        return -400;
                if (first == SIZE_MAX)
                        first = n;
                last = n + 1;
        }
        *ret = first == SIZE_MAX ? (struct span) { s->pos + n, 0 } : (struct span) { s->pos + first, last - first };
        s->pos += n;
        return scan_crlf(s);
}

static int scan_headers(struct scan *s) {
        unsigned char c;
        int r;

        for (;;) {
                if ((r = scan_peek(s, 0, &c)) != SCAN_OK)
                        return r;
                if (c == '\r')
                        return scan_crlf(s);
                if (s->n_headers >= s->lim.max_headers)
                        return -431;
                struct scan_header *h = &s->headers[s->n_headers];
                if ((r = scan_header_name(s, &h->name)) != SCAN_OK ||
                    (r = scan_header_value(s, &h->value)) != SCAN_OK)
                        return r;
                if ((r = header_meaning(s, s->n_headers++)) != SCAN_OK)
                        return r;
        }
}

static int scan_head(struct scan *s) {
        int r;

        if ((r = scan_method(s)) != SCAN_OK || (r = scan_target(s)) != SCAN_OK ||
            (r = scan_version(s)) != SCAN_OK || (r = scan_headers(s)) != SCAN_OK)
                return r;
        /* Host exactly once (twice was refused in header_meaning), and not empty. */
        if (s->known[KNOWN_HOST] < 0 || s->headers[s->known[KNOWN_HOST]].value.len == 0)
                return -400;
        /* A POST always carries a body; without a length we could only guess where it ends. */
        if (s->method == HTTP_POST && !s->has_content_length)
                return -411;
        return SCAN_OK;
}

static bool connection_has_close(const char *v) {
        while (*v) {
                size_t n;

                v += strspn(v, " \t,");
                n = strcspn(v, " \t,");
                if (n == 5 && strncasecmp(v, "close", 5) == 0)
                        return true;
                v += n;
        }
        return false;
}

/* Copies the head into ret->head and turns the spans into NUL-terminated strings there. Each span is
 * followed by a delimiter (':', '?', SP, OWS or CR) that the copy no longer needs. */
static void scan_finish(const struct scan *s, struct http_request *ret) {
        char *h = ret->head;

        memset(ret, 0, offsetof(struct http_request, head));
        memcpy(h, s->buf, s->pos);
        h[s->pos] = '\0';
#define SPAN_STR(sp) (h[(sp).off + (sp).len] = '\0', (const char *) h + (sp).off)
        ret->method = s->method;
        ret->path = SPAN_STR(s->path);
        ret->query = s->has_query ? SPAN_STR(s->query) : NULL;
        ret->n_headers = s->n_headers;
        for (size_t i = 0; i < s->n_headers; i++) {
                struct span name = s->headers[i].name;
                for (char *c = h + name.off; c < h + name.off + name.len; c++)
                        if (*c >= 'A' && *c <= 'Z')
                                *c = (char) (*c - 'A' + 'a');
                ret->headers[i].name = SPAN_STR(name);
                ret->headers[i].value = SPAN_STR(s->headers[i].value);
        }
#undef SPAN_STR
        for (size_t k = 0; k < ELEMENTSOF(known_headers); k++)
                if (s->known[k] >= 0)
                        *(const char **) ((char *) ret + known_headers[k].field) = ret->headers[s->known[k]].value;
        ret->has_content_length = s->has_content_length;
        ret->content_length = s->content_length;
        ret->expect_continue = s->expect_continue;
        ret->keep_alive = !(ret->connection && connection_has_close(ret->connection));
        ret->head_len = s->pos;
}

static void scan_init(struct scan *s, const char *buf, size_t len, const struct http_limits *lim) {
        struct http_limits l = lim ? *lim : HTTP_LIMITS_DEFAULT;

        /* Limits can be lowered, never raised: the head copy and the header table are sized by them. */
        s->lim = (struct http_limits) {
                .max_head = MIN(l.max_head, (size_t) HTTP_MAX_HEAD),
                .max_headers = MIN(l.max_headers, (size_t) HTTP_MAX_HEADERS),
                .max_target = MIN(l.max_target, (size_t) HTTP_MAX_TARGET),
                .max_body = MIN(l.max_body, (size_t) HTTP_MAX_BODY),
        };
        s->buf = buf;
        s->len = len;
        s->pos = 0;
        s->has_query = false;
        s->n_headers = 0;
        s->has_content_length = s->expect_continue = false;
        s->content_length = 0;
        for (size_t k = 0; k < ELEMENTSOF(s->known); k++)
                s->known[k] = -1;
}

int http_parse_head(const char *buf, size_t len, const struct http_limits *lim, struct http_request *ret) {
        struct scan s;
        int r;

        scan_init(&s, buf, len, lim);
        r = scan_head(&s);
        if (r == SCAN_AGAIN)
                return 0;
        if (r < 0)
                return r;
        scan_finish(&s, ret);
        return (int) s.pos;
}

int http_parse_request(const char *buf, size_t len, const struct http_limits *lim, struct http_request *ret) {
        struct scan s;
        int r;

        scan_init(&s, buf, len, lim);
        r = scan_head(&s);
        if (r == SCAN_AGAIN)
                return 0;
        if (r < 0)
                return r;
        if (len - s.pos < s.content_length)
                return 0;
        scan_finish(&s, ret);
        ret->body = buf + s.pos;
        ret->body_len = (size_t) s.content_length;
        return (int) (s.pos + s.content_length);
}

const char *http_method_to_string(enum http_method m) {
        switch (m) {
        case HTTP_GET: return "GET";
        case HTTP_POST: return "POST";
        case HTTP_DELETE: return "DELETE";
        case HTTP_OPTIONS: return "OPTIONS";
        }
        return NULL;
}

const char *http_request_header(const struct http_request *req, const char *name) {
        for (size_t i = 0; i < req->n_headers; i++)
                if (strcasecmp(req->headers[i].name, name) == 0)
                        return req->headers[i].value;
        return NULL;
}

/* One byte of a query component, decoding %XX and '+' (form encoding), or -1 at the end of the name. */
static int query_name_byte(const char **p) {
        const char *q = *p;

        if (*q == '\0' || *q == '&' || *q == '=')
                return -1;
        if (*q == '%' && is_hex((unsigned char) q[1]) && is_hex((unsigned char) q[2])) {
                *p = q + 3;
                return hex_value((unsigned char) q[1]) * 16 + hex_value((unsigned char) q[2]);
        }
        *p = q + 1;
        return *q == '+' ? ' ' : (unsigned char) *q;
}

bool http_query_has_param(const char *query, const char *name) {
        const char *p = query;

        if (!query)
                return false;
        while (*p) {
                const char *n = name;
                int c;
                bool match = true;

                while ((c = query_name_byte(&p)) >= 0)
                        if (match && *n != '\0' && c == (unsigned char) *n)
                                n++;
                        else
                                match = false;
                if (match && *n == '\0')
                        return true;
                p += strcspn(p, "&");
                if (*p == '&')
                        p++;
        }
        return false;
}
