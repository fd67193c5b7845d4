/* The binary framing of the broker <-> front channel (lib/front_proto.h). Both ends build and check
 * messages here; the broker treats the front as less trusted, so every length is checked against what
 * arrived before anything is read. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bounds.h"
#include "front_proto.h"
#include "util.h"

_Static_assert(sizeof(struct front_wire) == 32, "struct front_wire has padding");

static int out_reserve(struct front_out *o, size_t more) {
        size_t cap;
        char *p;

        if (o->error < 0)
                return o->error;
        if (more > BASTION_MAX_CHAN_PAYLOAD || o->len + more > BASTION_MAX_CHAN_PAYLOAD)
                return o->error = -EMSGSIZE;
        if (o->len + more <= o->cap)
                return 0;
        cap = o->cap ? o->cap : 1024;
        while (cap < o->len + more)
                cap *= 2;
        /* A request carries the bearer token: the old block must not keep a copy. */
        p = realloc_wiped(o->buf, o->len, o->cap, cap);
        if (!p)
                return o->error = -ENOMEM;
        o->buf = p;
        o->cap = cap;
        return 0;
}

int front_out_init(struct front_out *o, const struct front_wire *w) {
        struct front_wire fixed = *w;

        *o = (struct front_out) {};
        fixed.n_strings = 0;
        fixed.zero = 0;
        if (out_reserve(o, sizeof(fixed)) < 0)
                return o->error;
        memcpy(o->buf, &fixed, sizeof(fixed));
        o->len = sizeof(fixed);
        return 0;
}

void front_out_str(struct front_out *o, const char *s, size_t len) {
        uint32_t l = (uint32_t) len;
        struct front_wire *w;

        if (o->error < 0)
                return;
        if (memchr(s, '\0', len)) {
                o->error = -EINVAL;
                return;
        }
        if (out_reserve(o, sizeof(l) + len + 1) < 0)
                return;
        w = (struct front_wire *) o->buf;
        if (w->n_strings >= FRONT_MAX_STRINGS) {
                o->error = -EMSGSIZE;
                return;
        }
        w->n_strings++;
        memcpy(o->buf + o->len, &l, sizeof(l));
        memcpy(o->buf + o->len + sizeof(l), s, len);
        o->buf[o->len + sizeof(l) + len] = '\0';
        o->len += sizeof(l) + len + 1;
}

int front_out_finish(struct front_out *o) {
        return o->error < 0 ? o->error : o->buf ? 0 : -ENOMEM;
}

void front_out_done(struct front_out *o) {
        if (o->buf)
                explicit_bzero(o->buf, o->len);
        free(o->buf);
        *o = (struct front_out) {};
}

int front_recv(int fd, struct front_msg *ret) {
        struct chan_raw raw;
        int r;

        ret->n = 0;
        ret->raw = (struct chan_raw) {};
        r = chan_recv_raw_batch(fd, &raw, 1);
        if (r <= 0)
                return r;
        return front_parse(&raw, ret);
}

int front_parse(struct chan_raw *raw, struct front_msg *ret) {
        size_t off;

        ret->n = 0;
        ret->raw = *raw;
        *raw = (struct chan_raw) {};
        ret->type = ret->raw.type;
        if (ret->raw.len < sizeof(ret->w))
                goto bad;
        memcpy(&ret->w, ret->raw.data, sizeof(ret->w));
        if (ret->w.zero != 0 || ret->w.n_strings > FRONT_MAX_STRINGS)
                goto bad;
        off = sizeof(ret->w);
        for (unsigned i = 0; i < ret->w.n_strings; i++) {
                uint32_t l;

                if (ret->raw.len - off < sizeof(l))
                        goto bad;
                memcpy(&l, ret->raw.data + off, sizeof(l));
                off += sizeof(l);
                /* the bytes and the NUL that ends them must both have arrived */
                if (l >= ret->raw.len - off || ret->raw.data[off + l] != '\0' || memchr(ret->raw.data + off, '\0', l))
                        goto bad;
                ret->str[i] = (struct front_str) { ret->raw.data + off, l };
                off += (size_t) l + 1;
        }
        if (off != ret->raw.len)
                goto bad;
        ret->n = ret->w.n_strings;
        return 1;
bad:
        front_msg_done(ret);
        return -EBADMSG;
}

void front_msg_done(struct front_msg *m) {
        chan_raw_done(&m->raw);
        m->n = 0;
}

static bool printable(const char *s, bool space) {
        for (; *s; s++)
                if ((*s < ' ' || *s > '~' || (!space && *s == ' ')) && !(space && *s == '\t'))
                        return false;
        return true;
}

int front_request_check(const struct front_msg *m) {
        size_t n_headers;

        if (m->type != FRONT_REQUEST || m->n < 4 || (m->n - 4) % 2 != 0 || m->w.method < FRONT_METHOD_GET ||
            m->w.method > FRONT_METHOD_OPTIONS || (m->w.flags & ~FRONT_FLAG_TLS) || m->w.conn > INT64_MAX ||
            m->w.stream > INT64_MAX)
                return -EBADMSG;
        if (m->str[0].len > BASTION_MAX_NAME || m->str[1].s[0] != '/')
                return -EBADMSG;
        /* The peer goes into logs and audit records: a short printable address, nothing else. */
        if (m->str[2].len > FRONT_MAX_PEER || !printable(m->str[2].s, false))
                return -EBADMSG;
        n_headers = (m->n - 4) / 2;
        for (size_t i = 0; i < n_headers; i++) {
                const struct front_str *name = &m->str[4 + 2 * i], *value = &m->str[5 + 2 * i];

                if (name->len == 0 || !printable(value->s, true))
                        return -EBADMSG;
                for (const char *c = name->s; *c; c++)
                        if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
                                return -EBADMSG;
                for (size_t j = 0; j < i; j++)
                        if (streq(m->str[4 + 2 * j].s, name->s))
                                return -EBADMSG;
        }
        return 0;
}
