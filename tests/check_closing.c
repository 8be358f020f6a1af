/* SPDX-License-Identifier: MIT */
/*
 * Closing loses nothing: an orderly close flushes what is queued, sends a
 * FIN and never a reset, even when the peer sent input that was never read;
 * writes made after lose_connection still go out; a peer's half-close gets
 * the whole reply; a stream that is not reading still notices its peer
 * leave; an idle timeout gives up on a peer that stopped reading; and a
 * graceful stop drains clients that write everything before they read.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <twine.h>

#include "core/fd_internal.h"
#include "ampbytes.h"
#include "recorder.h"
#include "testutil.h"

/* The bytes every test sends: position-dependent, so a lost or repeated
 * chunk shows. */
static unsigned char pattern_at(size_t off)
{
    return (unsigned char)(off % 251);
}

static void fill_pattern(unsigned char *buf, size_t off, size_t len)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern_at(off + i);
}

static int is_pattern(const unsigned char *buf, size_t off, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (buf[i] != pattern_at(off + i))
            return 0;
    return 1;
}

#define MAX_CONNS 16

/* A protocol told what to do by its factory. */
typedef struct {
    tw_factory base;
    int built, lost;
    int lost_code;
    int pause_in_made;     /* never read: the peer's input stays unread */
    size_t write_in_made;  /* pattern bytes written by connection_made */
    size_t reply_on_data;  /* pattern bytes written on the first data */
    int lose_on_data;      /* lose_connection after that reply */
    int echo;              /* echo, pausing reading while the queue is high */
    int paused[MAX_CONNS]; /* echo: reading paused now */
    size_t written[MAX_CONNS];
    tw_transport *last;
} cl_factory;

typedef struct {
    tw_protocol base;
    cl_factory *f;
    int idx;
    int replied;
} cl_proto;

static void cl_write(cl_proto *c, size_t len)
{
    unsigned char *buf = malloc(len);
    ck_assert_ptr_nonnull(buf);
    fill_pattern(buf, c->f->written[c->idx], len);
    ck_assert_int_eq(tw_transport_write(c->base.transport, buf, len), 0);
    c->f->written[c->idx] += len;
    free(buf);
}

static void cl_made(tw_protocol *p)
{
    cl_proto *c = (cl_proto *)p;
    c->f->last = p->transport;
    if (c->f->pause_in_made)
        tw_transport_pause_producing(p->transport);
    if (c->f->write_in_made > 0)
        cl_write(c, c->f->write_in_made);
}

static void cl_data(tw_protocol *p, const void *data, size_t len)
{
    cl_proto *c = (cl_proto *)p;
    cl_factory *f = c->f;
    if (f->echo) {
        ck_assert_int_eq(tw_transport_write(p->transport, data, len), 0);
        f->written[c->idx] += len;
        return;
    }
    if (c->replied++ > 0)
        return;
    if (f->reply_on_data > 0)
        cl_write(c, f->reply_on_data);
    if (f->lose_on_data)
        tw_transport_lose_connection(p->transport);
}

static void cl_pause(tw_protocol *p)
{
    cl_proto *c = (cl_proto *)p;
    if (c->f->echo) {
        c->f->paused[c->idx] = 1;
        tw_transport_pause_producing(p->transport);
    }
}

static void cl_resume(tw_protocol *p)
{
    cl_proto *c = (cl_proto *)p;
    if (c->f->echo) {
        c->f->paused[c->idx] = 0;
        tw_transport_resume_producing(p->transport);
    }
}

static void cl_lost(tw_protocol *p, const tw_failure *reason)
{
    cl_proto *c = (cl_proto *)p;
    c->f->lost++;
    c->f->lost_code = tw_failure_code(reason);
    c->f->last = NULL;
}

static void cl_destroy(tw_protocol *p)
{
    free(p);
}

static const tw_protocol_ops cl_ops = {
    .connection_made = cl_made,
    .data_received = cl_data,
    .connection_lost = cl_lost,
    .pause_producing = cl_pause,
    .resume_producing = cl_resume,
    .destroy = cl_destroy,
};

static tw_protocol *cl_build(tw_factory *fb, const tw_address *addr)
{
    (void)addr;
    cl_factory *f = (cl_factory *)fb;
    ck_assert_int_lt(f->built, MAX_CONNS);
    cl_proto *c = calloc(1, sizeof *c);
    c->base.ops = &cl_ops;
    c->f = f;
    c->idx = f->built++;
    return &c->base;
}

static const tw_factory_ops cl_factory_ops = {.build_protocol = cl_build};

static void cl_init(cl_factory *f)
{
    memset(f, 0, sizeof *f);
    f->base.ops = &cl_factory_ops;
}

static tw_listener *cl_listen(tw_reactor *r, cl_factory *f, const tw_listen_options *o, int *port)
{
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, "127.0.0.1", 0), 0);
    tw_listener *l;
    ck_assert_int_eq(tw_listen(r, &a, o, &f->base, &l), 0);
    tw_address bound;
    tw_listener_address(l, &bound);
    *port = tw_address_port(&bound);
    return l;
}

static int cl_adopt(tw_reactor *r, cl_factory *f)
{
    int sv[2];
    ck_assert_int_eq(tw__socketpair(AF_UNIX, SOCK_STREAM, 0, sv, O_CLOEXEC), 0);
    ck_assert_int_eq(tw_transport_adopt(r, sv[0], &f->base), 0);
    return sv[1];
}

/* Run the loop until *flag is nonzero or @p ms pass. */
static void spin_until(tw_reactor *r, const int *flag, int ms)
{
    long long deadline = tu_now_ms() + ms;
    while (*flag == 0 && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.01);
}

/* Read the pattern from @p fd until EOF, an error or @p ms; the loop turns
 * meanwhile. @return bytes read; *end is 1 on EOF, -errno on an error, 0 on
 * timeout or a byte out of pattern. */
static size_t read_to_eof(tw_reactor *r, int fd, int ms, int *end)
{
    unsigned char buf[65536];
    size_t got = 0;
    long long deadline = tu_now_ms() + ms;
    *end = 0;
    while (tu_now_ms() < deadline) {
        if (r != NULL)
            tw_reactor_iterate(r, 0);
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, r != NULL ? 5 : 50) <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0) {
            *end = 1;
            break;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            *end = -errno;
            break;
        }
        if (!is_pattern(buf, got, (size_t)n))
            break;
        got += (size_t)n;
    }
    return got;
}

/* ------------------------------------------------------------ item 1 */

/* The protocol closes with 4 MB queued while 256 KiB of the peer's input
 * sits unread: close() would answer that input with an RST, and the peer
 * would lose what it had not read yet. */
START_TEST(test_lose_with_unread_input_delivers_all_and_no_reset)
{
    tw_reactor *r = tw_reactor_new();
    cl_factory f;
    cl_init(&f);
    f.pause_in_made = 1;
    f.write_in_made = 4 << 20;
    int port;
    tw_listener *l = cl_listen(r, &f, NULL, &port);
    int c = tu_connect("127.0.0.1", port);
    ck_assert_int_ge(c, 0);
    spin_until(r, &f.built, 2000);
    ck_assert_ptr_nonnull(f.last);
    size_t unread = 256 << 10;
    unsigned char *junk = calloc(1, unread);
    ck_assert_int_eq(tu_write_all(c, junk, unread), 0);
    free(junk);
    tw_transport_lose_connection(f.last);
    /* The peer starts reading only once the server is waiting for it. */
    long long t0 = tu_now_ms();
    while (tu_now_ms() - t0 < 200)
        tw_reactor_iterate(r, 0.01);
    int end;
    size_t got = read_to_eof(r, c, 10000, &end);
    ck_assert_uint_eq(got, f.write_in_made);
    ck_assert_int_eq(end, 1); /* a FIN, not ECONNRESET */
    close(c);
    spin_until(r, &f.lost, 2000);
    ck_assert_int_eq(f.lost_code, TW_EDONE);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

/*
 * A protocol's own limit closes the connection while the peer's input is
 * unread: reactord's line and amp modules, fed @p requests whose answers
 * are @p expected, then @p violation, then 256 KiB the server will never
 * read, all before the client reads a byte. Every answer must arrive, then
 * a clean EOF.
 */
static void limit_close_delivers_all(const char *const *args, const void *requests, size_t rlen,
                                     const void *expected, size_t elen, const void *violation,
                                     size_t vlen)
{
    tu_reactord d;
    ck_assert_msg(tu_reactord_start(&d, args) == 0, "reactord did not start: %s", d.log);
    int c = tu_connect("127.0.0.1", d.port);
    ck_assert_int_ge(c, 0);
    ck_assert_int_eq(tu_write_all(c, requests, rlen), 0);
    ck_assert_int_eq(tu_write_all(c, violation, vlen), 0);
    size_t junk_len = 256 << 10;
    char *junk = malloc(junk_len);
    memset(junk, 'j', junk_len);
    tu_write_all(c, junk, junk_len); /* the server discards it, and then closes */
    free(junk);
    char *got = malloc(elen + 1);
    ck_assert_uint_eq(tu_read_exact(c, got, elen, 10000), elen);
    ck_assert_int_eq(memcmp(got, expected, elen), 0);
    ck_assert_int_eq(tu_wait_eof(c, 10000), 1); /* not -ECONNRESET */
    free(got);
    close(c);
    kill(d.pid, SIGTERM);
    ck_assert_int_ne(tu_wait_child(d.pid, 10000), -1);
    close(d.err_fd);
}

START_TEST(test_an_over_long_line_closes_without_losing_the_answers)
{
    const char *args[] = {"--protocol", "line", "--port", "0", "--interface", "127.0.0.1",
                          "-o", "max-length=1000", "-o", "delimiter=lf", NULL};
    size_t n = 2000, len = 0;
    char *lines = malloc(n * 16);
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(lines + len, "line %zu\n", i);
    char over[5000];
    memset(over, 'x', sizeof over);
    limit_close_delivers_all(args, lines, len, lines, len, over, sizeof over);
    free(lines);
}
END_TEST

START_TEST(test_an_amp_box_over_the_limit_closes_without_losing_the_answers)
{
    const char *args[] = {"--protocol", "amp", "--port", "0", "--interface", "127.0.0.1",
                          "-o", "max-box-size=4096", NULL};
    size_t n = 2000;
    unsigned char *req = malloc(n * sizeof SUM_REQUEST), *ans = malloc(n * sizeof SUM_ANSWER);
    for (size_t i = 0; i < n; i++) {
        memcpy(req + i * sizeof SUM_REQUEST, SUM_REQUEST, sizeof SUM_REQUEST);
        memcpy(ans + i * sizeof SUM_ANSWER, SUM_ANSWER, sizeof SUM_ANSWER);
    }
    /* A key with a 5,000-byte value: over the 4,096-byte box limit. */
    unsigned char big[2 + 1 + 2 + 5000];
    memcpy(big, "\x00\x01" "v\x13\x88", 5);
    memset(big + 5, 'v', 5000);
    limit_close_delivers_all(args, req, n * sizeof SUM_REQUEST, ans, n * sizeof SUM_ANSWER, big,
                             sizeof big);
    free(req);
    free(ans);
}
END_TEST

/* A request that cannot be decoded is answered UNKNOWN and the connection
 * closed: the answers before it, and the UNKNOWN, all arrive although the
 * requests pipelined after it are never read. */
START_TEST(test_an_amp_unknown_error_closes_without_losing_the_answers)
{
    const char *args[] = {"--protocol", "amp", "--port", "0", "--interface", "127.0.0.1", NULL};
    static const unsigned char bad_sum[] = {
        0x00, 0x04, '_', 'a', 's', 'k', 0x00, 0x01, '2',
        0x00, 0x08, '_', 'c', 'o', 'm', 'm', 'a', 'n', 'd', 0x00, 0x03, 'S', 'u', 'm',
        0x00, 0x01, 'a', 0x00, 0x01, 'x',
        0x00, 0x01, 'b', 0x00, 0x01, '1',
        0x00, 0x00,
    };
    static const unsigned char unknown[] = {
        0x00, 0x06, '_', 'e', 'r', 'r', 'o', 'r', 0x00, 0x01, '2',
        0x00, 0x0b, '_', 'e', 'r', 'r', 'o', 'r', '_', 'c', 'o', 'd', 'e',
        0x00, 0x07, 'U', 'N', 'K', 'N', 'O', 'W', 'N',
        0x00, 0x12, '_', 'e', 'r', 'r', 'o', 'r', '_', 'd', 'e', 's', 'c', 'r', 'i', 'p', 't',
        'i', 'o', 'n', 0x00, 0x0d, 'U', 'n', 'k', 'n', 'o', 'w', 'n', ' ', 'E', 'r', 'r', 'o', 'r',
        0x00, 0x00,
    };
    size_t n = 2000, pipelined = 10;
    unsigned char *req = malloc(n * sizeof SUM_REQUEST);
    unsigned char *ans = malloc(n * sizeof SUM_ANSWER + sizeof unknown);
    unsigned char *after = malloc(sizeof bad_sum + pipelined * sizeof SUM_REQUEST);
    for (size_t i = 0; i < n; i++) {
        memcpy(req + i * sizeof SUM_REQUEST, SUM_REQUEST, sizeof SUM_REQUEST);
        memcpy(ans + i * sizeof SUM_ANSWER, SUM_ANSWER, sizeof SUM_ANSWER);
    }
    memcpy(ans + n * sizeof SUM_ANSWER, unknown, sizeof unknown);
    memcpy(after, bad_sum, sizeof bad_sum);
    for (size_t i = 0; i < pipelined; i++)
        memcpy(after + sizeof bad_sum + i * sizeof SUM_REQUEST, SUM_REQUEST, sizeof SUM_REQUEST);
    limit_close_delivers_all(args, req, n * sizeof SUM_REQUEST, ans,
                             n * sizeof SUM_ANSWER + sizeof unknown, after,
                             sizeof bad_sum + pipelined * sizeof SUM_REQUEST);
    free(req);
    free(ans);
    free(after);
}
END_TEST

/*
 * The receivers' own limits, closing with large answers still queued: a
 * protocol built on the line receiver or on a length-prefixed receiver
 * answers each request with LIM_ANSWER bytes, far more than the peer's
 * socket buffers hold while it does not read. The peer sends LIM_REQUESTS
 * requests, then a message over the receiver's maximum, then bytes the
 * server will never parse, all before it reads a byte. The receiver's
 * default handler closes with the answers queued and that input unread; a
 * close() then would reset, and the kernel would drop what it had not sent.
 */
#define LIM_REQUESTS 4
#define LIM_ANSWER (1u << 20)
#define LIM_MAX_LENGTH 1000

typedef struct {
    tw_factory base;
    tw_framing framing;
    int line; /* the line receiver instead of a string receiver */
    int built, lost, lost_code, requests;
    size_t written;
} lim_factory;

typedef struct {
    tw_protocol base;
    lim_factory *f;
    tw_line_receiver lr;
    tw_string_receiver sr;
} lim_proto;

static void lim_answer(lim_proto *lp)
{
    lim_factory *f = lp->f;
    unsigned char *buf = malloc(LIM_ANSWER);
    ck_assert_ptr_nonnull(buf);
    fill_pattern(buf, f->written, LIM_ANSWER);
    ck_assert_int_eq(tw_transport_write(lp->base.transport, buf, LIM_ANSWER), 0);
    f->written += LIM_ANSWER;
    f->requests++;
    free(buf);
}

static void lim_line(tw_line_receiver *lr, const char *line, size_t len)
{
    (void)line;
    (void)len;
    lim_answer(tw_container_of(lr, lim_proto, lr));
}

static void lim_string(tw_string_receiver *sr, const void *data, size_t len)
{
    (void)data;
    (void)len;
    lim_answer(tw_container_of(sr, lim_proto, sr));
}

/* No limit handlers: the receivers' defaults close the connection. */
static const tw_line_receiver_ops lim_line_ops = {.line_received = lim_line};
static const tw_string_receiver_ops lim_string_ops = {.string_received = lim_string};

static void lim_data(tw_protocol *p, const void *data, size_t len)
{
    lim_proto *lp = tw_container_of(p, lim_proto, base);
    if (lp->f->line)
        tw_line_receiver_data_received(&lp->lr, data, len);
    else
        tw_string_receiver_data_received(&lp->sr, data, len);
}

static void lim_lost(tw_protocol *p, const tw_failure *reason)
{
    lim_proto *lp = tw_container_of(p, lim_proto, base);
    lp->f->lost++;
    lp->f->lost_code = tw_failure_code(reason);
}

static void lim_destroy(tw_protocol *p)
{
    lim_proto *lp = tw_container_of(p, lim_proto, base);
    if (lp->f->line)
        tw_line_receiver_cleanup(&lp->lr);
    else
        tw_string_receiver_cleanup(&lp->sr);
    free(lp);
}

static const tw_protocol_ops lim_ops = {
    .data_received = lim_data,
    .connection_lost = lim_lost,
    .destroy = lim_destroy,
};

static tw_protocol *lim_build(tw_factory *fb, const tw_address *addr)
{
    (void)addr;
    lim_factory *f = tw_container_of(fb, lim_factory, base);
    lim_proto *lp = calloc(1, sizeof *lp);
    ck_assert_ptr_nonnull(lp);
    lp->base.ops = &lim_ops;
    lp->f = f;
    if (f->line) {
        tw_line_receiver_init(&lp->lr, &lp->base, &lim_line_ops);
        ck_assert_int_eq(tw_line_receiver_set_delimiter(&lp->lr, "\n", 1), 0);
        tw_line_receiver_set_max_length(&lp->lr, LIM_MAX_LENGTH);
    } else {
        ck_assert_int_eq(tw_string_receiver_init(&lp->sr, &lp->base, f->framing, &lim_string_ops),
                         0);
        tw_string_receiver_set_max_length(&lp->sr, LIM_MAX_LENGTH);
    }
    f->built++;
    return &lp->base;
}

static const tw_factory_ops lim_factory_ops = {.build_protocol = lim_build};

/* Send @p len bytes without blocking the loop that must read them. */
static void send_turning(tw_reactor *r, int fd, const void *data, size_t len)
{
    const char *p = data;
    long long deadline = tu_now_ms() + 5000;
    while (len > 0 && tu_now_ms() < deadline) {
        ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else {
            ck_assert(n < 0 && (errno == EAGAIN || errno == EINTR));
            tw_reactor_iterate(r, 0.01);
        }
    }
    ck_assert_uint_eq(len, 0);
}

static void limit_close_keeps_queued_answers(lim_factory *f, const void *request, size_t rlen,
                                             const void *violation, size_t vlen)
{
    tw_reactor *r = tw_reactor_new();
    f->base.ops = &lim_factory_ops;
    int port;
    tw_listener *l;
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, "127.0.0.1", 0), 0);
    ck_assert_int_eq(tw_listen(r, &a, NULL, &f->base, &l), 0);
    tw_address bound;
    tw_listener_address(l, &bound);
    port = tw_address_port(&bound);
    int c = tu_connect("127.0.0.1", port);
    ck_assert_int_ge(c, 0);
    spin_until(r, &f->built, 2000);
    for (int i = 0; i < LIM_REQUESTS; i++)
        send_turning(r, c, request, rlen);
    send_turning(r, c, violation, vlen);
    /* Input the server will not parse: what it has not read when it
     * closes would make close() reset. */
    size_t junk_len = 256 << 10;
    char *junk = malloc(junk_len);
    memset(junk, 'j', junk_len);
    size_t sent = 0;
    long long t0 = tu_now_ms();
    while (sent < junk_len && tu_now_ms() - t0 < 1000) {
        ssize_t n = send(c, junk + sent, junk_len - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0)
            sent += (size_t)n;
        tw_reactor_iterate(r, 0.005);
    }
    free(junk);
    ck_assert_int_eq(f->requests, LIM_REQUESTS);
    /* The peer reads only once the server has closed on it. */
    t0 = tu_now_ms();
    while (tu_now_ms() - t0 < 200)
        tw_reactor_iterate(r, 0.01);
    int end;
    size_t got = read_to_eof(r, c, 20000, &end);
    ck_assert_uint_eq(got, (size_t)LIM_REQUESTS * LIM_ANSWER);
    ck_assert_int_eq(end, 1); /* a FIN, not ECONNRESET */
    close(c);
    spin_until(r, &f->lost, 2000);
    ck_assert_int_eq(f->lost, 1);
    tw_listener_close(l);
    tw_reactor_free(r);
}

START_TEST(test_an_over_long_line_closes_with_every_queued_answer_delivered)
{
    lim_factory f = {.line = 1};
    char over[5000];
    memset(over, 'x', sizeof over);
    limit_close_keeps_queued_answers(&f, "q\n", 2, over, sizeof over);
}
END_TEST

START_TEST(test_an_int32_string_over_its_maximum_closes_with_every_answer_delivered)
{
    lim_factory f = {.framing = TW_FRAMING_INT32};
    /* Announces 5,000 bytes against a maximum of 1,000, and sends them. */
    unsigned char over[4 + 5000];
    memcpy(over, "\x00\x00\x13\x88", 4);
    memset(over + 4, 's', 5000);
    limit_close_keeps_queued_answers(&f, "\x00\x00\x00\x01q", 5, over, sizeof over);
}
END_TEST

START_TEST(test_a_netstring_over_its_maximum_closes_with_every_answer_delivered)
{
    lim_factory f = {.framing = TW_FRAMING_NETSTRING};
    char over[5 + 5000 + 1];
    memcpy(over, "5000:", 5);
    memset(over + 5, 's', 5000);
    over[sizeof over - 1] = ',';
    limit_close_keeps_queued_answers(&f, "1:q,", 4, over, sizeof over);
}
END_TEST

/* A closing stream whose peer never closes gives up after the linger
 * timeout, and a graceful stop waits for it. */
START_TEST(test_linger_ends_at_the_timeout_and_stop_waits_for_it)
{
    tw_reactor *r = tw_reactor_new();
    tw_reactor_set_linger_timeout(r, 0.2);
    cl_factory f;
    cl_init(&f);
    f.reply_on_data = 10;
    f.lose_on_data = 1;
    int peer = cl_adopt(r, &f);
    ck_assert_int_eq(send(peer, "go", 2, 0), 2);
    spin_until(r, &f.lost, 2000);
    ck_assert_int_eq(f.lost_code, TW_EDONE);
    unsigned char buf[16];
    ck_assert_uint_eq(tu_read_exact(peer, buf, 10, 1000), 10);
    /* The FIN is out, the protocol is gone; the socket lingers. */
    struct pollfd pfd = {peer, POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, 1000), 1);
    ck_assert_int_eq(recv(peer, buf, 1, MSG_DONTWAIT), 0);
    ck_assert_int_eq(send(peer, "more", 4, MSG_NOSIGNAL), 4); /* read and dropped */
    long long t0 = tu_now_ms();
    tw_reactor_stop(r);
    ck_assert_int_eq(tw_reactor_run(r), 0);
    long long took = tu_now_ms() - t0;
    ck_assert_int_ge(took, 100); /* the stop waited for the linger */
    ck_assert_int_le(took, 5000);
    /* The linger ended with a plain close: our end sees EOF or EPIPE. */
    ck_assert_int_eq(tu_wait_eof(peer, 1000), 1);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

/* ------------------------------------------------------------ item 2 */

START_TEST(test_writes_after_lose_connection_are_sent)
{
    tw_reactor *r = tw_reactor_new();
    cl_factory f;
    cl_init(&f);
    int peer = cl_adopt(r, &f);
    tw_transport *t = f.last;
    ck_assert_int_eq(tw_transport_write(t, "one,", 4), 0);
    tw_transport_lose_connection(t);
    ck_assert_int_ne(tw_transport_disconnecting(t), 0);
    ck_assert_int_eq(tw_transport_write(t, "two", 3), 0);
    spin_until(r, &f.lost, 2000);
    ck_assert_int_eq(f.lost_code, TW_EDONE);
    char buf[16] = {0};
    ck_assert_uint_eq(tu_read_exact(peer, buf, 7, 1000), 7);
    ck_assert_str_eq(buf, "one,two");
    ck_assert_int_eq(tu_wait_eof(peer, 1000), 1);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

/* ------------------------------------------------------------ item 3 */

/* The peer sends its request and half-closes at once (nc -N); the reply,
 * 2 MB and mostly queued, must all arrive before the FIN. */
START_TEST(test_peer_half_close_still_gets_the_whole_reply)
{
    tw_reactor *r = tw_reactor_new();
    cl_factory f;
    cl_init(&f);
    f.reply_on_data = 2 << 20;
    int peer = cl_adopt(r, &f);
    ck_assert_int_eq(send(peer, "go", 2, 0), 2);
    ck_assert_int_eq(shutdown(peer, SHUT_WR), 0);
    /* Let the server see both the request and the EOF before we read. */
    long long t0 = tu_now_ms();
    while (tu_now_ms() - t0 < 200)
        tw_reactor_iterate(r, 0.01);
    int end;
    size_t got = read_to_eof(r, peer, 10000, &end);
    ck_assert_uint_eq(got, f.reply_on_data);
    ck_assert_int_eq(end, 1);
    spin_until(r, &f.lost, 2000);
    ck_assert_int_eq(f.lost_code, TW_EDONE);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

/* ------------------------------------------------------------ item 5 */

/* A stream that is not reading (paused by its protocol) still notices its
 * peer leave, by a reset or by a FIN, and closes. */
static void paused_peer_leaves(int reset)
{
    tw_reactor *r = tw_reactor_new();
    cl_factory f;
    cl_init(&f);
    f.pause_in_made = 1;
    int port;
    tw_listener *l = cl_listen(r, &f, NULL, &port);
    int c = tu_connect("127.0.0.1", port);
    ck_assert_int_ge(c, 0);
    spin_until(r, &f.built, 2000);
    ck_assert_int_eq(send(c, "requests", 8, 0), 8);
    spin_ms(r, 50);
    if (reset) {
        struct linger lg = {1, 0};
        ck_assert_int_eq(setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    }
    close(c);
    spin_until(r, &f.lost, 3000);
    ck_assert_int_eq(f.lost, 1);
    ck_assert_int_eq(f.lost_code, reset ? -ECONNRESET : TW_EDONE);
    tw_listener_close(l);
    tw_reactor_free(r);
}

START_TEST(test_paused_stream_notices_a_reset)
{
    paused_peer_leaves(1);
}
END_TEST

START_TEST(test_paused_stream_notices_a_fin)
{
    paused_peer_leaves(0);
}
END_TEST

/* ------------------------------------------------------------ item 8 */

/* Six peers each stall a 900 KB AMP box, under the 1 MiB box limit: past
 * the 2 MiB input budget the connections holding the most are closed with
 * a logged reason, and a well-behaved client is still answered. */
START_TEST(test_the_input_budget_closes_the_connections_holding_the_most)
{
    const char *args[] = {"--protocol", "amp", "--port", "0", "--interface", "127.0.0.1",
                          "--input-budget", "2097152", NULL};
    tu_reactord d;
    ck_assert_msg(tu_reactord_start(&d, args) == 0, "reactord did not start: %s", d.log);
    enum { PEERS = 6, ENTRIES = 14 };
    size_t entry = 2 + 2 + 2 + 65535;
    unsigned char *box = malloc(ENTRIES * entry), *at = box;
    for (int i = 0; i < ENTRIES; i++) {
        memcpy(at, "\x00\x02k", 3);
        at[3] = (unsigned char)('a' + i);
        at[4] = 0xff;
        at[5] = 0xff;
        memset(at + 6, 'v', 65535);
        at += entry;
    }
    int c[PEERS];
    for (int i = 0; i < PEERS; i++) {
        c[i] = tu_connect("127.0.0.1", d.port);
        ck_assert_int_ge(c[i], 0);
        tu_write_all(c[i], box, (size_t)(at - box)); /* never ended */
    }
    free(box);
    int closed = 0;
    for (int i = 0; i < PEERS; i++)
        closed += tu_wait_eof(c[i], 500) == 1;
    ck_assert_int_ge(closed, PEERS - 2);
    ck_assert_int_lt(closed, PEERS); /* only as many as the budget needs */
    long long deadline = tu_now_ms() + 5000;
    while (strstr(d.log, "input budget of 2097152 bytes exceeded") == NULL &&
           tu_now_ms() < deadline) {
        usleep(10000);
        tu_reactord_read_log(&d);
    }
    ck_assert_ptr_nonnull(strstr(d.log, "input budget of 2097152 bytes exceeded"));
    int ok = tu_connect("127.0.0.1", d.port);
    ck_assert_int_eq(tu_write_all(ok, SUM_REQUEST, sizeof SUM_REQUEST), 0);
    unsigned char answer[sizeof SUM_ANSWER];
    ck_assert_uint_eq(tu_read_exact(ok, answer, sizeof answer, 5000), sizeof answer);
    ck_assert_int_eq(memcmp(answer, SUM_ANSWER, sizeof answer), 0);
    close(ok);
    for (int i = 0; i < PEERS; i++)
        close(c[i]);
    kill(d.pid, SIGTERM);
    ck_assert_int_ne(tu_wait_child(d.pid, 10000), -1);
    close(d.err_fd);
}
END_TEST

/* ------------------------------------------------------------ item 6 */

/* The peer stopped reading: the idle close cannot flush, so it must give up
 * (abort) instead of holding the connection for ever. */
START_TEST(test_idle_timeout_aborts_a_peer_that_stopped_reading)
{
    tw_reactor *r = tw_reactor_new();
    cl_factory f;
    cl_init(&f);
    f.write_in_made = 8 << 20;
    tw_listen_options o;
    tw_listen_options_init(&o);
    o.idle_timeout = 0.2;
    int port;
    tw_listener *l = cl_listen(r, &f, &o, &port);
    int c = tu_connect("127.0.0.1", port);
    ck_assert_int_ge(c, 0);
    spin_until(r, &f.lost, 5000);
    ck_assert_int_eq(f.lost, 1);
    ck_assert_int_eq(f.lost_code, TW_EIDLE);
    /* An abort: the peer's unread output is dropped with a reset. */
    int end;
    read_to_eof(NULL, c, 2000, &end);
    ck_assert_int_eq(end, -ECONNRESET);
    close(c);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

/* ------------------------------------------------------------ graceful stop */

#define STOP_CLIENTS 10
#define STOP_BYTES (16u << 20)

typedef struct {
    int fd[STOP_CLIENTS];
    size_t sent[STOP_CLIENTS], got[STOP_CLIENTS];
    int end[STOP_CLIENTS]; /* 1 EOF, -errno, 0 unfinished */
    int corrupt[STOP_CLIENTS];
} stop_clients;

/* Each client sends all its bytes before it reads any (the echo server's
 * input stays unread, its output queued), then reads to the end. */
static void *stop_clients_run(void *arg)
{
    stop_clients *sc = arg;
    static unsigned char out[65536];
    unsigned char in[65536];
    long long deadline = tu_now_ms() + 60000;
    int open = STOP_CLIENTS;
    while (open > 0 && tu_now_ms() < deadline) {
        struct pollfd pfd[STOP_CLIENTS];
        for (int i = 0; i < STOP_CLIENTS; i++) {
            pfd[i].fd = sc->end[i] != 0 ? -1 : sc->fd[i];
            pfd[i].events = sc->sent[i] < STOP_BYTES ? POLLOUT : POLLIN;
            pfd[i].revents = 0;
        }
        if (poll(pfd, STOP_CLIENTS, 100) <= 0)
            continue;
        for (int i = 0; i < STOP_CLIENTS; i++) {
            if (pfd[i].revents == 0)
                continue;
            if (sc->sent[i] < STOP_BYTES) {
                size_t len = STOP_BYTES - sc->sent[i];
                if (len > sizeof out)
                    len = sizeof out;
                fill_pattern(out, sc->sent[i], len);
                ssize_t n = send(sc->fd[i], out, len, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n > 0) {
                    sc->sent[i] += (size_t)n;
                } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                    sc->end[i] = -errno;
                    open--;
                }
                continue;
            }
            ssize_t n = recv(sc->fd[i], in, sizeof in, MSG_DONTWAIT);
            if (n > 0) {
                if (!is_pattern(in, sc->got[i], (size_t)n))
                    sc->corrupt[i] = 1;
                sc->got[i] += (size_t)n;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                sc->end[i] = n == 0 ? 1 : -errno;
                open--;
            }
        }
    }
    return NULL;
}

typedef struct {
    tw_reactor *r;
    cl_factory *f;
    long long started;
    tw_call *call;
} stop_watch;

/* Stop once every connection has its output queued and its reading paused
 * (the clients are all still sending), or after 5 s whatever the state. */
static void stop_when_all_paused(void *arg)
{
    stop_watch *w = arg;
    tw_call_release(w->call);
    w->call = NULL;
    int paused = 0;
    for (int i = 0; i < w->f->built; i++)
        paused += w->f->paused[i];
    if (paused == STOP_CLIENTS || tu_now_ms() - w->started > 5000) {
        tw_reactor_stop(w->r);
        return;
    }
    ck_assert_int_eq(tw_reactor_call_later(w->r, 0.01, stop_when_all_paused, w, &w->call), 0);
}

START_TEST(test_graceful_stop_drains_clients_that_have_not_read)
{
    tw_reactor *r = tw_reactor_new();
    tw_reactor_set_shutdown_timeout(r, 20);
    cl_factory f;
    cl_init(&f);
    f.echo = 1;
    int port;
    tw_listener *l = cl_listen(r, &f, NULL, &port);
    stop_clients sc;
    memset(&sc, 0, sizeof sc);
    for (int i = 0; i < STOP_CLIENTS; i++) {
        sc.fd[i] = tu_connect("127.0.0.1", port);
        ck_assert_int_ge(sc.fd[i], 0);
    }
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, stop_clients_run, &sc), 0);
    stop_watch w = {r, &f, tu_now_ms(), NULL};
    ck_assert_int_eq(tw_reactor_call_later(r, 0.01, stop_when_all_paused, &w, &w.call), 0);
    ck_assert_int_eq(tw_reactor_run(r), 0);
    long long drained = tu_now_ms() - w.started;
    pthread_join(th, NULL);

    ck_assert_int_eq(f.built, STOP_CLIENTS);
    ck_assert_int_eq(f.lost, STOP_CLIENTS);
    ck_assert_int_eq(f.lost_code, TW_EDONE);
    size_t got = 0, written = 0;
    for (int i = 0; i < STOP_CLIENTS; i++) {
        ck_assert_uint_eq(sc.sent[i], STOP_BYTES);
        ck_assert_int_eq(sc.end[i], 1); /* EOF, never ECONNRESET */
        ck_assert_int_eq(sc.corrupt[i], 0);
        got += sc.got[i];
        written += f.written[i];
        close(sc.fd[i]);
    }
    /* Every byte the server echoed arrived. */
    ck_assert_uint_eq(got, written);
    ck_assert_uint_gt(written, 0);
    ck_assert_int_lt(drained, 20000); /* within the shutdown timeout */
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

static Suite *closing_suite(void)
{
    Suite *s = suite_create("closing");
    TCase *tc = tcase_create("orderly");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_lose_with_unread_input_delivers_all_and_no_reset);
    tcase_add_test(tc, test_an_over_long_line_closes_without_losing_the_answers);
    tcase_add_test(tc, test_an_amp_box_over_the_limit_closes_without_losing_the_answers);
    tcase_add_test(tc, test_an_amp_unknown_error_closes_without_losing_the_answers);
    tcase_add_test(tc, test_an_over_long_line_closes_with_every_queued_answer_delivered);
    tcase_add_test(tc, test_an_int32_string_over_its_maximum_closes_with_every_answer_delivered);
    tcase_add_test(tc, test_a_netstring_over_its_maximum_closes_with_every_answer_delivered);
    tcase_add_test(tc, test_linger_ends_at_the_timeout_and_stop_waits_for_it);
    tcase_add_test(tc, test_writes_after_lose_connection_are_sent);
    tcase_add_test(tc, test_peer_half_close_still_gets_the_whole_reply);
    tcase_add_test(tc, test_graceful_stop_drains_clients_that_have_not_read);
    suite_add_tcase(s, tc);
    tc = tcase_create("hostile");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_paused_stream_notices_a_reset);
    tcase_add_test(tc, test_paused_stream_notices_a_fin);
    tcase_add_test(tc, test_idle_timeout_aborts_a_peer_that_stopped_reading);
    tcase_add_test(tc, test_the_input_budget_closes_the_connections_holding_the_most);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(closing_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
