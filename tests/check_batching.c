/* SPDX-License-Identifier: MIT */
/*
 * The stream's write batching: writes made inside one of twine's callbacks
 * leave in one system call when the callback returns, and a write made
 * outside any callback goes out at once.
 *
 * The streams are adopted UNIX SOCK_SEQPACKET sockets: each send() is one
 * record there, so the number of records the peer reads is the number of
 * system calls the stream made, with no counter inside the library.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <twine.h>
#include <twine/amp.h>

#include "core/fd_internal.h"
#include "ampbytes.h"
#include "testutil.h"

#define PIECE 10
#define PIECES 100

typedef struct {
    tw_factory base;
    int pieces;       /* written, one write each, per data_received */
    int lose_after;   /* lose_connection after them */
    int abort_after;  /* abort_connection after them */
    int lost;
    tw_transport *t;
} bt_factory;

typedef struct {
    tw_protocol base;
    bt_factory *f;
} bt_proto;

static void write_pieces(tw_transport *t, int pieces)
{
    for (int i = 0; i < pieces; i++) {
        char buf[PIECE];
        memset(buf, 'a' + i % 26, sizeof buf);
        ck_assert_int_eq(tw_transport_write(t, buf, sizeof buf), 0);
    }
}

static void bt_made(tw_protocol *p)
{
    ((bt_proto *)p)->f->t = p->transport;
}

static void bt_data(tw_protocol *p, const void *data, size_t len)
{
    (void)data;
    (void)len;
    bt_factory *f = ((bt_proto *)p)->f;
    write_pieces(p->transport, f->pieces);
    if (f->lose_after)
        tw_transport_lose_connection(p->transport);
    if (f->abort_after)
        tw_transport_abort_connection(p->transport);
}

static void bt_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)reason;
    bt_factory *f = ((bt_proto *)p)->f;
    f->lost++;
    f->t = NULL;
}

static void bt_destroy(tw_protocol *p)
{
    free(p);
}

static const tw_protocol_ops bt_ops = {
    .connection_made = bt_made,
    .data_received = bt_data,
    .connection_lost = bt_lost,
    .destroy = bt_destroy,
};

static tw_protocol *bt_build(tw_factory *fb, const tw_address *addr)
{
    (void)addr;
    bt_proto *c = calloc(1, sizeof *c);
    c->base.ops = &bt_ops;
    c->f = (bt_factory *)fb;
    return &c->base;
}

static const tw_factory_ops bt_factory_ops = {.build_protocol = bt_build};

/* Adopt one end of a SOCK_SEQPACKET pair into @p r; @return the other. */
static int bt_adopt(tw_reactor *r, bt_factory *f)
{
    memset(f, 0, sizeof *f);
    f->base.ops = &bt_factory_ops;
    int sv[2];
    ck_assert_int_eq(tw__socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv, O_CLOEXEC), 0);
    ck_assert_int_eq(tw_transport_adopt(r, sv[0], &f->base), 0);
    ck_assert_ptr_nonnull(f->t);
    return sv[1];
}

/* Read records from @p fd, turning the loop, until @p want bytes came, the
 * peer's EOF or @p ms. @return the number of records; *bytes gets their
 * total and *eof whether the EOF came. */
static int read_records(tw_reactor *r, int fd, size_t want, int ms, size_t *bytes, int *eof)
{
    int records = 0;
    *bytes = 0;
    *eof = 0;
    long long deadline = tu_now_ms() + ms;
    while (tu_now_ms() < deadline && (*bytes < want || want == 0)) {
        tw_reactor_iterate(r, 0);
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 5) <= 0)
            continue;
        char buf[65536];
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0) {
            *eof = 1;
            break;
        }
        if (n < 0) {
            ck_assert_int_eq(errno == EAGAIN || errno == EINTR, 1);
            continue;
        }
        records++;
        *bytes += (size_t)n;
    }
    return records;
}

START_TEST(test_writes_inside_data_received_leave_in_one_send)
{
    tw_reactor *r = tw_reactor_new();
    bt_factory f;
    int peer = bt_adopt(r, &f);
    f.pieces = PIECES;
    ck_assert_int_eq(send(peer, "go", 2, 0), 2);
    size_t bytes;
    int eof;
    int records = read_records(r, peer, PIECES * PIECE, 2000, &bytes, &eof);
    ck_assert_uint_eq(bytes, PIECES * PIECE);
    ck_assert_int_eq(records, 1);
    /* And again on the next read: the batch starts afresh. */
    ck_assert_int_eq(send(peer, "go", 2, 0), 2);
    records = read_records(r, peer, PIECES * PIECE, 2000, &bytes, &eof);
    ck_assert_uint_eq(bytes, PIECES * PIECE);
    ck_assert_int_eq(records, 1);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

/* lose_connection after the batch: the batch goes out, then the EOF. */
START_TEST(test_a_batch_then_lose_connection_delivers_it_before_the_eof)
{
    tw_reactor *r = tw_reactor_new();
    bt_factory f;
    int peer = bt_adopt(r, &f);
    f.pieces = PIECES;
    f.lose_after = 1;
    ck_assert_int_eq(send(peer, "go", 2, 0), 2);
    size_t bytes;
    int eof;
    int records = read_records(r, peer, 0, 2000, &bytes, &eof);
    ck_assert_uint_eq(bytes, PIECES * PIECE);
    ck_assert_int_eq(records, 1);
    ck_assert_int_eq(eof, 1);
    close(peer);
    long long deadline = tu_now_ms() + 2000;
    while (f.lost == 0 && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.01);
    ck_assert_int_eq(f.lost, 1);
    tw_reactor_free(r);
}
END_TEST

/* abort_connection drops what was not sent, batch included, as Twisted's
 * abortConnection drops its write buffer. */
START_TEST(test_abort_drops_the_batch)
{
    tw_reactor *r = tw_reactor_new();
    bt_factory f;
    int peer = bt_adopt(r, &f);
    f.pieces = PIECES;
    f.abort_after = 1;
    ck_assert_int_eq(send(peer, "go", 2, 0), 2);
    size_t bytes;
    int eof;
    read_records(r, peer, 0, 2000, &bytes, &eof);
    ck_assert_uint_eq(bytes, 0);
    ck_assert_int_eq(eof, 1);
    ck_assert_int_eq(f.lost, 1);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

/* A write from outside every callback is on the socket when the call
 * returns: nothing would come back to send it later. */
START_TEST(test_a_write_outside_callbacks_goes_out_at_once)
{
    tw_reactor *r = tw_reactor_new();
    bt_factory f;
    int peer = bt_adopt(r, &f);
    ck_assert_int_eq(tw_transport_write(f.t, "now", 3), 0);
    char buf[16];
    ck_assert_int_eq((int)recv(peer, buf, sizeof buf, MSG_DONTWAIT), 3);
    ck_assert_int_eq(memcmp(buf, "now", 3), 0);
    ck_assert_uint_eq(tw_transport_write_buffer_size(f.t), 0);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

typedef struct {
    bt_factory *f;
    int peer;
    ssize_t seen_inside; /* what the peer could read while the timer ran */
} timer_ctx;

static void write_from_timer(void *arg)
{
    timer_ctx *c = arg;
    write_pieces(c->f->t, PIECES);
    char buf[65536];
    c->seen_inside = recv(c->peer, buf, sizeof buf, MSG_DONTWAIT);
}

/* A timer's writes are a batch too, and it leaves as soon as the timer
 * returns, within the same loop pass: a lone write waits for nothing. */
START_TEST(test_writes_from_a_timer_leave_when_it_returns)
{
    tw_reactor *r = tw_reactor_new();
    bt_factory f;
    int peer = bt_adopt(r, &f);
    timer_ctx c = {&f, peer, 0};
    ck_assert_int_eq(tw_reactor_call_later(r, 0, write_from_timer, &c, NULL), 0);
    long long deadline = tu_now_ms() + 2000;
    while (c.seen_inside == 0 && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.01);
    ck_assert_int_eq((int)c.seen_inside, -1); /* nothing yet inside the timer */
    char buf[65536];
    ck_assert_int_eq((int)recv(peer, buf, sizeof buf, MSG_DONTWAIT), PIECES * PIECE);
    ck_assert_int_eq((int)recv(peer, buf, sizeof buf, MSG_DONTWAIT), -1); /* one record */
    close(peer);
    tw_reactor_free(r);
}
END_TEST

#define BIG 8192

typedef struct {
    tw_transport *t;
    int first_big; /* big, small, small; else small, big, small */
    int done;
} mixed_ctx;

static void write_mixed(void *arg)
{
    mixed_ctx *c = arg;
    static char big[BIG];
    memset(big, 'B', sizeof big);
    if (c->first_big)
        ck_assert_int_eq(tw_transport_write(c->t, big, sizeof big), 0);
    ck_assert_int_eq(tw_transport_write(c->t, "s1", 2), 0);
    if (!c->first_big)
        ck_assert_int_eq(tw_transport_write(c->t, big, sizeof big), 0);
    ck_assert_int_eq(tw_transport_write(c->t, "s2", 2), 0);
    c->done = 1;
}

/* Read everything the peer has; @return the number of records. */
static int drain_records(int fd, char *out, size_t cap, size_t *len)
{
    int records = 0;
    *len = 0;
    ssize_t n;
    while ((n = recv(fd, out + *len, cap - *len, MSG_DONTWAIT)) > 0) {
        records++;
        *len += (size_t)n;
    }
    return records;
}

/* A large write into an empty queue goes straight out; small writes before
 * or after it keep their order. */
START_TEST(test_large_and_small_writes_keep_their_order)
{
    for (int first_big = 0; first_big <= 1; first_big++) {
        tw_reactor *r = tw_reactor_new();
        bt_factory f;
        int peer = bt_adopt(r, &f);
        mixed_ctx c = {f.t, first_big, 0};
        ck_assert_int_eq(tw_reactor_call_later(r, 0, write_mixed, &c, NULL), 0);
        long long deadline = tu_now_ms() + 2000;
        while (!c.done && tu_now_ms() < deadline)
            tw_reactor_iterate(r, 0.01);
        ck_assert_int_eq(c.done, 1);
        static char got[2 * BIG];
        size_t len;
        int records = drain_records(peer, got, sizeof got, &len);
        ck_assert_uint_eq(len, BIG + 4);
        if (first_big) {
            ck_assert_int_eq(records, 2); /* the big one, then the batch */
            ck_assert_int_eq(got[0], 'B');
            ck_assert_int_eq(got[BIG - 1], 'B');
            ck_assert_int_eq(memcmp(got + BIG, "s1s2", 4), 0);
        } else {
            ck_assert_int_eq(records, 1); /* joined the batch already open */
            ck_assert_int_eq(memcmp(got, "s1", 2), 0);
            ck_assert_int_eq(got[2], 'B');
            ck_assert_int_eq(memcmp(got + 2 + BIG, "s2", 2), 0);
        }
        close(peer);
        tw_reactor_free(r);
    }
}
END_TEST

static const tw_amp_command SUM = {
    .name = "Sum",
    .arguments = (const tw_amp_arg[]){{"a", TW_AMP_T_INTEGER, 0},
                                      {"b", TW_AMP_T_INTEGER, 0},
                                      {NULL, NULL, 0}},
    .response = (const tw_amp_arg[]){{"total", TW_AMP_T_INTEGER, 0}, {NULL, NULL, 0}},
};

static tw_deferred *sum_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)arg;
    int64_t a, b;
    ck_assert_int_eq(tw_amp_values_get_integer(args, "a", &a), 0);
    ck_assert_int_eq(tw_amp_values_get_integer(args, "b", &b), 0);
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_integer(v, "total", a + b);
    return tw_amp_succeed(v);
}

/* AMP keeps no cork of its own: the answers to the requests of one read
 * leave in one send all the same. */
START_TEST(test_amp_answers_of_one_read_leave_in_one_send)
{
    enum { CALLS = 16 };
    tw_reactor *r = tw_reactor_new();
    tw_factory *f = tw_amp_factory_new();
    ck_assert_int_eq(tw_amp_register(tw_amp_factory_dispatcher(f), &SUM, sum_responder, NULL), 0);
    int sv[2];
    ck_assert_int_eq(tw__socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv, O_CLOEXEC), 0);
    ck_assert_int_eq(tw_transport_adopt(r, sv[0], f), 0);
    unsigned char req[CALLS * sizeof SUM_REQUEST];
    for (int i = 0; i < CALLS; i++)
        memcpy(req + i * sizeof SUM_REQUEST, SUM_REQUEST, sizeof SUM_REQUEST);
    ck_assert_int_eq((int)send(sv[1], req, sizeof req, 0), (int)sizeof req);
    size_t bytes;
    int eof;
    int records = read_records(r, sv[1], CALLS * sizeof SUM_ANSWER, 2000, &bytes, &eof);
    ck_assert_uint_eq(bytes, CALLS * sizeof SUM_ANSWER);
    ck_assert_int_eq(records, 1);
    close(sv[1]);
    ck_assert_int_eq(tw_reactor_free(r), 0);
    tw_factory_free(f);
}
END_TEST

static Suite *batching_suite(void)
{
    Suite *s = suite_create("batching");
    TCase *tc = tcase_create("batch");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_writes_inside_data_received_leave_in_one_send);
    tcase_add_test(tc, test_a_batch_then_lose_connection_delivers_it_before_the_eof);
    tcase_add_test(tc, test_abort_drops_the_batch);
    tcase_add_test(tc, test_a_write_outside_callbacks_goes_out_at_once);
    tcase_add_test(tc, test_writes_from_a_timer_leave_when_it_returns);
    tcase_add_test(tc, test_large_and_small_writes_keep_their_order);
    tcase_add_test(tc, test_amp_answers_of_one_read_leave_in_one_send);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(batching_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
