/* SPDX-License-Identifier: MIT */
/*
 * UDP ports and datagram protocols: whole datagrams with their source
 * address over IPv4 and IPv6, echo over UDP through the module descriptor,
 * refusal on a connected port, and the start/stop/destroy lifecycle.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <twine.h>
#include <twine/udp.h>

#include "../protocols/builtin.h"

#include "core/fd_internal.h"
#include "recorder.h"
#include "testutil.h"

typedef struct {
    tw_datagram_protocol base;
    int started, stopped, destroyed, refused;
    char last[256];
    size_t last_len;
    tw_address last_from;
    int received;
} dgram_rec;

static void d_start(tw_datagram_protocol *p)
{
    ((dgram_rec *)p)->started++;
}

static void d_received(tw_datagram_protocol *p, const void *data, size_t len,
                       const tw_address *from)
{
    dgram_rec *d = (dgram_rec *)p;
    d->received++;
    d->last_len = len < sizeof d->last ? len : sizeof d->last;
    memcpy(d->last, data, d->last_len);
    d->last_from = *from;
}

static void d_refused(tw_datagram_protocol *p)
{
    ((dgram_rec *)p)->refused++;
}

static void d_stop(tw_datagram_protocol *p)
{
    ((dgram_rec *)p)->stopped++;
}

static void d_destroy(tw_datagram_protocol *p)
{
    ((dgram_rec *)p)->destroyed++;
}

static const tw_datagram_ops d_ops = {d_start, d_received, d_refused, d_stop, d_destroy};

static tw_udp_port *bind_udp(tw_reactor *r, const char *host, tw_datagram_protocol *p, int *port)
{
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, host, 0), 0);
    tw_udp_port *u;
    ck_assert_int_eq(tw_udp_listen(r, &a, p, &u), 0);
    tw_address bound;
    tw_udp_port_address(u, &bound);
    *port = tw_address_port(&bound);
    return u;
}

static int client_socket(const char *host, int port, tw_address *to)
{
    ck_assert_int_eq(tw_address_from_ip(to, host, port), 0);
    int fd = tw__socket(to->u.sa.sa_family, SOCK_DGRAM, 0, O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    return fd;
}

START_TEST(test_datagrams_arrive_whole_with_their_source_over_ipv4_and_ipv6)
{
    const char *hosts[] = {"127.0.0.1", "::1"};
    for (int h = 0; h < 2; h++) {
        tw_reactor *r = tw_reactor_new();
        dgram_rec d = {{&d_ops, NULL}, 0, 0, 0, 0, {0}, 0, {0}, 0};
        int port;
        tw_udp_port *u = bind_udp(r, hosts[h], &d.base, &port);
        ck_assert_int_eq(d.started, 1);
        ck_assert_ptr_eq(d.base.port, u);
        tw_address to;
        int c = client_socket(hosts[h], port, &to);
        ck_assert_int_eq(sendto(c, "first", 5, 0, &to.u.sa, to.len), 5);
        ck_assert_int_eq(sendto(c, "second!", 7, 0, &to.u.sa, to.len), 7);
        long long deadline = tu_now_ms() + 2000;
        while (d.received < 2 && tu_now_ms() < deadline)
            tw_reactor_iterate(r, 0.01);
        ck_assert_int_eq(d.received, 2);
        ck_assert_uint_eq(d.last_len, 7); /* boundaries kept: not "firstsecond!" */
        ck_assert(memcmp(d.last, "second!", 7) == 0);
        tw_address mine;
        mine.len = sizeof mine.u.storage;
        getsockname(c, &mine.u.sa, &mine.len);
        ck_assert_int_eq(tw_address_port(&d.last_from), tw_address_port(&mine));
        /* Reply to the source. */
        ck_assert_int_eq(tw_udp_write(u, "reply", 5, &d.last_from), 0);
        char buf[16];
        struct pollfd pfd = {c, POLLIN, 0};
        ck_assert_int_eq(poll(&pfd, 1, 2000), 1);
        ck_assert_int_eq(recv(c, buf, sizeof buf, 0), 5);
        close(c);
        tw_udp_port_close(u);
        ck_assert_int_eq(d.stopped, 1);
        ck_assert_int_eq(d.destroyed, 1);
        tw_reactor_free(r);
    }
}
END_TEST

START_TEST(test_echo_is_offered_over_udp_through_its_module)
{
    const tw_plugin_protocol *echo = tw__builtin_protocol("echo");
    ck_assert_ptr_nonnull(echo);
    tw_plugin_datagram_fn make = echo->make_datagram;
    ck_assert_ptr_nonnull(make);
    tw_reactor *r = tw_reactor_new();
    char err[128];
    tw_datagram_protocol *p = make(r, NULL, err, sizeof err);
    ck_assert_ptr_nonnull(p);
    int port;
    tw_udp_port *u = bind_udp(r, "127.0.0.1", p, &port);
    tw_address to;
    int c = client_socket("127.0.0.1", port, &to);
    char big[1400];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)i;
    ck_assert_int_eq(sendto(c, big, sizeof big, 0, &to.u.sa, to.len), (ssize_t)sizeof big);
    char back[2048];
    ssize_t n = -1;
    long long deadline = tu_now_ms() + 2000;
    while (n < 0 && tu_now_ms() < deadline) {
        tw_reactor_iterate(r, 0.01);
        n = recv(c, back, sizeof back, MSG_DONTWAIT);
    }
    ck_assert_int_eq(n, (ssize_t)sizeof big);
    ck_assert(memcmp(big, back, sizeof big) == 0);
    close(c);
    tw_udp_port_close(u); /* destroys the module's protocol */
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_a_connected_port_reports_refusal)
{
    tw_reactor *r = tw_reactor_new();
    dgram_rec d = {{&d_ops, NULL}, 0, 0, 0, 0, {0}, 0, {0}, 0};
    int port;
    tw_udp_port *u = bind_udp(r, "127.0.0.1", &d.base, &port);
    /* A port nobody listens on: bind one, note it, close it. */
    tw_address gone;
    int tmp = client_socket("127.0.0.1", 0, &gone);
    bind(tmp, &gone.u.sa, gone.len);
    gone.len = sizeof gone.u.storage;
    getsockname(tmp, &gone.u.sa, &gone.len);
    close(tmp);
    ck_assert_int_eq(tw_udp_connect(u, &gone), 0);
    ck_assert_int_eq(tw_udp_write(u, "anyone?", 7, NULL), 0);
    long long deadline = tu_now_ms() + 2000;
    while (d.refused == 0 && tu_now_ms() < deadline) {
        tw_reactor_iterate(r, 0.01);
        if (d.refused == 0)
            tw_udp_write(u, "anyone?", 7, NULL);
    }
    ck_assert_int_ge(d.refused, 1);
    tw_udp_port_close(u);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_writing_without_an_address_needs_a_connected_port)
{
    tw_reactor *r = tw_reactor_new();
    dgram_rec d = {{&d_ops, NULL}, 0, 0, 0, 0, {0}, 0, {0}, 0};
    int port;
    tw_udp_port *u = bind_udp(r, "127.0.0.1", &d.base, &port);
    ck_assert_int_eq(tw_udp_write(u, "x", 1, NULL), -EDESTADDRREQ);
    tw_udp_port_close(u);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_reactor_stop_stops_udp_ports)
{
    tw_reactor *r = tw_reactor_new();
    dgram_rec d = {{&d_ops, NULL}, 0, 0, 0, 0, {0}, 0, {0}, 0};
    int port;
    tw_udp_port *u = bind_udp(r, "127.0.0.1", &d.base, &port);
    tw_reactor_stop(r);
    ck_assert_int_eq(tw_reactor_run(r), 0);
    ck_assert_int_eq(d.stopped, 1);
    ck_assert_int_eq(d.destroyed, 0); /* the handle is still the caller's */
    ck_assert_int_eq(tw_udp_write(u, "x", 1, &d.last_from), TW_ESTATE);
    tw_udp_port_close(u);
    ck_assert_int_eq(d.stopped, 1);
    ck_assert_int_eq(d.destroyed, 1);
    tw_reactor_free(r);
}
END_TEST

static Suite *udp_suite(void)
{
    Suite *s = suite_create("udp");
    TCase *tc = tcase_create("ports");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_datagrams_arrive_whole_with_their_source_over_ipv4_and_ipv6);
    tcase_add_test(tc, test_echo_is_offered_over_udp_through_its_module);
    tcase_add_test(tc, test_a_connected_port_reports_refusal);
    tcase_add_test(tc, test_writing_without_an_address_needs_a_connected_port);
    tcase_add_test(tc, test_reactor_stop_stops_udp_ports);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(udp_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
