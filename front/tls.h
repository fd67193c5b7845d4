/* TLS for the front: an OpenSSL 3 server context (TLS 1.2 and 1.3 only, reloadable by swapping in a new
 * context) and a non-blocking per-connection state machine meant to be driven from an sd-event loop. */
#pragma once

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Certificate chain and key are PEM files of a few KiB; anything larger is not one. */
#define TLS_MAX_PEM (1024 * 1024)

/* The server context every new connection is created from. Reloading builds a complete new SSL_CTX
 * first and only then swaps it in: a bad certificate or key leaves the running one in place, and
 * connections already open keep the context they were made with (OpenSSL counts its references). */
struct tls_server {
        SSL_CTX *ctx;
};

/* From PEM in memory: the front is sandboxed without open(), so a reload hands it the bytes. The
 * certificate PEM is the leaf followed by its chain. -EINVAL for unparsable PEM or a key that does not
 * match the certificate, -ENOMEM. */
int tls_server_context_new(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
                           SSL_CTX **ret);
/* The same from files (read before the sandbox closes, or by whoever may still open them). */
int tls_server_context_from_files(const char *cert_path, const char *key_path, SSL_CTX **ret);
/* Replaces srv->ctx with a new context from the files; on failure the old one stays and -errno is
 * returned. */
int tls_server_reload(struct tls_server *srv, const char *cert_path, const char *key_path);
void tls_server_done(struct tls_server *srv);

enum tls_state {
        TLS_HANDSHAKE,
        TLS_OPEN,
        TLS_CLOSED,
};

struct tls_conn {
        SSL *ssl;
        enum tls_state state;
        /* What the last call that returned -EAGAIN waits for: EPOLLIN and/or EPOLLOUT. TLS reads can
         * need the socket writable and writes readable (key updates), so the loop must watch these,
         * not what the caller was trying to do. */
        uint32_t want_events;
};

/* Binds a new server-side connection to a connected non-blocking socket (the fd stays the caller's). */
int tls_conn_new(SSL_CTX *ctx, int fd, struct tls_conn *ret);
/* Advances the handshake: 1 when complete, -EAGAIN (see want_events), -EPROTO when the peer failed
 * the handshake (wrong version, no shared cipher, ALPN other than http/1.1, garbage), -ECONNRESET. */
int tls_conn_handshake(struct tls_conn *c);
/* Bytes read (> 0), 0 on a clean close_notify, -EAGAIN, -ECONNRESET (closed without close_notify:
 * a truncation the caller must not mistake for the end of a message), -EPROTO. */
ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t len);
/* Whether OpenSSL holds bytes read from the socket that no read has returned yet (a record read
 * ahead, or the rest of one): they wake no epoll, so the caller must read again. */
bool tls_conn_has_pending(const struct tls_conn *c);
/* Hands OpenSSL's read and write buffers back while the connection waits (cleansed first: see
 * SSL_OP_CLEANSE_PLAINTEXT); the next read or write allocates them again. Nothing happens while OpenSSL
 * still holds received bytes or output not yet written. Whether they were released. */
bool tls_conn_release_buffers(struct tls_conn *c);
/* Bytes written (> 0, possibly fewer than len), -EAGAIN, -EPIPE, -EPROTO. OpenSSL writes with write(2),
 * so the process must ignore SIGPIPE. After -EAGAIN the same bytes
 * must be offered again, but they may have moved (an outbuf compacts). */
ssize_t tls_conn_write(struct tls_conn *c, const void *buf, size_t len);
/* Sends close_notify once (best effort, non-blocking). */
void tls_conn_shutdown(struct tls_conn *c);
void tls_conn_done(struct tls_conn *c);
