/* bastionctl approvals list | approve ID | deny ID: four-eyes approvals, decided by the broker (which
 * knows roles and requesters); the supervisor forwards the request with our SO_PEERCRED. */
#include "config.h"

#include <getopt.h>
#include <string.h>
#include <time.h>

#include "bastionctl.h"
#include "util.h"

static void usage(FILE *f) {
        fprintf(f, "Usage: bastionctl approvals list [--json]\n"
                   "       bastionctl approvals approve ID\n"
                   "       bastionctl approvals deny ID\n"
                   "Deciding needs a role holding approvals:grant, and not being the requester. See bastionctl(8).\n");
}

static void print_time_ms(json_int_t ms) {
        time_t t = (time_t) (ms / 1000);
        char buf[32];

        strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", gmtime(&t));
        printf("%-19s", buf);
}

static void print_list(json_t *list, json_int_t omitted) {
        size_t i;
        json_t *a;

        if (json_array_size(list) == 0 && omitted == 0) {
                printf("No approvals.\n");
                return;
        }
        printf("%-16s %-8s %-10s %-12s %-18s %-19s %s\n", "ID", "STATE", "REQUESTER", "SERVER", "TOOL", "EXPIRES (UTC)",
               "ARGUMENTS");
        json_array_foreach(list, i, a) {
                _cleanup_free_ char *args = json_dumps(json_object_get(a, "arguments"), JSON_COMPACT | JSON_SORT_KEYS);
                printf("%-16s %-8s %-10s %-12s %-18s ", json_string_value(json_object_get(a, "id")),
                       json_string_value(json_object_get(a, "state")), json_string_value(json_object_get(a, "requester")),
                       json_string_value(json_object_get(a, "server")), json_string_value(json_object_get(a, "tool")));
                print_time_ms(json_integer_value(json_object_get(a, "expires_ms")));
                if (json_object_get(a, "arguments"))
                        printf(" %s\n", args ?: "");
                else    /* too long to list: the digest the approval is bound to */
                        printf(" (%" JSON_INTEGER_FORMAT " bytes, digest %s)\n",
                               json_integer_value(json_object_get(a, "arguments_bytes")),
                               json_string_value(json_object_get(a, "arguments_digest")) ?: "?");
        }
        if (omitted > 0)
                printf("… and %" JSON_INTEGER_FORMAT " more not shown (the list is bounded)\n", omitted);
}

int ctl_approvals(int argc, char **argv) {
        enum { ARG_JSON = 0x100 };
        static const struct option options[] = {
                { "json", no_argument, NULL, ARG_JSON },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        _cleanup_json_ json_t *req = NULL, *reply = NULL;
        const char *op;
        int c, n;

        optind = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_JSON: arg_json = true; break;
                case 'h': usage(stdout); return 0;
                default: return 2;
                }
        n = argc - optind;
        op = n > 0 ? argv[optind] : NULL;
        if (!((streq(op, "list") && n == 1) || ((streq(op, "approve") || streq(op, "deny")) && n == 2))) {
                usage(stderr);
                return 2;
        }
        req = json_pack("{s:s, s:s}", "command", "approvals", "op", op);
        if (n == 2)
                json_object_set_new(req, "id", json_string(argv[optind + 1]));
        if (control_call(req, &reply) < 0)
                return 1;
        if (!json_is_true(json_object_get(reply, "ok")))
                return control_print_error(reply);
        if (arg_json) {
                json_dumpf(reply, stdout, JSON_COMPACT);
                putchar('\n');
        } else if (n == 1) {
                print_list(json_object_get(reply, "approvals"), json_integer_value(json_object_get(reply, "omitted")));
        } else {
                json_t *a = json_object_get(reply, "approval");
                printf("approval %s %s by %s\n", json_string_value(json_object_get(a, "id")),
                       json_string_value(json_object_get(a, "state")), json_string_value(json_object_get(a, "decided_by")));
        }
        return 0;
}
