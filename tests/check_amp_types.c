/* SPDX-License-Identifier: MIT */
/*
 * AMP's Decimal, DateTime, Path and AmpList types and Integers past 64
 * bits, without a connection: each encodes to the bytes Twisted writes
 * (the golden strings say which Python expression wrote them), decodes
 * what Twisted decodes, and refuses what Twisted or Python refuses.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine.h>

/* ------------------------------------------------------------ helpers */

/* Encode @p v as the only argument @p name of type @p t; the value's bytes into @p out. */
static int encode_one(const tw_amp_type *t, const tw_amp_values *v, char *out, size_t cap,
                      size_t *len)
{
    const tw_amp_arg spec[] = {{"x", t, 0}, {NULL, NULL, 0}};
    tw_amp_box *box = tw_amp_box_new();
    char err[256] = "";
    int rc = tw_amp_values_to_box(spec, v, box, 1, err, sizeof err);
    if (rc == 0) {
        const char *raw = tw_amp_box_get(box, "x", len);
        ck_assert_uint_lt(*len, cap);
        memcpy(out, raw, *len);
        out[*len] = '\0';
    }
    tw_amp_box_free(box);
    return rc;
}

static void assert_encodes(const tw_amp_type *t, const tw_amp_values *v, const char *want,
                           size_t wantlen)
{
    static char got[70000];
    size_t len = 0;
    ck_assert_int_eq(encode_one(t, v, got, sizeof got, &len), 0);
    ck_assert_uint_eq(len, wantlen);
    ck_assert_msg(memcmp(got, want, wantlen) == 0, "encoded %s, not %s", got, want);
}

/* Decode @p len bytes as argument "x" of type @p t; NULL when they do not decode. */
static tw_amp_values *decode_one(const tw_amp_type *t, const char *data, size_t len, char *err,
                                 size_t errlen)
{
    const tw_amp_arg spec[] = {{"x", t, 0}, {NULL, NULL, 0}};
    tw_amp_box *box = tw_amp_box_new();
    ck_assert_int_eq(tw_amp_box_set(box, "x", 1, data, len), 0);
    tw_amp_values *v = tw_amp_values_from_box(spec, box, err, errlen);
    tw_amp_box_free(box);
    return v;
}

static tw_amp_values *decode_str(const tw_amp_type *t, const char *text)
{
    char err[256];
    return decode_one(t, text, strlen(text), err, sizeof err);
}

/* ------------------------------------------------------------ Integer */

START_TEST(test_an_integer_outside_64_bits_decodes_to_its_canonical_text)
{
    static const struct {
        const char *wire, *text;
        int big;
    } cases[] = {
        {"9223372036854775807", "9223372036854775807", 0},
        {"9223372036854775808", "9223372036854775808", 1},
        {"-9223372036854775808", "-9223372036854775808", 0},
        {"-9223372036854775809", "-9223372036854775809", 1},
        /* int(b' -000123456789012345678901234567890 ') */
        {" -000123456789012345678901234567890 ", "-123456789012345678901234567890", 1},
        {"+1_000_000_000_000_000_000_000", "1000000000000000000000", 1},
        {"\t0000000000000000000000000000000000042\n", "42", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tw_amp_values *v = decode_str(TW_AMP_T_INTEGER, cases[i].wire);
        ck_assert_msg(v != NULL, "%s did not decode", cases[i].wire);
        const tw_amp_value *x = tw_amp_values_get(v, "x");
        ck_assert_int_eq(x->kind, cases[i].big ? TW_AMP_BIG_INTEGER : TW_AMP_INTEGER);
        char text[64];
        size_t len;
        ck_assert_int_eq(tw_amp_values_get_integer_text(v, "x", text, sizeof text, &len), 0);
        ck_assert_str_eq(text, cases[i].text);
        ck_assert_uint_eq(len, strlen(cases[i].text));
        int64_t n = 12345;
        ck_assert_int_eq(tw_amp_values_get_integer(v, "x", &n), cases[i].big ? -ERANGE : 0);
        if (cases[i].big)
            ck_assert_int_eq(n, 12345);
        /* It encodes as Python's str() of the int. */
        assert_encodes(TW_AMP_T_INTEGER, v, cases[i].text, strlen(cases[i].text));
        tw_amp_values_free(v);
    }
}
END_TEST

START_TEST(test_integer_text_is_set_as_int_reads_it_and_refused_as_int_refuses_it)
{
    tw_amp_values *v = tw_amp_values_new();
    ck_assert_int_eq(tw_amp_values_set_integer_text(v, "small", " -0_7 "), 0);
    ck_assert_int_eq(tw_amp_values_get(v, "small")->kind, TW_AMP_INTEGER);
    int64_t n;
    ck_assert_int_eq(tw_amp_values_get_integer(v, "small", &n), 0);
    ck_assert_int_eq(n, -7);
    ck_assert_int_eq(tw_amp_values_set_integer_text(v, "big", "-0099999999999999999999"), 0);
    const tw_amp_value *x = tw_amp_values_get(v, "big");
    ck_assert_int_eq(x->kind, TW_AMP_BIG_INTEGER);
    ck_assert_str_eq(x->u.bytes.data, "-99999999999999999999");
    const char *bad[] = {"", " ", "1_", "_1", "1__0", "0x10", "1.0", "--1", "1 2", "+"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(tw_amp_values_set_integer_text(v, "bad", bad[i]), -EINVAL);
        ck_assert_ptr_null(decode_str(TW_AMP_T_INTEGER, bad[i]));
    }
    /* A buffer too short is told how long the text is, and left alone. */
    char text[8] = "unset";
    size_t len = 0;
    ck_assert_int_eq(tw_amp_values_get_integer_text(v, "big", text, sizeof text, &len),
                     -ENOSPC);
    ck_assert_uint_eq(len, 21);
    ck_assert_str_eq(text, "unset");
    ck_assert_int_eq(tw_amp_values_get_integer_text(v, "absent", text, sizeof text, &len),
                     -ENOENT);
    tw_amp_values_free(v);
}
END_TEST

START_TEST(test_a_list_of_integers_mixes_small_and_big_ones)
{
    /* amp.ListOf(amp.Integer()).toString([1, 2**64]) */
    static const char wire[] = "\x00\x01"
                               "1"
                               "\x00\x14"
                               "18446744073709551616";
    tw_amp_values *v = decode_one(TW_AMP_LIST_OF(TW_AMP_T_INTEGER), wire, sizeof wire - 1, NULL,
                                  0);
    ck_assert_ptr_nonnull(v);
    const tw_amp_value *x = tw_amp_values_get(v, "x");
    ck_assert_uint_eq(x->u.list.count, 2);
    ck_assert_int_eq(x->u.list.items[0].kind, TW_AMP_INTEGER);
    ck_assert_int_eq(x->u.list.items[1].kind, TW_AMP_BIG_INTEGER);
    tw_amp_values *copy = tw_amp_values_new();
    ck_assert_int_eq(tw_amp_values_set(copy, "x", x), 0);
    assert_encodes(TW_AMP_LIST_OF(TW_AMP_T_INTEGER), copy, wire, sizeof wire - 1);
    tw_amp_values_free(copy);
    tw_amp_values_free(v);
}
END_TEST

/* ------------------------------------------------------------ Decimal */

/* str(decimal.Decimal(text)) for each text, as Python 3.11 printed it. */
static const struct {
    const char *text, *str;
} DECIMALS[] = {
    {"1", "1"},
    {"  1.0 ", "1.0"},
    {"1_000", "1000"},
    {"1__0", "10"},
    {"_1", "1"},
    {"1_ ", "1"},
    {"\x0b" "1\x1c", "1"},
    {"1e+2", "1E+2"},
    {"1E2", "1E+2"},
    {"1e-1", "0.1"},
    {".5", "0.5"},
    {"5.", "5"},
    {"1.5e+2", "1.5E+2"},
    {"-0", "-0"},
    {"+0.00", "0.00"},
    {"0e5", "0E+5"},
    {"0e-7", "0E-7"},
    {"-0.000e+5", "-0E+2"},
    {"-.0e-3", "-0.0000"},
    {"00012.3400", "12.3400"},
    {"1e+0000002", "1E+2"},
    {"1e1_0", "1E+10"},
    {"1._5", "1.5"},
    {"0.000001", "0.000001"},
    {"0.0000001", "1E-7"},
    {"100e-8", "0.00000100"},
    {"1.0e-7", "1.0E-7"},
    {"123e3", "1.23E+5"},
    {"12.3e-2", "0.123"},
    {"-1234.5678e-3", "-1.2345678"},
    {"123456789e-20", "1.23456789E-12"},
    {"1.e1", "1E+1"},
    {".1e1", "1"},
    {"nan", "NaN"},
    {"-NaN", "-NaN"},
    {"NaN0012", "NaN12"},
    {"NaN000", "NaN"},
    {"-nan0", "-NaN"},
    {"n_an", "NaN"},
    {"sNaN", "sNaN"},
    {"SNAN", "sNaN"},
    {"-snan5", "-sNaN5"},
    {"sNaN0012", "sNaN12"},
    {"inf", "Infinity"},
    {"INF", "Infinity"},
    {" -inf ", "-Infinity"},
    {"-Infinity", "-Infinity"},
    {"1e999999999999999999", "1E+999999999999999999"},
    {"1.5e999999999999999999", "1.5E+999999999999999999"},
    {"1e-1999999999999999997", "1E-1999999999999999997"},
    {"0e-1999999999999999997", "0E-1999999999999999997"},
    {"0e999999999999999999", "0E+999999999999999999"},
};

/* Texts decimal.Decimal() refuses. */
static const char *const BAD_DECIMALS[] = {
    "", " ", "_", ".", "_._", "-", "+", "e5", "1e", ".e1", "1e+-2", "1 2", " _ 1", "1 _",
    "infinit", "Infinity0", "NaN-1", "NaN1.0", "NaN1e2", "1.2.3", "0x1", "1e1.5",
    "10e999999999999999999", "1e1000000000000000000", "1e-1999999999999999998",
    "10e-1999999999999999998", "0e-1999999999999999998", "0e1000000000000000000",
    "1e99999999999999999999999999", "0e-99999999999999999999999", "\xd9\xa3",
};

START_TEST(test_decimal_is_kept_as_python_str_of_decimal_writes_it)
{
    for (size_t i = 0; i < sizeof DECIMALS / sizeof DECIMALS[0]; i++) {
        tw_amp_values *v = tw_amp_values_new();
        ck_assert_msg(tw_amp_values_set_decimal(v, "x", DECIMALS[i].text) == 0, "%s refused",
                      DECIMALS[i].text);
        const char *text;
        size_t len;
        ck_assert_int_eq(tw_amp_values_get_decimal(v, "x", &text, &len), 0);
        ck_assert_msg(strcmp(text, DECIMALS[i].str) == 0, "%s gave %s, not %s",
                      DECIMALS[i].text, text, DECIMALS[i].str);
        ck_assert_uint_eq(len, strlen(DECIMALS[i].str));
        assert_encodes(TW_AMP_T_DECIMAL, v, DECIMALS[i].str, strlen(DECIMALS[i].str));
        tw_amp_values_free(v);
        /* Received, the text becomes the same canonical value. */
        v = decode_str(TW_AMP_T_DECIMAL, DECIMALS[i].text);
        ck_assert_ptr_nonnull(v);
        ck_assert_int_eq(tw_amp_values_get_decimal(v, "x", &text, NULL), 0);
        ck_assert_str_eq(text, DECIMALS[i].str);
        tw_amp_values_free(v);
    }
}
END_TEST

START_TEST(test_decimal_refuses_what_python_decimal_refuses)
{
    tw_amp_values *v = tw_amp_values_new();
    for (size_t i = 0; i < sizeof BAD_DECIMALS / sizeof BAD_DECIMALS[0]; i++) {
        ck_assert_msg(tw_amp_values_set_decimal(v, "x", BAD_DECIMALS[i]) == -EINVAL,
                      "'%s' accepted", BAD_DECIMALS[i]);
        char err[256] = "";
        ck_assert_ptr_null(
            decode_one(TW_AMP_T_DECIMAL, BAD_DECIMALS[i], strlen(BAD_DECIMALS[i]), err,
                       sizeof err));
        ck_assert_str_eq(err, "'x' is not a valid Decimal");
    }
    /* A NUL inside the text is refused too. */
    char err[256];
    ck_assert_ptr_null(decode_one(TW_AMP_T_DECIMAL, "1\0", 2, err, sizeof err));
    /* A value built by hand is checked when it is encoded. */
    tw_amp_value raw = {.kind = TW_AMP_DECIMAL, .u.bytes = {"1.2.3", 5}};
    ck_assert_int_eq(tw_amp_values_set(v, "x", &raw), 0);
    size_t len;
    char out[16];
    ck_assert_int_eq(encode_one(TW_AMP_T_DECIMAL, v, out, sizeof out, &len), -EINVAL);
    tw_amp_values_free(v);
}
END_TEST

START_TEST(test_a_decimal_of_many_digits_stays_exact)
{
    /* str(Decimal('-' + '9' * 4000 + 'e-4000')) is '-0.' and the 4000 nines. */
    static char text[4010], want[4010];
    text[0] = '-';
    memset(text + 1, '9', 4000);
    strcpy(text + 4001, "e-4000");
    strcpy(want, "-0.");
    memset(want + 3, '9', 4000);
    tw_amp_values *v = tw_amp_values_new();
    ck_assert_int_eq(tw_amp_values_set_decimal(v, "x", text), 0);
    assert_encodes(TW_AMP_T_DECIMAL, v, want, 4003);
    tw_amp_values_free(v);
}
END_TEST

/* ------------------------------------------------------------ DateTime */

static tw_amp_datetime dt(int y, int mo, int d, int h, int mi, int s, int us, int off)
{
    tw_amp_datetime x = {(int16_t)y, (uint8_t)mo, (uint8_t)d, (uint8_t)h, (uint8_t)mi,
                         (uint8_t)s, us, (int16_t)off};
    return x;
}

static void assert_same_datetime(const tw_amp_datetime *a, const tw_amp_datetime *b)
{
    ck_assert_int_eq(a->year, b->year);
    ck_assert_int_eq(a->month, b->month);
    ck_assert_int_eq(a->day, b->day);
    ck_assert_int_eq(a->hour, b->hour);
    ck_assert_int_eq(a->minute, b->minute);
    ck_assert_int_eq(a->second, b->second);
    ck_assert_int_eq(a->microsecond, b->microsecond);
    ck_assert_int_eq(a->utc_offset, b->utc_offset);
}

START_TEST(test_datetime_encodes_as_twisted_with_utc_as_minus_zero)
{
    static const struct {
        tw_amp_datetime value;
        const char *wire;
    } cases[] = {
        /* DateTime().toString(datetime(2012, 1, 23, 12, 34, 56, 54321, +05:30)) */
        {{2012, 1, 23, 12, 34, 56, 54321, 330}, "2012-01-23T12:34:56.054321+05:30"},
        {{1, 1, 1, 0, 0, 0, 0, -1439}, "0001-01-01T00:00:00.000000-23:59"},
        /* amp.utc: an offset of zero is written with '-' */
        {{2024, 2, 29, 23, 59, 59, 999999, 0}, "2024-02-29T23:59:59.999999-00:00"},
        {{9999, 12, 31, 23, 59, 59, 999999, 1439}, "9999-12-31T23:59:59.999999+23:59"},
        {{2000, 1, 1, 0, 0, 0, 0, -60}, "2000-01-01T00:00:00.000000-01:00"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tw_amp_values *v = tw_amp_values_new();
        ck_assert_int_eq(tw_amp_values_set_datetime(v, "x", &cases[i].value), 0);
        assert_encodes(TW_AMP_T_DATETIME, v, cases[i].wire, 32);
        tw_amp_values_free(v);
        v = decode_str(TW_AMP_T_DATETIME, cases[i].wire);
        ck_assert_ptr_nonnull(v);
        tw_amp_datetime back;
        ck_assert_int_eq(tw_amp_values_get_datetime(v, "x", &back), 0);
        assert_same_datetime(&back, &cases[i].value);
        tw_amp_values_free(v);
    }
}
END_TEST

START_TEST(test_datetime_decodes_what_twisted_decodes)
{
    /* Fields are read with int() at fixed places; separators are not looked at. */
    tw_amp_values *v = decode_str(TW_AMP_T_DATETIME, " 201/+1/ 3T 4x05:06.0_0007-00:00");
    ck_assert_ptr_nonnull(v);
    tw_amp_datetime x;
    ck_assert_int_eq(tw_amp_values_get_datetime(v, "x", &x), 0);
    ck_assert_int_eq(x.year, 201);
    ck_assert_int_eq(x.month, 1);
    ck_assert_int_eq(x.day, 3);
    ck_assert_int_eq(x.hour, 4);
    ck_assert_int_eq(x.minute, 5);
    ck_assert_int_eq(x.second, 6);
    ck_assert_int_eq(x.microsecond, 7);
    ck_assert_int_eq(x.utc_offset, 0);
    tw_amp_values_free(v);
    /* "+00:99" is 1:39 east; "+-1:00" is an hour west; a leap day exists in 2000. */
    static const struct {
        const char *wire;
        int offset;
    } offsets[] = {{"2000-01-01T00:00:00.000000+00:99", 99},
                   {"2000-01-01T00:00:00.000000+-1:00", -60},
                   {"2000-02-29T00:00:00.000000+23:59", 1439},
                   {"2000-02-29T00:00:00.000000+00:00", 0}};
    for (size_t i = 0; i < sizeof offsets / sizeof offsets[0]; i++) {
        v = decode_str(TW_AMP_T_DATETIME, offsets[i].wire);
        ck_assert_msg(v != NULL, "%s refused", offsets[i].wire);
        tw_amp_values_get_datetime(v, "x", &x);
        ck_assert_int_eq(x.utc_offset, offsets[i].offset);
        tw_amp_values_free(v);
    }
}
END_TEST

START_TEST(test_datetime_refuses_what_python_refuses)
{
    static const char *const bad[] = {
        "1900-02-29T00:00:00.000000+00:00", /* day is out of range for month */
        "2001-02-29T00:00:00.000000+00:00",
        "2000-04-31T00:00:00.000000+00:00",
        "2000-13-01T00:00:00.000000+00:00",
        "0000-01-01T00:00:00.000000+00:00",
        "2000-01-01T24:00:00.000000+00:00", /* hour must be in 0..23 */
        "2000-01-01T00:60:00.000000+00:00",
        "2000-01-01T00:00:60.000000+00:00",
        "2000-01-01T00:00:00.-00001+00:00",
        "2000-01-01T00:00:00.000000*00:00", /* Invalid sign for timezone */
        "2000-01-01T00:00:00.000000+24:00", /* offset must be strictly within 24 hours */
        "2000-01-01T00:00:00.000000-23:60",
        "2000-01-01T00:00:00.000000+00:00 ", /* not 32 bytes */
        "2000-01-01T00:00:00.00000+00:00",
        "2000-01-01T00:00:00.0000x0+00:00",
        "\xc3\xa9" "000-01-01T00:00:00.000000+00:0", /* not ASCII */
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(decode_str(TW_AMP_T_DATETIME, bad[i]) == NULL, "%s accepted", bad[i]);
    /* Encoding checks the fields the same way. */
    const tw_amp_datetime wrong[] = {dt(2001, 2, 29, 0, 0, 0, 0, 0),
                                     dt(10000, 1, 1, 0, 0, 0, 0, 0),
                                     dt(2000, 1, 1, 0, 0, 0, 1000000, 0),
                                     dt(2000, 1, 1, 0, 0, 0, 0, 1440),
                                     dt(2000, 1, 1, 0, 0, 0, 0, -1440)};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        tw_amp_values *v = tw_amp_values_new();
        ck_assert_int_eq(tw_amp_values_set_datetime(v, "x", &wrong[i]), 0);
        char out[64], err[256] = "";
        size_t len;
        const tw_amp_arg spec[] = {{"when", TW_AMP_T_DATETIME, 0}, {NULL, NULL, 0}};
        tw_amp_values_set_datetime(v, "when", &wrong[i]);
        tw_amp_box *box = tw_amp_box_new();
        ck_assert_int_eq(tw_amp_values_to_box(spec, v, box, 0, err, sizeof err), -EINVAL);
        ck_assert_str_eq(err, "'when' is not a valid DateTime");
        tw_amp_box_free(box);
        ck_assert_int_eq(encode_one(TW_AMP_T_DATETIME, v, out, sizeof out, &len), -EINVAL);
        tw_amp_values_free(v);
    }
}
END_TEST

/* ------------------------------------------------------------ Path */

START_TEST(test_path_is_utf8_text_without_nul)
{
    /* amp.Path().toString(FilePath('/tmp/\u00e9 x')) */
    tw_amp_values *v = tw_amp_values_new();
    ck_assert_int_eq(tw_amp_values_set_path(v, "x", "/tmp/\xc3\xa9 x"), 0);
    assert_encodes(TW_AMP_T_PATH, v, "/tmp/\xc3\xa9 x", 9);
    tw_amp_values_free(v);
    v = decode_str(TW_AMP_T_PATH, "/tmp/\xc3\xa9 x");
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(tw_amp_values_get(v, "x")->kind, TW_AMP_PATH);
    const char *path;
    size_t len;
    ck_assert_int_eq(tw_amp_values_get_string(v, "x", &path, &len), 0);
    ck_assert_str_eq(path, "/tmp/\xc3\xa9 x");
    tw_amp_values_free(v);
    char err[256];
    ck_assert_ptr_null(decode_one(TW_AMP_T_PATH, "/etc/passwd\0.png", 16, err, sizeof err));
    ck_assert_str_eq(err, "'x' is a Path with a NUL byte");
    ck_assert_ptr_null(decode_one(TW_AMP_T_PATH, "/tmp/\xff", 6, err, sizeof err));
    ck_assert_str_eq(err, "'x' is not valid UTF-8");
    v = tw_amp_values_new();
    tw_amp_value raw = {.kind = TW_AMP_PATH, .u.bytes = {"a\0b", 3}};
    ck_assert_int_eq(tw_amp_values_set(v, "x", &raw), 0);
    char out[8];
    ck_assert_int_eq(encode_one(TW_AMP_T_PATH, v, out, sizeof out, &len), -EINVAL);
    tw_amp_values_free(v);
}
END_TEST

/* ------------------------------------------------------------ AmpList */

static const tw_amp_arg ROW[] = {
    {"a", TW_AMP_T_INTEGER, 0},
    {"b", TW_AMP_T_UNICODE, 0},
    {NULL, NULL, 0},
};

/*
 * amp.AmpList([(b'a', amp.Integer()), (b'b', amp.Unicode())]).toStringProto(
 *     [{'a': 7, 'b': 'hello'}, {'a': 9, 'b': 'goodbye'}], None)
 */
static const char ROWS_WIRE[] = "\x00\x01"
                                "a"
                                "\x00\x01"
                                "7"
                                "\x00\x01"
                                "b"
                                "\x00\x05"
                                "hello"
                                "\x00\x00"
                                "\x00\x01"
                                "a"
                                "\x00\x01"
                                "9"
                                "\x00\x01"
                                "b"
                                "\x00\x07"
                                "goodbye"
                                "\x00\x00";

static tw_amp_values *row(int64_t a, const char *b)
{
    tw_amp_values *r = tw_amp_values_new();
    tw_amp_values_set_integer(r, "a", a);
    tw_amp_values_set_unicode(r, "b", b);
    return r;
}

START_TEST(test_amplist_encodes_and_decodes_as_twisted)
{
    tw_amp_values *rows[2] = {row(7, "hello"), row(9, "goodbye")};
    tw_amp_values *v = tw_amp_values_new();
    ck_assert_int_eq(
        tw_amp_values_set_amplist(v, "x", (const tw_amp_values *const *)rows, 2), 0);
    tw_amp_values_free(rows[0]);
    tw_amp_values_free(rows[1]);
    assert_encodes(TW_AMP_AMPLIST_OF(ROW), v, ROWS_WIRE, sizeof ROWS_WIRE - 1);
    tw_amp_values_free(v);

    v = decode_one(TW_AMP_AMPLIST_OF(ROW), ROWS_WIRE, sizeof ROWS_WIRE - 1, NULL, 0);
    ck_assert_ptr_nonnull(v);
    const tw_amp_values *const *got;
    size_t n;
    ck_assert_int_eq(tw_amp_values_get_amplist(v, "x", &got, &n), 0);
    ck_assert_uint_eq(n, 2);
    int64_t a;
    const char *b;
    tw_amp_values_get_integer(got[1], "a", &a);
    tw_amp_values_get_string(got[1], "b", &b, NULL);
    ck_assert_int_eq(a, 9);
    ck_assert_str_eq(b, "goodbye");
    tw_amp_values_free(v);

    /* An empty list is no bytes at all. */
    v = tw_amp_values_new();
    ck_assert_int_eq(tw_amp_values_set_amplist(v, "x", NULL, 0), 0);
    assert_encodes(TW_AMP_AMPLIST_OF(ROW), v, "", 0);
    tw_amp_values_free(v);
}
END_TEST

static const tw_amp_arg INNER[] = {{"d", TW_AMP_T_DECIMAL, 0}, {NULL, NULL, 0}};
static const tw_amp_arg OUTER[] = {
    {"name", TW_AMP_T_STRING, 0},
    {"rows", TW_AMP_AMPLIST_OF(INNER), 0},
    {"when", TW_AMP_T_DATETIME, 1},
    {NULL, NULL, 0},
};

START_TEST(test_amplists_nest_with_optional_fields_left_out)
{
    /*
     * amp.AmpList([(b'name', amp.String()), (b'rows', amp.AmpList([(b'd', amp.Decimal())])),
     *               (b'when', amp.DateTime(optional=True))]).toStringProto(
     *     [{'name': b'x', 'rows': [{'d': Decimal('1.50')}, {'d': Decimal('-sNaN')}],
     *       'when': None},
     *      {'name': b'', 'rows': [], 'when': datetime(2024, 2, 29, 23, 59, 59, 999999, utc)}],
     *     None)
     */
    static const char wire[] = "\x00\x04name\x00\x01x\x00\x04rows\x00\x17\x00\x01"
                               "d\x00\x04"
                               "1.50\x00\x00\x00\x01"
                               "d\x00\x05-sNaN\x00\x00\x00\x00"
                               "\x00\x04name\x00\x00\x00\x04rows\x00\x00\x00\x04when\x00 "
                               "2024-02-29T23:59:59.999999-00:00\x00\x00";
    tw_amp_values *inner[2] = {tw_amp_values_new(), tw_amp_values_new()};
    tw_amp_values_set_decimal(inner[0], "d", "1.50");
    tw_amp_values_set_decimal(inner[1], "d", "-snan");
    tw_amp_values *outer[2] = {tw_amp_values_new(), tw_amp_values_new()};
    tw_amp_values_set_string(outer[0], "name", "x", 1);
    tw_amp_values_set_amplist(outer[0], "rows", (const tw_amp_values *const *)inner, 2);
    tw_amp_values_set_string(outer[1], "name", "", 0);
    tw_amp_values_set_amplist(outer[1], "rows", NULL, 0);
    tw_amp_datetime when = dt(2024, 2, 29, 23, 59, 59, 999999, 0);
    tw_amp_values_set_datetime(outer[1], "when", &when);
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_amplist(v, "x", (const tw_amp_values *const *)outer, 2);
    for (int i = 0; i < 2; i++) {
        tw_amp_values_free(inner[i]);
        tw_amp_values_free(outer[i]);
    }
    assert_encodes(TW_AMP_AMPLIST_OF(OUTER), v, wire, sizeof wire - 1);
    tw_amp_values_free(v);

    v = decode_one(TW_AMP_AMPLIST_OF(OUTER), wire, sizeof wire - 1, NULL, 0);
    ck_assert_ptr_nonnull(v);
    const tw_amp_values *const *rows;
    size_t n;
    ck_assert_int_eq(tw_amp_values_get_amplist(v, "x", &rows, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_ptr_null(tw_amp_values_get(rows[0], "when"));
    const tw_amp_values *const *sub;
    ck_assert_int_eq(tw_amp_values_get_amplist(rows[0], "rows", &sub, &n), 0);
    ck_assert_uint_eq(n, 2);
    const char *d;
    tw_amp_values_get_decimal(sub[1], "d", &d, NULL);
    ck_assert_str_eq(d, "-sNaN");
    tw_amp_datetime back;
    ck_assert_int_eq(tw_amp_values_get_datetime(rows[1], "when", &back), 0);
    ck_assert_int_eq(back.microsecond, 999999);
    tw_amp_values_free(v);
}
END_TEST

START_TEST(test_amplist_ignores_a_trailing_partial_box_and_refuses_bad_rows)
{
    /* Twisted's parseString() keeps an incomplete last box to itself. */
    char wire[sizeof ROWS_WIRE + 8];
    memcpy(wire, ROWS_WIRE, sizeof ROWS_WIRE - 1);
    memcpy(wire + sizeof ROWS_WIRE - 1, "\x00\x01" "a\x00\x05" "12", 7);
    tw_amp_values *v = decode_one(TW_AMP_AMPLIST_OF(ROW), wire, sizeof ROWS_WIRE - 1 + 7, NULL,
                                  0);
    ck_assert_ptr_nonnull(v);
    size_t n;
    ck_assert_int_eq(tw_amp_values_get_amplist(v, "x", NULL, &n), 0);
    ck_assert_uint_eq(n, 2);
    tw_amp_values_free(v);

    char err[256];
    /* A row without its required field b: Twisted's KeyError. */
    static const char missing[] = "\x00\x01"
                                  "a\x00\x01"
                                  "1\x00\x00";
    ck_assert_ptr_null(
        decode_one(TW_AMP_AMPLIST_OF(ROW), missing, sizeof missing - 1, err, sizeof err));
    ck_assert_str_eq(err, "row 0 of 'x': missing 'b'");
    /* A key longer than 255 bytes inside a row. */
    static const char longkey[] = "\x01\x00";
    ck_assert_ptr_null(
        decode_one(TW_AMP_AMPLIST_OF(ROW), longkey, sizeof longkey - 1, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "'x' is not a valid AmpList"));
    /* A field that does not decode. */
    static const char badint[] = "\x00\x01"
                                 "a\x00\x01"
                                 "z\x00\x01"
                                 "b\x00\x00\x00\x00";
    ck_assert_ptr_null(
        decode_one(TW_AMP_AMPLIST_OF(ROW), badint, sizeof badint - 1, err, sizeof err));
    ck_assert_str_eq(err, "row 0 of 'x': 'a' is not a valid Integer");
    /* Rows that encode past 65535 bytes are refused. */
    tw_amp_values *big = tw_amp_values_new();
    static char text[40000];
    memset(text, 'y', sizeof text - 1);
    tw_amp_values *rows[2] = {row(1, text), row(2, text)};
    tw_amp_values_set_amplist(big, "x", (const tw_amp_values *const *)rows, 2);
    char out[8];
    ck_assert_int_eq(encode_one(TW_AMP_AMPLIST_OF(ROW), big, out, sizeof out, &n), TW_ETOOBIG);
    /* A row that lacks a field is refused when encoded, saying which row. */
    tw_amp_values_free(rows[1]);
    rows[1] = tw_amp_values_new();
    tw_amp_values_set_integer(rows[1], "a", 1);
    tw_amp_values_set_amplist(big, "x", (const tw_amp_values *const *)rows, 2);
    const tw_amp_arg spec[] = {{"x", TW_AMP_AMPLIST_OF(ROW), 0}, {NULL, NULL, 0}};
    tw_amp_box *box = tw_amp_box_new();
    ck_assert_int_eq(tw_amp_values_to_box(spec, big, box, 0, err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "row 1 of 'x': missing a value for 'b'");
    tw_amp_box_free(box);
    tw_amp_values_free(rows[0]);
    tw_amp_values_free(rows[1]);
    tw_amp_values_free(big);
}
END_TEST

static Suite *amp_types_suite(void)
{
    Suite *s = suite_create("amp_types");
    TCase *integer = tcase_create("integer");
    tcase_add_test(integer, test_an_integer_outside_64_bits_decodes_to_its_canonical_text);
    tcase_add_test(integer,
                   test_integer_text_is_set_as_int_reads_it_and_refused_as_int_refuses_it);
    tcase_add_test(integer, test_a_list_of_integers_mixes_small_and_big_ones);
    suite_add_tcase(s, integer);
    TCase *decimal = tcase_create("decimal");
    tcase_add_test(decimal, test_decimal_is_kept_as_python_str_of_decimal_writes_it);
    tcase_add_test(decimal, test_decimal_refuses_what_python_decimal_refuses);
    tcase_add_test(decimal, test_a_decimal_of_many_digits_stays_exact);
    suite_add_tcase(s, decimal);
    TCase *datetime = tcase_create("datetime");
    tcase_add_test(datetime, test_datetime_encodes_as_twisted_with_utc_as_minus_zero);
    tcase_add_test(datetime, test_datetime_decodes_what_twisted_decodes);
    tcase_add_test(datetime, test_datetime_refuses_what_python_refuses);
    suite_add_tcase(s, datetime);
    TCase *path = tcase_create("path");
    tcase_add_test(path, test_path_is_utf8_text_without_nul);
    suite_add_tcase(s, path);
    TCase *amplist = tcase_create("amplist");
    tcase_add_test(amplist, test_amplist_encodes_and_decodes_as_twisted);
    tcase_add_test(amplist, test_amplists_nest_with_optional_fields_left_out);
    tcase_add_test(amplist, test_amplist_ignores_a_trailing_partial_box_and_refuses_bad_rows);
    suite_add_tcase(s, amplist);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(amp_types_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
