/* JSON-RPC envelope parsing for every MCP channel. Only this file decides what a message is. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "json_write.h"
#include "jsonrpc.h"
#include "bounds.h"
#include "util.h"

int json_too_deep(const char *s, size_t len, unsigned max) {
        unsigned depth = 0;
        int in_string = 0;

        for (size_t i = 0; i < len; i++) {
                char c = s[i];
                if (in_string) {
                        if (c == '\\')
                                i++;
                        else if (c == '"')
                                in_string = 0;
                        continue;
                }
                if (c == '"')
                        in_string = 1;
                else if (c == '{' || c == '[') {
                        if (++depth > max)
                                return 1;
                } else if ((c == '}' || c == ']') && depth > 0)
                        depth--;
        }
        return 0;
}

static int valid_id(const json_t *id) {
        /* MCP: a string or an integer, never null, never a fraction. */
        return json_is_string(id) || json_is_integer(id);
}

static int envelope_invalid(json_t *id, const char *why, json_t **ret_error) {
        if (ret_error)
                *ret_error = jsonrpc_error(valid_id(id) ? id : NULL, JSONRPC_INVALID_REQUEST, why, NULL);
        return -EBADMSG;
}

int jsonrpc_parse(const char *line, size_t len, struct jsonrpc_msg *ret, json_t **ret_error) {
        json_error_t jerr;
        json_t *root, *id, *method, *params, *result, *error, *version;

        *ret = (struct jsonrpc_msg) {};
        if (ret_error)
                *ret_error = NULL;

        if (json_too_deep(line, len, BASTION_MAX_JSON_DEPTH)) {
                if (ret_error)
                        *ret_error = jsonrpc_error(NULL, JSONRPC_PARSE_ERROR, "JSON nested too deeply", NULL);
                return -ELOOP;
        }
        root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                if (ret_error)
                        *ret_error = jsonrpc_error(NULL, JSONRPC_PARSE_ERROR, "Parse error", NULL);
                return -EBADMSG;
        }
        if (json_is_array(root)) {
                json_decref(root);
                return envelope_invalid(NULL, "JSON-RPC batching is not supported", ret_error);
        }
        if (!json_is_object(root)) {
                json_decref(root);
                return envelope_invalid(NULL, "Invalid Request: not an object", ret_error);
        }

        id = json_object_get(root, "id");
        method = json_object_get(root, "method");
        params = json_object_get(root, "params");
        result = json_object_get(root, "result");
        error = json_object_get(root, "error");
        version = json_object_get(root, "jsonrpc");

        if (!json_is_string(version) || strcmp(json_string_value(version), "2.0") != 0)
                goto invalid_version;
        if (id && !valid_id(id))
                goto invalid_id;

        if (method) {
                if (!json_is_string(method) || result || error)
                        goto invalid;
                if (params && !json_is_object(params))
                        goto invalid_params;
                ret->kind = id ? JSONRPC_REQUEST : JSONRPC_NOTIFICATION;
                ret->method = json_string_value(method);
                ret->params = params;
        } else {
                if (!id || (!result == !error))
                        goto invalid;
                if (error && (!json_is_object(error) || !json_is_integer(json_object_get(error, "code"))))
                        goto invalid;
                ret->kind = JSONRPC_RESPONSE;
                ret->result = result;
                ret->error = error;
        }
        ret->root = root;
        ret->id = id;
        return 0;

invalid_version:
        envelope_invalid(id, "Invalid Request: jsonrpc must be \"2.0\"", ret_error);
        json_decref(root);
        return -EBADMSG;
invalid_id:
        envelope_invalid(NULL, "Invalid Request: id must be a string or an integer", ret_error);
        json_decref(root);
        return -EBADMSG;
invalid_params:
        /* A notification (string method, no id) is never answered, not even when its params are bad:
         * the sender expects no reply and may not be able to match one. */
        if (id)
                envelope_invalid(id, "Invalid Request: params must be an object", ret_error);
        else if (ret_error)
                *ret_error = NULL;
        json_decref(root);
        return -EBADMSG;
invalid:
        /* A malformed message without an id is answered only if it looked like a request. */
        envelope_invalid(id, "Invalid Request", ret_error);
        json_decref(root);
        return -EBADMSG;
}

void jsonrpc_msg_done(struct jsonrpc_msg *m) {
        if (m->root)
                json_decref(m->root);
        *m = (struct jsonrpc_msg) {};
}

json_t *jsonrpc_error(json_t *id, int code, const char *message, json_t *data) {
        json_t *err = json_pack("{s:i, s:s}", "code", code, "message", message);

        if (data)
                json_object_set_new(err, "data", data);
        return json_pack("{s:s, s:O?, s:o}", "jsonrpc", "2.0", "id", id ? id : json_null(), "error", err);
}

json_t *jsonrpc_result(json_t *id, json_t *result) {
        return json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);
}

json_t *jsonrpc_request(json_t *id, const char *method, json_t *params) {
        return json_pack("{s:s, s:O, s:s, s:o*}", "jsonrpc", "2.0", "id", id, "method", method, "params", params);
}

json_t *jsonrpc_notification(const char *method, json_t *params) {
        return json_pack("{s:s, s:s, s:o*}", "jsonrpc", "2.0", "method", method, "params", params);
}

/* Compact documents by json_write_compact() (the same bytes at a fraction of jansson's cost), the rest
 * by jansson. */
static size_t dump(const json_t *j, size_t flags, char *buf, size_t cap) {
        if ((flags & ~(size_t) (JSON_ENSURE_ASCII | JSON_ENCODE_ANY)) == JSON_COMPACT &&
            (json_is_object(j) || json_is_array(j)))
                return json_write(j, buf, cap, flags & JSON_ENSURE_ASCII);
        return json_dumpb(j, buf, cap, flags);
}

size_t json_dump_size(const json_t *j, size_t flags) {
        return dump(j, flags, NULL, 0);
}

const char *json_dump_buf(const json_t *j, size_t flags, char *buf, size_t cap, char **ret_alloc, size_t *ret_len) {
        size_t n = dump(j, flags, buf, cap);
        char *p;

        *ret_alloc = NULL;
        if (n == 0)
                return NULL;
        if (n > cap) {
                /* Too large for buf: the size is known, so one allocation and a second pass. */
                p = malloc(n);
                if (!p || dump(j, flags, p, n) != n) {
                        free(p);
                        return NULL;
                }
                buf = *ret_alloc = p;
        }
        *ret_len = n;
        return buf;
}

char *jsonrpc_dump(const json_t *msg, size_t *ret_len) {
        /* Compact: jansson escapes control characters, so the text never holds a raw newline. Most
         * messages fit the stack buffer: one malloc of the exact size, not json_dumps()'s growing
         * buffer and final copy. */
        char buf[4096], *alloc = NULL, *s;
        const char *text;
        size_t n = 0;

        text = json_dump_buf(msg, JSON_COMPACT, buf, sizeof(buf), &alloc, &n);
        if (!text)
                return NULL;
        s = alloc ? realloc(alloc, n + 1) : malloc(n + 1);
        if (!s) {
                free(alloc);
                return NULL;
        }
        if (!alloc)
                memcpy(s, text, n);
        s[n] = '\0';
        if (ret_len)
                *ret_len = n;
        return s;
}
