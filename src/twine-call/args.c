/* SPDX-License-Identifier: MIT */
/*
 * The calls' arguments: KEY=VALUE words on the command line (the bytes as
 * typed), and, with --stdin, a sequence of calls on standard input -- JSON
 * objects, or KEY=VALUE lines in the text form (text.c) with a blank line
 * between calls, which is what twine-call prints.
 *
 * Standard input is read whole, refused past TC_STDIN_MAX, before anything
 * is sent, so a mistake on line 900 sends nothing.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "twine-call.h"

int tc_calls_add(tc_calls *calls, tw_amp_box *box)
{
    if (calls->n == calls->cap) {
        size_t cap = calls->cap ? calls->cap * 2 : 4;
        tw_amp_box **b = realloc(calls->boxes, cap * sizeof *b);
        if (b == NULL) {
            tw_amp_box_free(box);
            return -ENOMEM;
        }
        calls->boxes = b;
        calls->cap = cap;
    }
    calls->boxes[calls->n++] = box;
    return 0;
}

void tc_calls_free(tc_calls *calls)
{
    for (size_t i = 0; i < calls->n; i++)
        tw_amp_box_free(calls->boxes[i]);
    free(calls->boxes);
    memset(calls, 0, sizeof *calls);
}

int tc_box_set(tw_amp_box *box, const char *k, size_t kl, const char *v, size_t vl,
               const char *what, int bad_code, char *err, size_t errlen)
{
    int rc = tw_amp_box_set(box, k, kl, v, vl);
    if (rc == -EINVAL) {
        snprintf(err, errlen, "%s: a key must be 1 to %d bytes", what, TW_AMP_MAX_KEY_LENGTH);
        return bad_code;
    }
    if (rc == TW_ETOOBIG) {
        snprintf(err, errlen, "%s: a value must be at most %d bytes", what,
                 TW_AMP_MAX_VALUE_LENGTH);
        return bad_code;
    }
    if (rc < 0) {
        snprintf(err, errlen, "out of memory");
        return EX_OSERR;
    }
    return 0;
}

int tc_args_from_argv(tw_amp_box *box, char *const *argv, int argc, char *err, size_t errlen)
{
    for (int i = 0; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        char what[64];
        snprintf(what, sizeof what, "argument '%.32s%s'", argv[i],
                 strlen(argv[i]) > 32 ? "..." : "");
        if (eq == NULL) {
            snprintf(err, errlen, "%s is not KEY=VALUE", what);
            return EX_USAGE;
        }
        int code = tc_box_set(box, argv[i], (size_t)(eq - argv[i]), eq + 1, strlen(eq + 1), what,
                            EX_USAGE, err, errlen);
        if (code != 0)
            return code;
    }
    return 0;
}

/* Read all of @p in into a malloc'd, NUL-terminated buffer. @return 0 or EX_*. */
static int slurp(FILE *in, char **out, size_t *len, char *err, size_t errlen)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n, in);
        if (n < cap || (cap >= TC_STDIN_MAX && fgetc(in) == EOF))
            break;
        if (cap >= TC_STDIN_MAX) {
            free(buf);
            snprintf(err, errlen, "standard input is longer than %u bytes", TC_STDIN_MAX);
            return EX_DATAERR;
        }
        cap *= 2;
        char *b = realloc(buf, cap + 1);
        if (b == NULL)
            free(buf);
        buf = b;
    }
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return EX_OSERR;
    }
    if (ferror(in)) {
        snprintf(err, errlen, "cannot read standard input: %s", strerror(errno));
        free(buf);
        return EX_IOERR;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

static tw_amp_box *box_copy(const tw_amp_box *from)
{
    tw_amp_box *b = tw_amp_box_new();
    for (size_t i = 0; b != NULL && i < tw_amp_box_count(from); i++) {
        const char *k, *v;
        size_t kl, vl;
        tw_amp_box_entry(from, i, &k, &kl, &v, &vl);
        if (tw_amp_box_set(b, k, kl, v, vl) < 0) {
            tw_amp_box_free(b);
            b = NULL;
        }
    }
    return b;
}

/* A new call starting from @p common, appended to @p calls; NULL on ENOMEM. */
static tw_amp_box *new_call(tc_calls *calls, const tw_amp_box *common)
{
    tw_amp_box *b = box_copy(common);
    if (b == NULL || tc_calls_add(calls, b) < 0)
        return NULL;
    return b;
}

static int read_json(const char *text, size_t len, const tw_amp_box *common, tc_calls *calls,
                     char *err, size_t errlen)
{
    size_t off = 0;
    for (;;) {
        off += strspn(text + off, " \t\r\n");
        if (off >= len)
            return 0;
        json_error_t je;
        json_t *obj = json_loadb(text + off, len - off,
                                 JSON_DISABLE_EOF_CHECK | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                                 &je);
        if (obj == NULL) {
            snprintf(err, errlen, "standard input, call %zu: not JSON: %s (line %d)",
                     calls->n + 1, je.text, je.line);
            return EX_DATAERR;
        }
        off += je.position;
        int code = 0;
        tw_amp_box *box = NULL;
        if (!json_is_object(obj)) {
            snprintf(err, errlen, "standard input, call %zu: a call is a JSON object of "
                                  "arguments",
                     calls->n + 1);
            code = EX_DATAERR;
        } else if ((box = new_call(calls, common)) == NULL) {
            snprintf(err, errlen, "out of memory");
            code = EX_OSERR;
        } else {
            char why[512];
            code = tc_json_to_box(obj, box, why, sizeof why);
            if (code != 0)
                snprintf(err, errlen, "standard input, call %zu: %s", calls->n, why);
        }
        json_decref(obj);
        if (code != 0)
            return code;
    }
}

/* One KEY=VALUE line of the text form into @p box. @return 0 or EX_*. */
static int read_line(const char *line, size_t len, size_t lineno, tw_amp_box *box, char *err,
                     size_t errlen)
{
    char what[64];
    snprintf(what, sizeof what, "standard input, line %zu", lineno);
    /* A key is quoted when it holds '=': find the '=' after its closing quote. */
    size_t keyend = 0;
    if (len > 0 && line[0] == '"') {
        for (keyend = 1; keyend < len && line[keyend] != '"'; keyend++)
            if (line[keyend] == '\\')
                keyend++;
        keyend++;
    }
    const char *eq = keyend <= len ? memchr(line + keyend, '=', len - keyend) : NULL;
    if (eq == NULL) {
        snprintf(err, errlen, "%s is not KEY=VALUE", what);
        return EX_DATAERR;
    }
    char *k = NULL, *v = NULL;
    size_t kl, vl;
    char why[256];
    int rc = tc_text_read(line, (size_t)(eq - line), &k, &kl, why, sizeof why);
    if (rc == 0)
        rc = tc_text_read(eq + 1, len - (size_t)(eq + 1 - line), &v, &vl, why, sizeof why);
    int code = 0;
    if (rc == -EINVAL) {
        snprintf(err, errlen, "%s: %s", what, why);
        code = EX_DATAERR;
    } else if (rc < 0) {
        snprintf(err, errlen, "out of memory");
        code = EX_OSERR;
    } else {
        code = tc_box_set(box, k, kl, v, vl, what, EX_DATAERR, err, errlen);
    }
    free(k);
    free(v);
    return code;
}

static int read_lines(const char *text, size_t len, const tw_amp_box *common, tc_calls *calls,
                      char *err, size_t errlen)
{
    tw_amp_box *box = NULL; /* the call being read; NULL after a blank line */
    size_t lineno = 0;
    for (size_t off = 0; off < len;) {
        const char *nl = memchr(text + off, '\n', len - off);
        size_t end = nl != NULL ? (size_t)(nl - text) : len;
        size_t linelen = end - off;
        if (linelen > 0 && text[end - 1] == '\r')
            linelen--;
        const char *line = text + off;
        off = end + 1;
        lineno++;
        if (linelen == 0) {
            box = NULL;
            continue;
        }
        if (line[0] == '#')
            continue;
        if (box == NULL && (box = new_call(calls, common)) == NULL) {
            snprintf(err, errlen, "out of memory");
            return EX_OSERR;
        }
        int code = read_line(line, linelen, lineno, box, err, errlen);
        if (code != 0)
            return code;
    }
    return 0;
}

int tc_calls_read(FILE *in, const tw_amp_box *common, tc_calls *calls, char *err,
                  size_t errlen)
{
    char *text;
    size_t len;
    int code = slurp(in, &text, &len, err, errlen);
    if (code != 0)
        return code;
    size_t start = strspn(text, " \t\r\n");
    if (start < len && text[start] == '{')
        code = read_json(text, len, common, calls, err, errlen);
    else
        code = read_lines(text, len, common, calls, err, errlen);
    free(text);
    if (code == 0 && calls->n == 0 && new_call(calls, common) == NULL) {
        snprintf(err, errlen, "out of memory");
        code = EX_OSERR;
    }
    return code;
}
