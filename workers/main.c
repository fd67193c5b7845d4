/* bastion-worker DOMAIN --db PATH [--fd N] [--demo-data] [--sandbox]: one domain's MCP server. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "json_alloc.h"
#include "log.h"
#include "sandbox.h"
#include "util.h"
#include "workers/worker.h"

/* Adding a domain: a directory under workers/ with its table, and one line here. */
static const struct domain *const domains[] = {
        &inventory_domain,
        &orders_domain,
        &logistics_domain,
        &returns_domain,
        &payments_domain,
        &conformance_domain,
};

struct args {
        const struct domain *domain;
        const char *db;
        int fd;                 /* -1: stdin/stdout */
        bool demo_data;
        bool sandbox;
};

static void help(void) {
        printf("Usage: bastion-worker DOMAIN --db PATH [--fd N] [--demo-data] [--sandbox]\n\n"
               "Serve one domain as an MCP server (protocol %s), one JSON-RPC message per line.\n\n"
               "  --db PATH     SQLite database of the domain (created when missing)\n"
               "  --fd N        read and write MCP on file descriptor N instead of stdin/stdout\n"
               "  --demo-data   seed the demo data set into an empty database\n"
               "  --sandbox     lock the process down (seccomp, Landlock) after opening the database\n"
               "  -h, --help    show this help\n"
               "      --version show the version\n\n"
               "Domains:", WORKER_PROTOCOL_VERSION);
        for (size_t i = 0; i < ELEMENTSOF(domains); i++)
                printf(" %s", domains[i]->name);
        printf("\n");
}

static int parse_fd(const char *s, int *ret) {
        char *end;
        long v;

        errno = 0;
        v = strtol(s, &end, 10);
        if (errno || end == s || *end || v < 0 || v > INT_MAX)
                return -EINVAL;
        *ret = (int) v;
        return 0;
}

/* Returns 1 to run, 0 to exit successfully (help, version), negative errno on a usage error. */
static int parse_args(int argc, char **argv, struct args *a) {
        enum { ARG_DB = 0x100, ARG_FD, ARG_DEMO, ARG_SANDBOX, ARG_VERSION };
        static const struct option options[] = {
                { "db", required_argument, NULL, ARG_DB },
                { "fd", required_argument, NULL, ARG_FD },
                { "demo-data", no_argument, NULL, ARG_DEMO },
                { "sandbox", no_argument, NULL, ARG_SANDBOX },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        int c;

        *a = (struct args) { .fd = -1 };
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_DB:
                        a->db = optarg;
                        break;
                case ARG_FD:
                        if (parse_fd(optarg, &a->fd) < 0)
                                return log_error_errno(EINVAL, "Invalid --fd: %s", optarg);
                        break;
                case ARG_DEMO:
                        a->demo_data = true;
                        break;
                case ARG_SANDBOX:
                        a->sandbox = true;
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("bastion-worker %s\n", PACKAGE_VERSION);
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind + 1 != argc)
                return log_error_errno(EINVAL, "Expected exactly one DOMAIN argument (see --help)");
        for (size_t i = 0; i < ELEMENTSOF(domains); i++)
                if (streq(domains[i]->name, argv[optind]))
                        a->domain = domains[i];
        if (!a->domain)
                return log_error_errno(EINVAL, "Unknown domain: %s", argv[optind]);
        if (!a->db)
                return log_error_errno(EINVAL, "--db PATH is required");
        return 1;
}

static int lockdown(const char *db) {
        _cleanup_free_ char *copy = strdup(db);
        int r;

        if (!copy)
                return log_oom();
        /* The database directory also holds SQLite's journal, so it is the one place kept writable. */
        r = sandbox_lockdown(&(struct sandbox_lockdown) {
                .role = SANDBOX_ROLE_WORKER,
                .state_dir = dirname(copy),
        });
        if (r < 0)
                return log_error_errno(r, "Failed to lock down the worker: %m");
        return 0;
}

static void on_stop_signal(int sig) {
        mcp_server_stop();
}

static int run(const struct args *a) {
        struct mcp_server server;
        void *state = NULL;
        int in_fd = a->fd >= 0 ? a->fd : STDIN_FILENO, out_fd = a->fd >= 0 ? a->fd : STDOUT_FILENO;
        int r;

        /* A peer that goes away shows up as EPIPE from write(), not as a signal. SIGTERM and SIGINT
         * end the serving loop between two calls, so the database is closed cleanly. */
        signal(SIGPIPE, SIG_IGN);
        if (sigaction(SIGTERM, &(struct sigaction) { .sa_handler = on_stop_signal }, NULL) < 0 ||
            sigaction(SIGINT, &(struct sigaction) { .sa_handler = on_stop_signal }, NULL) < 0)
                return log_error_errno(errno, "Failed to install signal handlers: %m");
        if (fcntl(in_fd, F_GETFD) < 0)
                return log_error_errno(errno, "File descriptor %d is not open: %m", in_fd);
        if (in_fd != WORKER_CREDENTIAL_FD)
                (void) worker_credential_take();
        r = a->domain->open(a->db, a->demo_data, &state);
        if (r < 0)
                return r;
        r = mcp_server_init(&server, a->domain, state, out_fd);
        if (r >= 0 && a->sandbox)
                r = lockdown(a->db);
        if (r >= 0) {
                log_info("Serving %s from %s", a->domain->name, a->db);
                r = mcp_server_run(&server, in_fd);
                if (r == -EPIPE || r == -ECONNRESET) {
                        log_info("Peer closed the channel");
                        r = 0;
                } else if (r < 0)
                        log_error_errno(r, "Channel failed: %m");
        }
        mcp_server_done(&server);
        a->domain->close(state);
        return r;
}

int main(int argc, char **argv) {
        struct args a;
        int r;

        json_alloc_install();
        log_open("bastion-worker");
        /* The database and its journal hold business records: readable by this worker only. */
        umask(0077);
        r = parse_args(argc, argv, &a);
        if (r <= 0)
                return r < 0 ? 2 : 0;
        return run(&a) < 0 ? 1 : 0;
}
