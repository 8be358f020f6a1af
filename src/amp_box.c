/*
 * AMP boxes on the wire: the key/value container, its encoder, and the
 * incremental parser that turns a byte stream back into boxes.
 *
 * A box keeps its entries sorted by key, bytewise with a shorter key first
 * on a common prefix -- the order of Python's sorted() over bytes -- so that
 * encoding is a straight walk and the bytes match Twisted's. Each entry is
 * one allocation holding the key and the value, each followed by a NUL so
 * that callers may read text values as C strings.
 *
 * The parser is a four-state machine (key length, key, value length, value).
 * It allocates an entry only after the value's length was read and checked
 * against the box size limit, so a hostile peer cannot make it hold more
 * than one box of at most max_box_size bytes, and a key is never longer
 * than its fixed 255-byte buffer.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine/amp.h>

typedef struct entry {
    size_t vlen;
    size_t klen;
    char data[]; /* key, NUL, value, NUL */
} entry;

struct tw_amp_box {
    entry **items;
    size_t count, cap;
    size_t wire; /* encoded size of the entries, end marker excluded */
};

static inline const char *entry_value(const entry *e)
{
    return e->data + e->klen + 1;
}

static int key_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* Binary search: the index of @p key, or where it would go (*found = 0). */
static size_t box_find(const tw_amp_box *b, const void *key, size_t klen, int *found)
{
    size_t lo = 0, hi = b->count;
    /* Boxes usually arrive sorted, so look at the end first. */
    if (hi > 0 && key_cmp(b->items[hi - 1]->data, b->items[hi - 1]->klen, key, klen) < 0) {
        *found = 0;
        return hi;
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = key_cmp(b->items[mid]->data, b->items[mid]->klen, key, klen);
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

static entry *entry_new(const void *key, size_t klen, size_t vlen)
{
    entry *e = malloc(sizeof *e + klen + vlen + 2);
    if (e == NULL)
        return NULL;
    e->klen = klen;
    e->vlen = vlen;
    memcpy(e->data, key, klen);
    e->data[klen] = '\0';
    e->data[klen + 1 + vlen] = '\0';
    return e;
}

/* Put @p e into @p b, replacing an entry with the same key. Takes @p e. */
static int box_insert(tw_amp_box *b, entry *e)
{
    int found;
    size_t at = box_find(b, e->data, e->klen, &found);
    if (found) {
        entry *old = b->items[at];
        b->wire -= 4 + old->klen + old->vlen;
        free(old);
        b->items[at] = e;
        b->wire += 4 + e->klen + e->vlen;
        return 0;
    }
    if (b->count == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        entry **items = realloc(b->items, cap * sizeof *items);
        if (items == NULL) {
            free(e);
            return -ENOMEM;
        }
        b->items = items;
        b->cap = cap;
    }
    memmove(b->items + at + 1, b->items + at, (b->count - at) * sizeof *b->items);
    b->items[at] = e;
    b->count++;
    b->wire += 4 + e->klen + e->vlen;
    return 0;
}

TW_API tw_amp_box *tw_amp_box_new(void)
{
    return calloc(1, sizeof(tw_amp_box));
}

TW_API void tw_amp_box_free(tw_amp_box *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->count; i++)
        free(b->items[i]);
    free(b->items);
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
    entry *e = entry_new(key, keylen, valuelen);
    if (e == NULL)
        return -ENOMEM;
    if (valuelen > 0)
        memcpy(e->data + keylen + 1, value, valuelen);
    return box_insert(b, e);
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
    int found;
    size_t at = box_find(b, key, keylen, &found);
    if (!found)
        return NULL;
    if (len != NULL)
        *len = b->items[at]->vlen;
    return entry_value(b->items[at]);
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
    entry *e = b->items[at];
    b->wire -= 4 + e->klen + e->vlen;
    free(e);
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
    const entry *e = b->items[i];
    if (key != NULL)
        *key = e->data;
    if (keylen != NULL)
        *keylen = e->klen;
    if (value != NULL)
        *value = entry_value(e);
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
        const entry *e = b->items[i];
        p = put_u16(p, e->klen);
        memcpy(p, e->data, e->klen);
        p += e->klen;
        p = put_u16(p, e->vlen);
        memcpy(p, entry_value(e), e->vlen);
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
    entry *val; /* the entry being filled, allocated once its length was checked */
    size_t val_have;
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
    free(p->val);
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
    size_t n = p->box != NULL ? p->box->wire + p->box->cap * sizeof(entry *) +
                                    p->box->count * sizeof(entry)
                              : 0;
    if (p->val != NULL)
        n += sizeof(entry) + p->val->klen + p->val->vlen + 2;
    return n;
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
    free(p->val);
    p->val = NULL;
    return code;
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
    p->box_bytes += p->val->vlen;
    if (p->box == NULL && (p->box = tw_amp_box_new()) == NULL)
        return parser_break(p, -ENOMEM, "out of memory");
    entry *e = p->val;
    p->val = NULL;
    if (box_insert(p->box, e) < 0)
        return parser_break(p, -ENOMEM, "out of memory");
    p->state = S_KEYLEN;
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
                tw_amp_box *box = p->box != NULL ? p->box : tw_amp_box_new();
                p->box = NULL;
                p->box_bytes = 0;
                if (box == NULL) {
                    rc = parser_break(p, -ENOMEM, "out of memory");
                    goto out;
                }
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
            if (p->box_bytes + 2 + n + 2 > p->max_box) {
                rc = parser_break(p, TW_ETOOBIG, "a box exceeds the limit of %zu bytes",
                                  p->max_box);
                goto out;
            }
            p->box_bytes += 2;
            p->val = entry_new(p->key, p->klen, n);
            if (p->val == NULL) {
                rc = parser_break(p, -ENOMEM, "out of memory");
                goto out;
            }
            p->val_have = 0;
            p->state = S_VALUE;
            /* An empty value is complete already. */
            if (n == 0 && (rc = value_done(p)) < 0)
                goto out;
            break;
        }
        case S_VALUE: {
            size_t take = p->val->vlen - p->val_have;
            if (take > (size_t)(end - at))
                take = (size_t)(end - at);
            memcpy(p->val->data + p->val->klen + 1 + p->val_have, at, take);
            at += take;
            p->val_have += take;
            if (p->val_have == p->val->vlen && (rc = value_done(p)) < 0)
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
