/* SPDX-License-Identifier: MIT */
/*
 * AMP connections in one process: a twine AMP server driven byte by byte
 * from a raw socket (to see exactly what it answers, and when it closes),
 * and a twine client calling a twine server over a socketpair (call_remote,
 * errors, lost connections, pipelining), and the built-in amp module.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <twine.h>

#include "core/fd_internal.h"
#include "ampbytes.h"
#include "ampcall.h"
#include "recorder.h"
#include "testutil.h"

/* ------------------------------------------------------------ test commands */

static const tw_amp_command SUM = {
    .name = "Sum",
    .arguments = (const tw_amp_arg[]){{"a", TW_AMP_T_INTEGER, 0},
                                      {"b", TW_AMP_T_INTEGER, 0},
                                      {NULL, NULL, 0}},
    .response = (const tw_amp_arg[]){{"total", TW_AMP_T_INTEGER, 0}, {NULL, NULL, 0}},
};

static const tw_amp_command FAIL = {
    .name = "Fail",
    .arguments = (const tw_amp_arg[]){{"how", TW_AMP_T_STRING, 0}, {NULL, NULL, 0}},
    .response = (const tw_amp_arg[]){{"r", TW_AMP_T_INTEGER, 0}, {NULL, NULL, 0}},
    .errors = (const tw_amp_error_spec[]){{"BAD", "bad thing", 0},
                                          {"FATAL", "fatal thing", 1},
                                          {NULL, NULL, 0}},
};

static const tw_amp_command LATER = {
    .name = "Later",
    .arguments = (const tw_amp_arg[]){{"id", TW_AMP_T_INTEGER, 0}, {NULL, NULL, 0}},
    .response = (const tw_amp_arg[]){{"id", TW_AMP_T_INTEGER, 0}, {NULL, NULL, 0}},
};

static const tw_amp_command QUIT = {.name = "Quit"};

static const tw_amp_arg ALL_TYPES[] = {
    {"i", TW_AMP_T_INTEGER, 0},
    {"s", TW_AMP_T_STRING, 0},
    {"u", TW_AMP_T_UNICODE, 0},
    {"b", TW_AMP_T_BOOLEAN, 0},
    {"f", TW_AMP_T_FLOAT, 0},
    {"l", TW_AMP_LIST_OF(TW_AMP_T_FLOAT), 0},
    {"o", TW_AMP_T_INTEGER, 1},
    {NULL, NULL, 0},
};

static const tw_amp_command TYPES = {
    .name = "Types",
    .arguments = ALL_TYPES,
    .response = ALL_TYPES,
};

/* What the test server's responders saw. */
static int sums_answered;
static tw_deferred *later[64];
static int64_t later_ids[64];
static int nlater, later_cancelled;

static tw_deferred *sum_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)arg;
    int64_t a, b;
    ck_assert_int_eq(tw_amp_values_get_integer(args, "a", &a), 0);
    ck_assert_int_eq(tw_amp_values_get_integer(args, "b", &b), 0);
    sums_answered++;
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_integer(v, "total", a + b);
    return tw_amp_succeed(v);
}

static tw_deferred *fail_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)arg;
    const char *how;
    tw_amp_values_get_string(args, "how", &how, NULL);
    if (strcmp(how, "declared") == 0)
        return tw_amp_fail("BAD", "it went bad");
    if (strcmp(how, "default") == 0)
        return tw_amp_fail("BAD", NULL);
    if (strcmp(how, "fatal") == 0)
        return tw_amp_fail("FATAL", "the end");
    if (strcmp(how, "undeclared") == 0)
        return tw_amp_fail("OTHER", "not in the list");
    if (strcmp(how, "null") == 0)
        return NULL;
    if (strcmp(how, "badresponse") == 0)
        return tw_amp_succeed(tw_amp_values_new()); /* lacks the required r */
    return tw_deferred_fail(tw_failure_new(TW_EFAIL, "boom"));
}

static void later_cancel(tw_deferred *d, void *arg)
{
    (void)d;
    (void)arg;
    later_cancelled++;
}

static tw_deferred *later_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)arg;
    ck_assert_int_lt(nlater, 64);
    tw_deferred *d = tw_deferred_new(later_cancel, NULL);
    tw_amp_values_get_integer(args, "id", &later_ids[nlater]);
    later[nlater++] = tw_deferred_ref(d);
    return d;
}

static void values_free_fn(void *v)
{
    tw_amp_values_free(v);
}

static void later_fire_values(int i)
{
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_integer(v, "id", later_ids[i]);
    ck_assert_int_eq(tw_deferred_callback(later[i], v, values_free_fn), 0);
}

static tw_deferred *quit_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)args;
    (void)arg;
    tw_amp_lose_connection(amp);
    ck_assert(tw_amp_closed(amp));
    return tw_amp_succeed(NULL);
}

static tw_deferred *types_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)arg;
    tw_amp_values *v = tw_amp_values_new();
    for (size_t i = 0; i < tw_amp_values_count(args); i++) {
        const char *name;
        const tw_amp_value *x;
        tw_amp_values_entry(args, i, &name, &x);
        tw_amp_values_set(v, name, x);
    }
    return tw_amp_succeed(v);
}

/* ------------------------------------------------------------ fixture */

static tw_reactor *R;
static tw_factory *SERVER;
static tw_factory *MODULE; /* the amp module's factory, when a test made one */
static tw_amp *server_amp; /* the last connection the server made */
static char logbuf[8192];
static size_t loglen;

static void capture_log(tw_log_level level, const char *sub, const char *msg, void *arg)
{
    (void)level;
    (void)arg;
    int n = snprintf(logbuf + loglen, sizeof logbuf - loglen, "%s: %s\n", sub, msg);
    if (n > 0 && (size_t)n < sizeof logbuf - loglen)
        loglen += (size_t)n;
}

static void server_connected(tw_amp *amp, void *arg)
{
    (void)arg;
    server_amp = amp;
}

static void server_lost(tw_amp *amp, const tw_failure *reason, void *arg)
{
    (void)reason;
    (void)arg;
    if (server_amp == amp)
        server_amp = NULL;
}

static void setup(void)
{
    R = tw_reactor_new();
    SERVER = tw_amp_factory_new();
    tw_amp_dispatcher *d = tw_amp_factory_dispatcher(SERVER);
    ck_assert_int_eq(tw_amp_register(d, &SUM, sum_responder, NULL), 0);
    ck_assert_int_eq(tw_amp_register(d, &FAIL, fail_responder, NULL), 0);
    ck_assert_int_eq(tw_amp_register(d, &LATER, later_responder, NULL), 0);
    ck_assert_int_eq(tw_amp_register(d, &TYPES, types_responder, NULL), 0);
    ck_assert_int_eq(tw_amp_register(d, &QUIT, quit_responder, NULL), 0);
    tw_amp_factory_set_callbacks(SERVER, server_connected, server_lost, NULL);
    sums_answered = nlater = later_cancelled = 0;
    server_amp = NULL;
    loglen = 0;
    logbuf[0] = '\0';
    tw_log_set_handler(capture_log, NULL);
}

static void teardown(void)
{
    tw_reactor_free(R);
    for (int i = 0; i < nlater; i++)
        tw_deferred_unref(later[i]);
    nlater = 0;
    tw_factory_free(SERVER);
    tw_factory_free(MODULE);
    MODULE = NULL;
    tw_log_set_handler(NULL, NULL);
}

/* ------------------------------------------------------------ a raw peer */

typedef struct {
    int fd;
    tw_amp_parser *parser;
    tw_amp_box *queue[128];
    size_t head, n;
    int eof;
} raw;

static int raw_push(tw_amp_box *box, void *arg)
{
    raw *rw = arg;
    ck_assert_uint_lt(rw->n, 128);
    rw->queue[(rw->head + rw->n++) % 128] = box;
    return 0;
}

/* Connect a raw socket to a new connection of @p f. */
static void raw_open(raw *rw, tw_factory *f)
{
    memset(rw, 0, sizeof *rw);
    int sv[2];
    ck_assert_int_eq(tw__socketpair(AF_UNIX, SOCK_STREAM, 0, sv, O_CLOEXEC), 0);
    ck_assert_int_eq(tw_transport_adopt(R, sv[0], f), 0);
    rw->fd = sv[1];
    rw->parser = tw_amp_parser_new(0);
}

static void raw_pump(raw *rw)
{
    tw_reactor_iterate(R, 0.002);
    char buf[65536];
    for (;;) {
        ssize_t n = recv(rw->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0)
            rw->eof = 1;
        if (n <= 0)
            break;
        ck_assert_int_eq(tw_amp_parser_feed(rw->parser, buf, (size_t)n, raw_push, rw, NULL), 0);
    }
}

/* The next box the twine side sent, or NULL after EOF or @p ms. */
static tw_amp_box *raw_next(raw *rw, int ms)
{
    long long deadline = tu_now_ms() + ms;
    while (rw->n == 0 && !rw->eof && tu_now_ms() < deadline)
        raw_pump(rw);
    if (rw->n == 0)
        return NULL;
    tw_amp_box *b = rw->queue[rw->head];
    rw->head = (rw->head + 1) % 128;
    rw->n--;
    return b;
}

/* @return 1 once the twine side closed the connection (within @p ms). */
static int raw_closed(raw *rw, int ms)
{
    long long deadline = tu_now_ms() + ms;
    while (!rw->eof && tu_now_ms() < deadline)
        raw_pump(rw);
    return rw->eof;
}

static void raw_send_bytes(raw *rw, const void *data, size_t len)
{
    const char *p = data;
    long long deadline = tu_now_ms() + 5000;
    while (len > 0) {
        ssize_t n = send(rw->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else {
            ck_assert_msg(errno == EAGAIN && tu_now_ms() < deadline, "send failed");
            raw_pump(rw);
        }
    }
}

static void raw_send(raw *rw, const tw_amp_box *b)
{
    size_t n = tw_amp_box_encoded_size(b);
    char *buf = malloc(n);
    tw_amp_box_encode(b, buf, n);
    raw_send_bytes(rw, buf, n);
    free(buf);
}

/* Ends the arguments of raw_send_kv(): a typed null pointer, as va_arg reads it. */
#define KV_END ((const char *)NULL)

/* Send a box given as key, value, key, value, ..., KV_END. */
static void raw_send_kv(raw *rw, const char *key, ...)
{
    tw_amp_box *b = tw_amp_box_new();
    va_list ap;
    va_start(ap, key);
    for (const char *k = key; k != NULL; k = va_arg(ap, const char *))
        ck_assert_int_eq(tw_amp_box_set_str(b, k, va_arg(ap, const char *)), 0);
    va_end(ap);
    raw_send(rw, b);
    tw_amp_box_free(b);
}

static void raw_close(raw *rw)
{
    close(rw->fd);
    while (rw->n > 0)
        tw_amp_box_free(raw_next(rw, 0));
    tw_amp_parser_free(rw->parser);
    spin_ms(R, 20); /* let the twine side see the EOF */
}

static void assert_value(const tw_amp_box *b, const char *key, const char *want)
{
    ck_assert_ptr_nonnull(b);
    size_t len;
    const char *v = tw_amp_box_get(b, key, &len);
    ck_assert_msg(v != NULL, "key %s is missing", key);
    ck_assert_msg(len == strlen(want) && memcmp(v, want, len) == 0, "%s is '%s', not '%s'", key,
                  v, want);
}

/* Expect an _error box for tag @p tag, then free it. */
static void expect_error(raw *rw, const char *tag, const char *code, const char *desc)
{
    tw_amp_box *b = raw_next(rw, 2000);
    ck_assert_msg(b != NULL, "no error box arrived");
    ck_assert_uint_eq(tw_amp_box_count(b), 3);
    assert_value(b, "_error", tag);
    assert_value(b, "_error_code", code);
    assert_value(b, "_error_description", desc);
    tw_amp_box_free(b);
}

static void expect_sum(raw *rw, const char *tag, const char *total)
{
    tw_amp_box *b = raw_next(rw, 2000);
    ck_assert_msg(b != NULL, "no answer arrived");
    ck_assert_uint_eq(tw_amp_box_count(b), 2);
    assert_value(b, "_answer", tag);
    assert_value(b, "total", total);
    tw_amp_box_free(b);
}

/* ------------------------------------------------------------ server side */

START_TEST(test_a_request_is_answered_with_twisteds_bytes_and_its_ask_tag)
{
    raw rw;
    raw_open(&rw, SERVER);
    raw_send_bytes(&rw, SUM_REQUEST, sizeof SUM_REQUEST);
    tw_amp_box *b = raw_next(&rw, 2000);
    ck_assert_ptr_nonnull(b);
    unsigned char buf[64];
    ck_assert_uint_eq(tw_amp_box_encode(b, buf, sizeof buf), sizeof SUM_ANSWER);
    ck_assert(memcmp(buf, SUM_ANSWER, sizeof SUM_ANSWER) == 0);
    tw_amp_box_free(b);
    raw_close(&rw);
}
END_TEST

START_TEST(test_keys_in_any_order_are_accepted)
{
    raw rw;
    raw_open(&rw, SERVER);
    static const unsigned char unsorted[] = {
        0x00, 0x01, 'b', 0x00, 0x01, '2',
        0x00, 0x08, '_', 'c', 'o', 'm', 'm', 'a', 'n', 'd', 0x00, 0x03, 'S', 'u', 'm',
        0x00, 0x01, 'a', 0x00, 0x01, '1',
        0x00, 0x04, '_', 'a', 's', 'k', 0x00, 0x02, 'z', 'z',
        0x00, 0x00,
    };
    raw_send_bytes(&rw, unsorted, sizeof unsorted);
    expect_sum(&rw, "zz", "3");
    raw_close(&rw);
}
END_TEST

START_TEST(test_a_request_without_ask_is_run_and_gets_no_answer)
{
    raw rw;
    raw_open(&rw, SERVER);
    raw_send_kv(&rw, "_command", "Sum", "a", "1", "b", "1", KV_END);
    raw_send_kv(&rw, "_command", "Sum", "_ask", "5", "a", "2", "b", "2", KV_END);
    /* The first thing back answers the second request. */
    expect_sum(&rw, "5", "4");
    ck_assert_int_eq(sums_answered, 2);
    ck_assert_ptr_null(raw_next(&rw, 50));
    raw_close(&rw);
}
END_TEST

START_TEST(test_an_unknown_command_gets_unhandled_and_the_connection_stays_open)
{
    raw rw;
    raw_open(&rw, SERVER);
    raw_send_kv(&rw, "_command", "Nope", "_ask", "1", KV_END);
    expect_error(&rw, "1", "UNHANDLED", "Unhandled Command: b'Nope'");
    raw_send_kv(&rw, "_command", "Sum", "_ask", "2", "a", "1", "b", "2", KV_END);
    expect_sum(&rw, "2", "3");
    ck_assert(!rw.eof);
    raw_close(&rw);
}
END_TEST

START_TEST(test_unhandled_shows_the_name_as_python_repr_of_bytes)
{
    /* repr(b'it\'s "x"\n\xff\\') == b'it\'s "x"\n\xff\\' and
     * repr(b"it's\t") == b"it's\t" */
    raw rw;
    raw_open(&rw, SERVER);
    raw_send_kv(&rw, "_command", "it's \"x\"\n\xff\\", "_ask", "1", KV_END);
    expect_error(&rw, "1", "UNHANDLED", "Unhandled Command: b'it\\'s \"x\"\\n\\xff\\\\'");
    raw_send_kv(&rw, "_command", "it's\t", "_ask", "2", KV_END);
    expect_error(&rw, "2", "UNHANDLED", "Unhandled Command: b\"it's\\t\"");
    raw_close(&rw);
}
END_TEST

START_TEST(test_a_declared_error_gets_its_code_and_description_and_the_connection_stays_open)
{
    raw rw;
    raw_open(&rw, SERVER);
    raw_send_kv(&rw, "_command", "Fail", "_ask", "1", "how", "declared", KV_END);
    expect_error(&rw, "1", "BAD", "it went bad");
    raw_send_kv(&rw, "_command", "Fail", "_ask", "2", "how", "default", KV_END);
    expect_error(&rw, "2", "BAD", "bad thing");
    raw_send_kv(&rw, "_command", "Sum", "_ask", "3", "a", "1", "b", "2", KV_END);
    expect_sum(&rw, "3", "3");
    raw_close(&rw);
}
END_TEST

START_TEST(test_a_fatal_declared_error_is_answered_then_the_connection_closes)
{
    raw rw;
    raw_open(&rw, SERVER);
    raw_send_kv(&rw, "_command", "Fail", "_ask", "1", "how", "fatal", KV_END);
    expect_error(&rw, "1", "FATAL", "the end");
    ck_assert(raw_closed(&rw, 2000));
    raw_close(&rw);
}
END_TEST

START_TEST(test_arguments_that_do_not_decode_get_unknown_then_the_connection_closes)
{
    raw rw;
    raw_open(&rw, SERVER);
    raw_send_kv(&rw, "_command", "Sum", "_ask", "1", "a", "notanumber", "b", "2", KV_END);
    expect_error(&rw, "1", "UNKNOWN", "Unknown Error");
    ck_assert(raw_closed(&rw, 2000));
    ck_assert_int_eq(sums_answered, 0);
    ck_assert_ptr_nonnull(strstr(logbuf, "amp: Sum from"));
    ck_assert_ptr_nonnull(strstr(logbuf, "'a' is not a valid Integer"));
    raw_close(&rw);
}
END_TEST

START_TEST(test_a_missing_argument_gets_unknown_then_the_connection_closes)
{
    raw rw;
    raw_open(&rw, SERVER);
    raw_send_kv(&rw, "_command", "Sum", "_ask", "1", "a", "1", KV_END);
    expect_error(&rw, "1", "UNKNOWN", "Unknown Error");
    ck_assert(raw_closed(&rw, 2000));
    ck_assert_ptr_nonnull(strstr(logbuf, "missing 'b'"));
    raw_close(&rw);
}
END_TEST

START_TEST(test_an_amp_error_the_command_does_not_declare_passes_through_as_in_twisted)
{
    /* Twisted's formatError answers any RemoteAmpError with its own code. */
    raw rw;
    raw_open(&rw, SERVER);
    raw_send_kv(&rw, "_command", "Fail", "_ask", "1", "how", "undeclared", KV_END);
    expect_error(&rw, "1", "OTHER", "not in the list");
    raw_send_kv(&rw, "_command", "Sum", "_ask", "2", "a", "1", "b", "2", KV_END);
    expect_sum(&rw, "2", "3");
    raw_close(&rw);
}
END_TEST

START_TEST(test_a_failure_that_is_not_an_amp_error_gets_unknown_then_the_connection_closes)
{
    const char *hows[] = {"plain", "null"};
    for (int i = 0; i < 2; i++) {
        raw rw;
        raw_open(&rw, SERVER);
        raw_send_kv(&rw, "_command", "Fail", "_ask", "7", "how", hows[i], KV_END);
        expect_error(&rw, "7", "UNKNOWN", "Unknown Error");
        ck_assert_msg(raw_closed(&rw, 2000), "%s did not close", hows[i]);
        raw_close(&rw);
    }
    ck_assert_ptr_nonnull(strstr(logbuf, "boom"));
}
END_TEST

START_TEST(test_a_response_that_does_not_encode_gets_unknown_then_the_connection_closes)
{
    raw rw;
    raw_open(&rw, SERVER);
    raw_send_kv(&rw, "_command", "Fail", "_ask", "1", "how", "badresponse", KV_END);
    expect_error(&rw, "1", "UNKNOWN", "Unknown Error");
    ck_assert(raw_closed(&rw, 2000));
    ck_assert_ptr_nonnull(strstr(logbuf, "missing a value for 'r'"));
    raw_close(&rw);
}
END_TEST

START_TEST(test_a_failing_request_without_ask_closes_the_connection_without_an_answer)
{
    raw rw;
    raw_open(&rw, SERVER);
    raw_send_kv(&rw, "_command", "Fail", "how", "declared", KV_END);
    ck_assert(raw_closed(&rw, 2000));
    ck_assert_uint_eq(rw.n, 0);
    raw_close(&rw);

    raw_open(&rw, SERVER);
    raw_send_kv(&rw, "_command", "Nope", KV_END);
    ck_assert(raw_closed(&rw, 2000));
    ck_assert_uint_eq(rw.n, 0);
    ck_assert_ptr_nonnull(strstr(logbuf, "b'Nope' sent without _ask"));
    raw_close(&rw);
}
END_TEST

START_TEST(test_a_key_of_256_bytes_closes_the_connection_with_a_logged_reason)
{
    raw rw;
    raw_open(&rw, SERVER);
    unsigned char bad[2 + 256];
    bad[0] = 0x01;
    bad[1] = 0x00;
    memset(bad + 2, 'k', 256);
    raw_send_bytes(&rw, bad, sizeof bad);
    ck_assert(raw_closed(&rw, 2000));
    ck_assert_uint_eq(rw.n, 0);
    ck_assert_ptr_nonnull(strstr(logbuf, "amp: closing the connection with"));
    ck_assert_ptr_nonnull(strstr(logbuf, "a key of 256 bytes exceeds the limit of 255"));
    raw_close(&rw);
}
END_TEST

START_TEST(test_a_box_without_command_answer_or_error_closes_with_a_logged_reason)
{
    raw rw;
    raw_open(&rw, SERVER);
    raw_send_kv(&rw, "_ask", "1", "a", "1", KV_END);
    ck_assert(raw_closed(&rw, 2000));
    ck_assert_uint_eq(rw.n, 0);
    ck_assert_ptr_nonnull(strstr(logbuf, "none of _command, _answer or _error"));
    raw_close(&rw);
}
END_TEST

START_TEST(test_an_empty_box_closes_the_connection)
{
    raw rw;
    raw_open(&rw, SERVER);
    raw_send_bytes(&rw, "\0\0", 2);
    ck_assert(raw_closed(&rw, 2000));
    ck_assert_ptr_nonnull(strstr(logbuf, "a box with 0 keys"));
    raw_close(&rw);
}
END_TEST

START_TEST(test_a_box_over_the_size_limit_closes_the_connection)
{
    ck_assert_int_eq(tw_amp_factory_set_limits(SERVER, 128, 0), 0);
    raw rw;
    raw_open(&rw, SERVER);
    raw_send_bytes(&rw, "\x00\x01v\x01\x00", 5); /* a 256-byte value */
    ck_assert(raw_closed(&rw, 2000));
    ck_assert_ptr_nonnull(strstr(logbuf, "exceeds the limit of 128 bytes"));
    raw_close(&rw);
}
END_TEST

START_TEST(test_an_answer_or_error_for_a_call_never_made_closes_the_connection)
{
    raw rw;
    raw_open(&rw, SERVER);
    raw_send_kv(&rw, "_answer", "99", "total", "1", KV_END);
    ck_assert(raw_closed(&rw, 2000));
    raw_close(&rw);
    raw_open(&rw, SERVER);
    raw_send_kv(&rw, "_error", "99", "_error_code", "X", "_error_description", "y", KV_END);
    ck_assert(raw_closed(&rw, 2000));
    ck_assert_ptr_nonnull(strstr(logbuf, "an error for a call never made"));
    raw_close(&rw);
}
END_TEST

START_TEST(test_boxes_after_a_closing_one_in_the_same_read_are_not_dispatched)
{
    raw rw;
    raw_open(&rw, SERVER);
    tw_amp_box *bad = tw_amp_box_new(), *good = tw_amp_box_new();
    tw_amp_box_set_str(bad, "_command", "Sum");
    tw_amp_box_set_str(bad, "_ask", "1");
    tw_amp_box_set_str(bad, "a", "x");
    tw_amp_box_set_str(bad, "b", "1");
    tw_amp_box_set_str(good, "_command", "Sum");
    tw_amp_box_set_str(good, "_ask", "2");
    tw_amp_box_set_str(good, "a", "1");
    tw_amp_box_set_str(good, "b", "1");
    char buf[256];
    size_t n = tw_amp_box_encode(bad, buf, sizeof buf);
    n += tw_amp_box_encode(good, buf + n, sizeof buf - n);
    raw_send_bytes(&rw, buf, n);
    expect_error(&rw, "1", "UNKNOWN", "Unknown Error");
    ck_assert(raw_closed(&rw, 2000));
    ck_assert_uint_eq(rw.n, 0);
    ck_assert_int_eq(sums_answered, 0);
    tw_amp_box_free(bad);
    tw_amp_box_free(good);
    raw_close(&rw);
}
END_TEST

START_TEST(test_closing_from_a_responder_still_sends_the_answers_before_it)
{
    /* Three requests in one read: the answers are gathered, and the close
     * from the second responder writes the first answer before closing. */
    raw rw;
    raw_open(&rw, SERVER);
    tw_amp_box *boxes[3];
    const char *cmds[] = {"Sum", "Quit", "Sum"}, *tags[] = {"1", "2", "3"};
    char buf[512];
    size_t n = 0;
    for (int i = 0; i < 3; i++) {
        boxes[i] = tw_amp_box_new();
        tw_amp_box_set_str(boxes[i], "_command", cmds[i]);
        tw_amp_box_set_str(boxes[i], "_ask", tags[i]);
        tw_amp_box_set_str(boxes[i], "a", "1");
        tw_amp_box_set_str(boxes[i], "b", "1");
        n += tw_amp_box_encode(boxes[i], buf + n, sizeof buf - n);
        tw_amp_box_free(boxes[i]);
    }
    raw_send_bytes(&rw, buf, n);
    expect_sum(&rw, "1", "2");
    ck_assert(raw_closed(&rw, 2000));
    ck_assert_uint_eq(rw.n, 0);
    ck_assert_int_eq(sums_answered, 1);
    raw_close(&rw);
}
END_TEST

START_TEST(test_late_answers_go_out_as_responders_fire_matched_by_their_tags)
{
    raw rw;
    raw_open(&rw, SERVER);
    raw_send_kv(&rw, "_command", "Later", "_ask", "a", "id", "10", KV_END);
    raw_send_kv(&rw, "_command", "Later", "_ask", "b", "id", "20", KV_END);
    raw_send_kv(&rw, "_command", "Later", "_ask", "c", "id", "30", KV_END);
    for (int i = 0; i < 100 && nlater < 3; i++)
        raw_pump(&rw);
    ck_assert_int_eq(nlater, 3);
    ck_assert_ptr_null(raw_next(&rw, 20));
    const char *tags[] = {"a", "b", "c"}, *ids[] = {"10", "20", "30"};
    int order[] = {2, 0, 1};
    for (int k = 0; k < 3; k++) {
        later_fire_values(order[k]);
        tw_amp_box *b = raw_next(&rw, 2000);
        assert_value(b, "_answer", tags[order[k]]);
        assert_value(b, "id", ids[order[k]]);
        tw_amp_box_free(b);
    }
    raw_close(&rw);
}
END_TEST

START_TEST(test_losing_the_connection_cancels_responders_still_running)
{
    raw rw;
    raw_open(&rw, SERVER);
    raw_send_kv(&rw, "_command", "Later", "_ask", "1", "id", "1", KV_END);
    raw_send_kv(&rw, "_command", "Later", "_ask", "2", "id", "2", KV_END);
    for (int i = 0; i < 100 && nlater < 2; i++)
        raw_pump(&rw);
    ck_assert_int_eq(nlater, 2);
    later_fire_values(0);
    raw_close(&rw);
    ck_assert_ptr_null(server_amp);
    ck_assert_int_eq(later_cancelled, 1);
    ck_assert(tw_deferred_called(later[1]));
}
END_TEST

START_TEST(test_reading_pauses_while_too_many_requests_await_their_responders)
{
    ck_assert_int_eq(tw_amp_factory_set_limits(SERVER, 0, 2), 0);
    raw rw;
    raw_open(&rw, SERVER);
    raw_send_kv(&rw, "_command", "Later", "_ask", "1", "id", "1", KV_END);
    raw_send_kv(&rw, "_command", "Later", "_ask", "2", "id", "2", KV_END);
    for (int i = 0; i < 100 && nlater < 2; i++)
        raw_pump(&rw);
    ck_assert_int_eq(nlater, 2);
    raw_send_kv(&rw, "_command", "Later", "_ask", "3", "id", "3", KV_END);
    for (int i = 0; i < 20; i++)
        raw_pump(&rw);
    ck_assert_int_eq(nlater, 2); /* not read while two wait */
    later_fire_values(0);
    tw_amp_box_free(raw_next(&rw, 2000));
    for (int i = 0; i < 100 && nlater < 3; i++)
        raw_pump(&rw);
    ck_assert_int_eq(nlater, 3);
    raw_close(&rw);
}
END_TEST

START_TEST(test_pending_requests_are_counted_per_box_not_per_read)
{
    ck_assert_int_eq(tw_amp_factory_set_limits(SERVER, 0, 2), 0);
    raw rw;
    raw_open(&rw, SERVER);
    /* Five requests sent before the reactor reads: one read holds them all. */
    const char *ids[] = {"1", "2", "3", "4", "5"};
    for (int i = 0; i < 5; i++)
        raw_send_kv(&rw, "_command", "Later", "_ask", ids[i], "id", ids[i], KV_END);
    for (int i = 0; i < 100 && nlater < 2; i++)
        raw_pump(&rw);
    for (int i = 0; i < 20; i++)
        raw_pump(&rw);
    ck_assert_int_eq(nlater, 2); /* the other three wait, unparsed */
    later_fire_values(0);
    tw_amp_box_free(raw_next(&rw, 2000));
    for (int i = 0; i < 20; i++)
        raw_pump(&rw);
    ck_assert_int_eq(nlater, 3); /* one answered, one more let in */
    later_fire_values(1);
    later_fire_values(2);
    tw_amp_box_free(raw_next(&rw, 2000));
    tw_amp_box_free(raw_next(&rw, 2000));
    for (int i = 0; i < 100 && nlater < 5; i++)
        raw_pump(&rw);
    ck_assert_int_eq(nlater, 5);
    raw_close(&rw);
}
END_TEST

/* ------------------------------------------------------------ client side */

static void on_box(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    tu_amp_outcome *o = arg;
    tw_free_fn fn;
    o->box = tw_result_take_value(res, &fn);
    o->done = 1;
}

static tw_amp *client_amp;

static void client_connected(tw_amp *amp, void *arg)
{
    (void)arg;
    client_amp = amp;
}

static void client_lost(tw_amp *amp, const tw_failure *reason, void *arg)
{
    (void)reason;
    (void)arg;
    if (client_amp == amp)
        client_amp = NULL;
}

/* Connect a twine client to @p server over a socketpair; @return the client factory. */
static tw_factory *client_pair(tw_factory *server)
{
    tw_factory *client = tw_amp_factory_new();
    tw_amp_factory_set_callbacks(client, client_connected, client_lost, NULL);
    int sv[2];
    ck_assert_int_eq(tw__socketpair(AF_UNIX, SOCK_STREAM, 0, sv, O_CLOEXEC), 0);
    ck_assert_int_eq(tw_transport_adopt(R, sv[0], server), 0);
    client_amp = NULL;
    ck_assert_int_eq(tw_transport_adopt(R, sv[1], client), 0);
    ck_assert_ptr_nonnull(client_amp);
    return client;
}

/* Call and wait for the answer. */
static void call(const tw_amp_command *cmd, tw_amp_values *args, tu_amp_outcome *o)
{
    tu_amp_call(R, client_amp, cmd, args, o, 3000);
}

static tw_amp_values *sum_args(int64_t a, int64_t b)
{
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_integer(v, "a", a);
    tw_amp_values_set_integer(v, "b", b);
    return v;
}

static tw_amp_values *how_args(const char *text)
{
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_string(v, "how", text, strlen(text));
    return v;
}

/* Close the client and free its factory once the connection is gone. */
static void client_done(tw_factory *client)
{
    if (client_amp != NULL)
        tw_amp_lose_connection(client_amp);
    long long deadline = tu_now_ms() + 2000;
    while (client_amp != NULL && tu_now_ms() < deadline)
        tw_reactor_iterate(R, 0.005);
    ck_assert_ptr_null(client_amp);
    spin_ms(R, 10);
    tw_factory_free(client);
}

START_TEST(test_call_remote_fires_with_the_typed_answer)
{
    tw_factory *client = client_pair(SERVER);
    tu_amp_outcome o;
    call(&SUM, sum_args(13, 81), &o);
    ck_assert(!o.failed);
    int64_t total;
    ck_assert_int_eq(tw_amp_values_get_integer(o.values, "total", &total), 0);
    ck_assert_int_eq(total, 94);
    ck_assert_uint_eq(tw_amp_outstanding(client_amp), 0);
    tu_amp_outcome_free(&o);
    client_done(client);
}
END_TEST

START_TEST(test_call_remote_fails_with_the_remote_code_and_description)
{
    tw_factory *client = client_pair(SERVER);
    tu_amp_outcome o;
    call(&FAIL, how_args("declared"), &o);
    ck_assert(o.failed);
    ck_assert_int_eq(o.code, TW_EREMOTE);
    ck_assert_str_eq(o.remote_code, "BAD");
    ck_assert_str_eq(o.remote_desc, "it went bad");
    tu_amp_outcome_free(&o);
    /* The connection is still usable. */
    call(&SUM, sum_args(1, 2), &o);
    ck_assert(!o.failed);
    tu_amp_outcome_free(&o);
    client_done(client);
}
END_TEST

START_TEST(test_calling_an_unknown_command_fails_with_unhandled)
{
    static const tw_amp_command nope = {.name = "Nope"};
    tw_factory *client = client_pair(SERVER);
    tu_amp_outcome o;
    call(&nope, NULL, &o);
    ck_assert(o.failed);
    ck_assert_str_eq(o.remote_code, "UNHANDLED");
    ck_assert_str_eq(o.remote_desc, "Unhandled Command: b'Nope'");
    tu_amp_outcome_free(&o);
    client_done(client);
}
END_TEST

START_TEST(test_every_type_round_trips_through_a_call)
{
    tw_factory *client = client_pair(SERVER);
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_integer(v, "i", INT64_MIN);
    tw_amp_values_set_string(v, "s", "\0\xff", 2);
    tw_amp_values_set_unicode(v, "u", "\xe2\x98\xba");
    tw_amp_values_set_boolean(v, "b", 0);
    tw_amp_values_set_float(v, "f", -1e-300);
    tw_amp_value fl[] = {{.kind = TW_AMP_FLOAT, .u.number = INFINITY},
                         {.kind = TW_AMP_FLOAT, .u.number = 0.1}};
    tw_amp_value l = {.kind = TW_AMP_LIST, .u.list = {fl, 2}};
    tw_amp_values_set(v, "l", &l);
    tu_amp_outcome o;
    call(&TYPES, v, &o);
    ck_assert_msg(!o.failed, "%s", o.message);
    int64_t i;
    tw_amp_values_get_integer(o.values, "i", &i);
    ck_assert(i == INT64_MIN);
    const char *s;
    size_t len;
    tw_amp_values_get_string(o.values, "s", &s, &len);
    ck_assert(len == 2 && s[0] == '\0' && s[1] == '\xff');
    tw_amp_values_get_string(o.values, "u", &s, &len);
    ck_assert_str_eq(s, "\xe2\x98\xba");
    int b = 1;
    tw_amp_values_get_boolean(o.values, "b", &b);
    ck_assert_int_eq(b, 0);
    double f;
    tw_amp_values_get_float(o.values, "f", &f);
    ck_assert(f == -1e-300);
    const tw_amp_value *back = tw_amp_values_get(o.values, "l");
    ck_assert_uint_eq(back->u.list.count, 2);
    ck_assert(back->u.list.items[0].u.number == INFINITY);
    ck_assert(back->u.list.items[1].u.number == 0.1);
    ck_assert_ptr_null(tw_amp_values_get(o.values, "o"));
    tu_amp_outcome_free(&o);
    client_done(client);
}
END_TEST

static tu_amp_outcome lost_outcome;
static int lost_late_failed_at_once;

static void call_again_after_loss(tw_deferred *d, tw_result *res, void *arg)
{
    tu_amp_on_failure(d, res, arg);
    /* From inside the errback: calling again fails at once. */
    tu_amp_outcome again = {0};
    tw_deferred *d2 = tw_amp_call_remote(client_amp, &SUM, NULL);
    tw_deferred_add_callbacks(d2, tu_amp_on_values, tu_amp_on_failure, &again);
    lost_late_failed_at_once = again.done && again.failed;
    tw_deferred_unref(d2);
}

START_TEST(test_outstanding_calls_fail_with_a_clear_reason_when_the_connection_is_lost)
{
    tw_factory *client = client_pair(SERVER);
    tu_amp_outcome first = {0};
    tw_amp_values *args = tw_amp_values_new();
    tw_amp_values_set_integer(args, "id", 1);
    tw_deferred *d1 = tw_amp_call_remote(client_amp, &LATER, args);
    tw_deferred *d2 = tw_amp_call_remote(client_amp, &LATER, args);
    tw_amp_values_free(args);
    tw_deferred_add_callbacks(d1, tu_amp_on_values, tu_amp_on_failure, &first);
    memset(&lost_outcome, 0, sizeof lost_outcome);
    tw_deferred_add_callbacks(d2, tu_amp_on_values, call_again_after_loss, &lost_outcome);
    for (int i = 0; i < 200 && nlater < 2; i++)
        tw_reactor_iterate(R, 0.005);
    ck_assert_int_eq(nlater, 2);
    ck_assert_uint_eq(tw_amp_outstanding(client_amp), 2);
    /* The server goes away. */
    tw_transport_abort_connection(tw_amp_transport(server_amp));
    spin(R, &lost_outcome.done, 2000);
    ck_assert(first.failed && lost_outcome.failed);
    ck_assert_int_eq(first.code, TW_ECONNLOST);
    ck_assert_ptr_nonnull(strstr(first.message, "connection was lost before Later was answered"));
    ck_assert(lost_late_failed_at_once);
    ck_assert_int_eq(later_cancelled, 2);
    tw_deferred_unref(d1);
    tw_deferred_unref(d2);
    client_done(client);
}
END_TEST

START_TEST(test_call_remote_with_bad_arguments_fails_at_once_and_sends_nothing)
{
    tw_factory *client = client_pair(SERVER);
    tu_amp_outcome o;
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_integer(v, "a", 1);
    tw_deferred *d = tw_amp_call_remote(client_amp, &SUM, v);
    memset(&o, 0, sizeof o);
    tw_deferred_add_callbacks(d, tu_amp_on_values, tu_amp_on_failure, &o);
    ck_assert(o.done && o.failed);
    ck_assert_int_eq(o.code, -EINVAL);
    ck_assert_ptr_nonnull(strstr(o.message, "missing a value for 'b'"));
    ck_assert_uint_eq(tw_amp_outstanding(client_amp), 0);
    spin_ms(R, 20);
    ck_assert_int_eq(sums_answered, 0);
    tw_deferred_unref(d);
    tw_amp_values_free(v);
    client_done(client);
}
END_TEST

/* A client that believes Sum answers a Boolean. */
static const tw_amp_command WRONG_SUM = {
        .name = "Sum",
        .arguments = (const tw_amp_arg[]){{"a", TW_AMP_T_INTEGER, 0},
                                          {"b", TW_AMP_T_INTEGER, 0},
                                          {NULL, NULL, 0}},
        .response = (const tw_amp_arg[]){{"total", TW_AMP_T_BOOLEAN, 0}, {NULL, NULL, 0}},
    };

START_TEST(test_an_answer_that_does_not_decode_fails_the_call_and_the_connection_stays)
{
    tw_factory *client = client_pair(SERVER);
    tu_amp_outcome o;
    call(&WRONG_SUM, sum_args(1, 1), &o);
    ck_assert(o.failed);
    ck_assert_int_eq(o.code, TW_EPROTO);
    ck_assert_ptr_nonnull(strstr(o.message, "the answer to Sum does not decode"));
    tu_amp_outcome_free(&o);
    call(&SUM, sum_args(1, 1), &o);
    ck_assert(!o.failed);
    tu_amp_outcome_free(&o);
    client_done(client);
}
END_TEST

START_TEST(test_call_remote_box_gives_the_raw_answer_without_its_answer_key)
{
    tw_factory *client = client_pair(SERVER);
    tw_amp_box *args = tw_amp_box_new();
    tw_amp_box_set_str(args, "a", "40");
    tw_amp_box_set_str(args, "b", "2");
    tu_amp_outcome o = {0};
    tw_deferred *d = tw_amp_call_remote_box(client_amp, "Sum", args);
    tw_amp_box_free(args);
    tw_deferred_add_callbacks(d, on_box, tu_amp_on_failure, &o);
    spin(R, &o.done, 2000);
    ck_assert(o.done && !o.failed);
    ck_assert_uint_eq(tw_amp_box_count(o.box), 1);
    assert_value(o.box, "total", "42");
    tw_deferred_unref(d);
    tu_amp_outcome_free(&o);
    client_done(client);
}
END_TEST

static void raw_server_connected(tw_amp *amp, void *arg)
{
    (void)arg;
    client_amp = amp;
}

START_TEST(test_tags_count_up_in_lowercase_hex_and_send_asks_for_no_answer)
{
    /* Here the raw socket plays the server, to see what the client sends. */
    tw_factory *client = tw_amp_factory_new();
    tw_amp_factory_set_callbacks(client, raw_server_connected, client_lost, NULL);
    raw rw;
    raw_open(&rw, client);
    ck_assert_ptr_nonnull(client_amp);
    tw_deferred *ds[11];
    for (int i = 0; i < 10; i++) {
        tw_amp_values *args = sum_args(i, i);
        ds[i] = tw_amp_call_remote(client_amp, &SUM, args);
        tw_amp_values_free(args);
    }
    const char *want[] = {"1", "2", "3", "4", "5", "6", "7", "8", "9", "a"};
    for (int i = 0; i < 10; i++) {
        tw_amp_box *b = raw_next(&rw, 2000);
        assert_value(b, "_ask", want[i]);
        assert_value(b, "_command", "Sum");
        tw_amp_box_free(b);
    }
    tw_amp_values *args = sum_args(1, 1);
    ck_assert_int_eq(tw_amp_send(client_amp, &SUM, args), 0);
    tw_amp_box *b = raw_next(&rw, 2000);
    ck_assert_ptr_null(tw_amp_box_get(b, "_ask", NULL));
    assert_value(b, "_command", "Sum");
    tw_amp_box_free(b);
    /* The tag of the request sent without _ask was used up, as in Twisted. */
    ds[10] = tw_amp_call_remote(client_amp, &SUM, args);
    b = raw_next(&rw, 2000);
    assert_value(b, "_ask", "c");
    tw_amp_box_free(b);
    tw_amp_values_free(args);
    /* Answer out of order; each call gets its own. */
    raw_send_kv(&rw, "_answer", "3", "total", "4", KV_END);
    raw_send_kv(&rw, "_answer", "1", "total", "0", KV_END);
    tu_amp_outcome o3 = {0}, o1 = {0};
    tw_deferred_add_callbacks(ds[2], tu_amp_on_values, tu_amp_on_failure, &o3);
    tw_deferred_add_callbacks(ds[0], tu_amp_on_values, tu_amp_on_failure, &o1);
    spin(R, &o1.done, 2000);
    ck_assert(o3.done && o1.done);
    int64_t t3, t1;
    tw_amp_values_get_integer(o3.values, "total", &t3);
    tw_amp_values_get_integer(o1.values, "total", &t1);
    ck_assert_int_eq(t3, 4);
    ck_assert_int_eq(t1, 0);
    ck_assert_uint_eq(tw_amp_outstanding(client_amp), 9);
    tu_amp_outcome_free(&o3);
    tu_amp_outcome_free(&o1);
    raw_close(&rw);
    ck_assert_ptr_null(client_amp);
    for (int i = 0; i < 11; i++) {
        ck_assert(tw_deferred_called(ds[i]));
        tw_deferred_add_errback(ds[i], tu_amp_on_failure, &o1); /* consume the lost ones */
        tw_deferred_unref(ds[i]);
    }
    tw_factory_free(client);
}
END_TEST

START_TEST(test_an_answer_matches_only_the_tag_exactly_as_it_was_sent)
{
    /* The raw socket plays the server and answers with other spellings. */
    tw_factory *client = tw_amp_factory_new();
    tw_amp_factory_set_callbacks(client, raw_server_connected, client_lost, NULL);
    raw rw;
    raw_open(&rw, client);
    ck_assert_ptr_nonnull(client_amp);
    tw_amp_values *args = sum_args(1, 2);
    tw_deferred *d = tw_amp_call_remote(client_amp, &SUM, args);
    tw_amp_values_free(args);
    tw_amp_box *b = raw_next(&rw, 2000);
    assert_value(b, "_ask", "1");
    tw_amp_box_free(b);
    /* Twisted compares tags as bytes: "01" is not the call tagged "1". */
    raw_send_kv(&rw, "_answer", "01", "total", "3", KV_END);
    ck_assert(raw_closed(&rw, 2000));
    ck_assert_ptr_nonnull(strstr(logbuf, "an answer for a call never made"));
    tu_amp_outcome o = {0};
    tw_deferred_add_callbacks(d, tu_amp_on_values, tu_amp_on_failure, &o);
    spin(R, &o.done, 2000);
    ck_assert(o.failed);
    ck_assert_int_eq(o.code, TW_ECONNLOST);
    tu_amp_outcome_free(&o);
    tw_deferred_unref(d);
    raw_close(&rw);
    tw_factory_free(client);
}
END_TEST

START_TEST(test_thousands_of_outstanding_calls_answered_in_order_each_get_theirs)
{
    enum { N = 5000 };
    tw_factory *client = tw_amp_factory_new();
    tw_amp_factory_set_callbacks(client, raw_server_connected, client_lost, NULL);
    raw rw;
    raw_open(&rw, client);
    ck_assert_ptr_nonnull(client_amp);
    tw_deferred **ds = malloc(N * sizeof *ds);
    tu_amp_outcome *os = calloc(N, sizeof *os);
    /* In batches the raw peer's queue holds; none is answered yet. */
    for (int i = 0; i < N; i++) {
        tw_amp_values *args = sum_args(i, 0);
        ds[i] = tw_amp_call_remote(client_amp, &SUM, args);
        tw_amp_values_free(args);
        tw_deferred_add_callbacks(ds[i], tu_amp_on_values, tu_amp_on_failure, &os[i]);
        if (i % 100 == 99)
            for (int k = 0; k < 100; k++)
                tw_amp_box_free(raw_next(&rw, 2000));
    }
    ck_assert_uint_eq(tw_amp_outstanding(client_amp), N);
    /* The oldest first,, as a peer that answers in order does. */
    for (int i = 0; i < N; i++) {
        char tag[16], total[16];
        snprintf(tag, sizeof tag, "%x", i + 1);
        snprintf(total, sizeof total, "%d", i);
        raw_send_kv(&rw, "_answer", tag, "total", total, KV_END);
    }
    spin(R, &os[N - 1].done, 5000);
    ck_assert_uint_eq(tw_amp_outstanding(client_amp), 0);
    for (int i = 0; i < N; i++) {
        ck_assert(os[i].done && !os[i].failed);
        int64_t t;
        ck_assert_int_eq(tw_amp_values_get_integer(os[i].values, "total", &t), 0);
        ck_assert_int_eq(t, i);
        tu_amp_outcome_free(&os[i]);
        tw_deferred_unref(ds[i]);
    }
    free(os);
    free(ds);
    raw_close(&rw);
    tw_factory_free(client);
}
END_TEST

/* ------------------------------------------------------------ the amp module */

static tw_factory *module_factory(void)
{
    const tw_plugin *p = tw_plugin_builtin_find("amp");
    ck_assert_ptr_nonnull(p);
    char err[256];
    tw_options *opts = tw_options_parse(p->options, NULL, 0, err, sizeof err);
    ck_assert_ptr_nonnull(opts);
    tw_factory *f = p->make_factory(R, opts, err, sizeof err);
    tw_options_free(opts);
    ck_assert_msg(f != NULL, "%s", err);
    MODULE = f; /* freed by teardown, once the reactor closed its connections */
    return f;
}

static tw_amp_values *divide_args(int64_t n, int64_t d)
{
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_integer(v, "numerator", n);
    tw_amp_values_set_integer(v, "denominator", d);
    return v;
}

static tw_amp_values *one_float(const char *name, double x)
{
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_float(v, name, x);
    return v;
}

START_TEST(test_the_amp_module_answers_its_commands)
{
    tw_factory *module = module_factory();
    ck_assert_uint_eq(tw_amp_dispatcher_count(tw_amp_factory_dispatcher(module)), 5);
    tw_factory *client = client_pair(module);
    tu_amp_outcome o;

    call(&amp_sum_command, sum_args(13, 81), &o);
    int64_t total;
    tw_amp_values_get_integer(o.values, "total", &total);
    ck_assert_int_eq(total, 94);
    tu_amp_outcome_free(&o);

    call(&amp_sum_command, sum_args(INT64_MAX, 1), &o);
    ck_assert_str_eq(o.remote_code, "OVERFLOW");
    tu_amp_outcome_free(&o);

    /* An Integer past 64 bits decodes; the module answers it with OVERFLOW. */
    tw_amp_values *big = sum_args(0, 1);
    tw_amp_values_set_integer_text(big, "a", "9223372036854775808");
    call(&amp_sum_command, big, &o);
    ck_assert_str_eq(o.remote_code, "OVERFLOW");
    tu_amp_outcome_free(&o);
    big = divide_args(1, 0);
    tw_amp_values_set_integer_text(big, "denominator", "-9223372036854775809");
    call(&amp_divide_command, big, &o);
    ck_assert_str_eq(o.remote_code, "OVERFLOW");
    tu_amp_outcome_free(&o);

    /* (2**62 + 1) / 3 == 1.5372286728091292e+18 in Python */
    call(&amp_divide_command, divide_args(((int64_t)1 << 62) + 1, 3), &o);
    double r;
    tw_amp_values_get_float(o.values, "result", &r);
    char text[40];
    tw_amp_float_repr(r, text, sizeof text);
    ck_assert_str_eq(text, "1.5372286728091292e+18");
    tu_amp_outcome_free(&o);

    call(&amp_divide_command, divide_args(0, -5), &o);
    tw_amp_values_get_float(o.values, "result", &r);
    ck_assert(r == 0 && signbit(r)); /* 0 / -5 == -0.0 */
    tu_amp_outcome_free(&o);

    call(&amp_divide_command, divide_args(1, 0), &o);
    ck_assert_str_eq(o.remote_code, "ZERO_DIVISION");
    ck_assert_str_eq(o.remote_desc, "division by zero");
    tu_amp_outcome_free(&o);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    call(&amp_time_command, NULL, &o);
    double now;
    tw_amp_values_get_float(o.values, "now", &now);
    ck_assert(fabs(now - (double)ts.tv_sec) < 5);
    tu_amp_outcome_free(&o);

    call(&amp_delay_command, one_float("seconds", -1), &o);
    ck_assert_str_eq(o.remote_code, "BAD_DELAY");
    tu_amp_outcome_free(&o);

    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_string(v, "value", "hi\0there", 8);
    call(&amp_echo_command, v, &o);
    const char *s;
    size_t len;
    tw_amp_values_get_string(o.values, "value", &s, &len);
    ck_assert(len == 8 && memcmp(s, "hi\0there", 8) == 0);
    tu_amp_outcome_free(&o);

    client_done(client);
}
END_TEST

typedef struct {
    tu_amp_outcome o;
    int order; /* when it completed, counting from 0 */
} pipelined;

static int completed;

static void pipelined_done(tw_deferred *d, tw_result *res, void *arg)
{
    pipelined *p = arg;
    if (tw_result_is_failure(res))
        tu_amp_on_failure(d, res, &p->o);
    else
        tu_amp_on_values(d, res, &p->o);
    p->order = completed++;
}

START_TEST(test_many_pipelined_calls_are_answered_out_of_order_and_matched)
{
    tw_factory *module = module_factory();
    tw_factory *client = client_pair(module);
    /*
     * Delays sent in a shuffled order of durations, 40 ms apart (more than
     * the time the server takes to read them all, even under valgrind),
     * with echoes sent between them.
     */
    enum { D = 12, E = 96 };
    static pipelined delays[D], echoes[E];
    tw_deferred *ds[D + E];
    int nd = 0, ncalls = 0;
    completed = 0;
    memset(delays, 0, sizeof delays);
    memset(echoes, 0, sizeof echoes);
    for (int i = 0; i < E; i++) {
        if (i % (E / D) == 0) {
            int rank = (nd * 5) % D; /* a permutation of 0..D-1 */
            tw_amp_values *v = one_float("seconds", 0.05 + rank * 0.04);
            ds[ncalls] = tw_amp_call_remote(client_amp, &amp_delay_command, v);
            tw_amp_values_free(v);
            tw_deferred_add_both(ds[ncalls++], pipelined_done, &delays[nd++]);
        }
        char value[32];
        snprintf(value, sizeof value, "echo-%d", i);
        tw_amp_values *v = tw_amp_values_new();
        tw_amp_values_set_string(v, "value", value, strlen(value));
        ds[ncalls] = tw_amp_call_remote(client_amp, &amp_echo_command, v);
        tw_amp_values_free(v);
        tw_deferred_add_both(ds[ncalls++], pipelined_done, &echoes[i]);
    }
    ck_assert_int_eq(nd, D);
    ck_assert_uint_eq(tw_amp_outstanding(client_amp), D + E);
    long long deadline = tu_now_ms() + 10000;
    while (completed < D + E && tu_now_ms() < deadline)
        tw_reactor_iterate(R, 0.005);
    ck_assert_int_eq(completed, D + E);
    for (int i = 0; i < E; i++) {
        char want[32];
        snprintf(want, sizeof want, "echo-%d", i);
        const char *s;
        ck_assert_int_eq(tw_amp_values_get_string(echoes[i].o.values, "value", &s, NULL), 0);
        ck_assert_str_eq(s, want);
    }
    for (int i = 0; i < D; i++) {
        int done = 0;
        ck_assert_int_eq(tw_amp_values_get_boolean(delays[i].o.values, "done", &done), 0);
        ck_assert_int_eq(done, 1);
        /* Delays finish in the order of their durations, not of sending. */
        for (int j = 0; j < D; j++)
            if ((i * 5) % D < (j * 5) % D)
                ck_assert_int_lt(delays[i].order, delays[j].order);
    }
    /* The second sent (rank 5) finishes after the fourth (rank 3): the
     * answers really came back out of order. */
    ck_assert_int_gt(delays[1].order, delays[3].order);
    for (int i = 0; i < D; i++)
        tu_amp_outcome_free(&delays[i].o);
    for (int i = 0; i < E; i++)
        tu_amp_outcome_free(&echoes[i].o);
    for (int i = 0; i < ncalls; i++)
        tw_deferred_unref(ds[i]);
    client_done(client);
}
END_TEST

static tw_deferred *hello_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)args;
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_unicode(v, "greeting", arg);
    return tw_amp_succeed(v);
}

static const tw_amp_command HELLO = {
    .name = "Hello",
    .response = (const tw_amp_arg[]){{"greeting", TW_AMP_T_UNICODE, 0}, {NULL, NULL, 0}},
};

START_TEST(test_another_module_can_add_commands_to_the_amp_module)
{
    tw_factory *module = module_factory();
    tw_amp_dispatcher *d = tw_amp_factory_dispatcher(module);
    ck_assert_int_eq(tw_amp_register(d, &HELLO, hello_responder, "hello, world"), 0);
    ck_assert_int_eq(tw_amp_register(d, &HELLO, hello_responder, NULL), -EEXIST);
    ck_assert_int_eq(tw_amp_register(d, &amp_sum_command, sum_responder, NULL), -EEXIST);
    ck_assert_ptr_eq(tw_amp_dispatcher_find(d, "Hello"), &HELLO);
    ck_assert_ptr_null(tw_amp_dispatcher_find(d, "Goodbye"));
    /* Only AMP factories have a dispatcher. */
    rec_factory other;
    rec_init(&other, R);
    ck_assert_ptr_null(tw_amp_factory_dispatcher(&other.base));

    tw_factory *client = client_pair(module);
    tu_amp_outcome o;
    call(&HELLO, NULL, &o);
    const char *s;
    tw_amp_values_get_string(o.values, "greeting", &s, NULL);
    ck_assert_str_eq(s, "hello, world");
    tu_amp_outcome_free(&o);
    client_done(client);
}
END_TEST

static Suite *amp_suite(void)
{
    Suite *s = suite_create("amp");
    TCase *server = tcase_create("server");
    tcase_add_checked_fixture(server, setup, teardown);
    tcase_set_timeout(server, 30);
    tcase_add_test(server, test_a_request_is_answered_with_twisteds_bytes_and_its_ask_tag);
    tcase_add_test(server, test_keys_in_any_order_are_accepted);
    tcase_add_test(server, test_a_request_without_ask_is_run_and_gets_no_answer);
    tcase_add_test(server, test_an_unknown_command_gets_unhandled_and_the_connection_stays_open);
    tcase_add_test(server, test_unhandled_shows_the_name_as_python_repr_of_bytes);
    tcase_add_test(server,
                   test_a_declared_error_gets_its_code_and_description_and_the_connection_stays_open);
    tcase_add_test(server, test_a_fatal_declared_error_is_answered_then_the_connection_closes);
    tcase_add_test(server,
                   test_arguments_that_do_not_decode_get_unknown_then_the_connection_closes);
    tcase_add_test(server, test_a_missing_argument_gets_unknown_then_the_connection_closes);
    tcase_add_test(server,
                   test_an_amp_error_the_command_does_not_declare_passes_through_as_in_twisted);
    tcase_add_test(server,
                   test_a_failure_that_is_not_an_amp_error_gets_unknown_then_the_connection_closes);
    tcase_add_test(server,
                   test_a_response_that_does_not_encode_gets_unknown_then_the_connection_closes);
    tcase_add_test(server,
                   test_a_failing_request_without_ask_closes_the_connection_without_an_answer);
    tcase_add_test(server, test_a_key_of_256_bytes_closes_the_connection_with_a_logged_reason);
    tcase_add_test(server,
                   test_a_box_without_command_answer_or_error_closes_with_a_logged_reason);
    tcase_add_test(server, test_an_empty_box_closes_the_connection);
    tcase_add_test(server, test_a_box_over_the_size_limit_closes_the_connection);
    tcase_add_test(server, test_an_answer_or_error_for_a_call_never_made_closes_the_connection);
    tcase_add_test(server, test_boxes_after_a_closing_one_in_the_same_read_are_not_dispatched);
    tcase_add_test(server, test_closing_from_a_responder_still_sends_the_answers_before_it);
    tcase_add_test(server, test_late_answers_go_out_as_responders_fire_matched_by_their_tags);
    tcase_add_test(server, test_losing_the_connection_cancels_responders_still_running);
    tcase_add_test(server, test_reading_pauses_while_too_many_requests_await_their_responders);
    tcase_add_test(server, test_pending_requests_are_counted_per_box_not_per_read);
    suite_add_tcase(s, server);

    TCase *client = tcase_create("client");
    tcase_add_checked_fixture(client, setup, teardown);
    tcase_set_timeout(client, 30);
    tcase_add_test(client, test_call_remote_fires_with_the_typed_answer);
    tcase_add_test(client, test_call_remote_fails_with_the_remote_code_and_description);
    tcase_add_test(client, test_calling_an_unknown_command_fails_with_unhandled);
    tcase_add_test(client, test_every_type_round_trips_through_a_call);
    tcase_add_test(client,
                   test_outstanding_calls_fail_with_a_clear_reason_when_the_connection_is_lost);
    tcase_add_test(client, test_call_remote_with_bad_arguments_fails_at_once_and_sends_nothing);
    tcase_add_test(client,
                   test_an_answer_that_does_not_decode_fails_the_call_and_the_connection_stays);
    tcase_add_test(client, test_call_remote_box_gives_the_raw_answer_without_its_answer_key);
    tcase_add_test(client, test_tags_count_up_in_lowercase_hex_and_send_asks_for_no_answer);
    tcase_add_test(client, test_an_answer_matches_only_the_tag_exactly_as_it_was_sent);
    tcase_add_test(client, test_thousands_of_outstanding_calls_answered_in_order_each_get_theirs);
    suite_add_tcase(s, client);

    TCase *module = tcase_create("module");
    tcase_add_checked_fixture(module, setup, teardown);
    tcase_set_timeout(module, 30);
    tcase_add_test(module, test_the_amp_module_answers_its_commands);
    tcase_add_test(module, test_many_pipelined_calls_are_answered_out_of_order_and_matched);
    tcase_add_test(module, test_another_module_can_add_commands_to_the_amp_module);
    suite_add_tcase(s, module);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(amp_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
