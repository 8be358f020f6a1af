/* SPDX-License-Identifier: MIT */
/*
 * Reading a deferred that already fired (include/twine/testing.h), as
 * Twisted's successResultOf / failureResultOf. The reader runs as a
 * callback pair through tw__deferred_run_settled(), which runs it now or
 * not at all: a pair added the ordinary way to a deferred that has no
 * result yet would stay queued and run later, long after the reader's
 * frame is gone.
 */
#include "config.h"

#include <errno.h>

#include <twine/testing.h>

#include "defer/deferred_internal.h"

typedef struct {
    int failed;
    void **value;
    tw_free_fn *free_fn;
    tw_failure **failure;
} reading;

static void read_value(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    reading *r = arg;
    if (r->value == NULL) {
        r->failed = -1; /* a value where a failure was asked for */
        return;
    }
    if (r->free_fn != NULL)
        *r->value = tw_result_take_value(res, r->free_fn);
    else
        *r->value = tw_result_value(res);
}

static void read_failure(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    reading *r = arg;
    if (r->failure == NULL) {
        r->failed = -1; /* a failure where a value was asked for: left in place */
        return;
    }
    *r->failure = tw_result_take_failure(res);
}

TW_API int tw_deferred_has_result(const tw_deferred *d)
{
    return tw__deferred_settled(d);
}

TW_API int tw_deferred_success_result(tw_deferred *d, void **value, tw_free_fn *free_fn)
{
    reading r = {.value = value, .free_fn = free_fn};
    if (!tw__deferred_run_settled(d, read_value, read_failure, &r))
        return TW_ESTATE;
    return r.failed ? -ENOMSG : 0;
}

TW_API int tw_deferred_failure_result(tw_deferred *d, tw_failure **failure)
{
    reading r = {.failure = failure};
    if (!tw__deferred_run_settled(d, read_value, read_failure, &r))
        return TW_ESTATE;
    return r.failed ? -ENOMSG : 0;
}
