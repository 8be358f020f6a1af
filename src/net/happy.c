/* SPDX-License-Identifier: MIT */
/*
 * Happy Eyeballs (RFC 8305): the race between connection attempts to the
 * addresses of one host. A host with an unreachable address -- an IPv6
 * route that drops packets, a server that stopped answering SYNs -- must
 * not stall the connect until the timeout when another address works, so
 * attempts overlap instead of queueing behind each other.
 *
 * The addresses are ordered as RFC 8305 section 4 says: the families
 * interleaved, IPv6 first, each family keeping the resolver's order. The
 * first attempt starts at once; each next one starts when the Connection
 * Attempt Delay has passed since the previous start, or at once when an
 * attempt fails, so a refused address costs no wait. Attempts already
 * under way keep going. The first socket to connect wins: every other is
 * closed before the winner is told, so nothing of a loser is heard after.
 * When every attempt has failed, the last failure is the outcome.
 *
 * The race owns its sockets, their events and the stagger timer, and its
 * owner (connect.c's attempt) owns the race until the outcome is told or
 * it cancels the race; the overall timeout is the owner's.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>
#include <event2/event_struct.h>

#include "core/fd_internal.h"
#include "core/reactor_internal.h"
#include "net/happy_internal.h"

typedef struct racer {
    struct event ev; /* assigned while fd >= 0 */
    int fd;          /* -1 when not connecting */
    tw__race *race;
} racer;

struct tw__race {
    tw_reactor *r;
    tw__race_fn done;
    void *arg;
    tw_address bind;
    double delay;
    tw_call *stagger; /* pending until the next attempt is due */
    size_t count;
    size_t next;    /* the next address to try */
    size_t running; /* attempts connecting now */
    int last_err;
    size_t last; /* the address of last_err */
    racer *racers; /* one per address, in the order tried */
    tw_address addrs[];
};

static void start_attempts(tw__race *race);

/* RFC 8305 section 4 with a First Address Family Count of one. */
static void interleave(tw_address *out, const tw_address_list *in)
{
    size_t n6 = 0, n4 = 0, k = 0;
    for (size_t i = 0; i < in->count; i++) {
        if (tw_address_family(&in->items[i]) == AF_INET6)
            n6++;
        else
            n4++;
    }
    size_t i6 = 0, i4 = 0; /* scan positions in @p in for each family */
    while (k < in->count) {
        for (int want6 = 1; want6 >= 0; want6--) {
            size_t *pos = want6 ? &i6 : &i4;
            if ((want6 ? n6 : n4) == 0)
                continue;
            while (*pos < in->count &&
                   (tw_address_family(&in->items[*pos]) == AF_INET6) != want6)
                (*pos)++;
            if (*pos < in->count) {
                out[k++] = in->items[(*pos)++];
                if (want6)
                    n6--;
                else
                    n4--;
            }
        }
    }
}

/* Close every socket and the timer; the race itself stays to be freed. */
static void quiesce(tw__race *race)
{
    if (race->stagger != NULL) {
        tw_call_cancel(race->stagger);
        tw_call_release(race->stagger);
        race->stagger = NULL;
    }
    for (size_t i = 0; i < race->count; i++) {
        racer *c = &race->racers[i];
        if (c->fd >= 0) {
            event_del(&c->ev);
            close(c->fd);
            c->fd = -1;
        }
    }
    race->running = 0;
}

static void race_free(tw__race *race)
{
    free(race->racers);
    free(race);
}

/* Tell the owner and be gone. Nothing of the race is touched after. */
static void tell(tw__race *race, int fd, size_t index, int err)
{
    tw__race_fn done = race->done;
    void *arg = race->arg;
    tw_address addr = race->addrs[index];
    quiesce(race);
    race_free(race);
    done(arg, fd, &addr, err);
}

static void on_stagger(void *arg)
{
    tw__race *race = arg;
    tw_call_release(race->stagger);
    race->stagger = NULL;
    start_attempts(race);
}

static void attempt_failed(tw__race *race, size_t index, int err)
{
    race->last_err = err;
    race->last = index;
}

static void on_writable(evutil_socket_t fd, short what, void *arg);

/* Open and connect the socket for address @p i: 1 when it is under way,
 * 0 when it failed at once (recorded). */
static int open_attempt(tw__race *race, size_t i)
{
    const tw_address *to = &race->addrs[i];
    int family = tw_address_family(to);
    int bind_first = race->bind.len > 0 && family != AF_UNIX;
    if (bind_first && tw_address_family(&race->bind) != family) {
        attempt_failed(race, i, -EAFNOSUPPORT);
        return 0;
    }
    int fd = tw__socket(family, SOCK_STREAM, 0, O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        attempt_failed(race, i, -errno);
        return 0;
    }
    if ((bind_first && bind(fd, &race->bind.u.sa, race->bind.len) < 0) ||
        (connect(fd, &to->u.sa, to->len) < 0 && errno != EINPROGRESS)) {
        attempt_failed(race, i, -errno);
        close(fd);
        return 0;
    }
    /* Connected or in progress: either way the socket turns writable and
     * the outcome is read from the loop. */
    racer *c = &race->racers[i];
    event_assign(&c->ev, race->r->base, fd, EV_WRITE, on_writable, c);
    if (event_add(&c->ev, NULL) < 0) {
        attempt_failed(race, i, -ENOMEM);
        close(fd);
        return 0;
    }
    c->fd = fd;
    race->running++;
    return 1;
}

/*
 * Start the next attempt, skipping addresses that fail at once, and time
 * the one after it; with nothing left to try and nothing connecting, the
 * race is lost.
 */
static void start_attempts(tw__race *race)
{
    while (race->next < race->count) {
        if (!open_attempt(race, race->next++))
            continue;
        if (race->next == race->count)
            return;
        if (tw_reactor_call_later(race->r, race->delay, on_stagger, race, &race->stagger) == 0)
            return;
        /* Without a timer the rest cannot wait their turn: start them now. */
    }
    if (race->running == 0)
        tell(race, -1, race->last, race->last_err != 0 ? race->last_err : -EHOSTUNREACH);
}

static void racer_event(racer *c)
{
    tw__race *race = c->race;
    size_t index = (size_t)(c - race->racers);
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    event_del(&c->ev);
    if (err == 0) {
        int fd = c->fd;
        c->fd = -1; /* the winner's, not closed with the losers */
        tell(race, fd, index, 0);
        return;
    }
    close(c->fd);
    c->fd = -1;
    race->running--;
    attempt_failed(race, index, -err);
    /* A failure starts the next attempt now rather than at its time. */
    if (race->stagger != NULL) {
        tw_call_cancel(race->stagger);
        tw_call_release(race->stagger);
        race->stagger = NULL;
    }
    start_attempts(race);
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    racer *c = arg;
    tw_reactor *r = c->race->r;
    tw__enter(r); /* the race and its owner may go inside; the reactor may not */
    racer_event(c);
    tw__leave(r);
}

int tw__race_start(tw_reactor *r, const tw_address_list *addrs, const tw_address *bind_address,
                   double delay, tw__race_fn done, void *arg, tw__race **out)
{
    size_t n = addrs->count;
    tw__race *race = calloc(1, sizeof *race + n * sizeof race->addrs[0]);
    if (race == NULL)
        return -ENOMEM;
    race->racers = calloc(n, sizeof *race->racers);
    if (race->racers == NULL) {
        free(race);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        race->racers[i].fd = -1;
        race->racers[i].race = race;
    }
    race->r = r;
    race->done = done;
    race->arg = arg;
    if (bind_address != NULL)
        race->bind = *bind_address;
    race->delay = delay;
    race->count = n;
    interleave(race->addrs, addrs);
    *out = race;
    start_attempts(race);
    return 0;
}

void tw__race_cancel(tw__race *race)
{
    quiesce(race);
    race_free(race);
}
