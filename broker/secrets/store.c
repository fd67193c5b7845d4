/* The encrypted secrets store. File format, version 1 (integers little-endian):
 *
 *   "BSTNSEC\0"  u32 version (1)  u32 count
 *   count × { u16 name_len, name, nonce[24], u32 ct_len, ct = secretbox(u16 name_len ‖ name ‖ value) }
 *   mac[32] = HMAC-SHA-512-256 over everything before it
 *
 * The secretbox key and the MAC key are derived from the 32-byte store key (crypto_kdf, context
 * "bstnsecr", ids 1 and 2). The name inside the box ties a value to its name, so swapping
 * ciphertexts between entries fails; the file MAC catches dropped or reordered entries and tells a
 * wrong key apart from a damaged store before anything is decrypted. */
#include "config.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "bounds.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define STORE_MAGIC "BSTNSEC"           /* 8 bytes with its NUL */
#define STORE_VERSION 1
#define STORE_HEADER 16
#define STORE_KDF_CONTEXT "bstnsecr"
#define STORE_KDF_BOX 1
#define STORE_KDF_MAC 2
#define STORE_ENTRY_MAX (2 + BASTION_SECRET_MAX_NAME + crypto_secretbox_NONCEBYTES + 4 + \
                         crypto_secretbox_MACBYTES + 2 + BASTION_SECRET_MAX_NAME + BASTION_SECRET_MAX_VALUE)
#define STORE_MAX_FILE (STORE_HEADER + (size_t) BASTION_SECRETS_MAX_ENTRIES * STORE_ENTRY_MAX + crypto_auth_BYTES)

struct entry {
        char *name;
        uint8_t nonce[crypto_secretbox_NONCEBYTES];
        uint8_t *ct;
        uint32_t ct_len;
};

struct secrets_store {
        char *path;
        uint8_t *keys;                  /* sodium_malloc'd: box key ‖ mac key */
        struct entry *entries;
        size_t n;
};

static uint8_t *box_key(const struct secrets_store *s) { return s->keys; }
static uint8_t *mac_key(const struct secrets_store *s) { return s->keys + crypto_secretbox_KEYBYTES; }

void secrets_store_free(struct secrets_store *s) {
        if (!s)
                return;
        for (size_t i = 0; i < s->n; i++) {
                free(s->entries[i].name);
                free(s->entries[i].ct);
        }
        free(s->entries);
        sodium_free(s->keys);
        free(s->path);
        free(s);
}

size_t secrets_store_count(const struct secrets_store *s) { return s->n; }
const char *secrets_store_name(const struct secrets_store *s, size_t i) { return i < s->n ? s->entries[i].name : NULL; }
size_t secrets_store_value_size(const struct secrets_store *s, size_t i) {
        return i < s->n ? s->entries[i].ct_len - crypto_secretbox_MACBYTES - 2 - strlen(s->entries[i].name) : 0;
}

static struct entry *find(const struct secrets_store *s, const char *name) {
        for (size_t i = 0; i < s->n; i++)
                if (streq(s->entries[i].name, name))
                        return &s->entries[i];
        return NULL;
}

/* ---- reading ---- */

struct cursor {
        const uint8_t *p;
        size_t left;
};

static int take(struct cursor *c, void *out, size_t n) {
        if (c->left < n)
                return -EBADMSG;
        memcpy(out, c->p, n);
        c->p += n;
        c->left -= n;
        return 0;
}

static uint32_t le32(const uint8_t b[4]) { return b[0] | (uint32_t) b[1] << 8 | (uint32_t) b[2] << 16 | (uint32_t) b[3] << 24; }

static int parse_entry(struct cursor *c, struct entry *e) {
        uint8_t b2[2], b4[4];
        size_t nlen;

        if (take(c, b2, 2) < 0)
                return -EBADMSG;
        nlen = b2[0] | (size_t) b2[1] << 8;
        if (nlen == 0 || nlen > BASTION_SECRET_MAX_NAME || c->left < nlen)
                return -EBADMSG;
        e->name = strndup((const char *) c->p, nlen);
        if (!e->name)
                return -ENOMEM;
        c->p += nlen;
        c->left -= nlen;
        if (!secrets_name_valid(e->name) || take(c, e->nonce, sizeof(e->nonce)) < 0 || take(c, b4, 4) < 0)
                return -EBADMSG;
        e->ct_len = le32(b4);
        if (e->ct_len < crypto_secretbox_MACBYTES + 2 + nlen ||
            e->ct_len > crypto_secretbox_MACBYTES + 2 + nlen + BASTION_SECRET_MAX_VALUE || c->left < e->ct_len)
                return -EBADMSG;
        e->ct = malloc(e->ct_len);
        if (!e->ct)
                return -ENOMEM;
        return take(c, e->ct, e->ct_len);
}

static int parse_store(struct secrets_store *s, const uint8_t *data, size_t size) {
        struct cursor c = { .p = data + STORE_HEADER, .left = size - STORE_HEADER - crypto_auth_BYTES };
        uint32_t count;
        int r;

        if (memcmp(data, STORE_MAGIC, 8) != 0 || le32(data + 8) != STORE_VERSION)
                return -EBADMSG;
        if (crypto_auth_verify(data + size - crypto_auth_BYTES, data, size - crypto_auth_BYTES, mac_key(s)) < 0)
                return -EKEYREJECTED;
        count = le32(data + 12);
        if (count > BASTION_SECRETS_MAX_ENTRIES)
                return -EBADMSG;
        s->entries = calloc(count ?: 1, sizeof(struct entry));
        if (!s->entries)
                return -ENOMEM;
        for (uint32_t i = 0; i < count; i++) {
                r = parse_entry(&c, &s->entries[i]);
                s->n++;
                if (r < 0)
                        return r;
        }
        return c.left == 0 ? 0 : -EBADMSG;
}

static int read_fd(int fd, uint8_t **ret, size_t *ret_size) {
        _cleanup_free_ uint8_t *buf = NULL;
        struct stat st;
        size_t n = 0;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode) || st.st_size < (off_t) (STORE_HEADER + crypto_auth_BYTES) ||
            (size_t) st.st_size > STORE_MAX_FILE)
                return -EBADMSG;
        buf = malloc((size_t) st.st_size);
        if (!buf)
                return -ENOMEM;
        while (n < (size_t) st.st_size) {
                ssize_t k = read(fd, buf + n, (size_t) st.st_size - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -EBADMSG;
                n += (size_t) k;
        }
        *ret = TAKE_PTR(buf);
        *ret_size = n;
        return 0;
}

static int read_file(const char *path, uint8_t **ret, size_t *ret_size) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);

        return fd < 0 ? -errno : read_fd(fd, ret, ret_size);
}

/* fd >= 0: read from it; else from path (create: a missing file is an empty store). */
static int store_open(int fd, const char *path, const struct secret *key, bool create, struct secrets_store **ret) {
        _cleanup_(secrets_store_freep) struct secrets_store *s = NULL;
        _cleanup_free_ uint8_t *data = NULL;
        size_t size = 0;
        int r;

        if (!key || key->size != SECRETS_KEY_BYTES)
                return -EINVAL;
        s = calloc(1, sizeof(*s));
        if (!s || !(s->path = strdup(path)) || !(s->keys = sodium_malloc(crypto_secretbox_KEYBYTES + crypto_auth_KEYBYTES)))
                return -ENOMEM;
        crypto_kdf_derive_from_key(box_key(s), crypto_secretbox_KEYBYTES, STORE_KDF_BOX, STORE_KDF_CONTEXT, key->data);
        crypto_kdf_derive_from_key(mac_key(s), crypto_auth_KEYBYTES, STORE_KDF_MAC, STORE_KDF_CONTEXT, key->data);
        r = fd >= 0 ? read_fd(fd, &data, &size) : read_file(path, &data, &size);
        if (r == -ENOENT && create && fd < 0) {
                *ret = TAKE_PTR(s);
                return 0;
        }
        if (r < 0)
                return r;
        r = parse_store(s, data, size);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(s);
        return 0;
}

int secrets_store_open(const char *path, const struct secret *key, bool create, struct secrets_store **ret) {
        return store_open(-1, path, key, create, ret);
}

int secrets_store_open_fd(int fd, const char *path, const struct secret *key, struct secrets_store **ret) {
        return fd < 0 ? -EBADF : store_open(fd, path, key, false, ret);
}

/* ---- values ---- */

void secret_free(struct secret *s) {
        if (!s)
                return;
        sodium_free(s->data);   /* zeroes the memory before releasing it */
        free(s);
}

static int secret_alloc(size_t size, struct secret **ret) {
        struct secret *s = calloc(1, sizeof(*s));

        if (!s)
                return -ENOMEM;
        /* sodium_malloc(0) is fine but returns a real guarded allocation we can free uniformly. */
        s->data = sodium_malloc(size ?: 1);
        if (!s->data) {
                free(s);
                return -ENOMEM;
        }
        s->size = size;
        *ret = s;
        return 0;
}

int secret_new(const void *data, size_t size, struct secret **ret) {
        int r = secret_alloc(size, ret);

        if (r >= 0 && data && size > 0)
                memcpy((*ret)->data, data, size);
        return r;
}

int secrets_store_get(struct secrets_store *s, const char *name, struct secret **ret) {
        const struct entry *e = find(s, name);
        _cleanup_secret_ struct secret *plain = NULL;
        size_t nlen;
        int r;

        if (!e)
                return -ENOENT;
        nlen = strlen(name);
        r = secret_alloc(e->ct_len - crypto_secretbox_MACBYTES, &plain);
        if (r < 0)
                return r;
        if (crypto_secretbox_open_easy(plain->data, e->ct, e->ct_len, e->nonce, box_key(s)) < 0)
                return -EKEYREJECTED;
        if ((plain->data[0] | (size_t) plain->data[1] << 8) != nlen || memcmp(plain->data + 2, name, nlen) != 0)
                return -EKEYREJECTED;
        return secret_new(plain->data + 2 + nlen, plain->size - 2 - nlen, ret);
}

int secrets_store_set(struct secrets_store *s, const char *name, const void *value, size_t size) {
        _cleanup_secret_ struct secret *plain = NULL;
        struct entry *e = find(s, name), fresh = {};
        size_t nlen = strlen(name);
        int r;

        if (!secrets_name_valid(name) || size > BASTION_SECRET_MAX_VALUE)
                return -EINVAL;
        if (!e && s->n >= BASTION_SECRETS_MAX_ENTRIES)
                return -E2BIG;
        r = secret_alloc(2 + nlen + size, &plain);
        if (r < 0)
                return r;
        plain->data[0] = nlen & 0xff;
        plain->data[1] = (uint8_t) (nlen >> 8);
        memcpy(plain->data + 2, name, nlen);
        if (size > 0)
                memcpy(plain->data + 2 + nlen, value, size);
        fresh.ct_len = (uint32_t) (plain->size + crypto_secretbox_MACBYTES);
        fresh.ct = malloc(fresh.ct_len);
        fresh.name = strdup(name);
        if (!fresh.ct || !fresh.name) {
                free(fresh.ct);
                free(fresh.name);
                return -ENOMEM;
        }
        randombytes_buf(fresh.nonce, sizeof(fresh.nonce));
        crypto_secretbox_easy(fresh.ct, plain->data, plain->size, fresh.nonce, box_key(s));
        if (e) {
                free(e->name);
                free(e->ct);
                *e = fresh;
                return 0;
        }
        e = realloc(s->entries, (s->n + 1) * sizeof(*e));
        if (!e) {
                free(fresh.ct);
                free(fresh.name);
                return -ENOMEM;
        }
        s->entries = e;
        s->entries[s->n++] = fresh;
        return 0;
}

int secrets_store_remove(struct secrets_store *s, const char *name) {
        struct entry *e = find(s, name);

        if (!e)
                return -ENOENT;
        free(e->name);
        free(e->ct);
        memmove(e, e + 1, (size_t) (s->entries + s->n - (e + 1)) * sizeof(*e));
        s->n--;
        return 0;
}

/* ---- writing ---- */

static void put16(uint8_t *p, size_t v) { p[0] = v & 0xff; p[1] = (uint8_t) (v >> 8); }
static void put32(uint8_t *p, size_t v) { put16(p, v & 0xffff); put16(p + 2, v >> 16); }

static int serialize(const struct secrets_store *s, uint8_t **ret, size_t *ret_size) {
        size_t size = STORE_HEADER + crypto_auth_BYTES, off = STORE_HEADER;
        uint8_t *b;

        for (size_t i = 0; i < s->n; i++)
                size += 2 + strlen(s->entries[i].name) + crypto_secretbox_NONCEBYTES + 4 + s->entries[i].ct_len;
        b = malloc(size);
        if (!b)
                return -ENOMEM;
        memcpy(b, STORE_MAGIC, 8);
        put32(b + 8, STORE_VERSION);
        put32(b + 12, s->n);
        for (size_t i = 0; i < s->n; i++) {
                const struct entry *e = &s->entries[i];
                size_t nlen = strlen(e->name);

                put16(b + off, nlen);
                memcpy(b + off + 2, e->name, nlen);
                off += 2 + nlen;
                memcpy(b + off, e->nonce, sizeof(e->nonce));
                off += sizeof(e->nonce);
                put32(b + off, e->ct_len);
                memcpy(b + off + 4, e->ct, e->ct_len);
                off += 4 + e->ct_len;
        }
        crypto_auth(b + off, b, off, mac_key(s));
        *ret = b;
        *ret_size = size;
        return 0;
}

static int write_all(int fd, const uint8_t *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -EIO;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

static int fsync_parent(const char *path) {
        _cleanup_free_ char *dir = strdup(path);
        _cleanup_close_ int fd = -1;
        char *slash;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (slash == dir)
                slash[1] = '\0';
        else if (slash)
                *slash = '\0';
        fd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        return fd < 0 || fsync(fd) < 0 ? -errno : 0;
}

int secrets_store_save(struct secrets_store *s) {
        _cleanup_free_ uint8_t *data = NULL;
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -1;
        size_t size;
        int r;

        r = serialize(s, &data, &size);
        if (r < 0 || asprintf(&tmp, "%s.XXXXXX", s->path) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(errno, "Cannot create %s: %m", tmp);
        r = RET_NERRNO(fchmod(fd, 0600));
        if (r >= 0)
                r = write_all(fd, data, size);
        if (r >= 0)
                r = RET_NERRNO(fsync(fd));
        if (r >= 0)
                r = RET_NERRNO(rename(tmp, s->path));
        if (r < 0) {
                (void) unlink(tmp);
                return log_error_errno(r, "Cannot write %s: %m", s->path);
        }
        return fsync_parent(s->path);
}
