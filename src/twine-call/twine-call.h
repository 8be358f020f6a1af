/* SPDX-License-Identifier: MIT */
/*
 * twine-call's internal interfaces, shared by its files. Each file owns one
 * concept: the unambiguous text form of keys and values (text.c) and their
 * JSON form (json.c), the calls read from the command line and standard input
 * (args.c), the answers printed as text or JSON (print.c); main.c connects with libtwine's
 * endpoints and makes the calls on the reactor.
 *
 * Errors travel as a sysexits.h code plus one sentence written into the
 * caller's buffer; main.c prints the sentence once.
 */
#ifndef TWINE_CALL_H
#define TWINE_CALL_H

#include <stddef.h>
#include <stdio.h>
#include <jansson.h>
#include <twine.h>

/** The server answered with an AMP error. */
#define TC_EXIT_REMOTE_ERROR 1

/** The most standard input may hold; it is refused, not truncated, past it. */
#define TC_STDIN_MAX (16u * 1024 * 1024)

/* ------------------------------------------------------------ text.c */

/**
 * @return nonzero when @p s can be printed as it is in the text form: valid
 *         UTF-8 without control characters, not starting with '"', and for
 *         a key (@p is_key) without '='.
 */
int tc_text_is_bare(const char *s, size_t len, int is_key);

/** @return nonzero when @p s is valid UTF-8 (no overlong forms or surrogates). */
int tc_utf8_valid(const char *s, size_t len);

/**
 * Write @p s to @p out in the text form: bare when tc_text_is_bare(), else
 * quoted with C escapes (\" \\ \n \r \t and \xHH for any other control
 * byte or byte that is not part of valid UTF-8).
 */
void tc_text_put(FILE *out, const char *s, size_t len, int is_key);

/**
 * Read one key or value written in the text form: a quoted one has its
 * escapes undone, anything else is taken as it is.
 * @param out receives a malloc'd copy (NUL-terminated), owned by the caller.
 * @return 0; -EINVAL with a sentence in @p err for a bad quoted form;
 *         -ENOMEM.
 */
int tc_text_read(const char *s, size_t len, char **out, size_t *outlen, char *err,
                 size_t errlen);

/* ------------------------------------------------------------ args.c */

/** The argument boxes, one per call, each owned by the list. */
typedef struct tc_calls {
    tw_amp_box **boxes;
    size_t n, cap;
} tc_calls;

/**
 * tw_amp_box_set(), with a sentence naming the limit broken.
 * @param what names the pair in the sentence, e.g. "argument 'a=1'".
 * @return 0; @p bad_code for a key or value too long for AMP; EX_OSERR when
 *         memory runs out. The sentence goes in @p err.
 */
int tc_box_set(tw_amp_box *box, const char *key, size_t keylen, const char *value,
               size_t valuelen, const char *what, int bad_code, char *err, size_t errlen);

/**
 * Set each KEY=VALUE of @p argv (the bytes as given) in @p box.
 * @return 0, or a sysexits code with a sentence in @p err.
 */
int tc_args_from_argv(tw_amp_box *box, char *const *argv, int argc, char *err, size_t errlen);

/**
 * Read the calls on @p in: JSON objects (when the first byte that is not
 * white space is '{'), or KEY=VALUE lines in the text form, a blank line
 * between calls. Each call starts as a copy of @p common, which its own
 * keys override. An input with no call at all gives one call, @p common.
 * @return 0, or a sysexits code (EX_DATAERR, EX_IOERR, EX_OSERR) with a
 *         sentence in @p err.
 */
int tc_calls_read(FILE *in, const tw_amp_box *common, tc_calls *calls, char *err,
                  size_t errlen);

/** Append @p box, which the list then owns. @return 0 or -ENOMEM (box freed). */
int tc_calls_add(tc_calls *calls, tw_amp_box *box);

/** Free every box and the list's storage. */
void tc_calls_free(tc_calls *calls);

/* ------------------------------------------------------------ print.c */

typedef enum tc_format {
    TC_TEXT, /**< KEY=VALUE lines in the text form */
    TC_RAW,  /**< KEY=VALUE lines with the bytes as received */
    TC_JSON  /**< one JSON object a line */
} tc_format;

/**
 * Print an answer. @p index counts the calls from 0: in the text forms a
 * blank line comes before every answer but the first.
 * @return 0, or -errno when writing failed.
 */
int tc_print_answer(FILE *out, tc_format fmt, size_t index, const char *command,
                    const tw_amp_box *answer);

/**
 * Report an AMP error the server answered with: in JSON on @p out, and as
 * a sentence on @p err in every format.
 * @return 0, or -errno when writing to @p out failed.
 */
int tc_print_error(FILE *out, FILE *err, tc_format fmt, const char *command, const char *code,
                   const char *description);

/**
 * Report a call that got no answer (@p exit_code says why): in JSON on
 * @p out, and as the sentence @p message on @p err in every format.
 * @return 0, or -errno when writing to @p out failed.
 */
int tc_print_failure(FILE *out, FILE *err, tc_format fmt, const char *command, int exit_code,
                     const char *message);

/* ------------------------------------------------------------ json.c */

/**
 * The JSON form of bytes: a string when they are valid UTF-8, else
 * {"base64": "..."}.
 * @return a new reference owned by the caller, or NULL when memory runs out.
 */
json_t *tc_json_bytes(const char *s, size_t len);

/**
 * The JSON form of a box: an object whose values are strings, or, for a
 * value that is not valid UTF-8, {"base64": "..."}. A key that is not valid
 * UTF-8 is written in the text form's quoted notation.
 * @return a new reference owned by the caller, or NULL when memory runs out.
 */
json_t *tc_json_from_box(const tw_amp_box *box);

/**
 * Set the members of the JSON object @p obj in @p box: a string as its
 * UTF-8 bytes, an integer in decimal, a real as Python writes it, true and
 * false as True and False, {"base64": "..."} as the bytes it encodes.
 * @return 0; EX_DATAERR with a sentence in @p err for any other value or
 *         one too long for AMP; EX_OSERR when memory runs out.
 */
int tc_json_to_box(const json_t *obj, tw_amp_box *box, char *err, size_t errlen);

#endif
