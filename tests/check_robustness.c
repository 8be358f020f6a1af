/* SPDX-License-Identifier: MIT */
/*
 * reactord under careless and numerous peers: a client that writes without
 * reading must not grow the server's memory, and ten thousand idle clients
 * are each served and released with no descriptor left behind. The server
 * runs in its own process; its memory and descriptors are read from /proc.
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <twine.h>

#include "testutil.h"

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static int open_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void start(tu_reactord *d)
{
    const char *args[] = {"--protocol", "echo", "--port", "0", "--interface", "127.0.0.1", NULL};
    if (tu_reactord_start(d, args) < 0)
        ck_abort_msg("reactord did not start: %s", d->log);
}

static void stop(tu_reactord *d)
{
    kill(d->pid, SIGTERM);
    int status = tu_wait_child(d->pid, 10000);
    ck_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(d->err_fd);
}

START_TEST(test_a_client_that_never_reads_cannot_grow_the_echo_server)
{
    tu_reactord d;
    start(&d);
    long before = rss_kib(d.pid);
    int fd = tu_connect("127.0.0.1", d.port);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    static char chunk[65536];
    memset(chunk, 'w', sizeof chunk);
    const unsigned long long goal = 1ULL << 30;
    unsigned long long sent = 0;
    long long start_ms = tu_now_ms(), last_progress = start_ms;
    /* Try to push 1 GiB; give up once the server has pushed back for 2 s. */
    while (sent < goal && tu_now_ms() - last_progress < 2000 && tu_now_ms() - start_ms < 20000) {
        struct pollfd p = {fd, POLLOUT, 0};
        poll(&p, 1, 100);
        ssize_t w = send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
        if (w > 0) {
            sent += (unsigned long long)w;
            last_progress = tu_now_ms();
        }
    }
    long after = rss_kib(d.pid);
    printf("slow reader: client wrote %.1f MiB of 1024 MiB before the server pushed back; "
           "server RSS %ld KiB -> %ld KiB\n",
           (double)sent / (1 << 20), before, after);
    ck_assert_int_gt(before, 0);
    /* A few watermarks' worth (64 KiB queue + 64 KiB read buffer) plus
     * allocator slack; an unbounded server would hold nearly all it read. */
    ck_assert_int_lt(after - before, 2048);
    ck_assert_uint_lt(sent, goal);
    close(fd);
    stop(&d);
}
END_TEST

/* Raise RLIMIT_NOFILE as far as allowed; return the soft limit in force. */
static long raise_nofile(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    return (long)rl.rlim_cur;
}

START_TEST(test_ten_thousand_idle_connections_are_served_and_released)
{
    long limit = raise_nofile();
    int n = 10000;
    if (limit < n + 64) {
        n = (int)limit - 64;
        printf("RLIMIT_NOFILE is %ld: scaling the idle test down to %d connections\n", limit, n);
    }
    tu_reactord d;
    start(&d); /* inherits the raised limit */
    int fds_before = open_fds(d.pid);
    long rss_before = rss_kib(d.pid);

    int to_parent[2], to_child[2];
    ck_assert_int_eq(pipe(to_parent), 0);
    ck_assert_int_eq(pipe(to_child), 0);
    pid_t client = fork();
    if (client == 0) {
        /* The client process: open, verify each with one echo, hold, close. */
        int *c = malloc(sizeof(int) * (size_t)n);
        int verified = 0;
        for (int i = 0; i < n; i++) {
            c[i] = tu_connect("127.0.0.1", d.port);
            char b;
            if (c[i] >= 0 && tu_write_all(c[i], "!", 1) == 0 && tu_read_exact(c[i], &b, 1, 5000) == 1)
                verified++;
        }
        if (write(to_parent[1], &verified, sizeof verified) != sizeof verified)
            _exit(1);
        char go;
        if (read(to_child[0], &go, 1) != 1)
            _exit(1);
        for (int i = 0; i < n; i++)
            close(c[i]);
        _exit(0);
    }
    int verified = 0;
    ck_assert_int_eq(read(to_parent[0], &verified, sizeof verified), (ssize_t)sizeof verified);
    usleep(200000);
    int fds_held = open_fds(d.pid);
    long rss_held = rss_kib(d.pid);
    printf("idle: %d/%d connections verified; server fds %d -> %d; RSS %ld KiB -> %ld KiB = %.0f "
           "bytes per connection (target <= 256)\n",
           verified, n, fds_before, fds_held, rss_before, rss_held,
           (double)(rss_held - rss_before) * 1024.0 / n);
    ck_assert_int_eq(verified, n);
    ck_assert_int_eq(fds_held, fds_before + n);

    ck_assert_int_eq(write(to_child[1], "g", 1), 1);
    int status = tu_wait_child(client, 20000);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    int fds_after = -1;
    long long deadline = tu_now_ms() + 10000;
    while (tu_now_ms() < deadline && (fds_after = open_fds(d.pid)) != fds_before)
        usleep(20000);
    printf("idle: after the client closed, server fds %d (before: %d)\n", fds_after, fds_before);
    ck_assert_int_eq(fds_after, fds_before);
    stop(&d);
}
END_TEST

static Suite *robustness_suite(void)
{
    Suite *s = suite_create("robustness");
    TCase *tc = tcase_create("reactord");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_a_client_that_never_reads_cannot_grow_the_echo_server);
    tcase_add_test(tc, test_ten_thousand_idle_connections_are_served_and_released);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    SRunner *sr = srunner_create(robustness_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
