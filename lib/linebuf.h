/* Newline-framed message buffers for MCP channels: bounded input lines, queued output. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct linebuf {
        char *buf;
        size_t start;           /* first byte not yet handed out */
        size_t len;             /* end of the bytes held */
        size_t cap;
        size_t max;             /* longest line accepted, without its newline */
        size_t scan;            /* bytes already searched for a newline */
        bool discarding;        /* inside an oversized line: drop until the next newline */
};

void linebuf_init(struct linebuf *lb, size_t max);
void linebuf_done(struct linebuf *lb);
/* Reads what the (non-blocking) fd has. Returns bytes read, 0 on EOF, -EAGAIN or -errno. */
ssize_t linebuf_fill(struct linebuf *lb, int fd);
int linebuf_feed(struct linebuf *lb, const void *data, size_t n);
/* Next complete line, NUL-terminated in place (valid until the next call).
 * Returns 1 and the line, 0 when no complete line is buffered, -E2BIG once per oversized line
 * (the line is then dropped up to its newline). A trailing '\r' is removed. */
int linebuf_next(struct linebuf *lb, char **ret_line, size_t *ret_len);

struct outbuf {
        char *buf;
        size_t start, len, cap;
        size_t max;             /* queued bytes a slow reader may cause before it is dropped */
};

void outbuf_init(struct outbuf *ob, size_t max);
void outbuf_done(struct outbuf *ob);
/* Queues data (+ '\n' when newline). -ENOBUFS when the reader is too far behind. */
int outbuf_put(struct outbuf *ob, const char *data, size_t n, bool newline);
/* Room for at least n more bytes at the end of the queue, for a writer that fills it in place (then
 * outbuf_commit). NULL with *ret_error -ENOBUFS (the queue would pass max) or -ENOMEM. *ret_room is the
 * space that may be filled, n or more (never past max). */
char *outbuf_reserve(struct outbuf *ob, size_t n, size_t *ret_room, int *ret_error);
/* Appends n bytes written into the space outbuf_reserve() returned. */
static inline void outbuf_commit(struct outbuf *ob, size_t n) { ob->len += n; }
/* Writes as much as the fd takes. Returns 1 when drained, 0 when data remains, -errno on error. */
int outbuf_flush(struct outbuf *ob, int fd);
static inline bool outbuf_pending(const struct outbuf *ob) { return ob->len > 0; }
