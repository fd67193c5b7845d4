/* bastionctl [--socket PATH] [--json] COMMAND …: the administrator's tool. Commands are a table of
 * {name, handler, help}; each command group lives in its own cli/ctl_*.c. */
#include "config.h"

#include <getopt.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "bastionctl.h"
#include "bounds.h"
#include "util.h"

const char *arg_socket = BASTIONCTL_DEFAULT_SOCKET;
bool arg_json = false;

struct command {
        const char *name;
        int (*handler)(int argc, char **argv);
        const char *help;
};

static const struct command commands[] = {
        { "status", ctl_status, "the daemon: pid, configuration, uptime, broker, worker counts" },
        { "workers", ctl_workers, "every process: pid, state, restarts, uid and its sandbox attestation" },
        { "reload", ctl_reload, "reload the configuration (like SIGHUP) and print what changed" },
        { "approvals", ctl_approvals, "list | approve ID | deny ID: pending four-eyes approvals" },
        { "audit", ctl_audit, "verify | tail | pubkey: check and read the audit log (files, no daemon)" },
        { "secrets", ctl_secrets, "init | set NAME | list | rm NAME: the encrypted secrets store" },
};

static int connect_control(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;

        if (strlen(arg_socket) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "bastionctl: socket path %s is too long\n", arg_socket);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, arg_socket);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int e = errno;
                fprintf(stderr, "bastionctl: cannot connect to %s: %s%s\n", arg_socket, strerror(e),
                        e == ENOENT || e == ECONNREFUSED ? " (is bastiond running?)" :
                        e == EACCES ? " (root or the admin group only)" : "");
                return -e;
        }
        return TAKE_FD(fd);
}

/* One line out, one line back. */
int control_call(json_t *request, json_t **ret) {
        _cleanup_free_ char *out = json_dumps(request, JSON_COMPACT), *in = NULL;
        _cleanup_close_ int fd = -1;
        size_t len = 0;
        json_error_t err;
        json_t *reply;

        if (!out)
                return -ENOMEM;
        fd = connect_control();
        if (fd < 0)
                return fd;
        if (dprintf(fd, "%s\n", out) < 0 || shutdown(fd, SHUT_WR) < 0) {
                fprintf(stderr, "bastionctl: cannot send to %s: %s\n", arg_socket, strerror(errno));
                return -errno;
        }
        in = malloc(BASTION_MAX_CONTROL_REPLY + 1);
        if (!in)
                return -ENOMEM;
        while (len < BASTION_MAX_CONTROL_REPLY && !memchr(in, '\n', len)) {
                ssize_t n = read(fd, in + len, BASTION_MAX_CONTROL_REPLY - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t) n;
        }
        in[len] = '\0';
        reply = json_loads(in, JSON_DISABLE_EOF_CHECK, &err);
        if (!json_is_object(reply) || !json_is_boolean(json_object_get(reply, "ok"))) {
                json_decref(reply);
                fprintf(stderr, "bastionctl: no valid answer from %s%s\n", arg_socket, len ? "" : " (connection closed)");
                return -EBADMSG;
        }
        *ret = reply;
        return 0;
}

int control_print_error(json_t *reply) {
        const char *e = json_string_value(json_object_get(reply, "error"));

        if (arg_json)
                json_dumpf(reply, stdout, JSON_COMPACT), putchar('\n');
        else
                fprintf(stderr, "bastionctl: %s\n", e ?: "the daemon refused the request");
        return 1;
}

static void help(FILE *f) {
        fprintf(f, "Usage: bastionctl [--socket PATH] [--json] COMMAND [ARGS…]\n\nCommands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
        fprintf(f, "\nOptions:\n"
                "  --socket PATH  control socket (default " BASTIONCTL_DEFAULT_SOCKET ")\n"
                "  --json         print the daemon's raw JSON answer\n"
                "  -h, --help     show this help\n"
                "      --version  show the version\n\nSee bastionctl(8).\n");
}

int main(int argc, char **argv) {
        enum { ARG_SOCKET = 0x100, ARG_JSON, ARG_VERSION };
        static const struct option options[] = {
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "json", no_argument, NULL, ARG_JSON },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        int c;

        /* "+": stop at the command; what follows belongs to it. */
        while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0)
                switch (c) {
                case ARG_SOCKET: arg_socket = optarg; break;
                case ARG_JSON: arg_json = true; break;
                case 'h': help(stdout); return 0;
                case ARG_VERSION: printf("bastionctl %s\n", PACKAGE_VERSION); return 0;
                default: return 2;
                }
        if (optind >= argc) {
                help(stderr);
                return 2;
        }
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(commands[i].name, argv[optind]))
                        return commands[i].handler(argc - optind, argv + optind);
        fprintf(stderr, "bastionctl: unknown command \"%s\" (see bastionctl --help)\n", argv[optind]);
        return 2;
}
