/* SPDX-License-Identifier: MIT */
/*
 * AMP errors as twine failures, and the deferreds responders return most
 * often: an answer they have at once, or an AMP error. An AMP error is two
 * failures: the outer one's message is the code, its cause's message the
 * description, both TW_EREMOTE, and the cause has no cause of its own.
 * tw_failure_format() then reads "CODE: description".
 */
#include "config.h"

#include <errno.h>
#include <twine/amp.h>

TW_API tw_failure *tw_amp_error_new(const char *code, const char *description)
{
    tw_failure *desc = tw_failure_new(TW_EREMOTE, "%s", description != NULL ? description : "");
    return tw_failure_wrap(desc, TW_EREMOTE, "%s", code != NULL ? code : "");
}

TW_API int tw_amp_error_info(const tw_failure *f, const char **code, const char **description)
{
    for (; f != NULL; f = tw_failure_cause(f)) {
        const tw_failure *c = tw_failure_cause(f);
        if (tw_failure_code(f) == TW_EREMOTE && c != NULL && tw_failure_code(c) == TW_EREMOTE &&
            tw_failure_cause(c) == NULL) {
            if (code != NULL)
                *code = tw_failure_message(f);
            if (description != NULL)
                *description = tw_failure_message(c);
            return 0;
        }
    }
    return -ENOENT;
}

static void values_free_fn(void *v)
{
    tw_amp_values_free(v);
}

TW_API tw_deferred *tw_amp_succeed(tw_amp_values *values)
{
    return tw_deferred_succeed(values, values != NULL ? values_free_fn : NULL);
}

TW_API tw_deferred *tw_amp_fail(const char *code, const char *description)
{
    return tw_deferred_fail(tw_amp_error_new(code, description));
}
