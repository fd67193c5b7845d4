/* bastion-front as a child (the `http` group): the TCP listener (bound here, or taken from systemd socket
 * activation), the broker <-> front channel, and the front itself — spawned sandboxed with its own uid,
 * handed its configuration, listener, TLS certificate and key, and its end of the broker channel on its
 * supervisor channel (fd 3), attested, and only then introduced to the broker (CHAN_FRONT). The front
 * follows the broker: a new broker gets a new front; a front that dies is restarted with backoff and
 * the broker gets the new channel. */
#include "config.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "bastiond.h"
#include "chan.h"
#include "conf_load.h"
#include "front/tls.h"
#include "log.h"
#include "util.h"

bool front_configured(const struct supervisor *sup) {
        return sup->config.http != NULL;
}

static bool sockaddr_is_loopback(const struct sockaddr_storage *sa) {
        if (sa->ss_family == AF_INET)
                return (ntohl(((const struct sockaddr_in *) sa)->sin_addr.s_addr) >> 24) == 127;
        if (sa->ss_family == AF_INET6)
                return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *) sa)->sin6_addr);
        return false;
}

/* A TCP listener systemd passed us (bastiond.socket), or -ENOENT. Other passed fds are closed: nothing
 * else is expected. */
static int front_activated_listener(void) {
        int n = sd_listen_fds(true), found = -ENOENT;

        for (int fd = SD_LISTEN_FDS_START; n > 0 && fd < SD_LISTEN_FDS_START + n; fd++) {
                if (found < 0 && (sd_is_socket_inet(fd, AF_INET, SOCK_STREAM, 1, 0) > 0 ||
                                  sd_is_socket_inet(fd, AF_INET6, SOCK_STREAM, 1, 0) > 0)) {
                        found = fd;
                        continue;
                }
                log_warning("Ignoring passed fd %d: not a listening TCP socket", fd);
                (void) close(fd);
        }
        return found;
}

static int front_bind(const struct http_config *h) {
        _cleanup_close_ int fd = -1;
        struct sockaddr_storage sa;
        socklen_t sa_len;
        bool loopback, wildcard;
        int one = 1;

        if (http_listen_address(h->listen, &sa, &sa_len, &loopback, &wildcard) < 0)
                return log_error_errno(EINVAL, "Invalid http.listen %s", h->listen);
        fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(errno, "Cannot create the HTTP listener: %m");
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        /* Accepted connections inherit it (the front may not call setsockopt): an SSE event goes out
         * at once instead of waiting for the client's delayed ACK of the previous one. */
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (sa.ss_family == AF_INET6)
                (void) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *) &sa, sa_len) < 0)
                return log_error_errno(errno, "Cannot bind %s: %m", h->listen);
        if (listen(fd, SOMAXCONN) < 0)
                return log_error_errno(errno, "Cannot listen on %s: %m", h->listen);
        return TAKE_FD(fd);
}

int front_listen(struct supervisor *sup) {
        const struct http_config *h = sup->config.http;
        struct sockaddr_storage sa = {};
        socklen_t len = sizeof(sa);
        int fd = front_activated_listener();

        if (!h) {
                if (fd >= 0) {
                        log_warning("A TCP listener was passed (socket activation) but no http group is configured; "
                                    "closing it");
                        (void) close(fd);
                }
                return 0;
        }
        if (fd >= 0) {
                /* The configured rule holds for the listener systemd made too. */
                if (getsockname(fd, (struct sockaddr *) &sa, &len) < 0)
                        return log_error_errno(errno, "Cannot read the activated listener's address: %m");
                if (h->plain && !sockaddr_is_loopback(&sa)) {
                        (void) close(fd);
                        return log_error_errno(EPERM, "http.plain is set but the activated listener is not on a "
                                               "loopback address; refusing to serve plain HTTP");
                }
                if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
                        return log_error_errno(errno, "Cannot set up the activated listener: %m");
                log_info("HTTP: using the listener passed by systemd (socket activation)");
        } else {
                fd = front_bind(h);
                if (fd < 0)
                        return fd;
                log_info("HTTP: listening on %s (%s)", h->listen, h->plain ? "plain HTTP, loopback" : "TLS");
        }
        sup->http_fd = fd;
        return 0;
}

/* A PEM file, read whole (the front cannot open files). */
static int read_pem(const char *path, char **ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_free_ char *buf = NULL;
        size_t n = 0;

        if (fd < 0)
                return -errno;
        buf = malloc(TLS_MAX_PEM + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k = read(fd, buf + n, TLS_MAX_PEM + 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        explicit_bzero(buf, n);
                        return -errno;
                }
                if (k == 0)
                        break;
                n += (size_t) k;
                if (n > TLS_MAX_PEM) {
                        explicit_bzero(buf, n);
                        return -E2BIG;
                }
        }
        buf[n] = '\0';
        *ret = TAKE_PTR(buf);
        return (int) n;
}

static int front_send(struct supervisor *sup, uint32_t type, json_t *payload, int fd) {
        struct child *f = &sup->front;
        int r;

        if (!payload)
                return log_oom();
        r = chan_send(f->chan_fd, type, 0, payload, fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0);
        json_decref(payload);
        if (r < 0 && r != -EPIPE && r != -ECONNRESET) {
                log_error_errno(r, "Cannot send message %u to the front: %m; killing it", type);
                if (f->pid > 0)
                        (void) kill(f->pid, SIGKILL);
        }
        return r;
}

/* CHAN_TLS: the certificate chain and key, read now (start, SIGHUP). An unreadable file keeps the
 * front on what it has. */
static int front_send_tls(struct supervisor *sup) {
        const struct http_config *h = sup->config.http;
        _cleanup_free_ char *cert = NULL, *key = NULL;
        int cert_len, key_len, r;
        json_t *payload;

        if (!h || h->plain || sup->front.chan_fd < 0)
                return 0;
        cert_len = read_pem(h->tls_cert, &cert);
        if (cert_len < 0)
                return log_error_errno(cert_len, "Cannot read http.tls_cert %s: %m", h->tls_cert);
        key_len = read_pem(h->tls_key, &key);
        if (key_len < 0)
                return log_error_errno(key_len, "Cannot read http.tls_key %s: %m", h->tls_key);
        payload = json_pack("{s:s%, s:s%}", "cert_pem", cert, (size_t) cert_len, "key_pem", key, (size_t) key_len);
        explicit_bzero(key, (size_t) key_len);
        if (!payload)
                return log_error_errno(EINVAL, "http.tls_cert or http.tls_key is not PEM text");
        r = front_send(sup, CHAN_TLS, payload, -1);
        return r;
}

/* The front says nothing on its supervisor channel: anything it sends is a violation. */
static int on_front_message(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct supervisor *sup = userdata;
        struct chan_msg m;
        int r = chan_recv(fd, &m);

        if (r == -EAGAIN)
                return 0;
        sup->front.io_source = sd_event_source_disable_unref(sup->front.io_source);
        if (r > 0) {
                chan_msg_done(&m);
                r = -EBADMSG;
        }
        if (r < 0 && r != -ECONNRESET && sup->front.pid > 0) {
                log_error("front (pid %d) broke its channel protocol; killing it", (int) sup->front.pid);
                (void) kill(sup->front.pid, SIGKILL);
        }
        return 0;
}

static int front_exec(struct supervisor *sup, int fd, pid_t *ret_pid) {
        _cleanup_free_ char *path = NULL;
        char *argv[2];

        if (asprintf(&path, "%s/bastion-front", sup->config.libexec_dir) < 0)
                return -ENOMEM;
        argv[0] = path;
        argv[1] = NULL;
        return sandbox_spawn(&(struct sandbox_spawn) {
                .name = "front",
                .role = SANDBOX_ROLE_FRONT,
                .argv = argv,
                .host_uid = sup->config.http->uid,
                .host_gid = (gid_t) sup->config.http->uid,
                .fds = &fd,
                .n_fds = 1,
        }, ret_pid);
}

/* Everything the new front needs, in the order it expects (docs/front.md). */
static int front_bring_up(struct supervisor *sup, int front_end) {
        int r;

        if ((r = front_send(sup, CHAN_CONFIG, config_to_json(&sup->config), -1)) < 0 ||
            (r = front_send_tls(sup)) < 0 ||
            (r = front_send(sup, CHAN_LISTENER, json_object(), sup->http_fd)) < 0 ||
            (r = front_send(sup, CHAN_FRONT, json_object(), front_end)) < 0)
                return r;
        return 0;
}

int front_spawn(struct supervisor *sup) {
        struct child *f = &sup->front;
        _cleanup_close_ int ours = -1, theirs = -1, broker_end = -1, front_end = -1;
        int pair[2], r;
        pid_t pid;

        if (!front_configured(sup) || sup->http_fd < 0)
                return 0;
        f->state = CHILD_STARTING;
        f->pid = 0;
        /* Its channel peer would be gone with the broker: start once a broker runs (broker_bring_up). */
        if (!broker_up(sup))
                return 0;
        if (chan_socketpair(pair) < 0)
                return child_spawn_failed(f, -errno), -errno;
        ours = pair[0], theirs = pair[1];
        if (chan_socketpair(pair) < 0)
                return child_spawn_failed(f, -errno), -errno;
        broker_end = pair[0], front_end = pair[1];
        if (fcntl(ours, F_SETFL, O_NONBLOCK) < 0)
                return child_spawn_failed(f, -errno), -errno;
        r = front_exec(sup, theirs, &pid);
        if (r < 0)
                return child_spawn_failed(f, r), r;
        r = child_watch(f, pid);
        if (r < 0)
                return child_spawn_failed(f, r), r;
        f->chan_fd = TAKE_FD(ours);
        sup->front_broker_fd = safe_close(sup->front_broker_fd);
        sup->front_broker_fd = TAKE_FD(broker_end);
        f->io_source = sd_event_source_disable_unref(f->io_source);
        r = sd_event_add_io(sup->event, &f->io_source, f->chan_fd, EPOLLIN, on_front_message, sup);
        if (r < 0 || front_bring_up(sup, front_end) < 0) {
                log_error("front (pid %d) cannot be set up; killing it", (int) pid);
                (void) kill(pid, SIGKILL);
                return r < 0 ? r : -EIO;
        }
        log_info("front (pid %d) started: uid %u", (int) pid, (unsigned) sup->config.http->uid);
        child_attest(f, SANDBOX_ROLE_FRONT, sup->config.http->uid, -1);
        return 0;
}

/* Called by child.c once the front passed its attestation: the broker gets its end of the channel. */
void front_attested(struct child *f) {
        struct supervisor *sup = f->sup;

        f->state = CHILD_RUNNING;
        log_info("front (pid %d) attested: uid %u, seccomp %d, no_new_privs, no capabilities, landlock ABI %d",
                 (int) f->pid, (unsigned) f->att.host_uid, f->att.seccomp_mode, f->att.landlock_abi);
        if (sup->front_broker_fd >= 0 && broker_up(sup))
                (void) broker_send(sup, CHAN_FRONT, 0, json_object(), sup->front_broker_fd);
        /* The broker holds it now; our copy would keep the channel open after the broker died. */
        sup->front_broker_fd = safe_close(sup->front_broker_fd);
        supervisor_check_ready(sup);
}

void front_exited(struct child *f) {
        struct supervisor *sup = f->sup;

        f->io_source = sd_event_source_disable_unref(f->io_source);
        f->chan_fd = safe_close(f->chan_fd);
        sup->front_broker_fd = safe_close(sup->front_broker_fd);
}

/* A fresh broker: start the front that waited for it. */
void front_broker_up(struct supervisor *sup) {
        if (front_configured(sup) && sup->front.pid == 0 && sup->front.state == CHILD_STARTING)
                (void) front_spawn(sup);
}

/* The broker is gone, and with it the other end of the front's channel: the front goes too, and is
 * started again for the next broker (unless the daemon is stopping). */
void front_broker_gone(struct supervisor *sup) {
        if (sup->front.pid > 0 || sup->front.state == CHILD_BACKOFF)
                child_stop(&sup->front, SIGKILL, !sup->stopping, false);
}

/* SIGHUP: the new configuration (server list, hosts, limits) and the certificate files read again. */
void front_reload(struct supervisor *sup) {
        if (!front_configured(sup) || sup->front.pid <= 0 || sup->front.chan_fd < 0)
                return;
        if (front_send(sup, CHAN_CONFIG, config_to_json(&sup->config), -1) >= 0)
                (void) front_send_tls(sup);
}

void front_stop(struct supervisor *sup) {
        if (sup->front.pid > 0 || sup->front.state == CHILD_BACKOFF)
                child_stop(&sup->front, SIGTERM, false, false);
}
