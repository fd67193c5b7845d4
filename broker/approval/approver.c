/* `approver` approvals (four eyes): the call records a pending approval and is refused; a different
 * person whose role holds approvals:grant approves it with bastionctl; the requester then repeats the
 * identical call, which runs once. Bound to the requester (kind, sub), server, tool and an arguments hash;
 * single use; expires. Kept in the broker's memory: a broker restart forgets them (fail closed — the
 * requester asks again). */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "broker/audit/audit.h"
#include "broker/broker.h"
#include "jsonrpc.h"
#include "log.h"
#include "util.h"

#define GRANT_SCOPE "approvals:grant"

enum approval_state { APPROVAL_PENDING, APPROVAL_GRANTED, APPROVAL_DENIED };

static const char *const state_names[] = { "pending", "approved", "denied" };

struct pending_approval {
        struct pending_approval *next;
        char id[24];
        struct principal who;           /* the requester, as identified then */
        char requester[BASTION_JWT_MAX_SUB + 1];
        char server[BASTION_NAME_BUF];
        char tool[128];
        char digest[65];
        json_t *arguments;
        uint64_t created_ms, expires_ms, decided_ms;    /* wall clock, for people and the audit log */
        uint64_t deadline_boot_ms;                      /* CLOCK_BOOTTIME: what expiry is decided on */
        enum approval_state state;
        char decided_by[BASTION_JWT_MAX_SUB + 1];
};

static struct pending_approval *approvals;

/* Expiry must not move when someone sets the clock, and must count time the machine was suspended. */
static uint64_t boot_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_BOOTTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void digest_arguments(const json_t *arguments, char out[65]) {
        _cleanup_free_ char *text = json_dumps(arguments, JSON_COMPACT | JSON_SORT_KEYS);
        unsigned char h[32];

        crypto_generichash(h, sizeof(h), (const unsigned char *) (text ? text : ""), text ? strlen(text) : 0,
                           NULL, 0);
        sodium_bin2hex(out, 65, h, sizeof(h));
}

static void approval_free(struct pending_approval *a) {
        for (struct pending_approval **p = &approvals; *p; p = &(*p)->next)
                if (*p == a) {
                        *p = a->next;
                        break;
                }
        json_decref(a->arguments);
        free(a);
}

/* Expired approvals are gone, whatever their state. */
static struct principal requester_of(const struct pending_approval *a) {
        return a->who;
}

static unsigned approvals_expire(struct broker *b) {
        uint64_t now = boot_ms();
        unsigned n = 0;

        for (struct pending_approval *a = approvals, *next; a; a = next) {
                next = a->next;
                if (a->deadline_boot_ms <= now) {
                        struct principal p = requester_of(a);
                        log_info("approval %s (%s/%s for %s) expired", a->id, a->server, a->tool, a->requester);
                        record_approval(b, AUDIT_APPROVAL_EXPIRED, a->id, &p, a->server, a->tool, NULL);
                        approval_free(a);
                } else
                        n++;
        }
        return n;
}

/* Undecided requests of one requester: one caller cannot fill the global table and starve the others. */
static unsigned approvals_of(const char *requester) {
        unsigned n = 0;

        for (struct pending_approval *a = approvals; a; a = a->next)
                n += a->state == APPROVAL_PENDING && streq(a->requester, requester);
        return n;
}

static struct pending_approval *approval_match(const struct client *c, const char *tool, const char *digest) {
        for (struct pending_approval *a = approvals; a; a = a->next)
                if (principal_same(&a->who, &c->principal) && streq(a->server, c->server) && streq(a->tool, tool) &&
                    streq(a->digest, digest))
                        return a;
        return NULL;
}

static void refuse(struct client *c, enum era era, json_t *id, const char *text) {
        client_send(c, jsonrpc_result(id, mcp_finish_result(c, era, json_pack("{s:[{s:s, s:s}], s:b}", "content",
                                                            "type", "text", "text", text, "isError", 1))));
}

void approver_call(struct client *c, enum era era, json_t *id, const char *tool, json_t *arguments, json_t *meta) {
        _cleanup_json_ json_t *args = arguments ? json_incref(arguments) : json_object();
        unsigned char rnd[6];
        char digest[65], hex[13], msg[512];
        struct pending_approval *a;

        digest_arguments(args, digest);
        approvals_expire(c->b);
        a = approval_match(c, tool, digest);
        if (a && a->state == APPROVAL_GRANTED) {
                json_t *record = json_pack("{s:s, s:s, s:I, s:s}", "how", "approver", "who", a->decided_by,
                                           "at_ms", (json_int_t) a->decided_ms, "id", a->id);
                log_info("approval %s used by %s for %s/%s", a->id, c->principal.sub, c->server, tool);
                approval_free(a);       /* single use: gone before the call runs */
                return upstream_call(upstream_get(c->b, c->server), c, id, era, tool, args, meta, record);
        }
        if (a && a->state == APPROVAL_PENDING) {
                snprintf(msg, sizeof(msg), "Not run: approval %s for this exact call is still waiting for a second "
                         "person; nothing was done", a->id);
                return refuse(c, era, id, msg);
        }
        if (a && a->state == APPROVAL_DENIED) {
                snprintf(msg, sizeof(msg), "Not run: approval %s for this exact call was denied by %s; nothing was "
                         "done", a->id, a->decided_by);
                approval_free(a);       /* reported once; asking again makes a new request */
                return refuse(c, era, id, msg);
        }
        if (approvals_expire(c->b) >= BASTION_MAX_APPROVALS)
                return refuse(c, era, id, "Not run: too many approvals are waiting; nothing was done");
        if (approvals_of(c->principal.sub) >= BASTION_MAX_APPROVALS_PER_PRINCIPAL) {
                snprintf(msg, sizeof(msg), "Not run: %s already has %u approvals waiting (the limit); nothing was "
                         "done", c->principal.sub, BASTION_MAX_APPROVALS_PER_PRINCIPAL);
                return refuse(c, era, id, msg);
        }
        a = calloc(1, sizeof(*a));
        if (!a)
                return (void) log_oom();
        randombytes_buf(rnd, sizeof(rnd));
        sodium_bin2hex(hex, sizeof(hex), rnd, sizeof(rnd));
        snprintf(a->id, sizeof(a->id), "apr-%s", hex);
        a->who = c->principal;
        snprintf(a->requester, sizeof(a->requester), "%s", c->principal.sub);
        snprintf(a->server, sizeof(a->server), "%s", c->server);
        snprintf(a->tool, sizeof(a->tool), "%s", tool);
        memcpy(a->digest, digest, sizeof(a->digest));
        a->arguments = json_deep_copy(args);
        a->created_ms = now_ms();
        a->expires_ms = a->created_ms + c->b->config.approval_ttl_ms;
        a->deadline_boot_ms = boot_ms() + c->b->config.approval_ttl_ms;
        a->next = approvals;
        approvals = a;
        log_info("approval %s requested by %s for %s/%s", a->id, a->requester, a->server, a->tool);
        record_approval(c->b, AUDIT_APPROVAL_REQUESTED, a->id, &c->principal, a->server, a->tool, NULL);
        snprintf(msg, sizeof(msg), "Not run yet: %s.%s needs approval by a second person. Approval %s was requested "
                 "(valid %u s). Someone whose role holds %s runs `bastionctl approvals approve %s`; then "
                 "repeat exactly this call, which will run once.", c->server, tool, a->id,
                 c->b->config.approval_ttl_ms / 1000, GRANT_SCOPE, a->id);
        refuse(c, era, id, msg);
}

static json_t *approval_to_json(const struct pending_approval *a) {
        return json_pack("{s:s, s:s, s:s, s:s, s:O, s:s, s:I, s:I, s:s?}", "id", a->id, "state", state_names[a->state],
                         "requester", a->requester, "server", a->server, "arguments", a->arguments, "tool", a->tool,
                         "created_ms", (json_int_t) a->created_ms, "expires_ms", (json_int_t) a->expires_ms,
                         "decided_by", a->decided_by[0] ? a->decided_by : NULL);
}

static json_t *reply_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *reply_error(const char *fmt, ...) {
        char msg[256];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        return json_pack("{s:b, s:s}", "ok", 0, "error", msg);
}

/* The list must fit one channel message (BASTION_MAX_CHAN_PAYLOAD) whatever is pending: arguments
 * longer than APPROVAL_LIST_MAX_ARGS are shown by size and digest only (the digest is the one the
 * approval is bound to), and entries past the budget are counted, not sent. */
#define APPROVAL_LIST_MAX_ARGS (8 * 1024)
#define APPROVAL_LIST_BUDGET (BASTION_MAX_CHAN_PAYLOAD / 2)

static json_t *approvals_list(void) {
        json_t *list = json_array();
        size_t used = 0, omitted = 0;

        for (struct pending_approval *a = approvals; a; a = a->next) {
                json_t *j = approval_to_json(a);
                _cleanup_free_ char *args = json_dumps(a->arguments, JSON_COMPACT);
                size_t n = args ? strlen(args) : 0;

                if (n > APPROVAL_LIST_MAX_ARGS) {
                        json_object_del(j, "arguments");
                        json_object_set_new(j, "arguments_bytes", json_integer((json_int_t) n));
                        json_object_set_new(j, "arguments_digest", json_string(a->digest));
                        n = 0;
                }
                n += 512;       /* the other fields, generously */
                if (used + n > APPROVAL_LIST_BUDGET) {
                        json_decref(j);
                        omitted++;
                        continue;
                }
                used += n;
                json_array_append_new(list, j);
        }
        return json_pack("{s:b, s:o, s:I}", "ok", 1, "approvals", list, "omitted", (json_int_t) omitted);
}

/* A bastionctl request forwarded by the supervisor; the peer is the control-socket caller. */
json_t *approvals_command(struct broker *b, json_t *request) {
        struct principal peer = {};
        const struct role *role;
        const char *op, *id = NULL;
        json_int_t uid, gid;
        json_t *groups = NULL, *g;
        struct pending_approval *a = NULL;
        bool grant = false;
        size_t i;

        if (json_unpack(request, "{s:s, s?s, s:I, s:I, s?o}", "op", &op, "id", &id, "uid", &uid, "gid", &gid,
                        "groups", &groups) < 0)
                return reply_error("malformed approvals request");
        approvals_expire(b);
        if (!streq(op, "list") && !streq(op, "approve") && !streq(op, "deny"))
                return reply_error("unknown approvals operation \"%s\"", op);
        peer.uid = uid;
        peer.gid = gid;
        json_array_foreach(groups, i, g)
                if (json_is_integer(g) && peer.n_groups < (int) ELEMENTSOF(peer.groups))
                        peer.groups[peer.n_groups++] = json_integer_value(g);
        snprintf(peer.sub, sizeof(peer.sub), "uid:%u", (unsigned) peer.uid);
        role = policy_role(&b->config, &peer);
        for (size_t k = 0; role && k < role->n_scopes; k++)
                grant = grant || streq(role->scopes[k], GRANT_SCOPE);
        if (streq(op, "list")) {
                /* Pending requests carry their arguments (customer data, amounts): only the people who
                 * decide them, and root, see them. */
                if (!grant && peer.uid != 0)
                        return reply_error("refused: listing approvals needs " GRANT_SCOPE " (%s)", peer.sub);
                return approvals_list();
        }
        if (!grant)
                return reply_error("refused: your role does not hold " GRANT_SCOPE " (%s)", peer.sub);
        for (a = approvals; a && id; a = a->next)
                if (streq(a->id, id))
                        break;
        if (!a)
                return reply_error("no approval %s is waiting (unknown, expired or already decided)", id ? id : "");
        if (a->state != APPROVAL_PENDING)
                return reply_error("approval %s was already decided", a->id);
        if (principal_same(&a->who, &peer))
                return reply_error("refused: %s cannot approve their own request (four eyes)", peer.sub);
        a->state = streq(op, "approve") ? APPROVAL_GRANTED : APPROVAL_DENIED;
        a->decided_ms = now_ms();
        snprintf(a->decided_by, sizeof(a->decided_by), "%s", peer.sub);
        log_info("approval %s %s by %s", a->id, state_names[a->state], peer.sub);
        {
                struct principal p = requester_of(a);
                record_approval(b, a->state == APPROVAL_GRANTED ? AUDIT_APPROVAL_GRANTED : AUDIT_APPROVAL_DENIED,
                                a->id, &p, a->server, a->tool, peer.sub);
        }
        return json_pack("{s:b, s:o}", "ok", 1, "approval", approval_to_json(a));
}
