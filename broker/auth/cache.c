/* The verified-token cache: repeated requests with the same bearer token skip the signature check.
 * Keyed by SHA-256 over the expectation and the token, so the token itself is never kept and a
 * token verified for one server is not a hit for another. */
#include "config.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "jwt.h"
#include "util.h"

#define CACHE_HASH_SIZE 32

struct cache_entry {
        uint8_t hash[CACHE_HASH_SIZE];
        struct jwt_claims claims;
};

struct jwt_cache {
        struct cache_entry **slots;     /* open addressing, linear probing, no deletion */
        size_t n_slots, n_entries, max_entries;
        uint64_t generation;            /* of the key set the entries were verified with */
        uint64_t hits;
        EVP_MD *sha256;                 /* fetched once: an implicit fetch per call costs more than the hash */
};

int jwt_cache_new(size_t max_entries, struct jwt_cache **ret) {
        _cleanup_(jwt_cache_freep) struct jwt_cache *c = NULL;

        if (max_entries == 0 || max_entries > SIZE_MAX / 4 / sizeof(void *))
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        /* A power of two at least twice the entries keeps probe chains short. */
        for (c->n_slots = 1; c->n_slots < 2 * max_entries; c->n_slots <<= 1)
                ;
        c->max_entries = max_entries;
        c->slots = calloc(c->n_slots, sizeof(*c->slots));
        c->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (!c->slots || !c->sha256)
                return -ENOMEM;
        *ret = TAKE_PTR(c);
        return 0;
}

void jwt_cache_clear(struct jwt_cache *c) {
        for (size_t i = 0; i < c->n_slots; i++) {
                free(c->slots[i]);
                c->slots[i] = NULL;
        }
        c->n_entries = 0;
}

struct jwt_cache *jwt_cache_free(struct jwt_cache *c) {
        if (!c)
                return NULL;
        if (c->slots)
                jwt_cache_clear(c);
        free(c->slots);
        EVP_MD_free(c->sha256);
        free(c);
        return NULL;
}

size_t jwt_cache_entries(const struct jwt_cache *c) {
        return c->n_entries;
}

uint64_t jwt_cache_hits(const struct jwt_cache *c) {
        return c->hits;
}

/* Length-prefixed, so ("ab","c") and ("a","bc") never hash alike; NULL differs from "". */
static int hash_field(EVP_MD_CTX *md, const void *p, size_t n, bool present) {
        uint64_t len = present ? (uint64_t) n : UINT64_MAX;

        return EVP_DigestUpdate(md, &len, sizeof(len)) > 0 && (!present || EVP_DigestUpdate(md, p, n) > 0);
}

static int cache_hash(struct jwt_cache *c, const struct jwt_expect *e, const char *token, size_t len,
                      uint8_t hash[static CACHE_HASH_SIZE]) {
        const char *fields[] = { e->issuer, e->audience, e->role_claim, e->tenant_claim };
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        bool ok = md && EVP_DigestInit_ex(md, c->sha256, NULL) > 0;

        for (size_t i = 0; ok && i < ELEMENTSOF(fields); i++)
                ok = hash_field(md, fields[i], fields[i] ? strlen(fields[i]) : 0, fields[i] != NULL);
        ok = ok && hash_field(md, token, len, true) && EVP_DigestFinal_ex(md, hash, NULL) > 0;
        EVP_MD_CTX_free(md);
        return ok ? 0 : -ENOMEM;
}

/* The slot holding hash, or the empty slot where it would go. */
static struct cache_entry **cache_slot(struct jwt_cache *c, const uint8_t hash[static CACHE_HASH_SIZE]) {
        uint64_t h;
        size_t i;

        memcpy(&h, hash, sizeof(h));
        for (i = h & (c->n_slots - 1); c->slots[i]; i = (i + 1) & (c->n_slots - 1))
                if (CRYPTO_memcmp(c->slots[i]->hash, hash, CACHE_HASH_SIZE) == 0)
                        break;
        return &c->slots[i];
}

static void cache_insert(struct jwt_cache *c, const uint8_t hash[static CACHE_HASH_SIZE],
                         const struct jwt_claims *claims) {
        struct cache_entry **slot;

        if (c->n_entries >= c->max_entries)
                jwt_cache_clear(c);
        slot = cache_slot(c, hash);
        if (!*slot) {
                *slot = malloc(sizeof(**slot));
                if (!*slot)
                        return; /* a cache that cannot grow just misses */
                c->n_entries++;
        }
        memcpy((*slot)->hash, hash, CACHE_HASH_SIZE);
        (*slot)->claims = *claims;
}

int jwt_verify_cached(struct jwt_cache *c, const struct jwks *keys, const char *token, size_t len,
                      const struct jwt_expect *expect, time_t now, struct jwt_claims *ret,
                      enum jwt_reason *ret_reason, char *err, size_t errlen) {
        uint8_t hash[CACHE_HASH_SIZE];
        struct cache_entry *e;
        struct jwt_claims claims;
        int r;

        /* Only well-formed lengths are worth hashing; everything else gets its reason from the verifier. */
        if (!c || !keys || !token || len == 0 || len > BASTION_JWT_MAX_TOKEN ||
            cache_hash(c, expect, token, len, hash) < 0)
                return jwt_verify(keys, token, len, expect, now, ret, ret_reason, err, errlen);
        if (c->generation != keys->generation) {
                jwt_cache_clear(c);
                c->generation = keys->generation;
        }
        e = *cache_slot(c, hash);
        /* A hit is only as good as exp: past it, the full check runs and says "expired". */
        if (e && (int64_t) now - (int64_t) expect->leeway_sec < e->claims.exp) {
                c->hits++;
                if (ret_reason)
                        *ret_reason = JWT_OK;
                if (err && errlen > 0)
                        err[0] = 0;
                *ret = e->claims;
                return 0;
        }
        r = jwt_verify(keys, token, len, expect, now, &claims, ret_reason, err, errlen);
        if (r < 0)
                return r;
        cache_insert(c, hash, &claims);
        *ret = claims;
        return 0;
}
