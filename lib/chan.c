/* Supervisor <-> broker framing over SOCK_SEQPACKET with SCM_RIGHTS. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan.h"
#include "util.h"

int chan_socketpair(int ret[2]) {
        int size = 2 * (BASTION_MAX_CHAN_PAYLOAD + (int) sizeof(struct chan_hdr));

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ret) < 0)
                return -errno;
        for (int i = 0; i < 2; i++)
                if (setsockopt(ret[i], SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof(size)) < 0)
                        (void) setsockopt(ret[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
        return 0;
}

int chan_send(int fd, uint32_t type, uint32_t id, json_t *payload, const int *fds, unsigned n_fds) {
        _cleanup_free_ char *text = NULL;
        struct chan_hdr hdr;
        struct iovec iov[2];
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * BASTION_MAX_CHAN_FDS)];
        } control = {};
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
        size_t len;

        if (n_fds > BASTION_MAX_CHAN_FDS)
                return -EINVAL;
        text = json_dumps(payload ? payload : json_object(), JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        len = strlen(text);
        if (len > BASTION_MAX_CHAN_PAYLOAD)
                return -EMSGSIZE;
        hdr = (struct chan_hdr) { .type = type, .len = len, .id = id, .n_fds = n_fds };
        iov[0] = (struct iovec) { &hdr, sizeof(hdr) };
        iov[1] = (struct iovec) { text, len };
        if (n_fds > 0) {
                struct cmsghdr *c;
                mh.msg_control = control.buf;
                mh.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                c = CMSG_FIRSTHDR(&mh);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        for (;;) {
                ssize_t n = sendmsg(fd, &mh, MSG_NOSIGNAL);
                int r = n >= 0 ? ((size_t) n == sizeof(hdr) + len ? 0 : -EMSGSIZE) : -errno;

                if (r == -EINTR)
                        continue;
                explicit_bzero(text, len);      /* as in chan_recv: no message text left in freed memory */
                return r;
        }
}

static void close_fds(int *fds, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                fds[i] = safe_close(fds[i]);
}

/* One receive buffer per process, allocated at first use and kept: every process on a channel is
 * single-threaded and never receives re-entrantly, and a fresh 4 MiB allocation per message (an mmap
 * and munmap each time) sat on the path of every HTTP request. Only the pages a message touches are
 * ever resident. */
static char *recv_buf;

int chan_recv(int fd, struct chan_msg *ret) {
        char *buf;
        struct chan_hdr hdr;
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * BASTION_MAX_CHAN_FDS)];
        } control = {};
        struct iovec iov;
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1,
                .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
        };
        int fds[BASTION_MAX_CHAN_FDS];
        unsigned n_fds = 0;
        json_error_t jerr;
        ssize_t n;

        *ret = (struct chan_msg) {};
        /* One extra byte so that an oversized datagram shows up as MSG_TRUNC, never silently cut. */
        if (!recv_buf)
                recv_buf = malloc(sizeof(hdr) + BASTION_MAX_CHAN_PAYLOAD + 1);
        if (!recv_buf)
                return -ENOMEM;
        buf = recv_buf;
        iov = (struct iovec) { buf, sizeof(hdr) + BASTION_MAX_CHAN_PAYLOAD + 1 };
        do
                n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if (n == 0)
                return 0;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
                unsigned k;
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (unsigned i = 0; i < k; i++) {
                        int f;
                        memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (n_fds < BASTION_MAX_CHAN_FDS)
                                fds[n_fds++] = f;
                        else
                                close(f);
                }
        }
        if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
                goto bad;
        if ((size_t) n < sizeof(hdr))
                goto bad;
        memcpy(&hdr, buf, sizeof(hdr));
        if (hdr.len != (size_t) n - sizeof(hdr) || hdr.n_fds != n_fds || hdr.type == 0 ||
            hdr.type >= CHAN_TYPE_LIMIT)
                goto bad;
        ret->payload = json_loadb(buf + sizeof(hdr), hdr.len, JSON_REJECT_DUPLICATES, &jerr);
        /* The buffer lives on between messages: leave no text behind in it (a TLS key, a JWKS, an
         * approval's arguments). A later, shorter message would overwrite only its beginning. */
        explicit_bzero(buf, (size_t) n);
        if (!json_is_object(ret->payload)) {
                json_decref(ret->payload);
                ret->payload = NULL;
                goto bad;
        }
        ret->type = hdr.type;
        ret->id = hdr.id;
        memcpy(ret->fds, fds, sizeof(int) * n_fds);
        ret->n_fds = n_fds;
        return 1;
bad:
        close_fds(fds, n_fds);
        return -EBADMSG;
}

int chan_msg_take_fd(struct chan_msg *m, unsigned i) {
        if (i >= m->n_fds)
                return -EBADMSG;
        return TAKE_FD(m->fds[i]);
}

void chan_msg_done(struct chan_msg *m) {
        close_fds(m->fds, m->n_fds);
        json_decref(m->payload);
        *m = (struct chan_msg) {};
}
