/* The "conformance" domain: the fixture tools, resources, resource templates and prompts the official
 * MCP conformance suite (@modelcontextprotocol/conformance) calls by name, so the suite can run through
 * the whole stack (front -> broker -> a sandboxed worker). Test configurations only: it holds no data
 * and its tools do nothing but answer.
 *
 * Both eras are served by the same tools. A 2025-11-25 call may ask the client directly (sampling,
 * elicitation) through the broker; 2026-07-28 calls use the stateless round trip instead
 * (InputRequiredResult, then a retry carrying inputResponses and the requestState, which is
 * authenticated with a key that never leaves this process). */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "log.h"
#include "util.h"
#include "workers/worker.h"

#define PNG_1X1 "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
#define WAV_SHORT "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA=="
/* How long a call waits for the human or the model at the client. */
#define ASK_TIMEOUT_MS 60000
#define NO_ARGS "{\"type\":\"object\",\"properties\":{}}"

struct conformance {
        unsigned char key[crypto_auth_KEYBYTES];
};

static int conformance_open(const char *db_path, bool demo_data, void **ret_state) {
        struct conformance *c;

        /* Before the sandbox: the key comes from the kernel's randomness. */
        if (sodium_init() < 0)
                return log_error_errno(EIO, "libsodium cannot be initialised");
        c = calloc(1, sizeof(*c));
        if (!c)
                return log_oom();
        crypto_auth_keygen(c->key);
        *ret_state = c;
        return 0;
}

static void conformance_close(void *state) {
        if (state)
                sodium_memzero(state, sizeof(struct conformance));
        free(state);
}

static void pause_ms(unsigned ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long) (ms % 1000) * 1000000L };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static int text(json_t **ret, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int text(json_t **ret, const char *fmt, ...) {
        char *s = NULL;
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        *ret = json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text", s);
        free(s);
        return *ret ? 0 : -ENOMEM;
}

/* ---- content tools ---- */

static int t_simple_text(struct tool_call *call, json_t **ret) {
        return text(ret, "This is a simple text response for testing.");
}

/* SEP-2243: region and priority are mirrored in Mcp-Param-Region and Mcp-Param-Priority, which the
 * broker checks against the arguments before the call gets here. */
static int t_custom_headers(struct tool_call *call, json_t **ret) {
        return text(ret, "Custom headers test completed");
}

static int t_image(struct tool_call *call, json_t **ret) {
        *ret = json_pack("{s:[{s:s, s:s, s:s}]}", "content", "type", "image", "data", PNG_1X1, "mimeType", "image/png");
        return *ret ? 0 : -ENOMEM;
}

static int t_audio(struct tool_call *call, json_t **ret) {
        *ret = json_pack("{s:[{s:s, s:s, s:s}]}", "content", "type", "audio", "data", WAV_SHORT, "mimeType", "audio/wav");
        return *ret ? 0 : -ENOMEM;
}

static int t_embedded(struct tool_call *call, json_t **ret) {
        *ret = json_pack("{s:[{s:s, s:{s:s, s:s, s:s}}]}", "content", "type", "resource", "resource",
                         "uri", "test://embedded-resource", "mimeType", "text/plain",
                         "text", "This is an embedded resource content.");
        return *ret ? 0 : -ENOMEM;
}

static int t_mixed(struct tool_call *call, json_t **ret) {
        *ret = json_pack("{s:[{s:s, s:s}, {s:s, s:s, s:s}, {s:s, s:{s:s, s:s, s:s}}]}", "content",
                         "type", "text", "text", "Multiple content types test:",
                         "type", "image", "data", PNG_1X1, "mimeType", "image/png",
                         "type", "resource", "resource", "uri", "test://mixed-content-resource",
                         "mimeType", "application/json", "text", "{\"test\":\"data\",\"value\":123}");
        return *ret ? 0 : -ENOMEM;
}

static int t_error(struct tool_call *call, json_t **ret) {
        return tool_fail(ret, "This tool intentionally returns an error for testing");
}

static int t_progress(struct tool_call *call, json_t **ret) {
        int r;

        for (int step = 0; step <= 100; step += 50) {
                if (step)
                        pause_ms(50);
                r = tool_call_progress(call, step, 100, NULL);
                if (r < 0)
                        return r;
        }
        return text(ret, "Progress test completed (3 steps)");
}

static int t_logging(struct tool_call *call, json_t **ret) {
        static const char *const lines[] = { "Tool execution started", "Tool processing data",
                                             "Tool execution completed" };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(lines); i++) {
                if (i)
                        pause_ms(50);
                r = mcp_server_log(call->server, "info", "conformance", json_string(lines[i]));
                if (r < 0)
                        return r;
        }
        return text(ret, "Tool with logging executed successfully");
}

/* ---- 2025-11-25: asking the client through the broker ---- */

static bool client_can(const struct tool_call *call, const char *capability) {
        return json_object_get(request_client_caps(call->params), capability) != NULL;
}

/* Asks the client; on a refusal or failure answers the call with an isError result and returns 1. */
static int ask(struct tool_call *call, const char *capability, const char *method, json_t *params,
               json_t **ret_answer, json_t **ret) {
        _cleanup_json_ json_t *error = NULL;
        int r;

        if (!client_can(call, capability)) {
                json_decref(params);
                r = tool_fail(ret, "This tool needs the client's %s capability, which it did not declare", capability);
                return r < 0 ? r : 1;
        }
        r = mcp_server_request(call->server, method, params, ASK_TIMEOUT_MS, ret_answer, &error);
        if (r < 0 || error) {
                const char *msg = json_string_value(json_object_get(error, "message"));
                if (r < 0)
                        log_warning_errno(r, "%s was not answered: %m", method);
                r = tool_fail(ret, "The client did not answer %s: %s", method,
                              msg ? msg : r == -ETIMEDOUT ? "timed out" : "the request failed");
                return r < 0 ? r : 1;
        }
        return 0;
}

static int t_sampling(struct tool_call *call, json_t **ret) {
        const char *prompt = json_string_value(json_object_get(call->arguments, "prompt"));
        _cleanup_json_ json_t *answer = NULL;
        const char *reply;
        int r;

        r = ask(call, "sampling", "sampling/createMessage",
                json_pack("{s:[{s:s, s:{s:s, s:s}}], s:i}", "messages", "role", "user", "content", "type", "text",
                          "text", prompt, "maxTokens", 100), &answer, ret);
        if (r != 0)
                return r < 0 ? r : 0;
        reply = json_string_value(json_object_get(json_object_get(answer, "content"), "text"));
        return text(ret, "LLM response: %s", reply ? reply : "(no text)");
}

/* "Elicitation completed: action=accept, content={...}" style answers. */
static int elicitation_answer(json_t **ret, const char *prefix, const json_t *answer) {
        const char *action = json_string_value(json_object_get(answer, "action"));
        _cleanup_free_ char *content = json_dumps(json_object_get(answer, "content") ?: json_null(),
                                                  JSON_COMPACT | JSON_ENCODE_ANY);

        return text(ret, "%saction=%s, content=%s", prefix, action ? action : "(none)", content ? content : "null");
}

static int elicit(struct tool_call *call, const char *prefix, json_t *params, json_t **ret) {
        _cleanup_json_ json_t *answer = NULL;
        int r;

        r = ask(call, "elicitation", "elicitation/create", params, &answer, ret);
        if (r != 0)
                return r < 0 ? r : 0;
        return elicitation_answer(ret, prefix, answer);
}

static int t_elicitation(struct tool_call *call, json_t **ret) {
        const char *message = json_string_value(json_object_get(call->arguments, "message"));

        return elicit(call, "User response: ", json_pack(
                "{s:s, s:{s:s, s:{s:{s:s, s:s}, s:{s:s, s:s}}, s:[s, s]}}", "message", message,
                "requestedSchema", "type", "object", "properties",
                "username", "type", "string", "description", "User's response",
                "email", "type", "string", "description", "User's email address",
                "required", "username", "email"), ret);
}

static int t_elicitation_defaults(struct tool_call *call, json_t **ret) {
        return elicit(call, "Elicitation completed: ", json_pack(
                "{s:s, s:{s:s, s:{s:{s:s, s:s}, s:{s:s, s:i}, s:{s:s, s:f}, s:{s:s, s:[s, s, s], s:s}, s:{s:s, s:b}}}}",
                "message", "Please review and update the form fields with defaults",
                "requestedSchema", "type", "object", "properties",
                "name", "type", "string", "default", "John Doe",
                "age", "type", "integer", "default", 30,
                "score", "type", "number", "default", 95.5,
                "status", "type", "string", "enum", "active", "inactive", "pending", "default", "active",
                "verified", "type", "boolean", "default", 1), ret);
}

static int t_elicitation_enums(struct tool_call *call, json_t **ret) {
        json_t *props = json_pack(
                "{s:{s:s, s:[s, s, s]},"
                " s:{s:s, s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]},"
                " s:{s:s, s:[s, s, s], s:[s, s, s]},"
                " s:{s:s, s:{s:s, s:[s, s, s]}},"
                " s:{s:s, s:{s:[{s:s, s:s}, {s:s, s:s}, {s:s, s:s}]}}}",
                "untitledSingle", "type", "string", "enum", "option1", "option2", "option3",
                "titledSingle", "type", "string", "oneOf", "const", "value1", "title", "First Option",
                "const", "value2", "title", "Second Option", "const", "value3", "title", "Third Option",
                "legacyEnum", "type", "string", "enum", "opt1", "opt2", "opt3",
                "enumNames", "Option One", "Option Two", "Option Three",
                "untitledMulti", "type", "array", "items", "type", "string", "enum", "option1", "option2", "option3",
                "titledMulti", "type", "array", "items", "anyOf", "const", "value1", "title", "First Choice",
                "const", "value2", "title", "Second Choice", "const", "value3", "title", "Third Choice");

        return elicit(call, "Elicitation completed: ", props ? json_pack("{s:s, s:{s:s, s:o}}", "message",
                      "Please select options from the enum fields", "requestedSchema", "type", "object",
                      "properties", props) : NULL, ret);
}

/* ---- 2026-07-28 diagnostics ---- */

static int t_missing_capability(struct tool_call *call, json_t **ret) {
        if (!client_can(call, "sampling")) {
                call->error_code = -32021;      /* Missing Required Client Capability */
                call->error_message = "Missing required client capability: sampling";
                call->error_data = json_pack("{s:{s:{}}}", "requiredCapabilities", "sampling");
                return 0;
        }
        return text(ret, "The client declared sampling");
}

static int t_streaming_elicitation(struct tool_call *call, json_t **ret) {
        /* The modern response stream carries notifications and the result only; the question is part of
         * the result (InputRequiredResult) rather than a request on the stream. */
        if (json_object_get(call->params, "inputResponses"))
                return text(ret, "Thanks for the answer");
        *ret = json_pack("{s:s, s:{s:{s:s, s:{s:s, s:{s:s, s:{s:{s:s}}}}}}}", "resultType", "input_required",
                         "inputRequests", "answer", "method", "elicitation/create", "params",
                         "message", "Anything to add?", "requestedSchema", "type", "object", "properties",
                         "note", "type", "string");
        return *ret ? 0 : -ENOMEM;
}

/* ---- 2026-07-28: InputRequiredResult round trips ---- */

static json_t *ask_name(const char *message) {
        return json_pack("{s:s, s:{s:s, s:{s:s, s:{s:{s:s}}, s:[s]}}}", "method", "elicitation/create",
                         "params", "message", message, "requestedSchema", "type", "object", "properties",
                         "name", "type", "string", "required", "name");
}

static json_t *ask_field(const char *message, const char *field, const char *type) {
        return json_pack("{s:s, s:{s:s, s:{s:s, s:{s:{s:s}}, s:[s]}}}", "method", "elicitation/create",
                         "params", "message", message, "requestedSchema", "type", "object", "properties",
                         field, "type", type, "required", field);
}

static json_t *ask_sampling(const char *prompt, int max_tokens) {
        return json_pack("{s:s, s:{s:[{s:s, s:{s:s, s:s}}], s:i}}", "method", "sampling/createMessage", "params",
                         "messages", "role", "user", "content", "type", "text", "text", prompt,
                         "maxTokens", max_tokens);
}

static json_t *ask_roots(void) {
        return json_pack("{s:s, s:{}}", "method", "roots/list", "params");
}

/* requestState: "<tool>.<round>.<nonce>.<mac>", the MAC (HMAC-SHA-512-256) over everything before it. */
static char *state_make(const struct conformance *c, const char *tool, int round) {
        unsigned char nonce[8], mac[crypto_auth_BYTES];
        char nonce_hex[17], mac_hex[2 * crypto_auth_BYTES + 1], *body = NULL, *out = NULL;

        randombytes_buf(nonce, sizeof(nonce));
        sodium_bin2hex(nonce_hex, sizeof(nonce_hex), nonce, sizeof(nonce));
        if (asprintf(&body, "%s.%d.%s", tool, round, nonce_hex) < 0)
                return NULL;
        crypto_auth(mac, (unsigned char *) body, strlen(body), c->key);
        sodium_bin2hex(mac_hex, sizeof(mac_hex), mac, sizeof(mac));
        if (asprintf(&out, "%s.%s", body, mac_hex) < 0)
                out = NULL;
        free(body);
        return out;
}

/* The round the state was issued for, or -1 when it is missing, forged or for another tool. */
static int state_check(const struct conformance *c, const char *tool, const char *state) {
        unsigned char mac[crypto_auth_BYTES];
        const char *dot = state ? strrchr(state, '.') : NULL;
        size_t tool_len = strlen(tool), mac_len;
        int round;

        if (!dot || sodium_hex2bin(mac, sizeof(mac), dot + 1, strlen(dot + 1), NULL, &mac_len, NULL) < 0 ||
            mac_len != sizeof(mac) || crypto_auth_verify(mac, (const unsigned char *) state, dot - state, c->key) < 0)
                return -1;
        if (strncmp(state, tool, tool_len) != 0 || state[tool_len] != '.' || sscanf(state + tool_len + 1, "%d.", &round) != 1)
                return -1;
        return round;
}

/* An InputRequiredResult asking `requests` (stolen), with a fresh state for `round` when tool is set. */
static int input_required(struct tool_call *call, json_t *requests, const char *tool, int round, json_t **ret) {
        _cleanup_free_ char *state = tool ? state_make(call->domain_state, tool, round) : NULL;

        *ret = json_pack("{s:s, s:o}", "resultType", "input_required", "inputRequests", requests);
        if (*ret && state)
                json_object_set_new(*ret, "requestState", json_string(state));
        return *ret && (!tool || state) ? 0 : -ENOMEM;
}

/* The answer to input `key` when it is an object (every input response is), else NULL. */
static const json_t *response(const struct tool_call *call, const char *key) {
        const json_t *v = json_object_get(json_object_get(call->params, "inputResponses"), key);

        return json_is_object(v) ? v : NULL;
}

static const char *request_state(const struct tool_call *call) {
        return json_string_value(json_object_get(call->params, "requestState"));
}

static const char *answered(const json_t *answer, const char *field) {
        return json_string_value(json_object_get(json_object_get(answer, "content"), field));
}

static int t_irr_elicitation(struct tool_call *call, json_t **ret) {
        const json_t *a = response(call, "user_name");

        if (!a)
                return input_required(call, json_pack("{s:o}", "user_name", ask_name("What is your name?")), NULL, 0, ret);
        return text(ret, "Hello, %s!", answered(a, "name") ?: "stranger");
}

static int t_irr_sampling(struct tool_call *call, json_t **ret) {
        const json_t *a = response(call, "capital_question");
        const char *reply;

        if (!a)
                return input_required(call, json_pack("{s:o}", "capital_question",
                                                      ask_sampling("What is the capital of France?", 100)), NULL, 0, ret);
        reply = json_string_value(json_object_get(json_object_get(a, "content"), "text"));
        return text(ret, "The model answered: %s", reply ?: "(no text)");
}

static int t_irr_list_roots(struct tool_call *call, json_t **ret) {
        const json_t *a = response(call, "client_roots"), *roots, *root;
        _cleanup_free_ char *uris = NULL;
        size_t i;

        if (!a || !json_is_array(roots = json_object_get(a, "roots")))
                return input_required(call, json_pack("{s:o}", "client_roots", ask_roots()), NULL, 0, ret);
        uris = strdup("");
        json_array_foreach(roots, i, root) {
                char *n = NULL;
                if (!uris || asprintf(&n, "%s%s%s", uris, i ? ", " : "",
                                      json_string_value(json_object_get(root, "uri")) ?: "?") < 0)
                        return -ENOMEM;
                free(uris);
                uris = n;
        }
        return text(ret, "The client has %zu root(s): %s", json_array_size(roots), uris ? uris : "");
}

static int t_irr_request_state(struct tool_call *call, json_t **ret) {
        const char *tool = "test_input_required_result_request_state";
        const json_t *a = response(call, "confirm");

        if (a && state_check(call->domain_state, tool, request_state(call)) == 1)
                return text(ret, "Confirmed: state-ok");
        return input_required(call, json_pack("{s:o}", "confirm", ask_field("Please confirm", "ok", "boolean")),
                              tool, 1, ret);
}

static int t_irr_multiple(struct tool_call *call, json_t **ret) {
        const char *tool = "test_input_required_result_multiple_inputs";
        const json_t *name = response(call, "user_name"), *greeting = response(call, "greeting"),
                     *roots = response(call, "client_roots");

        if (name && greeting && roots && state_check(call->domain_state, tool, request_state(call)) == 1)
                return text(ret, "Hello, %s! All inputs received: state-ok", answered(name, "name") ?: "stranger");
        return input_required(call, json_pack("{s:o, s:o, s:o}", "user_name", ask_name("What is your name?"),
                                              "greeting", ask_sampling("Generate a greeting", 50),
                                              "client_roots", ask_roots()), tool, 1, ret);
}

static int t_irr_multi_round(struct tool_call *call, json_t **ret) {
        const char *tool = "test_input_required_result_multi_round";
        int round = state_check(call->domain_state, tool, request_state(call));

        if (round == 2 && response(call, "step2"))
                return text(ret, "All steps complete: color %s", answered(response(call, "step2"), "color") ?: "?");
        if (round == 1 && response(call, "step1"))
                return input_required(call, json_pack("{s:o}", "step2", ask_field("Step 2: What is your favorite color?",
                                                                                  "color", "string")), tool, 2, ret);
        return input_required(call, json_pack("{s:o}", "step1", ask_name("Step 1: What is your name?")), tool, 1, ret);
}

static int t_irr_tampered(struct tool_call *call, json_t **ret) {
        const char *tool = "test_input_required_result_tampered_state";
        const char *state = request_state(call);

        if (state && state_check(call->domain_state, tool, state) != 1) {
                call->error_code = -32602;
                call->error_message = "Invalid params: requestState failed its integrity check";
                return 0;
        }
        if (state && response(call, "confirm"))
                return text(ret, "Verified: state-ok");
        return input_required(call, json_pack("{s:o}", "confirm", ask_field("Please confirm", "ok", "boolean")),
                              tool, 1, ret);
}

static int t_irr_capabilities(struct tool_call *call, json_t **ret) {
        json_t *requests;

        if (json_object_size(json_object_get(call->params, "inputResponses")) > 0)
                return text(ret, "Inputs received for the declared capabilities");
        requests = json_object();
        if (!requests)
                return -ENOMEM;
        if (client_can(call, "elicitation"))
                json_object_set_new(requests, "user_name", ask_name("What is your name?"));
        if (client_can(call, "sampling"))
                json_object_set_new(requests, "greeting", ask_sampling("Generate a greeting", 50));
        if (client_can(call, "roots"))
                json_object_set_new(requests, "client_roots", ask_roots());
        if (json_object_size(requests) == 0) {
                json_decref(requests);
                return text(ret, "The client declared none of elicitation, sampling and roots");
        }
        return input_required(call, requests, NULL, 0, ret);
}

/* ---- 2026-07-28: the tasks extension (SEP-2663) ----
 *
 * Which call becomes a task is the broker's decision (docs/broker.md, Tasks): these tools only declare
 * execution.taskSupport, run, and ask through InputRequiredResult. The broker waits briefly for a
 * worker's first answer before it makes the call a task, so a tool that asks before working (the MRTR
 * round of test_tool_with_task) is answered at once, and the tools that are to ask within a task or
 * fail within one first work for a second. Every wait ends early when the broker cancels the call. */

/* How long the task fixtures "work" before they ask or fail. */
#define TASK_WORK_MS 1000

/* Works for ms; 1 with *ret set when the call was cancelled meanwhile (the answer is dropped). */
static int work(struct tool_call *call, unsigned ms, json_t **ret) {
        int r = mcp_server_sleep(call->server, ms);

        if (r == -ECANCELED) {
                r = tool_fail(ret, "Cancelled");
                return r < 0 ? r : 1;
        }
        return r;
}

static int t_greet(struct tool_call *call, json_t **ret) {
        return text(ret, "Hello, %s!", json_string_value(json_object_get(call->arguments, "name")));
}

static int t_slow_compute(struct tool_call *call, json_t **ret) {
        double seconds = json_number_value(json_object_get(call->arguments, "seconds"));
        const char *label = json_string_value(json_object_get(call->arguments, "label"));
        int r = work(call, (unsigned) (seconds * 1000), ret);

        if (r != 0)
                return r < 0 ? r : 0;
        return text(ret, "Computed for %g second(s)%s%s", seconds, label ? ": " : "", label ? label : "");
}

static int t_confirm_delete(struct tool_call *call, json_t **ret) {
        const char *filename = json_string_value(json_object_get(call->arguments, "filename"));
        const json_t *a = response(call, "confirm");
        int r;

        if (a) {
                bool yes = streq(json_string_value(json_object_get(a, "action")), "accept") &&
                           json_is_true(json_object_get(json_object_get(a, "content"), "confirm"));
                /* A fixture: nothing is deleted either way. */
                return text(ret, yes ? "Deleted %s" : "Kept %s", filename);
        }
        r = work(call, TASK_WORK_MS, ret);
        if (r != 0)
                return r < 0 ? r : 0;
        return input_required(call, json_pack("{s:o}", "confirm", ask_field("Delete this file?", "confirm", "boolean")),
                              NULL, 0, ret);
}

static int t_multi_input(struct tool_call *call, json_t **ret) {
        const json_t *name = response(call, "name"), *confirm = response(call, "confirm");
        int r;

        if (name && confirm)
                return text(ret, "Got both inputs: %s", answered(name, "name") ?: "(no name)");
        r = work(call, TASK_WORK_MS, ret);
        if (r != 0)
                return r < 0 ? r : 0;
        /* Two questions at once: a client may answer them one at a time. */
        return input_required(call, json_pack("{s:o, s:o}", "name", ask_name("What is your name?"),
                                              "confirm", ask_field("Proceed?", "confirm", "boolean")), NULL, 0, ret);
}

static int t_failing_job(struct tool_call *call, json_t **ret) {
        int r = work(call, TASK_WORK_MS, ret);

        if (r != 0)
                return r < 0 ? r : 0;
        return tool_fail(ret, "The job failed: this fixture always fails");
}

static int t_protocol_error_job(struct tool_call *call, json_t **ret) {
        int r = work(call, TASK_WORK_MS, ret);

        if (r != 0)
                return r < 0 ? r : 0;
        call->error_code = -32603;
        call->error_message = "Internal error: the job crashed";
        return 0;
}

/* Asks for a name first (answered synchronously, MRTR), then works and answers within a task. */
static int t_tool_with_task(struct tool_call *call, json_t **ret) {
        const json_t *a = response(call, "user_name");
        int r;

        if (!a)
                return input_required(call, json_pack("{s:o}", "user_name", ask_name("What is your name?")), NULL, 0, ret);
        r = work(call, TASK_WORK_MS, ret);
        if (r != 0)
                return r < 0 ? r : 0;
        return text(ret, "Hello, %s! The task is done.", answered(a, "name") ?: "stranger");
}

static const char *conformance_task_support(const char *tool) {
        static const struct { const char *tool, *support; } table[] = {
                { "slow_compute", "optional" }, { "confirm_delete", "optional" }, { "multi_input", "optional" },
                { "protocol_error_job", "optional" }, { "failing_job", "required" },
                { "test_tool_with_task", "required" },
        };

        for (size_t i = 0; i < ELEMENTSOF(table); i++)
                if (streq(table[i].tool, tool))
                        return table[i].support;
        return NULL;
}

/* JSON Schema 2020-12 keywords a host must see unchanged ($defs with $anchor, $ref, allOf/anyOf,
 * if/then/else). Bastion cannot enforce them, so the tool is listed but never runs. */
#define SCHEMA_2020_12 \
        "{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\",\"type\":\"object\"," \
        "\"$defs\":{\"address\":{\"$anchor\":\"addressDef\",\"type\":\"object\",\"properties\":" \
        "{\"street\":{\"type\":\"string\"},\"city\":{\"type\":\"string\"}}}}," \
        "\"properties\":{\"name\":{\"type\":\"string\"},\"address\":{\"$ref\":\"#/$defs/address\"}," \
        "\"contactMethod\":{\"type\":\"string\",\"enum\":[\"phone\",\"email\"]},\"phone\":{\"type\":\"string\"}," \
        "\"email\":{\"type\":\"string\"}},\"allOf\":[{\"anyOf\":[{\"required\":[\"phone\"]},{\"required\":[\"email\"]}]}]," \
        "\"if\":{\"properties\":{\"contactMethod\":{\"const\":\"phone\"}},\"required\":[\"contactMethod\"]}," \
        "\"then\":{\"required\":[\"phone\"]},\"else\":{\"required\":[\"email\"]},\"additionalProperties\":false}"

static const struct tool conformance_tools[] = {
        { "test_simple_text", "Simple text", "Returns a simple text response", NO_ARGS, NULL,
          true, false, true, false, t_simple_text },
        { "test_image_content", "Image", "Returns an image", NO_ARGS, NULL, true, false, true, false, t_image },
        { "test_audio_content", "Audio", "Returns audio", NO_ARGS, NULL, true, false, true, false, t_audio },
        { "test_embedded_resource", "Embedded resource", "Returns an embedded resource", NO_ARGS, NULL,
          true, false, true, false, t_embedded },
        { "test_multiple_content_types", "Mixed content", "Returns text, an image and a resource", NO_ARGS, NULL,
          true, false, true, false, t_mixed },
        { "test_error_handling", "Error", "Always answers with a tool error", NO_ARGS, NULL,
          true, false, true, false, t_error },
        { "test_tool_with_progress", "Progress", "Reports progress 0, 50 and 100 of 100", NO_ARGS, NULL,
          true, false, true, false, t_progress },
        { "test_tool_with_logging", "Logging", "Sends three log messages while it runs", NO_ARGS, NULL,
          true, false, true, false, t_logging },
        { "test_logging_tool", "Logging (2026-07-28)", "Sends log messages, which only a request with a log level "
          "receives", NO_ARGS, NULL, true, false, true, false, t_logging },
        { "test_sampling", "Sampling", "Asks the client's model to complete a prompt",
          "{\"type\":\"object\",\"properties\":{\"prompt\":{\"type\":\"string\",\"description\":\"The prompt to "
          "send to the LLM\"}},\"required\":[\"prompt\"]}", NULL, true, false, false, true, t_sampling },
        { "test_elicitation", "Elicitation", "Asks the user for a username and an email address",
          "{\"type\":\"object\",\"properties\":{\"message\":{\"type\":\"string\",\"description\":\"The message to "
          "show the user\"}},\"required\":[\"message\"]}", NULL, true, false, false, true, t_elicitation },
        { "test_elicitation_sep1034_defaults", "Elicitation defaults", "Asks with defaults for every primitive type",
          NO_ARGS, NULL, true, false, false, true, t_elicitation_defaults },
        { "test_elicitation_sep1330_enums", "Elicitation enums", "Asks with the five enum shapes", NO_ARGS, NULL,
          true, false, false, true, t_elicitation_enums },
        { "test_missing_capability", "Missing capability", "Refuses a client that did not declare sampling",
          NO_ARGS, NULL, true, false, true, false, t_missing_capability },
        { "test_streaming_elicitation", "Streaming elicitation", "Asks through the result, never on the stream",
          NO_ARGS, NULL, true, false, true, false, t_streaming_elicitation },
        { "test_input_required_result_elicitation", "Input required: elicitation", "Asks the user's name",
          NO_ARGS, NULL, true, false, true, false, t_irr_elicitation },
        { "test_input_required_result_sampling", "Input required: sampling", "Asks the client's model",
          NO_ARGS, NULL, true, false, true, false, t_irr_sampling },
        { "test_input_required_result_list_roots", "Input required: roots", "Asks the client's roots",
          NO_ARGS, NULL, true, false, true, false, t_irr_list_roots },
        { "test_input_required_result_request_state", "Input required: state", "Round-trips a requestState",
          NO_ARGS, NULL, true, false, true, false, t_irr_request_state },
        { "test_input_required_result_multiple_inputs", "Input required: several", "Asks three things at once",
          NO_ARGS, NULL, true, false, true, false, t_irr_multiple },
        { "test_input_required_result_multi_round", "Input required: rounds", "Asks in two rounds",
          NO_ARGS, NULL, true, false, true, false, t_irr_multi_round },
        { "test_input_required_result_tampered_state", "Input required: integrity", "Refuses a forged requestState",
          NO_ARGS, NULL, true, false, true, false, t_irr_tampered },
        { "test_input_required_result_capabilities", "Input required: capabilities", "Asks only what the client "
          "declared it can answer", NO_ARGS, NULL, true, false, true, false, t_irr_capabilities },
        { "json_schema_2020_12_tool", "JSON Schema 2020-12", "Tool with JSON Schema 2020-12 features", SCHEMA_2020_12,
          NULL, true, false, true, false, NULL },
        { "test_custom_headers", "Custom headers", "Arguments mirrored in Mcp-Param-* headers (SEP-2243)",
          "{\"type\":\"object\",\"properties\":{\"region\":{\"type\":\"string\",\"x-mcp-header\":\"Region\"},"
          "\"priority\":{\"type\":\"integer\",\"x-mcp-header\":\"Priority\"},\"query\":{\"type\":\"string\"}},"
          "\"required\":[\"region\"]}", NULL, true, false, true, false, t_custom_headers },
        { "greet", "Greet", "Greets by name, synchronously",
          "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"}},\"required\":[\"name\"]}", NULL,
          true, false, true, false, t_greet },
        { "slow_compute", "Slow computation", "Works for the given number of seconds (may run as a task)",
          "{\"type\":\"object\",\"properties\":{\"seconds\":{\"type\":\"number\",\"minimum\":0,\"maximum\":3600},\"label\":{\"type\":\"string\"}},\"required\":[\"seconds\"]}", NULL,
          true, false, true, false, t_slow_compute },
        { "confirm_delete", "Confirm a deletion", "Asks the user before it (pretends to) delete a file",
          "{\"type\":\"object\",\"properties\":{\"filename\":{\"type\":\"string\"}},\"required\":[\"filename\"]}",
          NULL, true, false, true, false, t_confirm_delete },
        { "multi_input", "Two questions", "Asks two things at once", NO_ARGS, NULL, true, false, true, false,
          t_multi_input },
        { "failing_job", "Failing job", "Works a second, then answers with a tool error; only as a task", NO_ARGS,
          NULL, true, false, true, false, t_failing_job },
        { "protocol_error_job", "Crashing job", "Works a second, then fails with a JSON-RPC error", NO_ARGS, NULL,
          true, false, true, false, t_protocol_error_job },
        { "test_tool_with_task", "Ask, then a task", "Asks a name synchronously, then works as a task", NO_ARGS,
          NULL, true, false, true, false, t_tool_with_task },
};

/* ---- resources ---- */

#define TEMPLATE_PREFIX "test://template/"
#define TEMPLATE_SUFFIX "/data"

static int conformance_resources_list(void *state, const struct worker_principal *p, json_t *resources) {
        json_t *list = json_pack(
                "[{s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}]",
                "uri", "test://static-text", "name", "static-text", "description", "A static text resource",
                "mimeType", "text/plain",
                "uri", "test://static-binary", "name", "static-binary", "description", "A static binary resource "
                "(a PNG image)", "mimeType", "image/png",
                "uri", "test://watched-resource", "name", "watched-resource", "description", "A resource to "
                "subscribe to", "mimeType", "text/plain");

        if (!list)
                return -ENOMEM;
        json_array_extend(resources, list);
        json_decref(list);
        return 0;
}

/* The {id} of test://template/{id}/data: one path segment, not empty. */
static char *template_id(const char *uri) {
        size_t n, s = strlen(TEMPLATE_SUFFIX);

        if (strncmp(uri, TEMPLATE_PREFIX, strlen(TEMPLATE_PREFIX)) != 0)
                return NULL;
        uri += strlen(TEMPLATE_PREFIX);
        n = strlen(uri);
        if (n <= s || !streq(uri + n - s, TEMPLATE_SUFFIX) || memchr(uri, '/', n - s))
                return NULL;
        return strndup(uri, n - s);
}

static int conformance_resource_read(void *state, const struct worker_principal *p, const char *uri,
                                     json_t **ret_contents) {
        _cleanup_free_ char *id = NULL, *data = NULL;
        _cleanup_json_ json_t *doc = NULL;

        if (streq(uri, "test://static-text"))
                *ret_contents = json_pack("[{s:s, s:s, s:s}]", "uri", uri, "mimeType", "text/plain",
                                          "text", "This is the content of the static text resource.");
        else if (streq(uri, "test://static-binary"))
                *ret_contents = json_pack("[{s:s, s:s, s:s}]", "uri", uri, "mimeType", "image/png", "blob", PNG_1X1);
        else if (streq(uri, "test://watched-resource"))
                *ret_contents = json_pack("[{s:s, s:s, s:s}]", "uri", uri, "mimeType", "text/plain",
                                          "text", "This resource can be watched for changes.");
        else if ((id = template_id(uri))) {
                doc = json_pack("{s:s, s:b, s:s+}", "id", id, "templateTest", 1, "data", "Data for ID: ", id);
                data = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
                *ret_contents = data ? json_pack("[{s:s, s:s, s:s}]", "uri", uri, "mimeType", "application/json",
                                                 "text", data) : NULL;
        } else
                return -ENOENT;
        return *ret_contents ? 0 : -ENOMEM;
}

static const char templates[] =
        "[{\"uriTemplate\":\"test://template/{id}/data\",\"name\":\"template-data\","
        "\"description\":\"Data for one ID (the ID is substituted)\",\"mimeType\":\"application/json\"}]";

/* ---- prompts ---- */

static int p_simple(struct prompt_call *call, json_t **ret) {
        *ret = json_pack("{s:[{s:s, s:{s:s, s:s}}]}", "messages", "role", "user", "content", "type", "text",
                         "text", "This is a simple prompt for testing.");
        return *ret ? 0 : -ENOMEM;
}

static int p_arguments(struct prompt_call *call, json_t **ret) {
        const char *a1 = json_string_value(json_object_get(call->arguments, "arg1"));
        const char *a2 = json_string_value(json_object_get(call->arguments, "arg2"));
        _cleanup_free_ char *s = NULL;

        if (!a1 || !a2)
                return -EINVAL;
        if (asprintf(&s, "Prompt with arguments: arg1='%s', arg2='%s'", a1, a2) < 0)
                return -ENOMEM;
        *ret = json_pack("{s:[{s:s, s:{s:s, s:s}}]}", "messages", "role", "user", "content", "type", "text", "text", s);
        return *ret ? 0 : -ENOMEM;
}

static int p_embedded(struct prompt_call *call, json_t **ret) {
        const char *uri = json_string_value(json_object_get(call->arguments, "resourceUri"));

        if (!uri)
                return -EINVAL;
        *ret = json_pack("{s:[{s:s, s:{s:s, s:{s:s, s:s, s:s}}}, {s:s, s:{s:s, s:s}}]}", "messages",
                         "role", "user", "content", "type", "resource", "resource", "uri", uri, "mimeType", "text/plain",
                         "text", "Embedded resource content for testing.",
                         "role", "user", "content", "type", "text", "text", "Please process the embedded resource above.");
        return *ret ? 0 : -ENOMEM;
}

static int p_image(struct prompt_call *call, json_t **ret) {
        *ret = json_pack("{s:[{s:s, s:{s:s, s:s, s:s}}, {s:s, s:{s:s, s:s}}]}", "messages",
                         "role", "user", "content", "type", "image", "data", PNG_1X1, "mimeType", "image/png",
                         "role", "user", "content", "type", "text", "text", "Please analyze the image above.");
        return *ret ? 0 : -ENOMEM;
}

static int p_input_required(struct prompt_call *call, json_t **ret) {
        const json_t *a = json_object_get(json_object_get(call->params, "inputResponses"), "user_context");
        const char *context = json_string_value(json_object_get(json_object_get(a, "content"), "context"));

        if (!json_is_object(a)) {
                *ret = json_pack("{s:s, s:{s:o}}", "resultType", "input_required", "inputRequests", "user_context",
                                 ask_field("What context should the prompt use?", "context", "string"));
                return *ret ? 0 : -ENOMEM;
        }
        *ret = json_pack("{s:[{s:s, s:{s:s, s:s+}}]}", "messages", "role", "user", "content", "type", "text",
                         "text", "Use this context: ", context ? context : "(none)");
        return *ret ? 0 : -ENOMEM;
}

static const struct prompt conformance_prompts[] = {
        { "test_simple_prompt", "Simple prompt", "A simple prompt without arguments", NULL, p_simple },
        { "test_prompt_with_arguments", "Prompt with arguments", "A prompt with two required arguments",
          "[{\"name\":\"arg1\",\"description\":\"First test argument\",\"required\":true},"
          "{\"name\":\"arg2\",\"description\":\"Second test argument\",\"required\":true}]", p_arguments },
        { "test_prompt_with_embedded_resource", "Prompt with a resource", "A prompt that embeds a resource",
          "[{\"name\":\"resourceUri\",\"description\":\"URI of the resource to embed\",\"required\":true}]",
          p_embedded },
        { "test_prompt_with_image", "Prompt with an image", "A prompt that carries an image", NULL, p_image },
        { "test_input_required_result_prompt", "Prompt that asks", "Asks the user for context first (2026-07-28)",
          NULL, p_input_required },
};

/* ---- completion ---- */

static int conformance_complete(void *state, const json_t *ref, const char *argument, const char *value,
                                json_t **ret_values) {
        static const char *const words[] = { "paris", "park", "party", "hello", "world", "123" };
        const char *type = json_string_value(json_object_get(ref, "type"));
        const char *name = json_string_value(json_object_get(ref, "name"));
        const char *uri = json_string_value(json_object_get(ref, "uri"));
        bool known = false;

        if (streq(type, "ref/prompt"))
                for (size_t i = 0; i < ELEMENTSOF(conformance_prompts); i++)
                        known = known || streq(conformance_prompts[i].name, name);
        else
                known = streq(uri, "test://template/{id}/data");
        if (!known)
                return -ENOENT;
        *ret_values = json_array();
        if (!*ret_values)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(words); i++)
                if (strncmp(words[i], value, strlen(value)) == 0)
                        json_array_append_new(*ret_values, json_string(words[i]));
        return 0;
}

const struct domain conformance_domain = {
        .name = "conformance",
        .server_name = "bastion-conformance",
        .open = conformance_open,
        .close = conformance_close,
        .tools = conformance_tools,
        .n_tools = ELEMENTSOF(conformance_tools),
        .resources_list = conformance_resources_list,
        .resource_read = conformance_resource_read,
        .resource_templates = templates,
        .prompts = conformance_prompts,
        .n_prompts = ELEMENTSOF(conformance_prompts),
        .complete = conformance_complete,
        .task_support = conformance_task_support,
        .logging = true,
        .subscribe = true,
};
