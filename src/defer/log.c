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
#include <sys/stat.h>
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
    uid_t owner; /* (uid_t)-1: files keep the owner they were created with */
    gid_t group;
} sink = {TW_LOG_INFO, TW_LOG_TEXT, -1, NULL, NULL, NULL, (uid_t)-1, (gid_t)-1};

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

static int give_to_owner(int fd)
{
    struct stat st;
    if (sink.owner == (uid_t)-1 || fstat(fd, &st) < 0 ||
        (st.st_uid == sink.owner && st.st_gid == sink.group))
        return 0;
    return fchown(fd, sink.owner, sink.group) < 0 ? -errno : 0;
}

static int open_log(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = give_to_owner(fd);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    return fd;
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

TW_API int tw_log_set_owner(uid_t uid, gid_t gid)
{
    sink.owner = uid;
    sink.group = gid;
    return sink.fd >= 0 ? give_to_owner(sink.fd) : 0;
}

TW_API void tw_log_set_handler(tw_log_fn fn, void *arg)
{
    sink.fn = fn;
    sink.fn_arg = arg;
}

/* The length of the valid UTF-8 sequence at @p s (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF), or 0 when it is not one. */
static size_t utf8_sequence(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c >= 0xc2 && c <= 0xdf)
        return (s[1] & 0xc0) == 0x80 ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        unsigned char lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 ? 3 : 0;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        unsigned char lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
        return s[1] >= lo && s[1] <= hi && (s[2] & 0xc0) == 0x80 && (s[3] & 0xc0) == 0x80 ? 4
                                                                                         : 0;
    }
    return 0;
}

/* Append @p s to @p out as the inside of a JSON string, stopping before
 * @p cap. A JSON parser must accept every record, whatever bytes a peer or
 * a module put in the message: control characters are \u00XX, a byte that
 * does not start a valid UTF-8 sequence is \ufffd (the replacement
 * character), and a sequence is copied whole or not at all, so truncation
 * never cuts one. (The NUL that ends @p s stops the sequence checks, since
 * it is never a continuation byte.) */
static size_t json_escape(char *out, size_t at, size_t cap, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        unsigned char c = *p;
        size_t in = 1, len;
        char esc[8];
        const char *src = esc;
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, len = 2;
        } else if (c < 0x20 || c == 0x7f) {
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4], esc[5] = hex[c & 15], len = 6;
        } else if (c < 0x80) {
            esc[0] = (char)c, len = 1;
        } else if ((in = utf8_sequence(p)) > 0) {
            src = (const char *)p, len = in;
        } else {
            memcpy(esc, "\\ufffd", 6);
            in = 1, len = 6;
        }
        if (at + len >= cap)
            break;
        memcpy(out + at, src, len);
        at += len;
        p += in;
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
