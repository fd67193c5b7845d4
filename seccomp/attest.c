/* sandbox_attest(): what /proc says about a confined child, checked against what its role requires
 * before the broker is allowed to route anything to it. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bounds.h"
#include "sandbox-internal.h"
#include "util.h"

/* What a role must show. The broker and the front keep the host's namespaces (they are not spawned
 * into new ones); their filesystem is confined by Landlock, which Seccomp 2 implies (lockdown.c). */
static const struct {
        bool seccomp;
        bool namespaces;
} role_requires[_SANDBOX_ROLE_MAX] = {
        [SANDBOX_ROLE_WORKER] = { .seccomp = true, .namespaces = true },
        [SANDBOX_ROLE_BROKER] = { .seccomp = true, .namespaces = false },
        [SANDBOX_ROLE_FRONT] = { .seccomp = true, .namespaces = false },
        [SANDBOX_ROLE_EXEC_RUNTIME] = { .seccomp = true, .namespaces = true },
};

#ifdef BASTION_SANITIZERS
/* The sanitizer build loads no filter (ASan cannot live with one): Seccomp 0 is expected, and a
 * worker that still holds its lockdown capabilities has simply not finished yet. */
#define SECCOMP_REQUIRED(role) false
#define LOCKDOWN_PENDING(role, a) (role_requires[role].seccomp && ((a).cap_prm | (a).cap_bnd) != 0)
#else
#define SECCOMP_REQUIRED(role) role_requires[role].seccomp
#define LOCKDOWN_PENDING(role, a) (role_requires[role].seccomp && (a).seccomp_mode == 0)
#endif

static const char *const namespaces[] = { "user", "mnt", "net", "pid", "ipc", "uts" };

const char *sandbox_role_to_string(enum sandbox_role role) {
        static const char *const names[_SANDBOX_ROLE_MAX] = {
                [SANDBOX_ROLE_WORKER] = "worker",
                [SANDBOX_ROLE_BROKER] = "broker",
                [SANDBOX_ROLE_FRONT] = "front",
                [SANDBOX_ROLE_EXEC_RUNTIME] = "exec-runtime",
        };
        return role >= 0 && role < _SANDBOX_ROLE_MAX ? names[role] : "?";
}

static int parse_status(pid_t pid, struct sandbox_attestation *a) {
        _cleanup_fclose_ FILE *f = NULL;
        char path[64], line[256];
        unsigned uid[4];
        int seen = 0;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f)) {
                unsigned long long v;
                int i;

                if (sscanf(line, "Uid: %u %u %u %u", &uid[0], &uid[1], &uid[2], &uid[3]) == 4) {
                        /* Real, effective, saved and fs uid must all agree, or it could switch back. */
                        a->host_uid = uid[0] == uid[1] && uid[1] == uid[2] && uid[2] == uid[3] ?
                                uid[0] : (uid_t) -1;
                        seen |= 1;
                } else if (sscanf(line, "Seccomp: %d", &i) == 1)
                        a->seccomp_mode = i, seen |= 2;
                else if (sscanf(line, "NoNewPrivs: %d", &i) == 1)
                        a->no_new_privs = i == 1, seen |= 4;
                else if (sscanf(line, "CapInh: %llx", &v) == 1)
                        a->cap_inh = v, seen |= 8;
                else if (sscanf(line, "CapPrm: %llx", &v) == 1)
                        a->cap_prm = v, seen |= 16;
                else if (sscanf(line, "CapEff: %llx", &v) == 1)
                        a->cap_eff = v, seen |= 32;
                else if (sscanf(line, "CapBnd: %llx", &v) == 1)
                        a->cap_bnd = v, seen |= 64;
                else if (sscanf(line, "CapAmb: %llx", &v) == 1)
                        a->cap_amb = v, seen |= 128;
        }
        return seen == 255 ? 0 : -EBADMSG;
}

/* True when every namespace of pid differs from ours; -errno when one cannot be read. */
static int own_namespaces(pid_t pid) {
        for (size_t i = 0; i < ELEMENTSOF(namespaces); i++) {
                char path[64];
                struct stat theirs, ours;

                snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int) pid, namespaces[i]);
                if (stat(path, &theirs) < 0)
                        return -errno;
                snprintf(path, sizeof(path), "/proc/self/ns/%s", namespaces[i]);
                if (stat(path, &ours) < 0)
                        return -errno;
                if (theirs.st_ino == ours.st_ino && theirs.st_dev == ours.st_dev)
                        return 0;
        }
        return 1;
}

__attribute__((format(printf, 2, 3)))
static int refuse(struct sandbox_attestation *a, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(a->reason, sizeof(a->reason), fmt, ap);
        va_end(ap);
        return -EPERM;
}

/* The credentials sandbox_spawn() sets before exec: no_new_privs, no capabilities, one uid. */
static int check_credentials(uid_t expected_uid, struct sandbox_attestation *a) {
        if (!a->no_new_privs)
                return refuse(a, "no_new_privs is not set");
        if (a->cap_inh || a->cap_prm || a->cap_eff || a->cap_bnd || a->cap_amb)
                return refuse(a, "capabilities left: inh %llx prm %llx eff %llx bnd %llx amb %llx",
                              (unsigned long long) a->cap_inh, (unsigned long long) a->cap_prm,
                              (unsigned long long) a->cap_eff, (unsigned long long) a->cap_bnd,
                              (unsigned long long) a->cap_amb);
        if (a->host_uid == (uid_t) -1)
                return refuse(a, "real, effective, saved and fs uid differ");
        if (expected_uid != (uid_t) -1 && a->host_uid != expected_uid)
                return refuse(a, "host uid is %u, expected %u", (unsigned) a->host_uid, (unsigned) expected_uid);
        return 0;
}

/* Not locked down yet (or never will be): the caller retries until its deadline. */
static int pending(struct sandbox_attestation *a) {
        snprintf(a->reason, sizeof(a->reason), "seccomp mode is %d: lockdown not finished", a->seccomp_mode);
        return -EAGAIN;
}

static int verdict(enum sandbox_role role, uid_t expected_uid, struct sandbox_attestation *a) {
        int r;

        /* A worker holds capabilities in its own user namespace until its lockdown; the broker and
         * the front never do (the spawn path drops them), so they are judged on those at once and
         * only their filter may still be pending. */
        if (role_requires[role].namespaces && LOCKDOWN_PENDING(role, *a))
                return pending(a);
        r = check_credentials(expected_uid, a);
        if (r < 0)
                return r;
        if (LOCKDOWN_PENDING(role, *a))
                return pending(a);
        if (SECCOMP_REQUIRED(role) && a->seccomp_mode != 2)
                return refuse(a, "seccomp mode is %d, not 2 (filter)", a->seccomp_mode);
        if (role_requires[role].namespaces && !a->own_namespaces)
                return refuse(a, "shares a namespace with the supervisor");
        return 0;
}

int sandbox_attest(pid_t pid, enum sandbox_role role, uid_t expected_uid, struct sandbox_attestation *ret) {
        struct sandbox_attestation a = { .landlock_abi = -1 };
        int r;

        if (role < 0 || role >= _SANDBOX_ROLE_MAX || pid <= 0 || !ret)
                return -EINVAL;
        r = parse_status(pid, &a);
        if (r < 0)
                return *ret = a, r;
        r = own_namespaces(pid);
        if (r < 0)
                return *ret = a, r;
        a.own_namespaces = r > 0;
        if (a.seccomp_mode == 2)
                a.landlock_abi = sandbox_landlock_abi();

        r = verdict(role, expected_uid, &a);
        *ret = a;
        return r;
}

static uint64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

int sandbox_attest_wait(pid_t pid, enum sandbox_role role, uid_t expected_uid, unsigned timeout_ms,
                        struct sandbox_attestation *ret) {
        uint64_t deadline = now_ms() + timeout_ms;
        int r;

        for (;;) {
                r = sandbox_attest(pid, role, expected_uid, ret);
                if (r != -EAGAIN)
                        return r;
                if (now_ms() >= deadline) {
                        snprintf(ret->reason, sizeof(ret->reason), "not locked down within %u ms", timeout_ms);
                        return -ETIMEDOUT;
                }
                (void) nanosleep(&(struct timespec) { .tv_nsec = BASTION_SANDBOX_ATTEST_POLL_US * 1000 }, NULL);
        }
}
