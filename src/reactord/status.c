/* SPDX-License-Identifier: MIT */
/*
 * The start-up report. Whoever started reactord learns exactly one outcome:
 * started, or one sentence and a sysexits.h code. In the foreground that is
 * stderr and the exit code. A daemon's stderr is /dev/null and its exit code
 * reaches nobody, and a worker's goes to its supervisor, so those processes
 * write the outcome into a status pipe instead, and the process waiting at
 * the other end (the operator's shell, or the supervisor) reports it.
 *
 * A report is one write(2) of "CODE\nSENTENCE", then the pipe is closed; a
 * process that dies before reporting leaves a bare EOF.
 *
 * A fatal sentence is also logged, once, in the configured log and format
 * (logging.c): by the process that failed, unless it is a worker, whose
 * supervisor logs the sentence it relays, or the operator's shell waiting
 * for a daemon, which logged it already.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "reactord.h"

static char message[1024];
static int status_fd = -1;
static int reported;
static int relayed; /* the reader of the pipe logs the sentence */

int rd_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    /* one sentence, one line: newlines from lower layers would break it */
    for (char *c = message; *c != '\0'; c++)
        if (*c == '\n')
            *c = ' ';
    return code;
}

const char *rd_error_message(void)
{
    return message;
}

void rd_status_use_pipe(int fd, int reader_logs)
{
    status_fd = fd;
    reported = 0;
    relayed = reader_logs;
}

int rd_status_pipe(void)
{
    return status_fd;
}

void rd_status_report(int code, const char *detail)
{
    if (reported)
        return;
    reported = 1;
    if (status_fd < 0) {
        if (code != 0)
            fprintf(stderr, "%sreactord: %s\n", rd_logging_error_prefix(),
                    detail != NULL ? detail : "failed");
        return;
    }
    char buf[2048];
    int n = snprintf(buf, sizeof buf, "%d\n%s", code, detail != NULL ? detail : "");
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof buf)
        n = sizeof buf - 1;
    ssize_t w;
    do
        w = write(status_fd, buf, (size_t)n);
    while (w < 0 && errno == EINTR);
    close(status_fd);
    status_fd = -1;
}

int rd_status_fail(int code)
{
    if (code == 0)
        return 0;
    /* A detached process has no terminal: its log is all that remains. */
    int on_stderr = !relayed && rd_logging_fatal(message);
    if (on_stderr && status_fd < 0)
        reported = 1; /* the log is stderr, and has it in its format */
    rd_status_report(code, message);
    return code;
}

int rd_status_print(int code)
{
    relayed = 1;
    return rd_status_fail(code);
}

/* Append @p s to @p buf at @p at, within @p cap; async-signal-safe. */
static size_t put(char *buf, size_t at, size_t cap, const char *s)
{
    while (*s != '\0' && at < cap)
        buf[at++] = *s++;
    return at;
}

void rd_status_crash(int code, const char *sentence)
{
    char buf[1200], num[12];
    size_t at = 0, k = sizeof num;
    num[--k] = '\0';
    do
        num[--k] = (char)('0' + code % 10);
    while ((code /= 10) > 0 && k > 0);
    if (status_fd >= 0) {
        at = put(buf, at, sizeof buf, num + k);
        at = put(buf, at, sizeof buf, "\n");
        at = put(buf, at, sizeof buf, sentence);
    } else {
        at = put(buf, at, sizeof buf, "reactord: ");
        at = put(buf, at, sizeof buf, sentence);
        at = put(buf, at, sizeof buf, "\n");
    }
    ssize_t w = write(status_fd >= 0 ? status_fd : STDERR_FILENO, buf, at);
    (void)w; /* nothing more can be done about it */
    if (relayed)
        return;
    /* tw_log is not async-signal-safe: a crash inside malloc could leave it
     * waiting forever, and the alarm's default action ends the process. */
    alarm(2);
    rd_logging_fatal(sentence);
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int rd_status_read(int fd, int *code, char *msg, size_t len, int timeout_ms)
{
    char buf[2048];
    size_t got = 0;
    long long deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    for (;;) {
        int wait = -1;
        if (deadline >= 0) {
            long long left = deadline - now_ms();
            if (left <= 0)
                return -1;
            wait = (int)left;
        }
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, wait);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            return -1;
        ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0 || got + (size_t)n == sizeof buf - 1) {
            if (n > 0)
                got += (size_t)n;
            break;
        }
        got += (size_t)n;
    }
    buf[got] = '\0';
    char *nl = strchr(buf, '\n');
    if (got == 0 || nl == NULL)
        return 0;
    *nl = '\0';
    *code = atoi(buf);
    snprintf(msg, len, "%s", nl + 1);
    return 1;
}
