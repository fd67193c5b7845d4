/* JWS compact access-token verification: strict form, pinned algorithm, signature, then claims.
 * Claims are not looked at until the signature has verified. */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "auth-internal.h"
#include "b64url.h"
#include "jwt.h"
#include "util.h"

static const struct {
        const char *name;
        int error;
} reasons[_JWT_REASON_MAX] = {
        [JWT_OK] = { "ok", 0 },
        [JWT_R_MISSING] = { "missing", ENODATA },
        [JWT_R_TOO_LONG] = { "too-long", E2BIG },
        [JWT_R_MALFORMED] = { "malformed", EBADMSG },
        [JWT_R_BAD_BASE64] = { "bad-base64url", EBADMSG },
        [JWT_R_BAD_HEADER] = { "bad-header", EBADMSG },
        [JWT_R_DUPLICATE_MEMBER] = { "duplicate-member", EBADMSG },
        [JWT_R_CRIT] = { "crit", EOPNOTSUPP },
        [JWT_R_BAD_TYP] = { "bad-typ", EBADMSG },
        [JWT_R_UNKNOWN_KID] = { "unknown-kid", ENOKEY },
        [JWT_R_ALG_MISMATCH] = { "alg-mismatch", EPERM },
        [JWT_R_SIGNATURE_LENGTH] = { "signature-length", EKEYREJECTED },
        [JWT_R_BAD_SIGNATURE] = { "bad-signature", EKEYREJECTED },
        [JWT_R_BAD_CLAIMS] = { "bad-claims", EBADMSG },
        [JWT_R_CLAIM_TOO_LONG] = { "claim-too-long", EBADMSG },
        [JWT_R_ISSUER] = { "issuer", EACCES },
        [JWT_R_AUDIENCE] = { "audience", EACCES },
        [JWT_R_NO_EXP] = { "no-exp", EBADMSG },
        [JWT_R_EXPIRED] = { "expired", EKEYEXPIRED },
        [JWT_R_NOT_YET_VALID] = { "not-yet-valid", ETIME },
        [JWT_R_IAT_FUTURE] = { "iat-in-future", ETIME },
        [JWT_R_NO_SUB] = { "no-sub", EBADMSG },
        [JWT_R_INTERNAL] = { "internal", ENOMEM },
};

/* One verification: where the reason and the message go. */
struct verify {
        enum jwt_reason reason;
        char *err;
        size_t errlen;
};

/* The three decoded parts of a compact JWS; signing_input points into the caller's token. */
struct jws {
        const char *signing_input;
        size_t signing_input_len;
        uint8_t *header, *payload, *sig;
        size_t header_size, payload_size, sig_size;
};

static void jws_done(struct jws *j) {
        free(j->header);
        free(j->payload);
        free(j->sig);
}

const char *jwt_reason_to_string(enum jwt_reason reason) {
        return reason >= 0 && reason < _JWT_REASON_MAX ? reasons[reason].name : "unknown";
}

static int refuse(struct verify *v, enum jwt_reason why, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int refuse(struct verify *v, enum jwt_reason why, const char *fmt, ...) {
        va_list ap;

        v->reason = why;
        if (v->err && v->errlen > 0) {
                va_start(ap, fmt);
                vsnprintf(v->err, v->errlen, fmt, ap);
                va_end(ap);
        }
        return -reasons[why].error;
}

static int jws_decode_part(struct verify *v, const char *what, const char *s, size_t len, bool may_be_empty,
                           uint8_t **ret, size_t *ret_size) {
        int r;

        if (len == 0 && !may_be_empty)
                return refuse(v, JWT_R_MALFORMED, "empty %s", what);
        r = b64url_decode(s, len, ret, ret_size);
        if (r == -ENOMEM)
                return refuse(v, JWT_R_INTERNAL, "out of memory");
        if (r < 0)
                return refuse(v, JWT_R_BAD_BASE64, "%s is not strict base64url", what);
        return 0;
}

/* Exactly header.payload.signature, each part strict base64url. */
static int jws_split(struct verify *v, const char *token, size_t len, struct jws *j) {
        const char *dot1, *dot2;
        int r;

        if (!token || len == 0)
                return refuse(v, JWT_R_MISSING, "no bearer token");
        if (len > BASTION_JWT_MAX_TOKEN)
                return refuse(v, JWT_R_TOO_LONG, "token is %zu bytes, at most %d accepted", len, BASTION_JWT_MAX_TOKEN);
        dot1 = memchr(token, '.', len);
        dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t) (dot1 + 1 - token)) : NULL;
        if (!dot2 || memchr(dot2 + 1, '.', len - (size_t) (dot2 + 1 - token)))
                return refuse(v, JWT_R_MALFORMED, "not three dot-separated parts");
        j->signing_input = token;
        j->signing_input_len = (size_t) (dot2 - token);
        r = jws_decode_part(v, "header", token, (size_t) (dot1 - token), false, &j->header, &j->header_size);
        if (r >= 0)
                r = jws_decode_part(v, "payload", dot1 + 1, (size_t) (dot2 - dot1 - 1), false,
                                    &j->payload, &j->payload_size);
        /* An empty signature (alg "none") passes here so that it is refused for what it is: an alg
         * that no key is pinned to. */
        if (r >= 0)
                r = jws_decode_part(v, "signature", dot2 + 1, len - (size_t) (dot2 + 1 - token), true,
                                    &j->sig, &j->sig_size);
        return r;
}

/* A JSON object, with duplicate members refused (two "alg" or two "aud" must not be read by
 * different parsers differently). */
static int jws_parse_object(struct verify *v, const char *what, enum jwt_reason bad,
                             const uint8_t *p, size_t size, json_t **ret) {
        json_error_t jerr;
        json_t *o = json_loadb((const char *) p, size, JSON_REJECT_DUPLICATES, &jerr);

        if (!o) {
                if (json_error_code(&jerr) == json_error_duplicate_key)
                        return refuse(v, JWT_R_DUPLICATE_MEMBER, "%s has a duplicate member", what);
                return refuse(v, bad, "%s is not JSON", what);
        }
        if (!json_is_object(o)) {
                json_decref(o);
                return refuse(v, bad, "%s is not a JSON object", what);
        }
        *ret = o;
        return 0;
}

/* "JWT", "at+jwt", with or without "application/", any case (RFC 9068 §2.1, RFC 7515 §4.1.9). */
static bool typ_acceptable(const char *typ) {
        if (strncasecmp(typ, "application/", 12) == 0)
                typ += 12;
        return strcasecmp(typ, "jwt") == 0 || strcasecmp(typ, "at+jwt") == 0;
}

/* Header → the key it names, whose pinned alg must be the header's alg. */
static int header_key(struct verify *v, const struct jwks *keys, const struct jws *j, const struct jwk **ret) {
        _cleanup_json_ json_t *h = NULL;
        const char *alg, *kid, *typ;
        const struct jwk *key;
        char p1[AUTH_PRINTABLE_MAX], p2[AUTH_PRINTABLE_MAX];
        int r;

        r = jws_parse_object(v, "header", JWT_R_BAD_HEADER, j->header, j->header_size, &h);
        if (r < 0)
                return r;
        alg = json_string_value(json_object_get(h, "alg"));
        kid = json_string_value(json_object_get(h, "kid"));
        if (!alg || !kid)
                return refuse(v, JWT_R_BAD_HEADER, "header needs string \"alg\" and \"kid\"");
        if (json_object_get(h, "crit"))
                return refuse(v, JWT_R_CRIT, "header has \"crit\": no extensions are understood");
        if (json_object_get(h, "typ")) {
                typ = json_string_value(json_object_get(h, "typ"));
                if (!typ || !typ_acceptable(typ))
                        return refuse(v, JWT_R_BAD_TYP, "typ \"%s\" is neither JWT nor at+jwt",
                                      auth_printable(typ, p1));
        }
        key = jwks_find(keys, kid);
        if (!key)
                return refuse(v, JWT_R_UNKNOWN_KID, "unknown kid \"%s\"", auth_printable(kid, p1));
        if (!streq(alg, jwt_alg_to_string(key->alg)))
                return refuse(v, JWT_R_ALG_MISMATCH, "alg \"%s\" not allowed for kid \"%s\" (pinned to %s)",
                              auth_printable(alg, p1), auth_printable(kid, p2), jwt_alg_to_string(key->alg));
        *ret = key;
        return 0;
}

/* JWS carries ECDSA as raw r||s (RFC 7518 §3.4); OpenSSL verifies DER. Exactly 64 bytes in, so a
 * DER or truncated signature never reaches the ASN.1 code. P-256 DER is at most 72 bytes. */
#define ES256_DER_MAX 80
static int es256_to_der(const uint8_t *raw, uint8_t der[static ES256_DER_MAX], size_t *ret_size) {
        ECDSA_SIG *s = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(raw, 32, NULL), *sv = BN_bin2bn(raw + 32, 32, NULL);
        unsigned char *p = der;
        int n = -1;

        if (s && r && sv && ECDSA_SIG_set0(s, r, sv) > 0) {
                r = sv = NULL; /* owned by s now */
                n = i2d_ECDSA_SIG(s, NULL);
                if (n > 0 && n <= ES256_DER_MAX)
                        n = i2d_ECDSA_SIG(s, &p);
                else
                        n = -1;
        }
        ECDSA_SIG_free(s);
        BN_free(r);
        BN_free(sv);
        if (n <= 0)
                return -ENOMEM;
        *ret_size = (size_t) n;
        return 0;
}

static size_t sig_expected_size(const struct jwk *key) {
        if (key->alg == JWT_ALG_ES256 || key->alg == JWT_ALG_EDDSA)
                return 64;
        return (size_t) EVP_PKEY_get_size(key->pkey); /* RSA: the modulus size */
}

/* 1 verified, 0 did not, -ENOMEM when OpenSSL could not even try. */
static int evp_verify(const struct jwk *key, const struct jws *j, const uint8_t *sig, size_t sig_size) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;
        int r = -ENOMEM;

        if (!md || EVP_DigestVerifyInit(md, &pctx, key->alg == JWT_ALG_EDDSA ? NULL : EVP_sha256(),
                                        NULL, key->pkey) <= 0)
                goto out;
        if (key->alg == JWT_ALG_PS256 &&
            (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
             EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) <= 0 ||
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0))
                goto out;
        r = EVP_DigestVerify(md, sig, sig_size, (const unsigned char *) j->signing_input,
                             j->signing_input_len) == 1;
out:
        ERR_clear_error();
        EVP_MD_CTX_free(md);
        return r;
}

static int signature_check(struct verify *v, const struct jwk *key, const struct jws *j) {
        uint8_t der[ES256_DER_MAX];
        const uint8_t *sig = j->sig;
        size_t sig_size = j->sig_size;
        int r;

        if (sig_size != sig_expected_size(key))
                return refuse(v, JWT_R_SIGNATURE_LENGTH, "%s signature is %zu bytes, %zu expected",
                              jwt_alg_to_string(key->alg), sig_size, sig_expected_size(key));
        if (key->alg == JWT_ALG_ES256) {
                if (es256_to_der(j->sig, der, &sig_size) < 0)
                        return refuse(v, JWT_R_INTERNAL, "out of memory");
                sig = der;
        }
        r = evp_verify(key, j, sig, sig_size);
        if (r < 0)
                return refuse(v, JWT_R_INTERNAL, "OpenSSL could not verify with kid \"%s\"", key->kid);
        if (r == 0)
                return refuse(v, JWT_R_BAD_SIGNATURE, "signature does not verify with kid \"%s\"", key->kid);
        return 0;
}

/* NumericDate (RFC 7519 §2): integer or fractional seconds; absent leaves *present false. */
static int claim_time(struct verify *v, json_t *claims, const char *name, bool *present, int64_t *ret) {
        json_t *t = json_object_get(claims, name);
        double d;

        *present = t != NULL;
        if (!t)
                return 0;
        if (json_is_integer(t)) {
                *ret = json_integer_value(t);
                return 0;
        }
        d = json_is_real(t) ? json_real_value(t) : 0;
        /* Beyond ±2^53 s a double is no date anyone issues, and the int64 conversion must stay defined. */
        if (!json_is_real(t) || d < -9007199254740992.0 || d > 9007199254740992.0)
                return refuse(v, JWT_R_BAD_CLAIMS, "\"%s\" is not a NumericDate", name);
        *ret = (int64_t) d;
        return 0;
}

/* An optional string claim copied into buf ("" when absent or when name is NULL). */
static int claim_string(struct verify *v, json_t *claims, const char *name, char *buf, size_t size) {
        json_t *s = name ? json_object_get(claims, name) : NULL;
        char p[AUTH_PRINTABLE_MAX];

        buf[0] = 0;
        if (!s)
                return 0;
        if (!json_is_string(s))
                return refuse(v, JWT_R_BAD_CLAIMS, "claim \"%s\" is not a string", auth_printable(name, p));
        if (json_string_length(s) >= size)
                return refuse(v, JWT_R_CLAIM_TOO_LONG, "claim \"%s\" is longer than %zu bytes",
                              auth_printable(name, p), size - 1);
        memcpy(buf, json_string_value(s), json_string_length(s) + 1);
        return 0;
}

/* The token's scopes as one space-separated string: "scope" (RFC 9068, RFC 8693) when present, else
 * "scp" as issued by some servers, a string or an array of scope strings (joined with spaces). */
static int claim_scopes(struct verify *v, json_t *claims, char *buf, size_t size) {
        json_t *scp = json_object_get(claims, "scp"), *s;
        size_t i, n = 0;

        if (json_object_get(claims, "scope") || !json_is_array(scp))
                return claim_string(v, claims, json_object_get(claims, "scope") ? "scope" : "scp", buf, size);
        buf[0] = 0;
        json_array_foreach(scp, i, s) {
                size_t len = json_string_length(s);

                if (!json_is_string(s) || len == 0 || strchr(json_string_value(s), ' '))
                        return refuse(v, JWT_R_BAD_CLAIMS, "claim \"scp\" has an entry that is not one scope");
                if (n + (n > 0) + len >= size)
                        return refuse(v, JWT_R_CLAIM_TOO_LONG, "claim \"scp\" is longer than %zu bytes", size - 1);
                if (n > 0)
                        buf[n++] = ' ';
                memcpy(buf + n, json_string_value(s), len + 1);
                n += len;
        }
        return 0;
}

/* RFC 8707 audience binding: a token minted for another server of this host is not ours. */
static int audience_check(struct verify *v, json_t *claims, const char *audience) {
        json_t *aud = json_object_get(claims, "aud"), *a;
        size_t i;

        if (json_is_string(aud)) {
                if (streq(json_string_value(aud), audience))
                        return 0;
        } else if (json_is_array(aud)) {
                if (json_array_size(aud) > BASTION_JWT_MAX_AUD)
                        return refuse(v, JWT_R_BAD_CLAIMS, "\"aud\" has more than %d entries", BASTION_JWT_MAX_AUD);
                json_array_foreach(aud, i, a)
                        if (!json_is_string(a))
                                return refuse(v, JWT_R_BAD_CLAIMS, "\"aud\" has an entry that is not a string");
                json_array_foreach(aud, i, a)
                        if (streq(json_string_value(a), audience))
                                return 0;
        } else if (aud)
                return refuse(v, JWT_R_BAD_CLAIMS, "\"aud\" is neither a string nor an array");
        return refuse(v, JWT_R_AUDIENCE, "token is not for audience %s", audience ? audience : "(none configured)");
}

static int claims_time_check(struct verify *v, json_t *claims, const struct jwt_expect *e, time_t now,
                             struct jwt_claims *c) {
        int64_t leeway = e->leeway_sec;
        bool has_exp, has_nbf, has_iat;
        int r;

        if ((r = claim_time(v, claims, "exp", &has_exp, &c->exp)) < 0 ||
            (r = claim_time(v, claims, "nbf", &has_nbf, &c->nbf)) < 0 ||
            (r = claim_time(v, claims, "iat", &has_iat, &c->iat)) < 0)
                return r;
        if (!has_exp)
                return refuse(v, JWT_R_NO_EXP, "token has no \"exp\"");
        if ((int64_t) now - leeway >= c->exp)
                return refuse(v, JWT_R_EXPIRED, "token expired %" PRId64 " s ago", (int64_t) now - c->exp);
        if (has_nbf && c->nbf > (int64_t) now + leeway)
                return refuse(v, JWT_R_NOT_YET_VALID, "token not valid for another %" PRId64 " s",
                              c->nbf - (int64_t) now);
        if (has_iat && c->iat > (int64_t) now + leeway)
                return refuse(v, JWT_R_IAT_FUTURE, "token issued %" PRId64 " s in the future", c->iat - (int64_t) now);
        return 0;
}

/* Claims of a token whose signature has verified. */
static int claims_check(struct verify *v, const struct jws *j, const struct jwt_expect *e, time_t now,
                        struct jwt_claims *c) {
        _cleanup_json_ json_t *claims = NULL;
        int r;

        r = jws_parse_object(v, "claims", JWT_R_BAD_CLAIMS, j->payload, j->payload_size, &claims);
        if (r < 0)
                return r;
        if (!json_is_string(json_object_get(claims, "iss")) ||
            !streq(json_string_value(json_object_get(claims, "iss")), e->issuer))
                return refuse(v, JWT_R_ISSUER, "token is not from issuer %s",
                              e->issuer ? e->issuer : "(none configured)");
        r = audience_check(v, claims, e->audience);
        if (r < 0)
                return r;
        r = claims_time_check(v, claims, e, now, c);
        if (r < 0)
                return r;
        if ((r = claim_string(v, claims, "sub", c->sub, sizeof(c->sub))) < 0 ||
            (r = claim_scopes(v, claims, c->scope, sizeof(c->scope))) < 0 ||
            (r = claim_string(v, claims, e->role_claim, c->role, sizeof(c->role))) < 0 ||
            (r = claim_string(v, claims, e->tenant_claim, c->tenant, sizeof(c->tenant))) < 0)
                return r;
        if (c->sub[0] == 0)
                return refuse(v, JWT_R_NO_SUB, "token has no \"sub\"");
        return 0;
}

int jwt_verify(const struct jwks *keys, const char *token, size_t len, const struct jwt_expect *expect,
               time_t now, struct jwt_claims *ret, enum jwt_reason *ret_reason, char *err, size_t errlen) {
        struct verify v = { .reason = JWT_OK, .err = err, .errlen = errlen };
        struct jws j = {};
        struct jwt_claims c = {};
        const struct jwk *key = NULL;
        int r;

        r = jws_split(&v, token, len, &j);
        if (r >= 0)
                r = header_key(&v, keys, &j, &key);
        if (r >= 0)
                r = signature_check(&v, key, &j);
        if (r >= 0)
                r = claims_check(&v, &j, expect, now, &c);
        jws_done(&j);
        if (ret_reason)
                *ret_reason = v.reason;
        if (r < 0)
                return r;
        strcpy(c.kid, key->kid);
        c.alg = key->alg;
        *ret = c;
        if (err && errlen > 0)
                err[0] = 0;
        return 0;
}

bool jwt_claims_has_scope(const struct jwt_claims *c, const char *scope) {
        return jwt_scope_list_has(c->scope, scope);
}

bool jwt_scope_list_has(const char *list, const char *scope) {
        size_t n = scope ? strlen(scope) : 0;

        if (n == 0)
                return false;
        for (const char *p = list; *p; ) {
                size_t w = strcspn(p, " ");

                if (w == n && memcmp(p, scope, n) == 0)
                        return true;
                p += w;
                p += strspn(p, " ");
        }
        return false;
}
