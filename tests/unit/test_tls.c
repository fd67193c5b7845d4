/* The front's TLS layer against a real OpenSSL client over a socketpair, with certificates made here:
 * TLS 1.2 and 1.3 complete and carry data, TLS 1.1 and h2-only ALPN are refused, truncation is told
 * apart from close_notify, and a reload swaps the certificate without disturbing open connections. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "front/tls.h"

struct cert {
        X509 *x509;
        char *cert_pem, *key_pem;
        size_t cert_len, key_len;
};

static char *bio_to_string(BIO *b, size_t *ret_len) {
        char *data;
        long n = BIO_get_mem_data(b, &data);
        char *s = malloc((size_t) n + 1);

        cr_assert_not_null(s);
        memcpy(s, data, (size_t) n);
        s[n] = '\0';
        *ret_len = (size_t) n;
        return s;
}

/* A self-signed P-256 certificate for "localhost", valid for an hour. */
static struct cert make_cert(long serial) {
        struct cert c = { 0 };
        EVP_PKEY *k = EVP_EC_gen("P-256");
        X509 *x = X509_new();
        X509_NAME *name;
        BIO *b;

        cr_assert(k && x);
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
        X509_gmtime_adj(X509_getm_notBefore(x), -60);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, k);
        name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) "localhost", -1, -1, 0);
        X509_set_issuer_name(x, name);
        X509_EXTENSION *san = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, "DNS:localhost");
        cr_assert_not_null(san);
        X509_add_ext(x, san, -1);
        X509_EXTENSION_free(san);
        cr_assert(X509_sign(x, k, EVP_sha256()) > 0);

        b = BIO_new(BIO_s_mem());
        cr_assert(PEM_write_bio_X509(b, x) == 1);
        c.cert_pem = bio_to_string(b, &c.cert_len);
        BIO_free(b);
        b = BIO_new(BIO_s_mem());
        cr_assert(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1);
        c.key_pem = bio_to_string(b, &c.key_len);
        BIO_free(b);
        EVP_PKEY_free(k);
        c.x509 = x;
        return c;
}

static void write_file(const char *path, const char *data, size_t len) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, data, len), (ssize_t) len);
        close(fd);
}

static SSL_CTX *client_ctx(const struct cert *trust, int min_version, int max_version) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

        cr_assert_not_null(ctx);
        cr_assert_eq(SSL_CTX_set_min_proto_version(ctx, min_version), 1);
        cr_assert_eq(SSL_CTX_set_max_proto_version(ctx, max_version), 1);
        if (min_version < TLS1_2_VERSION) {
                /* Let the client really offer the old version, so the refusal is the server's. */
                SSL_CTX_set_security_level(ctx, 0);
                cr_assert_eq(SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0"), 1);
        }
        cr_assert_eq(X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), trust->x509), 1);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        return ctx;
}

struct pair {
        int fds[2];
        SSL *client;
        struct tls_conn server;
        int client_result, server_result;
};

static void pair_open(struct pair *p, SSL_CTX *cctx, SSL_CTX *sctx, const unsigned char *alpn, unsigned alpn_len) {
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p->fds), 0);
        p->client = SSL_new(cctx);
        cr_assert_not_null(p->client);
        SSL_set_fd(p->client, p->fds[0]);
        SSL_set_connect_state(p->client);
        cr_assert_eq(SSL_set1_host(p->client, "localhost"), 1);
        if (alpn)
                cr_assert_eq(SSL_set_alpn_protos(p->client, alpn, alpn_len), 0);
        cr_assert_eq(tls_conn_new(sctx, p->fds[1], &p->server), 0);
}

/* Runs both handshakes in turns until each has finished one way or the other. Client result: 1 done,
 * -1 failed; server result: what tls_conn_handshake() returned last. */
static void pair_handshake(struct pair *p) {
        p->client_result = 0;
        p->server_result = -EAGAIN;
        for (int i = 0; i < 100 && (p->client_result == 0 || p->server_result == -EAGAIN); i++) {
                if (p->client_result == 0) {
                        int r = SSL_do_handshake(p->client);
                        if (r == 1)
                                p->client_result = 1;
                        else if (SSL_get_error(p->client, r) != SSL_ERROR_WANT_READ &&
                                 SSL_get_error(p->client, r) != SSL_ERROR_WANT_WRITE)
                                p->client_result = -1;
                }
                if (p->server_result == -EAGAIN)
                        p->server_result = tls_conn_handshake(&p->server);
                if (p->client_result == -1 && p->server_result == -EAGAIN && i > 10)
                        break;
        }
        ERR_clear_error();
}

static void pair_close(struct pair *p) {
        SSL_free(p->client);
        tls_conn_done(&p->server);
        close(p->fds[0]);
        close(p->fds[1]);
}

static void exchange(struct pair *p) {
        char buf[16];
        size_t n;

        cr_assert_eq(SSL_write_ex(p->client, "ping", 4, &n), 1);
        cr_assert_eq(tls_conn_read(&p->server, buf, sizeof(buf)), 4);
        cr_assert_eq(memcmp(buf, "ping", 4), 0);
        cr_assert_eq(tls_conn_write(&p->server, "pong", 4), 4);
        cr_assert_eq(SSL_read_ex(p->client, buf, sizeof(buf), &n), 1);
        cr_assert_eq(n, 4);
        cr_assert_eq(memcmp(buf, "pong", 4), 0);
}

static struct cert cert1;
static SSL_CTX *server_ctx;

static void setup(void) {
        /* As in the front: a write to a peer that is gone must be EPIPE, not a signal. */
        signal(SIGPIPE, SIG_IGN);
        cert1 = make_cert(1);
        cr_assert_eq(tls_server_context_new(cert1.cert_pem, cert1.cert_len, cert1.key_pem, cert1.key_len,
                                            &server_ctx), 0);
}

static void teardown(void) {
        SSL_CTX_free(server_ctx);
        X509_free(cert1.x509);
        free(cert1.cert_pem);
        free(cert1.key_pem);
}

TestSuite(tls, .init = setup, .fini = teardown);

Test(tls, tls13_handshake_verifies_and_carries_data) {
        SSL_CTX *c = client_ctx(&cert1, TLS1_3_VERSION, TLS1_3_VERSION);
        struct pair p;

        pair_open(&p, c, server_ctx, NULL, 0);
        pair_handshake(&p);
        cr_assert_eq(p.client_result, 1);
        cr_assert_eq(p.server_result, 1);
        cr_assert_eq(p.server.state, TLS_OPEN);
        cr_assert_eq(SSL_version(p.server.ssl), TLS1_3_VERSION);
        cr_assert_eq(SSL_get_verify_result(p.client), X509_V_OK);
        exchange(&p);
        pair_close(&p);
        SSL_CTX_free(c);
}

Test(tls, tls12_handshake_uses_an_aead_suite) {
        SSL_CTX *c = client_ctx(&cert1, TLS1_2_VERSION, TLS1_2_VERSION);
        struct pair p;

        pair_open(&p, c, server_ctx, NULL, 0);
        pair_handshake(&p);
        cr_assert_eq(p.client_result, 1);
        cr_assert_eq(p.server_result, 1);
        cr_assert_eq(SSL_version(p.server.ssl), TLS1_2_VERSION);
        cr_assert_str_eq(SSL_get_cipher_name(p.server.ssl), "ECDHE-ECDSA-AES128-GCM-SHA256");
        exchange(&p);
        pair_close(&p);
        SSL_CTX_free(c);
}

Test(tls, tls11_is_refused_by_the_server) {
        SSL_CTX *old = client_ctx(&cert1, TLS1_VERSION, TLS1_1_VERSION);
        SSL_CTX *control = client_ctx(&cert1, TLS1_VERSION, TLS1_2_VERSION);
        struct pair p;

        /* The same permissive client is served once it may use TLS 1.2: only the version differs. */
        pair_open(&p, control, server_ctx, NULL, 0);
        pair_handshake(&p);
        cr_assert_eq(p.server_result, 1);
        pair_close(&p);

        pair_open(&p, old, server_ctx, NULL, 0);
        pair_handshake(&p);
        cr_assert_eq(p.server_result, -EPROTO);
        cr_assert_eq(p.client_result, -1);
        cr_assert_eq(p.server.state, TLS_CLOSED);
        pair_close(&p);
        SSL_CTX_free(old);
        SSL_CTX_free(control);
}

Test(tls, alpn_h2_only_is_refused_and_http11_is_chosen) {
        SSL_CTX *c = client_ctx(&cert1, TLS1_2_VERSION, TLS1_3_VERSION);
        static const unsigned char h2[] = "\x02h2";
        static const unsigned char both[] = "\x02h2\x08http/1.1";
        const unsigned char *sel;
        unsigned sel_len;
        struct pair p;

        pair_open(&p, c, server_ctx, h2, sizeof(h2) - 1);
        pair_handshake(&p);
        cr_assert_eq(p.server_result, -EPROTO);
        cr_assert_eq(p.client_result, -1);
        pair_close(&p);

        pair_open(&p, c, server_ctx, both, sizeof(both) - 1);
        pair_handshake(&p);
        cr_assert_eq(p.server_result, 1);
        SSL_get0_alpn_selected(p.client, &sel, &sel_len);
        cr_assert_eq(sel_len, 8);
        cr_assert_eq(memcmp(sel, "http/1.1", 8), 0);
        pair_close(&p);
        SSL_CTX_free(c);
}

Test(tls, plaintext_http_on_the_tls_port_fails_the_handshake) {
        struct pair p;
        static const char get[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p.fds), 0);
        cr_assert_eq(tls_conn_new(server_ctx, p.fds[1], &p.server), 0);
        cr_assert_eq(tls_conn_handshake(&p.server), -EAGAIN);
        cr_assert_eq(p.server.want_events, EPOLLIN);
        cr_assert_eq(write(p.fds[0], get, strlen(get)), (ssize_t) strlen(get));
        cr_assert_eq(tls_conn_handshake(&p.server), -EPROTO);
        p.client = NULL;
        pair_close(&p);
}

Test(tls, close_notify_is_eof_and_a_cut_connection_is_a_reset) {
        SSL_CTX *c = client_ctx(&cert1, TLS1_3_VERSION, TLS1_3_VERSION);
        char buf[16];
        struct pair p;

        pair_open(&p, c, server_ctx, NULL, 0);
        pair_handshake(&p);
        cr_assert_eq(p.server_result, 1);
        SSL_shutdown(p.client);
        cr_assert_eq(tls_conn_read(&p.server, buf, sizeof(buf)), 0);
        cr_assert_eq(p.server.state, TLS_CLOSED);
        pair_close(&p);

        pair_open(&p, c, server_ctx, NULL, 0);
        pair_handshake(&p);
        cr_assert_eq(p.server_result, 1);
        cr_assert_eq(tls_conn_read(&p.server, buf, sizeof(buf)), -EAGAIN);
        cr_assert_eq(p.server.want_events, EPOLLIN);
        shutdown(p.fds[0], SHUT_RDWR);
        cr_assert_eq(tls_conn_read(&p.server, buf, sizeof(buf)), -ECONNRESET);
        pair_close(&p);
        SSL_CTX_free(c);
}

Test(tls, reload_swaps_the_certificate_and_keeps_open_connections) {
        char dir[] = "/tmp/test-tls-XXXXXX", cert_path[64], key_path[64], other_key[64];
        struct cert cert2 = make_cert(2);
        struct tls_server srv = { 0 };
        SSL_CTX *c1 = client_ctx(&cert1, TLS1_2_VERSION, TLS1_3_VERSION);
        SSL_CTX *c2 = client_ctx(&cert2, TLS1_2_VERSION, TLS1_3_VERSION);
        struct pair old, fresh;
        SSL_CTX *before;
        X509 *peer;

        cr_assert_not_null(mkdtemp(dir));
        snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
        snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
        snprintf(other_key, sizeof(other_key), "%s/other.pem", dir);
        write_file(cert_path, cert1.cert_pem, cert1.cert_len);
        write_file(key_path, cert1.key_pem, cert1.key_len);
        cr_assert_eq(tls_server_reload(&srv, cert_path, key_path), 0);

        pair_open(&old, c1, srv.ctx, NULL, 0);
        pair_handshake(&old);
        cr_assert_eq(old.server_result, 1);

        write_file(cert_path, cert2.cert_pem, cert2.cert_len);
        write_file(key_path, cert2.key_pem, cert2.key_len);
        cr_assert_eq(tls_server_reload(&srv, cert_path, key_path), 0);
        pair_open(&fresh, c2, srv.ctx, NULL, 0);
        pair_handshake(&fresh);
        cr_assert_eq(fresh.client_result, 1);
        peer = SSL_get1_peer_certificate(fresh.client);
        cr_assert_eq(X509_cmp(peer, cert2.x509), 0);
        X509_free(peer);
        exchange(&old);
        exchange(&fresh);

        /* A key that does not match the certificate, or a missing file, leaves the running context. */
        before = srv.ctx;
        write_file(other_key, cert1.key_pem, cert1.key_len);
        cr_assert_eq(tls_server_reload(&srv, cert_path, other_key), -EINVAL);
        cr_assert_eq(tls_server_reload(&srv, cert_path, "/nonexistent/key.pem"), -ENOENT);
        cr_assert_eq(srv.ctx, before);

        pair_close(&old);
        pair_close(&fresh);
        tls_server_done(&srv);
        SSL_CTX_free(c1);
        SSL_CTX_free(c2);
        unlink(cert_path);
        unlink(key_path);
        unlink(other_key);
        rmdir(dir);
        X509_free(cert2.x509);
        free(cert2.cert_pem);
        free(cert2.key_pem);
}

Test(tls, garbage_pem_is_einval) {
        SSL_CTX *ctx = NULL;

        cr_assert_eq(tls_server_context_new("nope", 4, cert1.key_pem, cert1.key_len, &ctx), -EINVAL);
        cr_assert_eq(tls_server_context_new(cert1.cert_pem, cert1.cert_len, "nope", 4, &ctx), -EINVAL);
        cr_assert_null(ctx);
}
