/* bastionctl secrets: manage the encrypted store the broker reads its credentials from. Values come
 * from stdin only (argv is visible in /proc to every user) and are never printed. */
#include "config.h"

#include <getopt.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>

#include <sodium.h>

#include "bounds.h"
#include "broker/audit/audit.h"
#include "broker/secrets/store.h"
#include "cli/bastionctl.h"
#include "log.h"
#include "util.h"

struct store_args {
        const char *store;
        const char *key_file;           /* NULL: credential, then SECRETS_DEFAULT_KEY_FILE */
};

static int open_store(const struct store_args *a, bool create, struct secrets_store **ret) {
        _cleanup_secret_ struct secret *key = NULL;
        int r;

        r = secrets_key_load(a->key_file, &key);
        if (r == -ENOENT)
                return log_error_errno(r, "No store key: %s does not exist (run `bastionctl secrets init`)",
                                       a->key_file ?: SECRETS_DEFAULT_KEY_FILE);
        if (r < 0)
                return r;
        r = secrets_store_open(a->store, key, create, ret);
        if (r == -EKEYREJECTED)
                return log_error_errno(r, "%s: wrong key, or the store was altered", a->store);
        if (r == -ENOENT)
                return log_error_errno(r, "%s does not exist (run `bastionctl secrets init`)", a->store);
        if (r < 0)
                return log_error_errno(r, "Cannot open %s: %m", a->store);
        return 0;
}

/* Reads the whole of stdin into guarded memory; one trailing newline is dropped so that
 * `echo value | bastionctl secrets set NAME` stores "value". */
static int read_value(struct secret **ret) {
        _cleanup_secret_ struct secret *buf = NULL;
        struct termios old, quiet;
        bool tty = tcgetattr(STDIN_FILENO, &old) == 0;
        size_t n = 0;
        int r;

        r = secret_new(NULL, BASTION_SECRET_MAX_VALUE + 1, &buf);
        if (r < 0)
                return log_oom();
        if (tty) {
                fprintf(stderr, "Value (end with Ctrl-D): ");
                quiet = old;
                quiet.c_lflag &= ~(tcflag_t) ECHO;
                tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
        }
        for (;;) {
                ssize_t k = read(STDIN_FILENO, buf->data + n, buf->size - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0 || (n += (size_t) k) == buf->size) {
                        r = k < 0 ? -errno : 0;
                        break;
                }
        }
        if (tty) {
                tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
                fprintf(stderr, "\n");
        }
        if (r < 0)
                return log_error_errno(r, "Cannot read the value from stdin: %m");
        if (n > BASTION_SECRET_MAX_VALUE)
                return log_error_errno(EFBIG, "Value longer than %d bytes", BASTION_SECRET_MAX_VALUE);
        if (n > 0 && buf->data[n - 1] == '\n')
                n--;
        r = secret_new(buf->data, n, ret);
        return r < 0 ? log_oom() : 0;
}

static int cmd_init(const struct store_args *a) {
        _cleanup_(secrets_store_freep) struct secrets_store *s = NULL;
        _cleanup_secret_ struct secret *key = NULL, *seed = NULL;
        const char *key_file = a->key_file ?: SECRETS_DEFAULT_KEY_FILE;
        uint8_t pk[AUDIT_PUBKEY_BYTES];
        char hex[AUDIT_PUBKEY_HEX];
        int r;

        /* A new key only when there is none anywhere: never replace the key of an existing store. */
        if ((a->key_file || !getenv("CREDENTIALS_DIRECTORY")) && access(key_file, F_OK) < 0 && errno == ENOENT) {
                _cleanup_free_ char *dir = strdup(key_file);
                char *slash = dir ? strrchr(dir, '/') : NULL;

                /* Its directory is root's alone, as bastiond's first start makes it. */
                if (slash && slash != dir) {
                        *slash = '\0';
                        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                                return log_error_errno(errno, "Cannot create %s: %m", dir), 1;
                }
                log_info("Creating key file %s", key_file);
                if (secrets_key_create(key_file) < 0)
                        return 1;
        }
        if (secrets_key_load(a->key_file, &key) < 0)
                return 1;
        if (open_store(a, true, &s) < 0)
                return 1;
        if (secrets_store_get(s, AUDIT_SIGNING_KEY_NAME, &seed) >= 0) {
                log_info("%s already holds an audit signing key; leaving it", a->store);
        } else {
                r = secret_new(NULL, AUDIT_SEED_BYTES, &seed);
                if (r < 0)
                        return log_oom(), 1;
                randombytes_buf(seed->data, seed->size);
                if (secrets_store_set(s, AUDIT_SIGNING_KEY_NAME, seed->data, seed->size) < 0 || secrets_store_save(s) < 0)
                        return 1;
        }
        if (seed->size != AUDIT_SEED_BYTES || audit_pubkey_from_seed(seed->data, pk) < 0)
                return log_error("%s: " AUDIT_SIGNING_KEY_NAME " is not a 32-byte seed", a->store), 1;
        sodium_bin2hex(hex, sizeof(hex), pk, sizeof(pk));
        printf("audit public key: %s\n", hex);
        return 0;
}

static int check_name(const char *name) {
        if (!secrets_name_valid(name))
                return log_error_errno(EINVAL, "Invalid secret name \"%s\": use letters, digits, '_', '.', '-'", name);
        if (strncmp(name, SECRETS_RESERVED_PREFIX, strlen(SECRETS_RESERVED_PREFIX)) == 0)
                return log_error_errno(EPERM, "Names starting with \"" SECRETS_RESERVED_PREFIX "\" are reserved for Bastion");
        return 0;
}

static int cmd_set(const struct store_args *a, const char *name) {
        _cleanup_(secrets_store_freep) struct secrets_store *s = NULL;
        _cleanup_secret_ struct secret *v = NULL;

        if (check_name(name) < 0 || open_store(a, false, &s) < 0 || read_value(&v) < 0)
                return 1;
        if (secrets_store_set(s, name, v->data, v->size) < 0)
                return log_error("Cannot store %s (too many entries?)", name), 1;
        return secrets_store_save(s) < 0;
}

static int cmd_rm(const struct store_args *a, const char *name) {
        _cleanup_(secrets_store_freep) struct secrets_store *s = NULL;

        if (check_name(name) < 0 || open_store(a, false, &s) < 0)
                return 1;
        if (secrets_store_remove(s, name) < 0)
                return log_error("No secret named %s", name), 1;
        return secrets_store_save(s) < 0;
}

static int cmd_list(const struct store_args *a) {
        _cleanup_(secrets_store_freep) struct secrets_store *s = NULL;

        if (open_store(a, false, &s) < 0)
                return 1;
        for (size_t i = 0; i < secrets_store_count(s); i++)
                printf("%s\t%zu\n", secrets_store_name(s, i), secrets_store_value_size(s, i));
        return 0;
}

static void help(FILE *out) {
        fprintf(out, "bastionctl secrets init [--store FILE] [--key-file FILE]\n"
               "bastionctl secrets set NAME   (value from stdin)\n"
               "bastionctl secrets list\n"
               "bastionctl secrets rm NAME\n"
               "Defaults: --store " SECRETS_DEFAULT_STORE ", key from $CREDENTIALS_DIRECTORY/" SECRETS_KEY_CREDENTIAL
               " or " SECRETS_DEFAULT_KEY_FILE ". See bastionctl(8).\n");
}

int ctl_secrets(int argc, char **argv) {
        enum { ARG_STORE = 0x100, ARG_KEY_FILE };
        static const struct option options[] = {
                { "store", required_argument, NULL, ARG_STORE },
                { "key-file", required_argument, NULL, ARG_KEY_FILE },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        struct store_args a = { .store = SECRETS_DEFAULT_STORE };
        const char *sub;
        int c, n;

        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h"))
                return help(argc < 2 ? stderr : stdout), argc < 2 ? 2 : 0;
        log_open("bastionctl");
        if (sodium_init() < 0)
                return log_error("libsodium failed to initialise"), 1;
        /* This process holds the store key and the value being set. */
        if (secrets_harden_process() < 0)
                return 1;
        umask(0077);
        sub = argv[1];
        argc--, argv++;
        optind = 0;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case ARG_STORE: a.store = optarg; break;
                case ARG_KEY_FILE: a.key_file = optarg; break;
                case 'h': return help(stdout), 0;
                default: return 2;
                }
        n = argc - optind;
        if (streq(sub, "init") && n == 0)
                return cmd_init(&a);
        if (streq(sub, "list") && n == 0)
                return cmd_list(&a);
        if (streq(sub, "set") && n == 1)
                return cmd_set(&a, argv[optind]);
        if (streq(sub, "rm") && n == 1)
                return cmd_rm(&a, argv[optind]);
        help(stderr);
        return 2;
}
