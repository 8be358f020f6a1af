/* SPDX-License-Identifier: MIT */
/*
 * AMP protocol switches (Twisted's ProtocolSwitchCommand), both sides,
 * over string transports and a pump: what goes on the wire, which bytes
 * reach the protocol switched to, what is refused while a switch is
 * pending, and that a failed switch leaves the connection speaking AMP.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <twine.h>
#include <twine/testing.h>

static const tw_amp_command SWITCH = {
    .name = "Switch",
    .arguments = (const tw_amp_arg[]){{"name", TW_AMP_T_STRING, 0}, {NULL, NULL, 0}},
    .errors = (const tw_amp_error_spec[]){{"NO_SUCH", "no such protocol", 0}, {NULL, NULL, 0}},
    .protocol_switch = 1,
};

static const tw_amp_command SUM = {
    .name = "Sum",
    .arguments = (const tw_amp_arg[]){{"a", TW_AMP_T_INTEGER, 0},
                                      {"b", TW_AMP_T_INTEGER, 0},
                                      {NULL, NULL, 0}},
    .response = (const tw_amp_arg[]){{"total", TW_AMP_T_INTEGER, 0}, {NULL, NULL, 0}},
};

/* ------------------------------------------------------------ a recording protocol */

/* Records what it hears; echoes when asked to. */
typedef struct rec {
    tw_protocol base;
    char got[4096];
    size_t len;
    int made, lost, lost_code, echo;
} rec;

static int rec_destroyed;
static rec *last_rec;

static void rec_made(tw_protocol *p)
{
    ((rec *)p)->made++;
}

static void rec_data(tw_protocol *p, const void *data, size_t len)
{
    rec *r = (rec *)p;
    ck_assert_uint_le(r->len + len, sizeof r->got);
    memcpy(r->got + r->len, data, len);
    r->len += len;
    if (r->echo)
        tw_transport_write(p->transport, data, len);
}

static void rec_lost(tw_protocol *p, const tw_failure *reason)
{
    rec *r = (rec *)p;
    r->lost++;
    r->lost_code = tw_failure_code(reason);
}

static void rec_destroy(tw_protocol *p)
{
    rec_destroyed++;
    free(p);
}

static const tw_protocol_ops rec_ops = {
    .connection_made = rec_made,
    .data_received = rec_data,
    .connection_lost = rec_lost,
    .destroy = rec_destroy,
};

static rec *rec_new(int echo)
{
    rec *r = calloc(1, sizeof *r);
    ck_assert_ptr_nonnull(r);
    r->base.ops = &rec_ops;
    r->echo = echo;
    last_rec = r;
    return r;
}

static void assert_got(const rec *r, const void *want, size_t n)
{
    ck_assert_uint_eq(r->len, n);
    ck_assert_int_eq(memcmp(r->got, want, n), 0);
}

/* A factory of recording protocols, counting what it is told. */
typedef struct rec_factory {
    tw_factory base;
    int built, failed, lost, refuse, echo;
    int failed_code;
} rec_factory;

static tw_protocol *rf_build(tw_factory *f, const tw_address *peer)
{
    (void)peer;
    rec_factory *rf = (rec_factory *)f;
    if (rf->refuse)
        return NULL;
    rf->built++;
    return &rec_new(rf->echo)->base;
}

static void rf_failed(tw_factory *f, const tw_failure *reason)
{
    rec_factory *rf = (rec_factory *)f;
    rf->failed++;
    rf->failed_code = tw_failure_code(reason);
}

static void rf_lost(tw_factory *f, const tw_failure *reason)
{
    (void)reason;
    ((rec_factory *)f)->lost++;
}

static const tw_factory_ops rf_ops = {
    .build_protocol = rf_build,
    .client_connection_failed = rf_failed,
    .client_connection_lost = rf_lost,
};

static void rf_init(rec_factory *rf)
{
    memset(rf, 0, sizeof *rf);
    tw_factory_init(&rf->base, &rf_ops);
}

/* ------------------------------------------------------------ boxes */

/* The wire bytes of a box of NULL-terminated key/value string pairs. */
static size_t wire(char *buf, size_t cap, ...)
{
    tw_amp_box *b = tw_amp_box_new();
    va_list ap;
    va_start(ap, cap);
    const char *k;
    while ((k = va_arg(ap, const char *)) != NULL)
        ck_assert_int_eq(tw_amp_box_set_str(b, k, va_arg(ap, const char *)), 0);
    va_end(ap);
    size_t n = tw_amp_box_encode(b, buf, cap);
    ck_assert_uint_le(n, cap);
    tw_amp_box_free(b);
    return n;
}

static void assert_output(tw_string_transport *t, const void *want, size_t n)
{
    size_t len;
    const char *out = tw_string_transport_output(t, &len);
    ck_assert_uint_eq(len, n);
    ck_assert_int_eq(memcmp(out, want, n), 0);
}

/* ------------------------------------------------------------ responders */

static tw_deferred *pending_switch; /* a switch responder's deferred, fired by the test */
static const char *switch_mode;

static tw_deferred *switch_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)arg;
    const char *name;
    size_t len;
    ck_assert_int_eq(tw_amp_values_get_string(args, "name", &name, &len), 0);
    if (strcmp(name, "none") == 0)
        return tw_amp_fail("NO_SUCH", NULL);
    if (strcmp(switch_mode, "later") == 0) {
        pending_switch = tw_deferred_new(NULL, NULL);
        return tw_deferred_ref(pending_switch);
    }
    return tw_amp_switch_to(&rec_new(strcmp(name, "echo") == 0)->base);
}

static tw_deferred *sum_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)arg;
    int64_t a, b;
    tw_amp_values_get_integer(args, "a", &a);
    tw_amp_values_get_integer(args, "b", &b);
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_integer(v, "total", a + b);
    return tw_amp_succeed(v);
}

static tw_factory *server_factory(void)
{
    tw_factory *f = tw_amp_factory_new();
    ck_assert_ptr_nonnull(f);
    tw_amp_dispatcher *d = tw_amp_factory_dispatcher(f);
    ck_assert_int_eq(tw_amp_register(d, &SWITCH, switch_responder, NULL), 0);
    ck_assert_int_eq(tw_amp_register(d, &SUM, sum_responder, NULL), 0);
    return f;
}

static void reset(void)
{
    rec_destroyed = 0;
    last_rec = NULL;
    pending_switch = NULL;
    switch_mode = "now";
}

/* ------------------------------------------------------------ responder side */

/* The answer is the last AMP box; the bytes after the request in the same
 * read, and all later ones, reach the new protocol, and its writes go out. */
START_TEST(test_responder_switches_after_answer)
{
    reset();
    tw_factory *f = server_factory();
    tw_string_transport *t = tw_string_transport_open(NULL, f);
    tw_amp *amp = tw_amp_from_protocol(t->base.protocol);
    char in[256], want[64];
    size_t n = wire(in, sizeof in, "_command", "Switch", "_ask", "1", "name", "echo", NULL);
    memcpy(in + n, "hello", 5);
    tw_string_transport_feed(t, in, n + 5);
    size_t wn = wire(want, sizeof want, "_answer", "1", NULL);
    /* Twisted's _SwitchBox: the tag alone, then the echo of "hello". */
    size_t len;
    const char *out = tw_string_transport_output(t, &len);
    ck_assert_uint_eq(len, wn + 5);
    ck_assert_int_eq(memcmp(out, want, wn), 0);
    ck_assert_int_eq(memcmp(out + wn, "hello", 5), 0);
    rec *r = last_rec;
    ck_assert_ptr_eq(tw_amp_switched_protocol(amp), &r->base);
    ck_assert_ptr_eq(tw_amp_from_protocol(t->base.protocol), amp);
    ck_assert_int_eq(r->made, 1);
    ck_assert_ptr_eq(r->base.transport, &t->base);
    /* An AMP box now is just bytes for the new protocol. */
    size_t m = wire(in, sizeof in, "_command", "Sum", "_ask", "2", "a", "1", "b", "2", NULL);
    tw_string_transport_feed(t, in, m);
    ck_assert_uint_eq(r->len, 5 + m);
    ck_assert_int_eq(memcmp(r->got + 5, in, m), 0);
    /* AMP itself sends nothing more. */
    ck_assert_int_eq(tw_amp_send(amp, &SUM, NULL), TW_ESTATE);
    tw_string_transport_lose(t, -ECONNRESET);
    ck_assert_int_eq(r->lost, 1);
    ck_assert_int_eq(r->lost_code, -ECONNRESET);
    ck_assert_int_eq(rec_destroyed, 0);
    tw_string_transport_free(t);
    ck_assert_int_eq(rec_destroyed, 1);
    tw_factory_free(f);
}
END_TEST

/*
 * A responder that answers later: boxes that came meanwhile are still AMP,
 * and the partial box the parser holds when the answer goes out reaches
 * the new protocol as it came, whatever its split.
 */
START_TEST(test_responder_later_hands_over_partial_box)
{
    char sum[128];
    size_t sn = wire(sum, sizeof sum, "_command", "Sum", "_ask", "2", "a", "1", "b", "2", NULL);
    for (size_t cut = 0; cut < sn; cut++) {
        reset();
        switch_mode = "later";
        tw_factory *f = server_factory();
        tw_string_transport *t = tw_string_transport_open(NULL, f);
        char in[256], want[128];
        size_t n = wire(in, sizeof in, "_command", "Switch", "_ask", "1", "name", "x", NULL);
        tw_string_transport_feed(t, in, n);
        ck_assert_ptr_nonnull(pending_switch);
        /* A whole Sum is answered; then part of another waits in the parser. */
        tw_string_transport_feed(t, sum, sn);
        size_t wn = wire(want, sizeof want, "_answer", "2", "total", "3", NULL);
        assert_output(t, want, wn);
        tw_string_transport_clear_output(t);
        tw_string_transport_feed(t, sum, cut);
        ck_assert_ptr_null(last_rec);
        rec *r = rec_new(0);
        tw_deferred_callback(pending_switch, &r->base, tw_amp_protocol_free);
        tw_deferred_unref(pending_switch);
        wn = wire(want, sizeof want, "_answer", "1", NULL);
        assert_output(t, want, wn);
        ck_assert_int_eq(r->made, 1);
        assert_got(r, sum, cut);
        tw_string_transport_feed(t, sum + cut, sn - cut);
        assert_got(r, sum, sn);
        tw_string_transport_free(t);
        ck_assert_int_eq(rec_destroyed, 1);
        tw_factory_free(f);
    }
}
END_TEST

/* An error answer switches nothing: AMP goes on. */
START_TEST(test_responder_error_does_not_switch)
{
    reset();
    tw_factory *f = server_factory();
    tw_string_transport *t = tw_string_transport_open(NULL, f);
    tw_amp *amp = tw_amp_from_protocol(t->base.protocol);
    char in[256], want[256];
    size_t n = wire(in, sizeof in, "_command", "Switch", "_ask", "1", "name", "none", NULL);
    n += wire(in + n, sizeof in - n, "_command", "Sum", "_ask", "2", "a", "1", "b", "2", NULL);
    tw_string_transport_feed(t, in, n);
    size_t wn = wire(want, sizeof want, "_error", "1", "_error_code", "NO_SUCH",
                     "_error_description", "no such protocol", NULL);
    wn += wire(want + wn, sizeof want - wn, "_answer", "2", "total", "3", NULL);
    assert_output(t, want, wn);
    ck_assert_ptr_null(tw_amp_switched_protocol(amp));
    ck_assert_int_eq(t->closing, 0);
    tw_string_transport_free(t);
    tw_factory_free(f);
}
END_TEST

/* Without _ask there is no answer, so no switch: the protocol is destroyed. */
START_TEST(test_responder_without_ask_does_not_switch)
{
    reset();
    tw_factory *f = server_factory();
    tw_string_transport *t = tw_string_transport_open(NULL, f);
    tw_amp *amp = tw_amp_from_protocol(t->base.protocol);
    char in[256], want[64];
    size_t n = wire(in, sizeof in, "_command", "Switch", "name", "echo", NULL);
    n += wire(in + n, sizeof in - n, "_command", "Sum", "_ask", "2", "a", "1", "b", "2", NULL);
    tw_string_transport_feed(t, in, n);
    size_t wn = wire(want, sizeof want, "_answer", "2", "total", "3", NULL);
    assert_output(t, want, wn);
    ck_assert_ptr_null(tw_amp_switched_protocol(amp));
    ck_assert_int_eq(rec_destroyed, 1);
    tw_string_transport_free(t);
    tw_factory_free(f);
}
END_TEST

/* ------------------------------------------------------------ caller side */

static tw_amp_values *name_args(const char *name)
{
    tw_amp_values *v = tw_amp_values_new();
    ck_assert_int_eq(tw_amp_values_set_string(v, "name", name, strlen(name)), 0);
    return v;
}

/* The caller sends no AMP while its switch is pending; the answer hands the
 * connection to the factory's protocol, with the bytes after the answer. */
START_TEST(test_caller_switches_on_answer)
{
    reset();
    rec_factory rf;
    rf_init(&rf);
    rf.echo = 1;
    tw_factory *f = tw_amp_factory_new();
    tw_string_transport *t = tw_string_transport_open(NULL, f);
    tw_amp *amp = tw_amp_from_protocol(t->base.protocol);
    tw_amp_values *args = name_args("echo");
    tw_deferred *d = tw_amp_call_switch(amp, &SWITCH, args, &rf.base);
    char want[256], in[256];
    size_t wn = wire(want, sizeof want, "_command", "Switch", "_ask", "1", "name", "echo", NULL);
    assert_output(t, want, wn);
    ck_assert_uint_eq(rf.base.users, 1);
    /* Pending: every other AMP send is refused, as Twisted's ProtocolSwitched. */
    tw_amp_values *sargs = tw_amp_values_new();
    tw_amp_values_set_integer(sargs, "a", 2);
    tw_amp_values_set_integer(sargs, "b", 3);
    tw_deferred *other = tw_amp_call_remote(amp, &SUM, sargs);
    tw_failure *why;
    ck_assert_int_eq(tw_deferred_failure_result(other, &why), 0);
    ck_assert_int_eq(tw_failure_code(why), TW_ESTATE);
    tw_failure_unref(why);
    tw_deferred_unref(other);
    other = tw_amp_call_switch(amp, &SWITCH, args, &rf.base);
    ck_assert_int_eq(tw_deferred_failure_result(other, &why), 0);
    ck_assert_int_eq(tw_failure_code(why), TW_ESTATE);
    tw_failure_unref(why);
    tw_deferred_unref(other);
    ck_assert_int_eq(tw_amp_send(amp, &SUM, sargs), TW_ESTATE);
    tw_amp_values_free(sargs);
    /* A request from the peer meanwhile gets no answer. */
    size_t n = wire(in, sizeof in, "_command", "Nope", "_ask", "9", NULL);
    tw_string_transport_feed(t, in, n);
    assert_output(t, want, wn);
    ck_assert(!tw_deferred_has_result(d));
    n = wire(in, sizeof in, "_answer", "1", NULL);
    memcpy(in + n, "after", 5);
    tw_string_transport_clear_output(t);
    tw_string_transport_feed(t, in, n + 5);
    void *value;
    ck_assert_int_eq(tw_deferred_success_result(d, &value, NULL), 0);
    ck_assert_uint_eq(tw_amp_values_count(value), 0);
    ck_assert_int_eq(rf.built, 1);
    rec *r = last_rec;
    ck_assert_ptr_eq(tw_amp_switched_protocol(amp), &r->base);
    ck_assert_ptr_eq(r->base.factory, &rf.base);
    ck_assert_int_eq(r->made, 1);
    assert_got(r, "after", 5);
    ck_assert(tw_string_transport_output_is(t, "after"));
    tw_string_transport_feed(t, "more", 4);
    assert_got(r, "aftermore", 9);
    tw_string_transport_lose(t, TW_EDONE);
    ck_assert_int_eq(r->lost, 1);
    ck_assert_int_eq(rf.lost, 1);
    ck_assert_int_eq(rf.failed, 0);
    ck_assert_uint_eq(rf.base.users, 0);
    tw_deferred_unref(d);
    tw_amp_values_free(args);
    tw_string_transport_free(t);
    ck_assert_int_eq(rec_destroyed, 1);
    tw_factory_free(f);
}
END_TEST

/* An error answer: the call fails, the factory hears of it, AMP goes on. */
START_TEST(test_caller_error_answer_unlocks)
{
    reset();
    rec_factory rf;
    rf_init(&rf);
    tw_factory *f = tw_amp_factory_new();
    tw_string_transport *t = tw_string_transport_open(NULL, f);
    tw_amp *amp = tw_amp_from_protocol(t->base.protocol);
    tw_amp_values *args = name_args("none");
    tw_deferred *d = tw_amp_call_switch(amp, &SWITCH, args, &rf.base);
    char in[256], want[256];
    size_t n = wire(in, sizeof in, "_error", "1", "_error_code", "NO_SUCH",
                    "_error_description", "no such protocol", NULL);
    tw_string_transport_clear_output(t);
    tw_string_transport_feed(t, in, n);
    tw_failure *why;
    ck_assert_int_eq(tw_deferred_failure_result(d, &why), 0);
    const char *code;
    ck_assert_int_eq(tw_amp_error_info(why, &code, NULL), 0);
    ck_assert_str_eq(code, "NO_SUCH");
    tw_failure_unref(why);
    ck_assert_int_eq(rf.failed, 1);
    ck_assert_int_eq(rf.failed_code, TW_EREMOTE);
    ck_assert_int_eq(rf.built, 0);
    ck_assert_uint_eq(rf.base.users, 0);
    ck_assert_ptr_null(tw_amp_switched_protocol(amp));
    /* Unlocked: calls go out again, answers come back as AMP. */
    tw_amp_values *sargs = tw_amp_values_new();
    tw_amp_values_set_integer(sargs, "a", 2);
    tw_amp_values_set_integer(sargs, "b", 3);
    tw_deferred *s = tw_amp_call_remote(amp, &SUM, sargs);
    size_t wn = wire(want, sizeof want, "_command", "Sum", "_ask", "2", "a", "2", "b", "3", NULL);
    assert_output(t, want, wn);
    n = wire(in, sizeof in, "_answer", "2", "total", "5", NULL);
    tw_string_transport_feed(t, in, n);
    void *value;
    ck_assert_int_eq(tw_deferred_success_result(s, &value, NULL), 0);
    int64_t total;
    ck_assert_int_eq(tw_amp_values_get_integer(value, "total", &total), 0);
    ck_assert_int_eq(total, 5);
    tw_deferred_unref(s);
    tw_deferred_unref(d);
    tw_amp_values_free(args);
    tw_amp_values_free(sargs);
    tw_string_transport_free(t);
    tw_factory_free(f);
}
END_TEST

/* The connection goes before the answer: the call fails, the factory hears it. */
START_TEST(test_caller_lost_before_answer)
{
    reset();
    rec_factory rf;
    rf_init(&rf);
    tw_factory *f = tw_amp_factory_new();
    tw_string_transport *t = tw_string_transport_open(NULL, f);
    tw_amp *amp = tw_amp_from_protocol(t->base.protocol);
    tw_amp_values *args = name_args("echo");
    tw_deferred *d = tw_amp_call_switch(amp, &SWITCH, args, &rf.base);
    tw_string_transport_lose(t, -ECONNRESET);
    tw_failure *why;
    ck_assert_int_eq(tw_deferred_failure_result(d, &why), 0);
    ck_assert_int_eq(tw_failure_code(why), TW_ECONNLOST);
    tw_failure_unref(why);
    ck_assert_int_eq(rf.failed, 1);
    ck_assert_int_eq(rf.lost, 0);
    ck_assert_uint_eq(rf.base.users, 0);
    tw_deferred_unref(d);
    tw_amp_values_free(args);
    tw_string_transport_free(t);
    tw_factory_free(f);
}
END_TEST

/* A factory that refuses to build closes the connection and fails the call. */
START_TEST(test_caller_factory_refuses)
{
    reset();
    rec_factory rf;
    rf_init(&rf);
    rf.refuse = 1;
    tw_factory *f = tw_amp_factory_new();
    tw_string_transport *t = tw_string_transport_open(NULL, f);
    tw_amp *amp = tw_amp_from_protocol(t->base.protocol);
    tw_amp_values *args = name_args("echo");
    tw_deferred *d = tw_amp_call_switch(amp, &SWITCH, args, &rf.base);
    char in[64];
    size_t n = wire(in, sizeof in, "_answer", "1", NULL);
    tw_string_transport_feed(t, in, n);
    tw_failure *why;
    ck_assert_int_eq(tw_deferred_failure_result(d, &why), 0);
    ck_assert_int_eq(tw_failure_code(why), -ENOMEM);
    tw_failure_unref(why);
    ck_assert_int_eq(t->lose_calls, 1);
    ck_assert_int_eq(rf.failed, 1);
    ck_assert_uint_eq(rf.base.users, 0);
    tw_deferred_unref(d);
    tw_amp_values_free(args);
    tw_string_transport_free(t);
    tw_factory_free(f);
}
END_TEST

/* Misuse: a switch command through call_remote, a plain one through call_switch. */
START_TEST(test_switch_calls_need_a_switch_command)
{
    reset();
    rec_factory rf;
    rf_init(&rf);
    tw_factory *f = tw_amp_factory_new();
    tw_string_transport *t = tw_string_transport_open(NULL, f);
    tw_amp *amp = tw_amp_from_protocol(t->base.protocol);
    tw_amp_values *args = name_args("echo");
    tw_failure *why;
    tw_deferred *d = tw_amp_call_remote(amp, &SWITCH, args);
    ck_assert_int_eq(tw_deferred_failure_result(d, &why), 0);
    ck_assert_int_eq(tw_failure_code(why), -EINVAL);
    tw_failure_unref(why);
    tw_deferred_unref(d);
    d = tw_amp_call_switch(amp, &SUM, args, &rf.base);
    ck_assert_int_eq(tw_deferred_failure_result(d, &why), 0);
    ck_assert_int_eq(tw_failure_code(why), -EINVAL);
    tw_failure_unref(why);
    tw_deferred_unref(d);
    ck_assert_uint_eq(t->out_len, 0);
    ck_assert_uint_eq(rf.base.users, 0);
    tw_amp_values_free(args);
    tw_string_transport_free(t);
    tw_factory_free(f);
}
END_TEST

/* ------------------------------------------------------------ both sides */

/* A twine caller switches a twine responder to echo; every split point. */
START_TEST(test_pump_switch_to_echo)
{
    static const char payload[] = "bytes for the new protocol, \x00\x01 binary too";
    for (size_t chunk = 0; chunk <= 7; chunk += 7) {
        reset();
        rec_factory rf;
        rf_init(&rf);
        tw_factory *sf = server_factory();
        tw_factory *cf = tw_amp_factory_new();
        tw_pump pump;
        ck_assert_int_eq(tw_pump_connect(&pump, NULL, cf->ops->build_protocol(cf, NULL),
                                         sf->ops->build_protocol(sf, NULL)),
                         0);
        tw_amp *client = tw_amp_from_protocol(pump.client->base.protocol);
        tw_amp_values *args = name_args("echo");
        tw_deferred *d = tw_amp_call_switch(client, &SWITCH, args, &rf.base);
        tw_pump_flush(&pump, chunk, 1000);
        void *value;
        ck_assert_int_eq(tw_deferred_success_result(d, &value, NULL), 0);
        rec *mine = (rec *)tw_amp_switched_protocol(client);
        ck_assert_ptr_nonnull(mine);
        tw_transport_write(mine->base.transport, payload, sizeof payload - 1);
        tw_pump_flush(&pump, chunk ? 1 : 0, 10000);
        assert_got(mine, payload, sizeof payload - 1);
        tw_amp *server = tw_amp_from_protocol(pump.server->base.protocol);
        assert_got((rec *)tw_amp_switched_protocol(server), payload, sizeof payload - 1);
        tw_deferred_unref(d);
        tw_amp_values_free(args);
        tw_pump_free(&pump);
        ck_assert_int_eq(rec_destroyed, 2);
        ck_assert_int_eq(rf.lost, 1);
        tw_factory_free(cf);
        tw_factory_free(sf);
    }
}
END_TEST

static Suite *amp_switch_suite(void)
{
    Suite *s = suite_create("amp-switch");
    TCase *tc = tcase_create("switch");
    tcase_add_test(tc, test_responder_switches_after_answer);
    tcase_add_test(tc, test_responder_later_hands_over_partial_box);
    tcase_add_test(tc, test_responder_error_does_not_switch);
    tcase_add_test(tc, test_responder_without_ask_does_not_switch);
    tcase_add_test(tc, test_caller_switches_on_answer);
    tcase_add_test(tc, test_caller_error_answer_unlocks);
    tcase_add_test(tc, test_caller_lost_before_answer);
    tcase_add_test(tc, test_caller_factory_refuses);
    tcase_add_test(tc, test_switch_calls_need_a_switch_command);
    tcase_add_test(tc, test_pump_switch_to_echo);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(amp_switch_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
