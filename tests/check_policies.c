/* SPDX-License-Identifier: MIT */
/*
 * Connection policies (twine/policies.h): the resettable timeout fires,
 * resets on activity, closes (and aborts a close that cannot flush), for
 * servers and clients; the throttle holds each direction to its rate, per
 * connection and per listener, measured over a second or so; the per-peer
 * limit refuses the next connection from a full address while another
 * address gets in; the traffic log shows the bytes, and only when asked;
 * and reactord's options for all of them, with one sentence and exit 64
 * for a bad value.
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <twine.h>

#include "core/fd_internal.h"
#include "testutil.h"

#define MAX_CONNS 8
#define CHUNK (16 * 1024)

/* The test's protocol, told what to do by its factory. */
typedef struct {
    tw_factory base;
    double timeout;       /* set in connection_made; 0: none */
    int reset_on_data;    /* tw_timeout_reset() on each data_received */
    int custom_handler;   /* count timeouts instead of closing */
    int echo;             /* write back what arrives */
    int produce;          /* write CHUNKs while not paused */
    size_t write_in_made; /* bytes written by connection_made */
    int built, made, lost, lost_code, timeouts;
    size_t received[MAX_CONNS];
    size_t produced;
} pt_factory;

typedef struct {
    tw_protocol base;
    pt_factory *f;
    int idx;
    int paused, producing;
    tw_timeout timeout;
} pt_proto;

static void pt_produce(pt_proto *p)
{
    static unsigned char chunk[CHUNK];
    if (p->producing)
        return; /* resumed from inside our own write */
    p->producing = 1;
    while (!p->paused && !tw_transport_disconnecting(p->base.transport)) {
        ck_assert_int_eq(tw_transport_write(p->base.transport, chunk, sizeof chunk), 0);
        p->f->produced += sizeof chunk;
    }
    p->producing = 0;
}

static void pt_timed_out(tw_timeout *t)
{
    pt_proto *p = tw_container_of(t, pt_proto, timeout);
    p->f->timeouts++;
}

static void pt_made(tw_protocol *bp)
{
    pt_proto *p = tw_container_of(bp, pt_proto, base);
    pt_factory *f = p->f;
    f->made++;
    tw_timeout_init(&p->timeout, bp, f->custom_handler ? pt_timed_out : NULL);
    if (f->timeout > 0)
        ck_assert_int_eq(tw_timeout_set(&p->timeout, f->timeout), 0);
    if (f->write_in_made > 0) {
        unsigned char *buf = calloc(1, f->write_in_made);
        ck_assert_int_eq(tw_transport_write(bp->transport, buf, f->write_in_made), 0);
        free(buf);
    }
    if (f->produce)
        pt_produce(p);
}

static void pt_data(tw_protocol *bp, const void *data, size_t len)
{
    pt_proto *p = tw_container_of(bp, pt_proto, base);
    p->f->received[p->idx] += len;
    if (p->f->reset_on_data)
        tw_timeout_reset(&p->timeout);
    if (p->f->echo)
        ck_assert_int_eq(tw_transport_write(bp->transport, data, len), 0);
}

static void pt_lost(tw_protocol *bp, const tw_failure *reason)
{
    pt_proto *p = tw_container_of(bp, pt_proto, base);
    tw_timeout_cleanup(&p->timeout);
    p->f->lost++;
    p->f->lost_code = tw_failure_code(reason);
}

static void pt_pause(tw_protocol *bp)
{
    tw_container_of(bp, pt_proto, base)->paused = 1;
}

static void pt_resume(tw_protocol *bp)
{
    pt_proto *p = tw_container_of(bp, pt_proto, base);
    p->paused = 0;
    if (p->f->produce)
        pt_produce(p);
}

static void pt_destroy(tw_protocol *bp)
{
    free(tw_container_of(bp, pt_proto, base));
}

static const tw_protocol_ops pt_ops = {
    .connection_made = pt_made,
    .data_received = pt_data,
    .connection_lost = pt_lost,
    .pause_producing = pt_pause,
    .resume_producing = pt_resume,
    .destroy = pt_destroy,
};

static tw_protocol *pt_build(tw_factory *fb, const tw_address *addr)
{
    (void)addr;
    pt_factory *f = tw_container_of(fb, pt_factory, base);
    ck_assert_int_lt(f->built, MAX_CONNS);
    pt_proto *p = calloc(1, sizeof *p);
    p->base.ops = &pt_ops;
    p->f = f;
    p->idx = f->built++;
    return &p->base;
}

static const tw_factory_ops pt_factory_ops = {.build_protocol = pt_build};

static void pt_init(pt_factory *f)
{
    memset(f, 0, sizeof *f);
    tw_factory_init(&f->base, &pt_factory_ops);
}

static tw_listener *listen_on(tw_reactor *r, tw_factory *f, int *port)
{
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, "127.0.0.1", 0), 0);
    tw_listener *l;
    ck_assert_int_eq(tw_listen(r, &a, NULL, f, &l), 0);
    tw_address bound;
    tw_listener_address(l, &bound);
    *port = tw_address_port(&bound);
    return l;
}

static int adopt(tw_reactor *r, tw_factory *f)
{
    int sv[2];
    ck_assert_int_eq(tw__socketpair(AF_UNIX, SOCK_STREAM, 0, sv, O_CLOEXEC), 0);
    ck_assert_int_eq(tw_transport_adopt(r, sv[0], f), 0);
    return sv[1];
}

static void spin_ms(tw_reactor *r, int ms)
{
    long long end = tu_now_ms() + ms;
    while (tu_now_ms() < end)
        tw_reactor_iterate(r, 0.005);
}

static void spin_until(tw_reactor *r, const int *flag, int want, int ms)
{
    long long end = tu_now_ms() + ms;
    while (*flag < want && tu_now_ms() < end)
        tw_reactor_iterate(r, 0.005);
}

/* A TCP connection to 127.0.0.1:@p port from the address @p from. */
static int connect_from(const char *from, int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in src = {.sin_family = AF_INET};
    ck_assert_int_eq(inet_pton(AF_INET, from, &src.sin_addr), 1);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&src, sizeof src), 0);
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&dst, sizeof dst), 0);
    return fd;
}

/* ------------------------------------------------------------ timeouts */

START_TEST(test_timeout_closes_a_silent_connection)
{
    tw_reactor *r = tw_reactor_new();
    pt_factory f;
    pt_init(&f);
    f.timeout = 0.1;
    long long t0 = tu_now_ms();
    int peer = adopt(r, &f.base);
    spin_until(r, &f.lost, 1, 3000);
    long long took = tu_now_ms() - t0;
    ck_assert_int_eq(f.lost, 1);
    ck_assert_int_eq(f.lost_code, TW_EDONE); /* an orderly close */
    ck_assert_int_ge(took, 90);
    ck_assert_int_eq(tu_wait_eof(peer, 1000), 1);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_timeout_reset_on_activity_keeps_the_connection)
{
    tw_reactor *r = tw_reactor_new();
    pt_factory f;
    pt_init(&f);
    f.timeout = 0.2;
    f.reset_on_data = 1;
    int peer = adopt(r, &f.base);
    /* Six times the timeout, with a byte every 50 ms. */
    long long last = 0;
    for (int i = 0; i < 24; i++) {
        last = tu_now_ms();
        ck_assert_int_eq(send(peer, "x", 1, 0), 1);
        spin_ms(r, 50);
    }
    ck_assert_int_eq(f.lost, 0);
    ck_assert_uint_eq(f.received[0], 24);
    /* Silence: it closes one period after the last byte was read, which
     * was no earlier than it was sent. */
    spin_until(r, &f.lost, 1, 3000);
    ck_assert_int_eq(f.lost, 1);
    ck_assert_int_ge(tu_now_ms() - last, 180);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_timeout_calls_a_custom_handler_once)
{
    tw_reactor *r = tw_reactor_new();
    pt_factory f;
    pt_init(&f);
    f.timeout = 0.05;
    f.custom_handler = 1;
    int peer = adopt(r, &f.base);
    spin_ms(r, 300);
    ck_assert_int_eq(f.timeouts, 1); /* once, then unset */
    ck_assert_int_eq(f.lost, 0);     /* the handler did not close */
    close(peer);
    spin_until(r, &f.lost, 1, 2000);
    ck_assert_int_eq(f.timeouts, 1);
    tw_reactor_free(r);
}
END_TEST

/* A protocol that sets and unsets its timeout at once. */
static void unset_made(tw_protocol *bp)
{
    pt_proto *p = tw_container_of(bp, pt_proto, base);
    tw_timeout_init(&p->timeout, bp, pt_timed_out);
    ck_assert_int_eq(tw_timeout_set(&p->timeout, 0.05), 0);
    ck_assert(tw_timeout_period(&p->timeout) == 0.05);
    ck_assert_int_eq(tw_timeout_set(&p->timeout, 0), 0);
    ck_assert(tw_timeout_period(&p->timeout) == 0);
    ck_assert_int_eq(tw_timeout_set(&p->timeout, -1), -EINVAL);
}

static const tw_protocol_ops unset_ops = {
    .connection_made = unset_made,
    .data_received = pt_data,
    .connection_lost = pt_lost,
    .destroy = pt_destroy,
};

static tw_protocol *unset_build(tw_factory *fb, const tw_address *addr)
{
    tw_protocol *p = pt_build(fb, addr);
    p->ops = &unset_ops;
    return p;
}

START_TEST(test_timeout_unset_never_fires)
{
    tw_reactor *r = tw_reactor_new();
    pt_factory f;
    pt_init(&f);
    static const tw_factory_ops ops = {.build_protocol = unset_build};
    f.base.ops = &ops;
    int peer = adopt(r, &f.base);
    spin_ms(r, 250);
    ck_assert_int_eq(f.timeouts, 0);
    ck_assert_int_eq(f.lost, 0);
    close(peer);
    spin_until(r, &f.lost, 1, 2000);
    tw_reactor_free(r);
}
END_TEST

/* The default close waits for the queue to flush; a peer that never reads
 * gets one more period, then an abort. */
START_TEST(test_timeout_aborts_a_close_that_cannot_flush)
{
    tw_reactor *r = tw_reactor_new();
    pt_factory f;
    pt_init(&f);
    f.timeout = 0.15;
    f.write_in_made = 8 << 20;
    long long t0 = tu_now_ms(); /* the timeout is set inside adopt(), by connection_made */
    int peer = adopt(r, &f.base);
    spin_until(r, &f.lost, 1, 5000);
    ck_assert_int_eq(f.lost, 1);
    ck_assert_int_eq(f.lost_code, TW_EABORTED);
    ck_assert_int_ge(tu_now_ms() - t0, 250); /* two periods */
    close(peer);
    tw_reactor_free(r);
}
END_TEST

/* A client's protocol uses it just the same. */
START_TEST(test_timeout_closes_a_silent_client_connection)
{
    tw_reactor *r = tw_reactor_new();
    int srv = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ck_assert_int_eq(bind(srv, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(srv, 4), 0);
    socklen_t alen = sizeof a;
    getsockname(srv, (struct sockaddr *)&a, &alen);
    pt_factory f;
    pt_init(&f);
    f.timeout = 0.1;
    tw_deferred *d = tw_connect_tcp(r, "127.0.0.1", ntohs(a.sin_port), NULL, &f.base);
    ck_assert_ptr_nonnull(d);
    tw_deferred_unref(d);
    spin_until(r, &f.made, 1, 3000);
    ck_assert_int_eq(f.made, 1);
    int c = accept(srv, NULL, NULL);
    ck_assert_int_ge(c, 0);
    spin_until(r, &f.lost, 1, 3000);
    ck_assert_int_eq(f.lost, 1);
    ck_assert_int_eq(f.lost_code, TW_EDONE);
    ck_assert_int_eq(tu_wait_eof(c, 1000), 1);
    close(c);
    close(srv);
    tw_reactor_free(r);
}
END_TEST

/* ------------------------------------------------------------ the throttle */

#define RATE 200000.0

static tw_factory *policy(tw_reactor *r, pt_factory *f, const tw_policy_options *o)
{
    tw_factory *pf;
    ck_assert_int_eq(tw_policy_factory_new(r, &f->base, o, &pf), 0);
    return pf;
}

/* Send from every client in @p fds as fast as the server takes it, for
 * @p ms; the server's protocol counts what it was given. */
static void flood(tw_reactor *r, const int *fds, int n, int ms)
{
    static char junk[64 * 1024];
    long long end = tu_now_ms() + ms;
    while (tu_now_ms() < end) {
        for (int i = 0; i < n; i++)
            (void)send(fds[i], junk, sizeof junk, MSG_DONTWAIT | MSG_NOSIGNAL);
        tw_reactor_iterate(r, 0.002);
    }
}

static size_t sum(const size_t *v, int n)
{
    size_t s = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    return s;
}

/* Within [0.6, 1.5] of the rate times the time: the bucket's tenth of a
 * second and one 64 KiB read may pass beyond it, and a loaded machine may
 * run the loop late. */
static void assert_rate(size_t bytes, double seconds, int reads)
{
    double want = RATE * seconds;
    ck_assert_msg(bytes >= 0.6 * want && bytes <= want + 0.1 * RATE + reads * 65536.0 + 0.1 * want,
                  "%zu bytes in %.1f s at %.0f B/s", bytes, seconds, RATE);
}

START_TEST(test_throttle_bounds_the_read_rate_of_a_connection)
{
    tw_reactor *r = tw_reactor_new();
    pt_factory f;
    pt_init(&f);
    tw_policy_options o;
    tw_policy_options_init(&o);
    o.connection_read_limit = RATE;
    tw_factory *pf = policy(r, &f, &o);
    int port;
    tw_listener *l = listen_on(r, pf, &port);
    int c = tu_connect("127.0.0.1", port);
    spin_until(r, &f.made, 1, 2000);
    flood(r, &c, 1, 1500);
    assert_rate(f.received[0], 1.5, 1);
    close(c);
    spin_until(r, &f.lost, 1, 2000);
    tw_listener_close(l);
    tw_reactor_free(r);
    tw_factory_free(pf);
}
END_TEST

START_TEST(test_throttle_bounds_the_read_rate_of_a_whole_listener)
{
    tw_reactor *r = tw_reactor_new();
    pt_factory f;
    pt_init(&f);
    tw_policy_options o;
    tw_policy_options_init(&o);
    o.read_limit = RATE;
    tw_factory *pf = policy(r, &f, &o);
    int port;
    tw_listener *l = listen_on(r, pf, &port);
    int c[3];
    for (int i = 0; i < 3; i++)
        c[i] = tu_connect("127.0.0.1", port);
    spin_until(r, &f.made, 3, 2000);
    flood(r, c, 3, 1500);
    assert_rate(sum(f.received, 3), 1.5, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_uint_gt(f.received[i], 0); /* each was read */
        close(c[i]);
    }
    spin_until(r, &f.lost, 3, 2000);
    tw_listener_close(l);
    tw_reactor_free(r);
    tw_factory_free(pf);
}
END_TEST

/* Read everything @p n clients are sent, for @p ms. @return bytes. */
static size_t drain(tw_reactor *r, const int *fds, int n, int ms)
{
    static char buf[64 * 1024];
    size_t got = 0;
    long long end = tu_now_ms() + ms;
    while (tu_now_ms() < end) {
        for (int i = 0; i < n; i++) {
            ssize_t k;
            while ((k = recv(fds[i], buf, sizeof buf, MSG_DONTWAIT)) > 0)
                got += (size_t)k;
        }
        tw_reactor_iterate(r, 0.002);
    }
    return got;
}

static void write_rate(int per_connection, int n)
{
    tw_reactor *r = tw_reactor_new();
    pt_factory f;
    pt_init(&f);
    f.produce = 1;
    tw_policy_options o;
    tw_policy_options_init(&o);
    if (per_connection)
        o.connection_write_limit = RATE;
    else
        o.write_limit = RATE;
    tw_factory *pf = policy(r, &f, &o);
    int port;
    tw_listener *l = listen_on(r, pf, &port);
    int c[MAX_CONNS];
    for (int i = 0; i < n; i++)
        c[i] = tu_connect("127.0.0.1", port);
    spin_until(r, &f.made, n, 2000);
    size_t got = drain(r, c, n, 1500);
    /* What reached the clients, and what the producers wrote, which is
     * at most one CHUNK a writer more. */
    assert_rate(got, 1.5, 0);
    ck_assert_uint_le(f.produced, got + (size_t)n * 2 * CHUNK + 64 * 1024);
    for (int i = 0; i < n; i++)
        close(c[i]);
    spin_until(r, &f.lost, n, 2000);
    tw_listener_close(l);
    tw_reactor_free(r);
    tw_factory_free(pf);
}

START_TEST(test_throttle_bounds_the_write_rate_of_a_connection)
{
    write_rate(1, 1);
}
END_TEST

START_TEST(test_throttle_bounds_the_write_rate_of_a_whole_listener)
{
    write_rate(0, 3);
}
END_TEST

START_TEST(test_policy_factory_refuses_bad_limits)
{
    tw_reactor *r = tw_reactor_new();
    pt_factory f;
    pt_init(&f);
    tw_policy_options o;
    tw_policy_options_init(&o);
    o.read_limit = -1;
    tw_factory *pf = NULL;
    ck_assert_int_eq(tw_policy_factory_new(r, &f.base, &o, &pf), -EINVAL);
    o.read_limit = 0;
    o.connection_write_limit = 1.0 / 0.0;
    ck_assert_int_eq(tw_policy_factory_new(r, &f.base, &o, &pf), -EINVAL);
    ck_assert_ptr_null(pf);
    tw_reactor_free(r);
}
END_TEST

static void keep_protocol(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    if (!tw_result_is_failure(res))
        *(tw_protocol **)arg = tw_result_value(res);
}

/* A client connection through a policy factory: the protocol the connect
 * gives is the policy's, tw_policy_unwrap() finds the wrapped one, whose
 * writes reach the server through the wrapper and whose factory is the
 * wrapped factory; and the wrapped protocol's timeout still closes it. */
START_TEST(test_policy_factory_wraps_a_client_connection)
{
    tw_reactor *r = tw_reactor_new();
    int srv = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    ck_assert_int_eq(bind(srv, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(srv, 4), 0);
    socklen_t alen = sizeof a;
    getsockname(srv, (struct sockaddr *)&a, &alen);
    pt_factory f;
    pt_init(&f);
    f.timeout = 0.3;
    tw_policy_options o;
    tw_policy_options_init(&o);
    o.connection_write_limit = RATE;
    tw_factory *pf = policy(r, &f, &o);
    tw_protocol *got = NULL;
    tw_deferred *d = tw_connect_tcp(r, "127.0.0.1", ntohs(a.sin_port), NULL, pf);
    ck_assert_int_eq(tw_deferred_add_callback(d, keep_protocol, &got), 0);
    tw_deferred_unref(d);
    long long end = tu_now_ms() + 3000;
    while (got == NULL && tu_now_ms() < end)
        tw_reactor_iterate(r, 0.005);
    ck_assert_ptr_nonnull(got);
    tw_protocol *inner = tw_policy_unwrap(got);
    ck_assert_ptr_ne(inner, got);
    ck_assert_ptr_eq(inner->ops, &pt_ops);
    ck_assert_ptr_eq(inner->factory, &f.base);
    ck_assert_ptr_eq(tw_policy_unwrap(inner), inner);
    int c = accept(srv, NULL, NULL);
    ck_assert_int_ge(c, 0);
    ck_assert_int_eq(tw_transport_write(inner->transport, "abc", 3), 0);
    char buf[3];
    ck_assert_uint_eq(tu_read_exact(c, buf, 3, 2000), 3);
    ck_assert_int_eq(memcmp(buf, "abc", 3), 0);
    spin_until(r, &f.lost, 1, 3000);
    ck_assert_int_eq(f.lost_code, TW_EDONE);
    ck_assert_int_eq(tu_wait_eof(c, 1000), 1);
    close(c);
    close(srv);
    tw_reactor_free(r);
    tw_factory_free(pf);
}
END_TEST

/* ------------------------------------------------------------ per-peer limit */

START_TEST(test_per_peer_limit_refuses_the_next_from_one_address_only)
{
    tw_reactor *r = tw_reactor_new();
    pt_factory f;
    pt_init(&f);
    f.echo = 1;
    tw_policy_options o;
    tw_policy_options_init(&o);
    o.max_per_peer = 2;
    tw_factory *pf = policy(r, &f, &o);
    int port;
    tw_listener *l = listen_on(r, pf, &port);
    int a1 = connect_from("127.0.0.1", port), a2 = connect_from("127.0.0.1", port);
    spin_until(r, &f.made, 2, 2000);
    int a3 = connect_from("127.0.0.1", port);
    spin_ms(r, 100);
    ck_assert_int_eq(f.built, 2); /* the wrapped factory never saw the third */
    ck_assert_int_eq(tu_wait_eof(a3, 1000), 1);
    int b1 = connect_from("127.0.0.2", port);
    spin_until(r, &f.made, 3, 2000);
    ck_assert_int_eq(f.made, 3);
    ck_assert_int_eq(send(b1, "hi", 2, 0), 2);
    char buf[2];
    size_t got = 0;
    long long end = tu_now_ms() + 2000;
    while (got < 2 && tu_now_ms() < end) {
        tw_reactor_iterate(r, 0.005);
        ssize_t k = recv(b1, buf + got, 2 - got, MSG_DONTWAIT);
        if (k > 0)
            got += (size_t)k;
    }
    ck_assert_uint_eq(got, 2);
    /* One of the first two leaves: its address may connect again. */
    close(a1);
    spin_until(r, &f.lost, 1, 2000);
    int a4 = connect_from("127.0.0.1", port);
    spin_until(r, &f.made, 4, 2000);
    ck_assert_int_eq(f.made, 4);
    close(a2);
    close(a3);
    close(a4);
    close(b1);
    spin_until(r, &f.lost, 4, 2000);
    tw_listener_close(l);
    tw_reactor_free(r);
    tw_factory_free(pf);
}
END_TEST

/* ------------------------------------------------------------ traffic log */

static char logged[16384];
static size_t logged_len;

static void capture(tw_log_level level, const char *subsystem, const char *message, void *arg)
{
    (void)level;
    (void)arg;
    int n = snprintf(logged + logged_len, sizeof logged - logged_len, "%s: %s\n", subsystem,
                     message);
    if (n > 0 && (size_t)n < sizeof logged - logged_len)
        logged_len += (size_t)n;
}

static void echo_logged(int log_traffic)
{
    logged_len = 0;
    logged[0] = '\0';
    tw_log_set_handler(capture, NULL);
    tw_log_set_level(TW_LOG_DEBUG);
    tw_reactor *r = tw_reactor_new();
    pt_factory f;
    pt_init(&f);
    f.echo = 1;
    tw_policy_options o;
    tw_policy_options_init(&o);
    o.log_traffic = log_traffic;
    tw_factory *pf = policy(r, &f, &o);
    int peer = adopt(r, pf);
    ck_assert_int_eq(send(peer, "hello\x01", 6, 0), 6);
    char buf[6];
    size_t got = 0;
    long long end = tu_now_ms() + 2000;
    while (got < 6 && tu_now_ms() < end) {
        tw_reactor_iterate(r, 0.005);
        ssize_t k = recv(peer, buf + got, 6 - got, MSG_DONTWAIT);
        if (k > 0)
            got += (size_t)k;
    }
    ck_assert_uint_eq(got, 6);
    close(peer);
    spin_until(r, &f.lost, 1, 2000);
    tw_reactor_free(r);
    tw_factory_free(pf);
    tw_log_set_level(TW_LOG_INFO);
    tw_log_set_handler(NULL, NULL);
}

START_TEST(test_traffic_log_shows_the_bytes_both_ways)
{
    echo_logged(1);
    ck_assert_msg(strstr(logged, "traffic: connection 1: received 6 bytes") != NULL, "%s", logged);
    ck_assert_msg(strstr(logged, "traffic: connection 1 < 00000000  68 65 6c 6c 6f 01 ") != NULL,
                  "%s", logged);
    ck_assert_msg(strstr(logged, "|hello.|") != NULL, "%s", logged);
    ck_assert_msg(strstr(logged, "traffic: connection 1 > 00000000  68 65 6c 6c 6f 01 ") != NULL,
                  "%s", logged);
    ck_assert_msg(strstr(logged, "traffic: connection 1: lost") != NULL, "%s", logged);
}
END_TEST

START_TEST(test_traffic_log_is_off_unless_asked)
{
    echo_logged(0);
    ck_assert_msg(strstr(logged, "traffic") == NULL, "%s", logged);
}
END_TEST

/* ------------------------------------------------------------ reactord */

START_TEST(test_reactord_max_per_peer_refuses_the_next_connection)
{
    const char *args[] = {"--protocol", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--max-per-peer", "1", NULL};
    tu_reactord d;
    ck_assert_msg(tu_reactord_start(&d, args) == 0, "reactord did not start: %s", d.log);
    int a = tu_connect("127.0.0.1", d.port);
    ck_assert_int_ge(a, 0);
    ck_assert_int_eq(tu_write_all(a, "one", 3), 0);
    char buf[3];
    ck_assert_uint_eq(tu_read_exact(a, buf, 3, 5000), 3);
    int b = tu_connect("127.0.0.1", d.port);
    ck_assert_int_ge(b, 0);
    ck_assert_int_eq(tu_wait_eof(b, 5000), 1); /* refused */
    int c = connect_from("127.0.0.2", d.port);
    ck_assert_int_eq(tu_write_all(c, "two", 3), 0);
    ck_assert_uint_eq(tu_read_exact(c, buf, 3, 5000), 3);
    ck_assert_int_eq(memcmp(buf, "two", 3), 0);
    close(a);
    close(b);
    close(c);
    kill(d.pid, SIGTERM);
    ck_assert_int_ne(tu_wait_child(d.pid, 10000), -1);
    tu_reactord_read_log(&d);
    ck_assert_msg(strstr(d.log, "refusing a connection from 127.0.0.1") != NULL, "%s", d.log);
    close(d.err_fd);
}
END_TEST

START_TEST(test_reactord_log_traffic_shows_the_bytes)
{
    const char *args[] = {"--protocol",    "echo", "--port",      "0",     "--interface",
                          "127.0.0.1",     "--log-traffic", "--log-level", "debug", NULL};
    tu_reactord d;
    ck_assert_msg(tu_reactord_start(&d, args) == 0, "reactord did not start: %s", d.log);
    int a = tu_connect("127.0.0.1", d.port);
    ck_assert_int_eq(tu_write_all(a, "ping", 4), 0);
    char buf[4];
    ck_assert_uint_eq(tu_read_exact(a, buf, 4, 5000), 4);
    close(a);
    kill(d.pid, SIGTERM);
    ck_assert_int_ne(tu_wait_child(d.pid, 10000), -1);
    tu_reactord_read_log(&d);
    ck_assert_msg(strstr(d.log, "connection 1 < 00000000  70 69 6e 67 ") != NULL, "%s", d.log);
    ck_assert_msg(strstr(d.log, "connection 1 > 00000000  70 69 6e 67 ") != NULL, "%s", d.log);
    ck_assert_msg(strstr(d.log, "|ping|") != NULL, "%s", d.log);
    close(d.err_fd);
}
END_TEST

/* Echo throttled to 100 kB/s each way, per connection and in total: 300 kB
 * take about three seconds to come back. */
START_TEST(test_reactord_throttle_slows_an_echo)
{
    const char *args[] = {"--protocol", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--throttle-in", "100000", "--throttle-out", "100000",
                          "--throttle-total-in", "1000000", "--throttle-total-out", "1000000",
                          NULL};
    tu_reactord d;
    ck_assert_msg(tu_reactord_start(&d, args) == 0, "reactord did not start: %s", d.log);
    int a = tu_connect("127.0.0.1", d.port);
    size_t big = 300000;
    char *data = calloc(1, big), *back = malloc(big);
    long long t0 = tu_now_ms();
    pid_t writer = fork();
    ck_assert_int_ge(writer, 0);
    if (writer == 0)
        _exit(tu_write_all(a, data, big) == 0 ? 0 : 1);
    ck_assert_uint_eq(tu_read_exact(a, back, big, 20000), big);
    long long took = tu_now_ms() - t0;
    ck_assert_int_ne(tu_wait_child(writer, 5000), -1);
    ck_assert_msg(took >= 2000 && took <= 6000, "300 kB echoed in %lld ms", took);
    free(data);
    free(back);
    close(a);
    kill(d.pid, SIGTERM);
    ck_assert_int_ne(tu_wait_child(d.pid, 10000), -1);
    close(d.err_fd);
}
END_TEST

static void bad_option(const char *flag, const char *value, const char *sentence)
{
    const char *args[] = {"--protocol", "echo", "--port", "0", flag, value, NULL};
    char err[4096];
    int status = tu_run_reactord(args, err, sizeof err, 10000);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 64, "%s: %s", flag,
                  err);
    ck_assert_msg(strstr(err, sentence) != NULL, "%s", err);
}

START_TEST(test_reactord_refuses_bad_policy_values)
{
    bad_option("--throttle-in", "fast", "--throttle-in needs a whole number");
    bad_option("--throttle-out", "0", "--throttle-out needs a whole number");
    bad_option("--throttle-total-in", "-5", "--throttle-total-in needs a whole number");
    bad_option("--throttle-total-out", "1e3", "--throttle-total-out needs a whole number");
    bad_option("--max-per-peer", "many", "--max-per-peer needs a whole number");
}
END_TEST

static Suite *policies_suite(void)
{
    Suite *s = suite_create("policies");
    TCase *tc = tcase_create("timeout");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_timeout_closes_a_silent_connection);
    tcase_add_test(tc, test_timeout_reset_on_activity_keeps_the_connection);
    tcase_add_test(tc, test_timeout_calls_a_custom_handler_once);
    tcase_add_test(tc, test_timeout_unset_never_fires);
    tcase_add_test(tc, test_timeout_aborts_a_close_that_cannot_flush);
    tcase_add_test(tc, test_timeout_closes_a_silent_client_connection);
    suite_add_tcase(s, tc);
    tc = tcase_create("wrapping");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_throttle_bounds_the_read_rate_of_a_connection);
    tcase_add_test(tc, test_throttle_bounds_the_read_rate_of_a_whole_listener);
    tcase_add_test(tc, test_throttle_bounds_the_write_rate_of_a_connection);
    tcase_add_test(tc, test_throttle_bounds_the_write_rate_of_a_whole_listener);
    tcase_add_test(tc, test_policy_factory_refuses_bad_limits);
    tcase_add_test(tc, test_policy_factory_wraps_a_client_connection);
    tcase_add_test(tc, test_per_peer_limit_refuses_the_next_from_one_address_only);
    tcase_add_test(tc, test_traffic_log_shows_the_bytes_both_ways);
    tcase_add_test(tc, test_traffic_log_is_off_unless_asked);
    suite_add_tcase(s, tc);
    tc = tcase_create("reactord");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reactord_max_per_peer_refuses_the_next_connection);
    tcase_add_test(tc, test_reactord_log_traffic_shows_the_bytes);
    tcase_add_test(tc, test_reactord_throttle_slows_an_echo);
    tcase_add_test(tc, test_reactord_refuses_bad_policy_values);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(policies_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
