/* The argument validator: a table of schemas and instances with the exact verdict and message. */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <malloc.h>
#include <string.h>

#include "schema.h"
#include "util.h"

#define REORDER_SCHEMA \
        "{\"type\":\"object\",\"properties\":{" \
        "\"sku\":{\"type\":\"string\",\"pattern\":\"^SKU-[0-9]{4}$\",\"maxLength\":8}," \
        "\"quantity\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100000}," \
        "\"warehouse\":{\"type\":\"string\",\"pattern\":\"^WH-[A-Z]{3}$\"}}," \
        "\"required\":[\"sku\",\"quantity\",\"warehouse\"],\"additionalProperties\":false}"

/* Arrays, not pointers: criterion hands each case to a re-executed child, where pointers into the
 * parent's image would be meaningless under ASLR. */
struct schema_case {
        char schema[512];
        char instance[96];
        int expect;             /* 0, -EINVAL or -EOPNOTSUPP */
        char message[128];      /* exact err text when expect != 0 */
};

static const struct schema_case cases[] = {
        /* the reorder tool, as the broker sees it */
        { REORDER_SCHEMA, "{\"sku\":\"SKU-1001\",\"quantity\":5,\"warehouse\":\"WH-BER\"}", 0, "" },
        { REORDER_SCHEMA, "{\"sku\":\"SKU-1001\",\"quantity\":5.0,\"warehouse\":\"WH-BER\"}", 0, "" },
        { REORDER_SCHEMA, "{\"sku\":\"SKU-1001\",\"quantity\":0,\"warehouse\":\"WH-BER\"}", -EINVAL,
          "quantity: must be >= 1" },
        { REORDER_SCHEMA, "{\"sku\":\"SKU-1001\",\"quantity\":100001,\"warehouse\":\"WH-BER\"}", -EINVAL,
          "quantity: must be <= 100000" },
        { REORDER_SCHEMA, "{\"sku\":\"SKU-1001\",\"quantity\":1.5,\"warehouse\":\"WH-BER\"}", -EINVAL,
          "quantity: must be of type integer" },
        { REORDER_SCHEMA, "{\"sku\":\"SKU-1001\",\"quantity\":\"5\",\"warehouse\":\"WH-BER\"}", -EINVAL,
          "quantity: must be of type integer" },
        { REORDER_SCHEMA, "{\"sku\":\"SKU-1001\",\"quantity\":5,\"warehouse\":\"WH-BER\",\"foo\":1}", -EINVAL,
          "(root): unexpected property \"foo\"" },
        { REORDER_SCHEMA, "{\"sku\":\"sku-1001\",\"quantity\":5,\"warehouse\":\"WH-BER\"}", -EINVAL,
          "sku: does not match pattern ^SKU-[0-9]{4}$" },
        /* pattern search is anchored only by the pattern's own ^ and $ */
        { REORDER_SCHEMA, "{\"sku\":\"SKU-10011\",\"quantity\":5,\"warehouse\":\"WH-BER\"}", -EINVAL,
          "sku: must be at most 8 characters long" },
        { REORDER_SCHEMA, "{\"sku\":\"SKU-1001\",\"quantity\":5}", -EINVAL, "warehouse: required" },
        { REORDER_SCHEMA, "{}", -EINVAL, "sku: required" },
        { REORDER_SCHEMA, "[]", -EINVAL, "(root): must be of type object" },
        { REORDER_SCHEMA, "{\"sku\":\"SKU-1001\",\"quantity\":5,\"warehouse\":\"WH-BERX\"}", -EINVAL,
          "warehouse: does not match pattern ^WH-[A-Z]{3}$" },
        /* unanchored search: the pattern may match anywhere */
        { "{\"type\":\"string\",\"pattern\":\"[0-9]+\"}", "\"abc123def\"", 0, "" },
        { "{\"type\":\"string\",\"pattern\":\"^[0-9]+\"}", "\"abc123\"", -EINVAL,
          "(root): does not match pattern ^[0-9]+" },
        /* types */
        { "{\"type\":\"number\"}", "1.5", 0, "" },
        { "{\"type\":\"number\"}", "7", 0, "" },
        { "{\"type\":\"integer\"}", "1e2", 0, "" },
        { "{\"type\":\"integer\"}", "true", -EINVAL, "(root): must be of type integer" },
        { "{\"type\":[\"string\",\"null\"]}", "null", 0, "" },
        { "{\"type\":[\"string\",\"null\"]}", "3", -EINVAL, "(root): must be of type string or null" },
        { "{\"type\":\"boolean\"}", "false", 0, "" },
        { "{\"type\":\"null\"}", "0", -EINVAL, "(root): must be of type null" },
        /* numeric bounds, integer against real compared exactly */
        { "{\"exclusiveMinimum\":0}", "0", -EINVAL, "(root): must be > 0" },
        { "{\"exclusiveMinimum\":0}", "0.001", 0, "" },
        { "{\"exclusiveMaximum\":2.5}", "2.5", -EINVAL, "(root): must be < 2.5" },
        { "{\"exclusiveMaximum\":2.5}", "2", 0, "" },
        { "{\"minimum\":0.5}", "0", -EINVAL, "(root): must be >= 0.5" },
        { "{\"maximum\":9007199254740992}", "9007199254740993", -EINVAL, "(root): must be <= 9007199254740992" },
        /* strings count code points, not bytes */
        { "{\"maxLength\":3}", "\"äöü\"", 0, "" },
        { "{\"maxLength\":2}", "\"äöü\"", -EINVAL, "(root): must be at most 2 characters long" },
        { "{\"minLength\":1}", "\"\"", -EINVAL, "(root): must be at least 1 characters long" },
        { "{\"minLength\":1}", "5", 0, "" },
        /* enum and const: numbers by value */
        { "{\"enum\":[\"requested\",\"approved\"]}", "\"approved\"", 0, "" },
        { "{\"enum\":[\"requested\",\"approved\"]}", "\"shipped\"", -EINVAL,
          "(root): must be one of [\"requested\",\"approved\"]" },
        { "{\"enum\":[1,2]}", "2.0", 0, "" },
        { "{\"const\":{\"a\":[1,null]}}", "{\"a\":[1.0,null]}", 0, "" },
        { "{\"const\":\"x\"}", "\"y\"", -EINVAL, "(root): must be \"x\"" },
        /* arrays */
        { "{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1,\"maxItems\":2}", "[\"a\"]", 0, "" },
        { "{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"minItems\":1}", "[]", -EINVAL,
          "(root): must have at least 1 items" },
        { "{\"type\":\"array\",\"maxItems\":1}", "[1,2]", -EINVAL, "(root): must have at most 1 items" },
        { "{\"type\":\"object\",\"properties\":{\"lines\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
          "\"properties\":{\"qty\":{\"minimum\":1}}}}}}",
          "{\"lines\":[{\"qty\":2},{\"qty\":0}]}", -EINVAL, "lines[1].qty: must be >= 1" },
        /* additionalProperties as a schema; nested required */
        { "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}", "{\"a\":1,\"b\":\"x\"}", -EINVAL,
          "b: must be of type integer" },
        { "{\"properties\":{\"a\":{\"type\":\"object\",\"required\":[\"b\"]}}}", "{\"a\":{}}", -EINVAL,
          "a.b: required" },
        { "{\"type\":\"object\",\"additionalProperties\":false}", "{\"a\\u0001b\":1}", -EINVAL,
          "(root): unexpected property \"a?b\"" },
        /* boolean schemas and annotations */
        { "true", "{\"anything\":[1]}", 0, "" },
        { "{\"properties\":{\"x\":false}}", "{\"x\":1}", -EINVAL, "x: not allowed" },
        { "{\"title\":\"t\",\"description\":\"d\",\"default\":1,\"examples\":[1],\"$schema\":\"s\","
          "\"$comment\":\"c\",\"format\":\"date-time\",\"x-mcp-header\":\"h\"}", "\"not-a-date\"", 0, "" },
        /* fail closed: keywords we do not implement, even in branches the instance never reaches */
        { "{\"multipleOf\":2}", "4", -EOPNOTSUPP, "(root): unsupported schema keyword \"multipleOf\"" },
        { "{\"properties\":{\"a\":{\"anyOf\":[{}]}}}", "{}", -EOPNOTSUPP,
          "a: unsupported schema keyword \"anyOf\"" },
        { "{\"$ref\":\"#/$defs/x\"}", "1", -EOPNOTSUPP, "(root): unsupported schema keyword \"$ref\"" },
        { "{\"patternProperties\":{}}", "{}", -EOPNOTSUPP,
          "(root): unsupported schema keyword \"patternProperties\"" },
        { "{\"items\":[{}]}", "[]", -EOPNOTSUPP, "(root): array form of \"items\" is not supported" },
        { "{\"type\":\"text\"}", "1", -EOPNOTSUPP, "(root): unknown type \"text\"" },
        { "{\"minimum\":\"1\"}", "1", -EOPNOTSUPP, "(root): \"minimum\" must be a number" },
        { "{\"pattern\":\"^\\\\d+$\"}", "\"1\"", -EOPNOTSUPP,
          "(root): pattern escape \"\\d\" is not supported (POSIX ERE)" },
        { "{\"pattern\":\"(?:a)\"}", "\"a\"", -EOPNOTSUPP,
          "(root): pattern group \"(?\" is not supported (POSIX ERE)" },
        { "{\"pattern\":\"[a\"}", "\"a\"", -EOPNOTSUPP, "(root): pattern [a does not compile as a POSIX ERE" },
        { "3", "1", -EOPNOTSUPP, "(root): schema must be an object or a boolean" },
        /* patterns come from untrusted workers: what regcomp() would build is bounded */
        { "{\"pattern\":\"^([0-9]{1,3}\\\\.){3}[0-9]{1,3}$\"}", "\"10.0.0.1\"", 0, "" },
        { "{\"pattern\":\"^[[:alpha:]]{2}[]a-]$\"}", "\"ab]\"", 0, "" },
        { "{\"pattern\":\"(a++)\"}", "\"a\"", -EOPNOTSUPP,
          "(root): pattern stacks quantifiers (not ECMA-262, not bounded)" },
        { "{\"pattern\":\"a+?\"}", "\"a\"", -EOPNOTSUPP,
          "(root): pattern stacks quantifiers (not ECMA-262, not bounded)" },
        { "{\"pattern\":\"((a{100}){100})\"}", "\"a\"", -EOPNOTSUPP, "(root): pattern expands beyond 4096 states" },
        { "{\"pattern\":\"a{5000}\"}", "\"a\"", -EOPNOTSUPP, "(root): pattern repeats too often" },
};

ParameterizedTestParameters(schema, table) {
        return cr_make_param_array(struct schema_case, cases, ELEMENTSOF(cases));
}

ParameterizedTest(const struct schema_case *c, schema, table) {
        json_error_t e;
        json_t *schema = json_loads(c->schema, JSON_DECODE_ANY, &e);
        json_t *instance = json_loads(c->instance, JSON_DECODE_ANY, &e);
        char err[256] = "unset";
        int r;

        cr_assert_not_null(schema, "bad schema %s", c->schema);
        cr_assert_not_null(instance, "bad instance %s", c->instance);
        r = schema_validate(schema, instance, err, sizeof(err));
        cr_assert_eq(r, c->expect, "%s against %s: got %d (%s), want %d", c->instance, c->schema, r, err, c->expect);
        if (c->expect != 0)
                cr_assert_str_eq(err, c->message, "%s against %s", c->instance, c->schema);
        /* A schema that passes the check once (as a worker's does at start) gets the same verdict and
         * message from the instance-only validation. */
        if (schema_check(schema, NULL, 0) == 0) {
                strcpy(err, "unset");
                r = schema_validate_checked(schema, instance, err, sizeof(err));
                cr_assert_eq(r, c->expect, "checked: %s against %s: got %d (%s)", c->instance, c->schema, r, err);
                if (c->expect != 0)
                        cr_assert_str_eq(err, c->message, "checked: %s against %s", c->instance, c->schema);
                else
                        cr_assert_str_eq(err, "", "checked: %s against %s", c->instance, c->schema);
        }
        json_decref(schema);
        json_decref(instance);
}

Test(schema, embedded_nul_never_matches_a_pattern) {
        json_t *schema = json_pack("{s:s}", "pattern", "^SKU-[0-9]{4}$");
        json_t *instance = json_stringn("SKU-1001\0; DROP", 15);
        char err[128];

        cr_assert_eq(schema_validate(schema, instance, err, sizeof(err)), -EINVAL);
        cr_assert_str_eq(err, "(root): does not match pattern ^SKU-[0-9]{4}$");
        json_decref(schema);
        json_decref(instance);
}

/* A worker's pattern that passes the cost check, and arguments of 4,000 random a/b characters, call
 * after call: the compiled pattern is reused between calls, but what glibc's matcher builds inside it
 * for each new input must not pile up (it did, ~15 MB per call, while entries lived on unbounded). */
Test(schema, a_cached_pattern_does_not_grow_with_the_input_it_matched) {
        json_t *schema = json_pack("{s:s, s:s}", "type", "string", "pattern", "^[ab]*a[ab]{40}$");
        char *text = malloc(4001), err[128];
        unsigned seed = 1;
        size_t before = 0;

        cr_assert_not_null(text);
        for (int call = 0; call < 10; call++) {
                json_t *instance;

                for (int i = 0; i < 4000; i++)
                        text[i] = "ab"[rand_r(&seed) & 1];
                text[4000] = '\0';
                instance = json_string(text);
                (void) schema_validate(schema, instance, err, sizeof(err));
                json_decref(instance);
                if (call == 1)
                        before = mallinfo2().uordblks;
        }
        cr_assert_lt(mallinfo2().uordblks, before + 8 * 1024 * 1024, "heap grew from %zu to %zu bytes",
                     before, mallinfo2().uordblks);
        json_decref(schema);
        free(text);
}

Test(schema, nesting_beyond_the_bound_is_refused) {
        json_t *schema = json_object(), *inner = schema;
        json_t *instance = json_object();
        char err[1024];

        for (int i = 0; i < 100; i++) {
                json_t *next = json_object();
                json_object_set_new(inner, "items", next);
                inner = next;
        }
        cr_assert_eq(schema_validate(schema, instance, err, sizeof(err)), -EOPNOTSUPP);
        cr_assert(strstr(err, "schema nested too deeply") != NULL, "%s", err);
        json_decref(schema);
        json_decref(instance);
}

Test(schema, null_err_buffer_is_allowed) {
        json_t *schema = json_pack("{s:i}", "minimum", 1);
        json_t *instance = json_integer(0);

        cr_assert_eq(schema_validate(schema, instance, NULL, 0), -EINVAL);
        json_decref(schema);
        json_decref(instance);
}
