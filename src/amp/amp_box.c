/* SPDX-License-Identifier: MIT */
/*
 * AMP boxes on the wire: the key/value container, its encoder, and the
 * incremental parser that turns a byte stream back into boxes.
 *
 * A box keeps its entries sorted by key, bytewise with a shorter key first
 * on a common prefix -- the order of Python's sorted() over bytes -- so that
 * encoding is a straight walk and the bytes match Twisted's. The entries'
 * bytes live in one arena owned by the box (key, NUL, value, NUL each, so
 * that callers may read text values as C strings) and the sorted index
 * holds offsets into it; both start inside the box itself, so a small box
 * is a single allocation, or none when it lives on the stack.
 *
 * The parser is a four-state machine (key length, key, value length, value).
 * It appends each entry to the index and sorts the index once, when the box
 * is complete, if the keys did not arrive in order: inserting each key in
 * place would cost a memmove per key, quadratic for a box of many keys in
 * descending order. A box holds at most TW_AMP_MAX_KEYS keys.
 * It reserves arena room for an entry only after the value's length was
 * read and checked against the box size limit, so a hostile peer cannot
 * make it hold more than one box of at most max_box_size bytes (twice that
 * while the arena grows), and a key is never longer than its fixed 255-byte
 * buffer.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine/amp.h>

#include "amp/amp_internal.h"

static inline const char *slot_key(const tw_amp_box *b, const tw__amp_slot *s)
{
    return b->arena + s->off;
}

static inline const char *slot_value(const tw_amp_box *b, const tw__amp_slot *s)
{
    return b->arena + s->off + s->klen + 1;
}

static inline size_t slot_bytes(const tw__amp_slot *s)
{
    return s->klen + s->vlen + 2;
}

/*
 * Keys are short and usually differ within their first few bytes, where a
 * plain loop beats a call to memcmp().
 */
static inline int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    const unsigned char *x = a, *y = b;
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return x[i] < y[i] ? -1 : 1;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* Binary search: the index of @p key, or where it would go (*found = 0). */
static size_t box_find(const tw_amp_box *b, const void *key, size_t klen, int *found)
{
    size_t lo = 0, hi = b->count;
    /* Boxes usually arrive sorted, so look at the end first. */
    if (hi > 0 && key_cmp(slot_key(b, &b->items[hi - 1]), b->items[hi - 1].klen, key, klen) < 0) {
        *found = 0;
        return hi;
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(slot_key(b, &b->items[mid]), b->items[mid].klen, key, klen);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

/*
 * Make room for @p n more arena bytes. Replaced and removed entries leave
 * dead bytes behind; growing copies only the live ones, so the arena stays
 * within twice what the box holds.
 * @return the offset of the room, or (size_t)-1 when memory runs out.
 */
static size_t arena_reserve(tw_amp_box *b, size_t n)
{
    if (b->used + n <= b->size) {
        size_t at = b->used;
        b->used += n;
        return at;
    }
    size_t live = b->used - b->dead;
    size_t size = b->size * 2;
    if (size < live + n)
        size = live + n;
    char *arena = malloc(size);
    if (arena == NULL)
        return (size_t)-1;
    size_t at = 0;
    for (size_t i = 0; i < b->count; i++) {
        size_t len = slot_bytes(&b->items[i]);
        memcpy(arena + at, b->arena + b->items[i].off, len);
        b->items[i].off = at;
        at += len;
    }
    if (b->arena != b->inline_arena)
        free(b->arena);
    b->arena = arena;
    b->size = size;
    b->dead = 0;
    b->used = at + n;
    return at;
}

/* Room for an entry, its key copied in. @return its offset, or (size_t)-1. */
static size_t entry_new(tw_amp_box *b, const void *key, size_t klen, size_t vlen)
{
    size_t off = arena_reserve(b, klen + vlen + 2);
    if (off == (size_t)-1)
        return off;
    char *e = b->arena + off;
    memcpy(e, key, klen);
    e[klen] = '\0';
    e[klen + 1 + vlen] = '\0';
    return off;
}

/* Room in the index for one more entry. @return 0 or -ENOMEM. */
static int items_reserve(tw_amp_box *b)
{
    if (b->count < b->cap)
        return 0;
    size_t cap = b->cap * 2;
    tw__amp_slot *items = malloc(cap * sizeof *items);
    if (items == NULL)
        return -ENOMEM;
    memcpy(items, b->items, b->count * sizeof *items);
    if (b->items != b->inline_items)
        free(b->items);
    b->items = items;
    b->cap = cap;
    return 0;
}

/* Put the entry at @p off, already in the arena, into the sorted index. */
static int box_insert(tw_amp_box *b, size_t off, size_t klen, size_t vlen)
{
    int found;
    tw__amp_slot s = {off, klen, vlen};
    size_t at = box_find(b, b->arena + off, klen, &found);
    if (found) {
        tw__amp_slot *old = &b->items[at];
        b->wire -= 4 + old->klen + old->vlen;
        b->dead += slot_bytes(old);
        *old = s;
        b->wire += 4 + klen + vlen;
        return 0;
    }
    if (items_reserve(b) < 0) {
        b->dead += klen + vlen + 2;
        return -ENOMEM;
    }
    memmove(b->items + at + 1, b->items + at, (b->count - at) * sizeof *b->items);
    b->items[at] = s;
    b->count++;
    b->wire += 4 + klen + vlen;
    return 0;
}

/* Append the entry at @p off to the index, which the caller sorts with
 * box_sort() before anyone looks it up. @return 1 if it is still sorted
 * (the key is past the last one), 0 if not, -ENOMEM. */
static int box_append(tw_amp_box *b, size_t off, size_t klen, size_t vlen)
{
    if (items_reserve(b) < 0) {
        b->dead += klen + vlen + 2;
        return -ENOMEM;
    }
    int in_order = 1;
    if (b->count > 0) {
        const tw__amp_slot *last = &b->items[b->count - 1];
        in_order = key_cmp(slot_key(b, last), last->klen, b->arena + off, klen) < 0;
    }
    b->items[b->count++] = (tw__amp_slot){off, klen, vlen};
    b->wire += 4 + klen + vlen;
    return in_order;
}

/* qsort() has no context argument: slots are compared through the box
 * being sorted. One parse runs at a time per thread. */
static _Thread_local const tw_amp_box *sorting;

/* By key, then by arrival: the arena offsets of appended entries grow in
 * arrival order, and arena_reserve()'s compaction keeps the index order. */
static int slot_order(const void *a, const void *b)
{
    const tw__amp_slot *x = a, *y = b;
    int c = key_cmp(slot_key(sorting, x), x->klen, slot_key(sorting, y), y->klen);
    if (c != 0)
        return c;
    return x->off < y->off ? -1 : x->off > y->off;
}

/* Sort an appended index, keeping the last entry of a repeated key as
 * box_insert() would: n log n whatever the order the keys came in. */
static void box_sort(tw_amp_box *b)
{
    sorting = b;
    qsort(b->items, b->count, sizeof *b->items, slot_order);
    sorting = NULL;
    size_t kept = 0;
    for (size_t i = 0; i < b->count; i++) {
        tw__amp_slot *s = &b->items[i];
        if (i + 1 < b->count &&
            key_cmp(slot_key(b, s), s->klen, slot_key(b, s + 1), s[1].klen) == 0) {
            b->wire -= 4 + s->klen + s->vlen; /* replaced by a later one */
            b->dead += slot_bytes(s);
            continue;
        }
        b->items[kept++] = *s;
    }
    b->count = kept;
}

void tw__amp_box_init(tw_amp_box *b)
{
    b->items = b->inline_items;
    b->count = 0;
    b->cap = TW__AMP_BOX_SLOTS;
    b->arena = b->inline_arena;
    b->used = 0;
    b->size = TW__AMP_BOX_BYTES;
    b->dead = 0;
    b->wire = 0;
}

void tw__amp_box_release(tw_amp_box *b)
{
    if (b->items != b->inline_items)
        free(b->items);
    if (b->arena != b->inline_arena)
        free(b->arena);
    tw__amp_box_init(b);
}

TW_API tw_amp_box *tw_amp_box_new(void)
{
    tw_amp_box *b = malloc(sizeof *b);
    if (b != NULL)
        tw__amp_box_init(b);
    return b;
}

TW_API void tw_amp_box_free(tw_amp_box *b)
{
    if (b == NULL)
        return;
    tw__amp_box_release(b);
    free(b);
}

TW_API int tw_amp_box_set(tw_amp_box *b, const void *key, size_t keylen, const void *value,
                          size_t valuelen)
{
    if (b == NULL || key == NULL || keylen == 0 || keylen > TW_AMP_MAX_KEY_LENGTH ||
        (value == NULL && valuelen > 0))
        return -EINVAL;
    if (valuelen > TW_AMP_MAX_VALUE_LENGTH)
        return TW_ETOOBIG;
    size_t off = entry_new(b, key, keylen, valuelen);
    if (off == (size_t)-1)
        return -ENOMEM;
    if (valuelen > 0)
        memcpy(b->arena + off + keylen + 1, value, valuelen);
    return box_insert(b, off, keylen, valuelen);
}

TW_API int tw_amp_box_set_str(tw_amp_box *b, const char *key, const char *value)
{
    if (key == NULL || value == NULL)
        return -EINVAL;
    return tw_amp_box_set(b, key, strlen(key), value, strlen(value));
}

TW_API const char *tw_amp_box_getn(const tw_amp_box *b, const void *key, size_t keylen,
                                   size_t *len)
{
    if (b == NULL || key == NULL)
        return NULL;
    if (b->count <= TW__AMP_BOX_SLOTS) {
        /* A small box is searched for equality alone, lengths first. */
        const unsigned char *k = key;
        for (size_t i = 0; i < b->count; i++) {
            const tw__amp_slot *s = &b->items[i];
            const unsigned char *sk = (const unsigned char *)slot_key(b, s);
            if (s->klen != keylen || key_cmp(sk, keylen, k, keylen) != 0)
                continue;
            if (len != NULL)
                *len = s->vlen;
            return slot_value(b, s);
        }
        return NULL;
    }
    int found;
    size_t at = box_find(b, key, keylen, &found);
    if (!found)
        return NULL;
    if (len != NULL)
        *len = b->items[at].vlen;
    return slot_value(b, &b->items[at]);
}

TW_API const char *tw_amp_box_get(const tw_amp_box *b, const char *key, size_t *len)
{
    if (key == NULL)
        return NULL;
    return tw_amp_box_getn(b, key, strlen(key), len);
}

TW_API int tw_amp_box_remove(tw_amp_box *b, const char *key)
{
    if (b == NULL || key == NULL)
        return -ENOENT;
    int found;
    size_t at = box_find(b, key, strlen(key), &found);
    if (!found)
        return -ENOENT;
    tw__amp_slot *s = &b->items[at];
    b->wire -= 4 + s->klen + s->vlen;
    b->dead += slot_bytes(s);
    memmove(b->items + at, b->items + at + 1, (b->count - at - 1) * sizeof *b->items);
    b->count--;
    return 0;
}

TW_API size_t tw_amp_box_count(const tw_amp_box *b)
{
    return b != NULL ? b->count : 0;
}

TW_API int tw_amp_box_entry(const tw_amp_box *b, size_t i, const char **key, size_t *keylen,
                            const char **value, size_t *valuelen)
{
    if (b == NULL || i >= b->count)
        return -ENOENT;
    const tw__amp_slot *e = &b->items[i];
    if (key != NULL)
        *key = slot_key(b, e);
    if (keylen != NULL)
        *keylen = e->klen;
    if (value != NULL)
        *value = slot_value(b, e);
    if (valuelen != NULL)
        *valuelen = e->vlen;
    return 0;
}

TW_API size_t tw_amp_box_encoded_size(const tw_amp_box *b)
{
    return (b != NULL ? b->wire : 0) + 2;
}

static inline unsigned char *put_u16(unsigned char *p, size_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)(v & 0xff);
    return p + 2;
}

TW_API size_t tw_amp_box_encode(const tw_amp_box *b, void *buf, size_t cap)
{
    size_t need = tw_amp_box_encoded_size(b);
    if (need > cap || buf == NULL)
        return need;
    unsigned char *p = buf;
    for (size_t i = 0; b != NULL && i < b->count; i++) {
        const tw__amp_slot *e = &b->items[i];
        p = put_u16(p, e->klen);
        memcpy(p, slot_key(b, e), e->klen);
        p += e->klen;
        p = put_u16(p, e->vlen);
        memcpy(p, slot_value(b, e), e->vlen);
        p += e->vlen;
    }
    put_u16(p, 0);
    return need;
}

/* ------------------------------------------------------------ parser */

enum { S_KEYLEN, S_KEY, S_VALLEN, S_VALUE, S_BROKEN };

struct tw_amp_parser {
    size_t max_box;
    tw_amp_box *box;  /* the box being received, or NULL before its first key */
    size_t box_bytes; /* wire bytes of it so far */
    int state;
    int broken_code;
    unsigned char hdr[2];
    size_t hdr_have;
    size_t klen, key_have;
    size_t val_off, val_len; /* the value being filled, in the box's arena */
    size_t val_have;
    int unsorted; /* the box's keys came out of order: sort it when complete */
    tw_amp_box *spare; /* a box handed back by tw__amp_parser_recycle(), for the next one */
    unsigned char key[TW_AMP_MAX_KEY_LENGTH];
    char error[160];
};

TW_API tw_amp_parser *tw_amp_parser_new(size_t max_box_size)
{
    tw_amp_parser *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->max_box = max_box_size ? max_box_size : TW_AMP_DEFAULT_MAX_BOX_SIZE;
    p->state = S_KEYLEN;
    return p;
}

TW_API void tw_amp_parser_free(tw_amp_parser *p)
{
    if (p == NULL)
        return;
    tw_amp_box_free(p->box);
    tw_amp_box_free(p->spare);
    free(p);
}

TW_API const char *tw_amp_parser_error(const tw_amp_parser *p)
{
    return p != NULL ? p->error : "";
}

TW_API size_t tw_amp_parser_buffered(const tw_amp_parser *p)
{
    if (p == NULL)
        return 0;
    /* What a partial box holds beyond an empty one: its arena and index. */
    if (p->box == NULL || (p->box->count == 0 && p->box->used == 0))
        return 0;
    return sizeof *p->box + (p->box->arena != p->box->inline_arena ? p->box->size : 0) +
           (p->box->items != p->box->inline_items ? p->box->cap * sizeof(tw__amp_slot) : 0);
}

static int parser_break(tw_amp_parser *p, int code, const char *fmt, ...) TW_PRINTF(3, 4);

static int parser_break(tw_amp_parser *p, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->error, sizeof p->error, fmt, ap);
    va_end(ap);
    p->state = S_BROKEN;
    p->broken_code = code;
    tw_amp_box_free(p->box);
    p->box = NULL;
    tw_amp_box_free(p->spare);
    p->spare = NULL;
    return code;
}

/* A fresh box for the parser to fill: the spare one if there is one. */
static tw_amp_box *parser_box(tw_amp_parser *p)
{
    tw_amp_box *box = p->spare;
    p->spare = NULL;
    return box != NULL ? box : tw_amp_box_new();
}

void tw__amp_parser_recycle(tw_amp_parser *p, tw_amp_box *box)
{
    if (p->spare != NULL || p->state == S_BROKEN || box->arena != box->inline_arena ||
        box->items != box->inline_items) {
        /* Only small boxes are kept, so a connection's idle memory stays small. */
        tw_amp_box_free(box);
        return;
    }
    tw__amp_box_init(box);
    p->spare = box;
}

void tw__amp_parser_trim(tw_amp_parser *p)
{
    tw_amp_box_free(p->spare);
    p->spare = NULL;
}

/*
 * The wire bytes of the partial box, rebuilt from what the parser kept:
 * the complete entries in the order they arrived, then the entry under
 * way. A connection that stops speaking AMP hands them to its next
 * protocol, as Twisted hands over its receive buffer.
 */
int tw__amp_parser_take_partial(tw_amp_parser *p, unsigned char **out, size_t *outlen)
{
    *out = NULL;
    *outlen = 0;
    if (p->state == S_BROKEN)
        return 0;
    tw_amp_box *b = p->box;
    size_t n = (b != NULL ? b->wire : 0) + 2 + TW_AMP_MAX_KEY_LENGTH + 2 +
               (p->state == S_VALUE ? p->val_have : 0);
    unsigned char *buf = malloc(n), *at = buf;
    if (buf == NULL)
        return -ENOMEM;
    for (size_t i = 0; b != NULL && i < b->count; i++) {
        const tw__amp_slot *e = &b->items[i];
        at = put_u16(at, e->klen);
        memcpy(at, slot_key(b, e), e->klen);
        at += e->klen;
        at = put_u16(at, e->vlen);
        memcpy(at, slot_value(b, e), e->vlen);
        at += e->vlen;
    }
    switch (p->state) {
    case S_KEYLEN:
        memcpy(at, p->hdr, p->hdr_have);
        at += p->hdr_have;
        break;
    case S_KEY:
        at = put_u16(at, p->klen);
        memcpy(at, p->key, p->key_have);
        at += p->key_have;
        break;
    case S_VALLEN:
        at = put_u16(at, p->klen);
        memcpy(at, p->key, p->klen);
        at += p->klen;
        memcpy(at, p->hdr, p->hdr_have);
        at += p->hdr_have;
        break;
    case S_VALUE:
        at = put_u16(at, p->klen);
        memcpy(at, b->arena + p->val_off, p->klen);
        at += p->klen;
        at = put_u16(at, p->val_len);
        memcpy(at, b->arena + p->val_off + p->klen + 1, p->val_have);
        at += p->val_have;
        break;
    }
    /* The parser starts over, empty. */
    tw_amp_box_free(p->box);
    p->box = NULL;
    p->box_bytes = 0;
    p->hdr_have = 0;
    p->unsorted = 0;
    p->state = S_KEYLEN;
    *outlen = (size_t)(at - buf);
    if (*outlen == 0) {
        free(buf);
        return 0;
    }
    *out = buf;
    return 0;
}

/* Gather up to two header bytes; @return nonzero once both are there. */
static int take_hdr(tw_amp_parser *p, const unsigned char **at, const unsigned char *end)
{
    while (p->hdr_have < 2 && *at < end)
        p->hdr[p->hdr_have++] = *(*at)++;
    return p->hdr_have == 2;
}

/* The value being received is complete: put the entry into the box. */
static int value_done(tw_amp_parser *p)
{
    p->box_bytes += p->val_len;
    int in_order = box_append(p->box, p->val_off, p->klen, p->val_len);
    if (in_order < 0)
        return parser_break(p, -ENOMEM, "out of memory");
    if (!in_order)
        p->unsorted = 1;
    p->state = S_KEYLEN;
    return 0;
}

/*
 * A value of @p n bytes for the key of p->klen bytes at @p key follows:
 * check it against the size limit, then make its entry in the box.
 */
static int value_start(tw_amp_parser *p, const void *key, size_t n)
{
    if (p->box_bytes + 2 + n + 2 > p->max_box)
        return parser_break(p, TW_ETOOBIG, "a box exceeds the limit of %zu bytes", p->max_box);
    p->box_bytes += 2;
    if (p->box == NULL && (p->box = parser_box(p)) == NULL)
        return parser_break(p, -ENOMEM, "out of memory");
    if (p->box->count >= TW_AMP_MAX_KEYS)
        return parser_break(p, TW_ETOOBIG, "a box exceeds the limit of %d keys", TW_AMP_MAX_KEYS);
    p->val_off = entry_new(p->box, key, p->klen, n);
    p->val_len = n;
    if (p->val_off == (size_t)-1)
        return parser_break(p, -ENOMEM, "out of memory");
    p->val_have = 0;
    p->state = S_VALUE;
    return 0;
}

TW_API int tw_amp_parser_feed(tw_amp_parser *p, const void *data, size_t len, tw_amp_box_fn fn,
                              void *arg, size_t *consumed)
{
    const unsigned char *at = data, *end = len > 0 ? at + len : at; /* NULL + 0 is UB */
    int rc = 0;
    if (p->state == S_BROKEN) {
        if (consumed != NULL)
            *consumed = 0;
        return p->broken_code;
    }
    while (at < end) {
        switch (p->state) {
        case S_KEYLEN: {
            if (!take_hdr(p, &at, end))
                break;
            size_t n = ((size_t)p->hdr[0] << 8) | p->hdr[1];
            p->hdr_have = 0;
            if (n == 0) {
                tw_amp_box *box = p->box != NULL ? p->box : parser_box(p);
                p->box = NULL;
                p->box_bytes = 0;
                if (box == NULL) {
                    rc = parser_break(p, -ENOMEM, "out of memory");
                    goto out;
                }
                if (p->unsorted)
                    box_sort(box);
                p->unsorted = 0;
                rc = fn(box, arg);
                if (rc != 0)
                    goto out;
                break;
            }
            if (n > TW_AMP_MAX_KEY_LENGTH) {
                rc = parser_break(p, TW_EPROTO, "a key of %zu bytes exceeds the limit of %d",
                                  n, TW_AMP_MAX_KEY_LENGTH);
                goto out;
            }
            /* The key, an empty value and the end marker must all fit. */
            if (p->box_bytes + 2 + n + 2 + 2 > p->max_box) {
                rc = parser_break(p, TW_ETOOBIG, "a box exceeds the limit of %zu bytes",
                                  p->max_box);
                goto out;
            }
            p->box_bytes += 2;
            p->klen = n;
            p->key_have = 0;
            p->state = S_KEY;
            break;
        }
        case S_KEY: {
            size_t avail = (size_t)(end - at);
            if (p->key_have == 0 && avail >= p->klen + 2 &&
                avail - p->klen - 2 >= (((size_t)at[p->klen] << 8) | at[p->klen + 1])) {
                /* The whole entry is at hand, as it mostly is: the key and
                 * the value go straight into the box, not through p->key. */
                const unsigned char *key = at;
                size_t n = ((size_t)at[p->klen] << 8) | at[p->klen + 1];
                p->box_bytes += p->klen;
                at += p->klen + 2;
                if ((rc = value_start(p, key, n)) < 0)
                    goto out;
                memcpy(p->box->arena + p->val_off + p->klen + 1, at, n);
                at += n;
                if ((rc = value_done(p)) < 0)
                    goto out;
                break;
            }
            size_t take = p->klen - p->key_have;
            if (take > (size_t)(end - at))
                take = (size_t)(end - at);
            memcpy(p->key + p->key_have, at, take);
            at += take;
            p->key_have += take;
            if (p->key_have == p->klen) {
                p->box_bytes += p->klen;
                p->state = S_VALLEN;
            }
            break;
        }
        case S_VALLEN: {
            if (!take_hdr(p, &at, end))
                break;
            size_t n = ((size_t)p->hdr[0] << 8) | p->hdr[1];
            p->hdr_have = 0;
            if ((rc = value_start(p, p->key, n)) < 0)
                goto out;
            /* An empty value is complete already. */
            if (n == 0 && (rc = value_done(p)) < 0)
                goto out;
            break;
        }
        case S_VALUE: {
            size_t take = p->val_len - p->val_have;
            if (take > (size_t)(end - at))
                take = (size_t)(end - at);
            memcpy(p->box->arena + p->val_off + p->klen + 1 + p->val_have, at, take);
            at += take;
            p->val_have += take;
            if (p->val_have == p->val_len && (rc = value_done(p)) < 0)
                goto out;
            break;
        }
        default:
            rc = p->broken_code;
            goto out;
        }
    }
out:
    if (consumed != NULL)
        *consumed = (size_t)(at - (const unsigned char *)data);
    return rc;
}
