/* Capability drop shared by the spawn path and sandbox_lockdown(): securebits locked first (they need
 * CAP_SETPCAP), then the bounding set (a new user namespace hands back a full one), ambient, and last
 * the effective, permitted and inheritable sets. */
#include "config.h"

#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "rawsys.h"
#include "sandbox-internal.h"
#include "util.h"

#define SANDBOX_SECUREBITS                                                                      \
        (SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |                        \
         SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE | \
         SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED)

/* The highest capability this kernel knows: PR_CAPBSET_READ answers EINVAL past it. Asked of the
 * kernel, not of /proc/sys, which ProcSubset=pid hides and a pivoted root no longer has. */
unsigned long sandbox_cap_last_cap(void) {
        unsigned long last = CAP_LAST_CAP;

        while (last < 63 && prctl(PR_CAPBSET_READ, last + 1, 0, 0, 0) >= 0)
                last++;
        while (last > 0 && prctl(PR_CAPBSET_READ, last, 0, 0, 0) < 0)
                last--;
        return last;
}

/* This and sandbox_clear_cap_sets() run in the spawn path's child, which shares the supervisor's
 * memory: raw system calls only (seccomp/rawsys.h). */
int sandbox_drop_bounding_caps(unsigned long last_cap) {
        long bits = raw_syscall(SYS_prctl, PR_GET_SECUREBITS, 0, 0, 0, 0), r;

        /* Already locked (e.g. by the spawn path): locked bits cannot be set twice, and need not be. */
        if (bits < 0 || (bits & SANDBOX_SECUREBITS) != SANDBOX_SECUREBITS)
                if ((r = raw_syscall(SYS_prctl, PR_SET_SECUREBITS, SANDBOX_SECUREBITS, 0, 0, 0)) < 0)
                        return (int) r;
        for (unsigned long cap = 0; cap <= last_cap; cap++)
                if (raw_syscall(SYS_prctl, PR_CAPBSET_READ, cap, 0, 0, 0) > 0 &&
                    (r = raw_syscall(SYS_prctl, PR_CAPBSET_DROP, cap, 0, 0, 0)) < 0)
                        return (int) r;
        r = raw_syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        return r < 0 ? (int) r : 0;
}

/* capset with empty sets: no allocation, no errno. */
int sandbox_clear_cap_sets(void) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3] = {};
        long r = raw_syscall(SYS_capset, &h, d);

        return r < 0 ? (int) r : 0;
}

bool sandbox_have_cap(int cap) {
        struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3] = {};

        if (cap < 0 || cap >= 32 * _LINUX_CAPABILITY_U32S_3 || syscall(SYS_capget, &h, d) < 0)
                return false;
        return d[cap / 32].effective & (1U << (cap % 32));
}

int sandbox_drop_caps(unsigned long last_cap) {
        int r;

        /* Without CAP_SETPCAP (run by hand, unprivileged) the bounding set cannot be touched; with
         * no_new_privs it can never refill the permitted set anyway. */
        if (sandbox_have_cap(CAP_SETPCAP))
                r = sandbox_drop_bounding_caps(last_cap);
        else
                r = prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 ? -errno : 0;
        return r < 0 ? r : sandbox_clear_cap_sets();
}
