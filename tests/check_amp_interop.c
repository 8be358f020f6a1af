/* SPDX-License-Identifier: MIT */
/*
 * AMP against Twisted itself, both ways: Twisted's amp.AMP client calling
 * `reactord --protocol amp`, twine's client calling a Twisted AMP server,
 * twine-call against both, and twine's bytes compared with the bytes
 * Twisted writes for the same exchanges.
 *
 * The Python side runs with $PYTHON_TWISTED (default /usr/bin/python3).
 * Twisted is required: without it these tests fail, they never skip.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <libgen.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <twine.h>

#include "../protocols/builtin.h"

#include "core/fd_internal.h"
#include "ampcall.h"
#include "recorder.h"
#include "testutil.h"

/* ------------------------------------------------------------ processes */

static const char *python(void)
{
    const char *p = getenv("PYTHON_TWISTED");
    return p != NULL && p[0] != '\0' ? p : "/usr/bin/python3";
}

static void script_path(char *buf, size_t len, const char *name)
{
    const char *src = getenv("TWINE_SRCDIR");
    snprintf(buf, len, "%s/tests/interop/%s", src != NULL ? src : "..", name);
}

static void twine_call_path(char *buf, size_t len)
{
    const char *reactord = getenv("REACTORD");
    ck_assert_msg(reactord != NULL, "REACTORD is not set; run through make check");
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", reactord);
    snprintf(buf, len, "%s/twine-call", dirname(copy));
}

typedef struct {
    pid_t pid;
    int in_fd, out_fd, err_fd;
    char out[65536], err[65536];
    size_t out_len, err_len;
} child;

/* Start @p argv with pipes on all three standard descriptors. */
static void child_start(child *c, const char *const *argv)
{
    memset(c, 0, sizeof *c);
    int in[2], out[2], err[2];
    ck_assert_int_eq(tw__pipe(in, O_CLOEXEC), 0);
    ck_assert_int_eq(tw__pipe(out, O_CLOEXEC), 0);
    ck_assert_int_eq(tw__pipe(err, O_CLOEXEC), 0);
    c->pid = fork();
    ck_assert_int_ge(c->pid, 0);
    if (c->pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    c->in_fd = in[1];
    c->out_fd = out[0];
    c->err_fd = err[0];
    fcntl(c->out_fd, F_SETFL, O_NONBLOCK);
    fcntl(c->err_fd, F_SETFL, O_NONBLOCK);
}

static void drain(int fd, char *buf, size_t *len, size_t cap)
{
    for (;;) {
        if (*len + 1 >= cap)
            return;
        ssize_t n = read(fd, buf + *len, cap - 1 - *len);
        if (n <= 0)
            break;
        *len += (size_t)n;
    }
    buf[*len] = '\0';
}

static void child_read(child *c)
{
    drain(c->out_fd, c->out, &c->out_len, sizeof c->out);
    drain(c->err_fd, c->err, &c->err_len, sizeof c->err);
}

/* Wait up to @p ms for the child; @return its exit code, or -1 (then it is killed). */
static int child_wait(child *c, int ms)
{
    long long deadline = tu_now_ms() + ms;
    int status = 0, code = -1;
    for (;;) {
        struct pollfd p[2] = {{c->out_fd, POLLIN, 0}, {c->err_fd, POLLIN, 0}};
        poll(p, 2, 20);
        child_read(c);
        pid_t w = waitpid(c->pid, &status, WNOHANG);
        if (w == c->pid) {
            code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            break;
        }
        if (tu_now_ms() > deadline) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &status, 0);
            break;
        }
    }
    child_read(c);
    close(c->in_fd);
    close(c->out_fd);
    close(c->err_fd);
    return code;
}

/* Wait until the child's stderr says "listening on HOST:PORT"; @return PORT. */
static int child_port(child *c, int ms)
{
    long long deadline = tu_now_ms() + ms;
    while (tu_now_ms() < deadline) {
        struct pollfd p = {c->err_fd, POLLIN, 0};
        poll(&p, 1, 20);
        child_read(c);
        const char *at = strstr(c->err, "listening on ");
        if (at != NULL && strchr(at, '\n') != NULL) {
            const char *nl = strchr(at, '\n');
            while (nl > at && nl[-1] != ':')
                nl--;
            return atoi(nl);
        }
        if (waitpid(c->pid, NULL, WNOHANG) == c->pid)
            break;
    }
    ck_abort_msg("the server did not report its port; it said: %s", c->err);
    return -1;
}

/* Twisted must be there: a missing Twisted fails the test. */
static void require_twisted(void)
{
    const char *argv[] = {python(), "-c", "import twisted.protocols.amp", NULL};
    child c;
    child_start(&c, argv);
    int code = child_wait(&c, 20000);
    ck_assert_msg(code == 0,
                  "Twisted is required for the AMP interop tests, but '%s' cannot import "
                  "twisted.protocols.amp (exit %d): %s",
                  python(), code, c.err);
}

static void reactord_amp(tu_reactord *d)
{
    const char *args[] = {"--protocol", "amp", "--port", "0", "--interface", "127.0.0.1", NULL};
    ck_assert_msg(tu_reactord_start(d, args) == 0, "reactord did not start: %s", d->log);
}

static void reactord_stop(tu_reactord *d)
{
    kill(d->pid, SIGTERM);
    int status = tu_wait_child(d->pid, 10000);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "reactord did not stop cleanly");
    close(d->err_fd);
}

/* A Twisted AMP server (amp_server.py) on TCP and on @p unix_path. */
static void twisted_server(child *c, const char *unix_path)
{
    char script[4096];
    script_path(script, sizeof script, "amp_server.py");
    const char *argv[] = {python(), script, unix_path, NULL};
    child_start(c, argv);
}

static void twisted_server_stop(child *c)
{
    /* Closing its standard input stops it. */
    close(c->in_fd);
    c->in_fd = open("/dev/null", O_RDONLY);
    int code = child_wait(c, 10000);
    ck_assert_msg(code == 0, "the Twisted server exited %d: %s", code, c->err);
}

/* ------------------------------------------------------------ Twisted -> twine */

START_TEST(test_a_twisted_client_calls_every_command_of_reactord_amp)
{
    require_twisted();
    tu_reactord d;
    reactord_amp(&d);
    char script[4096], port[16];
    script_path(script, sizeof script, "amp_client.py");
    snprintf(port, sizeof port, "%d", d.port);
    const char *argv[] = {python(), script, port, NULL};
    child c;
    child_start(&c, argv);
    int code = child_wait(&c, 30000);
    ck_assert_msg(code == 0, "the Twisted client exited %d:\n%s\n%s", code, c.out, c.err);
    const char *checks[] = {"echo", "sum", "divide", "divide_correctly_rounded",
                            "zero_division", "time", "delay", "unhandled",
                            "still_open_after_declared_errors",
                            "pipelined_delays_answered_out_of_order",
                            "pipelined_echoes_matched", "broken_request_unknown",
                            "broken_request_closes"};
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        char line[128];
        snprintf(line, sizeof line, "ok %s\n", checks[i]);
        ck_assert_msg(strstr(c.out, line) != NULL, "missing '%s' in:\n%s", checks[i], c.out);
    }
    ck_assert_ptr_null(strstr(c.out, "FAIL"));
    /* reactord said why it closed the broken request's connection. */
    tu_reactord_read_log(&d);
    ck_assert_msg(strstr(d.log, "'a' is not a valid Integer") != NULL, "%s", d.log);
    reactord_stop(&d);
}
END_TEST

/* ------------------------------------------------------------ twine -> Twisted */

static const tw_amp_command NOPE = {.name = "Nope"};

static int completions;

/* The shared outcome, numbered in the order the calls completed. */
static void finished(tw_deferred *d, tw_result *res, void *arg)
{
    ((tu_amp_outcome *)arg)->order = completions++;
    tu_amp_on_result(d, res, arg);
}

static tw_amp *connected_amp;

static void on_connected(tw_amp *amp, void *arg)
{
    (void)arg;
    connected_amp = amp;
}

static void on_lost(tw_amp *amp, const tw_failure *reason, void *arg)
{
    (void)reason;
    (void)arg;
    if (connected_amp == amp)
        connected_amp = NULL;
}

/* Start a call; the caller spins until o->done. */
static tw_deferred *start(const tw_amp_command *cmd, tw_amp_values *args, tu_amp_outcome *o)
{
    memset(o, 0, sizeof *o);
    tw_deferred *d = tw_amp_call_remote(connected_amp, cmd, args);
    ck_assert_ptr_nonnull(d);
    tw_deferred_add_both(d, finished, o);
    tw_amp_values_free(args);
    return d;
}

static void call(tw_reactor *r, const tw_amp_command *cmd, tw_amp_values *args,
                 tu_amp_outcome *o)
{
    tu_amp_call(r, connected_amp, cmd, args, o, 5000);
}

static tw_amp_values *ints(const char *n1, int64_t v1, const char *n2, int64_t v2)
{
    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_integer(v, n1, v1);
    tw_amp_values_set_integer(v, n2, v2);
    return v;
}

/* twine's AMP client (connected_amp) connected to a fresh Twisted server. */
typedef struct {
    child server;
    tw_reactor *r;
    tw_factory *f;
} twisted_peer;

/* twine's AMP client connected to the Twisted server @p argv starts. */
static void twisted_peer_start(twisted_peer *p, const char *const *argv)
{
    require_twisted();
    child_start(&p->server, argv);
    int port = child_port(&p->server, 20000);
    p->r = tw_reactor_new();
    p->f = tw_amp_factory_new();
    tw_amp_factory_set_callbacks(p->f, on_connected, on_lost, NULL);
    int fd = tu_connect("127.0.0.1", port);
    ck_assert_int_ge(fd, 0);
    connected_amp = NULL;
    ck_assert_int_eq(tw_transport_adopt(p->r, fd, p->f), 0);
    ck_assert_ptr_nonnull(connected_amp);
}

static void twisted_peer_open(twisted_peer *p)
{
    char script[4096];
    script_path(script, sizeof script, "amp_server.py");
    const char *argv[] = {python(), script, "", NULL};
    twisted_peer_start(p, argv);
}

static void twisted_peer_close(twisted_peer *p)
{
    tw_amp_lose_connection(connected_amp);
    long long deadline = tu_now_ms() + 3000;
    while (connected_amp != NULL && tu_now_ms() < deadline)
        tw_reactor_iterate(p->r, 0.01);
    ck_assert_ptr_null(connected_amp);
    tw_reactor_free(p->r);
    tw_factory_free(p->f);
    twisted_server_stop(&p->server);
}

/* The commands of tests/interop/amp_types.py. */
static const tw_amp_arg TYPES_ROW[] = {
    {"a", TW_AMP_T_INTEGER, 0},
    {"b", TW_AMP_T_UNICODE, 0},
    {"when", TW_AMP_T_DATETIME, 1},
    {NULL, NULL, 0},
};
static const tw_amp_arg TYPES_VALUES[] = {
    {"big", TW_AMP_T_INTEGER, 0},
    {"dec", TW_AMP_T_DECIMAL, 0},
    {"decs", TW_AMP_LIST_OF(TW_AMP_T_DECIMAL), 0},
    {"when", TW_AMP_T_DATETIME, 0},
    {"path", TW_AMP_T_PATH, 0},
    {"rows", TW_AMP_AMPLIST_OF(TYPES_ROW), 0},
    {NULL, NULL, 0},
};
static const tw_amp_command TYPES = {
    .name = "Types", .arguments = TYPES_VALUES, .response = TYPES_VALUES};
static const tw_amp_command REFUSE = {.name = "Refuse"};

/* amp_types.SAMPLE, built with twine's API. */
static tw_amp_values *types_sample(void)
{
    tw_amp_values *v = tw_amp_values_new();
    ck_assert_int_eq(tw_amp_values_set_integer_text(v, "big", "-1180591620717411303424"), 0);
    ck_assert_int_eq(tw_amp_values_set_decimal(v, "dec", "-1.50E-9"), 0);
    const tw_amp_value decs[] = {{.kind = TW_AMP_DECIMAL, .u.bytes = {"NaN12", 5}},
                                 {.kind = TW_AMP_DECIMAL, .u.bytes = {"-Infinity", 9}},
                                 {.kind = TW_AMP_DECIMAL, .u.bytes = {"0E+3", 4}},
                                 {.kind = TW_AMP_DECIMAL, .u.bytes = {"-sNaN", 5}}};
    const tw_amp_value list = {.kind = TW_AMP_LIST, .u.list = {decs, 4}};
    ck_assert_int_eq(tw_amp_values_set(v, "decs", &list), 0);
    const tw_amp_datetime when = {2024, 2, 29, 23, 59, 59, 5, -210};
    ck_assert_int_eq(tw_amp_values_set_datetime(v, "when", &when), 0);
    ck_assert_int_eq(tw_amp_values_set_path(v, "path", "/tmp/\xc3\xa9 x"), 0);
    tw_amp_values *rows[2] = {tw_amp_values_new(), tw_amp_values_new()};
    tw_amp_values_set_integer_text(rows[0], "a", "18446744073709551616");
    tw_amp_values_set_unicode(rows[0], "b", "\xc3\xa9t\xc3\xa9");
    const tw_amp_datetime first = {1, 1, 1, 0, 0, 0, 0, 0};
    tw_amp_values_set_integer(rows[1], "a", -1);
    tw_amp_values_set_unicode(rows[1], "b", "");
    tw_amp_values_set_datetime(rows[1], "when", &first);
    ck_assert_int_eq(
        tw_amp_values_set_amplist(v, "rows", (const tw_amp_values *const *)rows, 2), 0);
    tw_amp_values_free(rows[0]);
    tw_amp_values_free(rows[1]);
    return v;
}

/* Echo every argument back, as amp_types.TypesServer does. */
static tw_deferred *types_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)arg;
    tw_amp_values *v = tw_amp_values_new();
    const char *name;
    const tw_amp_value *value;
    for (size_t i = 0; tw_amp_values_entry(args, i, &name, &value) == 0; i++)
        ck_assert_int_eq(tw_amp_values_set(v, name, value), 0);
    return tw_amp_succeed(v);
}

/* Fail with an AMP error REFUSE does not declare, as amp_types.TypesServer does. */
static tw_deferred *refuse_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)args;
    (void)arg;
    return tw_amp_fail("NOT_DECLARED", "said so");
}

/* The bytes @p v encodes to against TYPES_VALUES, into @p out. */
static size_t types_bytes(const tw_amp_values *v, unsigned char *out, size_t cap)
{
    tw_amp_box *box = tw_amp_box_new();
    char err[256] = "";
    ck_assert_msg(tw_amp_values_to_box(TYPES_VALUES, v, box, 1, err, sizeof err) == 0, "%s",
                  err);
    size_t n = tw_amp_box_encode(box, out, cap);
    ck_assert_uint_le(n, cap);
    tw_amp_box_free(box);
    return n;
}

START_TEST(test_every_amp_type_round_trips_through_a_twisted_server)
{
    twisted_peer peer;
    twisted_peer_open(&peer);
    tw_reactor *r = peer.r;

    /* Twisted decodes every value and encodes it back to the same bytes. */
    tu_amp_outcome o;
    tw_amp_values *sample = types_sample();
    static unsigned char sent[4096], got[4096];
    size_t sentlen = types_bytes(sample, sent, sizeof sent);
    call(r, &TYPES, sample, &o);
    ck_assert_msg(!o.failed, "%s", o.message);
    size_t gotlen = types_bytes(o.values, got, sizeof got);
    ck_assert(gotlen == sentlen && memcmp(got, sent, sentlen) == 0);
    tw_amp_values_free(o.values);

    /* Twisted's Sum answers a total past 64 bits, which twine now reads. */
    tw_amp_values *big = ints("a", 0, "b", 1);
    tw_amp_values_set_integer_text(big, "a", "18446744073709551616");
    call(r, &amp_sum_command, big, &o);
    ck_assert_msg(!o.failed, "%s", o.message);
    char total[32];
    ck_assert_int_eq(tw_amp_values_get_integer_text(o.values, "total", total, sizeof total, NULL),
                     0);
    ck_assert_str_eq(total, "18446744073709551617");
    ck_assert_int_eq(tw_amp_values_get_integer(o.values, "total", NULL), -ERANGE);
    tw_amp_values_free(o.values);

    /* An AMP error the command does not declare comes through; the connection stays. */
    call(r, &REFUSE, NULL, &o);
    ck_assert(o.failed);
    ck_assert_str_eq(o.remote_code, "NOT_DECLARED");
    ck_assert_str_eq(o.remote_desc, "said so");
    call(r, &amp_sum_command, ints("a", 1, "b", 2), &o);
    ck_assert_msg(!o.failed, "%s", o.message);
    tw_amp_values_free(o.values);

    twisted_peer_close(&peer);
}
END_TEST

START_TEST(test_twines_client_calls_a_twisted_amp_server)
{
    twisted_peer peer;
    twisted_peer_open(&peer);
    tw_reactor *r = peer.r;

    tu_amp_outcome o;
    call(r, &amp_sum_command, ints("a", 13, "b", 81), &o);
    int64_t total = 0;
    ck_assert_msg(!o.failed, "%s", o.message);
    tw_amp_values_get_integer(o.values, "total", &total);
    ck_assert_int_eq(total, 94);
    tw_amp_values_free(o.values);

    tw_amp_values *v = tw_amp_values_new();
    tw_amp_values_set_string(v, "value", "\0binary\xff", 8);
    call(r, &amp_echo_command, v, &o);
    const char *s;
    size_t len;
    ck_assert_int_eq(tw_amp_values_get_string(o.values, "value", &s, &len), 0);
    ck_assert(len == 8 && memcmp(s, "\0binary\xff", 8) == 0);
    tw_amp_values_free(o.values);

    call(r, &amp_divide_command, ints("numerator", 1, "denominator", 3), &o);
    double q;
    ck_assert_int_eq(tw_amp_values_get_float(o.values, "result", &q), 0);
    ck_assert(q == 1.0 / 3);
    tw_amp_values_free(o.values);

    call(r, &amp_divide_command, ints("numerator", 1, "denominator", 0), &o);
    ck_assert(o.failed);
    ck_assert_str_eq(o.remote_code, "ZERO_DIVISION");
    ck_assert_str_eq(o.remote_desc, "division by zero");

    call(r, &NOPE, NULL, &o);
    ck_assert(o.failed);
    ck_assert_str_eq(o.remote_code, "UNHANDLED");
    ck_assert_str_eq(o.remote_desc, "Unhandled Command: b'Nope'");

    /* Pipelined against Twisted: answered as its timers fire, matched by tag. */
    static tu_amp_outcome delays[3], echoes[20];
    tw_deferred *ds[23];
    double seconds[3] = {0.45, 0.05, 0.25};
    completions = 0;
    for (int i = 0; i < 3; i++) {
        tw_amp_values *a = tw_amp_values_new();
        tw_amp_values_set_float(a, "seconds", seconds[i]);
        ds[i] = start(&amp_delay_command, a, &delays[i]);
    }
    for (int i = 0; i < 20; i++) {
        char value[32];
        snprintf(value, sizeof value, "v%d", i);
        tw_amp_values *a = tw_amp_values_new();
        tw_amp_values_set_string(a, "value", value, strlen(value));
        ds[3 + i] = start(&amp_echo_command, a, &echoes[i]);
    }
    spin(r, &delays[0].done, 5000);
    ck_assert_int_eq(completions, 23);
    ck_assert_int_eq(delays[1].order, 20);
    ck_assert_int_eq(delays[2].order, 21);
    ck_assert_int_eq(delays[0].order, 22);
    for (int i = 0; i < 3; i++) {
        int done = 0;
        tw_amp_values_get_boolean(delays[i].values, "done", &done);
        ck_assert_int_eq(done, 1);
        tw_amp_values_free(delays[i].values);
    }
    for (int i = 0; i < 20; i++) {
        char want[32];
        snprintf(want, sizeof want, "v%d", i);
        ck_assert_int_eq(tw_amp_values_get_string(echoes[i].values, "value", &s, NULL), 0);
        ck_assert_str_eq(s, want);
        tw_amp_values_free(echoes[i].values);
    }
    for (int i = 0; i < 23; i++)
        tw_deferred_unref(ds[i]);

    twisted_peer_close(&peer);
}
END_TEST

/* ------------------------------------------------------------ twine-call */

/* Run twine-call with @p args (NULL-terminated); @return its exit code. */
static int twine_call(child *c, const char *const *args)
{
    char exe[4096];
    twine_call_path(exe, sizeof exe);
    const char *argv[16] = {exe};
    size_t n = 1;
    while (args[n - 1] != NULL && n < 15) {
        argv[n] = args[n - 1];
        n++;
    }
    argv[n] = NULL;
    child_start(c, argv);
    return child_wait(c, 20000);
}

/* twine-call's behaviour against any server with the built-in commands. */
static void twine_call_scenarios(const char *endpoint)
{
    child c;
    const char *sum[] = {endpoint, "Sum", "a=13", "b=81", NULL};
    ck_assert_int_eq(twine_call(&c, sum), 0);
    ck_assert_str_eq(c.out, "total=94\n");
    ck_assert_str_eq(c.err, "");

    const char *echo[] = {endpoint, "Echo", "value=a=b c", NULL};
    ck_assert_int_eq(twine_call(&c, echo), 0);
    ck_assert_str_eq(c.out, "value=a=b c\n");

    const char *zero[] = {endpoint, "Divide", "numerator=1", "denominator=0", NULL};
    ck_assert_int_eq(twine_call(&c, zero), 1);
    ck_assert_str_eq(c.out, "");
    ck_assert_msg(strstr(c.err, "ZERO_DIVISION: division by zero") != NULL, "%s", c.err);

    const char *third[] = {endpoint, "Divide", "numerator=1", "denominator=3", NULL};
    ck_assert_int_eq(twine_call(&c, third), 0);
    ck_assert_str_eq(c.out, "result=0.3333333333333333\n");

    const char *nope[] = {endpoint, "Nope", NULL};
    ck_assert_int_eq(twine_call(&c, nope), 1);
    ck_assert_msg(strstr(c.err, "UNHANDLED: Unhandled Command: b'Nope'") != NULL, "%s", c.err);

    const char *bad[] = {endpoint, "Sum", "a=notanumber", "b=1", NULL};
    ck_assert_int_eq(twine_call(&c, bad), 1);
    ck_assert_msg(strstr(c.err, "UNKNOWN: Unknown Error") != NULL, "%s", c.err);

    const char *delay[] = {endpoint, "Delay", "seconds=0.1", NULL};
    ck_assert_int_eq(twine_call(&c, delay), 0);
    ck_assert_str_eq(c.out, "done=True\n");
}

START_TEST(test_twine_call_against_reactord_amp)
{
    tu_reactord d;
    reactord_amp(&d);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp:127.0.0.1:%d", d.port);
    twine_call_scenarios(endpoint);
    snprintf(endpoint, sizeof endpoint, "tcp:host=localhost:port=%d", d.port);
    child c;
    const char *sum[] = {endpoint, "Sum", "a=1", "b=2", NULL};
    ck_assert_int_eq(twine_call(&c, sum), 0);
    ck_assert_str_eq(c.out, "total=3\n");
    reactord_stop(&d);
}
END_TEST

START_TEST(test_twine_call_against_a_twisted_amp_server_over_tcp_and_unix)
{
    require_twisted();
    char dir[] = "/tmp/twine-amp-XXXXXX", path[128];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/amp.sock", dir);
    child server;
    twisted_server(&server, path);
    int port = child_port(&server, 20000);
    char endpoint[256];
    snprintf(endpoint, sizeof endpoint, "tcp:127.0.0.1:%d", port);
    twine_call_scenarios(endpoint);
    snprintf(endpoint, sizeof endpoint, "unix:%s", path);
    child c;
    const char *sum[] = {endpoint, "Sum", "a=13", "b=81", NULL};
    ck_assert_int_eq(twine_call(&c, sum), 0);
    ck_assert_str_eq(c.out, "total=94\n");
    twisted_server_stop(&server);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_twine_call_exit_codes_follow_sysexits)
{
    /* A port nobody listens on: bind one, learn it, close it. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t alen = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &alen);
    close(s);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "tcp:127.0.0.1:%d", ntohs(a.sin_port));
    child c;
    const char *refused[] = {endpoint, "Sum", NULL};
    ck_assert_int_eq(twine_call(&c, refused), 69);
    ck_assert_msg(strstr(c.err, "cannot connect") != NULL, "%s", c.err);

    const char *usage1[] = {"tcp:127.0.0.1", "Sum", NULL};
    ck_assert_int_eq(twine_call(&c, usage1), 64);
    const char *usage2[] = {"tcp:127.0.0.1:1", "Sum", "novalue", NULL};
    ck_assert_int_eq(twine_call(&c, usage2), 64);
    ck_assert_msg(strstr(c.err, "'novalue' is not KEY=VALUE") != NULL, "%s", c.err);
    const char *usage3[] = {"udp:1", "Sum", NULL};
    ck_assert_int_eq(twine_call(&c, usage3), 64);
    const char *usage4[] = {"Sum", NULL};
    ck_assert_int_eq(twine_call(&c, usage4), 64);
    const char *help[] = {"--help", NULL};
    ck_assert_int_eq(twine_call(&c, help), 0);
    ck_assert_ptr_nonnull(strstr(c.out, "Usage:"));

    tu_reactord d;
    reactord_amp(&d);
    snprintf(endpoint, sizeof endpoint, "tcp:127.0.0.1:%d", d.port);
    const char *slow[] = {"--timeout", "0.3", endpoint, "Delay", "seconds=5", NULL};
    long long t0 = tu_now_ms();
    ck_assert_int_eq(twine_call(&c, slow), 75);
    ck_assert_int_lt(tu_now_ms() - t0, 4000);
    ck_assert_msg(strstr(c.err, "no answer to Delay") != NULL, "%s", c.err);
    reactord_stop(&d);
}
END_TEST

/* ------------------------------------------------------------ bytes */

static size_t unhex(const char *hex, unsigned char *out, size_t cap)
{
    size_t n = 0;
    while (hex[0] != '\0' && hex[1] != '\0' && hex[0] != ' ' && hex[0] != '\n' && n < cap) {
        unsigned v;
        sscanf(hex, "%2x", &v);
        out[n++] = (unsigned char)v;
        hex += 2;
    }
    return n;
}

/* Read exactly @p len bytes from @p fd, running @p r meanwhile. */
static size_t read_spinning(tw_reactor *r, int fd, unsigned char *buf, size_t len, int ms)
{
    size_t got = 0;
    long long deadline = tu_now_ms() + ms;
    while (got < len && tu_now_ms() < deadline) {
        tw_reactor_iterate(r, 0.005);
        ssize_t n = recv(fd, buf + got, len - got, MSG_DONTWAIT);
        if (n == 0)
            break;
        if (n > 0)
            got += (size_t)n;
    }
    return got;
}

static tw_factory *amp_module(tw_reactor *r)
{
    const tw_plugin *p = tw__builtin_find("amp");
    ck_assert_ptr_nonnull(p);
    char err[256];
    tw_options *opts = tw_options_parse(p->options, NULL, 0, err, sizeof err);
    tw_factory *f = tw__builtin_protocol("amp")->make_factory(r, opts, err, sizeof err);
    tw_options_free(opts);
    ck_assert_msg(f != NULL, "%s", err);
    return f;
}

/* twine's client: the bytes of the first call of @p name on a new connection. */
static void check_client_bytes(tw_reactor *r, const char *name, const unsigned char *want,
                               size_t wantlen)
{
    tw_factory *f = tw_amp_factory_new();
    tw_amp_factory_set_callbacks(f, on_connected, on_lost, NULL);
    int sv[2];
    ck_assert_int_eq(tw__socketpair(AF_UNIX, SOCK_STREAM, 0, sv, O_CLOEXEC), 0);
    ck_assert_int_eq(tw_transport_adopt(r, sv[0], f), 0);
    tw_amp_values *v = tw_amp_values_new();
    const tw_amp_command *cmd = NULL;
    if (strcmp(name, "sum") == 0) {
        cmd = &amp_sum_command;
        tw_amp_values_set_integer(v, "a", 13);
        tw_amp_values_set_integer(v, "b", 81);
    } else if (strcmp(name, "echo") == 0) {
        cmd = &amp_echo_command;
        tw_amp_values_set_string(v, "value", "\0hello\xff", 7);
    } else if (strcmp(name, "divide") == 0) {
        cmd = &amp_divide_command;
        tw_amp_values_set_integer(v, "numerator", -7);
        tw_amp_values_set_integer(v, "denominator", 2);
    } else if (strcmp(name, "delay") == 0) {
        cmd = &amp_delay_command;
        tw_amp_values_set_float(v, "seconds", 0.1);
    } else if (strcmp(name, "types") == 0) {
        cmd = &TYPES;
        tw_amp_values_free(v);
        v = types_sample();
    }
    ck_assert_msg(cmd != NULL, "no twine call for '%s'", name);
    tw_deferred *d = tw_amp_call_remote(connected_amp, cmd, v);
    tw_amp_values_free(v);
    static unsigned char got[4096];
    size_t n = read_spinning(r, sv[1], got, wantlen, 2000);
    ck_assert_msg(n == wantlen && memcmp(got, want, wantlen) == 0,
                  "twine's %s request differs from Twisted's", name);
    close(sv[1]);
    long long deadline = tu_now_ms() + 2000;
    while (connected_amp != NULL && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.005);
    tw_deferred_add_errback(d, finished, &(tu_amp_outcome){0});
    tw_deferred_unref(d);
    tw_factory_free(f);
}

/* twine's server: its answer to Twisted's @p request must be Twisted's @p want. */
static void check_server_bytes(tw_reactor *r, tw_factory *module, const char *name,
                               const unsigned char *request, size_t reqlen,
                               const unsigned char *want, size_t wantlen)
{
    int sv[2];
    ck_assert_int_eq(tw__socketpair(AF_UNIX, SOCK_STREAM, 0, sv, O_CLOEXEC), 0);
    ck_assert_int_eq(tw_transport_adopt(r, sv[0], module), 0);
    ck_assert_int_eq(tu_write_all(sv[1], request, reqlen), 0);
    static unsigned char got[8192];
    ck_assert_uint_le(wantlen, sizeof got);
    size_t n = read_spinning(r, sv[1], got, wantlen, 2000);
    ck_assert_msg(n == wantlen && memcmp(got, want, wantlen) == 0,
                  "twine's answer for %s differs from Twisted's (%zu of %zu bytes)", name, n,
                  wantlen);
    /* Nothing more follows. */
    ck_assert_uint_eq(read_spinning(r, sv[1], got, 1, 50), 0);
    close(sv[1]);
    spin_ms(r, 10);
}

START_TEST(test_twines_bytes_are_twisteds_bytes)
{
    require_twisted();
    char script[4096];
    script_path(script, sizeof script, "amp_golden.py");
    const char *argv[] = {python(), script, NULL};
    child c;
    child_start(&c, argv);
    ck_assert_msg(child_wait(&c, 20000) == 0, "amp_golden.py failed: %s", c.err);

    tw_reactor *r = tw_reactor_new();
    tw_factory *module = amp_module(r);
    /* The types commands join the module's, as a plugin's commands would. */
    tw_amp_dispatcher *d = tw_amp_factory_dispatcher(module);
    ck_assert_int_eq(tw_amp_register(d, &TYPES, types_responder, NULL), 0);
    ck_assert_int_eq(tw_amp_register(d, &REFUSE, refuse_responder, NULL), 0);
    int clients = 0, servers = 0;
    char *save = NULL;
    for (char *line = strtok_r(c.out, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char kind[16], name[64];
        int at = 0;
        ck_assert_int_eq(sscanf(line, "%15s %63s %n", kind, name, &at), 2);
        static unsigned char a[70000], b[70000];
        size_t alen = unhex(line + at, a, sizeof a);
        if (strcmp(kind, "client") == 0) {
            check_client_bytes(r, name, a, alen);
            clients++;
        } else {
            const char *second = strchr(line + at, ' ');
            ck_assert_ptr_nonnull(second);
            size_t blen = unhex(second + 1, b, sizeof b);
            check_server_bytes(r, module, name, a, alen, b, blen);
            servers++;
        }
    }
    ck_assert_int_eq(clients, 5);
    ck_assert_int_eq(servers, 16);
    tw_reactor_free(r);
    tw_factory_free(module);
}
END_TEST

/* What twine sends back for @p data received as an argument of type @p t: Twisted's RESULT. */
static void twine_result(const tw_amp_type *t, const unsigned char *data, size_t len, char *out,
                         size_t cap)
{
    const tw_amp_arg spec[] = {{"x", t, 0}, {NULL, NULL, 0}};
    tw_amp_box *in = tw_amp_box_new(), *back = tw_amp_box_new();
    ck_assert_int_eq(tw_amp_box_set(in, "x", 1, data, len), 0);
    char err[256];
    tw_amp_values *v = tw_amp_values_from_box(spec, in, err, sizeof err);
    snprintf(out, cap, "ERR");
    if (v != NULL) {
        ck_assert_msg(tw_amp_values_to_box(spec, v, back, 1, err, sizeof err) == 0, "%s", err);
        snprintf(out, cap, "%s", tw_amp_box_get(back, "x", NULL));
    }
    tw_amp_values_free(v);
    tw_amp_box_free(in);
    tw_amp_box_free(back);
}

START_TEST(test_integer_decimal_and_datetime_texts_decode_and_encode_as_twisted_does)
{
    require_twisted();
    char dir[] = "/tmp/twine-amp-texts.XXXXXX", path[64], script[4096];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/texts", dir);
    script_path(script, sizeof script, "amp_texts.py");
    const char *argv[] = {python(), script, "4000", "20261202", path, NULL};
    child c;
    child_start(&c, argv);
    ck_assert_msg(child_wait(&c, 60000) == 0, "amp_texts.py failed: %s", c.err);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    static char line[140000];
    int lines = 0, refused = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        char *kind = strtok(line, " \n"), *hex = strtok(NULL, " \n"), *want = strtok(NULL, "\n");
        ck_assert(kind != NULL && hex != NULL && want != NULL);
        const tw_amp_type *t = strcmp(kind, "integer") == 0   ? TW_AMP_T_INTEGER
                               : strcmp(kind, "decimal") == 0 ? TW_AMP_T_DECIMAL
                                                              : TW_AMP_T_DATETIME;
        static unsigned char data[70000];
        size_t len = strcmp(hex, "-") == 0 ? 0 : unhex(hex, data, sizeof data);
        static char got[140000];
        twine_result(t, data, len, got, sizeof got);
        ck_assert_msg(strcmp(got, want) == 0, "%s %s: twine sends back '%s', Twisted '%s'", kind,
                      hex, got, want);
        lines++;
        refused += strcmp(want, "ERR") == 0;
    }
    fclose(f);
    unlink(path);
    rmdir(dir);
    ck_assert_int_eq(lines, 3 * 4000);
    /* Both outcomes were tried, many times each. */
    ck_assert_int_gt(refused, 1000);
    ck_assert_int_lt(refused, 3 * 4000 - 1000);
}
END_TEST

/* ------------------------------------------------------------ protocol switches */

/* The Switch command of tests/interop/amp_switch.py. */
static const tw_amp_command SWITCH = {
    .name = "Switch",
    .arguments = (const tw_amp_arg[]){{"name", TW_AMP_T_STRING, 0}, {NULL, NULL, 0}},
    .errors = (const tw_amp_error_spec[]){{"NO_SUCH", "no such protocol", 0}, {NULL, NULL, 0}},
    .protocol_switch = 1,
};

/* amp_switch.PAYLOAD: every byte value twice, and bytes that look like a box. */
static size_t switch_payload(unsigned char *out)
{
    static const unsigned char boxish[] = "\x00\x08_command\x00\x03Sum\x00\x00";
    for (int i = 0; i < 512; i++)
        out[i] = (unsigned char)(i & 0xff);
    memcpy(out + 512, boxish, sizeof boxish - 1);
    return 512 + sizeof boxish - 1;
}

/* The protocol a switch hands the connection to: records, maybe echoes. */
typedef struct {
    tw_protocol base;
    unsigned char got[2048];
    size_t len;
    int echo;
} switched;

static void switched_data(tw_protocol *p, const void *data, size_t len)
{
    switched *s = (switched *)p;
    if (s->len + len <= sizeof s->got) {
        memcpy(s->got + s->len, data, len);
        s->len += len;
    }
    if (s->echo)
        tw_transport_write(p->transport, data, len);
}

static void switched_destroy(tw_protocol *p)
{
    free(p);
}

static const tw_protocol_ops switched_ops = {
    .data_received = switched_data,
    .destroy = switched_destroy,
};

static switched *switched_new(int echo)
{
    switched *s = calloc(1, sizeof *s);
    ck_assert_ptr_nonnull(s);
    s->base.ops = &switched_ops;
    s->echo = echo;
    return s;
}

static tw_deferred *switch_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)amp;
    (void)arg;
    const char *name;
    size_t len;
    if (tw_amp_values_get_string(args, "name", &name, &len) < 0 || strcmp(name, "echo") != 0)
        return tw_amp_fail("NO_SUCH", NULL);
    return tw_amp_switch_to(&switched_new(1)->base);
}

static tw_protocol *switched_build(tw_factory *f, const tw_address *peer)
{
    (void)f;
    (void)peer;
    return &switched_new(0)->base;
}

static const tw_factory_ops switched_factory_ops = {.build_protocol = switched_build};

/* Twisted's client switches twine's server to echo, after a refused switch. */
START_TEST(test_a_twisted_client_switches_a_twine_server_to_echo)
{
    require_twisted();
    tw_reactor *r = tw_reactor_new();
    tw_factory *f = amp_module(r);
    ck_assert_int_eq(tw_amp_register(tw_amp_factory_dispatcher(f), &SWITCH, switch_responder,
                                     NULL),
                     0);
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, "127.0.0.1", 0), 0);
    tw_listener *l;
    ck_assert_int_eq(tw_listen(r, &a, NULL, f, &l), 0);
    ck_assert_int_eq(tw_listener_address(l, &a), 0);
    char script[4096], port[16];
    script_path(script, sizeof script, "amp_switch.py");
    snprintf(port, sizeof port, "%d", tw_address_port(&a));
    const char *argv[] = {python(), script, "client", port, NULL};
    child c;
    child_start(&c, argv);
    long long deadline = tu_now_ms() + 40000;
    int status;
    pid_t w = 0;
    while (w != c.pid && tu_now_ms() < deadline) {
        tw_reactor_iterate(r, 0.01);
        child_read(&c);
        w = waitpid(c.pid, &status, WNOHANG);
    }
    ck_assert_msg(w == c.pid, "the Twisted client did not finish: %s", c.err);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the Twisted client failed: %s", c.err);
    close(c.in_fd);
    close(c.out_fd);
    close(c.err_fd);
    tw_listener_close(l);
    tw_reactor_free(r);
    tw_factory_free(f);
}
END_TEST

/* twine's client switches a Twisted server to echo, after a refused switch. */
START_TEST(test_twines_client_switches_a_twisted_server_to_echo)
{
    char script[4096];
    script_path(script, sizeof script, "amp_switch.py");
    const char *argv[] = {python(), script, "server", NULL};
    twisted_peer peer;
    twisted_peer_start(&peer, argv);
    tw_reactor *r = peer.r;
    tw_factory sf;
    tw_factory_init(&sf, &switched_factory_ops);
    tw_amp *amp = connected_amp;

    tu_amp_outcome o;
    memset(&o, 0, sizeof o);
    tw_amp_values *args = tw_amp_values_new();
    tw_amp_values_set_string(args, "name", "none", 4);
    tw_deferred *d = tw_amp_call_switch(amp, &SWITCH, args, &sf);
    tw_deferred_add_both(d, tu_amp_on_result, &o);
    tw_deferred_unref(d);
    long long deadline = tu_now_ms() + 5000;
    while (!o.done && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.01);
    ck_assert(o.done && o.failed);
    ck_assert_str_eq(o.remote_code, "NO_SUCH");
    ck_assert_ptr_null(tw_amp_switched_protocol(amp));
    call(r, &amp_sum_command, ints("a", 20, "b", 22), &o);
    ck_assert_msg(!o.failed, "%s", o.message);
    tw_amp_values_free(o.values);

    memset(&o, 0, sizeof o);
    tw_amp_values_set_string(args, "name", "echo", 4);
    d = tw_amp_call_switch(amp, &SWITCH, args, &sf);
    tw_deferred_add_both(d, tu_amp_on_result, &o);
    tw_deferred_unref(d);
    tw_amp_values_free(args);
    deadline = tu_now_ms() + 5000;
    while (!o.done && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.01);
    ck_assert_msg(o.done && !o.failed, "%s", o.message);
    tu_amp_outcome_free(&o);
    switched *s = (switched *)tw_amp_switched_protocol(amp);
    ck_assert_ptr_nonnull(s);
    unsigned char payload[1024];
    size_t n = switch_payload(payload);
    ck_assert_int_eq(tw_transport_write(s->base.transport, payload, n), 0);
    deadline = tu_now_ms() + 5000;
    while (s->len < n && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.01);
    ck_assert_uint_eq(s->len, n);
    ck_assert_int_eq(memcmp(s->got, payload, n), 0);
    twisted_peer_close(&peer);
}
END_TEST

static Suite *amp_interop_suite(void)
{
    Suite *s = suite_create("amp-interop");
    TCase *tc = tcase_create("twisted");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_a_twisted_client_calls_every_command_of_reactord_amp);
    tcase_add_test(tc, test_twines_client_calls_a_twisted_amp_server);
    tcase_add_test(tc, test_every_amp_type_round_trips_through_a_twisted_server);
    tcase_add_test(tc, test_integer_decimal_and_datetime_texts_decode_and_encode_as_twisted_does);
    tcase_add_test(tc, test_twine_call_against_reactord_amp);
    tcase_add_test(tc, test_twine_call_against_a_twisted_amp_server_over_tcp_and_unix);
    tcase_add_test(tc, test_twine_call_exit_codes_follow_sysexits);
    tcase_add_test(tc, test_twines_bytes_are_twisteds_bytes);
    tcase_add_test(tc, test_a_twisted_client_switches_a_twine_server_to_echo);
    tcase_add_test(tc, test_twines_client_switches_a_twisted_server_to_echo);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(amp_interop_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
