/* SPDX-License-Identifier: MIT */
/*
 * Reentrancy: every public object may be closed, freed, stopped or
 * cancelled from inside its own callbacks, and a reactor may be freed in any
 * state. Each test makes the call at the worst moment and then lets the code
 * that made the callback carry on; under ASan (CI stage 2) a use after free
 * fails the test. Where a call cannot be allowed (freeing a reactor from
 * inside its own callbacks) it must fail with an error code and change
 * nothing.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>
#include <twine.h>
#include <twine/udp.h>

#include "core/fd_internal.h"
#include "recorder.h"
#include "testutil.h"

/* ------------------------------------------------------------ timers */

static int fired;

static void fire_count(void *arg)
{
    (void)arg;
    fired++;
}

static void release_count(void *arg)
{
    (*(int *)arg)++;
}

START_TEST(test_free_with_deferred_timeout_pending_on_host_base)
{
    struct event_base *base = event_base_new();
    tw_reactor *r = tw_reactor_new_with_base(base);
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    ck_assert_int_eq(tw_deferred_add_timeout(d, r, 100), 0);
    tw_deferred_unref(d);
    tw_reactor_free(r);
    event_base_free(base);
}
END_TEST

START_TEST(test_free_with_defer_later_pending)
{
    tw_reactor *r = tw_reactor_new();
    tw_deferred *d = tw_defer_later(r, 100, NULL, NULL);
    ck_assert_ptr_nonnull(d);
    tw_deferred *kept = tw_defer_later(r, 50, NULL, NULL);
    tw_reactor_free(r);
    /* The timer was dropped: the deferred never fires, and stays valid. */
    ck_assert(!tw_deferred_called(kept));
    tw_deferred_unref(kept);
    tw_deferred_unref(d);
}
END_TEST

/* A release function that schedules, cancels and releases other calls
 * while the reactor is dropping them. */
static tw_call *other_call;
static int releases, late_dropped;

static void release_and_meddle(void *arg)
{
    tw_reactor *r = arg;
    releases++;
    if (other_call != NULL) {
        ck_assert_int_eq(tw_call_cancel(other_call), TW_ESTATE);
        tw_call_release(other_call);
        other_call = NULL;
        /* A call made while the reactor goes is dropped in turn. */
        ck_assert_int_eq(
            tw_reactor_call_later_full(r, 0, fire_count, &late_dropped, release_count, NULL), 0);
    }
}

START_TEST(test_free_with_calls_whose_release_touches_other_calls)
{
    tw_reactor *r = tw_reactor_new();
    tw_call *c = NULL;
    ck_assert_int_eq(tw_reactor_call_later_full(r, 5, fire_count, r, release_and_meddle, &c),
                     0);
    ck_assert_int_eq(tw_reactor_call_later(r, 6, fire_count, NULL, &other_call), 0);
    ck_assert_int_eq(tw_reactor_call_later_full(r, 7, fire_count, r, release_and_meddle, NULL),
                     0);
    releases = late_dropped = fired = 0;
    tw_reactor_free(r);
    ck_assert_int_eq(releases, 2);
    ck_assert_int_eq(late_dropped, 1);
    ck_assert_int_eq(fired, 0);
    ck_assert(!tw_call_active(c));
    tw_call_release(c);
}
END_TEST

static tw_call *self_call;

static void cancel_self(void *arg)
{
    (void)arg;
    fired++;
    /* Already running: nothing to cancel, and the handle stays valid. */
    ck_assert_int_eq(tw_call_cancel(self_call), TW_ESTATE);
    ck_assert(!tw_call_active(self_call));
    tw_call_release(self_call);
    self_call = NULL;
}

START_TEST(test_timer_cancelled_and_released_inside_itself)
{
    tw_reactor *r = tw_reactor_new();
    fired = 0;
    ck_assert_int_eq(tw_reactor_call_later(r, 0, cancel_self, NULL, &self_call), 0);
    ck_assert_int_eq(tw_reactor_call_later(r, 0, fire_count, NULL, NULL), 0);
    spin(r, &(int){0}, 50);
    ck_assert_int_eq(fired, 2);
    ck_assert_ptr_null(self_call);
    tw_reactor_free(r);
}
END_TEST

/* ------------------------------------------------------------ deferreds */

static tw_deferred *self_deferred;
static int cancel_rc;

static void cancel_in_callback(tw_deferred *d, tw_result *res, void *arg)
{
    (void)res;
    (void)arg;
    ck_assert_ptr_eq(d, self_deferred);
    /* It has its result already: cancelling is a no-op, as in Twisted. */
    cancel_rc = tw_deferred_cancel(d);
    tw_deferred_unref(d); /* the test's reference, dropped in the chain */
}

START_TEST(test_deferred_cancelled_inside_its_own_callback)
{
    self_deferred = tw_deferred_new(NULL, NULL);
    cancel_rc = 1;
    ck_assert_int_eq(tw_deferred_add_both(self_deferred, cancel_in_callback, NULL), 0);
    int *v = malloc(sizeof *v);
    ck_assert_int_eq(tw_deferred_callback(self_deferred, v, free), 0);
    ck_assert_int_eq(cancel_rc, 0);
}
END_TEST

/* ------------------------------------------------------------ looping calls */

static tw_looping_call *self_loop;
static int loop_runs;

static tw_deferred *free_loop_inside(void *arg)
{
    (void)arg;
    loop_runs++;
    tw_looping_call_free(self_loop);
    self_loop = NULL;
    return NULL;
}

START_TEST(test_looping_call_freed_inside_its_function)
{
    tw_reactor *r = tw_reactor_new();
    loop_runs = 0;
    self_loop = tw_looping_call_new(r, free_loop_inside, NULL);
    tw_deferred *done = NULL;
    ck_assert_int_eq(tw_looping_call_start(self_loop, 0.001, 0, &done), 0);
    spin(r, &loop_runs, 1000);
    spin_ms(r, 20);
    ck_assert_int_eq(loop_runs, 1);
    ck_assert(tw_deferred_called(done)); /* freeing stopped it */
    tw_deferred_unref(done);
    ck_assert_uint_eq(tw_reactor_pending_calls(r), 0);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_looping_call_freed_inside_its_first_run_from_start)
{
    tw_reactor *r = tw_reactor_new();
    loop_runs = 0;
    self_loop = tw_looping_call_new(r, free_loop_inside, NULL);
    ck_assert_int_eq(tw_looping_call_start(self_loop, 1, 1, NULL), 0);
    ck_assert_int_eq(loop_runs, 1);
    ck_assert_uint_eq(tw_reactor_pending_calls(r), 0);
    tw_reactor_free(r);
}
END_TEST

static tw_deferred *stop_loop_inside(void *arg)
{
    (void)arg;
    loop_runs++;
    ck_assert_int_eq(tw_looping_call_stop(self_loop), 0);
    ck_assert(!tw_looping_call_running(self_loop));
    return NULL;
}

START_TEST(test_looping_call_stopped_inside_its_function)
{
    tw_reactor *r = tw_reactor_new();
    loop_runs = 0;
    self_loop = tw_looping_call_new(r, stop_loop_inside, NULL);
    tw_deferred *done = NULL;
    ck_assert_int_eq(tw_looping_call_start(self_loop, 0.001, 1, &done), 0);
    ck_assert(tw_deferred_called(done));
    spin_ms(r, 20);
    ck_assert_int_eq(loop_runs, 1);
    ck_assert_uint_eq(tw_reactor_pending_calls(r), 0);
    tw_deferred_unref(done);
    tw_looping_call_free(self_loop);
    tw_reactor_free(r);
}
END_TEST

/* ------------------------------------------------------------ UDP */

typedef struct {
    tw_datagram_protocol base;
    int received, stopped, destroyed;
    int close_in_receive;
} udp_rec;

static int udp_destroyed;

static void u_received(tw_datagram_protocol *p, const void *data, size_t len,
                       const tw_address *from)
{
    (void)data;
    (void)len;
    (void)from;
    udp_rec *u = (udp_rec *)p;
    u->received++;
    if (u->close_in_receive)
        tw_udp_port_close(p->port);
}

static void u_stop(tw_datagram_protocol *p)
{
    ((udp_rec *)p)->stopped++;
}

static void u_destroy(tw_datagram_protocol *p)
{
    (void)p;
    udp_destroyed++;
}

static const tw_datagram_ops u_ops = {NULL, u_received, NULL, u_stop, u_destroy};

START_TEST(test_udp_port_closed_inside_datagram_received)
{
    tw_reactor *r = tw_reactor_new();
    udp_rec u = {.base = {.ops = &u_ops}, .close_in_receive = 1};
    udp_destroyed = 0;
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, "127.0.0.1", 0), 0);
    tw_udp_port *port = NULL;
    ck_assert_int_eq(tw_udp_listen(r, &a, &u.base, &port), 0);
    tw_address bound;
    tw_udp_port_address(port, &bound);
    int s = tw__socket(AF_INET, SOCK_DGRAM, 0, O_CLOEXEC);
    /* Several datagrams wait, so the read batch would go on after the close. */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(sendto(s, "hi", 2, 0, &bound.u.sa, bound.len), 2);
    spin(r, &udp_destroyed, 1000);
    ck_assert_int_eq(u.received, 1);
    ck_assert_int_eq(u.stopped, 1);
    ck_assert_int_eq(udp_destroyed, 1);
    close(s);
    tw_reactor_free(r);
}
END_TEST

/* ------------------------------------------------------------ listeners */

typedef struct {
    tw_factory base;
    tw_listener *l;
    int close_in_build, close_in_made;
    int built, made, lost, destroyed;
} lfactory;

typedef struct {
    tw_protocol base;
    lfactory *lf;
} lproto;

static void lp_made(tw_protocol *p)
{
    lfactory *lf = ((lproto *)p)->lf;
    lf->made++;
    if (lf->close_in_made && lf->l != NULL) {
        tw_listener_close(lf->l);
        lf->l = NULL;
    }
}

static void lp_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)reason;
    ((lproto *)p)->lf->lost++;
}

static void lp_destroy(tw_protocol *p)
{
    ((lproto *)p)->lf->destroyed++;
    free(p);
}

static const tw_protocol_ops lp_ops = {.connection_made = lp_made,
                                       .connection_lost = lp_lost,
                                       .destroy = lp_destroy};

static tw_protocol *lf_build(tw_factory *f, const tw_address *peer)
{
    (void)peer;
    lfactory *lf = (lfactory *)f;
    lf->built++;
    if (lf->close_in_build && lf->l != NULL) {
        tw_listener_close(lf->l);
        lf->l = NULL;
    }
    lproto *p = calloc(1, sizeof *p);
    p->base.ops = &lp_ops;
    p->lf = lf;
    return &p->base;
}

static const tw_factory_ops lf_ops = {.build_protocol = lf_build};

static void listener_closed_inside(int in_build)
{
    tw_reactor *r = tw_reactor_new();
    lfactory lf;
    memset(&lf, 0, sizeof lf);
    tw_factory_init(&lf.base, &lf_ops);
    lf.close_in_build = in_build;
    lf.close_in_made = !in_build;
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, "127.0.0.1", 0), 0);
    ck_assert_int_eq(tw_listen(r, &a, NULL, &lf.base, &lf.l), 0);
    tw_address bound;
    tw_listener_address(lf.l, &bound);
    /* Two clients wait in the backlog: the accept loop must stop after one. */
    int c1 = tu_connect("127.0.0.1", tw_address_port(&bound));
    int c2 = tu_connect("127.0.0.1", tw_address_port(&bound));
    ck_assert_int_ge(c1, 0);
    ck_assert_int_ge(c2, 0);
    spin(r, &lf.made, 1000);
    spin_ms(r, 20);
    ck_assert_ptr_null(lf.l);
    ck_assert_int_eq(lf.built, 1);
    ck_assert_int_eq(lf.made, 1);
    /* The connection accepted stays open and works after its listener went. */
    ck_assert_int_eq(lf.lost, 0);
    close(c1);
    close(c2);
    spin(r, &lf.lost, 1000);
    ck_assert_int_eq(lf.lost, 1);
    ck_assert_int_eq(lf.destroyed, 1);
    tw_reactor_free(r);
}

START_TEST(test_listener_closed_inside_build_protocol)
{
    listener_closed_inside(1);
}
END_TEST

START_TEST(test_listener_closed_inside_connection_made)
{
    listener_closed_inside(0);
}
END_TEST

/* ------------------------------------------------------------ reactor */

typedef struct {
    tw_reactor *r;
    int free_rc;
    int ran;
} self_free;

static tw_deferred *stop_and_free_trigger(void *arg)
{
    self_free *sf = arg;
    sf->ran++;
    tw_reactor_stop(sf->r); /* already stopping: a no-op */
    sf->free_rc = tw_reactor_free(sf->r);
    return NULL;
}

START_TEST(test_reactor_stopped_and_freed_from_a_trigger_refuses_the_free)
{
    for (int phase = TW_TRIGGER_BEFORE; phase <= TW_TRIGGER_AFTER; phase++) {
        tw_reactor *r = tw_reactor_new();
        self_free sf = {r, 0, 0};
        ck_assert_int_eq(
            tw_reactor_add_trigger(r, (tw_trigger_phase)phase, stop_and_free_trigger, &sf, NULL), 0);
        tw_reactor_stop(r);
        ck_assert_int_eq(tw_reactor_run(r), 0);
        ck_assert_int_eq(sf.ran, 1);
        ck_assert_int_eq(sf.free_rc, TW_ESTATE);
        ck_assert_int_eq(tw_reactor_free(r), 0);
    }
}
END_TEST

static void free_from_timer(void *arg)
{
    self_free *sf = arg;
    sf->ran++;
    sf->free_rc = tw_reactor_free(sf->r);
}

START_TEST(test_reactor_freed_from_its_timer_on_a_host_loop_is_refused)
{
    struct event_base *base = event_base_new();
    tw_reactor *r = tw_reactor_new_with_base(base);
    self_free sf = {r, 0, 0};
    ck_assert_int_eq(tw_reactor_call_later(r, 0, free_from_timer, &sf, NULL), 0);
    ck_assert_int_eq(tw_reactor_call_later(r, 0, fire_count, NULL, NULL), 0);
    fired = 0;
    long long deadline = tu_now_ms() + 1000;
    while (fired == 0 && tu_now_ms() < deadline)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    ck_assert_int_eq(sf.ran, 1);
    ck_assert_int_eq(sf.free_rc, TW_ESTATE);
    ck_assert_int_eq(fired, 1); /* the reactor went on working */
    ck_assert_int_eq(tw_reactor_free(r), 0);
    event_base_free(base);
}
END_TEST

START_TEST(test_reactor_freed_while_stopping_on_a_host_loop)
{
    struct event_base *base = event_base_new();
    tw_reactor *r = tw_reactor_new_with_base(base);
    rec_factory rf;
    rec_init(&rf, r);
    int peer = -1;
    ck_assert_int_eq(adopt_pair(r, &rf, &peer), 0);
    int dropped = 0;
    ck_assert_int_eq(tw_reactor_call_later_full(r, 60, fire_count, &dropped, release_count, NULL),
                     0);
    tw_reactor_stop(r); /* the connection drains: the stop waits for it */
    ck_assert(tw_reactor_stopping(r));
    ck_assert_int_eq(tw_reactor_free(r), 0);
    ck_assert_int_eq(dropped, 1);
    ck_assert_int_eq(rf.destroyed, 1);
    close(peer);
    event_base_free(base);
}
END_TEST

static int after_ran;

static tw_deferred *after_trigger(void *arg)
{
    (void)arg;
    after_ran++;
    return NULL;
}

static tw_deferred *never_fires(void *arg)
{
    return tw_deferred_ref(arg);
}

START_TEST(test_reactor_freed_while_a_trigger_deferred_is_pending)
{
    tw_reactor *r = tw_reactor_new();
    tw_deferred *d = tw_deferred_new(NULL, NULL);
    after_ran = 0;
    ck_assert_int_eq(tw_reactor_add_trigger(r, TW_TRIGGER_BEFORE, never_fires, d, NULL), 0);
    ck_assert_int_eq(tw_reactor_add_trigger(r, TW_TRIGGER_AFTER, after_trigger, NULL, NULL), 0);
    tw_reactor_stop(r);
    ck_assert_int_eq(tw_reactor_free(r), 0);
    /* The reactor is gone: firing what it waited for must not reach it. */
    ck_assert_int_eq(tw_deferred_callback(d, NULL, NULL), 0);
    ck_assert_int_eq(after_ran, 0);
    tw_deferred_unref(d);
}
END_TEST

typedef struct {
    tw_reactor *r;
    int submitted;
} submitter;

static void free_arg(void *arg)
{
    free(arg);
}

static void *submit_from_thread(void *arg)
{
    submitter *s = arg;
    for (int i = 0; i < 3; i++) {
        int *owned = malloc(sizeof *owned); /* freed by whichever of fn or release runs */
        if (tw_reactor_call_from_thread_full(s->r, free_arg, owned, free_arg) == 0)
            s->submitted++;
    }
    return NULL;
}

static int thread_releases;

static void count_release(void *arg)
{
    (void)arg;
    thread_releases++;
}

START_TEST(test_calls_from_threads_queued_at_free_are_released)
{
    tw_reactor *r = tw_reactor_new();
    submitter s = {r, 0};
    pthread_t t;
    ck_assert_int_eq(pthread_create(&t, NULL, submit_from_thread, &s), 0);
    ck_assert_int_eq(pthread_join(t, NULL), 0);
    ck_assert_int_eq(s.submitted, 3);
    /* Never run: the reactor goes first. Under LSan a dropped argument leaks. */
    thread_releases = 0;
    ck_assert_int_eq(tw_reactor_call_from_thread_full(r, fire_count, NULL, count_release), 0);
    ck_assert_int_eq(tw_reactor_call_from_thread_full(r, fire_count, NULL, NULL), 0);
    fired = 0;
    ck_assert_int_eq(tw_reactor_free(r), 0);
    ck_assert_int_eq(thread_releases, 1);
    ck_assert_int_eq(fired, 0);
    ck_assert_int_eq(tw_reactor_call_from_thread_full(NULL, NULL, NULL, NULL), -EINVAL);
}
END_TEST

/* ------------------------------------------------------------ connect */

typedef struct {
    tw_factory base;
    tw_deferred *attempt;
    int cancel_in_build;
    int built, lost, destroyed;
} cfactory;

static void cp_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)reason;
    ((cfactory *)p->factory)->lost++;
}

static void cp_destroy(tw_protocol *p)
{
    ((cfactory *)p->factory)->destroyed++;
    free(p);
}

static const tw_protocol_ops cp_ops = {.connection_lost = cp_lost, .destroy = cp_destroy};

static tw_protocol *cf_build(tw_factory *f, const tw_address *peer)
{
    (void)peer;
    cfactory *cf = (cfactory *)f;
    cf->built++;
    if (cf->cancel_in_build && cf->attempt != NULL)
        tw_deferred_cancel(cf->attempt);
    tw_protocol *p = calloc(1, sizeof *p);
    p->ops = &cp_ops;
    return p;
}

static const tw_factory_ops cf_ops = {.build_protocol = cf_build};

START_TEST(test_connect_attempt_cancelled_inside_build_protocol)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory server;
    rec_init(&server, r);
    int port = 0;
    tw_listener *l = listen_on(r, "127.0.0.1", &server, NULL, &port);
    cfactory cf;
    memset(&cf, 0, sizeof cf);
    tw_factory_init(&cf.base, &cf_ops);
    cf.cancel_in_build = 1;
    cf.attempt = tw_connect_tcp(r, "127.0.0.1", port, NULL, &cf.base);
    ck_assert_ptr_nonnull(cf.attempt);
    tu_outcome o;
    memset(&o, 0, sizeof o);
    tw_deferred *d = cf.attempt;
    tw_deferred_ref(d);
    tu_watch(d, &o);
    spin(r, &o.fired, 2000);
    ck_assert_int_eq(o.fired, 1);
    ck_assert_int_eq(cf.built, 1);
    /* The cancel is honoured: the deferred fails, and the connection made
     * under it is aborted, its protocol told and released. */
    ck_assert(!o.ok);
    ck_assert_int_eq(o.code, TW_ECANCELLED);
    spin(r, &cf.destroyed, 1000);
    ck_assert_int_eq(cf.lost, 1);
    ck_assert_int_eq(cf.destroyed, 1);
    cf.attempt = NULL;
    tw_deferred_unref(d);
    tw_listener_close(l);
    tw_reactor_free(r);
    ck_assert_int_eq(cf.destroyed, 1);
}
END_TEST

/* ------------------------------------------------------------ resolver */

typedef struct {
    tw_deferred *d;
    int cancel_rc;
    int calls;
} self_cancel;

static void cancel_lookup_inside(tw_deferred *d, tw_result *res, void *arg)
{
    self_cancel *sc = arg;
    (void)res;
    sc->calls++;
    sc->cancel_rc = tw_deferred_cancel(d);
}

START_TEST(test_resolver_lookup_cancelled_inside_its_callback)
{
    tw_reactor *r = tw_reactor_new();
    tw_resolver_options o;
    tw_resolver_options_init(&o);
    char dir[] = "/tmp/twine-reent.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char hosts[64];
    snprintf(hosts, sizeof hosts, "%s/hosts", dir);
    FILE *fp = fopen(hosts, "w");
    fputs("127.0.0.1 reentrant.example\n", fp);
    fclose(fp);
    o.hosts = hosts;
    o.resolv_conf = "";
    o.nameserver = "127.0.0.1:1";
    ck_assert_int_eq(tw_resolver_configure(r, &o), 0);
    self_cancel sc = {0};
    sc.d = tw_resolve(r, "reentrant.example", 80, AF_INET);
    ck_assert_ptr_nonnull(sc.d);
    ck_assert_int_eq(tw_deferred_add_both(sc.d, cancel_lookup_inside, &sc), 0);
    tu_outcome out;
    memset(&out, 0, sizeof out);
    tu_watch(sc.d, &out);
    spin(r, &out.fired, 2000);
    ck_assert_int_eq(sc.calls, 1);
    ck_assert(out.ok);
    free(out.value);
    tw_reactor_free(r);
    unlink(hosts);
    rmdir(dir);
}
END_TEST

/* ------------------------------------------------------------ endpoints */

static void close_listener_inside(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    int *closed = arg;
    tw_free_fn fn = NULL;
    tw_listener *l = tw_result_take_value(res, &fn);
    tw_listener_close(l);
    (*closed)++;
}

START_TEST(test_endpoint_listener_closed_inside_the_listen_callback)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    tw_deferred *d = tw_listen_string(r, "tcp:0:interface=127.0.0.1", NULL, &rf.base);
    ck_assert_ptr_nonnull(d);
    int closed = 0;
    ck_assert_int_eq(tw_deferred_add_callback(d, close_listener_inside, &closed), 0);
    tw_deferred_unref(d);
    ck_assert_int_eq(closed, 1);
    ck_assert_int_eq(rf.starts, 1);
    ck_assert_int_eq(rf.stops, 1);
    tw_reactor_free(r);
}
END_TEST

/* ------------------------------------------------------------ reconnect */

typedef struct {
    tu_client_factory cf;
    tw_reconnect *rc;
    int stop_in_made, free_in_made, free_in_failed, stop_in_failed;
    int made, failed;
} rc_case;

static rc_case *current_case;

static void rc_made(tw_protocol *p)
{
    (void)p;
    rc_case *c = current_case;
    c->made++;
    if (c->stop_in_made)
        tw_reconnect_stop(c->rc, 1);
    if (c->free_in_made) {
        tw_reconnect_free(c->rc);
        c->rc = NULL;
    }
}

static void rc_failed(tw_factory *f, const tw_failure *reason)
{
    (void)f;
    (void)reason;
    rc_case *c = current_case;
    c->failed++;
    if (c->stop_in_failed)
        tw_reconnect_stop(c->rc, 1);
    if (c->free_in_failed) {
        tw_reconnect_free(c->rc);
        c->rc = NULL;
    }
}

typedef struct {
    tw_protocol base;
} rc_proto;

static void rc_destroy(tw_protocol *p)
{
    free(p);
}

static const tw_protocol_ops rc_proto_ops = {.connection_made = rc_made, .destroy = rc_destroy};

static tw_protocol *rc_build(tw_factory *f, const tw_address *peer)
{
    (void)f;
    (void)peer;
    rc_proto *p = calloc(1, sizeof *p);
    p->base.ops = &rc_proto_ops;
    return &p->base;
}

static const tw_factory_ops rc_factory_ops = {.build_protocol = rc_build,
                                              .client_connection_failed = rc_failed};

static void reconnect_case(rc_case *c, int port)
{
    tw_reactor *r = tw_reactor_new();
    current_case = c;
    tw_factory_init(&c->cf.rf.base, &rc_factory_ops);
    char desc[64];
    snprintf(desc, sizeof desc, "tcp:127.0.0.1:%d", port);
    tw_endpoint e;
    ck_assert_int_eq(tw_endpoint_parse_client(desc, &e, NULL, 0), 0);
    tw_reconnect_options o;
    tw_reconnect_options_init(&o);
    o.initial_delay = 0.001;
    o.max_delay = 0.001;
    ck_assert_int_eq(tw_reconnect_new(r, &e, &c->cf.rf.base, &o, &c->rc), 0);
    ck_assert_int_eq(tw_reconnect_start(c->rc), 0);
    long long deadline = tu_now_ms() + 2000;
    while (c->made + c->failed == 0 && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.005);
    spin_ms(r, 20);
    ck_assert_int_eq(c->made + c->failed, 1); /* nothing more after the stop */
    if (c->rc != NULL) {
        ck_assert(!tw_reconnect_running(c->rc));
        tw_reconnect_free(c->rc);
    }
    tw_reactor_free(r);
}

START_TEST(test_reconnect_stopped_inside_connection_made)
{
    int fd = tw__socket(AF_INET, SOCK_STREAM, 0, O_CLOEXEC);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    ck_assert_int_eq(listen(fd, 8), 0);
    socklen_t len = sizeof sin;
    getsockname(fd, (struct sockaddr *)&sin, &len);
    rc_case c;
    memset(&c, 0, sizeof c);
    c.stop_in_made = 1;
    reconnect_case(&c, ntohs(sin.sin_port));
    ck_assert_int_eq(c.made, 1);
    memset(&c, 0, sizeof c);
    c.free_in_made = 1;
    reconnect_case(&c, ntohs(sin.sin_port));
    ck_assert_int_eq(c.made, 1);
    close(fd);
}
END_TEST

START_TEST(test_reconnect_stopped_or_freed_inside_connection_failed)
{
    int port = tu_closed_port();
    rc_case c;
    memset(&c, 0, sizeof c);
    c.stop_in_failed = 1;
    reconnect_case(&c, port);
    ck_assert_int_eq(c.failed, 1);
    memset(&c, 0, sizeof c);
    c.free_in_failed = 1;
    reconnect_case(&c, port);
    ck_assert_int_eq(c.failed, 1);
}
END_TEST

/* ------------------------------------------------------------ AMP */

static const tw_amp_command ABORT_CMD = {.name = "Abort"};

static tw_deferred *abort_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)args;
    (*(int *)arg)++;
    tw_transport_abort_connection(tw_amp_transport(amp));
    return tw_amp_succeed(NULL);
}

static tw_deferred *lose_responder(tw_amp *amp, const tw_amp_values *args, void *arg)
{
    (void)args;
    (*(int *)arg)++;
    tw_amp_lose_connection(amp);
    return tw_amp_succeed(NULL);
}

static void amp_lost_inside_responder(tw_amp_responder_fn fn)
{
    tw_reactor *r = tw_reactor_new();
    tw_factory *f = tw_amp_factory_new();
    int calls = 0;
    ck_assert_int_eq(tw_amp_register(tw_amp_factory_dispatcher(f), &ABORT_CMD, fn, &calls), 0);
    int sv[2];
    ck_assert_int_eq(tw__socketpair(AF_UNIX, SOCK_STREAM, 0, sv, O_CLOEXEC), 0);
    ck_assert_int_eq(tw_transport_adopt(r, sv[0], f), 0);
    /* Two requests in one read: the second must not be served by a
     * connection that is gone. */
    tw_amp_box *b = tw_amp_box_new();
    tw_amp_box_set_str(b, "_command", "Abort");
    tw_amp_box_set_str(b, "_ask", "1");
    unsigned char wire[256];
    size_t n = tw_amp_box_encode(b, wire, sizeof wire);
    tw_amp_box_set_str(b, "_ask", "2");
    n += tw_amp_box_encode(b, wire + n, sizeof wire - n);
    tw_amp_box_free(b);
    ck_assert_int_eq(tu_write_all(sv[1], wire, n), 0);
    long long deadline = tu_now_ms() + 1000;
    while (calls == 0 && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.005);
    spin_ms(r, 20);
    ck_assert_int_eq(tu_wait_eof(sv[1], 1000), 1);
    ck_assert_int_eq(calls, 1);
    close(sv[1]);
    tw_reactor_free(r);
    tw_factory_free(f);
}

START_TEST(test_amp_connection_aborted_inside_a_responder)
{
    amp_lost_inside_responder(abort_responder);
}
END_TEST

START_TEST(test_amp_connection_lost_inside_a_responder)
{
    amp_lost_inside_responder(lose_responder);
}
END_TEST

/* ------------------------------------------------------------ suite */

static Suite *suite(void)
{
    Suite *s = suite_create("reentrancy");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_free_with_deferred_timeout_pending_on_host_base);
    tcase_add_test(tc, test_free_with_defer_later_pending);
    tcase_add_test(tc, test_free_with_calls_whose_release_touches_other_calls);
    tcase_add_test(tc, test_timer_cancelled_and_released_inside_itself);
    tcase_add_test(tc, test_deferred_cancelled_inside_its_own_callback);
    tcase_add_test(tc, test_looping_call_freed_inside_its_function);
    tcase_add_test(tc, test_looping_call_freed_inside_its_first_run_from_start);
    tcase_add_test(tc, test_looping_call_stopped_inside_its_function);
    tcase_add_test(tc, test_udp_port_closed_inside_datagram_received);
    tcase_add_test(tc, test_listener_closed_inside_build_protocol);
    tcase_add_test(tc, test_listener_closed_inside_connection_made);
    tcase_add_test(tc, test_reactor_stopped_and_freed_from_a_trigger_refuses_the_free);
    tcase_add_test(tc, test_reactor_freed_from_its_timer_on_a_host_loop_is_refused);
    tcase_add_test(tc, test_reactor_freed_while_stopping_on_a_host_loop);
    tcase_add_test(tc, test_reactor_freed_while_a_trigger_deferred_is_pending);
    tcase_add_test(tc, test_calls_from_threads_queued_at_free_are_released);
    tcase_add_test(tc, test_connect_attempt_cancelled_inside_build_protocol);
    tcase_add_test(tc, test_resolver_lookup_cancelled_inside_its_callback);
    tcase_add_test(tc, test_endpoint_listener_closed_inside_the_listen_callback);
    tcase_add_test(tc, test_reconnect_stopped_inside_connection_made);
    tcase_add_test(tc, test_reconnect_stopped_or_freed_inside_connection_failed);
    tcase_add_test(tc, test_amp_connection_aborted_inside_a_responder);
    tcase_add_test(tc, test_amp_connection_lost_inside_a_responder);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
