/* SPDX-License-Identifier: MIT */
/*
 * The child watcher: each reactor reaps the children it spawned, and only
 * those (waitpid on their pids, never -1, so the program's other children
 * are its own business).
 *
 * It learns of exits from SIGCHLD, through a libevent signal event of the
 * reactor's own, added while the reactor has children. libevent delivers a
 * signal to one event_base at a time (the last one that added a signal
 * event), so with several reactors SIGCHLD may reach one that did not
 * spawn the child: the watchers of all reactors are on one process-wide
 * list (signals are process-wide: this is the one global of the layer),
 * and a reactor that hears SIGCHLD reaps its own children and wakes every
 * other watcher with tw_reactor_call_from_thread() to reap theirs. When a
 * watcher removes its event (no children left, or its reactor is freed),
 * libevent puts the previous signal handler back, which may leave the
 * others deaf: each other watcher is then woken to add its event again
 * (taking the delivery back) and to reap what it may have missed.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <event2/event.h>
#include <twine/log.h>

#include "core/reactor_internal.h"
#include "proc/proc_internal.h"

typedef struct watcher {
    tw__service service; /* first */
    tw_reactor *r;
    struct event *sigchld; /* added while kids is not empty */
    int added;
    tw__list kids;         /* tw__child */
    tw__link all_link;     /* in all_watchers */
} watcher;

static pthread_mutex_t all_lock = PTHREAD_MUTEX_INITIALIZER;
static tw__list all_watchers;

static void watcher_free(tw__service *sv);
static const tw__service_ops watcher_ops = {NULL, watcher_free};

static watcher *find(tw_reactor *r)
{
    for (tw__service *s = r->services; s != NULL; s = s->next)
        if (s->ops == &watcher_ops)
            return (watcher *)s;
    return NULL;
}

/* Reap what exited among @p w's children. A callback may add or forget
 * children, so the scan starts over after each one. */
static void reap(watcher *w)
{
    int again = 1;
    while (again) {
        again = 0;
        for (tw__link *n = w->kids.head; n != NULL; n = n->next) {
            tw__child *c = tw_container_of(n, tw__child, link);
            int status = 0;
            pid_t rc;
            do
                rc = waitpid(c->pid, &status, WNOHANG);
            while (rc < 0 && errno == EINTR);
            if (rc == 0 || (rc < 0 && errno != ECHILD))
                continue;
            if (rc < 0) {
                tw_log(TW_LOG_WARN, "process",
                       "child %ld was reaped by someone else; its exit status is unknown",
                       (long)c->pid);
                status = -1;
            }
            tw__list_remove(&w->kids, &c->link);
            c->exited(c, status);
            again = 1;
            break;
        }
    }
}

/* Another watcher's reactor heard SIGCHLD, or gave up its event. */
static void remote_wake(void *arg)
{
    watcher *w = arg;
    tw__enter(w->r);
    if (w->added) {
        event_del(w->sigchld); /* add again: take the delivery back */
        event_add(w->sigchld, NULL);
    }
    reap(w);
    tw__leave(w->r);
}

/* Wake every watcher but @p self (NULL: all). */
static void wake_others(const watcher *self)
{
    pthread_mutex_lock(&all_lock);
    for (tw__link *n = all_watchers.head; n != NULL; n = n->next) {
        watcher *o = tw_container_of(n, watcher, all_link);
        if (o != self && o->added)
            tw_reactor_call_from_thread(o->r, remote_wake, o);
    }
    pthread_mutex_unlock(&all_lock);
}

static void update(watcher *w)
{
    if (w->kids.count > 0 && !w->added) {
        if (event_add(w->sigchld, NULL) == 0)
            w->added = 1;
        else
            tw_log(TW_LOG_ERROR, "process", "cannot watch SIGCHLD; children will not be reaped");
    } else if (w->kids.count == 0 && w->added) {
        event_del(w->sigchld);
        w->added = 0;
        wake_others(w);
    }
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    watcher *w = arg;
    tw__enter(w->r);
    reap(w);
    wake_others(w);
    update(w);
    tw__leave(w->r);
}

static void watcher_free(tw__service *sv)
{
    watcher *w = (watcher *)sv;
    pthread_mutex_lock(&all_lock);
    tw__list_remove(&all_watchers, &w->all_link);
    pthread_mutex_unlock(&all_lock);
    /* What is left was forgotten by its owners already (the reactor
     * aborted them); nothing may point here any more. */
    int had = w->added;
    event_free(w->sigchld);
    if (had)
        wake_others(NULL);
    free(w);
}

int tw__children_prepare(tw_reactor *r)
{
    watcher *w = find(r);
    if (w == NULL) {
        if ((w = calloc(1, sizeof *w)) == NULL)
            return -ENOMEM;
        w->r = r;
        w->sigchld = evsignal_new(r->base, SIGCHLD, on_sigchld, w);
        if (w->sigchld == NULL) {
            free(w);
            return -ENOMEM;
        }
        w->service.ops = &watcher_ops;
        tw__reactor_add_service(r, &w->service);
        pthread_mutex_lock(&all_lock);
        tw__list_push(&all_watchers, &w->all_link);
        pthread_mutex_unlock(&all_lock);
    }
    if (!w->added) {
        if (event_add(w->sigchld, NULL) < 0)
            return -ENOMEM;
        w->added = 1;
    }
    return 0;
}

void tw__child_add(tw_reactor *r, tw__child *c)
{
    watcher *w = find(r);
    tw__list_push(&w->kids, &c->link);
    update(w);
}

void tw__child_forget(tw_reactor *r, tw__child *c)
{
    watcher *w = find(r);
    if (w == NULL)
        return;
    tw__list_remove(&w->kids, &c->link);
    update(w);
}

void tw__children_settle(tw_reactor *r)
{
    watcher *w = find(r);
    if (w != NULL)
        update(w);
}
