/* SPDX-License-Identifier: MIT */
/*
 * What the connection files (amp_connection.c and its neighbours, see
 * amp_conn_internal.h) need of the box and value code beyond the public
 * API: the layouts, so that the boxes and argument sets of one call can
 * live on the stack, and the functions that set them up and tear them down
 * there.
 *
 * Both containers keep small contents inline (a few entries, a few hundred
 * bytes), which is what a typical command or answer holds, so handling one
 * call allocates nothing for them; larger contents spill to the heap.
 */
#ifndef TWINE_AMP_INTERNAL_H
#define TWINE_AMP_INTERNAL_H

#include <stddef.h>
#include <twine/amp.h>

/* One entry of a box: key, NUL, value, NUL at arena + off. */
typedef struct tw__amp_slot {
    size_t off, klen, vlen;
} tw__amp_slot;

#define TW__AMP_BOX_SLOTS 6
#define TW__AMP_BOX_BYTES 192

struct tw_amp_box {
    tw__amp_slot *items; /* sorted by key; inline_items until it outgrows them */
    size_t count, cap;
    char *arena; /* inline_arena until it outgrows it */
    size_t used, size;
    size_t dead; /* arena bytes of replaced or removed entries */
    size_t wire; /* encoded size of the entries, end marker excluded */
    tw__amp_slot inline_items[TW__AMP_BOX_SLOTS];
    char inline_arena[TW__AMP_BOX_BYTES];
};

/* Make @p b an empty box that tw__amp_box_release() tears down. */
void tw__amp_box_init(tw_amp_box *b);
/* Free what @p b holds on the heap; @p b itself is the caller's. */
void tw__amp_box_release(tw_amp_box *b);

typedef struct tw__amp_named {
    const char *name;
    tw_amp_value value;
    unsigned char name_heap; /* name was malloc'd, not carved from the arena */
    unsigned char data_heap; /* String/Unicode bytes were malloc'd */
} tw__amp_named;

#define TW__AMP_VALUES_SLOTS 4
#define TW__AMP_VALUES_BYTES 160

struct tw_amp_values {
    tw__amp_named *items; /* inline_items until it outgrows them */
    size_t count, cap;
    size_t used; /* bytes of inline_arena handed out; never reclaimed */
    tw__amp_named inline_items[TW__AMP_VALUES_SLOTS];
    char inline_arena[TW__AMP_VALUES_BYTES];
};

/* Make @p v an empty set that tw__amp_values_release() tears down. */
void tw__amp_values_init(tw_amp_values *v);
/* Free what @p v holds on the heap; @p v itself is the caller's. */
void tw__amp_values_release(tw_amp_values *v);

/*
 * tw_amp_values_from_box() into @p out, an initialised set.
 * @return 0, or -1 after writing one sentence into @p err (@p out must
 *         still be released).
 */
int tw__amp_values_decode(const tw_amp_arg *spec, const tw_amp_box *box, tw_amp_values *out,
                          char *err, size_t errlen);

/*
 * Give a box the parser handed out back to @p p, which reuses it for the
 * next box (or frees it, if it grew past its inline storage or a box is
 * already kept). Saves an allocation per box on a busy connection.
 */
void tw__amp_parser_recycle(tw_amp_parser *p, tw_amp_box *box);
/* Free the box kept for reuse, so an idle connection holds none. */
void tw__amp_parser_trim(tw_amp_parser *p);
/*
 * Take the bytes of the box @p p has only partly received, as they came on
 * the wire, and empty the parser. @p out receives them (malloc'd, the
 * caller's; NULL when there are none), @p outlen their count.
 * @return 0, or -ENOMEM (the parser is unchanged).
 */
int tw__amp_parser_take_partial(tw_amp_parser *p, unsigned char **out, size_t *outlen);

/*
 * The canonical text of an Integer of any size read as Python's int()
 * reads it, or of a Decimal read as decimal.Decimal() reads it and written
 * as its str() writes it (amp_numbers.c). The text is malloc'd and
 * NUL-terminated. @return 0, -EINVAL for text Python refuses, -ENOMEM.
 */
int tw__amp_integer_canonical(const char *text, size_t len, char **out, size_t *outlen);
int tw__amp_decimal_canonical(const char *text, size_t len, char **out, size_t *outlen);

/* DateTime's wire text, 32 bytes (amp_datetime.c). */
#define TW__AMP_DATETIME_LENGTH 32
/* Write @p dt as Twisted does, NUL-terminated. @return 0, or -EINVAL for a field out of range. */
int tw__amp_datetime_format(const tw_amp_datetime *dt, char out[TW__AMP_DATETIME_LENGTH + 1]);
/* Read @p text as Twisted does. @return 0, or -EINVAL for text Twisted or Python refuses. */
int tw__amp_datetime_parse(const char *text, size_t len, tw_amp_datetime *out);

#endif
