/* Broker-held secrets (DESIGN §8): the encrypted store bastionctl manages, plain systemd
 * credentials, guarded memory for values, and the sealed memfd a worker receives its credential in.
 * The store file format is described at the top of store.c and in bastionctl(8). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SECRETS_KEY_BYTES 32
#define SECRETS_DEFAULT_STORE "/var/lib/bastion/secrets.store"
#define SECRETS_DEFAULT_KEY_FILE "/etc/bastion/secrets.key"
/* The store key as a systemd credential: $CREDENTIALS_DIRECTORY/bastion.secrets-key. */
#define SECRETS_KEY_CREDENTIAL "bastion.secrets-key"
/* Names starting with this are Bastion's own (the audit signing key); `secrets set/rm` refuse them. */
#define SECRETS_RESERVED_PREFIX "bastion."

/* A secret value in guarded memory (sodium_malloc: guard pages, mlock'd, wiped when freed). */
struct secret {
        uint8_t *data;
        size_t size;
};

void secret_free(struct secret *s);
static inline void secret_freep(struct secret **s) { secret_free(*s); *s = NULL; }
#define _cleanup_secret_ __attribute__((cleanup(secret_freep)))

/* Copies `size` bytes into a new guarded secret. */
int secret_new(const void *data, size_t size, struct secret **ret);

/* [A-Za-z0-9_.-], 1..BASTION_SECRET_MAX_NAME, not starting with '.': also a file name in
 * $CREDENTIALS_DIRECTORY. */
bool secrets_name_valid(const char *name);

/* No core dumps and no ptrace by peers of the same uid: secrets live in this process's memory. */
int secrets_harden_process(void);

/* The store key. key_file NULL: $CREDENTIALS_DIRECTORY/bastion.secrets-key when present, else
 * SECRETS_DEFAULT_KEY_FILE. A key file must be a regular file owned by root with no group or other
 * permission bits (-EPERM otherwise). Content: 32 raw bytes or 64 hex digits. A missing key file
 * is -ENOENT without a log message (the caller knows whether that is a first start); every other
 * failure is logged here. */
int secrets_key_load(const char *key_file, struct secret **ret_key);
/* The store key from an fd someone else opened (the broker's: bastiond opens the file). what names it
 * in messages. A key file (credential false) is checked as above, on the fd; a systemd credential is
 * taken as it is (systemd decided who may read it). Failures are logged here. */
int secrets_key_load_fd(int fd, const char *what, bool credential, struct secret **ret_key);
/* Creates a new random key file (0400, O_EXCL: never overwrites a key). */
int secrets_key_create(const char *key_file);

struct secrets_store;

/* Reads and authenticates the store. -ENOENT when it does not exist (unless create), -EKEYREJECTED
 * when the key is wrong or the file was altered, -EBADMSG when it is not a store. */
int secrets_store_open(const char *path, const struct secret *key, bool create, struct secrets_store **ret);
/* The same from an fd opened read-only by someone else; path is only its name in messages. */
int secrets_store_open_fd(int fd, const char *path, const struct secret *key, struct secrets_store **ret);
void secrets_store_free(struct secrets_store *s);
static inline void secrets_store_freep(struct secrets_store **s) { secrets_store_free(*s); *s = NULL; }

int secrets_store_get(struct secrets_store *s, const char *name, struct secret **ret);
int secrets_store_set(struct secrets_store *s, const char *name, const void *value, size_t size);
int secrets_store_remove(struct secrets_store *s, const char *name);
/* Writes the store atomically (temporary file, fsync, rename, fsync of the directory), mode 0600. */
int secrets_store_save(struct secrets_store *s);

size_t secrets_store_count(const struct secrets_store *s);
const char *secrets_store_name(const struct secrets_store *s, size_t i);
size_t secrets_store_value_size(const struct secrets_store *s, size_t i);

/* A plain systemd credential: $CREDENTIALS_DIRECTORY/NAME. -ENOENT when absent or no directory. */
int secrets_credential_load(const char *name, struct secret **ret);
/* A plain credential from an fd (a regular file of at most BASTION_SECRET_MAX_VALUE bytes). */
int secrets_credential_load_fd(int fd, struct secret **ret);
/* A systemd credential of that name if there is one, else the store entry (store may be NULL). */
int secrets_lookup(struct secrets_store *s, const char *name, struct secret **ret);

/* A memfd holding exactly the secret, sealed against write, grow, shrink and further sealing,
 * positioned at 0 — what a worker receives at its credential fd. */
int secret_sealed_memfd(const struct secret *s, const char *name, int *ret_fd);
/* secrets_lookup() + secret_sealed_memfd(): the plaintext lives only as long as the call. */
int secrets_sealed_memfd_by_name(struct secrets_store *s, const char *name, int *ret_fd);
