/* SPDX-License-Identifier: MIT */
/*
 * The text form of AMP keys and values, which are arbitrary bytes: printed
 * as they are when that is unambiguous, quoted with C escapes when not.
 *
 * A printed line is KEY=VALUE up to the newline, so a value may hold '='
 * but not a newline, and a key may hold neither. Anything that could be
 * misread -- a control byte, bytes that are not UTF-8, a leading '"' that
 * would look like quoting, a '=' in a key -- makes the whole key or value
 * quoted: "\xff\n". Reading undoes exactly that, so what twine-call prints
 * can be fed back to it on standard input.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "twine-call.h"

/* @return the length of the UTF-8 sequence at @p s, or 0 if it is invalid. */
static size_t utf8_sequence(const unsigned char *s, size_t left)
{
    if (s[0] < 0x80)
        return 1;
    size_t n;
    unsigned min;
    unsigned cp;
    if ((s[0] & 0xe0) == 0xc0) {
        n = 2, min = 0x80, cp = s[0] & 0x1fu;
    } else if ((s[0] & 0xf0) == 0xe0) {
        n = 3, min = 0x800, cp = s[0] & 0x0fu;
    } else if ((s[0] & 0xf8) == 0xf0) {
        n = 4, min = 0x10000, cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

int tc_utf8_valid(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_sequence(u + i, len - i);
        if (n == 0)
            return 0;
        i += n;
    }
    return 1;
}

int tc_text_is_bare(const char *s, size_t len, int is_key)
{
    if (len > 0 && s[0] == '"')
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || (is_key && c == '='))
            return 0;
    }
    return tc_utf8_valid(s, len);
}

void tc_text_put(FILE *out, const char *s, size_t len, int is_key)
{
    if (tc_text_is_bare(s, len, is_key)) {
        fwrite(s, 1, len, out);
        return;
    }
    const unsigned char *u = (const unsigned char *)s;
    fputc('"', out);
    for (size_t i = 0; i < len;) {
        unsigned char c = u[i];
        size_t n = c < 0x20 || c == 0x7f ? 0 : utf8_sequence(u + i, len - i);
        if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
        } else if (c == '\n') {
            fputs("\\n", out);
        } else if (c == '\r') {
            fputs("\\r", out);
        } else if (c == '\t') {
            fputs("\\t", out);
        } else if (n == 0) {
            fprintf(out, "\\x%02x", c);
        } else {
            fwrite(u + i, 1, n, out);
            i += n;
            continue;
        }
        i++;
    }
    fputc('"', out);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Undo the quoting of s[1..len-2] into @p dst; @return the length, or -1. */
static long unquote(const char *s, size_t len, char *dst, char *err, size_t errlen)
{
    size_t o = 0;
    for (size_t i = 1; i + 1 < len; i++) {
        if (s[i] == '"') {
            snprintf(err, errlen, "a '\"' inside a quoted text must be written \\\"");
            return -1;
        }
        if (s[i] != '\\') {
            dst[o++] = s[i];
            continue;
        }
        if (i + 2 >= len) {
            snprintf(err, errlen, "a quoted text ends with a lone backslash");
            return -1;
        }
        char e = s[++i];
        int hi, lo;
        switch (e) {
        case '"':
        case '\\':
            dst[o++] = e;
            break;
        case 'n':
            dst[o++] = '\n';
            break;
        case 'r':
            dst[o++] = '\r';
            break;
        case 't':
            dst[o++] = '\t';
            break;
        case 'x':
            if (i + 3 >= len || (hi = hex_digit(s[i + 1])) < 0 || (lo = hex_digit(s[i + 2])) < 0) {
                snprintf(err, errlen, "\\x in a quoted text needs two hexadecimal digits");
                return -1;
            }
            dst[o++] = (char)(hi << 4 | lo);
            i += 2;
            break;
        default:
            snprintf(err, errlen, "unknown escape '\\%c' in a quoted text (use \\\" \\\\ \\n \\r "
                                  "\\t or \\xHH)",
                     e);
            return -1;
        }
    }
    return (long)o;
}

int tc_text_read(const char *s, size_t len, char **out, size_t *outlen, char *err,
                 size_t errlen)
{
    char *dst = malloc(len + 1);
    if (dst == NULL)
        return -ENOMEM;
    if (len == 0 || s[0] != '"') {
        memcpy(dst, s, len);
        *outlen = len;
    } else {
        if (len < 2 || s[len - 1] != '"') {
            snprintf(err, errlen, "a quoted text must end with '\"'");
            free(dst);
            return -EINVAL;
        }
        long n = unquote(s, len, dst, err, errlen);
        if (n < 0) {
            free(dst);
            return -EINVAL;
        }
        *outlen = (size_t)n;
    }
    dst[*outlen] = '\0';
    *out = dst;
    return 0;
}
