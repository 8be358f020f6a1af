/* SPDX-License-Identifier: MIT */
/*
 * Fuzzing tw_options_parse(), the check of an operator's key=value module
 * options against a module's option table.
 *
 * The input is split into "key=value" strings on newlines and parsed
 * against one of a few tables (none at all, an empty one, one of each type
 * with and without defaults, one with names long enough to overflow the
 * list of valid keys in the error sentence), with an error buffer of a size
 * taken from the input, allocated to exactly that size. The outcome is
 * predicted independently: the parse must succeed exactly when every string
 * has a known key and a value of its type; then every option reads back as
 * the last value given (or its default) through each typed getter, and
 * otherwise the error is a NUL-terminated sentence that fits.
 *
 * Input: [table][error buffer size] then the strings, one per line.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <strings.h>
#include <twine.h>
#include <twine/plugin.h>

#include "fuzz.h"

#define MAX_STRINGS 64

static const tw_option_spec empty[] = {{NULL, 0, NULL, NULL}};

static const tw_option_spec typed[] = {
    {"port", TW_OPTION_INT, "7", "the port"},
    {"name", TW_OPTION_STRING, NULL, "a name"},
    {"verbose", TW_OPTION_BOOL, "no", "chatty"},
    {"ratio", TW_OPTION_DOUBLE, "0.5", "a ratio"},
    {"count", TW_OPTION_INT, NULL, NULL},
    {"on", TW_OPTION_BOOL, NULL, NULL},
    {"scale", TW_OPTION_DOUBLE, NULL, NULL},
    {"greeting", TW_OPTION_STRING, "hello=world", NULL},
    {NULL, 0, NULL, NULL},
};

#define LONG_NAME(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c
static const tw_option_spec long_names[] = {
    {LONG_NAME("a"), TW_OPTION_STRING, NULL, NULL},
    {LONG_NAME("b"), TW_OPTION_INT, "1", NULL},
    {LONG_NAME("c"), TW_OPTION_BOOL, NULL, NULL},
    {LONG_NAME("d"), TW_OPTION_DOUBLE, NULL, NULL},
    {LONG_NAME("e"), TW_OPTION_STRING, NULL, NULL},
    {LONG_NAME("f"), TW_OPTION_STRING, NULL, NULL},
    {LONG_NAME("g"), TW_OPTION_STRING, NULL, NULL},
    {LONG_NAME("h"), TW_OPTION_STRING, NULL, NULL},
    {LONG_NAME("i"), TW_OPTION_STRING, NULL, NULL},
    {LONG_NAME("j"), TW_OPTION_STRING, NULL, NULL},
    {LONG_NAME("k"), TW_OPTION_STRING, NULL, NULL},
    {LONG_NAME("l"), TW_OPTION_STRING, NULL, NULL},
    {LONG_NAME("m"), TW_OPTION_STRING, NULL, NULL},
    {LONG_NAME("n"), TW_OPTION_STRING, NULL, NULL},
    {"x", TW_OPTION_INT, NULL, NULL},
    {NULL, 0, NULL, NULL},
};

/* ------------------------------------------------------------ the prediction */

static int read_int(const char *v, long long *out)
{
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*v == '\0' || *end != '\0' || errno != 0)
        return 0;
    *out = x;
    return 1;
}

static int read_bool(const char *v, int *out)
{
    static const char *const words[] = {"1", "true", "yes", "on", "0", "false", "no", "off"};
    for (int i = 0; i < 8; i++) {
        if (strcasecmp(v, words[i]) == 0) {
            *out = i < 4;
            return 1;
        }
    }
    return 0;
}

static int read_double(const char *v, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (*v == '\0' || *end != '\0' || errno != 0 || !isfinite(x))
        return 0;
    *out = x;
    return 1;
}

static int valid(tw_option_type type, const char *v)
{
    long long i;
    int b;
    double d;
    switch (type) {
    case TW_OPTION_INT:
        return read_int(v, &i);
    case TW_OPTION_BOOL:
        return read_bool(v, &b);
    case TW_OPTION_DOUBLE:
        return read_double(v, &d);
    default:
        return 1;
    }
}

/* The entry of @p spec called exactly s[0..len), or -1. */
static long find(const tw_option_spec *spec, const char *s, size_t len)
{
    for (long j = 0; spec != NULL && spec[j].name != NULL; j++)
        if (strlen(spec[j].name) == len && memcmp(spec[j].name, s, len) == 0)
            return j;
    return -1;
}

/* ------------------------------------------------------------ the driver */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_quiet_logs();
    fz_in in = {data, size};
    uint8_t which = fz_byte(&in, 2);
    uint8_t e = fz_byte(&in, 255);
    size_t errlen = e < 128 ? e : e < 255 ? 128 + (size_t)(e - 128) * 8 : 4096;
    const tw_option_spec *spec = which % 4 == 0   ? NULL
                                 : which % 4 == 1 ? empty
                                 : which % 4 == 2 ? typed
                                                  : long_names;

    /* One string per line, each NUL-terminated (a NUL inside ends it early). */
    char *text = malloc(in.n + 1);
    FZ_CHECK(text != NULL, "out of memory");
    memcpy(text, in.p, in.n);
    text[in.n] = '\0';
    const char *kv[MAX_STRINGS];
    size_t n = 0;
    if (in.n > 0) {
        char *p = text;
        while (n < MAX_STRINGS) {
            kv[n++] = p;
            char *nl = memchr(p, '\n', (size_t)(text + in.n - p));
            if (nl == NULL)
                break;
            *nl = '\0';
            p = nl + 1;
        }
    }

    long last[16];
    for (int j = 0; j < 16; j++)
        last[j] = -1;
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        const char *eq = strchr(kv[i], '=');
        long j = eq != NULL && eq != kv[i] ? find(spec, kv[i], (size_t)(eq - kv[i])) : -1;
        if (j < 0 || !valid(spec[j].type, eq + 1))
            ok = 0;
        else
            last[j] = (long)i;
    }

    char *err = errlen > 0 ? malloc(errlen) : NULL;
    FZ_CHECK(errlen == 0 || err != NULL, "out of memory");
    if (err != NULL)
        memset(err, 'Z', errlen);
    tw_options *o = tw_options_parse(spec, kv, n, err, errlen);
    if (o == NULL) {
        FZ_CHECK(!ok, "valid options were refused: %.*s", (int)errlen, err ? err : "");
        if (err != NULL) {
            FZ_CHECK(memchr(err, '\0', errlen) != NULL, "the error is not NUL-terminated");
            FZ_CHECK(errlen < 2 || err[0] != '\0', "a refusal without a sentence");
        }
    } else {
        FZ_CHECK(ok, "invalid options were accepted");
        for (long j = 0; spec != NULL && spec[j].name != NULL; j++) {
            const char *want = last[j] >= 0 ? strchr(kv[last[j]], '=') + 1 : spec[j].default_value;
            const char *got = tw_options_get(o, spec[j].name);
            FZ_CHECK((want == NULL && got == NULL) || (want && got && strcmp(want, got) == 0),
                     "option %s is '%s', not '%s'", spec[j].name, got ? got : "(none)",
                     want ? want : "(none)");
            long long i;
            int b;
            double d;
            switch (spec[j].type) {
            case TW_OPTION_INT:
                if (want != NULL && read_int(want, &i))
                    FZ_CHECK(tw_options_get_int(o, spec[j].name, i ^ 1) == i, "%s", want);
                else
                    FZ_CHECK(tw_options_get_int(o, spec[j].name, -42) == -42, "fallback");
                break;
            case TW_OPTION_BOOL:
                if (want != NULL && read_bool(want, &b))
                    FZ_CHECK(tw_options_get_bool(o, spec[j].name, !b) == b, "%s", want);
                else
                    FZ_CHECK(tw_options_get_bool(o, spec[j].name, 7) == 7, "fallback");
                break;
            case TW_OPTION_DOUBLE:
                if (want != NULL && read_double(want, &d)) {
                    double g = tw_options_get_double(o, spec[j].name, NAN);
                    FZ_CHECK(memcmp(&g, &d, sizeof d) == 0, "%s", want);
                } else {
                    FZ_CHECK(tw_options_get_double(o, spec[j].name, -42.5) == -42.5, "fallback");
                }
                break;
            default:
                break;
            }
        }
        FZ_CHECK(tw_options_get(o, "no such option") == NULL, "an unknown option has a value");
        tw_options_free(o);
    }
    free(err);
    free(text);
    return 0;
}
