/* Which system call got a process killed by its seccomp filter: the kernel says so in its audit record
 * (type=1326, printed to the kernel log when no audit daemon takes it). Best effort: the log may be
 * unreadable (ProtectKernelLogs=, no CAP_SYSLOG) or the record rate-limited away. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "sandbox-internal.h"
#include "util.h"

/* One /dev/kmsg record: a header, the message, continuation lines; the kernel caps it at 8 KiB. */
#define KMSG_RECORD_MAX 8192

/* Only records this recent can be about a child that just died: an older one names an earlier
 * process that had the same pid (and the kernel may have suppressed the new one's record). */
#define CULPRIT_RECORD_MAX_AGE_USEC (30ULL * 1000 * 1000)

static int parse_record(const char *rec, pid_t pid, uint64_t not_before_usec, int *ret_nr) {
        unsigned long long ts;
        char needle[32];
        const char *p;

        /* "PRIORITY,SEQUENCE,TIMESTAMP_USEC,FLAGS;MESSAGE"; the timestamp is the kernel's monotonic clock. */
        if (sscanf(rec, "%*u,%*u,%llu,", &ts) != 1 || ts < not_before_usec)
                return 0;
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
        struct timespec now;
        uint64_t now_usec, not_before;
        int nr = -1;

        if (fd < 0)
                return errno == ENOENT ? -ENODEV : -errno;      /* PrivateDevices=: no kernel log */
        clock_gettime(CLOCK_MONOTONIC, &now);
        now_usec = (uint64_t) now.tv_sec * 1000000 + now.tv_nsec / 1000;
        not_before = now_usec > CULPRIT_RECORD_MAX_AGE_USEC ? now_usec - CULPRIT_RECORD_MAX_AGE_USEC : 0;
        for (;;) {
                ssize_t n = read(fd, rec, KMSG_RECORD_MAX);

                if (n < 0 && errno == EPIPE)
                        continue;               /* overwritten while we read: skip ahead */
                if (n <= 0)
                        break;                  /* EAGAIN: the end of the log */
                rec[n] = '\0';
                (void) parse_record(rec, pid, not_before, &nr);     /* the last record for pid wins */
        }
        if (nr < 0)
                return -ENOENT;
        {
                _cleanup_free_ char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);

                snprintf(buf, size, "%s (%d)", name ? name : "?", nr);
        }
        return 0;
}
