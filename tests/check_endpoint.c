/* SPDX-License-Identifier: MIT */
/*
 * Endpoints: the strports parser (every form, every error naming its
 * segment, escapes), formatting that reads back, and listening and
 * connecting from descriptions over real sockets -- TCP, TCP over ::1, UNIX
 * (mode, stale files, live servers, lock files, cleanup), UDP and systemd
 * socket activation.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <twine.h>

#include "recorder.h"
#include "testutil.h"

/* ------------------------------------------------------------ helpers */

static tw_listener *listen_ok(tw_reactor *r, const char *desc, rec_factory *rf)
{
    tu_outcome o;
    tu_watch(tw_listen_string(r, desc, NULL, &rf->base), &o);
    ck_assert_msg(o.fired && o.ok, "listen %s: %s", desc, o.message);
    return o.value;
}

static int listener_port(tw_listener *l)
{
    tw_address a;
    tw_listener_address(l, &a);
    return tw_address_port(&a);
}

static int parse_server_ok(const char *s, tw_endpoint *e)
{
    char err[512];
    int rc = tw_endpoint_parse_server(s, e, err, sizeof err);
    ck_assert_msg(rc == 0, "%s: %s", s, err);
    return rc;
}

static int parse_client_ok(const char *s, tw_endpoint *e)
{
    char err[512];
    int rc = tw_endpoint_parse_client(s, e, err, sizeof err);
    ck_assert_msg(rc == 0, "%s: %s", s, err);
    return rc;
}

/* The parser's sentence for a description that must not parse. */
static const char *server_error(const char *s)
{
    static char err[512];
    tw_endpoint e;
    ck_assert_int_eq(tw_endpoint_parse_server(s, &e, err, sizeof err), -EINVAL);
    return err;
}

static const char *client_error(const char *s)
{
    static char err[512];
    tw_endpoint e;
    ck_assert_int_eq(tw_endpoint_parse_client(s, &e, err, sizeof err), -EINVAL);
    return err;
}

#define ck_assert_contains(hay, needle)                                                            \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "'%s' does not contain '%s'", (hay), (needle))

static char tmpdir[64];

static void make_tmpdir(void)
{
    strcpy(tmpdir, "/tmp/twine-ep-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void remove_tmpdir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    ck_assert_int_eq(system(cmd), 0);
}

/* A UNIX socket file that nobody listens on any more. */
static void make_stale_socket(const char *path)
{
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    tw_address a;
    tw_address_from_unix(&a, path);
    ck_assert_int_eq(bind(s, &a.u.sa, a.len), 0);
    ck_assert_int_eq(listen(s, 1), 0);
    close(s); /* the file stays */
}


/* ------------------------------------------------------------ parsing */

START_TEST(test_a_bare_port_means_tcp_on_every_interface)
{
    tw_endpoint e;
    parse_server_ok("9000", &e);
    ck_assert_int_eq(e.type, TW_ENDPOINT_TCP);
    ck_assert_int_eq(e.client, 0);
    ck_assert_int_eq(e.port, 9000);
    ck_assert_str_eq(e.interface, "");
    ck_assert_int_eq(e.backlog, 0);
}
END_TEST

START_TEST(test_tcp_server_takes_interface_and_backlog_options)
{
    tw_endpoint e;
    parse_server_ok("tcp:8080:interface=127.0.0.1:backlog=50", &e);
    ck_assert_int_eq(e.type, TW_ENDPOINT_TCP);
    ck_assert_int_eq(e.port, 8080);
    ck_assert_str_eq(e.interface, "127.0.0.1");
    ck_assert_int_eq(e.backlog, 50);
}
END_TEST

START_TEST(test_tcp_server_takes_twisted_positional_arguments)
{
    tw_endpoint e;
    parse_server_ok("tcp:8080:127.0.0.1:7", &e);
    ck_assert_int_eq(e.port, 8080);
    ck_assert_str_eq(e.interface, "127.0.0.1");
    ck_assert_int_eq(e.backlog, 7);
    parse_server_ok("tcp:interface=127.0.0.1:8081", &e);
    ck_assert_int_eq(e.port, 8081);
    ck_assert_str_eq(e.interface, "127.0.0.1");
}
END_TEST

START_TEST(test_escaped_colons_write_an_ipv6_interface)
{
    tw_endpoint e;
    parse_server_ok("tcp6:9000:interface=\\:\\:1", &e);
    ck_assert_int_eq(e.type, TW_ENDPOINT_TCP6);
    ck_assert_str_eq(e.interface, "::1");
    parse_server_ok("tcp:0:interface=\\:\\:1", &e);
    ck_assert_int_eq(e.type, TW_ENDPOINT_TCP);
    ck_assert_str_eq(e.interface, "::1");
}
END_TEST

START_TEST(test_tcp6_positional_order_is_port_backlog_interface)
{
    tw_endpoint e;
    parse_server_ok("tcp6:9000:20:\\:\\:1", &e);
    ck_assert_int_eq(e.port, 9000);
    ck_assert_int_eq(e.backlog, 20);
    ck_assert_str_eq(e.interface, "::1");
}
END_TEST

START_TEST(test_unix_path_with_an_escaped_colon)
{
    tw_endpoint e;
    parse_server_ok("unix:/tmp/a\\:b", &e);
    ck_assert_int_eq(e.type, TW_ENDPOINT_UNIX);
    ck_assert_str_eq(e.path, "/tmp/a:b");
    ck_assert_int_eq(e.mode, -1);
    ck_assert_int_eq(e.lockfile, 0);
}
END_TEST

START_TEST(test_backslash_escapes_backslash_and_equals)
{
    tw_endpoint e;
    parse_server_ok("unix:/tmp/x\\\\y\\=z", &e);
    ck_assert_str_eq(e.path, "/tmp/x\\y=z");
}
END_TEST

START_TEST(test_unix_mode_is_octal_and_lockfile_a_flag)
{
    tw_endpoint e;
    parse_server_ok("unix:/run/x.sock:mode=660:lockfile=1:backlog=5", &e);
    ck_assert_int_eq(e.mode, 0660);
    ck_assert_int_eq(e.lockfile, 1);
    ck_assert_int_eq(e.backlog, 5);
    parse_server_ok("unix:address=/run/y.sock", &e);
    ck_assert_str_eq(e.path, "/run/y.sock");
}
END_TEST

START_TEST(test_udp_server_parses_port_and_interface)
{
    tw_endpoint e;
    parse_server_ok("udp:5353:interface=127.0.0.1", &e);
    ck_assert_int_eq(e.type, TW_ENDPOINT_UDP);
    ck_assert_int_eq(e.port, 5353);
    ck_assert_str_eq(e.interface, "127.0.0.1");
}
END_TEST

START_TEST(test_systemd_takes_domain_and_index)
{
    tw_endpoint e;
    parse_server_ok("systemd:domain=INET6:index=2", &e);
    ck_assert_int_eq(e.type, TW_ENDPOINT_SYSTEMD);
    ck_assert_int_eq(e.domain, AF_INET6);
    ck_assert_int_eq(e.index, 2);
}
END_TEST

START_TEST(test_tcp_client_positional_host_port_and_options)
{
    tw_endpoint e;
    parse_client_ok("tcp:example.org:80:timeout=5:bindAddress=127.0.0.1", &e);
    ck_assert_int_eq(e.type, TW_ENDPOINT_TCP);
    ck_assert_int_eq(e.client, 1);
    ck_assert_str_eq(e.host, "example.org");
    ck_assert_int_eq(e.port, 80);
    ck_assert(e.timeout == 5.0);
    ck_assert_str_eq(e.bind_address, "127.0.0.1");
    ck_assert(e.attempt_delay == TW_CONNECT_ATTEMPT_DELAY);
    parse_client_ok("tcp:example.org:80:attemptDelay=0.1", &e);
    ck_assert(e.attempt_delay == 0.1);
    ck_assert(e.timeout == TW_CONNECT_TIMEOUT);
}
END_TEST

START_TEST(test_tcp_client_keyword_forms)
{
    tw_endpoint e;
    parse_client_ok("tcp:host=example.org:port=443", &e);
    ck_assert_str_eq(e.host, "example.org");
    ck_assert_int_eq(e.port, 443);
    parse_client_ok("tcp:port=444:host=h.example", &e);
    ck_assert_str_eq(e.host, "h.example");
    ck_assert_int_eq(e.port, 444);
    parse_client_ok("tcp:host=h2.example:445", &e);
    ck_assert_str_eq(e.host, "h2.example");
    ck_assert_int_eq(e.port, 445);
    parse_client_ok("tcp:\\:\\:1:446", &e);
    ck_assert_str_eq(e.host, "::1");
}
END_TEST

START_TEST(test_client_timeout_defaults_to_thirty_seconds)
{
    tw_endpoint e;
    parse_client_ok("tcp:localhost:80", &e);
    ck_assert(e.timeout == 30.0);
    ck_assert_str_eq(e.bind_address, "");
    parse_client_ok("unix:/run/x.sock:timeout=2.5", &e);
    ck_assert_int_eq(e.type, TW_ENDPOINT_UNIX);
    ck_assert_str_eq(e.path, "/run/x.sock");
    ck_assert(e.timeout == 2.5);
}
END_TEST

START_TEST(test_port_out_of_range_names_the_segment)
{
    ck_assert_str_eq(server_error("tcp:99999"),
                     "bad endpoint 'tcp:99999': port '99999' is not a number from 0 to 65535");
    ck_assert_contains(server_error("tcp:-1"), "port '-1' is not a number");
    ck_assert_contains(server_error("tcp:80x"), "port '80x' is not a number");
}
END_TEST

START_TEST(test_unknown_type_is_named)
{
    ck_assert_str_eq(server_error("sctp:80"), "bad endpoint 'sctp:80': unknown endpoint type 'sctp'");
    ck_assert_contains(client_error("sctp:h:443"), "unknown endpoint type 'sctp'");
    /* ssl: is a server type (tls: is its client). */
    ck_assert_contains(client_error("ssl:h:443"), "ssl endpoints can only be listened on");
}
END_TEST

START_TEST(test_unknown_option_is_named_with_its_type)
{
    ck_assert_contains(server_error("tcp:80:colour=red"), "unknown option 'colour' for tcp");
    ck_assert_contains(client_error("unix:/x:mode=600"), "unknown option 'mode' for unix");
}
END_TEST

START_TEST(test_each_bad_value_names_its_option)
{
    ck_assert_contains(server_error("tcp:80:interface=localhost"),
                       "interface 'localhost' is not a numeric IP address");
    ck_assert_contains(server_error("tcp6:80:interface=127.0.0.1"),
                       "interface '127.0.0.1' is not an IPv6 address");
    ck_assert_contains(server_error("tcp:80:backlog=0"), "backlog '0' is not a number");
    ck_assert_contains(server_error("unix:/x:mode=999"),
                       "mode '999' is not an octal number from 0 to 7777");
    ck_assert_contains(server_error("unix:/x:lockfile=yes"), "lockfile 'yes' is not 0 or 1");
    ck_assert_contains(client_error("tcp:h:80:timeout=soon"),
                       "timeout 'soon' is not a number of seconds");
    ck_assert_contains(client_error("tcp:h:80:timeout=-1"), "timeout '-1'");
    ck_assert_contains(client_error("tcp:h:80:bindAddress=me"),
                       "bindAddress 'me' is not a numeric IP address");
    ck_assert_contains(client_error("tcp:h:80:attemptDelay=0.001"),
                       "attemptDelay '0.001' is not a number of seconds from 0.01");
    ck_assert_contains(client_error("tcp:h:80:attemptDelay=soon"), "attemptDelay 'soon'");
    ck_assert_contains(client_error("unix:/x:attemptDelay=1"), "unknown option 'attemptDelay'");
    ck_assert_contains(client_error("tcp:h:0"), "port '0' is not a number from 1 to 65535");
    ck_assert_contains(server_error("systemd:domain=IPX:index=0"),
                       "domain 'IPX' is not INET, INET6 or UNIX");
    ck_assert_contains(server_error("systemd:domain=INET:index=x"), "index 'x' is not a number");
}
END_TEST

START_TEST(test_missing_required_parameter_is_named)
{
    ck_assert_contains(client_error("tcp:example.org"), "missing port for tcp");
    ck_assert_contains(client_error("tcp:port=80"), "missing host for tcp");
    ck_assert_contains(server_error("systemd:domain=INET"), "missing index for systemd");
    ck_assert_contains(server_error("unix:mode=600"), "missing path for unix");
}
END_TEST

START_TEST(test_syntax_errors_name_the_segment)
{
    ck_assert_contains(server_error("tcp:80:interface=a=b"),
                       "segment 'interface=a=b' has more than one '='");
    ck_assert_contains(server_error("tcp::80"), "segment 2 is empty");
    ck_assert_contains(server_error("tcp:80:"), "segment 3 is empty");
    ck_assert_contains(server_error("unix:/tmp/x\\"), "lone '\\'");
    ck_assert_contains(server_error("tcp:port=80:port=81"), "option 'port' is given twice");
    ck_assert_contains(server_error("tcp:80:127.0.0.1:5:extra"),
                       "unexpected argument 'extra' for tcp");
    ck_assert_contains(server_error("port=80"), "must start with the endpoint type");
    ck_assert_contains(server_error(""), "the description is empty");
    ck_assert_contains(server_error("tcp:80:=x"), "has no name before '='");
}
END_TEST

START_TEST(test_types_of_the_other_role_are_refused)
{
    ck_assert_contains(client_error("udp:53"), "udp endpoints can only be listened on");
    ck_assert_contains(client_error("systemd:domain=INET:index=0"),
                       "systemd endpoints can only be listened on");
    ck_assert_contains(client_error("9000"), "unknown endpoint type '9000'");
}
END_TEST

START_TEST(test_a_path_too_long_for_a_socket_is_refused)
{
    char desc[300] = "unix:/";
    memset(desc + 6, 'a', 200);
    desc[206] = '\0';
    ck_assert_contains(server_error(desc), "is too long for a UNIX socket");
}
END_TEST

START_TEST(test_errors_are_truncated_to_the_buffer)
{
    char err[16];
    tw_endpoint e;
    ck_assert_int_eq(tw_endpoint_parse_server("sctp:1", &e, err, sizeof err), -EINVAL);
    ck_assert_uint_eq(strlen(err), sizeof err - 1);
    ck_assert_int_eq(tw_endpoint_parse_server("sctp:1", &e, NULL, 0), -EINVAL);
}
END_TEST

/* ------------------------------------------------------------ formatting */

static void round_trip(const char *desc, int client, const char *expect)
{
    tw_endpoint a, b;
    if (client)
        parse_client_ok(desc, &a);
    else
        parse_server_ok(desc, &a);
    char text[TW_ENDPOINT_STRLEN];
    tw_endpoint_format(&a, text, sizeof text);
    ck_assert_str_eq(text, expect);
    if (client)
        parse_client_ok(text, &b);
    else
        parse_server_ok(text, &b);
    ck_assert_msg(memcmp(&a, &b, sizeof a) == 0, "%s does not read back", text);
}

START_TEST(test_format_describes_an_endpoint_that_reads_back)
{
    round_trip("9000", 0, "tcp:9000");
    round_trip("tcp:80:127.0.0.1:50", 0, "tcp:80:interface=127.0.0.1:backlog=50");
    round_trip("tcp6:80:interface=\\:\\:1", 0, "tcp6:80:interface=\\:\\:1");
    round_trip("unix:/tmp/a\\:b:mode=600:lockfile=1", 0, "unix:/tmp/a\\:b:mode=0600:lockfile=1");
    round_trip("udp:53", 0, "udp:53");
    round_trip("systemd:domain=UNIX:index=1", 0, "systemd:domain=UNIX:index=1");
    round_trip("tcp:host=\\:\\:1:port=80", 1, "tcp:\\:\\:1:80");
    round_trip("tcp:h:80:timeout=0.1:bindAddress=127.0.0.1", 1,
               "tcp:h:80:timeout=0.1:bindAddress=127.0.0.1");
    round_trip("tcp:h:80:attemptDelay=0.5:timeout=3", 1, "tcp:h:80:timeout=3:attemptDelay=0.5");
    round_trip("tcp:h:80:attemptDelay=0.25", 1, "tcp:h:80");
    round_trip("unix:/run/x\\=y.sock", 1, "unix:/run/x\\=y.sock");
}
END_TEST

/* ------------------------------------------------------------ listening */

START_TEST(test_listen_tcp_from_a_description_accepts_connections)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    tw_listener *l = listen_ok(r, "tcp:0:interface=127.0.0.1", &rf);
    int fd = tu_connect("127.0.0.1", listener_port(l));
    ck_assert_int_ge(fd, 0);
    spin(r, &rf.built, 2000);
    ck_assert_int_eq(rf.built, 1);
    ck_assert_int_eq(rf.events[0], EV_MADE);
    close(fd);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_listen_tcp6_on_the_ipv6_loopback)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    tw_listener *l = listen_ok(r, "tcp6:0:interface=\\:\\:1", &rf);
    tw_address a;
    tw_listener_address(l, &a);
    ck_assert_int_eq(tw_address_family(&a), AF_INET6);
    int fd = tu_connect("::1", listener_port(l));
    ck_assert_int_ge(fd, 0);
    spin(r, &rf.built, 2000);
    ck_assert_int_eq(rf.built, 1);
    close(fd);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_listen_on_a_port_in_use_fails_naming_the_endpoint)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    tw_listener *l = listen_ok(r, "tcp:0:interface=127.0.0.1", &rf);
    char desc[64];
    snprintf(desc, sizeof desc, "tcp:%d:interface=127.0.0.1", listener_port(l));
    tu_outcome o;
    tu_watch(tw_listen_string(r, desc, NULL, &rf.base), &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -EADDRINUSE);
    ck_assert_contains(o.message, desc);
    ck_assert_contains(o.message, "EADDRINUSE");
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_a_bad_description_fails_the_listen_with_the_parser_sentence)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    tu_outcome o;
    tu_watch(tw_listen_string(r, "tcp:99999", NULL, &rf.base), &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -EINVAL);
    ck_assert_str_eq(o.message,
                     "bad endpoint 'tcp:99999': port '99999' is not a number from 0 to 65535");
    ck_assert_int_eq(rf.starts, 0);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_a_listener_nobody_takes_is_closed_with_the_deferred)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    tw_deferred *d = tw_listen_string(r, "tcp:0:interface=127.0.0.1", NULL, &rf.base);
    ck_assert_ptr_nonnull(d);
    ck_assert(tw_deferred_called(d));
    ck_assert_int_eq(rf.starts, 1);
    tw_deferred_unref(d);
    ck_assert_int_eq(rf.stops, 1); /* the listener was closed */
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_listen_refuses_a_client_endpoint)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    tw_endpoint e;
    parse_client_ok("tcp:localhost:80", &e);
    tu_outcome o;
    tu_watch(tw_endpoint_listen(r, &e, NULL, &rf.base), &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -EINVAL);
    ck_assert_contains(o.message, "client endpoint");
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_unix_listen_applies_the_mode_to_the_socket_file)
{
    make_tmpdir();
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    char path[128], desc[256];
    snprintf(path, sizeof path, "%s/s\\:1", tmpdir); /* the file is "s:1" */
    snprintf(desc, sizeof desc, "unix:%s:mode=640", path);
    tw_listener *l = listen_ok(r, desc, &rf);
    snprintf(path, sizeof path, "%s/s:1", tmpdir);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_int_eq(st.st_mode & 07777, 0640);
    int fd = tu_connect_unix(path);
    ck_assert_int_ge(fd, 0);
    spin(r, &rf.built, 2000);
    ck_assert_int_eq(rf.built, 1);
    close(fd);
    tw_listener_close(l);
    tw_reactor_free(r);
    remove_tmpdir();
}
END_TEST

START_TEST(test_unix_listen_removes_a_stale_socket_file)
{
    make_tmpdir();
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    char path[128], desc[256];
    snprintf(path, sizeof path, "%s/stale.sock", tmpdir);
    make_stale_socket(path);
    snprintf(desc, sizeof desc, "unix:%s", path);
    tw_listener *l = listen_ok(r, desc, &rf);
    int fd = tu_connect_unix(path);
    ck_assert_int_ge(fd, 0);
    spin(r, &rf.built, 2000);
    ck_assert_int_eq(rf.built, 1);
    close(fd);
    tw_listener_close(l);
    tw_reactor_free(r);
    remove_tmpdir();
}
END_TEST

START_TEST(test_unix_listen_refuses_a_live_socket)
{
    make_tmpdir();
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    char path[128], desc[256];
    snprintf(path, sizeof path, "%s/live.sock", tmpdir);
    int live = socket(AF_UNIX, SOCK_STREAM, 0);
    tw_address a;
    tw_address_from_unix(&a, path);
    ck_assert_int_eq(bind(live, &a.u.sa, a.len), 0);
    ck_assert_int_eq(listen(live, 8), 0);
    snprintf(desc, sizeof desc, "unix:%s", path);
    tu_outcome o;
    tu_watch(tw_listen_string(r, desc, NULL, &rf.base), &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -EADDRINUSE);
    ck_assert_contains(o.message, "already listening");
    /* The live server keeps its file and its clients. */
    int fd = tu_connect_unix(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    close(live);
    tw_reactor_free(r);
    remove_tmpdir();
}
END_TEST

START_TEST(test_unix_listen_refuses_a_path_that_is_not_a_socket)
{
    make_tmpdir();
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    char path[128], desc[256];
    snprintf(path, sizeof path, "%s/plain", tmpdir);
    int f = open(path, O_CREAT | O_WRONLY, 0600);
    close(f);
    snprintf(desc, sizeof desc, "unix:%s", path);
    tu_outcome o;
    tu_watch(tw_listen_string(r, desc, NULL, &rf.base), &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -EADDRINUSE);
    ck_assert_contains(o.message, "not a socket");
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0); /* left alone */
    tw_reactor_free(r);
    remove_tmpdir();
}
END_TEST

START_TEST(test_unix_lockfile_is_held_while_listening)
{
    make_tmpdir();
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    char desc[256], lock[256];
    snprintf(desc, sizeof desc, "unix:%s/l.sock:lockfile=1", tmpdir);
    snprintf(lock, sizeof lock, "%s/l.sock.lock", tmpdir);
    tw_listener *l = listen_ok(r, desc, &rf);
    int fd = open(lock, O_RDWR);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), -1);
    ck_assert_int_eq(errno, EWOULDBLOCK);
    close(fd);
    /* A second server on the same path is refused by the lock. */
    tu_outcome o;
    tu_watch(tw_listen_string(r, desc, NULL, &rf.base), &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -EADDRINUSE);
    ck_assert_contains(o.message, "lock");
    tw_listener_close(l);
    tw_reactor_free(r);
    remove_tmpdir();
}
END_TEST

START_TEST(test_unix_lockfile_held_by_another_refuses_even_without_a_socket)
{
    make_tmpdir();
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    char desc[256], lock[256], path[128];
    snprintf(path, sizeof path, "%s/m.sock", tmpdir);
    snprintf(desc, sizeof desc, "unix:%s:lockfile=1", path);
    snprintf(lock, sizeof lock, "%s.lock", path);
    int fd = open(lock, O_RDWR | O_CREAT, 0600);
    ck_assert_int_eq(flock(fd, LOCK_EX | LOCK_NB), 0);
    tu_outcome o;
    tu_watch(tw_listen_string(r, desc, NULL, &rf.base), &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -EADDRINUSE);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), -1); /* nothing was bound */
    close(fd);
    tw_reactor_free(r);
    remove_tmpdir();
}
END_TEST

START_TEST(test_unix_listener_removes_its_files_when_closed)
{
    make_tmpdir();
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    char desc[256], lock[256], path[128];
    snprintf(path, sizeof path, "%s/c.sock", tmpdir);
    snprintf(lock, sizeof lock, "%s.lock", path);
    snprintf(desc, sizeof desc, "unix:%s:lockfile=1", path);
    tw_listener *l = listen_ok(r, desc, &rf);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(stat(lock, &st), 0);
    tw_listener_close(l);
    ck_assert_int_eq(stat(path, &st), -1);
    ck_assert_int_eq(stat(lock, &st), -1);
    /* And the path is free for the next server at once. */
    l = listen_ok(r, desc, &rf);
    tw_listener_close(l);
    tw_reactor_free(r);
    remove_tmpdir();
}
END_TEST

START_TEST(test_unix_listener_removes_its_file_when_the_reactor_stops)
{
    make_tmpdir();
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    char desc[256], path[128];
    snprintf(path, sizeof path, "%s/f.sock", tmpdir);
    snprintf(desc, sizeof desc, "unix:%s", path);
    tw_listener *l = listen_ok(r, desc, &rf);
    tw_reactor_stop(r);
    ck_assert_int_eq(tw_reactor_run(r), 0);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), -1);
    tw_listener_close(l);
    tw_reactor_free(r);
    remove_tmpdir();
}
END_TEST

/* ------------------------------------------------------------ udp */

typedef struct {
    tw_datagram_protocol base;
    int started, received, stopped;
    char data[64];
} dgram;

static void dg_start(tw_datagram_protocol *p)
{
    ((dgram *)p)->started++;
}

static void dg_received(tw_datagram_protocol *p, const void *data, size_t len,
                        const tw_address *from)
{
    (void)from;
    dgram *d = (dgram *)p;
    d->received++;
    memcpy(d->data, data, len < sizeof d->data - 1 ? len : sizeof d->data - 1);
}

static void dg_stop(tw_datagram_protocol *p)
{
    ((dgram *)p)->stopped++;
}

static const tw_datagram_ops dgram_ops = {
    .start_protocol = dg_start, .datagram_received = dg_received, .stop_protocol = dg_stop};

START_TEST(test_udp_endpoint_receives_datagrams)
{
    tw_reactor *r = tw_reactor_new();
    dgram dg;
    memset(&dg, 0, sizeof dg);
    dg.base.ops = &dgram_ops;
    tw_endpoint e;
    parse_server_ok("udp:0:interface=127.0.0.1", &e);
    tu_outcome o;
    tu_watch(tw_endpoint_listen_udp(r, &e, &dg.base), &o);
    ck_assert_msg(o.fired && o.ok, "%s", o.message);
    ck_assert_int_eq(dg.started, 1);
    tw_udp_port *port = o.value;
    tw_address a;
    ck_assert_int_eq(tw_udp_port_address(port, &a), 0);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    ck_assert_int_eq(sendto(s, "ping", 4, 0, &a.u.sa, a.len), 4);
    spin(r, &dg.received, 2000);
    ck_assert_int_eq(dg.received, 1);
    ck_assert_str_eq(dg.data, "ping");
    close(s);
    tw_udp_port_close(port);
    ck_assert_int_eq(dg.stopped, 1);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_udp_endpoint_cannot_serve_a_stream_factory)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    tu_outcome o;
    tu_watch(tw_listen_string(r, "udp:0:interface=127.0.0.1", NULL, &rf.base), &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -EPROTONOSUPPORT);
    ck_assert_contains(o.message, "udp:0:interface=127.0.0.1");
    tw_reactor_free(r);
}
END_TEST

/* ------------------------------------------------------------ systemd */

/*
 * In a child, so that fd 3 and the environment are ours: put a listening
 * socket (made by @p make_socket) at fd 3, set LISTEN_FDS=1 and LISTEN_PID,
 * and listen on @p desc. Exit status: 0 when the listener accepted a
 * connection, 10 + n for failure n.
 */
static int run_activated_child(const char *desc, int family, const char *pid_override)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        alarm(10);
        tw_address a;
        if (family == AF_INET)
            tw_address_from_ip(&a, "127.0.0.1", 0);
        else
            tw_address_from_ip(&a, "::1", 0);
        int s = socket(family, SOCK_STREAM, 0);
        if (s < 0 || bind(s, &a.u.sa, a.len) < 0 || listen(s, 8) < 0)
            _exit(11);
        if (s != 3) {
            if (dup2(s, 3) < 0)
                _exit(12);
            close(s);
        }
        char buf[32];
        snprintf(buf, sizeof buf, "%ld", (long)getpid());
        setenv("LISTEN_PID", pid_override != NULL ? pid_override : buf, 1);
        setenv("LISTEN_FDS", "1", 1);
        tw_reactor *r = tw_reactor_new();
        rec_factory rf;
        rec_init(&rf, r);
        tw_deferred *d = tw_listen_string(r, desc, NULL, &rf.base);
        tu_outcome o;
        memset(&o, 0, sizeof o);
        tw_deferred_add_callbacks(d, tu_out_cb, tu_out_eb, &o);
        tw_deferred_unref(d);
        if (!o.ok) {
            fprintf(stderr, "%s\n", o.message);
            _exit(o.code == -EINVAL ? 13 : o.code == -ENOENT ? 14 : o.code == -EBADF ? 15 : 16);
        }
        tw_address bound;
        tw_listener_address(o.value, &bound);
        int c = tu_connect(family == AF_INET ? "127.0.0.1" : "::1", tw_address_port(&bound));
        if (c < 0)
            _exit(17);
        spin(r, &rf.built, 3000);
        if (rf.built != 1)
            _exit(18);
        close(c);
        tw_listener_close(o.value);
        tw_reactor_free(r);
        _exit(0);
    }
    int status = tu_wait_child(pid, 15000);
    ck_assert_msg(WIFEXITED(status), "child did not exit");
    return WEXITSTATUS(status);
}

START_TEST(test_systemd_activation_listens_on_the_passed_descriptor)
{
    ck_assert_int_eq(run_activated_child("systemd:domain=INET:index=0", AF_INET, NULL), 0);
}
END_TEST

START_TEST(test_systemd_inet_accepts_a_dual_stack_ipv6_socket)
{
    ck_assert_int_eq(run_activated_child("systemd:domain=INET:index=0", AF_INET6, NULL), 0);
}
END_TEST

START_TEST(test_systemd_refuses_a_socket_of_another_domain)
{
    ck_assert_int_eq(run_activated_child("systemd:domain=UNIX:index=0", AF_INET, NULL), 13);
}
END_TEST

START_TEST(test_systemd_refuses_descriptors_meant_for_another_process)
{
    ck_assert_int_eq(run_activated_child("systemd:domain=INET:index=0", AF_INET, "1"), 14);
}
END_TEST

START_TEST(test_activated_fds_reads_listen_pid_and_listen_fds)
{
    char me[32];
    snprintf(me, sizeof me, "%ld", (long)getpid());
    unsetenv("LISTEN_PID");
    setenv("LISTEN_FDS", "2", 1);
    ck_assert_int_eq(tw_endpoint_activated_fds(), -ENOENT);
    setenv("LISTEN_PID", me, 1);
    ck_assert_int_eq(tw_endpoint_activated_fds(), 2);
    setenv("LISTEN_FDS", "0", 1);
    ck_assert_int_eq(tw_endpoint_activated_fds(), 0);
    setenv("LISTEN_PID", "1", 1);
    ck_assert_int_eq(tw_endpoint_activated_fds(), -ESRCH);
    setenv("LISTEN_PID", me, 1);
    const char *bad[] = {"", "x", "-1", "2x", "65537", "99999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        setenv("LISTEN_FDS", bad[i], 1);
        ck_assert_msg(tw_endpoint_activated_fds() == -EINVAL, "LISTEN_FDS='%s'", bad[i]);
    }
    setenv("LISTEN_FDS", "1", 1);
    setenv("LISTEN_PID", "0", 1);
    ck_assert_int_eq(tw_endpoint_activated_fds(), -EINVAL);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
}
END_TEST

START_TEST(test_systemd_refuses_an_index_out_of_range)
{
    ck_assert_int_eq(run_activated_child("systemd:domain=INET:index=1", AF_INET, NULL), 15);
}
END_TEST

START_TEST(test_systemd_without_activation_says_so)
{
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    tw_reactor *r = tw_reactor_new();
    rec_factory rf;
    rec_init(&rf, r);
    tu_outcome o;
    tu_watch(tw_listen_string(r, "systemd:domain=INET:index=0", NULL, &rf.base), &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -ENOENT);
    ck_assert_contains(o.message, "LISTEN_PID and LISTEN_FDS are not set");
    tw_reactor_free(r);
}
END_TEST

/* ------------------------------------------------------------ connecting */

START_TEST(test_connect_string_over_tcp_fires_with_the_protocol)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory server, client;
    rec_init(&server, r);
    rec_init(&client, r);
    tw_listener *l = listen_ok(r, "tcp:0:interface=127.0.0.1", &server);
    char desc[64];
    snprintf(desc, sizeof desc, "tcp:127.0.0.1:%d:timeout=5", listener_port(l));
    tu_outcome o;
    tu_watch(tw_connect_string(r, desc, &client.base), &o);
    ck_assert(!o.fired);
    spin(r, &o.fired, 3000);
    ck_assert_msg(o.ok, "%s", o.message);
    ck_assert_ptr_eq(o.value, client.last);
    ck_assert_int_eq(client.events[0], EV_MADE);
    spin(r, &server.built, 2000);
    ck_assert_int_eq(server.built, 1);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_connect_string_over_the_ipv6_loopback)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory server, client;
    rec_init(&server, r);
    rec_init(&client, r);
    tw_listener *l = listen_ok(r, "tcp6:0:interface=\\:\\:1", &server);
    char desc[64];
    snprintf(desc, sizeof desc, "tcp:host=\\:\\:1:port=%d", listener_port(l));
    tu_outcome o;
    tu_watch(tw_connect_string(r, desc, &client.base), &o);
    spin(r, &o.fired, 3000);
    ck_assert_msg(o.ok, "%s", o.message);
    tw_address peer;
    ck_assert_int_eq(tw_transport_get_peer(client.last->transport, &peer), 0);
    ck_assert_int_eq(tw_address_family(&peer), AF_INET6);
    tw_listener_close(l);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_connect_string_over_unix)
{
    make_tmpdir();
    tw_reactor *r = tw_reactor_new();
    rec_factory server, client;
    rec_init(&server, r);
    rec_init(&client, r);
    char desc[256];
    snprintf(desc, sizeof desc, "unix:%s/u.sock", tmpdir);
    tw_listener *l = listen_ok(r, desc, &server);
    tu_outcome o;
    tu_watch(tw_connect_string(r, desc, &client.base), &o);
    ck_assert(!o.fired); /* even a UNIX connect reports from the loop */
    spin(r, &o.fired, 3000);
    ck_assert_msg(o.ok, "%s", o.message);
    spin(r, &server.built, 2000);
    ck_assert_int_eq(server.built, 1);
    tw_listener_close(l);
    tw_reactor_free(r);
    remove_tmpdir();
}
END_TEST

START_TEST(test_connect_string_refused_names_econnrefused)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory client;
    rec_init(&client, r);
    char desc[64];
    snprintf(desc, sizeof desc, "tcp:127.0.0.1:%d", tu_closed_port());
    tu_outcome o;
    tu_watch(tw_connect_string(r, desc, &client.base), &o);
    spin(r, &o.fired, 3000);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -ECONNREFUSED);
    ck_assert_contains(o.message, "ECONNREFUSED");
    ck_assert_int_eq(client.built, 0);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_connect_string_with_a_bad_description_fails_at_once)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory client;
    rec_init(&client, r);
    tu_outcome o;
    tu_watch(tw_connect_string(r, "tcp:localhost", &client.base), &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -EINVAL);
    ck_assert_contains(o.message, "missing port for tcp");
    ck_assert_int_eq(client.starts, 0);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_connect_refuses_a_server_endpoint)
{
    tw_reactor *r = tw_reactor_new();
    rec_factory client;
    rec_init(&client, r);
    tw_endpoint e;
    parse_server_ok("tcp:80", &e);
    tu_outcome o;
    tu_watch(tw_endpoint_connect(r, &e, &client.base), &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -EINVAL);
    tw_reactor_free(r);
}
END_TEST

static Suite *endpoint_suite(void)
{
    Suite *s = suite_create("endpoint");
    TCase *p = tcase_create("parse");
    tcase_add_test(p, test_a_bare_port_means_tcp_on_every_interface);
    tcase_add_test(p, test_tcp_server_takes_interface_and_backlog_options);
    tcase_add_test(p, test_tcp_server_takes_twisted_positional_arguments);
    tcase_add_test(p, test_escaped_colons_write_an_ipv6_interface);
    tcase_add_test(p, test_tcp6_positional_order_is_port_backlog_interface);
    tcase_add_test(p, test_unix_path_with_an_escaped_colon);
    tcase_add_test(p, test_backslash_escapes_backslash_and_equals);
    tcase_add_test(p, test_unix_mode_is_octal_and_lockfile_a_flag);
    tcase_add_test(p, test_udp_server_parses_port_and_interface);
    tcase_add_test(p, test_systemd_takes_domain_and_index);
    tcase_add_test(p, test_tcp_client_positional_host_port_and_options);
    tcase_add_test(p, test_tcp_client_keyword_forms);
    tcase_add_test(p, test_client_timeout_defaults_to_thirty_seconds);
    tcase_add_test(p, test_port_out_of_range_names_the_segment);
    tcase_add_test(p, test_unknown_type_is_named);
    tcase_add_test(p, test_unknown_option_is_named_with_its_type);
    tcase_add_test(p, test_each_bad_value_names_its_option);
    tcase_add_test(p, test_missing_required_parameter_is_named);
    tcase_add_test(p, test_syntax_errors_name_the_segment);
    tcase_add_test(p, test_types_of_the_other_role_are_refused);
    tcase_add_test(p, test_a_path_too_long_for_a_socket_is_refused);
    tcase_add_test(p, test_errors_are_truncated_to_the_buffer);
    tcase_add_test(p, test_format_describes_an_endpoint_that_reads_back);
    suite_add_tcase(s, p);

    TCase *l = tcase_create("listen");
    tcase_set_timeout(l, 30);
    tcase_add_test(l, test_listen_tcp_from_a_description_accepts_connections);
    tcase_add_test(l, test_listen_tcp6_on_the_ipv6_loopback);
    tcase_add_test(l, test_listen_on_a_port_in_use_fails_naming_the_endpoint);
    tcase_add_test(l, test_a_bad_description_fails_the_listen_with_the_parser_sentence);
    tcase_add_test(l, test_a_listener_nobody_takes_is_closed_with_the_deferred);
    tcase_add_test(l, test_listen_refuses_a_client_endpoint);
    tcase_add_test(l, test_unix_listen_applies_the_mode_to_the_socket_file);
    tcase_add_test(l, test_unix_listen_removes_a_stale_socket_file);
    tcase_add_test(l, test_unix_listen_refuses_a_live_socket);
    tcase_add_test(l, test_unix_listen_refuses_a_path_that_is_not_a_socket);
    tcase_add_test(l, test_unix_lockfile_is_held_while_listening);
    tcase_add_test(l, test_unix_lockfile_held_by_another_refuses_even_without_a_socket);
    tcase_add_test(l, test_unix_listener_removes_its_files_when_closed);
    tcase_add_test(l, test_unix_listener_removes_its_file_when_the_reactor_stops);
    tcase_add_test(l, test_udp_endpoint_receives_datagrams);
    tcase_add_test(l, test_udp_endpoint_cannot_serve_a_stream_factory);
    tcase_add_test(l, test_systemd_activation_listens_on_the_passed_descriptor);
    tcase_add_test(l, test_systemd_inet_accepts_a_dual_stack_ipv6_socket);
    tcase_add_test(l, test_systemd_refuses_a_socket_of_another_domain);
    tcase_add_test(l, test_systemd_refuses_descriptors_meant_for_another_process);
    tcase_add_test(l, test_activated_fds_reads_listen_pid_and_listen_fds);
    tcase_add_test(l, test_systemd_refuses_an_index_out_of_range);
    tcase_add_test(l, test_systemd_without_activation_says_so);
    suite_add_tcase(s, l);

    TCase *c = tcase_create("connect");
    tcase_set_timeout(c, 30);
    tcase_add_test(c, test_connect_string_over_tcp_fires_with_the_protocol);
    tcase_add_test(c, test_connect_string_over_the_ipv6_loopback);
    tcase_add_test(c, test_connect_string_over_unix);
    tcase_add_test(c, test_connect_string_refused_names_econnrefused);
    tcase_add_test(c, test_connect_string_with_a_bad_description_fails_at_once);
    tcase_add_test(c, test_connect_refuses_a_server_endpoint);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(endpoint_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
