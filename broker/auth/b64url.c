/* Strict base64url for JWS: one encoding per byte string, so a token cannot be re-encoded into a
 * different string that verifies (and hashes) differently. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "b64url.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_value(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '-')
                return 62;
        if (c == '_')
                return 63;
        return -1;
}

size_t b64url_decoded_size(size_t len) {
        if (len % 4 == 1)
                return 0;
        return len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
}

int b64url_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_size) {
        size_t n = b64url_decoded_size(len), o = 0;
        uint32_t acc = 0;
        unsigned bits = 0;
        uint8_t *out;

        if (len % 4 == 1)
                return -EINVAL;
        out = malloc(n + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i < len; i++) {
                int v = b64url_value(s[i]);

                if (v < 0) {
                        free(out);
                        return -EINVAL;
                }
                acc = (acc << 6) | (uint32_t) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        out[o++] = (uint8_t) (acc >> bits);
                }
        }
        /* Leftover bits (2 or 4) must be zero: otherwise several strings decode to the same bytes. */
        if (acc & ((1u << bits) - 1)) {
                free(out);
                return -EINVAL;
        }
        out[o] = 0;
        *ret = out;
        *ret_size = o;
        return 0;
}

char *b64url_encode(const uint8_t *p, size_t n) {
        char *out = malloc(n / 3 * 4 + 4 + 1), *q = out;
        uint32_t acc = 0;
        unsigned bits = 0;

        if (!out)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                acc = (acc << 8) | p[i];
                bits += 8;
                while (bits >= 6) {
                        bits -= 6;
                        *q++ = alphabet[(acc >> bits) & 63];
                }
        }
        if (bits > 0)
                *q++ = alphabet[(acc << (6 - bits)) & 63];
        *q = 0;
        return out;
}
