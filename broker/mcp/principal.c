/* Local identity: SO_PEERCRED (and SO_PEERGROUPS) of the connection, mapped through the config. */
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

        *ret = (struct principal) {};
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

/* A user entry wins over a group entry; within a kind the first match in the file wins. */
const struct principal_map *principal_lookup(const struct bastion_config *cfg, const struct principal *p) {
        for (size_t i = 0; i < cfg->n_principals; i++)
                if (cfg->principals[i].kind == PRINCIPAL_UID && cfg->principals[i].id == p->uid)
                        return &cfg->principals[i];
        for (size_t i = 0; i < cfg->n_principals; i++)
                if (cfg->principals[i].kind == PRINCIPAL_GID && principal_in_group(p, cfg->principals[i].id))
                        return &cfg->principals[i];
        return NULL;
}

json_t *principal_to_meta(const struct bastion_config *cfg, const struct principal *p) {
        const struct principal_map *m = principal_lookup(cfg, p);
        const struct role *role = m ? config_find_role(cfg, m->role) : NULL;
        json_t *scopes = json_array();

        for (size_t i = 0; role && i < role->n_scopes; i++)
                json_array_append_new(scopes, json_string(role->scopes[i]));
        return json_pack("{s:s, s:I, s:s?, s:s?, s:o}", "sub", p->sub, "uid", (json_int_t) p->uid,
                         "tenant", m ? m->tenant : NULL, "role", role ? role->name : NULL, "scopes", scopes);
}
