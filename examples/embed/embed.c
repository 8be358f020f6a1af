/* SPDX-License-Identifier: MIT */
/*
 * embed: twine inside a program that already owns a libevent event_base.
 *
 * The host makes the base, attaches a twine reactor to it with
 * tw_reactor_new_with_base() and keeps driving the base itself with
 * event_base_dispatch(). One loop then serves a twine listener running an
 * echo protocol (a factory made with tw_factory_for_protocol()) and the
 * host's own events: a timer that reports how many echo clients are
 * connected, and SIGINT, which ends the loop.
 *
 * While a reactor is attached, event_base_dispatch() does not return on its
 * own: the reactor keeps a persistent event on the base (the wake-up behind
 * tw_reactor_call_from_thread()). The host ends its loop with
 * event_base_loopbreak() or event_base_loopexit(), as on_sigint() does, and
 * then frees the reactor, which leaves the base as it found it.
 *
 *   embed [PORT]      echo on 127.0.0.1:PORT (default 9000) until ^C
 *   embed --selftest  echo on an ephemeral port, send one message through it
 *                     from a host-side client, exit 0 once it came back and
 *                     the host timer ran
 *
 * Build against an installed twine with the Makefile next to this file.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/event.h>
#include <twine.h>

/* The twine side: echo, one protocol per connection, no state of its own. */
static void echo_data(tw_protocol *p, const void *data, size_t len)
{
    tw_transport_write(p->transport, data, len);
}

static void echo_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    (void)reason;
}

static const tw_protocol_ops echo_ops = {.data_received = echo_data,
                                         .connection_lost = echo_lost};

/* The host's side: its loop, its timer, and in --selftest its own client. */
typedef struct {
    struct event_base *base;
    tw_listener *listener;
    int selftest, ticks;
    char echoed[8];
    size_t echoed_len;
} host;

static int echo_came_back(const host *h)
{
    return h->echoed_len == 5 && memcmp(h->echoed, "hello", 5) == 0;
}

static void selftest_check(host *h)
{
    if (h->selftest && h->ticks > 0 && echo_came_back(h))
        event_base_loopbreak(h->base);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    host *h = arg;
    printf("host tick %d: %zu echo client(s) connected\n", ++h->ticks,
           tw_listener_connections(h->listener));
    fflush(stdout);
    selftest_check(h);
}

static void on_sigint(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(((host *)arg)->base);
}

static void on_echo(evutil_socket_t fd, short what, void *arg)
{
    host *h = arg;
    ssize_t n = (what & EV_READ) ? read(fd, h->echoed + h->echoed_len, 5 - h->echoed_len) : 0;
    if (n <= 0) { /* EOF, error, or the 5 s timeout below */
        fprintf(stderr, "embed: selftest: no echo came back\n");
        event_base_loopbreak(h->base);
        return;
    }
    h->echoed_len += (size_t)n;
    selftest_check(h);
}

int main(int argc, char **argv)
{
    host h = {.selftest = argc > 1 && strcmp(argv[1], "--selftest") == 0};
    int port = h.selftest ? 0 : argc > 1 ? atoi(argv[1]) : 9000;
    h.base = event_base_new();
    tw_reactor *r = h.base != NULL ? tw_reactor_new_with_base(h.base) : NULL;
    if (r == NULL) {
        fprintf(stderr, "embed: cannot create the event loop\n");
        return 1;
    }
    tw_factory *factory = tw_factory_for_protocol(&echo_ops, sizeof(tw_protocol));
    if (factory == NULL) {
        fprintf(stderr, "embed: out of memory creating the echo factory\n");
        return 1;
    }
    tw_address addr;
    char text[TW_ADDRSTRLEN];
    int rc = tw_address_from_ip(&addr, "127.0.0.1", port);
    if (rc == 0)
        rc = tw_listen(r, &addr, NULL, factory, &h.listener);
    if (rc == 0)
        rc = tw_listener_address(h.listener, &addr);
    if (rc < 0) {
        fprintf(stderr, "embed: cannot listen on port %d: %s\n", port, tw_strerror(rc));
        return 1;
    }
    printf("embed: echo on %s, ^C to stop\n", tw_address_format(&addr, text, sizeof text));

    struct timeval period = {h.selftest ? 0 : 5, h.selftest ? 50000 : 0}, five_s = {5, 0};
    struct event *tick = event_new(h.base, -1, EV_PERSIST, on_tick, &h);
    struct event *sigint = evsignal_new(h.base, SIGINT, on_sigint, &h);
    event_add(tick, &period);
    event_add(sigint, NULL);
    /* In --selftest the host is also a client, on the same loop. */
    struct event *client = NULL;
    int fd = -1;
    if (h.selftest) {
        fd = socket(tw_address_family(&addr), SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, &addr.u.sa, addr.len) < 0 || write(fd, "hello", 5) != 5) {
            perror("embed: selftest client");
            return 1;
        }
        client = event_new(h.base, fd, EV_READ | EV_PERSIST, on_echo, &h);
        event_add(client, &five_s); /* EV_TIMEOUT after 5 s without data */
    }

    event_base_dispatch(h.base); /* the host's loop, with twine inside */
    if (client != NULL)
        event_free(client);
    if (fd >= 0)
        close(fd);
    event_free(tick);
    event_free(sigint);
    tw_listener_close(h.listener);
    tw_reactor_free(r); /* aborts the connections still open */
    tw_factory_free(factory); /* after every listener and connection */
    event_base_free(h.base);
    if (h.selftest)
        printf("embed: selftest %s\n", echo_came_back(&h) ? "passed" : "FAILED");
    return h.selftest && !echo_came_back(&h) ? 1 : 0;
}
