/* SPDX-License-Identifier: MIT */
/*
 * AMP argument types: how Integer, String, Unicode, Boolean, Float,
 * Decimal, DateTime, Path, ListOf and AmpList values become bytes and back,
 * and the named value sets that commands carry. The text forms of Decimal
 * and of Integers past 64 bits live in amp_numbers.c, DateTime's in
 * amp_datetime.c.
 *
 * Every encoding is Twisted's, and every decoder accepts what Twisted's
 * accepts, because the peer is often Python: Integer text is what int()
 * takes, Float text what float() takes, and floats are written as Python's
 * repr() writes them -- the shortest digits that read back to the same
 * double, laid out in fixed notation for decimal exponents -4 to 16 and in
 * exponent notation otherwise. Decoders never trust a length they did not
 * check against the bytes they were given.
 *
 * printf/strtod follow the C locale's decimal point, which an embedding
 * program may have changed with setlocale(); the Float code never lets a
 * '.' reach them (mantissas are passed as integers with an exponent) or
 * swaps it for the locale's, so the wire format never depends on a locale.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine/amp.h>

#include "amp/amp_internal.h"
#include "core/buf_internal.h"

TW_API const tw_amp_type tw_amp_type_integer = {TW_AMP_INTEGER, NULL};
TW_API const tw_amp_type tw_amp_type_string = {TW_AMP_STRING, NULL};
TW_API const tw_amp_type tw_amp_type_unicode = {TW_AMP_UNICODE, NULL};
TW_API const tw_amp_type tw_amp_type_boolean = {TW_AMP_BOOLEAN, NULL};
TW_API const tw_amp_type tw_amp_type_float = {TW_AMP_FLOAT, NULL};
TW_API const tw_amp_type tw_amp_type_decimal = {TW_AMP_DECIMAL, NULL};
TW_API const tw_amp_type tw_amp_type_datetime = {TW_AMP_DATETIME, NULL};
TW_API const tw_amp_type tw_amp_type_path = {TW_AMP_PATH, NULL};

/* The rows' fields of an AmpList type, which is the base of a tw_amp_amplist_type. */
static const tw_amp_arg *amplist_fields(const tw_amp_type *t)
{
    return ((const tw_amp_amplist_type *)t)->fields;
}

/*
 * A set's names and String/Unicode bytes are carved from a small arena
 * inside the set while it lasts, then malloc'd one by one; the flags of
 * each entry say which. The arena is never reclaimed (a replaced value's
 * bytes stay), which bounds it by its fixed size.
 */
typedef tw__amp_named named;

static void seterr(char *err, size_t errlen, const char *fmt, ...) TW_PRINTF(3, 4);

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const char *kind_name(tw_amp_kind k)
{
    switch (k) {
    case TW_AMP_INTEGER:
        return "Integer";
    case TW_AMP_STRING:
        return "String";
    case TW_AMP_UNICODE:
        return "Unicode";
    case TW_AMP_BOOLEAN:
        return "Boolean";
    case TW_AMP_FLOAT:
        return "Float";
    case TW_AMP_LIST:
        return "ListOf";
    case TW_AMP_DECIMAL:
        return "Decimal";
    case TW_AMP_DATETIME:
        return "DateTime";
    case TW_AMP_PATH:
        return "Path";
    case TW_AMP_AMPLIST:
        return "AmpList";
    case TW_AMP_BIG_INTEGER:
        return "Integer";
    }
    return "unknown type";
}

/* ------------------------------------------------------------ values */

static int is_bytes_kind(tw_amp_kind k)
{
    return k == TW_AMP_STRING || k == TW_AMP_UNICODE;
}

/*
 * A list of String or Unicode elements is one allocation: its @p n items,
 * then each element's @p bytes with a NUL after it, which the elements
 * point into. A malloc per element made a 65,534-byte list of empty
 * strings take 1.8 MB (28 times its size); packed, an element costs its
 * tw_amp_value and its bytes, under 13 times the input at worst.
 * @return the block (items zeroed), or NULL on overflow or out of memory.
 */
static tw_amp_value *bytes_list_new(size_t n, size_t bytes)
{
    if (n > (SIZE_MAX - bytes) / (sizeof(tw_amp_value) + 1))
        return NULL;
    return calloc(1, n * sizeof(tw_amp_value) + bytes + n + 1);
}

/* Element @p i of a packed list: @p len bytes copied to *@p at. */
static void bytes_list_put(tw_amp_value *items, size_t i, tw_amp_kind kind, const char *data,
                           size_t len, char **at)
{
    if (len > 0)
        memcpy(*at, data, len);
    (*at)[len] = '\0';
    items[i].kind = kind;
    items[i].u.bytes.data = *at;
    items[i].u.bytes.len = len;
    *at += len + 1;
}

/* The type kind a value kind belongs to: a big Integer is an Integer. */
static tw_amp_kind type_kind(tw_amp_kind k)
{
    return k == TW_AMP_BIG_INTEGER ? TW_AMP_INTEGER : k;
}

static void rows_free(tw_amp_value *v)
{
    tw_amp_values **rows = (tw_amp_values **)v->u.rows.items;
    for (size_t i = 0; i < v->u.rows.count; i++)
        tw_amp_values_free(rows[i]);
    free(rows);
}

static void value_clear(tw_amp_value *v)
{
    switch (v->kind) {
    case TW_AMP_STRING:
    case TW_AMP_UNICODE:
    case TW_AMP_PATH:
    case TW_AMP_DECIMAL:
    case TW_AMP_BIG_INTEGER:
        free((char *)v->u.bytes.data);
        break;
    case TW_AMP_AMPLIST:
        rows_free(v);
        break;
    case TW_AMP_LIST: {
        tw_amp_value *items = (tw_amp_value *)v->u.list.items;
        /* A packed list of bytes (bytes_list_new()) is one block. */
        if (v->u.list.count == 0 || !is_bytes_kind(items[0].kind))
            for (size_t i = 0; i < v->u.list.count; i++)
                value_clear(&items[i]);
        free(items);
        break;
    }
    default:
        break;
    }
    memset(v, 0, sizeof *v);
}

static int valid_kind(tw_amp_kind k)
{
    return k >= TW_AMP_INTEGER && k <= TW_AMP_BIG_INTEGER;
}

static char *dup_bytes(const char *data, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return NULL;
    if (len > 0)
        memcpy(copy, data, len);
    copy[len] = '\0';
    return copy;
}

/* Copy the @p n String or Unicode elements at @p src into a packed list. */
static int bytes_list_copy(tw_amp_value *dst, const tw_amp_value *src, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i].kind != src[0].kind || (src[i].u.bytes.data == NULL && src[i].u.bytes.len > 0))
            return -EINVAL;
        if (src[i].u.bytes.len > SIZE_MAX - bytes)
            return -ENOMEM;
        bytes += src[i].u.bytes.len;
    }
    tw_amp_value *items = bytes_list_new(n, bytes);
    if (items == NULL)
        return -ENOMEM;
    char *at = (char *)(items + n);
    for (size_t i = 0; i < n; i++)
        bytes_list_put(items, i, src[i].kind, src[i].u.bytes.data, src[i].u.bytes.len, &at);
    dst->kind = TW_AMP_LIST;
    dst->u.list.items = items;
    dst->u.list.count = n;
    return 0;
}

static int value_copy(tw_amp_value *dst, const tw_amp_value *src);

/* A deep copy of @p src, or NULL (-EINVAL or -ENOMEM in @p rc). */
static tw_amp_values *values_copy(const tw_amp_values *src, int *rc)
{
    tw_amp_values *copy = tw_amp_values_new();
    *rc = copy != NULL ? 0 : -ENOMEM;
    for (size_t i = 0; *rc == 0 && i < tw_amp_values_count(src); i++)
        *rc = tw_amp_values_set(copy, src->items[i].name, &src->items[i].value);
    if (*rc < 0) {
        tw_amp_values_free(copy);
        return NULL;
    }
    return copy;
}

/* Deep copy @p src into @p dst. @return 0, -EINVAL or -ENOMEM (dst cleared). */
static int value_copy(tw_amp_value *dst, const tw_amp_value *src)
{
    memset(dst, 0, sizeof *dst);
    if (!valid_kind(src->kind))
        return -EINVAL;
    switch (src->kind) {
    case TW_AMP_AMPLIST: {
        size_t n = src->u.rows.count;
        if (n > 0 && src->u.rows.items == NULL)
            return -EINVAL;
        tw_amp_values **rows = calloc(n ? n : 1, sizeof *rows);
        if (rows == NULL)
            return -ENOMEM;
        dst->kind = TW_AMP_AMPLIST;
        dst->u.rows.items = (const tw_amp_values *const *)rows;
        for (size_t i = 0; i < n; i++) {
            int rc = -EINVAL;
            if (src->u.rows.items[i] != NULL)
                rows[i] = values_copy(src->u.rows.items[i], &rc);
            if (rows[i] == NULL) {
                value_clear(dst);
                return rc;
            }
            dst->u.rows.count = i + 1;
        }
        return 0;
    }
    case TW_AMP_STRING:
    case TW_AMP_UNICODE:
    case TW_AMP_PATH:
    case TW_AMP_DECIMAL:
    case TW_AMP_BIG_INTEGER: {
        if (src->u.bytes.data == NULL && src->u.bytes.len > 0)
            return -EINVAL;
        char *copy = dup_bytes(src->u.bytes.data, src->u.bytes.len);
        if (copy == NULL)
            return -ENOMEM;
        dst->kind = src->kind;
        dst->u.bytes.data = copy;
        dst->u.bytes.len = src->u.bytes.len;
        return 0;
    }
    case TW_AMP_LIST: {
        size_t n = src->u.list.count;
        if (n > 0 && src->u.list.items == NULL)
            return -EINVAL;
        if (n > 0 && is_bytes_kind(src->u.list.items[0].kind))
            return bytes_list_copy(dst, src->u.list.items, n);
        tw_amp_value *items = calloc(n ? n : 1, sizeof *items);
        if (items == NULL)
            return -ENOMEM;
        dst->kind = TW_AMP_LIST;
        dst->u.list.items = items;
        for (size_t i = 0; i < n; i++) {
            if (type_kind(src->u.list.items[i].kind) != type_kind(src->u.list.items[0].kind)) {
                value_clear(dst);
                return -EINVAL;
            }
            int rc = value_copy(&items[i], &src->u.list.items[i]);
            if (rc < 0) {
                value_clear(dst);
                return rc;
            }
            dst->u.list.count = i + 1;
        }
        return 0;
    }
    case TW_AMP_BOOLEAN:
        dst->kind = TW_AMP_BOOLEAN;
        dst->u.boolean = src->u.boolean != 0;
        return 0;
    default:
        *dst = *src;
        return 0;
    }
}

void tw__amp_values_init(tw_amp_values *v)
{
    v->items = v->inline_items;
    v->count = 0;
    v->cap = TW__AMP_VALUES_SLOTS;
    v->used = 0;
}

/* Clear @p value, freeing its String/Unicode bytes only if @p data_heap. */
static void value_drop(tw_amp_value *value, int data_heap)
{
    if ((value->kind == TW_AMP_STRING || value->kind == TW_AMP_UNICODE) && !data_heap)
        memset(value, 0, sizeof *value);
    else
        value_clear(value);
}

void tw__amp_values_release(tw_amp_values *v)
{
    for (size_t i = 0; i < v->count; i++) {
        if (v->items[i].name_heap)
            free((char *)v->items[i].name);
        value_drop(&v->items[i].value, v->items[i].data_heap);
    }
    if (v->items != v->inline_items)
        free(v->items);
    tw__amp_values_init(v);
}

TW_API tw_amp_values *tw_amp_values_new(void)
{
    tw_amp_values *v = malloc(sizeof *v);
    if (v != NULL)
        tw__amp_values_init(v);
    return v;
}

TW_API void tw_amp_values_free(tw_amp_values *v)
{
    if (v == NULL)
        return;
    tw__amp_values_release(v);
    free(v);
}

/* @p len bytes from the set's arena, or from malloc (*heap = 1); NULL when out of memory. */
static char *values_alloc(tw_amp_values *v, size_t len, unsigned char *heap)
{
    if (len <= TW__AMP_VALUES_BYTES - v->used) {
        char *at = v->inline_arena + v->used;
        v->used += len;
        *heap = 0;
        return at;
    }
    *heap = 1;
    return malloc(len);
}

/* Copy @p len bytes and a NUL into @p v's storage, as a String/Unicode of @p dst. */
static int values_copy_bytes(tw_amp_values *v, tw_amp_kind kind, const char *data, size_t len,
                             tw_amp_value *dst, unsigned char *heap)
{
    char *copy = values_alloc(v, len + 1, heap);
    if (copy == NULL)
        return -ENOMEM;
    if (len > 0)
        memcpy(copy, data, len);
    copy[len] = '\0';
    memset(dst, 0, sizeof *dst);
    dst->kind = kind;
    dst->u.bytes.data = copy;
    dst->u.bytes.len = len;
    return 0;
}

static named *values_find(const tw_amp_values *v, const char *name)
{
    for (size_t i = 0; i < v->count; i++)
        if (strcmp(v->items[i].name, name) == 0)
            return &v->items[i];
    return NULL;
}

/*
 * Store @p value (taken over, even on error) under @p name; @p data_heap
 * says whether its String/Unicode bytes were malloc'd.
 */
static int values_put(tw_amp_values *v, const char *name, tw_amp_value *value, int data_heap)
{
    named *slot = values_find(v, name);
    if (slot != NULL) {
        value_drop(&slot->value, slot->data_heap);
        slot->value = *value;
        slot->data_heap = (unsigned char)data_heap;
        return 0;
    }
    if (v->count == v->cap) {
        size_t cap = v->cap * 2;
        named *items = malloc(cap * sizeof *items);
        if (items == NULL) {
            value_drop(value, data_heap);
            return -ENOMEM;
        }
        memcpy(items, v->items, v->count * sizeof *items);
        if (v->items != v->inline_items)
            free(v->items);
        v->items = items;
        v->cap = cap;
    }
    size_t len = strlen(name) + 1;
    unsigned char name_heap;
    char *copy = values_alloc(v, len, &name_heap);
    if (copy == NULL) {
        value_drop(value, data_heap);
        return -ENOMEM;
    }
    memcpy(copy, name, len);
    named *n = &v->items[v->count];
    n->name = copy;
    n->name_heap = name_heap;
    n->value = *value;
    n->data_heap = (unsigned char)data_heap;
    v->count++;
    return 0;
}

TW_API int tw_amp_values_set(tw_amp_values *v, const char *name, const tw_amp_value *value)
{
    if (v == NULL || name == NULL || name[0] == '\0' || value == NULL)
        return -EINVAL;
    tw_amp_value copy;
    if (value->kind == TW_AMP_STRING || value->kind == TW_AMP_UNICODE) {
        if (value->u.bytes.data == NULL && value->u.bytes.len > 0)
            return -EINVAL;
        unsigned char heap;
        if (values_copy_bytes(v, value->kind, value->u.bytes.data, value->u.bytes.len, &copy,
                              &heap) < 0)
            return -ENOMEM;
        return values_put(v, name, &copy, heap);
    }
    int rc = value_copy(&copy, value);
    if (rc < 0)
        return rc;
    return values_put(v, name, &copy, 1);
}

TW_API int tw_amp_values_set_integer(tw_amp_values *v, const char *name, int64_t value)
{
    tw_amp_value x = {.kind = TW_AMP_INTEGER, .u.integer = value};
    return tw_amp_values_set(v, name, &x);
}

TW_API int tw_amp_values_set_string(tw_amp_values *v, const char *name, const void *data,
                                    size_t len)
{
    tw_amp_value x = {.kind = TW_AMP_STRING, .u.bytes = {data, len}};
    return tw_amp_values_set(v, name, &x);
}

TW_API int tw_amp_values_set_unicode(tw_amp_values *v, const char *name, const char *text)
{
    if (text == NULL)
        return -EINVAL;
    tw_amp_value x = {.kind = TW_AMP_UNICODE, .u.bytes = {text, strlen(text)}};
    return tw_amp_values_set(v, name, &x);
}

TW_API int tw_amp_values_set_boolean(tw_amp_values *v, const char *name, int value)
{
    tw_amp_value x = {.kind = TW_AMP_BOOLEAN, .u.boolean = value != 0};
    return tw_amp_values_set(v, name, &x);
}

TW_API int tw_amp_values_set_float(tw_amp_values *v, const char *name, double value)
{
    tw_amp_value x = {.kind = TW_AMP_FLOAT, .u.number = value};
    return tw_amp_values_set(v, name, &x);
}

/* Store malloc'd text (taken over, even on error) as a value of @p kind. */
static int values_put_text(tw_amp_values *v, const char *name, tw_amp_kind kind, char *text,
                           size_t len)
{
    tw_amp_value x = {.kind = kind, .u.bytes = {text, len}};
    return values_put(v, name, &x, 1);
}

TW_API int tw_amp_values_set_integer_text(tw_amp_values *v, const char *name, const char *text)
{
    if (v == NULL || name == NULL || name[0] == '\0' || text == NULL)
        return -EINVAL;
    size_t len = strlen(text);
    if (len > TW_AMP_MAX_VALUE_LENGTH)
        return -EINVAL;
    int64_t small;
    int rc = tw_amp_integer_parse(text, len, &small);
    if (rc == 0)
        return tw_amp_values_set_integer(v, name, small);
    if (rc != -ERANGE)
        return -EINVAL;
    char *canon;
    size_t n;
    rc = tw__amp_integer_canonical(text, len, &canon, &n);
    return rc < 0 ? rc : values_put_text(v, name, TW_AMP_BIG_INTEGER, canon, n);
}

TW_API int tw_amp_values_set_decimal(tw_amp_values *v, const char *name, const char *text)
{
    if (v == NULL || name == NULL || name[0] == '\0' || text == NULL)
        return -EINVAL;
    size_t len = strlen(text);
    if (len > TW_AMP_MAX_VALUE_LENGTH)
        return -EINVAL;
    char *canon;
    size_t n;
    int rc = tw__amp_decimal_canonical(text, len, &canon, &n);
    return rc < 0 ? rc : values_put_text(v, name, TW_AMP_DECIMAL, canon, n);
}

TW_API int tw_amp_values_set_datetime(tw_amp_values *v, const char *name,
                                      const tw_amp_datetime *value)
{
    if (value == NULL)
        return -EINVAL;
    tw_amp_value x = {.kind = TW_AMP_DATETIME, .u.datetime = *value};
    return tw_amp_values_set(v, name, &x);
}

TW_API int tw_amp_values_set_path(tw_amp_values *v, const char *name, const char *path)
{
    if (path == NULL)
        return -EINVAL;
    tw_amp_value x = {.kind = TW_AMP_PATH, .u.bytes = {path, strlen(path)}};
    return tw_amp_values_set(v, name, &x);
}

TW_API int tw_amp_values_set_amplist(tw_amp_values *v, const char *name,
                                     const tw_amp_values *const *rows, size_t count)
{
    tw_amp_value x = {.kind = TW_AMP_AMPLIST, .u.rows = {rows, count}};
    return tw_amp_values_set(v, name, &x);
}

TW_API const tw_amp_value *tw_amp_values_get(const tw_amp_values *v, const char *name)
{
    if (v == NULL || name == NULL)
        return NULL;
    named *slot = values_find(v, name);
    return slot != NULL ? &slot->value : NULL;
}

static int get_kind(const tw_amp_values *v, const char *name, tw_amp_kind kind,
                    const tw_amp_value **out)
{
    const tw_amp_value *x = tw_amp_values_get(v, name);
    if (x == NULL)
        return -ENOENT;
    if (type_kind(x->kind) != kind &&
        !(kind == TW_AMP_STRING && (x->kind == TW_AMP_UNICODE || x->kind == TW_AMP_PATH)))
        return -EINVAL;
    *out = x;
    return 0;
}

TW_API int tw_amp_values_get_integer(const tw_amp_values *v, const char *name, int64_t *out)
{
    const tw_amp_value *x;
    int rc = get_kind(v, name, TW_AMP_INTEGER, &x);
    if (rc == 0 && x->kind == TW_AMP_BIG_INTEGER)
        return -ERANGE;
    if (rc == 0 && out != NULL)
        *out = x->u.integer;
    return rc;
}

TW_API int tw_amp_values_get_integer_text(const tw_amp_values *v, const char *name, char *buf,
                                          size_t cap, size_t *len)
{
    const tw_amp_value *x;
    int rc = get_kind(v, name, TW_AMP_INTEGER, &x);
    if (rc < 0)
        return rc;
    char small[24];
    const char *text = small;
    size_t n;
    if (x->kind == TW_AMP_BIG_INTEGER) {
        text = x->u.bytes.data;
        n = x->u.bytes.len;
    } else {
        n = (size_t)snprintf(small, sizeof small, "%" PRId64, x->u.integer);
    }
    if (len != NULL)
        *len = n;
    if (buf == NULL || n >= cap)
        return -ENOSPC;
    memcpy(buf, text, n + 1);
    return 0;
}

TW_API int tw_amp_values_get_string(const tw_amp_values *v, const char *name, const char **data,
                                    size_t *len)
{
    const tw_amp_value *x;
    int rc = get_kind(v, name, TW_AMP_STRING, &x);
    if (rc == 0) {
        if (data != NULL)
            *data = x->u.bytes.data;
        if (len != NULL)
            *len = x->u.bytes.len;
    }
    return rc;
}

TW_API int tw_amp_values_get_boolean(const tw_amp_values *v, const char *name, int *out)
{
    const tw_amp_value *x;
    int rc = get_kind(v, name, TW_AMP_BOOLEAN, &x);
    if (rc == 0 && out != NULL)
        *out = x->u.boolean;
    return rc;
}

TW_API int tw_amp_values_get_float(const tw_amp_values *v, const char *name, double *out)
{
    const tw_amp_value *x;
    int rc = get_kind(v, name, TW_AMP_FLOAT, &x);
    if (rc == 0 && out != NULL)
        *out = x->u.number;
    return rc;
}

TW_API int tw_amp_values_get_decimal(const tw_amp_values *v, const char *name, const char **text,
                                     size_t *len)
{
    const tw_amp_value *x;
    int rc = get_kind(v, name, TW_AMP_DECIMAL, &x);
    if (rc == 0) {
        if (text != NULL)
            *text = x->u.bytes.data;
        if (len != NULL)
            *len = x->u.bytes.len;
    }
    return rc;
}

TW_API int tw_amp_values_get_datetime(const tw_amp_values *v, const char *name,
                                      tw_amp_datetime *out)
{
    const tw_amp_value *x;
    int rc = get_kind(v, name, TW_AMP_DATETIME, &x);
    if (rc == 0 && out != NULL)
        *out = x->u.datetime;
    return rc;
}

TW_API int tw_amp_values_get_amplist(const tw_amp_values *v, const char *name,
                                     const tw_amp_values *const **rows, size_t *count)
{
    const tw_amp_value *x;
    int rc = get_kind(v, name, TW_AMP_AMPLIST, &x);
    if (rc == 0) {
        if (rows != NULL)
            *rows = x->u.rows.items;
        if (count != NULL)
            *count = x->u.rows.count;
    }
    return rc;
}

TW_API size_t tw_amp_values_count(const tw_amp_values *v)
{
    return v != NULL ? v->count : 0;
}

TW_API int tw_amp_values_entry(const tw_amp_values *v, size_t i, const char **name,
                               const tw_amp_value **value)
{
    if (v == NULL || i >= v->count)
        return -ENOENT;
    if (name != NULL)
        *name = v->items[i].name;
    if (value != NULL)
        *value = &v->items[i].value;
    return 0;
}

/* ------------------------------------------------------------ numbers */

/* Python's Py_ISSPACE for bytes: the six ASCII white-space characters. */
static int py_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static void strip(const char **text, size_t *len)
{
    const unsigned char *s = (const unsigned char *)*text;
    size_t n = *len;
    while (n > 0 && py_space(s[0])) {
        s++;
        n--;
    }
    while (n > 0 && py_space(s[n - 1]))
        n--;
    *text = (const char *)s;
    *len = n;
}

TW_API int tw_amp_integer_parse(const char *text, size_t len, int64_t *out)
{
    if (text == NULL)
        return -EINVAL;
    strip(&text, &len);
    const unsigned char *s = (const unsigned char *)text, *end = s + len;
    int neg = 0;
    if (s < end && (*s == '+' || *s == '-'))
        neg = *s++ == '-';
    if (s == end || !is_digit(*s))
        return -EINVAL;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t acc = 0;
    int range = 0;
    for (; s < end; s++) {
        if (*s == '_') {
            /* One underscore, between two digits. */
            if (s + 1 == end || !is_digit(s[1]))
                return -EINVAL;
            continue;
        }
        if (!is_digit(*s))
            return -EINVAL;
        unsigned d = *s - '0';
        if (acc > (limit - d) / 10)
            range = 1; /* keep checking the syntax: bad text beats a big number */
        else
            acc = acc * 10 + d;
    }
    if (range)
        return -ERANGE;
    if (out != NULL)
        *out = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return 0;
}

static int match_word(const unsigned char *s, size_t n, const char *word)
{
    if (n != strlen(word))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (c != (unsigned char)word[i])
            return 0;
    }
    return 1;
}

/*
 * Copy a run of digits with Python's underscore rule (single underscores
 * between digits) into @p out. @return the digits copied, or -1.
 */
static long take_digits(const unsigned char **s, const unsigned char *end, char *out,
                        size_t *at, size_t cap)
{
    long n = 0;
    const unsigned char *p = *s;
    while (p < end) {
        if (is_digit(*p)) {
            if (*at + 1 >= cap)
                return -1;
            out[(*at)++] = (char)*p++;
            n++;
        } else if (*p == '_' && n > 0 && p + 1 < end && is_digit(p[1])) {
            p++;
        } else {
            break;
        }
    }
    *s = p;
    return n;
}

TW_API int tw_amp_float_parse(const char *text, size_t len, double *out)
{
    if (text == NULL)
        return -EINVAL;
    strip(&text, &len);
    const unsigned char *s = (const unsigned char *)text, *end = s + len;
    int neg = 0;
    if (s < end && (*s == '+' || *s == '-'))
        neg = *s++ == '-';
    size_t rest = (size_t)(end - s);
    double value;
    if (match_word(s, rest, "inf") || match_word(s, rest, "infinity")) {
        value = INFINITY;
    } else if (match_word(s, rest, "nan")) {
        value = NAN;
    } else {
        /*
         * Rebuild the number as "DIGITSe EXP" -- the mantissa's digits with
         * the decimal point folded into the exponent -- so strtod never sees
         * a locale's decimal point. Digits past what a double can resolve
         * still matter for rounding, so all of them are kept.
         */
        size_t cap = rest + 32;
        char *buf = malloc(cap);
        if (buf == NULL)
            return -ENOMEM;
        size_t at = 0;
        long whole = take_digits(&s, end, buf, &at, cap);
        long frac = 0;
        if (whole < 0)
            goto bad;
        if (s < end && *s == '.') {
            s++;
            frac = take_digits(&s, end, buf, &at, cap);
            if (frac < 0)
                goto bad;
        }
        if (whole + frac == 0)
            goto bad;
        long long exp = 0;
        if (s < end && (*s == 'e' || *s == 'E')) {
            s++;
            int eneg = 0;
            if (s < end && (*s == '+' || *s == '-'))
                eneg = *s++ == '-';
            if (s == end || !is_digit(*s))
                goto bad;
            int ended_digit = 0;
            while (s < end) {
                if (is_digit(*s)) {
                    /* Clamp: past 10^6 every double is 0 or inf already. */
                    if (exp < 100000000)
                        exp = exp * 10 + (*s - '0');
                    ended_digit = 1;
                    s++;
                } else if (*s == '_' && ended_digit && s + 1 < end && is_digit(s[1])) {
                    s++;
                } else {
                    break;
                }
            }
            if (eneg)
                exp = -exp;
        }
        if (s != end)
            goto bad;
        exp -= frac;
        snprintf(buf + at, cap - at, "e%lld", exp);
        char *stop;
        value = strtod(buf, &stop);
        int ok = *stop == '\0';
        free(buf);
        if (!ok)
            return -EINVAL;
        goto done;
    bad:
        free(buf);
        return -EINVAL;
    }
done:
    if (out != NULL)
        *out = neg ? -value : value;
    return 0;
}

/*
 * The shortest decimal digits that read back as @p x (> 0, finite), and
 * where the decimal point goes: x = 0.DIGITS * 10^decpt. The candidate at
 * each precision is printf's correctly rounded one; at a power of two the
 * gap below x is half the gap above, so when the nearest candidate falls
 * below that narrower gap the next one up may still read back, and
 * Python's dtoa would take it.
 */
static void shortest_digits(double x, char *digits, int *ndigits, int *decpt)
{
    char tmp[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, x);
        /* Collect the digits and the exponent, skipping the locale's point. */
        char d[24];
        int nd = 0;
        const char *p = tmp;
        while (*p != 'e') {
            if (is_digit((unsigned char)*p))
                d[nd++] = *p;
            p++;
        }
        int exp10 = atoi(p + 1);
        for (int attempt = 0; attempt < 2; attempt++) {
            if (attempt == 1) {
                /* The next candidate up: add one in the last place. */
                int i = nd - 1;
                while (i >= 0 && d[i] == '9')
                    d[i--] = '0';
                if (i < 0) {
                    d[0] = '1';
                    exp10++;
                } else {
                    d[i]++;
                }
            }
            char cand[64];
            snprintf(cand, sizeof cand, "%.*se%d", nd, d, exp10 - (nd - 1));
            if (strtod(cand, NULL) == x) {
                while (nd > 1 && d[nd - 1] == '0')
                    nd--;
                memcpy(digits, d, (size_t)nd);
                *ndigits = nd;
                *decpt = exp10 + 1;
                return;
            }
        }
    }
    /* 17 significant digits always read back; this is not reached. */
    snprintf(tmp, sizeof tmp, "%.16e", x);
    int nd = 0;
    const char *p = tmp;
    while (*p != 'e') {
        if (is_digit((unsigned char)*p))
            digits[nd++] = *p;
        p++;
    }
    *ndigits = nd;
    *decpt = atoi(p + 1) + 1;
}

TW_API size_t tw_amp_float_repr(double x, char *buf, size_t len)
{
    char out[40];
    size_t n = 0;
    if (isnan(x)) {
        strcpy(out, "nan");
    } else if (isinf(x)) {
        strcpy(out, x < 0 ? "-inf" : "inf");
    } else if (x == 0) {
        strcpy(out, signbit(x) ? "-0.0" : "0.0");
    } else {
        char digits[24];
        int nd, decpt;
        if (x < 0)
            out[n++] = '-';
        shortest_digits(fabs(x), digits, &nd, &decpt);
        if (decpt <= -4 || decpt > 16) {
            out[n++] = digits[0];
            if (nd > 1) {
                out[n++] = '.';
                memcpy(out + n, digits + 1, (size_t)nd - 1);
                n += (size_t)nd - 1;
            }
            int e = decpt - 1;
            n += (size_t)snprintf(out + n, sizeof out - n, "e%c%02d", e < 0 ? '-' : '+',
                                  e < 0 ? -e : e);
        } else if (decpt <= 0) {
            out[n++] = '0';
            out[n++] = '.';
            for (int i = 0; i < -decpt; i++)
                out[n++] = '0';
            memcpy(out + n, digits, (size_t)nd);
            n += (size_t)nd;
        } else if (decpt >= nd) {
            memcpy(out + n, digits, (size_t)nd);
            n += (size_t)nd;
            for (int i = nd; i < decpt; i++)
                out[n++] = '0';
            out[n++] = '.';
            out[n++] = '0';
        } else {
            memcpy(out + n, digits, (size_t)decpt);
            n += (size_t)decpt;
            out[n++] = '.';
            memcpy(out + n, digits + decpt, (size_t)(nd - decpt));
            n += (size_t)(nd - decpt);
        }
        out[n] = '\0';
    }
    n = strlen(out);
    if (buf != NULL && n < len)
        memcpy(buf, out, n + 1);
    return n;
}

/* ------------------------------------------------------------ UTF-8 */

/* Strict UTF-8, as Python's decoder: no overlongs, surrogates or > U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0)
                lo = 0xA0;
            else if (c == 0xED)
                hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0)
                lo = 0x90;
            else if (c == 0xF4)
                hi = 0x8F;
        } else {
            return 0;
        }
        if (n - i - 1 < need)
            return 0;
        if (s[i + 1] < lo || s[i + 1] > hi)
            return 0;
        for (size_t k = 2; k <= need; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF)
                return 0;
        i += need + 1;
    }
    return 1;
}

/* ------------------------------------------------------------ encoding */

/* Starts in its own local bytes, which hold any scalar and most strings. */
typedef struct {
    char *data;
    size_t len, cap;
    char local[128];
} buffer;

static void buf_init(buffer *b)
{
    b->data = b->local;
    b->len = 0;
    b->cap = sizeof b->local;
}

static int buf_reserve(buffer *b, size_t more)
{
    if (more > TW_AMP_MAX_VALUE_LENGTH - b->len)
        return TW_ETOOBIG;
    return tw__buf_reserve(&b->data, &b->cap, b->len, more, 64, b->local);
}

static int buf_put(buffer *b, const void *data, size_t len)
{
    int rc = buf_reserve(b, len);
    if (rc < 0)
        return rc;
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

/* Append canonical text, or say that @p v is not a valid @p what. */
static int put_canonical(int (*canonical)(const char *, size_t, char **, size_t *),
                         const tw_amp_value *v, buffer *b, const char *name, const char *what,
                         char *err, size_t errlen)
{
    char *text;
    size_t n;
    int rc = canonical(v->u.bytes.data, v->u.bytes.len, &text, &n);
    if (rc == -EINVAL)
        seterr(err, errlen, "'%s' is not a valid %s", name, what);
    if (rc < 0)
        return rc;
    rc = buf_put(b, text, n);
    free(text);
    return rc;
}

static int encode_rows(const tw_amp_type *t, const tw_amp_value *v, buffer *b, const char *name,
                       char *err, size_t errlen)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < v->u.rows.count; i++) {
        tw_amp_box box;
        tw__amp_box_init(&box);
        char why[200] = "";
        rc = tw_amp_values_to_box(amplist_fields(t), v->u.rows.items[i], &box, 0, why, sizeof why);
        if (rc == -EINVAL)
            seterr(err, errlen, "row %zu of '%s': %s", i, name, why);
        if (rc == 0) {
            size_t n = tw_amp_box_encoded_size(&box);
            rc = buf_reserve(b, n);
            if (rc == 0)
                b->len += tw_amp_box_encode(&box, b->data + b->len, n);
        }
        tw__amp_box_release(&box);
    }
    return rc;
}

static int encode_value(const tw_amp_type *t, const tw_amp_value *v, buffer *b,
                        const char *name, char *err, size_t errlen)
{
    if (t == NULL || type_kind(v->kind) != t->kind) {
        seterr(err, errlen, "'%s' should be %s, not %s", name,
               t != NULL ? kind_name(t->kind) : "typed", kind_name(v->kind));
        return -EINVAL;
    }
    char tmp[40];
    switch (t->kind) {
    case TW_AMP_INTEGER: {
        if (v->kind == TW_AMP_BIG_INTEGER)
            return put_canonical(tw__amp_integer_canonical, v, b, name, "Integer", err, errlen);
        int n = snprintf(tmp, sizeof tmp, "%" PRId64, v->u.integer);
        return buf_put(b, tmp, (size_t)n);
    }
    case TW_AMP_DECIMAL:
        return put_canonical(tw__amp_decimal_canonical, v, b, name, "Decimal", err, errlen);
    case TW_AMP_DATETIME:
        if (tw__amp_datetime_format(&v->u.datetime, tmp) < 0) {
            seterr(err, errlen, "'%s' is not a valid DateTime", name);
            return -EINVAL;
        }
        return buf_put(b, tmp, TW__AMP_DATETIME_LENGTH);
    case TW_AMP_FLOAT: {
        size_t n = tw_amp_float_repr(v->u.number, tmp, sizeof tmp);
        return buf_put(b, tmp, n);
    }
    case TW_AMP_BOOLEAN:
        return v->u.boolean ? buf_put(b, "True", 4) : buf_put(b, "False", 5);
    case TW_AMP_PATH:
        if (v->u.bytes.len > 0 && memchr(v->u.bytes.data, '\0', v->u.bytes.len) != NULL) {
            seterr(err, errlen, "'%s' is a Path with a NUL byte", name);
            return -EINVAL;
        }
        /* fall through */
    case TW_AMP_UNICODE:
        if (!utf8_valid((const unsigned char *)v->u.bytes.data, v->u.bytes.len)) {
            seterr(err, errlen, "'%s' is not valid UTF-8", name);
            return -EINVAL;
        }
        return buf_put(b, v->u.bytes.data, v->u.bytes.len);
    case TW_AMP_AMPLIST:
        return encode_rows(t, v, b, name, err, errlen);
    case TW_AMP_BIG_INTEGER:
        break; /* never a type's kind */
    case TW_AMP_STRING:
        return buf_put(b, v->u.bytes.data, v->u.bytes.len);
    case TW_AMP_LIST:
        for (size_t i = 0; i < v->u.list.count; i++) {
            int rc = buf_reserve(b, 2);
            if (rc < 0)
                return rc;
            size_t at = b->len;
            b->len += 2;
            rc = encode_value(t->element, &v->u.list.items[i], b, name, err, errlen);
            if (rc < 0)
                return rc;
            size_t n = b->len - at - 2;
            b->data[at] = (char)(n >> 8);
            b->data[at + 1] = (char)(n & 0xff);
        }
        return 0;
    }
    seterr(err, errlen, "'%s' has an unknown type", name);
    return -EINVAL;
}

static const tw_amp_arg *spec_find(const tw_amp_arg *spec, const char *name)
{
    for (; spec != NULL && spec->name != NULL; spec++)
        if (strcmp(spec->name, name) == 0)
            return spec;
    return NULL;
}

TW_API int tw_amp_values_to_box(const tw_amp_arg *spec, const tw_amp_values *values,
                                tw_amp_box *box, int strict, char *err, size_t errlen)
{
    if (box == NULL) {
        seterr(err, errlen, "no box to encode into");
        return -EINVAL;
    }
    if (strict) {
        for (size_t i = 0; i < tw_amp_values_count(values); i++) {
            if (spec_find(spec, values->items[i].name) == NULL) {
                seterr(err, errlen, "%s is not a valid argument", values->items[i].name);
                return -EINVAL;
            }
        }
    }
    buffer b;
    buf_init(&b);
    int rc = 0;
    for (; spec != NULL && spec->name != NULL; spec++) {
        const tw_amp_value *v = tw_amp_values_get(values, spec->name);
        if (v == NULL) {
            if (spec->optional)
                continue;
            seterr(err, errlen, "missing a value for '%s'", spec->name);
            rc = -EINVAL;
            break;
        }
        b.len = 0;
        rc = encode_value(spec->type, v, &b, spec->name, err, errlen);
        if (rc == 0) {
            rc = tw_amp_box_set(box, spec->name, strlen(spec->name), b.data, b.len);
            if (rc == -EINVAL)
                seterr(err, errlen, "'%s' is not a valid key", spec->name);
        }
        if (rc == TW_ETOOBIG)
            seterr(err, errlen, "'%s' encodes to more than %d bytes", spec->name,
                   TW_AMP_MAX_VALUE_LENGTH);
        if (rc == -ENOMEM)
            seterr(err, errlen, "out of memory");
        if (rc < 0)
            break;
    }
    if (b.data != b.local)
        free(b.data);
    return rc;
}

/* ------------------------------------------------------------ decoding */

/* Decode the @p n complete elements (@p bytes in all) of a list of String
 * or Unicode at @p data into a packed list. */
static int bytes_list_decode(tw_amp_kind kind, const char *data, size_t n, size_t bytes,
                             tw_amp_value *out, const char *name, char *err, size_t errlen)
{
    tw_amp_value *items = bytes_list_new(n, bytes);
    if (items == NULL) {
        seterr(err, errlen, "out of memory");
        return -ENOMEM;
    }
    const unsigned char *p = (const unsigned char *)data;
    char *at = (char *)(items + n);
    for (size_t i = 0; i < n; i++) {
        size_t el = ((size_t)p[0] << 8) | p[1];
        if (kind == TW_AMP_UNICODE && !utf8_valid(p + 2, el)) {
            free(items);
            seterr(err, errlen, "'%s' is not valid UTF-8", name);
            return -EINVAL;
        }
        bytes_list_put(items, i, kind, (const char *)p + 2, el, &at);
        p += 2 + el;
    }
    out->kind = TW_AMP_LIST;
    out->u.list.items = items;
    out->u.list.count = n;
    return 0;
}

/* Decode text into its canonical form, a value of @p kind in @p out. */
static int decode_canonical(int (*canonical)(const char *, size_t, char **, size_t *),
                            tw_amp_kind kind, const char *data, size_t len, tw_amp_value *out,
                            const char *name, char *err, size_t errlen)
{
    char *text;
    size_t n;
    int rc = canonical(data, len, &text, &n);
    if (rc < 0) {
        seterr(err, errlen, rc == -ENOMEM ? "out of memory" : "'%s' is not a valid %s", name,
               kind_name(kind));
        return rc;
    }
    out->kind = kind;
    out->u.bytes.data = text;
    out->u.bytes.len = n;
    return 0;
}

/* The rows of an AmpList being decoded, one per box the parser completes. */
typedef struct {
    const tw_amp_type *t;
    tw_amp_value *out;
    size_t cap;
    const char *name;
    char *err;
    size_t errlen;
    int rc;
} rows_decoder;

static int decode_row(tw_amp_box *box, void *arg)
{
    rows_decoder *d = arg;
    tw_amp_value *out = d->out;
    char why[200] = "";
    tw_amp_values *row = tw_amp_values_from_box(amplist_fields(d->t), box, why, sizeof why);
    tw_amp_box_free(box);
    if (row == NULL) {
        seterr(d->err, d->errlen, "row %zu of '%s': %s", out->u.rows.count, d->name, why);
        return d->rc = -EINVAL;
    }
    if (out->u.rows.count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        tw_amp_values **rows = realloc((void *)out->u.rows.items, cap * sizeof *rows);
        if (rows == NULL) {
            tw_amp_values_free(row);
            seterr(d->err, d->errlen, "out of memory");
            return d->rc = -ENOMEM;
        }
        out->u.rows.items = (const tw_amp_values *const *)rows;
        d->cap = cap;
    }
    ((tw_amp_values **)out->u.rows.items)[out->u.rows.count++] = row;
    return 0;
}

/*
 * The boxes of an AmpList value, read as Twisted's parseString() reads
 * them: with the connection's own parser, so the rules are the same, and a
 * trailing incomplete box is left unread as Twisted leaves it.
 */
static int decode_rows(const tw_amp_type *t, const char *data, size_t len, tw_amp_value *out,
                       const char *name, char *err, size_t errlen)
{
    out->kind = TW_AMP_AMPLIST;
    rows_decoder d = {t, out, 0, name, err, errlen, 0};
    tw_amp_parser *p = tw_amp_parser_new(0);
    int rc = p != NULL ? tw_amp_parser_feed(p, data, len, decode_row, &d, NULL) : -ENOMEM;
    if (rc != 0 && d.rc == 0) {
        seterr(err, errlen, rc == -ENOMEM ? "out of memory" : "'%s' is not a valid AmpList: %s",
               name, p != NULL ? tw_amp_parser_error(p) : "");
        rc = rc == -ENOMEM ? rc : -EINVAL;
    }
    tw_amp_parser_free(p);
    if (rc != 0) {
        value_clear(out);
        return rc;
    }
    return 0;
}

static int decode_value(const tw_amp_type *t, const char *data, size_t len, tw_amp_value *out,
                        const char *name, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (t == NULL) {
        seterr(err, errlen, "'%s' has no type", name);
        return -EINVAL;
    }
    switch (t->kind) {
    case TW_AMP_INTEGER: {
        int rc = tw_amp_integer_parse(data, len, &out->u.integer);
        if (rc == -ERANGE)
            return decode_canonical(tw__amp_integer_canonical, TW_AMP_BIG_INTEGER, data, len,
                                    out, name, err, errlen);
        if (rc < 0) {
            seterr(err, errlen, "'%s' is not a valid Integer", name);
            return -EINVAL;
        }
        out->kind = TW_AMP_INTEGER;
        return 0;
    }
    case TW_AMP_DECIMAL:
        return decode_canonical(tw__amp_decimal_canonical, TW_AMP_DECIMAL, data, len, out, name,
                                err, errlen);
    case TW_AMP_DATETIME:
        if (tw__amp_datetime_parse(data, len, &out->u.datetime) < 0) {
            seterr(err, errlen, "'%s' is not a valid DateTime", name);
            return -EINVAL;
        }
        out->kind = TW_AMP_DATETIME;
        return 0;
    case TW_AMP_AMPLIST:
        return decode_rows(t, data, len, out, name, err, errlen);
    case TW_AMP_BIG_INTEGER:
        break; /* never a type's kind */
    case TW_AMP_FLOAT: {
        int rc = tw_amp_float_parse(data, len, &out->u.number);
        if (rc < 0) {
            seterr(err, errlen, rc == -ENOMEM ? "out of memory" : "'%s' is not a valid Float",
                   name);
            return rc;
        }
        out->kind = TW_AMP_FLOAT;
        return 0;
    }
    case TW_AMP_BOOLEAN:
        if (len == 4 && memcmp(data, "True", 4) == 0)
            out->u.boolean = 1;
        else if (len == 5 && memcmp(data, "False", 5) == 0)
            out->u.boolean = 0;
        else {
            seterr(err, errlen, "'%s' is not a valid Boolean", name);
            return -EINVAL;
        }
        out->kind = TW_AMP_BOOLEAN;
        return 0;
    case TW_AMP_PATH:
        if (len > 0 && memchr(data, '\0', len) != NULL) {
            seterr(err, errlen, "'%s' is a Path with a NUL byte", name);
            return -EINVAL;
        }
        /* fall through */
    case TW_AMP_UNICODE:
        if (!utf8_valid((const unsigned char *)data, len)) {
            seterr(err, errlen, "'%s' is not valid UTF-8", name);
            return -EINVAL;
        }
        /* fall through */
    case TW_AMP_STRING: {
        char *copy = dup_bytes(data, len);
        if (copy == NULL) {
            seterr(err, errlen, "out of memory");
            return -ENOMEM;
        }
        out->kind = t->kind;
        out->u.bytes.data = copy;
        out->u.bytes.len = len;
        return 0;
    }
    case TW_AMP_LIST: {
        /* Count the complete elements; a short tail is ignored, as in Twisted. */
        const unsigned char *p = (const unsigned char *)data, *end = p + len;
        size_t n = 0, bytes = 0;
        while (end - p >= 2) {
            size_t el = ((size_t)p[0] << 8) | p[1];
            if ((size_t)(end - p - 2) < el)
                break;
            p += 2 + el;
            bytes += el;
            n++;
        }
        if (t->element != NULL && is_bytes_kind(t->element->kind) && n > 0)
            return bytes_list_decode(t->element->kind, data, n, bytes, out, name, err, errlen);
        tw_amp_value *items = calloc(n ? n : 1, sizeof *items);
        if (items == NULL) {
            seterr(err, errlen, "out of memory");
            return -ENOMEM;
        }
        out->kind = TW_AMP_LIST;
        out->u.list.items = items;
        p = (const unsigned char *)data;
        for (size_t i = 0; i < n; i++) {
            size_t el = ((size_t)p[0] << 8) | p[1];
            int rc = decode_value(t->element, (const char *)p + 2, el, &items[i], name, err,
                                  errlen);
            if (rc < 0) {
                value_clear(out);
                return rc;
            }
            out->u.list.count = i + 1;
            p += 2 + el;
        }
        return 0;
    }
    }
    seterr(err, errlen, "'%s' has an unknown type", name);
    return -EINVAL;
}

int tw__amp_values_decode(const tw_amp_arg *spec, const tw_amp_box *box, tw_amp_values *out,
                          char *err, size_t errlen)
{
    for (; spec != NULL && spec->name != NULL; spec++) {
        size_t len;
        const char *raw = tw_amp_box_get(box, spec->name, &len);
        if (raw == NULL) {
            if (spec->optional)
                continue;
            seterr(err, errlen, "missing '%s'", spec->name);
            return -1;
        }
        tw_amp_value v;
        unsigned char heap = 1;
        const tw_amp_type *t = spec->type;
        if (t != NULL && (t->kind == TW_AMP_STRING || t->kind == TW_AMP_UNICODE)) {
            /* The bytes go to the set's own storage rather than a malloc of their own. */
            if (t->kind == TW_AMP_UNICODE && !utf8_valid((const unsigned char *)raw, len)) {
                seterr(err, errlen, "'%s' is not valid UTF-8", spec->name);
                return -1;
            }
            if (values_copy_bytes(out, t->kind, raw, len, &v, &heap) < 0) {
                seterr(err, errlen, "out of memory");
                return -1;
            }
        } else if (decode_value(t, raw, len, &v, spec->name, err, errlen) < 0) {
            return -1;
        }
        if (values_put(out, spec->name, &v, heap) < 0) {
            seterr(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

TW_API tw_amp_values *tw_amp_values_from_box(const tw_amp_arg *spec, const tw_amp_box *box,
                                             char *err, size_t errlen)
{
    tw_amp_values *values = tw_amp_values_new();
    if (values == NULL) {
        seterr(err, errlen, "out of memory");
        return NULL;
    }
    if (tw__amp_values_decode(spec, box, values, err, errlen) < 0) {
        tw_amp_values_free(values);
        return NULL;
    }
    return values;
}
