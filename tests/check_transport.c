/* SPDX-License-Identifier: MIT */
/*
 * The stream transport and the listener, over socketpairs and loopback TCP
 * (IPv4 and IPv6): write-through and queueing, lose/abort, the protocol
 * lifecycle and its order, factory hooks, addresses and socket options.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <twine.h>

#include "core/fd_internal.h"
#include "recorder.h"
#include "testutil.h"

/* ------------------------------------------------------------ tests */

START_TEST(test_adopt_calls_connection_made)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int peer;
    ck_assert_int_eq(adopt_pair(r, &rf, &peer), 0);
    ck_assert_int_eq(rf.nevents, 1);
    ck_assert_int_eq(rf.events[0], EV_MADE);
    ck_assert_int_eq(rf.starts, 1);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_write_goes_straight_to_the_socket)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int peer;
    adopt_pair(r, &rf, &peer);
    /* No loop iteration in between: the bytes must already be in the kernel. */
    ck_assert_int_eq(tw_transport_write(rf.last->transport, "hello", 5), 0);
    ck_assert_uint_eq(tw_transport_write_buffer_size(rf.last->transport), 0);
    char buf[8];
    ck_assert_uint_eq(tu_read_exact(peer, buf, 5, 1000), 5);
    ck_assert(memcmp(buf, "hello", 5) == 0);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_writev_sends_all_parts_in_order)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int peer;
    adopt_pair(r, &rf, &peer);
    struct iovec iov[3] = {{"ab", 2}, {"", 0}, {"cde", 3}};
    ck_assert_int_eq(tw_transport_writev(rf.last->transport, iov, 3), 0);
    char buf[8];
    ck_assert_uint_eq(tu_read_exact(peer, buf, 5, 1000), 5);
    ck_assert(memcmp(buf, "abcde", 5) == 0);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_only_what_the_kernel_refuses_is_queued_and_it_all_arrives)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int peer;
    adopt_pair(r, &rf, &peer);
    size_t total = 4 << 20;
    unsigned char *data = malloc(total), *back = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (unsigned char)(i * 7 + (i >> 13));
    tw_transport *t = rf.last->transport;
    ck_assert_int_eq(tw_transport_write(t, data, total), 0);
    size_t q = tw_transport_write_buffer_size(t);
    ck_assert_uint_gt(q, 0);     /* the kernel could not take 4 MiB at once */
    ck_assert_uint_lt(q, total); /* but it took what it could */

    size_t got = 0;
    long long deadline = tu_now_ms() + 10000;
    while (got < total && tu_now_ms() < deadline) {
        tw_reactor_iterate(r, 0);
        got += tu_read_exact(peer, back + got, total - got, 5);
    }
    ck_assert_uint_eq(got, total);
    ck_assert(memcmp(data, back, total) == 0);
    spin_ms(r, 10);
    ck_assert_uint_eq(tw_transport_write_buffer_size(t), 0);
    free(data);
    free(back);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_reads_are_at_most_64_kib)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int peer;
    adopt_pair(r, &rf, &peer);
    int sz = 1 << 20;
    setsockopt(peer, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    size_t total = 512 * 1024;
    char *data = calloc(1, total);
    size_t sent = 0;
    long long deadline = tu_now_ms() + 10000;
    while (rf.received < total && tu_now_ms() < deadline) {
        if (sent < total) {
            ssize_t w = send(peer, data + sent, total - sent, MSG_DONTWAIT);
            if (w > 0)
                sent += (size_t)w;
        }
        tw_reactor_iterate(r, 0.001);
    }
    ck_assert_uint_eq(rf.received, total);
    ck_assert_uint_le(rf.max_chunk, 65536);
    ck_assert_uint_gt(rf.max_chunk, 4096); /* not libevent's 4 KiB cap */
    free(data);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_peer_close_reports_a_clean_connection_lost_then_destroys)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int peer;
    adopt_pair(r, &rf, &peer);
    send(peer, "abc", 3, 0);
    close(peer);
    spin(r, &rf.destroyed, 2000);
    ck_assert_int_eq(rf.nevents, 4);
    ck_assert_int_eq(rf.events[0], EV_MADE);
    ck_assert_int_eq(rf.events[1], EV_DATA);
    ck_assert_int_eq(rf.events[2], EV_LOST);
    ck_assert_int_eq(rf.events[3], EV_DESTROY);
    ck_assert_int_eq(rf.lost_code, TW_EDONE);
    ck_assert_int_eq(rf.stops, 1); /* the adopted connection was the only user */
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_lose_connection_flushes_then_closes)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int peer;
    adopt_pair(r, &rf, &peer);
    size_t total = 2 << 20;
    char *data = malloc(total), *back = malloc(total);
    memset(data, 'q', total);
    tw_transport *t = rf.last->transport;
    tw_transport_write(t, data, total);
    tw_transport_lose_connection(t);
    ck_assert_int_ne(rf.events[rf.nevents - 1], EV_LOST); /* never synchronous */
    size_t got = 0;
    long long deadline = tu_now_ms() + 10000;
    while (got < total && tu_now_ms() < deadline) {
        tw_reactor_iterate(r, 0);
        got += tu_read_exact(peer, back + got, total - got, 5);
    }
    ck_assert_uint_eq(got, total);
    spin(r, &rf.destroyed, 2000);
    ck_assert_int_eq(tu_wait_eof(peer, 1000), 1);
    ck_assert_int_eq(rf.lost_code, TW_EDONE);
    free(data);
    free(back);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_close_from_inside_data_received_then_free)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    rf.close_in_data = 1;
    int peer;
    adopt_pair(r, &rf, &peer);
    send(peer, "bye", 3, 0);
    spin(r, &rf.destroyed, 2000);
    ck_assert_int_eq(rf.destroyed, 1);
    ck_assert_int_eq(rf.events[1], EV_DATA);
    ck_assert_int_eq(rf.events[2], EV_LOST);
    ck_assert_int_eq(rf.events[3], EV_DESTROY);
    ck_assert_int_eq(rf.lost_code, TW_EDONE);
    ck_assert_int_eq(tu_wait_eof(peer, 1000), 1);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_abort_from_inside_data_received_reports_aborted)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    rf.abort_in_data = 1;
    int peer;
    adopt_pair(r, &rf, &peer);
    send(peer, "x", 1, 0);
    spin(r, &rf.destroyed, 2000);
    ck_assert_int_eq(rf.lost_code, TW_EABORTED);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

/* ------------------------------------------------------------ TCP */

START_TEST(test_abort_sends_rst_and_drops_the_queue)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, NULL, &port);
    int c = tu_connect("127.0.0.1", port);
    spin(r, &rf.built, 2000);
    tw_transport *t = rf.last->transport;
    char *big = calloc(1, 4 << 20);
    tw_transport_write(t, big, 4 << 20);
    ck_assert_uint_gt(tw_transport_write_buffer_size(t), 0);
    tw_transport_abort_connection(t);
    spin(r, &rf.destroyed, 2000);
    ck_assert_int_eq(rf.lost_code, TW_EABORTED);
    /* The peer sees a reset, not an orderly EOF after 4 MiB. */
    size_t total = 0;
    int saw_reset = 0;
    for (;;) {
        char buf[65536];
        ssize_t n = recv(c, buf, sizeof buf, 0);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        saw_reset = n < 0 && errno == ECONNRESET;
        break;
    }
    ck_assert(saw_reset);
    ck_assert_uint_lt(total, 4u << 20);
    free(big);
    close(c);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_tcp_nodelay_is_set_on_accepted_connections)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, NULL, &port);
    int c = tu_connect("127.0.0.1", port);
    spin(r, &rf.built, 2000);
    int on = 0;
    socklen_t len = sizeof on;
    int fd = tw_transport_fileno(rf.last->transport);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
    ck_assert_int_ne(on, 0);
    close(c);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_writing_to_a_vanished_peer_does_not_raise_sigpipe)
{
    /* SIGPIPE keeps its default (fatal) disposition: twine must not need it
     * ignored process-wide. */
    signal(SIGPIPE, SIG_DFL);
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, NULL, &port);
    int c = tu_connect("127.0.0.1", port);
    spin(r, &rf.built, 2000);
    struct linger lg = {1, 0};
    setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c); /* RST */
    usleep(20000);
    tw_transport *t = rf.last->transport;
    for (int i = 0; i < 4 && rf.destroyed == 0; i++) {
        tw_transport_write(t, "data", 4);
        spin_ms(r, 5);
    }
    spin(r, &rf.destroyed, 2000);
    ck_assert_int_eq(rf.destroyed, 1);
    ck_assert(rf.lost_code == -ECONNRESET || rf.lost_code == -EPIPE);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_peer_and_host_addresses_over_ipv4_and_ipv6)
{
    const char *hosts[] = {"127.0.0.1", "::1"};
    for (int h = 0; h < 2; h++) {
        tw_reactor *r = tw_reactor_new();
        rec_factory rf;
        rec_init(&rf, r);
        int port;
        tw_listener *l = listen_on(r, hosts[h], &rf, NULL, &port);
        int c = tu_connect(hosts[h], port);
        ck_assert_int_ge(c, 0);
        spin(r, &rf.built, 2000);
        tw_address peer, host;
        ck_assert_int_eq(tw_transport_get_peer(rf.last->transport, &peer), 0);
        ck_assert_int_eq(tw_transport_get_host(rf.last->transport, &host), 0);
        tw_address mine;
        mine.len = sizeof mine.u.storage;
        getsockname(c, &mine.u.sa, &mine.len);
        ck_assert_int_eq(tw_address_port(&peer), tw_address_port(&mine));
        ck_assert_int_eq(tw_address_port(&host), port);
        ck_assert_int_eq(tw_address_family(&host), h == 0 ? AF_INET : AF_INET6);
        char text[TW_ADDRSTRLEN];
        tw_address_format(&host, text, sizeof text);
        ck_assert_int_eq(atoi(strrchr(text, ':') + 1), port);
        ck_assert(strncmp(text, h == 0 ? "127.0.0.1:" : "[::1]:", h == 0 ? 10 : 6) == 0);
        close(c);
        tw_listener_close(l);
        tw_reactor_free(r);
    }
}
END_TEST

START_TEST(test_listener_accepts_every_waiting_connection_in_one_pass)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, NULL, &port);
    int c[50];
    for (int i = 0; i < 50; i++)
        c[i] = tu_connect("127.0.0.1", port);
    usleep(20000);
    tw_reactor_iterate(r, 0.5);
    ck_assert_int_eq(rf.built, 50);
    ck_assert_uint_eq(tw_listener_connections(l), 50);
    for (int i = 0; i < 50; i++)
        close(c[i]);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_a_refusing_factory_closes_the_connection)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    rf.refuse = 1;
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, NULL, &port);
    int c = tu_connect("127.0.0.1", port);
    spin_ms(r, 50);
    ck_assert_int_eq(tu_wait_eof(c, 1000), 1);
    ck_assert_uint_eq(tw_listener_connections(l), 0);
    close(c);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_factory_start_and_stop_bracket_all_its_listeners)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int p1, p2;
    tw_listener *a = listen_on(r, "127.0.0.1", &rf, NULL, &p1);
    tw_listener *b = listen_on(r, "::1", &rf, NULL, &p2);
    ck_assert_int_eq(rf.starts, 1);
    tw_listener_close(a);
    ck_assert_int_eq(rf.stops, 0);
    tw_listener_close(b);
    ck_assert_int_eq(rf.stops, 1);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_listening_on_a_port_in_use_fails_with_eaddrinuse)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, NULL, &port);
    tw_address a;
    tw_address_from_ip(&a, "127.0.0.1", port);
    tw_listener *again = NULL;
    ck_assert_int_eq(tw_listen(r, &a, NULL, &rf.base, &again), -EADDRINUSE);
    ck_assert_ptr_null(again);
    ck_assert_int_eq(rf.starts, 1);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_stop_closes_listeners_and_drains_connections)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, NULL, &port);
    int c = tu_connect("127.0.0.1", port);
    spin(r, &rf.built, 2000);
    tw_reactor_stop(r);
    ck_assert_int_eq(tw_reactor_run(r), 0);
    ck_assert_int_eq(rf.destroyed, 1);
    ck_assert_int_eq(rf.lost_code, TW_EDONE);
    ck_assert_int_eq(rf.stops, 1);
    ck_assert_int_lt(tu_connect("127.0.0.1", port), 0); /* no longer listening */
    ck_assert_int_eq(tu_wait_eof(c, 1000), 1);
    close(c);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_free_aborts_open_connections_with_connection_lost)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, NULL, &port);
    int c = tu_connect("127.0.0.1", port);
    spin(r, &rf.built, 2000);
    tw_listener_close(l);
    tw_reactor_free(r);
    ck_assert_int_eq(rf.destroyed, 1);
    ck_assert_int_eq(rf.lost_code, TW_EABORTED);
    close(c);
}
END_TEST

/* ---------------------------------------------------------- UNIX listeners */

typedef struct {
    char dir[64];
    char path[128];
} unix_place;

static void unix_place_init(unix_place *u)
{
    snprintf(u->dir, sizeof u->dir, "/tmp/twine-unix.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(u->dir));
    snprintf(u->path, sizeof u->path, "%s/s.sock", u->dir);
}

static void unix_place_free(unix_place *u)
{
    unlink(u->path);
    ck_assert_int_eq(rmdir(u->dir), 0); /* nothing else was left behind */
}

START_TEST(test_unix_listener_removes_its_file_and_a_restart_binds_at_once)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    unix_place u;
    unix_place_init(&u);
    tw_address a;
    ck_assert_int_eq(tw_address_from_unix(&a, u.path), 0);
    tw_listener *l;
    ck_assert_int_eq(tw_listen(r, &a, NULL, &rf.base, &l), 0);
    /* A second server on a live socket is refused, and the file stays. */
    tw_listener *second;
    ck_assert_int_eq(tw_listen(r, &a, NULL, &rf.base, &second), -EADDRINUSE);
    ck_assert_int_eq(access(u.path, F_OK), 0);
    int c = tu_connect_unix(u.path);
    ck_assert_int_ge(c, 0);
    close(c);
    tw_listener_close(l);
    ck_assert_int_eq(access(u.path, F_OK), -1); /* the file went with it */
    ck_assert_int_eq(tw_listen(r, &a, NULL, &rf.base, &l), 0);
    /* A reactor's stop closes it the same way. */
    tw_reactor_stop(r);
    tw_reactor_run(r);
    ck_assert_int_eq(access(u.path, F_OK), -1);
    tw_listener_close(l);
    tw_reactor_free(r);
    unix_place_free(&u);
}
END_TEST

START_TEST(test_unix_listener_replaces_a_stale_socket_and_spares_other_files)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    unix_place u;
    unix_place_init(&u);
    tw_address a;
    ck_assert_int_eq(tw_address_from_unix(&a, u.path), 0);
    /* A crashed server's file: bound, never unlinked, nobody accepting. */
    int s = tw__socket(AF_UNIX, SOCK_STREAM, 0, O_CLOEXEC);
    ck_assert_int_eq(bind(s, &a.u.sa, a.len), 0);
    close(s);
    tw_listener *l;
    ck_assert_int_eq(tw_listen(r, &a, NULL, &rf.base, &l), 0);
    int c = tu_connect_unix(u.path);
    ck_assert_int_ge(c, 0);
    close(c);
    tw_listener_close(l);
    /* A regular file is never removed. */
    FILE *fp = fopen(u.path, "w");
    fputs("data\n", fp);
    fclose(fp);
    ck_assert_int_eq(tw_listen(r, &a, NULL, &rf.base, &l), -EADDRINUSE);
    struct stat st;
    ck_assert_int_eq(stat(u.path, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    tw_reactor_free(r);
    unix_place_free(&u);
}
END_TEST

START_TEST(test_a_graceful_stop_closes_connections_still_in_the_backlog_in_order)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, NULL, &port);
    /* The kernel completes the handshake; the loop never ran, so the
     * connection waits in the backlog when the stop closes the listener. */
    int fd = tu_connect("127.0.0.1", port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_write_all(fd, "x", 1), 0);
    tw_reactor_stop(r);
    ck_assert_int_eq(rf.built, 1);
    int eof = 0;
    long long until = tu_now_ms() + 3000;
    while (eof == 0 && tu_now_ms() < until) {
        tw_reactor_iterate(r, 0.01);
        eof = tu_wait_eof(fd, 1);
    }
    ck_assert_msg(eof == 1, "the client saw %s, not a FIN", eof == 0 ? "nothing" : strerror(-eof));
    close(fd);
    spin(r, &rf.destroyed, 2000);
    ck_assert_int_eq(rf.destroyed, 1);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

static Suite *transport_suite(void)
{
    Suite *s = suite_create("transport");
    TCase *tc = tcase_create("stream");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_adopt_calls_connection_made);
    tcase_add_test(tc, test_write_goes_straight_to_the_socket);
    tcase_add_test(tc, test_writev_sends_all_parts_in_order);
    tcase_add_test(tc, test_only_what_the_kernel_refuses_is_queued_and_it_all_arrives);
    tcase_add_test(tc, test_reads_are_at_most_64_kib);
    tcase_add_test(tc, test_peer_close_reports_a_clean_connection_lost_then_destroys);
    tcase_add_test(tc, test_lose_connection_flushes_then_closes);
    tcase_add_test(tc, test_close_from_inside_data_received_then_free);
    tcase_add_test(tc, test_abort_from_inside_data_received_reports_aborted);
    suite_add_tcase(s, tc);

    TCase *tcp = tcase_create("tcp");
    tcase_set_timeout(tcp, 30);
    tcase_add_test(tcp, test_abort_sends_rst_and_drops_the_queue);
    tcase_add_test(tcp, test_tcp_nodelay_is_set_on_accepted_connections);
    tcase_add_test(tcp, test_writing_to_a_vanished_peer_does_not_raise_sigpipe);
    tcase_add_test(tcp, test_peer_and_host_addresses_over_ipv4_and_ipv6);
    tcase_add_test(tcp, test_listener_accepts_every_waiting_connection_in_one_pass);
    tcase_add_test(tcp, test_a_refusing_factory_closes_the_connection);
    tcase_add_test(tcp, test_factory_start_and_stop_bracket_all_its_listeners);
    tcase_add_test(tcp, test_listening_on_a_port_in_use_fails_with_eaddrinuse);
    tcase_add_test(tcp, test_stop_closes_listeners_and_drains_connections);
    tcase_add_test(tcp, test_free_aborts_open_connections_with_connection_lost);
    tcase_add_test(tcp, test_unix_listener_removes_its_file_and_a_restart_binds_at_once);
    tcase_add_test(tcp, test_unix_listener_replaces_a_stale_socket_and_spares_other_files);
    tcase_add_test(tcp, test_a_graceful_stop_closes_connections_still_in_the_backlog_in_order);
    suite_add_tcase(s, tcp);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(transport_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
