/* SPDX-License-Identifier: MIT */
/*
 * Flow control and robustness of the stream transport and listener:
 * watermarks and producers, half-close, connection limits, idle timeouts,
 * descriptor exhaustion, and errors that name their errno.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/times.h>
#include <sys/wait.h>
#include <unistd.h>
#include <twine.h>

#include "recorder.h"
#include "testutil.h"

static char big[1 << 20];

/* Drain whatever the peer socket has, without blocking. */
static size_t drain_peer(int fd)
{
    size_t total = 0;
    char buf[65536];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) > 0)
        total += (size_t)n;
    return total;
}

START_TEST(test_crossing_the_high_watermark_pauses_and_draining_resumes)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int peer;
    adopt_pair(r, &rf, &peer);
    tw_transport *t = rf.last->transport;
    ck_assert_int_eq(tw_transport_write(t, big, sizeof big), 0);
    ck_assert_uint_gt(tw_transport_write_buffer_size(t), TW_WRITE_HIGH_WATERMARK);
    ck_assert_int_eq(rf.pauses, 1);
    ck_assert_int_eq(rf.resumes, 0);
    /* Writing more while paused does not pause again. */
    tw_transport_write(t, big, 1000);
    ck_assert_int_eq(rf.pauses, 1);

    long long deadline = tu_now_ms() + 5000;
    while (rf.resumes == 0 && tu_now_ms() < deadline) {
        drain_peer(peer);
        tw_reactor_iterate(r, 0.001);
    }
    ck_assert_int_eq(rf.resumes, 1);
    ck_assert_uint_le(tw_transport_write_buffer_size(t), TW_WRITE_LOW_WATERMARK);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_watermarks_are_configurable)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int peer;
    adopt_pair(r, &rf, &peer);
    tw_transport *t = rf.last->transport;
    int small = 4096;
    setsockopt(tw_transport_fileno(t), SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(peer, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    tw_transport_set_write_watermarks(t, 1 << 20, 1 << 19);
    tw_transport_write(t, big, 512 * 1024);
    ck_assert_int_eq(rf.pauses, 0); /* below the raised mark */
    tw_transport_write(t, big, 768 * 1024);
    ck_assert_int_eq(rf.pauses, 1);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_a_paused_transport_stops_reading)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int peer;
    adopt_pair(r, &rf, &peer);
    tw_transport *t = rf.last->transport;
    tw_transport_pause_producing(t);
    send(peer, "12345", 5, 0);
    spin_ms(r, 50);
    ck_assert_uint_eq(rf.received, 0);
    tw_transport_resume_producing(t);
    int five = 0;
    long long deadline = tu_now_ms() + 2000;
    while (rf.received < 5 && tu_now_ms() < deadline)
        spin(r, &five, 5);
    ck_assert_uint_eq(rf.received, 5);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

typedef struct {
    tw_producer base;
    tw_transport *t;
    int pauses, resumes, stops;
    int pieces_left; /* pull producers: how many pieces to write */
} test_producer;

static void prod_pause(tw_producer *p)
{
    ((test_producer *)p)->pauses++;
}

static void prod_resume(tw_producer *p)
{
    test_producer *tp = (test_producer *)p;
    tp->resumes++;
    if (tp->pieces_left > 0) {
        tp->pieces_left--;
        tw_transport_write(tp->t, big, 1000);
        if (tp->pieces_left == 0)
            tw_transport_unregister_producer(tp->t);
    }
}

static void prod_stop(tw_producer *p)
{
    ((test_producer *)p)->stops++;
}

static const tw_producer_ops prod_ops = {prod_pause, prod_resume, prod_stop};

START_TEST(test_a_streaming_producer_is_paused_resumed_and_stopped)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int peer;
    adopt_pair(r, &rf, &peer);
    tw_transport *t = rf.last->transport;
    test_producer tp = {{&prod_ops}, t, 0, 0, 0, 0};
    ck_assert_int_eq(tw_transport_register_producer(t, &tp.base, 1), 0);
    ck_assert_int_eq(tw_transport_register_producer(t, &tp.base, 1), TW_ESTATE);
    tw_transport_write(t, big, sizeof big);
    ck_assert_int_eq(tp.pauses, 1);
    long long deadline = tu_now_ms() + 5000;
    while (tp.resumes == 0 && tu_now_ms() < deadline) {
        drain_peer(peer);
        tw_reactor_iterate(r, 0.001);
    }
    ck_assert_int_eq(tp.resumes, 1);
    close(peer);
    spin(r, &rf.destroyed, 2000);
    ck_assert_int_eq(tp.stops, 1);
    tw_reactor_free(r);
}
END_TEST

/* Twisted tells only the registered producer; the protocol hears nothing. */
START_TEST(test_only_the_registered_producer_is_paused_and_resumed)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int peer;
    adopt_pair(r, &rf, &peer);
    tw_transport *t = rf.last->transport;
    test_producer tp = {{&prod_ops}, t, 0, 0, 0, 0};
    ck_assert_int_eq(tw_transport_register_producer(t, &tp.base, 1), 0);
    tw_transport_write(t, big, sizeof big);
    ck_assert_int_eq(tp.pauses, 1);
    long long deadline = tu_now_ms() + 5000;
    while (tp.resumes == 0 && tu_now_ms() < deadline) {
        drain_peer(peer);
        tw_reactor_iterate(r, 0.001);
    }
    ck_assert_int_eq(tp.resumes, 1);
    ck_assert_int_eq(rf.pauses, 0);
    ck_assert_int_eq(rf.resumes, 0);
    /* Unregistered, the protocol is the one paused again. */
    tw_transport_unregister_producer(t);
    tw_transport_write(t, big, sizeof big);
    ck_assert_int_eq(rf.pauses, 1);
    ck_assert_int_eq(tp.pauses, 1);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_a_pull_producer_is_asked_for_each_piece)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int peer;
    adopt_pair(r, &rf, &peer);
    tw_transport *t = rf.last->transport;
    test_producer tp = {{&prod_ops}, t, 0, 0, 0, 20};
    ck_assert_int_eq(tw_transport_register_producer(t, &tp.base, 0), 0);
    ck_assert_int_eq(tp.resumes, 0); /* the first pull comes from the loop */
    size_t got = 0;
    long long deadline = tu_now_ms() + 5000;
    while (got < 20000 && tu_now_ms() < deadline) {
        tw_reactor_iterate(r, 0.001);
        got += drain_peer(peer);
    }
    ck_assert_uint_eq(got, 20000);
    ck_assert_int_eq(tp.resumes, 20);
    ck_assert_int_eq(tp.pieces_left, 0);
    close(peer);
    spin(r, &rf.destroyed, 2000);
    ck_assert_int_eq(tp.stops, 0); /* it unregistered itself before the end */
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_lose_write_connection_shuts_down_writing_after_the_flush)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int peer;
    adopt_pair(r, &rf, &peer);
    tw_transport *t = rf.last->transport;
    tw_transport_write(t, big, sizeof big);
    ck_assert_int_eq(tw_transport_lose_write_connection(t), 0);
    ck_assert_int_eq(tw_transport_write(t, "late", 4), TW_ESTATE);
    size_t got = 0;
    int eof = 0;
    long long deadline = tu_now_ms() + 5000;
    while (!eof && tu_now_ms() < deadline) {
        tw_reactor_iterate(r, 0.001);
        char buf[65536];
        ssize_t n;
        while ((n = recv(peer, buf, sizeof buf, MSG_DONTWAIT)) > 0)
            got += (size_t)n;
        eof = n == 0;
    }
    ck_assert(eof);
    ck_assert_uint_eq(got, sizeof big);
    /* Reading still works after our half-close. */
    send(peer, "still", 5, 0);
    int five = 0;
    deadline = tu_now_ms() + 2000;
    while (rf.received < 5 && tu_now_ms() < deadline)
        spin(r, &five, 5);
    ck_assert_uint_eq(rf.received, 5);
    int saw_write_lost = 0;
    for (int i = 0; i < rf.nevents; i++)
        saw_write_lost |= rf.events[i] == EV_WRITE_LOST;
    ck_assert(saw_write_lost);
    ck_assert_int_eq(rf.destroyed, 0);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_a_half_close_protocol_gets_read_connection_lost_and_can_still_write)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    rf.half_close = 1;
    int peer;
    adopt_pair(r, &rf, &peer);
    tw_transport *t = rf.last->transport;
    send(peer, "question", 8, 0);
    shutdown(peer, SHUT_WR);
    spin_ms(r, 50);
    ck_assert_int_eq(rf.events[rf.nevents - 1], EV_READ_LOST);
    ck_assert_int_eq(rf.destroyed, 0);
    ck_assert_int_eq(tw_transport_write(t, "answer", 6), 0);
    tw_transport_lose_connection(t);
    char buf[8];
    ck_assert_uint_eq(tu_read_exact(peer, buf, 6, 2000), 6);
    ck_assert(memcmp(buf, "answer", 6) == 0);
    spin(r, &rf.destroyed, 2000);
    ck_assert_int_eq(rf.lost_code, TW_EDONE);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_without_opting_in_eof_closes_the_connection)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int peer;
    adopt_pair(r, &rf, &peer);
    shutdown(peer, SHUT_WR);
    spin(r, &rf.destroyed, 2000);
    ck_assert_int_eq(rf.destroyed, 1);
    ck_assert_int_eq(rf.lost_code, TW_EDONE);
    close(peer);
    tw_reactor_free(r);
}
END_TEST

static int log_records;
static char last_log[512];

static void count_log(tw_log_level level, const char *sys, const char *msg, void *arg)
{
    (void)level;
    (void)sys;
    (void)arg;
    log_records++;
    snprintf(last_log, sizeof last_log, "%s", msg);
}

START_TEST(test_connections_past_the_limit_are_closed_counted_and_logged_once)
{
    tw_log_set_handler(count_log, NULL);
    log_records = 0;
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    tw_listen_options o;
    tw_listen_options_init(&o);
    o.max_connections = 2;
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, &o, &port);
    int c[5];
    for (int i = 0; i < 5; i++) {
        c[i] = tu_connect("127.0.0.1", port);
        spin_ms(r, 10);
    }
    ck_assert_int_eq(rf.built, 2);
    ck_assert_uint_eq(tw_listener_connections(l), 2);
    ck_assert_uint_eq(tw_listener_rejected(l), 3);
    for (int i = 2; i < 5; i++)
        ck_assert_int_eq(tu_wait_eof(c[i], 1000), 1); /* not left hanging */
    ck_assert_int_eq(log_records, 1); /* rate-limited */
    ck_assert_ptr_nonnull(strstr(last_log, "refused"));
    /* A slot frees up: the next client is served. */
    close(c[0]);
    spin(r, &rf.destroyed, 2000);
    int d = tu_connect("127.0.0.1", port);
    int three = 0;
    long long deadline = tu_now_ms() + 2000;
    while (rf.built < 3 && tu_now_ms() < deadline)
        spin(r, &three, 5);
    ck_assert_int_eq(rf.built, 3);
    for (int i = 1; i < 5; i++)
        close(c[i]);
    close(d);
    tw_listener_close(l);
    tw_reactor_free(r);
    tw_log_set_handler(NULL, NULL);
}
END_TEST

START_TEST(test_silent_connections_are_closed_after_the_idle_timeout)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    tw_listen_options o;
    tw_listen_options_init(&o);
    o.idle_timeout = 0.3;
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, &o, &port);
    int quiet = tu_connect("127.0.0.1", port);
    int chatty = tu_connect("127.0.0.1", port);
    long long t0 = tu_now_ms();
    while (rf.destroyed == 0 && tu_now_ms() - t0 < 3000) {
        send(chatty, "x", 1, MSG_NOSIGNAL);
        spin_ms(r, 50);
    }
    long long took = tu_now_ms() - t0;
    ck_assert_int_eq(rf.destroyed, 1);
    ck_assert_int_eq(rf.lost_code, TW_EIDLE);
    ck_assert_int_ge(took, 280);
    ck_assert_int_le(took, 1500);
    ck_assert_int_eq(tu_wait_eof(quiet, 1000), 1);
    ck_assert_uint_eq(tw_listener_connections(l), 1); /* the chatty one stays */
    close(quiet);
    close(chatty);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_a_reset_reaches_connection_lost_naming_econnreset)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, NULL, &port);
    int c = tu_connect("127.0.0.1", port);
    spin(r, &rf.built, 2000);
    /* Unread data plus linger 0 makes close() send an RST. */
    tw_transport_write(rf.last->transport, "unread", 6);
    usleep(20000);
    struct linger lg = {1, 0};
    setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c);
    spin(r, &rf.destroyed, 2000);
    ck_assert_int_eq(rf.lost_code, -ECONNRESET);
    ck_assert_ptr_nonnull(strstr(rf.lost_message, "ECONNRESET"));
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

/*
 * Descriptor exhaustion, in a child whose RLIMIT_NOFILE is tiny. The child
 * runs a listener until the parent's clients have all been dealt with, and
 * reports through its exit status: 0 when waiting clients were closed (not
 * left hanging), the error was logged once, and the loop did not spin.
 */
static int emfile_logs;

static void count_emfile(tw_log_level level, const char *sys, const char *msg, void *arg)
{
    (void)level;
    (void)sys;
    (void)arg;
    if (strstr(msg, "Too many open files") != NULL)
        emfile_logs++;
}

static void stop_cb(void *arg)
{
    tw_reactor_stop(arg);
}

START_TEST(test_running_out_of_descriptors_sheds_waiting_clients_without_spinning)
{
    int ready[2];
    ck_assert_int_eq(pipe(ready), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(ready[0]);
        tw_log_set_handler(count_emfile, NULL);
        tw_reactor *r = tw_reactor_new();
        rec_factory rf;
        rec_init(&rf, r);
        int port;
        tw_listener *l = listen_on(r, "127.0.0.1", &rf, NULL, &port);
        /* Use up every descriptor the limit allows. */
        struct rlimit rl = {64, 64};
        setrlimit(RLIMIT_NOFILE, &rl);
        while (open("/dev/null", O_RDONLY) >= 0)
            ;
        if (write(ready[1], &port, sizeof port) != sizeof port)
            _exit(10);
        tw_reactor_call_later(r, 1.5, stop_cb, r, NULL);
        struct tms before, after;
        times(&before);
        tw_reactor_run(r);
        times(&after);
        long ticks = sysconf(_SC_CLK_TCK);
        double cpu = (double)(after.tms_utime - before.tms_utime + after.tms_stime -
                              before.tms_stime) /
                     (double)ticks;
        tw_listener_close(l);
        tw_reactor_free(r);
        if (emfile_logs != 1)
            _exit(11);
        if (cpu > 0.5) /* a busy loop would burn the whole 1.5 s */
            _exit(12);
        _exit(0);
    }
    close(ready[1]);
    int port = 0;
    ck_assert_int_eq(read(ready[0], &port, sizeof port), (ssize_t)sizeof port);
    int c[5];
    for (int i = 0; i < 5; i++) {
        c[i] = tu_connect("127.0.0.1", port);
        ck_assert_int_ge(c[i], 0);
    }
    for (int i = 0; i < 5; i++) {
        int rc = tu_wait_eof(c[i], 1200);
        ck_assert_msg(rc == 1 || rc == -ECONNRESET, "client %d left hanging (%d)", i, rc);
        close(c[i]);
    }
    int status = tu_wait_child(pid, 5000);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    close(ready[0]);
}
END_TEST

static Suite *flow_suite(void)
{
    Suite *s = suite_create("flow");
    TCase *tc = tcase_create("producers");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_crossing_the_high_watermark_pauses_and_draining_resumes);
    tcase_add_test(tc, test_watermarks_are_configurable);
    tcase_add_test(tc, test_a_paused_transport_stops_reading);
    tcase_add_test(tc, test_a_streaming_producer_is_paused_resumed_and_stopped);
    tcase_add_test(tc, test_only_the_registered_producer_is_paused_and_resumed);
    tcase_add_test(tc, test_a_pull_producer_is_asked_for_each_piece);
    suite_add_tcase(s, tc);

    TCase *hc = tcase_create("half-close");
    tcase_set_timeout(hc, 30);
    tcase_add_test(hc, test_lose_write_connection_shuts_down_writing_after_the_flush);
    tcase_add_test(hc, test_a_half_close_protocol_gets_read_connection_lost_and_can_still_write);
    tcase_add_test(hc, test_without_opting_in_eof_closes_the_connection);
    suite_add_tcase(s, hc);

    TCase *lc = tcase_create("limits");
    tcase_set_timeout(lc, 30);
    tcase_add_test(lc, test_connections_past_the_limit_are_closed_counted_and_logged_once);
    tcase_add_test(lc, test_silent_connections_are_closed_after_the_idle_timeout);
    tcase_add_test(lc, test_a_reset_reaches_connection_lost_naming_econnreset);
    tcase_add_test(lc, test_running_out_of_descriptors_sheds_waiting_clients_without_spinning);
    suite_add_tcase(s, lc);
    return s;
}

int main(void)
{
    memset(big, 'b', sizeof big);
    SRunner *sr = srunner_create(flow_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
