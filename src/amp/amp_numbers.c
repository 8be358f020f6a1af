/* SPDX-License-Identifier: MIT */
/*
 * The text forms of AMP's exact numbers: Integer of any size and Decimal.
 * twine keeps both as text rather than doing arithmetic on them, so what
 * it needs is to read text the way Python does and to write it back the
 * way Python's str() would: a canonical form, so that a value twine sends
 * is byte for byte what Twisted sends for the same number.
 *
 * Integer: int() rules (see tw_amp_integer_parse(), which checks the
 * syntax); the canonical text is an optional "-" and the digits without
 * leading zeros, "0" for zero of either sign.
 *
 * Decimal: CPython's decimal.Decimal(str) (libmpdec under it). The text is
 * stripped of str.isspace() characters at both ends, then every underscore
 * is dropped wherever it is; what is left is a sign, then "inf" or
 * "infinity", "nan" or "snan" with optional payload digits, or a
 * coefficient (digits with at most one point, at least one digit) with an
 * optional exponent ("e", a sign, digits), case-insensitively. The value
 * must be exact in libmpdec's largest context: an adjusted exponent above
 * 999999999999999999 or an exponent below -1999999999999999997 is refused.
 * str() is the General Decimal Arithmetic to-scientific-string: plain
 * notation when the exponent is at most 0 and the adjusted exponent at
 * least -6, else one digit, the rest after a point, and "E+n" / "E-n".
 * Every length is bounded by the input, which the caller bounds.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amp/amp_internal.h"

/* libmpdec's MAX_EMAX, and its smallest exponent at MAX_PREC (Etiny). */
#define DECIMAL_EMAX INT64_C(999999999999999999)
#define DECIMAL_ETINY INT64_C(-1999999999999999997)
/* An exponent beyond both bounds, where reading one saturates. */
#define DECIMAL_EXP_SATURATED INT64_C(4000000000000000000)

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* str.isspace() over ASCII, which Decimal() strips: C's six and \x1c-\x1f. */
static int str_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c - 'A' + 'a') : c;
}

int tw__amp_integer_canonical(const char *text, size_t len, char **out, size_t *outlen)
{
    int rc = tw_amp_integer_parse(text, len, NULL);
    if (rc < 0 && rc != -ERANGE)
        return -EINVAL;
    /* int() accepted the text, so only its own whitespace can surround it. */
    const unsigned char *s = (const unsigned char *)text, *end = s + len;
    while (s < end && str_space(*s))
        s++;
    while (end > s && str_space(end[-1]))
        end--;
    int neg = 0;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    while (s < end && (*s == '0' || *s == '_'))
        s++;
    char *copy = malloc((size_t)(end - s) + 3);
    if (copy == NULL)
        return -ENOMEM;
    size_t n = 0;
    if (neg && s < end)
        copy[n++] = '-';
    for (; s < end; s++)
        if (*s != '_')
            copy[n++] = (char)*s;
    if (n == 0)
        copy[n++] = '0';
    copy[n] = '\0';
    *out = copy;
    *outlen = n;
    return 0;
}

/* ------------------------------------------------------------ Decimal */

/* Does @p s (@p n bytes) spell @p word, ignoring case? */
static int word_is(const char *s, size_t n, const char *word)
{
    if (n != strlen(word))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != (unsigned char)word[i])
            return 0;
    return 1;
}

/* Copy digits without their leading zeros; nothing for all zeros. */
static size_t put_payload(char *dst, const char *digits, size_t n)
{
    while (n > 0 && *digits == '0') {
        digits++;
        n--;
    }
    memcpy(dst, digits, n);
    return n;
}

/*
 * Parse the underscore-free, stripped text @p s into its canonical form in
 * @p dst (room for @p len + 32 bytes). @return the length, or -EINVAL.
 */
static long decimal_format(const char *s, size_t len, char *dst, char *digits)
{
    size_t at = 0, n = 0;
    int neg = 0;
    if (len > 0 && (s[0] == '+' || s[0] == '-')) {
        neg = s[0] == '-';
        s++;
        len--;
    }
    if (neg)
        dst[at++] = '-';
    if (word_is(s, len, "inf") || word_is(s, len, "infinity")) {
        memcpy(dst + at, "Infinity", 8);
        return (long)(at + 8);
    }
    /* "nan" or "snan", then the payload's digits. */
    size_t special = 0;
    if (len >= 3 && word_is(s, 3, "nan"))
        special = 3;
    else if (len >= 4 && word_is(s, 4, "snan"))
        special = 4;
    if (special > 0) {
        for (size_t i = special; i < len; i++)
            if (!is_digit((unsigned char)s[i]))
                return -EINVAL;
        if (special == 4)
            dst[at++] = 's';
        memcpy(dst + at, "NaN", 3);
        at += 3;
        return (long)(at + put_payload(dst + at, s + special, len - special));
    }
    /* The coefficient's digits, and how many of them follow the point. */
    size_t i = 0, frac = 0;
    int point = 0;
    for (; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_digit(c)) {
            digits[n++] = (char)c;
            frac += point;
        } else if (c == '.' && !point) {
            point = 1;
        } else {
            break;
        }
    }
    if (n == 0)
        return -EINVAL;
    int64_t exp = 0;
    if (i < len) {
        if (lower((unsigned char)s[i]) != 'e')
            return -EINVAL;
        i++;
        int eneg = 0;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            eneg = s[i++] == '-';
        if (i == len)
            return -EINVAL;
        for (; i < len; i++) {
            if (!is_digit((unsigned char)s[i]))
                return -EINVAL;
            if (exp <= (DECIMAL_EXP_SATURATED - 9) / 10)
                exp = exp * 10 + (s[i] - '0');
            else
                exp = DECIMAL_EXP_SATURATED;
        }
        if (eneg)
            exp = -exp;
    }
    exp -= (int64_t)frac;
    /* Leading zeros are not part of the coefficient; zero keeps one digit. */
    size_t lead = 0;
    while (lead + 1 < n && digits[lead] == '0')
        lead++;
    const char *c = digits + lead;
    n -= lead;
    int64_t adjusted = exp + (int64_t)n - 1;
    if (adjusted > DECIMAL_EMAX || exp < DECIMAL_ETINY)
        return -EINVAL; /* not exact in libmpdec's largest context */
    if (exp <= 0 && adjusted >= -6) {
        if (exp == 0) {
            memcpy(dst + at, c, n);
            return (long)(at + n);
        }
        int64_t whole = (int64_t)n + exp; /* digits before the point */
        if (whole > 0) {
            memcpy(dst + at, c, (size_t)whole);
            at += (size_t)whole;
            dst[at++] = '.';
            memcpy(dst + at, c + whole, n - (size_t)whole);
            return (long)(at + n - (size_t)whole);
        }
        dst[at++] = '0';
        dst[at++] = '.';
        for (int64_t z = whole; z < 0; z++)
            dst[at++] = '0';
        memcpy(dst + at, c, n);
        return (long)(at + n);
    }
    dst[at++] = c[0];
    if (n > 1) {
        dst[at++] = '.';
        memcpy(dst + at, c + 1, n - 1);
        at += n - 1;
    }
    at += (size_t)snprintf(dst + at, 24, "E%+" PRId64, adjusted);
    return (long)at;
}

int tw__amp_decimal_canonical(const char *text, size_t len, char **out, size_t *outlen)
{
    const unsigned char *s = (const unsigned char *)text, *end = s + len;
    while (s < end && str_space(*s))
        s++;
    while (end > s && str_space(end[-1]))
        end--;
    size_t n = (size_t)(end - s);
    /* One block: the text without underscores, its digits, the result. */
    char *work = malloc(3 * n + 40);
    if (work == NULL)
        return -ENOMEM;
    char *plain = work, *digits = work + n, *dst = work + 2 * n;
    size_t m = 0;
    for (; s < end; s++) {
        if (*s == '_')
            continue;
        if (*s == 0 || *s > 0x7f) {
            free(work);
            return -EINVAL;
        }
        plain[m++] = (char)*s;
    }
    long r = decimal_format(plain, m, dst, digits);
    if (r < 0) {
        free(work);
        return -EINVAL;
    }
    memmove(work, dst, (size_t)r);
    work[r] = '\0';
    *out = work;
    *outlen = (size_t)r;
    return 0;
}
