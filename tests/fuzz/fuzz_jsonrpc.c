/* libFuzzer target: bytes as they arrive on an MCP channel, through line framing and JSON-RPC parsing,
 * and every error reply serialised the way a peer would receive it. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "bounds.h"
#include "jsonrpc.h"
#include "linebuf.h"
#include "util.h"

/* Small enough that the fuzzer reaches the oversized-line path with short inputs. */
#define FUZZ_MAX_LINE 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse_one(const char *line, size_t len) {
        struct jsonrpc_msg m;
        json_t *error = NULL;
        char *text;

        if (jsonrpc_parse(line, len, &m, &error) < 0) {
                if (error) {
                        text = jsonrpc_dump(error, NULL);
                        /* A reply is one line: the serialiser must never emit a newline. */
                        if (text && strchr(text, '\n'))
                                __builtin_trap();
                        free(text);
                        json_decref(error);
                }
                return;
        }
        if (m.kind != JSONRPC_RESPONSE && !m.method)
                __builtin_trap();
        text = jsonrpc_dump(m.root, NULL);
        if (text && strchr(text, '\n'))
                __builtin_trap();
        free(text);
        jsonrpc_msg_done(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct linebuf lb;
        size_t half = size / 2;
        char *line;
        size_t len;
        int r;

        /* Two writes, so a line split across reads is exercised as well. */
        linebuf_init(&lb, FUZZ_MAX_LINE);
        for (int pass = 0; pass < 2; pass++) {
                if (linebuf_feed(&lb, data + (pass ? half : 0), pass ? size - half : half) < 0)
                        break;
                while ((r = linebuf_next(&lb, &line, &len)) != 0) {
                        if (r == -E2BIG)
                                continue;
                        if (len > FUZZ_MAX_LINE || strlen(line) > len)
                                __builtin_trap();
                        parse_one(line, len);
                }
        }
        linebuf_done(&lb);
        return 0;
}
