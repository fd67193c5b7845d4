/* The compiled configuration as JSON: the supervisor -> broker CONFIG message. */
#include "config.h"
#include "conf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const approval_names[_APPROVAL_MAX] = {
        [APPROVAL_NONE] = "none",
        [APPROVAL_CONFIRM] = "confirm",
        [APPROVAL_APPROVER] = "approver",
};

const char *approval_to_string(enum approval a) {
        return a < _APPROVAL_MAX ? approval_names[a] : NULL;
}

int approval_from_string(const char *s) {
        for (int i = 0; i < _APPROVAL_MAX; i++)
                if (streq(s, approval_names[i]))
                        return i;
        return -EINVAL;
}

static void strv_free(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

/* The oauth and rate_limits groups (docs/auth.md): kept apart from the rest of the tree. */
static void oauth_config_free(struct oauth_config *o) {
        if (!o)
                return;
        free(o->issuer);
        free(o->jwks_file);
        free(o->role_claim);
        free(o->tenant_claim);
        strv_free(o->authorization_servers, o->n_authorization_servers);
        free(o->anonymous_role);
        free(o);
}

/* The http group (docs/front.md): kept apart from the rest of the tree. */
static void http_config_free(struct http_config *h) {
        if (!h)
                return;
        free(h->listen);
        free(h->tls_cert);
        free(h->tls_key);
        free(h->public_url);
        strv_free(h->hosts, h->n_hosts);
        strv_free(h->origins, h->n_origins);
        free(h);
}

void config_free(struct bastion_config *c) {
        if (!c)
                return;
        free(c->path);
        free(c->socket_path);
        free(c->control_socket_path);
        free(c->state_dir);
        free(c->runtime_dir);
        free(c->libexec_dir);
        free(c->audit_dir);
        free(c->secrets_store);
        free(c->secrets_key_file);
        for (size_t i = 0; i < c->n_roles; i++) {
                free(c->roles[i].name);
                strv_free(c->roles[i].scopes, c->roles[i].n_scopes);
        }
        free(c->roles);
        for (size_t i = 0; i < c->n_principals; i++) {
                free(c->principals[i].role);
                free(c->principals[i].tenant);
        }
        free(c->principals);
        for (size_t i = 0; i < c->n_servers; i++) {
                struct server_config *s = &c->servers[i];
                free(s->name);
                free(s->domain);
                free(s->state_dir);
                free(s->db_path);
                free(s->credential);
                for (size_t k = 0; k < s->n_tools; k++) {
                        free(s->tools[k].name);
                        strv_free(s->tools[k].scopes, s->tools[k].n_scopes);
                }
                free(s->tools);
                for (size_t k = 0; k < s->n_resources; k++) {
                        free(s->resources[k].name);
                        free(s->resources[k].uri_prefix);
                        strv_free(s->resources[k].scopes, s->resources[k].n_scopes);
                }
                free(s->resources);
                for (size_t k = 0; k < s->n_prompts; k++) {
                        free(s->prompts[k].name);
                        strv_free(s->prompts[k].scopes, s->prompts[k].n_scopes);
                }
                free(s->prompts);
        }
        free(c->servers);
        oauth_config_free(c->oauth);
        http_config_free(c->http);
        *c = (struct bastion_config) {};
}

static void prompts_to_json(const struct server_config *s, json_t *server);

static json_t *strv_to_json(char **v, size_t n) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
                json_array_append_new(a, json_string(v[i]));
        return a;
}

static json_t *rate_limit_to_json(const struct rate_limit *r) {
        return json_pack("{s:f, s:I}", "rate", r->rate, "burst", (json_int_t) r->burst);
}

/* Adds "oauth" (when configured) and "rate_limits" to the configuration object j. */
static int auth_to_json(const struct bastion_config *c, json_t *j) {
        const struct oauth_config *o = c->oauth;

        if (json_object_set_new(j, "rate_limits", json_pack("{s:o, s:o}",
                                "per_subject", rate_limit_to_json(&c->rate_limits.per_subject),
                                "per_tenant", rate_limit_to_json(&c->rate_limits.per_tenant))) < 0)
                return -ENOMEM;
        if (o && json_object_set_new(j, "oauth", json_pack("{s:s, s:s, s:I, s:s, s:s*, s:o, s:b, s:s*}",
                                     "issuer", o->issuer, "jwks_file", o->jwks_file, "leeway_s", (json_int_t) o->leeway_s,
                                     "role_claim", o->role_claim, "tenant_claim", o->tenant_claim,
                                     "authorization_servers", strv_to_json(o->authorization_servers,
                                                                           o->n_authorization_servers),
                                     "token_cache", o->token_cache, "anonymous_role", o->anonymous_role)) < 0)
                return -ENOMEM;
        return 0;
}

/* Adds "http" to the configuration object j when the group is configured. */
static int http_to_json(const struct bastion_config *c, json_t *j) {
        const struct http_config *h = c->http;

        if (h && json_object_set_new(j, "http", json_pack("{s:s, s:b, s:s*, s:s*, s:s, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I}",
                                     "listen", h->listen, "plain", h->plain, "tls_cert", h->tls_cert,
                                     "tls_key", h->tls_key, "public_url", h->public_url,
                                     "hosts", strv_to_json(h->hosts, h->n_hosts),
                                     "origins", strv_to_json(h->origins, h->n_origins),
                                     "max_connections", (json_int_t) h->max_connections,
                                     "max_connections_per_address", (json_int_t) h->max_connections_per_address,
                                     "header_timeout_ms", (json_int_t) h->header_timeout_ms,
                                     "idle_timeout_ms", (json_int_t) h->idle_timeout_ms,
                                     "max_body", (json_int_t) h->max_body, "uid", (json_int_t) h->uid)) < 0)
                return -ENOMEM;
        return 0;
}

json_t *config_to_json(const struct bastion_config *c) {
        json_t *roles = json_array(), *principals = json_array(), *servers = json_array();

        for (size_t i = 0; i < c->n_roles; i++)
                json_array_append_new(roles, json_pack("{s:s, s:o}", "name", c->roles[i].name,
                                                       "scopes", strv_to_json(c->roles[i].scopes, c->roles[i].n_scopes)));
        for (size_t i = 0; i < c->n_principals; i++) {
                const struct principal_map *p = &c->principals[i];
                json_array_append_new(principals, json_pack("{s:s, s:I, s:s, s:s*}",
                                "kind", p->kind == PRINCIPAL_UID ? "uid" : "gid", "id", (json_int_t) p->id,
                                "role", p->role, "tenant", p->tenant));
        }
        for (size_t i = 0; i < c->n_servers; i++) {
                const struct server_config *s = &c->servers[i];
                json_t *tools = json_array(), *resources = json_array();
                for (size_t k = 0; k < s->n_resources; k++)
                        json_array_append_new(resources, json_pack("{s:s, s:s, s:o}", "name", s->resources[k].name,
                                        "uri_prefix", s->resources[k].uri_prefix,
                                        "scopes", strv_to_json(s->resources[k].scopes, s->resources[k].n_scopes)));
                for (size_t k = 0; k < s->n_tools; k++)
                        json_array_append_new(tools, json_pack("{s:s, s:o, s:s}", "name", s->tools[k].name,
                                        "scopes", strv_to_json(s->tools[k].scopes, s->tools[k].n_scopes),
                                        "approval", approval_to_string(s->tools[k].approval)));
                json_array_append_new(servers, json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:b, s:s*, s:o, s:o}",
                                "name", s->name, "domain", s->domain, "state_dir", s->state_dir,
                                "db_path", s->db_path, "uid", (json_int_t) s->uid, "gid", (json_int_t) s->gid,
                                "memory_max", (json_int_t) s->memory_max,
                                "call_timeout_ms", (json_int_t) s->call_timeout_ms, "demo_data", s->demo_data,
                                "credential", s->credential, "tools", tools, "resources", resources));
                prompts_to_json(s, json_array_get(servers, json_array_size(servers) - 1));
        }
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s*, s:b, s:s*, s:s*, s:I, s:I, s:I, s:I, s:o, s:o, s:o}",
                         "path", c->path, "socket_path", c->socket_path,
                         "control_socket_path", c->control_socket_path, "state_dir", c->state_dir,
                         "runtime_dir", c->runtime_dir, "libexec_dir", c->libexec_dir,
                         "audit_dir", c->audit_dir, "audit_journal", c->audit_journal,
                         "secrets_store", c->secrets_store, "secrets_key_file", c->secrets_key_file,
                         "call_timeout_ms", (json_int_t) c->call_timeout_ms,
                         "max_inflight", (json_int_t) c->max_inflight,
                         "confirm_timeout_ms", (json_int_t) c->confirm_timeout_ms,
                         "approval_ttl_ms", (json_int_t) c->approval_ttl_ms,
                         "roles", roles, "principals", principals, "servers", servers);

        if (j && (auth_to_json(c, j) < 0 || http_to_json(c, j) < 0)) {
                json_decref(j);
                return NULL;
        }
        return j;
}

static int strv_from_json(json_t *a, char ***ret, size_t *ret_n) {
        size_t i;
        json_t *v;

        if (!json_is_array(a))
                return -EBADMSG;
        *ret = calloc(json_array_size(a) + 1, sizeof(char *));
        *ret_n = 0;
        if (!*ret)
                return -ENOMEM;
        json_array_foreach(a, i, v) {
                if (!json_is_string(v))
                        return -EBADMSG;
                (*ret)[(*ret_n)++] = strdup(json_string_value(v));
        }
        return 0;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* ---- prompts: a server's "prompts" array, present only when it has prompt policy entries ---- */

static void prompts_to_json(const struct server_config *s, json_t *server) {
        json_t *prompts;

        if (!s->n_prompts || !server)
                return;
        prompts = json_array();
        for (size_t k = 0; k < s->n_prompts; k++)
                json_array_append_new(prompts, json_pack("{s:s, s:o}", "name", s->prompts[k].name,
                                      "scopes", strv_to_json(s->prompts[k].scopes, s->prompts[k].n_scopes)));
        json_object_set_new(server, "prompts", prompts);
}

static int strv_from_json(json_t *a, char ***ret, size_t *ret_n);

static int prompts_from_json(json_t *prompts, struct server_config *s) {
        size_t i;
        json_t *t;
        int r;

        if (!prompts)
                return 0;
        if (!json_is_array(prompts))
                return -EBADMSG;
        s->prompts = calloc(json_array_size(prompts) + 1, sizeof(*s->prompts));
        if (!s->prompts)
                return -ENOMEM;
        json_array_foreach(prompts, i, t) {
                struct prompt_policy *pp = &s->prompts[s->n_prompts++];
                const char *pname;
                json_t *scopes;
                if (json_unpack(t, "{s:s, s:o !}", "name", &pname, "scopes", &scopes) < 0)
                        return -EBADMSG;
                pp->name = strdup(pname);
                if (!pp->name)
                        return -ENOMEM;
                r = strv_from_json(scopes, &pp->scopes, &pp->n_scopes);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int server_from_json(json_t *j, struct server_config *s) {
        const char *name, *domain, *state_dir, *db_path, *credential = NULL;
        json_int_t uid, gid, mem, timeout;
        int demo;
        json_t *tools, *t, *resources, *prompts = NULL;
        size_t i;
        int r;

        if (json_unpack(j, "{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:b, s?s, s:o, s:o, s?o !}", "name", &name,
                        "domain", &domain, "state_dir", &state_dir, "db_path", &db_path, "uid", &uid, "gid", &gid,
                        "memory_max", &mem, "call_timeout_ms", &timeout, "demo_data", &demo,
                        "credential", &credential, "tools", &tools, "resources", &resources,
                        "prompts", &prompts) < 0 ||
            !json_is_array(tools) || !json_is_array(resources))
                return -EBADMSG;
        s->name = strdup(name);
        s->domain = strdup(domain);
        s->state_dir = strdup(state_dir);
        s->db_path = strdup(db_path);
        s->uid = uid;
        s->gid = gid;
        s->memory_max = mem;
        s->call_timeout_ms = timeout;
        s->demo_data = demo;
        s->credential = dup_or_null(credential);
        s->tools = calloc(json_array_size(tools) + 1, sizeof(*s->tools));
        if (!s->tools)
                return -ENOMEM;
        json_array_foreach(tools, i, t) {
                struct tool_policy *tp = &s->tools[s->n_tools++];
                const char *tname, *approval;
                json_t *scopes;
                if (json_unpack(t, "{s:s, s:o, s:s !}", "name", &tname, "scopes", &scopes, "approval", &approval) < 0)
                        return -EBADMSG;
                tp->name = strdup(tname);
                r = approval_from_string(approval);
                if (r < 0)
                        return -EBADMSG;
                tp->approval = r;
                r = strv_from_json(scopes, &tp->scopes, &tp->n_scopes);
                if (r < 0)
                        return r;
        }
        s->resources = calloc(json_array_size(resources) + 1, sizeof(*s->resources));
        if (!s->resources)
                return -ENOMEM;
        json_array_foreach(resources, i, t) {
                struct resource_policy *rp = &s->resources[s->n_resources++];
                const char *rname, *prefix;
                json_t *scopes;
                if (json_unpack(t, "{s:s, s:s, s:o !}", "name", &rname, "uri_prefix", &prefix, "scopes", &scopes) < 0)
                        return -EBADMSG;
                rp->name = strdup(rname);
                rp->uri_prefix = strdup(prefix);
                r = strv_from_json(scopes, &rp->scopes, &rp->n_scopes);
                if (r < 0)
                        return r;
        }
        return prompts_from_json(prompts, s);
}

static int rate_limit_from_json(json_t *j, struct rate_limit *r) {
        json_int_t burst;

        if (json_unpack(j, "{s:F, s:I !}", "rate", &r->rate, "burst", &burst) < 0 || r->rate < 0 || burst < 0 ||
            burst > UINT32_MAX)
                return -EBADMSG;
        r->burst = burst;
        return 0;
}

/* Takes "oauth" and "rate_limits" out of j (so the strict unpack of the rest does not see them). */
static int auth_from_json(json_t *j, struct bastion_config *c) {
        json_t *rl = json_object_get(j, "rate_limits"), *o = json_object_get(j, "oauth"), *as = NULL;
        json_t *subject, *tenant;
        const char *issuer, *jwks, *role_claim, *tenant_claim = NULL, *anon = NULL;
        json_int_t leeway;
        int cache, r;

        if (!rl || json_unpack(rl, "{s:o, s:o !}", "per_subject", &subject, "per_tenant", &tenant) < 0)
                return -EBADMSG;
        if ((r = rate_limit_from_json(subject, &c->rate_limits.per_subject)) < 0 ||
            (r = rate_limit_from_json(tenant, &c->rate_limits.per_tenant)) < 0)
                return r;
        if (o) {
                if (json_unpack(o, "{s:s, s:s, s:I, s:s, s?s, s:o, s:b, s?s !}", "issuer", &issuer,
                                "jwks_file", &jwks, "leeway_s", &leeway, "role_claim", &role_claim,
                                "tenant_claim", &tenant_claim, "authorization_servers", &as,
                                "token_cache", &cache, "anonymous_role", &anon) < 0 || leeway < 0 || leeway > 3600)
                        return -EBADMSG;
                c->oauth = calloc(1, sizeof(*c->oauth));
                if (!c->oauth)
                        return -ENOMEM;
                c->oauth->issuer = strdup(issuer);
                c->oauth->jwks_file = strdup(jwks);
                c->oauth->leeway_s = leeway;
                c->oauth->role_claim = strdup(role_claim);
                c->oauth->tenant_claim = dup_or_null(tenant_claim);
                c->oauth->token_cache = cache;
                c->oauth->anonymous_role = dup_or_null(anon);
                r = strv_from_json(as, &c->oauth->authorization_servers, &c->oauth->n_authorization_servers);
                if (r < 0)
                        return r;
        }
        json_object_del(j, "oauth");
        json_object_del(j, "rate_limits");
        return 0;
}

/* Takes "http" out of j, like auth_from_json. */
static int http_from_json(json_t *j, struct bastion_config *c) {
        json_t *o = json_object_get(j, "http"), *hosts, *origins;
        const char *listen, *cert = NULL, *key = NULL, *url;
        json_int_t max_conn, max_per, header_ms, idle_ms, max_body, uid;
        struct http_config *h;
        int plain, r;

        if (!o)
                return 0;
        if (json_unpack(o, "{s:s, s:b, s?s, s?s, s:s, s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I !}", "listen", &listen,
                        "plain", &plain, "tls_cert", &cert, "tls_key", &key, "public_url", &url, "hosts", &hosts,
                        "origins", &origins, "max_connections", &max_conn, "max_connections_per_address", &max_per,
                        "header_timeout_ms", &header_ms, "idle_timeout_ms", &idle_ms, "max_body", &max_body,
                        "uid", &uid) < 0 ||
            max_conn < 1 || max_conn > UINT32_MAX || max_per < 1 || max_per > UINT32_MAX || header_ms < 1 ||
            header_ms > UINT32_MAX || idle_ms < 1 || idle_ms > UINT32_MAX || max_body < 0 || uid < 1 ||
            uid > UINT32_MAX - 1)
                return -EBADMSG;
        h = c->http = calloc(1, sizeof(*h));
        if (!h)
                return -ENOMEM;
        h->listen = strdup(listen);
        h->plain = plain;
        h->tls_cert = dup_or_null(cert);
        h->tls_key = dup_or_null(key);
        h->public_url = strdup(url);
        h->max_connections = max_conn;
        h->max_connections_per_address = max_per;
        h->header_timeout_ms = header_ms;
        h->idle_timeout_ms = idle_ms;
        h->max_body = max_body;
        h->uid = uid;
        if (!h->listen || !h->public_url)
                return -ENOMEM;
        if ((r = strv_from_json(hosts, &h->hosts, &h->n_hosts)) < 0 ||
            (r = strv_from_json(origins, &h->origins, &h->n_origins)) < 0)
                return r;
        json_object_del(j, "http");
        return 0;
}

int config_from_json(json_t *j, struct bastion_config *ret) {
        struct bastion_config c = {};
        const char *path, *sock, *ctl, *state, *run, *libexec, *audit = NULL, *store = NULL, *key = NULL;
        int journal = 0;
        json_int_t timeout, inflight, confirm_ms, ttl_ms;
        json_t *roles, *principals, *servers, *v;
        size_t i;
        _cleanup_json_ json_t *rest = json_copy(j);
        int r = -EBADMSG;

        /* The oauth and rate_limits groups are read (and removed from a shallow copy) first. */
        r = rest ? auth_from_json(rest, &c) : -ENOMEM;
        if (r >= 0)
                r = http_from_json(rest, &c);
        if (r < 0)
                goto fail;
        r = -EBADMSG;
        j = rest;
        if (json_unpack(j, "{s:s, s:s, s:s, s:s, s:s, s:s, s?s, s:b, s?s, s?s, s:I, s:I, s:I, s:I, s:o, s:o, s:o !}", "path", &path,
                        "socket_path", &sock, "control_socket_path", &ctl, "state_dir", &state,
                        "runtime_dir", &run, "libexec_dir", &libexec, "audit_dir", &audit, "audit_journal", &journal,
                        "secrets_store", &store, "secrets_key_file", &key, "call_timeout_ms", &timeout,
                        "max_inflight", &inflight, "confirm_timeout_ms", &confirm_ms, "approval_ttl_ms", &ttl_ms, "roles", &roles, "principals", &principals,
                        "servers", &servers) < 0 ||
            !json_is_array(roles) || !json_is_array(principals) || !json_is_array(servers))
                goto fail;
        c.path = strdup(path);
        c.socket_path = strdup(sock);
        c.control_socket_path = strdup(ctl);
        c.state_dir = strdup(state);
        c.runtime_dir = strdup(run);
        c.libexec_dir = strdup(libexec);
        c.audit_dir = dup_or_null(audit);
        c.audit_journal = journal;
        c.secrets_store = dup_or_null(store);
        c.secrets_key_file = dup_or_null(key);
        c.call_timeout_ms = timeout;
        c.max_inflight = inflight;
        c.confirm_timeout_ms = confirm_ms;
        c.approval_ttl_ms = ttl_ms;

        c.roles = calloc(json_array_size(roles) + 1, sizeof(*c.roles));
        c.principals = calloc(json_array_size(principals) + 1, sizeof(*c.principals));
        c.servers = calloc(json_array_size(servers) + 1, sizeof(*c.servers));
        if (!c.roles || !c.principals || !c.servers) {
                r = -ENOMEM;
                goto fail;
        }
        json_array_foreach(roles, i, v) {
                struct role *role = &c.roles[c.n_roles++];
                const char *name;
                json_t *scopes;
                if (json_unpack(v, "{s:s, s:o !}", "name", &name, "scopes", &scopes) < 0)
                        goto fail;
                role->name = strdup(name);
                r = strv_from_json(scopes, &role->scopes, &role->n_scopes);
                if (r < 0)
                        goto fail;
                r = -EBADMSG;
        }
        json_array_foreach(principals, i, v) {
                struct principal_map *p = &c.principals[c.n_principals++];
                const char *kind, *role, *tenant = NULL;
                json_int_t id;
                if (json_unpack(v, "{s:s, s:I, s:s, s?s !}", "kind", &kind, "id", &id, "role", &role,
                                "tenant", &tenant) < 0)
                        goto fail;
                if (!streq(kind, "uid") && !streq(kind, "gid"))
                        goto fail;
                p->kind = streq(kind, "uid") ? PRINCIPAL_UID : PRINCIPAL_GID;
                p->id = id;
                p->role = strdup(role);
                p->tenant = dup_or_null(tenant);
        }
        json_array_foreach(servers, i, v) {
                r = server_from_json(v, &c.servers[c.n_servers++]);
                if (r < 0)
                        goto fail;
        }
        *ret = c;
        return 0;
fail:
        config_free(&c);
        return r;
}

const struct server_config *config_find_server(const struct bastion_config *c, const char *name) {
        for (size_t i = 0; i < c->n_servers; i++)
                if (streq(c->servers[i].name, name))
                        return &c->servers[i];
        return NULL;
}

const struct role *config_find_role(const struct bastion_config *c, const char *name) {
        for (size_t i = 0; i < c->n_roles; i++)
                if (streq(c->roles[i].name, name))
                        return &c->roles[i];
        return NULL;
}

const struct tool_policy *server_find_tool(const struct server_config *s, const char *name) {
        for (size_t i = 0; i < s->n_tools; i++)
                if (streq(s->tools[i].name, name))
                        return &s->tools[i];
        return NULL;
}

const struct prompt_policy *server_find_prompt(const struct server_config *s, const char *name) {
        for (size_t i = 0; name && i < s->n_prompts; i++)
                if (strcmp(s->prompts[i].name, name) == 0)
                        return &s->prompts[i];
        return NULL;
}

const struct resource_policy *server_find_resource(const struct server_config *s, const char *uri) {
        const struct resource_policy *best = NULL;

        for (size_t i = 0; uri && i < s->n_resources; i++) {
                size_t n = strlen(s->resources[i].uri_prefix);
                if (strncmp(uri, s->resources[i].uri_prefix, n) == 0 &&
                    (!best || n > strlen(best->uri_prefix)))
                        best = &s->resources[i];
        }
        return best;
}
