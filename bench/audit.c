/* bench/audit: what auditing adds to a tool call. For each durability setting, N calls of intent +
 * result records through the real writer on a real file (group commit driven as the broker's
 * timer would), printed as a table of records/s and per-call added latency.
 *
 *   bench/audit [DIR] [CALLS]     (default: a fresh directory under /var/tmp, 2000 calls) */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include <sodium.h>

#include "broker/audit/audit.h"
#include "util.h"

struct mode {
        const char *name;
        unsigned intent_flags, result_flags;
};

static const struct mode modes[] = {
        { "read-only call (intent+result batched)", AUDIT_BATCHED, AUDIT_BATCHED },
        /* What the broker does for a side effect: both records on disk before the client hears of it. */
        { "side effect (intent+result durable)", AUDIT_DURABLE, AUDIT_DURABLE },
        /* For comparison: what the durable result record adds. */
        { "intent durable, result batched", AUDIT_DURABLE, AUDIT_BATCHED },
};

static uint64_t now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static void clear_dir(const char *dir) {
        DIR *d = opendir(dir);
        struct dirent *de;
        char p[4096];

        if (!d)
                return;
        while ((de = readdir(d))) {
                int fd, fl = 0;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
                fd = open(p, O_RDONLY | O_CLOEXEC);
                if (fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &fl) >= 0) {
                        fl &= ~FS_APPEND_FL;
                        (void) ioctl(fd, FS_IOC_SETFLAGS, &fl);
                }
                safe_close(fd);
                unlink(p);
        }
        closedir(d);
}

static int run(const char *dir, const struct mode *m, unsigned calls) {
        static const struct audit_principal p = { .sub = "uid:1000", .uid = 1000, .role = "ops" };
        uint8_t seed[AUDIT_SEED_BYTES] = { 1 };
        struct audit_options o = { .dir = dir, .seed = seed };
        _cleanup_free_ uint64_t *lat = calloc(calls, sizeof(uint64_t));
        _cleanup_json_ json_t *args = json_pack("{s:s, s:i, s:s}", "sku", "SKU-000123", "qty", 40, "warehouse", "WH-EAST");
        struct audit_log *log = NULL;
        uint64_t start, total, records;
        int r;

        clear_dir(dir);
        if (!lat || !args || (r = audit_open(&o, &log)) < 0)
                return fprintf(stderr, "cannot open audit log in %s\n", dir), -1;
        start = now_us();
        for (unsigned i = 0; i < calls; i++) {
                uint64_t t0 = now_us(), seq;

                /* The broker's timer: group commit and timed checkpoints when due. */
                if (audit_next_deadline(log) <= t0 && audit_tick(log, t0) < 0)
                        return -1;
                t0 = now_us();
                if (audit_call_intent(log, &p, "inventory", "reorder", args, NULL, m->intent_flags, &seq) < 0 ||
                    audit_call_result(log, seq, &p, "inventory", "reorder", AUDIT_STATUS_OK, NULL, 321, m->result_flags) < 0)
                        return -1;
                lat[i] = now_us() - t0;
        }
        total = now_us() - start;
        records = audit_last_seq(log);
        audit_close(log);
        qsort(lat, calls, sizeof(uint64_t), cmp_u64);
        printf("| %-40s | %10.0f | %9.0f | %8" PRIu64 " | %8" PRIu64 " |\n", m->name,
               (double) records * 1e6 / (double) total, (double) calls * 1e6 / (double) total,
               lat[calls / 2], lat[(size_t) ((double) calls * 0.99)]);
        return 0;
}

int main(int argc, char **argv) {
        char tmpl[] = "/var/tmp/bench-audit-XXXXXX";
        const char *dir = argc > 1 ? argv[1] : mkdtemp(tmpl);
        unsigned calls = argc > 2 ? (unsigned) strtoul(argv[2], NULL, 10) : 2000;

        if (!dir || calls == 0 || sodium_init() < 0)
                return 1;
        printf("audit bench: %u calls per row, log in %s\n\n", calls, dir);
        printf("| %-40s | %10s | %9s | %8s | %8s |\n", "setting", "records/s", "calls/s", "p50 us", "p99 us");
        printf("|------------------------------------------|------------|-----------|----------|----------|\n");
        for (size_t i = 0; i < ELEMENTSOF(modes); i++)
                if (run(dir, &modes[i], calls) < 0)
                        return 1;
        clear_dir(dir);
        if (argc <= 1)
                rmdir(dir);
        return 0;
}
