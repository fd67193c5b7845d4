/* Compact JSON text of the worker's and the broker's messages, byte for byte what json_dumpb(JSON_COMPACT) writes, at a
 * fraction of its cost: jansson passes every piece through a callback, decodes every string's UTF-8
 * code point by code point and formats every integer with snprintf, which made encoding a tools/call
 * answer cost about as much as running the tool. A real number is written by jansson itself (its
 * %.17g and ".0" rules stay jansson's); a string with invalid UTF-8 fails, as it fails jansson. */
#include "config.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "json_write.h"

/* Deeper than any message the worker or the broker builds (what they parse is bounded at
 * BASTION_MAX_JSON_DEPTH). */
#define JSON_WRITE_MAX_DEPTH 2048

struct writer {
        char *buf;
        size_t cap;
        size_t len;             /* bytes the text needs so far; only the first cap are stored */
        bool ascii;             /* JSON_ENSURE_ASCII: every code point above 0x7f as \\uXXXX */
        bool failed;
};

static void put(struct writer *w, const char *s, size_t n) {
        if (w->len < w->cap)
                memcpy(w->buf + w->len, s, n < w->cap - w->len ? n : w->cap - w->len);
        w->len += n;
}

static void put_char(struct writer *w, char c) {
        if (w->len < w->cap)
                w->buf[w->len] = c;
        w->len++;
}

/* One scalar by jansson (JSON_ENCODE_ANY), into the writer. */
static void put_by_jansson(struct writer *w, const json_t *v) {
        size_t room = w->len < w->cap ? w->cap - w->len : 0;
        char tmp[64];
        size_t n;

        n = json_dumpb(v, room ? w->buf + w->len : tmp, room ? room : sizeof(tmp), JSON_COMPACT | JSON_ENCODE_ANY);
        if (n == 0) {
                w->failed = true;
                return;
        }
        w->len += n;
}

#define ONES UINT64_C(0x0101010101010101)

/* High bit set in each byte of x that is zero (and maybe in a byte above a zero byte: callers only ask
 * whether there is any). */
static inline uint64_t has_zero(uint64_t x) {
        return (x - ONES) & ~x & ONES * 0x80;
}

/* Length of the well-formed UTF-8 sequence (RFC 3629: no overlong form, no surrogate, nothing past
 * U+10FFFF) that starts s[0] (a byte above 0x7f), or 0. */
static size_t utf8_sequence(const unsigned char *s, size_t n) {
        unsigned char c = s[0];
        size_t k = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
        unsigned long cp;

        if (k == 0 || k > n)
                return 0;
        cp = c & (k == 2 ? 0x1f : k == 3 ? 0x0f : 0x07);
        for (size_t i = 1; i < k; i++) {
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
                cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
                return 0;
        return k;
}

static void put_u_escape(struct writer *w, unsigned long v) {
        static const char hex[] = "0123456789ABCDEF";
        char e[6] = { '\\', 'u', hex[v >> 12 & 0xf], hex[v >> 8 & 0xf], hex[v >> 4 & 0xf], hex[v & 0xf] };

        put(w, e, sizeof(e));
}

/* A well-formed UTF-8 sequence of k bytes as jansson's JSON_ENSURE_ASCII writes it: \uXXXX in capitals,
 * a UTF-16 surrogate pair past the BMP. */
static void put_escaped_code_point(struct writer *w, const unsigned char *s, size_t k) {
        unsigned long cp = s[0] & (k == 2 ? 0x1f : k == 3 ? 0x0f : 0x07);

        for (size_t i = 1; i < k; i++)
                cp = cp << 6 | (s[i] & 0x3f);
        if (cp < 0x10000)
                return put_u_escape(w, cp);
        cp -= 0x10000;
        put_u_escape(w, 0xd800 | (cp >> 10));
        put_u_escape(w, 0xdc00 | (cp & 0x3ff));
}

/* A string as jansson writes it: '"', '\\' and control characters escaped (\u00XX in capitals where
 * there is no short form), everything else as it is; invalid UTF-8 fails, as it fails jansson. */
static void put_string(struct writer *w, const char *s, size_t n) {
        static const char hex[] = "0123456789ABCDEF";
        const unsigned char *u = (const unsigned char *) s;
        size_t plain = 0, i = 0;

        put_char(w, '"');
        while (i < n) {
                unsigned char c;
                char esc[6] = { '\\' };
                size_t k = 2;

                /* Eight plain bytes at a time: none below 0x20, none '"' or '\\', none above 0x7f. */
                while (n - i >= 8) {
                        uint64_t x;

                        memcpy(&x, u + i, 8);
                        if (((x - ONES * 0x20) | has_zero(x ^ (ONES * '"')) | has_zero(x ^ (ONES * '\\')) | x) &
                            ONES * 0x80)
                                break;
                        i += 8;
                }
                if (i >= n)
                        break;
                c = u[i];

                if (c >= 0x80) {
                        size_t seq = utf8_sequence(u + i, n - i);

                        if (seq == 0) {
                                w->failed = true;
                                return;
                        }
                        if (w->ascii) {
                                put(w, s + plain, i - plain);
                                put_escaped_code_point(w, u + i, seq);
                                plain = i + seq;
                        }
                        i += seq;
                        continue;
                }
                if (c >= 0x20 && c != '"' && c != '\\') {
                        i++;
                        continue;
                }
                put(w, s + plain, i - plain);
                plain = ++i;
                switch (c) {
                case '"': esc[1] = '"'; break;
                case '\\': esc[1] = '\\'; break;
                case '\b': esc[1] = 'b'; break;
                case '\f': esc[1] = 'f'; break;
                case '\n': esc[1] = 'n'; break;
                case '\r': esc[1] = 'r'; break;
                case '\t': esc[1] = 't'; break;
                default:
                        memcpy(esc + 1, "u00", 3);
                        esc[4] = hex[c >> 4];
                        esc[5] = hex[c & 0xf];
                        k = 6;
                }
                put(w, esc, k);
        }
        put(w, s + plain, n - plain);
        put_char(w, '"');
}

static void put_integer(struct writer *w, json_int_t v) {
        char tmp[24], *p = tmp + sizeof(tmp);
        /* Negated as unsigned: the most negative value has no positive counterpart. */
        unsigned long long u = v < 0 ? -(unsigned long long) v : (unsigned long long) v;

        do
                *--p = (char) ('0' + u % 10);
        while ((u /= 10) > 0);
        if (v < 0)
                *--p = '-';
        put(w, p, tmp + sizeof(tmp) - p);
}

static void put_value(struct writer *w, const json_t *v, unsigned depth) {
        if (w->failed)
                return;
        if (depth > JSON_WRITE_MAX_DEPTH) {
                w->failed = true;
                return;
        }
        switch (json_typeof(v)) {
        case JSON_OBJECT: {
                bool first = true;

                put_char(w, '{');
                for (void *it = json_object_iter((json_t *) v); it && !w->failed;
                     it = json_object_iter_next((json_t *) v, it)) {
                        if (!first)
                                put_char(w, ',');
                        first = false;
                        put_string(w, json_object_iter_key(it), json_object_iter_key_len(it));
                        put_char(w, ':');
                        put_value(w, json_object_iter_value(it), depth + 1);
                }
                put_char(w, '}');
                break;
        }
        case JSON_ARRAY: {
                size_t n = json_array_size(v);

                put_char(w, '[');
                for (size_t i = 0; i < n && !w->failed; i++) {
                        if (i > 0)
                                put_char(w, ',');
                        put_value(w, json_array_get(v, i), depth + 1);
                }
                put_char(w, ']');
                break;
        }
        case JSON_STRING:
                put_string(w, json_string_value(v), json_string_length(v));
                break;
        case JSON_INTEGER:
                put_integer(w, json_integer_value(v));
                break;
        case JSON_REAL:
                put_by_jansson(w, v);
                break;
        case JSON_TRUE:
                put(w, "true", 4);
                break;
        case JSON_FALSE:
                put(w, "false", 5);
                break;
        case JSON_NULL:
                put(w, "null", 4);
                break;
        default:
                w->failed = true;
        }
}

size_t json_write_compact(const json_t *v, char *buf, size_t cap) {
        return json_write(v, buf, cap, false);
}

size_t json_write(const json_t *v, char *buf, size_t cap, bool ensure_ascii) {
        struct writer w = { .buf = buf, .cap = cap, .ascii = ensure_ascii };

        /* As json_dumpb without JSON_ENCODE_ANY: only an object or an array is a document. */
        if (!json_is_object(v) && !json_is_array(v))
                return 0;
        put_value(&w, v, 0);
        return w.failed ? 0 : w.len;
}
