/* SPDX-License-Identifier: MIT */
/*
 * loadgen: the load generator behind bench/run. One thread, one epoll set,
 * non-blocking sockets, so that on its own core it can keep a server on the
 * other core busy while costing as little per message as the server does.
 *
 * Modes:
 *   pingpong  C connections, S-byte messages, D in flight on each (D > 1 is
 *             pipelining); a message is done when its S bytes came back.
 *   stream    the same engine with a large window: each connection writes
 *             whenever fewer than D chunks of S bytes are unanswered.
 *   lines     pingpong where each message is a line of S bytes ending "\r\n".
 *   connect   connection rate: connect, echo S bytes, close; C at a time.
 *   idle      open C connections, echo S bytes once on each, print "ready",
 *             then hold them for --hold seconds so the caller can read the
 *             server's memory.
 *   amp       pipelined AMP Echo calls (D per connection), answers parsed by
 *             a bounded box parser and matched to their _ask.
 *
 * With --tls every mode speaks TLS (1.2 or 1.3, OpenSSL's client): the
 * handshake is driven from the same epoll loop (non-blocking SSL_connect)
 * before the mode's first byte, the server's certificate is not verified
 * (the benchmark's certificate is self-signed), and no session is ever
 * offered for resumption, so in connect mode every connection is a full
 * handshake and the figure is handshakes per second. The version, cipher
 * and key-exchange group of the first handshake are printed with the result.
 *
 * Every byte that comes back is checked against what was sent, so a fast but
 * wrong server counts errors instead of throughput. Figures are taken over
 * --duration seconds after a --warmup that is excluded, and printed as one
 * "result key=value ..." line. With --server-pid the server's own CPU time
 * (utime+stime from /proc/PID/stat) is sampled at the start and end of the
 * measured interval, which gives a cost per message that does not depend on
 * whether this generator saturates; the utilisation of the server, of this
 * generator and of everything else on the machine is reported alongside, so
 * that a reader can see which side was the bottleneck and whether other
 * processes competed for the cores.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <linux/perf_event.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/ssl.h>

#define READ_SIZE 65536
/* Period of the payload pattern. It is stored twice over, so any slice of
 * up to PERIOD bytes starting anywhere in the period is contiguous. */
#define ECHO_PERIOD 131071
#define AMP_MAX_VALUE 65535
#define AMP_MAX_KEY 255
#define MAX_EVENTS 256

enum mode { M_PINGPONG, M_STREAM, M_LINES, M_CONNECT, M_IDLE, M_AMP };
static const char *const mode_names[] = {"pingpong", "stream", "lines", "connect", "idle", "amp"};

/* C_HANDSHAKE: TCP is up and the TLS handshake is under way (--tls). */
enum cstate { C_FREE, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_READY };

/* One AMP call in flight. */
typedef struct {
    uint64_t ask;
    uint64_t sent_ns;
    int used;
} amp_slot;

typedef struct conn {
    int fd;
    enum cstate state;
    SSL *ssl;           /* --tls: the connection's TLS state, or NULL */
    int tls_more;       /* the last read filled the buffer and OpenSSL holds more */
    uint32_t events;    /* what the fd is registered for in epoll */
    uint64_t tx_target; /* stream bytes that should have been written */
    uint64_t tx_off;    /* stream bytes written so far */
    uint64_t rx_off;    /* stream bytes received and verified */
    uint64_t *sent_ns;  /* echo modes: send time of message m at [m % depth] */
    uint64_t start_ns;  /* connect/idle: when connect() was called */
    /* amp */
    unsigned char *txbuf, *rxbuf;
    size_t tx_len, tx_pos, tx_cap, rx_len, rx_cap;
    uint64_t next_ask;
    amp_slot *slots;
} conn;

/* Log-linear latency histogram: 32 sub-buckets per power of two (~3 %). */
#define H_SUB 32
#define H_LINEAR 64
#define H_BUCKETS (H_LINEAR + (64 - 6) * H_SUB)
typedef struct {
    uint64_t count[H_BUCKETS];
    uint64_t n;
} histogram;

static struct {
    enum mode mode;
    const char *host;
    const char *port;
    int conns;
    size_t size;
    int depth;
    double duration, warmup, hold;
    long server_pid;
    long min_msgs;
    int tls;
} opt = {M_PINGPONG, "127.0.0.1", NULL, 1, 64, 1, 5.0, 1.0, 1.0, 0, 0, 0};

static struct sockaddr_storage peer;
static socklen_t peer_len;
static int epfd;
static conn *conns;
static unsigned char *pat;  /* the payload pattern, 2 * period bytes */
static size_t period;
static unsigned char *rbuf; /* shared read buffer of the echo modes */
static SSL_CTX *tls_ctx;    /* --tls */
/* What the first completed handshake negotiated, for the result line. */
static char tls_version[32], tls_cipher[64], tls_group[32], tls_cert[32], tls_sig[32];

/* Figures; reset when the warm-up ends, except errors. */
static uint64_t msgs, payload_bytes, errors;
static histogram hist;
static int measuring, stopping;
static const char *first_error;
/* Connections that failed or could not be opened, and (idle) verified ones. */
static int conns_failed, conns_ready;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* ------------------------------------------------------------- histogram */

static unsigned bucket_of(uint64_t v)
{
    if (v < H_LINEAR)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 6 */
    unsigned sub = (unsigned)(v >> (e - 5)) & (H_SUB - 1);
    return H_LINEAR + (e - 6) * H_SUB + sub;
}

/* The middle of bucket @p b, in the histogram's unit (ns). */
static double bucket_value(unsigned b)
{
    if (b < H_LINEAR)
        return b;
    unsigned e = (b - H_LINEAR) / H_SUB + 6;
    unsigned sub = (b - H_LINEAR) % H_SUB;
    double width = (double)(1ull << (e - 5));
    return (double)(1ull << e) + sub * width + width / 2;
}

static void hist_add(histogram *h, uint64_t v)
{
    h->count[bucket_of(v)]++;
    h->n++;
}

static double hist_quantile(const histogram *h, double q)
{
    if (h->n == 0)
        return 0;
    uint64_t want = (uint64_t)(q * (double)h->n);
    if (want >= h->n)
        want = h->n - 1;
    uint64_t seen = 0;
    for (unsigned b = 0; b < H_BUCKETS; b++) {
        seen += h->count[b];
        if (seen > want)
            return bucket_value(b);
    }
    return 0;
}

/* ------------------------------------------------------------- server CPU */

/* utime + stime of @p pid ("self" for this process) in seconds, or -1. */
static double proc_cpu(const char *pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: start after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    unsigned long long utime, stime;
    /* Fields 3 (state) to 13 are skipped; 14 and 15 are utime and stime. */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
               &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* From the first line of /proc/stat: CPU seconds that processes spent in
 * user and system mode on the whole machine, and seconds the hypervisor
 * ran something else while this machine wanted its CPUs ("steal"). */
typedef struct {
    double busy, steal;
} machine_sample;

static machine_sample machine_cpu(void)
{
    machine_sample m = {-1, -1};
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return m;
    unsigned long long user, nice, sys, idle, iowait, irq, softirq, steal;
    int got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle,
                     &iowait, &irq, &softirq, &steal);
    fclose(f);
    double tick = (double)sysconf(_SC_CLK_TCK);
    if (got >= 3)
        m.busy = (double)(user + nice + sys) / tick;
    if (got == 8)
        m.steal = (double)steal / tick;
    return m;
}

/* Where the CPU went during the measured interval: the server, this load
 * generator, every other process on the machine, and the hypervisor. The
 * last two show when something else competed for the two cores and the
 * figures are suspect. */
typedef struct {
    double server, self;
    machine_sample machine;
} cpu_sample;

static cpu_sample sample_cpu(void)
{
    char pid[32];
    snprintf(pid, sizeof pid, "%ld", opt.server_pid);
    cpu_sample c = {opt.server_pid > 0 ? proc_cpu(pid) : -1, proc_cpu("self"), machine_cpu()};
    return c;
}

/*
 * Instructions the server retires, in user and in kernel mode, counted by
 * the kernel over the measured interval. Unlike CPU time they hardly move
 * when other processes compete for the machine, so they compare servers
 * even on a busy host. Counting needs perf_event_open permission on the
 * server (kernel mode needs perf_event_paranoid <= 1 or privileges); when
 * it is refused the figures are simply left out.
 */
static int insn_fd[2] = {-1, -1};

static int open_counter(long pid, int kernel)
{
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.type = PERF_TYPE_HARDWARE;
    a.config = PERF_COUNT_HW_INSTRUCTIONS;
    a.disabled = 1;
    a.exclude_hv = 1;
    a.exclude_user = kernel ? 1 : 0;
    a.exclude_kernel = kernel ? 0 : 1;
    return (int)syscall(SYS_perf_event_open, &a, (pid_t)pid, -1, -1, PERF_FLAG_FD_CLOEXEC);
}

static void insn_start(void)
{
    if (opt.server_pid <= 0)
        return;
    for (int k = 0; k < 2; k++) {
        insn_fd[k] = open_counter(opt.server_pid, k);
        if (insn_fd[k] >= 0)
            ioctl(insn_fd[k], PERF_EVENT_IOC_ENABLE, 0);
    }
}

/* @return the count of counter @p k since insn_start, or -1. */
static double insn_read(int k)
{
    uint64_t v;
    if (insn_fd[k] < 0 || read(insn_fd[k], &v, sizeof v) != (ssize_t)sizeof v)
        return -1;
    return (double)v;
}

/* ------------------------------------------------------------- payload */

static void make_pattern(void)
{
    if (opt.mode == M_LINES) {
        /* Whole lines, so the period keeps the framing: letters, then CRLF. */
        size_t k = (ECHO_PERIOD + opt.size - 1) / opt.size;
        period = opt.size * k;
    } else {
        period = ECHO_PERIOD;
    }
    pat = malloc(2 * period);
    if (pat == NULL)
        die("out of memory");
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < period; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        pat[i] = (unsigned char)('a' + x % 26);
        if (opt.mode == M_LINES) {
            size_t pos = i % opt.size;
            if (pos == opt.size - 2)
                pat[i] = '\r';
            else if (pos == opt.size - 1)
                pat[i] = '\n';
        }
    }
    memcpy(pat + period, pat, period);
}

static const unsigned char *pattern_at(uint64_t off)
{
    return pat + off % period;
}

/* ------------------------------------------------------------- sockets */

static void error_event(const char *what)
{
    errors++;
    if (first_error == NULL)
        first_error = what;
}

static void set_events(conn *c, uint32_t ev)
{
    if (ev == c->events)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e) < 0)
        die("epoll_ctl: %s", strerror(errno));
    c->events = ev;
}

static void close_conn(conn *c)
{
    if (c->ssl != NULL) {
        SSL_free(c->ssl);
        c->ssl = NULL;
        c->tls_more = 0;
        /* A failed connection leaves its reasons on the error queue, where
         * they would make the next SSL_get_error report a failure. */
        ERR_clear_error();
    }
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->state = C_FREE;
    c->events = 0;
}

static void fail_conn(conn *c, const char *what)
{
    error_event(what);
    if (c->state == C_READY)
        conns_ready--;
    conns_failed++;
    close_conn(c);
}

/* Start a non-blocking connect; the conn is watched for EPOLLOUT. */
static int start_connect(conn *c)
{
    int fd = socket(peer.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        conns_failed++;
        error_event("socket() failed");
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    c->state = C_CONNECTING;
    c->tx_target = c->tx_off = c->rx_off = 0;
    c->start_ns = now_ns();
    if (connect(fd, (struct sockaddr *)&peer, peer_len) < 0 && errno != EINPROGRESS) {
        close(fd);
        c->fd = -1;
        c->state = C_FREE;
        conns_failed++;
        error_event(errno == EADDRNOTAVAIL ? "connect: out of local ports" : "connect failed");
        return -1;
    }
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0)
        die("epoll_ctl: %s", strerror(errno));
    c->events = EPOLLOUT;
    return 0;
}

/* Remember what the first handshake negotiated. */
static void note_tls(SSL *ssl)
{
    if (tls_version[0] != '\0')
        return;
    snprintf(tls_version, sizeof tls_version, "%s", SSL_get_version(ssl));
    snprintf(tls_cipher, sizeof tls_cipher, "%s", SSL_get_cipher_name(ssl));
    int nid = SSL_get_negotiated_group(ssl);
    const char *g = nid > 0 ? OBJ_nid2sn(nid) : NULL;
    snprintf(tls_group, sizeof tls_group, "%s", g != NULL ? g : "unknown");
    /* The server's certificate key and the signature it made with it: what
     * the server's side of a full handshake costs depends on them. */
    X509 *x = SSL_get0_peer_certificate(ssl);
    EVP_PKEY *k = x != NULL ? X509_get0_pubkey(x) : NULL;
    if (k != NULL)
        snprintf(tls_cert, sizeof tls_cert, "%s-%d", EVP_PKEY_get0_type_name(k),
                 EVP_PKEY_get_bits(k));
    else
        snprintf(tls_cert, sizeof tls_cert, "%s", "unknown");
    int sig;
    const char *sn = SSL_get_peer_signature_type_nid(ssl, &sig) == 1 ? OBJ_nid2sn(sig) : NULL;
    snprintf(tls_sig, sizeof tls_sig, "%s", sn != NULL ? sn : "unknown");
}

/*
 * Take a connection that was C_CONNECTING or C_HANDSHAKE a step further.
 * @return 1 once it is open (the TLS handshake done, with --tls), 0 while
 * it waits (its epoll events set for what it waits for), -1 if it failed.
 */
static int connect_progress(conn *c)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
            fail_conn(c, "connect refused or failed");
            return -1;
        }
        if (!opt.tls) {
            c->state = C_OPEN;
            return 1;
        }
        c->ssl = SSL_new(tls_ctx);
        if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
            die("out of memory for a TLS connection");
        SSL_set_connect_state(c->ssl);
        c->state = C_HANDSHAKE;
    }
    int r = SSL_do_handshake(c->ssl);
    if (r == 1) {
        note_tls(c->ssl);
        c->state = C_OPEN;
        return 1;
    }
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        set_events(c, EPOLLIN);
        return 0;
    case SSL_ERROR_WANT_WRITE:
        set_events(c, EPOLLOUT);
        return 0;
    default:
        fail_conn(c, "TLS handshake failed");
        return -1;
    }
}

/* ------------------------------------------------------------- I/O */

/* What a connection whose read or write failed (not EAGAIN) died of. */
static const char *io_failure(const conn *c)
{
    return c->ssl != NULL ? "TLS failure: an alert, a bad record or a reset"
                          : "connection reset by the server";
}

/* An SSL call's result @p r <= 0 as recv/send report it: EAGAIN while it
 * waits for the socket, 0 for close_notify, -1 and ECONNRESET otherwise. */
static ssize_t tls_result(conn *c, int r)
{
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    default:
        ERR_clear_error();
        errno = ECONNRESET;
        return -1;
    }
}

/* send(2), or SSL_write with --tls: the bytes taken, or -1 and errno. With
 * partial writes SSL_write takes at most one record a call; after EAGAIN it
 * must be offered the same bytes again, which the callers do since they
 * resend from the first byte not taken. */
static ssize_t io_send(conn *c, const void *data, size_t len)
{
    if (c->ssl == NULL)
        return send(c->fd, data, len, MSG_NOSIGNAL);
    int w = SSL_write(c->ssl, data, len > INT_MAX ? INT_MAX : (int)len);
    return w > 0 ? w : tls_result(c, w);
}

/*
 * recv(2), or SSL_read with --tls: the bytes read, 0 at the end, or -1 and
 * errno. OpenSSL reads ahead, so records it already holds are invisible to
 * epoll: they are all taken here, without another read(2) once none is
 * left, and tls_more says when the buffer filled while some remained.
 */
static ssize_t io_recv(conn *c, void *buf, size_t len)
{
    if (c->ssl == NULL)
        return recv(c->fd, buf, len, 0);
    size_t n = 0;
    int r = 1;
    c->tls_more = 0;
    while (n < len && (n == 0 || SSL_has_pending(c->ssl))) {
        size_t want = len - n;
        r = SSL_read(c->ssl, (unsigned char *)buf + n, want > INT_MAX ? INT_MAX : (int)want);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    if (n > 0) {
        /* An error or close_notify behind the bytes shows on the next read. */
        c->tls_more = n == len && SSL_has_pending(c->ssl);
        if (r <= 0)
            ERR_clear_error();
        return (ssize_t)n;
    }
    return tls_result(c, r);
}

/* ------------------------------------------------------------- echo modes */

/* Write the stream up to tx_target; watch EPOLLOUT only while the kernel refuses. */
static void echo_flush(conn *c)
{
    while (c->tx_off < c->tx_target) {
        uint64_t left = c->tx_target - c->tx_off;
        size_t len = left < period ? (size_t)left : period;
        ssize_t w = io_send(c, pattern_at(c->tx_off), len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            fail_conn(c, "send failed");
            return;
        }
        c->tx_off += (uint64_t)w;
    }
    set_events(c, c->tx_off < c->tx_target ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

/* Queue message number m (its bytes are [m*size, (m+1)*size) of the stream). */
static void echo_queue(conn *c, uint64_t m, uint64_t t)
{
    c->sent_ns[m % (uint64_t)opt.depth] = t;
    c->tx_target += opt.size;
}

static void echo_start(conn *c)
{
    uint64_t t = now_ns();
    for (int i = 0; i < opt.depth; i++)
        echo_queue(c, (uint64_t)i, t);
    echo_flush(c);
}

static void echo_readable(conn *c)
{
    ssize_t n = io_recv(c, rbuf, READ_SIZE);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        fail_conn(c, io_failure(c));
        return;
    }
    if (n == 0) {
        fail_conn(c, "the server closed the connection");
        return;
    }
    uint64_t t = now_ns();
    if (c->rx_off + (uint64_t)n > c->tx_off) {
        fail_conn(c, "the server sent more than it was sent");
        return;
    }
    if (memcmp(rbuf, pattern_at(c->rx_off), (size_t)n) != 0) {
        fail_conn(c, "echoed bytes differ from the bytes sent");
        return;
    }
    uint64_t before = c->rx_off / opt.size;
    c->rx_off += (uint64_t)n;
    uint64_t after = c->rx_off / opt.size;
    if (after == before)
        return;
    for (uint64_t m = before; m < after; m++) {
        if (measuring) {
            hist_add(&hist, t - c->sent_ns[m % (uint64_t)opt.depth]);
            msgs++;
            payload_bytes += opt.size;
        }
        if (!stopping)
            echo_queue(c, m + (uint64_t)opt.depth, t);
    }
    echo_flush(c);
}

/* ------------------------------------------------------------- amp */

static void put_u16(unsigned char *p, size_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static size_t put_kv(unsigned char *p, const char *k, const void *v, size_t vlen)
{
    size_t klen = strlen(k);
    put_u16(p, klen);
    memcpy(p + 2, k, klen);
    put_u16(p + 2 + klen, vlen);
    memcpy(p + 4 + klen, v, vlen);
    return 4 + klen + vlen;
}

/* The value sent with call @p ask, so that its echo can be checked. */
static const unsigned char *amp_value(uint64_t ask)
{
    return pattern_at(ask * 7919u);
}

static size_t amp_call_size(void)
{
    return (4 + 8 + 4) + (4 + 4 + 16) + (4 + 5 + opt.size) + 2;
}

static void amp_queue_call(conn *c, amp_slot *s, uint64_t t)
{
    char ask[24];
    uint64_t id = c->next_ask++;
    int alen = snprintf(ask, sizeof ask, "%" PRIx64, id);
    unsigned char *p = c->txbuf + c->tx_len;
    p += put_kv(p, "_command", "Echo", 4);
    p += put_kv(p, "_ask", ask, (size_t)alen);
    p += put_kv(p, "value", amp_value(id), opt.size);
    p[0] = p[1] = 0;
    c->tx_len = (size_t)(p + 2 - c->txbuf);
    s->ask = id;
    s->sent_ns = t;
    s->used = 1;
}

static void amp_flush(conn *c)
{
    while (c->tx_pos < c->tx_len) {
        ssize_t w = io_send(c, c->txbuf + c->tx_pos, c->tx_len - c->tx_pos);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            fail_conn(c, "send failed");
            return;
        }
        c->tx_pos += (size_t)w;
    }
    if (c->tx_pos == c->tx_len)
        c->tx_pos = c->tx_len = 0;
    set_events(c, c->tx_pos < c->tx_len ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

/* Fill every free slot with a new call, as long as the room in txbuf allows. */
static void amp_refill(conn *c, uint64_t t)
{
    if (stopping)
        return;
    if (c->tx_pos > 0 && c->tx_pos < c->tx_len) {
        memmove(c->txbuf, c->txbuf + c->tx_pos, c->tx_len - c->tx_pos);
        c->tx_len -= c->tx_pos;
        c->tx_pos = 0;
    }
    for (int i = 0; i < opt.depth; i++)
        if (!c->slots[i].used && c->tx_cap - c->tx_len >= amp_call_size())
            amp_queue_call(c, &c->slots[i], t);
}

static void amp_start(conn *c)
{
    amp_refill(c, now_ns());
    amp_flush(c);
}

static int parse_hex(const unsigned char *p, size_t len, uint64_t *out)
{
    if (len == 0 || len > 16)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = p[i];
        unsigned d;
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
            d = ch - 'A' + 10;
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

static int key_is(const unsigned char *k, size_t klen, const char *want)
{
    return klen == strlen(want) && memcmp(k, want, klen) == 0;
}

/* The fields of an answer box that matter here; other keys are skipped. */
typedef struct {
    const unsigned char *answer, *error, *value;
    size_t answer_len, error_len, value_len;
} amp_box;

/*
 * Take one complete box from @p buf. Keys are 1..255 bytes and values at most
 * 65535, so a box is bounded by what the caller's buffer can hold.
 * @return the box's length, 0 when more bytes are needed, -1 if malformed.
 */
static long amp_parse_box(const unsigned char *buf, size_t len, amp_box *box)
{
    memset(box, 0, sizeof *box);
    size_t pos = 0;
    for (;;) {
        if (len - pos < 2)
            return 0;
        size_t klen = (size_t)buf[pos] << 8 | buf[pos + 1];
        pos += 2;
        if (klen == 0)
            return (long)pos;
        if (klen > AMP_MAX_KEY)
            return -1;
        if (len - pos < klen + 2)
            return 0;
        const unsigned char *key = buf + pos;
        pos += klen;
        size_t vlen = (size_t)buf[pos] << 8 | buf[pos + 1];
        pos += 2;
        if (len - pos < vlen)
            return 0;
        const unsigned char *val = buf + pos;
        pos += vlen;
        if (key_is(key, klen, "_answer")) {
            box->answer = val;
            box->answer_len = vlen;
        } else if (key_is(key, klen, "_error")) {
            box->error = val;
            box->error_len = vlen;
        } else if (key_is(key, klen, "value")) {
            box->value = val;
            box->value_len = vlen;
        }
    }
}

static amp_slot *amp_find(conn *c, const unsigned char *tag, size_t len)
{
    uint64_t ask;
    if (parse_hex(tag, len, &ask) < 0)
        return NULL;
    for (int i = 0; i < opt.depth; i++)
        if (c->slots[i].used && c->slots[i].ask == ask)
            return &c->slots[i];
    return NULL;
}

static int amp_handle_box(conn *c, const amp_box *b, uint64_t t)
{
    if (b->error != NULL) {
        amp_slot *s = amp_find(c, b->error, b->error_len);
        error_event("the server answered a call with _error");
        if (s == NULL)
            return -1;
        s->used = 0;
        return 0;
    }
    if (b->answer == NULL)
        return -1; /* a box that is neither answer nor error: not expected here */
    amp_slot *s = amp_find(c, b->answer, b->answer_len);
    if (s == NULL)
        return -1;
    if (b->value == NULL || b->value_len != opt.size ||
        memcmp(b->value, amp_value(s->ask), opt.size) != 0) {
        error_event("an Echo answer carried a different value");
    } else if (measuring) {
        hist_add(&hist, t - s->sent_ns);
        msgs++;
        payload_bytes += opt.size;
    }
    s->used = 0;
    return 0;
}

static void amp_readable(conn *c)
{
    if (c->rx_len == c->rx_cap) {
        fail_conn(c, "an AMP box larger than the parser's bound");
        return;
    }
    ssize_t n = io_recv(c, c->rxbuf + c->rx_len, c->rx_cap - c->rx_len);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        fail_conn(c, io_failure(c));
        return;
    }
    if (n == 0) {
        fail_conn(c, "the server closed the connection");
        return;
    }
    uint64_t t = now_ns();
    c->rx_len += (size_t)n;
    size_t pos = 0;
    for (;;) {
        amp_box box;
        long used = amp_parse_box(c->rxbuf + pos, c->rx_len - pos, &box);
        if (used == 0)
            break;
        if (used < 0 || amp_handle_box(c, &box, t) < 0) {
            fail_conn(c, "malformed or unexpected AMP box");
            return;
        }
        pos += (size_t)used;
    }
    memmove(c->rxbuf, c->rxbuf + pos, c->rx_len - pos);
    c->rx_len -= pos;
    amp_refill(c, t);
    amp_flush(c);
}

/* ------------------------------------------------------------- connect/idle */

/* Send the one small echo of connect and idle modes. */
static void probe_send(conn *c)
{
    c->tx_target = opt.size;
    echo_flush(c);
}

/* @return 1 once the whole probe came back. */
static int probe_readable(conn *c)
{
    ssize_t n = io_recv(c, rbuf, READ_SIZE);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        fail_conn(c, io_failure(c));
        return 0;
    }
    if (n == 0) {
        fail_conn(c, "the server closed the connection");
        return 0;
    }
    if (c->rx_off + (uint64_t)n > c->tx_off || memcmp(rbuf, pattern_at(c->rx_off), (size_t)n)) {
        fail_conn(c, "echoed bytes differ from the bytes sent");
        return 0;
    }
    c->rx_off += (uint64_t)n;
    return c->rx_off == opt.size;
}

/* ------------------------------------------------------------- driver */

static void setup_peer(void)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai;
    int rc = getaddrinfo(opt.host, opt.port, &hints, &ai);
    if (rc != 0)
        die("bad address %s port %s: %s", opt.host, opt.port, gai_strerror(rc));
    memcpy(&peer, ai->ai_addr, ai->ai_addrlen);
    peer_len = ai->ai_addrlen;
    freeaddrinfo(ai);
}

/* Open every connection of the steady modes and wait until all are up. */
static void open_all(void)
{
    for (int i = 0; i < opt.conns; i++)
        start_connect(&conns[i]);
    int pending = 0;
    for (int i = 0; i < opt.conns; i++)
        pending += conns[i].state == C_CONNECTING;
    uint64_t deadline = now_ns() + 10000000000ull;
    struct epoll_event evs[MAX_EVENTS];
    while (pending > 0 && now_ns() < deadline) {
        int n = epoll_wait(epfd, evs, MAX_EVENTS, 100);
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c->state != C_CONNECTING && c->state != C_HANDSHAKE)
                continue;
            int r = connect_progress(c);
            if (r != 0)
                pending--;
            if (r == 1)
                set_events(c, EPOLLIN);
        }
    }
    int up = 0;
    for (int i = 0; i < opt.conns; i++)
        up += conns[i].state == C_OPEN;
    if (up == 0)
        die("no connection to %s port %s could be opened (%s)", opt.host, opt.port,
            first_error != NULL ? first_error : "timed out");
}

static void on_event(conn *c, uint32_t ev)
{
    if (c->state == C_FREE)
        return; /* closed earlier in this batch */
    if (c->state == C_CONNECTING || c->state == C_HANDSHAKE) {
        if (connect_progress(c) < 1)
            return;
        if (opt.mode == M_CONNECT || opt.mode == M_IDLE)
            probe_send(c);
        else
            set_events(c, EPOLLIN);
        return;
    }
    /* With --tls a read stops when the buffer is full; OpenSSL may hold
     * more records, which epoll will not report: read again while it does. */
    uint32_t readable = ev & (EPOLLIN | EPOLLERR | EPOLLHUP);
    switch (opt.mode) {
    case M_PINGPONG:
    case M_STREAM:
    case M_LINES:
        if (readable)
            do
                echo_readable(c);
            while (c->state != C_FREE && c->tls_more);
        if (c->state != C_FREE && (ev & EPOLLOUT))
            echo_flush(c);
        break;
    case M_AMP:
        if (readable)
            do
                amp_readable(c);
            while (c->state != C_FREE && c->tls_more);
        if (c->state != C_FREE && (ev & EPOLLOUT))
            amp_flush(c);
        break;
    case M_CONNECT:
    case M_IDLE:
        if (c->state == C_READY) { /* idle: held connections must stay quiet */
            ssize_t n;
            do
                n = io_recv(c, rbuf, READ_SIZE);
            while (n > 0 && c->tls_more);
            if (n > 0)
                error_event("unexpected bytes on an idle connection");
            else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                fail_conn(c, "the server closed an idle connection");
            return;
        }
        if ((ev & EPOLLOUT) && c->tx_off < c->tx_target)
            echo_flush(c);
        int done = 0;
        if (c->state != C_FREE && readable)
            do
                done = probe_readable(c);
            while (!done && c->state != C_FREE && c->tls_more);
        if (done) {
            if (opt.mode == M_CONNECT) {
                if (measuring) {
                    hist_add(&hist, now_ns() - c->start_ns);
                    msgs++;
                    payload_bytes += opt.size;
                }
                /* A TLS connection ends with close_notify (one try: the
                 * socket has room, as nothing else is written on it). */
                if (c->ssl != NULL)
                    SSL_shutdown(c->ssl);
                close_conn(c);
            } else {
                c->state = C_READY;
                conns_ready++;
            }
        }
        break;
    }
}

/* --tls: what the first handshake negotiated, as result fields. */
static void print_tls(void)
{
    if (opt.tls && tls_version[0] != '\0')
        printf(" tls_version=%s tls_cipher=%s tls_group=%s tls_cert=%s tls_sig=%s", tls_version,
               tls_cipher, tls_group, tls_cert, tls_sig);
}

static void print_result(double elapsed, cpu_sample c0, cpu_sample c1, double insn_u,
                         double insn_k)
{
    double cpu = c0.server >= 0 && c1.server >= 0 ? c1.server - c0.server : -1;
    double rate = elapsed > 0 ? (double)msgs / elapsed : 0;
    printf("result mode=%s conns=%d size=%zu depth=%d duration_s=%.3f warmup_s=%.3f msgs=%" PRIu64
           " msgs_per_s=%.1f mb_per_s=%.3f lat_p50_us=%.1f lat_p99_us=%.1f lat_p999_us=%.1f"
           " errors=%" PRIu64,
           mode_names[opt.mode], opt.conns, opt.size, opt.depth, elapsed, opt.warmup, msgs, rate,
           elapsed > 0 ? (double)payload_bytes / elapsed / 1e6 : 0,
           hist_quantile(&hist, 0.50) / 1e3, hist_quantile(&hist, 0.99) / 1e3,
           hist_quantile(&hist, 0.999) / 1e3, errors);
    if (cpu >= 0)
        printf(" server_cpu_s=%.3f server_cpu_us_per_msg=%.3f", cpu,
               msgs > 0 ? cpu * 1e6 / (double)msgs : 0);
    if (insn_u >= 0 && msgs > 0)
        printf(" server_insn_user_per_msg=%.0f", insn_u / (double)msgs);
    if (insn_k >= 0 && msgs > 0)
        printf(" server_insn_kernel_per_msg=%.0f", insn_k / (double)msgs);
    /* Utilisation in CPUs: which side saturated, and how busy the rest was. */
    if (elapsed > 0 && c0.self >= 0 && c1.self >= 0 && c0.machine.busy >= 0 &&
        c1.machine.busy >= 0) {
        double self = c1.self - c0.self;
        double other = c1.machine.busy - c0.machine.busy - self - (cpu >= 0 ? cpu : 0);
        if (cpu >= 0)
            printf(" server_util=%.2f", cpu / elapsed);
        printf(" load_util=%.2f other_util=%.2f", self / elapsed,
               other > 0 ? other / elapsed : 0);
    }
    if (elapsed > 0 && c0.machine.steal >= 0 && c1.machine.steal >= 0)
        printf(" steal_util=%.2f", (c1.machine.steal - c0.machine.steal) / elapsed);
    print_tls();
    if (first_error != NULL)
        printf(" first_error=\"%s\"", first_error);
    putchar('\n');
    fflush(stdout);
}

/* pingpong, stream, lines, amp, connect: warm up, then measure. */
static void run_timed(void)
{
    struct epoll_event evs[MAX_EVENTS];
    if (opt.mode != M_CONNECT) {
        open_all();
        for (int i = 0; i < opt.conns; i++) {
            if (conns[i].state != C_OPEN)
                continue;
            if (opt.mode == M_AMP)
                amp_start(&conns[i]);
            else
                echo_start(&conns[i]);
        }
    }
    uint64_t t0 = now_ns();
    uint64_t measure_at = t0 + (uint64_t)(opt.warmup * 1e9);
    uint64_t end_at = measure_at + (uint64_t)(opt.duration * 1e9);
    /* --min-msgs may stretch the interval, for short runs on a busy machine. */
    uint64_t hard_end = end_at + (opt.min_msgs > 0 ? 10000000000ull : 0);
    uint64_t measured_from = 0;
    cpu_sample cpu0 = {-1, -1, {-1, -1}};
    if (opt.warmup <= 0) {
        measuring = 1;
        measured_from = t0;
        cpu0 = sample_cpu();
        insn_start();
    }
    for (;;) {
        uint64_t t = now_ns();
        if (!measuring && t >= measure_at) {
            measuring = 1;
            measured_from = t;
            cpu0 = sample_cpu();
            insn_start();
        }
        if (t >= end_at && (msgs >= (uint64_t)opt.min_msgs || t >= hard_end))
            break;
        int retry_soon = 0;
        if (opt.mode == M_CONNECT) {
            for (int i = 0; i < opt.conns; i++)
                if (conns[i].state == C_FREE && start_connect(&conns[i]) < 0)
                    retry_soon = 1; /* e.g. no local port free yet: poll, don't spin */
        } else {
            int alive = 0;
            for (int i = 0; i < opt.conns && !alive; i++)
                alive = conns[i].state != C_FREE;
            if (!alive)
                break; /* every connection failed; report what was measured */
        }
        uint64_t next = measuring ? end_at : measure_at;
        int timeout = retry_soon ? 1 : next > t ? (int)((next - t) / 1000000u) + 1 : 10;
        int n = epoll_wait(epfd, evs, MAX_EVENTS, timeout);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
    }
    uint64_t t_end = now_ns();
    cpu_sample cpu1 = sample_cpu();
    double insn_u = insn_read(0), insn_k = insn_read(1);
    stopping = 1;
    if (!measuring) {
        measured_from = t_end;
        cpu0 = cpu1;
    }
    print_result((double)(t_end - measured_from) / 1e9, cpu0, cpu1, insn_u, insn_k);
}

/* idle: open and verify every connection, report, hold. */
static void run_idle(void)
{
    struct epoll_event evs[MAX_EVENTS];
    int started = 0;
    uint64_t t0 = now_ns();
    uint64_t deadline = t0 + (uint64_t)(opt.duration * 1e9);
    while (conns_ready + conns_failed < opt.conns && now_ns() < deadline) {
        /* A bounded number of connects in flight keeps the listen backlog from overflowing. */
        while (started < opt.conns && started - conns_ready - conns_failed < opt.depth)
            start_connect(&conns[started++]);
        int n = epoll_wait(epfd, evs, MAX_EVENTS, 100);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
    }
    int ready = conns_ready;
    double open_s = (double)(now_ns() - t0) / 1e9;
    printf("ready conns=%d open_s=%.3f errors=%" PRIu64 "\n", ready, open_s, errors);
    fflush(stdout);

    uint64_t hold_end = now_ns() + (uint64_t)(opt.hold * 1e9);
    for (uint64_t t = now_ns(); t < hold_end; t = now_ns()) {
        int n = epoll_wait(epfd, evs, MAX_EVENTS, (int)((hold_end - t) / 1000000u) + 1);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
    }
    int held = conns_ready;
    printf("result mode=idle conns=%d size=%zu depth=%d open_s=%.3f held=%d hold_s=%.3f"
           " conns_per_s=%.1f errors=%" PRIu64,
           opt.conns, opt.size, opt.depth, open_s, held, opt.hold,
           open_s > 0 ? ready / open_s : 0, errors);
    print_tls();
    if (first_error != NULL)
        printf(" first_error=\"%s\"", first_error);
    putchar('\n');
    fflush(stdout);
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: loadgen --mode MODE --port PORT [options]\n"
            "  --mode M        pingpong, stream, lines, connect, idle or amp\n"
            "  --host ADDR     numeric server address (default 127.0.0.1)\n"
            "  --port PORT     server port\n"
            "  --conns C       connections (connect: connects in flight; idle: to hold)\n"
            "  --size S        message size in bytes (lines: including CRLF)\n"
            "  --depth D       messages in flight per connection (idle: connects in flight)\n"
            "  --duration S    measured seconds (idle: the longest time to open them all)\n"
            "  --warmup S      seconds run before measuring (default 1)\n"
            "  --hold S        idle: seconds to hold the connections once ready\n"
            "  --server-pid P  sample the server's CPU time over the measured interval\n"
            "  --min-msgs N    measure past --duration until N messages are done (at most\n"
            "                  10 s more), so that very short runs still yield a figure\n"
            "  --tls           speak TLS 1.2/1.3 (the server's certificate is not verified,\n"
            "                  no session is resumed: connect mode counts full handshakes)\n");
}

static double parse_num(const char *name, const char *s, double min, double max)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !(v >= min && v <= max))
        die("%s needs a number from %g to %g, not '%s'", name, min, max, s);
    return v;
}

static void parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"mode", required_argument, NULL, 'm'},     {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},     {"conns", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 's'},     {"depth", required_argument, NULL, 'd'},
        {"duration", required_argument, NULL, 't'}, {"warmup", required_argument, NULL, 'w'},
        {"hold", required_argument, NULL, 'h'},     {"server-pid", required_argument, NULL, 'P'},
        {"min-msgs", required_argument, NULL, 'n'}, {"tls", no_argument, NULL, 'T'},
        {"help", no_argument, NULL, '?' + 256},     {NULL, 0, NULL, 0},
    };
    int ch, size_given = 0, depth_given = 0;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm': {
            size_t i;
            for (i = 0; i < sizeof mode_names / sizeof *mode_names; i++)
                if (strcmp(optarg, mode_names[i]) == 0)
                    break;
            if (i == sizeof mode_names / sizeof *mode_names)
                die("unknown mode '%s'; see --help", optarg);
            opt.mode = (enum mode)i;
            break;
        }
        case 'H':
            opt.host = optarg;
            break;
        case 'p':
            opt.port = optarg;
            break;
        case 'c':
            opt.conns = (int)parse_num("--conns", optarg, 1, 1000000);
            break;
        case 's':
            opt.size = (size_t)parse_num("--size", optarg, 1, 1 << 20);
            size_given = 1;
            break;
        case 'd':
            opt.depth = (int)parse_num("--depth", optarg, 1, 4096);
            depth_given = 1;
            break;
        case 't':
            opt.duration = parse_num("--duration", optarg, 0.001, 3600);
            break;
        case 'w':
            opt.warmup = parse_num("--warmup", optarg, 0, 3600);
            break;
        case 'h':
            opt.hold = parse_num("--hold", optarg, 0, 3600);
            break;
        case 'P':
            opt.server_pid = (long)parse_num("--server-pid", optarg, 1, 1e9);
            break;
        case 'n':
            opt.min_msgs = (long)parse_num("--min-msgs", optarg, 0, 1e12);
            break;
        case 'T':
            opt.tls = 1;
            break;
        case '?' + 256:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc)
        die("unexpected argument '%s'; see --help", argv[optind]);
    if (opt.port == NULL)
        die("no --port given; see --help");
    /* stream: 16 KiB chunks with up to 256 KiB unanswered per connection. */
    if (opt.mode == M_STREAM && !size_given)
        opt.size = 16384;
    if (opt.mode == M_STREAM && !depth_given)
        opt.depth = 16;
    if (opt.mode == M_IDLE && !depth_given)
        opt.depth = 64;
    if (opt.mode == M_IDLE && !size_given)
        opt.size = 16;
    if (opt.mode == M_LINES && opt.size < 2)
        die("lines: --size counts the CRLF, so it must be at least 2");
    if (opt.mode == M_AMP && opt.size > AMP_MAX_VALUE)
        die("amp: --size must be at most %d, the largest AMP value", AMP_MAX_VALUE);
    if ((opt.mode == M_CONNECT || opt.mode == M_IDLE) && opt.size > READ_SIZE)
        die("%s: --size must be at most %d", mode_names[opt.mode], READ_SIZE);
    if (opt.mode != M_AMP && opt.size * (size_t)opt.depth > 64u << 20)
        die("--size times --depth must stay under 64 MiB");
}

/*
 * The client side of --tls. The benchmark's certificate is self-signed and
 * only the server's cost is under study, so the peer is not verified; the
 * session cache is off and no session is ever set, so every handshake is a
 * full one (TLS 1.3 with OpenSSL's default X25519 or P-256 key exchange).
 * Reads go ahead up to 64 KiB, the read size of the plain modes. Idle mode
 * releases the record buffers of quiet connections, as it holds thousands.
 */
static SSL_CTX *make_tls_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        die("cannot create a TLS context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (SSL_CTX_set1_groups_list(ctx, "X25519:P-256") != 1)
        die("OpenSSL knows neither X25519 nor P-256");
    long mode = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;
    if (opt.mode == M_IDLE)
        mode |= SSL_MODE_RELEASE_BUFFERS;
    SSL_CTX_set_mode(ctx, mode);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, READ_SIZE);
    return ctx;
}

/* Raise the descriptor limit as far as allowed: idle mode holds thousands. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (rlim_t)opt.conns + 16 > rl.rlim_cur)
        die("%d connections need more descriptors than RLIMIT_NOFILE (%llu) allows",
            opt.conns, (unsigned long long)rl.rlim_cur);
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    raise_nofile();
    setup_peer();
    make_pattern();
    if (opt.tls)
        tls_ctx = make_tls_ctx();
    rbuf = malloc(READ_SIZE);
    conns = calloc((size_t)opt.conns, sizeof *conns);
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (rbuf == NULL || conns == NULL || epfd < 0)
        die("out of memory or descriptors");
    for (int i = 0; i < opt.conns; i++) {
        conn *c = &conns[i];
        c->fd = -1;
        if (opt.mode == M_PINGPONG || opt.mode == M_STREAM || opt.mode == M_LINES) {
            c->sent_ns = calloc((size_t)opt.depth, sizeof *c->sent_ns);
            if (c->sent_ns == NULL)
                die("out of memory");
        } else if (opt.mode == M_AMP) {
            /* Room for every call in flight; answers are parsed in place, and
             * the bound is a few of the largest boxes the server may send. */
            c->tx_cap = amp_call_size() * (size_t)opt.depth;
            c->rx_cap = 4 * (2 + AMP_MAX_KEY + 2 + AMP_MAX_VALUE) + 2;
            c->txbuf = malloc(c->tx_cap);
            c->rxbuf = malloc(c->rx_cap);
            c->slots = calloc((size_t)opt.depth, sizeof *c->slots);
            if (c->txbuf == NULL || c->rxbuf == NULL || c->slots == NULL)
                die("out of memory");
        }
    }
    if (opt.mode == M_IDLE)
        run_idle();
    else
        run_timed();
    return errors > 0 ? 1 : 0;
}
