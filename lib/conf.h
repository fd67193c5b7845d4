/* The compiled configuration: what bastiond loads from bastion.conf (supervisor/conf_load.c,
 * libconfig, file:line errors) and hands to the broker as JSON (lib/conf_json.c). The broker never
 * opens the configuration file itself. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

enum approval {
        APPROVAL_NONE,
        APPROVAL_CONFIRM,       /* the human at the host confirms through elicitation */
        APPROVAL_APPROVER,      /* a different person with approvals:grant approves (four eyes) */
        _APPROVAL_MAX,
};

struct tool_policy {
        char *name;
        char **scopes;          /* every scope listed is required */
        size_t n_scopes;
        enum approval approval;
};

/* Resources are matched by URI prefix; a resource no entry matches is hidden and refused. */
struct resource_policy {
        char *name;
        char *uri_prefix;
        char **scopes;
        size_t n_scopes;
};

/* Prompts are matched by name; a prompt no entry names is hidden and refused. */
struct prompt_policy {
        char *name;
        char **scopes;
        size_t n_scopes;
};

struct server_config {
        char *name;             /* [a-z0-9_-]{1,63}: endpoint name, state directory name */
        char *domain;           /* built-in worker domain ("inventory", …) */
        char *state_dir;        /* <state_dir>/<name>, owned by the worker's uid */
        char *db_path;          /* <state_dir>/<name>/<domain>.db */
        uid_t uid;              /* dedicated host uid (from the configured range) */
        gid_t gid;
        uint64_t memory_max;    /* bytes; 0 = no limit */
        unsigned call_timeout_ms;
        bool demo_data;         /* seed the deterministic demo data set into an empty database */
        char *credential;       /* name of the secret handed to this worker at fd 4, or NULL */
        struct tool_policy *tools;
        size_t n_tools;
        struct resource_policy *resources;
        size_t n_resources;
        struct prompt_policy *prompts;
        size_t n_prompts;
};

struct role {
        char *name;
        char **scopes;
        size_t n_scopes;
};

enum principal_kind { PRINCIPAL_UID, PRINCIPAL_GID };

/* A local user or group (resolved to a numeric id at load time) mapped to a role. */
struct principal_map {
        enum principal_kind kind;
        uint32_t id;
        char *role;
        char *tenant;           /* customers only; NULL for staff */
};

/* OAuth 2.1 resource server (the `oauth` group, bastion.conf(5), docs/auth.md). Present only when
 * the group is; without it every HTTP request is refused with 401. */
struct oauth_config {
        char *issuer;                   /* "iss" must equal it exactly */
        char *jwks_file;                /* read by the supervisor, sent to the broker as bytes */
        unsigned leeway_s;              /* clock skew for exp, nbf and iat */
        char *role_claim;               /* claim naming the caller's role */
        char *tenant_claim;             /* claim naming the caller's tenant; NULL: none */
        char **authorization_servers;   /* for the RFC 9728 document */
        size_t n_authorization_servers;
        bool token_cache;               /* cache verified tokens by hash until they expire */
        char *anonymous_role;           /* TESTS ONLY, plain loopback HTTP only: requests without a
                                         * token get this role; NULL: every request needs a token */
};

/* Token buckets (the `rate_limits` group): `rate` requests per second refill up to `burst`.
 * rate 0 means no limit. */
struct rate_limit {
        double rate;
        unsigned burst;
};

struct rate_limits_config {
        struct rate_limit per_subject;
        struct rate_limit per_tenant;
};

/* The `http` group (bastion.conf(5), docs/front.md): the bastion-front listener for Streamable HTTP.
 * Present only when the group is; without it no front runs. Hosts are "name:port" authorities the
 * Host header may name; origins are serialised origins "scheme://name:port" an Origin header may be. */
struct http_config {
        char *listen;                   /* "ADDRESS:PORT" as configured ("[v6]:port" for IPv6) */
        bool plain;                     /* no TLS: loopback addresses only */
        char *tls_cert, *tls_key;       /* PEM files, read by the supervisor; NULL when plain */
        char *public_url;               /* "https://name[:port]": base of each server's resource URI */
        char **hosts;
        size_t n_hosts;
        char **origins;
        size_t n_origins;
        unsigned max_connections;
        unsigned max_connections_per_address;
        unsigned header_timeout_ms;     /* TLS handshake + one whole request, from its first byte */
        unsigned idle_timeout_ms;       /* a keep-alive connection between requests; a stalled writer */
        uint64_t max_body;
        uid_t uid;                      /* the front's host uid: the last of bastion.worker_uids */
};

struct bastion_config {
        char *path;
        char *socket_path;              /* local MCP socket for bastion-stdio */
        char *control_socket_path;      /* bastionctl */
        char *state_dir;
        char *runtime_dir;
        char *libexec_dir;              /* where bastion-broker and bastion-worker live */
        char *audit_dir;                /* the audit log directory (bastion-audit(5)) */
        bool audit_journal;             /* mirror audit records to the journal */
        char *secrets_store;            /* the encrypted store (bastionctl secrets) */
        char *secrets_key_file;         /* its key; NULL: $CREDENTIALS_DIRECTORY, then the default file */
        gid_t admin_gid;                /* group allowed on the control socket (besides root) */
        bool has_admin_gid;
        uid_t worker_uid_min, worker_uid_max;
        uid_t broker_uid;               /* the broker's host uid and gid (default: worker_uid_min - 1) */
        unsigned call_timeout_ms;
        unsigned max_inflight;
        unsigned confirm_timeout_ms;    /* how long a confirm question (and its requestState) is valid */
        unsigned approval_ttl_ms;       /* how long an approver-level request waits for a decision */
        struct role *roles;
        size_t n_roles;
        struct principal_map *principals;
        size_t n_principals;
        struct server_config *servers;
        size_t n_servers;
        struct oauth_config *oauth;     /* NULL: no `oauth` group */
        struct rate_limits_config rate_limits;
        struct http_config *http;       /* NULL: no `http` group, no front */
};

void config_free(struct bastion_config *c);
const char *approval_to_string(enum approval a);
int approval_from_string(const char *s);        /* -EINVAL when unknown */

json_t *config_to_json(const struct bastion_config *c);
/* Rebuilds the struct from config_to_json output; -EBADMSG on anything unexpected. */
int config_from_json(json_t *j, struct bastion_config *ret);

const struct server_config *config_find_server(const struct bastion_config *c, const char *name);
const struct role *config_find_role(const struct bastion_config *c, const char *name);
const struct tool_policy *server_find_tool(const struct server_config *s, const char *name);
/* The policy entry with the longest prefix of uri, or NULL. */
const struct resource_policy *server_find_resource(const struct server_config *s, const char *uri);
const struct prompt_policy *server_find_prompt(const struct server_config *s, const char *name);
