/* SPDX-License-Identifier: MIT */
/*
 * Fuzzing AMP's box parser and its argument decoders.
 *
 * The stream goes to a tw_amp_parser in random chunks (with a small box
 * limit, so that it is hit), its callback sometimes stopping the parse,
 * after which the rest of the chunk is fed again. A model parses the whole
 * stream in one pass by amp.h's rules; both must give the same boxes and
 * end the same way. Each box must be within the limit, sorted, readable key
 * by key, and must encode to bytes that parse back to the very same bytes.
 *
 * Every box is also decoded against a few commands' argument lists (Sum's
 * Integers, and one of each type: String, Unicode, Boolean, Float, ListOf
 * Integer/Float/Unicode, ListOf(ListOf(String)), Decimal, DateTime, Path,
 * ListOf(Decimal), AmpList with a nested AmpList). What decodes must encode
 * again (unless it grew past 65535 bytes, as "1e5" does becoming
 * "100000.0") and decode back to equal values. Every value is also tried as
 * a Float, an Integer and a Decimal: a plain decimal number must read as
 * strtod() and strtoll() read it, a Float's repr() must read back to the
 * same double, an Integer's text past 64 bits must be kept as canonical
 * text, and a Decimal's canonical text must be its own canonical text.
 *
 * Input: [max box size][flags][seed x4] then the stream. fuzz/run.sh lets
 * inputs grow to 256 KiB, so boxes of thousands of keys (the key limit, the
 * cost of keys out of order) are reached.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <twine.h>
#include <twine/amp.h>

#include "fuzz.h"

/* ------------------------------------------------------------ commands */

static const tw_amp_type list_of_integer = {TW_AMP_LIST, &tw_amp_type_integer};
static const tw_amp_type list_of_float = {TW_AMP_LIST, &tw_amp_type_float};
static const tw_amp_type list_of_unicode = {TW_AMP_LIST, &tw_amp_type_unicode};
static const tw_amp_type list_of_string = {TW_AMP_LIST, &tw_amp_type_string};
static const tw_amp_type list_of_list = {TW_AMP_LIST, &list_of_string};
static const tw_amp_type list_of_decimal = {TW_AMP_LIST, &tw_amp_type_decimal};

/* AmpList rows: a few types, and rows of their own. */
static const tw_amp_arg inner_row[] = {
    {"i", TW_AMP_T_INTEGER, 0},
    {"t", TW_AMP_T_DATETIME, 1},
    {NULL, NULL, 0},
};
static const tw_amp_arg outer_row[] = {
    {"d", TW_AMP_T_DECIMAL, 1},
    {"p", TW_AMP_T_PATH, 1},
    {"r", TW_AMP_AMPLIST_OF(inner_row), 1},
    {NULL, NULL, 0},
};

static const tw_amp_arg sum_args[] = {
    {"a", TW_AMP_T_INTEGER, 0},
    {"b", TW_AMP_T_INTEGER, 0},
    {NULL, NULL, 0},
};

static const tw_amp_arg every_type[] = {
    {"i", TW_AMP_T_INTEGER, 1}, {"s", TW_AMP_T_STRING, 1},
    {"u", TW_AMP_T_UNICODE, 1}, {"b", TW_AMP_T_BOOLEAN, 1},
    {"f", TW_AMP_T_FLOAT, 1},   {"l", &list_of_integer, 1},
    {"lf", &list_of_float, 1},  {"lu", &list_of_unicode, 1},
    {"ll", &list_of_list, 1},   {NULL, NULL, 0},
};

/* Delay's and Divide's arguments, required. */
static const tw_amp_arg delay_args[] = {{"seconds", TW_AMP_T_FLOAT, 0}, {NULL, NULL, 0}};
static const tw_amp_arg divide_args[] = {
    {"numerator", TW_AMP_T_INTEGER, 0},
    {"denominator", TW_AMP_T_INTEGER, 0},
    {NULL, NULL, 0},
};

/* The same keys, each one a list of its type. */
static const tw_amp_arg lists[] = {
    {"a", &list_of_float, 0},
    {"b", &list_of_unicode, 1},
    {"i", &list_of_list, 1},
    {NULL, NULL, 0},
};

/* The types beyond the first five, under keys the seeds use. */
static const tw_amp_arg more_types[] = {
    {"d", TW_AMP_T_DECIMAL, 1},    {"t", TW_AMP_T_DATETIME, 1},
    {"p", TW_AMP_T_PATH, 1},       {"ld", &list_of_decimal, 1},
    {"r", TW_AMP_AMPLIST_OF(outer_row), 1}, {"i", TW_AMP_T_INTEGER, 1},
    {NULL, NULL, 0},
};

static const tw_amp_arg *const specs[] = {sum_args,    every_type, delay_args,
                                          divide_args, lists,      more_types};

/* ------------------------------------------------------------ values */

static int same_double(double a, double b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b);
    return a == b && !signbit(a) == !signbit(b);
}

static int same_value(const tw_amp_value *a, const tw_amp_value *b);

/* The same names with the same values, in any order. */
static int same_values(const tw_amp_values *a, const tw_amp_values *b)
{
    if (tw_amp_values_count(a) != tw_amp_values_count(b))
        return 0;
    const char *name;
    const tw_amp_value *x;
    for (size_t i = 0; tw_amp_values_entry(a, i, &name, &x) == 0; i++) {
        const tw_amp_value *y = tw_amp_values_get(b, name);
        if (y == NULL || !same_value(x, y))
            return 0;
    }
    return 1;
}

static int same_value(const tw_amp_value *a, const tw_amp_value *b)
{
    if (a->kind != b->kind)
        return 0;
    switch (a->kind) {
    case TW_AMP_DATETIME: {
        const tw_amp_datetime *x = &a->u.datetime, *y = &b->u.datetime;
        return x->year == y->year && x->month == y->month && x->day == y->day &&
               x->hour == y->hour && x->minute == y->minute && x->second == y->second &&
               x->microsecond == y->microsecond && x->utc_offset == y->utc_offset;
    }
    case TW_AMP_AMPLIST:
        if (a->u.rows.count != b->u.rows.count)
            return 0;
        for (size_t i = 0; i < a->u.rows.count; i++)
            if (!same_values(a->u.rows.items[i], b->u.rows.items[i]))
                return 0;
        return 1;
    case TW_AMP_INTEGER:
        return a->u.integer == b->u.integer;
    case TW_AMP_FLOAT:
        return same_double(a->u.number, b->u.number);
    case TW_AMP_BOOLEAN:
        return a->u.boolean == b->u.boolean;
    case TW_AMP_STRING:
    case TW_AMP_UNICODE:
    case TW_AMP_DECIMAL:
    case TW_AMP_PATH:
    case TW_AMP_BIG_INTEGER:
        return a->u.bytes.len == b->u.bytes.len &&
               memcmp(a->u.bytes.data, b->u.bytes.data, a->u.bytes.len) == 0 &&
               a->u.bytes.data[a->u.bytes.len] == '\0';
    case TW_AMP_LIST:
        if (a->u.list.count != b->u.list.count)
            return 0;
        for (size_t i = 0; i < a->u.list.count; i++)
            if (!same_value(&a->u.list.items[i], &b->u.list.items[i]))
                return 0;
        return 1;
    }
    return 0;
}

static void check_float_value(double x)
{
    char buf[40];
    size_t n = tw_amp_float_repr(x, buf, sizeof buf);
    FZ_CHECK(n <= 24 && strlen(buf) == n, "repr is %zu bytes", n);
    double back;
    FZ_CHECK(tw_amp_float_parse(buf, n, &back) == 0, "repr '%s' does not parse", buf);
    FZ_CHECK(same_double(x, back), "repr '%s' reads back as %.17g, not %.17g", buf, back, x);
    /* A short buffer gets nothing, and the length still. */
    char tiny[4] = {'#', '#', '#', '#'};
    FZ_CHECK(tw_amp_float_repr(x, tiny, n < 4 ? n : 4) == n, "repr length depends on room");
    if (n >= 4)
        FZ_CHECK(memcmp(tiny, "####", 4) == 0, "repr wrote into a short buffer");
}

static void check_value(const tw_amp_value *v)
{
    if (v->kind == TW_AMP_FLOAT)
        check_float_value(v->u.number);
    if (v->kind == TW_AMP_LIST)
        for (size_t i = 0; i < v->u.list.count; i++)
            check_value(&v->u.list.items[i]);
    if (v->kind == TW_AMP_BIG_INTEGER)
        FZ_CHECK(tw_amp_integer_parse(v->u.bytes.data, v->u.bytes.len, NULL) == -ERANGE &&
                     v->u.bytes.data[0] != '0' && v->u.bytes.data[v->u.bytes.len] == '\0',
                 "a big Integer '%s' is not canonical or not big", v->u.bytes.data);
    if (v->kind == TW_AMP_AMPLIST)
        for (size_t i = 0; i < v->u.rows.count; i++) {
            const char *name;
            const tw_amp_value *x;
            for (size_t k = 0; tw_amp_values_entry(v->u.rows.items[i], k, &name, &x) == 0; k++)
                check_value(x);
        }
}

/* Integer text of any size and Decimal text: canonical forms are fixed points. */
static void check_exact_numbers(const char *v, size_t n)
{
    if (strlen(v) != n)
        return; /* the setters take C strings */
    tw_amp_values *set = tw_amp_values_new();
    FZ_CHECK(set != NULL, "out of memory");
    int parsed = tw_amp_integer_parse(v, n, NULL);
    int rc = tw_amp_values_set_integer_text(set, "i", v);
    FZ_CHECK(rc == ((parsed == 0 || parsed == -ERANGE) ? 0 : -EINVAL),
             "integer text '%s' set with %d, parsed with %d", v, rc, parsed);
    if (rc == 0) {
        char text[70000];
        size_t len;
        FZ_CHECK(tw_amp_values_get_integer_text(set, "i", text, sizeof text, &len) == 0,
                 "integer text of '%s'", v);
        FZ_CHECK(tw_amp_values_set_integer_text(set, "j", text) == 0, "'%s' refused", text);
        char again[70000];
        tw_amp_values_get_integer_text(set, "j", again, sizeof again, NULL);
        FZ_CHECK(strcmp(text, again) == 0, "'%s' became '%s'", text, again);
    }
    rc = tw_amp_values_set_decimal(set, "d", v);
    FZ_CHECK(rc == 0 || rc == -EINVAL, "set_decimal returned %d", rc);
    if (rc == 0) {
        const char *text;
        size_t len;
        FZ_CHECK(tw_amp_values_get_decimal(set, "d", &text, &len) == 0 && strlen(text) == len,
                 "decimal text of '%s'", v);
        if (len <= TW_AMP_MAX_VALUE_LENGTH) {
            FZ_CHECK(tw_amp_values_set_decimal(set, "e", text) == 0, "'%s' refused", text);
            const char *again;
            tw_amp_values_get_decimal(set, "e", &again, NULL);
            FZ_CHECK(strcmp(text, again) == 0, "decimal '%s' became '%s'", text, again);
        }
    }
    tw_amp_values_free(set);
}

/* Decode @p box against @p spec; what decodes must survive a round trip. */
static void check_decode(const tw_amp_arg *spec, const tw_amp_box *box)
{
    char err[128];
    err[0] = '\0';
    tw_amp_values *v = tw_amp_values_from_box(spec, box, err, sizeof err);
    if (v == NULL) {
        FZ_CHECK(err[0] != '\0', "a decode failed without a reason");
        return;
    }
    for (size_t i = 0; i < tw_amp_values_count(v); i++) {
        const char *name;
        const tw_amp_value *value;
        FZ_CHECK(tw_amp_values_entry(v, i, &name, &value) == 0, "entry %zu", i);
        check_value(value);
    }

    tw_amp_box *again = tw_amp_box_new();
    FZ_CHECK(again != NULL, "out of memory");
    int rc = tw_amp_values_to_box(spec, v, again, 1, err, sizeof err);
    FZ_CHECK(rc == 0 || rc == TW_ETOOBIG, "decoded values do not encode: %d %s", rc, err);
    if (rc == 0) {
        tw_amp_values *w = tw_amp_values_from_box(spec, again, err, sizeof err);
        FZ_CHECK(w != NULL, "re-encoded values do not decode: %s", err);
        FZ_CHECK(tw_amp_values_count(w) == tw_amp_values_count(v), "%zu values became %zu",
                 tw_amp_values_count(v), tw_amp_values_count(w));
        for (size_t i = 0; i < tw_amp_values_count(v); i++) {
            const char *name;
            const tw_amp_value *a;
            FZ_CHECK(tw_amp_values_entry(v, i, &name, &a) == 0, "entry %zu", i);
            const tw_amp_value *b = tw_amp_values_get(w, name);
            FZ_CHECK(b != NULL && same_value(a, b), "'%s' changed in a round trip", name);
        }
        /* Encoding is canonical from then on. */
        tw_amp_box *third = tw_amp_box_new();
        FZ_CHECK(third != NULL, "out of memory");
        FZ_CHECK(tw_amp_values_to_box(spec, w, third, 1, err, sizeof err) == 0,
                 "values encode once but not twice: %s", err);
        size_t n2 = tw_amp_box_encoded_size(again), n3 = tw_amp_box_encoded_size(third);
        uint8_t *b2 = malloc(n2), *b3 = malloc(n3);
        FZ_CHECK(b2 != NULL && b3 != NULL, "out of memory");
        tw_amp_box_encode(again, b2, n2);
        tw_amp_box_encode(third, b3, n3);
        FZ_CHECK(n2 == n3 && memcmp(b2, b3, n2) == 0, "encoding is not canonical");
        free(b2);
        free(b3);
        tw_amp_box_free(third);
        tw_amp_values_free(w);
    }
    tw_amp_box_free(again);
    tw_amp_values_free(v);
}

/* Is @p s a plain decimal number, [+-]?(D+.?D*|.D+)([eE][+-]?D+)?, that strtod reads alike? */
static int plain_float(const char *s, size_t n)
{
    size_t i = 0, digits = 0;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        digits++;
    if (i < n && s[i] == '.')
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            digits++;
    if (digits == 0)
        return 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t e = 0;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            e++;
        if (e == 0)
            return 0;
    }
    return i == n;
}

/* Every value, read as a Float and as an Integer, against the C library. */
static void check_numbers(const char *v, size_t n)
{
    double d;
    int rc = tw_amp_float_parse(v, n, &d);
    FZ_CHECK(rc == 0 || rc == -EINVAL, "float_parse returned %d", rc);
    if (rc == 0)
        check_float_value(d);
    if (plain_float(v, n)) {
        FZ_CHECK(rc == 0, "'%s' is a number Python reads", v);
        double want = strtod(v, NULL);
        FZ_CHECK(same_double(d, want), "'%s' reads as %.17g, strtod says %.17g", v, d, want);
    }

    int64_t x;
    rc = tw_amp_integer_parse(v, n, &x);
    FZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ERANGE, "integer_parse returned %d", rc);
    size_t i = (n > 0 && (v[0] == '+' || v[0] == '-')) ? 1 : 0;
    int plain = i < n && strspn(v + i, "0123456789") == n - i;
    if (plain) {
        errno = 0;
        long long want = strtoll(v, NULL, 10);
        if (errno == ERANGE)
            FZ_CHECK(rc == -ERANGE, "'%s' is out of range, got %d", v, rc);
        else
            FZ_CHECK(rc == 0 && x == want, "'%s' reads as %lld, strtoll says %lld", v, (long long)x,
                     want);
    } else if (rc == 0) {
        /* What it accepted prints back as a number it reads alike. */
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", (long long)x);
        int64_t y;
        FZ_CHECK(tw_amp_integer_parse(buf, strlen(buf), &y) == 0 && y == x, "%s", buf);
    }
}

/* ------------------------------------------------------------ boxes */

static int key_less(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c < 0 || (c == 0 && alen < blen);
}

static uint8_t *encode(const tw_amp_box *b, size_t *len)
{
    size_t n = tw_amp_box_encoded_size(b);
    uint8_t *buf = malloc(n);
    FZ_CHECK(buf != NULL, "out of memory");
    FZ_CHECK(tw_amp_box_encode(b, buf, n) == n, "encode disagrees with encoded_size");
    *len = n;
    return buf;
}

typedef struct one_box {
    tw_amp_box *box;
    int count;
} one_box;

static int take_one(tw_amp_box *box, void *arg)
{
    one_box *o = arg;
    if (o->count++ == 0)
        o->box = box;
    else
        tw_amp_box_free(box);
    return 0;
}

static void check_box(const tw_amp_box *b, size_t max_box)
{
    size_t n;
    uint8_t *bytes = encode(b, &n);
    FZ_CHECK(n <= max_box, "a %zu-byte box passed the %zu-byte limit", n, max_box);

    /* Sorted, and every key finds its value. */
    size_t wire = 2;
    const char *prev = NULL;
    size_t prevlen = 0;
    for (size_t i = 0; i < tw_amp_box_count(b); i++) {
        const char *k, *v;
        size_t klen, vlen;
        FZ_CHECK(tw_amp_box_entry(b, i, &k, &klen, &v, &vlen) == 0, "entry %zu", i);
        FZ_CHECK(klen >= 1 && klen <= TW_AMP_MAX_KEY_LENGTH, "a %zu-byte key", klen);
        FZ_CHECK(k[klen] == '\0' && v[vlen] == '\0', "entry %zu is not NUL-terminated", i);
        FZ_CHECK(prev == NULL || key_less(prev, prevlen, k, klen), "keys out of order at %zu", i);
        size_t glen;
        FZ_CHECK(tw_amp_box_getn(b, k, klen, &glen) == v && glen == vlen, "lookup of key %zu", i);
        prev = k;
        prevlen = klen;
        wire += 4 + klen + vlen;
        check_numbers(v, vlen);
        check_exact_numbers(v, vlen);
    }
    FZ_CHECK(wire == n, "entries add up to %zu bytes, encoded %zu", wire, n);

    /* A short buffer is left alone. */
    uint8_t *shorter = malloc(n - 1 ? n - 1 : 1);
    FZ_CHECK(shorter != NULL, "out of memory");
    memset(shorter, 0xa5, n - 1);
    FZ_CHECK(tw_amp_box_encode(b, shorter, n - 1) == n, "short encode");
    for (size_t i = 0; i + 1 < n; i++)
        FZ_CHECK(shorter[i] == 0xa5, "encode wrote into a short buffer");
    free(shorter);

    /* The encoding parses back, in one feed, to the same bytes. */
    tw_amp_parser *p = tw_amp_parser_new(n);
    FZ_CHECK(p != NULL, "out of memory");
    one_box o = {NULL, 0};
    size_t used = 0;
    int rc = tw_amp_parser_feed(p, bytes, n, take_one, &o, &used);
    FZ_CHECK(rc == 0 && used == n && o.count == 1,
             "an encoded box re-parses as rc %d, %zu/%zu "
             "bytes, %d boxes (%s)",
             rc, used, n, o.count, tw_amp_parser_error(p));
    size_t n2;
    uint8_t *bytes2 = encode(o.box, &n2);
    FZ_CHECK(n2 == n && memcmp(bytes, bytes2, n) == 0, "a box changed in a round trip");
    free(bytes2);
    tw_amp_box_free(o.box);
    tw_amp_parser_free(p);
    free(bytes);

    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++)
        check_decode(specs[i], b);
}

/* ------------------------------------------------------------ the model */

typedef struct boxes {
    uint8_t *p; /* each box encoded, after its u32 length */
    size_t len, cap, count;
} boxes;

static void boxes_add(boxes *l, const tw_amp_box *b)
{
    size_t n;
    uint8_t *bytes = encode(b, &n);
    if (l->len + n + 4 > l->cap) {
        size_t cap = l->cap ? l->cap : 1024;
        while (cap < l->len + n + 4)
            cap *= 2;
        l->p = realloc(l->p, cap);
        FZ_CHECK(l->p != NULL, "out of memory");
        l->cap = cap;
    }
    for (int i = 3; i >= 0; i--)
        l->p[l->len++] = (uint8_t)(n >> (8 * i));
    memcpy(l->p + l->len, bytes, n);
    l->len += n;
    l->count++;
    free(bytes);
}

/* amp.h's rules, over the whole stream. @return 0, TW_EPROTO or TW_ETOOBIG. */
static int model_parse(const uint8_t *s, size_t n, size_t max_box, boxes *out)
{
    size_t at = 0, box_bytes = 0, entries = 0;
    tw_amp_box *box = tw_amp_box_new();
    FZ_CHECK(box != NULL, "out of memory");
    int rc = 0;
    for (;;) {
        if (n - at < 2)
            break;
        size_t klen = (size_t)s[at] << 8 | s[at + 1];
        at += 2;
        if (klen == 0) {
            boxes_add(out, box);
            tw_amp_box_free(box);
            box = tw_amp_box_new();
            FZ_CHECK(box != NULL, "out of memory");
            box_bytes = 0;
            entries = 0;
            continue;
        }
        if (klen > TW_AMP_MAX_KEY_LENGTH) {
            rc = TW_EPROTO;
            break;
        }
        /* The key, its value's length, an empty value and the end marker. */
        if (box_bytes + 2 + klen + 2 + 2 > max_box) {
            rc = TW_ETOOBIG;
            break;
        }
        if (n - at < klen)
            break;
        const uint8_t *key = s + at;
        at += klen;
        if (n - at < 2)
            break;
        size_t vlen = (size_t)s[at] << 8 | s[at + 1];
        at += 2;
        if (box_bytes + 2 + klen + 2 + vlen + 2 > max_box) {
            rc = TW_ETOOBIG;
            break;
        }
        /* Every entry counts, a repeated key too, once its length is known. */
        if (entries++ >= TW_AMP_MAX_KEYS) {
            rc = TW_ETOOBIG;
            break;
        }
        if (n - at < vlen)
            break;
        FZ_CHECK(tw_amp_box_set(box, key, klen, s + at, vlen) == 0, "box_set");
        at += vlen;
        box_bytes += 2 + klen + 2 + vlen;
    }
    tw_amp_box_free(box);
    return rc;
}

/* ------------------------------------------------------------ the driver */

typedef struct feeder {
    boxes got;
    size_t max_box;
    fz_rng rng;
    int stops;
} feeder;

static int on_box(tw_amp_box *box, void *arg)
{
    feeder *f = arg;
    check_box(box, f->max_box);
    boxes_add(&f->got, box);
    tw_amp_box_free(box);
    if (f->stops && (fz_rng_next(&f->rng) & 3) == 0)
        return 7;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_quiet_logs();
    fz_in in = {data, size};
    uint8_t maxb = fz_byte(&in, 255);
    uint8_t flags = fz_byte(&in, 0);
    fz_rng rng;
    fz_rng_seed(&rng, &in);
    size_t max_box = maxb < 255 ? 16 + (size_t)maxb * 8 : 0;
    size_t limit = max_box ? max_box : TW_AMP_DEFAULT_MAX_BOX_SIZE;

    boxes want = {0};
    int want_rc = model_parse(in.p, in.n, limit, &want);

    tw_amp_parser *p = tw_amp_parser_new(max_box);
    FZ_CHECK(p != NULL, "out of memory");
    feeder f = {{0}, limit, rng, flags & 1};
    int rc = 0;
    size_t at = 0;
    while (at < in.n && rc == 0) {
        size_t n = fz_chunk(&rng, in.n - at);
        size_t done = 0;
        while (done < n) {
            size_t used = 0;
            rc = tw_amp_parser_feed(p, in.p + at + done, n - done, on_box, &f, &used);
            FZ_CHECK(used <= n - done, "consumed %zu of %zu bytes", used, n - done);
            done += used;
            if (rc == 7) {
                rc = 0; /* the callback stopped the parse: go on with the rest */
                continue;
            }
            FZ_CHECK(rc != 0 || done == n, "rc 0 but %zu bytes left", n - done);
            break;
        }
        at += n;
        /* One partial box: its bytes, an entry header and a pointer or two each. */
        FZ_CHECK(tw_amp_parser_buffered(p) <= 12 * limit + 1024,
                 "the parser holds %zu bytes for a %zu-byte limit", tw_amp_parser_buffered(p),
                 limit);
    }
    if (rc != 0) {
        FZ_CHECK(rc == TW_EPROTO || rc == TW_ETOOBIG, "feed returned %d", rc);
        FZ_CHECK(tw_amp_parser_error(p)[0] != '\0', "a broken parser without a reason");
        size_t used = 1;
        FZ_CHECK(tw_amp_parser_feed(p, "\0\0", 2, on_box, &f, &used) == rc && used == 0,
                 "a broken parser accepted more bytes");
    } else {
        FZ_CHECK(tw_amp_parser_error(p)[0] == '\0', "an error without a failure");
    }

    FZ_CHECK(rc == want_rc, "the parser ended with %d, the model with %d", rc, want_rc);
    FZ_CHECK(f.got.count == want.count && f.got.len == want.len &&
                 (want.len == 0 || memcmp(f.got.p, want.p, want.len) == 0),
             "the parser gave %zu boxes, the model %zu", f.got.count, want.count);

    tw_amp_parser_free(p);
    free(f.got.p);
    free(want.p);
    return 0;
}
