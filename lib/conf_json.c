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
        }
        free(c->servers);
        *c = (struct bastion_config) {};
}

static json_t *strv_to_json(char **v, size_t n) {
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
                json_array_append_new(a, json_string(v[i]));
        return a;
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
        }
        return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s*, s:b, s:s*, s:s*, s:I, s:I, s:I, s:I, s:o, s:o, s:o}",
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

static int server_from_json(json_t *j, struct server_config *s) {
        const char *name, *domain, *state_dir, *db_path, *credential = NULL;
        json_int_t uid, gid, mem, timeout;
        int demo;
        json_t *tools, *t, *resources;
        size_t i;
        int r;

        if (json_unpack(j, "{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:b, s?s, s:o, s:o !}", "name", &name,
                        "domain", &domain, "state_dir", &state_dir, "db_path", &db_path, "uid", &uid, "gid", &gid,
                        "memory_max", &mem, "call_timeout_ms", &timeout, "demo_data", &demo,
                        "credential", &credential, "tools", &tools, "resources", &resources) < 0 ||
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
        return 0;
}

int config_from_json(json_t *j, struct bastion_config *ret) {
        struct bastion_config c = {};
        const char *path, *sock, *ctl, *state, *run, *libexec, *audit = NULL, *store = NULL, *key = NULL;
        int journal = 0;
        json_int_t timeout, inflight, confirm_ms, ttl_ms;
        json_t *roles, *principals, *servers, *v;
        size_t i;
        int r = -EBADMSG;

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
