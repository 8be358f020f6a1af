/* SPDX-License-Identifier: MIT */
/*
 * Logging. twine writes its diagnostics (an accept error, a peer that broke
 * a protocol, an unhandled failure) through one process-wide sink, in the
 * way libevent's event_set_log_callback() works: configure it once at
 * start-up, before threads are started. Each record is written with a single
 * write(2), so records from several threads never interleave.
 *
 * libevent's own messages (evdns's "Nameserver ... has failed", say) go to
 * the same sink, under the subsystem "libevent": making a reactor installs
 * twine's callback with event_set_log_callback(), which is process-wide. A
 * host that wants libevent's messages elsewhere sets its own callback after
 * making its reactors.
 */
#ifndef TWINE_LOG_H
#define TWINE_LOG_H

#include <stdarg.h>
#include <sys/types.h>
#include <twine/common.h>

TW_BEGIN_DECLS

typedef enum {
    TW_LOG_DEBUG = 0,
    TW_LOG_INFO = 1,
    TW_LOG_WARN = 2,
    TW_LOG_ERROR = 3
} tw_log_level;

typedef enum { TW_LOG_TEXT = 0, TW_LOG_JSON = 1 } tw_log_format;

/**
 * A custom sink. It receives the level, the subsystem ("tcp", "deferred",
 * ...) and the formatted message without a trailing newline. It may be
 * called from any thread that logs.
 */
typedef void (*tw_log_fn)(tw_log_level level, const char *subsystem, const char *message,
                          void *arg);

/** Drop records below @p level (default TW_LOG_INFO). */
TW_API void tw_log_set_level(tw_log_level level);

/** @return the current minimum level. */
TW_API tw_log_level tw_log_get_level(void);

/**
 * Parse "debug", "info", "warn" or "error".
 * @return 0 and sets @p out, or -EINVAL.
 */
TW_API int tw_log_level_parse(const char *name, tw_log_level *out);

/** Choose text ("2026-01-02T03:04:05Z info tcp: msg") or one JSON object a line. */
TW_API void tw_log_set_format(tw_log_format format);

/**
 * Send records to a file. "-" or NULL means standard error.
 * The file is opened with O_APPEND; tw_log_reopen() opens it again, which is
 * what a SIGHUP handler does after logrotate moved it.
 * @return 0, or a negated errno if the file cannot be opened (the previous
 *         destination stays in use).
 */
TW_API int tw_log_set_file(const char *path);

/** Reopen the file given to tw_log_set_file(). @return 0 or a negated errno. */
TW_API int tw_log_reopen(void);

/**
 * Make the log file belong to @p uid and @p gid, now and each time
 * tw_log_set_file() or tw_log_reopen() opens one, as nginx does for a
 * server that opens its log as root and then runs as another user: that
 * user can then reopen it, and logrotate's `create` copies that owner.
 * Only the open descriptor is changed (fchown), so no path or symbolic link
 * is followed; a file that already has that owner is left alone. Never calls
 * back. (uid_t)-1 stops changing owners.
 * @return 0 (also when no file is open yet), or a negated errno from fchown
 *         (the file keeps its owner).
 */
TW_API int tw_log_set_owner(uid_t uid, gid_t gid);

/** Send records to @p fn instead of a file; NULL restores the file sink. */
TW_API void tw_log_set_handler(tw_log_fn fn, void *arg);

/** Log one record. Cheap when @p level is filtered out. */
TW_API void tw_log(tw_log_level level, const char *subsystem, const char *fmt, ...)
    TW_PRINTF(3, 4);

/** tw_log() with a va_list. */
TW_API void tw_logv(tw_log_level level, const char *subsystem, const char *fmt, va_list ap)
    TW_PRINTF(3, 0);

TW_END_DECLS

#endif
