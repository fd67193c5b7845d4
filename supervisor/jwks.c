/* The OAuth key set (oauth.jwks_file): the broker verifies tokens but cannot open files after its
 * lockdown, so the supervisor reads the file — at the broker's start, on every reload and whenever the
 * file changes — and sends the bytes (CHAN_JWKS). The broker parses them; a set that does not parse
 * leaves the previous one in place there. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bastiond.h"
#include "chan.h"
#include "log.h"
#include "util.h"

/* How often the file is looked at: a rotated key is in use within this long. stat() once a second
 * is cheaper than keeping an inotify watch on a directory that may be replaced. */
#define JWKS_POLL_MS 1000

static sd_event_source *jwks_timer;
static struct stat jwks_seen;           /* the file as it was when last sent */
static bool jwks_seen_valid;

static bool stat_same(const struct stat *a, const struct stat *b) {
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
               a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

static int jwks_read(const char *path, char **ret, size_t *ret_len, struct stat *ret_st) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        _cleanup_free_ char *buf = NULL;
        size_t n = 0;

        if (fd < 0 || fstat(fd, ret_st) < 0)
                return -errno;
        if (!S_ISREG(ret_st->st_mode))
                return -EBADF;
        if (ret_st->st_size > BASTION_JWKS_MAX_DOC)
                return -E2BIG;
        buf = malloc(BASTION_JWKS_MAX_DOC + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k = read(fd, buf + n, BASTION_JWKS_MAX_DOC + 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += k;
                if (n > BASTION_JWKS_MAX_DOC)
                        return -E2BIG;
        }
        *ret = TAKE_PTR(buf);
        *ret_len = n;
        return 0;
}

int jwks_send(struct supervisor *sup) {
        const char *path = sup->config.oauth ? sup->config.oauth->jwks_file : NULL;
        _cleanup_free_ char *buf = NULL;
        json_t *payload;
        struct stat st;
        size_t n = 0;
        int r;

        if (!path || !broker_up(sup))
                return 0;
        r = jwks_read(path, &buf, &n, &st);
        if (r < 0)
                return log_error_errno(r, "Cannot read the JWKS %s: %m; the broker keeps the keys it has", path);
        payload = json_pack("{s:s%, s:s}", "jwks", buf, n, "path", path);
        if (!payload)
                return log_error_errno(EINVAL, "The JWKS %s is not UTF-8 text; the broker keeps the keys it has", path);
        r = broker_send(sup, CHAN_JWKS, 0, payload, -1);
        if (r < 0)
                return r;
        jwks_seen = st;
        jwks_seen_valid = true;
        log_info("sent the JWKS %s (%zu bytes) to the broker", path, n);
        return 0;
}

static int on_jwks_poll(sd_event_source *s, uint64_t usec, void *userdata) {
        struct supervisor *sup = userdata;
        const char *path = sup->config.oauth ? sup->config.oauth->jwks_file : NULL;
        struct stat st;

        if (path && broker_up(sup) && stat(path, &st) == 0 && (!jwks_seen_valid || !stat_same(&st, &jwks_seen))) {
                log_info("the JWKS %s changed", path);
                (void) jwks_send(sup);
        }
        (void) sd_event_source_set_time_relative(s, (uint64_t) JWKS_POLL_MS * 1000);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

int jwks_watch(struct supervisor *sup) {
        int r = sd_event_add_time_relative(sup->event, &jwks_timer, CLOCK_MONOTONIC, (uint64_t) JWKS_POLL_MS * 1000,
                                           100 * 1000, on_jwks_poll, sup);

        if (r < 0)
                return log_error_errno(r, "Cannot watch the JWKS file: %m");
        return 0;
}
