/* The filesystem side of start-up: runtime and state directories with the right owners, and the two
 * listening unix sockets (the local MCP socket for everyone, the control socket for administrators). */
#include "config.h"

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "bastiond.h"
#include "log.h"
#include "util.h"

/* mkdir -p; existing directories keep their mode. */
int mkdir_parents(const char *path, mode_t mode) {
        _cleanup_free_ char *p = strdup(path);

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++)
                if (*s == '/') {
                        *s = '\0';
                        if (mkdir(p, mode) < 0 && errno != EEXIST)
                                return -errno;
                        *s = '/';
                }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int setup_directories(const struct bastion_config *c) {
        /* Both must be searchable: users reach the socket in runtime_dir, each worker (as its own uid)
         * reaches its own directory below state_dir. What is inside is protected per entry. */
        const char *dirs[] = { c->runtime_dir, c->state_dir };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                r = mkdir_parents(dirs[i], 0755);
                if (r < 0)
                        return log_error_errno(r, "Cannot create %s: %m", dirs[i]);
        }
        return 0;
}

/* <state_dir>/<server>: 0700 and owned by the worker's uid, database files included (a server keeps
 * its uid, but a changed uid range would otherwise leave it unable to open its own database). */
int setup_server_directory(const struct server_config *s) {
        static const char *const suffixes[] = { "", "-journal", "-wal", "-shm" };
        _cleanup_close_ int fd = -1;
        int r;

        r = mkdir_parents(s->state_dir, 0700);
        if (r < 0)
                return log_error_errno(r, "Cannot create %s: %m", s->state_dir);
        fd = open(s->state_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return log_error_errno(errno, "Cannot open %s: %m", s->state_dir);
        if (fchown(fd, s->uid, s->gid) < 0 || fchmod(fd, 0700) < 0)
                return log_error_errno(errno, "Cannot give %s to uid %u: %m", s->state_dir, (unsigned) s->uid);
        for (size_t i = 0; i < ELEMENTSOF(suffixes); i++) {
                _cleanup_free_ char *p = NULL;
                if (asprintf(&p, "%s%s", s->db_path, suffixes[i]) < 0)
                        return -ENOMEM;
                if (fchownat(AT_FDCWD, p, s->uid, s->gid, AT_SYMLINK_NOFOLLOW) < 0 && errno != ENOENT)
                        return log_error_errno(errno, "Cannot give %s to uid %u: %m", p, (unsigned) s->uid);
        }
        return 0;
}

void remove_socket(const char *path) {
        struct stat st;

        if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
                (void) unlink(path);
}

/* Binds a fresh socket at path (a stale socket from an earlier run is replaced; anything else at that
 * path is left alone and refused), with the mode and group given, root-owned. */
int setup_listen_socket(const char *path, mode_t mode, gid_t gid, int *ret_fd) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -1;
        struct stat st;

        if (strlen(path) >= sizeof(sa.sun_path))
                return log_error_errno(ENAMETOOLONG, "Socket path %s is too long", path);
        strcpy(sa.sun_path, path);
        if (lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return log_error_errno(EEXIST, "%s exists and is not a socket; not replacing it", path);
                if (unlink(path) < 0)
                        return log_error_errno(errno, "Cannot remove stale socket %s: %m", path);
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
                return log_error_errno(errno, "Cannot create socket: %m");
        if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0)
                return log_error_errno(errno, "Cannot bind %s: %m", path);
        /* chmod after bind, before listen: nobody can connect before the mode is right. */
        if (chown(path, 0, gid) < 0 || chmod(path, mode) < 0)
                return log_error_errno(errno, "Cannot set owner and mode of %s: %m", path);
        if (listen(fd, SOMAXCONN) < 0)
                return log_error_errno(errno, "Cannot listen on %s: %m", path);
        *ret_fd = TAKE_FD(fd);
        return 0;
}
