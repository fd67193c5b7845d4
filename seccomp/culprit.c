/* Which system call got a process killed by its seccomp filter: the kernel says so in its audit record
 * (type=1326, printed to the kernel log when no audit daemon takes it). Best effort: the log may be
 * unreadable (ProtectKernelLogs=, no CAP_SYSLOG) or the record rate-limited away. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "sandbox-internal.h"
#include "util.h"

/* One /dev/kmsg record: a header, the message, continuation lines; the kernel caps it at 8 KiB. */
#define KMSG_RECORD_MAX 8192

static int parse_record(const char *rec, pid_t pid, int *ret_nr) {
        char needle[32];
        const char *p;

        if (!strstr(rec, "type=1326"))
                return 0;
        snprintf(needle, sizeof(needle), " pid=%d ", (int) pid);
        if (!strstr(rec, needle))
                return 0;
        p = strstr(rec, " syscall=");
        if (!p || sscanf(p, " syscall=%d", ret_nr) != 1)
                return 0;
        return 1;
}

int sandbox_seccomp_culprit(pid_t pid, char *buf, size_t size) {
        _cleanup_close_ int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        char rec[KMSG_RECORD_MAX + 1];
        int nr = -1;

        if (fd < 0)
                return errno == ENOENT ? -ENODEV : -errno;      /* PrivateDevices=: no kernel log */
        for (;;) {
                ssize_t n = read(fd, rec, KMSG_RECORD_MAX);

                if (n < 0 && errno == EPIPE)
                        continue;               /* overwritten while we read: skip ahead */
                if (n <= 0)
                        break;                  /* EAGAIN: the end of the log */
                rec[n] = '\0';
                (void) parse_record(rec, pid, &nr);     /* the last record for pid wins */
        }
        if (nr < 0)
                return -ENOENT;
        {
                _cleanup_free_ char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);

                snprintf(buf, size, "%s (%d)", name ? name : "?", nr);
        }
        return 0;
}
