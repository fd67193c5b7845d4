/* Authorization: role -> scopes from the broker's configuration, never from a worker. A token caller
 * holds a scope only when both its role and its token grant it (effective = token ∩ role). */
#include "config.h"

#include "broker/auth/jwt.h"
#include "broker/broker.h"
#include "util.h"

const struct role *policy_role(const struct bastion_config *cfg, const struct principal *p) {
        const struct principal_map *m;

        if (p->source != PRINCIPAL_LOCAL)
                /* "" (no role claim) matches no role: fail closed. */
                return p->role[0] ? config_find_role(cfg, p->role) : NULL;
        m = principal_lookup(cfg, p);
        return m ? config_find_role(cfg, m->role) : NULL;
}

static bool role_has_scope(const struct role *r, const char *scope) {
        for (size_t i = 0; r && i < r->n_scopes; i++)
                if (streq(r->scopes[i], scope))
                        return true;
        return false;
}

static bool principal_has_scope(const struct role *r, const struct principal *p, const char *scope) {
        if (!role_has_scope(r, scope))
                return false;
        return p->source != PRINCIPAL_TOKEN || jwt_scope_list_has(p->scope, scope);
}

const char *policy_missing_scope(const struct bastion_config *cfg, const struct principal *p,
                                 char *const *scopes, size_t n_scopes) {
        const struct role *r = policy_role(cfg, p);

        for (size_t i = 0; i < n_scopes; i++)
                if (!principal_has_scope(r, p, scopes[i]))
                        return scopes[i];
        return NULL;
}

/* Entries with the longest matching prefix are alternatives: one whose scopes are all held allows. */
bool policy_resource_allowed(const struct bastion_config *cfg, const struct principal *p, const char *server,
                             const char *uri, const char **ret_missing) {
        const struct server_config *s = config_find_server(cfg, server);
        const struct resource_policy *best = s ? server_find_resource(s, uri) : NULL;
        const char *missing = NULL;

        if (ret_missing)
                *ret_missing = NULL;
        if (!best)
                return false;
        for (size_t i = 0; i < s->n_resources; i++) {
                const struct resource_policy *rp = &s->resources[i];
                const char *m;
                if (!streq(rp->uri_prefix, best->uri_prefix))
                        continue;
                m = policy_missing_scope(cfg, p, rp->scopes, rp->n_scopes);
                if (!m)
                        return true;
                if (!missing)
                        missing = m;
        }
        if (ret_missing)
                *ret_missing = missing;
        return false;
}

bool policy_server_has_resources(const struct bastion_config *cfg, const char *server) {
        const struct server_config *s = config_find_server(cfg, server);

        return s && s->n_resources > 0;
}

/* A tool is listed only if the policy names it and the caller holds every scope it requires. */
bool policy_tool_visible(const struct bastion_config *cfg, const struct principal *p, const char *server,
                         const char *tool) {
        const struct server_config *s = config_find_server(cfg, server);
        const struct tool_policy *tp = s ? server_find_tool(s, tool) : NULL;

        return tp && !policy_missing_scope(cfg, p, tp->scopes, tp->n_scopes);
}
