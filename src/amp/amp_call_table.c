/* SPDX-License-Identifier: MIT */
/*
 * The outstanding calls of one AMP connection, found by _ask tag in
 * constant time. Answers arrive with the tag we sent, usually in the order
 * the calls were made, and a peer may send any bytes as a tag: a list
 * searched from its head would cost a scan per answer under load and a
 * full scan per forged tag.
 *
 * The connection hands out the tags itself (1, 2, 3, ... as lowercase hex),
 * so the key is the number, and text that is not the hex of a number we
 * could have handed out is refused before any lookup. Slots are found by
 * Fibonacci hashing (the number times 2^64/phi, top bits), which spreads
 * consecutive numbers evenly, and probed linearly; removal shifts the
 * probe run back, so no tombstones accumulate. The table stays between
 * two and eight times the calls it holds (at least 8 slots), so memory
 * follows the outstanding calls, and a burst that is over gives it back.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "amp/amp_conn_internal.h"

#define MIN_BITS 3

static size_t slot_of(uint64_t tag, unsigned bits)
{
    return (size_t)((tag * UINT64_C(0x9E3779B97F4A7C15)) >> (64 - bits));
}

/* Put @p c in the first free slot of its probe run; there is one. */
static void place(tw__amp_call **slots, unsigned bits, tw__amp_call *c)
{
    size_t mask = ((size_t)1 << bits) - 1;
    size_t i = slot_of(c->tag, bits);
    while (slots[i] != NULL)
        i = (i + 1) & mask;
    slots[i] = c;
}

/* Move every call to a table of 1 << @p bits slots. @return 0 or -ENOMEM. */
static int resize(tw__amp_call_table *t, unsigned bits)
{
    tw__amp_call **slots = calloc((size_t)1 << bits, sizeof *slots);
    if (slots == NULL)
        return -ENOMEM;
    if (t->slots != NULL) {
        size_t n = (size_t)1 << t->bits;
        for (size_t i = 0; i < n; i++)
            if (t->slots[i] != NULL)
                place(slots, bits, t->slots[i]);
        free(t->slots);
    }
    t->slots = slots;
    t->bits = bits;
    return 0;
}

int tw__amp_call_table_reserve(tw__amp_call_table *t)
{
    /* Keep at least half the slots free, so probe runs stay short. */
    if (t->slots != NULL && 2 * (t->list.count + 1) <= (size_t)1 << t->bits)
        return 0;
    unsigned bits = t->slots == NULL ? MIN_BITS : t->bits + 1;
    if (bits >= sizeof(size_t) * 8 - 1)
        return -ENOMEM;
    return resize(t, bits);
}

void tw__amp_call_table_add(tw__amp_call_table *t, tw__amp_call *c)
{
    place(t->slots, t->bits, c);
    tw__list_push(&t->list, &c->link);
}

/*
 * The number whose lowercase hex, without leading zeros, is @p text.
 * @return 0, or -1 for anything else (or 0, never handed out).
 */
static int parse_tag(const char *text, size_t len, uint64_t *out)
{
    if (len == 0 || len > 16 || text[0] == '0')
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = text[i];
        unsigned digit;
        if (ch >= '0' && ch <= '9')
            digit = (unsigned)(ch - '0');
        else if (ch >= 'a' && ch <= 'f')
            digit = (unsigned)(ch - 'a' + 10);
        else
            return -1;
        v = v << 4 | digit;
    }
    *out = v;
    return 0;
}

tw__amp_call *tw__amp_call_table_find(const tw__amp_call_table *t, const char *tag, size_t len)
{
    uint64_t key;
    if (t->slots == NULL || tag == NULL || parse_tag(tag, len, &key) < 0)
        return NULL;
    size_t mask = ((size_t)1 << t->bits) - 1;
    for (size_t i = slot_of(key, t->bits); t->slots[i] != NULL; i = (i + 1) & mask)
        if (t->slots[i]->tag == key)
            return t->slots[i];
    return NULL;
}

void tw__amp_call_table_remove(tw__amp_call_table *t, tw__amp_call *c)
{
    size_t mask = ((size_t)1 << t->bits) - 1;
    size_t hole = slot_of(c->tag, t->bits);
    while (t->slots[hole] != c)
        hole = (hole + 1) & mask;
    t->slots[hole] = NULL;
    /* Backward shift: a later call of the run whose home is not between the
     * hole and itself would be cut off from its home by the hole. */
    for (size_t i = (hole + 1) & mask; t->slots[i] != NULL; i = (i + 1) & mask) {
        size_t home = slot_of(t->slots[i]->tag, t->bits);
        if (((i - home) & mask) >= ((i - hole) & mask)) {
            t->slots[hole] = t->slots[i];
            t->slots[i] = NULL;
            hole = i;
        }
    }
    tw__list_remove(&t->list, &c->link);
    /* Give a burst's memory back; if that fails, the larger table still works. */
    if (t->bits > MIN_BITS && 8 * t->list.count < (size_t)1 << t->bits)
        (void)resize(t, t->bits - 1);
}

tw__amp_call *tw__amp_call_table_first(const tw__amp_call_table *t)
{
    return t->list.head != NULL ? tw_container_of(t->list.head, tw__amp_call, link) : NULL;
}

void tw__amp_call_table_release(tw__amp_call_table *t)
{
    free(t->slots);
    t->slots = NULL;
    t->bits = 0;
}
