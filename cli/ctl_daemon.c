/* bastionctl status | workers | reload: what the supervisor knows about itself and its children. */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <string.h>

#include "bastionctl.h"
#include "util.h"

/* Every command of this group takes only --json (and --help). */
static int parse_options(int argc, char **argv, const char *usage) {
        enum { ARG_JSON = 0x100 };
        static const struct option options[] = {
                { "json", no_argument, NULL, ARG_JSON },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        int c;

        optind = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_JSON: arg_json = true; break;
                case 'h': printf("Usage: bastionctl %s [--json]\nSee bastionctl(8).\n", usage); return 0;
                default: return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "bastionctl: %s takes no arguments\n", usage);
                return -EINVAL;
        }
        return 1;
}

/* Sends {"command": name}; 0 with the successful answer, or the exit status to return. */
static int call(const char *name, json_t **ret) {
        _cleanup_json_ json_t *req = json_pack("{s:s}", "command", name);
        json_t *reply;

        if (control_call(req, &reply) < 0)
                return 1;
        if (!json_is_true(json_object_get(reply, "ok"))) {
                control_print_error(reply);
                json_decref(reply);
                return 1;
        }
        if (arg_json) {
                json_dumpf(reply, stdout, JSON_COMPACT);
                putchar('\n');
                json_decref(reply);
                return 0;
        }
        *ret = reply;
        return -1;
}

static const char *str(json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key)) ?: "-";
}

static json_int_t num(json_t *o, const char *key) {
        return json_integer_value(json_object_get(o, key));
}

static void print_uptime(json_int_t s) {
        if (s >= 86400)
                printf("%" JSON_INTEGER_FORMAT "d ", s / 86400);
        printf("%02" JSON_INTEGER_FORMAT ":%02" JSON_INTEGER_FORMAT ":%02" JSON_INTEGER_FORMAT, (s / 3600) % 24,
               (s / 60) % 60, s % 60);
}

int ctl_status(int argc, char **argv) {
        _cleanup_json_ json_t *r = NULL;
        json_t *b, *w;
        int k;

        if ((k = parse_options(argc, argv, "status")) <= 0)
                return k < 0 ? 2 : 0;
        if ((k = call("status", &r)) >= 0)
                return k;
        b = json_object_get(r, "broker");
        w = json_object_get(r, "workers");
        printf("bastiond:  %s (pid %" JSON_INTEGER_FORMAT "), version %s, up ", str(r, "state"), num(r, "pid"), str(r, "version"));
        print_uptime(num(r, "uptime_sec"));
        printf(", %" JSON_INTEGER_FORMAT " reload(s)\n", num(r, "reloads"));
        printf("config:    %s\n", str(r, "config"));
        printf("broker:    %s (pid %" JSON_INTEGER_FORMAT ")%s, %" JSON_INTEGER_FORMAT " restart(s)\n", str(b, "state"),
               num(b, "pid"), json_is_true(json_object_get(b, "ready")) ? ", ready" : ", not ready", num(b, "restarts"));
        if ((b = json_object_get(r, "front")))
                printf("front:     %s (pid %" JSON_INTEGER_FORMAT "), %" JSON_INTEGER_FORMAT " restart(s), %s, %s\n",
                       str(b, "state"), num(b, "pid"), num(b, "restarts"), str(b, "listen"), str(b, "public_url"));
        printf("workers:   %" JSON_INTEGER_FORMAT " configured: %" JSON_INTEGER_FORMAT " running, %" JSON_INTEGER_FORMAT
               " starting, %" JSON_INTEGER_FORMAT " backoff, %" JSON_INTEGER_FORMAT " failed, %" JSON_INTEGER_FORMAT
               " stopping\n", num(w, "total"), num(w, "running"), num(w, "starting"), num(w, "backoff"), num(w, "failed"),
               num(w, "stopping"));
        return 0;
}

/* "none" when every set is empty (what a confined process must show), else each set by name. */
static void format_caps(json_t *caps, char *buf, size_t n) {
        static const char *const sets[] = { "eff", "prm", "inh", "bnd", "amb" };
        size_t len = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(sets); i++) {
                const char *v = json_string_value(json_object_get(caps, sets[i]));
                if (v && strspn(v, "0") != strlen(v))
                        len += snprintf(buf + len, len < n ? n - len : 0, "%s%s=%s", len ? "," : "", sets[i], v + strspn(v, "0"));
        }
        if (!buf[0])
                snprintf(buf, n, "none");
}

static void print_worker_row(json_t *p) {
        json_t *a = json_object_get(p, "attestation");
        char pid[16] = "-", caps[128] = "-", seccomp[8] = "-", landlock[8] = "-";
        const char *nnp = "-", *ns = "-", *verdict = "-";

        if (num(p, "pid") > 0)
                snprintf(pid, sizeof(pid), "%" JSON_INTEGER_FORMAT, num(p, "pid"));
        if (json_is_object(a)) {
                format_caps(json_object_get(a, "capabilities"), caps, sizeof(caps));
                snprintf(seccomp, sizeof(seccomp), "%" JSON_INTEGER_FORMAT, num(a, "seccomp"));
                if (num(a, "landlock_abi") >= 0)
                        snprintf(landlock, sizeof(landlock), "%" JSON_INTEGER_FORMAT, num(a, "landlock_abi"));
                nnp = json_is_true(json_object_get(a, "no_new_privs")) ? "yes" : "no";
                ns = str(a, "namespaces");
                verdict = json_is_true(json_object_get(a, "ok")) ? "yes" : "no";
        }
        printf("%-16s %-6s %-8s %-9s %8" JSON_INTEGER_FORMAT " %6" JSON_INTEGER_FORMAT " %-8s %-7s %-3s %-10s %-6s %s\n",
               str(p, "name"), str(p, "kind"), pid, str(p, "state"), num(p, "restarts"), num(p, "uid"), verdict, seccomp,
               nnp, caps, ns, landlock);
}

int ctl_workers(int argc, char **argv) {
        _cleanup_json_ json_t *r = NULL;
        size_t i;
        json_t *p;
        int k;

        if ((k = parse_options(argc, argv, "workers")) <= 0)
                return k < 0 ? 2 : 0;
        if ((k = call("workers", &r)) >= 0)
                return k;
        printf("%-16s %-6s %-8s %-9s %8s %6s %-8s %-7s %-3s %-10s %-6s %s\n", "NAME", "KIND", "PID", "STATE", "RESTARTS",
               "UID", "ATTESTED", "SECCOMP", "NNP", "CAPS", "NS", "LANDLOCK");
        json_array_foreach(json_object_get(r, "workers"), i, p)
                print_worker_row(p);
        json_array_foreach(json_object_get(r, "workers"), i, p) {
                const char *reason = json_string_value(json_object_get(json_object_get(p, "attestation"), "reason"));
                if (!reason || !*reason)
                        reason = json_string_value(json_object_get(p, "reason"));
                if (reason && *reason)
                        printf("%s: %s\n", str(p, "name"), reason);
        }
        return 0;
}

static void print_names(const char *label, json_t *a) {
        size_t i;
        json_t *v;

        printf("%s", label);
        if (json_array_size(a) == 0)
                printf(" none");
        json_array_foreach(a, i, v)
                printf(" %s", json_string_value(v));
        putchar('\n');
}

int ctl_reload(int argc, char **argv) {
        _cleanup_json_ json_t *r = NULL;
        int k;

        if ((k = parse_options(argc, argv, "reload")) <= 0)
                return k < 0 ? 2 : 0;
        if ((k = call("reload", &r)) >= 0)
                return k;
        print_names("added:  ", json_object_get(r, "added"));
        print_names("removed:", json_object_get(r, "removed"));
        print_names("changed:", json_object_get(r, "changed"));
        return 0;
}
