/* The audit log on real files: what the writer produces verifies, and every kind of tampering or
 * damage is detected at the record where it happened. */
#include "config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include <sodium.h>
#include <systemd/sd-event.h>

#include "broker/audit/audit.h"
#include "util.h"

static char dir[] = "/tmp/test-audit-XXXXXX";
static char scratch[PATH_MAX];
static uint8_t seed[AUDIT_SEED_BYTES];
static uint8_t pub[AUDIT_PUBKEY_BYTES];

static void setup(void) {
        cr_assert_geq(sodium_init(), 0);
        cr_assert_not_null(mkdtemp(dir));
        snprintf(scratch, sizeof(scratch), "%s.scratch", dir);
        memset(seed, 0x42, sizeof(seed));
        cr_assert_eq(audit_pubkey_from_seed(seed, pub), 0);
}

/* The log files carry the append-only flag; clear it so the test can clean up. */
static void rm_dir(const char *d) {
        DIR *dd = opendir(d);
        struct dirent *de;
        char p[PATH_MAX];

        if (!dd)
                return;
        while ((de = readdir(dd))) {
                int fd, flags = 0;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(p, sizeof(p), "%s/%s", d, de->d_name);
                fd = open(p, O_RDONLY | O_CLOEXEC);
                if (fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &flags) >= 0) {
                        flags &= ~FS_APPEND_FL;
                        (void) ioctl(fd, FS_IOC_SETFLAGS, &flags);
                }
                safe_close(fd);
                unlink(p);
        }
        closedir(dd);
        rmdir(d);
}

static void teardown(void) {
        rm_dir(dir);
        unlink(scratch);
}

TestSuite(audit, .init = setup, .fini = teardown);

static struct audit_log *open_log(unsigned checkpoint_records) {
        struct audit_options o = { .dir = dir, .seed = seed, .checkpoint_records = checkpoint_records,
                                   .checkpoint_sec = 3600 };
        struct audit_log *log = NULL;

        cr_assert_eq(audit_open(&o, &log), 0);
        return log;
}

static const struct audit_principal alice = { .sub = "uid:1000", .uid = 1000, .tenant = NULL, .role = "ops" };

static void append_calls(struct audit_log *log, int n) {
        for (int i = 0; i < n; i++) {
                _cleanup_json_ json_t *args = json_pack("{s:s, s:i}", "sku", "SKU-1", "qty", i);
                uint64_t seq;

                cr_assert_eq(audit_call_intent(log, &alice, "inventory", "reorder", args, NULL,
                                               i % 2 ? AUDIT_DURABLE : AUDIT_BATCHED, &seq), 0);
                cr_assert_eq(audit_call_result(log, seq, &alice, "inventory", "reorder", AUDIT_STATUS_OK, NULL, 42, AUDIT_BATCHED), 0);
        }
}

static int verify_dir(unsigned flags, struct audit_verify_report *rep, size_t *ret_n) {
        char **paths;
        size_t n;
        int r;

        cr_assert_eq(audit_list_files(dir, &paths, &n), 0);
        r = audit_verify(paths, n, pub, flags, rep);
        audit_free_paths(paths, n);
        if (ret_n)
                *ret_n = n;
        return r;
}

/* Reads the single log file of `dir`. */
static char *read_log(size_t *ret_size) {
        char **paths, *buf;
        size_t n;
        struct stat st;
        int fd;

        cr_assert_eq(audit_list_files(dir, &paths, &n), 0);
        cr_assert_eq(n, 1);
        fd = open(paths[0], O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        cr_assert_eq(fstat(fd, &st), 0);
        buf = malloc((size_t) st.st_size + 1);
        cr_assert_eq(read(fd, buf, (size_t) st.st_size), st.st_size);
        buf[st.st_size] = '\0';
        close(fd);
        audit_free_paths(paths, n);
        *ret_size = (size_t) st.st_size;
        return buf;
}

static int verify_bytes(const char *data, size_t size, unsigned flags, struct audit_verify_report *rep) {
        char *paths[] = { scratch };
        int fd = open(scratch, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, data, size), (ssize_t) size);
        close(fd);
        return audit_verify(paths, 1, pub, flags, rep);
}

/* Line starts of a log buffer: starts[k] is where line k+1 begins; starts[n] == size. */
static size_t split_lines(const char *data, size_t size, size_t *starts, size_t max) {
        size_t n = 0;

        starts[0] = 0;
        for (size_t i = 0; i < size; i++)
                if (data[i] == '\n') {
                        cr_assert_lt(n + 1, max);
                        starts[++n] = i + 1;
                }
        return n;
}

static bool line_is_checkpoint(const char *data, const size_t *starts, size_t k /* 1-based */) {
        return memmem(data + starts[k - 1], starts[k] - starts[k - 1], "\"type\":\"checkpoint\"", 19) != NULL;
}

/* A small single-file log: start, 4 calls (8 records, checkpoint after every 5th), close. */
static char *small_log(size_t *size, size_t *starts, size_t *n_lines) {
        struct audit_log *log = open_log(5);

        append_calls(log, 4);
        cr_assert_eq(audit_close(log), 0);
        char *data = read_log(size);
        *n_lines = split_lines(data, *size, starts, 64);
        return data;
}

Test(audit, mixed_durable_batched_log_with_rotations_verifies) {
        struct audit_verify_report rep;
        struct audit_log *log = open_log(7);
        uint64_t last;
        size_t n;

        append_calls(log, 10);
        cr_assert_eq(audit_rotate(log), 0);
        append_calls(log, 10);
        cr_assert_eq(audit_rotate(log), 0);
        append_calls(log, 3);
        last = audit_last_seq(log);
        cr_assert_eq(audit_close(log), 0);

        cr_assert_eq(verify_dir(0, &rep, &n), 0, "%s:%lu %s", rep.file, rep.line, rep.reason);
        cr_assert_eq(n, 3);
        cr_assert_eq(rep.error, AUDIT_VERIFY_OK);
        cr_assert(rep.anchored);
        cr_assert_eq(rep.first_seq, 1);
        cr_assert_eq(rep.last_seq, last + 1);                   /* + the close checkpoint */
        cr_assert_eq(rep.n_records, last + 1);
        cr_assert_eq(rep.unvouched, 0);
        cr_assert_eq(rep.last_checkpoint_seq, last + 1);
}

Test(audit, size_rotation_starts_new_files_and_the_chain_still_verifies) {
        struct audit_options o = { .dir = dir, .seed = seed, .rotate_bytes = 2048 };
        struct audit_verify_report rep;
        struct audit_log *log = NULL;
        size_t n;

        cr_assert_eq(audit_open(&o, &log), 0);
        append_calls(log, 20);
        cr_assert_eq(audit_close(log), 0);
        cr_assert_eq(verify_dir(0, &rep, &n), 0, "%s:%lu %s", rep.file, rep.line, rep.reason);
        cr_assert_geq(n, 4);
}

Test(audit, files_are_private_and_append_only) {
        struct audit_log *log = open_log(0);
        struct stat st;
        int fd, flags = 0;

        cr_assert_eq(stat(audit_current_path(log), &st), 0);
        cr_assert_eq(st.st_mode & 07777, 0600);
        fd = open(audit_current_path(log), O_RDONLY | O_CLOEXEC);
        cr_assert_eq(ioctl(fd, FS_IOC_GETFLAGS, &flags), 0);
        cr_assert(flags & FS_APPEND_FL);
        close(fd);
        /* Even root cannot rewrite it in place without first clearing the flag. */
        cr_assert_eq(open(audit_current_path(log), O_WRONLY | O_TRUNC | O_CLOEXEC), -1);
        cr_assert_eq(errno, EPERM);
        audit_close(log);
}

Test(audit, every_flipped_byte_is_detected_at_its_line) {
        struct audit_verify_report rep;
        size_t size, starts[64], n_lines;
        char *data = small_log(&size, starts, &n_lines);

        cr_assert_eq(verify_bytes(data, size, 0, &rep), 0);
        for (size_t i = 0; i < size; i++) {
                unsigned long line = 1;

                for (size_t j = 0; j < i; j++)
                        line += data[j] == '\n';
                for (int bit = 0; bit < 8; bit += 7) {
                        data[i] ^= (char) (1 << bit);
                        cr_assert_eq(verify_bytes(data, size, 0, &rep), -EBADMSG, "byte %zu bit %d undetected", i, bit);
                        cr_assert_eq(rep.line, line, "byte %zu bit %d: reported line %lu (%s), expected %lu", i, bit,
                                     rep.line, rep.reason, line);
                        data[i] ^= (char) (1 << bit);
                }
        }
        free(data);
}

Test(audit, deleting_a_line_is_detected_at_the_record_after_the_hole) {
        struct audit_verify_report rep;
        size_t size, starts[64], n_lines;
        char *data = small_log(&size, starts, &n_lines), *cut = malloc(size);

        cr_assert(!line_is_checkpoint(data, starts, n_lines - 1));
        for (size_t k = 1; k <= n_lines; k++) {
                size_t len = starts[k] - starts[k - 1];

                memcpy(cut, data, starts[k - 1]);
                memcpy(cut + starts[k - 1], data + starts[k], size - starts[k]);
                cr_assert_eq(verify_bytes(cut, size - len, 0, &rep), -EBADMSG, "deleting line %zu undetected", k);
                if (k == 1) {
                        cr_assert_eq(rep.error, AUDIT_VERIFY_BAD_LINK);
                        cr_assert_eq(rep.line, 1);
                } else if (k < n_lines) {
                        cr_assert_eq(rep.error, AUDIT_VERIFY_SEQUENCE_GAP, "line %zu: %s", k, rep.reason);
                        cr_assert_eq(rep.line, k);
                        cr_assert_eq(rep.seq, k + 1);
                } else {
                        /* The close checkpoint is gone: what followed the previous checkpoint is unsigned. */
                        size_t c = n_lines - 1;
                        while (c > 0 && !line_is_checkpoint(data, starts, c))
                                c--;
                        cr_assert_eq(rep.error, AUDIT_VERIFY_UNVOUCHED);
                        cr_assert_eq(rep.line, c + 1);
                        cr_assert_eq(rep.seq, c + 1);
                }
        }
        free(cut);
        free(data);
}

Test(audit, swapping_two_lines_is_detected_at_the_first_of_them) {
        struct audit_verify_report rep;
        size_t size, starts[64], n_lines;
        char *data = small_log(&size, starts, &n_lines), *sw = malloc(size);

        for (size_t k = 1; k < n_lines; k++) {
                size_t a = starts[k] - starts[k - 1], b = starts[k + 1] - starts[k];

                memcpy(sw, data, size);
                memcpy(sw + starts[k - 1], data + starts[k], b);
                memcpy(sw + starts[k - 1] + b, data + starts[k - 1], a);
                cr_assert_eq(verify_bytes(sw, size, 0, &rep), -EBADMSG);
                cr_assert_eq(rep.line, k, "swap %zu: reported %lu %s", k, rep.line, rep.reason);
                cr_assert_eq(rep.seq, k + 1);
                cr_assert_eq(rep.error, k == 1 ? AUDIT_VERIFY_BAD_LINK : AUDIT_VERIFY_SEQUENCE_GAP);
        }
        free(sw);
        free(data);
}

Test(audit, duplicating_a_line_is_detected_at_the_copy) {
        struct audit_verify_report rep;
        size_t size, starts[64], n_lines;
        char *data = small_log(&size, starts, &n_lines), *dup = malloc(2 * size);

        for (size_t k = 1; k <= n_lines; k++) {
                size_t len = starts[k] - starts[k - 1];

                memcpy(dup, data, starts[k]);
                memcpy(dup + starts[k], data + starts[k - 1], len);
                memcpy(dup + starts[k] + len, data + starts[k], size - starts[k]);
                cr_assert_eq(verify_bytes(dup, size + len, 0, &rep), -EBADMSG);
                cr_assert_eq(rep.error, AUDIT_VERIFY_SEQUENCE_GAP);
                cr_assert_eq(rep.line, k + 1);
                cr_assert_eq(rep.seq, k);
        }
        free(dup);
        free(data);
}

Test(audit, truncation_is_detected_unless_it_ends_on_a_checkpoint) {
        struct audit_verify_report rep;
        size_t size, starts[64], n_lines;
        char *data = small_log(&size, starts, &n_lines);

        cr_assert_eq(verify_bytes(data, 0, 0, &rep), -EBADMSG);
        cr_assert_eq(rep.error, AUDIT_VERIFY_EMPTY);
        for (size_t b = 1; b < size; b++) {
                size_t m = 0;   /* complete lines kept */

                while (starts[m + 1] <= b)
                        m++;
                int r = verify_bytes(data, b, 0, &rep);
                if (starts[m] != b) {
                        cr_assert_eq(r, -EBADMSG);
                        cr_assert_eq(rep.error, AUDIT_VERIFY_TRUNCATED);
                        cr_assert_eq(rep.line, m + 1);
                } else if (line_is_checkpoint(data, starts, m)) {
                        /* Cut exactly after a checkpoint: indistinguishable from a live log (see bastion-audit(5)). */
                        cr_assert_eq(r, 0);
                } else {
                        size_t c = m;
                        while (c > 0 && !line_is_checkpoint(data, starts, c))
                                c--;
                        cr_assert_eq(r, -EBADMSG);
                        cr_assert_eq(rep.error, AUDIT_VERIFY_UNVOUCHED);
                        cr_assert_eq(rep.line, c + 1);
                        cr_assert_eq(verify_bytes(data, b, AUDIT_VERIFY_ALLOW_TAIL, &rep), 0);
                        cr_assert_eq(rep.unvouched, m - c);
                }
        }
        free(data);
}

Test(audit, wrong_public_key_is_a_bad_signature_at_the_first_checkpoint) {
        struct audit_verify_report rep;
        size_t size, starts[64], n_lines, first = 0;
        char *data = small_log(&size, starts, &n_lines), *paths[] = { scratch };
        uint8_t other_seed[AUDIT_SEED_BYTES], other[AUDIT_PUBKEY_BYTES];

        for (size_t k = 1; k <= n_lines && !first; k++)
                if (line_is_checkpoint(data, starts, k))
                        first = k;
        memset(other_seed, 7, sizeof(other_seed));
        audit_pubkey_from_seed(other_seed, other);
        cr_assert_eq(verify_bytes(data, size, 0, &rep), 0);
        cr_assert_eq(audit_verify(paths, 1, other, 0, &rep), -EBADMSG);
        cr_assert_eq(rep.error, AUDIT_VERIFY_BAD_SIGNATURE);
        cr_assert_eq(rep.line, first);
        free(data);
}

Test(audit, missing_middle_file_breaks_the_link) {
        struct audit_verify_report rep;
        struct audit_log *log = open_log(0);
        char **paths;
        size_t n;

        append_calls(log, 2);
        audit_rotate(log);
        append_calls(log, 2);
        audit_rotate(log);
        append_calls(log, 2);
        audit_close(log);
        cr_assert_eq(audit_list_files(dir, &paths, &n), 0);
        cr_assert_eq(n, 3);
        char *two[] = { paths[0], paths[2] };
        cr_assert_eq(audit_verify(two, 2, pub, 0, &rep), -EBADMSG);
        cr_assert_eq(rep.error, AUDIT_VERIFY_BAD_LINK);
        cr_assert_str_eq(rep.file, paths[2]);
        cr_assert_eq(rep.line, 1);
        /* The newest files alone verify: the link record anchors them, just not to seq 1. */
        cr_assert_eq(audit_verify(paths + 1, 2, pub, 0, &rep), 0);
        cr_assert(!rep.anchored);
        audit_free_paths(paths, n);
}

static void append_partial(const char *text) {
        char **paths;
        size_t n;
        int fd;

        cr_assert_eq(audit_list_files(dir, &paths, &n), 0);
        fd = open(paths[n - 1], O_WRONLY | O_APPEND | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        cr_assert_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
        close(fd);
        audit_free_paths(paths, n);
}

Test(audit, torn_tail_is_cut_recorded_and_the_chain_continues) {
        static const char torn[] = "{\"seq\":99,\"ts\":\"2026-11-26T00:00:00.000Z\",\"type\":\"call.in";
        struct audit_verify_report rep;
        struct audit_log *log = open_log(0);
        uint64_t before;
        size_t size;

        append_calls(log, 3);
        before = audit_last_seq(log);
        audit_close(log);
        append_partial(torn);
        cr_assert_eq(verify_dir(0, &rep, NULL), -EBADMSG);
        cr_assert_eq(rep.error, AUDIT_VERIFY_TRUNCATED);

        log = open_log(0);
        cr_assert_eq(audit_last_seq(log), before + 1 + 2);      /* close checkpoint, recovered, start */
        audit_close(log);
        cr_assert_eq(verify_dir(0, &rep, NULL), 0, "%s:%lu %s", rep.file, rep.line, rep.reason);
        char *data = read_log(&size);
        cr_assert_null(strstr(data, "call.in\n"));
        cr_assert_null(strstr(data, "\"seq\":99"));
        char expect[128];
        snprintf(expect, sizeof(expect), "\"type\":\"recovered\",\"reason\":\"torn tail\",\"truncated_bytes\":%zu", strlen(torn));
        cr_assert_not_null(strstr(data, expect), "%s", data);
        free(data);
}

Test(audit, killed_writer_loses_no_written_record_and_restart_verifies) {
        struct audit_verify_report rep;
        uint64_t last;
        pid_t pid = fork();
        int status;

        cr_assert_geq(pid, 0);
        if (pid == 0) {
                struct audit_options o = { .dir = dir, .seed = seed, .checkpoint_sec = 3600 };
                struct audit_log *log = NULL;

                if (audit_open(&o, &log) < 0)
                        _exit(1);
                append_calls(log, 50);
                kill(getpid(), SIGKILL);
        }
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status));
        /* 1 start + 100 call records, unsigned since nobody closed the log. */
        cr_assert_eq(verify_dir(AUDIT_VERIFY_ALLOW_TAIL, &rep, NULL), 0);
        cr_assert_eq(rep.last_seq, 101);
        cr_assert_eq(rep.unvouched, 101);
        cr_assert_eq(verify_dir(0, &rep, NULL), -EBADMSG);
        cr_assert_eq(rep.error, AUDIT_VERIFY_UNVOUCHED);

        struct audit_log *log = open_log(0);
        last = audit_last_seq(log);
        cr_assert_eq(last, 103);                                /* + recovered + start */
        audit_close(log);
        cr_assert_eq(verify_dir(0, &rep, NULL), 0, "%s:%lu %s", rep.file, rep.line, rep.reason);
        cr_assert_eq(rep.n_records, 104);
}

static off_t log_size(void) {
        size_t size;
        _cleanup_free_ char *data = read_log(&size);

        return (off_t) size;
}

Test(audit, held_records_reach_the_file_together_at_release_and_chain_on) {
        struct audit_verify_report rep;
        struct audit_log *log = open_log(0);
        _cleanup_json_ json_t *args = json_pack("{s:s}", "sku", "SKU-1");
        off_t before;
        uint64_t seq, seq2;

        append_calls(log, 2);
        before = log_size();
        audit_hold(log);
        cr_assert_eq(audit_call_intent(log, &alice, "inventory", "get_stock", args, NULL, AUDIT_BATCHED, &seq), 0);
        cr_assert_eq(audit_call_result(log, seq, &alice, "inventory", "get_stock", AUDIT_STATUS_OK, NULL, 7,
                                       AUDIT_BATCHED), 0);
        cr_assert_eq(audit_call_intent(log, &alice, "inventory", "get_stock", args, NULL, AUDIT_BATCHED, &seq2), 0);
        /* Numbered and chained already, not in the file yet. */
        cr_assert_eq(seq2, seq + 2);
        cr_assert_eq(audit_last_seq(log), seq2);
        cr_assert_eq(log_size(), before);
        cr_assert_eq(audit_release(log), 0);
        cr_assert_gt(log_size(), before);
        /* Not held any more: the next record goes straight to the file. */
        before = log_size();
        cr_assert_eq(audit_call_result(log, seq2, &alice, "inventory", "get_stock", AUDIT_STATUS_OK, NULL, 7,
                                       AUDIT_BATCHED), 0);
        cr_assert_gt(log_size(), before);
        cr_assert_eq(audit_close(log), 0);
        cr_assert_eq(verify_dir(0, &rep, NULL), 0, "%s:%lu %s", rep.file, rep.line, rep.reason);
        cr_assert_eq(rep.n_records, 1 + 4 + 4 + 1);             /* start, 2 calls, the held batch, close */
}

Test(audit, a_durable_append_while_held_writes_what_is_held_first) {
        struct audit_verify_report rep;
        struct audit_log *log = open_log(0);
        _cleanup_json_ json_t *args = json_pack("{s:s}", "sku", "SKU-1");
        size_t size;
        uint64_t seq, seq2;

        audit_hold(log);
        cr_assert_eq(audit_call_intent(log, &alice, "inventory", "get_stock", args, NULL, AUDIT_BATCHED, &seq), 0);
        cr_assert_eq(audit_call_intent(log, &alice, "inventory", "reorder", args, NULL, AUDIT_DURABLE, &seq2), 0);
        /* Both on file before the durable append returned, in order, still held for what follows. */
        _cleanup_free_ char *data = read_log(&size);
        cr_assert_not_null(strstr(data, "\"tool\":\"get_stock\""));
        cr_assert_not_null(strstr(data, "\"tool\":\"reorder\""));
        cr_assert_lt(strstr(data, "get_stock"), strstr(data, "reorder"));
        cr_assert_eq(audit_call_result(log, seq, &alice, "inventory", "get_stock", AUDIT_STATUS_OK, NULL, 7,
                                       AUDIT_BATCHED), 0);
        cr_assert_eq(log_size(), (off_t) size);
        cr_assert_eq(audit_release(log), 0);
        cr_assert_gt(log_size(), (off_t) size);
        cr_assert_eq(audit_close(log), 0);
        cr_assert_eq(verify_dir(0, &rep, NULL), 0, "%s:%lu %s", rep.file, rep.line, rep.reason);
}

/* The release's write fails (the file may not grow: RLIMIT_FSIZE, as a full disk would): it says so,
 * leaves no part of the batch in the file, and every later append fails too. In a child, for the limit. */
Test(audit, a_failed_release_leaves_no_part_of_the_batch_and_fails_closed) {
        struct audit_verify_report rep;
        pid_t pid;
        int status;

        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                struct audit_options o = { .dir = dir, .seed = seed, .checkpoint_sec = 3600 };
                _cleanup_json_ json_t *args = json_pack("{s:s}", "sku", "SKU-1");
                struct audit_log *log = NULL;
                struct rlimit rl;
                off_t before;
                uint64_t seq;

                signal(SIGXFSZ, SIG_IGN);
                if (audit_open(&o, &log) < 0)
                        _exit(10);
                append_calls(log, 1);
                before = log_size();
                audit_hold(log);
                for (int i = 0; i < 4; i++)
                        if (audit_call_intent(log, &alice, "inventory", "get_stock", args, NULL, AUDIT_BATCHED, &seq) < 0)
                                _exit(11);
                rl = (struct rlimit) { .rlim_cur = (rlim_t) before + 100, .rlim_max = RLIM_INFINITY };
                if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
                        _exit(12);
                if (audit_release(log) != -EFBIG)
                        _exit(13);
                if (log_size() != before)
                        _exit(14);
                rl.rlim_cur = RLIM_INFINITY;
                if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
                        _exit(15);
                /* Sticky, though the file could grow again. */
                if (audit_call_intent(log, &alice, "inventory", "get_stock", args, NULL, AUDIT_BATCHED, &seq) != -EFBIG)
                        _exit(16);
                if (log_size() != before)
                        _exit(17);
                /* A later batch whose appends all failed holds nothing: its release has nothing to
                 * report (the broker then sends that batch's other messages; its calls were refused). */
                audit_hold(log);
                if (audit_call_intent(log, &alice, "inventory", "get_stock", args, NULL, AUDIT_BATCHED, &seq) != -EFBIG)
                        _exit(18);
                if (audit_release(log) != 0)
                        _exit(19);
                _exit(0);
        }
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", WEXITSTATUS(status));
        /* What is on file is the start and one call, intact (never closed: unvouched). */
        cr_assert_eq(verify_dir(AUDIT_VERIFY_ALLOW_TAIL, &rep, NULL), 0, "%s:%lu %s", rep.file, rep.line, rep.reason);
        cr_assert_eq(rep.last_seq, 3);
}

Test(audit, deadlines_drive_group_commit_and_timed_checkpoints) {
        struct audit_options o = { .dir = dir, .seed = seed, .checkpoint_sec = 10, .group_commit_ms = 20 };
        struct audit_log *log = NULL;
        uint64_t d, seq;
        struct timespec ts;
        size_t size;

        cr_assert_eq(audit_open(&o, &log), 0);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t now = (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
        /* The start record was durable: only the checkpoint timer is armed. */
        d = audit_next_deadline(log);
        cr_assert(d > now + 9 * 1000000 && d <= now + 10 * 1000000, "%lu vs %lu", d, now);
        cr_assert_eq(audit_append(log, "config.reload", NULL, AUDIT_BATCHED, &seq), 0);
        d = audit_next_deadline(log);
        cr_assert(d >= now && d <= now + 20000 + 100000);
        cr_assert_eq(audit_tick(log, d), 0);
        cr_assert_gt(audit_next_deadline(log), now + 9 * 1000000);
        cr_assert_eq(audit_tick(log, audit_next_deadline(log)), 0);
        cr_assert_eq(audit_last_seq(log), seq + 1);
        cr_assert_eq(audit_next_deadline(log) > now + 1000000, true);
        audit_close(log);
        char *data = read_log(&size);
        cr_assert_not_null(strstr(data, "\"type\":\"checkpoint\",\"reason\":\"timer\",\"records\":2"));
        free(data);
}

Test(audit, reserved_members_are_refused) {
        struct audit_log *log = open_log(0);
        _cleanup_json_ json_t *f = json_pack("{s:s}", "hash", "x");

        cr_assert_eq(audit_append(log, "x", f, AUDIT_BATCHED, NULL), -EINVAL);
        audit_close(log);
}

Test(audit, call_intent_records_exact_members_and_digests_huge_arguments) {
        struct audit_approval ap = { .who = "uid:2000", .how = "approver", .when = "2026-11-26T10:00:00.000Z" };
        struct audit_principal cust = { .sub = "uid:3000", .uid = 3000, .tenant = "acme", .role = "customer" };
        _cleanup_json_ json_t *small = json_pack("{s:s}", "payment_id", "P-1");
        _cleanup_free_ char *blob = memset(calloc(1, 70000), 'a', 69999);
        _cleanup_json_ json_t *huge = json_pack("{s:s%}", "blob", blob, (size_t) 69999);
        struct audit_log *log = open_log(0);
        size_t size;

        cr_assert_eq(audit_call_intent(log, &cust, "payments", "release_payment", small, &ap, AUDIT_DURABLE, NULL), 0);
        cr_assert_eq(audit_call_intent(log, &alice, "inventory", "x", huge, NULL, AUDIT_BATCHED, NULL), 0);
        cr_assert_eq(audit_credential_handed(log, "payments", "payments-api-key"), 0);
        audit_close(log);
        char *data = read_log(&size);
        cr_assert_not_null(strstr(data, "\"type\":\"call.intent\",\"principal\":{\"sub\":\"uid:3000\",\"uid\":3000,"
                                        "\"tenant\":\"acme\",\"role\":\"customer\"},\"server\":\"payments\",\"tool\":"
                                        "\"release_payment\",\"arguments\":{\"payment_id\":\"P-1\"},\"approval\":{\"who\":"
                                        "\"uid:2000\",\"how\":\"approver\",\"when\":\"2026-11-26T10:00:00.000Z\"},\"prev\":"));
        cr_assert_not_null(strstr(data, "\"arguments\":{\"omitted\":\"too large\",\"bytes\":70010,\"blake2b\":\""));
        cr_assert_null(strstr(data, "aaaaaaaaaa"));
        cr_assert_not_null(strstr(data, "\"type\":\"credential.handed\",\"server\":\"payments\",\"credential\":\"payments-api-key\""));
        free(data);
}

Test(audit, attached_event_loop_runs_group_commit_and_timed_checkpoint) {
        struct audit_options o = { .dir = dir, .seed = seed, .checkpoint_sec = 1, .group_commit_ms = 10 };
        struct audit_log *log = NULL;
        sd_event *e = NULL;
        uint64_t seq, sync_deadline;

        cr_assert_eq(sd_event_new(&e), 0);
        cr_assert_eq(audit_open(&o, &log), 0);
        cr_assert_eq(audit_attach_event(log, e), 0);
        cr_assert_eq(audit_append(log, "config.reload", NULL, AUDIT_BATCHED, &seq), 0);
        sync_deadline = audit_next_deadline(log);
        /* The first wake-up is the group commit; after it only the checkpoint timer remains. */
        cr_assert_gt(sd_event_run(e, 2000000), 0);
        cr_assert_gt(audit_next_deadline(log), sync_deadline + 500000);
        cr_assert_eq(audit_last_seq(log), seq);
        /* The next one, about a second after open, is the timed checkpoint. */
        cr_assert_gt(sd_event_run(e, 3000000), 0);
        cr_assert_eq(audit_last_seq(log), seq + 1);
        cr_assert_eq(audit_close(log), 0);
        sd_event_unref(e);
}

/* What an attacker with write access but without the signing key can do at best: edit a record and
 * recompute every hash after it so the chain is consistent again. The next checkpoint's signature
 * no longer matches. */
static void rechain_from(char *data, const size_t *starts, size_t n_lines, size_t k) {
        for (size_t i = k; i <= n_lines; i++) {
                char *line = data + starts[i - 1];
                size_t len = starts[i] - starts[i - 1] - 1;
                char h[AUDIT_HASH_HEX], *body = malloc(len);

                if (i > 1) {
                        audit_hash_hex(data + starts[i - 2], starts[i - 1] - starts[i - 2] - 1, h);
                        memcpy(line + len - 140, h, 64);
                }
                memcpy(body, line, len - 75);
                body[len - 75] = '}';
                audit_hash_hex(body, len - 74, h);
                memcpy(line + len - 66, h, 64);
                free(body);
        }
}

Test(audit, edit_with_recomputed_chain_fails_at_the_next_checkpoint_signature) {
        struct audit_verify_report rep;
        size_t size, starts[64], n_lines;
        char *data = small_log(&size, starts, &n_lines);

        /* Sanity: re-chaining an unedited log changes nothing. */
        char *copy = malloc(size);
        memcpy(copy, data, size);
        rechain_from(copy, starts, n_lines, 1);
        cr_assert_eq(memcmp(copy, data, size), 0);
        free(copy);

        unsigned edits = 0;
        for (size_t k = 1; k <= n_lines; k++) {
                char *qty, *edited = malloc(size);
                size_t c = k;

                memcpy(edited, data, size);
                qty = memmem(edited + starts[k - 1], starts[k] - starts[k - 1], "\"qty\":", 6);
                if (!qty) {
                        free(edited);
                        continue;
                }
                qty[6] = qty[6] == '9' ? '8' : '9';
                edits++;
                rechain_from(edited, starts, n_lines, k);
                while (!line_is_checkpoint(data, starts, c))
                        c++;
                cr_assert_eq(verify_bytes(edited, size, 0, &rep), -EBADMSG);
                cr_assert_eq(rep.error, AUDIT_VERIFY_BAD_SIGNATURE, "line %zu: %s", k, rep.reason);
                cr_assert_eq(rep.line, c);
                free(edited);
        }
        cr_assert_eq(edits, 4);
        free(data);
}

Test(audit, peer_text_is_bounded_and_non_utf8_does_not_lose_the_record) {
        struct audit_log *log = open_log(0);
        char *big = malloc(10000);
        struct audit_verify_report rep;
        size_t size;

        memset(big, 'e', 9999);
        big[9999] = '\0';
        cr_assert_eq(audit_denial(log, &alice, "orders", "cancel", "bad \xff\xfe bytes"), 0);
        cr_assert_eq(audit_call_result(log, 1, &alice, "orders", "cancel", AUDIT_STATUS_ERROR, big, 0, AUDIT_BATCHED), 0);
        audit_close(log);
        free(big);
        char *data = read_log(&size);
        cr_assert_not_null(strstr(data, "\"reason\":\"bad ?? bytes\""));
        char *e = strstr(data, "\"error\":\"");
        cr_assert_not_null(e);
        cr_assert_eq(strspn(e + 9, "e"), 4096);
        cr_assert_eq(e[9 + 4096], '"');
        free(data);
        cr_assert_eq(verify_dir(0, &rep, NULL), 0);
}

/* ---- bastionctl audit, run as an administrator would ---- */

#include "broker/secrets/store.h"
#include "ctl_run.h"

static void write_pubkey_file(char *path, size_t size) {
        char hex[AUDIT_PUBKEY_HEX];
        FILE *f;

        snprintf(path, size, "%s.pub", dir);
        sodium_bin2hex(hex, sizeof(hex), pub, sizeof(pub));
        f = fopen(path, "we");
        cr_assert_not_null(f);
        fprintf(f, "%s\n", hex);
        fclose(f);
}

Test(audit, cli_verify_reports_ok_and_names_the_first_bad_record) {
        struct ctl_result *r = malloc(sizeof(*r));
        char pubfile[PATH_MAX + 8], expect[PATH_MAX + 64], *data;
        size_t size, starts[64], n_lines;

        write_pubkey_file(pubfile, sizeof(pubfile));
        data = small_log(&size, starts, &n_lines);
        ctl_run(r, NULL, (const char *const[]) { "audit", "verify", "--pubkey", pubfile, "--dir", dir, NULL });
        cr_assert_eq(r->status, 0, "%s", r->err);
        snprintf(expect, sizeof(expect), "OK: %zu records (seq 1..%zu) in 1 file(s), ", n_lines, n_lines);
        cr_assert_eq(strncmp(r->out, expect, strlen(expect)), 0, "%s", r->out);

        data[starts[2] + 3] ^= 1;               /* a byte of line 3 */
        verify_bytes(data, size, 0, &(struct audit_verify_report) {});
        ctl_run(r, NULL, (const char *const[]) { "audit", "verify", "--pubkey", pubfile, scratch, NULL });
        cr_assert_eq(r->status, 1);
        snprintf(expect, sizeof(expect), "%s:3: seq 0: malformed record: ", scratch);
        cr_assert_eq(strncmp(r->err, expect, strlen(expect)), 0, "%s", r->err);
        data[starts[2] + 3] ^= 1;
        cr_assert_eq(data[starts[2] + 7], '3');
        data[starts[2] + 7] = '7';              /* "seq":3 → "seq":7 */
        verify_bytes(data, size, 0, &(struct audit_verify_report) {});
        ctl_run(r, NULL, (const char *const[]) { "audit", "verify", "--pubkey", pubfile, scratch, NULL });
        cr_assert_eq(r->status, 1);
        snprintf(expect, sizeof(expect), "%s:3: seq 7: hash mismatch: ", scratch);
        cr_assert_eq(strncmp(r->err, expect, strlen(expect)), 0, "%s", r->err);
        free(data);
        unlink(pubfile);
        free(r);
}

Test(audit, cli_pubkey_and_verify_use_the_signing_key_in_the_store) {
        struct ctl_result *r = malloc(sizeof(*r));
        char store[PATH_MAX + 8], key[PATH_MAX + 8], hex[AUDIT_PUBKEY_HEX + 1];
        _cleanup_secret_ struct secret *k = NULL;
        struct secrets_store *s = NULL;
        struct audit_log *log;

        snprintf(store, sizeof(store), "%s.store", dir);
        snprintf(key, sizeof(key), "%s.key", dir);
        cr_assert_eq(secrets_key_create(key), 0);
        cr_assert_eq(secrets_key_load(key, &k), 0);
        cr_assert_eq(secrets_store_open(store, k, true, &s), 0);
        cr_assert_eq(secrets_store_set(s, AUDIT_SIGNING_KEY_NAME, seed, sizeof(seed)), 0);
        cr_assert_eq(secrets_store_save(s), 0);
        secrets_store_free(s);

        ctl_run(r, NULL, (const char *const[]) { "audit", "pubkey", "--store", store, "--key-file", key, NULL });
        cr_assert_eq(r->status, 0, "%s", r->err);
        sodium_bin2hex(hex, sizeof(hex), pub, sizeof(pub));
        strcat(hex, "\n");
        cr_assert_str_eq(r->out, hex);

        log = open_log(0);
        append_calls(log, 2);
        audit_close(log);
        ctl_run(r, NULL, (const char *const[]) { "audit", "verify", "--store", store, "--key-file", key, "--dir", dir, NULL });
        cr_assert_eq(r->status, 0, "%s", r->err);
        unlink(store);
        unlink(key);
        free(r);
}

Test(audit, cli_tail_filters_and_prints_json_lines_unchanged) {
        static const struct audit_principal bob = { .sub = "uid:2000", .uid = 2000, .role = "finance" };
        struct ctl_result *r = malloc(sizeof(*r));
        struct audit_log *log = open_log(0);
        char *data, *line;
        size_t size;

        append_calls(log, 2);
        cr_assert_eq(audit_denial(log, &bob, "payments", "release_payment", "needs approval"), 0);
        audit_close(log);

        ctl_run(r, NULL, (const char *const[]) { "audit", "tail", "--dir", dir, "--server", "payments", NULL });
        cr_assert_eq(r->status, 0, "%s", r->err);
        cr_assert_eq(strlen(r->out), 24 + strlen(" 6 call.denied uid:2000 payments/release_payment needs approval\n"));
        cr_assert_str_eq(r->out + 24, " 6 call.denied uid:2000 payments/release_payment needs approval\n");

        ctl_run(r, NULL, (const char *const[]) { "audit", "tail", "--dir", dir, "--sub", "uid:1000", "--tool", "reorder", "-n", "1", "--json", NULL });
        cr_assert_eq(r->status, 0);
        data = read_log(&size);
        line = strstr(data, "{\"seq\":5,");
        cr_assert_not_null(line);
        *strchr(line, '\n') = '\0';
        cr_assert_eq(strlen(r->out), strlen(line) + 1);
        cr_assert_eq(strncmp(r->out, line, strlen(line)), 0);

        ctl_run(r, NULL, (const char *const[]) { "audit", "tail", "--dir", dir, "--since", "2999-01-01", NULL });
        cr_assert_eq(r->status, 0);
        cr_assert_str_eq(r->out, "");
        free(data);
        free(r);
}
