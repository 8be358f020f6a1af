/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the test programs: blocking client sockets with
 * timeouts, and starting reactord as a child process on an ephemeral port.
 * Every wait here is bounded so that a broken build fails instead of hanging.
 */
#ifndef TWINE_TESTUTIL_H
#define TWINE_TESTUTIL_H

#include <stddef.h>
#include <sys/types.h>
#include <twine.h>

/* Connect a blocking TCP socket to host:port; -1 on failure. */
int tu_connect(const char *host, int port);

/* Connect to a UNIX socket path; -1 on failure. */
int tu_connect_unix(const char *path);

/* A port on 127.0.0.1 that refuses connections: bound a moment ago, then
 * closed (asserts, Check-style, that the bind worked). */
int tu_closed_port(void);

/* Write all bytes (send, or write on a pipe); 0 or -1. */
int tu_write_all(int fd, const void *buf, size_t len);

/* Read exactly len bytes within timeout_ms; returns bytes read (short on
 * EOF, error or timeout). */
size_t tu_read_exact(int fd, void *buf, size_t len, int timeout_ms);

/* Wait for EOF within timeout_ms: 1 on EOF, 0 on timeout, -errno on error. */
int tu_wait_eof(int fd, int timeout_ms);

/* A running reactord. */
typedef struct {
    pid_t pid;
    int err_fd;      /* its stderr, non-blocking */
    int port;        /* the first port it reported listening on */
    char log[16384]; /* what it wrote to stderr so far */
    size_t log_len;
} tu_reactord;

/*
 * Start $REACTORD with @p args (NULL-terminated) and wait until it logs
 * "listening on HOST:PORT". @return 0, or -1 if it exited or timed out
 * (d->log holds its output either way).
 */
int tu_reactord_start(tu_reactord *d, const char *const *args);

/* Collect stderr written so far into d->log. */
void tu_reactord_read_log(tu_reactord *d);

/* Wait up to timeout_ms for the child to exit; returns its wait status, or
 * -1 on timeout (the child is then killed). */
int tu_wait_child(pid_t pid, int timeout_ms);

/* Run @p argv (argv[0] is $REACTORD) to completion, capturing stderr into
 * @p err; returns the wait status, or -1 on timeout. */
int tu_run_reactord(const char *const *args, char *err, size_t errlen, int timeout_ms);

/*
 * Runs the code under test over @p in (@p len bytes) delivered in chunks
 * that end at @p cuts (@p ncuts ascending offsets; the last chunk runs to
 * the end) and returns what it logged, malloc'd.
 */
typedef char *(*tu_cuts_fn)(const void *arg, const void *in, size_t len, const size_t *cuts,
                            size_t ncuts);

/*
 * A receiver's log must not depend on how its input was cut: @p run's log
 * for @p in whole must be @p expected, and so for every cut into two
 * chunks, every cut into three while len <= @p max_three_len (that part is
 * quadratic), and one byte at a time. Fails the test naming the split.
 */
void tu_check_every_split(tu_cuts_fn run, const void *arg, const void *in, size_t len,
                          const char *expected, size_t max_three_len);

/* Milliseconds on the monotonic clock. */
long long tu_now_ms(void);

#endif
