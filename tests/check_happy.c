/* SPDX-License-Identifier: MIT */
/*
 * Happy Eyeballs (RFC 8305) for host names with several addresses, over
 * loopback only. A hosts file the test writes names the addresses; an
 * address "black-holed" here is a listener whose accept queue is full, so
 * the kernel drops the SYNs sent to it and a connect there stalls as it
 * would towards a broken route. A name server the test runs on 127.0.0.1
 * answers one family late, or never. The tests time how long the connect takes
 * against the attempt delay and the timeout, and count the process's
 * descriptors to see that no attempt is left behind.
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/dns.h>
#include <event2/dns_struct.h>
#include <twine.h>

#include "core/fd_internal.h"
#include "recorder.h"
#include "testutil.h"

#define NAME "happy.twine.test"

/* ------------------------------------------------------------ helpers */

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

/* A listener at an address whose accept queue is full: SYNs to it are
 * dropped, so connects there stay pending. */
typedef struct {
    int lfd;
    int fillers[8];
    int nfill;
} black_hole;

/* 0, or -1 when @p host:@p port cannot be bound (someone has the port). */
static int black_hole_open(black_hole *b, const char *host, int port)
{
    memset(b, 0, sizeof *b);
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, host, port), 0);
    b->lfd = socket(tw_address_family(&a), SOCK_STREAM, 0);
    ck_assert_int_ge(b->lfd, 0);
    if (bind(b->lfd, &a.u.sa, a.len) < 0) {
        close(b->lfd);
        return -1;
    }
    ck_assert_int_eq(listen(b->lfd, 0), 0);
    for (int i = 0; i < 8; i++) {
        int c = tw__socket(tw_address_family(&a), SOCK_STREAM, 0, O_NONBLOCK);
        connect(c, &a.u.sa, a.len);
        struct pollfd p = {c, POLLOUT, 0};
        if (poll(&p, 1, 200) == 1) {
            b->fillers[b->nfill++] = c;
            continue;
        }
        close(c); /* this one stayed pending: the queue is full */
        return 0;
    }
    ck_abort_msg("could not fill the accept queue of %s", host);
    return -1;
}

static void black_hole_close(black_hole *b)
{
    for (int i = 0; i < b->nfill; i++)
        close(b->fillers[i]);
    close(b->lfd);
}

/* Point @p r's resolver at a hosts file holding @p text only. */
static void use_hosts(tw_reactor *r, const char *text, char *path, size_t pathlen)
{
    snprintf(path, pathlen, "/tmp/twine-happy-hosts-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
    tw_resolver_options ro;
    tw_resolver_options_init(&ro);
    ro.resolv_conf = "";
    ro.hosts = path;
    ro.nameserver = "127.0.0.1:9"; /* never asked: the hosts file answers */
    ck_assert_int_eq(tw_resolver_configure(r, &ro), 0);
}

static tw_listener *try_listen(tw_reactor *r, rec_factory *rf, const char *host, int port)
{
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, host, port), 0);
    tw_listener *l = NULL;
    return tw_listen(r, &a, NULL, &rf->base, &l) == 0 ? l : NULL;
}

static int port_of(tw_listener *l)
{
    tw_address a;
    tw_listener_address(l, &a);
    return tw_address_port(&a);
}

/*
 * One port on which 127.0.0.1 accepts (with @p server) and ::1 is a black
 * hole: NAME resolves to both, and ::1 is tried first.
 */
typedef struct {
    tw_listener *l;
    black_hole hole;
    int port;
} hole6_works4;

static void hole6_works4_open(tw_reactor *r, rec_factory *server, hole6_works4 *h)
{
    for (int i = 0; i < 20; i++) {
        h->l = try_listen(r, server, "127.0.0.1", 0);
        ck_assert_ptr_nonnull(h->l);
        h->port = port_of(h->l);
        if (black_hole_open(&h->hole, "::1", h->port) == 0)
            return;
        tw_listener_close(h->l);
    }
    ck_abort_msg("no port free on both 127.0.0.1 and ::1");
}

static void hole6_works4_close(hole6_works4 *h)
{
    tw_listener_close(h->l);
    black_hole_close(&h->hole);
}

static const char both_hosts[] = "127.0.0.1 " NAME "\n::1 " NAME "\n";

/* Connect to the description @p fmt makes and wait up to @p wait_ms for
 * the outcome; @return the milliseconds it took. */
static long long connect_timed(tw_reactor *r, tu_client_factory *client, tu_outcome *o,
                               int wait_ms, const char *fmt, ...) TW_PRINTF(5, 6);

static long long connect_timed(tw_reactor *r, tu_client_factory *client, tu_outcome *o,
                               int wait_ms, const char *fmt, ...)
{
    char desc[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(desc, sizeof desc, fmt, ap);
    va_end(ap);
    long long t0 = tu_now_ms();
    tu_watch(tw_connect_string(r, desc, &client->rf.base), o);
    spin(r, &o->fired, wait_ms);
    return tu_now_ms() - t0;
}

/*
 * A name server on 127.0.0.1 for NAME: A 127.0.0.1 at once, and AAAA ::1
 * after @c aaaa_ms milliseconds, or never when it is negative.
 */
typedef struct {
    tw_reactor *r;
    struct evdns_server_port *port;
    int fd;
    int aaaa_ms;
    struct evdns_server_request *held; /* an AAAA question waiting */
    tw_call *later;
} dns_server;

static void dns_answer_aaaa(void *arg)
{
    dns_server *s = arg;
    struct evdns_server_request *req = s->held;
    s->held = NULL;
    static const unsigned char v6[16] = {[15] = 1};
    evdns_server_request_add_aaaa_reply(req, req->questions[0]->name, 1, v6, 60);
    evdns_server_request_respond(req, 0);
}

static void dns_question(struct evdns_server_request *req, void *arg)
{
    dns_server *s = arg;
    struct evdns_server_question *q = req->nquestions == 1 ? req->questions[0] : NULL;
    if (q == NULL || strcasecmp(q->name, NAME) != 0) {
        evdns_server_request_respond(req, DNS_ERR_NOTEXIST);
        return;
    }
    if (q->type == EVDNS_TYPE_A) {
        static const unsigned char v4[4] = {127, 0, 0, 1};
        evdns_server_request_add_a_reply(req, q->name, 1, v4, 60);
        evdns_server_request_respond(req, 0);
        return;
    }
    if (q->type != EVDNS_TYPE_AAAA || s->held != NULL || s->aaaa_ms < 0) {
        evdns_server_request_drop(req);
        return;
    }
    s->held = req;
    int rc = tw_reactor_call_later(s->r, s->aaaa_ms / 1000.0, dns_answer_aaaa, s, &s->later);
    ck_assert_int_eq(rc, 0);
}

static void dns_start(tw_reactor *r, dns_server *s, int aaaa_ms)
{
    memset(s, 0, sizeof *s);
    s->r = r;
    s->aaaa_ms = aaaa_ms;
    s->fd = tw__socket(AF_INET, SOCK_DGRAM, 0, O_NONBLOCK | O_CLOEXEC);
    tw_address a;
    tw_address_from_ip(&a, "127.0.0.1", 0);
    ck_assert_int_eq(bind(s->fd, &a.u.sa, a.len), 0);
    a.len = sizeof a.u.storage;
    getsockname(s->fd, &a.u.sa, &a.len);
    char addr[64];
    tw_address_format(&a, addr, sizeof addr);
    s->port = evdns_add_server_port_with_base(tw_reactor_event_base(r), s->fd, 0, dns_question, s);
    ck_assert_ptr_nonnull(s->port);
    tw_resolver_options o;
    tw_resolver_options_init(&o);
    o.resolv_conf = "";
    o.hosts = "";
    o.nameserver = addr;
    ck_assert_int_eq(tw_resolver_configure(r, &o), 0);
}

static void dns_stop(dns_server *s)
{
    if (s->later != NULL) {
        tw_call_cancel(s->later);
        tw_call_release(s->later);
    }
    if (s->held != NULL)
        evdns_server_request_drop(s->held);
    evdns_close_server_port(s->port); /* closes the socket */
}

/* ------------------------------------------------------------ tests */

START_TEST(test_a_black_holed_first_address_costs_the_attempt_delay_not_the_timeout)
{
    tw_reactor *r = tw_reactor_new();
    char hosts[64];
    use_hosts(r, both_hosts, hosts, sizeof hosts);
    rec_factory server;
    tu_client_factory client;
    rec_init(&server, r);
    tu_client_init(&client, r);
    hole6_works4 h;
    hole6_works4_open(r, &server, &h);
    int before = count_fds();
    tu_outcome o;
    long long ms = connect_timed(r, &client, &o, 12000, "tcp:" NAME ":%d:timeout=10", h.port);
    ck_assert_msg(o.fired && o.ok, "%s", o.fired ? o.message : "no outcome");
    /* ::1 first; 127.0.0.1 once the 250 ms attempt delay has passed. */
    ck_assert_msg(ms >= 200 && ms < 3000, "connected after %lld ms", ms);
    tw_address peer;
    tw_transport_get_peer(client.rf.last->transport, &peer);
    ck_assert_int_eq(tw_address_family(&peer), AF_INET);
    ck_assert_int_eq(client.failed, 0);
    ck_assert_int_eq(client.rf.built, 1);
    spin(r, &server.built, 2000);
    ck_assert_int_eq(server.built, 1);
    /* The client's socket and the accepted one: the attempt on ::1 is closed. */
    ck_assert_int_eq(count_fds(), before + 2);
    spin_ms(r, 300);
    ck_assert_int_eq(client.rf.built, 1);
    ck_assert_int_eq(client.failed, 0);
    tw_transport_lose_connection(client.rf.last->transport);
    spin(r, &client.lost, 2000);
    hole6_works4_close(&h);
    tw_reactor_free(r);
    unlink(hosts);
}
END_TEST

/* Within one family too: the resolver's first address drops SYNs, the
 * second accepts. */
START_TEST(test_a_black_holed_address_listed_first_does_not_stall_the_connect)
{
    tw_reactor *r = tw_reactor_new();
    char hosts[64];
    use_hosts(r, "127.0.0.2 " NAME "\n127.0.0.1 " NAME "\n", hosts, sizeof hosts);
    rec_factory server;
    tu_client_factory client;
    rec_init(&server, r);
    tu_client_init(&client, r);
    tw_listener *l = NULL;
    black_hole hole;
    int port = 0;
    for (int i = 0; i < 20 && port == 0; i++) {
        l = try_listen(r, &server, "127.0.0.1", 0);
        ck_assert_ptr_nonnull(l);
        port = port_of(l);
        if (black_hole_open(&hole, "127.0.0.2", port) < 0) {
            tw_listener_close(l);
            port = 0;
        }
    }
    ck_assert_int_ne(port, 0);
    tu_outcome o;
    long long ms = connect_timed(r, &client, &o, 12000, "tcp:" NAME ":%d:timeout=10", port);
    ck_assert_msg(o.fired && o.ok, "%s", o.fired ? o.message : "no outcome");
    ck_assert_msg(ms >= 200 && ms < 3000, "connected after %lld ms", ms);
    tw_address peer;
    char text[TW_ADDRSTRLEN];
    tw_transport_get_peer(client.rf.last->transport, &peer);
    tw_address_format(&peer, text, sizeof text);
    ck_assert_msg(strncmp(text, "127.0.0.1:", 10) == 0, "connected to %s", text);
    tw_transport_lose_connection(client.rf.last->transport);
    spin(r, &client.lost, 2000);
    tw_listener_close(l);
    black_hole_close(&hole);
    tw_reactor_free(r);
    unlink(hosts);
}
END_TEST

START_TEST(test_the_attempt_delay_is_configurable)
{
    tw_reactor *r = tw_reactor_new();
    char hosts[64];
    use_hosts(r, both_hosts, hosts, sizeof hosts);
    rec_factory server;
    tu_client_factory client;
    rec_init(&server, r);
    tu_client_init(&client, r);
    hole6_works4 h;
    hole6_works4_open(r, &server, &h);
    tu_outcome o;
    long long ms = connect_timed(r, &client, &o, 12000,
                                 "tcp:" NAME ":%d:timeout=10:attemptDelay=1", h.port);
    ck_assert_msg(o.fired && o.ok, "%s", o.fired ? o.message : "no outcome");
    ck_assert_msg(ms >= 900 && ms < 4000, "connected after %lld ms", ms);
    tw_transport_lose_connection(client.rf.last->transport);
    spin(r, &client.lost, 2000);
    hole6_works4_close(&h);
    tw_reactor_free(r);
    unlink(hosts);
}
END_TEST

/* The families alternate, IPv6 first: with ::1 and 127.0.0.1 black holes,
 * ::ffff:127.0.0.3 (IPv6, third in line) wins, not 127.0.0.2 (fourth). */
START_TEST(test_the_families_alternate_starting_with_ipv6)
{
    tw_reactor *r = tw_reactor_new();
    char hosts[64];
    use_hosts(r,
              "127.0.0.1 " NAME "\n127.0.0.2 " NAME "\n::1 " NAME "\n::ffff:127.0.0.3 " NAME "\n",
              hosts, sizeof hosts);
    rec_factory server2, server3;
    tu_client_factory client;
    rec_init(&server2, r);
    rec_init(&server3, r);
    tu_client_init(&client, r);
    tw_listener *l2 = NULL, *l3 = NULL;
    black_hole h1, h6;
    int port = 0;
    for (int i = 0; i < 20 && port == 0; i++) {
        l2 = try_listen(r, &server2, "127.0.0.2", 0);
        ck_assert_ptr_nonnull(l2);
        port = port_of(l2);
        l3 = try_listen(r, &server3, "127.0.0.3", port);
        if (l3 != NULL && black_hole_open(&h1, "127.0.0.1", port) == 0) {
            if (black_hole_open(&h6, "::1", port) == 0)
                break;
            black_hole_close(&h1);
        }
        if (l3 != NULL)
            tw_listener_close(l3);
        tw_listener_close(l2);
        port = 0;
    }
    ck_assert_int_ne(port, 0);
    tu_outcome o;
    long long ms = connect_timed(r, &client, &o, 12000, "tcp:" NAME ":%d:timeout=10", port);
    ck_assert_msg(o.fired && o.ok, "%s", o.fired ? o.message : "no outcome");
    ck_assert_msg(ms >= 400 && ms < 4000, "connected after %lld ms", ms);
    tw_address peer;
    char text[TW_ADDRSTRLEN];
    tw_transport_get_peer(client.rf.last->transport, &peer);
    tw_address_format(&peer, text, sizeof text);
    ck_assert_msg(strstr(text, "127.0.0.3") != NULL, "connected to %s", text);
    spin(r, &server3.built, 2000);
    ck_assert_int_eq(server3.built, 1);
    ck_assert_int_eq(server2.built, 0);
    tw_transport_lose_connection(client.rf.last->transport);
    spin(r, &client.lost, 2000);
    tw_listener_close(l2);
    tw_listener_close(l3);
    black_hole_close(&h1);
    black_hole_close(&h6);
    tw_reactor_free(r);
    unlink(hosts);
}
END_TEST

START_TEST(test_when_every_address_fails_the_last_error_is_reported)
{
    tw_reactor *r = tw_reactor_new();
    char hosts[64];
    use_hosts(r, both_hosts, hosts, sizeof hosts);
    tu_client_factory client;
    tu_client_init(&client, r);
    int port = tu_closed_port();
    int before = count_fds();
    /* ::1 is refused first, which starts 127.0.0.1 at once rather than
     * after the 2 s attempt delay; bound to ::1, that one cannot even be
     * tried: its error is the last. */
    tu_outcome o;
    long long ms =
        connect_timed(r, &client, &o, 12000,
                      "tcp:" NAME ":%d:bindAddress=\\:\\:1:timeout=10:attemptDelay=2", port);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -EAFNOSUPPORT);
    ck_assert_msg(strstr(o.message, "127.0.0.1") != NULL, "%s", o.message);
    ck_assert_msg(strstr(o.message, NAME) != NULL, "%s", o.message);
    ck_assert_msg(ms < 1500, "failed after %lld ms", ms);
    ck_assert_int_eq(client.failed, 1);
    ck_assert_int_eq(client.failed_code, -EAFNOSUPPORT);
    ck_assert_int_eq(client.rf.built, 0);
    ck_assert_int_eq(count_fds(), before);
    /* Both refused: ECONNREFUSED, for 127.0.0.1, the last tried. */
    ms = connect_timed(r, &client, &o, 12000, "tcp:" NAME ":%d:timeout=10:attemptDelay=2", port);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -ECONNREFUSED);
    ck_assert_msg(strstr(o.message, "(127.0.0.1:") != NULL, "%s", o.message);
    ck_assert_msg(ms < 1500, "failed after %lld ms", ms);
    ck_assert_int_eq(client.failed, 2);
    ck_assert_int_eq(count_fds(), before);
    tw_reactor_free(r);
    unlink(hosts);
}
END_TEST

/* Both addresses black holes, on one port. */
static int two_holes(black_hole *h4, black_hole *h6)
{
    for (int i = 0; i < 20; i++) {
        int port = tu_closed_port();
        if (black_hole_open(h4, "127.0.0.1", port) < 0)
            continue;
        if (black_hole_open(h6, "::1", port) == 0)
            return port;
        black_hole_close(h4);
    }
    ck_abort_msg("no port free on both 127.0.0.1 and ::1");
    return -1;
}

START_TEST(test_cancel_closes_every_attempt)
{
    tw_reactor *r = tw_reactor_new();
    char hosts[64];
    use_hosts(r, both_hosts, hosts, sizeof hosts);
    tu_client_factory client;
    tu_client_init(&client, r);
    black_hole h4, h6;
    int port = two_holes(&h4, &h6);
    int before = count_fds();
    char desc[128];
    snprintf(desc, sizeof desc, "tcp:" NAME ":%d:timeout=10", port);
    tw_deferred *d = tw_connect_string(r, desc, &client.rf.base);
    tu_outcome o;
    memset(&o, 0, sizeof o);
    tw_deferred_add_callbacks(d, tu_out_cb, tu_out_eb, &o);
    spin_ms(r, 500);
    ck_assert(!o.fired);
    /* Both attempts under way at once, the first not given up for the second. */
    ck_assert_int_eq(count_fds(), before + 2);
    ck_assert_int_eq(tw_deferred_cancel(d), 0);
    ck_assert(o.fired && !o.ok); /* synchronously */
    ck_assert_int_eq(o.code, TW_ECANCELLED);
    ck_assert_int_eq(count_fds(), before);
    ck_assert_int_eq(client.failed, 1);
    ck_assert_int_eq(client.failed_code, TW_ECANCELLED);
    tw_deferred_unref(d);
    /* Freeing the holes' queues lets late SYNs through: nothing may hear. */
    black_hole_close(&h4);
    black_hole_close(&h6);
    spin_ms(r, 300);
    ck_assert_int_eq(client.rf.built, 0);
    ck_assert_int_eq(client.failed, 1);
    ck_assert_int_eq(client.rf.stops, 1);
    ck_assert_int_eq(count_fds(), before - (1 + h4.nfill) - (1 + h6.nfill));
    tw_reactor_free(r);
    unlink(hosts);
}
END_TEST

START_TEST(test_the_timeout_bounds_every_attempt_together)
{
    tw_reactor *r = tw_reactor_new();
    char hosts[64];
    use_hosts(r, both_hosts, hosts, sizeof hosts);
    tu_client_factory client;
    tu_client_init(&client, r);
    black_hole h4, h6;
    int port = two_holes(&h4, &h6);
    int before = count_fds();
    tu_outcome o;
    long long ms = connect_timed(r, &client, &o, 5000, "tcp:" NAME ":%d:timeout=0.7", port);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, TW_ETIMEDOUT);
    ck_assert_msg(ms >= 600 && ms < 3000, "timed out after %lld ms", ms);
    ck_assert_int_eq(count_fds(), before);
    ck_assert_int_eq(client.failed, 1);
    ck_assert_int_eq(client.rf.built, 0);
    black_hole_close(&h4);
    black_hole_close(&h6);
    tw_reactor_free(r);
    unlink(hosts);
}
END_TEST

START_TEST(test_stopping_the_reactor_mid_race_closes_every_attempt)
{
    black_hole h4, h6;
    int port = two_holes(&h4, &h6);
    tw_reactor *r = tw_reactor_new();
    /* The stop discards the resolver too, so count from before it. */
    int before = count_fds();
    char hosts[64];
    use_hosts(r, both_hosts, hosts, sizeof hosts);
    tu_client_factory client;
    tu_client_init(&client, r);
    int running = count_fds();
    tu_outcome o;
    connect_timed(r, &client, &o, 400, "tcp:" NAME ":%d:timeout=10", port);
    ck_assert(!o.fired);
    ck_assert_int_eq(count_fds(), running + 2);
    tw_reactor_stop(r);
    ck_assert_int_eq(tw_reactor_run(r), 0);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, TW_ESHUTDOWN);
    ck_assert_int_eq(client.failed, 1);
    ck_assert_int_eq(client.rf.built, 0);
    ck_assert_int_eq(count_fds(), before);
    black_hole_close(&h4);
    black_hole_close(&h6);
    tw_reactor_free(r);
    unlink(hosts);
}
END_TEST

START_TEST(test_freeing_the_reactor_mid_race_leaves_nothing_open)
{
    black_hole h4, h6;
    int port = two_holes(&h4, &h6);
    int before = count_fds();
    tw_reactor *r = tw_reactor_new();
    char hosts[64];
    use_hosts(r, both_hosts, hosts, sizeof hosts);
    tu_client_factory client;
    tu_client_init(&client, r);
    int running = count_fds();
    tu_outcome o;
    connect_timed(r, &client, &o, 400, "tcp:" NAME ":%d", port);
    ck_assert(!o.fired);
    ck_assert_int_eq(count_fds(), running + 2);
    tw_reactor_free(r);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, TW_ESHUTDOWN);
    ck_assert_int_eq(client.failed, 1);
    ck_assert_int_eq(count_fds(), before);
    black_hole_close(&h4);
    black_hole_close(&h6);
    unlink(hosts);
}
END_TEST

/* RFC 8305 section 3: IPv4 answers wait for IPv6 ones only for the
 * Resolution Delay (50 ms), not until the resolver gives up on them. */
START_TEST(test_a_silent_ipv6_lookup_delays_the_connect_by_the_resolution_delay_only)
{
    tw_reactor *r = tw_reactor_new();
    dns_server dns;
    dns_start(r, &dns, -1);
    rec_factory server;
    tu_client_factory client;
    rec_init(&server, r);
    tu_client_init(&client, r);
    tw_listener *l = try_listen(r, &server, "127.0.0.1", 0);
    ck_assert_ptr_nonnull(l);
    tu_outcome o;
    long long ms = connect_timed(r, &client, &o, 12000, "tcp:" NAME ":%d:timeout=10", port_of(l));
    ck_assert_msg(o.fired && o.ok, "%s", o.fired ? o.message : "no outcome");
    /* The resolver alone would wait 500 ms for the AAAA answer. */
    ck_assert_msg(ms >= 40 && ms < 450, "connected after %lld ms", ms);
    tw_transport_lose_connection(client.rf.last->transport);
    spin(r, &client.lost, 2000);
    tw_listener_close(l);
    dns_stop(&dns);
    tw_reactor_free(r);
}
END_TEST

/* The race starts on the IPv4 address (a black hole); the IPv6 one,
 * answered 300 ms later, joins it and wins. */
START_TEST(test_ipv6_addresses_answered_late_join_the_race)
{
    tw_reactor *r = tw_reactor_new();
    dns_server dns;
    dns_start(r, &dns, 300);
    rec_factory server;
    tu_client_factory client;
    rec_init(&server, r);
    tu_client_init(&client, r);
    tw_listener *l = NULL;
    black_hole hole;
    int port = 0;
    for (int i = 0; i < 20 && port == 0; i++) {
        l = try_listen(r, &server, "::1", 0);
        ck_assert_ptr_nonnull(l);
        port = port_of(l);
        if (black_hole_open(&hole, "127.0.0.1", port) < 0) {
            tw_listener_close(l);
            port = 0;
        }
    }
    ck_assert_int_ne(port, 0);
    tu_outcome o;
    long long ms = connect_timed(r, &client, &o, 12000, "tcp:" NAME ":%d:timeout=10", port);
    ck_assert_msg(o.fired && o.ok, "%s", o.fired ? o.message : "no outcome");
    ck_assert_msg(ms >= 250 && ms < 3000, "connected after %lld ms", ms);
    tw_address peer;
    tw_transport_get_peer(client.rf.last->transport, &peer);
    ck_assert_int_eq(tw_address_family(&peer), AF_INET6);
    tw_transport_lose_connection(client.rf.last->transport);
    spin(r, &client.lost, 2000);
    tw_listener_close(l);
    black_hole_close(&hole);
    dns_stop(&dns);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_attempt_delay_is_checked)
{
    tw_reactor *r = tw_reactor_new();
    tu_client_factory client;
    tu_client_init(&client, r);
    tw_connect_options co;
    tw_connect_options_init(&co);
    ck_assert(co.attempt_delay == TW_CONNECT_ATTEMPT_DELAY);
    ck_assert(TW_CONNECT_ATTEMPT_DELAY == 0.25);
    co.attempt_delay = 0.005;
    tu_outcome o;
    tu_watch(tw_connect_tcp(r, "localhost", 80, &co, &client.rf.base), &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -EINVAL);
    co.attempt_delay = -1;
    tu_watch(tw_connect_tcp(r, "localhost", 80, &co, &client.rf.base), &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -EINVAL);
    ck_assert_int_eq(client.failed, 0); /* refused before it began */
    tw_reactor_free(r);
}
END_TEST

static Suite *happy_suite(void)
{
    Suite *s = suite_create("happy");
    TCase *c = tcase_create("happy");
    tcase_set_timeout(c, 30);
    tcase_add_test(c, test_a_black_holed_first_address_costs_the_attempt_delay_not_the_timeout);
    tcase_add_test(c, test_a_black_holed_address_listed_first_does_not_stall_the_connect);
    tcase_add_test(c, test_the_attempt_delay_is_configurable);
    tcase_add_test(c, test_the_families_alternate_starting_with_ipv6);
    tcase_add_test(c, test_when_every_address_fails_the_last_error_is_reported);
    tcase_add_test(c, test_cancel_closes_every_attempt);
    tcase_add_test(c, test_the_timeout_bounds_every_attempt_together);
    tcase_add_test(c, test_stopping_the_reactor_mid_race_closes_every_attempt);
    tcase_add_test(c, test_freeing_the_reactor_mid_race_leaves_nothing_open);
    tcase_add_test(c, test_a_silent_ipv6_lookup_delays_the_connect_by_the_resolution_delay_only);
    tcase_add_test(c, test_ipv6_addresses_answered_late_join_the_race);
    tcase_add_test(c, test_attempt_delay_is_checked);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(happy_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
