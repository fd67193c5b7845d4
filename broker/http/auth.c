/* Bearer tokens over HTTP: the key set the supervisor sends (CHAN_JWKS), verification with broker/auth
 * against this server's resource URI, the principal a token yields, the 401 and 403 challenges
 * (RFC 6750 §3, MCP authorization) and the RFC 9728 protected-resource metadata of each server. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "broker/http/http.h"
#include "log.h"
#include "util.h"

int http_jwks_update(struct broker *b, json_t *payload) {
        struct http_state *h = http_get(b);
        const char *text, *path = "?";
        size_t len;
        struct jwks *keys;
        char err[256];
        int r;

        if (json_unpack(payload, "{s:s%, s?s}", "jwks", &text, &len, "path", &path) < 0)
                return -EBADMSG;
        if (!h)
                return log_oom();
        r = jwks_parse(text, len, &keys, err, sizeof(err));
        if (r < 0) {
                /* Fail safe: the previous set stays (or none: every token is refused). */
                log_error("The JWKS %s is refused: %s; %s", path, err,
                          h->jwks ? "keeping the previous key set" : "no token can be verified");
                return 0;
        }
        jwks_free(h->jwks);
        h->jwks = keys;
        /* The cache notices the new generation by itself; clearing now also frees the memory. */
        jwt_cache_clear(h->cache);
        log_info("JWKS %s loaded: %zu key(s)", path, keys->n_keys);
        return 0;
}

static const char *public_url(const struct bastion_config *cfg) {
        return cfg->http && cfg->http->public_url ? cfg->http->public_url : "https://localhost";
}

char *http_resource_uri(const struct bastion_config *cfg, const char *server) {
        char *s = NULL;

        return asprintf(&s, "%s/mcp/%s", public_url(cfg), server) < 0 ? NULL : s;
}

char *http_metadata_url(const struct bastion_config *cfg, const char *server) {
        char *s = NULL;

        return asprintf(&s, "%s/.well-known/oauth-protected-resource/mcp/%s", public_url(cfg), server) < 0 ? NULL : s;
}

static void scopes_add(json_t *list, char *const *scopes, size_t n) {
        for (size_t i = 0; i < n; i++) {
                bool seen = false;
                size_t k;
                json_t *v;
                json_array_foreach(list, k, v)
                        seen = seen || streq(json_string_value(v), scopes[i]);
                if (!seen)
                        json_array_append_new(list, json_string(scopes[i]));
        }
}

static json_t *scopes_supported(const struct server_config *s) {
        json_t *list = json_array();

        for (size_t i = 0; i < s->n_tools; i++)
                scopes_add(list, s->tools[i].scopes, s->tools[i].n_scopes);
        for (size_t i = 0; i < s->n_resources; i++)
                scopes_add(list, s->resources[i].scopes, s->resources[i].n_scopes);
        return list;
}

static char *scopes_join(const json_t *list) {
        size_t n = 1, i;
        json_t *v;
        char *s;

        json_array_foreach(list, i, v)
                n += strlen(json_string_value(v)) + 1;
        s = calloc(1, n);
        if (!s)
                return NULL;
        json_array_foreach(list, i, v) {
                if (i > 0)
                        strcat(s, " ");
                strcat(s, json_string_value(v));
        }
        return s;
}

char *http_server_scopes(const struct server_config *s) {
        _cleanup_json_ json_t *list = scopes_supported(s);

        return list ? scopes_join(list) : NULL;
}

void http_metadata(struct http_state *h, const struct http_request *r, const struct server_config *s) {
        const struct bastion_config *cfg = &h->b->config;
        _cleanup_free_ char *resource = http_resource_uri(cfg, s->name);
        json_t *servers = json_array();

        if (!streq(r->method, "GET")) {
                json_decref(servers);
                return http_respond_json(h, r->conn, r->stream, 405, json_pack("[[s, s]]", "allow", "GET"),
                                         json_pack("{s:s}", "error", "method not allowed"));
        }
        if (!cfg->oauth) {
                json_decref(servers);
                return http_respond_json(h, r->conn, r->stream, 404, NULL,
                                         json_pack("{s:s}", "error", "no authorization is configured"));
        }
        for (size_t i = 0; i < cfg->oauth->n_authorization_servers; i++)
                json_array_append_new(servers, json_string(cfg->oauth->authorization_servers[i]));
        http_respond_json(h, r->conn, r->stream, 200, NULL,
                          json_pack("{s:s, s:o, s:o, s:[s], s:s}", "resource", resource, "authorization_servers",
                                    servers, "scopes_supported", scopes_supported(s), "bearer_methods_supported",
                                    "header", "resource_name", s->name));
}

/* `Bearer resource_metadata="…", scope="…"[, error="…"]`: every value we put in is a URL or a scope,
 * which the configuration checks hold no quote or backslash. */
static char *challenge(const struct bastion_config *cfg, const struct server_config *s, const char *error,
                       const char *scopes) {
        _cleanup_free_ char *url = http_metadata_url(cfg, s->name), *all = scopes ? NULL : http_server_scopes(s);
        char *c = NULL;

        if (!url || (!scopes && !all))
                return NULL;
        if (asprintf(&c, "Bearer %s%s%sresource_metadata=\"%s\", scope=\"%s\"", error ? "error=\"" : "",
                     error ? error : "", error ? "\", " : "", url, scopes ? scopes : all) < 0)
                return NULL;
        return c;
}

static void unauthorized(struct http_state *h, const struct http_request *r, const struct server_config *s,
                         bool presented, const char *reason, const char *detail) {
        _cleanup_free_ char *c = challenge(&h->b->config, s, presented ? "invalid_token" : NULL, NULL);
        char who[BASTION_NAME_BUF + 128], why[512];

        snprintf(who, sizeof(who), "http %.64s %s /mcp/%s", r->peer, r->method, s->name);
        snprintf(why, sizeof(why), "%s%s%s", reason, detail && *detail ? ": " : "", detail ? detail : "");
        log_notice("%s: authentication failed: %s", who, why);
        record_auth_failure(h->b, who, why);
        if (!c)
                return (void) log_oom();
        http_respond_json(h, r->conn, r->stream, 401, json_pack("[[s, s]]", "www-authenticate", c),
                          json_pack("{s:s, s:s}", "error", presented ? "invalid_token" : "unauthorized",
                                    "error_description", reason));
}

void http_forbidden(struct http_state *h, const struct http_request *r, const struct server_config *s,
                    const char *scopes, json_t *body) {
        _cleanup_free_ char *c = challenge(&h->b->config, s, "insufficient_scope", scopes);

        if (!c) {
                json_decref(body);
                return (void) log_oom();
        }
        http_respond_json(h, r->conn, r->stream, 403, json_pack("[[s, s]]", "www-authenticate", c), body);
}

/* "Bearer <token>": the scheme is case-insensitive (RFC 9110 §11.1), the token is b64token. */
static const char *bearer_token(const char *authz) {
        if (strncasecmp(authz, "Bearer ", 7) != 0)
                return NULL;
        authz += 7;
        while (*authz == ' ')
                authz++;
        return *authz ? authz : NULL;
}

static void principal_from_claims(const struct jwt_claims *c, struct principal *ret) {
        *ret = (struct principal) { .source = PRINCIPAL_TOKEN, .uid = (uid_t) -1, .gid = (gid_t) -1 };
        snprintf(ret->sub, sizeof(ret->sub), "%s", c->sub);
        snprintf(ret->role, sizeof(ret->role), "%s", c->role);
        snprintf(ret->tenant, sizeof(ret->tenant), "%s", c->tenant);
        snprintf(ret->scope, sizeof(ret->scope), "%s", c->scope);
}

bool http_authenticate(struct http_state *h, const struct http_request *r, const struct server_config *s,
                       struct principal *ret) {
        const struct oauth_config *o = h->b->config.oauth;
        const char *authz = http_header(r, "authorization"), *token;
        _cleanup_free_ char *audience = NULL;
        struct jwt_expect expect;
        struct jwt_claims claims;
        enum jwt_reason why;
        char err[256];
        int k;

        if (!authz) {
                if (o && o->anonymous_role) {
                        *ret = (struct principal) {
                                .source = PRINCIPAL_ANONYMOUS, .uid = (uid_t) -1, .gid = (gid_t) -1,
                        };
                        snprintf(ret->sub, sizeof(ret->sub), "anonymous");
                        snprintf(ret->role, sizeof(ret->role), "%s", o->anonymous_role);
                        return true;
                }
                return unauthorized(h, r, s, false, "missing", "no Authorization header"), false;
        }
        token = bearer_token(authz);
        if (!token)
                return unauthorized(h, r, s, true, "malformed", "not a Bearer credential"), false;
        if (!o)
                return unauthorized(h, r, s, true, "not-configured", "no oauth group in the configuration"), false;
        if (!h->jwks)
                return unauthorized(h, r, s, true, "no-keys", "no JWKS has been loaded"), false;
        audience = http_resource_uri(&h->b->config, s->name);
        if (!audience)
                return log_oom(), false;
        expect = (struct jwt_expect) {
                .issuer = o->issuer,
                .audience = audience,
                .leeway_sec = o->leeway_s,
                .role_claim = o->role_claim,
                .tenant_claim = o->tenant_claim,
        };
        k = jwt_verify_cached(o->token_cache ? h->cache : NULL, h->jwks, token, strlen(token), &expect, time(NULL),
                              &claims, &why, err, sizeof(err));
        if (k < 0)
                return unauthorized(h, r, s, true, jwt_reason_to_string(why), err), false;
        principal_from_claims(&claims, ret);
        return true;
}
