/* SPDX-License-Identifier: MIT */
/*
 * Interoperability with Twisted's own receivers (twisted.protocols.basic):
 * LineReceiver, Int32StringReceiver and NetstringReceiver, over real
 * loopback connections, in both directions:
 *
 *   - a twine server (tw_line_receiver / tw_string_receiver) and Twisted's
 *     client (tests/interop/basic_peer.py client ...);
 *   - Twisted's server (basic_peer.py server ...) and a twine client, whose
 *     connected socket is handed to tw_transport_adopt().
 *
 * Both sides speak the same little protocol: every message is echoed, and
 * "gen N" is answered with N bytes of 'g'. Each direction checks pipelined
 * echoes, a message of exactly the maximum length both ways, and one byte
 * over it both ways (the receiving side refuses it and the connection
 * closes).
 *
 * The peer runs under $PYTHON_TWISTED (default /usr/bin/python3). Without
 * Twisted these tests fail; they never skip.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <twine.h>
#include <twine/framing.h>
#include <twine/line.h>

#include "core/fd_internal.h"
#include "testutil.h"

enum { K_LINE, K_INT32, K_NETSTRING };
static const char *const kind_names[] = {"line", "int32", "netstring"};
/* Larger than one 64 KiB read for the prefixed kinds, so messages span reads. */
static const size_t kind_max[] = {20000, 100000, 100000};

typedef struct {
    char *data;
    size_t len;
} msg;

typedef struct {
    tw_factory base;
    int kind;
    size_t max_length;
    int serving;
    /* what the receivers reported */
    int over_limit;
    int made, lost;
    /* client side: what to send on connect, what must come back */
    msg *send;
    size_t nsend;
    msg *expect;
    size_t nexpect, got;
    int close_when_done;
    char failure[256];
} peer_factory;

typedef struct {
    tw_protocol base;
    peer_factory *f;
    tw_line_receiver lr;
    tw_string_receiver sr;
} peer;

static void send_message(peer *p, const void *data, size_t len)
{
    if (p->f->kind == K_LINE)
        tw_line_receiver_send_line(&p->lr, data, len);
    else
        ck_assert_int_eq(tw_string_receiver_send_string(&p->sr, data, len), 0);
}

static void on_message(peer *p, const char *data, size_t len)
{
    peer_factory *f = p->f;
    if (f->serving) {
        if (len > 4 && memcmp(data, "gen ", 4) == 0) {
            char num[32];
            snprintf(num, sizeof num, "%.*s", (int)(len - 4), data + 4);
            size_t n = (size_t)strtoul(num, NULL, 10);
            char *g = malloc(n + 1);
            memset(g, 'g', n);
            send_message(p, g, n);
            free(g);
        } else {
            send_message(p, data, len);
        }
        return;
    }
    if (f->got >= f->nexpect) {
        snprintf(f->failure, sizeof f->failure, "unexpected message %zu (%zu bytes)", f->got,
                 len);
        f->got++;
        return;
    }
    const msg *want = &f->expect[f->got];
    if (f->failure[0] == '\0' &&
        (want->len != len || (len > 0 && memcmp(want->data, data, len) != 0)))
        snprintf(f->failure, sizeof f->failure, "message %zu: expected %zu bytes, got %zu",
                 f->got, want->len, len);
    if (++f->got == f->nexpect && f->close_when_done)
        tw_transport_lose_connection(p->base.transport);
}

static void on_line(tw_line_receiver *lr, const char *line, size_t len)
{
    on_message(tw_container_of(lr, peer, lr), line, len);
}

static void on_line_too_long(tw_line_receiver *lr, const char *data, size_t len)
{
    (void)data;
    (void)len;
    peer *p = tw_container_of(lr, peer, lr);
    p->f->over_limit++;
    tw_transport_lose_connection(p->base.transport);
}

static void on_string(tw_string_receiver *sr, const void *data, size_t len)
{
    on_message(tw_container_of(sr, peer, sr), data, len);
}

static void on_limit(tw_string_receiver *sr, uint64_t length)
{
    peer *p = tw_container_of(sr, peer, sr);
    ck_assert_uint_eq(length, p->f->max_length + 1);
    p->f->over_limit++;
    tw_transport_lose_connection(p->base.transport);
}

static const tw_line_receiver_ops line_ops = {.line_received = on_line,
                                              .line_length_exceeded = on_line_too_long};
static const tw_string_receiver_ops string_ops = {.string_received = on_string,
                                                  .length_limit_exceeded = on_limit};

static void peer_made(tw_protocol *base)
{
    peer *p = tw_container_of(base, peer, base);
    p->f->made++;
    for (size_t i = 0; i < p->f->nsend; i++)
        send_message(p, p->f->send[i].data, p->f->send[i].len);
}

static void peer_data(tw_protocol *base, const void *data, size_t len)
{
    peer *p = tw_container_of(base, peer, base);
    if (p->f->kind == K_LINE)
        tw_line_receiver_data_received(&p->lr, data, len);
    else
        tw_string_receiver_data_received(&p->sr, data, len);
}

static void peer_lost(tw_protocol *base, const tw_failure *reason)
{
    (void)reason;
    peer *p = tw_container_of(base, peer, base);
    /* A netstring receiver refuses an over-long length by itself. */
    if (p->f->kind == K_NETSTRING && tw_string_receiver_broken(&p->sr))
        p->f->over_limit++;
    p->f->lost++;
}

static void peer_pause(tw_protocol *base)
{
    peer *p = tw_container_of(base, peer, base);
    if (p->f->kind == K_LINE)
        tw_line_receiver_pause_producing(&p->lr);
    else
        tw_string_receiver_pause_producing(&p->sr);
}

static void peer_resume(tw_protocol *base)
{
    peer *p = tw_container_of(base, peer, base);
    if (p->f->kind == K_LINE)
        tw_line_receiver_resume_producing(&p->lr);
    else
        tw_string_receiver_resume_producing(&p->sr);
}

static void peer_destroy(tw_protocol *base)
{
    peer *p = tw_container_of(base, peer, base);
    tw_line_receiver_cleanup(&p->lr);
    tw_string_receiver_cleanup(&p->sr);
    free(p);
}

static const tw_protocol_ops peer_ops = {
    .connection_made = peer_made,
    .data_received = peer_data,
    .connection_lost = peer_lost,
    .pause_producing = peer_pause,
    .resume_producing = peer_resume,
    .destroy = peer_destroy,
};

static tw_protocol *peer_build(tw_factory *base, const tw_address *addr)
{
    (void)addr;
    peer_factory *f = tw_container_of(base, peer_factory, base);
    peer *p = calloc(1, sizeof *p);
    ck_assert_ptr_nonnull(p);
    p->base.ops = &peer_ops;
    p->f = f;
    tw_line_receiver_init(&p->lr, &p->base, &line_ops);
    tw_line_receiver_set_max_length(&p->lr, f->max_length);
    tw_framing framing = f->kind == K_INT32 ? TW_FRAMING_INT32 : TW_FRAMING_NETSTRING;
    ck_assert_int_eq(tw_string_receiver_init(&p->sr, &p->base, framing, &string_ops), 0);
    tw_string_receiver_set_max_length(&p->sr, f->max_length);
    return &p->base;
}

static const tw_factory_ops peer_factory_ops = {.build_protocol = peer_build};

static void factory_init(peer_factory *f, int kind, int serving)
{
    memset(f, 0, sizeof *f);
    tw_factory_init(&f->base, &peer_factory_ops);
    f->kind = kind;
    f->max_length = kind_max[kind];
    f->serving = serving;
}

/* The payload of n bytes the Python peer also uses (no CR/LF for lines). */
static msg payload(int kind, size_t n, char fill)
{
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    msg m = {malloc(n + 1), n};
    for (size_t i = 0; i < n; i++)
        m.data[i] = fill ? fill : kind == K_LINE ? alnum[i % 36] : (char)(i % 256);
    return m;
}

static msg text(const char *s)
{
    msg m = {strdup(s), strlen(s)};
    return m;
}

/* "gen N": ask the peer for N bytes of 'g'. */
static msg gen(size_t n)
{
    char buf[32];
    snprintf(buf, sizeof buf, "gen %zu", n);
    return text(buf);
}

static void free_msgs(msg *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].data);
    free(v);
}

/* ------------------------------------------------------------ the peer */

static const char *python(void)
{
    const char *py = getenv("PYTHON_TWISTED");
    return py != NULL && py[0] != '\0' ? py : "/usr/bin/python3";
}

static void script_path(char *buf, size_t len)
{
    const char *srcdir = getenv("TWINE_SRCDIR");
    if (srcdir != NULL && srcdir[0] != '\0') {
        snprintf(buf, len, "%s/tests/interop/basic_peer.py", srcdir);
    } else {
        char here[4096];
        snprintf(here, sizeof here, "%s", __FILE__);
        snprintf(buf, len, "%s/interop/basic_peer.py", dirname(here));
    }
}

/* Start the peer with its stdout on a pipe; stderr is ours. */
static pid_t spawn_peer(const char *role, int kind, const char *port, int *out_fd)
{
    char script[4096], max[32];
    script_path(script, sizeof script);
    snprintf(max, sizeof max, "%zu", kind_max[kind]);
    int fds[2];
    ck_assert_int_eq(tw__pipe(fds, O_CLOEXEC), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        const char *argv[] = {python(), script, role, kind_names[kind], max, port, NULL};
        execv(argv[0], (char *const *)argv);
        dprintf(STDOUT_FILENO, "FAIL: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    *out_fd = fds[0];
    return pid;
}

/* Read what the peer printed until EOF or the timeout. */
static void read_output(int fd, char *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    long long deadline = tu_now_ms() + timeout_ms;
    while (got + 1 < len && tu_now_ms() < deadline) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t n = read(fd, buf + got, len - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        if (strchr(buf, '\n') != NULL && strncmp(buf, "PORT ", 5) == 0)
            break;
    }
    buf[got] = '\0';
}

typedef struct {
    tw_reactor *r;
    pid_t pid;
    int status, exited;
    const int *flag;
    int target;
    double deadline;
} waiter;

static void poll_child(void *arg)
{
    waiter *w = arg;
    if (w->pid > 0 && waitpid(w->pid, &w->status, WNOHANG) == w->pid) {
        w->exited = 1;
        tw_reactor_stop(w->r);
        return;
    }
    if (w->flag != NULL && *w->flag >= w->target) {
        tw_reactor_stop(w->r);
        return;
    }
    if (tw_reactor_seconds(w->r) > w->deadline) {
        tw_reactor_stop(w->r);
        return;
    }
    tw_reactor_call_later(w->r, 0.005, poll_child, w, NULL);
}

/* Run the loop until the child exits, *flag reaches target, or the timeout. */
static void run_until(waiter *w, double timeout)
{
    w->deadline = tw_reactor_seconds(w->r) + timeout;
    tw_reactor_call_later(w->r, 0, poll_child, w, NULL);
    tw_reactor_run(w->r);
}

/* ------------------------------------------------------------ tests */

START_TEST(test_twisted_is_installed_for_the_interop_peer)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import twisted.protocols.basic' 2>/dev/null", python());
    ck_assert_msg(system(cmd) == 0,
                  "%s cannot import twisted: install python3-twisted (or set PYTHON_TWISTED); "
                  "the interop tests need it",
                  python());
}
END_TEST

START_TEST(test_twine_server_talks_with_twisted_client)
{
    int kind = _i;
    tw_reactor *r = tw_reactor_new();
    peer_factory f;
    factory_init(&f, kind, 1);
    tw_address addr;
    tw_address_from_ip(&addr, "127.0.0.1", 0);
    tw_listener *l;
    ck_assert_int_eq(tw_listen(r, &addr, NULL, &f.base, &l), 0);
    tw_address bound;
    tw_listener_address(l, &bound);
    char port[16];
    snprintf(port, sizeof port, "%d", tw_address_port(&bound));

    int out;
    waiter w = {.r = r};
    w.pid = spawn_peer("client", kind, port, &out);
    run_until(&w, 45);
    if (!w.exited) {
        kill(w.pid, SIGKILL);
        waitpid(w.pid, &w.status, 0);
    }
    char text_out[4096];
    read_output(out, text_out, sizeof text_out, 1000);
    close(out);
    tw_listener_close(l);
    tw_reactor_free(r);

    ck_assert_msg(w.exited, "the Twisted %s client did not finish: %s", kind_names[kind],
                  text_out);
    ck_assert_msg(WIFEXITED(w.status) && WEXITSTATUS(w.status) == 0 &&
                      strstr(text_out, "OK") != NULL,
                  "Twisted %s client against twine: %s", kind_names[kind], text_out);
    /* Three connections; twine refused exactly the one message of max + 1. */
    ck_assert_int_eq(f.made, 3);
    ck_assert_int_eq(f.lost, 3);
    ck_assert_int_eq(f.over_limit, 1);
}
END_TEST

/* Connect a twine client to the Twisted server and run it to connection_lost. */
static void run_client(tw_reactor *r, peer_factory *f, int port)
{
    int fd = tu_connect("127.0.0.1", port);
    ck_assert_int_ge(fd, 0);
    int lost = f->lost;
    ck_assert_int_eq(tw_transport_adopt(r, fd, &f->base), 0);
    waiter w = {.r = r, .flag = &f->lost, .target = lost + 1};
    run_until(&w, 30);
    ck_assert_msg(f->lost == lost + 1, "the %s connection to Twisted did not end",
                  kind_names[f->kind]);
}

START_TEST(test_twisted_server_talks_with_twine_client)
{
    int kind = _i;
    size_t max = kind_max[kind];
    int out;
    pid_t pid = spawn_peer("server", kind, NULL, &out);
    char banner[256];
    read_output(out, banner, sizeof banner, 15000);
    int port = strncmp(banner, "PORT ", 5) == 0 ? atoi(banner + 5) : 0;
    if (port <= 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        ck_abort_msg("the Twisted %s server did not start: %s", kind_names[kind], banner);
    }
    tw_reactor *r = tw_reactor_new();
    peer_factory f;
    factory_init(&f, kind, 0);

    /* 1. Pipelined echoes, exactly max both ways. */
    size_t n = 104;
    msg *send = calloc(n, sizeof *send), *expect = calloc(n, sizeof *expect);
    send[0] = text("hello");
    send[1] = text("");
    for (size_t i = 0; i < 100; i++) {
        char m[16];
        snprintf(m, sizeof m, "m%zu", i);
        send[2 + i] = text(m);
    }
    send[102] = payload(kind, max, 0);
    send[103] = gen(max);
    for (size_t i = 0; i < 103; i++) {
        expect[i].data = malloc(send[i].len + 1);
        memcpy(expect[i].data, send[i].data, send[i].len);
        expect[i].len = send[i].len;
    }
    expect[103] = payload(kind, max, 'g');
    f.send = send;
    f.nsend = n;
    f.expect = expect;
    f.nexpect = n;
    f.close_when_done = 1;
    run_client(r, &f, port);
    ck_assert_msg(f.failure[0] == '\0', "%s: %s", kind_names[kind], f.failure);
    ck_assert_uint_eq(f.got, n);
    ck_assert_int_eq(f.over_limit, 0);
    free_msgs(send, n);
    free_msgs(expect, n);

    /* 2. max + 1 to Twisted: it closes without an answer. */
    msg big = payload(kind, max + 1, 0);
    f.send = &big;
    f.nsend = 1;
    f.expect = NULL;
    f.nexpect = 0;
    f.got = 0;
    run_client(r, &f, port);
    ck_assert_uint_eq(f.got, 0);
    ck_assert_int_eq(f.over_limit, 0);
    free(big.data);

    /* 3. max + 1 from Twisted: twine's receiver refuses it. */
    msg ask = gen(max + 1);
    f.send = &ask;
    run_client(r, &f, port);
    ck_assert_uint_eq(f.got, 0);
    ck_assert_int_eq(f.over_limit, 1);
    free(ask.data);

    tw_reactor_free(r);
    kill(pid, SIGTERM);
    int status = tu_wait_child(pid, 10000);
    close(out);
    ck_assert_msg(status != -1, "the Twisted server did not stop on SIGTERM");
}
END_TEST

static Suite *interop_suite(void)
{
    Suite *s = suite_create("receiver interop");
    TCase *tc = tcase_create("twisted");
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_twisted_is_installed_for_the_interop_peer);
    tcase_add_loop_test(tc, test_twine_server_talks_with_twisted_client, K_LINE, K_NETSTRING + 1);
    tcase_add_loop_test(tc, test_twisted_server_talks_with_twine_client, K_LINE, K_NETSTRING + 1);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(interop_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
