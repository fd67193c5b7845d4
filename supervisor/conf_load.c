/* bastion.conf(5) -> struct bastion_config. Strict on purpose: a typo in a security product's
 * configuration must stop the daemon, not be silently ignored, so unknown keys, wrong types and
 * dangling references are all errors, each reported once as "FILE:LINE: PATH: message". */
#include "config.h"

#include <ctype.h>
#include <grp.h>
#include <inttypes.h>
#include <libconfig.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include "bounds.h"
#include "conf_load.h"
#include "front/http.h"
#include "util.h"

/* The paths systemd's RuntimeDirectory= and StateDirectory= create, whatever the install prefix. */
#define DEFAULT_SOCKET "/run/bastion/mcp.sock"
#define DEFAULT_CONTROL_SOCKET "/run/bastion/control.sock"
#define DEFAULT_STATE_DIR "/var/lib/bastion"
#define DEFAULT_RUNTIME_DIR "/run/bastion"
#define DEFAULT_WORKER_UID_MIN 61000
#define DEFAULT_WORKER_UID_MAX 61999

/* Built-in worker domains (workers/): one line per domain. */
static const char *const known_domains[] = {
        "inventory",
        "orders",
        "logistics",
        "returns",
        "payments",
        "conformance",          /* the MCP conformance suite's fixtures: test configurations only */
};

struct loader {
        const char *path;
        char *dir;              /* directory of the configuration file: base of relative paths */
        char *error;            /* the first error, "FILE:LINE: message" */
};

static void setting_path(const config_setting_t *s, char *buf, size_t n) {
        const config_setting_t *parent = s ? config_setting_parent(s) : NULL;
        size_t len;

        if (!parent) {
                buf[0] = '\0';
                return;
        }
        setting_path(parent, buf, n);
        len = strlen(buf);
        if (config_setting_name(s))
                snprintf(buf + len, n - len, "%s%s", len ? "." : "", config_setting_name(s));
        else
                snprintf(buf + len, n - len, "[%d]", config_setting_index(s));
}

/* Records "FILE:LINE: PATH: message" (PATH left out at the top level) and returns -EINVAL. The line
 * is that of `at`, the path that of `where`. */
static int vfail(struct loader *l, const config_setting_t *at, const config_setting_t *where, const char *fmt,
                 va_list ap) {
        char path[512], msg[512];
        unsigned line = at ? config_setting_source_line(at) : 0;

        if (l->error)
                return -EINVAL;
        vsnprintf(msg, sizeof(msg), fmt, ap);
        setting_path(where, path, sizeof(path));
        if (asprintf(&l->error, "%s:%u: %s%s%s", l->path, line ?: 1, path, *path ? ": " : "", msg) < 0)
                l->error = NULL;
        return -EINVAL;
}

static int fail(struct loader *l, const config_setting_t *s, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vfail(l, s, s, fmt, ap);
        va_end(ap);
        return r;
}

static int fail_in(struct loader *l, const config_setting_t *at, const config_setting_t *group, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vfail(l, at, group, fmt, ap);
        va_end(ap);
        return r;
}

/* Every member of a group must be one of `allowed` (NULL-terminated). */
static int check_keys(struct loader *l, const config_setting_t *group, const char *const *allowed) {
        for (int i = 0; i < config_setting_length(group); i++) {
                const config_setting_t *m = config_setting_get_elem(group, i);
                bool ok = false;

                for (const char *const *a = allowed; *a && !ok; a++)
                        ok = streq(*a, config_setting_name(m));
                if (!ok)
                        return fail_in(l, m, group, "unknown key \"%s\"", config_setting_name(m));
        }
        return 0;
}

static int expect_group(struct loader *l, const config_setting_t *s) {
        return config_setting_is_group(s) ? 0 : fail(l, s, "expected a group { … }");
}

/* The member `key` of `group` when present (1), absent (0), or of the wrong type (-EINVAL). */
static int get_string(struct loader *l, const config_setting_t *group, const char *key, const char **ret) {
        config_setting_t *s = group ? config_setting_get_member(group, key) : NULL;

        if (!s)
                return 0;
        if (config_setting_type(s) != CONFIG_TYPE_STRING)
                return fail(l, s, "expected a string");
        *ret = config_setting_get_string(s);
        if (!**ret)
                return fail(l, s, "must not be empty");
        return 1;
}

static int get_bool(struct loader *l, const config_setting_t *group, const char *key, bool *ret) {
        config_setting_t *s = group ? config_setting_get_member(group, key) : NULL;

        if (!s)
                return 0;
        if (config_setting_type(s) != CONFIG_TYPE_BOOL)
                return fail(l, s, "expected true or false");
        *ret = config_setting_get_bool(s);
        return 1;
}

static int int_in_range(struct loader *l, const config_setting_t *s, long long min, long long max, long long *ret) {
        long long v;

        if (config_setting_type(s) != CONFIG_TYPE_INT && config_setting_type(s) != CONFIG_TYPE_INT64)
                return fail(l, s, "expected an integer");
        v = config_setting_get_int64(s);
        if (v < min || v > max)
                return fail(l, s, "%lld is out of range (%lld…%lld)", v, min, max);
        *ret = v;
        return 1;
}

static int get_uint(struct loader *l, const config_setting_t *group, const char *key, long long min, long long max,
                    unsigned *ret) {
        config_setting_t *s = group ? config_setting_get_member(group, key) : NULL;
        long long v;
        int r;

        if (!s)
                return 0;
        r = int_in_range(l, s, min, max, &v);
        if (r > 0)
                *ret = (unsigned) v;
        return r;
}

/* A size in bytes: an integer, or a string with a K, M or G suffix (powers of 1024). */
static int get_size(struct loader *l, const config_setting_t *group, const char *key, uint64_t *ret) {
        config_setting_t *s = group ? config_setting_get_member(group, key) : NULL;
        unsigned long long v;
        const char *str;
        char *end;

        if (!s)
                return 0;
        if (config_setting_type(s) != CONFIG_TYPE_STRING) {
                long long n;
                int r = int_in_range(l, s, 0, LLONG_MAX, &n);
                if (r > 0)
                        *ret = (uint64_t) n;
                return r;
        }
        str = config_setting_get_string(s);
        errno = 0;
        v = strtoull(str, &end, 10);
        if (!isdigit((unsigned char) str[0]) || errno != 0)
                return fail(l, s, "invalid size \"%s\"", str);
        switch (*end) {
        case 'G': v <<= 10; /* fall through */
        case 'M': v <<= 10; /* fall through */
        case 'K': v <<= 10; end++; break;
        }
        if (*end)
                return fail(l, s, "invalid size \"%s\" (bytes, or a number with K, M or G)", str);
        *ret = v;
        return 1;
}

/* A path; relative ones are taken relative to the configuration file's directory, so the daemon's
 * working directory does not matter (and the workers, which start in "/", get absolute paths). */
static int get_path(struct loader *l, const config_setting_t *group, const char *key, const char *def,
                    size_t max_len, char **ret) {
        const char *v = def;
        int r;

        r = get_string(l, group, key, &v);
        if (r < 0 || !v)
                return r < 0 ? r : 0;
        if (v[0] == '/')
                *ret = strdup(v);
        else if (asprintf(ret, "%s/%s", l->dir, v) < 0)
                *ret = NULL;
        if (!*ret)
                return -ENOMEM;
        if (max_len && strlen(*ret) > max_len)
                return fail(l, group ? config_setting_get_member(group, key) : NULL,
                            "socket path \"%s\" is longer than %zu bytes", *ret, max_len);
        return 0;
}

static bool scope_valid(const char *s) {
        if (!*s || strlen(s) > BASTION_MAX_NAME * 2)
                return false;
        for (; *s; s++)
                if (!isgraph((unsigned char) *s) || *s == '"' || *s == '\\')
                        return false;
        return true;
}

/* `scopes = [ "a:read", … ]`: required, non-empty, no duplicates. */
static int load_scopes(struct loader *l, const config_setting_t *group, char ***ret, size_t *ret_n) {
        config_setting_t *s = config_setting_get_member(group, "scopes");
        int n;

        if (!s)
                return fail(l, group, "missing key \"scopes\"");
        if (!config_setting_is_array(s) && !config_setting_is_list(s))
                return fail(l, s, "expected a list of strings [ \"…\", … ]");
        n = config_setting_length(s);
        if (n == 0)
                return fail(l, s, "must not be empty");
        *ret = calloc(n + 1, sizeof(char *));
        if (!*ret)
                return -ENOMEM;
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, i);
                const char *v = config_setting_get_string(e);

                if (config_setting_type(e) != CONFIG_TYPE_STRING)
                        return fail(l, e, "expected a string");
                if (!scope_valid(v))
                        return fail(l, e, "invalid scope \"%s\"", v);
                for (size_t k = 0; k < *ret_n; k++)
                        if (streq((*ret)[k], v))
                                return fail(l, e, "duplicate scope \"%s\"", v);
                (*ret)[(*ret_n)++] = strdup(v);
                if (!(*ret)[*ret_n - 1])
                        return -ENOMEM;
        }
        return 0;
}

static int load_worker_uids(struct loader *l, const config_setting_t *bastion, struct bastion_config *c) {
        config_setting_t *s = bastion ? config_setting_get_member(bastion, "worker_uids") : NULL;
        long long min, max;
        int r;

        c->worker_uid_min = DEFAULT_WORKER_UID_MIN;
        c->worker_uid_max = DEFAULT_WORKER_UID_MAX;
        if (!s)
                return 0;
        if ((!config_setting_is_array(s) && !config_setting_is_list(s)) || config_setting_length(s) != 2)
                return fail(l, s, "expected [ FIRST, LAST ]");
        r = int_in_range(l, config_setting_get_elem(s, 0), 1, UINT32_MAX - 1, &min);
        if (r < 0)
                return r;
        r = int_in_range(l, config_setting_get_elem(s, 1), 1, UINT32_MAX - 1, &max);
        if (r < 0)
                return r;
        if (max < min)
                return fail(l, s, "last uid %lld is below first uid %lld", max, min);
        if (max - min + 1 > BASTION_MAX_WORKER_UID_RANGE)
                return fail(l, s, "range of %lld uids is larger than %d", max - min + 1, BASTION_MAX_WORKER_UID_RANGE);
        c->worker_uid_min = (uid_t) min;
        c->worker_uid_max = (uid_t) max;
        return 0;
}

static int load_bastion(struct loader *l, const config_setting_t *root, struct bastion_config *c) {
        static const char *const keys[] = { "socket", "control_socket", "state_dir", "runtime_dir", "libexec_dir",
                                            "worker_uids", "call_timeout_ms", "max_inflight", "admin_group",
                                            "confirm_timeout_ms", "approval_ttl_ms",
                                            "audit_dir", "audit_journal", "secrets_store", "secrets_key_file",
                                            "broker_uid", NULL };
        const size_t sun_max = sizeof(((struct sockaddr_un *) NULL)->sun_path) - 1;
        const config_setting_t *b = config_setting_get_member(root, "bastion");
        const char *admin = NULL;
        int r;

        c->call_timeout_ms = BASTION_DEFAULT_CALL_TIMEOUT_MS;
        c->max_inflight = BASTION_DEFAULT_MAX_INFLIGHT;
        c->confirm_timeout_ms = BASTION_CONFIRM_TIMEOUT_MS;
        c->approval_ttl_ms = BASTION_APPROVAL_TTL_MS;
        /* An absent group reads as an empty one: every key has a default. */
        if (b && ((r = expect_group(l, b)) < 0 || (r = check_keys(l, b, keys)) < 0))
                return r;
        if ((r = get_path(l, b, "socket", DEFAULT_SOCKET, sun_max, &c->socket_path)) < 0 ||
            (r = get_path(l, b, "control_socket", DEFAULT_CONTROL_SOCKET, sun_max, &c->control_socket_path)) < 0 ||
            (r = get_path(l, b, "state_dir", DEFAULT_STATE_DIR, 0, &c->state_dir)) < 0 ||
            (r = get_path(l, b, "runtime_dir", DEFAULT_RUNTIME_DIR, 0, &c->runtime_dir)) < 0 ||
            (r = get_path(l, b, "libexec_dir", PKGLIBEXECDIR, 0, &c->libexec_dir)) < 0 ||
            (r = load_worker_uids(l, b, c)) < 0 ||
            (r = get_uint(l, b, "call_timeout_ms", 1, INT_MAX, &c->call_timeout_ms)) < 0 ||
            (r = get_uint(l, b, "max_inflight", 1, INT_MAX, &c->max_inflight)) < 0 ||
            (r = get_uint(l, b, "confirm_timeout_ms", 1, INT_MAX, &c->confirm_timeout_ms)) < 0 ||
            (r = get_uint(l, b, "approval_ttl_ms", 1, INT_MAX, &c->approval_ttl_ms)) < 0 ||
            (r = get_string(l, b, "admin_group", &admin)) < 0 ||
            /* Unset, the broker uses its own defaults (bastion-audit(5), bastionctl(8)). */
            (r = get_path(l, b, "audit_dir", NULL, 0, &c->audit_dir)) < 0 ||
            (r = get_bool(l, b, "audit_journal", &c->audit_journal)) < 0 ||
            (r = get_path(l, b, "secrets_store", NULL, 0, &c->secrets_store)) < 0 ||
            (r = get_path(l, b, "secrets_key_file", NULL, 0, &c->secrets_key_file)) < 0)
                return r;
        if (streq(c->socket_path, c->control_socket_path))
                return fail(l, config_setting_get_member(b, "control_socket"),
                            "must differ from socket (the control socket is for administrators only)");
        if (admin) {
                struct group *g = getgrnam(admin);
                if (!g)
                        return fail(l, config_setting_get_member(b, "admin_group"), "unknown group \"%s\"", admin);
                c->admin_gid = g->gr_gid;
                c->has_admin_gid = true;
        }
        return 0;
}

/* The broker's own uid (and gid): outside the worker range, no account's or group's (it would share
 * their files), never root. Unset: the uid right below the worker range (60999 by default). */
static int load_broker_uid(struct loader *l, const config_setting_t *b, struct bastion_config *c) {
        const config_setting_t *s = b ? config_setting_get_member(b, "broker_uid") : NULL;
        const config_setting_t *at = s ?: (b ? (config_setting_get_member(b, "worker_uids") ?: b) : NULL);
        const struct passwd *pw;
        const struct group *gr;
        long long v = (long long) c->worker_uid_min - 1;
        int r;

        if (s && (r = int_in_range(l, s, 1, UINT32_MAX - 1, &v)) < 0)
                return r;
        if (v < 1)
                return fail(l, at, "the worker range starts at uid 1: set bastion.broker_uid");
        if (v >= c->worker_uid_min && v <= c->worker_uid_max)
                return fail(l, at, "broker_uid %lld is inside bastion.worker_uids [ %u, %u ]", v,
                            (unsigned) c->worker_uid_min, (unsigned) c->worker_uid_max);
        if ((pw = getpwuid((uid_t) v)))
                return fail(l, at, "broker uid %lld belongs to user \"%s\"", v, pw->pw_name);
        if ((gr = getgrgid((gid_t) v)))
                return fail(l, at, "broker gid %lld belongs to group \"%s\"", v, gr->gr_name);
        c->broker_uid = (uid_t) v;
        return 0;
}

/* No account may own a uid (or group a gid) of the worker range: a worker would share its files. */
static int check_uid_range(struct loader *l, const config_setting_t *root, const struct bastion_config *c) {
        const config_setting_t *b = config_setting_get_member(root, "bastion");
        const config_setting_t *at = b ? (config_setting_get_member(b, "worker_uids") ?: b) : NULL;

        for (uid_t u = c->worker_uid_min; u <= c->worker_uid_max && u != 0; u++) {
                struct passwd *pw = getpwuid(u);
                struct group *gr = pw ? NULL : getgrgid(u);

                if (pw)
                        return fail(l, at, "uid %u of the worker range belongs to user \"%s\"", (unsigned) u, pw->pw_name);
                if (gr)
                        return fail(l, at, "gid %u of the worker range belongs to group \"%s\"", (unsigned) u, gr->gr_name);
        }
        return 0;
}

static int load_roles(struct loader *l, const config_setting_t *root, struct bastion_config *c) {
        static const char *const keys[] = { "scopes", NULL };
        const config_setting_t *roles = config_setting_get_member(root, "roles");
        int r;

        if (!roles)
                return 0;
        if ((r = expect_group(l, roles)) < 0)
                return r;
        c->roles = calloc(config_setting_length(roles) + 1, sizeof(*c->roles));
        if (!c->roles)
                return -ENOMEM;
        for (int i = 0; i < config_setting_length(roles); i++) {
                const config_setting_t *e = config_setting_get_elem(roles, i);
                struct role *role = &c->roles[c->n_roles++];

                if ((r = expect_group(l, e)) < 0 || (r = check_keys(l, e, keys)) < 0)
                        return r;
                role->name = strdup(config_setting_name(e));
                if (!role->name)
                        return -ENOMEM;
                if ((r = load_scopes(l, e, &role->scopes, &role->n_scopes)) < 0)
                        return r;
        }
        return 0;
}

/* Exactly one of user / uid / group / gid names the local principal; names are resolved now. */
static int load_principal_id(struct loader *l, const config_setting_t *e, struct principal_map *p) {
        static const char *const id_keys[] = { "user", "uid", "group", "gid" };
        const config_setting_t *s = NULL;
        const char *key = NULL;
        long long id;
        int r;

        for (size_t i = 0; i < ELEMENTSOF(id_keys); i++)
                if (config_setting_get_member(e, id_keys[i])) {
                        if (s)
                                return fail(l, e, "exactly one of user, uid, group or gid is allowed");
                        key = id_keys[i];
                        s = config_setting_get_member(e, key);
                }
        if (!s)
                return fail(l, e, "one of user, uid, group or gid is required");
        p->kind = streq(key, "user") || streq(key, "uid") ? PRINCIPAL_UID : PRINCIPAL_GID;
        if (streq(key, "uid") || streq(key, "gid")) {
                if ((r = int_in_range(l, s, 0, UINT32_MAX - 1, &id)) < 0)
                        return r;
                p->id = (uint32_t) id;
                return 0;
        }
        if (config_setting_type(s) != CONFIG_TYPE_STRING)
                return fail(l, s, "expected a string");
        if (streq(key, "user")) {
                struct passwd *pw = getpwnam(config_setting_get_string(s));
                if (!pw)
                        return fail(l, s, "unknown user \"%s\"", config_setting_get_string(s));
                p->id = pw->pw_uid;
        } else {
                struct group *gr = getgrnam(config_setting_get_string(s));
                if (!gr)
                        return fail(l, s, "unknown group \"%s\"", config_setting_get_string(s));
                p->id = gr->gr_gid;
        }
        return 0;
}

static int load_user(struct loader *l, const config_setting_t *e, struct bastion_config *c, struct principal_map *p) {
        static const char *const keys[] = { "user", "uid", "group", "gid", "role", "tenant", NULL };
        const char *role = NULL, *tenant = NULL;
        int r;

        if ((r = expect_group(l, e)) < 0 || (r = check_keys(l, e, keys)) < 0 ||
            (r = load_principal_id(l, e, p)) < 0 || (r = get_string(l, e, "role", &role)) < 0 ||
            (r = get_string(l, e, "tenant", &tenant)) < 0)
                return r;
        if (!role)
                return fail(l, e, "missing key \"role\"");
        if (!config_find_role(c, role))
                return fail(l, config_setting_get_member(e, "role"), "unknown role \"%s\"", role);
        for (size_t i = 0; i < c->n_principals; i++)
                if (c->principals[i].kind == p->kind && c->principals[i].id == p->id)
                        return fail(l, e, "duplicate entry for %s %" PRIu32,
                                    p->kind == PRINCIPAL_UID ? "uid" : "gid", p->id);
        p->role = strdup(role);
        p->tenant = tenant ? strdup(tenant) : NULL;
        if (!p->role || (tenant && !p->tenant))
                return -ENOMEM;
        return 0;
}

static int load_users(struct loader *l, const config_setting_t *root, struct bastion_config *c) {
        const config_setting_t *users = config_setting_get_member(root, "users");
        int r;

        if (!users)
                return 0;
        if (!config_setting_is_list(users))
                return fail(l, users, "expected a list ( { … }, … )");
        c->principals = calloc(config_setting_length(users) + 1, sizeof(*c->principals));
        if (!c->principals)
                return -ENOMEM;
        for (int i = 0; i < config_setting_length(users); i++) {
                struct principal_map p = {};

                r = load_user(l, config_setting_get_elem(users, i), c, &p);
                if (r < 0) {
                        free(p.role);
                        free(p.tenant);
                        return r;
                }
                c->principals[c->n_principals++] = p;
        }
        return 0;
}

static int load_tools(struct loader *l, const config_setting_t *server, struct server_config *s) {
        static const char *const keys[] = { "scopes", "approval", NULL };
        const config_setting_t *tools = config_setting_get_member(server, "tools");
        int r;

        if (!tools)
                return 0;
        if ((r = expect_group(l, tools)) < 0)
                return r;
        s->tools = calloc(config_setting_length(tools) + 1, sizeof(*s->tools));
        if (!s->tools)
                return -ENOMEM;
        for (int i = 0; i < config_setting_length(tools); i++) {
                const config_setting_t *e = config_setting_get_elem(tools, i);
                struct tool_policy *t = &s->tools[s->n_tools++];
                const char *approval = "none";

                if ((r = expect_group(l, e)) < 0 || (r = check_keys(l, e, keys)) < 0 ||
                    (r = get_string(l, e, "approval", &approval)) < 0)
                        return r;
                t->name = strdup(config_setting_name(e));
                if (!t->name)
                        return -ENOMEM;
                r = approval_from_string(approval);
                if (r < 0)
                        return fail(l, config_setting_get_member(e, "approval"),
                                    "unknown approval \"%s\" (none, confirm or approver)", approval);
                t->approval = r;
                if ((r = load_scopes(l, e, &t->scopes, &t->n_scopes)) < 0)
                        return r;
        }
        return 0;
}

/* prompts = { NAME = { scopes = [ ... ]; }; ... }: the prompts a server offers, by name. */
static int load_prompts(struct loader *l, const config_setting_t *server, struct server_config *s) {
        static const char *const keys[] = { "scopes", NULL };
        const config_setting_t *prompts = config_setting_get_member(server, "prompts");
        int r;

        if (!prompts)
                return 0;
        if ((r = expect_group(l, prompts)) < 0)
                return r;
        s->prompts = calloc(config_setting_length(prompts) + 1, sizeof(*s->prompts));
        if (!s->prompts)
                return -ENOMEM;
        for (int i = 0; i < config_setting_length(prompts); i++) {
                const config_setting_t *e = config_setting_get_elem(prompts, i);
                struct prompt_policy *p = &s->prompts[s->n_prompts++];

                if ((r = expect_group(l, e)) < 0 || (r = check_keys(l, e, keys)) < 0)
                        return r;
                p->name = strdup(config_setting_name(e));
                if (!p->name)
                        return -ENOMEM;
                if ((r = load_scopes(l, e, &p->scopes, &p->n_scopes)) < 0)
                        return r;
        }
        return 0;
}

static int load_resources(struct loader *l, const config_setting_t *server, struct server_config *s) {
        static const char *const keys[] = { "uri_prefix", "scopes", NULL };
        const config_setting_t *res = config_setting_get_member(server, "resources");
        int r;

        if (!res)
                return 0;
        if ((r = expect_group(l, res)) < 0)
                return r;
        s->resources = calloc(config_setting_length(res) + 1, sizeof(*s->resources));
        if (!s->resources)
                return -ENOMEM;
        for (int i = 0; i < config_setting_length(res); i++) {
                const config_setting_t *e = config_setting_get_elem(res, i);
                struct resource_policy *p = &s->resources[s->n_resources++];
                const char *prefix = NULL;

                if ((r = expect_group(l, e)) < 0 || (r = check_keys(l, e, keys)) < 0 ||
                    (r = get_string(l, e, "uri_prefix", &prefix)) < 0)
                        return r;
                if (!prefix)
                        return fail(l, e, "missing key \"uri_prefix\"");
                p->name = strdup(config_setting_name(e));
                p->uri_prefix = strdup(prefix);
                if (!p->name || !p->uri_prefix)
                        return -ENOMEM;
                if ((r = load_scopes(l, e, &p->scopes, &p->n_scopes)) < 0)
                        return r;
        }
        return 0;
}

static bool server_name_valid(const char *n) {
        size_t len = strlen(n);

        if (len == 0 || len > BASTION_MAX_NAME || !(islower((unsigned char) n[0]) || isdigit((unsigned char) n[0])))
                return false;
        for (; *n; n++)
                if (!islower((unsigned char) *n) && !isdigit((unsigned char) *n) && *n != '_' && *n != '-')
                        return false;
        return true;
}

static bool domain_known(const char *d) {
        for (size_t i = 0; i < ELEMENTSOF(known_domains); i++)
                if (streq(known_domains[i], d))
                        return true;
        return false;
}

static int load_server(struct loader *l, const config_setting_t *e, const struct bastion_config *c,
                       struct server_config *s) {
        static const char *const keys[] = { "domain", "demo_data", "memory_max", "call_timeout_ms", "credential",
                                            "tools", "resources", "prompts", NULL };
        const char *name = config_setting_name(e), *domain = NULL, *credential = NULL;
        int r;

        if (!server_name_valid(name))
                return fail(l, e, "invalid server name (lowercase letters, digits, \"_\" and \"-\", starting with a "
                            "letter or digit, at most %d characters)", BASTION_MAX_NAME);
        if ((r = expect_group(l, e)) < 0 || (r = check_keys(l, e, keys)) < 0 ||
            (r = get_string(l, e, "domain", &domain)) < 0)
                return r;
        if (!domain)
                return fail(l, e, "missing key \"domain\"");
        if (!domain_known(domain))
                return fail(l, config_setting_get_member(e, "domain"), "unknown domain \"%s\"", domain);
        s->call_timeout_ms = c->call_timeout_ms;
        if ((r = get_bool(l, e, "demo_data", &s->demo_data)) < 0 ||
            (r = get_size(l, e, "memory_max", &s->memory_max)) < 0 ||
            (r = get_uint(l, e, "call_timeout_ms", 1, INT_MAX, &s->call_timeout_ms)) < 0 ||
            (r = get_string(l, e, "credential", &credential)) < 0)
                return r;
        /* The rule of bastionctl secrets and of $CREDENTIALS_DIRECTORY file names (broker/secrets). */
        if (credential && (!*credential || strlen(credential) > BASTION_SECRET_MAX_NAME || credential[0] == '.' ||
                           strspn(credential, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
                           strlen(credential)))
                return fail(l, config_setting_get_member(e, "credential"), "invalid secret name \"%s\"", credential);
        /* Bastion's own keys (the audit signing key) live in the same store and are never a worker's. */
        if (credential && strncmp(credential, "bastion.", 8) == 0)
                return fail(l, config_setting_get_member(e, "credential"),
                            "secret names starting with \"bastion.\" are reserved for Bastion's own keys");
        if (credential && !(s->credential = strdup(credential)))
                return -ENOMEM;
        s->name = strdup(name);
        s->domain = strdup(domain);
        if (!s->name || !s->domain || asprintf(&s->state_dir, "%s/%s", c->state_dir, name) < 0 ||
            asprintf(&s->db_path, "%s/%s.db", s->state_dir, domain) < 0)
                return -ENOMEM;
        if ((r = load_tools(l, e, s)) < 0 || (r = load_resources(l, e, s)) < 0 || (r = load_prompts(l, e, s)) < 0)
                return r;
        return 0;
}

static int load_servers(struct loader *l, const config_setting_t *root, struct bastion_config *c) {
        const config_setting_t *servers = config_setting_get_member(root, "servers");
        int r;

        if (!servers)
                return 0;
        if ((r = expect_group(l, servers)) < 0)
                return r;
        c->servers = calloc(config_setting_length(servers) + 1, sizeof(*c->servers));
        if (!c->servers)
                return -ENOMEM;
        for (int i = 0; i < config_setting_length(servers); i++) {
                r = load_server(l, config_setting_get_elem(servers, i), c, &c->servers[c->n_servers++]);
                if (r < 0)
                        return r;
        }
        if (c->n_servers > (size_t) (c->worker_uid_max - c->worker_uid_min) + 1)
                return fail(l, servers, "%zu servers but only %u uids in bastion.worker_uids", c->n_servers,
                            (unsigned) (c->worker_uid_max - c->worker_uid_min + 1));
        return 0;
}

static bool uid_assigned(const struct bastion_config *c, uid_t uid) {
        if (c->http && c->http->uid == uid)
                return true;
        for (size_t i = 0; i < c->n_servers; i++)
                if (c->servers[i].uid == uid)
                        return true;
        return false;
}

static void assign_uid(struct server_config *s, uid_t uid) {
        s->uid = uid;
        s->gid = (gid_t) uid;
}

/* Stable uids: the previous assignment (reload) first, then the owner of an existing state directory
 * (daemon restart; the database belongs to it), then the lowest free uid. uid 0 = unassigned. */
static void assign_uids(struct bastion_config *c, const struct bastion_config *previous) {
        for (size_t i = 0; i < c->n_servers; i++)
                assign_uid(&c->servers[i], 0);
        for (size_t i = 0; previous && i < c->n_servers; i++) {
                const struct server_config *p = config_find_server(previous, c->servers[i].name);
                if (p && p->uid >= c->worker_uid_min && p->uid <= c->worker_uid_max && !uid_assigned(c, p->uid))
                        assign_uid(&c->servers[i], p->uid);
        }
        for (size_t i = 0; i < c->n_servers; i++) {
                struct stat st;
                if (c->servers[i].uid == 0 && stat(c->servers[i].state_dir, &st) == 0 &&
                    st.st_uid >= c->worker_uid_min && st.st_uid <= c->worker_uid_max && !uid_assigned(c, st.st_uid))
                        assign_uid(&c->servers[i], st.st_uid);
        }
        for (size_t i = 0; i < c->n_servers; i++) {
                uid_t u = c->worker_uid_min;
                if (c->servers[i].uid != 0)
                        continue;
                while (uid_assigned(c, u))
                        u++;
                assign_uid(&c->servers[i], u);
        }
}

void config_inherit_uids(struct bastion_config *c, const struct bastion_config *previous) {
        assign_uids(c, previous);
}

bool server_config_process_differs(const struct server_config *a, const struct server_config *b) {
        return !streq(a->domain, b->domain) || !streq(a->state_dir, b->state_dir) || !streq(a->db_path, b->db_path) ||
               !streq(a->credential ?: "", b->credential ?: "") ||
               a->uid != b->uid || a->gid != b->gid || a->memory_max != b->memory_max || a->demo_data != b->demo_data;
}

/* libconfig 1.5 cannot be told to refuse @include, so the text is checked before it is parsed: one
 * file, read once, is the whole configuration. */
static int refuse_include(struct loader *l, const char *text) {
        unsigned line = 1;

        for (const char *p = text; *p; line++) {
                const char *q = p + strspn(p, " \t");
                if (strncmp(q, "@include", 8) == 0) {
                        if (asprintf(&l->error, "%s:%u: @include is not allowed", l->path, line) < 0)
                                l->error = NULL;
                        return -EINVAL;
                }
                p = strchrnul(p, '\n');
                if (*p)
                        p++;
        }
        return 0;
}

static int read_text(struct loader *l, char **ret) {
        _cleanup_fclose_ FILE *f = fopen(l->path, "re");
        _cleanup_free_ char *buf = NULL;
        char *real;
        size_t n;

        if (!f)
                return -errno;
        buf = malloc(BASTION_MAX_CONFIG_FILE + 1);
        if (!buf)
                return -ENOMEM;
        n = fread(buf, 1, BASTION_MAX_CONFIG_FILE + 1, f);
        if (ferror(f))
                return -EIO;
        if (n > BASTION_MAX_CONFIG_FILE)
                return -EFBIG;
        if (memchr(buf, '\0', n))
                return -EBADMSG;
        buf[n] = '\0';
        real = realpath(l->path, NULL);
        if (!real)
                return -errno;
        *strrchr(real, '/') = '\0';
        l->dir = real;
        *ret = TAKE_PTR(buf);
        return 0;
}

/* ---- oauth and rate_limits (bastion.conf(5) OAUTH, RATE LIMITS; docs/auth.md) ---- */

#define DEFAULT_ROLE_CLAIM "bastion_role"

/* A claim name: printable, no quotes; it is looked up in the token's JSON as is. */
static bool claim_name_valid(const char *s) {
        if (!*s || strlen(s) > BASTION_MAX_NAME)
                return false;
        for (; *s; s++)
                if (!isgraph((unsigned char) *s) || *s == '"' || *s == '\\')
                        return false;
        return true;
}

static int get_claim(struct loader *l, const config_setting_t *o, const char *key, const char *def, char **ret) {
        const char *v = def;
        int r = get_string(l, o, key, &v);

        if (r < 0 || !v)
                return r < 0 ? r : 0;
        if (!claim_name_valid(v))
                return fail(l, config_setting_get_member(o, key), "invalid claim name \"%s\"", v);
        *ret = strdup(v);
        return *ret ? 0 : -ENOMEM;
}

/* An https URL (or http on loopback, for tests) without spaces or quotes: it goes into JSON and headers. */
static bool url_valid(const char *s) {
        if (strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0)
                return false;
        for (; *s; s++)
                if (!isgraph((unsigned char) *s) || *s == '"' || *s == '\\')
                        return false;
        return true;
}

static int load_authorization_servers(struct loader *l, const config_setting_t *o, struct oauth_config *oc) {
        config_setting_t *s = config_setting_get_member(o, "authorization_servers");
        int n;

        if (!s)
                return fail(l, o, "missing key \"authorization_servers\" (RFC 9728 needs at least one)");
        if (!config_setting_is_array(s) && !config_setting_is_list(s))
                return fail(l, s, "expected a list of strings [ \"…\", … ]");
        n = config_setting_length(s);
        if (n == 0)
                return fail(l, s, "must not be empty");
        oc->authorization_servers = calloc(n + 1, sizeof(char *));
        if (!oc->authorization_servers)
                return -ENOMEM;
        for (int i = 0; i < n; i++) {
                const config_setting_t *e = config_setting_get_elem(s, i);
                const char *v = config_setting_get_string(e);

                if (config_setting_type(e) != CONFIG_TYPE_STRING || !url_valid(v))
                        return fail(l, e, "expected an https:// URL");
                oc->authorization_servers[oc->n_authorization_servers++] = strdup(v);
                if (!oc->authorization_servers[oc->n_authorization_servers - 1])
                        return -ENOMEM;
        }
        return 0;
}

static int load_oauth(struct loader *l, const config_setting_t *root, struct bastion_config *c) {
        static const char *const keys[] = { "issuer", "jwks_file", "leeway_s", "role_claim", "tenant_claim",
                                            "authorization_servers", "token_cache", "anonymous_role", NULL };
        const config_setting_t *o = config_setting_get_member(root, "oauth");
        const char *issuer = NULL, *anon = NULL;
        struct oauth_config *oc;
        int r;

        if (!o)
                return 0;
        if ((r = expect_group(l, o)) < 0 || (r = check_keys(l, o, keys)) < 0)
                return r;
        oc = c->oauth = calloc(1, sizeof(*oc));
        if (!oc)
                return -ENOMEM;
        oc->leeway_s = BASTION_JWT_DEFAULT_LEEWAY_SEC;
        oc->token_cache = true;
        if ((r = get_string(l, o, "issuer", &issuer)) < 0)
                return r;
        if (!issuer)
                return fail(l, o, "missing key \"issuer\"");
        if (!url_valid(issuer))
                return fail(l, config_setting_get_member(o, "issuer"), "expected an https:// URL");
        oc->issuer = strdup(issuer);
        if ((r = get_path(l, o, "jwks_file", NULL, 0, &oc->jwks_file)) < 0 ||
            (r = get_uint(l, o, "leeway_s", 0, 3600, &oc->leeway_s)) < 0 ||
            (r = get_claim(l, o, "role_claim", DEFAULT_ROLE_CLAIM, &oc->role_claim)) < 0 ||
            (r = get_claim(l, o, "tenant_claim", NULL, &oc->tenant_claim)) < 0 ||
            (r = get_bool(l, o, "token_cache", &oc->token_cache)) < 0 ||
            (r = get_string(l, o, "anonymous_role", &anon)) < 0 ||
            (r = load_authorization_servers(l, o, oc)) < 0)
                return r;
        if (!oc->issuer)
                return -ENOMEM;
        if (!oc->jwks_file)
                return fail(l, o, "missing key \"jwks_file\"");
        if (anon) {
                if (!config_find_role(c, anon))
                        return fail(l, config_setting_get_member(o, "anonymous_role"), "unknown role \"%s\"", anon);
                oc->anonymous_role = strdup(anon);
                if (!oc->anonymous_role)
                        return -ENOMEM;
        }
        return 0;
}

/* oauth.anonymous_role lets requests without a token in: only for tests of the protocol (the official
 * conformance suite sends no token), so only where nobody but this host can reach the listener. And
 * a resource URI needs http.public_url. Checked once both groups are loaded. */
static int check_oauth_http(struct loader *l, const config_setting_t *root, const struct bastion_config *c) {
        const config_setting_t *o = config_setting_get_member(root, "oauth");

        if (c->oauth && c->oauth->anonymous_role && !(c->http && c->http->plain))
                return fail(l, config_setting_get_member(o, "anonymous_role"),
                            "is only allowed with plain HTTP on a loopback address (http.plain); it lets "
                            "requests without a token in");
        return 0;
}

static int load_rate_limit(struct loader *l, const config_setting_t *g, const char *key, struct rate_limit *ret) {
        static const char *const keys[] = { "rate", "burst", NULL };
        const config_setting_t *s = config_setting_get_member(g, key), *rate;
        int r;

        if (!s)
                return 0;
        if ((r = expect_group(l, s)) < 0 || (r = check_keys(l, s, keys)) < 0)
                return r;
        rate = config_setting_get_member(s, "rate");
        if (!rate)
                return fail(l, s, "missing key \"rate\" (requests per second)");
        if (config_setting_type(rate) == CONFIG_TYPE_FLOAT)
                ret->rate = config_setting_get_float(rate);
        else if (config_setting_type(rate) == CONFIG_TYPE_INT || config_setting_type(rate) == CONFIG_TYPE_INT64)
                ret->rate = (double) config_setting_get_int64(rate);
        else
                return fail(l, rate, "expected a number of requests per second");
        if (!(ret->rate > 0 && ret->rate <= 1e6))
                return fail(l, rate, "must be above 0 and at most 1000000");
        ret->burst = (unsigned) (ret->rate < 1 ? 1 : ret->rate);
        if ((r = get_uint(l, s, "burst", 1, 1000000, &ret->burst)) < 0)
                return r;
        return 0;
}

static int load_rate_limits(struct loader *l, const config_setting_t *root, struct bastion_config *c) {
        static const char *const keys[] = { "per_subject", "per_tenant", NULL };
        const config_setting_t *g = config_setting_get_member(root, "rate_limits");
        int r;

        if (!g)
                return 0;
        if ((r = expect_group(l, g)) < 0 || (r = check_keys(l, g, keys)) < 0 ||
            (r = load_rate_limit(l, g, "per_subject", &c->rate_limits.per_subject)) < 0 ||
            (r = load_rate_limit(l, g, "per_tenant", &c->rate_limits.per_tenant)) < 0)
                return r;
        return 0;
}

/* ---- http (bastion.conf(5) HTTP; docs/front.md) ---- */

#define DEFAULT_HTTP_LISTEN "127.0.0.1:8443"

int http_listen_address(const char *listen, struct sockaddr_storage *ret, socklen_t *ret_len, bool *ret_loopback,
                        bool *ret_wildcard) {
        char host[INET6_ADDRSTRLEN + 2];
        const char *colon = strrchr(listen, ':'), *h = listen;
        size_t hlen;
        char *end;
        unsigned long port;

        if (!colon || colon == listen || !isdigit((unsigned char) colon[1]))
                return -EINVAL;
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        if (*end || errno || port == 0 || port > 65535 || strlen(colon + 1) > 5)
                return -EINVAL;
        hlen = (size_t) (colon - listen);
        if (listen[0] == '[') {
                if (hlen < 3 || listen[hlen - 1] != ']')
                        return -EINVAL;
                h++;
                hlen -= 2;
        }
        if (hlen >= sizeof(host))
                return -EINVAL;
        memcpy(host, h, hlen);
        host[hlen] = '\0';
        *ret = (struct sockaddr_storage) {};
        if (listen[0] != '[') {
                struct sockaddr_in *sin = (struct sockaddr_in *) ret;
                if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
                        return -EINVAL;
                sin->sin_family = AF_INET;
                sin->sin_port = htons((uint16_t) port);
                *ret_len = sizeof(*sin);
                *ret_loopback = (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
                *ret_wildcard = sin->sin_addr.s_addr == htonl(INADDR_ANY);
        } else {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) ret;
                if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
                        return -EINVAL;
                sin6->sin6_family = AF_INET6;
                sin6->sin6_port = htons((uint16_t) port);
                *ret_len = sizeof(*sin6);
                *ret_loopback = IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
                *ret_wildcard = IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
        }
        return (int) port;
}

/* "name[:port]" -> "name:port" lowercased; name is a DNS name, an IPv4 literal or a bracketed IPv6
 * literal. The port defaults to def_port. NULL when malformed. */
static char *authority_normalize(const char *a, size_t len, unsigned def_port) {
        size_t name_len = len;
        unsigned long port = def_port;
        char *ret;

        if (len > 0 && a[0] == '[') {
                const char *close = memchr(a, ']', len);
                struct in6_addr a6;
                char lit[INET6_ADDRSTRLEN];

                if (!close || (size_t) (close - a) - 1 >= sizeof(lit))
                        return NULL;
                name_len = (size_t) (close - a) + 1;
                memcpy(lit, a + 1, name_len - 2);
                lit[name_len - 2] = '\0';
                if (inet_pton(AF_INET6, lit, &a6) != 1)
                        return NULL;
        } else {
                const char *colon = memchr(a, ':', len);
                if (colon)
                        name_len = (size_t) (colon - a);
                for (size_t i = 0; i < name_len; i++)
                        if (!isalnum((unsigned char) a[i]) && a[i] != '-' && a[i] != '.')
                                return NULL;
        }
        if (name_len == 0 || name_len > 253)
                return NULL;
        if (name_len < len) {
                char *end;
                if (a[name_len] != ':' || len - name_len - 1 == 0 || len - name_len - 1 > 5)
                        return NULL;
                for (size_t i = name_len + 1; i < len; i++)
                        if (!isdigit((unsigned char) a[i]))
                                return NULL;
                port = strtoul(a + name_len + 1, &end, 10);
                if (port == 0 || port > 65535)
                        return NULL;
        }
        if (asprintf(&ret, "%.*s:%lu", (int) name_len, a, port) < 0)
                return NULL;
        for (char *p = ret; *p; p++)
                *p = (char) tolower((unsigned char) *p);
        return ret;
}

/* "scheme://authority[/]" with scheme http or https -> "scheme://name:port" (ret_authority: "name:port").
 * Returns the scheme's TLS flag (1/0), or -EINVAL. */
static int origin_normalize(const char *url, char **ret, char **ret_authority) {
        bool tls = strncasecmp(url, "https://", 8) == 0;
        const char *a;
        size_t len;

        if (!tls && strncasecmp(url, "http://", 7) != 0)
                return -EINVAL;
        a = url + (tls ? 8 : 7);
        len = strlen(a);
        if (len > 0 && a[len - 1] == '/')
                len--;
        if (memchr(a, '/', len) || memchr(a, '?', len) || memchr(a, '#', len) || memchr(a, '@', len))
                return -EINVAL;
        *ret_authority = authority_normalize(a, len, tls ? 443 : 80);
        if (!*ret_authority)
                return -EINVAL;
        if (asprintf(ret, "%s://%s", tls ? "https" : "http", *ret_authority) < 0) {
                free(*ret_authority);
                return -ENOMEM;
        }
        return tls;
}

static int strv_add_unique(char ***v, size_t *n, char *s) {
        char **nv;

        if (!s)
                return -ENOMEM;
        for (size_t i = 0; i < *n; i++)
                if (streq((*v)[i], s)) {
                        free(s);
                        return 0;
                }
        nv = realloc(*v, (*n + 2) * sizeof(char *));
        if (!nv) {
                free(s);
                return -ENOMEM;
        }
        *v = nv;
        nv[(*n)++] = s;
        nv[*n] = NULL;
        return 0;
}

/* `hosts` or `origins`: a list of strings, each stored in its normal form ("name:port",
 * "scheme://name:port"), duplicates dropped. */
static int load_http_list(struct loader *l, const config_setting_t *g, const char *key, bool tls, char ***ret,
                          size_t *ret_n) {
        config_setting_t *s = config_setting_get_member(g, key);

        if (!s)
                return 0;
        if (!config_setting_is_array(s) && !config_setting_is_list(s))
                return fail(l, s, "expected a list of strings [ \"…\", … ]");
        if (config_setting_length(s) == 0)
                return fail(l, s, "must not be empty");
        for (int i = 0; i < config_setting_length(s); i++) {
                const config_setting_t *e = config_setting_get_elem(s, i);
                const char *v = config_setting_get_string(e);
                char *norm = NULL, *auth = NULL;
                int r;

                if (config_setting_type(e) != CONFIG_TYPE_STRING)
                        return fail(l, e, "expected a string");
                if (streq(key, "hosts")) {
                        norm = authority_normalize(v, strlen(v), tls ? 443 : 80);
                        if (!norm)
                                return fail(l, e, "invalid host \"%s\" (NAME or NAME:PORT)", v);
                } else {
                        r = origin_normalize(v, &norm, &auth);
                        free(auth);
                        if (r < 0)
                                return fail(l, e, "invalid origin \"%s\" (https://NAME[:PORT])", v);
                }
                if ((r = strv_add_unique(ret, ret_n, norm)) < 0)
                        return r;
        }
        return 0;
}

/* The names a listener answers to by default: public_url's, the listen address unless it is a
 * wildcard, and the loopback names on a loopback or wildcard listener, all with the listen port. */
static int http_default_hosts(struct http_config *h, const char *public_authority, bool loopback, bool wildcard,
                              unsigned port) {
        static const char *const local[] = { "localhost", "127.0.0.1", "[::1]" };
        char *s;
        int r;

        if ((r = strv_add_unique(&h->hosts, &h->n_hosts, strdup(public_authority))) < 0)
                return r;
        if (!wildcard) {
                const char *colon = strrchr(h->listen, ':');
                s = authority_normalize(h->listen, (size_t) (colon - h->listen), port);
                if ((r = strv_add_unique(&h->hosts, &h->n_hosts, s)) < 0)
                        return r;
        }
        for (size_t i = 0; (loopback || wildcard) && i < ELEMENTSOF(local); i++) {
                if (asprintf(&s, "%s:%u", local[i], port) < 0)
                        return -ENOMEM;
                if ((r = strv_add_unique(&h->hosts, &h->n_hosts, s)) < 0)
                        return r;
        }
        return 0;
}

static int http_default_origins(struct http_config *h) {
        for (size_t i = 0; i < h->n_hosts; i++) {
                char *s;
                int r;

                if (asprintf(&s, "%s://%s", h->plain ? "http" : "https", h->hosts[i]) < 0)
                        return -ENOMEM;
                if ((r = strv_add_unique(&h->origins, &h->n_origins, s)) < 0)
                        return r;
        }
        return 0;
}

static int load_http_limits(struct loader *l, const config_setting_t *g, struct http_config *h) {
        int r;

        h->max_connections = BASTION_HTTP_DEFAULT_MAX_CONNECTIONS;
        h->max_connections_per_address = BASTION_HTTP_DEFAULT_MAX_PER_ADDRESS;
        h->header_timeout_ms = BASTION_HTTP_DEFAULT_HEADER_TIMEOUT_MS;
        h->idle_timeout_ms = BASTION_HTTP_DEFAULT_IDLE_TIMEOUT_MS;
        h->max_body = HTTP_MAX_BODY;
        if ((r = get_uint(l, g, "max_connections", 1, BASTION_HTTP_MAX_CONNECTIONS, &h->max_connections)) < 0 ||
            (r = get_uint(l, g, "max_connections_per_address", 1, BASTION_HTTP_MAX_CONNECTIONS,
                          &h->max_connections_per_address)) < 0 ||
            (r = get_uint(l, g, "header_timeout_ms", 1, BASTION_HTTP_MAX_TIMEOUT_MS, &h->header_timeout_ms)) < 0 ||
            (r = get_uint(l, g, "idle_timeout_ms", 1, BASTION_HTTP_MAX_TIMEOUT_MS, &h->idle_timeout_ms)) < 0 ||
            (r = get_size(l, g, "max_body", &h->max_body)) < 0)
                return r;
        if (h->max_body > HTTP_MAX_BODY)
                return fail(l, config_setting_get_member(g, "max_body"), "must be at most %d bytes", HTTP_MAX_BODY);
        if (h->max_connections_per_address > h->max_connections)
                return fail(l, config_setting_get_member(g, "max_connections_per_address"),
                            "must not exceed max_connections (%u)", h->max_connections);
        return 0;
}

static int load_http_tls(struct loader *l, const config_setting_t *g, struct http_config *h, bool loopback) {
        const config_setting_t *listen = config_setting_get_member(g, "listen") ?: g;
        int r;

        if ((r = get_bool(l, g, "plain", &h->plain)) < 0 ||
            (r = get_path(l, g, "tls_cert", NULL, 0, &h->tls_cert)) < 0 ||
            (r = get_path(l, g, "tls_key", NULL, 0, &h->tls_key)) < 0)
                return r;
        if (h->plain && !loopback)
                return fail_in(l, config_setting_get_member(g, "plain"), g,
                               "plain HTTP is only allowed on a loopback address (127.0.0.0/8 or [::1]), not on %s",
                               h->listen);
        if (h->plain && (h->tls_cert || h->tls_key))
                return fail_in(l, config_setting_get_member(g, h->tls_cert ? "tls_cert" : "tls_key"), g,
                               "plain = true takes no tls_cert or tls_key");
        if (!h->plain && (!h->tls_cert || !h->tls_key))
                return fail_in(l, listen, g, "tls_cert and tls_key are required (plain = true is allowed on loopback only)");
        return 0;
}

static int load_http(struct loader *l, const config_setting_t *root, struct bastion_config *c) {
        static const char *const keys[] = { "listen", "plain", "tls_cert", "tls_key", "public_url", "hosts", "origins",
                                            "max_connections", "max_connections_per_address", "header_timeout_ms",
                                            "idle_timeout_ms", "max_body", NULL };
        const config_setting_t *g = config_setting_get_member(root, "http");
        const char *listen = DEFAULT_HTTP_LISTEN, *url = NULL;
        _cleanup_free_ char *public_authority = NULL;
        struct sockaddr_storage sa;
        socklen_t sa_len;
        bool loopback, wildcard;
        struct http_config *h;
        int port, r;

        if (!g)
                return 0;
        if ((r = expect_group(l, g)) < 0 || (r = check_keys(l, g, keys)) < 0 ||
            (r = get_string(l, g, "listen", &listen)) < 0 || (r = get_string(l, g, "public_url", &url)) < 0)
                return r;
        h = c->http = calloc(1, sizeof(*h));
        if (!h || !(h->listen = strdup(listen)))
                return -ENOMEM;
        port = http_listen_address(listen, &sa, &sa_len, &loopback, &wildcard);
        if (port < 0)
                return fail_in(l, config_setting_get_member(g, "listen") ?: g, g,
                               "invalid listen address \"%s\" (IPV4:PORT or [IPV6]:PORT)", listen);
        if ((r = load_http_tls(l, g, h, loopback)) < 0 || (r = load_http_limits(l, g, h)) < 0)
                return r;
        if (url) {
                r = origin_normalize(url, &h->public_url, &public_authority);
                if (r < 0 || r != !h->plain)
                        return fail(l, config_setting_get_member(g, "public_url"),
                                    "expected %s://NAME[:PORT] without a path", h->plain ? "http" : "https");
        } else if (wildcard) {
                return fail_in(l, config_setting_get_member(g, "listen"), g,
                               "public_url is required with a wildcard listen address");
        } else {
                public_authority = authority_normalize(listen, (size_t) (strrchr(listen, ':') - listen), (unsigned) port);
                if (!public_authority || asprintf(&h->public_url, "%s://%s", h->plain ? "http" : "https", public_authority) < 0)
                        return -ENOMEM;
        }
        if ((r = load_http_list(l, g, "hosts", !h->plain, &h->hosts, &h->n_hosts)) < 0 ||
            (r = load_http_list(l, g, "origins", !h->plain, &h->origins, &h->n_origins)) < 0)
                return r;
        if (!h->hosts && (r = http_default_hosts(h, public_authority, loopback, wildcard, (unsigned) port)) < 0)
                return r;
        if (!h->origins && (r = http_default_origins(h)) < 0)
                return r;
        /* The front runs as a uid of its own: the last of the worker range, never given to a server. */
        if (c->n_servers >= (size_t) (c->worker_uid_max - c->worker_uid_min) + 1)
                return fail_in(l, g, g, "%zu servers and the front need %zu uids, bastion.worker_uids has %u",
                               c->n_servers, c->n_servers + 1, (unsigned) (c->worker_uid_max - c->worker_uid_min + 1));
        h->uid = c->worker_uid_max;
        return 0;
}

static int load_root(struct loader *l, config_t *cfg, struct bastion_config *c) {
        static const char *const keys[] = { "bastion", "roles", "users", "servers", "oauth", "rate_limits", "http", NULL };
        const config_setting_t *root = config_root_setting(cfg);
        int r;

        c->path = strdup(l->path);
        if (!c->path)
                return -ENOMEM;
        /* The uid range is checked last: a thousand account lookups are the slow part. */
        if ((r = check_keys(l, root, keys)) < 0 || (r = load_bastion(l, root, c)) < 0 ||
            (r = load_roles(l, root, c)) < 0 || (r = load_users(l, root, c)) < 0 ||
            (r = load_servers(l, root, c)) < 0 || (r = load_oauth(l, root, c)) < 0 ||
            (r = load_rate_limits(l, root, c)) < 0 || (r = load_http(l, root, c)) < 0 ||
            (r = check_oauth_http(l, root, c)) < 0 ||
            (r = check_uid_range(l, root, c)) < 0 ||
            (r = load_broker_uid(l, config_setting_get_member(root, "bastion"), c)) < 0)
                return r;
        assign_uids(c, NULL);
        return 0;
}

int config_load(const char *path, struct bastion_config *ret, char **ret_error) {
        struct loader l = { .path = path };
        struct bastion_config c = {};
        _cleanup_free_ char *text = NULL;
        config_t cfg;
        int r;

        r = read_text(&l, &text);
        if (r < 0) {
                if (asprintf(ret_error, "%s: cannot read: %s", path, strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        r = refuse_include(&l, text);
        config_init(&cfg);
        if (r >= 0 && config_read_string(&cfg, text) != CONFIG_TRUE) {
                if (asprintf(&l.error, "%s:%d: %s", path, config_error_line(&cfg), config_error_text(&cfg)) < 0)
                        l.error = NULL;
                r = -EINVAL;
        }
        if (r >= 0)
                r = load_root(&l, &cfg, &c);
        config_destroy(&cfg);
        free(l.dir);
        if (r < 0) {
                config_free(&c);
                if (!l.error && asprintf(&l.error, "%s: %s", path, strerror(-r)) < 0)
                        l.error = NULL;
                *ret_error = l.error;
                return r;
        }
        *ret = c;
        return 0;
}
