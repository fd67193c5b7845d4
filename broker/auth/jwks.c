/* JWKS parsing: public signature keys only, each pinned to one algorithm, imported into OpenSSL
 * once at load so verification never looks at the JSON again. */
#include "config.h"

#include <stdarg.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "auth-internal.h"
#include "b64url.h"
#include "jwks.h"
#include "util.h"

static const char *const alg_names[_JWT_ALG_MAX] = {
        [JWT_ALG_RS256] = "RS256",
        [JWT_ALG_PS256] = "PS256",
        [JWT_ALG_ES256] = "ES256",
        [JWT_ALG_EDDSA] = "EdDSA",
};

/* Members that only private or symmetric keys have: such a key in a verification set means the
 * operator pasted the wrong file, and an HMAC secret here would reopen algorithm confusion. */
static const char *const private_members[] = { "d", "p", "q", "dp", "dq", "qi", "oth", "k" };

static uint64_t jwks_generation;

int auth_fail(char *err, size_t errlen, int r, const char *fmt, ...) {
        va_list ap;

        if (err && errlen > 0) {
                va_start(ap, fmt);
                vsnprintf(err, errlen, fmt, ap);
                va_end(ap);
        }
        return r;
}

const char *auth_printable(const char *s, char buf[static AUTH_PRINTABLE_MAX]) {
        size_t i;

        for (i = 0; s && s[i] && i < AUTH_PRINTABLE_MAX - 1; i++)
                buf[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
        buf[i] = 0;
        return buf;
}

const char *jwt_alg_to_string(enum jwt_alg alg) {
        return alg >= 0 && alg < _JWT_ALG_MAX ? alg_names[alg] : NULL;
}

int jwt_alg_from_string(const char *s) {
        for (int a = 0; a < _JWT_ALG_MAX; a++)
                if (streq(s, alg_names[a]))
                        return a;
        return -EINVAL;
}

/* A base64url member decoded; -ENOENT when absent or not a string, -EINVAL when not strict. */
static int jwk_bytes(json_t *key, const char *name, uint8_t **ret, size_t *ret_size) {
        json_t *v = json_object_get(key, name);

        if (!json_is_string(v))
                return -ENOENT;
        return b64url_decode(json_string_value(v), json_string_length(v), ret, ret_size);
}

static int pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld, EVP_PKEY **ret) {
        OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
        EVP_PKEY *pkey = NULL;
        int r = -EINVAL;

        if (params && ctx && EVP_PKEY_fromdata_init(ctx) > 0 &&
            EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) > 0) {
                *ret = pkey;
                r = 0;
        }
        EVP_PKEY_CTX_free(ctx);
        OSSL_PARAM_free(params);
        return r;
}

static int jwk_import_rsa(json_t *key, EVP_PKEY **ret, char *err, size_t errlen) {
        _cleanup_free_ uint8_t *n = NULL, *e = NULL;
        size_t n_size, e_size;
        BIGNUM *bn_n = NULL, *bn_e = NULL;
        OSSL_PARAM_BLD *bld = NULL;
        int bits, r;

        if (jwk_bytes(key, "n", &n, &n_size) < 0 || jwk_bytes(key, "e", &e, &e_size) < 0)
                return auth_fail(err, errlen, -EINVAL, "RSA key needs base64url \"n\" and \"e\"");
        bn_n = BN_bin2bn(n, (int) n_size, NULL);
        bn_e = BN_bin2bn(e, (int) e_size, NULL);
        bld = OSSL_PARAM_BLD_new();
        if (!bn_n || !bn_e || !bld) {
                r = -ENOMEM;
                goto out;
        }
        bits = BN_num_bits(bn_n);
        if (bits < BASTION_JWT_RSA_MIN_BITS || bits > BASTION_JWT_RSA_MAX_BITS) {
                r = auth_fail(err, errlen, -EINVAL, "RSA modulus has %d bits, %d to %d accepted",
                              bits, BASTION_JWT_RSA_MIN_BITS, BASTION_JWT_RSA_MAX_BITS);
                goto out;
        }
        if (!BN_is_odd(bn_e) || BN_num_bits(bn_e) < 2 || BN_num_bits(bn_e) > 64) {
                r = auth_fail(err, errlen, -EINVAL, "RSA public exponent is not an odd number from 3 to 2^64");
                goto out;
        }
        r = -ENOMEM;
        if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) > 0 &&
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) > 0)
                r = pkey_fromdata("RSA", bld, ret);
        if (r == -EINVAL)
                auth_fail(err, errlen, r, "OpenSSL refused the RSA key");
out:
        OSSL_PARAM_BLD_free(bld);
        BN_free(bn_n);
        BN_free(bn_e);
        return r;
}

/* The point must be on the curve: OpenSSL checks it on import, and the public check makes sure. */
static int pkey_check_public(EVP_PKEY *pkey) {
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        int ok = ctx && EVP_PKEY_public_check(ctx) > 0;

        EVP_PKEY_CTX_free(ctx);
        return ok ? 0 : -EINVAL;
}

static int jwk_import_p256(json_t *key, EVP_PKEY **ret, char *err, size_t errlen) {
        _cleanup_free_ uint8_t *x = NULL, *y = NULL;
        uint8_t point[65];
        size_t x_size, y_size;
        OSSL_PARAM_BLD *bld;
        EVP_PKEY *pkey = NULL;
        int r = -ENOMEM;

        if (jwk_bytes(key, "x", &x, &x_size) < 0 || jwk_bytes(key, "y", &y, &y_size) < 0 ||
            x_size != 32 || y_size != 32)
                return auth_fail(err, errlen, -EINVAL, "P-256 key needs 32-byte base64url \"x\" and \"y\"");
        point[0] = 0x04; /* uncompressed */
        memcpy(point + 1, x, 32);
        memcpy(point + 33, y, 32);
        bld = OSSL_PARAM_BLD_new();
        if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) > 0 &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) > 0)
                r = pkey_fromdata("EC", bld, &pkey);
        OSSL_PARAM_BLD_free(bld);
        if (r == 0 && pkey_check_public(pkey) < 0) {
                EVP_PKEY_free(pkey);
                r = -EINVAL;
        }
        if (r == -EINVAL)
                return auth_fail(err, errlen, r, "P-256 point is not on the curve");
        if (r == 0)
                *ret = pkey;
        return r;
}

static int jwk_import_ed25519(json_t *key, EVP_PKEY **ret, char *err, size_t errlen) {
        _cleanup_free_ uint8_t *x = NULL;
        size_t x_size;

        if (jwk_bytes(key, "x", &x, &x_size) < 0 || x_size != 32)
                return auth_fail(err, errlen, -EINVAL, "Ed25519 key needs a 32-byte base64url \"x\"");
        *ret = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, x_size);
        return *ret ? 0 : auth_fail(err, errlen, -EINVAL, "OpenSSL refused the Ed25519 key");
}

static int jwk_check_members(json_t *key, char *err, size_t errlen) {
        json_t *use = json_object_get(key, "use"), *ops = json_object_get(key, "key_ops"), *op;
        size_t i;

        for (i = 0; i < ELEMENTSOF(private_members); i++)
                if (json_object_get(key, private_members[i]))
                        return auth_fail(err, errlen, -EINVAL,
                                         "has private or symmetric key material (\"%s\")", private_members[i]);
        if (use && !streq(json_string_value(use), "sig"))
                return auth_fail(err, errlen, -EINVAL, "\"use\" is not \"sig\"");
        if (ops && (!json_is_array(ops) || json_array_size(ops) == 0))
                return auth_fail(err, errlen, -EINVAL, "\"key_ops\" is not [\"verify\"]");
        json_array_foreach(ops, i, op)
                if (!streq(json_string_value(op), "verify"))
                        return auth_fail(err, errlen, -EINVAL, "\"key_ops\" is not [\"verify\"]");
        return 0;
}

/* kty/crv → importer; the alg must be one that key type can serve. */
static int jwk_import(json_t *key, enum jwt_alg alg, EVP_PKEY **ret, char *err, size_t errlen) {
        const char *kty = json_string_value(json_object_get(key, "kty"));
        const char *crv = json_string_value(json_object_get(key, "crv"));
        char p[AUTH_PRINTABLE_MAX];

        if (streq(kty, "RSA")) {
                if (alg != JWT_ALG_RS256 && alg != JWT_ALG_PS256)
                        goto mismatch;
                return jwk_import_rsa(key, ret, err, errlen);
        }
        if (streq(kty, "EC")) {
                if (!streq(crv, "P-256"))
                        return auth_fail(err, errlen, -EINVAL, "unsupported EC curve \"%s\"", auth_printable(crv, p));
                if (alg != JWT_ALG_ES256)
                        goto mismatch;
                return jwk_import_p256(key, ret, err, errlen);
        }
        if (streq(kty, "OKP")) {
                if (!streq(crv, "Ed25519"))
                        return auth_fail(err, errlen, -EINVAL, "unsupported OKP curve \"%s\"", auth_printable(crv, p));
                if (alg != JWT_ALG_EDDSA)
                        goto mismatch;
                return jwk_import_ed25519(key, ret, err, errlen);
        }
        return auth_fail(err, errlen, -EINVAL, "unsupported kty \"%s\"", auth_printable(kty, p));
mismatch:
        return auth_fail(err, errlen, -EINVAL, "alg %s does not fit kty %s", jwt_alg_to_string(alg), kty);
}

static int jwk_parse_one(const struct jwks *set, json_t *key, struct jwk *ret, char *err, size_t errlen) {
        json_t *kid = json_object_get(key, "kid");
        const char *alg_name = json_string_value(json_object_get(key, "alg"));
        char p[AUTH_PRINTABLE_MAX];
        int alg, r;

        if (!json_is_object(key))
                return auth_fail(err, errlen, -EINVAL, "not an object");
        if (!json_is_string(kid) || json_string_length(kid) == 0 ||
            json_string_length(kid) > BASTION_JWK_MAX_KID)
                return auth_fail(err, errlen, -EINVAL, "needs a \"kid\" of 1 to %d characters", BASTION_JWK_MAX_KID);
        for (const char *c = json_string_value(kid); *c; c++)
                if (*c < 0x20 || *c >= 0x7f)
                        return auth_fail(err, errlen, -EINVAL, "\"kid\" is not printable ASCII");
        if (jwks_find(set, json_string_value(kid)))
                return auth_fail(err, errlen, -EINVAL, "duplicate kid \"%s\"", json_string_value(kid));
        if (!alg_name)
                return auth_fail(err, errlen, -EINVAL, "kid \"%s\" has no \"alg\": every key is pinned to one",
                                 json_string_value(kid));
        alg = jwt_alg_from_string(alg_name);
        if (alg < 0)
                return auth_fail(err, errlen, -EINVAL, "alg \"%s\" is not accepted (RS256, PS256, ES256, EdDSA)",
                                 auth_printable(alg_name, p));
        r = jwk_check_members(key, err, errlen);
        if (r < 0)
                return r;
        r = jwk_import(key, alg, &ret->pkey, err, errlen);
        if (r < 0)
                return r;
        strcpy(ret->kid, json_string_value(kid));
        ret->alg = alg;
        return 0;
}

const struct jwk *jwks_find(const struct jwks *keys, const char *kid) {
        for (size_t i = 0; keys && kid && i < keys->n_keys; i++)
                if (streq(keys->keys[i].kid, kid))
                        return &keys->keys[i];
        return NULL;
}

struct jwks *jwks_free(struct jwks *keys) {
        if (!keys)
                return NULL;
        for (size_t i = 0; i < keys->n_keys; i++)
                EVP_PKEY_free(keys->keys[i].pkey);
        free(keys->keys);
        free(keys);
        return NULL;
}

int jwks_parse(const char *buf, size_t len, struct jwks **ret, char *err, size_t errlen) {
        _cleanup_(jwks_freep) struct jwks *set = NULL;
        _cleanup_json_ json_t *doc = NULL;
        json_error_t jerr;
        json_t *keys, *key;
        char why[256];
        size_t i;
        int r;

        if (len > BASTION_JWKS_MAX_DOC)
                return auth_fail(err, errlen, -E2BIG, "JWKS document is larger than %d bytes", BASTION_JWKS_MAX_DOC);
        doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!doc)
                return auth_fail(err, errlen, -EBADMSG, "JWKS is not JSON: %s (line %d)", jerr.text, jerr.line);
        keys = json_object_get(doc, "keys");
        if (!json_is_array(keys) || json_array_size(keys) == 0)
                return auth_fail(err, errlen, -EINVAL, "JWKS has no \"keys\" array with at least one key");
        if (json_array_size(keys) > BASTION_JWKS_MAX_KEYS)
                return auth_fail(err, errlen, -E2BIG, "JWKS has more than %d keys", BASTION_JWKS_MAX_KEYS);
        set = calloc(1, sizeof(*set));
        if (!set || !(set->keys = calloc(json_array_size(keys), sizeof(*set->keys))))
                return auth_fail(err, errlen, -ENOMEM, "out of memory");
        json_array_foreach(keys, i, key) {
                why[0] = 0;
                r = jwk_parse_one(set, key, &set->keys[i], why, sizeof(why));
                if (r < 0)
                        return auth_fail(err, errlen, r, "JWKS key %zu: %s", i, r == -ENOMEM ? "out of memory" : why);
                set->n_keys++;
        }
        set->generation = ++jwks_generation;
        *ret = TAKE_PTR(set);
        return 0;
}
