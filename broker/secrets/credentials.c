/* Where secrets come from and how they leave: the store key (systemd credential or root-only key
 * file), plain systemd credentials, and the sealed memfd that carries one credential to a worker. */
#include "config.h"

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <sodium.h>

#include "bounds.h"
#include "log.h"
#include "store.h"
#include "util.h"

bool secrets_name_valid(const char *name) {
        size_t len = name ? strlen(name) : 0;

        if (len == 0 || len > BASTION_SECRET_MAX_NAME || name[0] == '.')
                return false;
        return strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") == len;
}

int secrets_harden_process(void) {
        struct rlimit no_core = { 0, 0 };

        if (setrlimit(RLIMIT_CORE, &no_core) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
                return log_error_errno(errno, "Cannot disable core dumps: %m");
        return 0;
}

/* Reads a small file into guarded memory; the value never passes through an unguarded buffer. */
static int read_guarded(int fd, size_t max, struct secret **ret) {
        _cleanup_secret_ struct secret *s = NULL;
        struct stat st;
        size_t n = 0;
        int r;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t) st.st_size > max)
                return -EFBIG;
        r = secret_new(NULL, (size_t) st.st_size, &s);
        if (r < 0)
                return r;
        while (n < s->size) {
                ssize_t k = read(fd, s->data + n, s->size - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -EIO;
                n += (size_t) k;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

static int credential_open(const char *name) {
        const char *dir = getenv("CREDENTIALS_DIRECTORY");
        _cleanup_close_ int dfd = -1;
        int fd;

        if (!dir || !*dir || !secrets_name_valid(name))
                return -ENOENT;
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        return fd < 0 ? -errno : fd;
}

int secrets_credential_load(const char *name, struct secret **ret) {
        _cleanup_close_ int fd = credential_open(name);

        if (fd < 0)
                return fd;
        return read_guarded(fd, BASTION_SECRET_MAX_VALUE, ret);
}

int secrets_credential_load_fd(int fd, struct secret **ret) {
        return read_guarded(fd, BASTION_SECRET_MAX_VALUE, ret);
}

int secrets_lookup(struct secrets_store *s, const char *name, struct secret **ret) {
        int r = secrets_credential_load(name, ret);

        if (r != -ENOENT || !s)
                return r;
        return secrets_store_get(s, name, ret);
}

/* 32 raw bytes, or 64 hex digits with optional surrounding whitespace (what `secrets init` writes). */
static int key_decode(const struct secret *raw, struct secret **ret) {
        _cleanup_secret_ struct secret *key = NULL;
        size_t len;
        const char *end;
        int r;

        if (raw->size == SECRETS_KEY_BYTES)
                return secret_new(raw->data, raw->size, ret);
        r = secret_new(NULL, SECRETS_KEY_BYTES, &key);
        if (r < 0)
                return r;
        if (sodium_hex2bin(key->data, SECRETS_KEY_BYTES, (const char *) raw->data, raw->size, " \t\r\n", &len, &end) < 0 ||
            len != SECRETS_KEY_BYTES)
                return -EBADMSG;
        /* Not NUL-terminated (guarded memory ends at the guard page): check the rest byte by byte. */
        for (; end < (const char *) raw->data + raw->size; end++)
                if (!strchr(" \t\r\n", *end) || *end == '\0')
                        return -EBADMSG;
        *ret = TAKE_PTR(key);
        return 0;
}

/* The checks of a key file, on an open fd: whoever opened it, the file it is now is what counts. */
static int key_fd_load(int fd, const char *path, struct secret **ret) {
        _cleanup_secret_ struct secret *raw = NULL;
        struct stat st;
        int r;

        if (fstat(fd, &st) < 0)
                return log_error_errno(errno, "Cannot open key file %s: %m", path);
        if (!S_ISREG(st.st_mode) || st.st_uid != 0 || (st.st_mode & 077) != 0)
                return log_error_errno(EPERM, "Refusing key file %s: it must be a regular file owned by root "
                                       "with no group or other permissions (mode %04o, owner %u)",
                                       path, st.st_mode & 07777, (unsigned) st.st_uid);
        r = read_guarded(fd, 256, &raw);
        if (r >= 0)
                r = key_decode(raw, ret);
        if (r < 0)
                return log_error_errno(r, "Cannot read key file %s: not 32 bytes or 64 hex digits", path);
        return 0;
}

static int key_file_load(const char *path, struct secret **ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);

        /* A missing key is the caller's to judge (first start, or a mistake); anything else is ours. */
        if (fd < 0 && errno == ENOENT)
                return -ENOENT;
        if (fd < 0)
                return log_error_errno(errno, "Cannot open key file %s: %m", path);
        return key_fd_load(fd, path, ret);
}

int secrets_key_load_fd(int fd, const char *what, bool credential, struct secret **ret_key) {
        _cleanup_secret_ struct secret *raw = NULL;
        int r;

        if (!credential)
                return key_fd_load(fd, what, ret_key);
        r = read_guarded(fd, 256, &raw);
        if (r >= 0)
                r = key_decode(raw, ret_key);
        if (r < 0)
                return log_error_errno(r, "Cannot read credential %s: %m", what);
        return 0;
}

int secrets_key_load(const char *key_file, struct secret **ret_key) {
        _cleanup_secret_ struct secret *raw = NULL;
        int r;

        if (key_file)
                return key_file_load(key_file, ret_key);
        /* systemd checked who may read the credential (LoadCredentialEncrypted=) before we run. */
        r = secrets_credential_load(SECRETS_KEY_CREDENTIAL, &raw);
        if (r == -ENOENT)
                return key_file_load(SECRETS_DEFAULT_KEY_FILE, ret_key);
        if (r >= 0)
                r = key_decode(raw, ret_key);
        if (r < 0)
                return log_error_errno(r, "Cannot read credential " SECRETS_KEY_CREDENTIAL ": %m");
        return 0;
}

int secrets_key_create(const char *key_file) {
        _cleanup_secret_ struct secret *key = NULL;
        _cleanup_close_ int fd = -1;
        char hex[SECRETS_KEY_BYTES * 2 + 2];
        int r;

        r = secret_new(NULL, SECRETS_KEY_BYTES, &key);
        if (r < 0)
                return r;
        randombytes_buf(key->data, key->size);
        fd = open(key_file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0400);
        if (fd < 0)
                return log_error_errno(errno, "Cannot create key file %s: %m", key_file);
        sodium_bin2hex(hex, sizeof(hex) - 1, key->data, key->size);
        hex[SECRETS_KEY_BYTES * 2] = '\n';
        r = write(fd, hex, sizeof(hex) - 1) == (ssize_t) sizeof(hex) - 1 && fsync(fd) >= 0 ? 0 : -errno;
        sodium_memzero(hex, sizeof(hex));
        if (r < 0) {
                (void) unlink(key_file);
                return log_error_errno(r, "Cannot write key file %s: %m", key_file);
        }
        return 0;
}

int secret_sealed_memfd(const struct secret *s, const char *name, int *ret_fd) {
        _cleanup_close_ int fd = -1;
        size_t n = 0;

        fd = memfd_create(name ?: "bastion-secret", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return log_error_errno(errno, "memfd_create failed: %m");
        while (n < s->size) {
                ssize_t k = write(fd, s->data + n, s->size - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return log_error_errno(k < 0 ? errno : EIO, "Cannot fill secret memfd: %m");
                n += (size_t) k;
        }
        /* SEAL_SEAL last: after it nobody, including us, can loosen the seals again. */
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
                return log_error_errno(errno, "Cannot seal secret memfd: %m");
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int secrets_sealed_memfd_by_name(struct secrets_store *s, const char *name, int *ret_fd) {
        _cleanup_secret_ struct secret *v = NULL;
        int r;

        r = secrets_lookup(s, name, &v);
        if (r < 0)
                return log_error_errno(r, "No credential named %s: %m", name);
        return secret_sealed_memfd(v, name, ret_fd);
}
