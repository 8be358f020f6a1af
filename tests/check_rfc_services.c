/* SPDX-License-Identifier: MIT */
/*
 * The small built-in services: line (echo by lines, with options), discard
 * (RFC 863), chargen (RFC 864, with bounded memory for a client that never
 * reads), daytime (RFC 867) and time (RFC 868). Each runs under reactord
 * on an ephemeral loopback port, as an operator would run it, and where the
 * server's inside matters (chargen's write queue, the line echo's writes)
 * in-process as well.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <twine.h>
#include <twine/testing.h>

#include "core/fd_internal.h"
#include "testutil.h"

#define EPOCH_1900_OFFSET 2208988800LL

static void start(tu_reactord *d, const char *const *args)
{
    int rc = tu_reactord_start(d, args);
    ck_assert_msg(rc == 0, "reactord did not start: %s", d->log);
}

static void stop(tu_reactord *d)
{
    kill(d->pid, SIGTERM);
    int status = tu_wait_child(d->pid, 10000);
    close(d->err_fd);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "reactord did not stop cleanly (status %d)", status);
}

static int connect_to(const tu_reactord *d)
{
    int fd = tu_connect("127.0.0.1", d->port);
    ck_assert_int_ge(fd, 0);
    return fd;
}

static void send_str(int fd, const char *s)
{
    ck_assert_int_eq(tu_write_all(fd, s, strlen(s)), 0);
}

/* Read exactly strlen(want) bytes and compare. */
static void expect_str(int fd, const char *want)
{
    size_t len = strlen(want);
    char buf[512];
    ck_assert_uint_lt(len, sizeof buf);
    size_t got = tu_read_exact(fd, buf, len, 5000);
    buf[got] = '\0';
    ck_assert_str_eq(buf, want);
}

/* Nothing arrives within @p ms (the connection may stay open). */
static void expect_silence(int fd, int ms)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, ms), 0);
}

static const tw_plugin *builtin(const char *name)
{
    const tw_plugin *p = tw_plugin_builtin_find(name);
    ck_assert_msg(p != NULL, "no built-in module '%s'", name);
    char err[256];
    ck_assert_int_eq(tw_plugin_check(p, "built-in", err, sizeof err), 0);
    return p;
}

/* A factory from a built-in module, with "key=value" options. */
static tw_factory *make_factory(tw_reactor *r, const char *name, const char *const *kv,
                                size_t n)
{
    const tw_plugin *p = builtin(name);
    char err[256] = "";
    tw_options *o = tw_options_parse(p->options, kv, n, err, sizeof err);
    ck_assert_msg(o != NULL, "%s", err);
    tw_factory *f = p->make_factory(r, o, err, sizeof err);
    tw_options_free(o);
    ck_assert_msg(f != NULL, "%s", err);
    return f;
}

START_TEST(test_every_service_is_a_registered_builtin)
{
    static const char *const names[] = {"line", "discard", "chargen", "daytime", "time"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const tw_plugin *p = builtin(names[i]);
        ck_assert_str_eq(p->name, names[i]);
        ck_assert_ptr_nonnull(p->description);
    }
}
END_TEST

/* ------------------------------------------------------------------ line */

START_TEST(test_reactord_line_answers_line_by_line)
{
    tu_reactord d;
    const char *args[] = {"--protocol", "line", "--port", "0", "--interface", "127.0.0.1", NULL};
    start(&d, args);
    int fd = connect_to(&d);
    send_str(fd, "hello\r\n"); /* what telnet and Twisted send */
    expect_str(fd, "hello\r\n");
    send_str(fd, "second line\r\n");
    expect_str(fd, "second line\r\n");
    send_str(fd, "no end yet");
    expect_silence(fd, 200);
    send_str(fd, " ... now\r\n");
    expect_str(fd, "no end yet ... now\r\n");
    send_str(fd, "a\r\nb\r\n\r\nc\r\n");
    expect_str(fd, "a\r\nb\r\n\r\nc\r\n");
    send_str(fd, "bare\nlf"); /* a lone LF is data, as in Twisted */
    expect_silence(fd, 200);
    send_str(fd, "\r\n");
    expect_str(fd, "bare\nlf\r\n");
    close(fd);
    stop(&d);
}
END_TEST

/* Twisted's LineReceiver accepts a line of exactly MAX_LENGTH bytes before
 * its CRLF; so must the line module by default, or a Twisted client's
 * longest line drops the connection. */
START_TEST(test_reactord_line_default_takes_a_crlf_line_of_exactly_max_length)
{
    tu_reactord d;
    const char *args[] = {"--protocol", "line", "--port", "0", "--interface", "127.0.0.1", NULL};
    start(&d, args);
    int fd = connect_to(&d);
    size_t len = TW_LINE_DEFAULT_MAX_LENGTH + 2;
    char *line = malloc(len + 1);
    memset(line, 'x', len - 2);
    memcpy(line + len - 2, "\r\n", 3);
    send_str(fd, line);
    char *back = malloc(len);
    ck_assert_uint_eq(tu_read_exact(fd, back, len, 5000), len);
    ck_assert(memcmp(back, line, len) == 0);
    free(back);
    free(line);
    close(fd);
    stop(&d);
}
END_TEST

START_TEST(test_reactord_line_with_delimiter_lf_answers_what_nc_sends)
{
    tu_reactord d;
    const char *args[] = {"--protocol", "line", "--port", "0", "--interface", "127.0.0.1",
                          "-o", "delimiter=lf", NULL};
    start(&d, args);
    int fd = connect_to(&d);
    send_str(fd, "hello\n"); /* what nc sends */
    expect_str(fd, "hello\n");
    send_str(fd, "a\nb\n\nc\n");
    expect_str(fd, "a\nb\n\nc\n");
    send_str(fd, "from telnet\r\n"); /* the CR is part of the line */
    expect_str(fd, "from telnet\r\n");
    close(fd);
    stop(&d);
}
END_TEST

START_TEST(test_reactord_line_honours_delimiter_and_max_length)
{
    tu_reactord d;
    const char *args[] = {"--protocol", "line",        "--port", "0", "--interface",
                          "127.0.0.1",  "-o",          "delimiter=crlf", "-o",
                          "max-length=8", NULL};
    start(&d, args);
    int fd = connect_to(&d);
    send_str(fd, "12345678\r\nshort\r\n");
    expect_str(fd, "12345678\r\nshort\r\n");
    send_str(fd, "bare\nlf"); /* with crlf a lone LF is data */
    expect_silence(fd, 200);
    send_str(fd, "\r\n");
    expect_str(fd, "bare\nlf\r\n");
    send_str(fd, "ok\r\n123456789\r\nnever\r\n");
    expect_str(fd, "ok\r\n");
    ck_assert_int_eq(tu_wait_eof(fd, 5000), 1);
    close(fd);
    long long deadline = tu_now_ms() + 5000;
    while (strstr(d.log, "longer than 8 bytes") == NULL && tu_now_ms() < deadline) {
        usleep(10000);
        tu_reactord_read_log(&d);
    }
    ck_assert_msg(strstr(d.log, "longer than 8 bytes") != NULL, "log: %s", d.log);
    /* The server goes on serving others. */
    fd = connect_to(&d);
    send_str(fd, "again\r\n");
    expect_str(fd, "again\r\n");
    close(fd);
    stop(&d);
}
END_TEST

static void expect_refused(const char *option, int code, const char *sentence)
{
    const char *args[] = {"--protocol", "line", "--port", "0", "--interface", "127.0.0.1",
                          "-o", option, NULL};
    char err[1024];
    int status = tu_run_reactord(args, err, sizeof err, 10000);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == code,
                  "-o %s: status %d, stderr %s", option, status, err);
    ck_assert_msg(strstr(err, sentence) != NULL, "-o %s: stderr '%s' lacks '%s'", option, err,
                  sentence);
}

START_TEST(test_reactord_line_refuses_bad_options_with_a_sentence)
{
    expect_refused("delimiter=cr", EX_CONFIG, "'delimiter' must be 'lf' or 'crlf', not 'cr'");
    expect_refused("max-length=0", EX_CONFIG, "'max-length' must be from 1 to");
    expect_refused("max-length=many", EX_USAGE, "'max-length' must be an integer");
    expect_refused("colour=red", EX_USAGE, "valid options: delimiter, max-length");
}
END_TEST

/* Read the next record from a SOCK_SEQPACKET @p fd, turning @p r's loop,
 * into @p buf (NUL-terminated). @return its length, or -1 after 5 s. */
static ssize_t next_record(tw_reactor *r, int fd, char *buf, size_t cap)
{
    long long deadline = tu_now_ms() + 5000;
    while (tu_now_ms() < deadline) {
        tw_reactor_iterate(r, 0.005);
        ssize_t n = recv(fd, buf, cap - 1, MSG_DONTWAIT);
        if (n >= 0) {
            buf[n] = '\0';
            return n;
        }
    }
    return -1;
}

/* The echoes of one chunk's lines leave in one send: over SOCK_SEQPACKET
 * each send is one record. */
START_TEST(test_line_module_echoes_a_chunk_of_lines_in_one_write)
{
    tw_reactor *r = tw_reactor_new();
    tw_factory *f = make_factory(r, "line", NULL, 0);
    int sv[2];
    ck_assert_int_eq(tw__socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv, O_CLOEXEC), 0);
    ck_assert_int_eq(tw_transport_adopt(r, sv[0], f), 0);
    char got[256];
    send_str(sv[1], "a\r\nbb\r\nccc\r\npartial");
    ck_assert_int_eq((int)next_record(r, sv[1], got, sizeof got), 12);
    ck_assert_str_eq(got, "a\r\nbb\r\nccc\r\n");
    send_str(sv[1], " line\r\n");
    ck_assert_int_eq((int)next_record(r, sv[1], got, sizeof got), 14);
    ck_assert_str_eq(got, "partial line\r\n");
    close(sv[1]);
    ck_assert_int_eq(tw_reactor_free(r), 0); /* closes the stream */
    tw_factory_free(f);
}
END_TEST

START_TEST(test_line_module_answers_the_lines_before_a_too_long_one)
{
    const char *kv[] = {"max-length=4", "delimiter=lf"};
    tw_factory *f = make_factory(NULL, "line", kv, 2);
    tw_string_transport *m = tw_string_transport_open(NULL, f);
    tw_log_set_level(TW_LOG_ERROR);
    tw_string_transport_feed_str(m, "ab\ncdef\ntoo long\nlost\n");
    tw_log_set_level(TW_LOG_INFO);
    ck_assert(tw_string_transport_output_is(m, "ab\ncdef\n"));
    ck_assert_int_eq(m->lose_calls, 1);
    tw_string_transport_free(m);
    tw_factory_free(f);
}
END_TEST

START_TEST(test_line_module_stops_reading_while_its_peer_does_not_read)
{
    tw_factory *f = make_factory(NULL, "line", NULL, 0);
    tw_string_transport *m = tw_string_transport_open(NULL, f);
    tw_transport_set_write_watermarks(&m->base, 16, 4);
    tw_string_transport_set_hold(m, 1);
    tw_string_transport_feed_str(m, "0123456789\r\n0123456789\r\n");
    ck_assert_int_eq(m->producer_pause_calls, 1);
    ck_assert_int_eq(m->reading_paused, 1);
    tw_string_transport_feed_str(m, "later\r\n"); /* already in flight: kept, not answered */
    ck_assert_uint_eq(m->out_len, 24);
    tw_string_transport_drain(m, (size_t)-1);
    ck_assert_int_eq(m->reading_paused, 0);
    ck_assert(tw_string_transport_output_is(m, "0123456789\r\n0123456789\r\nlater\r\n"));
    tw_string_transport_free(m);
    tw_factory_free(f);
}
END_TEST

/* --------------------------------------------------------------- discard */

START_TEST(test_reactord_discard_reads_everything_and_answers_nothing)
{
    tu_reactord d;
    const char *args[] = {"--protocol", "discard", "--port", "0", "--interface", "127.0.0.1",
                          NULL};
    start(&d, args);
    int fd = connect_to(&d);
    static char junk[256 * 1024];
    memset(junk, 'j', sizeof junk);
    for (int i = 0; i < 8; i++) /* 2 MiB: far more than the socket buffers hold */
        ck_assert_int_eq(tu_write_all(fd, junk, sizeof junk), 0);
    expect_silence(fd, 300); /* no data and no EOF: still open */
    shutdown(fd, SHUT_WR);
    ck_assert_int_eq(tu_wait_eof(fd, 5000), 1); /* our EOF closes it */
    close(fd);
    stop(&d);
}
END_TEST

/* --------------------------------------------------------------- chargen */

/* Check @p n bytes of chargen output starting at stream offset 0. */
static void check_chargen_pattern(const unsigned char *buf, size_t n)
{
    for (size_t at = 0; at < n; at++) {
        size_t line = at / 74, col = at % 74;
        int want = col == 72 ? '\r' : col == 73 ? '\n' : ' ' + (int)((line + col) % 95);
        ck_assert_msg(buf[at] == want, "byte %zu (line %zu col %zu) is %d, not %d", at, line,
                      col, buf[at], want);
    }
}

START_TEST(test_reactord_chargen_sends_the_rfc864_pattern)
{
    tu_reactord d;
    const char *args[] = {"--protocol", "chargen", "--port", "0", "--interface", "127.0.0.1",
                          NULL};
    start(&d, args);
    int fd = connect_to(&d);
    size_t n = 95 * 74 * 3 + 1000; /* three full periods and more */
    unsigned char *buf = malloc(n);
    ck_assert_uint_eq(tu_read_exact(fd, buf, n, 5000), n);
    check_chargen_pattern(buf, n);
    ck_assert_int_eq(memcmp(buf, " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]"
                                 "^_`abcdefg\r\n!\"#",
                            77),
                     0);
    free(buf);
    close(fd);
    stop(&d);
}
END_TEST

typedef struct {
    tw_factory base;
    tw_factory *inner;
    tw_protocol *last;
} spy_factory;

static tw_protocol *spy_build(tw_factory *base, const tw_address *peer)
{
    spy_factory *s = tw_container_of(base, spy_factory, base);
    s->last = s->inner->ops->build_protocol(s->inner, peer);
    return s->last;
}

static const tw_factory_ops spy_ops = {.build_protocol = spy_build};

typedef struct {
    spy_factory *spy;
    int client;
    size_t max_queued, samples, read_total;
    unsigned char *head; /* the first bytes read, for the pattern check */
    size_t head_len;
} chargen_watch;

/* One turn of the loop, then a look at the server's queue (and a read). */
static void watch_turn(tw_reactor *r, chargen_watch *w, int reading)
{
    tw_reactor_iterate(r, 0.002);
    tw_protocol *p = w->spy->last;
    if (p != NULL && p->transport != NULL) {
        size_t q = tw_transport_write_buffer_size(p->transport);
        if (q > w->max_queued)
            w->max_queued = q;
        w->samples++;
    }
    if (!reading)
        return;
    unsigned char buf[65536];
    ssize_t n;
    while ((n = recv(w->client, buf, sizeof buf, MSG_DONTWAIT)) > 0) {
        size_t room = 95 * 74 * 2 - w->head_len;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(w->head + w->head_len, buf, take);
        w->head_len += take;
        w->read_total += (size_t)n;
    }
}

START_TEST(test_chargen_queue_stays_bounded_for_a_client_that_does_not_read)
{
    tw_reactor *r = tw_reactor_new();
    spy_factory spy = {.inner = make_factory(r, "chargen", NULL, 0)};
    tw_factory_init(&spy.base, &spy_ops);
    tw_address addr;
    tw_address_from_ip(&addr, "127.0.0.1", 0);
    tw_listener *l;
    ck_assert_int_eq(tw_listen(r, &addr, NULL, &spy.base, &l), 0);
    tw_address bound;
    tw_listener_address(l, &bound);

    int fd = tw__socket(AF_INET, SOCK_STREAM, 0, O_CLOEXEC);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    ck_assert_int_eq(connect(fd, &bound.u.sa, bound.len), 0);

    /* 1.5 s with a client that never reads. */
    chargen_watch w = {.spy = &spy, .client = fd, .head = malloc(95 * 74 * 2)};
    double until = tw_reactor_seconds(r) + 1.5;
    while (tw_reactor_seconds(r) < until)
        watch_turn(r, &w, 0);
    ck_assert_ptr_nonnull(spy.last);
    ck_assert_uint_gt(w.samples, 10);
    /* The queue filled (the kernel refused data) and was capped by the pause
     * at the 64 KiB high watermark, plus at most one 16 KiB chunk. */
    ck_assert_uint_gt(w.max_queued, TW_WRITE_LOW_WATERMARK);
    ck_assert_uint_le(w.max_queued, TW_WRITE_HIGH_WATERMARK + 16384);

    /* Reading again resumes the producer: the stream flows, in order. */
    size_t target = 4 << 20;
    until = tw_reactor_seconds(r) + 20;
    while (w.read_total < target && tw_reactor_seconds(r) < until)
        watch_turn(r, &w, 1);
    ck_assert_uint_ge(w.read_total, target);
    ck_assert_uint_le(w.max_queued, TW_WRITE_HIGH_WATERMARK + 16384);
    check_chargen_pattern(w.head, w.head_len);

    close(fd);
    free(w.head);
    tw_listener_close(l);
    tw_reactor_free(r);
    tw_factory_free(spy.inner);
}
END_TEST

START_TEST(test_chargen_pauses_at_the_high_watermark_and_resumes_at_the_low)
{
    tw_reactor *r = tw_reactor_new();
    tw_factory *f = make_factory(r, "chargen", NULL, 0);
    tw_string_transport *m = tw_string_transport_open(NULL, f);
    tw_string_transport_set_hold(m, 1); /* a peer that reads nothing */
    ck_assert_uint_eq(m->out_len, 0); /* it produces from the loop, not from connection_made */
    for (int i = 0; i < 100 && !m->producer_paused; i++)
        tw_reactor_iterate(r, 0.001);
    ck_assert_int_eq(m->producer_paused, 1);
    size_t at_pause = m->out_len;
    ck_assert_uint_gt(at_pause, TW_WRITE_HIGH_WATERMARK);
    ck_assert_uint_le(at_pause, TW_WRITE_HIGH_WATERMARK + 16384);
    /* Paused: nothing more is written, and nothing stays scheduled. */
    for (int i = 0; i < 20; i++)
        tw_reactor_iterate(r, 0.001);
    ck_assert_uint_eq(m->out_len, at_pause);
    ck_assert_uint_eq(tw_reactor_pending_calls(r), 0);
    /* Draining to the low watermark resumes it. */
    tw_string_transport_drain(m, m->queued - TW_WRITE_LOW_WATERMARK);
    ck_assert_int_eq(m->producer_resume_calls, 1);
    for (int i = 0; i < 100 && !m->producer_paused; i++)
        tw_reactor_iterate(r, 0.001);
    ck_assert_int_eq(m->producer_paused, 1);
    ck_assert_uint_gt(m->out_len, at_pause);
    check_chargen_pattern((const unsigned char *)m->out, m->out_len);
    /* Once the connection is lost, its pending turn is cancelled. */
    tw_string_transport_drain(m, (size_t)-1);
    ck_assert_uint_eq(tw_reactor_pending_calls(r), 1);
    tw_string_transport_free(m);
    ck_assert_uint_eq(tw_reactor_pending_calls(r), 0);
    tw_reactor_free(r);
    tw_factory_free(f);
}
END_TEST

/* Resident memory (kB) and CPU ticks of a process, from /proc. */
static long vm_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    long kb = -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

static long cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    ck_assert_ptr_nonnull(p);
    long utime = 0, stime = 0;
    /* fields after the name: state ppid pgrp session tty tpgid flags minflt
     * cminflt majflt cmajflt utime stime */
    ck_assert_int_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime,
                            &stime),
                     2);
    return utime + stime;
}

START_TEST(test_reactord_chargen_memory_stays_bounded_for_clients_that_do_not_read)
{
    tu_reactord d;
    const char *args[] = {"--protocol", "chargen", "--port", "0", "--interface", "127.0.0.1",
                          NULL};
    start(&d, args);
    enum { N = 8 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tw__socket(AF_INET, SOCK_STREAM, 0, O_CLOEXEC);
        int small = 4096;
        setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
        tw_address a;
        tw_address_from_ip(&a, "127.0.0.1", d.port);
        ck_assert_int_eq(connect(fds[i], &a.u.sa, a.len), 0);
    }
    usleep(500 * 1000); /* every queue fills up to its pause */
    long rss0 = vm_rss_kb(d.pid);
    long cpu0 = cpu_ticks(d.pid);
    usleep(1500 * 1000);
    long rss1 = vm_rss_kb(d.pid);
    long cpu1 = cpu_ticks(d.pid);
    ck_assert_int_gt(rss0, 0);
    /* Paused producers neither grow the heap nor spin. */
    ck_assert_msg(rss1 - rss0 < 1024, "RSS grew from %ld kB to %ld kB", rss0, rss1);
    ck_assert_msg(rss1 < 64 * 1024, "RSS is %ld kB with %d stalled clients", rss1, N);
    long hz = sysconf(_SC_CLK_TCK);
    ck_assert_msg(cpu1 - cpu0 < hz / 2, "reactord used %ld ticks of CPU in 1.5 s while paused",
                  cpu1 - cpu0);
    /* And a reading client still gets data. */
    unsigned char buf[74];
    ck_assert_uint_eq(tu_read_exact(fds[0], buf, sizeof buf, 5000), sizeof buf);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    stop(&d);
}
END_TEST

/* --------------------------------------------------------- daytime, time */

/* Read until EOF; @return bytes read. */
static size_t read_to_eof(int fd, char *buf, size_t len)
{
    size_t got = 0;
    long long deadline = tu_now_ms() + 5000;
    while (got < len && tu_now_ms() < deadline) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t n = recv(fd, buf + got, len - got, 0);
        if (n <= 0)
            return got;
        got += (size_t)n;
    }
    ck_abort_msg("no EOF after %zu bytes", got);
    return got;
}

START_TEST(test_reactord_daytime_sends_the_date_then_closes)
{
    tu_reactord d;
    const char *args[] = {"--protocol", "daytime", "--port", "0", "--interface", "127.0.0.1",
                          NULL};
    start(&d, args);
    int fd = connect_to(&d);
    char buf[256];
    size_t n = read_to_eof(fd, buf, sizeof buf - 1);
    buf[n] = '\0';
    close(fd);
    stop(&d);

    ck_assert_uint_gt(n, 2);
    ck_assert_msg(buf[n - 2] == '\r' && buf[n - 1] == '\n', "'%s' is not one CRLF line", buf);
    ck_assert_ptr_eq(strchr(buf, '\n'), buf + n - 1);
    /* "Weekday, Month Day, Year HH:MM:SS-UTC", RFC 867's suggested syntax */
    struct tm tm = {0};
    const char *end = strptime(buf, "%A, %B %d, %Y %H:%M:%S-UTC\r\n", &tm);
    ck_assert_msg(end != NULL && *end == '\0', "'%s' does not parse", buf);
    time_t sent = timegm(&tm);
    long long skew = (long long)time(NULL) - (long long)sent;
    ck_assert_msg(skew >= -2 && skew <= 5, "'%s' is %lld s away from now", buf, skew);
    static const char *const days[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                       "Thursday", "Friday", "Saturday"};
    struct tm check;
    gmtime_r(&sent, &check);
    ck_assert_int_eq(strncmp(buf, days[check.tm_wday], strlen(days[check.tm_wday])), 0);
}
END_TEST

START_TEST(test_reactord_time_sends_seconds_since_1900_then_closes)
{
    tu_reactord d;
    const char *args[] = {"--protocol", "time", "--port", "0", "--interface", "127.0.0.1",
                          NULL};
    start(&d, args);
    int fd = connect_to(&d);
    unsigned char buf[16];
    long long before = (long long)time(NULL);
    size_t n = read_to_eof(fd, (char *)buf, sizeof buf);
    long long after = (long long)time(NULL);
    close(fd);
    stop(&d);

    ck_assert_uint_eq(n, 4);
    uint32_t v = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 | (uint32_t)buf[2] << 8 | buf[3];
    uint32_t lo = (uint32_t)(before + EPOCH_1900_OFFSET - 2);
    uint32_t hi = (uint32_t)(after + EPOCH_1900_OFFSET + 2);
    ck_assert_msg((uint32_t)(v - lo) <= (uint32_t)(hi - lo), "got %u, expected %u..%u", v, lo,
                  hi);
}
END_TEST

START_TEST(test_time_closes_after_four_bytes_and_discard_answers_nothing)
{
    tw_factory *f = make_factory(NULL, "time", NULL, 0);
    tw_string_transport *m = tw_string_transport_open(NULL, f);
    ck_assert_uint_eq(m->out_len, 4);
    ck_assert_int_eq(m->lose_calls, 1);
    ck_assert_int_eq(tw_string_transport_run_close(m), 1);
    tw_string_transport_free(m);
    tw_factory_free(f);

    f = make_factory(NULL, "discard", NULL, 0);
    m = tw_string_transport_open(NULL, f);
    tw_string_transport_feed_str(m, "anything at all\r\n");
    ck_assert_uint_eq(m->out_len, 0);
    ck_assert_int_eq(m->lose_calls, 0);
    tw_string_transport_free(m);
    tw_factory_free(f);
}
END_TEST

static Suite *services_suite(void)
{
    Suite *s = suite_create("rfc services");
    TCase *tc = tcase_create("services");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_every_service_is_a_registered_builtin);
    tcase_add_test(tc, test_reactord_line_answers_line_by_line);
    tcase_add_test(tc, test_reactord_line_honours_delimiter_and_max_length);
    tcase_add_test(tc, test_reactord_line_default_takes_a_crlf_line_of_exactly_max_length);
    tcase_add_test(tc, test_reactord_line_with_delimiter_lf_answers_what_nc_sends);
    tcase_add_test(tc, test_reactord_line_refuses_bad_options_with_a_sentence);
    tcase_add_test(tc, test_line_module_echoes_a_chunk_of_lines_in_one_write);
    tcase_add_test(tc, test_line_module_answers_the_lines_before_a_too_long_one);
    tcase_add_test(tc, test_line_module_stops_reading_while_its_peer_does_not_read);
    tcase_add_test(tc, test_reactord_discard_reads_everything_and_answers_nothing);
    tcase_add_test(tc, test_reactord_chargen_sends_the_rfc864_pattern);
    tcase_add_test(tc, test_chargen_pauses_at_the_high_watermark_and_resumes_at_the_low);
    tcase_add_test(tc, test_chargen_queue_stays_bounded_for_a_client_that_does_not_read);
    tcase_add_test(tc, test_reactord_chargen_memory_stays_bounded_for_clients_that_do_not_read);
    tcase_add_test(tc, test_reactord_daytime_sends_the_date_then_closes);
    tcase_add_test(tc, test_reactord_time_sends_seconds_since_1900_then_closes);
    tcase_add_test(tc, test_time_closes_after_four_bytes_and_discard_answers_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(services_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
