/* The configured key set (JWKS, RFC 7517) that access tokens are verified against. Only public
 * signature keys are accepted, and every key is pinned to exactly one algorithm (docs/auth.md). */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <openssl/types.h>

#include "bounds.h"

enum jwt_alg {
        JWT_ALG_RS256,
        JWT_ALG_PS256,
        JWT_ALG_ES256,
        JWT_ALG_EDDSA,
        _JWT_ALG_MAX,
};

struct jwk {
        char kid[BASTION_JWK_MAX_KID + 1];
        enum jwt_alg alg;       /* the only algorithm a token may use with this key */
        EVP_PKEY *pkey;
};

struct jwks {
        struct jwk *keys;
        size_t n_keys;
        /* Unique per parsed set, so a verified-token cache notices a reload and forgets the old set. */
        uint64_t generation;
};

const char *jwt_alg_to_string(enum jwt_alg alg);
/* The enum for "RS256", "PS256", "ES256" or "EdDSA" (exact case); -EINVAL for anything else,
 * including "none" and every HS*. */
int jwt_alg_from_string(const char *s);

/* Parses a JWKS document ({"keys":[…]}) from buf[0..len). Every key must carry a unique "kid" and
 * an "alg" of the four above that fits its kty/crv; RSA keys need ≥ 2048 bits; keys with private or
 * symmetric members (d, p, q, dp, dq, qi, oth, k) are refused, as are unknown kty/crv, a "use"
 * other than "sig" and "key_ops" other than ["verify"]. One bad key refuses the whole document
 * (fail closed, and the operator hears about it at load). Returns 0, -EBADMSG (not JSON), -EINVAL
 * (a key refused; err says which and why), -E2BIG, -ENOMEM. err may be NULL. */
int jwks_parse(const char *buf, size_t len, struct jwks **ret, char *err, size_t errlen);
struct jwks *jwks_free(struct jwks *keys);
static inline void jwks_freep(struct jwks **k) { jwks_free(*k); }

/* The key with that kid, or NULL. */
const struct jwk *jwks_find(const struct jwks *keys, const char *kid);
