/* SPDX-License-Identifier: MIT */
/*
 * Embedding: a reactor attached to an event_base the host owns
 * (tw_reactor_new_with_base) and a reactor driven by a host's own loop
 * (tw_reactor_iterate). The host keeps calling event_base_loop() or
 * event_base_dispatch(); listeners, connections, timed calls, deferreds and
 * call_from_thread must all work there, and freeing the reactor must hand
 * the base back with nothing of twine left on it.
 *
 * Every host loop here is bounded, by a host-side guard timer or by a
 * deadline, so a broken reactor fails a test instead of hanging it.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <twine.h>

#include "../protocols/builtin.h"

#include "testutil.h"

/* ---- helpers ----------------------------------------------------------- */

/* A built-in echo factory, made the way reactord makes one. */
static tw_factory *make_echo(tw_reactor *r)
{
    char err[256];
    const tw_plugin *echo = tw__builtin_find("echo");
    ck_assert_ptr_nonnull(echo);
    tw_options *o = tw_options_parse(echo->options, NULL, 0, err, sizeof err);
    ck_assert_msg(o != NULL, "%s", err);
    tw_factory *f = tw__builtin_protocol("echo")->make_factory(r, o, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    tw_options_free(o);
    return f;
}

/* Listen with @p f on 127.0.0.1 and an ephemeral port; returns the port. */
static int listen_loopback(tw_reactor *r, tw_factory *f, tw_listener **out)
{
    tw_address addr, bound;
    ck_assert_int_eq(tw_address_from_ip(&addr, "127.0.0.1", 0), 0);
    ck_assert_int_eq(tw_listen(r, &addr, NULL, f, out), 0);
    ck_assert_int_eq(tw_listener_address(*out, &bound), 0);
    return tw_address_port(&bound);
}

/* Nonzero if @p fd has something to read right now. */
static int readable_now(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

/* Let the host's loop accept a client that connected to @p l. */
static void wait_for_connection(struct event_base *base, tw_listener *l)
{
    long long deadline = tu_now_ms() + 5000;
    while (tw_listener_connections(l) == 0 && tu_now_ms() < deadline)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_uint_eq(tw_listener_connections(l), 1);
}

static void set_flag(void *arg)
{
    *(int *)arg += 1;
}

/* Host-side callback: end the host's loop. */
static void host_break(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

/* Host-side callback: count, and leave the loop alone. */
static void host_count(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(int *)arg += 1;
}

/* Bound a host's dispatch: the guard ends the loop after @p seconds. */
static struct event *add_guard(struct event_base *base, double seconds)
{
    struct event *guard = evtimer_new(base, host_break, base);
    struct timeval tv = {(time_t)seconds, (suseconds_t)((seconds - (time_t)seconds) * 1e6)};
    ck_assert_ptr_nonnull(guard);
    ck_assert_int_eq(evtimer_add(guard, &tv), 0);
    return guard;
}

typedef struct {
    struct event_base *base;
    int count;
} breaker;

/* A twine callback that records it ran and ends the host's loop. */
static void count_and_break(void *arg)
{
    breaker *b = arg;
    b->count++;
    event_base_loopbreak(b->base);
}

/* ---- serving under a host loop ----------------------------------------- */

START_TEST(test_reactor_on_host_base_reports_that_base)
{
    struct event_base *base = event_base_new();
    tw_reactor *r = tw_reactor_new_with_base(base);
    ck_assert_ptr_nonnull(r);
    ck_assert_ptr_eq(tw_reactor_event_base(r), base);
    tw_reactor_free(r);
    event_base_free(base);
}
END_TEST

START_TEST(test_new_with_null_base_is_refused)
{
    ck_assert_ptr_null(tw_reactor_new_with_base(NULL));
}
END_TEST

START_TEST(test_echo_is_served_while_host_loops_once_at_a_time)
{
    struct event_base *base = event_base_new();
    tw_reactor *r = tw_reactor_new_with_base(base);
    tw_factory *f = make_echo(r);
    tw_listener *l;
    int port = listen_loopback(r, f, &l);

    /* A host tick keeps EVLOOP_ONCE from blocking for good once the echo
     * is done, as any host with its own periodic work would. */
    struct event *tick = event_new(base, -1, EV_PERSIST, host_break, base);
    struct timeval ten_ms = {0, 10000};
    evtimer_add(tick, &ten_ms);

    int fd = tu_connect("127.0.0.1", port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_write_all(fd, "hello, host", 11), 0);
    char buf[16] = {0};
    long long deadline = tu_now_ms() + 5000;
    while (!readable_now(fd) && tu_now_ms() < deadline)
        ck_assert_int_ge(event_base_loop(base, EVLOOP_ONCE), 0);
    ck_assert_uint_eq(tu_read_exact(fd, buf, 11, 1000), 11);
    ck_assert_str_eq(buf, "hello, host");
    ck_assert_uint_eq(tw_listener_connections(l), 1);

    close(fd);
    event_free(tick);
    tw_listener_close(l);
    tw_reactor_free(r);
    tw_factory_free(f);
    event_base_free(base);
}
END_TEST

typedef struct {
    struct event_base *base;
    char buf[32];
    size_t len;
} host_client;

/* The host's own event on the client socket: collect the echo, then stop. */
static void host_client_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    host_client *c = arg;
    ssize_t n = read((int)fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
    if (n > 0)
        c->len += (size_t)n;
    if (n <= 0 || c->len >= 4)
        event_base_loopbreak(c->base);
}

START_TEST(test_echo_is_served_under_event_base_dispatch)
{
    struct event_base *base = event_base_new();
    tw_reactor *r = tw_reactor_new_with_base(base);
    tw_factory *f = make_echo(r);
    tw_listener *l;
    int port = listen_loopback(r, f, &l);

    host_client c = {.base = base};
    int fd = tu_connect("127.0.0.1", port);
    ck_assert_int_ge(fd, 0);
    struct event *ev = event_new(base, fd, EV_READ | EV_PERSIST, host_client_read, &c);
    event_add(ev, NULL);
    struct event *guard = add_guard(base, 5.0);
    ck_assert_int_eq(tu_write_all(fd, "ping", 4), 0);

    long long t0 = tu_now_ms();
    ck_assert_int_eq(event_base_dispatch(base), 0);
    ck_assert_int_lt(tu_now_ms() - t0, 4000); /* the echo ended it, not the guard */
    ck_assert_uint_eq(c.len, 4);
    ck_assert_str_eq(c.buf, "ping");

    event_free(ev);
    event_free(guard);
    close(fd);
    tw_listener_close(l);
    tw_reactor_free(r);
    tw_factory_free(f);
    event_base_free(base);
}
END_TEST

START_TEST(test_call_later_fires_under_host_dispatch)
{
    struct event_base *base = event_base_new();
    tw_reactor *r = tw_reactor_new_with_base(base);
    breaker b = {.base = base};
    struct event *guard = add_guard(base, 5.0);
    ck_assert_int_eq(tw_reactor_call_later(r, 0.02, count_and_break, &b, NULL), 0);

    long long t0 = tu_now_ms();
    event_base_dispatch(base);
    long long took = tu_now_ms() - t0;
    ck_assert_int_eq(b.count, 1);
    ck_assert_int_ge(took, 15);
    ck_assert_int_lt(took, 4000);
    ck_assert_uint_eq(tw_reactor_pending_calls(r), 0);

    event_free(guard);
    tw_reactor_free(r);
    event_base_free(base);
}
END_TEST

/* A tw_defer_later() callback: note the value it fired with, end the loop. */
static void deferred_fired(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    breaker *b = arg;
    b->count += tw_result_is_failure(res) ? 100 : 1;
    event_base_loopbreak(b->base);
}

START_TEST(test_defer_later_fires_under_host_dispatch)
{
    struct event_base *base = event_base_new();
    tw_reactor *r = tw_reactor_new_with_base(base);
    breaker b = {.base = base};
    struct event *guard = add_guard(base, 5.0);
    tw_deferred *d = tw_defer_later(r, 0.02, NULL, NULL);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(tw_deferred_add_both(d, deferred_fired, &b), 0);
    ck_assert_int_eq(b.count, 0); /* nothing fires before the host loops */

    long long t0 = tu_now_ms();
    event_base_dispatch(base);
    ck_assert_int_lt(tu_now_ms() - t0, 4000);
    ck_assert_int_eq(b.count, 1);

    tw_deferred_unref(d);
    event_free(guard);
    tw_reactor_free(r);
    event_base_free(base);
}
END_TEST

typedef struct {
    tw_reactor *r;
    breaker *b;
    int rc;
} thread_arg;

static void *submit_from_thread(void *arg)
{
    thread_arg *t = arg;
    usleep(10000); /* let the host be blocked in its loop first */
    t->rc = tw_reactor_call_from_thread(t->r, count_and_break, t->b);
    return NULL;
}

START_TEST(test_call_from_thread_wakes_host_dispatch)
{
    struct event_base *base = event_base_new();
    tw_reactor *r = tw_reactor_new_with_base(base);
    breaker b = {.base = base};
    thread_arg t = {r, &b, -1};
    struct event *guard = add_guard(base, 5.0);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, submit_from_thread, &t), 0);

    long long t0 = tu_now_ms();
    event_base_dispatch(base);
    ck_assert_int_lt(tu_now_ms() - t0, 4000);
    pthread_join(th, NULL);
    ck_assert_int_eq(t.rc, 0);
    ck_assert_int_eq(b.count, 1);

    event_free(guard);
    tw_reactor_free(r);
    event_base_free(base);
}
END_TEST

static tw_deferred *after_trigger(void *arg)
{
    *(int *)arg += 1;
    return NULL;
}

START_TEST(test_stop_under_host_loop_completes_without_ending_it)
{
    struct event_base *base = event_base_new();
    tw_reactor *r = tw_reactor_new_with_base(base);
    tw_factory *f = make_echo(r);
    tw_listener *l;
    int port = listen_loopback(r, f, &l);
    int fd = tu_connect("127.0.0.1", port);
    ck_assert_int_ge(fd, 0);
    wait_for_connection(base, l);

    int after = 0;
    ck_assert_int_eq(tw_reactor_add_trigger(r, TW_TRIGGER_AFTER, after_trigger, &after, NULL), 0);
    /* The peer reads nothing until the loop ends: the connection's linger
     * after its FIN must end well within the guard. */
    tw_reactor_set_linger_timeout(r, 0.05);
    tw_reactor_stop(r);
    /* Shutdown drains the connection through the host's loop; only the
     * host's own guard may end that loop. */
    struct event *guard = add_guard(base, 0.3);
    long long t0 = tu_now_ms();
    event_base_dispatch(base);
    ck_assert_int_ge(tu_now_ms() - t0, 250);
    ck_assert_int_eq(after, 1);
    ck_assert_int_eq(tu_wait_eof(fd, 1000), 1);

    close(fd);
    event_free(guard);
    tw_listener_close(l); /* stopped by the shutdown; the handle is still ours */
    tw_reactor_free(r);
    tw_factory_free(f);
    event_base_free(base);
}
END_TEST

typedef struct {
    tw_reactor *r;
    int after, stopping_in_after;
} stop_watch;

static tw_deferred *note_after(void *arg)
{
    stop_watch *w = arg;
    w->after++;
    w->stopping_in_after = tw_reactor_stopping(w->r);
    return NULL;
}

/* A client factory whose protocols count connection_made. */
typedef struct {
    tw_factory base;
    int made;
} counting_factory;

static void counted_made(tw_protocol *p)
{
    ((counting_factory *)p->factory)->made++;
}

static void counted_destroy(tw_protocol *p)
{
    free(p);
}

static const tw_protocol_ops counted_ops = {.connection_made = counted_made,
                                            .destroy = counted_destroy};

static tw_protocol *counted_build(tw_factory *f, const tw_address *peer)
{
    (void)f;
    (void)peer;
    tw_protocol *p = calloc(1, sizeof *p);
    p->ops = &counted_ops;
    return p;
}

static const tw_factory_ops counting_ops = {.build_protocol = counted_build};

START_TEST(test_reactor_is_usable_again_once_a_stop_under_host_loop_completed)
{
    struct event_base *base = event_base_new();
    tw_reactor *r = tw_reactor_new_with_base(base);
    tw_factory *f = make_echo(r);
    tw_listener *l;
    listen_loopback(r, f, &l);
    stop_watch w = {r, 0, -1};
    ck_assert_int_eq(tw_reactor_add_trigger(r, TW_TRIGGER_AFTER, note_after, &w, NULL), 0);
    tw_reactor_stop(r);
    long long deadline = tu_now_ms() + 5000;
    while (tw_reactor_stopping(r) && tu_now_ms() < deadline)
        event_base_loop(base, EVLOOP_NONBLOCK);
    /* The stop completed: the after trigger ran (still stopping there), and
     * then the reactor stopped stopping. */
    ck_assert_int_eq(w.after, 1);
    ck_assert_int_eq(w.stopping_in_after, 1);
    ck_assert_int_eq(tw_reactor_stopping(r), 0);
    tw_listener_close(l);

    /* New listeners, connects and a restarted reconnecting client work. */
    int port = listen_loopback(r, f, &l);
    counting_factory cf;
    tw_factory_init(&cf.base, &counting_ops);
    cf.made = 0;
    char desc[64];
    snprintf(desc, sizeof desc, "tcp:127.0.0.1:%d", port);
    tw_endpoint e;
    ck_assert_int_eq(tw_endpoint_parse_client(desc, &e, NULL, 0), 0);
    tw_reconnect *rc;
    tw_listener *l2;
    ck_assert_int_eq(tw_reconnect_new(r, &e, &cf.base, NULL, &rc), 0);
    ck_assert_int_eq(tw_reconnect_start(rc), 0);
    deadline = tu_now_ms() + 5000;
    while ((cf.made == 0 || tw_listener_connections(l) == 0) && tu_now_ms() < deadline)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(cf.made, 1);
    ck_assert_uint_eq(tw_listener_connections(l), 1);

    /* And a second stop runs its phases again. */
    w.after = 0;
    ck_assert_int_eq(tw_reactor_add_trigger(r, TW_TRIGGER_AFTER, note_after, &w, NULL), 0);
    tw_reactor_stop(r);
    deadline = tu_now_ms() + 5000;
    while (tw_reactor_stopping(r) && tu_now_ms() < deadline)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(w.after, 1);
    ck_assert_int_eq(tw_reactor_stopping(r), 0);

    /* The stop stopped the service; started again, it connects again. */
    ck_assert(!tw_reconnect_running(rc));
    tw_address again;
    ck_assert_int_eq(tw_address_from_ip(&again, "127.0.0.1", port), 0);
    ck_assert_int_eq(tw_listen(r, &again, NULL, f, &l2), 0); /* the same port */
    ck_assert_int_eq(tw_reconnect_start(rc), 0);
    deadline = tu_now_ms() + 5000;
    while (cf.made < 2 && tu_now_ms() < deadline)
        event_base_loop(base, EVLOOP_NONBLOCK);
    ck_assert_int_eq(cf.made, 2);

    tw_listener_close(l2);
    tw_reconnect_free(rc);
    tw_listener_close(l);
    ck_assert_int_eq(tw_reactor_free(r), 0);
    tw_factory_free(f);
    event_base_free(base);
}
END_TEST

/* ---- freeing hands the base back ---------------------------------------- */

START_TEST(test_free_leaves_host_base_usable)
{
    struct event_base *base = event_base_new();
    ck_assert_int_eq(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 0);
    tw_reactor *r = tw_reactor_new_with_base(base);
    tw_factory *f = make_echo(r);
    tw_listener *l;
    int port = listen_loopback(r, f, &l);
    int fd = tu_connect("127.0.0.1", port);
    ck_assert_int_ge(fd, 0);
    wait_for_connection(base, l);
    int fired = 0;
    ck_assert_int_eq(tw_reactor_call_later(r, 60, set_flag, &fired, NULL), 0);
    ck_assert_int_gt(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 0);

    /* Freeing closes the listener and the connection and drops the timer. */
    tw_reactor_free(r);
    ck_assert_int_eq(event_base_get_num_events(base, EVENT_BASE_COUNT_ADDED), 0);
    ck_assert_int_eq(event_base_get_num_events(base, EVENT_BASE_COUNT_ACTIVE), 0);
    int closed = tu_wait_eof(fd, 1000); /* aborted: EOF or a reset */
    ck_assert_msg(closed == 1 || closed == -ECONNRESET, "connection not closed: %d", closed);
    ck_assert_int_eq(fired, 0);

    /* The host's own event still runs, and with nothing of twine left on
     * the base, dispatch returns on its own once that event is done. */
    int host_fired = 0;
    struct event *mine = evtimer_new(base, host_count, &host_fired);
    struct timeval tv = {0, 1000};
    evtimer_add(mine, &tv);
    long long t0 = tu_now_ms();
    ck_assert_int_eq(event_base_dispatch(base), 1); /* 1: no events left */
    ck_assert_int_lt(tu_now_ms() - t0, 1000);
    ck_assert_int_eq(host_fired, 1);

    close(fd);
    event_free(mine);
    tw_listener_close(l); /* stopped by the free; the handle is still ours */
    tw_factory_free(f);
    event_base_free(base);
}
END_TEST

START_TEST(test_two_reactors_in_turn_on_one_host_base)
{
    struct event_base *base = event_base_new();
    for (int i = 0; i < 2; i++) {
        tw_reactor *r = tw_reactor_new_with_base(base);
        ck_assert_ptr_nonnull(r);
        breaker b = {.base = base};
        struct event *guard = add_guard(base, 5.0);
        ck_assert_int_eq(tw_reactor_call_later(r, 0, count_and_break, &b, NULL), 0);
        event_base_dispatch(base);
        ck_assert_int_eq(b.count, 1);
        event_free(guard);
        tw_reactor_free(r);
    }
    event_base_free(base);
}
END_TEST

/* ---- tw_reactor_iterate --------------------------------------------------- */

START_TEST(test_iterate_zero_returns_at_once_when_idle)
{
    struct event_base *base = event_base_new();
    /* _i: 0 for a reactor with its own base, 1 for a host-owned base. */
    tw_reactor *r = _i == 0 ? tw_reactor_new() : tw_reactor_new_with_base(base);
    tw_factory *f = make_echo(r);
    tw_listener *l;
    listen_loopback(r, f, &l);
    int fired = 0;
    ck_assert_int_eq(tw_reactor_call_later(r, 60, set_flag, &fired, NULL), 0);

    for (int i = 0; i < 5; i++) {
        long long t0 = tu_now_ms();
        ck_assert_int_eq(tw_reactor_iterate(r, 0), 0);
        ck_assert_int_lt(tu_now_ms() - t0, 1000); /* never blocked on the 60 s call */
    }
    ck_assert_int_eq(fired, 0);

    tw_listener_close(l);
    tw_reactor_free(r);
    tw_factory_free(f);
    event_base_free(base);
}
END_TEST

START_TEST(test_iterate_zero_runs_a_due_call)
{
    tw_reactor *r = tw_reactor_new();
    int fired = 0;
    ck_assert_int_eq(tw_reactor_call_later(r, 0, set_flag, &fired, NULL), 0);
    ck_assert_int_eq(tw_reactor_iterate(r, 0), 0);
    ck_assert_int_eq(fired, 1);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_iterate_zero_runs_a_call_from_thread)
{
    tw_reactor *r = tw_reactor_new();
    int fired = 0;
    ck_assert_int_eq(tw_reactor_call_from_thread(r, set_flag, &fired), 0);
    ck_assert_int_eq(tw_reactor_iterate(r, 0), 0);
    ck_assert_int_eq(fired, 1);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_iterate_zero_serves_pending_io)
{
    tw_reactor *r = tw_reactor_new();
    tw_factory *f = make_echo(r);
    tw_listener *l;
    int port = listen_loopback(r, f, &l);
    int fd = tu_connect("127.0.0.1", port);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(tu_write_all(fd, "abc", 3), 0);

    /* The connection and its bytes are already waiting in the kernel, so
     * a few non-blocking passes (accept, then read and echo) serve them. */
    int passes = 0;
    while (!readable_now(fd) && passes < 10) {
        long long t0 = tu_now_ms();
        ck_assert_int_eq(tw_reactor_iterate(r, 0), 0);
        ck_assert_int_lt(tu_now_ms() - t0, 1000); /* a pass, not a wait */
        passes++;
    }
    ck_assert_int_le(passes, 3);
    char buf[4] = {0};
    ck_assert_uint_eq(tu_read_exact(fd, buf, 3, 1000), 3);
    ck_assert_str_eq(buf, "abc");

    close(fd);
    tw_listener_close(l);
    tw_reactor_free(r);
    tw_factory_free(f);
}
END_TEST

START_TEST(test_iterate_with_timeout_waits_when_idle)
{
    tw_reactor *r = tw_reactor_new();
    long long t0 = tu_now_ms();
    ck_assert_int_eq(tw_reactor_iterate(r, 0.05), 0);
    long long took = tu_now_ms() - t0;
    ck_assert_int_ge(took, 40);
    ck_assert_int_lt(took, 1000);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_iterate_with_timeout_returns_when_work_arrives)
{
    tw_reactor *r = tw_reactor_new();
    int fired = 0;
    ck_assert_int_eq(tw_reactor_call_later(r, 0.02, set_flag, &fired, NULL), 0);
    long long t0 = tu_now_ms();
    ck_assert_int_eq(tw_reactor_iterate(r, 5.0), 0);
    ck_assert_int_lt(tu_now_ms() - t0, 1000);
    ck_assert_int_eq(fired, 1);
    tw_reactor_free(r);
}
END_TEST

static void stop_reactor(void *arg)
{
    tw_reactor_stop(arg);
}

START_TEST(test_iterate_with_timeout_leaves_no_pending_exit_behind)
{
    /* An iterate that returned early must not end a later loop when its
     * own timeout would have passed. */
    tw_reactor *r = tw_reactor_new();
    int fired = 0;
    ck_assert_int_eq(tw_reactor_call_later(r, 0.01, set_flag, &fired, NULL), 0);
    ck_assert_int_eq(tw_reactor_iterate(r, 0.2), 0);
    ck_assert_int_eq(fired, 1);

    ck_assert_int_eq(tw_reactor_call_later(r, 0.5, stop_reactor, r, NULL), 0);
    long long t0 = tu_now_ms();
    ck_assert_int_eq(tw_reactor_run(r), 0);
    ck_assert_int_ge(tu_now_ms() - t0, 450);
    tw_reactor_free(r);
}
END_TEST

typedef struct {
    tw_reactor *r;
    double delay;
    int fired;
} late_call;

static void mark_fired(void *arg)
{
    ((late_call *)arg)->fired = 1;
}

/* Runs inside a loop pass: keep the pass busy, then schedule. */
static void busy_then_call_later(void *arg)
{
    late_call *lc = arg;
    long long t0 = tu_now_ms();
    while (tu_now_ms() - t0 < 30)
        ;
    ck_assert_int_eq(tw_reactor_call_later(lc->r, lc->delay, mark_fired, lc, NULL), 0);
}

START_TEST(test_call_made_late_in_a_pass_does_not_wake_the_loop_early)
{
    /* libevent reckons a new timeout from the time it cached at the top of
     * the pass; a call scheduled 30 ms into a pass must still not wake the
     * next iterate before it is due, or that iterate returns having run
     * nothing. */
    tw_reactor *r = tw_reactor_new();
    late_call lc = {r, 0.01, 0};
    ck_assert_int_eq(tw_reactor_call_later(r, 0, busy_then_call_later, &lc, NULL), 0);
    ck_assert_int_eq(tw_reactor_iterate(r, 1.0), 0);
    ck_assert_uint_eq(tw_reactor_pending_calls(r), 1);
    long long t0 = tu_now_ms();
    ck_assert_int_eq(tw_reactor_iterate(r, 1.0), 0);
    ck_assert_int_eq(lc.fired, 1);
    ck_assert_int_ge(tu_now_ms() - t0, 8);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_iterate_with_timeout_runs_each_short_call)
{
    /* libevent's clock is CLOCK_MONOTONIC_COARSE, a tick behind ours: a
     * deadline handed over without that lag expires early now and then,
     * and the iterate it ends has run nothing. Many short delays spread
     * over a tick make that visible. */
    tw_reactor *r = tw_reactor_new();
    for (int i = 0; i < 400; i++) {
        int fired = 0;
        ck_assert_int_eq(tw_reactor_call_later(r, (i % 40) * 1e-4, set_flag, &fired, NULL), 0);
        ck_assert_int_eq(tw_reactor_iterate(r, 1.0), 0);
        ck_assert_msg(fired == 1, "iterate %d returned before its %.1f ms call ran", i,
                      (i % 40) * 0.1);
    }
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_iterate_rejects_a_negative_or_nan_timeout)
{
    tw_reactor *r = tw_reactor_new();
    ck_assert_int_eq(tw_reactor_iterate(r, -1), -EINVAL);
    ck_assert_int_eq(tw_reactor_iterate(r, NAN), -EINVAL);
    tw_reactor_free(r);
}
END_TEST

static Suite *embed_suite(void)
{
    Suite *s = suite_create("embed");
    TCase *tc = tcase_create("host base");
    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_reactor_on_host_base_reports_that_base);
    tcase_add_test(tc, test_new_with_null_base_is_refused);
    tcase_add_test(tc, test_echo_is_served_while_host_loops_once_at_a_time);
    tcase_add_test(tc, test_echo_is_served_under_event_base_dispatch);
    tcase_add_test(tc, test_call_later_fires_under_host_dispatch);
    tcase_add_test(tc, test_defer_later_fires_under_host_dispatch);
    tcase_add_test(tc, test_call_from_thread_wakes_host_dispatch);
    tcase_add_test(tc, test_stop_under_host_loop_completes_without_ending_it);
    tcase_add_test(tc, test_reactor_is_usable_again_once_a_stop_under_host_loop_completed);
    tcase_add_test(tc, test_free_leaves_host_base_usable);
    tcase_add_test(tc, test_two_reactors_in_turn_on_one_host_base);
    suite_add_tcase(s, tc);

    tc = tcase_create("iterate");
    tcase_set_timeout(tc, 20);
    tcase_add_loop_test(tc, test_iterate_zero_returns_at_once_when_idle, 0, 2);
    tcase_add_test(tc, test_iterate_zero_runs_a_due_call);
    tcase_add_test(tc, test_iterate_zero_runs_a_call_from_thread);
    tcase_add_test(tc, test_iterate_zero_serves_pending_io);
    tcase_add_test(tc, test_iterate_with_timeout_waits_when_idle);
    tcase_add_test(tc, test_iterate_with_timeout_returns_when_work_arrives);
    tcase_add_test(tc, test_iterate_with_timeout_leaves_no_pending_exit_behind);
    tcase_add_test(tc, test_call_made_late_in_a_pass_does_not_wake_the_loop_early);
    tcase_add_test(tc, test_iterate_with_timeout_runs_each_short_call);
    tcase_add_test(tc, test_iterate_rejects_a_negative_or_nan_timeout);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(embed_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
