/* SPDX-License-Identifier: MIT */
/*
 * Growing byte buffers, for the receivers and AMP (see buf_internal.h).
 * Doubling keeps appends amortised constant; the overflow checks are here
 * once, so that no caller computes a size that wraps and then allocates
 * less than it writes.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf_internal.h"

size_t tw__buf_next_cap(size_t cap, size_t used, size_t more, size_t min)
{
    if (more > SIZE_MAX - used)
        return 0;
    size_t need = used + more;
    size_t n = cap > min ? cap : min;
    if (n == 0)
        n = 1;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    return n;
}

int tw__buf_reserve(char **data, size_t *cap, size_t used, size_t more, size_t min,
                    const char *inline_storage)
{
    if (more <= *cap - used)
        return 0;
    size_t n = tw__buf_next_cap(*cap, used, more, min);
    if (n == 0)
        return -ENOMEM;
    int moving = inline_storage != NULL && *data == inline_storage;
    char *p = moving ? malloc(n) : realloc(*data, n);
    if (p == NULL)
        return -ENOMEM;
    if (moving && used > 0)
        memcpy(p, inline_storage, used);
    *data = p;
    *cap = n;
    return 0;
}

int tw__iov_total(const struct iovec *iov, int iovcnt, size_t *total)
{
    if (iovcnt < 0)
        return -EINVAL;
    size_t sum = 0;
    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > SIZE_MAX - sum)
            return -ENOMEM;
        sum += iov[i].iov_len;
    }
    *total = sum;
    return 0;
}
