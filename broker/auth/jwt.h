/* Bearer access-token verification (RFC 9068 / RFC 7519 JWS compact) against a pinned key set,
 * and the verified-token cache. Pure: no I/O, the caller passes the time. docs/auth.md says what is
 * checked in which order and why. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "bounds.h"
#include "jwks.h"

/* Why a token was refused: stable names (jwt_reason_to_string) for the audit log. */
enum jwt_reason {
        JWT_OK,
        JWT_R_MISSING,          /* no token or an empty one */
        JWT_R_TOO_LONG,         /* longer than BASTION_JWT_MAX_TOKEN */
        JWT_R_MALFORMED,        /* not header.payload.signature with a non-empty header and payload */
        JWT_R_BAD_BASE64,       /* not strict base64url (padding, alphabet, trailing bits) */
        JWT_R_BAD_HEADER,       /* header not a JSON object, or alg/kid missing or not strings */
        JWT_R_DUPLICATE_MEMBER, /* a JSON member twice in header or claims */
        JWT_R_CRIT,             /* "crit" present: we understand no extensions */
        JWT_R_BAD_TYP,          /* "typ" neither JWT nor at+jwt */
        JWT_R_UNKNOWN_KID,      /* no key with that kid */
        JWT_R_ALG_MISMATCH,     /* header alg differs from the key's pinned alg (none, HS*, …) */
        JWT_R_SIGNATURE_LENGTH, /* signature has the wrong size for the algorithm */
        JWT_R_BAD_SIGNATURE,    /* the signature does not verify */
        JWT_R_BAD_CLAIMS,       /* claims not a JSON object, or a claim of the wrong type */
        JWT_R_CLAIM_TOO_LONG,   /* sub, scope, role or tenant beyond its bound */
        JWT_R_ISSUER,           /* iss missing or not the configured issuer */
        JWT_R_AUDIENCE,         /* aud missing or not containing this server's resource URI */
        JWT_R_NO_EXP,           /* exp missing */
        JWT_R_EXPIRED,          /* now ≥ exp + leeway */
        JWT_R_NOT_YET_VALID,    /* nbf > now + leeway */
        JWT_R_IAT_FUTURE,       /* iat > now + leeway */
        JWT_R_NO_SUB,           /* sub missing or empty */
        JWT_R_INTERNAL,         /* out of memory or an OpenSSL failure; not the token's fault */
        _JWT_REASON_MAX,
};

const char *jwt_reason_to_string(enum jwt_reason reason);

/* What this server expects of a token. */
struct jwt_expect {
        const char *issuer;     /* exact match of "iss" */
        const char *audience;   /* this server's resource URI; "aud" must contain it exactly */
        unsigned leeway_sec;    /* clock skew for exp, nbf, iat (BASTION_JWT_DEFAULT_LEEWAY_SEC) */
        const char *role_claim;   /* claim holding the role, NULL for none */
        const char *tenant_claim; /* claim holding the tenant, NULL for none */
};

/* A verified token, as a fixed-size record. Strings are "" when the claim is absent (role and
 * tenant are optional here; whoever maps them to permissions fails closed on ""). */
struct jwt_claims {
        char sub[BASTION_JWT_MAX_SUB + 1];
        char scope[BASTION_JWT_MAX_SCOPE + 1];  /* space-separated: "scope", else "scp" joined */
        char role[BASTION_JWT_MAX_ROLE + 1];
        char tenant[BASTION_JWT_MAX_TENANT + 1];
        char kid[BASTION_JWK_MAX_KID + 1];
        enum jwt_alg alg;
        int64_t exp, iat, nbf;  /* iat, nbf: 0 when absent */
};

/* Verifies token[0..len) against keys and expect at time now. Returns 0 and fills *ret, or a
 * negative errno (-ENODATA, -E2BIG, -EBADMSG, -EOPNOTSUPP, -ENOKEY, -EPERM, -EKEYREJECTED, -EACCES,
 * -EKEYEXPIRED, -ETIME, -ENOMEM) with *ret_reason (may be NULL) and err (may be NULL) saying
 * exactly why. *ret is written only on success; ret_reason is always written. The token itself is
 * never copied into err. */
int jwt_verify(const struct jwks *keys, const char *token, size_t len, const struct jwt_expect *expect,
               time_t now, struct jwt_claims *ret, enum jwt_reason *ret_reason, char *err, size_t errlen);

/* Whether the space-separated scope claim grants exactly that scope (no prefixes, no wildcards). */
bool jwt_claims_has_scope(const struct jwt_claims *c, const char *scope);
/* The same test on any space-separated scope list (a principal keeps its token's list). */
bool jwt_scope_list_has(const char *list, const char *scope);

/* Verified-token cache: a token verified once for an expectation is accepted again, without the
 * signature check, until its exp (+ leeway). Keyed by SHA-256 over the expectation and the token;
 * the token is never stored. Cleared when full and whenever a different key set is passed. */
struct jwt_cache;

int jwt_cache_new(size_t max_entries, struct jwt_cache **ret);
struct jwt_cache *jwt_cache_free(struct jwt_cache *c);
static inline void jwt_cache_freep(struct jwt_cache **c) { jwt_cache_free(*c); }
void jwt_cache_clear(struct jwt_cache *c);
size_t jwt_cache_entries(const struct jwt_cache *c);
uint64_t jwt_cache_hits(const struct jwt_cache *c);

/* jwt_verify() through the cache; cache may be NULL (then it is jwt_verify()). */
int jwt_verify_cached(struct jwt_cache *cache, const struct jwks *keys, const char *token, size_t len,
                      const struct jwt_expect *expect, time_t now, struct jwt_claims *ret,
                      enum jwt_reason *ret_reason, char *err, size_t errlen);
