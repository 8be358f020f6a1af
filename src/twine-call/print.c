/* SPDX-License-Identifier: MIT */
/*
 * Answers and errors, as text or JSON.
 *
 * The text form prints one KEY=VALUE line per key of the answer (text.c
 * quotes what could be misread), a blank line between answers, and the
 * errors as sentences on standard error, the way grep or curl do. The JSON
 * form (--json, as grpcurl's and redis-cli's machine-readable outputs) puts
 * exactly one object per call on its own line of standard output, whatever
 * happened to it:
 *
 *   {"command":"Sum","answer":{"total":"94"}}
 *   {"command":"Divide","error":{"code":"ZERO_DIVISION","description":"division by zero"}}
 *   {"command":"Sum","failure":{"exit":69,"message":"cannot connect to ..."}}
 *
 * so a script reads one line per call and never parses a sentence.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "twine-call.h"

static int written(FILE *out)
{
    return fflush(out) == 0 && !ferror(out) ? 0 : -(errno != 0 ? errno : EIO);
}

/* Print @p obj (a new reference, which this takes) as one line. */
static int put_json(FILE *out, json_t *obj)
{
    if (obj == NULL)
        return -ENOMEM;
    int rc = json_dumpf(obj, out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (rc < 0) {
        int w = written(out);
        return w < 0 ? w : -ENOMEM;
    }
    fputc('\n', out);
    return written(out);
}

/*
 * {"command": ..., @p what: @p detail}, taking @p detail. json_pack's "o"
 * takes its reference even when packing fails, a NULL one included.
 */
static json_t *report(const char *command, const char *what, json_t *detail)
{
    return json_pack("{s:o,s:o}", "command", tc_json_bytes(command, strlen(command)), what,
                     detail);
}

int tc_print_answer(FILE *out, tc_format fmt, size_t index, const char *command,
                    const tw_amp_box *answer)
{
    if (fmt == TC_JSON)
        return put_json(out, report(command, "answer", tc_json_from_box(answer)));
    if (index > 0)
        fputc('\n', out);
    for (size_t i = 0; i < tw_amp_box_count(answer); i++) {
        const char *k, *v;
        size_t kl, vl;
        tw_amp_box_entry(answer, i, &k, &kl, &v, &vl);
        if (fmt == TC_RAW) {
            fwrite(k, 1, kl, out);
            fputc('=', out);
            fwrite(v, 1, vl, out);
        } else {
            tc_text_put(out, k, kl, 1);
            fputc('=', out);
            tc_text_put(out, v, vl, 0);
        }
        fputc('\n', out);
    }
    return written(out);
}

int tc_print_error(FILE *out, FILE *err, tc_format fmt, const char *command, const char *code,
                   const char *description)
{
    fprintf(err, "twine-call: %s failed: ", command);
    tc_text_put(err, code, strlen(code), 0);
    fputs(": ", err);
    tc_text_put(err, description, strlen(description), 0);
    fputc('\n', err);
    if (fmt != TC_JSON)
        return 0;
    json_t *detail = json_pack("{s:o,s:o}", "code", tc_json_bytes(code, strlen(code)),
                               "description", tc_json_bytes(description, strlen(description)));
    return put_json(out, report(command, "error", detail));
}

int tc_print_failure(FILE *out, FILE *err, tc_format fmt, const char *command, int exit_code,
                     const char *message)
{
    fprintf(err, "twine-call: %s\n", message);
    if (fmt != TC_JSON)
        return 0;
    json_t *detail = json_pack("{s:i,s:s?}", "exit", exit_code, "message",
                               tc_utf8_valid(message, strlen(message)) ? message : NULL);
    return put_json(out, report(command, "failure", detail));
}
