/* Line framing for the stdio transport of MCP: one JSON-RPC message per line, never longer than max. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linebuf.h"

void linebuf_init(struct linebuf *lb, size_t max) {
        *lb = (struct linebuf) { .max = max };
}

void linebuf_done(struct linebuf *lb) {
        free(lb->buf);
        *lb = (struct linebuf) { .max = lb->max };
}

/* Make room for `extra` more bytes, first by dropping lines already handed out. */
static int linebuf_reserve(struct linebuf *lb, size_t extra) {
        size_t want;
        char *p;

        if (lb->start > 0) {
                memmove(lb->buf, lb->buf + lb->start, lb->len - lb->start);
                lb->len -= lb->start;
                lb->scan -= lb->start;
                lb->start = 0;
        }
        want = lb->len + extra + 1;
        if (want <= lb->cap)
                return 0;
        if (want < lb->cap * 2)
                want = lb->cap * 2;
        p = realloc(lb->buf, want);
        if (!p)
                return -ENOMEM;
        lb->buf = p;
        lb->cap = want;
        return 0;
}

int linebuf_feed(struct linebuf *lb, const void *data, size_t n) {
        int r = linebuf_reserve(lb, n);

        if (r < 0)
                return r;
        memcpy(lb->buf + lb->len, data, n);
        lb->len += n;
        return 0;
}

ssize_t linebuf_fill(struct linebuf *lb, int fd) {
        ssize_t n;
        int r;

        r = linebuf_reserve(lb, 65536);
        if (r < 0)
                return r;
        n = read(fd, lb->buf + lb->len, lb->cap - lb->len - 1);
        if (n < 0)
                return errno == EINTR ? -EAGAIN : -errno;
        lb->len += n;
        return n;
}

int linebuf_next(struct linebuf *lb, char **ret_line, size_t *ret_len) {
        for (;;) {
                size_t from = lb->scan > lb->start ? lb->scan : lb->start;
                char *line = lb->buf + lb->start;
                char *nl = lb->len > from ? memchr(lb->buf + from, '\n', lb->len - from) : NULL;
                size_t n;

                if (!nl) {
                        lb->scan = lb->len;
                        if (lb->len - lb->start > lb->max) {
                                /* Oversized and no end in sight: drop it and skip to the next newline. */
                                bool first = !lb->discarding;
                                lb->discarding = true;
                                lb->start = lb->len = lb->scan = 0;
                                if (first)
                                        return -E2BIG;
                        }
                        return 0;
                }
                n = nl - line;
                lb->start += n + 1;
                lb->scan = lb->start;
                if (lb->discarding) {
                        lb->discarding = false;
                        continue;
                }
                if (n > lb->max)
                        return -E2BIG;
                *nl = '\0';
                if (n > 0 && line[n - 1] == '\r')
                        line[--n] = '\0';
                *ret_line = line;
                *ret_len = n;
                return 1;
        }
}

void outbuf_init(struct outbuf *ob, size_t max) {
        *ob = (struct outbuf) { .max = max };
}

void outbuf_done(struct outbuf *ob) {
        free(ob->buf);
        *ob = (struct outbuf) { .max = ob->max };
}

char *outbuf_reserve(struct outbuf *ob, size_t need, size_t *ret_room, int *ret_error) {
        if (ob->len + need > ob->max) {
                *ret_error = -ENOBUFS;
                return NULL;
        }
        if (ob->start + ob->len + need > ob->cap) {
                if (ob->start > 0) {
                        memmove(ob->buf, ob->buf + ob->start, ob->len);
                        ob->start = 0;
                }
                if (ob->len + need > ob->cap) {
                        size_t want = ob->cap * 2 > ob->len + need ? ob->cap * 2 : ob->len + need + 4096;
                        char *p = realloc(ob->buf, want);
                        if (!p) {
                                *ret_error = -ENOMEM;
                                return NULL;
                        }
                        ob->buf = p;
                        ob->cap = want;
                }
        }
        if (ret_room) {
                size_t room = ob->cap - ob->start - ob->len;
                *ret_room = room < ob->max - ob->len ? room : ob->max - ob->len;
        }
        return ob->buf + ob->start + ob->len;
}

int outbuf_put(struct outbuf *ob, const char *data, size_t n, bool newline) {
        int r;

        if (!outbuf_reserve(ob, n + (newline ? 1 : 0), NULL, &r))
                return r;
        memcpy(ob->buf + ob->start + ob->len, data, n);
        ob->len += n;
        if (newline)
                ob->buf[ob->start + ob->len++] = '\n';
        return 0;
}

int outbuf_flush(struct outbuf *ob, int fd) {
        while (ob->len > 0) {
                ssize_t n = write(fd, ob->buf + ob->start, ob->len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                return 0;
                        return -errno;
                }
                ob->start += n;
                ob->len -= n;
        }
        ob->start = 0;
        return 1;
}
