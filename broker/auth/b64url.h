/* Strict base64url (RFC 4648 §5) as JWS compact serialisation uses it: no padding, no whitespace,
 * canonical trailing bits, so every byte string has exactly one accepted encoding. */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Bytes that a valid encoding of len characters decodes to (0 for an impossible length). */
size_t b64url_decoded_size(size_t len);

/* Decodes s[0..len) into a new buffer (NUL-terminated for convenience, not counted in *ret_size).
 * -EINVAL for any character outside the alphabet, '=' padding, a length of 4k+1, or non-zero
 * trailing bits; -ENOMEM. *ret and *ret_size are written only on success. */
int b64url_decode(const char *s, size_t len, uint8_t **ret, size_t *ret_size);

/* Encodes without padding; NULL on allocation failure. */
char *b64url_encode(const uint8_t *p, size_t n);
