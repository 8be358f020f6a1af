/* SPDX-License-Identifier: MIT */
/*
 * amp: an AMP server with the commands of Twisted's AMP tutorial, plus two
 * that show asynchronous answers, for `reactord --protocol amp`:
 *
 *   Echo(value: String) -> value: String
 *   Sum(a: Integer, b: Integer) -> total: Integer        errors: OVERFLOW
 *   Divide(numerator: Integer, denominator: Integer) -> result: Float
 *                                              errors: ZERO_DIVISION, OVERFLOW
 *   Time() -> now: Float              seconds since the epoch (wall clock)
 *   Delay(seconds: Float) -> done: Boolean              errors: BAD_DELAY
 *        answered True by a reactor timer after the delay, so that answers
 *        to pipelined requests come back out of order
 *
 * Python's integers do not overflow; this module computes in 64 bits, so
 * a Sum or Divide given an Integer outside them, or a Sum whose total
 * would leave them, fails with the declared OVERFLOW error instead of
 * closing the connection. Divide is Python's true division, correctly
 * rounded like it.
 *
 * With -o tls-certificate=CERT.pem (and -o tls-key=KEY.pem) it also
 * answers Twisted's StartTLS, switching the connection to TLS.
 *
 * Other modules add commands to the same connections through
 * tw_amp_factory_dispatcher() of the factory this module makes (see amp.h).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <twine.h>
#include <twine/amp.h>
#include <twine/tls.h>

#include "amp_commands.h"

/* Answer with one value, or with an UNKNOWN-making failure if memory ran out. */
static tw_deferred *answer(tw_amp_values *v, int rc)
{
    if (v == NULL || rc < 0) {
        tw_amp_values_free(v);
        return tw_deferred_fail(tw_failure_new(-ENOMEM, NULL));
    }
    return tw_amp_succeed(v);
}

static tw_deferred *echo_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)arg;
    const char *data;
    size_t len;
    tw_amp_values_get_string(args, "value", &data, &len);
    tw_amp_values *v = tw_amp_values_new();
    return answer(v, v ? tw_amp_values_set_string(v, "value", data, len) : -ENOMEM);
}

static tw_deferred *sum_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)arg;
    int64_t a = 0, b = 0, total;
    if (tw_amp_values_get_integer(args, "a", &a) < 0 ||
        tw_amp_values_get_integer(args, "b", &b) < 0 || __builtin_add_overflow(a, b, &total))
        return tw_amp_fail("OVERFLOW", NULL);
    tw_amp_values *v = tw_amp_values_new();
    return answer(v, v ? tw_amp_values_set_integer(v, "total", total) : -ENOMEM);
}

/*
 * n / d correctly rounded, as Python's int true division. Doubles hold
 * integers up to 2^53 exactly, and IEEE division rounds correctly; past
 * that, the quotient is computed in 128-bit integers with enough bits and a
 * sticky bit for the conversion to round once, correctly.
 */
static double true_divide(int64_t n, int64_t d)
{
    const int64_t exact = (int64_t)1 << 53;
    if ((n >= -exact && n <= exact && d >= -exact && d <= exact) || n == 0)
        return (double)n / (double)d;
#ifdef __SIZEOF_INT128__
    uint64_t a = n < 0 ? 0 - (uint64_t)n : (uint64_t)n;
    uint64_t b = d < 0 ? 0 - (uint64_t)d : (uint64_t)d;
    int shift = 127 - (64 - __builtin_clzll(a)); /* the numerator takes 127 bits */
    unsigned __int128 num = (unsigned __int128)a << shift;
    unsigned __int128 q = num / b;
    if (num % b != 0)
        q |= 1; /* sticky: the quotient is not exact */
    double r = ldexp((double)q, -shift);
    return (n < 0) != (d < 0) ? -r : r;
#else
    return (double)((long double)n / (long double)d);
#endif
}

static tw_deferred *divide_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)arg;
    int64_t n = 0, d = 0;
    if (tw_amp_values_get_integer(args, "numerator", &n) < 0 ||
        tw_amp_values_get_integer(args, "denominator", &d) < 0)
        return tw_amp_fail("OVERFLOW", NULL);
    if (d == 0)
        return tw_amp_fail("ZERO_DIVISION", NULL);
    tw_amp_values *v = tw_amp_values_new();
    return answer(v, v ? tw_amp_values_set_float(v, "result", true_divide(n, d)) : -ENOMEM);
}

static tw_deferred *time_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)args;
    (void)arg;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    tw_amp_values *v = tw_amp_values_new();
    return answer(v, v ? tw_amp_values_set_float(v, "now", now) : -ENOMEM);
}

static void free_values(void *v)
{
    tw_amp_values_free(v);
}

/* The timer went off: the answer is done=True. */
static void delay_elapsed(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)arg;
    tw_amp_values *v = tw_amp_values_new();
    if (v == NULL || tw_amp_values_set_boolean(v, "done", 1) < 0) {
        tw_amp_values_free(v);
        tw_result_set_failure(res, tw_failure_new(-ENOMEM, NULL));
        return;
    }
    tw_result_set_value(res, v, free_values);
}

static tw_deferred *delay_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    tw_reactor *r = arg;
    double seconds = -1;
    tw_amp_values_get_float(args, "seconds", &seconds);
    if (!(seconds >= 0 && seconds <= AMP_MAX_DELAY))
        return tw_amp_fail("BAD_DELAY", NULL);
    /* Cancelling it (the connection went away) cancels the timer too. */
    return tw_defer_later(r, seconds, delay_elapsed, NULL);
}

static const tw_option_spec amp_options[] = {
    {"max-box-size", TW_OPTION_INT, "1048576",
     "largest box accepted, in bytes; a bigger one closes the connection"},
    {"max-pending", TW_OPTION_INT, "1024",
     "requests a connection may have waiting for answers before reading pauses"},
    {"tls-certificate", TW_OPTION_STRING, NULL,
     "PEM certificate (and chain) that answers StartTLS; without it StartTLS is unknown"},
    {"tls-key", TW_OPTION_STRING, NULL, "PEM private key of tls-certificate (default: that file)"},
    {NULL, 0, NULL, NULL},
};

static tw_factory *amp_make_factory(tw_reactor *r, const tw_options *opts, char *err,
                                    size_t errlen)
{
    long long max_box = tw_options_get_int(opts, "max-box-size", TW_AMP_DEFAULT_MAX_BOX_SIZE);
    long long max_pending = tw_options_get_int(opts, "max-pending", TW_AMP_DEFAULT_MAX_PENDING);
    if (max_box < 64 || max_box > (1LL << 40)) {
        snprintf(err, errlen, "max-box-size must be from 64 to 2^40 bytes, not %lld", max_box);
        return NULL;
    }
    if (max_pending < 1 || max_pending > 1000000) {
        snprintf(err, errlen, "max-pending must be from 1 to 1000000, not %lld", max_pending);
        return NULL;
    }
    tw_factory *f = tw_amp_factory_new();
    if (f == NULL) {
        snprintf(err, errlen, "out of memory creating the amp factory");
        return NULL;
    }
    tw_amp_factory_set_limits(f, (size_t)max_box, (size_t)max_pending);
    tw_amp_dispatcher *d = tw_amp_factory_dispatcher(f);
    if (tw_amp_register(d, &amp_echo_command, echo_responder, NULL) < 0 ||
        tw_amp_register(d, &amp_sum_command, sum_responder, NULL) < 0 ||
        tw_amp_register(d, &amp_divide_command, divide_responder, NULL) < 0 ||
        tw_amp_register(d, &amp_time_command, time_responder, NULL) < 0 ||
        tw_amp_register(d, &amp_delay_command, delay_responder, r) < 0) {
        tw_factory_free(f);
        snprintf(err, errlen, "out of memory registering the amp commands");
        return NULL;
    }
    const char *cert = tw_options_get(opts, "tls-certificate");
    if (cert != NULL) {
        /* Read now, before reactord drops its privileges. */
        tw_tls_context *tls = tw_tls_context_new(TW_TLS_SERVER, err, errlen);
        int rc = tls == NULL ? -ENOMEM
                             : tw_tls_context_use_certificate(tls, cert, tw_options_get(opts, "tls-key"),
                                                              NULL, err, errlen);
        if (rc == 0 && tw_amp_serve_start_tls(d, tls) < 0) {
            snprintf(err, errlen, "out of memory registering StartTLS");
            rc = -ENOMEM;
        }
        tw_tls_context_unref(tls); /* the dispatcher holds it */
        if (rc < 0) {
            tw_factory_free(f);
            return NULL;
        }
    } else if (tw_options_get(opts, "tls-key") != NULL) {
        tw_factory_free(f);
        snprintf(err, errlen, "tls-key needs tls-certificate");
        return NULL;
    }
    return f;
}

TW_PLUGIN(amp, .type = TW_PLUGIN_PROTOCOL, .name = "amp",
          .description = "AMP server (Twisted-compatible): Echo, Sum, Divide, Time, Delay",
          .options = amp_options,
          .ctx = &(const tw_plugin_protocol){.make_factory = amp_make_factory});
