/* `confirm` approvals: the human at the host confirms the exact action and arguments.
 *
 * 2025-11-25: the broker holds the validated call and asks the client with `elicitation/create`
 * (the client must have declared elicitation at initialize); the held arguments cannot change.
 * 2026-07-28: stateless. The broker answers with an InputRequiredResult whose requestState is sealed
 * (XChaCha20-Poly1305 with a key that never leaves this process) and binds the caller (its kind and
 * sub), server, tool, a hash of the arguments, an expiry and a one-time nonce. The retry must present the same arguments; a used
 * nonce is remembered until its state expires, so a state works once. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "broker/audit/audit.h"
#include "broker/broker.h"
#include "jsonrpc.h"
#include "log.h"
#include "util.h"

#define CONFIRM_KEY "confirm"     /* the boolean of the form; the inputRequests key is BROKER_CONFIRM_KEY */
#define ELICIT_ID_PREFIX "bastion-confirm-"

struct used_nonce {
        unsigned char nonce[16];
        unsigned char owner[16];        /* BLAKE2b-128 of the principal's sub: the per-principal quota */
        uint64_t expires_ms;
};

static unsigned char *state_key;               /* sodium_malloc'd, read-only after creation */
static struct used_nonce used[BASTION_MAX_CONFIRM_STATES];
static size_t n_used;
static int64_t next_elicit_id = 1;

int confirm_init(void) {
        state_key = sodium_malloc(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
        if (!state_key)
                return -ENOMEM;
        crypto_aead_xchacha20poly1305_ietf_keygen(state_key);
        return sodium_mprotect_readonly(state_key) < 0 ? -errno : 0;
}

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* BLAKE2b-256 of the arguments in canonical form (compact, keys sorted), hex. */
static void arguments_digest(const json_t *arguments, char out[65]) {
        _cleanup_free_ char *text = json_dumps(arguments, JSON_COMPACT | JSON_SORT_KEYS);
        unsigned char h[32];

        crypto_generichash(h, sizeof(h), (const unsigned char *) (text ? text : ""), text ? strlen(text) : 0,
                           NULL, 0);
        sodium_bin2hex(out, 65, h, sizeof(h));
}

/* The question names the exact action and every argument; nothing is abbreviated. */
static json_t *confirm_question(const struct client *c, const char *tool, const json_t *arguments) {
        _cleanup_free_ char *args = json_dumps(arguments, JSON_COMPACT | JSON_SORT_KEYS);
        _cleanup_free_ char *message = NULL;

        if (asprintf(&message, "Bastion asks you to confirm a real action: %s.%s with arguments %s, requested "
                     "as %s. Nothing happens unless you accept.", c->server, tool, args ? args : "{}",
                     c->principal.sub) < 0)
                return NULL;
        return json_pack("{s:s, s:s, s:{s:s, s:{s:{s:s, s:s, s:s}}, s:[s]}}", "mode", "form", "message", message,
                         "requestedSchema", "type", "object", "properties", CONFIRM_KEY, "type", "boolean",
                         "title", "Run it", "description", "true runs the action exactly as shown, once",
                         "required", CONFIRM_KEY);
}

static json_t *approval_record(const struct client *c) {
        return json_pack("{s:s, s:s, s:I}", "how", "confirm", "who", c->principal.sub, "at_ms",
                         (json_int_t) now_ms());
}

/* True only for {action:"accept", content:{confirm:true}}. */
static bool accepted(const json_t *answer) {
        return streq(json_string_value(json_object_get(answer, "action")), "accept") &&
               json_is_true(json_object_get(json_object_get(answer, "content"), CONFIRM_KEY));
}

static void tool_error(struct client *c, enum era era, json_t *id, const char *text) {
        client_send(c, jsonrpc_result(id, mcp_finish_result(c, era, json_pack("{s:[{s:s, s:s}], s:b}", "content",
                                                            "type", "text", "text", text, "isError", 1))));
}

static void not_confirmed(struct client *c, enum era era, json_t *id, const char *tool, const char *action) {
        char msg[256];

        log_info("confirmation of %s/%s by %s: %s", c->server, tool, c->principal.sub, action);
        record_approval(c->b, AUDIT_APPROVAL_DENIED, "confirm", &c->principal, c->server, tool, c->principal.sub);
        snprintf(msg, sizeof(msg), "Not confirmed (%s): %s was not run; nothing was done", action, tool);
        tool_error(c, era, id, msg);
}

/* ---- 2025-11-25: elicitation/create while the call is held ---- */

unsigned confirm_held_count(const struct broker *b) {
        unsigned n = 0;

        for (struct held_call *h = b->held; h; h = h->next)
                n++;
        return n;
}

static void held_free(struct held_call *h) {
        struct broker *b = h->client->b;

        for (struct held_call **p = &b->held; *p; p = &(*p)->next)
                if (*p == h) {
                        *p = h->next;
                        break;
                }
        h->client->inflight--;
        sd_event_source_disable_unref(h->timer);
        json_decref(h->client_id);
        json_decref(h->arguments);
        json_decref(h->meta);
        free(h);
        broker_maybe_finish_stop(b);
}

static int on_held_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        struct held_call *h = userdata;

        not_confirmed(h->client, ERA_LEGACY, h->client_id, h->tool, "no answer in time");
        held_free(h);
        return 0;
}

static void confirm_legacy(struct client *c, json_t *id, const char *tool, json_t *arguments, json_t *meta) {
        _cleanup_json_ json_t *eid = NULL;
        json_t *question;
        struct held_call *h;

        if (!json_object_get(c->client_caps, "elicitation")) {
                char msg[320];
                snprintf(msg, sizeof(msg), "Refused: %s needs your confirmation, but this client did not declare "
                         "the elicitation capability, so it cannot be asked; nothing was done", tool);
                return tool_error(c, ERA_LEGACY, id, msg);
        }
        h = calloc(1, sizeof(*h));
        question = confirm_question(c, tool, arguments);
        if (!h || !question) {
                free(h);
                json_decref(question);
                return (void) log_oom();
        }
        h->client = c;
        h->client_id = json_incref(id);
        h->arguments = json_deep_copy(arguments);
        h->meta = meta ? json_deep_copy(meta) : NULL;
        h->elicit_id = next_elicit_id++;
        snprintf(h->tool, sizeof(h->tool), "%s", tool);
        (void) sd_event_add_time_relative(c->b->event, &h->timer, CLOCK_MONOTONIC,
                                          c->b->config.confirm_timeout_ms * 1000ULL, 1000, on_held_timeout, h);
        h->next = c->b->held;
        c->b->held = h;
        c->inflight++;
        eid = json_sprintf(ELICIT_ID_PREFIX "%" PRId64, h->elicit_id);
        client_send_related(c, jsonrpc_request(eid, "elicitation/create", question), id);
}

/* The client's answer to our elicitation/create. False if it answers nothing we asked. */
bool confirm_legacy_answer(struct client *c, const struct jsonrpc_msg *m) {
        const char *sid = json_string_value(m->id);
        struct held_call *h = NULL;
        char want[48];

        for (struct held_call *i = c->b->held; i && sid; i = i->next) {
                snprintf(want, sizeof(want), ELICIT_ID_PREFIX "%" PRId64, i->elicit_id);
                if (i->client == c && streq(sid, want))
                        h = i;
        }
        if (!h)
                return false;
        if (m->error || !accepted(m->result)) {
                const char *action = json_string_value(json_object_get(m->result, "action"));
                not_confirmed(c, ERA_LEGACY, h->client_id, h->tool,
                              m->error ? "the client answered with an error" :
                              streq(action, "accept") ? "accepted without confirm=true" : action ? action : "no answer");
                held_free(h);
                return true;
        }
        log_info("confirmation of %s/%s by %s: accepted", c->server, h->tool, c->principal.sub);
        /* Exactly the held arguments run, once. upstream_call counts the call from here on. */
        upstream_call(upstream_get(c->b, c->server), c, h->client_id, ERA_LEGACY, h->tool, h->arguments, h->meta,
                      approval_record(c));
        held_free(h);
        return true;
}

void confirm_client_gone(struct broker *b, struct client *c) {
        for (struct held_call *h = b->held, *n; h; h = n) {
                n = h->next;
                if (h->client == c)
                        held_free(h);
        }
}

/* ---- 2026-07-28: InputRequiredResult with a sealed requestState ---- */

static char *state_seal(const struct client *c, const char *tool, const json_t *arguments) {
        enum { NPUB = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, ABYTES = crypto_aead_xchacha20poly1305_ietf_ABYTES };
        unsigned char once[16];
        char digest[65], once_hex[33];
        _cleanup_json_ json_t *j = NULL;
        _cleanup_free_ char *plain = NULL;
        _cleanup_free_ unsigned char *box = NULL;
        unsigned long long box_len;
        size_t plain_len, b64_len;
        char *out;

        arguments_digest(arguments, digest);
        randombytes_buf(once, sizeof(once));
        sodium_bin2hex(once_hex, sizeof(once_hex), once, sizeof(once));
        j = json_pack("{s:i, s:i, s:s, s:s, s:s, s:s, s:I, s:s}", "v", 1, "src", (int) c->principal.source,
                      "sub", c->principal.sub, "server", c->server, "tool", tool, "args", digest,
                      "exp", (json_int_t) (now_ms() + c->b->config.confirm_timeout_ms), "once", once_hex);
        plain = json_dumps(j, JSON_COMPACT);
        if (!plain)
                return NULL;
        plain_len = strlen(plain);
        box = malloc(NPUB + plain_len + ABYTES);
        if (!box)
                return NULL;
        randombytes_buf(box, NPUB);
        crypto_aead_xchacha20poly1305_ietf_encrypt(box + NPUB, &box_len, (unsigned char *) plain, plain_len,
                                                   NULL, 0, NULL, box, state_key);
        b64_len = sodium_base64_ENCODED_LEN(NPUB + box_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        out = malloc(b64_len);
        if (out)
                sodium_bin2base64(out, b64_len, box, NPUB + box_len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        return out;
}

/* Opens a requestState and checks it against this very request. NULL with *why when refused. */
static json_t *state_open(const struct client *c, const char *tool, const json_t *arguments, const char *state,
                          const char **why) {
        enum { NPUB = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, ABYTES = crypto_aead_xchacha20poly1305_ietf_ABYTES };
        unsigned char box[BASTION_MAX_CONFIRM_STATE], plain[BASTION_MAX_CONFIRM_STATE];
        unsigned long long plain_len;
        const char *server, *stool, *sargs, *once;
        json_int_t v, src, exp;
        const char *sub;
        char digest[65];
        size_t box_len;
        json_t *j;

        *why = "requestState failed verification";
        if (strlen(state) >= sizeof(box) ||
            sodium_base642bin(box, sizeof(box), state, strlen(state), NULL, &box_len, NULL,
                              sodium_base64_VARIANT_URLSAFE_NO_PADDING) < 0 ||
            box_len < NPUB + ABYTES ||
            crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plain_len, NULL, box + NPUB, box_len - NPUB,
                                                       NULL, 0, box, state_key) < 0)
                return NULL;
        j = json_loadb((char *) plain, plain_len, JSON_REJECT_DUPLICATES, NULL);
        if (json_unpack(j, "{s:I, s:I, s:s, s:s, s:s, s:s, s:I, s:s}", "v", &v, "src", &src, "sub", &sub,
                        "server", &server, "tool", &stool, "args", &sargs, "exp", &exp, "once", &once) < 0 || v != 1) {
                json_decref(j);
                return NULL;
        }
        arguments_digest(arguments, digest);
        if (src != (json_int_t) c->principal.source || !streq(sub, c->principal.sub) || !streq(server, c->server) ||
            !streq(stool, tool))
                *why = "requestState was issued for another caller or tool";
        else if (!streq(sargs, digest))
                *why = "the arguments differ from the ones that were confirmed";
        else if ((uint64_t) exp < now_ms())
                *why = "requestState has expired";
        else
                return j;
        json_decref(j);
        return NULL;
}

/* Marks a state's nonce used. False when it already was (a replay) or too many are live. */
static bool nonce_consume(const char *sub, const char *once_hex, uint64_t expires_ms, const char **why) {
        unsigned char once[16], owner[16];
        uint64_t now = now_ms();
        size_t kept = 0, mine = 0;

        crypto_generichash(owner, sizeof(owner), (const unsigned char *) sub, strlen(sub), NULL, 0);

        *why = "requestState failed verification";
        if (!once_hex || sodium_hex2bin(once, sizeof(once), once_hex, strlen(once_hex), NULL, NULL, NULL) < 0)
                return false;
        for (size_t i = 0; i < n_used; i++) {
                if (used[i].expires_ms < now)
                        continue;       /* an expired state is refused anyway: its nonce may go */
                if (sodium_memcmp(used[i].nonce, once, sizeof(once)) == 0) {
                        *why = "requestState was already used";
                        return false;
                }
                mine += sodium_memcmp(used[i].owner, owner, sizeof(owner)) == 0;
                used[kept++] = used[i];
        }
        n_used = kept;
        /* One principal cannot fill the table and lock everyone else out of confirming. */
        if (n_used >= ELEMENTSOF(used) || mine >= BASTION_MAX_CONFIRM_STATES_PER_PRINCIPAL) {
                *why = "too many confirmations outstanding; try again later";
                return false;
        }
        memcpy(used[n_used].owner, owner, sizeof(owner));
        memcpy(used[n_used].nonce, once, sizeof(once));
        used[n_used++].expires_ms = expires_ms;
        return true;
}

static void confirm_modern(struct client *c, json_t *id, const char *tool, json_t *arguments, json_t *meta,
                           json_t *params) {
        const char *state = json_string_value(json_object_get(params, "requestState"));
        json_t *answer = json_object_get(json_object_get(params, "inputResponses"), BROKER_CONFIRM_KEY);
        _cleanup_free_ char *sealed = NULL;
        _cleanup_json_ json_t *opened = NULL;
        json_t *question;
        const char *why;
        char msg[320];

        if (state && json_is_object(answer)) {
                opened = state_open(c, tool, arguments, state, &why);
                if (!opened || !nonce_consume(c->principal.sub, json_string_value(json_object_get(opened, "once")),
                                              json_integer_value(json_object_get(opened, "exp")), &why)) {
                        log_notice("confirmation of %s/%s by %s refused: %s", c->server, tool, c->principal.sub, why);
                        snprintf(msg, sizeof(msg), "Invalid params: %s; nothing was done", why);
                        return client_send(c, jsonrpc_error(id, JSONRPC_INVALID_PARAMS, msg, NULL));
                }
                if (!accepted(answer)) {
                        const char *action = json_string_value(json_object_get(answer, "action"));
                        return not_confirmed(c, ERA_MODERN, id, tool,
                                             streq(action, "accept") ? "accepted without confirm=true" :
                                             action ? action : "no answer");
                }
                log_info("confirmation of %s/%s by %s: accepted", c->server, tool, c->principal.sub);
                return upstream_call(upstream_get(c->b, c->server), c, id, ERA_MODERN, tool, arguments, meta,
                                     approval_record(c));
        }
        if (!json_object_get(json_object_get(meta, META_CLIENT_CAPS), "elicitation")) {
                snprintf(msg, sizeof(msg), "Refused: %s needs your confirmation, but this request did not declare "
                         "the elicitation capability, so you cannot be asked; nothing was done", tool);
                return client_send(c, jsonrpc_error(id, MCP_MISSING_CLIENT_CAPABILITY, msg,
                                                    json_pack("{s:{s:{}}}", "requiredCapabilities", "elicitation")));
        }
        /* First round, or a retry that brought no answer: ask (again) with a fresh state. */
        sealed = state_seal(c, tool, arguments);
        question = confirm_question(c, tool, arguments);
        if (!sealed || !question) {
                json_decref(question);
                return (void) log_oom();
        }
        client_send(c, jsonrpc_result(id, mcp_finish_result(c, ERA_MODERN,
                        json_pack("{s:s, s:{s:{s:s, s:o}}, s:s}", "resultType", "input_required", "inputRequests",
                                  BROKER_CONFIRM_KEY, "method", "elicitation/create", "params", question,
                                  "requestState", sealed))));
}

void confirm_call(struct client *c, enum era era, json_t *id, const char *tool, json_t *arguments, json_t *meta,
                  json_t *params) {
        _cleanup_json_ json_t *args = arguments ? json_incref(arguments) : json_object();

        if (era == ERA_MODERN)
                confirm_modern(c, id, tool, args, meta, params);
        else
                confirm_legacy(c, id, tool, args, meta);
}
