/* SPDX-License-Identifier: MIT */
/*
 * Test helpers: see testutil.h.
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
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/fd_internal.h"
#include "testutil.h"

long long tu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tu_connect(const char *host, int port)
{
    tw_address a;
    if (tw_address_from_ip(&a, host, port) < 0)
        return -1;
    int fd = tw__socket(a.u.sa.sa_family, SOCK_STREAM, 0, O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (connect(fd, &a.u.sa, a.len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int tu_connect_unix(const char *path)
{
    tw_address a;
    if (tw_address_from_unix(&a, path) < 0)
        return -1;
    int fd = tw__socket(AF_UNIX, SOCK_STREAM, 0, O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (connect(fd, &a.u.sa, a.len) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int tu_closed_port(void)
{
    int s = tw__socket(AF_INET, SOCK_STREAM, 0, O_CLOEXEC);
    ck_assert_int_ge(s, 0);
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, "127.0.0.1", 0), 0);
    ck_assert_int_eq(bind(s, &a.u.sa, a.len), 0);
    a.len = sizeof a.u.storage;
    ck_assert_int_eq(getsockname(s, &a.u.sa, &a.len), 0);
    close(s);
    return tw_address_port(&a);
}

void tu_check_every_split(tu_cuts_fn run, const void *arg, const void *in, size_t len,
                          const char *expected, size_t max_three_len)
{
    char *log = run(arg, in, len, NULL, 0);
    ck_assert_str_eq(log, expected);
    free(log);
    for (size_t i = 0; i <= len; i++) {
        size_t cut[1] = {i};
        log = run(arg, in, len, cut, 1);
        ck_assert_msg(strcmp(log, expected) == 0, "split at %zu: got %s, want %s", i, log,
                      expected);
        free(log);
        for (size_t j = i; j <= len && len <= max_three_len; j++) {
            size_t cuts[2] = {i, j};
            log = run(arg, in, len, cuts, 2);
            ck_assert_msg(strcmp(log, expected) == 0, "split at %zu,%zu: got %s, want %s", i, j,
                          log, expected);
            free(log);
        }
    }
    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    ck_assert_ptr_nonnull(cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    log = run(arg, in, len, cuts, len ? len - 1 : 0);
    ck_assert_msg(strcmp(log, expected) == 0, "byte at a time: got %s, want %s", log, expected);
    free(log);
    free(cuts);
}

int tu_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == ENOTSOCK)
            w = write(fd, p, len); /* a pipe */
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

size_t tu_read_exact(int fd, void *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    long long deadline = tu_now_ms() + timeout_ms;
    while (got < len) {
        long long left = deadline - tu_now_ms();
        if (left <= 0)
            break;
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            break;
        ssize_t n = recv(fd, (char *)buf + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

int tu_wait_eof(int fd, int timeout_ms)
{
    char buf[4096];
    long long deadline = tu_now_ms() + timeout_ms;
    for (;;) {
        long long left = deadline - tu_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, (int)left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            return 0;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -errno;
    }
}

void tu_reactord_read_log(tu_reactord *d)
{
    for (;;) {
        size_t room = sizeof d->log - 1 - d->log_len;
        if (room == 0)
            break;
        ssize_t n = read(d->err_fd, d->log + d->log_len, room);
        if (n <= 0)
            break;
        d->log_len += (size_t)n;
    }
    d->log[d->log_len] = '\0';
}

static pid_t spawn(const char *const *args, int *err_fd)
{
    const char *exe = getenv("REACTORD");
    if (exe == NULL)
        exe = "./reactord";
    size_t n = 0;
    while (args[n] != NULL)
        n++;
    const char **argv = calloc(n + 2, sizeof *argv);
    if (argv == NULL)
        return -1;
    argv[0] = exe;
    memcpy(argv + 1, args, n * sizeof *argv);

    int p[2];
    if (tw__pipe(p, O_CLOEXEC) < 0) {
        free(argv);
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        /* stdout joins stderr so tests can read --help and --version too */
        dup2(p[1], STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        int null = open("/dev/null", O_RDWR);
        dup2(null, STDIN_FILENO);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    free(argv);
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        return -1;
    }
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    *err_fd = p[0];
    return pid;
}

int tu_reactord_start(tu_reactord *d, const char *const *args)
{
    memset(d, 0, sizeof *d);
    d->pid = spawn(args, &d->err_fd);
    if (d->pid < 0)
        return -1;
    long long deadline = tu_now_ms() + 10000;
    while (tu_now_ms() < deadline) {
        struct pollfd pfd = {d->err_fd, POLLIN, 0};
        poll(&pfd, 1, 100);
        tu_reactord_read_log(d);
        const char *at = strstr(d->log, "listening on ");
        if (at != NULL) {
            const char *colon = strchr(at, '\n');
            if (colon != NULL) {
                /* The port follows the last ':' of the address. */
                const char *p = colon;
                while (p > at && p[-1] != ':')
                    p--;
                d->port = atoi(p);
                return 0;
            }
        }
        if (waitpid(d->pid, NULL, WNOHANG) == d->pid) {
            d->pid = -1;
            tu_reactord_read_log(d);
            return -1;
        }
    }
    kill(d->pid, SIGKILL);
    waitpid(d->pid, NULL, 0);
    d->pid = -1;
    return -1;
}

int tu_wait_child(pid_t pid, int timeout_ms)
{
    long long deadline = tu_now_ms() + timeout_ms;
    int status;
    while (tu_now_ms() < deadline) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            return status;
        if (w < 0)
            return -1;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

int tu_run_reactord(const char *const *args, char *err, size_t errlen, int timeout_ms)
{
    int fd;
    pid_t pid = spawn(args, &fd);
    if (pid < 0)
        return -1;
    int status = tu_wait_child(pid, timeout_ms);
    ssize_t n = read(fd, err, errlen - 1);
    err[n > 0 ? n : 0] = '\0';
    close(fd);
    return status;
}
