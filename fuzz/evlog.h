/* SPDX-License-Identifier: MIT */
/*
 * What the differential harnesses (fuzz_line, fuzz_framing) share: a
 * growable byte buffer, and an event log that each side -- twine and its
 * model -- writes the same way, so that "both saw the same thing" is one
 * byte comparison, and a difference can be shown from the event where the
 * two part.
 *
 * An event is [tag][length, 4 bytes big-endian][length bytes of data].
 */
#ifndef TWINE_FUZZ_EVLOG_H
#define TWINE_FUZZ_EVLOG_H

#include "fuzz.h"

/* Append @p n bytes to the buffer *p (*len used, *cap allocated). */
static inline void fz_append(uint8_t **p, size_t *len, size_t *cap, const void *data, size_t n)
{
    if (n == 0)
        return;
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + n)
            c *= 2;
        *p = realloc(*p, c);
        FZ_CHECK(*p != NULL, "out of memory");
        *cap = c;
    }
    memcpy(*p + *len, data, n);
    *len += n;
}

typedef struct fz_evlog {
    uint8_t *p;
    size_t len, cap;
    size_t events;
} fz_evlog;

static inline void fz_evlog_add(fz_evlog *l, int tag, const void *data, size_t len)
{
    uint8_t head[5] = {(uint8_t)tag, (uint8_t)(len >> 24), (uint8_t)(len >> 16),
                       (uint8_t)(len >> 8), (uint8_t)len};
    fz_append(&l->p, &l->len, &l->cap, head, sizeof head);
    fz_append(&l->p, &l->len, &l->cap, data, len);
    l->events++;
}

/* An event whose data is @p v, 8 bytes big-endian. */
static inline void fz_evlog_add_u64(fz_evlog *l, int tag, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    fz_evlog_add(l, tag, b, 8);
}

static inline size_t fz_evlog_len_at(const fz_evlog *l, size_t i)
{
    return (size_t)l->p[i + 1] << 24 | (size_t)l->p[i + 2] << 16 | (size_t)l->p[i + 3] << 8 |
           l->p[i + 4];
}

/* Print where twine's log @p a and the model's @p b first part. */
static inline void fz_evlog_report(const fz_evlog *a, const fz_evlog *b)
{
    size_t i = 0, j = 0, n = 0;
    while (i < a->len && j < b->len) {
        size_t la = fz_evlog_len_at(a, i), lb = fz_evlog_len_at(b, j);
        if (a->p[i] != b->p[j] || la != lb || memcmp(a->p + i + 5, b->p + j + 5, la) != 0) {
            fprintf(stderr, "event %zu: twine %c(%zu bytes), model %c(%zu bytes)\n", n, a->p[i], la,
                    b->p[j], lb);
            return;
        }
        i += 5 + la;
        j += 5 + lb;
        n++;
    }
    fprintf(stderr, "event %zu: twine has %s, model has %s\n", n, i < a->len ? "more" : "no more",
            j < b->len ? "more" : "no more");
}

/*
 * 1 if twine's log @p a and the model's @p b hold the same events; else 0,
 * after printing the first difference (the caller's FZ_CHECK then crashes).
 */
static inline int fz_evlog_same(const fz_evlog *a, const fz_evlog *b)
{
    if (a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0))
        return 1;
    fz_evlog_report(a, b);
    return 0;
}

#endif
