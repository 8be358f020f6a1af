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
    if (rc < 0)
        return written(out) < 0 ? written(out) : -ENOMEM;
    fputc('\n', out);
    return written(out);
}

/* {"command": ..., @p what: @p detail}, taking @p detail. */
static json_t *report(const char *command, const char *what, json_t *detail)
{
    json_t *cmd = tc_json_bytes(command, strlen(command));
    if (cmd == NULL || detail == NULL) {
        json_decref(cmd);
        json_decref(detail);
        return NULL;
    }
    json_t *obj = json_object();
    if (obj == NULL || json_object_set_new(obj, "command", cmd) < 0 ||
        json_object_set_new(obj, what, detail) < 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
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
    json_t *detail = json_object();
    json_t *c = tc_json_bytes(code, strlen(code)), *d = tc_json_bytes(description, strlen(description));
    if (detail == NULL || c == NULL || d == NULL || json_object_set_new(detail, "code", c) < 0 ||
        json_object_set_new(detail, "description", d) < 0) {
        json_decref(detail);
        return -ENOMEM;
    }
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
