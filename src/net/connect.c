/* SPDX-License-Identifier: MIT */
/*
 * Outgoing connections. An attempt is a small state machine driven from the
 * loop: look the host up (unless it is numeric), then race connections to
 * its addresses as Happy Eyeballs does (happy.c); the socket that wins
 * becomes a stream transport. One timer bounds the whole attempt.
 *
 * A name is looked up once per family, as RFC 8305 section 3 says: the
 * race starts as soon as the IPv6 addresses are known, or the IPv4 ones
 * and the IPv6 lookup has had the Resolution Delay more; the addresses
 * that come later join the race under way.
 *
 * Every way an attempt ends -- connected, failed, timed out, cancelled, or
 * the reactor stopping -- goes through one of two exits, so the factory
 * hears exactly once and the socket, timer and lookup are always released.
 * A pending attempt sits on the reactor's connection list, which is how
 * stop and free reach it.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <twine/connect.h>
#include <twine/resolve.h>

#include "core/fd_internal.h"
#include "core/reactor_internal.h"
#include "net/happy_internal.h"
#include "net/stream_internal.h"

/* In order: S_STARTING and later take no more outcomes. */
enum { S_START, S_RESOLVING, S_CONNECTING, S_STARTING, S_DONE };

/* How long IPv4 answers wait for IPv6 ones: RFC 8305's Resolution Delay. */
#define RESOLUTION_DELAY 0.05

struct attempt;

/* One family's lookup. */
typedef struct family_lookup {
    struct attempt *a;
    tw_deferred *d;          /* NULL unless pending */
    int done;                /* answered or failed */
    tw_address_list *found;  /* answered, not yet handed to the race */
    tw_failure *why;         /* failed */
} family_lookup;

typedef struct attempt {
    tw__closeable node;
    tw_reactor *r;
    tw_factory *f;
    tw_deferred *d; /* ours until fired */
    tw_connect_options o;
    tw_call *timer;
    family_lookup q[2]; /* IPv6 then IPv4 */
    int asking;         /* inside begin(): answers wait until both are asked */
    tw_call *rdelay;    /* pending while IPv4 answers wait for IPv6 ones */
    int rdelay_over;
    tw__race *race;      /* NULL unless connections are being raced */
    struct event ev;     /* the kick that starts us, and the stop */
    int state;
    int stopping; /* the reactor is stopping: fail from the loop */
    int fired;    /* S_STARTING: a cancel came too late and fired with proto */
    int cancelled; /* S_STARTING: cancelled before the protocol existed */
    tw_protocol *proto; /* S_STARTING: set before connection_made runs */
    int port;
    tw_address_list *addrs; /* a numeric host's one address */
    tw_address cur; /* the address that connected, or failed last */
    int last_err;   /* the last address's error, a negated errno */
    const char *host; /* points into where[] when a lookup is needed, else NULL */
    char where[];     /* "host:port" or "unix:/path", for messages */
} attempt;

TW_API void tw_connect_options_init(tw_connect_options *o)
{
    memset(o, 0, sizeof *o);
    o->timeout = TW_CONNECT_TIMEOUT;
    o->attempt_delay = TW_CONNECT_ATTEMPT_DELAY;
}

static void release(attempt *a)
{
    for (int i = 0; i < 2; i++) {
        free(a->q[i].found);
        if (a->q[i].why != NULL)
            tw_failure_unref(a->q[i].why);
    }
    free(a->addrs);
    free(a);
}

/* Stop everything the attempt is waiting on. */
static void quiesce(attempt *a)
{
    a->state = S_DONE;
    tw__reactor_unregister_conn(a->r, &a->node);
    if (a->timer != NULL) {
        tw_call_cancel(a->timer);
        tw_call_release(a->timer);
        a->timer = NULL;
    }
    event_del(&a->ev);
    if (a->race != NULL) {
        tw__race_cancel(a->race);
        a->race = NULL;
    }
    if (a->rdelay != NULL) {
        tw_call_cancel(a->rdelay);
        tw_call_release(a->rdelay);
        a->rdelay = NULL;
    }
    for (int i = 0; i < 2; i++) {
        tw_deferred *lookup = a->q[i].d;
        if (lookup != NULL) {
            a->q[i].d = NULL; /* its errback, run by the cancel, sees we left */
            tw_deferred_cancel(lookup);
            tw_deferred_unref(lookup);
        }
    }
}

/*
 * Tell the factory and fail the deferred with @p reason (taken), then free
 * the attempt. The attempt lives until the end: the factory's callbacks may
 * cancel the deferred, whose canceller reaches it (and then finds it done,
 * and the deferred failed by the cancel, which wins).
 */
static void report_failure(attempt *a, tw_failure *reason)
{
    tw_factory *f = a->f;
    tw_deferred *d = a->d;
    if (f->ops->client_connection_failed != NULL)
        f->ops->client_connection_failed(f, reason);
    tw_factory_stop(f);
    if (!tw_deferred_called(d))
        tw_deferred_errback(d, reason);
    else
        tw_failure_unref(reason);
    release(a);
    tw_deferred_unref(d);
}

/* The failure exit. Takes @p reason. */
static void fail(attempt *a, tw_failure *reason)
{
    if (a->state >= S_STARTING) {
        if (a->state == S_STARTING)
            a->cancelled = 1; /* from build_protocol: the deferred fails by itself */
        tw_failure_unref(reason);
        return;
    }
    quiesce(a);
    report_failure(a, reason);
}

/* The failure of the last address tried, naming its errno. */
static tw_failure *connect_failure(const attempt *a)
{
    int code = a->last_err != 0 ? a->last_err : -EHOSTUNREACH;
    tw_failure *plain = tw_failure_new(code, NULL); /* "ECONNREFUSED: Connection refused" */
    char addr[TW_ADDRSTRLEN];
    tw_address_format(&a->cur, addr, sizeof addr);
    tw_failure *f;
    if (a->cur.len == 0 || strcmp(addr, a->where) == 0)
        f = tw_failure_new(code, "connect to %s failed: %s", a->where, tw_failure_message(plain));
    else
        f = tw_failure_new(code, "connect to %s (%s) failed: %s", a->where, addr,
                           tw_failure_message(plain));
    tw_failure_unref(plain);
    return f;
}

static void on_event(evutil_socket_t fd, short what, void *arg);
static void attempt_event(attempt *a);

/* Takes @p fd, connected to a->cur. */
static void connected(attempt *a, int fd)
{
    tw_address peer = a->cur;
    quiesce(a);
    a->state = S_STARTING;
    tw_factory *f = a->f;
    tw_deferred *d = a->d;
    int rc = tw__stream_start(a->r, fd, f, &peer, TW__STREAM_CLIENT, NULL, &a->proto);
    tw_protocol *p = a->proto;
    int fired = a->fired;
    if (a->cancelled) { /* honour it: the deferred has failed already */
        if (rc == 0) {
            tw_transport_abort_connection(p->transport); /* ends in connection_lost */
        } else if (f->ops->client_connection_failed != NULL) {
            tw_failure *reason =
                tw_failure_new(TW_ECANCELLED, "connect to %s was cancelled", a->where);
            f->ops->client_connection_failed(f, reason);
            tw_failure_unref(reason);
        }
        tw_factory_stop(f);
        release(a);
        tw_deferred_unref(d);
        return;
    }
    if (rc < 0) {
        tw_failure *reason =
            rc == -ECONNREFUSED
                ? tw_failure_new(-ECONNABORTED, "connect to %s: the factory refused the connection",
                                 a->where)
                : tw_failure_new(rc, "connect to %s failed: %s", a->where, tw_strerror(rc));
        report_failure(a, reason);
        return;
    }
    tw_factory_stop(f); /* the stream counts itself now (if it started) */
    if (!fired && !tw_deferred_called(d))
        tw_deferred_callback(d, p, NULL);
    release(a);
    tw_deferred_unref(d);
}

static void race_done(void *arg, int fd, const tw_address *addr, int err)
{
    attempt *a = arg;
    a->race = NULL;
    a->cur = *addr;
    if (fd >= 0) {
        connected(a, fd);
        return;
    }
    a->last_err = err;
    fail(a, connect_failure(a));
}

static double attempt_delay(const attempt *a)
{
    return a->o.attempt_delay > 0 ? a->o.attempt_delay : TW_CONNECT_ATTEMPT_DELAY;
}

/* Race a numeric host's address; the outcome may come before this
 * returns, so @p a is not touched after it. */
static void race(attempt *a)
{
    a->state = S_CONNECTING;
    if (tw__race_start(a->r, a->addrs, &a->o.bind_address, attempt_delay(a), 0, race_done, a,
                       &a->race) < 0)
        fail(a, tw_failure_new(-ENOMEM, "connect to %s failed: out of memory", a->where));
}

static void fail_nomem(attempt *a)
{
    fail(a, tw_failure_new(-ENOMEM, "connect to %s failed: out of memory", a->where));
}

/* Both lookups failed: the reason, as one lookup of both families gives it. */
static tw_failure *lookup_failure(const attempt *a)
{
    const tw_failure *w6 = a->q[0].why, *w4 = a->q[1].why;
    const tw_failure *why = w4;
    if (tw_failure_code(w4) == TW_ENOTFOUND && tw_failure_code(w6) != TW_ENOTFOUND)
        why = w6; /* a name server's trouble says more than a missing family */
    if (tw_failure_code(w4) == TW_ENOTFOUND && tw_failure_code(w6) == TW_ENOTFOUND &&
        strcmp(tw_failure_message(w4), tw_failure_message(w6)) != 0)
        /* The name exists, without an address of either family. */
        return tw_failure_new(TW_ENOTFOUND, "connect to %s failed: DNS lookup of '%s' found no "
                                            "address",
                              a->where, a->host);
    return tw_failure_new(tw_failure_code(why), "connect to %s failed: %s", a->where,
                          tw_failure_message(why));
}

/* The addresses found and not yet raced, IPv6 first, or NULL when there are
 * none; *@p nomem when memory ran out. */
static tw_address_list *take_found(attempt *a, int *nomem)
{
    size_t n = 0;
    *nomem = 0;
    for (int i = 0; i < 2; i++)
        n += a->q[i].found != NULL ? a->q[i].found->count : 0;
    if (n == 0)
        return NULL;
    tw_address_list *list = malloc(sizeof *list + n * sizeof list->items[0]);
    if (list == NULL) {
        *nomem = 1;
        return NULL;
    }
    list->count = 0;
    for (int i = 0; i < 2; i++) {
        tw_address_list *f = a->q[i].found;
        if (f == NULL)
            continue;
        memcpy(list->items + list->count, f->items, f->count * sizeof f->items[0]);
        list->count += f->count;
        free(f);
        a->q[i].found = NULL;
    }
    return list;
}

static void on_rdelay(void *arg);

/*
 * A lookup has answered or failed, or the Resolution Delay is over: start
 * the race, feed it, or fail. The race may end inside, so @p a is not
 * touched after this.
 */
static void progress(attempt *a)
{
    family_lookup *q6 = &a->q[0], *q4 = &a->q[1];
    int last = q6->done && q4->done;
    int nomem;
    if (a->race == NULL) {
        if (q6->found == NULL && q4->found == NULL) {
            if (last)
                fail(a, lookup_failure(a));
            return;
        }
        if (q6->found == NULL && !q6->done && !a->rdelay_over) {
            if (a->rdelay != NULL)
                return;
            if (tw_reactor_call_later(a->r, RESOLUTION_DELAY, on_rdelay, a, &a->rdelay) == 0)
                return;
            /* Without a timer, start with what there is. */
        }
        if (a->rdelay != NULL) {
            tw_call_cancel(a->rdelay);
            tw_call_release(a->rdelay);
            a->rdelay = NULL;
        }
        tw_address_list *list = take_found(a, &nomem);
        if (list == NULL) {
            fail_nomem(a);
            return;
        }
        a->state = S_CONNECTING;
        int rc = tw__race_start(a->r, list, &a->o.bind_address, attempt_delay(a), !last, race_done,
                                a, &a->race);
        free(list); /* copied; @p a may be gone now */
        if (rc < 0)
            fail_nomem(a);
        return;
    }
    tw_address_list *list = take_found(a, &nomem);
    if (nomem) {
        fail_nomem(a);
        return;
    }
    if (list == NULL && !last)
        return;
    int rc = tw__race_add(a->race, list, last);
    free(list); /* copied; @p a may be gone now */
    if (rc < 0)
        fail_nomem(a);
}

static void on_rdelay(void *arg)
{
    attempt *a = arg;
    tw_call_release(a->rdelay);
    a->rdelay = NULL;
    a->rdelay_over = 1;
    progress(a);
}

static void on_resolved(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    family_lookup *fl = arg;
    tw_free_fn free_fn;
    tw_address_list *list = tw_result_take_value(res, &free_fn);
    if (fl->d == NULL) { /* cannot happen: a cancelled lookup fails */
        if (free_fn != NULL)
            free_fn(list);
        return;
    }
    tw_deferred_unref(fl->d);
    fl->d = NULL;
    fl->done = 1;
    fl->found = list; /* malloc'd, released with free() */
    if (!fl->a->asking)
        progress(fl->a);
}

static void on_resolve_failed(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    family_lookup *fl = arg;
    tw_failure *why = tw_result_take_failure(res);
    if (fl->d == NULL) { /* we cancelled it on our way out */
        tw_failure_unref(why);
        return;
    }
    tw_deferred_unref(fl->d);
    fl->d = NULL;
    fl->done = 1;
    fl->why = why;
    if (!fl->a->asking)
        progress(fl->a);
}

static void begin(attempt *a)
{
    if (a->host == NULL) {
        race(a);
        return;
    }
    a->state = S_RESOLVING;
    /* Answers from the hosts file come at once: they wait until both
     * lookups are under way. */
    a->asking = 1;
    for (int i = 0; i < 2; i++) {
        family_lookup *fl = &a->q[i];
        fl->a = a;
        tw_deferred *lookup = tw_resolve(a->r, a->host, a->port, i == 0 ? AF_INET6 : AF_INET);
        if (lookup == NULL) {
            a->asking = 0;
            fail_nomem(a);
            return;
        }
        fl->d = lookup;
        if (tw_deferred_add_callbacks(lookup, on_resolved, on_resolve_failed, fl) < 0) {
            fl->d = NULL;
            tw_deferred_cancel(lookup);
            tw_deferred_unref(lookup);
            a->asking = 0;
            fail_nomem(a);
            return;
        }
    }
    a->asking = 0;
    progress(a);
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    attempt *a = arg;
    tw_reactor *r = a->r;
    (void)fd;
    (void)what;
    tw__enter(r); /* the attempt may go inside; the reactor may not */
    attempt_event(a);
    tw__leave(r);
}

static void attempt_event(attempt *a)
{
    if (a->stopping) {
        fail(a, tw_failure_new(TW_ESHUTDOWN, "connect to %s failed: %s", a->where,
                               tw_strerror(TW_ESHUTDOWN)));
        return;
    }
    if (a->state == S_START)
        begin(a);
}

static void on_timeout(void *arg)
{
    attempt *a = arg;
    tw_call_release(a->timer);
    a->timer = NULL;
    fail(a, tw_failure_new(TW_ETIMEDOUT, "connect to %s timed out after %g seconds", a->where,
                           a->o.timeout));
}

static void cancel_attempt(tw_deferred *d, void *arg)
{
    attempt *a = arg;
    if (a->state == S_STARTING && a->proto != NULL && !a->fired) {
        /* Cancelled from connection_made: too late, the connection is up. */
        a->fired = 1;
        tw_deferred_callback(d, a->proto, NULL);
        return;
    }
    fail(a, tw_failure_new(TW_ECANCELLED, "connect to %s was cancelled", a->where));
}

/* Stop: the reactor is walking its connections, so the attempt fails on
 * the next pass of the loop rather than run callbacks under its feet. */
static void closeable_lose(tw__closeable *c)
{
    attempt *a = (attempt *)c;
    a->stopping = 1;
    event_active(&a->ev, EV_TIMEOUT, 1);
}

/* Free: now, and off the list before returning. */
static void closeable_abort(tw__closeable *c)
{
    attempt *a = (attempt *)c;
    fail(a, tw_failure_new(TW_ESHUTDOWN, "connect to %s failed: %s", a->where,
                           tw_strerror(TW_ESHUTDOWN)));
}

static const tw__closeable_ops attempt_closeable_ops = {closeable_lose, closeable_abort, NULL, NULL};

static tw_deferred *refuse(int code, const char *fmt, ...) TW_PRINTF(2, 3);

/* An attempt that never started: the factory hears nothing. */
static tw_deferred *refuse(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tw_failure *f = tw_failure_newv(code, fmt, ap);
    va_end(ap);
    return tw_deferred_fail(f);
}

static int bad_options(const tw_connect_options *o)
{
    int bf = tw_address_family(&o->bind_address);
    return !isfinite(o->timeout) || o->timeout < 0 || !isfinite(o->attempt_delay) ||
           (o->attempt_delay != 0 && o->attempt_delay < TW_CONNECT_ATTEMPT_DELAY_MIN) ||
           (o->bind_address.len > 0 && bf != AF_INET && bf != AF_INET6);
}

/*
 * Start an attempt: to @p host (looked up) when it is not NULL, else to the
 * address @p addr. @p where names it in messages.
 */
static tw_deferred *start(tw_reactor *r, tw_factory *f, const tw_connect_options *o,
                          const char *where, const char *host, int port, const tw_address *addr)
{
    tw_connect_options defaults;
    if (o == NULL) {
        tw_connect_options_init(&defaults);
        o = &defaults;
    }
    if (bad_options(o))
        return refuse(-EINVAL, "connect to %s: bad timeout, attempt delay or bind address", where);
    if (tw_reactor_stopping(r))
        return refuse(TW_ESHUTDOWN, "connect to %s: the reactor is shutting down", where);

    size_t wlen = strlen(where);
    attempt *a = calloc(1, sizeof *a + wlen + 1 + (host != NULL ? strlen(host) + 1 : 0));
    if (a == NULL)
        return NULL;
    memcpy(a->where, where, wlen + 1);
    if (host != NULL) {
        char *h = a->where + wlen + 1;
        strcpy(h, host);
        a->host = h;
    } else {
        a->addrs = malloc(sizeof *a->addrs + sizeof a->addrs->items[0]);
        if (a->addrs == NULL) {
            free(a);
            return NULL;
        }
        a->addrs->count = 1;
        a->addrs->items[0] = *addr;
    }
    a->r = r;
    a->f = f;
    a->o = *o;
    a->port = port;
    a->state = S_START;
    a->d = tw_deferred_new(cancel_attempt, a);
    if (a->d == NULL) {
        release(a);
        return NULL;
    }
    if (o->timeout > 0 && tw_reactor_call_later(r, o->timeout, on_timeout, a, &a->timer) < 0) {
        tw_deferred_unref(a->d);
        release(a);
        return NULL;
    }
    tw_deferred *ret = tw_deferred_ref(a->d);
    a->node.ops = &attempt_closeable_ops;
    tw__reactor_register_conn(r, &a->node);
    tw_factory_start(f);
    /* Begin from the loop, so no outcome ever reaches the caller before
     * this returns. */
    event_assign(&a->ev, r->base, -1, 0, on_event, a);
    event_active(&a->ev, EV_TIMEOUT, 1);
    return ret;
}

TW_API tw_deferred *tw_connect_tcp(tw_reactor *r, const char *host, int port,
                                   const tw_connect_options *o, tw_factory *f)
{
    if (r == NULL || f == NULL || host == NULL || *host == '\0')
        return refuse(-EINVAL, "connect to '%s': no reactor, factory or host",
                      host != NULL ? host : "(null)");
    if (port < 1 || port > 65535)
        return refuse(-EINVAL, "connect to '%s': port is not a number from 1 to 65535", host);
    tw_address addr;
    char where[TW_ADDRSTRLEN + 300];
    if (tw_address_from_ip(&addr, host, port) == 0)
        return start(r, f, o, tw_address_format(&addr, where, sizeof where), NULL, port, &addr);
    snprintf(where, sizeof where, "%.290s:%d", host, port);
    return start(r, f, o, where, host, port, NULL);
}

TW_API tw_deferred *tw_connect_unix(tw_reactor *r, const char *path,
                                    const tw_connect_options *o, tw_factory *f)
{
    if (r == NULL || f == NULL || path == NULL)
        return refuse(-EINVAL, "connect to 'unix:%s': no reactor, factory or path",
                      path != NULL ? path : "(null)");
    tw_address addr;
    int rc = tw_address_from_unix(&addr, path);
    if (rc < 0)
        return refuse(rc, "connect to 'unix:%s': %s", path,
                      rc == -ENAMETOOLONG ? "the path is too long for a UNIX socket"
                                          : "the path is empty");
    char where[TW_ADDRSTRLEN];
    return start(r, f, o, tw_address_format(&addr, where, sizeof where), NULL, 0, &addr);
}

TW_API tw_deferred *tw_connect_address(tw_reactor *r, const tw_address *addr,
                                       const tw_connect_options *o, tw_factory *f)
{
    if (r == NULL || f == NULL || addr == NULL)
        return refuse(-EINVAL, "connect: no reactor, factory or address");
    int family = tw_address_family(addr);
    char where[TW_ADDRSTRLEN];
    tw_address_format(addr, where, sizeof where);
    if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
        return refuse(-EAFNOSUPPORT, "connect to %s: not an IP or UNIX address", where);
    if (family != AF_UNIX && tw_address_port(addr) == 0)
        return refuse(-EINVAL, "connect to %s: port 0", where);
    return start(r, f, o, where, NULL, tw_address_port(addr), addr);
}
