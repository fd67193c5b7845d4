/* libFuzzer target: bearer tokens and JWKS documents as an attacker or a careless operator would
 * supply them. Tokens go through jwt_verify() and the cache (which must agree); JWKS documents
 * through jwks_parse(), and a parsed set is used to verify a real token. The key set and token are
 * the npm-jose fixture of tests/fixtures/jwt/ (public keys only), plus one Ed25519 key from a fixed
 * seed with which the target signs fuzzed headers and claims, so the code behind the signature
 * check (header fields, claims) is reached too. */
#include "config.h"

#include <stdint.h>
#include <string.h>
#include <openssl/evp.h>

#include "broker/auth/b64url.h"
#include "broker/auth/jwks.h"
#include "broker/auth/jwt.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char fixture_jwks[] =
        "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"sx3bLQeOg-BJyvjvdrvk3XbdKeWRW4JzW9Bj3BpiqTjWe2QzcmBIRupiM3Ds_0ZEk"
        "hJTbpbgSZi73SOzOQSaON48gzygmBWwqb4eyGemj-EdTmlmbrnMTHSeu2NvPs4v2Rua6uDllKK0EgJV7t0waO0gyKBz_"
        "OBm8HYLMOHuRhf4DK-na4gYrJCEzcyI1c-XvDsUhhWVC6B7EcQT6c-B_oXNXRVHLTGT8b-u4JnaXEbUVhl8sC39b9lBM"
        "EegZDbrmM2JCX9UITjTD2Ad0y_J3AtDBkoJh4gtsf0Zb6CI2mb6hulYKnE9v2EN73UtRmEjm5x_K1lQcBKqP4WVijVoX"
        "w\",\"e\":\"AQAB\",\"kid\":\"jose-rs256\",\"alg\":\"RS256\",\"use\":\"sig\"},{\"kty\":\"RSA\",\"n\":\"kUxb_M8XykLWiv"
        "1lgjEMmJ_Sm2SupAw5L30ofcZ70aeGn9__KbDz_1pya9IHVXgm9YXxYstbCEl02sRC1I-mRLKRNgSGjrooHAHv8VGqh2"
        "evhGMCDKTV4afzbX0OrLXjqa_-aIrmRlDBTqZ1qJs-V0cCPNpadiV8cRQ5U3wxdUqrWYqEHcvsKpcqiS-2nqombdPzr9"
        "HniTa2XJ9kQFy2QnDXlfAB55NMfNw26GZkn8IvEaH8TZAB-S_fq7hclYQfcPTNSLSppqZ9myP39Xp54v3WWmnCkkOPTI"
        "rOZRQ9G6nRHMJUNOhq7v9GvjerxXwNa9OarRvcu7__04pBoWmJ5Q\",\"e\":\"AQAB\",\"kid\":\"jose-ps256\",\"alg\":\"P"
        "S256\",\"use\":\"sig\"},{\"kty\":\"EC\",\"x\":\"wwwRfa-GqW2cWpepiVRQ8juxBBp-DTD1UyGsob1HFic\",\"y\":\"977JD7"
        "ll7II72mOYQcNaBYwJiFNaPqoXWbHa_ZRp1uI\",\"crv\":\"P-256\",\"kid\":\"jose-es256\",\"alg\":\"ES256\",\"use\":"
        "\"sig\"},{\"crv\":\"Ed25519\",\"x\":\"xTzYU736oLasUJawptyOuayMxdwNmaswqC2L8_wUiIc\",\"kty\":\"OKP\",\"kid\":"
        "\"jose-eddsa\",\"alg\":\"EdDSA\",\"use\":\"sig\"}]}";

/* ES256, exp in 2100, aud inventory and orders. */
static const char fixture_token[] =
        "eyJhbGciOiJFUzI1NiIsImtpZCI6Impvc2UtZXMyNTYiLCJ0eXAiOiJhdCtqd3QifQ.eyJzY29wZSI6ImludmVudG9ye"
        "TpyZWFkIGludmVudG9yeTpyZW9yZGVyIiwicm9sZSI6InN1cHBseS1jaGFpbi1tYW5hZ2VyIiwidGVuYW50IjoiYWNtZ"
        "SIsImlzcyI6Imh0dHBzOi8vaXNzdWVyLnRlc3QiLCJhdWQiOlsiaHR0cHM6Ly9ob3N0LnRlc3QvbWNwL2ludmVudG9ye"
        "SIsImh0dHBzOi8vaG9zdC50ZXN0L21jcC9vcmRlcnMiXSwic3ViIjoiYWxpY2UiLCJpYXQiOjE3OTUwMDAwMDAsIm5iZ"
        "iI6MTc5NTAwMDAwMCwiZXhwIjo0MTAyNDQ0ODAwfQ.FLZaZFWtq8nVPOeuVyu1-ZPLUVTpse0JL7nNy9CnSPrtZH1VLr"
        "6S84AdWWMKmk6reEpynYzllE2bsXyAbVN7UQ";

static const struct jwt_expect expect = {
        .issuer = "https://issuer.test",
        .audience = "https://host.test/mcp/inventory",
        .leeway_sec = 60,
        .role_claim = "role",
        .tenant_claim = "tenant",
};
#define FUZZ_NOW 1800000000

static EVP_PKEY *fuzz_key(void) {
        static const uint8_t seed[32] = "bastion fuzz_jwt fixed ed25519!";
        static EVP_PKEY *key;

        if (!key && !(key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, sizeof(seed))))
                __builtin_trap();
        return key;
}

/* The fixture set plus the fuzz key as kid "fuzz-ed". */
static struct jwks *fixture_keys(void) {
        static struct jwks *keys;
        uint8_t pub[32];
        size_t n = sizeof(pub);
        _cleanup_free_ char *x = NULL, *doc = NULL;

        if (keys)
                return keys;
        if (EVP_PKEY_get_raw_public_key(fuzz_key(), pub, &n) != 1 || !(x = b64url_encode(pub, n)) ||
            asprintf(&doc, "%.*s,{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"fuzz-ed\",\"alg\":\"EdDSA\","
                     "\"x\":\"%s\"}]}", (int) strlen(fixture_jwks) - 2, fixture_jwks, x) < 0 ||
            jwks_parse(doc, strlen(doc), &keys, NULL, 0) < 0)
                __builtin_trap();
        return keys;
}

/* A result and its reason must agree, and an accepted token must carry what was promised. */
static void check_result(int r, enum jwt_reason reason, const struct jwt_claims *c) {
        if ((r == 0) != (reason == JWT_OK))
                __builtin_trap();
        if (r == 0 && (c->sub[0] == 0 || c->exp <= FUZZ_NOW - 60 ||
                       c->iat > FUZZ_NOW + 60 || c->nbf > FUZZ_NOW + 60))
                __builtin_trap();
}

static void fuzz_token(const char *token, size_t len) {
        static struct jwt_cache *cache;
        struct jwt_claims c1, c2;
        enum jwt_reason r1, r2;
        char err[256];
        int a, b;

        if (!cache && jwt_cache_new(64, &cache) < 0)
                __builtin_trap();
        a = jwt_verify(fixture_keys(), token, len, &expect, FUZZ_NOW, &c1, &r1, err, sizeof(err));
        check_result(a, r1, &c1);
        if (a < 0 && strlen(err) == 0)
                __builtin_trap();
        b = jwt_verify_cached(cache, fixture_keys(), token, len, &expect, FUZZ_NOW, &c2, &r2, NULL, 0);
        if (a != b || r1 != r2 || (a == 0 && memcmp(&c1, &c2, sizeof(c1)) != 0))
                __builtin_trap();
}

static void fuzz_jwks(const char *doc, size_t len) {
        _cleanup_(jwks_freep) struct jwks *keys = NULL;
        struct jwt_claims c;
        enum jwt_reason reason;
        char err[256];
        int r;

        if (jwks_parse(doc, len, &keys, err, sizeof(err)) < 0)
                return;
        if (keys->n_keys == 0)
                __builtin_trap();
        for (size_t i = 0; i < keys->n_keys; i++)
                if (!keys->keys[i].pkey || !jwt_alg_to_string(keys->keys[i].alg))
                        __builtin_trap();
        r = jwt_verify(keys, fixture_token, strlen(fixture_token), &expect, FUZZ_NOW, &c, &reason, err, sizeof(err));
        check_result(r, reason, &c);
}

/* header "\n" claims (or claims alone, under a plain header), signed with the fuzz key. */
static void fuzz_signed(const char *in, size_t len) {
        static const char plain[] = "{\"alg\":\"EdDSA\",\"kid\":\"fuzz-ed\"}";
        const char *nl = memchr(in, '\n', len), *h = nl ? in : plain, *p = nl ? nl + 1 : in;
        size_t h_len = nl ? (size_t) (nl - in) : strlen(plain), p_len = nl ? len - h_len - 1 : len;
        _cleanup_free_ char *hb = b64url_encode((const uint8_t *) h, h_len);
        _cleanup_free_ char *pb = b64url_encode((const uint8_t *) p, p_len);
        _cleanup_free_ char *input = NULL, *sb = NULL, *token = NULL;
        uint8_t sig[64];
        size_t sig_len = sizeof(sig);
        EVP_MD_CTX *md = EVP_MD_CTX_new();

        if (!hb || !pb || !md || asprintf(&input, "%s.%s", hb, pb) < 0 ||
            EVP_DigestSignInit(md, NULL, NULL, NULL, fuzz_key()) != 1 ||
            EVP_DigestSign(md, sig, &sig_len, (const uint8_t *) input, strlen(input)) != 1 ||
            !(sb = b64url_encode(sig, sig_len)) || asprintf(&token, "%s.%s", input, sb) < 0)
                __builtin_trap();
        EVP_MD_CTX_free(md);
        fuzz_token(token, strlen(token));
}

/* First byte picks the input kind: 0 mod 3 = bearer token, 1 = JWKS document, 2 = signed claims. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_free_ char *copy = NULL;

        if (size == 0)
                return 0;
        /* A private copy, so reads past the end are caught by the sanitizer, not masked. */
        copy = malloc(size - 1 ? size - 1 : 1);
        if (!copy)
                return 0;
        memcpy(copy, data + 1, size - 1);
        if (data[0] % 3 == 1)
                fuzz_jwks(copy, size - 1);
        else if (data[0] % 3 == 2)
                fuzz_signed(copy, size - 1);
        else
                fuzz_token(copy, size - 1);
        return 0;
}
