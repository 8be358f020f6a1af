/* SPDX-License-Identifier: MIT */
/*
 * call_from_thread: the reactor's one thread-safe entry point. Other threads
 * append to a mutex-protected FIFO and, when it was empty, wake the loop
 * through an eventfd (a pipe where there is none); the loop takes the whole
 * queue at once and runs it in submission order. Taking the whole queue
 * keeps the lock out of the callbacks, so a callback may itself call
 * tw_reactor_call_from_thread() without deadlock. The wake-up descriptor is
 * watched through the poller, as every other descriptor of the reactor.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef HAVE_SYS_EVENTFD_H
#include <sys/eventfd.h>
#endif

#include "core/fd_internal.h"
#include "core/poller_internal.h"
#include "core/reactor_internal.h"

static void drain_wake(int fd)
{
    char buf[64];
    while (read(fd, buf, sizeof buf) > 0)
        ;
}

struct tw__thread_wake {
    tw__io io; /* on wake_read */
    tw_reactor *r;
};

static void on_wake(tw__io *io, int what)
{
    if (!(what & TW__POLL_IN))
        return; /* never kicked nor released */
    tw_reactor *r = ((struct tw__thread_wake *)io)->r; /* io is first */
    tw__enter(r);
    drain_wake(io->fd);
    pthread_mutex_lock(&r->threads.lock);
    tw__thread_call *c = r->threads.head;
    r->threads.head = r->threads.tail = NULL;
    pthread_mutex_unlock(&r->threads.lock);
    while (c != NULL) {
        tw__thread_call *next = c->next;
        /* An embedded node may be queued again, or freed, by its own call. */
        int embedded = c->embedded;
        c->fn(c->arg);
        if (!embedded)
            free(c);
        c = next;
    }
    tw__leave(r);
}

int tw__threads_init(tw_reactor *r)
{
    tw__thread_queue *q = &r->threads;
    q->wake_read = q->wake_write = -1;
    if (pthread_mutex_init(&q->lock, NULL) != 0)
        return -ENOMEM;
#ifdef HAVE_SYS_EVENTFD_H
    q->wake_read = q->wake_write = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
#else
    int p[2];
    if (tw__pipe(p, O_NONBLOCK | O_CLOEXEC) == 0) {
        q->wake_read = p[0];
        q->wake_write = p[1];
    }
#endif
    if (q->wake_read < 0)
        return -errno;
    if ((q->wake = malloc(sizeof *q->wake)) == NULL)
        return -ENOMEM;
    q->wake->r = r;
    tw__io_init(&q->wake->io, q->wake_read, on_wake);
    return tw__io_watch(r, &q->wake->io, TW__POLL_IN);
}

void tw__threads_free(tw_reactor *r)
{
    tw__thread_queue *q = &r->threads;
    if (q->wake != NULL) {
        tw__io_stop(r, &q->wake->io);
        free(q->wake);
        q->wake = NULL;
    }
    /* Calls that never ran are dropped, since the reactor they were for is
     * going; their release functions give back what they carried. A release
     * that queues another call sees it dropped in turn. */
    for (;;) {
        pthread_mutex_lock(&q->lock);
        tw__thread_call *c = q->head;
        q->head = q->tail = NULL;
        pthread_mutex_unlock(&q->lock);
        if (c == NULL)
            break;
        while (c != NULL) {
            tw__thread_call *next = c->next;
            if (!c->embedded) { /* an embedded node's owner drops it */
                if (c->release != NULL)
                    c->release(c->arg);
                free(c);
            }
            c = next;
        }
    }
    if (q->wake_read >= 0)
        close(q->wake_read);
    if (q->wake_write >= 0 && q->wake_write != q->wake_read)
        close(q->wake_write);
    q->wake_read = q->wake_write = -1;
    pthread_mutex_destroy(&q->lock);
}

TW_API int tw_reactor_call_from_thread(tw_reactor *r, tw_call_fn fn, void *arg)
{
    return tw_reactor_call_from_thread_full(r, fn, arg, NULL);
}

TW_API int tw_reactor_call_from_thread_full(tw_reactor *r, tw_call_fn fn, void *arg,
                                            tw_call_fn release)
{
    if (fn == NULL)
        return -EINVAL;
    tw__thread_call *c = malloc(sizeof *c);
    if (c == NULL)
        return -ENOMEM;
    c->fn = fn;
    c->release = release;
    c->arg = arg;
    c->embedded = 0;
    tw__threads_post(r, c);
    return 0;
}

void tw__threads_post(tw_reactor *r, tw__thread_call *c)
{
    c->next = NULL;
    tw__thread_queue *q = &r->threads;
    pthread_mutex_lock(&q->lock);
    int was_empty = q->head == NULL;
    if (q->tail != NULL)
        q->tail->next = c;
    else
        q->head = c;
    q->tail = c;
    if (was_empty) {
        /* Only the first call after a drain needs to wake the loop. */
        uint64_t one = 1;
        ssize_t w = write(q->wake_write, &one, sizeof one);
        (void)w; /* a full pipe already means "wake up" */
    }
    pthread_mutex_unlock(&q->lock);
}

void tw__threads_unpost(tw_reactor *r, tw__thread_call *c)
{
    tw__thread_queue *q = &r->threads;
    pthread_mutex_lock(&q->lock);
    tw__thread_call *prev = NULL;
    for (tw__thread_call *it = q->head; it != NULL; prev = it, it = it->next) {
        if (it != c)
            continue;
        if (prev != NULL)
            prev->next = c->next;
        else
            q->head = c->next;
        if (q->tail == c)
            q->tail = prev;
        break;
    }
    pthread_mutex_unlock(&q->lock);
}
