/* SPDX-License-Identifier: MIT */
/*
 * tw_failure: why something did not happen. A failure is an immutable,
 * reference-counted value holding a code (see common.h), a message and an
 * optional cause, so that layers can wrap a low-level error ("connect to
 * example.org:80") around the one beneath it ("ECONNREFUSED") without losing
 * either. Failures travel through deferred chains and connection_lost().
 *
 * Ownership: every constructor returns a new reference that the caller owns
 * and releases with tw_failure_unref(). When memory runs out the constructors
 * return a shared static "out of memory" failure instead of NULL, so error
 * paths never need their own error path.
 */
#ifndef TWINE_FAILURE_H
#define TWINE_FAILURE_H

#include <stdarg.h>
#include <stddef.h>
#include <twine/common.h>

TW_BEGIN_DECLS

typedef struct tw_failure tw_failure;

/**
 * Make a failure.
 * @param code a TW_E* code or negated errno.
 * @param fmt printf-style message; NULL uses tw_strerror(code).
 * @return a new reference; never NULL.
 */
TW_API tw_failure *tw_failure_new(int code, const char *fmt, ...) TW_PRINTF(2, 3);

/** tw_failure_new() with a va_list. */
TW_API tw_failure *tw_failure_newv(int code, const char *fmt, va_list ap) TW_PRINTF(2, 0);

/**
 * Make a failure caused by another.
 * @param cause the underlying failure; this call takes over the caller's
 *        reference (it may be NULL).
 * @return a new reference; never NULL.
 */
TW_API tw_failure *tw_failure_wrap(tw_failure *cause, int code, const char *fmt, ...)
    TW_PRINTF(3, 4);

/**
 * tw_failure_wrap() that also records which item of a set failed, as
 * Twisted's FirstError.index (tw_deferred_gather() uses it).
 * @return a new reference; never NULL.
 */
TW_API tw_failure *tw_failure_wrap_index(tw_failure *cause, int code, size_t index,
                                         const char *fmt, ...) TW_PRINTF(4, 5);

/**
 * The index recorded by tw_failure_wrap_index().
 * @return 0 and sets @p index, or -ENOENT when @p f records none.
 */
TW_API int tw_failure_index(const tw_failure *f, size_t *index);

/** Make a failure from a negated errno value, with a message naming it. */
TW_API tw_failure *tw_failure_from_errno(int neg_errno, const char *context);

/** Take another reference. @return @p f. */
TW_API tw_failure *tw_failure_ref(tw_failure *f);

/** Drop a reference; NULL is ignored. Frees the failure and its causes at 0. */
TW_API void tw_failure_unref(tw_failure *f);

/** @return the failure's code. */
TW_API int tw_failure_code(const tw_failure *f);

/** @return the failure's message, owned by the failure. */
TW_API const char *tw_failure_message(const tw_failure *f);

/** @return the cause (borrowed), or NULL. */
TW_API const tw_failure *tw_failure_cause(const tw_failure *f);

/**
 * Whether @p f, or any failure in its cause chain, has code @p code.
 */
TW_API int tw_failure_check(const tw_failure *f, int code);

/**
 * Format the failure and its causes as "message: cause: cause" into @p buf.
 * @return the length the full text needs, not counting the NUL (like
 *         snprintf), so a too-short buffer can be detected.
 */
TW_API size_t tw_failure_format(const tw_failure *f, char *buf, size_t len);

TW_END_DECLS

#endif
