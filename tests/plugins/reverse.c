/* SPDX-License-Identifier: MIT */
/*
 * An AMP commands module for the loader and reactord tests, built as
 * reverse.so: it adds a Reverse command to the AMP protocol it is added to
 * (`reactord -p amp --amp-commands reverse`). Its constructor appends the
 * effective uid it was loaded as to the file named by
 * TWINE_TEST_LOAD_RECORD, so a test sees whether, and as whom, reactord
 * ran its code.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <twine.h>
#include <twine/amp.h>

__attribute__((constructor)) static void reverse_loaded(void)
{
    const char *record = getenv("TWINE_TEST_LOAD_RECORD");
    if (record != NULL) {
        FILE *f = fopen(record, "a");
        if (f != NULL) {
            fprintf(f, "loaded as uid %u\n", (unsigned)geteuid());
            fclose(f);
        }
    }
}

static const tw_amp_command reverse_command = {
    .name = "Reverse",
    .arguments = (const tw_amp_arg[]){{"text", TW_AMP_T_STRING, 0}, {NULL, NULL, 0}},
    .response = (const tw_amp_arg[]){{"text", TW_AMP_T_STRING, 0}, {NULL, NULL, 0}},
};

static tw_deferred *reverse_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)arg;
    const char *text;
    size_t len;
    if (tw_amp_values_get_string(args, "text", &text, &len) < 0)
        return tw_amp_fail("BAD_TEXT", "no text");
    char *rev = malloc(len + 1);
    tw_amp_values *v = tw_amp_values_new();
    if (rev == NULL || v == NULL) {
        free(rev);
        tw_amp_values_free(v);
        return NULL;
    }
    for (size_t i = 0; i < len; i++)
        rev[i] = text[len - 1 - i];
    tw_amp_values_set_string(v, "text", rev, len);
    free(rev);
    return tw_amp_succeed(v);
}

static int reverse_register(struct tw_amp_dispatcher *d, const tw_options *opts, char *err,
                            size_t errlen)
{
    (void)opts;
    int rc = tw_amp_register(d, &reverse_command, reverse_responder, NULL);
    if (rc < 0)
        snprintf(err, errlen, "cannot register Reverse: %s", tw_strerror(rc));
    return rc;
}

TW_PLUGIN(reverse, .type = TW_PLUGIN_AMP_COMMANDS, .name = "reverse",
          .description = "adds Reverse to an AMP protocol (a test module)",
          .ctx = &(const tw_plugin_amp_commands){.register_commands = reverse_register});
