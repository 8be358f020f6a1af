/* SPDX-License-Identifier: MIT */
/*
 * tw_failure: immutable, reference-counted error values with a cause chain.
 * Constructors never return NULL: on allocation failure they hand out one
 * static "out of memory" failure whose reference count is never touched, so
 * callers on an error path need no error path of their own.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine/failure.h>

struct tw_failure {
    int refs; /* < 0 marks the static out-of-memory failure */
    int code;
    tw_failure *cause;
    size_t index;  /* meaningful when has_index */
    int has_index;
    /* NUL-terminated; stored right after the struct, in the same allocation.
     * A pointer rather than a flexible array member, so that the static
     * failure below is standard C. */
    const char *message;
};

static tw_failure oom_failure = {-1, -ENOMEM, NULL, 0, 0, "out of memory"};

static tw_failure *make(tw_failure *cause, int code, const char *fmt, va_list ap)
    TW_PRINTF(3, 0);

static tw_failure *make(tw_failure *cause, int code, const char *fmt, va_list ap)
{
    char stackbuf[256];
    const char *text = stackbuf;
    char *heap = NULL;
    int n;

    if (fmt == NULL) {
        /* Name errno values the way operators grep for them: "ECONNRESET". */
        const char *name = NULL;
#ifdef HAVE_STRERRORNAME_NP
        if (code < 0 && code > -4096)
            name = strerrorname_np(-code);
#endif
        if (name != NULL) {
            n = snprintf(stackbuf, sizeof stackbuf, "%s: %s", name, tw_strerror(code));
        } else {
            text = tw_strerror(code);
            n = (int)strlen(text);
        }
    } else {
        va_list copy;
        va_copy(copy, ap);
        n = vsnprintf(stackbuf, sizeof stackbuf, fmt, copy);
        va_end(copy);
        if (n < 0) {
            text = tw_strerror(code);
            n = (int)strlen(text);
        } else if ((size_t)n >= sizeof stackbuf) {
            heap = malloc((size_t)n + 1);
            if (heap == NULL)
                goto oom;
            vsnprintf(heap, (size_t)n + 1, fmt, ap);
            text = heap;
        }
    }

    tw_failure *f = malloc(sizeof *f + (size_t)n + 1);
    if (f == NULL)
        goto oom;
    f->refs = 1;
    f->code = code;
    f->cause = cause;
    f->index = 0;
    f->has_index = 0;
    char *message = (char *)(f + 1);
    memcpy(message, text, (size_t)n + 1);
    f->message = message;
    free(heap);
    return f;

oom:
    free(heap);
    tw_failure_unref(cause);
    return &oom_failure;
}

TW_API tw_failure *tw_failure_newv(int code, const char *fmt, va_list ap)
{
    return make(NULL, code, fmt, ap);
}

TW_API tw_failure *tw_failure_new(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tw_failure *f = make(NULL, code, fmt, ap);
    va_end(ap);
    return f;
}

TW_API tw_failure *tw_failure_wrap(tw_failure *cause, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tw_failure *f = make(cause, code, fmt, ap);
    va_end(ap);
    return f;
}

TW_API tw_failure *tw_failure_wrap_index(tw_failure *cause, int code, size_t index,
                                         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tw_failure *f = make(cause, code, fmt, ap);
    va_end(ap);
    if (f->refs > 0) { /* not the shared out-of-memory failure */
        f->index = index;
        f->has_index = 1;
    }
    return f;
}

TW_API int tw_failure_index(const tw_failure *f, size_t *index)
{
    if (f == NULL || !f->has_index)
        return -ENOENT;
    *index = f->index;
    return 0;
}

TW_API tw_failure *tw_failure_from_errno(int neg_errno, const char *context)
{
    if (context != NULL)
        return tw_failure_new(neg_errno, "%s: %s", context, tw_strerror(neg_errno));
    return tw_failure_new(neg_errno, NULL);
}

TW_API tw_failure *tw_failure_ref(tw_failure *f)
{
    if (f != NULL && f->refs > 0)
        f->refs++;
    return f;
}

TW_API void tw_failure_unref(tw_failure *f)
{
    /* Iterative, so a long cause chain cannot exhaust the stack. */
    while (f != NULL && f->refs > 0 && --f->refs == 0) {
        tw_failure *cause = f->cause;
        free(f);
        f = cause;
    }
}

TW_API int tw_failure_code(const tw_failure *f)
{
    return f->code;
}

TW_API const char *tw_failure_message(const tw_failure *f)
{
    return f->message;
}

TW_API const tw_failure *tw_failure_cause(const tw_failure *f)
{
    return f->cause;
}

TW_API int tw_failure_check(const tw_failure *f, int code)
{
    for (; f != NULL; f = f->cause)
        if (f->code == code)
            return 1;
    return 0;
}

static void append(char *buf, size_t len, size_t *at, const char *text)
{
    size_t n = strlen(text);
    if (*at < len)
        memcpy(buf + *at, text, *at + n < len ? n : len - *at);
    *at += n;
}

TW_API size_t tw_failure_format(const tw_failure *f, char *buf, size_t len)
{
    size_t need = 0;
    for (const tw_failure *c = f; c != NULL; c = c->cause) {
        if (c != f)
            append(buf, len, &need, ": ");
        append(buf, len, &need, c->message);
    }
    if (len > 0)
        buf[need < len ? need : len - 1] = '\0';
    return need;
}
