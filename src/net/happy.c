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
 * attempt fails, so a refused address costs no wait. Addresses the owner
 * learns later (one family answered late) are sorted in with those not yet
 * tried, and while more may come the race is not lost. Attempts already
 * under way keep going. The first socket to connect wins: every other is
 * closed before the winner is told, so nothing of a loser is heard after.
 * When every attempt has failed, the last failure is the outcome.
 *
 * The race owns its sockets, their poller entries and the stagger timer, and its
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

#include "core/fd_internal.h"
#include "core/poller_internal.h"
#include "core/reactor_internal.h"
#include "net/happy_internal.h"

typedef struct racer {
    tw__io io; /* the connecting socket, watched for writability */
    int fd;
    tw_address addr;
    tw__race *race;
    struct racer *next;
} racer;

struct tw__race {
    tw_reactor *r;
    tw__race_fn done;
    void *arg;
    tw_address bind;
    double delay;
    tw_call *stagger; /* pending until the next attempt is due */
    int more;         /* the owner may still add addresses */
    size_t count;     /* addresses in addrs */
    size_t next;      /* the next address to try */
    tw_address *addrs;
    racer *racers; /* the attempts connecting now */
    int last_err;
    tw_address last_addr; /* the address of last_err */
};

static void start_attempts(tw__race *race);

/*
 * RFC 8305 section 4 with a First Address Family Count of one: @p a (@p na
 * addresses) then @p b (@p nb) into @p out, the families alternating,
 * IPv6 first, each family in the order met.
 */
static void interleave(tw_address *out, const tw_address *a, size_t na, const tw_address *b,
                       size_t nb)
{
    size_t n = na + nb, k = 0;
    size_t pos[2] = {0, 0}; /* scan positions over a then b: [0] IPv4 and others, [1] IPv6 */
    while (k < n) {
        for (int want6 = 1; want6 >= 0 && k < n; want6--) {
            size_t *p = &pos[want6];
            for (; *p < n; (*p)++) {
                const tw_address *x = *p < na ? &a[*p] : &b[*p - na];
                if ((tw_address_family(x) == AF_INET6) == want6) {
                    out[k++] = *x;
                    (*p)++;
                    break;
                }
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
    while (race->racers != NULL) {
        racer *c = race->racers;
        race->racers = c->next;
        tw__io_stop(race->r, &c->io);
        close(c->fd);
        free(c);
    }
}

static void race_free(tw__race *race)
{
    free(race->addrs);
    free(race);
}

/* Tell the owner and be gone. Nothing of the race is touched after. */
static void tell(tw__race *race, int fd, const tw_address *addr, int err)
{
    tw__race_fn done = race->done;
    void *arg = race->arg;
    tw_address copy = *addr;
    quiesce(race);
    race_free(race);
    done(arg, fd, &copy, err);
}

static void on_stagger(void *arg)
{
    tw__race *race = arg;
    tw_call_release(race->stagger);
    race->stagger = NULL;
    start_attempts(race);
}

static void attempt_failed(tw__race *race, const tw_address *addr, int err)
{
    race->last_err = err;
    race->last_addr = *addr;
}

static void on_writable(tw__io *io, int what);

/* Open and connect a socket to @p to: 1 when it is under way, 0 when it
 * failed at once (recorded). */
static int open_attempt(tw__race *race, const tw_address *to)
{
    int family = tw_address_family(to);
    int bind_first = race->bind.len > 0 && family != AF_UNIX;
    if (bind_first && tw_address_family(&race->bind) != family) {
        attempt_failed(race, to, -EAFNOSUPPORT);
        return 0;
    }
    racer *c = calloc(1, sizeof *c);
    if (c == NULL) {
        attempt_failed(race, to, -ENOMEM);
        return 0;
    }
    int fd = tw__socket(family, SOCK_STREAM, 0, O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        attempt_failed(race, to, -errno);
        free(c);
        return 0;
    }
    if ((bind_first && bind(fd, &race->bind.u.sa, race->bind.len) < 0) ||
        (connect(fd, &to->u.sa, to->len) < 0 && errno != EINPROGRESS)) {
        attempt_failed(race, to, -errno);
        close(fd);
        free(c);
        return 0;
    }
    /* Connected or in progress: either way the socket turns writable and
     * the outcome is read from the loop. */
    tw__io_init(&c->io, fd, on_writable);
    int rc = tw__io_watch(race->r, &c->io, TW__POLL_OUT);
    if (rc < 0) {
        attempt_failed(race, to, rc);
        close(fd);
        free(c);
        return 0;
    }
    c->fd = fd;
    c->addr = *to;
    c->race = race;
    c->next = race->racers;
    race->racers = c;
    return 1;
}

/*
 * Start the next attempt, skipping addresses that fail at once, and time
 * the one after it (addresses may still be added by then); with nothing
 * left to try, nothing connecting and nothing more to come, the race is
 * lost.
 */
static void start_attempts(tw__race *race)
{
    while (race->next < race->count) {
        if (!open_attempt(race, &race->addrs[race->next++]))
            continue;
        if (race->next == race->count && !race->more)
            return;
        if (tw_reactor_call_later(race->r, race->delay, on_stagger, race, &race->stagger) == 0)
            return;
        /* Without a timer the rest cannot wait their turn: start them now. */
    }
    if (race->racers == NULL && !race->more)
        tell(race, -1, &race->last_addr, race->last_err != 0 ? race->last_err : -EHOSTUNREACH);
}

static void unlink_racer(tw__race *race, racer *c)
{
    racer **p = &race->racers;
    while (*p != c)
        p = &(*p)->next;
    *p = c->next;
}

static void racer_event(racer *c)
{
    tw__race *race = c->race;
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    tw__io_stop(race->r, &c->io);
    unlink_racer(race, c);
    int fd = c->fd;
    tw_address addr = c->addr;
    free(c);
    if (err == 0) {
        tell(race, fd, &addr, 0); /* the winner's socket is not closed with the losers */
        return;
    }
    close(fd);
    attempt_failed(race, &addr, -err);
    /* A failure starts the next attempt now rather than at its time. */
    if (race->stagger != NULL) {
        tw_call_cancel(race->stagger);
        tw_call_release(race->stagger);
        race->stagger = NULL;
    }
    start_attempts(race);
}

/* Writable, or an error or hangup: either way the attempt is decided. */
static void on_writable(tw__io *io, int what)
{
    if (!(what & (TW__POLL_OUT | TW__POLL_HUP)))
        return; /* never kicked nor released */
    racer_event(tw_container_of(io, racer, io));
}

int tw__race_start(tw_reactor *r, const tw_address_list *addrs, const tw_address *bind_address,
                   double delay, int more, tw__race_fn done, void *arg, tw__race **out)
{
    size_t n = addrs->count;
    tw__race *race = calloc(1, sizeof *race);
    if (race == NULL)
        return -ENOMEM;
    race->addrs = malloc(n * sizeof race->addrs[0]);
    if (race->addrs == NULL) {
        free(race);
        return -ENOMEM;
    }
    race->r = r;
    race->done = done;
    race->arg = arg;
    if (bind_address != NULL)
        race->bind = *bind_address;
    race->delay = delay;
    race->more = more;
    race->count = n;
    interleave(race->addrs, addrs->items, n, NULL, 0);
    *out = race;
    start_attempts(race);
    return 0;
}

int tw__race_add(tw__race *race, const tw_address_list *addrs, int last)
{
    size_t n = addrs != NULL ? addrs->count : 0;
    if (n > 0) {
        size_t rest = race->count - race->next;
        tw_address *grown = malloc((race->next + rest + n) * sizeof grown[0]);
        if (grown == NULL)
            return -ENOMEM;
        /* Tried addresses stay; the new ones sort in with those still to try. */
        memcpy(grown, race->addrs, race->next * sizeof grown[0]);
        interleave(grown + race->next, race->addrs + race->next, rest, addrs->items, n);
        free(race->addrs);
        race->addrs = grown;
        race->count += n;
    }
    if (last)
        race->more = 0;
    /* Idle between attempts with none due: the new addresses go now. */
    if (race->stagger == NULL)
        start_attempts(race);
    return 0;
}

void tw__race_cancel(tw__race *race)
{
    quiesce(race);
    race_free(race);
}
