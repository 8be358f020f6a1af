/* SPDX-License-Identifier: MIT */
/*
 * The process-wide log sink. It is configured once at start-up (like
 * libevent's own log callback); each record is formatted into one buffer and
 * written with a single write(2) so that records never interleave, even
 * across threads or processes sharing the file.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <twine/log.h>

#define RECORD_MAX 2048

static struct {
    tw_log_level level;
    tw_log_format format;
    int fd; /* -1: standard error */
    char *path;
    tw_log_fn fn;
    void *fn_arg;
} sink = {TW_LOG_INFO, TW_LOG_TEXT, -1, NULL, NULL, NULL};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

TW_API void tw_log_set_level(tw_log_level level)
{
    sink.level = level;
}

TW_API tw_log_level tw_log_get_level(void)
{
    return sink.level;
}

TW_API int tw_log_level_parse(const char *name, tw_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (tw_log_level)i;
            return 0;
        }
    }
    if (strcmp(name, "warning") == 0) {
        *out = TW_LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

TW_API void tw_log_set_format(tw_log_format format)
{
    sink.format = format;
}

static int open_log(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd < 0 ? -errno : fd;
}

TW_API int tw_log_set_file(const char *path)
{
    if (path == NULL || strcmp(path, "-") == 0) {
        if (sink.fd >= 0)
            close(sink.fd);
        sink.fd = -1;
        free(sink.path);
        sink.path = NULL;
        return 0;
    }
    char *copy = strdup(path);
    if (copy == NULL)
        return -ENOMEM;
    int fd = open_log(path);
    if (fd < 0) {
        free(copy);
        return fd;
    }
    if (sink.fd >= 0)
        close(sink.fd);
    free(sink.path);
    sink.fd = fd;
    sink.path = copy;
    return 0;
}

TW_API int tw_log_reopen(void)
{
    if (sink.path == NULL)
        return 0;
    int fd = open_log(sink.path);
    if (fd < 0)
        return fd;
    /* dup2 swaps the file under the same descriptor atomically, so a record
     * written concurrently goes to the old or the new file, never nowhere. */
    if (dup2(fd, sink.fd) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    close(fd);
    return 0;
}

TW_API void tw_log_set_handler(tw_log_fn fn, void *arg)
{
    sink.fn = fn;
    sink.fn_arg = arg;
}

/* Append @p s to @p out as the inside of a JSON string. */
static size_t json_escape(char *out, size_t at, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    for (; *s != '\0' && at + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[at++] = '\\';
            out[at++] = (char)c;
        } else if (c < 0x20) {
            out[at++] = '\\';
            out[at++] = 'u';
            out[at++] = '0';
            out[at++] = '0';
            out[at++] = hex[c >> 4];
            out[at++] = hex[c & 15];
        } else {
            out[at++] = (char)c;
        }
    }
    return at;
}

TW_API void tw_logv(tw_log_level level, const char *subsystem, const char *fmt, va_list ap)
{
    if (level < sink.level || (unsigned)level > TW_LOG_ERROR)
        return;
    char message[RECORD_MAX / 2];
    vsnprintf(message, sizeof message, fmt, ap);
    if (subsystem == NULL)
        subsystem = "twine";
    if (sink.fn != NULL) {
        sink.fn(level, subsystem, message, sink.fn_arg);
        return;
    }

    /* Wall-clock time is right here: a log stamp is for people. */
    char stamp[40];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t sl = strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + sl, sizeof stamp - sl, ".%03dZ", (int)(ts.tv_nsec / 1000000));

    char record[RECORD_MAX];
    size_t at;
    if (sink.format == TW_LOG_JSON) {
        int n = snprintf(record, sizeof record, "{\"time\":\"%s\",\"level\":\"%s\",\"system\":\"",
                         stamp, level_names[level]);
        at = json_escape(record, (size_t)n, sizeof record - 16, subsystem);
        at += (size_t)snprintf(record + at, sizeof record - at, "\",\"message\":\"");
        at = json_escape(record, at, sizeof record - 4, message);
        record[at++] = '"';
        record[at++] = '}';
    } else {
        int n = snprintf(record, sizeof record - 1, "%s %s %s: %s", stamp, level_names[level],
                         subsystem, message);
        at = n < 0 ? 0 : ((size_t)n < sizeof record - 1 ? (size_t)n : sizeof record - 2);
    }
    record[at++] = '\n';

    int fd = sink.fd >= 0 ? sink.fd : STDERR_FILENO;
    ssize_t w;
    do
        w = write(fd, record, at);
    while (w < 0 && errno == EINTR);
}

TW_API void tw_log(tw_log_level level, const char *subsystem, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tw_logv(level, subsystem, fmt, ap);
    va_end(ap);
}
