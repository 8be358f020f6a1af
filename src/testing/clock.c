/* SPDX-License-Identifier: MIT */
/*
 * The clock of the test kit (include/twine/testing.h): an ordinary reactor
 * whose time source (tw_reactor_set_clock()) reads a number the test moves.
 * Everything timed in twine -- timers, looping calls, deferred timeouts,
 * defer_later -- sits on the reactor's timer heap, so running the due calls
 * after each move is all it takes to drive them without a loop.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include <twine/testing.h>

struct tw_clock {
    tw_reactor *reactor;
    double now;
};

static double read_clock(void *arg)
{
    return ((const tw_clock *)arg)->now;
}

TW_API tw_clock *tw_clock_new(void)
{
    tw_clock *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->reactor = tw_reactor_new();
    if (c->reactor == NULL) {
        free(c);
        return NULL;
    }
    tw_reactor_set_clock(c->reactor, read_clock, c);
    return c;
}

TW_API tw_reactor *tw_clock_reactor(tw_clock *c)
{
    return c->reactor;
}

TW_API double tw_clock_seconds(const tw_clock *c)
{
    return c->now;
}

TW_API int tw_clock_advance(tw_clock *c, double seconds)
{
    if (!isfinite(seconds) || seconds < 0)
        return -EINVAL;
    c->now += seconds;
    /* One pass leaves calls made during it for the next iteration (the
     * reactor's rule); Twisted's Clock runs them in the same advance when
     * they are due, so pass again until a pass finds nothing due. */
    while (tw_reactor_run_due_calls(c->reactor) > 0)
        ;
    return 0;
}

TW_API void tw_clock_free(tw_clock *c)
{
    if (c == NULL)
        return;
    tw_reactor_free(c->reactor);
    free(c);
}
