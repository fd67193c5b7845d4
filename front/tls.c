/* OpenSSL 3 server side for the front: context construction and reload, and the non-blocking
 * handshake/read/write state machine. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>

#include "tls.h"
#include "util.h"

/* TLS 1.2 suites: forward-secret key exchange and AEAD only (TLS 1.3 suites are all of that kind). */
#define TLS12_CIPHERS \
        "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:" \
        "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
        "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

static void x509_freep(X509 **x) { X509_free(*x); }
static void bio_freep(BIO **b) { BIO_free(*b); }
static void evp_pkey_freep(EVP_PKEY **k) { EVP_PKEY_free(*k); }
static void ssl_ctx_freep(SSL_CTX **c) { SSL_CTX_free(*c); }

/* An encrypted key would make OpenSSL's default callback prompt on the terminal; we have none. */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
        return -1;
}

/* Only HTTP/1.1 is spoken here: a client that offers ALPN without it (h2 only) is refused in the
 * handshake rather than left to send frames we would answer with 400. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned inlen, void *arg) {
        static const unsigned char ours[] = "\x08http/1.1";

        if (SSL_select_next_proto((unsigned char **) out, outlen, ours, sizeof(ours) - 1, in, inlen) !=
            OPENSSL_NPN_NEGOTIATED)
                return SSL_TLSEXT_ERR_ALERT_FATAL;
        return SSL_TLSEXT_ERR_OK;
}

static int ctx_load_chain(SSL_CTX *ctx, const char *pem, size_t len) {
        _cleanup_(bio_freep) BIO *b = BIO_new_mem_buf(pem, (int) len);
        _cleanup_(x509_freep) X509 *leaf = NULL;
        X509 *extra;

        if (!b)
                return -ENOMEM;
        leaf = PEM_read_bio_X509_AUX(b, NULL, no_passphrase, NULL);
        if (!leaf || SSL_CTX_use_certificate(ctx, leaf) != 1)
                return -EINVAL;
        while ((extra = PEM_read_bio_X509(b, NULL, no_passphrase, NULL)))
                if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
                        X509_free(extra);
                        return -EINVAL;
                }
        /* The loop ends on "no start line"; that is the end of the chain, not an error. */
        ERR_clear_error();
        return 0;
}

static int ctx_load_key(SSL_CTX *ctx, const char *pem, size_t len) {
        _cleanup_(bio_freep) BIO *b = BIO_new_mem_buf(pem, (int) len);
        _cleanup_(evp_pkey_freep) EVP_PKEY *key = NULL;

        if (!b)
                return -ENOMEM;
        key = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
        if (!key || SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
                return -EINVAL;
        return 0;
}

int tls_server_context_new(const char *cert_pem, size_t cert_len, const char *key_pem, size_t key_len,
                           SSL_CTX **ret) {
        _cleanup_(ssl_ctx_freep) SSL_CTX *ctx = NULL;
        int r;

        if (cert_len > TLS_MAX_PEM || key_len > TLS_MAX_PEM)
                return -EINVAL;
        ctx = SSL_CTX_new(TLS_server_method());
        if (!ctx)
                return -ENOMEM;
        if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
            SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
            SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1) {
                ERR_clear_error();
                return -EINVAL;
        }
        /* No renegotiation (a CPU-exhaustion lever and a source of past CVEs); server cipher order. */
        SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
        /* Requests carry bearer tokens: OpenSSL zeroes each decrypted record in its read buffer as soon
         * as it is delivered, and the whole buffer when it is released (SSL_free_buffers, SSL_free). */
        SSL_CTX_set_options(ctx, SSL_OP_CLEANSE_PLAINTEXT);
        /* Partial writes and a moving buffer fit an outbuf that compacts between retries. Not
         * SSL_MODE_RELEASE_BUFFERS: it would cleanse, free and allocate the 16 KiB buffers again for
         * every request; the front releases them when a connection has been idle for a while
         * (tls_conn_release_buffers), so 1,000 idle keep-alive connections still hold none. */
        SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        /* Read what the socket has in one read(2) rather than a record header and then its body. */
        SSL_CTX_set_read_ahead(ctx, 1);
        SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
        if ((r = ctx_load_chain(ctx, cert_pem, cert_len)) < 0 || (r = ctx_load_key(ctx, key_pem, key_len)) < 0) {
                ERR_clear_error();
                return r;
        }
        *ret = TAKE_PTR(ctx);
        return 0;
}

/* Reads a whole PEM file; the caller cleanses and frees it (it may hold a private key). */
static int read_pem(const char *path, char **ret, size_t *ret_len) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t n = 0;

        if (fd < 0 || fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > TLS_MAX_PEM)
                return -EINVAL;
        buf = malloc((size_t) st.st_size);
        if (!buf)
                return -ENOMEM;
        while (n < (size_t) st.st_size) {
                ssize_t k = read(fd, buf + n, (size_t) st.st_size - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        OPENSSL_cleanse(buf, (size_t) st.st_size);
                        return k < 0 ? -errno : -EINVAL;
                }
                n += (size_t) k;
        }
        *ret = TAKE_PTR(buf);
        *ret_len = n;
        return 0;
}

int tls_server_context_from_files(const char *cert_path, const char *key_path, SSL_CTX **ret) {
        _cleanup_free_ char *cert = NULL;
        char *key = NULL;
        size_t cert_len, key_len;
        int r;

        if ((r = read_pem(cert_path, &cert, &cert_len)) < 0 || (r = read_pem(key_path, &key, &key_len)) < 0)
                return r;
        r = tls_server_context_new(cert, cert_len, key, key_len, ret);
        OPENSSL_cleanse(key, key_len);
        free(key);
        return r;
}

int tls_server_reload(struct tls_server *srv, const char *cert_path, const char *key_path) {
        SSL_CTX *ctx;
        int r;

        if ((r = tls_server_context_from_files(cert_path, key_path, &ctx)) < 0)
                return r;
        SSL_CTX_free(srv->ctx);
        srv->ctx = ctx;
        return 0;
}

void tls_server_done(struct tls_server *srv) {
        SSL_CTX_free(srv->ctx);
        srv->ctx = NULL;
}

int tls_conn_new(SSL_CTX *ctx, int fd, struct tls_conn *ret) {
        SSL *ssl = SSL_new(ctx);

        if (!ssl)
                return -ENOMEM;
        if (SSL_set_fd(ssl, fd) != 1) {
                SSL_free(ssl);
                return -EINVAL;
        }
        SSL_set_accept_state(ssl);
        *ret = (struct tls_conn) { .ssl = ssl, .state = TLS_HANDSHAKE };
        return 0;
}

/* Turns the result of an SSL_* call into our convention, and records what a retry waits for. */
static int conn_error(struct tls_conn *c, int ret) {
        int e = SSL_get_error(c->ssl, ret);
        unsigned long err;

        c->want_events = 0;
        switch (e) {
        case SSL_ERROR_WANT_READ:
                c->want_events = EPOLLIN;
                return -EAGAIN;
        case SSL_ERROR_WANT_WRITE:
                c->want_events = EPOLLOUT;
                return -EAGAIN;
        case SSL_ERROR_ZERO_RETURN:
                c->state = TLS_CLOSED;
                return 0;
        case SSL_ERROR_SYSCALL:
                c->state = TLS_CLOSED;
                return errno == EPIPE ? -EPIPE : -ECONNRESET;
        default:
                err = ERR_peek_last_error();
                ERR_clear_error();
                c->state = TLS_CLOSED;
                /* OpenSSL 3 reports a TCP close without close_notify as a protocol error. */
                if (ERR_GET_LIB(err) == ERR_LIB_SSL && ERR_GET_REASON(err) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
                        return -ECONNRESET;
                return -EPROTO;
        }
}

int tls_conn_handshake(struct tls_conn *c) {
        int r;

        if (c->state == TLS_OPEN)
                return 1;
        if (c->state == TLS_CLOSED)
                return -EPROTO;
        ERR_clear_error();
        r = SSL_do_handshake(c->ssl);
        if (r == 1) {
                c->state = TLS_OPEN;
                c->want_events = 0;
                return 1;
        }
        r = conn_error(c, r);
        /* A peer that goes away cleanly in the middle of a handshake still failed it. */
        return r == 0 ? -EPROTO : r;
}

ssize_t tls_conn_read(struct tls_conn *c, void *buf, size_t len) {
        size_t n = 0;
        int r;

        if (c->state != TLS_OPEN)
                return c->state == TLS_CLOSED ? 0 : -EAGAIN;
        ERR_clear_error();
        r = SSL_read_ex(c->ssl, buf, len, &n);
        if (r == 1)
                return (ssize_t) n;
        return conn_error(c, r);
}

bool tls_conn_has_pending(const struct tls_conn *c) {
        return c->state == TLS_OPEN && SSL_has_pending(c->ssl) == 1;
}

bool tls_conn_release_buffers(struct tls_conn *c) {
        /* SSL_free_buffers refuses when output is pending; bytes of a record read only in part are
         * checked here as well (older 3.0 releases freed them: CVE-2024-4741). */
        return c->state == TLS_OPEN && SSL_has_pending(c->ssl) != 1 && SSL_free_buffers(c->ssl) == 1;
}

ssize_t tls_conn_write(struct tls_conn *c, const void *buf, size_t len) {
        size_t n = 0;
        int r;

        if (c->state != TLS_OPEN)
                return c->state == TLS_CLOSED ? -EPIPE : -EAGAIN;
        ERR_clear_error();
        r = SSL_write_ex(c->ssl, buf, len, &n);
        if (r == 1)
                return (ssize_t) n;
        r = conn_error(c, r);
        return r == 0 ? -EPIPE : r;
}

void tls_conn_shutdown(struct tls_conn *c) {
        if (c->ssl && c->state == TLS_OPEN) {
                ERR_clear_error();
                (void) SSL_shutdown(c->ssl);
                ERR_clear_error();
        }
        c->state = TLS_CLOSED;
}

void tls_conn_done(struct tls_conn *c) {
        SSL_free(c->ssl);
        c->ssl = NULL;
        c->state = TLS_CLOSED;
}
