/* Rate limits (the rate_limits group): a token bucket per subject and one per tenant. A request takes
 * one token from each that applies; with none left it is answered 429 with Retry-After and audited. */
#include "config.h"

#include <math.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "broker/http/http.h"
#include "log.h"
#include "util.h"

static uint64_t mono_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void refill(struct rate_bucket *k, const struct rate_limit *l, uint64_t now) {
        k->tokens = fmin((double) l->burst, k->tokens + (double) (now - k->at_us) / 1e6 * l->rate);
        k->at_us = now;
}

/* The bucket of `kind:name`: found, or a free slot, or an idle (full) one reused, or — when every
 * probed slot is busy — the first probed one restarted full (bounded memory beats exactness). */
static struct rate_bucket *bucket_get(struct http_state *h, char kind, const char *name, const struct rate_limit *l,
                                      uint64_t now) {
        uint8_t key[16];
        size_t i0;
        struct rate_bucket *spare = NULL;

        crypto_generichash_state st;
        crypto_generichash_init(&st, h->bucket_key, sizeof(h->bucket_key), sizeof(key));
        crypto_generichash_update(&st, (const unsigned char *) &kind, 1);
        crypto_generichash_update(&st, (const unsigned char *) name, strlen(name));
        crypto_generichash_final(&st, key, sizeof(key));
        memcpy(&i0, key, sizeof(i0));
        for (size_t n = 0; n < HTTP_RATE_PROBE; n++) {
                struct rate_bucket *k = &h->buckets[(i0 + n) % HTTP_RATE_BUCKETS];
                if (k->used && memcmp(k->key, key, sizeof(key)) == 0) {
                        refill(k, l, now);
                        return k;
                }
                if (!spare && !k->used)
                        spare = k;
        }
        for (size_t n = 0; !spare && n < HTTP_RATE_PROBE; n++) {
                struct rate_bucket *k = &h->buckets[(i0 + n) % HTTP_RATE_BUCKETS];
                refill(k, l, now);
                if (k->tokens >= l->burst)
                        spare = k;
        }
        if (!spare)
                spare = &h->buckets[i0 % HTTP_RATE_BUCKETS];
        *spare = (struct rate_bucket) { .used = true, .tokens = l->burst, .at_us = now };
        memcpy(spare->key, key, sizeof(key));
        return spare;
}

/* Seconds until the bucket holds one token again. */
static double wait_s(const struct rate_bucket *k, const struct rate_limit *l) {
        return k->tokens >= 1 ? 0 : (1 - k->tokens) / l->rate;
}

bool http_rate_allow(struct http_state *h, const struct http_request *r, const struct principal *p) {
        const struct bastion_config *cfg = &h->b->config;
        const struct rate_limit *ls = &cfg->rate_limits.per_subject, *lt = &cfg->rate_limits.per_tenant;
        const char *tenant = principal_tenant(cfg, p);
        struct rate_bucket *ks = NULL, *kt = NULL;
        uint64_t now = mono_us();
        double wait = 0;
        const char *which = NULL;
        char retry[32], who[BASTION_NAME_BUF + 128], why[64];

        if (ls->rate > 0)
                ks = bucket_get(h, 's', p->sub, ls, now);
        if (lt->rate > 0 && tenant)
                kt = bucket_get(h, 't', tenant, lt, now);
        if (ks && ks->tokens < 1)
                wait = wait_s(ks, ls), which = "per_subject";
        if (kt && kt->tokens < 1 && wait_s(kt, lt) > wait)
                wait = wait_s(kt, lt), which = "per_tenant";
        if (!which) {
                if (ks)
                        ks->tokens -= 1;
                if (kt)
                        kt->tokens -= 1;
                return true;
        }
        snprintf(retry, sizeof(retry), "%.0f", fmax(1, ceil(wait)));
        snprintf(who, sizeof(who), "http %.64s /mcp/%s", r->peer, r->server);
        log_notice("%s: %s over its %s rate limit", who, p->sub, which);
        snprintf(why, sizeof(why), "rate limit %s", which);
        record_denial_as(h->b, p, r->server, NULL, why);
        http_respond_json(h, r->conn, r->stream, 429, json_pack("[[s, s]]", "retry-after", retry),
                          json_pack("{s:s, s:s}", "error", "rate_limited", "limit", which));
        return false;
}
