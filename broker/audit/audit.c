/* The audit log writer: hash-chained JSON lines, signed checkpoints, group commit, rotation with link
 * records, and recovery of a tail torn by a crash. The format is specified in bastion-audit(5). */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>

#include <pthread.h>
#include <sodium.h>
#include <systemd/sd-event.h>

#include "audit-internal.h"
#include "bounds.h"
#include "jsonrpc.h"
#include "log.h"
#include "util.h"

/* The group commit's fdatasync() off the event loop (audit_sync_in_background()): on this class of
 * machine one takes 0.2–15 ms, and in the loop it stalled every call that arrived meanwhile (the p99
 * of bench/http). The thread only ever syncs an fd the loop hands it; the loop waits for it before it
 * syncs itself, closes or replaces that fd. Created on first use, after the broker's lockdown, so it
 * runs under the same seccomp filter and Landlock domain. */
struct audit_sync {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        pthread_t thread;
        bool enabled, started, quit;
        int fd;                         /* to sync now; -1: idle */
        int error;                      /* the thread's failure, taken over by the loop */
};

struct audit_log {
        int dir_fd;
        int fd;
        char *dir;
        char *path;
        uint8_t *sk;                    /* sodium_malloc'd Ed25519 secret key */
        uint8_t pk[AUDIT_PUBKEY_BYTES];
        uint64_t seq;                   /* last record written */
        char prev[AUDIT_HASH_HEX];      /* BLAKE2b-256 of the last line written */
        uint64_t size;                  /* bytes of complete lines in the current file */
        uint64_t since_checkpoint;
        uint64_t checkpoint_mono;       /* when the last checkpoint was written */
        uint64_t sync_deadline;         /* UINT64_MAX: nothing waits for a group commit */
        unsigned checkpoint_records, checkpoint_sec, group_commit_ms;
        uint64_t rotate_bytes;
        bool journal;
        int error;                      /* sticky: once an append failed, all do */
        bool held;                      /* audit_hold(): records gather in pend until audit_release() */
        char *pend;
        size_t pend_len, pend_cap;
        sd_event_source *timer;         /* audit_attach_event(): armed at audit_next_deadline() */
        struct audit_sync bg;
};

static const char *const reserved_keys[] = { "seq", "ts", "type", "prev", "hash", "sig" };

/* Keeps an attached sd-event timer at audit_next_deadline(). */
static void rearm(struct audit_log *log) {
        uint64_t d;

        if (!log->timer)
                return;
        d = audit_next_deadline(log);
        if (d == UINT64_MAX || log->error < 0) {
                (void) sd_event_source_set_enabled(log->timer, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(log->timer, d);
        (void) sd_event_source_set_enabled(log->timer, SD_EVENT_ONESHOT);
}

uint64_t audit_now_mono(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

void audit_format_ts(char ret[AUDIT_TS_MAX]) {
        /* The seconds part is formatted once per second (every call writes two records); per thread. */
        static __thread time_t last_sec = -1;
        static __thread char last[AUDIT_TS_MAX];
        static __thread size_t last_len;
        struct timespec ts;
        int ms;

        clock_gettime(CLOCK_REALTIME, &ts);
        if (ts.tv_sec != last_sec) {
                struct tm tm;

                gmtime_r(&ts.tv_sec, &tm);
                /* strftime keeps the compiler's range analysis out of it; the year has four digits until 9999. */
                last_len = strftime(last, AUDIT_TS_MAX - 6, "%Y-%m-%dT%H:%M:%S", &tm);
                last_sec = ts.tv_sec;
        }
        ms = (int) (ts.tv_nsec / 1000000) % 1000;
        memcpy(ret, last, last_len);
        ret[last_len] = '.';
        ret[last_len + 1] = (char) ('0' + ms / 100);
        ret[last_len + 2] = (char) ('0' + ms / 10 % 10);
        ret[last_len + 3] = (char) ('0' + ms % 10);
        ret[last_len + 4] = 'Z';
        ret[last_len + 5] = '\0';
}

void audit_hash_hex(const void *data, size_t len, char ret[AUDIT_HASH_HEX]) {
        uint8_t h[AUDIT_HASH_BYTES];

        crypto_generichash(h, sizeof(h), data, len, NULL, 0);
        sodium_bin2hex(ret, AUDIT_HASH_HEX, h, sizeof(h));
}

int audit_pubkey_from_seed(const uint8_t seed[AUDIT_SEED_BYTES], uint8_t ret[AUDIT_PUBKEY_BYTES]) {
        uint8_t *sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
        int r;

        if (!sk)
                return -ENOMEM;
        r = crypto_sign_seed_keypair(ret, sk, seed) < 0 ? -EINVAL : 0;
        sodium_free(sk);
        return r;
}

void audit_checkpoint_message(uint64_t seq, const char *ts, const char *prev, char ret[AUDIT_CHECKPOINT_MSG_MAX]) {
        snprintf(ret, AUDIT_CHECKPOINT_MSG_MAX, AUDIT_CHECKPOINT_DOMAIN " %" PRIu64 " %s %s", seq, ts, prev);
}

/* The append-only inode flag keeps even root-run tools from rewriting history casually; it needs
 * CAP_LINUX_IMMUTABLE and filesystem support, so it is best effort. Under bastiond the broker has no
 * capability (EPERM) and bastiond sets and clears the flag for it (supervisor/audit_flags.c). */
static void set_append_only(struct audit_log *log, bool on) {
        int flags;

        if (ioctl(log->fd, FS_IOC_GETFLAGS, &flags) < 0) {
                log_info_errno(errno, "Append-only flag not available for %s: %m", log->path);
                return;
        }
        if (!!(flags & FS_APPEND_FL) == on)
                return;
        flags = on ? (flags | FS_APPEND_FL) : (flags & ~FS_APPEND_FL);
        if (ioctl(log->fd, FS_IOC_SETFLAGS, &flags) < 0)
                log_full_errno(errno == EPERM ? LOG_DEBUG : LOG_INFO, errno, "Cannot %s append-only flag on %s: %m",
                               on ? "set" : "clear", log->path);
}

static int file_name_seq(const char *name, uint64_t *ret) {
        char *end;

        if (strncmp(name, "audit-", 6) != 0 || strlen(name) != 6 + 20 + 6 || !streq(name + 26, ".jsonl"))
                return -EINVAL;
        errno = 0;
        *ret = strtoull(name + 6, &end, 10);
        return errno || end != name + 26 ? -EINVAL : 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *) a, *(char *const *) b); }

void audit_free_paths(char **paths, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(paths[i]);
        free(paths);
}

int audit_list_files(const char *dir, char ***ret_paths, size_t *ret_n) {
        DIR *d = opendir(dir);
        char **paths = NULL;
        size_t n = 0;
        struct dirent *de;
        uint64_t seq;

        if (!d)
                return -errno;
        while ((de = readdir(d))) {
                char **np;

                if (file_name_seq(de->d_name, &seq) < 0)
                        continue;
                np = realloc(paths, (n + 1) * sizeof(*paths));
                if (!np || asprintf(&np[n], "%s/%s", dir, de->d_name) < 0) {
                        closedir(d);
                        audit_free_paths(np ? np : paths, n);
                        return -ENOMEM;
                }
                paths = np;
                n++;
        }
        closedir(d);
        /* Zero-padded sequence numbers: name order is chain order. */
        if (n > 0)
                qsort(paths, n, sizeof(*paths), cmp_str);
        *ret_paths = paths;
        *ret_n = n;
        return 0;
}

static int check_fields(json_t *fields) {
        if (!fields)
                return 0;
        if (!json_is_object(fields))
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(reserved_keys); i++)
                if (json_object_get(fields, reserved_keys[i]))
                        return -EINVAL;
        return 0;
}

/* Record types are our own constants; the line is assembled by hand, so they must need no escaping. */
static bool type_plain(const char *t) {
        if (!*t)
                return false;
        for (; *t; t++)
                if (!((*t >= 'a' && *t <= 'z') || (*t >= '0' && *t <= '9') || *t == '.' || *t == '_'))
                        return false;
        return true;
}

/* Appends the NULL-terminated list of strings at line + n; returns the new length. */
static size_t append(char *line, size_t n, ...) {
        va_list ap;

        va_start(ap, n);
        for (const char *p; (p = va_arg(ap, const char *));) {
                size_t l = strlen(p);

                memcpy(line + n, p, l);
                n += l;
        }
        va_end(ap);
        return n;
}

/* Builds the line for the next record: body (the record without "hash", compact ASCII JSON, members
 * in the order seq, ts, type, fields…, [sig,] prev), then the hash member spliced in before '}'.
 * Only `fields` goes through jansson; the members around it are printed here (one object and one
 * dump per record less than building the whole record as a json_t: every call writes two). */
static int build_line(struct audit_log *log, const char *type, json_t *fields, bool sign, char **ret, size_t *ret_len) {
        _cleanup_free_ char *inner_alloc = NULL, *line = NULL;
        char ts[AUDIT_TS_MAX], hash[AUDIT_HASH_HEX], sighex[crypto_sign_BYTES * 2 + 1] = "", ibuf[4096];
        const char *inner = NULL;
        uint64_t seq = log->seq + 1;
        size_t ilen = 0, cap, n;

        if (!type_plain(type))
                return -EINVAL;
        audit_format_ts(ts);
        if (fields && json_object_size(fields) > 0) {
                /* "{...}", not NUL-terminated; on the stack unless large */
                inner = json_dump_buf(fields, JSON_COMPACT | JSON_ENSURE_ASCII, ibuf, sizeof(ibuf), &inner_alloc,
                                      &ilen);
                if (!inner)
                        return -ENOMEM;
        }
        if (sign) {
                char msg[AUDIT_CHECKPOINT_MSG_MAX];
                uint8_t sig[crypto_sign_BYTES];

                audit_checkpoint_message(seq, ts, log->prev, msg);
                crypto_sign_detached(sig, NULL, (const uint8_t *) msg, strlen(msg), log->sk);
                sodium_bin2hex(sighex, sizeof(sighex), sig, sizeof(sig));
        }
        cap = 64 + strlen(ts) + strlen(type) + ilen + sizeof(sighex) + AUDIT_HASH_HEX + sizeof(AUDIT_HASH_MEMBER) +
              AUDIT_HASH_HEX + 16;
        if (cap > BASTION_AUDIT_MAX_RECORD + 256)
                return -E2BIG;
        line = malloc(cap);
        if (!line)
                return -ENOMEM;
        /* Appended piece by piece (cap covers them all; no printf machinery: two records per call). */
        n = (size_t) snprintf(line, cap, "{\"seq\":%" PRIu64, seq);
        n = append(line, n, ",\"ts\":\"", ts, "\",\"type\":\"", type, "\"", NULL);
        if (ilen > 2) {
                line[n++] = ',';
                memcpy(line + n, inner + 1, ilen - 2);
                n += ilen - 2;
        }
        if (sign)
                n = append(line, n, ",\"sig\":\"", sighex, "\"", NULL);
        n = append(line, n, ",\"prev\":\"", log->prev, "\"}", NULL);
        /* n is the body's length, closing brace included */
        if (n + sizeof(AUDIT_HASH_MEMBER) + AUDIT_HASH_HEX + 3 > BASTION_AUDIT_MAX_RECORD)
                return -E2BIG;
        audit_hash_hex(line, n, hash);
        *ret_len = append(line, n - 1, AUDIT_HASH_MEMBER, hash, "\"}\n", NULL);
        line[*ret_len] = '\0';
        *ret = TAKE_PTR(line);
        return 0;
}

static void *sync_thread(void *userdata) {
        struct audit_sync *bg = userdata;

        pthread_mutex_lock(&bg->lock);
        for (;;) {
                int fd, r;

                while (bg->fd < 0 && !bg->quit)
                        pthread_cond_wait(&bg->cond, &bg->lock);
                if (bg->quit)
                        break;
                fd = bg->fd;
                pthread_mutex_unlock(&bg->lock);
                r = fdatasync(fd) < 0 ? -errno : 0;
                pthread_mutex_lock(&bg->lock);
                if (r < 0 && bg->error == 0)
                        bg->error = r;
                bg->fd = -1;
                pthread_cond_broadcast(&bg->cond);
        }
        pthread_mutex_unlock(&bg->lock);
        return NULL;
}

/* Waits until the thread holds no fd, and takes over its failure (sticky, like any other). */
static int sync_wait(struct audit_log *log) {
        int r;

        if (!log->bg.started)
                return log->error;
        pthread_mutex_lock(&log->bg.lock);
        while (log->bg.fd >= 0)
                pthread_cond_wait(&log->bg.cond, &log->bg.lock);
        r = log->bg.error;
        pthread_mutex_unlock(&log->bg.lock);
        if (r < 0 && log->error >= 0) {
                log->error = r;
                log_error_errno(r, "Cannot sync audit log %s: %m", log->path);
        }
        return log->error;
}

/* The loop's check before each record: has a background sync failed? Never waits for one. */
static int sync_error(struct audit_log *log) {
        int r;

        if (!log->bg.started || log->error < 0)
                return log->error;
        pthread_mutex_lock(&log->bg.lock);
        r = log->bg.error;
        pthread_mutex_unlock(&log->bg.lock);
        if (r < 0) {
                log->error = r;
                log_error_errno(r, "Cannot sync audit log %s: %m", log->path);
        }
        return log->error;
}

/* Hands the current file to the thread; 1 if it took it, 0 if it is still busy with the last one,
 * or a negative errno when it cannot be started (the caller then syncs itself). */
static int sync_start(struct audit_log *log) {
        int r = 1;

        if (!log->bg.started) {
                pthread_attr_t attr;

                if (pthread_attr_init(&attr) != 0)
                        return -ENOMEM;
                (void) pthread_attr_setstacksize(&attr, 64 * 1024);
                r = -pthread_create(&log->bg.thread, &attr, sync_thread, &log->bg);
                pthread_attr_destroy(&attr);
                if (r < 0)
                        return log_warning_errno(r, "Cannot start the audit sync thread, syncing in the loop: %m");
                log->bg.started = true;
                r = 1;
        }
        pthread_mutex_lock(&log->bg.lock);
        if (log->bg.fd >= 0)
                r = 0;
        else {
                log->bg.fd = log->fd;
                pthread_cond_broadcast(&log->bg.cond);
        }
        pthread_mutex_unlock(&log->bg.lock);
        return r;
}

int audit_sync_in_background(struct audit_log *log) {
        log->bg.enabled = true;
        return 0;
}

/* Writes whole lines that start at offset `base` of the file. */
static int write_all(struct audit_log *log, const char *line, size_t len, uint64_t base) {
        size_t done = 0;

        while (done < len) {
                ssize_t n = write(log->fd, line + done, len - done);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        int r = n < 0 ? -errno : -EIO;

                        /* Leave no torn line behind if we can; recovery on the next open handles it if not. */
                        if (done > 0) {
                                set_append_only(log, false);
                                if (ftruncate(log->fd, (off_t) base) < 0)
                                        log_warning_errno(errno, "Cannot cut a torn record from %s: %m", log->path);
                                set_append_only(log, true);
                        }
                        return r;
                }
                done += (size_t) n;
        }
        return 0;
}

/* Writes what audit_hold() gathered, in one write(2): 0, or why records that were appended are not in
 * the file (then sticky like any other failure). Nothing held: 0, even on a failed log (its appends
 * failed one by one, so nothing went on as if they had been written). */
static int commit(struct audit_log *log) {
        size_t len = log->pend_len;
        int r;

        if (len == 0)
                return 0;
        log->pend_len = 0;
        if (log->error < 0)
                return log->error;
        r = write_all(log, log->pend, len, log->size - len);
        if (r < 0) {
                log->error = r;
                return log_error_errno(r, "Cannot write audit records to %s: %m", log->path);
        }
        return 0;
}

static int pend_put(struct audit_log *log, const char *line, size_t len) {
        if (log->pend_cap - log->pend_len < len) {
                size_t need = log->pend_len + len, cap = log->pend_cap ? log->pend_cap * 2 : 4096;

                while (cap < need)
                        cap *= 2;
                char *p = realloc(log->pend, cap);

                if (!p)
                        return -ENOMEM;
                log->pend = p;
                log->pend_cap = cap;
        }
        memcpy(log->pend + log->pend_len, line, len);
        log->pend_len += len;
        return 0;
}

void audit_hold(struct audit_log *log) {
        log->held = true;
}

int audit_release(struct audit_log *log) {
        log->held = false;
        return commit(log);
}

static int write_record(struct audit_log *log, const char *type, json_t *fields, bool sign) {
        _cleanup_free_ char *line = NULL;
        size_t len;
        int r;

        if (sync_error(log) < 0)
                return log->error;
        r = build_line(log, type, fields, sign, &line, &len);
        if (r < 0)
                return log_error_errno(r, "Cannot build audit record %s: %m", type);
        r = log->held ? pend_put(log, line, len) : write_all(log, line, len, log->size);
        if (r < 0) {
                log->error = r;
                return log_error_errno(r, "Cannot write audit record to %s: %m", log->path);
        }
        log->seq++;
        log->size += len;
        audit_hash_hex(line, len - 1, log->prev);
        if (log->journal)
                audit_journal_mirror(log->seq, type, fields, line, len - 1);
        if (log->sync_deadline == UINT64_MAX)
                log->sync_deadline = audit_now_mono() + (uint64_t) log->group_commit_ms * 1000;
        rearm(log);
        return 0;
}

int audit_flush(struct audit_log *log) {
        if (commit(log) < 0 || sync_wait(log) < 0)
                return log->error;
        if (log->sync_deadline == UINT64_MAX)
                return 0;
        if (fdatasync(log->fd) < 0) {
                log->error = -errno;
                return log_error_errno(errno, "Cannot sync audit log %s: %m", log->path);
        }
        log->sync_deadline = UINT64_MAX;
        rearm(log);
        return 0;
}

static int write_checkpoint(struct audit_log *log, const char *reason) {
        _cleanup_json_ json_t *f = NULL;
        char pk[AUDIT_PUBKEY_HEX];
        int r;

        sodium_bin2hex(pk, sizeof(pk), log->pk, sizeof(log->pk));
        f = json_pack("{s:s, s:I, s:s}", "reason", reason, "records", (json_int_t) log->since_checkpoint, "key", pk);
        if (!f)
                return -ENOMEM;
        r = write_record(log, "checkpoint", f, true);
        if (r < 0)
                return r;
        log->since_checkpoint = 0;
        log->checkpoint_mono = audit_now_mono();
        rearm(log);
        return 0;
}

static int open_file(struct audit_log *log, const char *name, int flags) {
        char *path;

        if (asprintf(&path, "%s/%s", log->dir, name) < 0)
                return -ENOMEM;
        (void) commit(log);                     /* records held for the file we close go into it */
        (void) sync_wait(log);                  /* the thread may be syncing the fd we close */
        free(log->path);
        log->path = path;
        log->fd = safe_close(log->fd);
        log->fd = openat(log->dir_fd, name, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW | flags, 0600);
        if (log->fd < 0)
                return log_error_errno(errno, "Cannot open audit log %s: %m", path);
        return 0;
}

/* Starts the next file: its first record is a link carrying the previous file's last seq and (as
 * its prev) the hash of the previous file's last line. */
static int start_file(struct audit_log *log, const char *prev_name) {
        _cleanup_json_ json_t *f = NULL;
        char name[40];
        int r;

        snprintf(name, sizeof(name), "audit-%020" PRIu64 ".jsonl", log->seq + 1);
        r = open_file(log, name, O_CREAT | O_EXCL);
        if (r < 0)
                return r;
        log->size = 0;
        if (prev_name) {
                f = json_pack("{s:s, s:I}", "prev_file", prev_name, "prev_seq", (json_int_t) log->seq);
                if (!f)
                        return -ENOMEM;
                r = write_record(log, "link", f, false);
                if (r < 0)
                        return r;
                log->since_checkpoint++;
        }
        set_append_only(log, true);
        /* The new name must survive a crash, or the next open would continue the old file. */
        if (fsync(log->dir_fd) < 0)
                return log_error_errno(errno, "Cannot sync %s: %m", log->dir);
        return 0;
}

int audit_rotate(struct audit_log *log) {
        _cleanup_free_ char *old = NULL;
        int r;

        if (log->error < 0)
                return log->error;
        r = write_checkpoint(log, "rotate");
        if (r >= 0)
                r = audit_flush(log);
        if (r < 0)
                return r;
        old = strdup(strrchr(log->path, '/') + 1);
        if (!old)
                return -ENOMEM;
        r = start_file(log, old);
        if (r < 0) {
                log->error = r;
                return r;
        }
        log_info("Audit log rotated to %s", log->path);
        return audit_flush(log);
}

int audit_append(struct audit_log *log, const char *type, json_t *fields, unsigned flags, uint64_t *ret_seq) {
        uint64_t seq;
        int r;

        if (!type || check_fields(fields) < 0)
                return -EINVAL;
        r = write_record(log, type, fields, false);
        if (r < 0)
                return r;
        seq = log->seq;
        if (++log->since_checkpoint >= log->checkpoint_records) {
                r = write_checkpoint(log, "count");
                if (r < 0)
                        return r;
        }
        if (flags & AUDIT_DURABLE) {
                r = audit_flush(log);
                if (r < 0)
                        return r;
        }
        if (log->size >= log->rotate_bytes) {
                r = audit_rotate(log);
                if (r < 0)
                        return r;
        }
        if (ret_seq)
                *ret_seq = seq;
        return 0;
}

uint64_t audit_next_deadline(const struct audit_log *log) {
        uint64_t d = log->sync_deadline;

        if (log->since_checkpoint > 0) {
                uint64_t c = log->checkpoint_mono + (uint64_t) log->checkpoint_sec * 1000000ULL;
                if (c < d)
                        d = c;
        }
        return d;
}

int audit_tick(struct audit_log *log, uint64_t now) {
        int r;

        if (log->since_checkpoint > 0 && now >= log->checkpoint_mono + (uint64_t) log->checkpoint_sec * 1000000ULL) {
                r = write_checkpoint(log, "timer");
                if (r < 0)
                        return r;
        }
        if (now >= log->sync_deadline) {
                if (!log->bg.enabled)
                        return audit_flush(log);
                r = sync_error(log);
                if (r < 0)
                        return r;
                r = sync_start(log);
                if (r < 0)
                        return audit_flush(log);
                /* Still busy with the last group: try again one period later, not in a tight loop.
                 * Records written from here on open the next group (write_record). */
                log->sync_deadline = r > 0 ? UINT64_MAX : now + (uint64_t) log->group_commit_ms * 1000;
                rearm(log);
        }
        return 0;
}

uint64_t audit_last_seq(const struct audit_log *log) { return log->seq; }
const char *audit_current_path(const struct audit_log *log) { return log->path; }
void audit_pubkey(const struct audit_log *log, uint8_t ret[AUDIT_PUBKEY_BYTES]) {
        memcpy(ret, log->pk, AUDIT_PUBKEY_BYTES);
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct audit_log *log = userdata;

        /* A failure is sticky and already logged; the next append reports it to its caller. */
        (void) audit_tick(log, usec);
        rearm(log);
        return 0;
}

int audit_attach_event(struct audit_log *log, sd_event *e) {
        int r;

        if (log->timer)
                return -EBUSY;
        r = sd_event_add_time(e, &log->timer, CLOCK_MONOTONIC, UINT64_MAX, 1000, on_timer, log);
        if (r < 0)
                return log_error_errno(r, "Cannot add the audit timer: %m");
        (void) sd_event_source_set_description(log->timer, "audit");
        rearm(log);
        return 0;
}

static void audit_free(struct audit_log *log) {
        if (!log)
                return;
        if (log->bg.started) {
                pthread_mutex_lock(&log->bg.lock);
                log->bg.quit = true;
                pthread_cond_broadcast(&log->bg.cond);
                pthread_mutex_unlock(&log->bg.lock);
                (void) pthread_join(log->bg.thread, NULL);
        }
        pthread_cond_destroy(&log->bg.cond);
        pthread_mutex_destroy(&log->bg.lock);
        sd_event_source_disable_unref(log->timer);
        safe_close(log->fd);
        safe_close(log->dir_fd);
        sodium_free(log->sk);
        free(log->pend);
        free(log->dir);
        free(log->path);
        free(log);
}

int audit_close(struct audit_log *log) {
        int r;

        if (!log)
                return 0;
        r = log->error;
        if (r >= 0)
                r = write_checkpoint(log, "close");
        if (r >= 0)
                r = audit_flush(log);
        audit_free(log);
        return r;
}

static int audit_recover(struct audit_log *log);

static int log_new(const struct audit_options *opts, struct audit_log **ret) {
        struct audit_log *log = calloc(1, sizeof(*log));

        if (!log)
                return -ENOMEM;
        log->fd = -1;
        log->dir_fd = -1;
        log->sync_deadline = UINT64_MAX;
        pthread_mutex_init(&log->bg.lock, NULL);
        pthread_cond_init(&log->bg.cond, NULL);
        log->bg.fd = -1;
        log->checkpoint_records = opts->checkpoint_records ?: BASTION_AUDIT_CHECKPOINT_RECORDS;
        log->checkpoint_sec = opts->checkpoint_sec ?: BASTION_AUDIT_CHECKPOINT_SEC;
        log->group_commit_ms = opts->group_commit_ms ?: BASTION_AUDIT_GROUP_COMMIT_MS;
        log->rotate_bytes = opts->rotate_bytes ?: BASTION_AUDIT_ROTATE_BYTES;
        log->journal = opts->journal;
        log->checkpoint_mono = audit_now_mono();
        memset(log->prev, '0', AUDIT_HASH_HEX - 1);
        log->dir = strdup(opts->dir);
        log->sk = sodium_malloc(crypto_sign_SECRETKEYBYTES);
        if (!log->dir || !log->sk) {
                audit_free(log);
                return -ENOMEM;
        }
        crypto_sign_seed_keypair(log->pk, log->sk, opts->seed);
        *ret = log;
        return 0;
}

static int open_dir(struct audit_log *log) {
        if (mkdir(log->dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Cannot create audit directory %s: %m", log->dir);
        log->dir_fd = open(log->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (log->dir_fd < 0)
                return log_error_errno(errno, "Cannot open audit directory %s: %m", log->dir);
        /* Two writers would fork the chain; the lock dies with the process, so a crash frees it. */
        if (flock(log->dir_fd, LOCK_EX | LOCK_NB) < 0)
                return log_error_errno(errno, "Audit directory %s is in use by another process: %m", log->dir);
        return 0;
}

int audit_open(const struct audit_options *opts, struct audit_log **ret) {
        struct audit_log *log = NULL;
        _cleanup_json_ json_t *start = NULL;
        int r;

        if (!opts || !opts->dir || !opts->seed)
                return -EINVAL;
        r = log_new(opts, &log);
        if (r < 0)
                return log_oom();
        r = open_dir(log);
        if (r >= 0)
                r = audit_recover(log);
        if (r >= 0) {
                char pk[AUDIT_PUBKEY_HEX];

                sodium_bin2hex(pk, sizeof(pk), log->pk, sizeof(log->pk));
                start = json_pack("{s:I, s:s}", "pid", (json_int_t) getpid(), "key", pk);
                r = start ? audit_append(log, "start", start, AUDIT_DURABLE, NULL) : -ENOMEM;
        }
        if (r < 0) {
                audit_free(log);
                return r;
        }
        *ret = log;
        return 0;
}

/* ---- recovery (called by audit_open) ---- */

/* Reads the tail of the open file: how many bytes of complete lines it holds, and the last
 * complete line (NUL-terminated, without '\n') when there is one. */
static int read_tail(int fd, uint64_t *ret_good, char **ret_last) {
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t want, n = 0;
        off_t off;
        char *end, *start;

        if (fstat(fd, &st) < 0)
                return -errno;
        want = (size_t) st.st_size < 2 * BASTION_AUDIT_MAX_RECORD ? (size_t) st.st_size : 2 * BASTION_AUDIT_MAX_RECORD;
        off = st.st_size - (off_t) want;
        buf = malloc(want + 1);
        if (!buf)
                return -ENOMEM;
        while (n < want) {
                ssize_t k = pread(fd, buf + n, want - n, off + (off_t) n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -EIO;
                n += (size_t) k;
        }
        buf[n] = '\0';
        end = memrchr(buf, '\n', n);
        *ret_last = NULL;
        if (!end) {
                /* No complete line in the window: either the file holds none, or a line is too long. */
                if (off > 0)
                        return -EBADMSG;
                *ret_good = 0;
                return 0;
        }
        *ret_good = (uint64_t) off + (uint64_t) (end - buf) + 1;
        *end = '\0';
        start = memrchr(buf, '\n', (size_t) (end - buf));
        start = start ? start + 1 : buf;
        if (!start[0] || (start == buf && off > 0))
                return -EBADMSG;
        *ret_last = strdup(start);
        return *ret_last ? 0 : -ENOMEM;
}

static int parse_last(const char *line, uint64_t *ret_seq, bool *ret_closed) {
        _cleanup_json_ json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, NULL);
        json_t *seq = json_object_get(o, "seq");

        if (!json_is_integer(seq) || json_integer_value(seq) <= 0)
                return -EBADMSG;
        *ret_seq = (uint64_t) json_integer_value(seq);
        *ret_closed = streq(json_string_value(json_object_get(o, "type")), "checkpoint") &&
                      streq(json_string_value(json_object_get(o, "reason")), "close");
        return 0;
}

/* Continues the chain after the last complete record of the newest file. A torn last line (the
 * process died inside write(2)) is cut off and the cut is recorded, so the verifier sees an
 * explained gap in bytes and an unbroken chain. */
static int recover_file(struct audit_log *log, char **paths, size_t n) {
        _cleanup_free_ char *last = NULL;
        _cleanup_json_ json_t *f = NULL;
        const char *name = strrchr(paths[n - 1], '/') + 1;
        uint64_t good, seq = 0;
        struct stat st;
        bool closed = false;
        int r;

        r = open_file(log, name, 0);
        if (r < 0)
                return r;
        r = read_tail(log->fd, &good, &last);
        if (r < 0 || fstat(log->fd, &st) < 0)
                return log_error_errno(r < 0 ? r : -errno, "Cannot read the end of %s: %m", log->path);
        if (last && parse_last(last, &seq, &closed) < 0)
                return log_error_errno(EBADMSG, "Last record of %s is unreadable; refusing to extend it", log->path);
        if (!last && n > 1) {
                /* Died while starting this file, before its link record was complete: drop the file
                 * and continue the previous one, whose last record is the rotation checkpoint. */
                log_warning("Audit log %s holds no complete record (%jd bytes); removing it", log->path, (intmax_t) st.st_size);
                set_append_only(log, false);
                if (unlinkat(log->dir_fd, name, 0) < 0)
                        return log_error_errno(errno, "Cannot remove %s: %m", log->path);
                return recover_file(log, paths, n - 1);
        }
        if (!last && st.st_size == 0)
                return set_append_only(log, true), 0;
        if ((uint64_t) st.st_size > good) {
                set_append_only(log, false);
                if (ftruncate(log->fd, (off_t) good) < 0)
                        return log_error_errno(errno, "Cannot cut the torn tail of %s: %m", log->path);
        }
        set_append_only(log, true);
        log->size = good;
        log->seq = seq;
        if (last)
                audit_hash_hex(last, strlen(last), log->prev);
        if (closed && (uint64_t) st.st_size == good)
                return 0;
        f = json_pack("{s:s, s:I, s:I}", "reason", (uint64_t) st.st_size > good ? "torn tail" : "unclean shutdown",
                      "truncated_bytes", (json_int_t) ((uint64_t) st.st_size - good), "last_seq", (json_int_t) seq);
        if (!f)
                return -ENOMEM;
        log_warning("Audit log %s was not closed cleanly (%" PRIu64 " torn bytes cut); continuing after seq %" PRIu64,
                    log->path, (uint64_t) st.st_size - good, seq);
        return audit_append(log, "recovered", f, AUDIT_DURABLE, NULL);
}

static int audit_recover(struct audit_log *log) {
        char **paths = NULL;
        size_t n = 0;
        int r;

        r = audit_list_files(log->dir, &paths, &n);
        if (r < 0)
                return log_error_errno(r, "Cannot list %s: %m", log->dir);
        if (n == 0)
                r = start_file(log, NULL);
        else
                r = recover_file(log, paths, n);
        audit_free_paths(paths, n);
        return r;
}

int audit_pubkey_read(const char *path, uint8_t ret[AUDIT_PUBKEY_BYTES]) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        char buf[256];
        ssize_t n;
        size_t len;
        const char *end;

        if (fd < 0)
                return -errno;
        n = read(fd, buf, sizeof(buf) - 1);
        if (n < 0)
                return -errno;
        if (n == AUDIT_PUBKEY_BYTES) {
                memcpy(ret, buf, AUDIT_PUBKEY_BYTES);
                return 0;
        }
        buf[n] = '\0';
        if (sodium_hex2bin(ret, AUDIT_PUBKEY_BYTES, buf, (size_t) n, " \t\r\n", &len, &end) < 0 ||
            len != AUDIT_PUBKEY_BYTES || strspn(end, " \t\r\n") != strlen(end))
                return -EBADMSG;
        return 0;
}
