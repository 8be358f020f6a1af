/* SPDX-License-Identifier: MIT */
/*
 * reactord as a service manager runs it: the sd_notify datagrams it sends
 * (READY=1 once it serves, STOPPING=1 when it drains), its log lines when
 * standard error is the journal (JOURNAL_STREAM), --syslog, and --check,
 * which says whether a command line would start without starting it. The
 * service manager's side is played by this test: a datagram socket of its
 * own for NOTIFY_SOCKET, and a pipe whose identity it puts in
 * JOURNAL_STREAM. Loopback and a private temporary directory only; every
 * wait is bounded.
 */
#include "config.h"

#include <check.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

static char tmpdir[64];

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/twsvcXXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char path[128];
    const char *names[] = {"notify.sock", "echo.pid", "echo.log"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
}

static const char *plugins(void)
{
    const char *d = getenv("TWINE_TEST_PLUGINS");
    return d != NULL ? d : "tests/plugins/.libs";
}

/* Bind the service manager's notification socket, at a path in tmpdir or,
 * with @p abstract, at an abstract name; export it as NOTIFY_SOCKET. */
static int notify_socket(int abstract)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    char name[108];
    socklen_t len;
    if (abstract) {
        snprintf(name, sizeof name, "@twine-notify-%ld", (long)getpid());
        memcpy(a.sun_path, name, strlen(name));
        a.sun_path[0] = '\0';
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(name));
    } else {
        snprintf(name, sizeof name, "%s/notify.sock", tmpdir);
        memcpy(a.sun_path, name, strlen(name) + 1);
        len = sizeof a;
    }
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, len), 0);
    setenv("NOTIFY_SOCKET", name, 1);
    return fd;
}

/* One datagram within @p timeout_ms into @p buf; 0 when none came. */
static size_t read_notification(int fd, char *buf, size_t len, int timeout_ms)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    if (poll(&pfd, 1, timeout_ms) != 1)
        return buf[0] = '\0', 0;
    ssize_t n = recv(fd, buf, len - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return n > 0 ? (size_t)n : 0;
}

/* Whether @p state holds the assignment @p line, as a whole line. */
static int has_line(const char *state, const char *line)
{
    size_t n = strlen(line);
    for (const char *at = state; (at = strstr(at, line)) != NULL; at++)
        if ((at == state || at[-1] == '\n') && (at[n] == '\n' || at[n] == '\0'))
            return 1;
    return 0;
}

static int stop(tu_reactord *d)
{
    kill(d->pid, SIGTERM);
    int status = tu_wait_child(d->pid, 10000);
    tu_reactord_read_log(d);
    close(d->err_fd);
    return status;
}

/* ------------------------------------------------------------ sd_notify */

START_TEST(test_ready_is_sent_once_listening_and_stopping_on_sigterm)
{
    int nfd = notify_socket(0);
    tu_reactord d;
    const char *args[] = {"-p", "echo", "-l", "tcp:0:interface=127.0.0.1", NULL};
    ck_assert_msg(tu_reactord_start(&d, args) == 0, "reactord did not start:\n%s", d.log);
    char state[512];
    ck_assert_uint_gt(read_notification(nfd, state, sizeof state, 5000), 0);
    ck_assert_msg(has_line(state, "READY=1"), "no READY=1 in '%s'", state);
    char pid[32];
    snprintf(pid, sizeof pid, "MAINPID=%ld", (long)d.pid);
    ck_assert_msg(has_line(state, pid), "no %s in '%s'", pid, state);
    /* Ready means reachable: the port takes a connection now. */
    int c = tu_connect("127.0.0.1", d.port);
    ck_assert_int_ge(c, 0);
    close(c);
    /* NOTIFY_SOCKET is reactord's alone: nothing else it runs sends. */
    ck_assert_uint_eq(read_notification(nfd, state, sizeof state, 200), 0);

    kill(d.pid, SIGTERM);
    ck_assert_uint_gt(read_notification(nfd, state, sizeof state, 5000), 0);
    ck_assert_msg(has_line(state, "STOPPING=1"), "no STOPPING=1 in '%s'", state);
    int status = tu_wait_child(d.pid, 10000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    close(d.err_fd);
    close(nfd);
}
END_TEST

START_TEST(test_ready_reaches_an_abstract_notify_socket)
{
    int nfd = notify_socket(1);
    tu_reactord d;
    const char *args[] = {"-p", "echo", "-l", "tcp:0:interface=127.0.0.1", NULL};
    ck_assert_msg(tu_reactord_start(&d, args) == 0, "reactord did not start:\n%s", d.log);
    char state[512];
    ck_assert_uint_gt(read_notification(nfd, state, sizeof state, 5000), 0);
    ck_assert_msg(has_line(state, "READY=1"), "no READY=1 in '%s'", state);
    ck_assert_int_eq(WEXITSTATUS(stop(&d)), 0);
    close(nfd);
}
END_TEST

START_TEST(test_with_workers_the_supervisor_is_ready_once_every_worker_runs)
{
    int nfd = notify_socket(0);
    tu_reactord d;
    const char *args[] = {"-p", "echo", "-l", "tcp:0:interface=127.0.0.1", "--workers", "3",
                          NULL};
    ck_assert_msg(tu_reactord_start(&d, args) == 0, "reactord did not start:\n%s", d.log);
    char state[512];
    ck_assert_uint_gt(read_notification(nfd, state, sizeof state, 10000), 0);
    tu_reactord_read_log(&d);
    ck_assert_msg(has_line(state, "READY=1"), "no READY=1 in '%s'", state);
    ck_assert_msg(strstr(d.log, "all 3 workers running") != NULL,
                  "READY=1 came before every worker ran:\n%s", d.log);
    char pid[32];
    snprintf(pid, sizeof pid, "MAINPID=%ld", (long)d.pid);
    ck_assert_msg(has_line(state, pid), "no %s (the supervisor) in '%s'", pid, state);
    /* The workers do not speak for the service. */
    ck_assert_uint_eq(read_notification(nfd, state, sizeof state, 300), 0);

    kill(d.pid, SIGTERM);
    ck_assert_uint_gt(read_notification(nfd, state, sizeof state, 5000), 0);
    ck_assert_msg(has_line(state, "STOPPING=1"), "no STOPPING=1 in '%s'", state);
    int status = tu_wait_child(d.pid, 15000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d", status);
    /* Nothing after STOPPING=1 either: the workers' drains are silent. */
    ck_assert_uint_eq(read_notification(nfd, state, sizeof state, 100), 0);
    close(d.err_fd);
    close(nfd);
}
END_TEST

START_TEST(test_a_daemon_names_itself_as_the_main_process)
{
    int nfd = notify_socket(0);
    char pidfile[128], log[128], out[2048];
    snprintf(pidfile, sizeof pidfile, "%s/echo.pid", tmpdir);
    snprintf(log, sizeof log, "%s/echo.log", tmpdir);
    const char *args[] = {"-p", "echo", "-l", "tcp:0:interface=127.0.0.1", "--daemon",
                          "--pidfile", pidfile, "--logfile", log, NULL};
    int status = tu_run_reactord(args, out, sizeof out, 10000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", out);
    char state[512];
    ck_assert_uint_gt(read_notification(nfd, state, sizeof state, 5000), 0);
    FILE *f = fopen(pidfile, "r");
    ck_assert_ptr_nonnull(f);
    long daemon_pid = 0;
    ck_assert_int_eq(fscanf(f, "%ld", &daemon_pid), 1);
    fclose(f);
    char pid[32];
    snprintf(pid, sizeof pid, "MAINPID=%ld", daemon_pid);
    ck_assert_msg(has_line(state, "READY=1") && has_line(state, pid), "'%s', daemon %ld", state,
                  daemon_pid);
    kill((pid_t)daemon_pid, SIGTERM);
    ck_assert_uint_gt(read_notification(nfd, state, sizeof state, 5000), 0);
    ck_assert_msg(has_line(state, "STOPPING=1"), "no STOPPING=1 in '%s'", state);
    for (int i = 0; i < 100 && kill((pid_t)daemon_pid, 0) == 0; i++)
        usleep(50000);
    ck_assert_int_ne(kill((pid_t)daemon_pid, 0), 0);
    close(nfd);
}
END_TEST

START_TEST(test_an_unusable_notify_socket_is_a_warning_not_a_failure)
{
    setenv("NOTIFY_SOCKET", "relative/notify.sock", 1);
    tu_reactord d;
    const char *args[] = {"-p", "echo", "-l", "tcp:0:interface=127.0.0.1", NULL};
    ck_assert_msg(tu_reactord_start(&d, args) == 0, "reactord did not start:\n%s", d.log);
    ck_assert_msg(strstr(d.log, "NOTIFY_SOCKET='relative/notify.sock' is not") != NULL, "%s",
                  d.log);
    ck_assert_int_eq(WEXITSTATUS(stop(&d)), 0);
}
END_TEST

/* ------------------------------------------------------------ journal */

/* Start reactord with stderr on a pipe; JOURNAL_STREAM names that pipe, or
 * with @p other, another stream. @return the pid; *fd reads its stderr. */
static pid_t spawn_journaled(const char *const *args, int other, int *fd)
{
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    struct stat st;
    ck_assert_int_eq(fstat(p[1], &st), 0);
    char stream[64];
    snprintf(stream, sizeof stream, "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + (other ? 1 : 0));
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        setenv("JOURNAL_STREAM", stream, 1);
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        close(p[1]);
        const char *argv[16] = {getenv("REACTORD") ? getenv("REACTORD") : "./reactord"};
        for (size_t i = 0; args[i] != NULL && i < 14; i++)
            argv[i + 1] = args[i];
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    *fd = p[0];
    return pid;
}

/* Read @p fd until @p want appears or EOF, within 10 s, into @p buf. */
static void read_until(int fd, char *buf, size_t len, const char *want)
{
    size_t at = 0;
    long long deadline = tu_now_ms() + 10000;
    buf[0] = '\0';
    while (at + 1 < len && tu_now_ms() < deadline && (want == NULL || !strstr(buf, want))) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) != 1)
            continue;
        ssize_t n = read(fd, buf + at, len - 1 - at);
        if (n <= 0)
            break;
        at += (size_t)n;
        buf[at] = '\0';
    }
}

/* Every line of @p log starts with @p prefix ("<6>", ...) or one of them. */
static void assert_every_line_has_a_priority(const char *log)
{
    for (const char *line = log; *line != '\0';) {
        const char *end = strchr(line, '\n');
        ck_assert_msg(end != NULL, "an unfinished line: '%s'", line);
        ck_assert_msg(line[0] == '<' && line[1] >= '0' && line[1] <= '7' && line[2] == '>',
                      "a line without a priority: '%.*s'", (int)(end - line), line);
        line = end + 1;
    }
}

START_TEST(test_lines_carry_priorities_when_stderr_is_the_journal)
{
    int fd;
    const char *args[] = {"-p", "echo", "-l", "tcp:0:interface=127.0.0.1", "--log-level",
                          "debug", NULL};
    pid_t pid = spawn_journaled(args, 0, &fd);
    char log[8192];
    read_until(fd, log, sizeof log, "serving protocol");
    ck_assert_msg(strstr(log, "<6>reactord: echo listening on 127.0.0.1:") != NULL, "%s", log);
    kill(pid, SIGTERM);
    int status = tu_wait_child(pid, 10000);
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    size_t have = strlen(log);
    read_until(fd, log + have, sizeof log - have, NULL);
    close(fd);
    /* The journal stamps the time itself: no timestamp of ours. */
    ck_assert_msg(strstr(log, "<6>reactord: stopped\n") != NULL, "%s", log);
    assert_every_line_has_a_priority(log);
}
END_TEST

START_TEST(test_a_fatal_sentence_in_the_journal_has_error_priority)
{
    int fd;
    const char *args[] = {"-p", "nosuchprotocol", "-l", "tcp:0", NULL};
    pid_t pid = spawn_journaled(args, 0, &fd);
    char log[4096];
    read_until(fd, log, sizeof log, NULL);
    int status = tu_wait_child(pid, 10000);
    close(fd);
    ck_assert_int_eq(WEXITSTATUS(status), 64);
    ck_assert_msg(strncmp(log, "<3>reactord: unknown protocol 'nosuchprotocol'", 46) == 0, "%s",
                  log);
    assert_every_line_has_a_priority(log);
}
END_TEST

START_TEST(test_a_journal_stream_that_is_not_stderr_is_ignored)
{
    int fd;
    const char *args[] = {"-p", "echo", "-l", "tcp:0:interface=127.0.0.1", NULL};
    pid_t pid = spawn_journaled(args, 1, &fd);
    char log[8192];
    read_until(fd, log, sizeof log, "serving protocol");
    kill(pid, SIGTERM);
    tu_wait_child(pid, 10000);
    close(fd);
    ck_assert_msg(strstr(log, "listening on 127.0.0.1:") != NULL, "%s", log);
    /* The usual text records: a timestamp first, no priority. */
    ck_assert_msg(log[0] >= '0' && log[0] <= '9' && strstr(log, "<6>") == NULL, "%s", log);
}
END_TEST

/* ------------------------------------------------------------ syslog */

START_TEST(test_syslog_takes_the_records_off_stderr)
{
    /* The notification, not a log line, says when it serves. */
    int nfd = notify_socket(0);
    char out[4096];
    const char *args[] = {"-p", "echo", "-l", "tcp:0:interface=127.0.0.1", "--syslog", NULL};
    /* tu_reactord_start waits for a "listening" line that never comes;
     * run it by hand instead. */
    int p[2];
    ck_assert_int_eq(pipe(p), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        close(p[0]);
        close(p[1]);
        const char *argv[8] = {getenv("REACTORD") ? getenv("REACTORD") : "./reactord"};
        memcpy(argv + 1, args, 6 * sizeof *argv);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    char state[512];
    ck_assert_uint_gt(read_notification(nfd, state, sizeof state, 5000), 0);
    ck_assert(has_line(state, "READY=1"));
    kill(pid, SIGHUP); /* logged, and reopens nothing */
    kill(pid, SIGTERM);
    int status = tu_wait_child(pid, 10000);
    ck_assert_int_eq(WEXITSTATUS(status), 0);
    read_until(p[0], out, sizeof out, NULL);
    close(p[0]);
    close(nfd);
    ck_assert_msg(out[0] == '\0', "--syslog wrote to stderr: '%s'", out);
}
END_TEST

START_TEST(test_syslog_with_a_logfile_or_json_is_a_usage_error)
{
    char err[1024];
    const char *both[] = {"-p", "echo", "--port", "0", "--syslog", "--logfile", "x.log", NULL};
    int status = tu_run_reactord(both, err, sizeof err, 5000);
    ck_assert_int_eq(WEXITSTATUS(status), 64);
    ck_assert_msg(strstr(err, "--syslog and --logfile") != NULL, "%s", err);
    const char *json[] = {"-p", "echo", "--port", "0", "--syslog", "--log-format", "json", NULL};
    status = tu_run_reactord(json, err, sizeof err, 5000);
    ck_assert_int_eq(WEXITSTATUS(status), 64);
    ck_assert_msg(strstr(err, "--log-format json") != NULL, "%s", err);
}
END_TEST

/* ------------------------------------------------------------ --check */

START_TEST(test_check_accepts_a_valid_configuration_without_binding)
{
    /* Its port is taken: a start would fail with 69, a check does not bind. */
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(l, 1), 0);
    socklen_t len = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &len);
    char ep[64], pidfile[128], out[2048];
    snprintf(ep, sizeof ep, "tcp:%d:interface=127.0.0.1", ntohs(a.sin_port));
    snprintf(pidfile, sizeof pidfile, "%s/echo.pid", tmpdir);
    const char *args[] = {"-p", "line", "-l", ep, "-o", "max-length=64", "--pidfile", pidfile,
                          "--check", NULL};
    int status = tu_run_reactord(args, out, sizeof out, 5000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%d: %s", status, out);
    ck_assert_msg(strstr(out, "the configuration is valid: protocol 'line' (built-in) on tcp:") !=
                      NULL, "%s", out);
    ck_assert_msg(strstr(out, "listening") == NULL, "it listened: %s", out);
    struct stat st;
    ck_assert_msg(stat(pidfile, &st) < 0, "--check wrote the pidfile");
    /* And the same line without --check is refused: the port is taken. */
    args[8] = NULL;
    status = tu_run_reactord(args, out, sizeof out, 5000);
    ck_assert_msg(WEXITSTATUS(status) == 69, "%d: %s", status, out);
    close(l);
}
END_TEST

START_TEST(test_check_refuses_an_unknown_module_option)
{
    char out[2048];
    const char *args[] = {"-p", "echo", "--port", "0", "-o", "colour=blue", "-t", NULL};
    int status = tu_run_reactord(args, out, sizeof out, 5000);
    ck_assert_int_eq(WEXITSTATUS(status), 64);
    ck_assert_msg(strstr(out, "unknown option 'colour'") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "is valid") == NULL, "%s", out);
}
END_TEST

START_TEST(test_check_asks_the_module_about_its_option_values)
{
    /* The table takes any string; only the module knows "cr" is wrong. */
    char out[2048];
    const char *args[] = {"-p", "line", "--port", "0", "-o", "delimiter=cr", "--check", NULL};
    int status = tu_run_reactord(args, out, sizeof out, 5000);
    ck_assert_msg(WEXITSTATUS(status) == 78, "%d: %s", status, out);
    ck_assert_msg(strstr(out, "option 'delimiter' must be 'lf' or 'crlf'") != NULL, "%s", out);
}
END_TEST

START_TEST(test_check_refuses_a_bad_endpoint_and_an_unknown_user)
{
    char out[2048];
    const char *ep[] = {"-p", "echo", "-l", "tcp:notaport", "--check", NULL};
    int status = tu_run_reactord(ep, out, sizeof out, 5000);
    ck_assert_msg(WEXITSTATUS(status) == 64, "%d: %s", status, out);
    const char *user[] = {"-p", "echo", "--port", "0", "--user", "no-such-user-twine", "--check",
                          NULL};
    status = tu_run_reactord(user, out, sizeof out, 5000);
    ck_assert_msg(WEXITSTATUS(status) == 67, "%d: %s", status, out);
}
END_TEST

START_TEST(test_check_reports_a_module_that_crashes_as_it_starts)
{
    char out[2048];
    const char *args[] = {"-p", "crash", "--plugin-path", plugins(), "--port", "0", "--check",
                          NULL};
    int status = tu_run_reactord(args, out, sizeof out, 5000);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 70, "%d: %s", status, out);
    ck_assert_msg(strstr(out, "crashed with signal") != NULL, "%s", out);
}
END_TEST

START_TEST(test_check_takes_a_systemd_endpoint_on_its_syntax_away_from_systemd)
{
    char out[2048];
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_PID");
    const char *args[] = {"-p", "echo", "-l", "systemd:domain=INET:index=0", "--check", NULL};
    int status = tu_run_reactord(args, out, sizeof out, 5000);
    ck_assert_msg(WEXITSTATUS(status) == 0, "%d: %s", status, out);
    ck_assert_msg(strstr(out, "checked against the sockets systemd passes") != NULL, "%s", out);
    const char *bad[] = {"-p", "echo", "-l", "systemd:domain=IPX:index=0", "--check", NULL};
    status = tu_run_reactord(bad, out, sizeof out, 5000);
    ck_assert_msg(WEXITSTATUS(status) == 64, "%d: %s", status, out);
}
END_TEST

static Suite *service_suite(void)
{
    Suite *s = suite_create("reactord_service");
    TCase *n = tcase_create("notify");
    tcase_add_checked_fixture(n, setup, teardown);
    tcase_set_timeout(n, 60);
    tcase_add_test(n, test_ready_is_sent_once_listening_and_stopping_on_sigterm);
    tcase_add_test(n, test_ready_reaches_an_abstract_notify_socket);
    tcase_add_test(n, test_with_workers_the_supervisor_is_ready_once_every_worker_runs);
    tcase_add_test(n, test_a_daemon_names_itself_as_the_main_process);
    tcase_add_test(n, test_an_unusable_notify_socket_is_a_warning_not_a_failure);
    suite_add_tcase(s, n);
    TCase *j = tcase_create("journal");
    tcase_set_timeout(j, 60);
    tcase_add_test(j, test_lines_carry_priorities_when_stderr_is_the_journal);
    tcase_add_test(j, test_a_fatal_sentence_in_the_journal_has_error_priority);
    tcase_add_test(j, test_a_journal_stream_that_is_not_stderr_is_ignored);
    suite_add_tcase(s, j);
    TCase *sl = tcase_create("syslog");
    tcase_add_checked_fixture(sl, setup, teardown);
    tcase_set_timeout(sl, 60);
    tcase_add_test(sl, test_syslog_takes_the_records_off_stderr);
    tcase_add_test(sl, test_syslog_with_a_logfile_or_json_is_a_usage_error);
    suite_add_tcase(s, sl);
    TCase *c = tcase_create("check");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_set_timeout(c, 60);
    tcase_add_test(c, test_check_accepts_a_valid_configuration_without_binding);
    tcase_add_test(c, test_check_refuses_an_unknown_module_option);
    tcase_add_test(c, test_check_asks_the_module_about_its_option_values);
    tcase_add_test(c, test_check_refuses_a_bad_endpoint_and_an_unknown_user);
    tcase_add_test(c, test_check_reports_a_module_that_crashes_as_it_starts);
    tcase_add_test(c, test_check_takes_a_systemd_endpoint_on_its_syntax_away_from_systemd);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(service_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
