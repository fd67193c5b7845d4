/* bastion-stdio SERVER [--socket PATH]: the stdio MCP server an MCP host runs, relaying to bastiond's
 * local socket. The broker identifies the caller by SO_PEERCRED, so this program holds no secret. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "bounds.h"
#include "util.h"

#define DEFAULT_SOCKET "/run/bastion/mcp.sock"

/* Exit codes (bastion-stdio(1)): 1 = no connection or a relay failure, 2 = the broker refused. */
enum { EXIT_NOCONN = 1, EXIT_REFUSED = 2, EXIT_SIGNALED = -1 };

/* A termination signal ends the relay through the normal exit path, so stdin and stdout get their
 * flags back before the signal is re-raised. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) {
        stop_signal = sig;
}

struct args {
        const char *server;
        const char *socket;
};

/* One direction of the relay: bytes read from one fd that the other has not taken yet. */
struct pipebuf {
        char data[BASTION_STDIO_BUFFER];
        size_t start, len;
        bool eof;               /* the source has no more to give */
};

static void help(void) {
        printf("Usage: bastion-stdio SERVER [--socket PATH]\n\n"
               "Serve the Bastion MCP server SERVER on stdin/stdout by relaying to bastiond.\n\n"
               "  --socket PATH  bastiond's local MCP socket (default %s)\n"
               "  -h, --help     show this help\n"
               "      --version  show the version\n", DEFAULT_SOCKET);
}

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
        int saved_errno = errno;
        va_list ap;

        fputs("bastion-stdio: ", stderr);
        errno = saved_errno;    /* for %m */
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

/* Returns 1 to run, 0 to exit successfully (help, version), -EINVAL on a usage error. */
static int parse_args(int argc, char **argv, struct args *a) {
        enum { ARG_SOCKET = 0x100, ARG_VERSION };
        static const struct option options[] = {
                { "socket", required_argument, NULL, ARG_SOCKET },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                {}
        };
        int c;

        *a = (struct args) { .socket = DEFAULT_SOCKET };
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_SOCKET:
                        a->socket = optarg;
                        break;
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("bastion-stdio %s\n", PACKAGE_VERSION);
                        return 0;
                default:
                        return -EINVAL;
                }
        if (optind != argc - 1) {
                fail("expected exactly one SERVER argument (see --help)");
                return -EINVAL;
        }
        a->server = argv[optind];
        if (!*a->server || strlen(a->server) > BASTION_MAX_NAME || strpbrk(a->server, " \r\n")) {
                fail("invalid server name \"%s\"", a->server);
                return -EINVAL;
        }
        return 1;
}

static int connect_broker(const char *path) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };

        if (strlen(path) >= sizeof(sa.sun_path)) {
                fail("cannot connect to %s: socket path too long", path);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                fail("cannot create a socket: %m");
                return -errno;
        }
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = -errno;
                if (r == -ENOENT || r == -ECONNREFUSED)
                        fail("cannot connect to %s: %s (is bastiond running?)", path, strerror(-r));
                else
                        fail("cannot connect to %s: %s", path, strerror(-r));
                return r;
        }
        return TAKE_FD(fd);
}

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= k;
        }
        return 0;
}

/* Names the server and reads the one-line answer. Bytes the broker sent after it (none today) are
 * kept in 'down' for stdout. Returns 0 on "ok", or the exit code to leave with. */
static int preamble(int fd, const char *server, const char *path, struct pipebuf *down) {
        char line[BASTION_MAX_PREAMBLE];
        char *nl = NULL;
        size_t len = 0;
        int r;

        snprintf(line, sizeof(line), "server %s\n", server);
        r = write_all(fd, line, strlen(line));
        if (r < 0) {
                fail("cannot talk to %s: %s", path, strerror(-r));
                return EXIT_NOCONN;
        }
        while (!nl) {
                ssize_t k;

                if (len == sizeof(line) - 1) {
                        fail("%s answered with an overlong line; is it bastiond's socket?", path);
                        return EXIT_NOCONN;
                }
                k = read(fd, line + len, sizeof(line) - 1 - len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        fail("%s closed the connection before answering (%s)", path,
                             k < 0 ? strerror(errno) : "end of file");
                        return EXIT_NOCONN;
                }
                len += k;
                line[len] = '\0';
                nl = memchr(line, '\n', len);
        }
        *nl = '\0';
        memcpy(down->data, nl + 1, line + len - (nl + 1));
        down->len = line + len - (nl + 1);
        if (nl > line && nl[-1] == '\r')
                nl[-1] = '\0';
        if (streq(line, "ok"))
                return 0;
        if (strncmp(line, "error ", 6) == 0) {
                fail("%s", line + 6);
                return EXIT_REFUSED;
        }
        fail("unexpected answer from %s: \"%s\"", path, line);
        return EXIT_NOCONN;
}

/* Reads into the free tail of b. Returns 1 when data or EOF arrived, 0 on EAGAIN, -errno on error. */
static int pipebuf_fill(struct pipebuf *b, int fd) {
        ssize_t n;

        if (b->start > 0 && b->len > 0)
                memmove(b->data, b->data + b->start, b->len);
        b->start = 0;
        n = read(fd, b->data + b->len, sizeof(b->data) - b->len);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        if (n == 0)
                b->eof = true;
        b->len += n;
        return 1;
}

/* Writes what fd takes (a short write leaves the rest queued). Returns 0 or -errno. */
static int pipebuf_flush(struct pipebuf *b, int fd) {
        ssize_t n = write(fd, b->data + b->start, b->len);

        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        b->start += n;
        b->len -= n;
        if (b->len == 0)
                b->start = 0;
        return 0;
}

static bool pipebuf_has_room(const struct pipebuf *b) {
        return !b->eof && b->len < sizeof(b->data);
}

/* Both directions at once: the host may send a request while a reply is still arriving. After stdin
 * ends, the write side of the socket is shut down; the broker answers what is in flight, then
 * closes, and we leave once those replies are on stdout. */
static int relay(int sock, struct pipebuf *up, struct pipebuf *down) {
        bool shut = false;

        for (;;) {
                short sock_events = (pipebuf_has_room(down) ? POLLIN : 0) | (up->len > 0 ? POLLOUT : 0);
                /* An fd with nothing to wait for is left out: its POLLHUP would make poll() spin. */
                struct pollfd p[3] = {
                        { .fd = pipebuf_has_room(up) ? STDIN_FILENO : -1, .events = POLLIN },
                        { .fd = sock_events ? sock : -1, .events = sock_events },
                        { .fd = down->len > 0 ? STDOUT_FILENO : -1, .events = POLLOUT },
                };
                int r;

                if (stop_signal)
                        return EXIT_SIGNALED;
                if (down->eof && down->len == 0)
                        return shut ? EXIT_SUCCESS : (fail("bastiond closed the connection"), EXIT_NOCONN);
                if (poll(p, ELEMENTSOF(p), -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return fail("poll failed: %m"), EXIT_NOCONN;
                }
                if (p[0].revents && (r = pipebuf_fill(up, STDIN_FILENO)) < 0)
                        return fail("cannot read standard input: %s", strerror(-r)), EXIT_NOCONN;
                if ((p[1].revents & (POLLIN | POLLHUP | POLLERR)) && pipebuf_has_room(down) &&
                    (r = pipebuf_fill(down, sock)) < 0)
                        return fail("cannot read from bastiond: %s", strerror(-r)), EXIT_NOCONN;
                if ((p[1].revents & POLLOUT) && (r = pipebuf_flush(up, sock)) < 0)
                        return fail("cannot write to bastiond: %s", strerror(-r)), EXIT_NOCONN;
                if (p[2].revents && (r = pipebuf_flush(down, STDOUT_FILENO)) < 0)
                        return r == -EPIPE ? EXIT_SUCCESS :
                               (fail("cannot write standard output: %s", strerror(-r)), EXIT_NOCONN);
                if (up->eof && up->len == 0 && !shut) {
                        if (shutdown(sock, SHUT_WR) < 0 && errno != ENOTCONN)
                                return fail("cannot shut down the connection: %m"), EXIT_NOCONN;
                        shut = true;
                }
        }
}

/* The relay must never block on one side while the other has data; stdin and stdout may be shared
 * with the host, so their flags are put back on the way out. */
static int set_nonblock(int fd, int *ret_old) {
        int fl = fcntl(fd, F_GETFL);

        if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
                return -errno;
        if (ret_old)
                *ret_old = fl;
        return 0;
}

int main(int argc, char **argv) {
        static const int stop_signals[] = { SIGTERM, SIGINT, SIGHUP };
        static struct pipebuf up, down;
        _cleanup_close_ int sock = -1;
        struct args a;
        int r, in_fl = -1, out_fl = -1;

        r = parse_args(argc, argv, &a);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        /* A host that closes stdout gets EPIPE here, not a silent death by signal. */
        signal(SIGPIPE, SIG_IGN);

        sock = connect_broker(a.socket);
        if (sock < 0)
                return EXIT_NOCONN;
        r = preamble(sock, a.server, a.socket, &down);
        if (r != 0)
                return r;
        for (size_t i = 0; i < ELEMENTSOF(stop_signals); i++)
                (void) sigaction(stop_signals[i], &(struct sigaction) { .sa_handler = on_stop_signal }, NULL);
        if (set_nonblock(sock, NULL) < 0 || set_nonblock(STDIN_FILENO, &in_fl) < 0 ||
            set_nonblock(STDOUT_FILENO, &out_fl) < 0) {
                fail("cannot set up the relay: %m");
                r = EXIT_NOCONN;
        } else
                r = relay(sock, &up, &down);
        if (in_fl >= 0)
                (void) fcntl(STDIN_FILENO, F_SETFL, in_fl);
        if (out_fl >= 0)
                (void) fcntl(STDOUT_FILENO, F_SETFL, out_fl);
        if (r == EXIT_SIGNALED) {
                signal(stop_signal, SIG_DFL);
                raise(stop_signal);
        }
        return r;
}
