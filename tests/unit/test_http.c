/* The front's HTTP/1.1 subset: every request in the table gets its exact verdict whether it arrives
 * whole or byte by byte, parsed fields are what the client sent, and the writers frame correctly. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/param.h>

#include "front/http.h"
#include "front/origin.h"

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))

#define H "Host: a.example\r\n"
#define END "\r\n"

struct verdict_case {
        const char *name;
        const char *req;
        size_t req_len;         /* 0: strlen(req) */
        int want;               /* -status, or 0 for "need more"; > 0 means "consumes all of req" */
};

#define OK 1
/* A literal that holds a NUL, with its real length. */
#define LIT(s) s, sizeof(s) - 1
static const struct verdict_case verdicts[] = {
        { "minimal_get", "GET /mcp HTTP/1.1\r\n" H END, 0, OK },
        { "post_with_body", "POST /mcp/inventory HTTP/1.1\r\n" H "Content-Length: 2\r\n\r\n{}", 0, OK },
        { "delete", "DELETE /mcp/x HTTP/1.1\r\n" H END, 0, OK },
        { "options", "OPTIONS /mcp/x HTTP/1.1\r\n" H END, 0, OK },
        { "ows_around_values_trimmed", "GET / HTTP/1.1\r\nHost: \t a.example \t \r\n\r\n", 0, OK },
        { "content_length_zero_post", "POST /mcp HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n", 0, OK },
        { "content_length_leading_zeros", "POST /mcp HTTP/1.1\r\n" H "Content-Length: 002\r\n\r\n{}", 0, OK },
        { "expect_100_continue", "POST /mcp HTTP/1.1\r\n" H "Expect: 100-Continue\r\nContent-Length: 0\r\n\r\n", 0, OK },
        { "percent_encoding_kept", "GET /a%20b?x=%2F HTTP/1.1\r\n" H END, 0, OK },
        { "dots_inside_a_name_are_fine", "GET /a/..b/c.d/... HTTP/1.1\r\n" H END, 0, OK },
        { "empty_header_value", "GET / HTTP/1.1\r\n" H "X-Empty:\r\n\r\n", 0, OK },
        { "incomplete_head", "GET /mcp HTTP/1.1\r\n" H, 0, 0 },
        { "incomplete_body", "POST /mcp HTTP/1.1\r\n" H "Content-Length: 10\r\n\r\n{}", 0, 0 },
        { "empty_input", "", 0, 0 },
        { "http_1_0", "GET / HTTP/1.0\r\n" H END, 0, -505 },
        { "http_2_0", "GET / HTTP/2.0\r\n" H END, 0, -505 },
        { "lowercase_version", "GET / http/1.1\r\n" H END, 0, -400 },
        { "version_garbage", "GET / HTTP/1.1x\r\n" H END, 0, -400 },
        { "unknown_method_put", "PUT / HTTP/1.1\r\n" H END, 0, -501 },
        { "unknown_method_head", "HEAD / HTTP/1.1\r\n" H END, 0, -501 },
        { "lowercase_method", "get / HTTP/1.1\r\n" H END, 0, -501 },
        { "overlong_method", "ABCDEFGHIJKLMNOPQRSTUVWXYZ / HTTP/1.1\r\n" H END, 0, -501 },
        { "method_with_control_char", "G\x01T / HTTP/1.1\r\n" H END, 0, -400 },
        { "leading_empty_line", "\r\nGET / HTTP/1.1\r\n" H END, 0, -400 },
        { "double_space", "GET  / HTTP/1.1\r\n" H END, 0, -400 },
        { "absolute_form_target", "GET http://a.example/ HTTP/1.1\r\n" H END, 0, -400 },
        { "asterisk_form_target", "OPTIONS * HTTP/1.1\r\n" H END, 0, -400 },
        { "authority_form_target", "GET a.example:443 HTTP/1.1\r\n" H END, 0, -400 },
        { "fragment_in_target", "GET /mcp#x HTTP/1.1\r\n" H END, 0, -400 },
        { "percent_00_in_path", "GET /a%00b HTTP/1.1\r\n" H END, 0, -400 },
        { "percent_00_in_query", "GET /a?b=%00 HTTP/1.1\r\n" H END, 0, -400 },
        { "bad_percent_escape", "GET /a%zz HTTP/1.1\r\n" H END, 0, -400 },
        { "dotdot_segment", "GET /mcp/../etc HTTP/1.1\r\n" H END, 0, -400 },
        { "dot_segment", "GET /mcp/./x HTTP/1.1\r\n" H END, 0, -400 },
        { "encoded_dotdot_segment", "GET /mcp/%2e%2E/x HTTP/1.1\r\n" H END, 0, -400 },
        { "trailing_dotdot", "GET /mcp/.. HTTP/1.1\r\n" H END, 0, -400 },
        { "non_ascii_in_target", "GET /caf\xc3\xa9 HTTP/1.1\r\n" H END, 0, -400 },
        { "target_too_long", NULL, 0, -414 },
        { "missing_host", "GET / HTTP/1.1\r\n\r\n", 0, -400 },
        { "empty_host", "GET / HTTP/1.1\r\nHost:  \r\n\r\n", 0, -400 },
        { "two_hosts", "GET / HTTP/1.1\r\n" H "Host: b.example\r\n\r\n", 0, -400 },
        { "two_origins", "GET / HTTP/1.1\r\n" H "Origin: http://a\r\nOrigin: http://b\r\n\r\n", 0, -400 },
        { "two_authorizations", "GET / HTTP/1.1\r\n" H "Authorization: a\r\nauthorization: b\r\n\r\n", 0, -400 },
        { "duplicate_content_length", "POST / HTTP/1.1\r\n" H "Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 0, -400 },
        { "content_length_plus_sign", "POST / HTTP/1.1\r\n" H "Content-Length: +2\r\n\r\n{}", 0, -400 },
        { "content_length_minus_sign", "POST / HTTP/1.1\r\n" H "Content-Length: -2\r\n\r\n{}", 0, -400 },
        { "content_length_inner_space", "POST / HTTP/1.1\r\n" H "Content-Length: 1 2\r\n\r\n{}", 0, -400 },
        { "content_length_hex", "POST / HTTP/1.1\r\n" H "Content-Length: 0x2\r\n\r\n{}", 0, -400 },
        { "content_length_list", "POST / HTTP/1.1\r\n" H "Content-Length: 2, 2\r\n\r\n{}", 0, -400 },
        { "content_length_empty", "POST / HTTP/1.1\r\n" H "Content-Length:\r\n\r\n", 0, -400 },
        { "post_without_length", "POST / HTTP/1.1\r\n" H END, 0, -411 },
        { "chunked", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 0, -411 },
        { "te_identity", "POST / HTTP/1.1\r\n" H "Transfer-Encoding: identity\r\nContent-Length: 2\r\n\r\n{}", 0, -411 },
        { "te_after_content_length", "POST / HTTP/1.1\r\n" H "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}", 0, -411 },
        { "te_mixed_case_name", "GET / HTTP/1.1\r\n" H "tRaNsFeR-eNcOdInG: gzip\r\n\r\n", 0, -411 },
        { "body_too_large", "POST / HTTP/1.1\r\n" H "Content-Length: 2097152\r\n\r\n", 0, -413 },
        { "content_length_overflow", "POST / HTTP/1.1\r\n" H "Content-Length: 99999999999999999999999999\r\n\r\n", 0, -413 },
        { "expect_other", "POST / HTTP/1.1\r\n" H "Expect: 200-ok\r\nContent-Length: 0\r\n\r\n", 0, -417 },
        { "obs_fold", "GET / HTTP/1.1\r\n" H "X-A: one\r\n two\r\n\r\n", 0, -400 },
        { "obs_fold_tab", "GET / HTTP/1.1\r\n" H "X-A: one\r\n\ttwo\r\n\r\n", 0, -400 },
        { "space_before_colon", "GET / HTTP/1.1\r\nHost : a.example\r\n\r\n", 0, -400 },
        { "empty_header_name", "GET / HTTP/1.1\r\n" H ": x\r\n\r\n", 0, -400 },
        { "header_without_colon", "GET / HTTP/1.1\r\n" H "X-A\r\n\r\n", 0, -400 },
        { "bare_lf_request_line", "GET / HTTP/1.1\n" H END, 0, -400 },
        { "bare_lf_header", "GET / HTTP/1.1\r\nHost: a.example\n\r\n", 0, -400 },
        { "bare_lf_end_of_head", "GET / HTTP/1.1\r\n" H "\n", 0, -400 },
        { "bare_cr_in_value", "GET / HTTP/1.1\r\n" H "X-A: a\rb\r\n\r\n", 0, -400 },
        { "nul_in_value", LIT("GET / HTTP/1.1\r\n" H "X-A: a\0b\r\n\r\n"), -400 },
        { "nul_in_target", LIT("GET /a\0b HTTP/1.1\r\n" H END), -400 },
        { "control_char_in_value", "GET / HTTP/1.1\r\n" H "X-A: a\x1b[31m\r\n\r\n", 0, -400 },
        { "non_ascii_in_value", "GET / HTTP/1.1\r\n" H "X-A: caf\xc3\xa9\r\n\r\n", 0, -400 },
        { "too_many_headers", NULL, 0, -431 },
        { "header_64k", NULL, 0, -431 },
        { "body_2mib", NULL, 0, -413 },
};

/* The cases that need generated bytes; the caller frees. */
static char *make_request(const struct verdict_case *c, size_t *ret_len) {
        char *b = malloc(3 * 1024 * 1024);
        size_t n = 0;

        cr_assert_not_null(b);
        if (c->req) {
                n = c->req_len ? c->req_len : strlen(c->req);
                memcpy(b, c->req, n);
        } else if (strcmp(c->name, "target_too_long") == 0) {
                n = (size_t) sprintf(b, "GET /");
                memset(b + n, 'a', HTTP_MAX_TARGET);
                n += HTTP_MAX_TARGET;
                n += (size_t) sprintf(b + n, " HTTP/1.1\r\n" H END);
        } else if (strcmp(c->name, "too_many_headers") == 0) {
                n = (size_t) sprintf(b, "GET / HTTP/1.1\r\n" H);
                for (int i = 0; i < 100; i++)
                        n += (size_t) sprintf(b + n, "X-H%d: %d\r\n", i, i);
                n += (size_t) sprintf(b + n, END);
        } else if (strcmp(c->name, "header_64k") == 0) {
                n = (size_t) sprintf(b, "GET / HTTP/1.1\r\n" H "X-Big: ");
                memset(b + n, 'x', 64 * 1024);
                n += 64 * 1024;
                n += (size_t) sprintf(b + n, "\r\n\r\n");
        } else if (strcmp(c->name, "body_2mib") == 0) {
                n = (size_t) sprintf(b, "POST /mcp HTTP/1.1\r\n" H "Content-Length: %d\r\n\r\n", 2 * 1024 * 1024);
                memset(b + n, '{', 2 * 1024 * 1024);
                n += 2 * 1024 * 1024;
        }
        *ret_len = n;
        return b;
}

static int expected(const struct verdict_case *c, size_t len) {
        return c->want == OK ? (int) len : c->want;
}

static struct http_request req;

/* Criterion runs each parameter in a fresh exec of this binary, where pointers from the parent are
 * stale: the parameter is an index into the table. */
static size_t *case_indices(size_t *ret_n) {
        static size_t idx[ELEMENTSOF(verdicts)];

        for (size_t i = 0; i < ELEMENTSOF(verdicts); i++)
                idx[i] = i;
        *ret_n = ELEMENTSOF(verdicts);
        return idx;
}

ParameterizedTestParameters(http, verdict_whole) {
        size_t n, *idx = case_indices(&n);
        return cr_make_param_array(size_t, idx, n);
}

ParameterizedTest(size_t *i, http, verdict_whole) {
        const struct verdict_case *c = &verdicts[*i];
        size_t len;
        char *b = make_request(c, &len);

        cr_assert_eq(http_parse_request(b, len, NULL, &req), expected(c, len), "%s", c->name);
        free(b);
}

/* Fed one byte more at a time, a request gets "need more" until the byte that decides it, then exactly
 * the verdict it gets whole. */
ParameterizedTestParameters(http, verdict_byte_by_byte) {
        size_t n, *idx = case_indices(&n);
        return cr_make_param_array(size_t, idx, n);
}

ParameterizedTest(size_t *i, http, verdict_byte_by_byte) {
        const struct verdict_case *c = &verdicts[*i];
        size_t len, n;
        char *b = make_request(c, &len);
        int r = 0, want = expected(c, len);

        /* Bodies are not scanned; stepping a byte at a time through 2 MiB only tests memcmp. */
        for (n = 0; n <= MIN(len, (size_t) 80 * 1024) && r == 0; n++)
                r = http_parse_request(b, n, NULL, &req);
        if (c->want == OK)
                cr_assert_eq(n, len + 1, "%s decided early at %zu", c->name, n - 1);
        /* 413 is decided at the end of the Content-Length line, before the blank line and the body. */
        if (len > 80 * 1024)
                cr_assert_eq(n - 1, len - 2 * 1024 * 1024 - 2);
        cr_assert_eq(r, want, "%s: %d byte by byte, %d whole", c->name, r, want);
        free(b);
}

Test(http, parses_fields_of_an_mcp_post) {
        static const char r[] =
                "POST /mcp/inventory?x=1 HTTP/1.1\r\n"
                "Host: 127.0.0.1:8443\r\n"
                "Origin: http://127.0.0.1:8443\r\n"
                "Content-Type: application/json\r\n"
                "Accept: application/json, text/event-stream\r\n"
                "Authorization: Bearer eyJ.abc.def\r\n"
                "MCP-Session-Id: 0123abcd\r\n"
                "MCP-Protocol-Version: 2026-07-28\r\n"
                "Mcp-Method: tools/call\r\n"
                "Mcp-Name: list_items\r\n"
                "Last-Event-ID: 7\r\n"
                "Mcp-Param-Region: EU west\r\n"
                "Content-Length: 17\r\n"
                "\r\n"
                "{\"jsonrpc\":\"2.0\"}";

        cr_assert_eq(http_parse_request(r, sizeof(r) - 1, NULL, &req), (int) sizeof(r) - 1);
        cr_assert_eq(req.method, HTTP_POST);
        cr_assert_str_eq(req.path, "/mcp/inventory");
        cr_assert_str_eq(req.query, "x=1");
        cr_assert_str_eq(req.host, "127.0.0.1:8443");
        cr_assert_str_eq(req.origin, "http://127.0.0.1:8443");
        cr_assert_str_eq(req.content_type, "application/json");
        cr_assert_str_eq(req.accept, "application/json, text/event-stream");
        cr_assert_str_eq(req.authorization, "Bearer eyJ.abc.def");
        cr_assert_str_eq(req.mcp_session_id, "0123abcd");
        cr_assert_str_eq(req.mcp_protocol_version, "2026-07-28");
        cr_assert_str_eq(req.mcp_method, "tools/call");
        cr_assert_str_eq(req.mcp_name, "list_items");
        cr_assert_str_eq(req.last_event_id, "7");
        cr_assert_null(req.connection);
        cr_assert(req.has_content_length);
        cr_assert_eq(req.content_length, 17);
        cr_assert_eq(req.body_len, 17);
        cr_assert_eq(memcmp(req.body, "{\"jsonrpc\":\"2.0\"}", 17), 0);
        cr_assert_eq(req.body, r + req.head_len);
        cr_assert(req.keep_alive);
        cr_assert_eq(req.n_headers, 12);
        cr_assert_str_eq(req.headers[10].name, "mcp-param-region");
        cr_assert_str_eq(http_request_header(&req, "MCP-PARAM-REGION"), "EU west");
        cr_assert_null(http_request_header(&req, "x-absent"));
}

/* Captured from the official TypeScript SDK client (1.32.2, Node 20 fetch) connecting to /mcp/inventory:
 * the strict subset must take what real clients send. */
Test(http, real_sdk_client_initialize_is_accepted) {
        static const char body[] = "{\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\","
                "\"capabilities\":{},\"clientInfo\":{\"name\":\"cap\",\"version\":\"1\"}},\"jsonrpc\":\"2.0\",\"id\":0}";
        static const char r[] =
                "POST /mcp/inventory HTTP/1.1\r\n"
                "host: 127.0.0.1:18931\r\n"
                "connection: keep-alive\r\n"
                "Authorization: Bearer abc.def.ghi\r\n"
                "content-type: application/json\r\n"
                "accept: application/json, text/event-stream\r\n"
                "accept-language: *\r\n"
                "sec-fetch-mode: cors\r\n"
                "user-agent: node\r\n"
                "accept-encoding: gzip, deflate\r\n"
                "content-length: 148\r\n"
                "\r\n"
                "{\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\","
                "\"capabilities\":{},\"clientInfo\":{\"name\":\"cap\",\"version\":\"1\"}},\"jsonrpc\":\"2.0\",\"id\":0}";

        cr_assert_eq(strlen(body), 148);
        cr_assert_eq(http_parse_request(r, strlen(r), NULL, &req), (int) strlen(r));
        cr_assert_eq(req.method, HTTP_POST);
        cr_assert_str_eq(req.path, "/mcp/inventory");
        cr_assert_str_eq(req.host, "127.0.0.1:18931");
        cr_assert_str_eq(req.authorization, "Bearer abc.def.ghi");
        cr_assert_str_eq(req.accept, "application/json, text/event-stream");
        cr_assert(req.keep_alive);
        cr_assert_eq(req.body_len, 148);
        cr_assert_eq(memcmp(req.body, body, 148), 0);
}

Test(http, fields_survive_the_buffer_being_overwritten) {
        char b[] = "GET /mcp HTTP/1.1\r\nHost: a.example\r\nOrigin: http://a.example\r\n\r\n";

        cr_assert_eq(http_parse_request(b, strlen(b), NULL, &req), (int) strlen(b));
        memset(b, 'Z', sizeof(b));
        cr_assert_str_eq(req.path, "/mcp");
        cr_assert_null(req.query);
        cr_assert_str_eq(req.host, "a.example");
        cr_assert_str_eq(req.origin, "http://a.example");
}

Test(http, empty_query_is_not_absent) {
        static const char r[] = "GET /mcp? HTTP/1.1\r\n" H END;

        cr_assert_gt(http_parse_request(r, strlen(r), NULL, &req), 0);
        cr_assert_str_eq(req.path, "/mcp");
        cr_assert_str_eq(req.query, "");
}

Test(http, pipelined_requests_are_parsed_one_after_another) {
        static const char r[] =
                "POST /mcp/a HTTP/1.1\r\n" H "Content-Length: 2\r\n\r\n{}"
                "POST /mcp/b HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\n[1]"
                "GET /nope HTTP/1.1\r\n" H "Connection: close\r\n\r\n"
                "GET /partial HT";
        size_t off = 0, len = strlen(r);
        int n;

        n = http_parse_request(r + off, len - off, NULL, &req);
        cr_assert_gt(n, 0);
        cr_assert_str_eq(req.path, "/mcp/a");
        cr_assert_eq(memcmp(req.body, "{}", 2), 0);
        off += (size_t) n;
        n = http_parse_request(r + off, len - off, NULL, &req);
        cr_assert_gt(n, 0);
        cr_assert_str_eq(req.path, "/mcp/b");
        cr_assert_eq(req.body_len, 3);
        cr_assert_eq(memcmp(req.body, "[1]", 3), 0);
        off += (size_t) n;
        n = http_parse_request(r + off, len - off, NULL, &req);
        cr_assert_gt(n, 0);
        cr_assert_eq(req.method, HTTP_GET);
        cr_assert_str_eq(req.path, "/nope");
        cr_assert_not(req.keep_alive);
        off += (size_t) n;
        cr_assert_eq(http_parse_request(r + off, len - off, NULL, &req), 0);
        cr_assert_str_eq(r + off, "GET /partial HT");
}

Test(http, keep_alive_per_rfc9112) {
        static const char *const closes[] = { "close", "Close", "keep-alive, close", "foo ,CLOSE , bar" };
        static const char *const keeps[] = { "keep-alive", "closed", "upgrade", "" };
        char r[256];

        for (size_t i = 0; i < 4; i++) {
                snprintf(r, sizeof(r), "GET / HTTP/1.1\r\n" H "Connection: %s\r\n\r\n", closes[i]);
                cr_assert_gt(http_parse_request(r, strlen(r), NULL, &req), 0);
                cr_assert_not(req.keep_alive, "%s", closes[i]);
                snprintf(r, sizeof(r), "GET / HTTP/1.1\r\n" H "Connection: %s\r\n\r\n", keeps[i]);
                cr_assert_gt(http_parse_request(r, strlen(r), NULL, &req), 0);
                cr_assert(req.keep_alive, "%s", keeps[i]);
        }
}

Test(http, token_in_query_string_is_detectable) {
        static const char r[] = "POST /mcp/payments?foo=1&access_%74oken=eyJ HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n";

        cr_assert_gt(http_parse_request(r, strlen(r), NULL, &req), 0);
        cr_assert_str_eq(req.query, "foo=1&access_%74oken=eyJ");
        cr_assert(http_query_has_param(req.query, "access_token"));
        cr_assert(http_query_has_param("access_token", "access_token"));
        cr_assert(http_query_has_param("a=1&access_token=", "access_token"));
        cr_assert_not(http_query_has_param("access_tokens=1", "access_token"));
        cr_assert_not(http_query_has_param("x=access_token", "access_token"));
        cr_assert_not(http_query_has_param("access_toke", "access_token"));
        cr_assert_not(http_query_has_param(NULL, "access_token"));
}

Test(http, header_names_lowercased_values_kept) {
        static const char r[] = "GET / HTTP/1.1\r\nHOST: A.Example\r\nX-Mixed-Case: VaLuE\r\n\r\n";

        cr_assert_gt(http_parse_request(r, strlen(r), NULL, &req), 0);
        cr_assert_str_eq(req.headers[0].name, "host");
        cr_assert_str_eq(req.host, "A.Example");
        cr_assert_str_eq(req.headers[1].name, "x-mixed-case");
        cr_assert_str_eq(req.headers[1].value, "VaLuE");
}

Test(http, parse_head_completes_before_the_body_for_100_continue) {
        static const char r[] = "POST /mcp HTTP/1.1\r\n" H "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n";

        cr_assert_eq(http_parse_request(r, strlen(r), NULL, &req), 0);
        cr_assert_eq(http_parse_head(r, strlen(r), NULL, &req), (int) strlen(r));
        cr_assert(req.expect_continue);
        cr_assert_eq(req.content_length, 5);
        cr_assert_null(req.body);
}

Test(http, limits_can_be_lowered) {
        struct http_limits lim = HTTP_LIMITS_DEFAULT;
        static const char r[] = "POST /abcdef HTTP/1.1\r\n" H "X-A: 1\r\nContent-Length: 10\r\n\r\n0123456789";

        cr_assert_gt(http_parse_request(r, strlen(r), &lim, &req), 0);
        lim.max_body = 9;
        cr_assert_eq(http_parse_request(r, strlen(r), &lim, &req), -413);
        lim = HTTP_LIMITS_DEFAULT;
        lim.max_target = 6;
        cr_assert_eq(http_parse_request(r, strlen(r), &lim, &req), -414);
        lim = HTTP_LIMITS_DEFAULT;
        lim.max_headers = 2;
        cr_assert_eq(http_parse_request(r, strlen(r), &lim, &req), -431);
        lim = HTTP_LIMITS_DEFAULT;
        lim.max_head = 40;
        cr_assert_eq(http_parse_request(r, strlen(r), &lim, &req), -431);
        /* …and never raised past the compiled ceiling. */
        lim = HTTP_LIMITS_DEFAULT;
        lim.max_body = 100 * 1024 * 1024;
        static const char big[] = "POST / HTTP/1.1\r\n" H "Content-Length: 2000000\r\n\r\n";
        cr_assert_eq(http_parse_request(big, strlen(big), &lim, &req), -413);
}

Test(http, header_at_the_exact_limit_is_accepted) {
        struct http_limits lim = HTTP_LIMITS_DEFAULT;
        static const char r[] = "GET / HTTP/1.1\r\n" H END;

        lim.max_head = strlen(r);
        cr_assert_eq(http_parse_request(r, strlen(r), &lim, &req), (int) strlen(r));
        lim.max_head = strlen(r) - 1;
        cr_assert_eq(http_parse_request(r, strlen(r), &lim, &req), -431);
}

static char *ob_str(struct outbuf *ob) {
        char *s = strndup(ob->buf + ob->start, ob->len);
        cr_assert_not_null(s);
        return s;
}

Test(http_write, response_with_body_and_close) {
        struct outbuf ob;
        struct http_header h[] = { { "Content-Type", "application/json" } };
        char *s;

        outbuf_init(&ob, 1 << 20);
        cr_assert_eq(http_write_response(&ob, 200, h, 1, "{}", 2, true), 0);
        cr_assert_eq(http_write_response(&ob, 413, NULL, 0, NULL, 0, false), 0);
        s = ob_str(&ob);
        cr_assert_str_eq(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
                            "HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        free(s);
        outbuf_done(&ob);
}

Test(http_write, interim_and_no_content_responses_have_no_length) {
        struct outbuf ob;
        char *s;

        outbuf_init(&ob, 1 << 20);
        cr_assert_eq(http_write_response(&ob, 100, NULL, 0, NULL, 0, false), 0);
        cr_assert_eq(http_write_response(&ob, 204, NULL, 0, NULL, 0, true), 0);
        cr_assert_eq(http_write_response(&ob, 202, NULL, 0, NULL, 0, true), 0);
        cr_assert_eq(http_write_response(&ob, 204, NULL, 0, "x", 1, true), -EINVAL);
        s = ob_str(&ob);
        cr_assert_str_eq(s, "HTTP/1.1 100 Continue\r\n\r\n"
                            "HTTP/1.1 204 No Content\r\n\r\n"
                            "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
        free(s);
        outbuf_done(&ob);
}

Test(http_write, refuses_response_splitting_and_framing_headers) {
        struct outbuf ob;
        struct http_header split[] = { { "X-A", "a\r\nSet-Cookie: x" } };
        struct http_header lf[] = { { "X-A", "a\nb" } };
        struct http_header name[] = { { "X A", "a" } };
        struct http_header cl[] = { { "content-length", "5" } };
        struct http_header te[] = { { "Transfer-Encoding", "chunked" } };

        outbuf_init(&ob, 1 << 20);
        cr_assert_eq(http_write_response(&ob, 200, split, 1, NULL, 0, true), -EINVAL);
        cr_assert_eq(http_write_response(&ob, 200, lf, 1, NULL, 0, true), -EINVAL);
        cr_assert_eq(http_write_response(&ob, 200, name, 1, NULL, 0, true), -EINVAL);
        cr_assert_eq(http_write_response(&ob, 200, cl, 1, NULL, 0, true), -EINVAL);
        cr_assert_eq(http_write_sse_head(&ob, 200, te, 1, true), -EINVAL);
        cr_assert_eq(http_write_response(&ob, 299, NULL, 0, NULL, 0, true), -EINVAL);
        cr_assert_eq(ob.len, 0, "nothing is queued for a refused response");
        outbuf_done(&ob);
}

Test(http_write, sse_stream_is_chunked_and_framed) {
        struct outbuf ob, ev;
        struct http_header h[] = { { "Mcp-Session-Id", "abc" } };
        char *s;

        outbuf_init(&ob, 1 << 20);
        outbuf_init(&ev, 1 << 20);
        cr_assert_eq(http_write_sse_head(&ob, 200, h, 1, true), 0);
        cr_assert_eq(sse_format_event(&ev, "message", "1", "{\"a\":1}", 7), 0);
        cr_assert_eq(http_write_chunk(&ob, ev.buf + ev.start, ev.len), 0);
        cr_assert_eq(http_write_chunk_end(&ob), 0);
        s = ob_str(&ob);
        cr_assert_str_eq(s, "HTTP/1.1 200 OK\r\nMcp-Session-Id: abc\r\nContent-Type: text/event-stream\r\n"
                            "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n\r\n"
                            "24\r\nevent: message\nid: 1\ndata: {\"a\":1}\n\n\r\n0\r\n\r\n");
        free(s);
        outbuf_done(&ob);
        outbuf_done(&ev);
}

Test(http_write, sse_data_lines_split_at_every_line_ending) {
        struct outbuf ob;
        static const char data[] = "a\r\nb\rc\nd\n";
        char *s;

        outbuf_init(&ob, 1 << 20);
        cr_assert_eq(sse_format_event(&ob, NULL, NULL, data, strlen(data)), 0);
        cr_assert_eq(sse_format_event(&ob, NULL, "prime", "", 0), 0);
        cr_assert_eq(sse_format_event(&ob, NULL, NULL, "\n\n", 2), 0);
        cr_assert_eq(sse_format_comment(&ob, "keep-alive"), 0);
        cr_assert_eq(sse_format_retry(&ob, 1500), 0);
        s = ob_str(&ob);
        cr_assert_str_eq(s, "data: a\ndata: b\ndata: c\ndata: d\ndata:\n\n"
                            "id: prime\ndata:\n\n"
                            "data:\ndata:\ndata:\n\n"
                            ": keep-alive\n\n"
                            "retry: 1500\n\n");
        free(s);
        outbuf_done(&ob);
}

Test(http_write, sse_refuses_multiline_names_ids_and_comments) {
        struct outbuf ob;

        outbuf_init(&ob, 1 << 20);
        cr_assert_eq(sse_format_event(&ob, "a\nb", NULL, "x", 1), -EINVAL);
        cr_assert_eq(sse_format_event(&ob, NULL, "1\r", "x", 1), -EINVAL);
        cr_assert_eq(sse_format_event(&ob, NULL, NULL, "x\0y", 3), -EINVAL);
        cr_assert_eq(sse_format_comment(&ob, "a\n\ndata: injected"), -EINVAL);
        cr_assert_eq(ob.len, 0);
        outbuf_done(&ob);
}

Test(http_write, outbuf_bound_gives_enobufs) {
        struct outbuf ob;
        char body[200] = { 0 };

        outbuf_init(&ob, 100);
        cr_assert_eq(http_write_response(&ob, 200, NULL, 0, body, sizeof(body), true), -ENOBUFS);
        outbuf_done(&ob);
}

/* Host and Origin (front/origin.c): the DNS-rebinding cases of the official conformance suite. */
static const struct front_authority loopback[] = {
        { "127.0.0.1", 8931 }, { "localhost", 8931 }, { "[::1]", 8931 },
};

Test(origin, loopback_names_with_matching_origin_are_allowed) {
        static const char *const hosts[] = { "127.0.0.1:8931", "localhost:8931", "[::1]:8931", "LOCALHOST:8931" };
        static const char *const origins[] = { "http://127.0.0.1:8931", "http://localhost:8931", "http://[::1]:8931",
                                                "HTTP://LocalHost:8931" };

        for (size_t i = 0; i < 4; i++) {
                cr_assert(front_host_allowed(hosts[i], false, loopback, 3), "%s", hosts[i]);
                cr_assert(front_origin_allowed(origins[i], false, loopback, 3), "%s", origins[i]);
        }
        cr_assert(front_origin_allowed(NULL, false, loopback, 3), "no Origin: not a browser");
}

Test(origin, rebinding_host_and_foreign_origin_are_refused) {
        static const char *const hosts[] = {
                "evil.example.com", "evil.example.com:8931", "127.0.0.1", "127.0.0.1:8932", "127.0.0.1:",
                "127.0.0.1:+8931", "127.0.0.1:08931x", "[::1]", "[::1]x:8931", "[::1", "::1:8931", ":8931",
                "127.0.0.1:0", "127.0.0.1:99999", "localhost.:8931", "",
        };
        static const char *const origins[] = {
                "http://evil.example.com", "null", "https://127.0.0.1:8931", "http://127.0.0.1:8931/",
                "http://user@127.0.0.1:8931", "http://127.0.0.1", "http://127.0.0.1:8931?x", "127.0.0.1:8931",
                "http://", "http://127.0.0.1:8931#", "",
        };

        for (size_t i = 0; i < ELEMENTSOF(hosts); i++)
                cr_assert_not(front_host_allowed(hosts[i], false, loopback, 3), "%s", hosts[i]);
        cr_assert_not(front_host_allowed(NULL, false, loopback, 3));
        for (size_t i = 0; i < ELEMENTSOF(origins); i++)
                cr_assert_not(front_origin_allowed(origins[i], false, loopback, 3), "%s", origins[i]);
}

Test(origin, default_ports_follow_the_scheme) {
        static const struct front_authority pub[] = { { "mcp.example.com", 443 } };

        cr_assert(front_host_allowed("mcp.example.com", true, pub, 1));
        cr_assert(front_host_allowed("mcp.example.com:443", true, pub, 1));
        cr_assert_not(front_host_allowed("mcp.example.com", false, pub, 1));
        cr_assert(front_origin_allowed("https://mcp.example.com", true, pub, 1));
        cr_assert(front_origin_allowed("https://mcp.example.com:443", true, pub, 1));
        cr_assert_not(front_origin_allowed("http://mcp.example.com", true, pub, 1));
        cr_assert_not(front_origin_allowed("https://mcp.example.com.evil.com", true, pub, 1));
}
