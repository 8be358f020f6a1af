/* SPDX-License-Identifier: MIT */
/*
 * Outgoing connections and name resolution, over loopback only: connect
 * results and their timing, what the client factory hears, timeouts and
 * cancellation (against a listener whose accept queue is full, and a name
 * server that never answers), and lookups through the hosts file and
 * through a name server the test runs itself on 127.0.0.1.
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/dns.h>
#include <event2/dns_struct.h>
#include <event2/event.h>
#include <twine.h>

#include "core/fd_internal.h"
#include "recorder.h"
#include "testutil.h"

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

/* A listener whose accept queue is full: further connects stay pending. */
typedef struct {
    int lfd, port;
    int fillers[8];
    int nfill;
} full_listener;

static void full_backlog(full_listener *fl)
{
    memset(fl, 0, sizeof *fl);
    fl->lfd = socket(AF_INET, SOCK_STREAM, 0);
    tw_address a;
    tw_address_from_ip(&a, "127.0.0.1", 0);
    ck_assert_int_eq(bind(fl->lfd, &a.u.sa, a.len), 0);
    ck_assert_int_eq(listen(fl->lfd, 0), 0);
    a.len = sizeof a.u.storage;
    getsockname(fl->lfd, &a.u.sa, &a.len);
    fl->port = tw_address_port(&a);
    for (int i = 0; i < 8; i++) {
        int c = tw__socket(AF_INET, SOCK_STREAM, 0, O_NONBLOCK);
        connect(c, &a.u.sa, a.len);
        struct pollfd p = {c, POLLOUT, 0};
        if (poll(&p, 1, 200) == 1) {
            fl->fillers[fl->nfill++] = c;
            continue;
        }
        close(c); /* this one stayed pending: the queue is full */
        return;
    }
    ck_abort_msg("could not fill the accept queue");
}

static void full_backlog_close(full_listener *fl)
{
    for (int i = 0; i < fl->nfill; i++)
        close(fl->fillers[i]);
    close(fl->lfd);
}

/* A name server on 127.0.0.1 that answers for one name (A and/or AAAA)
 * and says NXDOMAIN for any other; or, when @p silent, never answers. */
typedef struct {
    struct evdns_server_port *port;
    int fd;
    char addr[64]; /* "127.0.0.1:PORT" */
    int queries;
    const char *name;
    int have_a, have_aaaa;
} dns_server;

static void dns_answer(struct evdns_server_request *req, void *arg)
{
    dns_server *s = arg;
    s->queries++;
    int found = 0;
    for (int i = 0; i < req->nquestions; i++) {
        struct evdns_server_question *q = req->questions[i];
        if (s->name == NULL || strcasecmp(q->name, s->name) != 0)
            continue;
        found = 1;
        static const unsigned char v4[4] = {127, 0, 0, 1};
        static const unsigned char v6[16] = {[15] = 1};
        if (q->type == EVDNS_TYPE_A && s->have_a)
            evdns_server_request_add_a_reply(req, q->name, 1, v4, 60);
        if (q->type == EVDNS_TYPE_AAAA && s->have_aaaa)
            evdns_server_request_add_aaaa_reply(req, q->name, 1, v6, 60);
    }
    evdns_server_request_respond(req, found ? 0 : DNS_ERR_NOTEXIST);
}

static void dns_start(tw_reactor *r, dns_server *s, int silent)
{
    s->fd = tw__socket(AF_INET, SOCK_DGRAM, 0, O_NONBLOCK | O_CLOEXEC);
    tw_address a;
    tw_address_from_ip(&a, "127.0.0.1", 0);
    ck_assert_int_eq(bind(s->fd, &a.u.sa, a.len), 0);
    a.len = sizeof a.u.storage;
    getsockname(s->fd, &a.u.sa, &a.len);
    tw_address_format(&a, s->addr, sizeof s->addr);
    s->port = silent ? NULL
                     : evdns_add_server_port_with_base(tw_reactor_event_base(r), s->fd, 0,
                                                       dns_answer, s);
    ck_assert(silent || s->port != NULL);
    tw_resolver_options o;
    tw_resolver_options_init(&o);
    o.resolv_conf = "";
    o.hosts = "";
    o.nameserver = s->addr;
    ck_assert_int_eq(tw_resolver_configure(r, &o), 0);
}

static void dns_stop(dns_server *s)
{
    if (s->port != NULL)
        evdns_close_server_port(s->port); /* closes the socket */
    else
        close(s->fd);
}

static tw_listener *listen_at(tw_reactor *r, rec_factory *rf, const char *host, int port)
{
    tw_address a;
    ck_assert_int_eq(tw_address_from_ip(&a, host, port), 0);
    tw_listener *l;
    ck_assert_int_eq(tw_listen(r, &a, NULL, &rf->base, &l), 0);
    return l;
}

static int port_of(tw_listener *l)
{
    tw_address a;
    tw_listener_address(l, &a);
    return tw_address_port(&a);
}

/* ------------------------------------------------------------ connecting */

START_TEST(test_connect_fires_with_the_protocol_after_connection_made)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory server;
    tu_client_factory client;
    rec_init(&server, r);
    tu_client_init(&client, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &server, NULL, &port);
    tu_outcome o;
    tu_watch_made(tw_connect_tcp(r, "127.0.0.1", port, NULL, &client.rf.base), &o, &client.rf);
    spin(r, &o.fired, 3000);
    ck_assert_msg(o.ok, "%s", o.message);
    ck_assert_ptr_eq(o.value, client.rf.last);
    ck_assert_ptr_null(o.free_fn); /* the protocol is the transport's */
    ck_assert(o.made_before);
    ck_assert_ptr_eq(((tw_protocol *)o.value)->factory, &client.rf.base);
    ck_assert_int_eq(client.failed, 0);
    /* It is a working stream. */
    ck_assert_int_eq(tw_transport_write(client.rf.last->transport, "hi", 2), 0);
    long long deadline = tu_now_ms() + 2000;
    while (server.received < 2 && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.005);
    ck_assert_uint_eq(server.received, 2);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_connect_reports_only_from_the_loop)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory server;
    tu_client_factory client;
    rec_init(&server, r);
    tu_client_init(&client, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &server, NULL, &port);
    tu_outcome o;
    tu_watch(tw_connect_tcp(r, "127.0.0.1", port, NULL, &client.rf.base), &o);
    ck_assert(!o.fired);
    ck_assert_int_eq(client.rf.built, 0);
    tu_outcome refused;
    tu_watch(tw_connect_tcp(r, "127.0.0.1", tu_closed_port(), NULL, &client.rf.base), &refused);
    ck_assert(!refused.fired);
    ck_assert_int_eq(client.failed, 0);
    spin(r, &o.fired, 3000);
    spin(r, &refused.fired, 3000);
    ck_assert(o.ok && !refused.ok);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_a_refused_connection_reaches_connection_failed_naming_econnrefused)
{
    tw_reactor *r = tw_reactor_new();
    tu_client_factory client;
    tu_client_init(&client, r);
    int port = tu_closed_port();
    tu_outcome o;
    tu_watch(tw_connect_tcp(r, "127.0.0.1", port, NULL, &client.rf.base), &o);
    spin(r, &o.fired, 3000);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -ECONNREFUSED);
    ck_assert_msg(strstr(o.message, "ECONNREFUSED") != NULL, "%s", o.message);
    ck_assert_int_eq(client.failed, 1);
    ck_assert_int_eq(client.failed_code, -ECONNREFUSED);
    ck_assert_msg(strstr(client.failed_message, "ECONNREFUSED") != NULL, "%s",
                  client.failed_message);
    char where[32];
    snprintf(where, sizeof where, "127.0.0.1:%d", port);
    ck_assert_msg(strstr(client.failed_message, where) != NULL, "%s", client.failed_message);
    ck_assert_int_eq(client.rf.built, 0);
    ck_assert_int_eq(client.lost, 0);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_an_attempt_counts_as_a_user_of_the_factory)
{
    tw_reactor *r = tw_reactor_new();
    tu_client_factory client;
    tu_client_init(&client, r);
    tu_outcome o;
    tu_watch(tw_connect_tcp(r, "127.0.0.1", tu_closed_port(), NULL, &client.rf.base), &o);
    ck_assert_int_eq(client.rf.starts, 1);
    ck_assert_int_eq(client.rf.stops, 0);
    spin(r, &o.fired, 3000);
    ck_assert_int_eq(client.rf.stops, 1);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_a_lost_connection_reaches_client_connection_lost_after_the_protocol)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory server;
    tu_client_factory client;
    rec_init(&server, r);
    tu_client_init(&client, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &server, NULL, &port);
    tu_outcome o;
    tu_watch(tw_connect_tcp(r, "127.0.0.1", port, NULL, &client.rf.base), &o);
    spin(r, &o.fired, 3000);
    spin(r, &server.built, 2000);
    ck_assert(o.ok);
    tw_transport_abort_connection(server.last->transport);
    spin(r, &client.lost, 3000);
    ck_assert_int_eq(client.lost, 1);
    ck_assert(client.protocol_lost_first);
    ck_assert_int_eq(client.lost_code, client.rf.lost_code);
    ck_assert_int_eq(client.failed, 0);
    ck_assert_int_eq(client.rf.stops, 1);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_every_attempt_fails_at_once_when_the_factory_refuses)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory server;
    tu_client_factory client;
    rec_init(&server, r);
    tu_client_init(&client, r);
    client.rf.refuse = 1;
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &server, NULL, &port);
    tu_outcome o;
    tu_watch(tw_connect_tcp(r, "127.0.0.1", port, NULL, &client.rf.base), &o);
    spin(r, &o.fired, 3000);
    ck_assert(!o.ok);
    ck_assert_int_eq(o.code, -ECONNABORTED);
    ck_assert_msg(strstr(o.message, "refused the connection") != NULL, "%s", o.message);
    ck_assert_int_eq(client.failed, 1);
    ck_assert_int_eq(client.rf.starts, 1);
    ck_assert_int_eq(client.rf.stops, 1);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_timeout_fails_with_etimedout_and_closes_the_socket)
{
    tw_reactor *r = tw_reactor_new();
    tu_client_factory client;
    tu_client_init(&client, r);
    full_listener fl;
    full_backlog(&fl);
    int before = count_fds();
    tw_connect_options co;
    tw_connect_options_init(&co);
    co.timeout = 0.3;
    long long start = tu_now_ms();
    tu_outcome o;
    tu_watch(tw_connect_tcp(r, "127.0.0.1", fl.port, &co, &client.rf.base), &o);
    spin_ms(r, 50);
    ck_assert(!o.fired);
    ck_assert_int_eq(count_fds(), before + 1); /* the pending socket */
    spin(r, &o.fired, 5000);
    long long took = tu_now_ms() - start;
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, TW_ETIMEDOUT);
    ck_assert_msg(strstr(o.message, "timed out after 0.3 seconds") != NULL, "%s", o.message);
    ck_assert_int_ge(took, 250);
    ck_assert_int_lt(took, 3000);
    ck_assert_int_eq(client.failed, 1);
    ck_assert_int_eq(client.failed_code, TW_ETIMEDOUT);
    ck_assert_int_eq(count_fds(), before);
    full_backlog_close(&fl);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_cancel_aborts_a_pending_connect)
{
    tw_reactor *r = tw_reactor_new();
    tu_client_factory client;
    tu_client_init(&client, r);
    full_listener fl;
    full_backlog(&fl);
    int before = count_fds();
    tw_deferred *d = tw_connect_tcp(r, "127.0.0.1", fl.port, NULL, &client.rf.base);
    tu_outcome o;
    memset(&o, 0, sizeof o);
    tw_deferred_add_callbacks(d, tu_out_cb, tu_out_eb, &o);
    spin_ms(r, 100);
    ck_assert(!o.fired);
    ck_assert_int_eq(count_fds(), before + 1);
    ck_assert_int_eq(tw_deferred_cancel(d), 0);
    ck_assert(o.fired && !o.ok); /* synchronously */
    ck_assert_int_eq(o.code, TW_ECANCELLED);
    ck_assert_int_eq(count_fds(), before);
    ck_assert_int_eq(client.failed, 1);
    ck_assert_int_eq(client.failed_code, TW_ECANCELLED);
    ck_assert_int_eq(client.rf.built, 0);
    ck_assert_int_eq(client.rf.stops, 1);
    tw_deferred_unref(d);
    spin_ms(r, 50);
    ck_assert_int_eq(client.rf.built, 0);
    full_backlog_close(&fl);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_cancel_before_the_loop_runs_opens_no_socket)
{
    tw_reactor *r = tw_reactor_new();
    tu_client_factory client;
    tu_client_init(&client, r);
    int before = count_fds();
    tw_deferred *d = tw_connect_tcp(r, "127.0.0.1", tu_closed_port(), NULL, &client.rf.base);
    tu_outcome o;
    memset(&o, 0, sizeof o);
    tw_deferred_add_callbacks(d, tu_out_cb, tu_out_eb, &o);
    tw_deferred_cancel(d);
    tw_deferred_unref(d);
    ck_assert_int_eq(o.code, TW_ECANCELLED);
    spin_ms(r, 50);
    ck_assert_int_eq(count_fds(), before);
    ck_assert_int_eq(client.failed, 1);
    tw_reactor_free(r);
}
END_TEST

/* A protocol that cancels its own connect from connection_made. */
static tw_deferred *cancel_me;

static void cm_made(tw_protocol *p)
{
    (void)p;
    tw_deferred_cancel(cancel_me);
}

static void cm_data(tw_protocol *p, const void *data, size_t len)
{
    (void)p;
    (void)data;
    (void)len;
}

static void cm_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    (void)reason;
}

static void cm_destroy(tw_protocol *p)
{
    free(p);
}

static const tw_protocol_ops cm_ops = {.connection_made = cm_made,
                                       .data_received = cm_data,
                                       .connection_lost = cm_lost,
                                       .destroy = cm_destroy};

static tw_protocol *cm_build(tw_factory *f, const tw_address *peer)
{
    (void)f;
    (void)peer;
    tw_protocol *p = calloc(1, sizeof *p);
    p->ops = &cm_ops;
    return p;
}

static const tw_factory_ops cm_factory_ops = {.build_protocol = cm_build};

START_TEST(test_a_cancel_from_connection_made_is_too_late)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory server;
    rec_init(&server, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &server, NULL, &port);
    tw_factory f;
    tw_factory_init(&f, &cm_factory_ops);
    cancel_me = tw_connect_tcp(r, "127.0.0.1", port, NULL, &f);
    tu_outcome o;
    memset(&o, 0, sizeof o);
    tw_deferred_add_callbacks(cancel_me, tu_out_cb, tu_out_eb, &o);
    spin(r, &o.fired, 3000);
    ck_assert_msg(o.ok, "%s", o.message);
    ck_assert_int_eq(tw_transport_write(((tw_protocol *)o.value)->transport, "x", 1), 0);
    tw_deferred_unref(cancel_me);
    cancel_me = NULL;
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_stopping_the_reactor_fails_pending_attempts)
{
    tw_reactor *r = tw_reactor_new();
    tu_client_factory client;
    tu_client_init(&client, r);
    full_listener fl;
    full_backlog(&fl);
    tu_outcome o;
    tu_watch(tw_connect_tcp(r, "127.0.0.1", fl.port, NULL, &client.rf.base), &o);
    spin_ms(r, 50);
    tw_reactor_stop(r);
    ck_assert_int_eq(tw_reactor_run(r), 0);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, TW_ESHUTDOWN);
    ck_assert_int_eq(client.failed, 1);
    full_backlog_close(&fl);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_freeing_the_reactor_fails_pending_attempts)
{
    tw_reactor *r = tw_reactor_new();
    tu_client_factory client;
    tu_client_init(&client, r);
    full_listener fl;
    full_backlog(&fl);
    tu_outcome o;
    tu_watch(tw_connect_tcp(r, "127.0.0.1", fl.port, NULL, &client.rf.base), &o);
    spin_ms(r, 50);
    tw_reactor_free(r);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, TW_ESHUTDOWN);
    ck_assert_int_eq(client.failed, 1);
    full_backlog_close(&fl);
}
END_TEST

START_TEST(test_bind_address_sets_the_local_address)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory server;
    tu_client_factory client;
    rec_init(&server, r);
    tu_client_init(&client, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &server, NULL, &port);
    int local = tu_closed_port();
    tw_connect_options co;
    tw_connect_options_init(&co);
    ck_assert_int_eq(tw_address_from_ip(&co.bind_address, "127.0.0.1", local), 0);
    tu_outcome o;
    tu_watch(tw_connect_tcp(r, "127.0.0.1", port, &co, &client.rf.base), &o);
    spin(r, &o.fired, 3000);
    ck_assert_msg(o.ok, "%s", o.message);
    tw_address host;
    ck_assert_int_eq(tw_transport_get_host(client.rf.last->transport, &host), 0);
    ck_assert_int_eq(tw_address_port(&host), local);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_connect_unix_and_a_missing_path)
{
    char dir[] = "/tmp/twine-cn-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/s", dir);
    tw_reactor *r = tw_reactor_new();
    rec_factory server;
    tu_client_factory client;
    rec_init(&server, r);
    tu_client_init(&client, r);
    tu_outcome missing;
    tu_watch(tw_connect_unix(r, path, NULL, &client.rf.base), &missing);
    spin(r, &missing.fired, 3000);
    ck_assert(!missing.ok);
    ck_assert_int_eq(missing.code, -ENOENT);
    ck_assert_msg(strstr(missing.message, "ENOENT") != NULL, "%s", missing.message);
    tw_address a;
    tw_address_from_unix(&a, path);
    tw_listener *l;
    ck_assert_int_eq(tw_listen(r, &a, NULL, &server.base, &l), 0);
    tu_outcome o;
    tu_watch(tw_connect_address(r, &a, NULL, &client.rf.base), &o);
    spin(r, &o.fired, 3000);
    ck_assert_msg(o.ok, "%s", o.message);
    spin(r, &server.built, 2000);
    ck_assert_int_eq(server.built, 1);
    tw_listener_close(l);
    tw_reactor_free(r);
    unlink(path);
    rmdir(dir);
}
END_TEST

static void assert_nonblocking_and_close_on_exec(tw_protocol *p)
{
    int fd = tw_transport_fileno(p->transport);
    ck_assert_int_ge(fd, 0);
    ck_assert_msg(fcntl(fd, F_GETFL) & O_NONBLOCK, "descriptor %d blocks", fd);
    ck_assert_msg(fcntl(fd, F_GETFD) & FD_CLOEXEC, "descriptor %d survives exec", fd);
}

/* Both ends twine makes, accepted and connected, over TCP and UNIX: made so
 * by the flag forms (accept4, SOCK_NONBLOCK|SOCK_CLOEXEC) or by fcntl. */
START_TEST(test_accepted_and_connected_sockets_are_nonblocking_and_close_on_exec)
{
    char dir[] = "/tmp/twine-cn-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/s", dir);
    tw_address addrs[2];
    ck_assert_int_eq(tw_address_from_ip(&addrs[0], "127.0.0.1", 0), 0);
    ck_assert_int_eq(tw_address_from_unix(&addrs[1], path), 0);
    for (int i = 0; i < 2; i++) {
        tw_reactor *r = tw_reactor_new();
        rec_factory server;
        tu_client_factory client;
        rec_init(&server, r);
        tu_client_init(&client, r);
        tw_listener *l;
        ck_assert_int_eq(tw_listen(r, &addrs[i], NULL, &server.base, &l), 0);
        tw_address bound;
        tw_listener_address(l, &bound);
        tu_outcome o;
        tu_watch(tw_connect_address(r, &bound, NULL, &client.rf.base), &o);
        spin(r, &o.fired, 3000);
        ck_assert_msg(o.ok, "%s", o.message);
        spin(r, &server.built, 2000);
        ck_assert_int_eq(server.built, 1);
        assert_nonblocking_and_close_on_exec(server.last);
        assert_nonblocking_and_close_on_exec(client.rf.last);
        tw_listener_close(l);
        tw_reactor_free(r);
    }
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_bad_arguments_fail_at_once_and_the_factory_hears_nothing)
{
    tw_reactor *r = tw_reactor_new();
    tu_client_factory client;
    tu_client_init(&client, r);
    tu_outcome o;
    tu_watch(tw_connect_tcp(r, "127.0.0.1", 0, NULL, &client.rf.base), &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -EINVAL);
    tu_watch(tw_connect_tcp(r, NULL, 80, NULL, &client.rf.base), &o);
    ck_assert_int_eq(o.code, -EINVAL);
    tw_connect_options co;
    tw_connect_options_init(&co);
    co.timeout = -1;
    tu_watch(tw_connect_tcp(r, "127.0.0.1", 80, &co, &client.rf.base), &o);
    ck_assert_int_eq(o.code, -EINVAL);
    char longpath[200];
    memset(longpath, 'x', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = '\0';
    tu_watch(tw_connect_unix(r, longpath, NULL, &client.rf.base), &o);
    ck_assert_int_eq(o.code, -ENAMETOOLONG);
    ck_assert_int_eq(client.failed, 0);
    ck_assert_int_eq(client.rf.starts, 0);
    tw_reactor_free(r);
}
END_TEST

/* ------------------------------------------------------------ names */

START_TEST(test_localhost_resolves_from_the_hosts_file)
{
    tw_reactor *r = tw_reactor_new();
    tu_outcome o;
    memset(&o, 0, sizeof o);
    tw_deferred *d = tw_resolve(r, "localhost", 8080, AF_UNSPEC);
    ck_assert_ptr_nonnull(d);
    ck_assert(tw_deferred_called(d)); /* the hosts file needs no name server */
    tw_deferred_add_callbacks(d, tu_out_cb, tu_out_eb, &o);
    ck_assert_msg(o.ok, "%s", o.message);
    tw_address_list *list = o.value;
    int saw_v4 = 0;
    for (size_t i = 0; i < list->count; i++) {
        char text[TW_ADDRSTRLEN];
        tw_address_format(&list->items[i], text, sizeof text);
        if (strcmp(text, "127.0.0.1:8080") == 0)
            saw_v4 = 1;
        else
            ck_assert_str_eq(text, "[::1]:8080");
    }
    ck_assert(saw_v4);
    free(list);
    tw_deferred_unref(d);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_connect_to_localhost_by_name)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory server;
    tu_client_factory client;
    rec_init(&server, r);
    tu_client_init(&client, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &server, NULL, &port);
    tu_outcome o;
    tu_watch(tw_connect_tcp(r, "localhost", port, NULL, &client.rf.base), &o);
    ck_assert(!o.fired);
    spin(r, &o.fired, 3000);
    ck_assert_msg(o.ok, "%s", o.message);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_numeric_hosts_need_no_lookup)
{
    tw_reactor *r = tw_reactor_new();
    dns_server dns = {0};
    dns_start(r, &dns, 1);
    tw_deferred *d = tw_resolve(r, "::1", 7, AF_UNSPEC);
    ck_assert(tw_deferred_called(d));
    tu_outcome o;
    tu_watch(d, &o);
    ck_assert(o.ok);
    tw_address_list *list = o.value;
    ck_assert_uint_eq(list->count, 1);
    ck_assert_int_eq(tw_address_family(&list->items[0]), AF_INET6);
    ck_assert_int_eq(tw_address_port(&list->items[0]), 7);
    free(list);
    rec_factory server;
    tu_client_factory client;
    rec_init(&server, r);
    tu_client_init(&client, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &server, NULL, &port);
    tu_watch(tw_connect_tcp(r, "127.0.0.1", port, NULL, &client.rf.base), &o);
    spin(r, &o.fired, 3000);
    ck_assert_msg(o.ok, "%s", o.message);
    ck_assert_int_eq(dns.queries, 0);
    tw_listener_close(l);
    dns_stop(&dns);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_names_resolve_through_the_configured_name_server)
{
    tw_reactor *r = tw_reactor_new();
    dns_server dns = {.name = "svc.twine.test", .have_a = 1};
    dns_start(r, &dns, 0);
    tu_outcome o;
    tu_watch(tw_resolve(r, "svc.twine.test", 53, AF_INET), &o);
    ck_assert(!o.fired);
    spin(r, &o.fired, 5000);
    ck_assert_msg(o.ok, "%s", o.message);
    tw_address_list *list = o.value;
    ck_assert_uint_eq(list->count, 1);
    char text[TW_ADDRSTRLEN];
    ck_assert_str_eq(tw_address_format(&list->items[0], text, sizeof text), "127.0.0.1:53");
    ck_assert_int_ge(dns.queries, 1);
    free(list);
    dns_stop(&dns);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_an_unknown_name_fails_with_enotfound)
{
    tw_reactor *r = tw_reactor_new();
    dns_server dns = {.name = "svc.twine.test", .have_a = 1};
    dns_start(r, &dns, 0);
    tu_client_factory client;
    tu_client_init(&client, r);
    tu_outcome o;
    tu_watch(tw_connect_tcp(r, "nosuch.twine.test", 80, NULL, &client.rf.base), &o);
    spin(r, &o.fired, 5000);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, TW_ENOTFOUND);
    ck_assert_msg(strstr(o.message, "nosuch.twine.test") != NULL, "%s", o.message);
    ck_assert_msg(strstr(o.message, "host name not found") != NULL, "%s", o.message);
    ck_assert_msg(strstr(o.message, "No route to host") == NULL, "%s", o.message);
    ck_assert_int_eq(client.failed, 1);
    ck_assert_int_eq(client.rf.built, 0);
    dns_stop(&dns);
    tw_reactor_free(r);
}
END_TEST

static char libevent_said[4096];

static void capture_libevent(tw_log_level level, const char *subsystem, const char *message,
                             void *arg)
{
    (void)level;
    (void)arg;
    if (strcmp(subsystem, "libevent") == 0 &&
        strlen(libevent_said) + strlen(message) + 2 < sizeof libevent_said) {
        strcat(libevent_said, message);
        strcat(libevent_said, "\n");
    }
}

/* evdns reports a name server it gives up on through libevent's log; that
 * must reach twine's sink, not stderr. */
START_TEST(test_libevent_messages_reach_the_twine_log_sink)
{
    tw_reactor *r = tw_reactor_new();
    libevent_said[0] = '\0';
    tw_log_set_handler(capture_libevent, NULL);
    dns_server dns = {0};
    dns_start(r, &dns, 1);
    dns_stop(&dns); /* a closed port: every query is refused */
    tw_resolver_options ro;
    tw_resolver_options_init(&ro);
    ro.resolv_conf = "";
    ro.hosts = "";
    ro.nameserver = dns.addr;
    ro.timeout = 0.1;
    ro.attempts = 1;
    ck_assert_int_eq(tw_resolver_configure(r, &ro), 0);
    tu_outcome o;
    long long deadline = tu_now_ms() + 10000;
    while (strstr(libevent_said, "Nameserver") == NULL && tu_now_ms() < deadline) {
        tu_watch(tw_resolve(r, "gone.twine.test", 80, AF_INET), &o);
        spin(r, &o.fired, 2000);
        ck_assert(o.fired && !o.ok);
    }
    tw_log_set_handler(NULL, NULL);
    ck_assert_msg(strstr(libevent_said, "Nameserver") != NULL, "libevent said: '%s'",
                  libevent_said);
    ck_assert_msg(strstr(libevent_said, dns.addr) != NULL, "libevent said: '%s'", libevent_said);
    tw_reactor_free(r);
}
END_TEST

/* A lookup still waiting for a name server when the reactor goes fails
 * with TW_ESHUTDOWN and leaves nothing behind (LSan, in CI's ASan stage,
 * reports the evdns base or request if it leaks). */
static void pending_lookup_at_the_end(int stop_first, int host_base)
{
    struct event_base *base = host_base ? event_base_new() : NULL;
    tw_reactor *r = host_base ? tw_reactor_new_with_base(base) : tw_reactor_new();
    dns_server dns = {0};
    dns_start(r, &dns, 1);
    tu_outcome o;
    tu_watch(tw_resolve(r, "slow.twine.test", 80, AF_UNSPEC), &o);
    spin_ms(r, 20); /* the questions are out */
    ck_assert(!o.fired);
    if (stop_first) {
        tw_reactor_stop(r);
        if (!host_base)
            ck_assert_int_eq(tw_reactor_run(r), 0);
        else
            spin_ms(r, 20);
        ck_assert(o.fired);
    }
    ck_assert_int_eq(tw_reactor_free(r), 0);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, TW_ESHUTDOWN);
    dns_stop(&dns);
    if (base != NULL) {
        /* What libevent still owes the cancelled lookup runs in the host's
         * loop, as reactor.h tells hosts. */
        event_base_loop(base, EVLOOP_NONBLOCK);
        event_base_free(base);
    }
}

START_TEST(test_a_lookup_pending_at_free_leaves_nothing_behind)
{
    pending_lookup_at_the_end(0, _i);
}
END_TEST

START_TEST(test_a_lookup_pending_at_stop_leaves_nothing_behind)
{
    pending_lookup_at_the_end(1, _i);
}
END_TEST

START_TEST(test_each_resolved_address_is_tried_in_turn)
{
    tw_reactor *r = tw_reactor_new();
    dns_server dns = {.name = "both.twine.test", .have_a = 1, .have_aaaa = 1};
    dns_start(r, &dns, 0);
    rec_factory server;
    tu_client_factory client;
    rec_init(&server, r);
    tu_client_init(&client, r);
    /* Only 127.0.0.1 listens, so ::1 (tried first) refuses. */
    tw_listener *l = listen_at(r, &server, "127.0.0.1", 0);
    int port = port_of(l);
    tu_outcome o;
    tu_watch(tw_connect_tcp(r, "both.twine.test", port, NULL, &client.rf.base), &o);
    spin(r, &o.fired, 5000);
    ck_assert_msg(o.ok, "%s", o.message);
    tw_address peer;
    tw_transport_get_peer(client.rf.last->transport, &peer);
    ck_assert_int_eq(tw_address_family(&peer), AF_INET);
    ck_assert_int_eq(client.failed, 0);
    tw_listener_close(l);
    dns_stop(&dns);
    tw_reactor_free(r);
}
END_TEST

/* RFC 8305: IPv6 first, though the resolver lists IPv4 first. */
START_TEST(test_ipv6_addresses_are_tried_first)
{
    tw_reactor *r = tw_reactor_new();
    dns_server dns = {.name = "both.twine.test", .have_a = 1, .have_aaaa = 1};
    dns_start(r, &dns, 0);
    rec_factory server4, server6;
    tu_client_factory client;
    rec_init(&server4, r);
    rec_init(&server6, r);
    tu_client_init(&client, r);
    tw_listener *l6 = listen_at(r, &server6, "::1", 0);
    int port = port_of(l6);
    tw_listener *l4 = listen_at(r, &server4, "127.0.0.1", port);
    tu_outcome o;
    tu_watch(tw_connect_tcp(r, "both.twine.test", port, NULL, &client.rf.base), &o);
    spin(r, &o.fired, 5000);
    ck_assert_msg(o.ok, "%s", o.message);
    spin(r, &server6.built, 2000);
    ck_assert_int_eq(server6.built, 1);
    ck_assert_int_eq(server4.built, 0);
    tw_listener_close(l4);
    tw_listener_close(l6);
    dns_stop(&dns);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_a_lookup_that_never_answers_times_out)
{
    tw_reactor *r = tw_reactor_new();
    dns_server dns = {0};
    dns_start(r, &dns, 1);
    tu_client_factory client;
    tu_client_init(&client, r);
    tw_connect_options co;
    tw_connect_options_init(&co);
    co.timeout = 0.3;
    long long start = tu_now_ms();
    tu_outcome o;
    tu_watch(tw_connect_tcp(r, "slow.twine.test", 80, &co, &client.rf.base), &o);
    spin(r, &o.fired, 5000);
    long long took = tu_now_ms() - start;
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, TW_ETIMEDOUT);
    ck_assert_int_ge(took, 250);
    ck_assert_int_lt(took, 3000);
    ck_assert_int_eq(client.failed, 1);
    spin_ms(r, 50); /* the abandoned query winds down */
    dns_stop(&dns);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_cancel_during_a_lookup_fails_at_once)
{
    tw_reactor *r = tw_reactor_new();
    dns_server dns = {0};
    dns_start(r, &dns, 1);
    tu_client_factory client;
    tu_client_init(&client, r);
    tw_deferred *d = tw_connect_tcp(r, "slow.twine.test", 80, NULL, &client.rf.base);
    tu_outcome o;
    memset(&o, 0, sizeof o);
    tw_deferred_add_callbacks(d, tu_out_cb, tu_out_eb, &o);
    spin_ms(r, 100);
    ck_assert(!o.fired);
    tw_deferred_cancel(d);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, TW_ECANCELLED);
    ck_assert_int_eq(client.failed, 1);
    ck_assert_int_eq(client.rf.built, 0);
    tw_deferred_unref(d);
    spin_ms(r, 50);
    dns_stop(&dns);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_a_lookup_can_be_cancelled)
{
    tw_reactor *r = tw_reactor_new();
    dns_server dns = {0};
    dns_start(r, &dns, 1);
    tw_deferred *d = tw_resolve(r, "slow.twine.test", 80, AF_UNSPEC);
    tu_outcome o;
    memset(&o, 0, sizeof o);
    tw_deferred_add_callbacks(d, tu_out_cb, tu_out_eb, &o);
    spin_ms(r, 50);
    tw_deferred_cancel(d);
    ck_assert_int_eq(o.code, TW_ECANCELLED);
    ck_assert_msg(strstr(o.message, "slow.twine.test") != NULL, "%s", o.message);
    tw_deferred_unref(d);
    spin_ms(r, 50);
    dns_stop(&dns);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_stopping_the_reactor_fails_pending_lookups)
{
    tw_reactor *r = tw_reactor_new();
    dns_server dns = {0};
    dns_start(r, &dns, 1);
    tu_outcome o;
    tu_watch(tw_resolve(r, "slow.twine.test", 80, AF_UNSPEC), &o);
    spin_ms(r, 50);
    tw_reactor_stop(r);
    ck_assert_int_eq(tw_reactor_run(r), 0);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, TW_ESHUTDOWN);
    spin_ms(r, 50);
    dns_stop(&dns);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_freeing_the_reactor_fails_pending_lookups_and_its_host_winds_them_down)
{
    struct event_base *base = event_base_new();
    tw_reactor *r = tw_reactor_new_with_base(base);
    dns_server dns = {0};
    dns_start(r, &dns, 1);
    tu_client_factory client;
    tu_client_init(&client, r);
    tu_outcome lookup, attempt;
    tu_watch(tw_resolve(r, "slow.twine.test", 80, AF_UNSPEC), &lookup);
    tu_watch(tw_connect_tcp(r, "slow.twine.test", 80, NULL, &client.rf.base), &attempt);
    spin_ms(r, 50);
    ck_assert(!lookup.fired && !attempt.fired);
    tw_reactor_free(r);
    ck_assert(lookup.fired && !lookup.ok);
    ck_assert_int_eq(lookup.code, TW_ESHUTDOWN);
    ck_assert(attempt.fired && !attempt.ok);
    ck_assert_int_eq(attempt.code, TW_ESHUTDOWN);
    ck_assert_int_eq(client.failed, 1);
    /* The host keeps its loop: the abandoned queries finish there, and the
     * resolver goes with the last of them (valgrind checks nothing leaks). */
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_NONBLOCK);
    dns_stop(&dns);
    event_base_free(base);
}
END_TEST

START_TEST(test_a_hosts_file_of_ones_own_and_address_families)
{
    char path[] = "/tmp/twine-hosts-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    const char text[] = "127.0.0.1 only4.twine.test\n::1 only6.twine.test\n";
    ck_assert_int_eq(write(fd, text, sizeof text - 1), (int)sizeof text - 1);
    close(fd);
    tw_reactor *r = tw_reactor_new();
    tw_resolver_options ro;
    tw_resolver_options_init(&ro);
    ro.resolv_conf = "";
    ro.hosts = path;
    ro.nameserver = "127.0.0.1:9"; /* never asked: the hosts file answers */
    ck_assert_int_eq(tw_resolver_configure(r, &ro), 0);
    tu_outcome o;
    tu_watch(tw_resolve(r, "only6.twine.test", 1, AF_UNSPEC), &o);
    ck_assert(o.fired && o.ok);
    ck_assert_int_eq(tw_address_family(&((tw_address_list *)o.value)->items[0]), AF_INET6);
    free(o.value);
    tu_watch(tw_resolve(r, "only4.twine.test", 1, AF_INET6), &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, TW_ENOTFOUND);
    ck_assert_msg(strstr(o.message, "only4.twine.test") != NULL, "%s", o.message);
    tu_watch(tw_resolve(r, "127.0.0.1", 1, AF_INET6), &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -EHOSTUNREACH);
    tw_reactor_free(r);
    unlink(path);
}
END_TEST

START_TEST(test_resolver_configure_checks_its_settings)
{
    tw_reactor *r = tw_reactor_new();
    tw_resolver_options ro;
    tw_resolver_options_init(&ro);
    ro.nameserver = "not-an-address";
    ck_assert_int_eq(tw_resolver_configure(r, &ro), -EINVAL);
    tw_resolver_options_init(&ro);
    ro.hosts = "/nonexistent/hosts";
    ck_assert_int_eq(tw_resolver_configure(r, &ro), -ENOENT);
    tw_resolver_options_init(&ro);
    ro.resolv_conf = "/nonexistent/resolv.conf";
    ck_assert_int_eq(tw_resolver_configure(r, &ro), -ENOENT);
    tw_resolver_options_init(&ro);
    ro.timeout = -1;
    ck_assert_int_eq(tw_resolver_configure(r, &ro), -EINVAL);
    ck_assert_int_eq(tw_resolver_configure(r, NULL), 0); /* the system's */
    tu_outcome o;
    tu_watch(tw_resolve(r, "", 1, AF_UNSPEC), &o);
    ck_assert_int_eq(o.code, -EINVAL);
    tu_watch(tw_resolve(r, "localhost", 70000, AF_UNSPEC), &o);
    ck_assert_int_eq(o.code, -EINVAL);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_reconfiguring_lets_pending_lookups_finish_on_the_old_resolver)
{
    tw_reactor *r = tw_reactor_new();
    dns_server dns = {.name = "svc.twine.test", .have_a = 1};
    dns_start(r, &dns, 0);
    tu_outcome o;
    tu_watch(tw_resolve(r, "svc.twine.test", 1, AF_INET), &o);
    ck_assert(!o.fired);
    tw_resolver_options ro;
    tw_resolver_options_init(&ro);
    ro.resolv_conf = "";
    ro.hosts = "";
    ro.nameserver = "127.0.0.1:9";
    ck_assert_int_eq(tw_resolver_configure(r, &ro), 0);
    spin(r, &o.fired, 5000);
    ck_assert_msg(o.ok, "%s", o.message);
    free(o.value);
    dns_stop(&dns);
    tw_reactor_free(r);
}
END_TEST

static Suite *connect_suite(void)
{
    Suite *s = suite_create("connect");
    TCase *c = tcase_create("connect");
    tcase_set_timeout(c, 30);
    tcase_add_test(c, test_connect_fires_with_the_protocol_after_connection_made);
    tcase_add_test(c, test_connect_reports_only_from_the_loop);
    tcase_add_test(c, test_a_refused_connection_reaches_connection_failed_naming_econnrefused);
    tcase_add_test(c, test_an_attempt_counts_as_a_user_of_the_factory);
    tcase_add_test(c, test_a_lost_connection_reaches_client_connection_lost_after_the_protocol);
    tcase_add_test(c, test_every_attempt_fails_at_once_when_the_factory_refuses);
    tcase_add_test(c, test_timeout_fails_with_etimedout_and_closes_the_socket);
    tcase_add_test(c, test_cancel_aborts_a_pending_connect);
    tcase_add_test(c, test_cancel_before_the_loop_runs_opens_no_socket);
    tcase_add_test(c, test_a_cancel_from_connection_made_is_too_late);
    tcase_add_test(c, test_stopping_the_reactor_fails_pending_attempts);
    tcase_add_test(c, test_freeing_the_reactor_fails_pending_attempts);
    tcase_add_test(c, test_bind_address_sets_the_local_address);
    tcase_add_test(c, test_connect_unix_and_a_missing_path);
    tcase_add_test(c, test_accepted_and_connected_sockets_are_nonblocking_and_close_on_exec);
    tcase_add_test(c, test_bad_arguments_fail_at_once_and_the_factory_hears_nothing);
    suite_add_tcase(s, c);

    TCase *n = tcase_create("names");
    tcase_set_timeout(n, 30);
    tcase_add_test(n, test_localhost_resolves_from_the_hosts_file);
    tcase_add_test(n, test_connect_to_localhost_by_name);
    tcase_add_test(n, test_numeric_hosts_need_no_lookup);
    tcase_add_test(n, test_names_resolve_through_the_configured_name_server);
    tcase_add_test(n, test_an_unknown_name_fails_with_enotfound);
    tcase_add_test(n, test_libevent_messages_reach_the_twine_log_sink);
    tcase_add_loop_test(n, test_a_lookup_pending_at_free_leaves_nothing_behind, 0, 2);
    tcase_add_loop_test(n, test_a_lookup_pending_at_stop_leaves_nothing_behind, 0, 2);
    tcase_add_test(n, test_each_resolved_address_is_tried_in_turn);
    tcase_add_test(n, test_ipv6_addresses_are_tried_first);
    tcase_add_test(n, test_a_lookup_that_never_answers_times_out);
    tcase_add_test(n, test_cancel_during_a_lookup_fails_at_once);
    tcase_add_test(n, test_a_lookup_can_be_cancelled);
    tcase_add_test(n, test_stopping_the_reactor_fails_pending_lookups);
    tcase_add_test(n, test_freeing_the_reactor_fails_pending_lookups_and_its_host_winds_them_down);
    tcase_add_test(n, test_a_hosts_file_of_ones_own_and_address_families);
    tcase_add_test(n, test_resolver_configure_checks_its_settings);
    tcase_add_test(n, test_reconfiguring_lets_pending_lookups_finish_on_the_old_resolver);
    suite_add_tcase(s, n);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(connect_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
