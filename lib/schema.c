/* JSON Schema 2020-12 subset for tool arguments. Fails closed: a schema keyword we do not enforce
 * makes the whole schema unusable rather than silently ignored. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "schema.h"
#include "util.h"

/* A property name quoted in an error message is cut here: the message is for a human or a model. */
#define SCHEMA_MAX_KEY_SHOWN 64

/* Where in the instance (or in the schema) we are, as a chain on the stack. */
struct path {
        const struct path *parent;
        const char *key;        /* property name, or NULL for an array index */
        size_t index;
};

struct ctx {
        char *err;
        size_t errlen;
};

/* Keywords that carry no validation meaning (2020-12 meta-data and core annotations). */
static const char *const annotation_keywords[] = {
        "title", "description", "default", "examples", "$schema", "$comment", "format",
        "readOnly", "writeOnly", "deprecated",
};

static const char *const type_names[] = {
        "null", "boolean", "object", "array", "number", "string", "integer",
};

static size_t path_format(const struct path *p, char *buf, size_t len) {
        size_t n = 0;

        if (!p)
                return 0;
        n = path_format(p->parent, buf, len);
        if (n >= len)
                return n;
        if (!p->key)
                return n + snprintf(buf + n, len - n, "[%zu]", p->index);
        if (n > 0 && n < len)
                buf[n++] = '.';
        /* Keys are peer-supplied: only printable ASCII reaches the message (and so the logs). */
        for (size_t i = 0; p->key[i] && i < SCHEMA_MAX_KEY_SHOWN && n + 1 < len; i++)
                buf[n++] = p->key[i] >= 0x20 && p->key[i] < 0x7f ? p->key[i] : '?';
        if (n < len)
                buf[n] = '\0';
        return n;
}

static int fail(struct ctx *c, int error, const struct path *p, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static int fail(struct ctx *c, int error, const struct path *p, const char *fmt, ...) {
        char where[256] = "";
        char what[512];
        va_list ap;

        if (!c->err || c->errlen == 0)
                return error;
        if (path_format(p, where, sizeof(where)) == 0)
                strcpy(where, "(root)");
        va_start(ap, fmt);
        vsnprintf(what, sizeof(what), fmt, ap);
        va_end(ap);
        snprintf(c->err, c->errlen, "%s: %s", where, what);
        return error;
}

static void key_shown(const char *key, char *buf, size_t len) {
        struct path p = { .key = key };
        size_t n = path_format(&p, buf, len);

        if (n == 0 && len > 0)
                buf[0] = '\0';
}

static bool in_list(const char *s, const char *const *list, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (streq(s, list[i]))
                        return true;
        return false;
}

/* ---- numbers ---- */

/* 2020-12: a number with a zero fractional part is an integer (1.0 is). */
static bool json_is_integral(const json_t *v) {
        double d;

        if (json_is_integer(v))
                return true;
        if (!json_is_real(v))
                return false;
        d = json_real_value(v);
        if (d != d)
                return false;
        if (d >= 9007199254740992.0 || d <= -9007199254740992.0)
                return true;    /* every double this large is a whole number */
        return (double) (long long) d == d;
}

/* Exact comparison of an integer with a double, without rounding the integer to a double. */
static int cmp_int_real(long long i, double d) {
        long long t;

        if (d >= 9223372036854775807.0)
                return -1;
        if (d < -9223372036854775808.0)
                return 1;
        t = (long long) d;
        if ((double) t > d)
                t--;            /* truncation went up for a negative fraction: make it floor */
        if (i != t)
                return i < t ? -1 : 1;
        return d > (double) t ? -1 : 0;
}

static int json_num_cmp(const json_t *a, const json_t *b) {
        if (json_is_integer(a) && json_is_integer(b)) {
                json_int_t x = json_integer_value(a), y = json_integer_value(b);
                return x < y ? -1 : x > y;
        }
        if (json_is_integer(a))
                return cmp_int_real(json_integer_value(a), json_real_value(b));
        if (json_is_integer(b))
                return -cmp_int_real(json_integer_value(b), json_real_value(a));
        return json_real_value(a) < json_real_value(b) ? -1 : json_real_value(a) > json_real_value(b);
}

static const char *num_format(const json_t *v, char *buf, size_t len) {
        double d;

        if (json_is_integer(v)) {
                snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                return buf;
        }
        d = json_real_value(v);
        snprintf(buf, len, "%.15g", d);
        if (strtod(buf, NULL) != d)
                snprintf(buf, len, "%.17g", d);
        return buf;
}

/* Non-negative whole number used as a count (minLength, maxItems, …). */
static bool json_as_count(const json_t *v, long long *ret) {
        if (!json_is_integral(v) || json_number_value(v) < 0)
                return false;
        *ret = json_is_integer(v) ? json_integer_value(v) : (long long) json_real_value(v);
        return true;
}

/* ---- equality for enum/const: numbers by value (1 == 1.0), everything else structurally ---- */

static bool json_equal_value(const json_t *a, const json_t *b, unsigned depth) {
        if (depth > BASTION_MAX_JSON_DEPTH)
                return false;
        if (json_is_number(a) && json_is_number(b))
                return json_num_cmp(a, b) == 0;
        if (json_typeof(a) != json_typeof(b))
                return false;
        if (json_is_string(a))
                return json_string_length(a) == json_string_length(b) &&
                       memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
        if (json_is_array(a)) {
                if (json_array_size(a) != json_array_size(b))
                        return false;
                for (size_t i = 0; i < json_array_size(a); i++)
                        if (!json_equal_value(json_array_get(a, i), json_array_get(b, i), depth + 1))
                                return false;
                return true;
        }
        if (json_is_object(a)) {
                const char *k;
                json_t *v;

                if (json_object_size(a) != json_object_size(b))
                        return false;
                json_object_foreach((json_t *) a, k, v) {
                        json_t *w = json_object_get(b, k);
                        if (!w || !json_equal_value(v, w, depth + 1))
                                return false;
                }
                return true;
        }
        return true;    /* true, false, null: same type is same value */
}

/* ---- schema check ---- */

/* Group nesting inside one pattern; deeper than any real identifier pattern needs. */
#define SCHEMA_MAX_PATTERN_GROUPS 16

struct pattern_scan {
        unsigned long long total[SCHEMA_MAX_PATTERN_GROUPS + 1];   /* expanded size per open group */
        unsigned long long last;        /* size of the last atom or group: what a quantifier copies */
        unsigned depth;
        bool quantified;                /* the last token was a quantifier */
};

static int pattern_atom(struct pattern_scan *ps, unsigned long long cost) {
        ps->total[ps->depth] += cost;
        ps->last = cost;
        ps->quantified = false;
        return 0;
}

/* Skips a bracket expression starting at p[i] == '['; returns the index of its closing ']'. */
static ssize_t pattern_bracket_end(const char *p, size_t len, size_t i) {
        i++;
        if (i < len && p[i] == '^')
                i++;
        if (i < len && p[i] == ']')
                i++;            /* a leading ']' is a literal */
        for (; i < len; i++) {
                if (p[i] == '[' && i + 1 < len && strchr(":.=", p[i + 1])) {
                        const char *end = strstr(p + i + 2, (char[]) { p[i + 1], ']', '\0' });
                        if (!end)
                                return -1;
                        i = end - p + 1;
                } else if (p[i] == ']')
                        return i;
        }
        return -1;
}

/* Parses {n}, {n,} or {n,m} at p[i]; returns the largest count of copies, or -1. */
static long pattern_bound(const char *p, size_t len, size_t *i) {
        long n = 0, m = -1;
        size_t j = *i + 1;

        for (; j < len && p[j] >= '0' && p[j] <= '9' && n <= 100000; j++)
                n = n * 10 + (p[j] - '0');
        if (j < len && p[j] == ',') {
                m = 0;
                for (j++; j < len && p[j] >= '0' && p[j] <= '9' && m <= 100000; j++)
                        m = m * 10 + (p[j] - '0');
                if (p[j - 1] == ',')
                        m = n + 1;      /* {n,} is n copies and a star */
        }
        if (j >= len || p[j] != '}')
                return -1;
        *i = j;
        return m > n ? m : n;
}

/* ECMA-262 patterns run here as POSIX EREs. They agree on the common core; an escape like \d, a
 * group like (?: or a lazy quantifier means something else (or nothing) in POSIX, so such a pattern
 * is refused. The scan also bounds what regcomp() will build (see BASTION_MAX_SCHEMA_PATTERN_COST). */
static int pattern_scan(struct ctx *c, const struct path *sp, const char *p, size_t len) {
        struct pattern_scan ps = {};

        for (size_t i = 0; i < len; i++) {
                unsigned char ch = p[i];
                ssize_t end;
                long bound;

                switch (ch) {
                case '\\':
                        if (i + 1 >= len || isalnum((unsigned char) p[i + 1]))
                                return fail(c, -EOPNOTSUPP, sp, "pattern escape \"\\%c\" is not supported (POSIX ERE)",
                                            i + 1 < len ? p[i + 1] : ' ');
                        i++;
                        pattern_atom(&ps, 1);
                        break;
                case '[':
                        end = pattern_bracket_end(p, len, i);
                        if (end < 0)
                                return fail(c, -EOPNOTSUPP, sp, "pattern %s does not compile as a POSIX ERE", p);
                        i = end;
                        pattern_atom(&ps, 1);
                        break;
                case '(':
                        if (i + 1 < len && p[i + 1] == '?')
                                return fail(c, -EOPNOTSUPP, sp, "pattern group \"(?\" is not supported (POSIX ERE)");
                        if (ps.depth >= SCHEMA_MAX_PATTERN_GROUPS)
                                return fail(c, -EOPNOTSUPP, sp, "pattern nests groups too deeply");
                        ps.total[++ps.depth] = 0;
                        ps.quantified = false;
                        break;
                case ')':
                        if (ps.depth == 0)
                                return fail(c, -EOPNOTSUPP, sp, "pattern %s does not compile as a POSIX ERE", p);
                        ps.depth--;
                        pattern_atom(&ps, ps.total[ps.depth + 1] + 1);
                        break;
                case '|':
                        ps.last = 0;
                        ps.quantified = false;
                        break;
                case '*': case '+': case '?': case '{':
                        if (ps.quantified)
                                return fail(c, -EOPNOTSUPP, sp, "pattern stacks quantifiers (not ECMA-262, not bounded)");
                        bound = ch == '+' ? 2 : 1;      /* glibc builds x+ as xx* */
                        if (ch == '{' && (bound = pattern_bound(p, len, &i)) < 0)
                                return fail(c, -EOPNOTSUPP, sp, "pattern %s does not compile as a POSIX ERE", p);
                        if (bound > BASTION_MAX_SCHEMA_PATTERN_COST)
                                return fail(c, -EOPNOTSUPP, sp, "pattern repeats too often");
                        ps.total[ps.depth] += ps.last * (bound > 1 ? bound - 1 : 0);
                        ps.last *= bound;
                        ps.quantified = true;
                        break;
                default:
                        pattern_atom(&ps, 1);
                }
                if (ps.total[ps.depth] > BASTION_MAX_SCHEMA_PATTERN_COST || ps.last > BASTION_MAX_SCHEMA_PATTERN_COST)
                        return fail(c, -EOPNOTSUPP, sp, "pattern expands beyond %d states", BASTION_MAX_SCHEMA_PATTERN_COST);
        }
        return 0;
}

/* Compiled patterns, kept between calls: a tool's schema is the same on every call, and regcomp() was
 * the largest single cost of validating one (twice per call: the check and the match). Bounded and
 * replaced in turn, so a worker that offers many patterns only costs recompilation. glibc builds its
 * matching automaton lazily inside the regex_t, up to a few KiB per byte of input it has seen, and
 * frees it only with regfree(): a worker's pattern and the arguments of many calls would grow it call
 * after call. So a pattern is compiled afresh after it matched a string longer than
 * SCHEMA_PATTERN_LONG_INPUT, and the whole cache after SCHEMA_PATTERN_REUSE_BYTES of input in all:
 * what the automata hold stays that of a few KiB of input, as when every call compiled its own.
 * One thread only. */
#define SCHEMA_PATTERN_CACHE 32
#define SCHEMA_PATTERN_LONG_INPUT 1024
#define SCHEMA_PATTERN_REUSE_BYTES (4 * 1024)

static struct {
        char *pattern;
        regex_t re;
} pattern_cache[SCHEMA_PATTERN_CACHE];
static unsigned pattern_cache_next;
static size_t pattern_cache_matched;

static void pattern_evict(unsigned slot) {
        if (!pattern_cache[slot].pattern)
                return;
        regfree(&pattern_cache[slot].re);
        free(pattern_cache[slot].pattern);
        pattern_cache[slot].pattern = NULL;
}

/* The cache slot of a NUL-free pattern, compiled; -1 when it does not compile (or no memory). */
static int pattern_compiled(const char *pattern) {
        unsigned slot = SCHEMA_PATTERN_CACHE;
        char *copy;
        regex_t re;

        for (unsigned i = 0; i < SCHEMA_PATTERN_CACHE; i++) {
                if (!pattern_cache[i].pattern)
                        slot = slot < SCHEMA_PATTERN_CACHE ? slot : i;
                else if (streq(pattern_cache[i].pattern, pattern))
                        return (int) i;
        }
        if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
                return -1;
        copy = strdup(pattern);
        if (!copy) {
                regfree(&re);
                return -1;
        }
        if (slot == SCHEMA_PATTERN_CACHE) {
                slot = pattern_cache_next++ % SCHEMA_PATTERN_CACHE;
                pattern_evict(slot);
        }
        pattern_cache[slot].pattern = copy;
        pattern_cache[slot].re = re;
        return (int) slot;
}

/* Whether s (len bytes, NUL-free) matches the pattern in `slot`, then the reuse rules above. */
static bool pattern_match(int slot, const char *s, size_t len) {
        bool match = regexec(&pattern_cache[slot].re, s, 0, NULL, 0) == 0;

        pattern_cache_matched += len + 1;
        if (len > SCHEMA_PATTERN_LONG_INPUT)
                pattern_evict((unsigned) slot);
        if (pattern_cache_matched > SCHEMA_PATTERN_REUSE_BYTES) {
                for (unsigned i = 0; i < SCHEMA_PATTERN_CACHE; i++)
                        pattern_evict(i);
                pattern_cache_matched = 0;
        }
        return match;
}

static int pattern_check(struct ctx *c, const struct path *sp, const char *pattern, size_t len) {
        int r;

        if (strlen(pattern) != len)
                return fail(c, -EOPNOTSUPP, sp, "pattern contains a NUL character");
        if (len > BASTION_MAX_SCHEMA_PATTERN)
                return fail(c, -EOPNOTSUPP, sp, "pattern longer than %d bytes", BASTION_MAX_SCHEMA_PATTERN);
        r = pattern_scan(c, sp, pattern, len);
        if (r < 0)
                return r;
        if (pattern_compiled(pattern) < 0)
                return fail(c, -EOPNOTSUPP, sp, "pattern %s does not compile as a POSIX ERE", pattern);
        return 0;
}

static int check_type(struct ctx *c, const struct path *sp, const json_t *v) {
        if (json_is_string(v)) {
                if (!in_list(json_string_value(v), type_names, ELEMENTSOF(type_names)))
                        return fail(c, -EOPNOTSUPP, sp, "unknown type \"%s\"", json_string_value(v));
                return 0;
        }
        if (!json_is_array(v) || json_array_size(v) == 0)
                return fail(c, -EOPNOTSUPP, sp, "\"type\" must be a string or a non-empty array");
        for (size_t i = 0; i < json_array_size(v); i++) {
                int r = check_type(c, sp, json_array_get(v, i));
                if (r < 0)
                        return r;
                if (json_is_array(json_array_get(v, i)))
                        return fail(c, -EOPNOTSUPP, sp, "\"type\" array must hold strings");
        }
        return 0;
}

static int check_node(struct ctx *c, const json_t *schema, const struct path *sp, unsigned depth);

static int check_keyword(struct ctx *c, const char *k, const json_t *v, const struct path *sp, unsigned depth) {
        long long count;

        if (streq(k, "type"))
                return check_type(c, sp, v);
        if (streq(k, "properties")) {
                const char *name;
                json_t *sub;

                if (!json_is_object(v))
                        return fail(c, -EOPNOTSUPP, sp, "\"properties\" must be an object");
                json_object_foreach((json_t *) v, name, sub) {
                        struct path p = { sp, name, 0 };
                        int r = check_node(c, sub, &p, depth + 1);
                        if (r < 0)
                                return r;
                }
                return 0;
        }
        if (streq(k, "required")) {
                if (!json_is_array(v))
                        return fail(c, -EOPNOTSUPP, sp, "\"required\" must be an array of strings");
                for (size_t i = 0; i < json_array_size(v); i++)
                        if (!json_is_string(json_array_get(v, i)))
                                return fail(c, -EOPNOTSUPP, sp, "\"required\" must be an array of strings");
                return 0;
        }
        if (streq(k, "additionalProperties")) {
                struct path p = { sp, "*", 0 };
                return check_node(c, v, &p, depth + 1);
        }
        if (streq(k, "items")) {
                struct path p = { sp, NULL, 0 };
                if (json_is_array(v))
                        return fail(c, -EOPNOTSUPP, sp, "array form of \"items\" is not supported");
                return check_node(c, v, &p, depth + 1);
        }
        if (streq(k, "enum")) {
                if (!json_is_array(v))
                        return fail(c, -EOPNOTSUPP, sp, "\"enum\" must be an array");
                return 0;
        }
        if (streq(k, "const"))
                return 0;
        if (streq(k, "minimum") || streq(k, "maximum") || streq(k, "exclusiveMinimum") ||
            streq(k, "exclusiveMaximum")) {
                if (!json_is_number(v))
                        return fail(c, -EOPNOTSUPP, sp, "\"%s\" must be a number", k);
                return 0;
        }
        if (streq(k, "minLength") || streq(k, "maxLength") || streq(k, "minItems") || streq(k, "maxItems")) {
                if (!json_as_count(v, &count))
                        return fail(c, -EOPNOTSUPP, sp, "\"%s\" must be a non-negative integer", k);
                return 0;
        }
        if (streq(k, "pattern")) {
                if (!json_is_string(v))
                        return fail(c, -EOPNOTSUPP, sp, "\"pattern\" must be a string");
                return pattern_check(c, sp, json_string_value(v), json_string_length(v));
        }
        if (in_list(k, annotation_keywords, ELEMENTSOF(annotation_keywords)) || strncmp(k, "x-", 2) == 0)
                return 0;
        return fail(c, -EOPNOTSUPP, sp, "unsupported schema keyword \"%s\"", k);
}

static int check_node(struct ctx *c, const json_t *schema, const struct path *sp, unsigned depth) {
        const char *k;
        json_t *v;

        if (depth > BASTION_MAX_JSON_DEPTH)
                return fail(c, -EOPNOTSUPP, sp, "schema nested too deeply");
        if (json_is_boolean(schema))
                return 0;
        if (!json_is_object(schema))
                return fail(c, -EOPNOTSUPP, sp, "schema must be an object or a boolean");
        json_object_foreach((json_t *) schema, k, v) {
                int r = check_keyword(c, k, v, sp, depth);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* ---- instance validation (the schema has passed check_node) ---- */

static bool type_matches(const char *t, const json_t *inst) {
        if (streq(t, "integer"))
                return json_is_integral(inst);
        if (streq(t, "number"))
                return json_is_number(inst);
        if (streq(t, "string"))
                return json_is_string(inst);
        if (streq(t, "object"))
                return json_is_object(inst);
        if (streq(t, "array"))
                return json_is_array(inst);
        if (streq(t, "boolean"))
                return json_is_boolean(inst);
        return streq(t, "null") && json_is_null(inst);
}

static int validate_type(struct ctx *c, const json_t *type, const json_t *inst, const struct path *p) {
        char names[128] = "";
        size_t n = 0;

        if (json_is_string(type)) {
                if (type_matches(json_string_value(type), inst))
                        return 0;
                return fail(c, -EINVAL, p, "must be of type %s", json_string_value(type));
        }
        for (size_t i = 0; i < json_array_size(type); i++) {
                const char *t = json_string_value(json_array_get(type, i));
                if (type_matches(t, inst))
                        return 0;
                if (n < sizeof(names))
                        n += snprintf(names + n, sizeof(names) - n, "%s%s", i ? " or " : "", t);
        }
        return fail(c, -EINVAL, p, "must be of type %s", names);
}

static int validate_enum(struct ctx *c, const json_t *schema, const json_t *inst, const struct path *p) {
        const json_t *e = json_object_get(schema, "enum"), *k = json_object_get(schema, "const");

        if (e) {
                bool found = false;
                for (size_t i = 0; i < json_array_size(e) && !found; i++)
                        found = json_equal_value(json_array_get(e, i), inst, 0);
                if (!found) {
                        _cleanup_free_ char *list = json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
                        return fail(c, -EINVAL, p, "must be one of %s", list ? list : "the allowed values");
                }
        }
        if (k && !json_equal_value(k, inst, 0)) {
                _cleanup_free_ char *value = json_dumps(k, JSON_COMPACT | JSON_ENCODE_ANY);
                return fail(c, -EINVAL, p, "must be %s", value ? value : "the constant value");
        }
        return 0;
}

static int validate_number(struct ctx *c, const json_t *schema, const json_t *inst, const struct path *p) {
        static const struct {
                const char *keyword;
                int bad_if;     /* fail when cmp(inst, limit) has this sign … */
                bool or_equal;  /* … or is 0 */
                const char *op;
        } limits[] = {
                { "minimum", -1, false, ">=" },
                { "maximum", 1, false, "<=" },
                { "exclusiveMinimum", -1, true, ">" },
                { "exclusiveMaximum", 1, true, "<" },
        };
        char num[64];

        for (size_t i = 0; i < ELEMENTSOF(limits); i++) {
                const json_t *limit = json_object_get(schema, limits[i].keyword);
                int s;

                if (!limit)
                        continue;
                s = json_num_cmp(inst, limit);
                if (s == limits[i].bad_if || (s == 0 && limits[i].or_equal))
                        return fail(c, -EINVAL, p, "must be %s %s", limits[i].op, num_format(limit, num, sizeof(num)));
        }
        return 0;
}

static size_t utf8_code_points(const char *s, size_t len) {
        size_t n = 0;

        for (size_t i = 0; i < len; i++)
                if (((unsigned char) s[i] & 0xc0) != 0x80)
                        n++;
        return n;
}

static int validate_string(struct ctx *c, const json_t *schema, const json_t *inst, const struct path *p) {
        const json_t *pattern = json_object_get(schema, "pattern");
        const char *s = json_string_value(inst);
        size_t len = json_string_length(inst), cps = utf8_code_points(s, len);
        long long n;

        if (json_as_count(json_object_get(schema, "minLength"), &n) && cps < (unsigned long long) n)
                return fail(c, -EINVAL, p, "must be at least %lld characters long", n);
        if (json_as_count(json_object_get(schema, "maxLength"), &n) && cps > (unsigned long long) n)
                return fail(c, -EINVAL, p, "must be at most %lld characters long", n);
        if (pattern) {
                int slot = pattern_compiled(json_string_value(pattern));

                if (slot < 0)
                        return fail(c, -EOPNOTSUPP, p, "pattern does not compile");
                /* regexec stops at a NUL: a string with an embedded one never matches. */
                if (strlen(s) != len || !pattern_match(slot, s, len))
                        return fail(c, -EINVAL, p, "does not match pattern %s", json_string_value(pattern));
        }
        return 0;
}

static int validate_node(struct ctx *c, const json_t *schema, const json_t *inst, const struct path *p,
                         unsigned depth);

static int validate_array(struct ctx *c, const json_t *schema, const json_t *inst, const struct path *p,
                          unsigned depth) {
        const json_t *items = json_object_get(schema, "items");
        size_t size = json_array_size(inst);
        long long n;

        if (json_as_count(json_object_get(schema, "minItems"), &n) && size < (unsigned long long) n)
                return fail(c, -EINVAL, p, "must have at least %lld items", n);
        if (json_as_count(json_object_get(schema, "maxItems"), &n) && size > (unsigned long long) n)
                return fail(c, -EINVAL, p, "must have at most %lld items", n);
        for (size_t i = 0; items && i < size; i++) {
                struct path ip = { p, NULL, i };
                int r = validate_node(c, items, json_array_get(inst, i), &ip, depth + 1);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int validate_object(struct ctx *c, const json_t *schema, const json_t *inst, const struct path *p,
                           unsigned depth) {
        const json_t *required = json_object_get(schema, "required");
        const json_t *props = json_object_get(schema, "properties");
        const json_t *extra = json_object_get(schema, "additionalProperties");
        const char *k;
        json_t *v;

        for (size_t i = 0; i < json_array_size(required); i++) {
                const char *name = json_string_value(json_array_get(required, i));
                struct path rp = { p, name, 0 };
                if (!json_object_get(inst, name))
                        return fail(c, -EINVAL, &rp, "required");
        }
        /* Unexpected properties first, so a misspelt name is reported as such. */
        json_object_foreach((json_t *) inst, k, v) {
                if (json_object_get(props, k) || !extra)
                        continue;
                if (json_is_false(extra)) {
                        char shown[SCHEMA_MAX_KEY_SHOWN + 1];
                        key_shown(k, shown, sizeof(shown));
                        return fail(c, -EINVAL, p, "unexpected property \"%s\"", shown);
                }
        }
        json_object_foreach((json_t *) props, k, v) {
                json_t *value = json_object_get(inst, k);
                struct path vp = { p, k, 0 };
                int r;

                if (!value)
                        continue;
                r = validate_node(c, v, value, &vp, depth + 1);
                if (r < 0)
                        return r;
        }
        if (extra && !json_is_boolean(extra))
                json_object_foreach((json_t *) inst, k, v) {
                        struct path vp = { p, k, 0 };
                        int r;

                        if (json_object_get(props, k))
                                continue;
                        r = validate_node(c, extra, v, &vp, depth + 1);
                        if (r < 0)
                                return r;
                }
        return 0;
}

static int validate_node(struct ctx *c, const json_t *schema, const json_t *inst, const struct path *p,
                         unsigned depth) {
        const json_t *type;
        int r;

        if (depth > BASTION_MAX_JSON_DEPTH)
                return fail(c, -EOPNOTSUPP, p, "schema nested too deeply");
        if (json_is_true(schema))
                return 0;
        if (json_is_false(schema))
                return fail(c, -EINVAL, p, "not allowed");
        type = json_object_get(schema, "type");
        if (type) {
                r = validate_type(c, type, inst, p);
                if (r < 0)
                        return r;
        }
        r = validate_enum(c, schema, inst, p);
        if (r < 0)
                return r;
        if (json_is_number(inst))
                return validate_number(c, schema, inst, p);
        if (json_is_string(inst))
                return validate_string(c, schema, inst, p);
        if (json_is_array(inst))
                return validate_array(c, schema, inst, p, depth);
        if (json_is_object(inst))
                return validate_object(c, schema, inst, p, depth);
        return 0;
}

int schema_check(const json_t *schema, char *err, size_t errlen) {
        struct ctx c = { err, errlen };

        if (err && errlen > 0)
                err[0] = '\0';
        if (!schema)
                return fail(&c, -EOPNOTSUPP, NULL, "no schema");
        return check_node(&c, schema, NULL, 0);
}

int schema_validate_checked(const json_t *schema, const json_t *instance, char *err, size_t errlen) {
        struct ctx c = { err, errlen };

        if (err && errlen > 0)
                err[0] = '\0';
        if (!schema)
                return fail(&c, -EOPNOTSUPP, NULL, "no schema");
        if (!instance)
                return fail(&c, -EINVAL, NULL, "no value");
        return validate_node(&c, schema, instance, NULL, 0);
}

int schema_validate(const json_t *schema, const json_t *instance, char *err, size_t errlen) {
        int r = schema_check(schema, err, errlen);

        return r < 0 ? r : schema_validate_checked(schema, instance, err, errlen);
}
