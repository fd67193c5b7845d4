/* The broker <-> front framing (lib/front_wire.c) over a real SEQPACKET pair: what one end builds the
 * other reads back exactly, and every malformed message — as a compromised front could send it — is
 * refused whole with -EBADMSG before any string is used. */
#include "config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chan.h"
#include "front_proto.h"

static int sv[2];

static void setup(void) {
        cr_assert_eq(chan_socketpair(sv), 0);
        cr_assert_eq(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
}

static void teardown(void) {
        close(sv[0]);
        close(sv[1]);
}

TestSuite(front_wire, .init = setup, .fini = teardown);

/* The fixed part followed by raw bytes, sent as they are. */
static void send_bytes(uint32_t type, const struct front_wire *w, const void *tail, size_t len) {
        char buf[4096];

        memcpy(buf, w, sizeof(*w));
        memcpy(buf + sizeof(*w), tail, len);
        cr_assert_eq(chan_send_raw(sv[0], type, 0, buf, sizeof(*w) + len, NULL, 0), 0);
}

static int recv_one(struct front_msg *m) {
        return front_recv(sv[1], m);
}

Test(front_wire, a_request_reads_back_exactly) {
        static struct front_msg m;
        struct front_out o;

        cr_assert_eq(front_out_init(&o, &(struct front_wire) { .conn = 7, .stream = 3, .method = FRONT_METHOD_POST,
                                                               .flags = FRONT_FLAG_TLS }), 0);
        front_out_cstr(&o, "inventory");
        front_out_cstr(&o, "/mcp/inventory");
        front_out_cstr(&o, "127.0.0.1");
        front_out_str(&o, "{\"jsonrpc\":\"2.0\"}", 17);
        front_out_cstr(&o, "authorization");
        front_out_cstr(&o, "Bearer x.y.z");
        front_out_cstr(&o, "accept");
        front_out_cstr(&o, "");
        cr_assert_eq(front_out_finish(&o), 0);
        cr_assert_eq(chan_send_raw(sv[0], FRONT_REQUEST, 0, o.buf, o.len, NULL, 0), 0);
        front_out_done(&o);

        cr_assert_eq(recv_one(&m), 1);
        cr_assert_eq(m.type, FRONT_REQUEST);
        cr_assert_eq(m.w.conn, 7);
        cr_assert_eq(m.w.stream, 3);
        cr_assert_eq(m.w.method, FRONT_METHOD_POST);
        cr_assert_eq(m.w.flags, FRONT_FLAG_TLS);
        cr_assert_eq(m.n, 8);
        cr_assert_str_eq(m.str[0].s, "inventory");
        cr_assert_str_eq(m.str[1].s, "/mcp/inventory");
        cr_assert_str_eq(m.str[2].s, "127.0.0.1");
        cr_assert_eq(m.str[3].len, 17);
        cr_assert_str_eq(m.str[3].s, "{\"jsonrpc\":\"2.0\"}");
        cr_assert_str_eq(m.str[5].s, "Bearer x.y.z");
        cr_assert_eq(m.str[7].len, 0);
        cr_assert_str_eq(m.str[7].s, "");
        front_msg_done(&m);
        cr_assert_eq(recv_one(&m), -EAGAIN);
}

Test(front_wire, the_builder_refuses_a_nul_and_too_many_strings) {
        struct front_out o;

        front_out_init(&o, &(struct front_wire) { .conn = 1 });
        front_out_str(&o, "a\0b", 3);
        cr_assert_eq(front_out_finish(&o), -EINVAL);
        front_out_done(&o);

        front_out_init(&o, &(struct front_wire) { .conn = 1 });
        for (int i = 0; i <= FRONT_MAX_STRINGS; i++)
                front_out_cstr(&o, "x");
        cr_assert_eq(front_out_finish(&o), -EMSGSIZE);
        front_out_done(&o);
}

Test(front_wire, a_message_shorter_than_its_fixed_part_is_refused) {
        static struct front_msg m;

        cr_assert_eq(chan_send_raw(sv[0], FRONT_CANCEL, 0, "short", 5, NULL, 0), 0);
        cr_assert_eq(recv_one(&m), -EBADMSG);
}

Test(front_wire, a_string_longer_than_what_arrived_is_refused) {
        static struct front_msg m;
        struct { uint32_t len; char s[4]; } tail = { 1000, "abc" };

        send_bytes(FRONT_REQUEST, &(struct front_wire) { .n_strings = 1 }, &tail, sizeof(tail));
        cr_assert_eq(recv_one(&m), -EBADMSG);
        /* and one whose length would wrap around */
        tail.len = UINT32_MAX;
        send_bytes(FRONT_REQUEST, &(struct front_wire) { .n_strings = 1 }, &tail, sizeof(tail));
        cr_assert_eq(recv_one(&m), -EBADMSG);
}

Test(front_wire, a_string_without_its_nul_or_with_one_inside_is_refused) {
        static struct front_msg m;
        struct { uint32_t len; char s[4]; } tail = { 3, { 'a', 'b', 'c', 'd' } };

        send_bytes(FRONT_REQUEST, &(struct front_wire) { .n_strings = 1 }, &tail, sizeof(tail));
        cr_assert_eq(recv_one(&m), -EBADMSG);
        memcpy(tail.s, "a\0c", 4);
        send_bytes(FRONT_REQUEST, &(struct front_wire) { .n_strings = 1 }, &tail, sizeof(tail));
        cr_assert_eq(recv_one(&m), -EBADMSG);
        /* the same bytes well-formed are read */
        memcpy(tail.s, "abc", 4);
        send_bytes(FRONT_REQUEST, &(struct front_wire) { .n_strings = 1 }, &tail, sizeof(tail));
        cr_assert_eq(recv_one(&m), 1);
        cr_assert_str_eq(m.str[0].s, "abc");
        front_msg_done(&m);
}

Test(front_wire, counts_and_bytes_must_agree) {
        static struct front_msg m;
        struct { uint32_t len; char s[2]; char extra[3]; } tail = { 1, "a", "xyz" };

        /* bytes after the last string */
        send_bytes(FRONT_REQUEST, &(struct front_wire) { .n_strings = 1 }, &tail, sizeof(tail));
        cr_assert_eq(recv_one(&m), -EBADMSG);
        /* more strings announced than sent */
        send_bytes(FRONT_REQUEST, &(struct front_wire) { .n_strings = 2 }, &tail, sizeof(uint32_t) + 2);
        cr_assert_eq(recv_one(&m), -EBADMSG);
        /* more than any message may carry */
        send_bytes(FRONT_REQUEST, &(struct front_wire) { .n_strings = FRONT_MAX_STRINGS + 1 }, &tail, 0);
        cr_assert_eq(recv_one(&m), -EBADMSG);
        /* the reserved field set */
        send_bytes(FRONT_CANCEL, &(struct front_wire) { .zero = 1 }, &tail, 0);
        cr_assert_eq(recv_one(&m), -EBADMSG);
        /* and the channel still works after all of that */
        send_bytes(FRONT_CANCEL, &(struct front_wire) { .conn = 9, .stream = 2 }, &tail, 0);
        cr_assert_eq(recv_one(&m), 1);
        cr_assert_eq(m.w.conn, 9);
        front_msg_done(&m);
}

Test(front_wire, a_message_with_an_fd_is_refused_and_the_fd_not_kept) {
        static struct front_msg m;
        struct front_wire w = { .conn = 1 };
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC), before;

        cr_assert_geq(fd, 0);
        before = dup(fd);               /* the lowest free number after it: where a kept fd would land */
        close(before);
        cr_assert_eq(chan_send_raw(sv[0], FRONT_CANCEL, 0, &w, sizeof(w), &fd, 1), 0);
        close(fd);
        cr_assert_eq(recv_one(&m), -EBADMSG);
        cr_assert_eq(fcntl(before, F_GETFD), -1, "the received fd is still open");
}

/* A FRONT_REQUEST of these strings, framed and parsed back as the broker would, then checked. */
static int request_check(struct front_wire w, const char *const *strings) {
        static struct front_msg m;
        struct chan_raw raw = { .type = FRONT_REQUEST };
        struct front_out o;
        int r;

        front_out_init(&o, &w);
        for (size_t i = 0; strings[i]; i++)
                front_out_cstr(&o, strings[i]);
        cr_assert_eq(front_out_finish(&o), 0);
        raw.len = o.len;
        raw.data = malloc(o.len + 1);
        cr_assert_not_null(raw.data);
        memcpy(raw.data, o.buf, o.len);
        raw.data[o.len] = '\0';
        front_out_done(&o);
        cr_assert_eq(front_parse(&raw, &m), 1);
        r = front_request_check(&m);
        front_msg_done(&m);
        return r;
}

#define REQ(...) ((const char *const[]) { __VA_ARGS__, NULL })
#define POST ((struct front_wire) { .conn = 1, .stream = 1, .method = FRONT_METHOD_POST, .flags = FRONT_FLAG_TLS })

Test(front_wire, a_request_keeps_the_shape_the_broker_relies_on) {
        cr_assert_eq(request_check(POST, REQ("inventory", "/mcp/inventory", "[::1]:4242", "{}", "authorization",
                                             "Bearer a.b.c", "accept", "application/json,\ttext/event-stream")), 0);
        /* two copies of a header: the broker's reader and the JWT code must never see different ones */
        cr_assert_eq(request_check(POST, REQ("inventory", "/mcp/inventory", "127.0.0.1", "{}", "authorization", "Bearer a",
                                             "authorization", "Bearer b")), -EBADMSG);
        cr_assert_eq(request_check(POST, REQ("inventory", "/mcp/inventory", "127.0.0.1", "{}", "Authorization", "x")), -EBADMSG);
        cr_assert_eq(request_check(POST, REQ("inventory", "/mcp/inventory", "127.0.0.1", "{}", "", "x")), -EBADMSG);
        cr_assert_eq(request_check(POST, REQ("inventory", "/mcp/inventory", "127.0.0.1", "{}", "accept", "a\rb")), -EBADMSG);
        cr_assert_eq(request_check(POST, REQ("inventory", "/mcp/inventory", "127.0.0.1", "{}", "accept", "caf\xc3\xa9")),
                     -EBADMSG);
        cr_assert_eq(request_check(POST, REQ("inventory", "/mcp/inventory", "127.0.0.1", "{}", "accept")), -EBADMSG);
        /* the peer goes into logs and audit records */
        cr_assert_eq(request_check(POST, REQ("inventory", "/mcp/inventory", "1.2.3.4 forged=yes", "{}")), -EBADMSG);
        cr_assert_eq(request_check(POST, REQ("inventory", "/mcp/inventory",
                                             "0123456789012345678901234567890123456789012345678901234567890123456789", "{}")),
                     -EBADMSG);
        cr_assert_eq(request_check(POST, REQ("inventory", "mcp/inventory", "127.0.0.1", "{}")), -EBADMSG);
        cr_assert_eq(request_check(POST, REQ("a-server-name-longer-than-sixty-three-bytes-is-never-configured-anywhere",
                                             "/mcp/x", "127.0.0.1", "{}")), -EBADMSG);
        cr_assert_eq(request_check((struct front_wire) { .conn = 1, .method = 0 },
                                   REQ("inventory", "/mcp/inventory", "127.0.0.1", "")), -EBADMSG);
        cr_assert_eq(request_check((struct front_wire) { .conn = 1, .method = FRONT_METHOD_OPTIONS + 1 },
                                   REQ("inventory", "/mcp/inventory", "127.0.0.1", "")), -EBADMSG);
        cr_assert_eq(request_check((struct front_wire) { .conn = 1, .method = FRONT_METHOD_GET, .flags = FRONT_FLAG_CLOSE },
                                   REQ("inventory", "/mcp/inventory", "127.0.0.1", "")), -EBADMSG);
        cr_assert_eq(request_check((struct front_wire) { .conn = UINT64_MAX, .method = FRONT_METHOD_GET },
                                   REQ("inventory", "/mcp/inventory", "127.0.0.1", "")), -EBADMSG);
        cr_assert_eq(request_check(POST, REQ("inventory", "/mcp/inventory", "127.0.0.1")), -EBADMSG);
}

/* The broker's batch receive (chan_recv_raw_batch, one recvmmsg): every message back in order, each
 * in a copy of its own; a short batch means the channel was empty; the EOF after messages comes next. */
Test(front_wire, a_batch_receive_returns_every_message_in_order_then_eagain_then_eof) {
        struct chan_raw raw[CHAN_RECV_BATCH];
        char text[32];
        int n;

        for (int i = 0; i < 20; i++) {
                snprintf(text, sizeof(text), "message %d", i);
                cr_assert_eq(chan_send_raw(sv[0], FRONT_CANCEL, (uint32_t) i, text, strlen(text), NULL, 0), 0);
        }
        cr_assert_eq(chan_recv_raw_batch(sv[1], raw, 0), -EINVAL);
        cr_assert_eq(chan_recv_raw_batch(sv[1], raw, CHAN_RECV_BATCH + 1), -EINVAL);
        for (int first = 0, expect = CHAN_RECV_BATCH; first < 20; first += n, expect = 20 - first) {
                n = chan_recv_raw_batch(sv[1], raw, CHAN_RECV_BATCH);
                cr_assert_eq(n, expect);
                for (int i = 0; i < n; i++) {
                        snprintf(text, sizeof(text), "message %d", first + i);
                        cr_assert_eq(raw[i].type, FRONT_CANCEL);
                        cr_assert_eq(raw[i].id, (uint32_t) (first + i));
                        cr_assert_eq(raw[i].len, strlen(text));
                        cr_assert_str_eq(raw[i].data, text);
                        chan_raw_done(&raw[i]);
                }
        }
        cr_assert_eq(chan_recv_raw_batch(sv[1], raw, CHAN_RECV_BATCH), -EAGAIN);
        cr_assert_eq(chan_send_raw(sv[0], FRONT_CANCEL, 1, "a", 1, NULL, 0), 0);
        cr_assert_eq(chan_send_raw(sv[0], FRONT_CANCEL, 2, "b", 1, NULL, 0), 0);
        close(sv[0]);
        sv[0] = -1;
        cr_assert_eq(chan_recv_raw_batch(sv[1], raw, CHAN_RECV_BATCH), 2);
        cr_assert_str_eq(raw[0].data, "a");
        cr_assert_str_eq(raw[1].data, "b");
        chan_raw_done(&raw[0]);
        chan_raw_done(&raw[1]);
        cr_assert_eq(chan_recv_raw_batch(sv[1], raw, CHAN_RECV_BATCH), 0);
}

/* One message with an fd among good ones: the whole batch is refused, no message handed out, the fd
 * not kept (a compromised front could otherwise fill the broker's fd table). */
static unsigned open_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        unsigned n = 0;

        cr_assert_not_null(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

Test(front_wire, a_batch_with_an_fd_in_it_is_refused_whole_and_the_fd_not_kept) {
        struct chan_raw raw[CHAN_RECV_BATCH];
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        unsigned before;

        cr_assert_geq(fd, 0);
        cr_assert_eq(chan_send_raw(sv[0], FRONT_CANCEL, 0, "good", 4, NULL, 0), 0);
        cr_assert_eq(chan_send_raw(sv[0], FRONT_CANCEL, 0, "fd", 2, &fd, 1), 0);
        cr_assert_eq(chan_send_raw(sv[0], FRONT_CANCEL, 0, "after", 5, &fd, 1), 0);
        close(fd);
        before = open_fds();
        cr_assert_eq(chan_recv_raw_batch(sv[1], raw, CHAN_RECV_BATCH), -EBADMSG);
        cr_assert_eq(open_fds(), before, "a received fd is still open");
}

/* A header that claims more than arrived is refused, as by the one-message receive. */
Test(front_wire, a_batch_with_a_lying_header_is_refused) {
        struct chan_raw raw[CHAN_RECV_BATCH];
        struct chan_hdr hdr = { .type = FRONT_CANCEL, .len = 100 };
        char buf[sizeof(hdr) + 4];

        memcpy(buf, &hdr, sizeof(hdr));
        memcpy(buf + sizeof(hdr), "abcd", 4);
        cr_assert_eq(chan_send_raw(sv[0], FRONT_CANCEL, 0, "good", 4, NULL, 0), 0);
        cr_assert_eq(send(sv[0], buf, sizeof(buf), 0), (ssize_t) sizeof(buf));
        cr_assert_eq(chan_recv_raw_batch(sv[1], raw, CHAN_RECV_BATCH), -EBADMSG);
}

/* A large message (its slot's pages are handed back after the copy, not zeroed) arrives whole, and so
 * does the next message received into the same slot. */
Test(front_wire, a_batch_with_a_large_message_reads_back_exactly) {
        struct chan_raw raw[CHAN_RECV_BATCH];
        size_t big = 200 * 1024;
        char *text = malloc(big);
        int sndbuf = 4 * 1024 * 1024;

        cr_assert_not_null(text);
        cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)), 0);
        for (size_t i = 0; i < big; i++)
                text[i] = (char) ('a' + i % 26);
        for (int round = 0; round < 2; round++) {
                cr_assert_eq(chan_send_raw(sv[0], FRONT_CANCEL, 7, text, big, NULL, 0), 0);
                cr_assert_eq(chan_send_raw(sv[0], FRONT_CANCEL, 8, "small", 5, NULL, 0), 0);
                cr_assert_eq(chan_recv_raw_batch(sv[1], raw, CHAN_RECV_BATCH), 2);
                cr_assert_eq(raw[0].len, big);
                cr_assert_eq(memcmp(raw[0].data, text, big), 0);
                cr_assert_str_eq(raw[1].data, "small");
                chan_raw_done(&raw[0]);
                chan_raw_done(&raw[1]);
                /* Then a one-byte message into the same slot. */
                text[0] = 'Z';
                big = 1;
        }
        free(text);
}
