/* SPDX-License-Identifier: MIT */
/*
 * Calling AMP commands from a test and waiting for the answer: what a call
 * ended with (values, or the failure and the remote error code). The amp
 * module's commands come from its own declarations (amp_commands.h), for
 * the tests that call that module in-process or through reactord.
 */
#ifndef TWINE_TESTS_AMPCALL_H
#define TWINE_TESTS_AMPCALL_H

#include <twine.h>
#include <twine/amp.h>

typedef struct {
    int done, failed;
    int order;          /* for callers that count completions themselves */
    int code;           /* the failure's code */
    char message[512];  /* the failure, formatted */
    char remote_code[64], remote_desc[256]; /* an _error box's, if any */
    tw_amp_values *values; /* taken: the outcome owns them */
    tw_amp_box *box;       /* for callers that take a raw box instead */
} tu_amp_outcome;

/* Callbacks filling a tu_amp_outcome (arg): the answer, the failure, either. */
void tu_amp_on_values(tw_deferred *d, tw_result *res, void *arg);
void tu_amp_on_failure(tw_deferred *d, tw_result *res, void *arg);
void tu_amp_on_result(tw_deferred *d, tw_result *res, void *arg);

/* Free what the outcome holds and clear it. */
void tu_amp_outcome_free(tu_amp_outcome *o);

/*
 * Call @p cmd on @p amp with @p args (freed here, may be NULL) and run @p r
 * until it is answered; fails the test if it is not within @p ms.
 */
void tu_amp_call(tw_reactor *r, tw_amp *amp, const tw_amp_command *cmd, tw_amp_values *args,
                 tu_amp_outcome *o, int ms);

#include "../protocols/amp_commands.h"

#endif
