/* SPDX-License-Identifier: MIT */
/*
 * twine-call: call an AMP command from the command line and print the
 * answer, against any AMP server (twine's reactord --protocol amp, or
 * Twisted's). It does not know the command's types, so every argument goes
 * out as the bytes typed (AMP is untyped on the wire: "1" is what an Integer
 * 1 looks like), and the answer comes back as key=value lines or JSON.
 *
 * It is an ordinary libtwine client, built only on the public API: the
 * endpoint is parsed by tw_endpoint_parse_client(), the connection made by
 * tw_endpoint_connect() (or tw_connect_tls() for tls:) on the reactor, and each call is a deferred from
 * tw_amp_call_remote_box(). With --stdin the calls run one after another
 * on the one connection, each answer printed as it arrives.
 *
 * Exit codes follow sysexits.h: 0 answered; 1 the server answered with an
 * error; 64 usage; 65 bad data on standard input; 69 cannot connect, or the
 * connection ended before the answer; 71 a local system error; 74 cannot
 * read standard input or write the answer; 75 timed out; 76 the server
 * broke the protocol. See twine-call(1).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <twine/tls.h>

#include "twine-call.h"

static void usage(FILE *out)
{
    fputs("Usage: twine-call [options] ENDPOINT COMMAND [KEY=VALUE...] [-]\n"
          "Call an AMP command and print the answer, one KEY=VALUE a line.\n"
          "\n"
          "ENDPOINT is tcp:HOST:PORT, tls:HOST:PORT or unix:PATH (Twisted's client\n"
          "strports; a backslash escapes ':' and '=', as in tcp:\\:\\:1:9000), with\n"
          "optional timeout=SECONDS and, for tcp and tls, bindAddress=ADDRESS; tls\n"
          "verifies the server against trustRoots=PATH (default: the system's CAs)\n"
          "and may present certificate=PATH with privateKey=PATH.\n"
          "Values are sent as the bytes given.\n"
          "\n"
          "  -i, --stdin             read calls from standard input (as does a lone\n"
          "                          '-'): JSON objects, or KEY=VALUE lines with a\n"
          "                          blank line between calls; KEY=VALUE arguments\n"
          "                          apply to every call\n"
          "  -j, --json              print one JSON object per call: its answer,\n"
          "                          error or failure\n"
          "  -r, --raw               print values as the bytes received, unquoted\n"
          "  -t, --timeout SECONDS   give up after SECONDS (default 30)\n"
          "  -h, --help              show this help and exit\n"
          "  -V, --version           show the version and exit\n"
          "\n"
          "A value that is not plain UTF-8 text on one line is printed quoted, with\n"
          "C escapes: \"two\\nlines\", \"\\xff\".\n"
          "\n"
          "Exit status: 0 answered; 1 the server answered with an error; 64 usage;\n"
          "65 bad input on stdin; 69 cannot connect or the connection was lost;\n"
          "71 local system error; 74 cannot read stdin or write the answer;\n"
          "75 timed out; 76 the server broke the protocol.\n"
          "\n"
          "Example: twine-call tcp:127.0.0.1:9000 Sum a=1 b=2\n",
          out);
}

static void die(int code, const char *fmt, ...) TW_PRINTF(2, 3) __attribute__((noreturn));

static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("twine-call: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

static double parse_seconds(const char *what, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !(v > 0) || v > 1e9)
        die(EX_USAGE, "%s needs a positive number of seconds, not '%s'", what, s);
    return v;
}

/* ------------------------------------------------------------ the calls */

typedef struct state {
    tw_reactor *reactor;
    const char *command;
    const char *where;
    tc_format format;
    tc_calls calls;
    tw_deferred **answers; /* one per call sent */
    size_t sent;
    tw_deferred *connecting;
    tw_amp *amp;
    int exit_code;
    int finished;
} state;

static void finish(state *st, int code)
{
    if (st->finished)
        return;
    st->finished = 1;
    if (code != 0)
        st->exit_code = code;
    tw_amp_lose_connection(st->amp);
    tw_reactor_stop(st->reactor);
}

/* Report a call that got no answer, and stop. */
static void give_up(state *st, int code, const char *fmt, ...) TW_PRINTF(3, 4);

static void give_up(state *st, int code, const char *fmt, ...)
{
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (tc_print_failure(stdout, stderr, st->format, st->command, code, message) < 0)
        code = EX_IOERR;
    finish(st, code);
}

static void send_next(state *st);

/* One call is over: note a write error, then make the next one or stop. */
static void call_done(state *st, int printed)
{
    if (printed < 0) {
        fprintf(stderr, "twine-call: cannot write the answer: %s\n", strerror(-printed));
        finish(st, EX_IOERR);
    } else if (st->sent == st->calls.n) {
        finish(st, 0);
    } else {
        send_next(st);
    }
}

static void answered(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    state *st = arg;
    if (st->finished)
        return;
    int rc = tc_print_answer(stdout, st->format, st->sent - 1, st->command, tw_result_value(res));
    call_done(st, rc);
}

static void failed(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    state *st = arg;
    tw_failure *f = tw_result_take_failure(res);
    const char *code, *desc;
    char text[1024];
    tw_failure_format(f, text, sizeof text);
    if (st->finished) {
        /* The timeout already gave up on the call and said so. */
    } else if (tw_amp_error_info(f, &code, &desc) == 0) {
        st->exit_code = TC_EXIT_REMOTE_ERROR;
        call_done(st, tc_print_error(stdout, stderr, st->format, st->command, code, desc));
    } else if (tw_failure_check(f, TW_ECONNLOST) || tw_failure_check(f, TW_ESTATE)) {
        give_up(st, EX_UNAVAILABLE, "%s: %s", st->where, text);
    } else {
        give_up(st, EX_OSERR, "calling %s on %s failed: %s", st->command, st->where, text);
    }
    tw_failure_unref(f);
}

static void send_next(state *st)
{
    tw_deferred *d = tw_amp_call_remote_box(st->amp, st->command, st->calls.boxes[st->sent]);
    if (d == NULL) {
        give_up(st, EX_OSERR, "out of memory");
        return;
    }
    st->answers[st->sent++] = d;
    if (tw_deferred_add_callbacks(d, answered, failed, st) < 0)
        give_up(st, EX_OSERR, "out of memory");
}

static void connected(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    state *st = arg;
    st->amp = tw_amp_from_protocol(tw_result_value(res));
    if (!st->finished)
        send_next(st);
}

static void connect_failed(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    state *st = arg;
    tw_failure *f = tw_result_take_failure(res);
    char text[1024];
    tw_failure_format(f, text, sizeof text);
    if (st->finished) {
        /* Cancelled by the timeout, which said so. */
    } else if (tw_failure_check(f, TW_ETIMEDOUT)) {
        give_up(st, EX_TEMPFAIL, "cannot connect to %s in time: %s", st->where, text);
    } else if (tw_failure_check(f, -ENOMEM) || tw_failure_check(f, -EMFILE) ||
               tw_failure_check(f, -ENFILE)) {
        give_up(st, EX_OSERR, "cannot connect to %s: %s", st->where, text);
    } else {
        give_up(st, EX_UNAVAILABLE, "cannot connect to %s: %s", st->where, text);
    }
    tw_failure_unref(f);
}

static void lost(tw_amp *amp, const tw_failure *reason, void *arg)
{
    (void)amp;
    state *st = arg;
    st->amp = NULL;
    if (!st->finished) {
        /* The server closed without a word that fits the protocol. */
        char text[512];
        tw_failure_format(reason, text, sizeof text);
        give_up(st, EX_PROTOCOL, "%s closed the connection before answering: %s", st->where,
                text);
    }
}

static void timed_out(void *arg)
{
    state *st = arg;
    if (st->finished)
        return;
    if (st->amp == NULL) {
        give_up(st, EX_TEMPFAIL, "cannot connect to %s in time", st->where);
        tw_deferred_cancel(st->connecting);
        return;
    }
    tw_transport_abort_connection(tw_amp_transport(st->amp));
    st->amp = NULL;
    give_up(st, EX_TEMPFAIL, "no answer to %s from %s in time", st->command, st->where);
}

/* ------------------------------------------------------------ main */

typedef struct options {
    double timeout;
    tc_format format;
    int from_stdin;
} options;

/* @return the index of the first operand. */
static int parse_options(int argc, char **argv, options *o)
{
    static const struct option longopts[] = {
        {"stdin", no_argument, NULL, 'i'},
        {"json", no_argument, NULL, 'j'},
        {"raw", no_argument, NULL, 'r'},
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    int c;
    opterr = 0;
    /* '+': stop at the endpoint, so that values may start with '-'. */
    while ((c = getopt_long(argc, argv, "+:ijrt:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'i':
            o->from_stdin = 1;
            break;
        case 'j':
        case 'r':
            if (o->format != TC_TEXT)
                die(EX_USAGE, "--json and --raw are two output forms; choose one");
            o->format = c == 'j' ? TC_JSON : TC_RAW;
            break;
        case 't':
            o->timeout = parse_seconds("--timeout", optarg);
            break;
        case 'h':
            usage(stdout);
            exit(EX_OK);
        case 'V':
            printf("twine-call (twine) %s\n", tw_version());
            exit(EX_OK);
        case ':':
            die(EX_USAGE, "option '%s' needs a value; see --help", argv[optind - 1]);
        default:
            die(EX_USAGE, "unknown option '%s'; see --help", argv[optind - 1]);
        }
    }
    return optind;
}

/* The calls, from the KEY=VALUE operands and, if asked, standard input. */
static void read_calls(char **argv, int argc, const options *o, tc_calls *calls)
{
    int stdin_too = o->from_stdin;
    if (argc > 0 && strcmp(argv[argc - 1], "-") == 0) {
        stdin_too = 1;
        argc--;
    }
    tw_amp_box *common = tw_amp_box_new();
    if (common == NULL)
        die(EX_OSERR, "out of memory");
    char err[1024];
    int code = tc_args_from_argv(common, argv, argc, err, sizeof err);
    if (code == 0 && stdin_too) {
        code = tc_calls_read(stdin, common, calls, err, sizeof err);
        tw_amp_box_free(common);
    } else if (code == 0 && tc_calls_add(calls, common) < 0) {
        code = EX_OSERR;
        snprintf(err, sizeof err, "out of memory");
    }
    if (code != 0)
        die(code, "%s", err);
}

int main(int argc, char **argv)
{
    options o = {.timeout = 30, .format = TC_TEXT};
    int first = parse_options(argc, argv, &o);
    if (argc - first < 2) {
        usage(stderr);
        return EX_USAGE;
    }
    state st = {.where = argv[first], .command = argv[first + 1], .format = o.format};
    if (st.command[0] == '\0' || strlen(st.command) > TW_AMP_MAX_VALUE_LENGTH)
        die(EX_USAGE, "the command name must be 1 to %d bytes", TW_AMP_MAX_VALUE_LENGTH);
    tw_endpoint ep;
    char err[TW_ENDPOINT_STRLEN];
    if (tw_endpoint_parse_client(st.where, &ep, err, sizeof err) < 0)
        die(EX_USAGE, "%s", err);
    read_calls(argv + first + 2, argc - first - 2, &o, &st.calls);
    st.answers = calloc(st.calls.n, sizeof *st.answers);
    if (st.answers == NULL)
        die(EX_OSERR, "out of memory");
    /* The endpoint's timeout= bounds the connection; --timeout everything. */
    if (ep.timeout == 0 || ep.timeout > o.timeout)
        ep.timeout = o.timeout;

    st.reactor = tw_reactor_new();
    tw_factory *factory = tw_amp_factory_new();
    if (st.reactor == NULL || factory == NULL)
        die(EX_OSERR, "cannot create the event loop: out of memory or descriptors");
    tw_reactor_set_shutdown_timeout(st.reactor, 1);
    tw_amp_factory_set_callbacks(factory, NULL, lost, &st);
    tw_call *timer = NULL;
    if (tw_reactor_call_later(st.reactor, o.timeout, timed_out, &st, &timer) < 0)
        die(EX_OSERR, "out of memory");
    tw_tls_context *tls = NULL;
    if (ep.tls) {
        /* tls: the server is verified (trustRoots or the system's store)
         * and its name checked; the files are read now. */
        char why[TW_TLS_ERRLEN];
        if (tw_tls_context_from_endpoint(&ep, &tls, why, sizeof why) < 0)
            die(EX_USAGE, "%s: %s", st.where, why);
    }
    st.connecting = tls != NULL ? tw_connect_tls(st.reactor, &ep, tls, factory)
                                : tw_endpoint_connect(st.reactor, &ep, factory);
    tw_tls_context_unref(tls); /* the connection holds its own */
    if (st.connecting == NULL ||
        tw_deferred_add_callbacks(st.connecting, connected, connect_failed, &st) < 0)
        die(EX_OSERR, "out of memory");
    if (!st.finished) {
        int rc = tw_reactor_run(st.reactor);
        if (rc < 0) {
            fprintf(stderr, "twine-call: the event loop failed: %s\n", tw_strerror(rc));
            st.exit_code = EX_SOFTWARE;
        }
    }
    tw_call_cancel(timer);
    tw_call_release(timer);
    for (size_t i = 0; i < st.sent; i++)
        tw_deferred_unref(st.answers[i]);
    tw_deferred_unref(st.connecting);
    tw_reactor_free(st.reactor);
    tw_factory_free(factory);
    tc_calls_free(&st.calls);
    free(st.answers);
    return st.exit_code;
}
