/* SPDX-License-Identifier: MIT */
/*
 * UNIX sockets beyond plain streams: abstract names (Linux) as addresses
 * and endpoints, UNIX datagram ports (listen, connect, answers, the socket
 * file's life), descriptors passed with data (SCM_RIGHTS) and used, the
 * bound on how many one read delivers with the rest closed, and the peer's
 * credentials. Descriptor leaks are counted in /proc/self/fd.
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <twine.h>
#include <twine/udp.h>

#include "core/fd_internal.h"
#include "recorder.h"
#include "testutil.h"

/* ---------------------------------------------------------------- helpers */

/* Open descriptors of this process, or -1 where /proc is missing. */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own */
}

/* A name no other test run uses at the same time. */
static void unique_name(char *buf, size_t len, const char *what)
{
    static int seq;
    snprintf(buf, len, "twine-test-%s-%ld-%d", what, (long)getpid(), seq++);
}

typedef struct {
    char dir[64];
    char path[128];
} place;

static void place_init(place *u)
{
    snprintf(u->dir, sizeof u->dir, "/tmp/twine-unix.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(u->dir));
    snprintf(u->path, sizeof u->path, "%s/s.sock", u->dir);
}

static void place_free(place *u)
{
    unlink(u->path);
    ck_assert_int_eq(rmdir(u->dir), 0); /* nothing else was left behind */
}

/* ---------------------------------------------------------------- addresses */

START_TEST(test_an_abstract_name_keeps_its_exact_length_and_reads_back_from_its_text)
{
#ifndef __linux__
    return;
#endif
    static const char name[] = {'a', 'p', 'p', '\0', 'x', ' ', '\\'};
    tw_address a, b;
    ck_assert_int_eq(tw_address_from_unix_abstract(&a, name, sizeof name), 0);
    ck_assert_uint_eq(a.len, offsetof(struct sockaddr_un, sun_path) + 1 + sizeof name);
    const struct sockaddr_un *sun = (const struct sockaddr_un *)&a.u.storage;
    ck_assert_int_eq(sun->sun_path[0], '\0');
    ck_assert_mem_eq(sun->sun_path + 1, name, sizeof name);
    const char *got;
    size_t got_len;
    ck_assert_int_eq(tw_address_unix_abstract(&a, &got, &got_len), 1);
    ck_assert_uint_eq(got_len, sizeof name);

    char text[TW_ADDRSTRLEN];
    ck_assert_str_eq(tw_address_format(&a, text, sizeof text), "unix:@app\\x00x\\x20\\x5c");
    ck_assert_int_eq(tw_address_parse(&b, text), 0);
    ck_assert_uint_eq(b.len, a.len);
    ck_assert_mem_eq(&b.u.storage, &a.u.storage, a.len);

    /* "@name" is the same abstract name, with no terminating NUL. */
    ck_assert_int_eq(tw_address_from_unix(&b, "@app"), 0);
    ck_assert_uint_eq(b.len, offsetof(struct sockaddr_un, sun_path) + 4);
    ck_assert_str_eq(tw_address_format(&b, text, sizeof text), "unix:@app");
    /* A path is still a path, and "./@x" names a file. */
    ck_assert_int_eq(tw_address_from_unix(&b, "./@x"), 0);
    ck_assert_int_eq(tw_address_unix_abstract(&b, NULL, NULL), 0);
    ck_assert_str_eq(tw_address_format(&b, text, sizeof text), "unix:./@x");

    /* The longest name fits; one byte more does not. */
    char longest[108];
    memset(longest, 'n', sizeof longest);
    ck_assert_int_eq(tw_address_from_unix_abstract(&b, longest, 107), 0);
    ck_assert_int_eq(tw_address_from_unix_abstract(&b, longest, 108), -ENAMETOOLONG);
    ck_assert_int_eq(tw_address_from_unix_abstract(&b, longest, 0), -EINVAL);
    ck_assert_int_eq(tw_address_from_unix(&b, "@"), -EINVAL);
}
END_TEST

START_TEST(test_address_text_parses_back_and_bad_text_is_refused)
{
    tw_address a;
    char text[TW_ADDRSTRLEN];
    const char *good[] = {"127.0.0.1:9000", "[::1]:80", "unix:/run/x.sock", "[::]:0"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ck_assert_int_eq(tw_address_parse(&a, good[i]), 0);
        ck_assert_str_eq(tw_address_format(&a, text, sizeof text), good[i]);
    }
    const char *bad[] = {"",           "127.0.0.1",   "127.0.0.1:",  "127.0.0.1:65536",
                         "::1:80",     "host:80",     ":80",         "unix:",
                         "unix:@",     "unix:@a\\x4", "unix:@a\\q0", "127.0.0.1:8x",
                         "127.0.0.1:-1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(tw_address_parse(&a, bad[i]) < 0, "'%s' parsed", bad[i]);
}
END_TEST

START_TEST(test_endpoints_take_abstract_names_but_no_mode_or_lock_for_them)
{
    tw_endpoint e;
    char err[256], text[TW_ENDPOINT_STRLEN];
    ck_assert_int_eq(tw_endpoint_parse_server("unix:@app:backlog=5", &e, err, sizeof err), 0);
    ck_assert_str_eq(e.path, "@app");
    ck_assert_str_eq(tw_endpoint_format(&e, text, sizeof text), "unix:@app:backlog=5");
    ck_assert_int_eq(tw_endpoint_parse_server("unix:@app:mode=600", &e, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "mode applies to a socket file"));
    ck_assert_int_eq(tw_endpoint_parse_server("unix:@app:lockfile=1", &e, err, sizeof err),
                     -EINVAL);
    ck_assert_int_eq(tw_endpoint_parse_client("unix:@app", &e, err, sizeof err), 0);
    ck_assert_str_eq(tw_endpoint_format(&e, text, sizeof text), "unix:@app");

    ck_assert_int_eq(tw_endpoint_parse_server("unixgram:/tmp/d\\:g:mode=0660", &e, err, sizeof err),
                     0);
    ck_assert_int_eq(e.type, TW_ENDPOINT_UNIXGRAM);
    ck_assert_str_eq(e.path, "/tmp/d:g");
    ck_assert_int_eq(e.mode, 0660);
    ck_assert_str_eq(tw_endpoint_format(&e, text, sizeof text), "unixgram:/tmp/d\\:g:mode=0660");
    ck_assert_int_eq(tw_endpoint_parse_client("unixgram:/tmp/srv:bindAddress=@me", &e, err,
                                              sizeof err),
                     0);
    ck_assert_str_eq(e.bind_address, "@me");
    ck_assert_str_eq(tw_endpoint_format(&e, text, sizeof text), "unixgram:/tmp/srv:bindAddress=@me");
    ck_assert_int_eq(tw_endpoint_parse_server("unixgram:@g:backlog=3", &e, err, sizeof err),
                     -EINVAL);
}
END_TEST

/* ---------------------------------------------------------------- abstract streams */

START_TEST(test_a_stream_listens_and_connects_on_an_abstract_name_with_no_file)
{
#ifndef __linux__
    return;
#endif
    tw_reactor *r = tw_reactor_new();
    rec_factory server;
    rec_init(&server, r);
    tu_client_factory client;
    tu_client_init(&client, r);
    char name[64], desc[80];
    unique_name(name, sizeof name, "stream");
    snprintf(desc, sizeof desc, "unix:@%s", name);
    tu_outcome lo;
    tu_watch(tw_listen_string(r, desc, NULL, &server.base), &lo);
    ck_assert_int_eq(lo.ok, 1);
    tw_listener *l = lo.value;
    tw_address bound;
    tw_listener_address(l, &bound);
    char text[TW_ADDRSTRLEN], want[TW_ADDRSTRLEN];
    snprintf(want, sizeof want, "unix:@%s", name);
    ck_assert_str_eq(tw_address_format(&bound, text, sizeof text), want);
    ck_assert_int_eq(access(name, F_OK), -1); /* no file, not even in the cwd */
    /* A second server on the same name is refused. */
    tu_outcome again;
    rec_factory other;
    rec_init(&other, r);
    tu_watch(tw_listen_string(r, desc, NULL, &other.base), &again);
    ck_assert_int_eq(again.ok, 0);
    ck_assert_int_eq(again.code, -EADDRINUSE);

    tu_outcome co;
    tu_watch(tw_connect_string(r, desc, &client.rf.base), &co);
    spin(r, &co.fired, 2000);
    ck_assert_int_eq(co.ok, 1);
    spin(r, &server.built, 2000);
    tw_transport_write(client.rf.last->transport, "hello", 5);
    while (server.received < 5)
        tw_reactor_iterate(r, 0.01);
    /* The accepted connection's host is the abstract name too. */
    tw_transport_get_host(server.last->transport, &bound);
    ck_assert_str_eq(tw_address_format(&bound, text, sizeof text), want);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

/* ---------------------------------------------------------------- UNIX datagrams */

typedef struct {
    tw_datagram_protocol base;
    int started, stopped, received, refused;
    char last[128];
    size_t last_len;
    tw_address from;
    int answer; /* echo each datagram back to its sender */
} dgram;

static void d_start(tw_datagram_protocol *p)
{
    ((dgram *)p)->started++;
}

static void d_received(tw_datagram_protocol *p, const void *data, size_t len,
                       const tw_address *from)
{
    dgram *d = (dgram *)p;
    d->received++;
    d->last_len = len < sizeof d->last ? len : sizeof d->last;
    memcpy(d->last, data, d->last_len);
    d->from = *from;
    if (d->answer)
        ck_assert_int_eq(tw_udp_write(p->port, data, len, from), 0);
}

static void d_refused(tw_datagram_protocol *p)
{
    ((dgram *)p)->refused++;
}

static void d_stop(tw_datagram_protocol *p)
{
    ((dgram *)p)->stopped++;
}

static const tw_datagram_ops d_ops = {d_start, d_received, d_refused, d_stop, NULL};

static void dgram_init(dgram *d)
{
    memset(d, 0, sizeof *d);
    d->base.ops = &d_ops;
}

static void spin_received(tw_reactor *r, dgram *d, int n)
{
    long long end = tu_now_ms() + 2000;
    while (d->received < n && tu_now_ms() < end)
        tw_reactor_iterate(r, 0.01);
    ck_assert_int_ge(d->received, n);
}

START_TEST(test_unixgram_endpoints_send_and_answer_and_the_file_goes_with_the_port)
{
    tw_reactor *r = tw_reactor_new();
    place u;
    place_init(&u);
    dgram server, client;
    dgram_init(&server);
    dgram_init(&client);
    server.answer = 1;
    char desc[256];
    tw_endpoint e;
    snprintf(desc, sizeof desc, "unixgram:%s:mode=600", u.path);
    ck_assert_int_eq(tw_endpoint_parse_server(desc, &e, NULL, 0), 0);
    tu_outcome lo;
    tu_watch(tw_endpoint_listen_udp(r, &e, &server.base), &lo);
    ck_assert_int_eq(lo.ok, 1);
    ck_assert_int_eq(server.started, 1);
    struct stat st;
    ck_assert_int_eq(stat(u.path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_eq(st.st_mode & 0777, 0600);

    /* The client binds nothing: Linux gives it a name the server answers. */
    snprintf(desc, sizeof desc, "unixgram:%s", u.path);
    ck_assert_int_eq(tw_endpoint_parse_client(desc, &e, NULL, 0), 0);
    tu_outcome co;
    tu_watch(tw_endpoint_connect_datagram(r, &e, &client.base), &co);
    ck_assert_int_eq(co.ok, 1);
    tw_udp_port *cp = co.value;
    ck_assert_int_eq(tw_udp_write(cp, "ping", 4, NULL), 0);
    spin_received(r, &server, 1);
    ck_assert_uint_eq(server.last_len, 4);
    ck_assert_mem_eq(server.last, "ping", 4);
    ck_assert_int_eq(tw_address_family(&server.from), AF_UNIX);
#ifdef __linux__
    tw_address mine;
    tw_udp_port_address(cp, &mine);
    ck_assert_int_eq(tw_address_unix_abstract(&mine, NULL, NULL), 1);
    ck_assert_uint_eq(server.from.len, mine.len);
    ck_assert_mem_eq(&server.from.u.storage, &mine.u.storage, mine.len);
    spin_received(r, &client, 1); /* the answer */
    ck_assert_mem_eq(client.last, "ping", 4);
#endif

    /* A second port on a live path is refused; closing removes the file. */
    dgram other;
    dgram_init(&other);
    tw_address a;
    tw_udp_port *op;
    ck_assert_int_eq(tw_address_from_unix(&a, u.path), 0);
    ck_assert_int_eq(tw_udp_listen(r, &a, &other.base, &op), -EADDRINUSE);
    tw_udp_port_close(lo.value);
    ck_assert_int_eq(server.stopped, 1);
    ck_assert_int_eq(access(u.path, F_OK), -1);

    /* The connected client now hears that nobody is there. */
    int rc = tw_udp_write(cp, "gone", 4, NULL);
    ck_assert(rc == -ECONNREFUSED || rc == -ENOENT || rc == -ENOTCONN);
    tw_udp_port_close(cp);
    /* Connecting to a path nobody is bound at fails at once. */
    dgram late;
    dgram_init(&late);
    tu_watch(tw_endpoint_connect_datagram(r, &e, &late.base), &co);
    ck_assert_int_eq(co.ok, 0);
    ck_assert(co.code == -ENOENT || co.code == -ECONNREFUSED);
    ck_assert_int_eq(late.started, 0);
    tw_reactor_free(r);
    place_free(&u);
}
END_TEST

START_TEST(test_a_unixgram_port_replaces_a_stale_file_and_spares_a_live_stream_socket)
{
    tw_reactor *r = tw_reactor_new();
    place u;
    place_init(&u);
    tw_address a;
    ck_assert_int_eq(tw_address_from_unix(&a, u.path), 0);
    int s = tw__socket(AF_UNIX, SOCK_DGRAM, 0, O_CLOEXEC);
    ck_assert_int_eq(bind(s, &a.u.sa, a.len), 0);
    close(s); /* a crashed port's file */
    dgram d;
    dgram_init(&d);
    tw_udp_port *p;
    ck_assert_int_eq(tw_udp_listen(r, &a, &d.base, &p), 0);
    int c = tw__socket(AF_UNIX, SOCK_DGRAM, 0, O_CLOEXEC);
    ck_assert_int_eq(sendto(c, "x", 1, 0, &a.u.sa, a.len), 1);
    close(c);
    spin_received(r, &d, 1);
    tw_udp_port_close(p);

    /* A live stream server's socket is not a stale datagram file. */
    rec_factory rf;
    rec_init(&rf, r);
    tw_listener *l;
    ck_assert_int_eq(tw_listen(r, &a, NULL, &rf.base, &l), 0);
    dgram_init(&d);
    ck_assert_int_eq(tw_udp_listen(r, &a, &d.base, &p), -EADDRINUSE);
    ck_assert_int_eq(access(u.path, F_OK), 0);
    tw_listener_close(l);
    tw_reactor_free(r);
    place_free(&u);
}
END_TEST

START_TEST(test_unixgram_on_abstract_names_and_oversized_datagrams_are_dropped_whole)
{
#ifndef __linux__
    return;
#endif
    tw_reactor *r = tw_reactor_new();
    char name[64], text[80];
    unique_name(name, sizeof name, "dgram");
    snprintf(text, sizeof text, "@%s", name);
    tw_address a, b;
    ck_assert_int_eq(tw_address_from_unix(&a, text), 0);
    dgram server, client;
    dgram_init(&server);
    dgram_init(&client);
    tw_udp_port *sp, *cp;
    ck_assert_int_eq(tw_udp_listen(r, &a, &server.base, &sp), 0);
    snprintf(text, sizeof text, "@%s-client", name);
    ck_assert_int_eq(tw_address_from_unix(&b, text), 0);
    ck_assert_int_eq(tw_datagram_connect(r, &a, &b, &client.base, &cp), 0);

    /* Too large for the 64 KiB read buffer: dropped, never cut short. */
    size_t big = 70000;
    char *buf = calloc(1, big);
    int sndbuf = 1 << 20;
    setsockopt(tw_udp_port_fileno(cp), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    int rc = tw_udp_write(cp, buf, big, NULL);
    free(buf);
    ck_assert_int_eq(tw_udp_write(cp, "small", 5, NULL), 0);
    spin_received(r, &server, 1);
    spin_ms(r, 50);
    ck_assert_int_eq(server.received, 1);
    ck_assert_uint_eq(server.last_len, 5);
    ck_assert_mem_eq(server.last, "small", 5);
    (void)rc; /* the kernel may refuse it already (-EMSGSIZE); either way it is not delivered */
    /* The datagram came from the name the client bound. */
    ck_assert_uint_eq(server.from.len, b.len);
    ck_assert_mem_eq(&server.from.u.storage, &b.u.storage, b.len);
    tw_udp_port_close(cp);
    tw_udp_port_close(sp);
    tw_reactor_free(r);
}
END_TEST

/* ---------------------------------------------------------------- descriptors */

typedef struct {
    tw_protocol base;
    struct fd_side *side;
} fd_proto;

typedef struct fd_side {
    tw_factory base;
    tw_protocol *proto;
    int fds[64];
    int nfds;
    int fds_before_data; /* descriptors had arrived when the first bytes did */
    char data[256];
    size_t len;
    int lost, take_fds;
} fd_side;

static void fp_made(tw_protocol *p)
{
    ((fd_proto *)p)->side->proto = p;
}

static void fp_data(tw_protocol *p, const void *data, size_t len)
{
    fd_side *s = ((fd_proto *)p)->side;
    if (s->len == 0)
        s->fds_before_data = s->nfds;
    size_t n = len < sizeof s->data - s->len ? len : sizeof s->data - s->len;
    memcpy(s->data + s->len, data, n);
    s->len += n;
}

static void fp_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)reason;
    fd_side *s = ((fd_proto *)p)->side;
    s->lost++;
    s->proto = NULL;
}

static void fp_fd(tw_protocol *p, int fd)
{
    fd_side *s = ((fd_proto *)p)->side;
    ck_assert_int_lt(s->nfds, 64);
    ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
    s->fds[s->nfds++] = fd;
}

static void fp_destroy(tw_protocol *p)
{
    free(p);
}

static const tw_protocol_ops fp_ops = {.connection_made = fp_made,
                                       .data_received = fp_data,
                                       .connection_lost = fp_lost,
                                       .destroy = fp_destroy,
                                       .file_descriptor_received = fp_fd};
static const tw_protocol_ops fp_blind_ops = {.connection_made = fp_made,
                                             .data_received = fp_data,
                                             .connection_lost = fp_lost,
                                             .destroy = fp_destroy};

static tw_protocol *fp_build(tw_factory *f, const tw_address *peer)
{
    (void)peer;
    fd_side *s = (fd_side *)f;
    fd_proto *p = calloc(1, sizeof *p);
    p->base.ops = s->take_fds ? &fp_ops : &fp_blind_ops;
    p->side = s;
    return &p->base;
}

static const tw_factory_ops fp_factory_ops = {.build_protocol = fp_build};

static void side_init(fd_side *s, int take_fds)
{
    memset(s, 0, sizeof *s);
    tw_factory_init(&s->base, &fp_factory_ops);
    s->take_fds = take_fds;
}

/* A connected pair of UNIX stream transports: @p a listens, @p b connects. */
static tw_listener *connect_pair(tw_reactor *r, place *u, fd_side *a, fd_side *b)
{
    tw_address addr;
    ck_assert_int_eq(tw_address_from_unix(&addr, u->path), 0);
    tw_listener *l;
    ck_assert_int_eq(tw_listen(r, &addr, NULL, &a->base, &l), 0);
    tu_outcome co;
    tu_watch(tw_connect_unix(r, u->path, NULL, &b->base), &co);
    long long end = tu_now_ms() + 2000;
    while ((a->proto == NULL || b->proto == NULL || !co.fired) && tu_now_ms() < end)
        tw_reactor_iterate(r, 0.01);
    ck_assert_int_eq(co.ok, 1);
    ck_assert_ptr_nonnull(a->proto);
    ck_assert_ptr_nonnull(b->proto);
    return l;
}

static void spin_len(tw_reactor *r, fd_side *s, size_t len)
{
    long long end = tu_now_ms() + 2000;
    while (s->len < len && tu_now_ms() < end)
        tw_reactor_iterate(r, 0.01);
    ck_assert_uint_ge(s->len, len);
}

START_TEST(test_a_descriptor_passed_with_data_arrives_first_and_is_used)
{
    tw_reactor *r = tw_reactor_new();
    place u;
    place_init(&u);
    fd_side server, client;
    side_init(&server, 1);
    side_init(&client, 1);
    tw_listener *l = connect_pair(r, &u, &server, &client);
    int before = open_fds();

    int pipefd[2];
    ck_assert_int_eq(pipe(pipefd), 0);
    ck_assert_int_eq(tw_transport_write(client.proto->transport, "head:", 5), 0);
    ck_assert_int_eq(tw_transport_send_fds(client.proto->transport, "fd", 2, &pipefd[1], 1), 0);
    close(pipefd[1]); /* the transport sent its own duplicate */
    spin_len(r, &server, 7);
    ck_assert_mem_eq(server.data, "head:fd", 7);
    ck_assert_int_eq(server.nfds, 1);

    /* The received descriptor is the pipe: what is written to it comes out. */
    ck_assert_int_eq(write(server.fds[0], "used", 4), 4);
    close(server.fds[0]);
    char got[8] = {0};
    ck_assert_int_eq(read(pipefd[0], got, sizeof got), 4);
    ck_assert_str_eq(got, "used");
    ck_assert_int_eq(read(pipefd[0], got, sizeof got), 0); /* EOF: no copy is left open anywhere */
    close(pipefd[0]);
    ck_assert_int_eq(open_fds(), before);
    tw_listener_close(l);
    tw_reactor_free(r);
    place_free(&u);
}
END_TEST

/* Inside a dispatch the bytes join the batch, and the descriptors still
 * ride on their first byte, behind what was written before them. */
static void send_from_timer(void *arg)
{
    fd_side *client = arg;
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    tw_transport_write(client->proto->transport, "abc", 3);
    ck_assert_int_eq(tw_transport_send_fds(client->proto->transport, "D", 1, fds, 3), 0);
    tw_transport_write(client->proto->transport, "xyz", 3);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    tw_transport_lose_connection(client->proto->transport);
}

START_TEST(test_descriptors_sent_inside_a_callback_leave_with_the_batch_before_the_fin)
{
    tw_reactor *r = tw_reactor_new();
    place u;
    place_init(&u);
    fd_side server, client;
    side_init(&server, 1);
    side_init(&client, 1);
    tw_listener *l = connect_pair(r, &u, &server, &client);
    int before = open_fds();
    tw_call *c;
    ck_assert_int_eq(tw_reactor_call_later(r, 0, send_from_timer, &client, &c), 0);
    tw_call_release(c);
    long long end = tu_now_ms() + 2000;
    while (server.lost == 0 && tu_now_ms() < end)
        tw_reactor_iterate(r, 0.01);
    ck_assert_int_eq(server.lost, 1);
    ck_assert_uint_eq(server.len, 7);
    ck_assert_mem_eq(server.data, "abcDxyz", 7);
    ck_assert_int_eq(server.nfds, 3);
    for (int i = 0; i < 3; i++) {
        struct stat st;
        ck_assert_int_eq(fstat(server.fds[i], &st), 0);
        ck_assert(S_ISCHR(st.st_mode));
        close(server.fds[i]);
    }
    /* Both ends' sockets close; nothing else stays open. */
    end = tu_now_ms() + 2000;
    while (open_fds() != before - 2 && tu_now_ms() < end)
        tw_reactor_iterate(r, 0.01);
    ck_assert_int_eq(open_fds(), before - 2);
    tw_listener_close(l);
    tw_reactor_free(r);
    place_free(&u);
}
END_TEST

START_TEST(test_descriptors_past_the_limit_are_closed_and_none_leaks)
{
    tw_reactor *r = tw_reactor_new();
    place u;
    place_init(&u);
    tw_address addr;
    ck_assert_int_eq(tw_address_from_unix(&addr, u.path), 0);
    fd_side server;
    side_init(&server, 1);
    tw_listener *l;
    ck_assert_int_eq(tw_listen(r, &addr, NULL, &server.base, &l), 0);
    int c = tu_connect_unix(u.path);
    ck_assert_int_ge(c, 0);
    long long end = tu_now_ms() + 2000;
    while (server.proto == NULL && tu_now_ms() < end)
        tw_reactor_iterate(r, 0.01);
    ck_assert_ptr_nonnull(server.proto);
    int before = open_fds();

    /* A hostile peer sends 40 in one message, past the API's own bound. */
    enum { SENT = 40 };
    int fds[SENT];
    for (int i = 0; i < SENT; i++)
        fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(sizeof fds)];
    } control;
    memset(&control, 0, sizeof control);
    struct iovec iov = {"m", 1};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = sizeof control.buf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(cm), fds, sizeof fds);
    ck_assert_int_eq(sendmsg(c, &msg, 0), 1);
    for (int i = 0; i < SENT; i++)
        close(fds[i]);
    spin_len(r, &server, 1);
    ck_assert_int_eq(server.nfds, TW_TRANSPORT_FDS_MAX);
    ck_assert_int_eq(server.fds_before_data, TW_TRANSPORT_FDS_MAX);
    for (int i = 0; i < server.nfds; i++)
        close(server.fds[i]);
    ck_assert_int_eq(open_fds(), before); /* the 24 beyond were closed */

    /* The API refuses to send more than the bound, or none, or no byte. */
    int one = 0;
    int many[TW_TRANSPORT_FDS_MAX + 1];
    for (int i = 0; i <= TW_TRANSPORT_FDS_MAX; i++)
        many[i] = 0;
    tw_transport *t = server.proto->transport;
    ck_assert_int_eq(tw_transport_send_fds(t, "x", 1, many, TW_TRANSPORT_FDS_MAX + 1), -EINVAL);
    ck_assert_int_eq(tw_transport_send_fds(t, "x", 1, &one, 0), -EINVAL);
    ck_assert_int_eq(tw_transport_send_fds(t, "x", 0, &one, 1), -EINVAL);
    int closed_fd = open("/dev/null", O_RDONLY);
    close(closed_fd);
    ck_assert_int_eq(tw_transport_send_fds(t, "x", 1, &closed_fd, 1), -EBADF);
    ck_assert_int_eq(open_fds(), before);
    close(c);
    tw_listener_close(l);
    tw_reactor_free(r);
    place_free(&u);
}
END_TEST

START_TEST(test_a_protocol_that_takes_no_descriptors_gets_its_data_and_leaks_none)
{
    tw_reactor *r = tw_reactor_new();
    place u;
    place_init(&u);
    fd_side server, client;
    side_init(&server, 0);
    side_init(&client, 1);
    tw_listener *l = connect_pair(r, &u, &server, &client);
    int before = open_fds();
    int fds[2] = {open("/dev/null", O_RDONLY | O_CLOEXEC), open("/dev/null", O_RDONLY | O_CLOEXEC)};
    ck_assert_int_eq(tw_transport_send_fds(client.proto->transport, "data", 4, fds, 2), 0);
    close(fds[0]);
    close(fds[1]);
    spin_len(r, &server, 4);
    ck_assert_mem_eq(server.data, "data", 4);
    ck_assert_int_eq(server.nfds, 0);
    ck_assert_int_eq(open_fds(), before);
    tw_listener_close(l);
    tw_reactor_free(r);
    place_free(&u);
}
END_TEST

START_TEST(test_descriptors_still_queued_when_a_connection_aborts_are_closed)
{
    tw_reactor *r = tw_reactor_new();
    place u;
    place_init(&u);
    fd_side server, client;
    side_init(&server, 1);
    side_init(&client, 1);
    tw_listener *l = connect_pair(r, &u, &server, &client);
    /* The server stops reading, so the client's queue backs up. */
    tw_transport_pause_producing(server.proto->transport);
    int before = open_fds();
    tw_transport *t = client.proto->transport;
    static char chunk[65536];
    for (int i = 0; i < 256 && tw_transport_write_buffer_size(t) == 0; i++)
        ck_assert_int_eq(tw_transport_write(t, chunk, sizeof chunk), 0);
    ck_assert_uint_gt(tw_transport_write_buffer_size(t), 0);
    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ck_assert_int_eq(tw_transport_send_fds(t, "q", 1, &fd, 1), 0);
    close(fd);
    ck_assert_int_eq(open_fds(), before + 1); /* the queue's duplicate */
    tw_transport_abort_connection(t);
    long long end = tu_now_ms() + 2000;
    while (client.lost == 0 && tu_now_ms() < end)
        tw_reactor_iterate(r, 0.01);
    ck_assert_int_eq(client.lost, 1);
    ck_assert_int_eq(server.nfds, 0);
    ck_assert_int_le(open_fds(), before - 1); /* the duplicate and the client's socket */
    tw_listener_close(l);
    tw_reactor_free(r);
    place_free(&u);
}
END_TEST

START_TEST(test_descriptors_pass_through_the_connection_policies_both_ways)
{
    tw_reactor *r = tw_reactor_new();
    place u;
    place_init(&u);
    fd_side server, client;
    side_init(&server, 1);
    side_init(&client, 1);
    tw_policy_options o;
    tw_policy_options_init(&o);
    o.connection_write_limit = 1e6; /* a policy at work on each side */
    tw_factory *wrapped_server, *wrapped_client;
    ck_assert_int_eq(tw_policy_factory_new(r, &server.base, &o, &wrapped_server), 0);
    ck_assert_int_eq(tw_policy_factory_new(r, &client.base, &o, &wrapped_client), 0);
    tw_address addr;
    ck_assert_int_eq(tw_address_from_unix(&addr, u.path), 0);
    tw_listener *l;
    ck_assert_int_eq(tw_listen(r, &addr, NULL, wrapped_server, &l), 0);
    tu_outcome co;
    tu_watch(tw_connect_unix(r, u.path, NULL, wrapped_client), &co);
    long long end = tu_now_ms() + 2000;
    while ((server.proto == NULL || client.proto == NULL || !co.fired) && tu_now_ms() < end)
        tw_reactor_iterate(r, 0.01);
    ck_assert_ptr_nonnull(server.proto);
    int before = open_fds();

    int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    ck_assert_int_eq(tw_transport_send_fds(client.proto->transport, "c", 1, &fd, 1), 0);
    ck_assert_int_eq(tw_transport_send_fds(server.proto->transport, "s", 1, &fd, 1), 0);
    close(fd);
    spin_len(r, &server, 1);
    spin_len(r, &client, 1);
    ck_assert_int_eq(server.nfds, 1);
    ck_assert_int_eq(client.nfds, 1);
    close(server.fds[0]);
    close(client.fds[0]);
    ck_assert_int_eq(open_fds(), before);
    tw_peer_credentials pc;
    ck_assert_int_eq(tw_transport_get_peer_credentials(server.proto->transport, &pc), 0);
    ck_assert_int_eq(pc.uid, getuid());
    tw_listener_close(l);
    tw_reactor_free(r);
    tw_factory_free(wrapped_server);
    tw_factory_free(wrapped_client);
    place_free(&u);
}
END_TEST

START_TEST(test_descriptors_cannot_go_over_tcp)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    int port;
    tw_listener *l = listen_on(r, "127.0.0.1", &rf, NULL, &port);
    int c = tu_connect("127.0.0.1", port);
    spin(r, &rf.built, 2000);
    int fd = 0;
    ck_assert_int_eq(tw_transport_send_fds(rf.last->transport, "x", 1, &fd, 1), -EOPNOTSUPP);
    tw_peer_credentials pc;
    ck_assert_int_eq(tw_transport_get_peer_credentials(rf.last->transport, &pc), -EOPNOTSUPP);
    close(c);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

/* ---------------------------------------------------------------- credentials */

START_TEST(test_peer_credentials_name_this_process_on_both_ends)
{
    tw_reactor *r = tw_reactor_new();
    place u;
    place_init(&u);
    fd_side server, client;
    side_init(&server, 1);
    side_init(&client, 1);
    tw_listener *l = connect_pair(r, &u, &server, &client);
    tw_peer_credentials pc;
    fd_side *sides[2] = {&server, &client};
    for (int i = 0; i < 2; i++) {
        memset(&pc, 0xff, sizeof pc);
        ck_assert_int_eq(tw_transport_get_peer_credentials(sides[i]->proto->transport, &pc), 0);
        ck_assert_int_eq(pc.uid, getuid());
        ck_assert_int_eq(pc.gid, getgid());
#ifdef __linux__
        ck_assert_int_eq(pc.pid, getpid());
#endif
    }
    tw_listener_close(l);
    tw_reactor_free(r);
    place_free(&u);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("unix");
    TCase *tc = tcase_create("unix");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_an_abstract_name_keeps_its_exact_length_and_reads_back_from_its_text);
    tcase_add_test(tc, test_address_text_parses_back_and_bad_text_is_refused);
    tcase_add_test(tc, test_endpoints_take_abstract_names_but_no_mode_or_lock_for_them);
    tcase_add_test(tc, test_a_stream_listens_and_connects_on_an_abstract_name_with_no_file);
    tcase_add_test(tc, test_unixgram_endpoints_send_and_answer_and_the_file_goes_with_the_port);
    tcase_add_test(tc, test_a_unixgram_port_replaces_a_stale_file_and_spares_a_live_stream_socket);
    tcase_add_test(tc, test_unixgram_on_abstract_names_and_oversized_datagrams_are_dropped_whole);
    tcase_add_test(tc, test_a_descriptor_passed_with_data_arrives_first_and_is_used);
    tcase_add_test(tc, test_descriptors_sent_inside_a_callback_leave_with_the_batch_before_the_fin);
    tcase_add_test(tc, test_descriptors_past_the_limit_are_closed_and_none_leaks);
    tcase_add_test(tc, test_a_protocol_that_takes_no_descriptors_gets_its_data_and_leaks_none);
    tcase_add_test(tc, test_descriptors_still_queued_when_a_connection_aborts_are_closed);
    tcase_add_test(tc, test_descriptors_pass_through_the_connection_policies_both_ways);
    tcase_add_test(tc, test_descriptors_cannot_go_over_tcp);
    tcase_add_test(tc, test_peer_credentials_name_this_process_on_both_ends);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
