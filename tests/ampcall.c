/* SPDX-License-Identifier: MIT */
/*
 * AMP calls from tests: see ampcall.h.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "ampcall.h"
#include "recorder.h"

void tu_amp_on_values(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    tu_amp_outcome *o = arg;
    tw_free_fn fn;
    o->values = tw_result_take_value(res, &fn);
    o->done = 1;
}

void tu_amp_on_failure(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    tu_amp_outcome *o = arg;
    tw_failure *f = tw_result_take_failure(res);
    o->failed = 1;
    o->done = 1;
    o->code = tw_failure_code(f);
    tw_failure_format(f, o->message, sizeof o->message);
    const char *code, *desc;
    if (tw_amp_error_info(f, &code, &desc) == 0) {
        snprintf(o->remote_code, sizeof o->remote_code, "%s", code);
        snprintf(o->remote_desc, sizeof o->remote_desc, "%s", desc);
    }
    tw_failure_unref(f);
}

void tu_amp_on_result(tw_deferred *d, tw_result *res, void *arg)
{
    if (tw_result_is_failure(res))
        tu_amp_on_failure(d, res, arg);
    else
        tu_amp_on_values(d, res, arg);
}

void tu_amp_outcome_free(tu_amp_outcome *o)
{
    tw_amp_values_free(o->values);
    tw_amp_box_free(o->box);
    memset(o, 0, sizeof *o);
}

void tu_amp_call(tw_reactor *r, tw_amp *amp, const tw_amp_command *cmd, tw_amp_values *args,
                 tu_amp_outcome *o, int ms)
{
    memset(o, 0, sizeof *o);
    tw_deferred *d = tw_amp_call_remote(amp, cmd, args);
    ck_assert_ptr_nonnull(d);
    tw_deferred_add_both(d, tu_amp_on_result, o);
    spin(r, &o->done, ms);
    ck_assert_msg(o->done, "%s was not answered", cmd->name);
    tw_deferred_unref(d);
    tw_amp_values_free(args);
}
