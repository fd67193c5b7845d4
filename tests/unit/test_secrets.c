/* The secrets store on real files: round trip, wrong key, tampering, key file permissions, no
 * plaintext at rest, systemd credentials, and the sealed memfd a worker receives. */
#include "config.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <sodium.h>

#include "broker/secrets/store.h"
#include "util.h"

static char dir[] = "/tmp/test-secrets-XXXXXX";
static char store_path[PATH_MAX], key_path[PATH_MAX];
static const char value[] = "sk_live_51Hq-payments-TOP-SECRET-value";

static void setup(void) {
        cr_assert_geq(sodium_init(), 0);
        cr_assert_not_null(mkdtemp(dir));
        snprintf(store_path, sizeof(store_path), "%s/secrets.store", dir);
        snprintf(key_path, sizeof(key_path), "%s/secrets.key", dir);
        unsetenv("CREDENTIALS_DIRECTORY");
}

static void teardown(void) {
        char cmd[PATH_MAX + 16];

        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        cr_assert_eq(system(cmd), 0);
}

TestSuite(secrets, .init = setup, .fini = teardown);

static struct secret *make_key(void) {
        struct secret *k = NULL;

        cr_assert_eq(secrets_key_create(key_path), 0);
        cr_assert_eq(secrets_key_load(key_path, &k), 0);
        cr_assert_eq(k->size, SECRETS_KEY_BYTES);
        return k;
}

static void write_store(const struct secret *key) {
        struct secrets_store *s = NULL;

        cr_assert_eq(secrets_store_open(store_path, key, true, &s), 0);
        cr_assert_eq(secrets_store_set(s, "payments-api-key", value, strlen(value)), 0);
        cr_assert_eq(secrets_store_set(s, "orders-db", "pw", 2), 0);
        cr_assert_eq(secrets_store_save(s), 0);
        secrets_store_free(s);
}

static char *slurp(const char *path, size_t *ret_size) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        char *b;

        cr_assert_geq(fd, 0);
        cr_assert_eq(fstat(fd, &st), 0);
        b = malloc((size_t) st.st_size + 1);
        cr_assert_eq(read(fd, b, (size_t) st.st_size), st.st_size);
        close(fd);
        *ret_size = (size_t) st.st_size;
        return b;
}

static void spew(const char *path, const void *data, size_t size) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, data, size), (ssize_t) size);
        close(fd);
}

Test(secrets, round_trip_through_the_file) {
        _cleanup_secret_ struct secret *key = make_key(), *v = NULL;
        struct secrets_store *s = NULL;
        struct stat st;

        write_store(key);
        cr_assert_eq(stat(store_path, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0600);
        cr_assert_eq(secrets_store_open(store_path, key, false, &s), 0);
        cr_assert_eq(secrets_store_count(s), 2);
        cr_assert_str_eq(secrets_store_name(s, 0), "payments-api-key");
        cr_assert_eq(secrets_store_value_size(s, 0), strlen(value));
        cr_assert_eq(secrets_store_value_size(s, 1), 2);
        cr_assert_eq(secrets_store_get(s, "payments-api-key", &v), 0);
        cr_assert_eq(v->size, strlen(value));
        cr_assert_eq(memcmp(v->data, value, v->size), 0);
        cr_assert_eq(secrets_store_get(s, "nope", &v), -ENOENT);
        cr_assert_eq(secrets_store_remove(s, "orders-db"), 0);
        cr_assert_eq(secrets_store_save(s), 0);
        secrets_store_free(s);
        cr_assert_eq(secrets_store_open(store_path, key, false, &s), 0);
        cr_assert_eq(secrets_store_count(s), 1);
        secrets_store_free(s);
}

Test(secrets, value_never_appears_in_the_file_in_plaintext) {
        _cleanup_secret_ struct secret *key = make_key();
        size_t size;
        char *data;

        write_store(key);
        data = slurp(store_path, &size);
        cr_assert_null(memmem(data, size, value, strlen(value)));
        cr_assert_null(memmem(data, size, "TOP-SECRET", 10));
        cr_assert_not_null(memmem(data, size, "payments-api-key", 16));   /* names are not secret */
        free(data);
}

Test(secrets, wrong_key_is_rejected) {
        _cleanup_secret_ struct secret *key = make_key(), *other = NULL;
        struct secrets_store *s = NULL;
        uint8_t raw[SECRETS_KEY_BYTES];

        write_store(key);
        randombytes_buf(raw, sizeof(raw));
        cr_assert_eq(secret_new(raw, sizeof(raw), &other), 0);
        cr_assert_eq(secrets_store_open(store_path, other, false, &s), -EKEYREJECTED);
        cr_assert_null(s);
}

Test(secrets, any_altered_byte_is_rejected) {
        _cleanup_secret_ struct secret *key = make_key();
        struct secrets_store *s = NULL;
        size_t size;
        char *data;

        write_store(key);
        data = slurp(store_path, &size);
        for (size_t i = 0; i < size; i++) {
                data[i] ^= 0x20;
                spew(store_path, data, size);
                int r = secrets_store_open(store_path, key, false, &s);
                cr_assert(r == -EKEYREJECTED || r == -EBADMSG, "byte %zu: %d", i, r);
                data[i] ^= 0x20;
        }
        free(data);
}

Test(secrets, key_file_with_loose_permissions_or_owner_is_refused) {
        _cleanup_secret_ struct secret *k = make_key();
        struct secret *k2 = NULL;

        cr_assert_eq(chmod(key_path, 0440), 0);
        cr_assert_eq(secrets_key_load(key_path, &k2), -EPERM);
        cr_assert_eq(chmod(key_path, 0404), 0);
        cr_assert_eq(secrets_key_load(key_path, &k2), -EPERM);
        cr_assert_eq(chmod(key_path, 0600), 0);
        cr_assert_eq(chown(key_path, 65534, 0), 0);
        cr_assert_eq(secrets_key_load(key_path, &k2), -EPERM);
        cr_assert_eq(chown(key_path, 0, 0), 0);
        cr_assert_eq(secrets_key_load(key_path, &k2), 0);
        cr_assert_eq(memcmp(k->data, k2->data, SECRETS_KEY_BYTES), 0);
        secret_free(k2);
        /* A key file is never overwritten. */
        cr_assert_eq(secrets_key_create(key_path), -EEXIST);
}

Test(secrets, systemd_credentials_by_name_and_key_credential) {
        _cleanup_secret_ struct secret *key = make_key(), *v = NULL, *k2 = NULL;
        struct secrets_store *s = NULL;
        char cred[PATH_MAX], keycopy[2 * PATH_MAX];
        size_t size;
        char *kdata;

        write_store(key);
        snprintf(cred, sizeof(cred), "%s/creds", dir);
        cr_assert_eq(mkdir(cred, 0700), 0);
        setenv("CREDENTIALS_DIRECTORY", cred, 1);
        snprintf(keycopy, sizeof(keycopy), "%s/" SECRETS_KEY_CREDENTIAL, cred);
        kdata = slurp(key_path, &size);
        spew(keycopy, kdata, size);
        free(kdata);
        /* No key file named: the credential wins over the default path. */
        cr_assert_eq(secrets_key_load(NULL, &k2), 0);
        cr_assert_eq(memcmp(key->data, k2->data, SECRETS_KEY_BYTES), 0);
        cr_assert_eq(secrets_store_open(store_path, k2, false, &s), 0);

        snprintf(keycopy, sizeof(keycopy), "%s/orders-db", cred);
        spew(keycopy, "from-systemd", 12);
        cr_assert_eq(secrets_lookup(s, "orders-db", &v), 0);
        cr_assert_eq(v->size, 12);
        cr_assert_eq(memcmp(v->data, "from-systemd", 12), 0);
        secret_free(v);
        cr_assert_eq(secrets_lookup(s, "payments-api-key", &v), 0);
        cr_assert_eq(memcmp(v->data, value, strlen(value)), 0);
        secret_free(v);
        v = NULL;
        cr_assert_eq(secrets_credential_load("../secrets.key", &v), -ENOENT);
        secrets_store_free(s);
        unsetenv("CREDENTIALS_DIRECTORY");
}

Test(secrets, names_are_validated) {
        cr_assert(secrets_name_valid("payments-api-key"));
        cr_assert(secrets_name_valid("bastion.audit-signing-key"));
        cr_assert(!secrets_name_valid(""));
        cr_assert(!secrets_name_valid(".hidden"));
        cr_assert(!secrets_name_valid("a/b"));
        cr_assert(!secrets_name_valid("a b"));
}

Test(secrets, sealed_memfd_holds_the_value_and_cannot_be_changed) {
        _cleanup_secret_ struct secret *v = NULL;
        char buf[128];
        int fd, seals;

        cr_assert_eq(secret_new(value, strlen(value), &v), 0);
        cr_assert_eq(secret_sealed_memfd(v, "payments", &fd), 0);
        cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        seals = fcntl(fd, F_GET_SEALS);
        cr_assert_eq(seals, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
        cr_assert_eq(read(fd, buf, sizeof(buf)), (ssize_t) strlen(value));
        cr_assert_eq(memcmp(buf, value, strlen(value)), 0);
        /* What a worker might try: overwrite, append, truncate, map writable, unseal. */
        cr_assert_eq(pwrite(fd, "X", 1, 0), -1);
        cr_assert_eq(errno, EPERM);
        cr_assert_eq(write(fd, "X", 1), -1);
        cr_assert_eq(errno, EPERM);
        cr_assert_eq(ftruncate(fd, 0), -1);
        cr_assert_eq(errno, EPERM);
        cr_assert_eq(ftruncate(fd, 4096), -1);
        cr_assert_eq(errno, EPERM);
        cr_assert_eq(mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
        cr_assert_eq(errno, EPERM);
        cr_assert_eq(fcntl(fd, F_ADD_SEALS, 0), -1);
        cr_assert_eq(errno, EPERM);
        /* Re-opening through /proc gives the same sealed inode, not a way around the seals. */
        snprintf(buf, sizeof(buf), "/proc/self/fd/%d", fd);
        int fd2 = open(buf, O_RDWR | O_CLOEXEC);
        cr_assert_geq(fd2, 0);
        cr_assert_eq(write(fd2, "X", 1), -1);
        cr_assert_eq(errno, EPERM);
        close(fd2);
        close(fd);
}

Test(secrets, memfd_by_name_carries_exactly_that_value) {
        _cleanup_secret_ struct secret *key = make_key();
        struct secrets_store *s = NULL;
        char buf[128];
        int fd;

        write_store(key);
        cr_assert_eq(secrets_store_open(store_path, key, false, &s), 0);
        cr_assert_eq(secrets_sealed_memfd_by_name(s, "orders-db", &fd), 0);
        cr_assert_eq(read(fd, buf, sizeof(buf)), 2);
        cr_assert_eq(memcmp(buf, "pw", 2), 0);
        close(fd);
        cr_assert_eq(secrets_sealed_memfd_by_name(s, "missing", &fd), -ENOENT);
        secrets_store_free(s);
}

Test(secrets, hardened_process_cannot_dump_core) {
        struct rlimit rl;

        cr_assert_eq(secrets_harden_process(), 0);
        cr_assert_eq(prctl(PR_GET_DUMPABLE), 0);
        cr_assert_eq(getrlimit(RLIMIT_CORE, &rl), 0);
        cr_assert_eq(rl.rlim_max, 0);
}

/* ---- bastionctl secrets, run as an administrator would ---- */

#include "ctl_run.h"

Test(secrets, cli_init_set_list_rm_never_shows_a_value) {
        static const char *const list[] = { "secrets", "list", "--store", store_path, "--key-file", key_path, NULL };
        struct ctl_result *r = malloc(sizeof(*r));
        struct stat st;
        char expect[256];
        size_t size;
        char *data;

        ctl_run(r, NULL, (const char *const[]) { "secrets", "init", "--store", store_path, "--key-file", key_path, NULL });
        cr_assert_eq(r->status, 0, "%s", r->err);
        cr_assert_eq(strlen(r->out), strlen("audit public key: ") + 64 + 1);
        cr_assert_eq(strncmp(r->out, "audit public key: ", 18), 0);
        cr_assert_eq(stat(key_path, &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0400);

        ctl_run(r, "sk_live_51Hq-payments-TOP-SECRET-value\n",
                (const char *const[]) { "secrets", "set", "payments-api-key", "--store", store_path, "--key-file", key_path, NULL });
        cr_assert_eq(r->status, 0, "%s", r->err);
        cr_assert_null(strstr(r->out, "TOP-SECRET"));
        cr_assert_null(strstr(r->err, "TOP-SECRET"));
        ctl_run(r, NULL, list);
        cr_assert_eq(r->status, 0);
        snprintf(expect, sizeof(expect), "bastion.audit-signing-key\t32\npayments-api-key\t%zu\n", strlen(value));
        cr_assert_str_eq(r->out, expect);
        data = slurp(store_path, &size);
        cr_assert_null(memmem(data, size, "TOP-SECRET", 10));
        free(data);

        /* The store really holds the value (the trailing newline from stdin dropped). */
        _cleanup_secret_ struct secret *k = NULL, *v = NULL;
        struct secrets_store *s = NULL;
        cr_assert_eq(secrets_key_load(key_path, &k), 0);
        cr_assert_eq(secrets_store_open(store_path, k, false, &s), 0);
        cr_assert_eq(secrets_store_get(s, "payments-api-key", &v), 0);
        cr_assert_eq(v->size, strlen(value));
        cr_assert_eq(memcmp(v->data, value, v->size), 0);
        secrets_store_free(s);

        ctl_run(r, NULL, (const char *const[]) { "secrets", "rm", "payments-api-key", "--store", store_path, "--key-file", key_path, NULL });
        cr_assert_eq(r->status, 0);
        ctl_run(r, NULL, list);
        cr_assert_str_eq(r->out, "bastion.audit-signing-key\t32\n");
        free(r);
}

Test(secrets, cli_refuses_values_on_argv_reserved_names_and_wrong_keys) {
        struct ctl_result *r = malloc(sizeof(*r));
        _cleanup_secret_ struct secret *key = make_key();
        char other[PATH_MAX + 16];

        write_store(key);
        /* A value on the command line would be visible in /proc/PID/cmdline: there is no such form. */
        ctl_run(r, NULL, (const char *const[]) { "secrets", "set", "x", "the-value", "--store", store_path, "--key-file", key_path, NULL });
        cr_assert_eq(r->status, 2);
        ctl_run(r, "v\n", (const char *const[]) { "secrets", "set", "bastion.audit-signing-key", "--store", store_path, "--key-file", key_path, NULL });
        cr_assert_eq(r->status, 1);
        cr_assert_not_null(strstr(r->err, "reserved"));
        ctl_run(r, NULL, (const char *const[]) { "secrets", "rm", "missing", "--store", store_path, "--key-file", key_path, NULL });
        cr_assert_eq(r->status, 1);

        snprintf(other, sizeof(other), "%s/other.key", dir);
        cr_assert_eq(secrets_key_create(other), 0);
        ctl_run(r, NULL, (const char *const[]) { "secrets", "list", "--store", store_path, "--key-file", other, NULL });
        cr_assert_eq(r->status, 1);
        cr_assert_not_null(strstr(r->err, "wrong key"));
        cr_assert_str_eq(r->out, "");

        cr_assert_eq(chmod(key_path, 0640), 0);
        ctl_run(r, NULL, (const char *const[]) { "secrets", "list", "--store", store_path, "--key-file", key_path, NULL });
        cr_assert_eq(r->status, 1);
        cr_assert_not_null(strstr(r->err, "Refusing key file"));
        free(r);
}
