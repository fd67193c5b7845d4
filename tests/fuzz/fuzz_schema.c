/* libFuzzer target: the argument validator with a hostile schema and a hostile instance.
 * Input: schema JSON, a NUL byte, instance JSON (a missing separator makes the whole input both). */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "bounds.h"
#include "jsonrpc.h"
#include "schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *load(const char *s, size_t len) {
        /* The broker parses peers' JSON with the same depth bound before validating. */
        if (json_too_deep(s, len, BASTION_MAX_JSON_DEPTH))
                return NULL;
        return json_loadb(s, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *s = (const char *) data;
        const char *sep = memchr(s, '\0', size);
        size_t schema_len = sep ? (size_t) (sep - s) : size;
        json_t *schema = load(s, schema_len);
        json_t *instance = sep ? load(sep + 1, size - schema_len - 1) : json_incref(schema);
        char err[256];
        int r;

        if (schema && instance) {
                err[0] = 'X';
                r = schema_validate(schema, instance, err, sizeof(err));
                /* Exactly the three documented outcomes, and a message with every failure. */
                if (r != 0 && r != -EINVAL && r != -EOPNOTSUPP)
                        __builtin_trap();
                if (r != 0 && (err[0] == '\0' || !memchr(err, '\0', sizeof(err))))
                        __builtin_trap();
        }
        json_decref(schema);
        json_decref(instance);
        return 0;
}
