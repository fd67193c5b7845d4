/* Supervisor <-> broker framing over SOCK_SEQPACKET with SCM_RIGHTS. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

int chan_send_raw(int fd, uint32_t type, uint32_t id, const void *data, size_t len, const int *fds, unsigned n_fds) {
        struct chan_hdr hdr;
        struct iovec iov[2];
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * BASTION_MAX_CHAN_FDS)];
        } control = {};
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };

        if (n_fds > BASTION_MAX_CHAN_FDS)
                return -EINVAL;
        if (len > BASTION_MAX_CHAN_PAYLOAD)
                return -EMSGSIZE;
        hdr = (struct chan_hdr) { .type = type, .len = len, .id = id, .n_fds = n_fds };
        iov[0] = (struct iovec) { &hdr, sizeof(hdr) };
        iov[1] = (struct iovec) { (void *) data, len };
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
                if (n >= 0)
                        return (size_t) n == sizeof(hdr) + len ? 0 : -EMSGSIZE;
                if (errno != EINTR)
                        return -errno;
        }
}

int chan_send(int fd, uint32_t type, uint32_t id, json_t *payload, const int *fds, unsigned n_fds) {
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r;

        text = json_dumps(payload ? payload : json_object(), JSON_COMPACT);
        if (!text)
                return -ENOMEM;
        len = strlen(text);
        r = chan_send_raw(fd, type, id, text, len, fds, n_fds);
        explicit_bzero(text, len);      /* as in chan_recv: no message text left in freed memory */
        return r;
}

static void close_fds(int *fds, unsigned n) {
        for (unsigned i = 0; i < n; i++)
                fds[i] = safe_close(fds[i]);
}

/* One receive buffer per process, allocated at first use and kept: every process receives on its
 * channels from one thread only (the broker's audit sync thread never touches a channel) and never
 * re-entrantly, and a fresh 4 MiB allocation per message (an mmap and munmap each time) sat on the path
 * of every HTTP request. Only the pages a message touches are ever resident. */
static char *recv_buf;

/* Takes the fds out of a received message's control data: at most BASTION_MAX_CHAN_FDS into fds[],
 * any beyond closed. Returns how many. */
static unsigned take_fds(struct msghdr *mh, int fds[BASTION_MAX_CHAN_FDS]) {
        unsigned n_fds = 0;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
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
        return n_fds;
}

/* Checks n received bytes at buf (and the fds that came with them): 1 with *ret_hdr and the payload
 * at *ret_data; -EBADMSG with the bytes zeroed and no fd left open. */
static int check_one(char *buf, size_t n, int msg_flags, int fds[BASTION_MAX_CHAN_FDS], unsigned n_fds,
                     struct chan_hdr *ret_hdr, char **ret_data) {
        struct chan_hdr hdr;

        if (msg_flags & (MSG_TRUNC | MSG_CTRUNC))
                goto bad;
        if (n < sizeof(hdr))
                goto bad;
        memcpy(&hdr, buf, sizeof(hdr));
        if (hdr.len != n - sizeof(hdr) || hdr.n_fds != n_fds || hdr.type == 0 || hdr.type >= CHAN_TYPE_LIMIT)
                goto bad;
        *ret_hdr = hdr;
        *ret_data = buf + sizeof(hdr);
        return 1;
bad:
        explicit_bzero(buf, n);
        close_fds(fds, n_fds);
        return -EBADMSG;
}

/* Receives one message into the process's buffer: 1 with *ret_hdr, the payload at *ret_data (valid
 * until the next receive) and the fds in fds[]; 0 at EOF; -EAGAIN; -EBADMSG with no fd left open. */
static int recv_one(int fd, struct chan_hdr *ret_hdr, char **ret_data, int fds[BASTION_MAX_CHAN_FDS]) {
        char *buf;
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * BASTION_MAX_CHAN_FDS)];
        } control = {};
        struct iovec iov;
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1,
                .msg_control = control.buf, .msg_controllen = sizeof(control.buf),
        };
        ssize_t n;

        /* One extra byte so that an oversized datagram shows up as MSG_TRUNC, never silently cut. */
        if (!recv_buf)
                recv_buf = malloc(sizeof(struct chan_hdr) + BASTION_MAX_CHAN_PAYLOAD + 1);
        if (!recv_buf)
                return -ENOMEM;
        buf = recv_buf;
        iov = (struct iovec) { buf, sizeof(struct chan_hdr) + BASTION_MAX_CHAN_PAYLOAD + 1 };
        do
                n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        if (n == 0)
                return 0;
        return check_one(buf, (size_t) n, mh.msg_flags, fds, take_fds(&mh, fds), ret_hdr, ret_data);
}

int chan_recv(int fd, struct chan_msg *ret) {
        int fds[BASTION_MAX_CHAN_FDS];
        struct chan_hdr hdr;
        json_error_t jerr;
        char *data;
        int r;

        *ret = (struct chan_msg) {};
        r = recv_one(fd, &hdr, &data, fds);
        if (r <= 0)
                return r;
        ret->payload = json_loadb(data, hdr.len, JSON_REJECT_DUPLICATES, &jerr);
        /* The buffer lives on between messages: leave no text behind in it (a TLS key, a JWKS, an
         * approval's arguments). A later, shorter message would overwrite only its beginning. */
        explicit_bzero(recv_buf, sizeof(hdr) + hdr.len);
        if (!json_is_object(ret->payload)) {
                json_decref(ret->payload);
                ret->payload = NULL;
                close_fds(fds, hdr.n_fds);
                return -EBADMSG;
        }
        ret->type = hdr.type;
        ret->id = hdr.id;
        memcpy(ret->fds, fds, sizeof(int) * hdr.n_fds);
        ret->n_fds = hdr.n_fds;
        return 1;
}

/* The batch receive's buffers: CHAN_RECV_BATCH slots, each as large as the largest message, mapped at
 * first use without reserving memory. Only the pages messages touch become resident, and the bytes a
 * message filled are zeroed once it has been copied out. */
static char *batch_buf;
static size_t batch_slot;
#define CHAN_RECV_KEEP_BYTES (64 * 1024)

/* Leaves no message text in a slot. A large message's pages are handed back instead (zero when touched
 * again), so that sixteen of them at once do not stay resident. */
static void slot_wipe(char *buf, size_t n) {
        if (n < CHAN_RECV_KEEP_BYTES || madvise(buf, n, MADV_DONTNEED) < 0)
                explicit_bzero(buf, n);
}

int chan_recv_raw_batch(int fd, struct chan_raw *ret, unsigned max) {
        struct mmsghdr mm[CHAN_RECV_BATCH];
        struct iovec iov[CHAN_RECV_BATCH];
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * BASTION_MAX_CHAN_FDS)];
        } control[CHAN_RECV_BATCH];
        unsigned got = 0;
        int n, r = 0;

        if (max == 0 || max > CHAN_RECV_BATCH)
                return -EINVAL;
        if (!batch_buf) {
                long page = sysconf(_SC_PAGESIZE);
                size_t slot = sizeof(struct chan_hdr) + BASTION_MAX_CHAN_PAYLOAD + 1;
                void *p;

                slot = (slot + (size_t) page - 1) / (size_t) page * (size_t) page;
                p = mmap(NULL, slot * CHAN_RECV_BATCH, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
                if (p == MAP_FAILED)
                        return -ENOMEM;
                batch_buf = p;
                batch_slot = slot;
        }
        memset(control, 0, sizeof(control[0]) * max);
        for (unsigned i = 0; i < max; i++) {
                /* One extra byte per slot so that an oversized datagram shows up as MSG_TRUNC. */
                iov[i] = (struct iovec) { batch_buf + i * batch_slot, sizeof(struct chan_hdr) + BASTION_MAX_CHAN_PAYLOAD + 1 };
                mm[i] = (struct mmsghdr) { .msg_hdr = {
                        .msg_iov = &iov[i], .msg_iovlen = 1,
                        .msg_control = control[i].buf, .msg_controllen = sizeof(control[i].buf),
                } };
        }
        do
                n = recvmmsg(fd, mm, max, MSG_DONTWAIT | MSG_CMSG_CLOEXEC, NULL);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -errno;
        for (int i = 0; i < n; i++) {
                char *buf = batch_buf + (size_t) i * batch_slot, *data;
                int fds[BASTION_MAX_CHAN_FDS];
                unsigned n_fds = take_fds(&mm[i].msg_hdr, fds);
                struct chan_hdr hdr;

                /* A zero-length datagram carries no message (none is shorter than its header). At the
                 * end of the channel every slot from there on is one: skipped, so the messages before
                 * it are returned and the next receive, with nothing else, reports the end (0). */
                if (mm[i].msg_len == 0) {
                        close_fds(fds, n_fds);
                        continue;
                }
                if (r < 0) {
                        /* After a bad message: only clean up what came with it. */
                        slot_wipe(buf, mm[i].msg_len);
                        close_fds(fds, n_fds);
                        continue;
                }
                r = check_one(buf, mm[i].msg_len, mm[i].msg_hdr.msg_flags, fds, n_fds, &hdr, &data);
                if (r < 0)
                        continue;
                if (n_fds > 0) {
                        close_fds(fds, n_fds);
                        explicit_bzero(buf, sizeof(hdr) + hdr.len);
                        r = -EBADMSG;
                        continue;
                }
                ret[got].data = malloc(hdr.len + 1);
                if (ret[got].data) {
                        memcpy(ret[got].data, data, hdr.len);
                        ret[got].data[hdr.len] = '\0';
                }
                slot_wipe(buf, sizeof(hdr) + hdr.len);
                if (!ret[got].data) {
                        r = -ENOMEM;
                        continue;
                }
                ret[got].type = hdr.type;
                ret[got].id = hdr.id;
                ret[got].len = hdr.len;
                got++;
        }
        if (r < 0) {
                for (unsigned i = 0; i < got; i++)
                        chan_raw_done(&ret[i]);
                return r;
        }
        return (int) got;
}

void chan_raw_done(struct chan_raw *m) {
        if (m->data)
                explicit_bzero(m->data, m->len);
        free(m->data);
        *m = (struct chan_raw) {};
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
