/* Identity: SO_PEERCRED (and SO_PEERGROUPS) of a local connection mapped through the config, or the
 * claims of a verified access token (broker/http/auth.c fills those in). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>

#include "broker/broker.h"
#include "util.h"

int principal_from_socket(int fd, struct principal *ret) {
        struct ucred cred;
        socklen_t len = sizeof(cred);
        socklen_t glen;

        *ret = (struct principal) { .source = PRINCIPAL_LOCAL };
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;
        ret->uid = cred.uid;
        ret->gid = cred.gid;
        glen = sizeof(ret->groups);
        /* Supplementary groups as they were at connect(); more than we can hold means none are used
         * for role mapping (fail closed rather than map on a partial list). */
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, ret->groups, &glen) == 0)
                ret->n_groups = glen / sizeof(gid_t);
        snprintf(ret->sub, sizeof(ret->sub), "uid:%u", (unsigned) cred.uid);
        return 0;
}

static bool principal_in_group(const struct principal *p, gid_t gid) {
        if (p->gid == gid)
                return true;
        for (int i = 0; i < p->n_groups; i++)
                if (p->groups[i] == gid)
                        return true;
        return false;
}

/* A user entry wins over a group entry; within a kind the first match in the file wins. Remote
 * principals are not in the users map: their role comes from the token. */
const struct principal_map *principal_lookup(const struct bastion_config *cfg, const struct principal *p) {
        if (p->source != PRINCIPAL_LOCAL)
                return NULL;
        for (size_t i = 0; i < cfg->n_principals; i++)
                if (cfg->principals[i].kind == PRINCIPAL_UID && cfg->principals[i].id == p->uid)
                        return &cfg->principals[i];
        for (size_t i = 0; i < cfg->n_principals; i++)
                if (cfg->principals[i].kind == PRINCIPAL_GID && principal_in_group(p, cfg->principals[i].id))
                        return &cfg->principals[i];
        return NULL;
}

const char *principal_role_name(const struct bastion_config *cfg, const struct principal *p) {
        const struct role *r = policy_role(cfg, p);

        return r ? r->name : NULL;
}

const char *principal_tenant(const struct bastion_config *cfg, const struct principal *p) {
        const struct principal_map *m;

        if (p->source != PRINCIPAL_LOCAL)
                return p->tenant[0] ? p->tenant : NULL;
        m = principal_lookup(cfg, p);
        return m ? m->tenant : NULL;
}

bool principal_same(const struct principal *a, const struct principal *b) {
        return a->source == b->source && streq(a->sub, b->sub);
}

/* What a worker learns about the caller: sub, tenant, role and the effective scopes (role ∩ token),
 * never the token. */
json_t *principal_to_meta(const struct bastion_config *cfg, const struct principal *p) {
        const struct role *role = policy_role(cfg, p);
        json_t *scopes = json_array(), *meta;

        for (size_t i = 0; role && i < role->n_scopes; i++)
                if (!policy_missing_scope(cfg, p, &role->scopes[i], 1))
                        json_array_append_new(scopes, json_string(role->scopes[i]));
        meta = json_pack("{s:s, s:s?, s:s?, s:[], s:o}", "sub", p->sub, "tenant", principal_tenant(cfg, p),
                         "role", role ? role->name : NULL, "roles", "scopes", scopes);
        if (meta && role)
                json_array_append_new(json_object_get(meta, "roles"), json_string(role->name));
        if (meta && p->source == PRINCIPAL_LOCAL)
                json_object_set_new(meta, "uid", json_integer(p->uid));
        return meta;
}
