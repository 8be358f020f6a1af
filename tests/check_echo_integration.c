/* SPDX-License-Identifier: MIT */
/*
 * The real reactord serving echo on an ephemeral loopback port: byte-exact
 * large round trips, many clients at once, a client that vanishes with an
 * RST mid-write, graceful SIGTERM, and the operator's error sentences.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <twine.h>

#include "testutil.h"

static tu_reactord d;

static void start_echo(void)
{
    const char *args[] = {"--protocol", "echo", "--port", "0", "--interface", "127.0.0.1", NULL};
    if (tu_reactord_start(&d, args) < 0)
        ck_abort_msg("reactord did not start: %s", d.log);
}

static void stop_echo(void)
{
    if (d.pid > 0) {
        kill(d.pid, SIGKILL);
        waitpid(d.pid, NULL, 0);
        d.pid = -1;
    }
    close(d.err_fd);
}

/* Send @p len bytes and read them back, interleaved so neither side's
 * buffers fill up. Returns the bytes that came back equal. */
static size_t round_trip(int fd, const unsigned char *data, size_t len, unsigned char *back)
{
    size_t sent = 0, got = 0;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    long long deadline = tu_now_ms() + 20000;
    while (got < len && tu_now_ms() < deadline) {
        struct pollfd pfd = {fd, (short)(POLLIN | (sent < len ? POLLOUT : 0)), 0};
        poll(&pfd, 1, 100);
        if (sent < len && (pfd.revents & POLLOUT)) {
            ssize_t w = send(fd, data + sent, len - sent, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv(fd, back + got, len - got, 0);
            if (n == 0)
                break;
            if (n > 0)
                got += (size_t)n;
        }
    }
    return got;
}

START_TEST(test_one_mib_round_trip_is_byte_exact)
{
    start_echo();
    size_t len = 1 << 20;
    unsigned char *data = malloc(len), *back = malloc(len);
    unsigned x = 12345;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        data[i] = (unsigned char)(x >> 16);
    }
    int fd = tu_connect("127.0.0.1", d.port);
    ck_assert_int_ge(fd, 0);
    ck_assert_uint_eq(round_trip(fd, data, len, back), len);
    ck_assert(memcmp(data, back, len) == 0);
    close(fd);
    free(data);
    free(back);
    stop_echo();
}
END_TEST

START_TEST(test_two_hundred_clients_are_served_at_the_same_time)
{
    start_echo();
    enum { N = 200 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tu_connect("127.0.0.1", d.port);
        ck_assert_int_ge(fds[i], 0);
    }
    /* Every client speaks before any reads: a server that served one client
     * at a time would never answer the second while the first stays open. */
    char msg[32], back[32];
    for (int i = 0; i < N; i++) {
        int n = snprintf(msg, sizeof msg, "client %03d", i);
        ck_assert_int_eq(tu_write_all(fds[i], msg, (size_t)n), 0);
    }
    for (int i = N - 1; i >= 0; i--) {
        int n = snprintf(msg, sizeof msg, "client %03d", i);
        ck_assert_uint_eq(tu_read_exact(fds[i], back, (size_t)n, 5000), (size_t)n);
        ck_assert(memcmp(msg, back, (size_t)n) == 0);
    }
    for (int i = 0; i < N; i++)
        close(fds[i]);
    stop_echo();
}
END_TEST

START_TEST(test_a_client_reset_mid_write_leaves_the_others_served)
{
    start_echo();
    int steady = tu_connect("127.0.0.1", d.port);
    int rude = tu_connect("127.0.0.1", d.port);
    ck_assert_int_ge(steady, 0);
    ck_assert_int_ge(rude, 0);
    /* The rude client floods without reading, then resets. */
    char *junk = calloc(1, 1 << 20);
    fcntl(rude, F_SETFL, O_NONBLOCK);
    for (int i = 0; i < 8; i++)
        send(rude, junk, 1 << 20, MSG_NOSIGNAL);
    struct linger lg = {1, 0};
    setsockopt(rude, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(rude);
    free(junk);
    usleep(50000);

    char back[5];
    ck_assert_int_eq(tu_write_all(steady, "alive", 5), 0);
    ck_assert_uint_eq(tu_read_exact(steady, back, 5, 5000), 5);
    ck_assert(memcmp(back, "alive", 5) == 0);
    int fresh = tu_connect("127.0.0.1", d.port);
    ck_assert_int_ge(fresh, 0);
    ck_assert_int_eq(tu_write_all(fresh, "again", 5), 0);
    ck_assert_uint_eq(tu_read_exact(fresh, back, 5, 5000), 5);
    ck_assert_int_eq(waitpid(d.pid, NULL, WNOHANG), 0); /* still running */
    close(steady);
    close(fresh);
    stop_echo();
}
END_TEST

START_TEST(test_sigterm_makes_reactord_exit_zero)
{
    start_echo();
    int fd = tu_connect("127.0.0.1", d.port);
    ck_assert_int_eq(tu_write_all(fd, "x", 1), 0);
    char c;
    ck_assert_uint_eq(tu_read_exact(fd, &c, 1, 5000), 1);
    kill(d.pid, SIGTERM);
    /* The open connection is closed cleanly, then the process exits 0. */
    ck_assert_int_eq(tu_wait_eof(fd, 5000), 1);
    int status = tu_wait_child(d.pid, 10000);
    d.pid = -1;
    ck_assert(status != -1 && WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    close(fd);
    close(d.err_fd);
}
END_TEST

START_TEST(test_unknown_protocol_exits_64_listing_the_known_ones)
{
    const char *args[] = {"--protocol", "gopher", "--port", "0", NULL};
    char err[1024];
    int status = tu_run_reactord(args, err, sizeof err, 5000);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 64);
    ck_assert_ptr_nonnull(strstr(err, "unknown protocol 'gopher'"));
    ck_assert_ptr_nonnull(strstr(err, "echo"));
    ck_assert_ptr_eq(strchr(err, '\n'), err + strlen(err) - 1); /* one sentence, one line */
}
END_TEST

START_TEST(test_port_in_use_exits_nonzero_naming_the_address)
{
    start_echo();
    char port[16];
    snprintf(port, sizeof port, "%d", d.port);
    const char *args[] = {"--protocol", "echo", "--port", port, "--interface", "127.0.0.1", NULL};
    char err[1024], want[64];
    int status = tu_run_reactord(args, err, sizeof err, 5000);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 69);
    snprintf(want, sizeof want, "127.0.0.1:%d", d.port);
    ck_assert_ptr_nonnull(strstr(err, want));
    ck_assert_ptr_nonnull(strstr(err, "in use"));
    stop_echo();
}
END_TEST

START_TEST(test_help_and_version_exit_zero)
{
    const char *help[] = {"--help", NULL};
    const char *version[] = {"--version", NULL};
    char out[4096];
    int status = tu_run_reactord(help, out, sizeof out, 5000);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_ptr_nonnull(strstr(out, "Usage: "));
    ck_assert_ptr_nonnull(strstr(out, "--protocol"));
    status = tu_run_reactord(version, out, sizeof out, 5000);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_ptr_nonnull(strstr(out, tw_version()));
}
END_TEST

START_TEST(test_usage_errors_exit_64)
{
    const char *noproto[] = {"--port", "0", NULL};
    const char *badport[] = {"--protocol", "echo", "--port", "70000", NULL};
    const char *badopt[] = {"--protocol", "echo", "--port", "0", "--frobnicate", NULL};
    const char *const *cases[] = {noproto, badport, badopt};
    for (int i = 0; i < 3; i++) {
        char err[512];
        int status = tu_run_reactord(cases[i], err, sizeof err, 5000);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 64);
        ck_assert_ptr_nonnull(strstr(err, "reactord: "));
    }
}
END_TEST

static Suite *echo_suite(void)
{
    Suite *s = suite_create("echo-integration");
    TCase *tc = tcase_create("reactord");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_one_mib_round_trip_is_byte_exact);
    tcase_add_test(tc, test_two_hundred_clients_are_served_at_the_same_time);
    tcase_add_test(tc, test_a_client_reset_mid_write_leaves_the_others_served);
    tcase_add_test(tc, test_sigterm_makes_reactord_exit_zero);
    tcase_add_test(tc, test_unknown_protocol_exits_64_listing_the_known_ones);
    tcase_add_test(tc, test_port_in_use_exits_nonzero_naming_the_address);
    tcase_add_test(tc, test_help_and_version_exit_zero);
    tcase_add_test(tc, test_usage_errors_exit_64);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(echo_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
