/* Bearer-token verification from the attacker's side: keys generated here with OpenSSL, tokens
 * signed here (and by npm jose, tests/fixtures/jwt/), and every forgery refused for its reason. */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "broker/auth/b64url.h"
#include "broker/auth/jwks.h"
#include "broker/auth/jwt.h"
#include "util.h"

#define NOW ((time_t) 1800000000)
#define INVENTORY "https://host.test/mcp/inventory"
#define PAYMENTS "https://host.test/mcp/payments"
#define ISSUER "https://issuer.test"

static EVP_PKEY *rsa, *ec, *ed, *attacker_ec;
static struct jwks *keys;
static const struct jwt_expect inventory = {
        .issuer = ISSUER, .audience = INVENTORY, .leeway_sec = 60,
        .role_claim = "role", .tenant_claim = "tenant",
};
static const struct jwt_expect payments = {
        .issuer = ISSUER, .audience = PAYMENTS, .leeway_sec = 60,
        .role_claim = "role", .tenant_claim = "tenant",
};

/* ---- keys and JWKs, built the way an authorization server publishes them ---- */

static char *b64(const void *p, size_t n) {
        char *s = b64url_encode(p, n);

        cr_assert_not_null(s);
        return s;
}

static char *b64_bn(EVP_PKEY *k, const char *param) {
        BIGNUM *bn = NULL;
        uint8_t buf[1024];
        int n;

        cr_assert_eq(EVP_PKEY_get_bn_param(k, param, &bn), 1);
        n = BN_bn2bin(bn, buf);
        BN_free(bn);
        return b64(buf, (size_t) n);
}

static char *jwk_rsa(EVP_PKEY *k, const char *kid, const char *alg) {
        _cleanup_free_ char *n = b64_bn(k, OSSL_PKEY_PARAM_RSA_N), *e = b64_bn(k, OSSL_PKEY_PARAM_RSA_E);
        char *s;

        cr_assert_gt(asprintf(&s, "{\"kty\":\"RSA\",\"kid\":\"%s\",\"alg\":\"%s\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"}",
                              kid, alg, n, e), 0);
        return s;
}

static char *jwk_ec(EVP_PKEY *k, const char *kid) {
        uint8_t pub[65];
        size_t len = 0;
        _cleanup_free_ char *x = NULL, *y = NULL;
        char *s;

        cr_assert_eq(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len), 1);
        cr_assert_eq(len, 65);
        x = b64(pub + 1, 32);
        y = b64(pub + 33, 32);
        cr_assert_gt(asprintf(&s, "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"alg\":\"ES256\",\"x\":\"%s\",\"y\":\"%s\"}",
                              kid, x, y), 0);
        return s;
}

static char *jwk_ed(EVP_PKEY *k, const char *kid) {
        uint8_t pub[32];
        size_t len = sizeof(pub);
        _cleanup_free_ char *x = NULL;
        char *s;

        cr_assert_eq(EVP_PKEY_get_raw_public_key(k, pub, &len), 1);
        x = b64(pub, len);
        cr_assert_gt(asprintf(&s, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"%s\",\"alg\":\"EdDSA\",\"x\":\"%s\"}",
                              kid, x), 0);
        return s;
}

static struct jwks *parse_ok(const char *doc) {
        struct jwks *k = NULL;
        char err[256] = "";

        cr_assert_eq(jwks_parse(doc, strlen(doc), &k, err, sizeof(err)), 0, "%s", err);
        return k;
}

/* Key generation (RSA above all) costs more than the rest of a test, and every test runs in its
 * own process: the runner generates the keys once before the tests and hands them over as PEM files
 * in a private directory; a test started on its own generates its keys itself. */
static const char *const key_names[] = { "rsa", "ec", "ed", "attacker-ec" };
static EVP_PKEY **const key_slots[] = { &rsa, &ec, &ed, &attacker_ec };
static char key_dir[] = "/tmp/test-jwt-XXXXXX";

static EVP_PKEY *keygen(size_t i) {
        if (i == 0)
                return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
        if (i == 2)
                return EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static FILE *key_file(const char *dir, size_t i, const char *mode) {
        char path[256];

        snprintf(path, sizeof(path), "%s/%s.pem", dir, key_names[i]);
        return fopen(path, mode);
}

ReportHook(PRE_ALL)(struct criterion_test_set *set) {
        if (!mkdtemp(key_dir))
                return;
        for (size_t i = 0; i < ELEMENTSOF(key_names); i++) {
                EVP_PKEY *k = keygen(i);
                FILE *f = key_file(key_dir, i, "we");

                if (k && f)
                        PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
                if (f)
                        fclose(f);
                EVP_PKEY_free(k);
        }
        setenv("TEST_JWT_KEY_DIR", key_dir, 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats) {
        for (size_t i = 0; i < ELEMENTSOF(key_names); i++) {
                char path[256];

                snprintf(path, sizeof(path), "%s/%s.pem", key_dir, key_names[i]);
                unlink(path);
        }
        rmdir(key_dir);
}

static EVP_PKEY *key_load_or_generate(size_t i) {
        const char *dir = getenv("TEST_JWT_KEY_DIR");
        _cleanup_fclose_ FILE *f = dir ? key_file(dir, i, "re") : NULL;
        EVP_PKEY *k = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;

        return k ? k : keygen(i);
}

/* The same RSA key is published twice, pinned to RS256 (k-rs) and to PS256 (k-ps): a token must
 * use the algorithm of the kid it names even when the other one would verify mathematically. */
static void setup(void) {
        _cleanup_free_ char *j1 = NULL, *j2 = NULL, *j3 = NULL, *j4 = NULL, *doc = NULL;

        for (size_t i = 0; i < ELEMENTSOF(key_slots); i++) {
                *key_slots[i] = key_load_or_generate(i);
                cr_assert_not_null(*key_slots[i]);
        }
        j1 = jwk_rsa(rsa, "k-rs", "RS256");
        j2 = jwk_rsa(rsa, "k-ps", "PS256");
        j3 = jwk_ec(ec, "k-es");
        j4 = jwk_ed(ed, "k-ed");
        cr_assert_gt(asprintf(&doc, "{\"keys\":[%s,%s,%s,%s]}", j1, j2, j3, j4), 0);
        keys = parse_ok(doc);
}

static void teardown(void) {
        keys = jwks_free(keys);
        EVP_PKEY_free(rsa);
        EVP_PKEY_free(ec);
        EVP_PKEY_free(ed);
        EVP_PKEY_free(attacker_ec);
}

/* ---- signing ---- */

/* DER ECDSA → JWS raw r||s. */
static void der_to_raw(const uint8_t *der, size_t n, uint8_t raw[64]) {
        const unsigned char *p = der;
        ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long) n);

        cr_assert_not_null(s);
        cr_assert_eq(BN_bn2binpad(ECDSA_SIG_get0_r(s), raw, 32), 32);
        cr_assert_eq(BN_bn2binpad(ECDSA_SIG_get0_s(s), raw + 32, 32), 32);
        ECDSA_SIG_free(s);
}

/* sign_as: RS256, PS256, ES256, EdDSA, ES256-DER (what `openssl dgst` emits), HS256 (HMAC keyed
 * with the RSA public key PEM, the classic confusion), none. Returns the base64url signature. */
static char *sign(EVP_PKEY *k, const char *sign_as, const char *input) {
        EVP_MD_CTX *md;
        EVP_PKEY_CTX *pctx = NULL;
        uint8_t buf[1024], raw[64];
        size_t n = sizeof(buf);

        if (streq(sign_as, "none"))
                return b64("", 0);
        if (streq(sign_as, "HS256")) {
                BIO *bio = BIO_new(BIO_s_mem());
                char *pem;
                long pem_len;

                cr_assert_eq(PEM_write_bio_PUBKEY(bio, rsa), 1);
                pem_len = BIO_get_mem_data(bio, &pem);
                cr_assert_not_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, pem, (size_t) pem_len,
                                             (const uint8_t *) input, strlen(input), buf, sizeof(buf), &n));
                BIO_free(bio);
                return b64(buf, n);
        }
        md = EVP_MD_CTX_new();
        cr_assert_eq(EVP_DigestSignInit(md, &pctx, streq(sign_as, "EdDSA") ? NULL : EVP_sha256(), NULL, k), 1);
        if (streq(sign_as, "PS256")) {
                cr_assert_eq(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
                cr_assert_eq(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
        }
        cr_assert_eq(EVP_DigestSign(md, buf, &n, (const uint8_t *) input, strlen(input)), 1);
        EVP_MD_CTX_free(md);
        if (streq(sign_as, "ES256")) {
                der_to_raw(buf, n, raw);
                return b64(raw, 64);
        }
        return b64(buf, n);
}

static char *mint_raw(EVP_PKEY *k, const char *sign_as, const char *header, const char *claims) {
        _cleanup_free_ char *h = b64(header, strlen(header)), *p = b64(claims, strlen(claims));
        _cleanup_free_ char *input = NULL, *sig = NULL;
        char *token;

        cr_assert_gt(asprintf(&input, "%s.%s", h, p), 0);
        sig = sign(k, sign_as, input);
        cr_assert_gt(asprintf(&token, "%s.%s", input, sig), 0);
        return token;
}

/* The claims of a good inventory token for alice. */
static json_t *good_claims(void) {
        json_t *c = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s}",
                              "iss", ISSUER, "aud", INVENTORY, "sub", "alice",
                              "iat", (json_int_t) NOW - 10, "nbf", (json_int_t) NOW - 10,
                              "exp", (json_int_t) NOW + 3600,
                              "scope", "inventory:read inventory:reorder",
                              "role", "supply-chain-manager", "tenant", "acme");
        cr_assert_not_null(c);
        return c;
}

static char *dump(json_t *j) {
        char *s = json_dumps(j, JSON_COMPACT);

        cr_assert_not_null(s);
        json_decref(j);
        return s;
}

static EVP_PKEY *key_for(const char *sign_as) {
        if (strncmp(sign_as, "ES256", 5) == 0)
                return ec;
        if (streq(sign_as, "EdDSA"))
                return ed;
        return rsa;
}

/* A token with header {"alg":alg,"kid":kid,"typ":"at+jwt"}, signed as sign_as, claims c (consumed). */
static char *mint(const char *sign_as, const char *alg, const char *kid, json_t *c) {
        _cleanup_free_ char *claims = dump(c), *header = NULL;

        cr_assert_gt(asprintf(&header, "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"at+jwt\"}", alg, kid), 0);
        return mint_raw(key_for(sign_as), sign_as, header, claims);
}

/* ---- assertions ---- */

static void assert_refused_as(const struct jwt_expect *e, time_t now, const char *token, size_t len,
                              enum jwt_reason want, int want_errno) {
        struct jwt_claims c;
        enum jwt_reason reason = JWT_OK;
        char err[256] = "";
        int r;

        r = jwt_verify(keys, token, len, e, now, &c, &reason, err, sizeof(err));
        cr_assert_eq(reason, want, "reason %s, expected %s (%s)", jwt_reason_to_string(reason),
                     jwt_reason_to_string(want), err);
        cr_assert_eq(r, -want_errno, "r=%d (%s)", r, err);
        cr_assert_neq(err[0], 0, "a refusal says why");
        /* The message never echoes the token (it is a credential), not even its signature. */
        if (token && len > 24)
                cr_assert_null(strstr(err, token + len - 24));
}

static void assert_refused(const char *token, enum jwt_reason want, int want_errno) {
        assert_refused_as(&inventory, NOW, token, token ? strlen(token) : 0, want, want_errno);
}

static struct jwt_claims assert_accepted_as(const struct jwt_expect *e, time_t now, const char *token) {
        struct jwt_claims c;
        enum jwt_reason reason = _JWT_REASON_MAX;
        char err[256] = "x";

        cr_assert_eq(jwt_verify(keys, token, strlen(token), e, now, &c, &reason, err, sizeof(err)), 0, "%s", err);
        cr_assert_eq(reason, JWT_OK);
        cr_assert_str_empty(err);
        return c;
}

static struct jwt_claims assert_accepted(const char *token) {
        return assert_accepted_as(&inventory, NOW, token);
}

TestSuite(jwt, .init = setup, .fini = teardown, .timeout = 60);

/* ---- accepted tokens ---- */

static void assert_good_claims(const struct jwt_claims *c, const char *kid, enum jwt_alg alg) {
        cr_assert_str_eq(c->sub, "alice");
        cr_assert_str_eq(c->scope, "inventory:read inventory:reorder");
        cr_assert_str_eq(c->role, "supply-chain-manager");
        cr_assert_str_eq(c->tenant, "acme");
        cr_assert_str_eq(c->kid, kid);
        cr_assert_eq(c->alg, alg);
        cr_assert_eq(c->exp, NOW + 3600);
        cr_assert_eq(c->iat, NOW - 10);
        cr_assert_eq(c->nbf, NOW - 10);
}

Test(jwt, jwt_accepts_rs256_token_with_its_claims) {
        _cleanup_free_ char *t = mint("RS256", "RS256", "k-rs", good_claims());
        struct jwt_claims c = assert_accepted(t);

        assert_good_claims(&c, "k-rs", JWT_ALG_RS256);
}

Test(jwt, jwt_accepts_ps256_token_with_its_claims) {
        _cleanup_free_ char *t = mint("PS256", "PS256", "k-ps", good_claims());
        struct jwt_claims c = assert_accepted(t);

        assert_good_claims(&c, "k-ps", JWT_ALG_PS256);
}

Test(jwt, jwt_accepts_es256_token_with_its_claims) {
        _cleanup_free_ char *t = mint("ES256", "ES256", "k-es", good_claims());
        struct jwt_claims c = assert_accepted(t);

        assert_good_claims(&c, "k-es", JWT_ALG_ES256);
}

Test(jwt, jwt_accepts_eddsa_token_with_its_claims) {
        _cleanup_free_ char *t = mint("EdDSA", "EdDSA", "k-ed", good_claims());
        struct jwt_claims c = assert_accepted(t);

        assert_good_claims(&c, "k-ed", JWT_ALG_EDDSA);
}

Test(jwt, jwt_accepts_audience_array_containing_this_server) {
        json_t *c = good_claims();
        _cleanup_free_ char *t = NULL;

        json_object_set_new(c, "aud", json_pack("[s,s]", PAYMENTS, INVENTORY));
        t = mint("ES256", "ES256", "k-es", c);
        assert_accepted(t);
        assert_accepted_as(&payments, NOW, t);
}

Test(jwt, jwt_accepts_every_spelling_of_typ_and_no_typ) {
        const char *typs[] = { "at+jwt", "AT+JWT", "application/at+jwt", "JWT", "jwt", "Application/JWT" };
        _cleanup_free_ char *claims = dump(good_claims());

        for (size_t i = 0; i < ELEMENTSOF(typs); i++) {
                _cleanup_free_ char *h = NULL, *t = NULL;

                cr_assert_gt(asprintf(&h, "{\"alg\":\"EdDSA\",\"kid\":\"k-ed\",\"typ\":\"%s\"}", typs[i]), 0);
                t = mint_raw(ed, "EdDSA", h, claims);
                assert_accepted(t);
        }
        _cleanup_free_ char *t = mint_raw(ed, "EdDSA", "{\"alg\":\"EdDSA\",\"kid\":\"k-ed\"}", claims);
        assert_accepted(t);
}

Test(jwt, jwt_accepts_within_leeway_and_not_beyond) {
        json_t *c = good_claims();
        _cleanup_free_ char *t = NULL;

        /* exp 30 s ago, nbf and iat 50 s ahead: inside 60 s of clock skew. */
        json_object_set_new(c, "exp", json_integer(NOW - 30));
        json_object_set_new(c, "nbf", json_integer(NOW + 50));
        json_object_set_new(c, "iat", json_integer(NOW + 50));
        t = mint("RS256", "RS256", "k-rs", c);
        assert_accepted(t);
        assert_refused_as(&inventory, NOW + 30, t, strlen(t), JWT_R_EXPIRED, EKEYEXPIRED);
        assert_refused_as(&inventory, NOW - 11, t, strlen(t), JWT_R_NOT_YET_VALID, ETIME);
}

Test(jwt, jwt_accepts_token_without_role_tenant_or_scope_as_empty) {
        json_t *c = good_claims();
        _cleanup_free_ char *t = NULL;
        struct jwt_claims got;

        json_object_del(c, "role");
        json_object_del(c, "tenant");
        json_object_del(c, "scope");
        t = mint("EdDSA", "EdDSA", "k-ed", c);
        got = assert_accepted(t);
        cr_assert_str_empty(got.role);
        cr_assert_str_empty(got.tenant);
        cr_assert_str_empty(got.scope);
        cr_assert_str_eq(got.sub, "alice");
}

Test(jwt, jwt_reads_role_and_tenant_from_configured_claims) {
        json_t *c = good_claims();
        _cleanup_free_ char *t = NULL;
        struct jwt_expect e = inventory;
        struct jwt_claims got;

        json_object_set_new(c, "https://bastion/role", json_string("finance"));
        json_object_set_new(c, "org", json_string("globex"));
        t = mint("EdDSA", "EdDSA", "k-ed", c);
        e.role_claim = "https://bastion/role";
        e.tenant_claim = "org";
        got = assert_accepted_as(&e, NOW, t);
        cr_assert_str_eq(got.role, "finance");
        cr_assert_str_eq(got.tenant, "globex");
        e.role_claim = e.tenant_claim = NULL;
        got = assert_accepted_as(&e, NOW, t);
        cr_assert_str_empty(got.role);
        cr_assert_str_empty(got.tenant);
}

Test(jwt, jwt_scope_match_is_whole_word) {
        struct jwt_claims c = { .scope = "inventory:read  inventory:reorder" };

        cr_assert(jwt_claims_has_scope(&c, "inventory:read"));
        cr_assert(jwt_claims_has_scope(&c, "inventory:reorder"));
        cr_assert_not(jwt_claims_has_scope(&c, "inventory"));
        cr_assert_not(jwt_claims_has_scope(&c, "inventory:re"));
        cr_assert_not(jwt_claims_has_scope(&c, "payments:release"));
        cr_assert_not(jwt_claims_has_scope(&c, ""));
}

Test(jwt, jwt_reads_scp_when_there_is_no_scope) {
        json_t *c = good_claims();
        _cleanup_free_ char *t1 = NULL, *t2 = NULL, *t3 = NULL, *t4 = NULL;
        struct jwt_claims got;

        /* An array of scopes (as some servers issue it) is joined with spaces. */
        json_object_del(c, "scope");
        json_object_set_new(c, "scp", json_pack("[s, s]", "inventory:read", "inventory:reorder"));
        t1 = mint("EdDSA", "EdDSA", "k-ed", json_deep_copy(c));
        got = assert_accepted(t1);
        cr_assert_str_eq(got.scope, "inventory:read inventory:reorder");
        cr_assert(jwt_claims_has_scope(&got, "inventory:reorder"));
        /* A string is taken as is. */
        json_object_set_new(c, "scp", json_string("inventory:read"));
        t2 = mint("EdDSA", "EdDSA", "k-ed", json_deep_copy(c));
        cr_assert_str_eq(assert_accepted(t2).scope, "inventory:read");
        /* "scope" wins when both are present. */
        json_object_set_new(c, "scope", json_string("payments:read"));
        t3 = mint("EdDSA", "EdDSA", "k-ed", json_deep_copy(c));
        cr_assert_str_eq(assert_accepted(t3).scope, "payments:read");
        /* An entry that is not exactly one scope refuses the token. */
        json_object_del(c, "scope");
        json_object_set_new(c, "scp", json_pack("[s, s]", "inventory:read", "a b"));
        t4 = mint("EdDSA", "EdDSA", "k-ed", c);
        assert_refused(t4, JWT_R_BAD_CLAIMS, EBADMSG);
}

/* ---- the attack table: each forgery refused, for its own reason ---- */

Test(jwt, jwt_rejects_missing_and_empty_token) {
        assert_refused_as(&inventory, NOW, NULL, 0, JWT_R_MISSING, ENODATA);
        assert_refused("", JWT_R_MISSING, ENODATA);
}

Test(jwt, jwt_rejects_alg_none) {
        _cleanup_free_ char *claims = dump(good_claims());
        _cleanup_free_ char *t1 = mint_raw(rsa, "none", "{\"alg\":\"none\",\"kid\":\"k-rs\"}", claims);
        _cleanup_free_ char *t2 = mint_raw(rsa, "RS256", "{\"alg\":\"none\",\"kid\":\"k-rs\"}", claims);
        _cleanup_free_ char *t3 = mint_raw(rsa, "none", "{\"alg\":\"none\"}", claims);

        cr_assert_eq(t1[strlen(t1) - 1], '.');
        assert_refused(t1, JWT_R_ALG_MISMATCH, EPERM);
        assert_refused(t2, JWT_R_ALG_MISMATCH, EPERM);
        assert_refused(t3, JWT_R_BAD_HEADER, EBADMSG);
}

Test(jwt, jwt_rejects_hs256_signed_with_the_rsa_public_key) {
        _cleanup_free_ char *t = mint("HS256", "HS256", "k-rs", good_claims());

        assert_refused(t, JWT_R_ALG_MISMATCH, EPERM);
}

Test(jwt, jwt_rejects_unknown_kid) {
        _cleanup_free_ char *t = mint("ES256", "ES256", "k-unknown", good_claims());

        assert_refused(t, JWT_R_UNKNOWN_KID, ENOKEY);
}

Test(jwt, jwt_rejects_kid_whose_key_is_pinned_to_another_alg) {
        /* RS256 under the PS256 kid of the same RSA key (PKCS#1 v1.5 would verify), PS256 under the
         * RS256 kid, ES256 under the Ed25519 kid. */
        _cleanup_free_ char *t1 = mint("RS256", "RS256", "k-ps", good_claims());
        _cleanup_free_ char *t2 = mint("PS256", "PS256", "k-rs", good_claims());
        _cleanup_free_ char *t3 = mint("ES256", "ES256", "k-ed", good_claims());

        assert_refused(t1, JWT_R_ALG_MISMATCH, EPERM);
        assert_refused(t2, JWT_R_ALG_MISMATCH, EPERM);
        assert_refused(t3, JWT_R_ALG_MISMATCH, EPERM);
}

Test(jwt, jwt_rejects_header_alg_that_lies_about_the_signature) {
        /* Header says RS256 for k-rs, but the bytes are a PSS signature: RSA verifies, padding does not. */
        _cleanup_free_ char *t = mint("PS256", "RS256", "k-rs", good_claims());

        assert_refused(t, JWT_R_BAD_SIGNATURE, EKEYREJECTED);
}

Test(jwt, jwt_rejects_key_embedded_in_header) {
        /* A "jwk" header with the attacker's own key is never used: only the configured set counts. */
        _cleanup_free_ char *attacker = jwk_ec(attacker_ec, "k-es"), *h = NULL, *claims = dump(good_claims());
        _cleanup_free_ char *t = NULL;

        cr_assert_gt(asprintf(&h, "{\"alg\":\"ES256\",\"kid\":\"k-es\",\"jwk\":%s}", attacker), 0);
        t = mint_raw(attacker_ec, "ES256", h, claims);
        assert_refused(t, JWT_R_BAD_SIGNATURE, EKEYREJECTED);
}

Test(jwt, jwt_rejects_wrong_issuer) {
        json_t *c = good_claims();
        _cleanup_free_ char *t1 = NULL, *t2 = NULL, *t3 = NULL;

        json_object_set_new(c, "iss", json_string("https://issuer.test/"));
        t1 = mint("RS256", "RS256", "k-rs", c);
        assert_refused(t1, JWT_R_ISSUER, EACCES);
        c = good_claims();
        json_object_set_new(c, "iss", json_string("https://evil.test"));
        t2 = mint("RS256", "RS256", "k-rs", c);
        assert_refused(t2, JWT_R_ISSUER, EACCES);
        c = good_claims();
        json_object_del(c, "iss");
        t3 = mint("RS256", "RS256", "k-rs", c);
        assert_refused(t3, JWT_R_ISSUER, EACCES);
}

Test(jwt, jwt_rejects_token_for_other_audience) {
        /* A token minted for the inventory server, replayed at payments on the same host. */
        _cleanup_free_ char *t = mint("ES256", "ES256", "k-es", good_claims());

        assert_accepted(t);
        assert_refused_as(&payments, NOW, t, strlen(t), JWT_R_AUDIENCE, EACCES);
}

Test(jwt, jwt_rejects_audience_that_only_resembles_this_server) {
        const char *auds[] = { PAYMENTS "/", "HTTPS://HOST.TEST/mcp/payments", "https://host.test/mcp/pay",
                               "https://host.test/mcp/payments-evil", "https://host.test/mcp" };

        for (size_t i = 0; i < ELEMENTSOF(auds); i++) {
                json_t *c = good_claims();
                _cleanup_free_ char *t = NULL;

                json_object_set_new(c, "aud", json_pack("[s]", auds[i]));
                t = mint("EdDSA", "EdDSA", "k-ed", c);
                assert_refused_as(&payments, NOW, t, strlen(t), JWT_R_AUDIENCE, EACCES);
        }
}

Test(jwt, jwt_rejects_missing_or_malformed_audience) {
        json_t *c = good_claims();
        _cleanup_free_ char *t1 = NULL, *t2 = NULL, *t3 = NULL;

        json_object_del(c, "aud");
        t1 = mint("EdDSA", "EdDSA", "k-ed", c);
        assert_refused(t1, JWT_R_AUDIENCE, EACCES);
        c = good_claims();
        json_object_set_new(c, "aud", json_pack("[s,i]", INVENTORY, 1));
        t2 = mint("EdDSA", "EdDSA", "k-ed", c);
        assert_refused(t2, JWT_R_BAD_CLAIMS, EBADMSG);
        c = good_claims();
        json_object_set_new(c, "aud", json_pack("[]"));
        t3 = mint("EdDSA", "EdDSA", "k-ed", c);
        assert_refused(t3, JWT_R_AUDIENCE, EACCES);
}

Test(jwt, jwt_rejects_expired_token) {
        json_t *c = good_claims();
        _cleanup_free_ char *t = NULL;

        json_object_set_new(c, "exp", json_integer(NOW - 60));
        t = mint("RS256", "RS256", "k-rs", c);
        assert_refused(t, JWT_R_EXPIRED, EKEYEXPIRED);
}

Test(jwt, jwt_rejects_token_without_exp) {
        json_t *c = good_claims();
        _cleanup_free_ char *t = NULL;

        json_object_del(c, "exp");
        t = mint("RS256", "RS256", "k-rs", c);
        assert_refused(t, JWT_R_NO_EXP, EBADMSG);
}

Test(jwt, jwt_rejects_nbf_in_the_future) {
        json_t *c = good_claims();
        _cleanup_free_ char *t = NULL;

        json_object_set_new(c, "nbf", json_integer(NOW + 61));
        t = mint("PS256", "PS256", "k-ps", c);
        assert_refused(t, JWT_R_NOT_YET_VALID, ETIME);
}

Test(jwt, jwt_rejects_iat_in_the_future) {
        json_t *c = good_claims();
        _cleanup_free_ char *t = NULL;

        json_object_del(c, "nbf");
        json_object_set_new(c, "iat", json_integer(NOW + 3000));
        t = mint("ES256", "ES256", "k-es", c);
        assert_refused(t, JWT_R_IAT_FUTURE, ETIME);
}

Test(jwt, jwt_rejects_time_claims_that_are_not_numbers) {
        json_t *c = good_claims();
        _cleanup_free_ char *t1 = NULL, *t2 = NULL;

        json_object_set_new(c, "exp", json_string("4102444800"));
        t1 = mint("ES256", "ES256", "k-es", c);
        assert_refused(t1, JWT_R_BAD_CLAIMS, EBADMSG);
        c = good_claims();
        json_object_set_new(c, "exp", json_real(1e300));
        t2 = mint("ES256", "ES256", "k-es", c);
        assert_refused(t2, JWT_R_BAD_CLAIMS, EBADMSG);
}

Test(jwt, jwt_rejects_missing_or_empty_sub) {
        json_t *c = good_claims();
        _cleanup_free_ char *t1 = NULL, *t2 = NULL, *t3 = NULL;

        json_object_del(c, "sub");
        t1 = mint("EdDSA", "EdDSA", "k-ed", c);
        assert_refused(t1, JWT_R_NO_SUB, EBADMSG);
        c = good_claims();
        json_object_set_new(c, "sub", json_string(""));
        t2 = mint("EdDSA", "EdDSA", "k-ed", c);
        assert_refused(t2, JWT_R_NO_SUB, EBADMSG);
        c = good_claims();
        json_object_set_new(c, "sub", json_integer(7));
        t3 = mint("EdDSA", "EdDSA", "k-ed", c);
        assert_refused(t3, JWT_R_BAD_CLAIMS, EBADMSG);
}

Test(jwt, jwt_rejects_role_or_tenant_that_is_not_a_string) {
        json_t *c = good_claims();
        _cleanup_free_ char *t1 = NULL, *t2 = NULL;

        json_object_set_new(c, "role", json_pack("[s]", "finance"));
        t1 = mint("EdDSA", "EdDSA", "k-ed", c);
        assert_refused(t1, JWT_R_BAD_CLAIMS, EBADMSG);
        c = good_claims();
        json_object_set_new(c, "tenant", json_null());
        t2 = mint("EdDSA", "EdDSA", "k-ed", c);
        assert_refused(t2, JWT_R_BAD_CLAIMS, EBADMSG);
}

Test(jwt, jwt_rejects_claim_beyond_its_bound) {
        json_t *c = good_claims();
        char sub[BASTION_JWT_MAX_SUB + 2];
        _cleanup_free_ char *t = NULL;

        memset(sub, 'a', sizeof(sub) - 1);
        sub[sizeof(sub) - 1] = 0;
        json_object_set_new(c, "sub", json_string(sub));
        t = mint("EdDSA", "EdDSA", "k-ed", c);
        assert_refused(t, JWT_R_CLAIM_TOO_LONG, EBADMSG);
}

/* ---- tampering and structure ---- */

static const char *const all_algs[][2] = {
        { "RS256", "k-rs" }, { "PS256", "k-ps" }, { "ES256", "k-es" }, { "EdDSA", "k-ed" },
};

/* The token's parts: [0] header, [1] payload, [2] signature (pointers into a copy). */
static char *split3(const char *token, char *parts[3]) {
        char *copy = strdup(token), *p;

        cr_assert_not_null(copy);
        parts[0] = copy;
        p = strchr(copy, '.');
        *p = 0;
        parts[1] = p + 1;
        p = strchr(p + 1, '.');
        *p = 0;
        parts[2] = p + 1;
        return copy;
}

static char *join3(const char *h, const char *p, const char *s) {
        char *t;

        cr_assert_gt(asprintf(&t, "%s.%s.%s", h, p, s), 0);
        return t;
}

Test(jwt, jwt_rejects_tampered_payload) {
        for (size_t i = 0; i < ELEMENTSOF(all_algs); i++) {
                _cleanup_free_ char *t = mint(all_algs[i][0], all_algs[i][0], all_algs[i][1], good_claims());
                json_t *c = good_claims();
                _cleanup_free_ char *claims = NULL, *p = NULL, *copy = NULL, *forged = NULL;
                char *parts[3];

                json_object_set_new(c, "sub", json_string("admin"));
                claims = dump(c);
                p = b64(claims, strlen(claims));
                copy = split3(t, parts);
                forged = join3(parts[0], p, parts[2]);
                assert_refused(forged, JWT_R_BAD_SIGNATURE, EKEYREJECTED);
        }
}

Test(jwt, jwt_rejects_tampered_signature) {
        for (size_t i = 0; i < ELEMENTSOF(all_algs); i++) {
                _cleanup_free_ char *t = mint(all_algs[i][0], all_algs[i][0], all_algs[i][1], good_claims());
                _cleanup_free_ char *copy = NULL, *s = NULL, *forged = NULL;
                _cleanup_free_ uint8_t *sig = NULL;
                char *parts[3];
                size_t n;

                copy = split3(t, parts);
                cr_assert_eq(b64url_decode(parts[2], strlen(parts[2]), &sig, &n), 0);
                sig[n / 2] ^= 0x01;
                s = b64(sig, n);
                forged = join3(parts[0], parts[1], s);
                assert_refused(forged, JWT_R_BAD_SIGNATURE, EKEYREJECTED);
        }
}

Test(jwt, jwt_rejects_signature_of_other_header) {
        /* A valid signature moved onto a header naming another key of the same kind. */
        _cleanup_free_ char *a = mint("RS256", "RS256", "k-rs", good_claims());
        _cleanup_free_ char *h = b64("{\"alg\":\"RS256\",\"kid\":\"k-rs\"}", 28), *copy = NULL, *forged = NULL;
        char *parts[3];

        copy = split3(a, parts);
        forged = join3(h, parts[1], parts[2]);
        assert_refused(forged, JWT_R_BAD_SIGNATURE, EKEYREJECTED);
}

Test(jwt, jwt_rejects_truncated_token) {
        for (size_t i = 0; i < ELEMENTSOF(all_algs); i++) {
                _cleanup_free_ char *t = mint(all_algs[i][0], all_algs[i][0], all_algs[i][1], good_claims());
                size_t len = strlen(t), sig_len = strlen(strrchr(t, '.') + 1);

                /* Cut at the last dot, and inside the signature at a clean base64url boundary. */
                assert_refused_as(&inventory, NOW, t, len - sig_len - 1, JWT_R_MALFORMED, EBADMSG);
                assert_refused_as(&inventory, NOW, t, len - sig_len + (sig_len - 1) / 4 * 4,
                                  JWT_R_SIGNATURE_LENGTH, EKEYREJECTED);
                assert_refused_as(&inventory, NOW, t, len - sig_len, JWT_R_SIGNATURE_LENGTH, EKEYREJECTED);
                assert_refused_as(&inventory, NOW, t, 10, JWT_R_MALFORMED, EBADMSG);
        }
}

Test(jwt, jwt_rejects_oversized_token) {
        json_t *c = good_claims();
        char pad[BASTION_JWT_MAX_TOKEN];
        _cleanup_free_ char *t = NULL, *big = NULL;

        /* A validly signed token, just too large to be parsed at all. */
        memset(pad, 'x', sizeof(pad) - 1);
        pad[sizeof(pad) - 1] = 0;
        json_object_set_new(c, "padding", json_string(pad));
        t = mint("EdDSA", "EdDSA", "k-ed", c);
        cr_assert_gt(strlen(t), BASTION_JWT_MAX_TOKEN);
        assert_refused(t, JWT_R_TOO_LONG, E2BIG);
        big = malloc(BASTION_JWT_MAX_TOKEN + 2);
        memset(big, 'A', BASTION_JWT_MAX_TOKEN + 1);
        big[BASTION_JWT_MAX_TOKEN + 1] = 0;
        assert_refused(big, JWT_R_TOO_LONG, E2BIG);
}

Test(jwt, jwt_rejects_wrong_number_of_parts) {
        _cleanup_free_ char *t = mint("EdDSA", "EdDSA", "k-ed", good_claims()), *four = NULL, *two = NULL;
        char *parts[3];
        _cleanup_free_ char *copy = split3(t, parts);

        cr_assert_gt(asprintf(&four, "%s.%s", t, parts[2]), 0);
        assert_refused(four, JWT_R_MALFORMED, EBADMSG);
        cr_assert_gt(asprintf(&two, "%s.%s", parts[0], parts[1]), 0);
        assert_refused(two, JWT_R_MALFORMED, EBADMSG);
        assert_refused("..", JWT_R_MALFORMED, EBADMSG);
        assert_refused("abc", JWT_R_MALFORMED, EBADMSG);
        /* An empty payload (RFC 7797 detached content) is not an access token. */
        _cleanup_free_ char *detached = join3(parts[0], "", parts[2]);
        assert_refused(detached, JWT_R_MALFORMED, EBADMSG);
}

/* base64url that a lax decoder would accept, each in the header, the payload and the signature. */
Test(jwt, jwt_rejects_bad_base64url) {
        _cleanup_free_ char *t = mint("ES256", "ES256", "k-es", good_claims());
        char *parts[3];
        _cleanup_free_ char *copy = split3(t, parts);

        for (int part = 0; part < 3; part++) {
                const char *mutations[] = { "=", "==", "+", "/", " ", "\n", "%3D" };

                for (size_t m = 0; m < ELEMENTSOF(mutations); m++) {
                        char *p[3] = { parts[0], parts[1], parts[2] };
                        _cleanup_free_ char *mutated = NULL, *forged = NULL;

                        cr_assert_gt(asprintf(&mutated, "%s%s", p[part], mutations[m]), 0);
                        p[part] = mutated;
                        forged = join3(p[0], p[1], p[2]);
                        assert_refused(forged, JWT_R_BAD_BASE64, EBADMSG);
                }
        }
}

Test(jwt, jwt_rejects_standard_base64_alphabet) {
        /* The same bytes in the standard alphabet ('+' and '/' for '-' and '_'). */
        const char *h = "{\"alg\":\"ES256\",\"kid\":\"k-es\",\"x\":\"\xfb\xff\"}";
        _cleanup_free_ char *claims = dump(good_claims()), *t = mint_raw(ec, "ES256", h, claims);

        cr_assert(strchr(t, '-') || strchr(t, '_'));
        for (char *c = t; *c; c++)
                *c = *c == '-' ? '+' : *c == '_' ? '/' : *c;
        assert_refused(t, JWT_R_BAD_BASE64, EBADMSG);
}

Test(jwt, jwt_rejects_non_canonical_trailing_bits) {
        /* ES256: 64 bytes are 86 characters; the last one carries 4 unused bits that must be 0. */
        _cleanup_free_ char *t = mint("ES256", "ES256", "k-es", good_claims());
        static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        char *last = t + strlen(t) - 1;
        int v = (int) (strchr(alphabet, *last) - alphabet);

        cr_assert_eq(strlen(strrchr(t, '.') + 1), 86);
        cr_assert_eq(v & 0x0f, 0);
        *last = alphabet[v | 0x01];
        assert_refused(t, JWT_R_BAD_BASE64, EBADMSG);
}

Test(jwt, jwt_rejects_duplicate_header_members) {
        _cleanup_free_ char *claims = dump(good_claims());
        _cleanup_free_ char *t1 = mint_raw(rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"k-rs\",\"alg\":\"RS256\"}", claims);
        _cleanup_free_ char *t2 = mint_raw(rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"k-ps\",\"kid\":\"k-rs\"}", claims);

        assert_refused(t1, JWT_R_DUPLICATE_MEMBER, EBADMSG);
        assert_refused(t2, JWT_R_DUPLICATE_MEMBER, EBADMSG);
}

Test(jwt, jwt_rejects_duplicate_claims) {
        _cleanup_free_ char *claims = dump(good_claims()), *dup = NULL, *t = NULL;

        /* {"aud":"…payments", …good claims with "aud":"…inventory"}: two parsers, two answers. */
        cr_assert_gt(asprintf(&dup, "{\"aud\":\"%s\",%s", PAYMENTS, claims + 1), 0);
        t = mint_raw(ed, "EdDSA", "{\"alg\":\"EdDSA\",\"kid\":\"k-ed\"}", dup);
        assert_refused(t, JWT_R_DUPLICATE_MEMBER, EBADMSG);
}

Test(jwt, jwt_rejects_crit_header) {
        _cleanup_free_ char *claims = dump(good_claims());
        _cleanup_free_ char *t = mint_raw(ed, "EdDSA", "{\"alg\":\"EdDSA\",\"kid\":\"k-ed\",\"crit\":[\"exp\"]}", claims);

        assert_refused(t, JWT_R_CRIT, EOPNOTSUPP);
}

Test(jwt, jwt_rejects_other_typ) {
        const char *headers[] = {
                "{\"alg\":\"EdDSA\",\"kid\":\"k-ed\",\"typ\":\"dpop+jwt\"}",
                "{\"alg\":\"EdDSA\",\"kid\":\"k-ed\",\"typ\":\"JWS\"}",
                "{\"alg\":\"EdDSA\",\"kid\":\"k-ed\",\"typ\":\"application/\"}",
                "{\"alg\":\"EdDSA\",\"kid\":\"k-ed\",\"typ\":7}",
        };
        _cleanup_free_ char *claims = dump(good_claims());

        for (size_t i = 0; i < ELEMENTSOF(headers); i++) {
                _cleanup_free_ char *t = mint_raw(ed, "EdDSA", headers[i], claims);

                assert_refused(t, JWT_R_BAD_TYP, EBADMSG);
        }
}

Test(jwt, jwt_rejects_header_that_is_not_an_object_with_alg_and_kid) {
        const char *headers[] = { "[\"alg\",\"EdDSA\"]", "{\"alg\":\"EdDSA\"", "{\"kid\":\"k-ed\"}",
                                  "{\"alg\":\"EdDSA\",\"kid\":7}", "{\"alg\":null,\"kid\":\"k-ed\"}", "null" };
        _cleanup_free_ char *claims = dump(good_claims());

        for (size_t i = 0; i < ELEMENTSOF(headers); i++) {
                _cleanup_free_ char *t = mint_raw(ed, "EdDSA", headers[i], claims);

                assert_refused(t, JWT_R_BAD_HEADER, EBADMSG);
        }
}

Test(jwt, jwt_rejects_claims_that_are_not_an_object) {
        const char *payloads[] = { "[]", "\"alice\"", "{\"sub\":\"alice\"", "{\"sub\":\"a\\u0000b\"}" };

        for (size_t i = 0; i < ELEMENTSOF(payloads); i++) {
                _cleanup_free_ char *t = mint_raw(ed, "EdDSA", "{\"alg\":\"EdDSA\",\"kid\":\"k-ed\"}", payloads[i]);

                assert_refused(t, JWT_R_BAD_CLAIMS, EBADMSG);
        }
}

Test(jwt, jwt_rejects_es256_der_signature) {
        /* What `openssl dgst -sign` emits: DER, 70-72 bytes, not the 64-byte r||s of JWS. */
        _cleanup_free_ char *t = mint("ES256-DER", "ES256", "k-es", good_claims());
        char *parts[3];
        _cleanup_free_ char *copy = split3(t, parts);
        _cleanup_free_ uint8_t *sig = NULL;
        size_t n;

        cr_assert_eq(b64url_decode(parts[2], strlen(parts[2]), &sig, &n), 0);
        cr_assert_eq(sig[0], 0x30);
        cr_assert_neq(n, 64);
        assert_refused(t, JWT_R_SIGNATURE_LENGTH, EKEYREJECTED);
}

Test(jwt, jwt_rejects_eddsa_and_rsa_signature_of_wrong_length) {
        _cleanup_free_ char *e = mint("EdDSA", "EdDSA", "k-ed", good_claims());
        _cleanup_free_ char *r = mint("RS256", "RS256", "k-rs", good_claims());
        char *ep[3], *rp[3];
        _cleanup_free_ char *ecopy = split3(e, ep), *rcopy = split3(r, rp);
        _cleanup_free_ uint8_t *sig = NULL;
        _cleanup_free_ char *longer = NULL, *s = NULL, *f1 = NULL, *f2 = NULL;
        size_t n;

        /* The Ed25519 signature plus one zero byte; the RS256 signature in front of an Ed25519 header. */
        cr_assert_eq(b64url_decode(ep[2], strlen(ep[2]), &sig, &n), 0);
        longer = calloc(1, n + 1);
        memcpy(longer, sig, n);
        s = b64(longer, n + 1);
        f1 = join3(ep[0], ep[1], s);
        assert_refused(f1, JWT_R_SIGNATURE_LENGTH, EKEYREJECTED);
        f2 = join3(ep[0], ep[1], rp[2]);
        assert_refused(f2, JWT_R_SIGNATURE_LENGTH, EKEYREJECTED);
}

Test(jwt, jwt_rejects_with_empty_key_set_or_expectation) {
        _cleanup_free_ char *t = mint("EdDSA", "EdDSA", "k-ed", good_claims());
        struct jwt_expect no_aud = inventory, no_iss = inventory;
        struct jwks *real = keys;

        no_aud.audience = NULL;
        no_iss.issuer = NULL;
        assert_refused_as(&no_aud, NOW, t, strlen(t), JWT_R_AUDIENCE, EACCES);
        assert_refused_as(&no_iss, NOW, t, strlen(t), JWT_R_ISSUER, EACCES);
        keys = NULL;
        assert_refused(t, JWT_R_UNKNOWN_KID, ENOKEY);
        keys = real;
}

/* ---- the key set ---- */

static void assert_jwks_refused(const char *doc, int want, const char *why) {
        struct jwks *k = NULL;
        char err[256] = "";

        cr_assert_eq(jwks_parse(doc, strlen(doc), &k, err, sizeof(err)), want, "%s: %s", doc, err);
        cr_assert_null(k);
        cr_assert_not_null(strstr(err, why), "\"%s\" does not say \"%s\"", err, why);
}

static char *jwks_of(const char *key) {
        char *s;

        cr_assert_gt(asprintf(&s, "{\"keys\":[%s]}", key), 0);
        return s;
}

/* A JWK with a member added, e.g. with_member(jwk, "\"d\":\"AAAA\""). */
static char *with_member(const char *jwk, const char *member) {
        char *s;

        cr_assert_gt(asprintf(&s, "{\"keys\":[{%s,%s]}", member, jwk + 1), 0);
        return s;
}

Test(jwt, jwks_pins_each_key_to_its_alg) {
        cr_assert_eq(keys->n_keys, 4);
        cr_assert_eq(jwks_find(keys, "k-rs")->alg, JWT_ALG_RS256);
        cr_assert_eq(jwks_find(keys, "k-ps")->alg, JWT_ALG_PS256);
        cr_assert_eq(jwks_find(keys, "k-es")->alg, JWT_ALG_ES256);
        cr_assert_eq(jwks_find(keys, "k-ed")->alg, JWT_ALG_EDDSA);
        cr_assert_null(jwks_find(keys, "k-none"));
        cr_assert_eq(jwt_alg_from_string("none"), -EINVAL);
        cr_assert_eq(jwt_alg_from_string("HS256"), -EINVAL);
        cr_assert_eq(jwt_alg_from_string("rs256"), -EINVAL);
}

Test(jwt, jwks_rejects_key_without_kid_or_alg) {
        _cleanup_free_ char *j = jwk_ed(ed, "k"), *no_kid = NULL, *no_alg = NULL, *empty_kid = NULL;
        const char *x = strstr(j, "\"x\"");

        cr_assert_gt(asprintf(&no_kid, "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"alg\":\"EdDSA\",%s]}", x), 0);
        cr_assert_gt(asprintf(&no_alg, "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"k\",%s]}", x), 0);
        cr_assert_gt(asprintf(&empty_kid, "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"\",\"alg\":\"EdDSA\",%s]}", x), 0);
        assert_jwks_refused(no_kid, -EINVAL, "kid");
        assert_jwks_refused(no_alg, -EINVAL, "has no \"alg\"");
        assert_jwks_refused(empty_kid, -EINVAL, "kid");
}

Test(jwt, jwks_rejects_duplicate_kid) {
        _cleanup_free_ char *a = jwk_ed(ed, "same"), *b = jwk_ec(ec, "same"), *doc = NULL;

        cr_assert_gt(asprintf(&doc, "{\"keys\":[%s,%s]}", a, b), 0);
        assert_jwks_refused(doc, -EINVAL, "duplicate kid \"same\"");
}

Test(jwt, jwks_rejects_private_and_symmetric_keys) {
        _cleanup_free_ char *r = jwk_rsa(rsa, "k", "RS256"), *e = jwk_ec(ec, "k"), *o = jwk_ed(ed, "k");
        _cleanup_free_ char *d1 = with_member(r, "\"d\":\"AQAB\""), *d2 = with_member(r, "\"p\":\"AQAB\"");
        _cleanup_free_ char *d3 = with_member(e, "\"d\":\"AQAB\""), *d4 = with_member(o, "\"d\":\"AQAB\"");

        assert_jwks_refused(d1, -EINVAL, "private or symmetric key material (\"d\")");
        assert_jwks_refused(d2, -EINVAL, "private or symmetric key material (\"p\")");
        assert_jwks_refused(d3, -EINVAL, "private or symmetric key material (\"d\")");
        assert_jwks_refused(d4, -EINVAL, "private or symmetric key material (\"d\")");
        assert_jwks_refused("{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"alg\":\"HS256\",\"k\":\"c2VjcmV0\"}]}",
                            -EINVAL, "alg \"HS256\" is not accepted");
        assert_jwks_refused("{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"alg\":\"EdDSA\",\"k\":\"c2VjcmV0\"}]}",
                            -EINVAL, "symmetric");
}

Test(jwt, jwks_rejects_none_and_hs_algs_on_public_keys) {
        _cleanup_free_ char *n = jwk_rsa(rsa, "k", "none"), *h = jwk_rsa(rsa, "k", "HS256");
        _cleanup_free_ char *dn = jwks_of(n), *dh = jwks_of(h);

        assert_jwks_refused(dn, -EINVAL, "alg \"none\" is not accepted");
        assert_jwks_refused(dh, -EINVAL, "alg \"HS256\" is not accepted");
}

Test(jwt, jwks_rejects_alg_that_does_not_fit_the_key) {
        _cleanup_free_ char *r = jwk_rsa(rsa, "k", "ES256"), *dr = jwks_of(r);
        _cleanup_free_ char *e = jwk_ec(ec, "k"), *o = jwk_ed(ed, "k");

        assert_jwks_refused(dr, -EINVAL, "alg ES256 does not fit kty RSA");
        /* Swap the algs of the EC and Ed25519 keys. */
        char *p = strstr(e, "ES256"), *q = strstr(o, "EdDSA");
        memcpy(p, "EdDSA", 5);
        memcpy(q, "ES256", 5);
        _cleanup_free_ char *de = jwks_of(e), *dO = jwks_of(o);
        assert_jwks_refused(de, -EINVAL, "alg EdDSA does not fit kty EC");
        assert_jwks_refused(dO, -EINVAL, "alg ES256 does not fit kty OKP");
}

Test(jwt, jwks_rejects_short_rsa_key) {
        EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 1024);
        _cleanup_free_ char *j = jwk_rsa(small, "k", "RS256"), *doc = jwks_of(j);

        assert_jwks_refused(doc, -EINVAL, "RSA modulus has 1024 bits");
        EVP_PKEY_free(small);
}

Test(jwt, jwks_rejects_unknown_kty_and_curves) {
        _cleanup_free_ char *e = jwk_ec(ec, "k"), *o = jwk_ed(ed, "k");
        char *p = strstr(e, "P-256"), *q = strstr(o, "Ed25519");

        assert_jwks_refused("{\"keys\":[{\"kty\":\"XYZ\",\"kid\":\"k\",\"alg\":\"EdDSA\"}]}", -EINVAL,
                            "unsupported kty \"XYZ\"");
        memcpy(p, "P-384", 5);
        _cleanup_free_ char *de = jwks_of(e);
        assert_jwks_refused(de, -EINVAL, "unsupported EC curve \"P-384\"");
        memcpy(q, "X25519 ", 7);
        _cleanup_free_ char *dO = jwks_of(o);
        assert_jwks_refused(dO, -EINVAL, "unsupported OKP curve \"X25519 \"");
}

Test(jwt, jwks_rejects_point_not_on_curve) {
        _cleanup_free_ char *e = jwk_ec(ec, "k"), *doc = NULL;
        char *y = strstr(e, "\"y\":\"") + 5;

        /* Change one character of y: (x, y') is almost surely off the curve. */
        y[10] = y[10] == 'A' ? 'B' : 'A';
        doc = jwks_of(e);
        assert_jwks_refused(doc, -EINVAL, "not on the curve");
}

Test(jwt, jwks_rejects_encryption_keys_and_bad_key_ops) {
        _cleanup_free_ char *o = jwk_ed(ed, "k");
        _cleanup_free_ char *d1 = with_member(o, "\"use\":\"enc\""), *d2 = with_member(o, "\"key_ops\":[\"sign\"]");
        _cleanup_free_ char *d3 = with_member(o, "\"key_ops\":[\"verify\"]");
        struct jwks *k;

        assert_jwks_refused(d1, -EINVAL, "\"use\" is not \"sig\"");
        assert_jwks_refused(d2, -EINVAL, "key_ops");
        k = parse_ok(d3);
        jwks_free(k);
}

Test(jwt, jwks_rejects_bad_documents) {
        _cleanup_free_ char *o = jwk_ed(ed, "k"), *dup = NULL;

        assert_jwks_refused("", -EBADMSG, "not JSON");
        assert_jwks_refused("{\"keys\":[]}", -EINVAL, "at least one key");
        assert_jwks_refused("{\"kty\":\"OKP\"}", -EINVAL, "\"keys\"");
        assert_jwks_refused("{\"keys\":[7]}", -EINVAL, "JWKS key 0: not an object");
        cr_assert_gt(asprintf(&dup, "{\"keys\":[{\"kid\":\"other\",%s]}", o + 1), 0);
        assert_jwks_refused(dup, -EBADMSG, "duplicate");
}

Test(jwt, jwks_rejects_non_canonical_key_encoding) {
        _cleanup_free_ char *o = jwk_ed(ed, "k"), *padded = NULL;
        char *end = strrchr(o, '"');

        /* 32 bytes = 43 characters; "=" padding after them is refused like in a token. */
        *end = 0;
        cr_assert_gt(asprintf(&padded, "{\"keys\":[%s=\"}]}", o), 0);
        assert_jwks_refused(padded, -EINVAL, "32-byte base64url");
}

Test(jwt, jwks_reload_gives_a_new_generation) {
        _cleanup_free_ char *o = jwk_ed(ed, "k"), *doc = jwks_of(o);
        struct jwks *a = parse_ok(doc), *b = parse_ok(doc);

        cr_assert_neq(a->generation, b->generation);
        jwks_free(a);
        jwks_free(b);
}

/* ---- the verified-token cache ---- */

static struct jwt_cache *cache_new(size_t n) {
        struct jwt_cache *c = NULL;

        cr_assert_eq(jwt_cache_new(n, &c), 0);
        return c;
}

static int cached(struct jwt_cache *c, const struct jwt_expect *e, time_t now, const char *t,
                  struct jwt_claims *ret, enum jwt_reason *reason) {
        char err[256];

        return jwt_verify_cached(c, keys, t, strlen(t), e, now, ret, reason, err, sizeof(err));
}

Test(jwt, cache_answers_repeated_token_without_verifying_again) {
        _cleanup_(jwt_cache_freep) struct jwt_cache *c = cache_new(16);
        _cleanup_free_ char *t = mint("RS256", "RS256", "k-rs", good_claims());
        struct jwt_claims a, b;
        enum jwt_reason reason;

        cr_assert_eq(cached(c, &inventory, NOW, t, &a, &reason), 0);
        cr_assert_eq(jwt_cache_entries(c), 1);
        cr_assert_eq(jwt_cache_hits(c), 0);
        cr_assert_eq(cached(c, &inventory, NOW + 1, t, &b, &reason), 0);
        cr_assert_eq(reason, JWT_OK);
        cr_assert_eq(jwt_cache_hits(c), 1);
        cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
        assert_good_claims(&b, "k-rs", JWT_ALG_RS256);
}

Test(jwt, cache_does_not_serve_a_token_to_another_audience) {
        _cleanup_(jwt_cache_freep) struct jwt_cache *c = cache_new(16);
        _cleanup_free_ char *t = mint("ES256", "ES256", "k-es", good_claims());
        struct jwt_claims a;
        enum jwt_reason reason;

        cr_assert_eq(cached(c, &inventory, NOW, t, &a, &reason), 0);
        cr_assert_eq(cached(c, &payments, NOW, t, &a, &reason), -EACCES);
        cr_assert_eq(reason, JWT_R_AUDIENCE);
        cr_assert_eq(jwt_cache_hits(c), 0);
}

Test(jwt, cache_entry_ends_at_exp) {
        _cleanup_(jwt_cache_freep) struct jwt_cache *c = cache_new(16);
        json_t *claims = good_claims();
        _cleanup_free_ char *t = NULL;
        struct jwt_claims a;
        enum jwt_reason reason;

        json_object_set_new(claims, "exp", json_integer(NOW + 100));
        t = mint("EdDSA", "EdDSA", "k-ed", claims);
        cr_assert_eq(cached(c, &inventory, NOW, t, &a, &reason), 0);
        cr_assert_eq(cached(c, &inventory, NOW + 159, t, &a, &reason), 0);
        cr_assert_eq(jwt_cache_hits(c), 1);
        cr_assert_eq(cached(c, &inventory, NOW + 160, t, &a, &reason), -EKEYEXPIRED);
        cr_assert_eq(reason, JWT_R_EXPIRED);
        cr_assert_eq(jwt_cache_hits(c), 1);
}

Test(jwt, cache_forgets_everything_when_the_key_set_changes) {
        _cleanup_(jwt_cache_freep) struct jwt_cache *c = cache_new(16);
        _cleanup_free_ char *t = mint("EdDSA", "EdDSA", "k-ed", good_claims());
        _cleanup_free_ char *e = jwk_ec(ec, "k-es"), *doc = jwks_of(e);
        struct jwks *old = keys;
        struct jwt_claims a;
        enum jwt_reason reason;

        cr_assert_eq(cached(c, &inventory, NOW, t, &a, &reason), 0);
        /* The Ed25519 key is rotated out: its tokens stop working at once, cache or not. */
        keys = parse_ok(doc);
        cr_assert_eq(cached(c, &inventory, NOW, t, &a, &reason), -ENOKEY);
        cr_assert_eq(reason, JWT_R_UNKNOWN_KID);
        cr_assert_eq(jwt_cache_entries(c), 0);
        cr_assert_eq(jwt_cache_hits(c), 0);
        jwks_free(keys);
        keys = old;
}

Test(jwt, cache_keeps_refused_tokens_out) {
        _cleanup_(jwt_cache_freep) struct jwt_cache *c = cache_new(16);
        json_t *claims = good_claims();
        _cleanup_free_ char *t = NULL;
        struct jwt_claims a;
        enum jwt_reason reason;

        json_object_set_new(claims, "iss", json_string("https://evil.test"));
        t = mint("EdDSA", "EdDSA", "k-ed", claims);
        for (int i = 0; i < 3; i++) {
                cr_assert_eq(cached(c, &inventory, NOW, t, &a, &reason), -EACCES);
                cr_assert_eq(reason, JWT_R_ISSUER);
        }
        cr_assert_eq(jwt_cache_entries(c), 0);
        cr_assert_eq(cached(c, &inventory, NOW, "", &a, &reason), -ENODATA);
        cr_assert_eq(reason, JWT_R_MISSING);
}

Test(jwt, cache_is_bounded) {
        _cleanup_(jwt_cache_freep) struct jwt_cache *c = cache_new(4);
        struct jwt_claims a;
        enum jwt_reason reason;

        for (int i = 0; i < 10; i++) {
                json_t *claims = good_claims();
                _cleanup_free_ char *t = NULL;

                json_object_set_new(claims, "jti", json_integer(i));
                t = mint("EdDSA", "EdDSA", "k-ed", claims);
                cr_assert_eq(cached(c, &inventory, NOW, t, &a, &reason), 0);
                cr_assert_leq(jwt_cache_entries(c), 4);
        }
        cr_assert_eq(jwt_cache_entries(c), 2); /* cleared at the 5th and the 9th */
}

/* ---- an independent implementation: tokens minted by npm jose ---- */

/* tests/fixtures/jwt/{jwks,tokens}.json were made by tests/fixtures/jwt/mint.mjs (its header says
 * how to rerun it); the tokens are valid until 2100 for inventory and orders. */
static char *slurp(const char *name) {
        char path[4096];
        _cleanup_fclose_ FILE *f = NULL;
        char *buf = calloc(1, 65536);
        size_t n;

        snprintf(path, sizeof(path), "%s/%s", JWT_FIXTURE_DIR, name);
        f = fopen(path, "re");
        cr_assert_not_null(f, "%s", path);
        n = fread(buf, 1, 65535, f);
        cr_assert_gt(n, 0);
        return buf;
}

Test(jwt, jwt_accepts_tokens_minted_by_npm_jose) {
        _cleanup_free_ char *jwks_doc = slurp("jwks.json"), *tokens_doc = slurp("tokens.json");
        _cleanup_json_ json_t *tokens = json_loads(tokens_doc, 0, NULL);
        struct jwks *mine = keys;
        const char *algs[] = { "RS256", "PS256", "ES256", "EdDSA" };

        keys = parse_ok(jwks_doc);
        cr_assert_eq(keys->n_keys, 4);
        for (size_t i = 0; i < ELEMENTSOF(algs); i++) {
                const char *t = json_string_value(json_object_get(tokens, algs[i]));
                struct jwt_claims c;

                cr_assert_not_null(t, "%s", algs[i]);
                c = assert_accepted(t);
                cr_assert_str_eq(c.sub, "alice");
                cr_assert_str_eq(c.scope, "inventory:read inventory:reorder");
                cr_assert_str_eq(c.role, "supply-chain-manager");
                cr_assert_str_eq(c.tenant, "acme");
                cr_assert_str_eq(jwt_alg_to_string(c.alg), algs[i]);
                cr_assert_eq(c.exp, 4102444800);
                cr_assert_eq(c.iat, 1795000000);
                /* Issued for inventory and orders, not for payments. */
                assert_refused_as(&payments, NOW, t, strlen(t), JWT_R_AUDIENCE, EACCES);
                /* And our own key set does not know jose's kids. */
                jwks_free(keys);
                keys = mine;
                assert_refused(t, JWT_R_UNKNOWN_KID, ENOKEY);
                keys = parse_ok(jwks_doc);
        }
        jwks_free(keys);
        keys = mine;
}

/* ---- base64url ---- */

Test(jwt, b64url_round_trips_and_is_strict) {
        uint8_t bytes[256];
        _cleanup_free_ uint8_t *out = NULL;
        size_t n;

        for (size_t i = 0; i < sizeof(bytes); i++)
                bytes[i] = (uint8_t) (i * 7 + 3);
        for (size_t len = 0; len < sizeof(bytes); len++) {
                _cleanup_free_ char *s = b64(bytes, len);
                _cleanup_free_ uint8_t *d = NULL;

                cr_assert_eq(strlen(s), (len * 4 + 2) / 3);
                cr_assert_eq(b64url_decode(s, strlen(s), &d, &n), 0);
                cr_assert_eq(n, len);
                cr_assert_eq(memcmp(d, bytes, len), 0);
        }
        cr_assert_eq(b64url_decode("QQ", 2, &out, &n), 0);
        cr_assert_eq(n, 1);
        cr_assert_eq(out[0], 'A');
        cr_assert_eq(b64url_decode("QR", 2, &out, &n), -EINVAL);  /* trailing bits */
        cr_assert_eq(b64url_decode("QQ==", 4, &out, &n), -EINVAL); /* padding */
        free(out);
        out = NULL;
        cr_assert_eq(b64url_decode("QUI", 3, &out, &n), 0);
        cr_assert_eq(n, 2);
        free(out);
        out = NULL;
        cr_assert_eq(b64url_decode("QUJDR", 5, &out, &n), -EINVAL); /* 4k+1 characters */
        cr_assert_eq(b64url_decode("Q+JD", 4, &out, &n), -EINVAL);
        cr_assert_eq(b64url_decode("Q\0JD", 4, &out, &n), -EINVAL);
}
