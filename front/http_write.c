/* HTTP/1.1 responses, chunked bodies and SSE event framing, appended to an outbuf. Every header the
 * caller passes is checked, so no value can split a response or smuggle a second framing header. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "util.h"

const char *http_status_reason(int status) {
        switch (status) {
        case 100: return "Continue";
        case 200: return "OK";
        case 202: return "Accepted";
        case 204: return "No Content";
        case 400: return "Bad Request";
        case 401: return "Unauthorized";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 406: return "Not Acceptable";
        case 408: return "Request Timeout";
        case 411: return "Length Required";
        case 413: return "Content Too Large";
        case 414: return "URI Too Long";
        case 415: return "Unsupported Media Type";
        case 417: return "Expectation Failed";
        case 429: return "Too Many Requests";
        case 431: return "Request Header Fields Too Large";
        case 500: return "Internal Server Error";
        case 501: return "Not Implemented";
        case 502: return "Bad Gateway";
        case 503: return "Service Unavailable";
        case 504: return "Gateway Timeout";
        case 505: return "HTTP Version Not Supported";
        }
        return NULL;
}

static bool header_name_ok(const char *n) {
        if (!n || !*n)
                return false;
        for (; *n; n++)
                if (!((*n >= 'a' && *n <= 'z') || (*n >= 'A' && *n <= 'Z') || (*n >= '0' && *n <= '9') ||
                      strchr("!#$%&'*+-.^_`|~", *n)))
                        return false;
        return true;
}

static bool header_value_ok(const char *v) {
        if (!v)
                return false;
        for (; *v; v++)
                if (*v != '\t' && ((unsigned char) *v < 0x20 || (unsigned char) *v == 0x7f))
                        return false;
        return true;
}

/* The writer owns the message framing; a caller-supplied copy would make two framings. */
static bool header_is_framing(const char *n) {
        return strcasecmp(n, "content-length") == 0 || strcasecmp(n, "transfer-encoding") == 0 ||
                strcasecmp(n, "connection") == 0;
}

static int put_str(struct outbuf *ob, const char *s) {
        return outbuf_put(ob, s, strlen(s), false);
}

static int put_headers(struct outbuf *ob, const struct http_header *h, size_t n) {
        int r;

        for (size_t i = 0; i < n; i++)
                if ((r = put_str(ob, h[i].name)) < 0 || (r = outbuf_put(ob, ": ", 2, false)) < 0 ||
                    (r = put_str(ob, h[i].value)) < 0 || (r = outbuf_put(ob, "\r\n", 2, false)) < 0)
                        return r;
        return 0;
}

static int check_headers(const struct http_header *h, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (!header_name_ok(h[i].name) || !header_value_ok(h[i].value) || header_is_framing(h[i].name))
                        return -EINVAL;
        return 0;
}

/* Status line, caller headers (checked before anything is queued), the framing lines, the blank line.
 * Written piece by piece, without printf: this runs for every answer. */
static int put_head(struct outbuf *ob, int status, const struct http_header *h, size_t n, const char *framing,
                    const char *framing_end) {
        const char *reason = http_status_reason(status);
        char code[] = "HTTP/1.1 000 ";
        int r;

        if (!reason || check_headers(h, n) < 0)
                return -EINVAL;
        /* A status with a reason is three digits. */
        code[9] = (char) ('0' + status / 100);
        code[10] = (char) ('0' + status / 10 % 10);
        code[11] = (char) ('0' + status % 10);
        if ((r = outbuf_put(ob, code, sizeof(code) - 1, false)) < 0 || (r = put_str(ob, reason)) < 0 ||
            (r = outbuf_put(ob, "\r\n", 2, false)) < 0 || (r = put_headers(ob, h, n)) < 0 ||
            (r = put_str(ob, framing)) < 0 || (r = put_str(ob, framing_end)) < 0)
                return r;
        return outbuf_put(ob, "\r\n", 2, false);
}

int http_write_response(struct outbuf *ob, int status, const struct http_header *headers, size_t n_headers,
                        const void *body, size_t body_len, bool keep_alive) {
        char length[64], digits[24];
        size_t d = sizeof(digits);
        int r;

        /* 1xx and 204 have no body and must not carry Content-Length (RFC 9110 §8.6); an interim 1xx
         * says nothing about the connection either. */
        if (status < 200 || status == 204) {
                if (body_len > 0)
                        return -EINVAL;
                length[0] = '\0';
                keep_alive = keep_alive || status < 200;
        } else {
                size_t v = body_len;

                do
                        digits[--d] = (char) ('0' + v % 10);
                while ((v /= 10) > 0);
                memcpy(length, "Content-Length: ", 16);
                memcpy(length + 16, digits + d, sizeof(digits) - d);
                memcpy(length + 16 + sizeof(digits) - d, "\r\n", 3);
        }
        r = put_head(ob, status, headers, n_headers, length, keep_alive ? "" : "Connection: close\r\n");
        if (r < 0)
                return r;
        return body_len > 0 ? outbuf_put(ob, body, body_len, false) : 0;
}

int http_write_sse_head(struct outbuf *ob, int status, const struct http_header *headers, size_t n_headers,
                        bool keep_alive) {
        return put_head(ob, status, headers, n_headers,
                        "Content-Type: text/event-stream\r\nCache-Control: no-cache\r\nX-Accel-Buffering: no\r\n"
                        "Transfer-Encoding: chunked\r\n", keep_alive ? "" : "Connection: close\r\n");
}

int http_write_chunk(struct outbuf *ob, const void *data, size_t len) {
        char size[32];
        int r;

        /* A zero-length chunk is the end of the body; an empty write is not. */
        if (len == 0)
                return 0;
        snprintf(size, sizeof(size), "%zx\r\n", len);
        if ((r = put_str(ob, size)) < 0 || (r = outbuf_put(ob, data, len, false)) < 0)
                return r;
        return outbuf_put(ob, "\r\n", 2, false);
}

int http_write_chunk_end(struct outbuf *ob) {
        return put_str(ob, "0\r\n\r\n");
}

/* A field value that must stay on one line (event name, id, comment). */
static bool sse_single_line(const char *s) {
        return s && !strpbrk(s, "\r\n");
}

static int sse_put_field(struct outbuf *ob, const char *field, const char *value, size_t len) {
        int r;

        if ((r = put_str(ob, field)) < 0 || (r = outbuf_put(ob, ": ", len > 0 ? 2 : 1, false)) < 0 ||
            (r = outbuf_put(ob, value, len, false)) < 0)
                return r;
        return outbuf_put(ob, "\n", 1, false);
}

int sse_format_event(struct outbuf *ob, const char *event, const char *id, const char *data, size_t data_len) {
        size_t start = 0;
        int r;

        if ((event && !sse_single_line(event)) || (id && !sse_single_line(id)) || (!data && data_len > 0) ||
            (data && memchr(data, '\0', data_len)))
                return -EINVAL;
        if (event && (r = sse_put_field(ob, "event", event, strlen(event))) < 0)
                return r;
        if (id && (r = sse_put_field(ob, "id", id, strlen(id))) < 0)
                return r;
        /* SSE ends a line at CRLF, CR or LF; each line of data becomes one "data:" field, and the
         * client joins them back with LF. */
        for (size_t i = 0; i <= data_len; i++) {
                if (i < data_len && data[i] != '\r' && data[i] != '\n')
                        continue;
                if ((r = sse_put_field(ob, "data", data ? data + start : "", i - start)) < 0)
                        return r;
                if (i + 1 < data_len && data[i] == '\r' && data[i + 1] == '\n')
                        i++;
                start = i + 1;
        }
        return outbuf_put(ob, "\n", 1, false);
}

int sse_format_comment(struct outbuf *ob, const char *text) {
        int r;

        if (!sse_single_line(text))
                return -EINVAL;
        if ((r = outbuf_put(ob, ": ", 2, false)) < 0 || (r = put_str(ob, text)) < 0)
                return r;
        return outbuf_put(ob, "\n\n", 2, false);
}

int sse_format_retry(struct outbuf *ob, unsigned retry_ms) {
        char line[32];

        snprintf(line, sizeof(line), "retry: %u\n\n", retry_ms);
        return put_str(ob, line);
}
