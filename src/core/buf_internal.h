/* SPDX-License-Identifier: MIT */
/*
 * The one way libtwine grows a byte buffer (buf.c): the line receiver, the
 * length-prefixed receivers and AMP's value encoding keep their bytes in a
 * pointer and a capacity (the receivers' live in public structs, so there
 * is no buffer type to embed), and grow them here, doubling, with every
 * size checked for overflow before anything is allocated.
 */
#ifndef TWINE_BUF_INTERNAL_H
#define TWINE_BUF_INTERNAL_H

#include <stddef.h>
#include <sys/uio.h>

/*
 * The capacity to grow from @p cap (at least @p min) so that @p used +
 * @p more bytes fit: doubling, or exactly the need when doubling would
 * overflow. @return it, or 0 when @p used + @p more overflows.
 */
size_t tw__buf_next_cap(size_t cap, size_t used, size_t more, size_t min);

/*
 * Make *@p data, of capacity *@p cap with @p used bytes in use, hold
 * @p more bytes beyond them. A buffer that still is @p inline_storage (a
 * caller's fixed array, or NULL if it has none) moves to the heap with its
 * @p used bytes; a heap one is reallocated.
 * @return 0, or -ENOMEM (too large or out of memory; the buffer is unchanged).
 */
int tw__buf_reserve(char **data, size_t *cap, size_t used, size_t more, size_t min,
                    const char *inline_storage);

/*
 * The bytes of a write of @p iovcnt pieces, into *@p total: what every
 * transport's writev checks before it queues or copies anything.
 * @return 0, -EINVAL for a negative count, or -ENOMEM when the sum does
 * not fit a size_t (no buffer could hold it).
 */
int tw__iov_total(const struct iovec *iov, int iovcnt, size_t *total);

#endif
