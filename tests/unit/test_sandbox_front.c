/* The front's profile with the front's real TLS code: a process that built its server context, then
 * called sandbox_lockdown(FRONT), must still complete TLS handshakes and carry data (OpenSSL needs
 * getrandom and memory, nothing else), build a new context from PEM bytes (a certificate reload is
 * handed the bytes), and still be refused every open. */
#include "config.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "front/tls.h"
#include "sandbox.h"

struct pem {
        X509 *x509;
        char *cert, *key;
        size_t cert_len, key_len;
};

static char *bio_string(BIO *b, size_t *ret_len) {
        char *data, *s;
        long n = BIO_get_mem_data(b, &data);

        s = strndup(data, (size_t) n);
        cr_assert_not_null(s);
        *ret_len = (size_t) n;
        return s;
}

/* A self-signed P-256 certificate for "localhost". */
static struct pem make_cert(void) {
        struct pem p = {};
        EVP_PKEY *k = EVP_EC_gen("P-256");
        X509 *x = X509_new();
        X509_NAME *name;
        BIO *b;

        cr_assert(k && x);
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
        X509_gmtime_adj(X509_getm_notBefore(x), -60);
        X509_gmtime_adj(X509_getm_notAfter(x), 3600);
        X509_set_pubkey(x, k);
        name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) "localhost", -1, -1, 0);
        X509_set_issuer_name(x, name);
        cr_assert(X509_sign(x, k, EVP_sha256()) > 0);
        b = BIO_new(BIO_s_mem());
        cr_assert(PEM_write_bio_X509(b, x) == 1);
        p.cert = bio_string(b, &p.cert_len);
        BIO_free(b);
        b = BIO_new(BIO_s_mem());
        cr_assert(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) == 1);
        p.key = bio_string(b, &p.key_len);
        BIO_free(b);
        EVP_PKEY_free(k);
        p.x509 = x;
        return p;
}

/* The locked-down front: one connection on ctx, then one on a context built after the lockdown. */
_Noreturn static void front(SSL_CTX *ctx, const struct pem *p, int fd1, int fd2) {
        struct tls_conn c;
        SSL_CTX *reloaded = NULL;
        char buf[8];

        if (sandbox_lockdown(&(struct sandbox_lockdown) { .role = SANDBOX_ROLE_FRONT }) < 0)
                _exit(10);
        /* Nothing can be opened any more, not even what OpenSSL would look for. */
        if (open("/etc/ssl/openssl.cnf", O_RDONLY | O_CLOEXEC) >= 0 || errno != EACCES)
                _exit(11);
        if (tls_conn_new(ctx, fd1, &c) < 0 || tls_conn_handshake(&c) != 1 ||
            tls_conn_read(&c, buf, sizeof(buf)) != 4 || tls_conn_write(&c, "pong", 4) != 4)
                _exit(12);
        tls_conn_shutdown(&c);
        tls_conn_done(&c);
        if (tls_server_context_new(p->cert, p->cert_len, p->key, p->key_len, &reloaded) < 0)
                _exit(13);
        if (tls_conn_new(reloaded, fd2, &c) < 0 || tls_conn_handshake(&c) != 1 ||
            tls_conn_read(&c, buf, sizeof(buf)) != 4 || tls_conn_write(&c, "pong", 4) != 4)
                _exit(14);
        tls_conn_shutdown(&c);
        _exit(0);
}

static void client(SSL_CTX *cctx, int fd) {
        SSL *s = SSL_new(cctx);
        char buf[8] = {};
        size_t n;

        cr_assert_not_null(s);
        SSL_set_fd(s, fd);
        cr_assert_eq(SSL_set1_host(s, "localhost"), 1);
        cr_assert_eq(SSL_connect(s), 1, "handshake with the locked-down front failed");
        cr_assert_eq(SSL_write_ex(s, "ping", 4, &n), 1);
        cr_assert_eq(SSL_read_ex(s, buf, sizeof(buf) - 1, &n), 1);
        cr_assert_str_eq(buf, "pong");
        SSL_free(s);
}

Test(front_sandbox, tls_works_after_lockdown, .timeout = 30) {
        struct pem p;
        SSL_CTX *sctx, *cctx;
        int a[2], b[2], status;
        pid_t pid;

#ifdef BASTION_SANITIZERS
        cr_skip_test("the sanitizer build loads no seccomp filter");
#endif
        signal(SIGPIPE, SIG_IGN);
        p = make_cert();
        cr_assert_eq(tls_server_context_new(p.cert, p.cert_len, p.key, p.key_len, &sctx), 0);
        cctx = SSL_CTX_new(TLS_client_method());
        cr_assert_not_null(cctx);
        cr_assert_eq(X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), p.x509), 1);
        SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, NULL);
        /* Blocking sockets: each side runs in its own process. */
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, a), 0);
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, b), 0);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0)
                front(sctx, &p, a[1], b[1]);
        close(a[1]);
        close(b[1]);
        client(cctx, a[0]);
        client(cctx, b[0]);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "front status %#x", status);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
        X509_free(p.x509);
        free(p.cert);
        free(p.key);
}
