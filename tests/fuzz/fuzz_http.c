/* libFuzzer target: bytes as a client sends them to the front, through the request parser (whole, as
 * prefixes, and pipelined) and back out through the response and SSE writers. Traps on any broken
 * invariant, not just on memory errors. */
#include "config.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "front/http.h"
#include "front/origin.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Short requests are checked at every prefix, longer ones at a few cut points. */
#define FUZZ_EVERY_PREFIX 128

/* Small limits, so short inputs reach every limit path as well. */
static const struct http_limits small_limits = {
        .max_head = 256, .max_headers = 4, .max_target = 32, .max_body = 64,
};

static struct http_request req, req2;

static const struct front_authority loopback[] = {
        { "127.0.0.1", 8931 }, { "localhost", 8931 }, { "[::1]", 8931 },
};

static bool printable(const char *s) {
        for (; *s; s++)
                if ((*s < 0x20 && *s != '\t') || *s == 0x7f)
                        return false;
        return true;
}

static void check_request(const struct http_request *r, const struct http_limits *lim, int n) {
        if (!r->path || r->path[0] != '/' || !r->host || !*r->host || r->head_len > lim->max_head ||
            r->body_len != r->content_length || r->body_len > lim->max_body ||
            (size_t) n != r->head_len + r->body_len || r->n_headers > lim->max_headers ||
            strstr(r->path, "%00") || (r->query && strstr(r->query, "%00")))
                __builtin_trap();
        for (size_t i = 0; i < r->n_headers; i++)
                if (!printable(r->headers[i].name) || !printable(r->headers[i].value))
                        __builtin_trap();
        /* An allowed Host or Origin always contains one of the listed names. */
        if (front_host_allowed(r->host, false, loopback, ELEMENTSOF(loopback)) &&
            !strcasestr(r->host, "localhost") && !strstr(r->host, "127.0.0.1") && !strstr(r->host, "[::1]"))
                __builtin_trap();
        if (r->origin && front_origin_allowed(r->origin, true, loopback, ELEMENTSOF(loopback)) &&
            strncasecmp(r->origin, "https://", 8) != 0)
                __builtin_trap();
}

/* A verdict never changes when more bytes arrive: a prefix says "need more" or the same thing. */
static void check_prefix(const char *buf, size_t len, const struct http_limits *lim, int whole, size_t cut) {
        int r;

        if (cut > len)
                return;
        r = http_parse_request(buf, cut, lim, &req2);
        if (r != 0 && r != whole)
                __builtin_trap();
        if (whole > 0 && cut < (size_t) whole && r != 0)
                __builtin_trap();
}

/* What the writers make of parsed data: headers echo back, the body becomes SSE data lines that can
 * never end the event early. */
static void write_back(const struct http_request *r) {
        struct outbuf ob;
        struct http_header h[HTTP_MAX_HEADERS];
        size_t n = 0;

        for (size_t i = 0; i < r->n_headers; i++)
                if (strcmp(r->headers[i].name, "connection") != 0 && strcmp(r->headers[i].name, "content-length") != 0)
                        h[n++] = r->headers[i];
        outbuf_init(&ob, 4 * HTTP_MAX_BODY);
        if (http_write_response(&ob, 200, h, n, r->body, r->body_len, r->keep_alive) < 0)
                __builtin_trap();
        outbuf_done(&ob);

        outbuf_init(&ob, 4 * HTTP_MAX_BODY);
        if (memchr(r->body, '\0', r->body_len) == NULL) {
                if (sse_format_event(&ob, "message", NULL, r->body, r->body_len) < 0)
                        __builtin_trap();
                /* Only the terminating blank line may be empty: "\n\n" appears exactly once, at the end. */
                char *end = ob.buf + ob.start + ob.len;
                char *dd = memmem(ob.buf + ob.start, ob.len, "\n\n", 2);
                if (!dd || dd + 2 != end)
                        __builtin_trap();
        }
        outbuf_done(&ob);
}

static void parse_all(const char *buf, size_t len, const struct http_limits *lim) {
        size_t off = 0;

        /* Pipelined requests, one after another, as the front consumes them. */
        while (off < len) {
                int r = http_parse_request(buf + off, len - off, lim, &req);
                if (r < 0 && !http_status_reason(-r))
                        __builtin_trap();
                if (len - off <= FUZZ_EVERY_PREFIX)
                        for (size_t cut = 0; cut < len - off; cut++)
                                check_prefix(buf + off, len - off, lim, r, cut);
                else {
                        check_prefix(buf + off, len - off, lim, r, (len - off) / 2);
                        check_prefix(buf + off, len - off, lim, r, r > 0 ? (size_t) r - 1 : len - off - 1);
                }
                if (r <= 0)
                        return;
                check_request(&req, lim, r);
                write_back(&req);
                off += (size_t) r;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct http_limits def = HTTP_LIMITS_DEFAULT;

        parse_all((const char *) data, size, &def);
        parse_all((const char *) data, size, &small_limits);
        return 0;
}
