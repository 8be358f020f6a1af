/* SPDX-License-Identifier: MIT */
/*
 * A listener's counters (tw_listener_stats()), the reactor's for the
 * connections no listener accepted (tw_reactor_conn_stats()), and close records
 * (tw_listen_options.on_close) say what really happened to each
 * connection: accepted, refused and why, closed and why (the peer, the
 * protocol, an abort, a reason the protocol named, the reactor's stop),
 * and the bytes each way; and tw_endpoint_bind() makes a listening socket
 * for another library to serve, with the endpoint's sentence on error.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <string.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <twine.h>

#include "recorder.h"
#include "testutil.h"

typedef struct {
    int n;
    tw_conn_record last;
} records;

static void on_close(const tw_conn_record *rec, void *arg)
{
    records *rs = arg;
    rs->n++;
    rs->last = *rec;
}

static unsigned long long closed_total(const tw_conn_stats *st)
{
    unsigned long long n = 0;
    for (int i = 0; i < TW_CLOSE_REASONS; i++)
        n += st->closed[i];
    return n;
}

/* Spin until @p l has @p n closed connections (or 5 s pass). */
static void wait_closed(tw_reactor *r, tw_listener *l, unsigned long long n)
{
    tw_conn_stats st;
    long long deadline = tu_now_ms() + 5000;
    do {
        tw_reactor_iterate(r, 0.005);
        tw_listener_stats(l, &st);
    } while (closed_total(&st) < n && tu_now_ms() < deadline);
    ck_assert_uint_eq(closed_total(&st), n);
}

/* Spin until the protocol of the listener's first connection was built. */
static void wait_built(tw_reactor *r, rec_factory *rf, int n)
{
    long long deadline = tu_now_ms() + 5000;
    while (rf->built < n && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.005);
    ck_assert_int_eq(rf->built, n);
}

START_TEST(test_a_peer_close_counts_as_peer_with_the_bytes_each_way)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    records rs = {0};
    tw_listen_options o;
    tw_listen_options_init(&o);
    o.on_close = on_close;
    o.on_close_arg = &rs;
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, &o, &port);
    int c = tu_connect("127.0.0.1", port);
    ck_assert_int_ge(c, 0);
    struct sockaddr_storage me;
    socklen_t melen = sizeof me;
    getsockname(c, (struct sockaddr *)&me, &melen);
    wait_built(r, &rf, 1);
    ck_assert_int_eq(tu_write_all(c, "hello", 5), 0);
    while (rf.received < 5)
        tw_reactor_iterate(r, 0.005);
    ck_assert_int_eq(tw_transport_write(rf.last->transport, "abc", 3), 0);
    char got[3];
    ck_assert_uint_eq(tu_read_exact(c, got, 3, 2000), 3);

    tw_conn_stats st;
    tw_listener_stats(l, &st);
    ck_assert_uint_eq(st.accepted, 1);
    ck_assert_uint_eq(st.open, 1);
    ck_assert_uint_eq(st.bytes_in, 5); /* an open connection's bytes count at once */
    ck_assert_uint_eq(st.bytes_out, 3);

    close(c);
    wait_closed(r, l, 1);
    tw_listener_stats(l, &st);
    ck_assert_uint_eq(st.open, 0);
    ck_assert_uint_eq(st.closed[TW_CLOSE_PEER], 1);
    ck_assert_uint_eq(st.bytes_in, 5);
    ck_assert_uint_eq(st.bytes_out, 3);
    ck_assert_int_eq(rs.n, 1);
    ck_assert_int_eq(rs.last.reason, TW_CLOSE_PEER);
    ck_assert_uint_eq(rs.last.bytes_in, 5);
    ck_assert_uint_eq(rs.last.bytes_out, 3);
    ck_assert(rs.last.duration >= 0);
    ck_assert_int_eq(rs.last.code, TW_EDONE);
    /* The peer's address is the client's, though its socket is gone. */
    ck_assert_int_eq(tw_address_port(&rs.last.peer), tw_address_port(&(tw_address){
        .u.storage = me, .len = melen}));
    ck_assert_int_eq(tw_address_port(&rs.last.host), port);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_behind_the_proxy_protocol_the_record_names_the_client)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    records rs = {0};
    tw_listen_options o;
    tw_listen_options_init(&o);
    o.proxy_protocol = 1;
    o.on_close = on_close;
    o.on_close_arg = &rs;
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, &o, &port);
    int c = tu_connect("127.0.0.1", port);
    const char header[] = "PROXY TCP4 10.1.2.3 10.0.0.1 5555 80\r\nhi";
    ck_assert_int_eq(tu_write_all(c, header, sizeof header - 1), 0);
    wait_built(r, &rf, 1);
    while (rf.received < 2)
        tw_reactor_iterate(r, 0.005);
    close(c);
    wait_closed(r, l, 1);
    ck_assert_int_eq(rs.n, 1);
    char peer[TW_ADDRSTRLEN];
    ck_assert_str_eq(tw_address_format(&rs.last.peer, peer, sizeof peer), "10.1.2.3:5555");
    ck_assert_int_eq(tw_address_port(&rs.last.host), port); /* the socket's own end */
    ck_assert_uint_eq(rs.last.bytes_in, sizeof header - 1);
    ck_assert_int_eq(rs.last.reason, TW_CLOSE_PEER);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_a_protocol_close_counts_as_local_and_an_abort_as_abort)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, NULL, &port);
    rf.close_in_data = 1;
    int c1 = tu_connect("127.0.0.1", port);
    ck_assert_int_eq(tu_write_all(c1, "x", 1), 0);
    wait_closed(r, l, 1);
    ck_assert_int_eq(tu_wait_eof(c1, 2000), 1);
    rf.close_in_data = 0;
    rf.abort_in_data = 1;
    int c2 = tu_connect("127.0.0.1", port);
    ck_assert_int_eq(tu_write_all(c2, "x", 1), 0);
    wait_closed(r, l, 2);
    tw_conn_stats st;
    tw_listener_stats(l, &st);
    ck_assert_uint_eq(st.closed[TW_CLOSE_LOCAL], 1);
    ck_assert_uint_eq(st.closed[TW_CLOSE_ABORT], 1);
    ck_assert_uint_eq(st.closed[TW_CLOSE_PEER], 0);
    close(c1);
    close(c2);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_the_reason_a_protocol_names_first_wins)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, NULL, &port);
    int c = tu_connect("127.0.0.1", port);
    wait_built(r, &rf, 1);
    tw_transport_set_close_reason(rf.last->transport, TW_CLOSE_TOO_LONG);
    tw_transport_set_close_reason(rf.last->transport, TW_CLOSE_TIMEOUT);
    tw_transport_lose_connection(rf.last->transport);
    wait_closed(r, l, 1);
    ck_assert_int_eq(tu_wait_eof(c, 2000), 1);
    close(c);
    tw_conn_stats st;
    tw_listener_stats(l, &st);
    ck_assert_uint_eq(st.closed[TW_CLOSE_TOO_LONG], 1);
    ck_assert_uint_eq(closed_total(&st), 1);
    /* connection_lost still reports the close itself. */
    ck_assert_int_eq(rf.lost_code, TW_EDONE);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_a_graceful_stop_counts_as_shutdown)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, NULL, &port);
    int c = tu_connect("127.0.0.1", port);
    wait_built(r, &rf, 1);
    tw_reactor_stop(r);
    wait_closed(r, l, 1);
    ck_assert_int_eq(tu_wait_eof(c, 2000), 1);
    close(c);
    tw_conn_stats st;
    tw_listener_stats(l, &st);
    ck_assert_uint_eq(st.closed[TW_CLOSE_SHUTDOWN], 1);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_refusals_count_by_reason_and_are_not_accepted)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    tw_listen_options o;
    tw_listen_options_init(&o);
    o.max_connections = 1;
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, &o, &port);
    int c1 = tu_connect("127.0.0.1", port);
    wait_built(r, &rf, 1);
    int c2 = tu_connect("127.0.0.1", port);
    long long deadline = tu_now_ms() + 5000;
    tw_conn_stats st;
    do {
        tw_reactor_iterate(r, 0.005);
        tw_listener_stats(l, &st);
    } while (st.refused[TW_REFUSE_MAX_CONNECTIONS] < 1 && tu_now_ms() < deadline);
    ck_assert_int_eq(tu_wait_eof(c2, 2000), 1);
    close(c2);
    close(c1);
    wait_closed(r, l, 1);
    rf.refuse = 1;
    int c3 = tu_connect("127.0.0.1", port);
    deadline = tu_now_ms() + 5000;
    do {
        tw_reactor_iterate(r, 0.005);
        tw_listener_stats(l, &st);
    } while (st.refused[TW_REFUSE_FACTORY] < 1 && tu_now_ms() < deadline);
    close(c3);
    ck_assert_uint_eq(st.refused[TW_REFUSE_MAX_CONNECTIONS], 1);
    ck_assert_uint_eq(st.refused[TW_REFUSE_FACTORY], 1);
    ck_assert_uint_eq(st.refused[TW_REFUSE_DESCRIPTORS], 0);
    ck_assert_uint_eq(st.accepted, 1);
    ck_assert_uint_eq(tw_listener_rejected(l), 1);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_running_out_of_descriptors_counts_a_refusal)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, NULL, &port);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(c, 0);
    /* Each test runs in its own process: lower the limit there, and fill
     * every descriptor left, so the listener's accept fails with EMFILE. */
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur > 256) {
        rl.rlim_cur = 256;
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    int *fill = malloc(sizeof *fill * 256);
    int n = 0, fd;
    while (n < 256 && (fd = dup(c)) >= 0)
        fill[n++] = fd;
    ck_assert_int_eq(errno, EMFILE);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(c, (struct sockaddr *)&sin, sizeof sin), 0);
    tw_conn_stats st;
    long long deadline = tu_now_ms() + 5000;
    do {
        tw_reactor_iterate(r, 0.005);
        tw_listener_stats(l, &st);
    } while (st.refused[TW_REFUSE_DESCRIPTORS] < 1 && tu_now_ms() < deadline);
    while (n > 0)
        close(fill[--n]);
    free(fill);
    ck_assert_uint_eq(st.refused[TW_REFUSE_DESCRIPTORS], 1);
    ck_assert_uint_eq(st.accepted, 0);
    ck_assert_int_eq(tu_wait_eof(c, 2000), 1); /* closed in order, not left hanging */
    close(c);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_reason_names_are_stable)
{
    ck_assert_str_eq(tw_close_reason_name(TW_CLOSE_PEER), "peer");
    ck_assert_str_eq(tw_close_reason_name(TW_CLOSE_IDLE), "idle_timeout");
    ck_assert_str_eq(tw_close_reason_name(TW_CLOSE_TOO_LONG), "too_long");
    ck_assert_str_eq(tw_close_reason_name(TW_CLOSE_ERROR), "error");
    ck_assert_str_eq(tw_close_reason_name(TW_CLOSE_REASONS), "unknown");
    ck_assert_str_eq(tw_refusal_name(TW_REFUSE_MAX_CONNECTIONS), "max_connections");
    ck_assert_str_eq(tw_refusal_name(TW_REFUSE_REASONS), "unknown");
    ck_assert_str_eq(tw_amp_outcome_name(TW_AMP_OUTCOME_BAD_ARGUMENTS), "bad_arguments");
    ck_assert_str_eq(tw_amp_outcome_name(TW_AMP_OUTCOMES), "unknown");
    ck_assert_str_eq(tw_tls_failure_name(TW_TLS_FAIL_TIMEOUT), "timeout");
    ck_assert_str_eq(tw_tls_failure_name(TW_TLS_FAIL_PROTOCOL), "protocol_error");
    ck_assert_str_eq(tw_tls_failure_name(TW_TLS_FAIL_VERIFY), "verify_failed");
    ck_assert_str_eq(tw_tls_failure_name(TW_TLS_FAIL_PEER_CLOSED), "peer_closed");
    ck_assert_str_eq(tw_tls_failure_name(TW_TLS_FAIL_LOCAL), "local");
    ck_assert_str_eq(tw_tls_failure_name(TW_TLS_FAILURES), "unknown");
}
END_TEST

START_TEST(test_endpoint_bind_listens_and_names_the_endpoint_in_use)
{
    tw_endpoint e;
    char err[256];
    ck_assert_int_eq(tw_endpoint_parse_server("tcp:0:interface=127.0.0.1", &e, err, sizeof err), 0);
    int fd = -1;
    ck_assert_int_eq(tw_endpoint_bind(&e, NULL, &fd, err, sizeof err), 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    tw_address bound = {.len = len};
    memcpy(&bound.u.storage, &ss, len);
    int port = tw_address_port(&bound);
    int c = tu_connect("127.0.0.1", port);
    ck_assert_int_ge(c, 0); /* it listens */
    close(c);

    char desc[64];
    snprintf(desc, sizeof desc, "tcp:%d:interface=127.0.0.1", port);
    ck_assert_int_eq(tw_endpoint_parse_server(desc, &e, err, sizeof err), 0);
    int fd2 = -1;
    ck_assert_int_eq(tw_endpoint_bind(&e, NULL, &fd2, err, sizeof err), -EADDRINUSE);
    ck_assert_int_eq(fd2, -1);
    ck_assert_ptr_nonnull(strstr(err, desc));
    close(fd);

    ck_assert_int_eq(tw_endpoint_parse_server("udp:0", &e, err, sizeof err), 0);
    ck_assert_int_eq(tw_endpoint_bind(&e, NULL, &fd2, err, sizeof err), -EINVAL);
    ck_assert_int_eq(tw_endpoint_parse_server("haproxy:tcp:0", &e, err, sizeof err), 0);
    ck_assert_int_eq(tw_endpoint_bind(&e, NULL, &fd2, err, sizeof err), -EINVAL);
}
END_TEST

/* Spin until the reactor's own connections (no listener's) closed @p n. */
static void wait_reactor_closed(tw_reactor *r, unsigned long long n)
{
    tw_conn_stats st;
    long long deadline = tu_now_ms() + 5000;
    do {
        tw_reactor_iterate(r, 0.005);
        tw_reactor_conn_stats(r, &st);
    } while (closed_total(&st) < n && tu_now_ms() < deadline);
    ck_assert_uint_eq(closed_total(&st), n);
}

/* Connect with tw_connect_tcp() to the raw listening socket @p lfd on
 * @p port; @return the twine side's transport, with the peer's socket in
 * *@p peer. */
static tw_transport *connect_raw(tw_reactor *r, tu_client_factory *cf, int lfd, int port,
                                 int *peer)
{
    tu_outcome o = {0};
    tu_watch(tw_connect_tcp(r, "127.0.0.1", port, NULL, &cf->rf.base), &o);
    spin(r, &o.fired, 5000);
    ck_assert_msg(o.ok, "%s", o.message);
    *peer = accept(lfd, NULL, NULL);
    ck_assert_int_ge(*peer, 0);
    return cf->rf.last->transport;
}

START_TEST(test_reactor_totals_count_connects_and_adoptions_each_way_and_by_reason)
{
    tw_reactor *r = tw_reactor_new();
    tw_conn_stats st;
    tw_reactor_conn_stats(r, &st);
    ck_assert_uint_eq(st.accepted, 0); /* before any stream: all zero */
    ck_assert_uint_eq(st.bytes_in, 0);

    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof sin;
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof sin), 0);
    ck_assert_int_eq(listen(lfd, 8), 0);
    getsockname(lfd, (struct sockaddr *)&sin, &slen);
    int port = ntohs(sin.sin_port);
    tu_client_factory cf;
    tu_client_init(&cf, r);

    /* 1: "hello" out, "abc" in, then the peer closes. */
    int p1, p2, p3, p4;
    tw_transport *t1 = connect_raw(r, &cf, lfd, port, &p1);
    ck_assert_int_eq(tw_transport_write(t1, "hello", 5), 0);
    char got[5];
    ck_assert_uint_eq(tu_read_exact(p1, got, 5, 2000), 5);
    ck_assert_int_eq(tu_write_all(p1, "abc", 3), 0);
    while (cf.rf.received < 3)
        tw_reactor_iterate(r, 0.005);
    /* 2: closed by its protocol; 3: aborted. */
    tw_transport *t2 = connect_raw(r, &cf, lfd, port, &p2);
    tw_transport *t3 = connect_raw(r, &cf, lfd, port, &p3);
    /* 4: adopted, 2 bytes in, closed for a reason the protocol names. */
    rec_factory af;
    rec_init(&af, r);
    ck_assert_int_eq(adopt_pair(r, &af, &p4), 0);
    tw_transport *t4 = af.last->transport;
    ck_assert_int_eq(tu_write_all(p4, "xy", 2), 0);
    while (af.received < 2)
        tw_reactor_iterate(r, 0.005);
    /* A refused adoption is counted, and not as a connection. */
    rec_factory refusing;
    rec_init(&refusing, r);
    refusing.refuse = 1;
    int p5;
    ck_assert_int_eq(adopt_pair(r, &refusing, &p5), -ECONNREFUSED);
    close(p5);
    /* A connection a listener accepts is the listener's, not the reactor's. */
    rec_factory lf;
    rec_init(&lf, r);
    int lport;
    tw_listener *l = listen_on(r, "127.0.0.1", &lf, NULL, &lport);
    int c = tu_connect("127.0.0.1", lport);
    wait_built(r, &lf, 1);
    ck_assert_int_eq(tu_write_all(c, "0123456789", 10), 0);
    while (lf.received < 10)
        tw_reactor_iterate(r, 0.005);

    tw_reactor_conn_stats(r, &st);
    ck_assert_uint_eq(st.accepted, 4);
    ck_assert_uint_eq(st.open, 4);
    ck_assert_uint_eq(st.refused[TW_REFUSE_FACTORY], 1);
    ck_assert_uint_eq(st.bytes_in, 3 + 2);
    ck_assert_uint_eq(st.bytes_out, 5);

    close(p1);
    wait_reactor_closed(r, 1);
    tw_transport_lose_connection(t2);
    wait_reactor_closed(r, 2);
    tw_transport_abort_connection(t3);
    wait_reactor_closed(r, 3);
    tw_transport_set_close_reason(t4, TW_CLOSE_TOO_LONG);
    tw_transport_lose_connection(t4);
    wait_reactor_closed(r, 4);

    tw_reactor_conn_stats(r, &st);
    ck_assert_uint_eq(st.accepted, 4);
    ck_assert_uint_eq(st.open, 0);
    ck_assert_uint_eq(st.closed[TW_CLOSE_PEER], 1);
    ck_assert_uint_eq(st.closed[TW_CLOSE_LOCAL], 1);
    ck_assert_uint_eq(st.closed[TW_CLOSE_ABORT], 1);
    ck_assert_uint_eq(st.closed[TW_CLOSE_TOO_LONG], 1);
    ck_assert_uint_eq(st.refused[TW_REFUSE_FACTORY], 1);
    ck_assert_uint_eq(st.refused[TW_REFUSE_MAX_CONNECTIONS], 0);
    ck_assert_uint_eq(st.bytes_in, 5);
    ck_assert_uint_eq(st.bytes_out, 5);
    ck_assert_uint_eq(st.tls_handshakes, 0);
    tw_listener_stats(l, &st);
    ck_assert_uint_eq(st.accepted, 1);
    ck_assert_uint_eq(st.bytes_in, 10);
    ck_assert_int_eq(cf.rf.stops, cf.rf.starts); /* the connects used the factory, and are done */

    close(c);
    close(p2);
    close(p3);
    close(p4);
    close(lfd);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_reactor_totals_count_a_graceful_stop_as_shutdown)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory af;
    rec_init(&af, r);
    int peer;
    ck_assert_int_eq(adopt_pair(r, &af, &peer), 0);
    tw_reactor_stop(r);
    wait_reactor_closed(r, 1);
    tw_conn_stats st;
    tw_reactor_conn_stats(r, &st);
    ck_assert_uint_eq(st.closed[TW_CLOSE_SHUTDOWN], 1);
    ck_assert_uint_eq(st.open, 0);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

static Suite *stats_suite(void)
{
    Suite *s = suite_create("conn_stats");
    TCase *tc = tcase_create("listener");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_a_peer_close_counts_as_peer_with_the_bytes_each_way);
    tcase_add_test(tc, test_behind_the_proxy_protocol_the_record_names_the_client);
    tcase_add_test(tc, test_a_protocol_close_counts_as_local_and_an_abort_as_abort);
    tcase_add_test(tc, test_the_reason_a_protocol_names_first_wins);
    tcase_add_test(tc, test_a_graceful_stop_counts_as_shutdown);
    tcase_add_test(tc, test_refusals_count_by_reason_and_are_not_accepted);
    tcase_add_test(tc, test_running_out_of_descriptors_counts_a_refusal);
    tcase_add_test(tc, test_reason_names_are_stable);
    tcase_add_test(tc, test_endpoint_bind_listens_and_names_the_endpoint_in_use);
    tcase_add_test(tc, test_reactor_totals_count_connects_and_adoptions_each_way_and_by_reason);
    tcase_add_test(tc, test_reactor_totals_count_a_graceful_stop_as_shutdown);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stats_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
