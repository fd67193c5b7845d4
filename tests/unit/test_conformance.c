/* The worker skeleton's prompts, completion, logging, subscriptions and requests to the client, on the
 * real conformance domain in process: replies are taken from the server's output queue, and what the
 * "client" answers a worker request is written beforehand into the socket the worker reads. */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"
#include "workers/worker.h"

static void *state;
static struct mcp_server server;
static int peer = -1;   /* the client's end of the worker's input */

static void setup(void) {
        int sv[2];

        cr_assert_eq(conformance_domain.open("/nonexistent/conformance.db", false, &state), 0);
        cr_assert_eq(mcp_server_init(&server, &conformance_domain, state, -1), 0);
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        server.in_fd = sv[0];
        peer = sv[1];
}

static void teardown(void) {
        close(server.in_fd);
        if (peer >= 0)
                close(peer);
        mcp_server_done(&server);
        conformance_domain.close(state);
}

TestSuite(conformance, .init = setup, .fini = teardown);

/* Feeds one line and returns every message queued since, as a JSON array. */
static json_t *send_line(const char *line) {
        struct outbuf *ob = &server.out;
        json_t *out = json_array();
        size_t i = 0;

        cr_assert_eq(linebuf_feed(&server.in, line, strlen(line)), 0);
        cr_assert_eq(linebuf_feed(&server.in, "\n", 1), 0);
        cr_assert_eq(mcp_server_process(&server), 0);
        while (i < ob->len) {
                const char *l = ob->buf + ob->start + i;
                const char *nl = memchr(l, '\n', ob->len - i);
                json_t *v;

                cr_assert_not_null(nl);
                v = json_loadb(l, nl - l, 0, NULL);
                cr_assert_not_null(v, "not JSON: %.*s", (int) (nl - l), l);
                json_array_append_new(out, v);
                i += nl - l + 1;
        }
        ob->start = ob->len = 0;
        return out;
}

static void client_writes(const char *text) {
        cr_assert_eq(write(peer, text, strlen(text)), (ssize_t) strlen(text));
}

static void assert_json(const json_t *got, const char *expected) {
        _cleanup_json_ json_t *want = json_loads(expected, 0, NULL);
        _cleanup_free_ char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS);

        cr_assert_not_null(want, "bad expectation %s", expected);
        cr_assert(json_equal(got, want), "got %s, expected %s", g, expected);
}

static const char *text_of(const json_t *reply) {
        return json_string_value(json_object_get(json_array_get(json_object_get(json_object_get(reply, "result"),
                                                                                "content"), 0), "text"));
}

#define CAPS(c) "\"_meta\":{\"io.modelcontextprotocol/clientCapabilities\":" c "}"

Test(conformance, initialize_declares_prompts_completions_logging_and_subscriptions) {
        _cleanup_json_ json_t *r = send_line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{}}");

        assert_json(json_object_get(json_object_get(json_array_get(r, 0), "result"), "capabilities"),
                    "{\"tools\":{\"listChanged\":false},\"resources\":{\"listChanged\":false,\"subscribe\":true},"
                    "\"prompts\":{\"listChanged\":false},\"completions\":{},\"logging\":{}}");
}

Test(conformance, a_request_to_the_client_is_tagged_and_what_arrives_meanwhile_is_served_after) {
        _cleanup_json_ json_t *r = NULL;

        client_writes("{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"method\":\"ping\"}\n"
                      "{\"jsonrpc\":\"2.0\",\"id\":99,\"result\":{}}\n"
                      "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"role\":\"assistant\",\"model\":\"m\","
                      "\"content\":{\"type\":\"text\",\"text\":\"Paris\"}}}\n");
        r = send_line("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"test_sampling\","
                      "\"arguments\":{\"prompt\":\"Capital?\"}," CAPS("{\"sampling\":{}}") "}}");
        cr_assert_eq(json_array_size(r), 3);
        assert_json(json_array_get(r, 0), "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"sampling/createMessage\",\"params\":"
                    "{\"messages\":[{\"role\":\"user\",\"content\":{\"type\":\"text\",\"text\":\"Capital?\"}}],"
                    "\"maxTokens\":100,\"_meta\":{\"dev.bastion/related\":7}}}");
        assert_json(json_array_get(r, 1), "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"content\":[{\"type\":\"text\","
                    "\"text\":\"LLM response: Paris\"}]}}");
        /* The ping that arrived during the wait is answered after the call; the stray answer is dropped. */
        assert_json(json_array_get(r, 2), "{\"jsonrpc\":\"2.0\",\"id\":\"p\",\"result\":{}}");
}

Test(conformance, a_client_without_the_capability_is_not_asked) {
        _cleanup_json_ json_t *r = send_line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
                                             "\"test_elicitation\",\"arguments\":{\"message\":\"x\"}," CAPS("{}") "}}");

        cr_assert_eq(json_array_size(r), 1);
        cr_assert(json_is_true(json_object_get(json_object_get(json_array_get(r, 0), "result"), "isError")));
        cr_assert_str_eq(text_of(json_array_get(r, 0)),
                         "This tool needs the client's elicitation capability, which it did not declare");
}

Test(conformance, a_refused_or_lost_request_fails_the_tool_not_the_worker) {
        _cleanup_json_ json_t *r = NULL, *r2 = NULL;

        client_writes("{\"jsonrpc\":\"2.0\",\"id\":1,\"error\":{\"code\":-32021,\"message\":\"no human\"}}\n");
        r = send_line("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"test_elicitation\","
                      "\"arguments\":{\"message\":\"x\"}," CAPS("{\"elicitation\":{}}") "}}");
        cr_assert_eq(json_array_size(r), 2);
        cr_assert_str_eq(text_of(json_array_get(r, 1)), "The client did not answer elicitation/create: no human");
        /* The client goes away while the worker waits: the call still gets its answer. */
        close(peer);
        peer = -1;
        r2 = send_line("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"test_elicitation\","
                       "\"arguments\":{\"message\":\"x\"}," CAPS("{\"elicitation\":{}}") "}}");
        cr_assert_eq(json_array_size(r2), 2);
        cr_assert_str_eq(text_of(json_array_get(r2, 1)),
                         "The client did not answer elicitation/create: the request failed");
}

Test(conformance, log_messages_follow_set_level) {
        _cleanup_json_ json_t *r = NULL, *set = NULL, *r2 = NULL, *bad = NULL;

        r = send_line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"test_tool_with_logging\"}}");
        cr_assert_eq(json_array_size(r), 4);
        assert_json(json_array_get(r, 0), "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":"
                    "{\"level\":\"info\",\"logger\":\"conformance\",\"data\":\"Tool execution started\","
                    "\"_meta\":{\"dev.bastion/related\":1}}}");
        set = send_line("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"logging/setLevel\",\"params\":{\"level\":\"warning\"}}");
        assert_json(set, "[{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{}}]");
        r2 = send_line("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":\"test_tool_with_logging\"}}");
        cr_assert_eq(json_array_size(r2), 1, "info messages are filtered at warning");
        bad = send_line("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"logging/setLevel\",\"params\":{\"level\":\"loud\"}}");
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_array_get(bad, 0), "error"), "code")), -32602);
}

Test(conformance, prompts_need_their_arguments_and_exist_by_name) {
        _cleanup_json_ json_t *ok = NULL, *missing = NULL, *unknown = NULL, *not_string = NULL;

        ok = send_line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"prompts/get\",\"params\":{\"name\":"
                       "\"test_prompt_with_arguments\",\"arguments\":{\"arg1\":\"hello\",\"arg2\":\"world\"}}}");
        assert_json(json_array_get(ok, 0), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"messages\":[{\"role\":\"user\","
                    "\"content\":{\"type\":\"text\",\"text\":\"Prompt with arguments: arg1='hello', arg2='world'\"}}]}}");
        missing = send_line("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"prompts/get\",\"params\":{\"name\":"
                            "\"test_prompt_with_arguments\",\"arguments\":{\"arg1\":\"hello\"}}}");
        unknown = send_line("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"prompts/get\",\"params\":{\"name\":\"nope\"}}");
        not_string = send_line("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"prompts/get\",\"params\":{\"name\":"
                               "\"test_simple_prompt\",\"arguments\":{\"a\":1}}}");
        for (json_t *const *r = (json_t *const[]) { missing, unknown, not_string, NULL }; *r; r++)
                cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_array_get(*r, 0), "error"), "code")),
                             -32602);
}

Test(conformance, completion_and_templates) {
        _cleanup_json_ json_t *c = NULL, *unknown = NULL, *t = NULL, *read = NULL, *bad = NULL;

        c = send_line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"completion/complete\",\"params\":{\"ref\":{\"type\":"
                      "\"ref/prompt\",\"name\":\"test_prompt_with_arguments\"},\"argument\":{\"name\":\"arg1\",\"value\":\"par\"}}}");
        assert_json(json_array_get(c, 0), "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"completion\":{\"values\":"
                    "[\"paris\",\"park\",\"party\"],\"total\":3,\"hasMore\":false}}}");
        unknown = send_line("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"completion/complete\",\"params\":{\"ref\":{\"type\":"
                            "\"ref/prompt\",\"name\":\"nope\"},\"argument\":{\"name\":\"a\",\"value\":\"\"}}}");
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_array_get(unknown, 0), "error"), "code")), -32602);
        t = send_line("{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"resources/templates/list\"}");
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(json_object_get(
                json_array_get(t, 0), "result"), "resourceTemplates"), 0), "uriTemplate")), "test://template/{id}/data");
        read = send_line("{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"resources/read\",\"params\":{\"uri\":"
                         "\"test://template/a%2Fb/data\"}}");
        cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(json_object_get(
                json_array_get(read, 0), "result"), "contents"), 0), "text")),
                "{\"id\":\"a%2Fb\",\"templateTest\":true,\"data\":\"Data for ID: a%2Fb\"}");
        /* {id} is one path segment: anything else is not the template. */
        bad = send_line("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/read\",\"params\":{\"uri\":"
                        "\"test://template/a/b/data\"}}");
        cr_assert_eq(json_integer_value(json_object_get(json_object_get(json_array_get(bad, 0), "error"), "code")), -32002);
}

Test(conformance, updates_go_out_only_for_subscribed_uris) {
        _cleanup_json_ json_t *s = NULL, *u = NULL;

        cr_assert_eq(mcp_server_resource_updated(&server, "test://watched-resource"), 0);
        cr_assert_eq(server.out.len, 0);
        s = send_line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"resources/subscribe\",\"params\":{\"uri\":"
                      "\"test://watched-resource\"}}");
        assert_json(s, "[{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}]");
        cr_assert_eq(mcp_server_resource_updated(&server, "test://watched-resource"), 0);
        cr_assert_gt(server.out.len, 0);
        server.out.start = server.out.len = 0;
        u = send_line("{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"resources/unsubscribe\",\"params\":{\"uri\":"
                      "\"test://watched-resource\"}}");
        cr_assert_eq(mcp_server_resource_updated(&server, "test://watched-resource"), 0);
        cr_assert_eq(server.out.len, 0);
}

Test(conformance, a_list_only_tool_never_runs) {
        _cleanup_json_ json_t *r = send_line("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
                                             "\"json_schema_2020_12_tool\",\"arguments\":{\"email\":\"e\"}}}");

        cr_assert_str_eq(text_of(json_array_get(r, 0)),
                         "Tool json_schema_2020_12_tool cannot be called: its input schema cannot be enforced");
}

Test(conformance, requests_beyond_the_deferral_bound_are_refused_not_lost) {
        _cleanup_json_ json_t *r = NULL;
        char pings[300 * 64];
        size_t errors = 0, pongs = 0, n = 0;

        /* 300 pings arrive while the worker waits; 256 wait their turn, the rest are refused at once. */
        for (int i = 0; i < 300; i++)
                n += snprintf(pings + n, sizeof(pings) - n, "{\"jsonrpc\":\"2.0\",\"id\":%d,\"method\":\"ping\"}\n",
                              1000 + i);
        client_writes(pings);
        client_writes("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"action\":\"decline\"}}\n");
        r = send_line("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"test_elicitation\","
                      "\"arguments\":{\"message\":\"x\"}," CAPS("{\"elicitation\":{}}") "}}");
        for (size_t i = 0; i < json_array_size(r); i++) {
                json_t *m = json_array_get(r, i);
                if (json_object_get(m, "error"))
                        errors++;
                else if (json_integer_value(json_object_get(m, "id")) >= 1000)
                        pongs++;
        }
        cr_assert_eq(errors, 300 - 256);
        cr_assert_eq(pongs, 256);
        cr_assert_str_eq(text_of(json_array_get(r, 1 + errors)), "User response: action=decline, content=null");
}
