/* Landlock, best effort by ABI: every right this kernel knows is handled, and only what the role needs
 * is allowed. Debian 12's <linux/landlock.h> (6.1) stops at ABI 2, so the UAPI is defined here. */
#include "config.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "log.h"
#include "sandbox-internal.h"
#include "util.h"

#ifndef __NR_landlock_create_ruleset
#define __NR_landlock_create_ruleset 444
#define __NR_landlock_add_rule 445
#define __NR_landlock_restrict_self 446
#endif

#define LL_CREATE_RULESET_VERSION       (1U << 0)
#define LL_RULE_PATH_BENEATH            1
#define LL_FS_EXECUTE                   (1ULL << 0)
#define LL_FS_WRITE_FILE                (1ULL << 1)
#define LL_FS_READ_FILE                 (1ULL << 2)
#define LL_FS_READ_DIR                  (1ULL << 3)
#define LL_FS_REMOVE_DIR                (1ULL << 4)
#define LL_FS_REMOVE_FILE               (1ULL << 5)
#define LL_FS_MAKE_CHAR                 (1ULL << 6)
#define LL_FS_MAKE_DIR                  (1ULL << 7)
#define LL_FS_MAKE_REG                  (1ULL << 8)
#define LL_FS_MAKE_SOCK                 (1ULL << 9)
#define LL_FS_MAKE_FIFO                 (1ULL << 10)
#define LL_FS_MAKE_BLOCK                (1ULL << 11)
#define LL_FS_MAKE_SYM                  (1ULL << 12)
#define LL_FS_REFER                     (1ULL << 13)    /* ABI 2 */
#define LL_FS_TRUNCATE                  (1ULL << 14)    /* ABI 3 */
#define LL_FS_IOCTL_DEV                 (1ULL << 15)    /* ABI 5 */
#define LL_NET_BIND_TCP                 (1ULL << 0)     /* ABI 4 */
#define LL_NET_CONNECT_TCP              (1ULL << 1)     /* ABI 4 */
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET   (1ULL << 0)     /* ABI 6 */
#define LL_SCOPE_SIGNAL                 (1ULL << 1)     /* ABI 6 */

#define LL_FS_ALL ((LL_FS_IOCTL_DEV << 1) - 1)

/* What a worker may do inside its state directory: SQLite's database, journal and WAL files. */
#define LL_FS_STATE_DIR (LL_FS_READ_FILE | LL_FS_WRITE_FILE | LL_FS_READ_DIR | LL_FS_REMOVE_FILE | \
                         LL_FS_MAKE_REG | LL_FS_TRUNCATE)

/* What the broker may do in its audit log directory: create a new file and write it (O_RDWR needs
 * READ_FILE too). No REMOVE_*, no REFER (rename/link), no TRUNCATE, no READ_DIR: history written
 * before cannot be deleted, renamed away or cut short by path; its seccomp filter additionally
 * refuses every open that is not O_CREAT|O_EXCL, so old files cannot be reopened either. */
#define LL_FS_APPEND_DIR (LL_FS_READ_FILE | LL_FS_WRITE_FILE | LL_FS_MAKE_REG)

struct ll_ruleset_attr {
        uint64_t handled_access_fs;
        uint64_t handled_access_net;
        uint64_t scoped;
};

struct ll_path_beneath_attr {
        uint64_t allowed_access;
        int32_t parent_fd;
} __attribute__((packed));

int sandbox_landlock_abi(void) {
        long abi = syscall(__NR_landlock_create_ruleset, NULL, 0, LL_CREATE_RULESET_VERSION);

        /* ENOSYS: not built; EOPNOTSUPP: not enabled at boot. Either way: none. */
        return abi < 0 ? 0 : (int) abi;
}

/* Everything the kernel's ABI knows is handled (= denied unless a rule allows it). */
static struct ll_ruleset_attr ruleset_for_abi(int abi) {
        struct ll_ruleset_attr ra = {
                .handled_access_fs = LL_FS_ALL,
                .handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP,
                .scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL,
        };

        switch (abi) {
        case 1:
                ra.handled_access_fs &= ~LL_FS_REFER;
                /* FALLTHROUGH */
        case 2:
                ra.handled_access_fs &= ~LL_FS_TRUNCATE;
                /* FALLTHROUGH */
        case 3:
                ra.handled_access_net = 0;
                /* FALLTHROUGH */
        case 4:
                ra.handled_access_fs &= ~LL_FS_IOCTL_DEV;
                /* FALLTHROUGH */
        case 5:
                ra.scoped = 0;
                /* FALLTHROUGH */
        default:
                break;
        }
        return ra;
}

static int allow_beneath(int ruleset, const char *path, uint64_t access, uint64_t handled) {
        struct ll_path_beneath_attr pb = { .allowed_access = access & handled };
        _cleanup_close_ int fd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);

        if (fd < 0)
                return -errno;
        pb.parent_fd = fd;
        if (syscall(__NR_landlock_add_rule, ruleset, LL_RULE_PATH_BENEATH, &pb, 0) < 0)
                return -errno;
        return 0;
}

int sandbox_landlock_apply(enum sandbox_role role, const char *state_dir, const char *append_dir) {
        int abi = sandbox_landlock_abi(), r;
        _cleanup_close_ int ruleset = -1;
        struct ll_ruleset_attr ra;

        if (abi == 0) {
                log_warning("Landlock is not available on this kernel; relying on namespaces and seccomp");
                return 0;
        }
        ra = ruleset_for_abi(abi);
        ruleset = (int) syscall(__NR_landlock_create_ruleset, &ra, sizeof(ra), 0);
        if (ruleset < 0)
                return -errno;
        /* No network rule: no TCP bind or connect. The worker gets its state dir, the broker its
         * audit dir; the front works only on fds it holds or is passed and gets no path at all. */
        if (role == SANDBOX_ROLE_WORKER && state_dir) {
                r = allow_beneath(ruleset, state_dir, LL_FS_STATE_DIR, ra.handled_access_fs);
                if (r < 0)
                        return r;
        }
        if (role == SANDBOX_ROLE_BROKER && append_dir) {
                r = allow_beneath(ruleset, append_dir, LL_FS_APPEND_DIR, ra.handled_access_fs);
                if (r < 0)
                        return r;
        }
        /* landlock_restrict_self needs no_new_privs (set by the caller) and applies to this thread:
         * the process is still single-threaded here. */
        if (syscall(__NR_landlock_restrict_self, ruleset, 0) < 0)
                return -errno;
        return abi;
}
