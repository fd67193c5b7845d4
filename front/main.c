/* bastion-front entry point and the supervisor channel: the configuration, the TLS certificate and
 * key (again on every reload), the TCP listener and the broker channel arrive on fd 3. Once it has all
 * of them the front locks itself down (nothing can be opened, connected or executed any more) and only
 * then accepts connections. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chan.h"
#include "front.h"
#include "log.h"
#include "sandbox.h"
#include "util.h"

/* Ends the loop; the connections are closed afterwards (front_done), never under a caller's feet. */
void front_exit(struct front *f, int code) {
        f->exiting = true;
        (void) sd_event_exit(f->event, code);
}

static int on_listen(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct front *f = userdata;

        /* A bounded batch per wake-up; the rest waits for the next turn of the loop. */
        for (unsigned i = 0; i < 64; i++) {
                int r = conn_accept(f);
                if (r == 0)
                        break;
                if (r < 0) {
                        log_warning_errno(r, "Cannot accept a connection: %m");
                        break;
                }
        }
        return 0;
}

static void authorities_free(struct front *f) {
        for (size_t i = 0; i < f->n_hosts; i++)
                free((char *) f->hosts[i].host);
        for (size_t i = 0; i < f->n_origins; i++)
                free((char *) f->origins[i].authority.host);
        free(f->hosts);
        free(f->origins);
        f->hosts = NULL;
        f->origins = NULL;
        f->n_hosts = f->n_origins = 0;
}

/* "name:port" (as the supervisor normalised it) into an authority. */
static int authority_parse(const char *s, struct front_authority *ret) {
        const char *colon = strrchr(s, ':');
        char *end;
        unsigned long port;

        if (!colon || colon == s)
                return -EBADMSG;
        port = strtoul(colon + 1, &end, 10);
        if (*end || port == 0 || port > 65535)
                return -EBADMSG;
        ret->host = strndup(s, (size_t) (colon - s));
        ret->port = (uint16_t) port;
        return ret->host ? 0 : -ENOMEM;
}

static int authorities_build(struct front *f, const struct http_config *h) {
        int r;

        f->hosts = calloc(h->n_hosts + 1, sizeof(*f->hosts));
        f->origins = calloc(h->n_origins + 1, sizeof(*f->origins));
        if (!f->hosts || !f->origins)
                return -ENOMEM;
        for (size_t i = 0; i < h->n_hosts; i++) {
                if ((r = authority_parse(h->hosts[i], &f->hosts[i])) < 0)
                        return r;
                f->n_hosts++;
        }
        for (size_t i = 0; i < h->n_origins; i++) {
                const char *o = h->origins[i];
                bool tls = strncmp(o, "https://", 8) == 0;

                if (!tls && strncmp(o, "http://", 7) != 0)
                        return -EBADMSG;
                f->origins[i].tls = tls;
                if ((r = authority_parse(o + (tls ? 8 : 7), &f->origins[i].authority)) < 0)
                        return r;
                f->n_origins++;
        }
        return 0;
}

static int apply_config(struct front *f, json_t *payload) {
        struct bastion_config next;
        int r;

        r = config_from_json(payload, &next);
        if (r < 0 || !next.http) {
                if (r >= 0)
                        config_free(&next);
                return log_error_errno(r < 0 ? r : EBADMSG, "The supervisor sent a configuration that does not parse: %m");
        }
        if (f->have_config && next.http->plain != f->config.http->plain) {
                config_free(&next);
                return log_error_errno(EBADMSG, "http.plain changed under a running front");
        }
        authorities_free(f);
        config_free(&f->config);
        f->config = next;
        f->have_config = true;
        f->limits = HTTP_LIMITS_DEFAULT;
        f->limits.max_body = f->config.http->max_body;
        r = authorities_build(f, f->config.http);
        if (r < 0)
                return log_error_errno(r, "Cannot use the configured hosts and origins: %m");
        log_info("configuration applied: %zu server(s), %zu host name(s), %zu origin(s)", f->config.n_servers,
                 f->n_hosts, f->n_origins);
        return 0;
}

/* CHAN_TLS: a new context from the PEM bytes. At start a bad pair is fatal (the supervisor retries with
 * backoff); on a reload it leaves the running context in place. */
static int apply_tls(struct front *f, json_t *payload) {
        const char *cert, *key;
        size_t cert_len, key_len;
        SSL_CTX *ctx = NULL;
        int r;

        if (json_unpack(payload, "{s:s%, s:s% !}", "cert_pem", &cert, &cert_len, "key_pem", &key, &key_len) < 0)
                return -EBADMSG;
        r = tls_server_context_new(cert, cert_len, key, key_len, &ctx);
        /* The key stays only in OpenSSL's context. */
        explicit_bzero((char *) key, key_len);
        if (r < 0) {
                if (!f->tls.ctx)
                        return log_error_errno(r, "The TLS certificate or key is not usable: %m");
                log_warning_errno(r, "The new TLS certificate or key is not usable: %m; keeping the current one");
                return 0;
        }
        if (f->tls.ctx)
                log_info("TLS certificate reloaded; open connections keep the previous one");
        SSL_CTX_free(f->tls.ctx);
        f->tls.ctx = ctx;
        return 0;
}

static int set_fd(int *slot, struct chan_msg *m, const char *what) {
        int fd = chan_msg_take_fd(m, 0);

        if (fd < 0)
                return fd;
        if (*slot >= 0) {
                safe_close(fd);
                return log_error_errno(EEXIST, "The supervisor sent a second %s", what);
        }
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
                safe_close(fd);
                return log_error_errno(errno, "Cannot make the %s non-blocking: %m", what);
        }
        *slot = fd;
        return 0;
}

/* Everything is here: lock down, then start accepting. */
static int maybe_start(struct front *f) {
        int r;

        if (f->locked || !f->have_config || f->listen_fd < 0 || f->broker_fd < 0 ||
            (!f->config.http->plain && !f->tls.ctx))
                return 0;
        r = relay_start(f, f->broker_fd);
        if (r < 0)
                return r;
        r = sandbox_lockdown(&(struct sandbox_lockdown) { .role = SANDBOX_ROLE_FRONT });
        if (r < 0)
                return r;
        f->locked = true;
        r = sd_event_add_io(f->event, &f->listen_io, f->listen_fd, EPOLLIN, on_listen, f);
        if (r < 0)
                return log_error_errno(r, "Cannot watch the listener: %m");
        log_info("locked down; serving %s (%s), at most %u connections, %u per address", f->config.http->public_url,
                 f->config.http->plain ? "plain HTTP" : "TLS", f->config.http->max_connections,
                 f->config.http->max_connections_per_address);
        return 0;
}

/* The supervisor is more privileged, but its messages are still checked: an unexpected type or fd
 * count ends the front. */
static int dispatch_supervisor(struct front *f, struct chan_msg *m) {
        static const struct {
                uint32_t type;
                unsigned n_fds;
        } expected[] = {
                { CHAN_CONFIG, 0 }, { CHAN_TLS, 0 }, { CHAN_LISTENER, 1 }, { CHAN_FRONT, 1 },
        };
        bool known = false;

        for (size_t i = 0; i < ELEMENTSOF(expected); i++)
                if (expected[i].type == m->type)
                        known = expected[i].n_fds == m->n_fds;
        if (!known)
                return -EBADMSG;
        switch (m->type) {
        case CHAN_CONFIG:
                return apply_config(f, m->payload);
        case CHAN_TLS:
                return apply_tls(f, m->payload);
        case CHAN_LISTENER:
                return set_fd(&f->listen_fd, m, "listener");
        case CHAN_FRONT:
                return set_fd(&f->broker_fd, m, "broker channel");
        }
        return -EBADMSG;
}

static int on_supervisor(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct front *f = userdata;
        struct chan_msg m;
        int r;

        r = chan_recv(fd, &m);
        if (r == -EAGAIN)
                return 0;
        if (r == 0) {
                log_info("the supervisor closed the channel; exiting");
                return front_exit(f, 0), 0;
        }
        if (r < 0) {
                log_error_errno(r, "Bad message from the supervisor: %m");
                return front_exit(f, 1), 0;
        }
        r = dispatch_supervisor(f, &m);
        chan_msg_done(&m);
        if (r >= 0)
                r = maybe_start(f);
        if (r < 0) {
                log_error_errno(r, "Cannot act on a supervisor message: %m");
                return front_exit(f, 1), 0;
        }
        return 0;
}

static int on_stop(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct front *f = userdata;

        log_info("stopping: closing %u connection(s)", f->n_conns);
        front_exit(f, 0);
        return 0;
}

static void front_done(struct front *f) {
        conns_close_all(f, NULL);
        while (f->queue_head) {
                struct relay_msg *m = f->queue_head;
                f->queue_head = m->next;
                front_out_done(&m->out);
                free(m);
        }
        sd_event_source_disable_unref(f->listen_io);
        sd_event_source_disable_unref(f->broker_io);
        sd_event_source_disable_unref(f->sup_io);
        sd_event_source_disable_unref(f->sigterm);
        sd_event_source_disable_unref(f->sigint);
        sd_event_source_disable_unref(f->trim);
        safe_close(f->listen_fd);
        safe_close(f->broker_fd);
        SSL_CTX_free(f->tls.ctx);
        authorities_free(f);
        for (size_t i = 0; i < FRONT_PEER_BUCKETS; i++)
                while (f->peers[i]) {
                        struct peer *p = f->peers[i];
                        f->peers[i] = p->next;
                        free(p);
                }
        outbuf_done(&f->scratch);
        config_free(&f->config);
        sd_event_unref(f->event);
}

static int front_setup(struct front *f) {
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "Cannot block signals: %m");
        r = sd_event_new(&f->event);
        if (r < 0)
                return log_error_errno(r, "Cannot create the event loop: %m");
        if ((r = sd_event_add_signal(f->event, &f->sigterm, SIGTERM, on_stop, f)) < 0 ||
            (r = sd_event_add_signal(f->event, &f->sigint, SIGINT, on_stop, f)) < 0)
                return log_error_errno(r, "Cannot watch signals: %m");
        if (fcntl(FRONT_SUPERVISOR_FD, F_SETFL, O_NONBLOCK) < 0)
                return log_error_errno(errno, "Cannot set up fd 3: %m");
        r = sd_event_add_io(f->event, &f->sup_io, FRONT_SUPERVISOR_FD, EPOLLIN, on_supervisor, f);
        if (r < 0)
                return log_error_errno(r, "Cannot watch the supervisor channel: %m");
        return 0;
}

int main(int argc, char **argv) {
        static struct front f = { .listen_fd = -1, .broker_fd = -1 };
        int r;

        log_open("front");
        /* The TLS key arrives as JSON text (CHAN_TLS): no copy of it may stay in freed memory. */
        json_set_alloc_funcs(malloc, free_wiped);
        if (argc > 1) {
                fprintf(stderr, "bastion-front is started by bastiond(8), with its channel at fd 3; it takes no arguments.\n");
                return 2;
        }
        if (fcntl(FRONT_SUPERVISOR_FD, F_GETFD) < 0) {
                log_error("fd 3 is not open: bastion-front must be started by bastiond");
                return 2;
        }
        /* OpenSSL writes with write(2): a peer that is gone must not kill us. */
        (void) signal(SIGPIPE, SIG_IGN);
        /* Libraries that open files or seed lazily are initialised now, before any lock-down. */
        json_object_seed(0);
        if (OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL) != 1)
                return log_error("OpenSSL failed to initialise"), 1;
        outbuf_init(&f.scratch, BASTION_HTTP_MAX_OUTPUT);
        r = front_setup(&f);
        if (r >= 0)
                r = sd_event_loop(f.event);
        front_done(&f);
        return r < 0 ? 1 : r;
}
