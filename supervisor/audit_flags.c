/* The append-only inode flag on the audit log (bastion-audit(5), docs/audit-secrets.md). Setting it
 * needs CAP_LINUX_IMMUTABLE, which the broker (no capabilities at all) never has, so bastiond sets it:
 * on every audit file once the broker is ready, and on each file the broker creates later (rotation),
 * seen through inotify. The broker only ever appends, which the flag allows; it needs the flag off
 * only to cut a torn tail or drop an empty file when it starts, so bastiond clears it on the newest
 * files right before it spawns a broker and sets it again when that broker is ready. */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "bastiond.h"
#include "log.h"
#include "util.h"

/* bastion-audit(5): the broker's default when bastion.conf names no audit_dir. */
#define AUDIT_DIR_DEFAULT "/var/log/bastion/audit"
/* Recovery touches the newest file, and the one before it when the newest holds no record. */
#define AUDIT_RECOVERY_FILES 2

static const char *audit_dir(const struct supervisor *sup) {
        return sup->config.audit_dir ?: AUDIT_DIR_DEFAULT;
}

/* audit-<20 digits>.jsonl, the only names the broker creates. */
static bool audit_file_name(const char *name) {
        return strlen(name) == 6 + 20 + 6 && strncmp(name, "audit-", 6) == 0 && strspn(name + 6, "0123456789") == 20 &&
               streq(name + 26, ".jsonl");
}

static void set_flag(int dir_fd, const char *dir, const char *name, bool on) {
        _cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        int flags;

        if (fd < 0 || ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0) {
                /* No such file any more, or a filesystem without inode flags: nothing to do. */
                if (fd >= 0 && errno != ENOTTY && errno != EOPNOTSUPP)
                        log_warning_errno(errno, "Cannot read the inode flags of %s/%s: %m", dir, name);
                return;
        }
        if (!!(flags & FS_APPEND_FL) == on)
                return;
        flags = on ? flags | FS_APPEND_FL : flags & ~FS_APPEND_FL;
        if (ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0)
                log_warning_errno(errno, "Cannot %s the append-only flag of %s/%s: %m", on ? "set" : "clear", dir, name);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *) a, *(char *const *) b); }

/* Applies the flag to every audit file (newest = 0), or only to the `newest` newest ones. */
static void flag_files(const char *dir, bool on, size_t newest) {
        _cleanup_close_ int dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        char **names = NULL;
        size_t n = 0;
        struct dirent *de;
        DIR *d;

        int copy;

        if (dir_fd < 0)
                return;         /* no log yet: the broker creates the directory */
        copy = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0 || !(d = fdopendir(copy))) {
                safe_close(copy);
                return;
        }
        while ((de = readdir(d))) {
                char **nn;

                if (!audit_file_name(de->d_name) || !(nn = realloc(names, (n + 1) * sizeof(*names))))
                        continue;
                names = nn;
                if ((names[n] = strdup(de->d_name)))
                        n++;
        }
        closedir(d);
        if (n > 0)
                qsort(names, n, sizeof(*names), cmp_str);
        for (size_t i = newest && n > newest ? n - newest : 0; i < n; i++)
                set_flag(dir_fd, dir, names[i], on);
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
}

static int on_audit_dir(sd_event_source *s, const struct inotify_event *ev, void *userdata) {
        struct supervisor *sup = userdata;

        if ((ev->mask & IN_CREATE) && ev->len > 0 && audit_file_name(ev->name)) {
                _cleanup_close_ int dir_fd = open(sup->audit_watch_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

                if (dir_fd >= 0)
                        set_flag(dir_fd, sup->audit_watch_dir, ev->name, true);
        }
        return 0;
}

/* One audit file to the broker's uid. chown is refused on an append-only file: lift the flag for it. */
static int give_file(int dir_fd, const char *dir, const char *name, uid_t uid) {
        _cleanup_close_ int fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        struct stat st;
        int flags = 0;
        bool append;

        if (fd < 0)
                return errno == ENOENT ? 0 : log_error_errno(errno, "Cannot open %s/%s: %m", dir, name);
        if (fstat(fd, &st) < 0)
                return log_error_errno(errno, "Cannot stat %s/%s: %m", dir, name);
        if (!S_ISREG(st.st_mode) || (st.st_uid == uid && st.st_gid == (gid_t) uid))
                return 0;
        /* Only what a broker wrote: root's (before broker_uid) or its own. A second link or another
         * owner means someone placed a file there; it is not given away (nor its flag lifted). */
        if (st.st_nlink != 1 || (st.st_uid != 0 && st.st_uid != uid)) {
                log_warning("%s/%s has %ju links and owner %u: not an audit file of ours; left as it is", dir, name,
                            (uintmax_t) st.st_nlink, (unsigned) st.st_uid);
                return 0;
        }
        append = ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0 && (flags & FS_APPEND_FL);
        if (append) {
                int off = flags & ~FS_APPEND_FL;
                if (ioctl(fd, FS_IOC_SETFLAGS, &off) < 0)
                        return log_error_errno(errno, "Cannot clear the append-only flag of %s/%s: %m", dir, name);
        }
        if (fchown(fd, uid, (gid_t) uid) < 0)
                log_error_errno(errno, "Cannot give %s/%s to uid %u: %m", dir, name, (unsigned) uid);
        if (append && ioctl(fd, FS_IOC_SETFLAGS, &flags) < 0)
                log_warning_errno(errno, "Cannot set the append-only flag of %s/%s: %m", dir, name);
        return 0;
}

int audit_dir_prepare(struct supervisor *sup, uid_t uid) {
        const char *dir = audit_dir(sup);
        _cleanup_free_ char *parent = strdup(dir);
        _cleanup_close_ int dir_fd = -1;
        struct dirent *de;
        struct stat st;
        DIR *d;
        int r, copy;

        if (!parent)
                return log_oom();
        /* Its parents must be searchable by the broker's uid (like state_dir's by the workers'). */
        if (strrchr(parent, '/') && strrchr(parent, '/') != parent) {
                *strrchr(parent, '/') = '\0';
                r = mkdir_parents(parent, 0755);
                if (r < 0)
                        return log_error_errno(r, "Cannot create %s: %m", parent);
        }
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "Cannot create the audit directory %s: %m", dir);
        dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dir_fd < 0)
                return log_error_errno(errno, "Cannot open the audit directory %s: %m", dir);
        if (fstat(dir_fd, &st) < 0)
                return log_error_errno(errno, "Cannot stat the audit directory %s: %m", dir);
        /* Root's (made here, or by an older version) or already the broker's; anyone else's is not ours
         * to take over. */
        if (st.st_uid != 0 && st.st_uid != uid)
                return log_error_errno(EPERM, "The audit directory %s belongs to uid %u, neither root nor the broker's "
                                       "uid %u: refusing to use it", dir, (unsigned) st.st_uid, (unsigned) uid);
        if (fchown(dir_fd, uid, (gid_t) uid) < 0 || fchmod(dir_fd, 0700) < 0)
                return log_error_errno(errno, "Cannot give the audit directory %s to uid %u: %m", dir, (unsigned) uid);
        copy = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0 || !(d = fdopendir(copy))) {
                safe_close(copy);
                return log_error_errno(errno, "Cannot list the audit directory %s: %m", dir);
        }
        while ((de = readdir(d)))
                if (audit_file_name(de->d_name))
                        (void) give_file(dir_fd, dir, de->d_name, uid);
        closedir(d);
        return 0;
}

void audit_flags_release(struct supervisor *sup) {
        flag_files(audit_dir(sup), false, AUDIT_RECOVERY_FILES);
}

void audit_flags_seal(struct supervisor *sup) {
        const char *dir = audit_dir(sup);
        int r;

        if (!sup->audit_watch || !streq(sup->audit_watch_dir, dir)) {
                sup->audit_watch = sd_event_source_disable_unref(sup->audit_watch);
                free(sup->audit_watch_dir);
                sup->audit_watch_dir = strdup(dir);
                if (!sup->audit_watch_dir) {
                        log_oom();
                        return;
                }
                /* Watch first, then flag what exists: a file created in between gets both, harmlessly. */
                r = sd_event_add_inotify(sup->event, &sup->audit_watch, dir, IN_CREATE | IN_ONLYDIR, on_audit_dir, sup);
                if (r < 0)
                        log_warning_errno(r, "Cannot watch %s; new audit files will not be made append-only: %m", dir);
        }
        flag_files(dir, true, 0);
}

void audit_flags_done(struct supervisor *sup) {
        sup->audit_watch = sd_event_source_disable_unref(sup->audit_watch);
        free(sup->audit_watch_dir);
        sup->audit_watch_dir = NULL;
}
