/* SPDX-License-Identifier: MIT */
/*
 * Name resolution on libevent's evdns, one resolver per reactor.
 *
 * A lookup asks one evdns_getaddrinfo question per address family. With a
 * single family evdns calls back exactly once per question -- with the
 * answer, an error, or EVUTIL_EAI_CANCEL after a cancel -- and touches
 * nothing of ours afterwards, so counting the callbacks still owed tells
 * when the evdns_base may be freed. Until then it must live: a callback
 * already queued in the event_base reads the evdns_base it came from, so a
 * resolver that is done with (reactor stopped or freed, or replaced by
 * tw_resolver_configure) lingers, detached, until its last callback.
 *
 * The resolver hangs off the reactor as one of the closeables on its
 * listener list, so stop and free reach it at once: its pending lookups
 * fail with TW_ESHUTDOWN and their questions are cancelled.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <twine/resolve.h>

#include "core/reactor_internal.h"

/* Once one family has answered, how long the other may keep us waiting. */
#define SKEW_SECONDS 0.5
#define DEFAULT_RESOLV_CONF "/etc/resolv.conf"

typedef struct resolver resolver;
typedef struct lookup lookup;

typedef struct query {
    lookup *lk;
    struct evdns_getaddrinfo_request *req; /* set while evdns owes us a callback */
    int family;
    int answered;
    int err; /* EVUTIL_EAI_* once answered */
    struct evutil_addrinfo *ai;
} query;

struct lookup {
    tw__link link; /* on res->lookups while the deferred is pending */
    resolver *res;
    tw_deferred *d; /* NULL once fired */
    query q[2];
    int nq;
    int starting; /* inside tw_resolve(): answers wait until every question is asked */
    tw_call *skew;
    int port;
    char host[];
};

struct resolver {
    tw__closeable node;
    tw_reactor *r; /* NULL once detached */
    struct evdns_base *dns;
    tw__list lookups;
    size_t owed; /* evdns callbacks still to come */
    int retired; /* replaced by tw_resolver_configure(): takes no new lookups */
};

static const tw__closeable_ops resolver_ops;

static resolver *find(tw_reactor *r)
{
    for (tw__link *n = r->listeners.head; n != NULL; n = n->next) {
        tw__closeable *c = (tw__closeable *)n;
        if (c->ops == &resolver_ops && !((resolver *)c)->retired)
            return (resolver *)c;
    }
    return NULL;
}

static void resolver_free(resolver *res)
{
    evdns_base_free(res->dns, 0);
    free(res);
}

static void maybe_free_resolver(resolver *res)
{
    if (res->r == NULL && res->owed == 0 && res->lookups.head == NULL)
        resolver_free(res);
}

static int lookup_owed(const lookup *lk)
{
    for (int i = 0; i < lk->nq; i++)
        if (lk->q[i].req != NULL)
            return 1;
    return 0;
}

static void maybe_free_lookup(lookup *lk)
{
    if (lk->d != NULL || lookup_owed(lk))
        return;
    resolver *res = lk->res;
    free(lk);
    maybe_free_resolver(res);
}

/* Fire the lookup's deferred and let go of everything else it holds. The
 * questions still out are cancelled; their callbacks free the lookup. */
static void complete(lookup *lk, void *value, tw_failure *failure)
{
    tw_deferred *d = lk->d;
    resolver *res = lk->res;
    lk->d = NULL;
    tw__list_remove(&res->lookups, &lk->link);
    if (lk->skew != NULL) {
        tw_call_cancel(lk->skew);
        tw_call_release(lk->skew);
        lk->skew = NULL;
    }
    for (int i = 0; i < lk->nq; i++) {
        query *q = &lk->q[i];
        if (q->ai != NULL)
            evutil_freeaddrinfo(q->ai);
        q->ai = NULL;
        if (q->req != NULL)
            evdns_getaddrinfo_cancel(q->req);
    }
    if (!lookup_owed(lk))
        free(lk);
    if (res->retired && res->r != NULL && res->lookups.head == NULL) {
        tw__reactor_unregister_listener(res->r, &res->node);
        res->r = NULL;
    }
    maybe_free_resolver(res);
    if (failure != NULL)
        tw_deferred_errback(d, failure);
    else
        tw_deferred_callback(d, value, free);
    tw_deferred_unref(d);
}

static int add_unique(tw_address_list *list, const struct evutil_addrinfo *ai, int port)
{
    if (ai->ai_addrlen > sizeof list->items[0].u.storage)
        return 0;
    tw_address a;
    memset(&a, 0, sizeof a);
    memcpy(&a.u.storage, ai->ai_addr, ai->ai_addrlen);
    a.len = (socklen_t)ai->ai_addrlen;
    if (a.u.sa.sa_family == AF_INET)
        ((struct sockaddr_in *)&a.u.storage)->sin_port = htons((uint16_t)port);
    else if (a.u.sa.sa_family == AF_INET6)
        ((struct sockaddr_in6 *)&a.u.storage)->sin6_port = htons((uint16_t)port);
    else
        return 0;
    for (size_t i = 0; i < list->count; i++)
        if (list->items[i].len == a.len && memcmp(&list->items[i].u.storage, &a.u.storage, a.len) == 0)
            return 0;
    list->items[list->count++] = a;
    return 1;
}

static tw_failure *lookup_failure(const lookup *lk)
{
    int err = 0;
    for (int i = 0; i < lk->nq && err == 0; i++)
        err = lk->q[i].err;
    switch (err) {
    case EVUTIL_EAI_MEMORY:
        return tw_failure_new(-ENOMEM, "DNS lookup of '%s' failed: out of memory", lk->host);
    case EVUTIL_EAI_AGAIN:
    case EVUTIL_EAI_FAIL:
        return tw_failure_new(-EAGAIN, "DNS lookup of '%s' failed: %s", lk->host,
                              "the name servers did not answer or failed");
    case 0: /* the name exists, without an address of the family asked for */
        return tw_failure_new(TW_ENOTFOUND, "DNS lookup of '%s' found no address%s", lk->host,
                              lk->nq == 1 ? (lk->q[0].family == AF_INET ? " of type IPv4"
                                                                         : " of type IPv6")
                                          : "");
    case EVUTIL_EAI_NONAME:
    case EVUTIL_EAI_NODATA:
        return tw_failure_new(TW_ENOTFOUND, "DNS lookup of '%s' failed: %s", lk->host,
                              tw_strerror(TW_ENOTFOUND));
    default:
        return tw_failure_new(-EHOSTUNREACH, "DNS lookup of '%s' failed: %s", lk->host,
                              evutil_gai_strerror(err));
    }
}

/* Every question answered, or the laggard given up on: report. */
static void finish(lookup *lk)
{
    size_t n = 0;
    for (int i = 0; i < lk->nq; i++)
        for (const struct evutil_addrinfo *ai = lk->q[i].ai; ai != NULL; ai = ai->ai_next)
            n++;
    if (n == 0) {
        complete(lk, NULL, lookup_failure(lk));
        return;
    }
    tw_address_list *list = malloc(sizeof *list + n * sizeof list->items[0]);
    if (list == NULL) {
        complete(lk, NULL, tw_failure_new(-ENOMEM, NULL));
        return;
    }
    list->count = 0;
    for (int i = 0; i < lk->nq; i++)
        for (const struct evutil_addrinfo *ai = lk->q[i].ai; ai != NULL; ai = ai->ai_next)
            add_unique(list, ai, lk->port);
    if (list->count == 0) {
        free(list);
        complete(lk, NULL, lookup_failure(lk));
        return;
    }
    complete(lk, list, NULL);
}

static void on_skew(void *arg)
{
    lookup *lk = arg;
    tw_call_release(lk->skew);
    lk->skew = NULL;
    finish(lk);
}

static void progress(lookup *lk)
{
    int waiting = 0, have = 0;
    for (int i = 0; i < lk->nq; i++) {
        if (!lk->q[i].answered)
            waiting = 1;
        else if (lk->q[i].ai != NULL)
            have = 1;
    }
    if (!waiting) {
        finish(lk);
        return;
    }
    if (have && lk->skew == NULL &&
        tw_reactor_call_later(lk->res->r, SKEW_SECONDS, on_skew, lk, &lk->skew) < 0)
        finish(lk);
}

static void answer(query *q, int err, struct evutil_addrinfo *ai);

static void on_answer(int err, struct evutil_addrinfo *ai, void *arg)
{
    query *q = arg;
    tw_reactor *r = q->lk->res->r; /* NULL once the resolver was detached */
    if (r != NULL)
        tw__enter(r);
    answer(q, err, ai);
    if (r != NULL)
        tw__leave(r);
}

static void answer(query *q, int err, struct evutil_addrinfo *ai)
{
    lookup *lk = q->lk;
    if (q->req != NULL) {
        q->req = NULL;
        lk->res->owed--;
    }
    if (lk->d == NULL) { /* abandoned: nobody wants the answer */
        if (ai != NULL)
            evutil_freeaddrinfo(ai);
        maybe_free_lookup(lk);
        return;
    }
    q->answered = 1;
    q->err = err;
    q->ai = ai;
    if (!lk->starting)
        progress(lk);
}

static void ask(lookup *lk, query *q)
{
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = q->family;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    /* evdns answers at once (before returning NULL) from the hosts file or
     * for errors; otherwise it owes us exactly one callback. */
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(lk->res->dns, lk->host, NULL, &hints, on_answer, q);
    if (req != NULL && !q->answered) {
        q->req = req;
        lk->res->owed++;
    }
}

static void cancel_lookup(tw_deferred *d, void *arg)
{
    (void)d;
    lookup *lk = arg;
    complete(lk, NULL, tw_failure_new(TW_ECANCELLED, "DNS lookup of '%s' was cancelled", lk->host));
}

/* Stop or free: fail what is pending and let go of the reactor. */
static void detach(tw__closeable *c)
{
    resolver *res = (resolver *)c;
    tw__reactor_unregister_listener(res->r, &res->node);
    res->r = NULL;
    res->retired = 1;
    if (res->lookups.head == NULL) {
        maybe_free_resolver(res);
        return;
    }
    /* Completing the last lookup may free the resolver: stop reading it then. */
    for (;;) {
        lookup *lk = (lookup *)res->lookups.head;
        int last = lk->link.next == NULL;
        complete(lk, NULL,
                 tw_failure_new(TW_ESHUTDOWN, "DNS lookup of '%s' stopped: %s", lk->host,
                                tw_strerror(TW_ESHUTDOWN)));
        if (last)
            return;
    }
}

static const tw__closeable_ops resolver_ops = {detach, detach, NULL, NULL};

/* A retired resolver lets go of the reactor once its last lookup is done. */
static void detach_quietly(resolver *res)
{
    tw__reactor_unregister_listener(res->r, &res->node);
    res->r = NULL;
    maybe_free_resolver(res);
}

TW_API void tw_resolver_options_init(tw_resolver_options *o)
{
    memset(o, 0, sizeof *o);
}

static int set_number_option(struct evdns_base *dns, const char *name, double value)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%g", value);
    return evdns_base_set_option(dns, name, buf) == 0 ? 0 : -EINVAL;
}

static int add_nameserver(struct evdns_base *dns, const char *text)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof ss;
    memset(&ss, 0, sizeof ss);
    if (evutil_parse_sockaddr_port(text, (struct sockaddr *)&ss, &len) < 0)
        return -EINVAL;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (ss.ss_family == AF_INET && sin->sin_port == 0)
        sin->sin_port = htons(53);
    if (ss.ss_family == AF_INET6 && sin6->sin6_port == 0)
        sin6->sin6_port = htons(53);
    return evdns_base_nameserver_sockaddr_add(dns, (struct sockaddr *)&ss, (ev_socklen_t)len, 0) == 0
               ? 0
               : -EINVAL;
}

static int setup(struct evdns_base *dns, const tw_resolver_options *o)
{
    const char *conf = o->resolv_conf != NULL ? o->resolv_conf : DEFAULT_RESOLV_CONF;
    if (*conf != '\0') {
        int flags = DNS_OPTION_SEARCH | DNS_OPTION_MISC;
        if (o->nameserver == NULL)
            flags |= DNS_OPTION_NAMESERVERS;
        int rc = evdns_base_resolv_conf_parse(dns, flags, conf);
        if (rc == 4)
            return -ENOMEM;
        /* 6 is "no nameserver listed", already replaced by 127.0.0.1. A
         * missing system file falls back the same way; a file the caller
         * named must exist. */
        if (rc != 0 && rc != 6 && o->resolv_conf != NULL)
            return -ENOENT;
    }
    if (o->nameserver != NULL) {
        int rc = add_nameserver(dns, o->nameserver);
        if (rc < 0)
            return rc;
    } else if (evdns_base_count_nameservers(dns) == 0 &&
               evdns_base_nameserver_ip_add(dns, "127.0.0.1") != 0) {
        return -ENOMEM;
    }
    if (o->hosts == NULL)
        evdns_base_load_hosts(dns, NULL); /* a system without /etc/hosts is fine */
    else if (*o->hosts != '\0' && evdns_base_load_hosts(dns, o->hosts) != 0)
        return -ENOENT;
    if (o->timeout > 0) {
        int rc = set_number_option(dns, "timeout:", o->timeout);
        if (rc < 0)
            return rc;
    }
    if (o->attempts > 0) {
        int rc = set_number_option(dns, "attempts:", o->attempts);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int resolver_new(tw_reactor *r, const tw_resolver_options *o, resolver **out)
{
    if (o->timeout < 0 || !isfinite(o->timeout) || o->attempts < 0)
        return -EINVAL;
    resolver *res = calloc(1, sizeof *res);
    if (res == NULL)
        return -ENOMEM;
    /* DISABLE_WHEN_INACTIVE: an idle resolver keeps no event registered, so
     * it never keeps a host's event_base_dispatch() from returning. */
    res->dns = evdns_base_new(r->base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (res->dns == NULL) {
        free(res);
        return -ENOMEM;
    }
    int rc = setup(res->dns, o);
    if (rc < 0) {
        resolver_free(res);
        return rc;
    }
    res->r = r;
    res->node.ops = &resolver_ops;
    tw__reactor_register_listener(r, &res->node);
    *out = res;
    return 0;
}

TW_API int tw_resolver_configure(tw_reactor *r, const tw_resolver_options *o)
{
    tw_resolver_options defaults;
    if (o == NULL) {
        tw_resolver_options_init(&defaults);
        o = &defaults;
    }
    if (tw_reactor_stopping(r))
        return TW_ESHUTDOWN;
    resolver *old = find(r);
    resolver *res;
    int rc = resolver_new(r, o, &res);
    if (rc < 0)
        return rc;
    if (old != NULL) {
        /* Lookups under way finish on the old one, which then goes. */
        old->retired = 1;
        if (old->lookups.head == NULL)
            detach_quietly(old);
    }
    return 0;
}

static tw_deferred *fail_now(int code, const char *fmt, ...) TW_PRINTF(2, 3);

static tw_deferred *fail_now(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    tw_failure *f = tw_failure_newv(code, fmt, ap);
    va_end(ap);
    return tw_deferred_fail(f);
}

TW_API tw_deferred *tw_resolve(tw_reactor *r, const char *host, int port, int family)
{
    if (r == NULL || host == NULL || *host == '\0')
        return fail_now(-EINVAL, "cannot look up '%s': no reactor or host name",
                        host != NULL ? host : "(null)");
    if (port < 0 || port > 65535 || (family != AF_UNSPEC && family != AF_INET && family != AF_INET6))
        return fail_now(-EINVAL, "cannot look up '%s': bad port or address family", host);

    tw_address a;
    if (tw_address_from_ip(&a, host, port) == 0) {
        if (family != AF_UNSPEC && family != tw_address_family(&a))
            return fail_now(-EHOSTUNREACH, "'%s' is not an address of the family asked for",
                            host);
        tw_address_list *list = malloc(sizeof *list + sizeof list->items[0]);
        if (list == NULL)
            return NULL;
        list->count = 1;
        list->items[0] = a;
        return tw_deferred_succeed(list, free);
    }
    if (tw_reactor_stopping(r))
        return fail_now(TW_ESHUTDOWN, "cannot look up '%s': the reactor is shutting down", host);

    resolver *res = find(r);
    if (res == NULL) {
        tw_resolver_options defaults;
        tw_resolver_options_init(&defaults);
        int rc = resolver_new(r, &defaults, &res);
        if (rc < 0)
            return rc == -ENOMEM ? NULL
                                 : fail_now(rc, "cannot look up '%s': no usable resolver", host);
    }
    size_t hlen = strlen(host);
    lookup *lk = calloc(1, sizeof *lk + hlen + 1);
    if (lk == NULL)
        return NULL;
    memcpy(lk->host, host, hlen + 1);
    lk->res = res;
    lk->port = port;
    if (family != AF_INET6)
        lk->q[lk->nq++].family = AF_INET;
    if (family != AF_INET)
        lk->q[lk->nq++].family = AF_INET6;
    for (int i = 0; i < lk->nq; i++)
        lk->q[i].lk = lk;
    lk->d = tw_deferred_new(cancel_lookup, lk);
    if (lk->d == NULL) {
        free(lk);
        return NULL;
    }
    tw_deferred *ret = tw_deferred_ref(lk->d);
    tw__list_push(&res->lookups, &lk->link);
    lk->starting = 1;
    for (int i = 0; i < lk->nq; i++)
        ask(lk, &lk->q[i]);
    lk->starting = 0;
    progress(lk);
    return ret;
}
