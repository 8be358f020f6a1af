/* SPDX-License-Identifier: MIT */
/*
 * twine-call: call one AMP command from the command line and print the
 * answer, against any AMP server (twine's reactord --protocol amp, or
 * Twisted's). It does not know the command's types, so every argument goes
 * out as the bytes typed (AMP is untyped on the wire: "1" is what an Integer
 * 1 looks like), and the answer comes back as raw key=value lines.
 *
 * Exit codes follow sysexits.h: 0 answered; 1 the server answered with an
 * error; 64 usage; 69 cannot connect, or the connection ended before the
 * answer; 75 timed out; 76 the server broke the protocol; 71 a local system
 * error. See twine-call(1).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <twine.h>

#include "../fd_internal.h"

#define EXIT_REMOTE_ERROR 1
#define MAX_SEGMENTS 16

static const char *progname = "twine-call";

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: %s [options] ENDPOINT COMMAND [KEY=VALUE...]\n"
            "Call an AMP command and print the answer, one KEY=VALUE a line.\n"
            "\n"
            "ENDPOINT is tcp:HOST:PORT or unix:PATH (Twisted's client strports; a\n"
            "backslash escapes ':' and '=', as in tcp:\\:\\:1:9000).\n"
            "Values are sent as the bytes given.\n"
            "\n"
            "  -t, --timeout SECONDS   give up after SECONDS (default 30)\n"
            "  -h, --help              show this help and exit\n"
            "  -V, --version           show the version and exit\n"
            "\n"
            "Exit status: 0 answered, 1 the server answered with an error, 64 usage,\n"
            "69 cannot connect or the connection was lost, 75 timed out,\n"
            "76 the server broke the protocol.\n"
            "\n"
            "Example: %s tcp:127.0.0.1:9000 Sum a=1 b=2\n",
            progname, progname);
}

static void die(int code, const char *fmt, ...) TW_PRINTF(2, 3) __attribute__((noreturn));

static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", progname);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ endpoints */

typedef struct {
    char *text;  /* unescaped */
    char *value; /* after the first unescaped '=', or NULL for a positional one */
} segment;

typedef struct {
    int is_unix;
    char *host, *port, *path;
    double timeout; /* < 0: not given */
} endpoint;

/* Split Twisted-style: ':' separates, '=' names, '\' escapes the next byte. */
static size_t split_segments(const char *s, segment *segs, char *storage)
{
    size_t n = 0;
    char *out = storage;
    segs[0].text = out;
    segs[0].value = NULL;
    for (;; s++) {
        if (*s == '\\' && s[1] != '\0') {
            *out++ = *++s;
        } else if (*s == '=' && segs[n].value == NULL) {
            *out++ = '\0';
            segs[n].value = out;
        } else if (*s == ':' || *s == '\0') {
            *out++ = '\0';
            n++;
            if (*s == '\0' || n == MAX_SEGMENTS)
                break;
            segs[n].text = out;
            segs[n].value = NULL;
        } else {
            *out++ = *s;
        }
    }
    if (*s != '\0')
        die(EX_USAGE, "endpoint '%s' has too many ':'-separated segments", s);
    return n;
}

static int same_word(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

static double parse_seconds(const char *what, const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || errno != 0 || !(v > 0) || v > 1e9)
        die(EX_USAGE, "%s needs a positive number of seconds, not '%s'", what, s);
    return v;
}

static void parse_endpoint(const char *spec, endpoint *ep, char *storage)
{
    segment segs[MAX_SEGMENTS];
    size_t n = split_segments(spec, segs, storage);
    memset(ep, 0, sizeof *ep);
    ep->timeout = -1;
    if (segs[0].value != NULL || n < 2)
        die(EX_USAGE, "bad endpoint '%s': use tcp:HOST:PORT or unix:PATH", spec);
    if (same_word(segs[0].text, "tcp")) {
        size_t positional = 0;
        for (size_t i = 1; i < n; i++) {
            const char *k = segs[i].text, *v = segs[i].value;
            if (v == NULL) {
                if (positional == 0)
                    ep->host = segs[i].text;
                else if (positional == 1)
                    ep->port = segs[i].text;
                else
                    die(EX_USAGE, "bad endpoint '%s': unexpected segment '%s'", spec, k);
                positional++;
            } else if (same_word(k, "host")) {
                ep->host = segs[i].value;
            } else if (same_word(k, "port")) {
                ep->port = segs[i].value;
            } else if (same_word(k, "timeout")) {
                ep->timeout = parse_seconds("the endpoint's timeout", v);
            } else {
                die(EX_USAGE, "bad endpoint '%s': unknown parameter '%s' (tcp takes host, "
                              "port and timeout)",
                    spec, k);
            }
        }
        if (ep->host == NULL || ep->host[0] == '\0' || ep->port == NULL)
            die(EX_USAGE, "bad endpoint '%s': tcp needs a host and a port, as tcp:HOST:PORT",
                spec);
        char *end;
        long port = strtol(ep->port, &end, 10);
        if (ep->port[0] == '\0' || *end != '\0' || port < 1 || port > 65535)
            die(EX_USAGE, "bad endpoint '%s': the port must be from 1 to 65535, not '%s'", spec,
                ep->port);
    } else if (same_word(segs[0].text, "unix")) {
        ep->is_unix = 1;
        for (size_t i = 1; i < n; i++) {
            const char *k = segs[i].text, *v = segs[i].value;
            if (v == NULL && ep->path == NULL)
                ep->path = segs[i].text;
            else if (v != NULL && same_word(k, "path"))
                ep->path = segs[i].value;
            else if (v != NULL && same_word(k, "timeout"))
                ep->timeout = parse_seconds("the endpoint's timeout", v);
            else
                die(EX_USAGE, "bad endpoint '%s': unexpected segment '%s'", spec, k);
        }
        if (ep->path == NULL || ep->path[0] == '\0')
            die(EX_USAGE, "bad endpoint '%s': unix needs a path, as unix:PATH", spec);
    } else {
        die(EX_USAGE, "bad endpoint '%s': unknown type '%s' (use tcp or unix)", spec,
            segs[0].text);
    }
}

/* Connect @p fd to @p sa within @p deadline. @return 0 or a negated errno. */
static int connect_within(int fd, const struct sockaddr *sa, socklen_t len, double deadline)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    if (connect(fd, sa, len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EAGAIN)
        return -errno;
    for (;;) {
        double left = deadline - now_seconds();
        if (left <= 0)
            return -ETIMEDOUT;
        struct pollfd pfd = {fd, POLLOUT, 0};
        int rc = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -errno;
        if (rc == 0)
            continue;
        int err = 0;
        socklen_t elen = sizeof err;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
            return -errno;
        return -err;
    }
}

/* @return a connected socket; exits with a sentence when that fails. */
static int open_endpoint(const endpoint *ep, const char *spec, double deadline)
{
    if (ep->is_unix) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        if (strlen(ep->path) >= sizeof sun.sun_path)
            die(EX_USAGE, "bad endpoint '%s': the path is longer than a socket path may be",
                spec);
        strcpy(sun.sun_path, ep->path);
        int fd = tw__socket(AF_UNIX, SOCK_STREAM, 0, O_CLOEXEC);
        if (fd < 0)
            die(EX_OSERR, "cannot create a socket: %s", strerror(errno));
        int rc = connect_within(fd, (struct sockaddr *)&sun, sizeof sun, deadline);
        if (rc < 0) {
            close(fd);
            die(rc == -ETIMEDOUT ? EX_TEMPFAIL : EX_UNAVAILABLE, "cannot connect to %s: %s",
                ep->path, strerror(-rc));
        }
        return fd;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int gai = getaddrinfo(ep->host, ep->port, &hints, &res);
    if (gai != 0)
        die(EX_UNAVAILABLE, "cannot resolve '%s': %s", ep->host, gai_strerror(gai));
    int rc = -EHOSTUNREACH;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        int fd = tw__socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol, O_CLOEXEC);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        rc = connect_within(fd, ai->ai_addr, ai->ai_addrlen, deadline);
        if (rc == 0) {
            freeaddrinfo(res);
            return fd;
        }
        close(fd);
        if (rc == -ETIMEDOUT)
            break;
    }
    freeaddrinfo(res);
    die(rc == -ETIMEDOUT ? EX_TEMPFAIL : EX_UNAVAILABLE, "cannot connect to %s port %s: %s",
        ep->host, ep->port, strerror(-rc));
}

/* ------------------------------------------------------------ the call */

typedef struct {
    tw_reactor *reactor;
    const char *command;
    const char *where;
    tw_amp_box *args;
    tw_deferred *d;
    tw_amp *amp;
    int exit_code;
    int finished;
} state;

static void finish(state *st, int code)
{
    if (st->finished)
        return;
    st->finished = 1;
    st->exit_code = code;
    tw_amp_lose_connection(st->amp);
    tw_reactor_stop(st->reactor);
}

static void answered(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    state *st = arg;
    const tw_amp_box *box = tw_result_value(res);
    for (size_t i = 0; i < tw_amp_box_count(box); i++) {
        const char *k, *v;
        size_t kl, vl;
        tw_amp_box_entry(box, i, &k, &kl, &v, &vl);
        fwrite(k, 1, kl, stdout);
        fputc('=', stdout);
        fwrite(v, 1, vl, stdout);
        fputc('\n', stdout);
    }
    int code = EX_OK;
    if (fflush(stdout) != 0) {
        fprintf(stderr, "%s: cannot write the answer: %s\n", progname, strerror(errno));
        code = EX_IOERR;
    }
    finish(st, code);
}

static void failed(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    state *st = arg;
    tw_failure *f = tw_result_take_failure(res);
    if (st->finished) {
        /* The timeout already gave up on the call and said so. */
        tw_failure_unref(f);
        return;
    }
    const char *code, *desc;
    char text[1024];
    tw_failure_format(f, text, sizeof text);
    int exit_code;
    if (tw_amp_error_info(f, &code, &desc) == 0) {
        fprintf(stderr, "%s: %s failed: %s: %s\n", progname, st->command, code, desc);
        exit_code = EXIT_REMOTE_ERROR;
    } else if (tw_failure_check(f, TW_ECONNLOST)) {
        fprintf(stderr, "%s: %s: %s\n", progname, st->where, text);
        exit_code = EX_UNAVAILABLE;
    } else {
        fprintf(stderr, "%s: calling %s on %s failed: %s\n", progname, st->command, st->where,
                text);
        exit_code = EX_OSERR;
    }
    tw_failure_unref(f);
    finish(st, exit_code);
}

static void connected(tw_amp *amp, void *arg)
{
    state *st = arg;
    st->amp = amp;
    st->d = tw_amp_call_remote_box(amp, st->command, st->args);
    if (st->d == NULL || tw_deferred_add_callbacks(st->d, answered, failed, st) < 0) {
        fprintf(stderr, "%s: out of memory\n", progname);
        finish(st, EX_OSERR);
    }
}

static void lost(tw_amp *amp, const tw_failure *reason, void *arg)
{
    (void)amp;
    state *st = arg;
    st->amp = NULL;
    if (!st->finished) {
        /* The server closed without a word that fits the protocol. */
        char text[512];
        tw_failure_format(reason, text, sizeof text);
        fprintf(stderr, "%s: %s closed the connection before answering: %s\n", progname,
                st->where, text);
        finish(st, EX_PROTOCOL);
    }
}

static void timed_out(void *arg)
{
    state *st = arg;
    if (st->finished)
        return;
    fprintf(stderr, "%s: no answer to %s from %s in time\n", progname, st->command, st->where);
    if (st->amp != NULL)
        tw_transport_abort_connection(tw_amp_transport(st->amp));
    st->amp = NULL;
    finish(st, EX_TEMPFAIL);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    double timeout = 30;
    int c;
    opterr = 0;
    /* '+': stop at the endpoint, so that values may start with '-'. */
    while ((c = getopt_long(argc, argv, "+:t:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            timeout = parse_seconds("--timeout", optarg);
            break;
        case 'h':
            usage(stdout);
            return EX_OK;
        case 'V':
            printf("twine-call (twine) %s\n", tw_version());
            return EX_OK;
        case ':':
            die(EX_USAGE, "option '%s' needs a value; see --help", argv[optind - 1]);
        default:
            die(EX_USAGE, "unknown option '%s'; see --help", argv[optind - 1]);
        }
    }
    if (argc - optind < 2) {
        usage(stderr);
        return EX_USAGE;
    }
    const char *spec = argv[optind];
    state st = {.command = argv[optind + 1], .where = spec, .exit_code = EX_SOFTWARE};
    if (st.command[0] == '\0' || strlen(st.command) > TW_AMP_MAX_VALUE_LENGTH)
        die(EX_USAGE, "the command name must be 1 to %d bytes", TW_AMP_MAX_VALUE_LENGTH);

    st.args = tw_amp_box_new();
    if (st.args == NULL)
        die(EX_OSERR, "out of memory");
    for (int i = optind + 2; i < argc; i++) {
        const char *eq = strchr(argv[i], '=');
        if (eq == NULL)
            die(EX_USAGE, "argument '%s' is not KEY=VALUE", argv[i]);
        size_t klen = (size_t)(eq - argv[i]);
        int rc = tw_amp_box_set(st.args, argv[i], klen, eq + 1, strlen(eq + 1));
        if (rc == -EINVAL)
            die(EX_USAGE, "argument '%s': a key must be 1 to %d bytes", argv[i],
                TW_AMP_MAX_KEY_LENGTH);
        if (rc == TW_ETOOBIG)
            die(EX_USAGE, "argument '%.32s...': a value must be at most %d bytes", argv[i],
                TW_AMP_MAX_VALUE_LENGTH);
        if (rc < 0)
            die(EX_OSERR, "out of memory");
    }

    char *storage = malloc(strlen(spec) + 1);
    if (storage == NULL)
        die(EX_OSERR, "out of memory");
    endpoint ep;
    parse_endpoint(spec, &ep, storage);
    if (ep.timeout > 0 && ep.timeout < timeout)
        timeout = ep.timeout;
    double deadline = now_seconds() + timeout;
    int fd = open_endpoint(&ep, spec, deadline);
    free(storage);

    st.reactor = tw_reactor_new();
    tw_factory *factory = tw_amp_factory_new();
    if (st.reactor == NULL || factory == NULL)
        die(EX_OSERR, "cannot create the event loop: out of memory or descriptors");
    tw_reactor_set_shutdown_timeout(st.reactor, 1);
    tw_amp_factory_set_callbacks(factory, connected, lost, &st);
    tw_call *timer = NULL;
    double left = deadline - now_seconds();
    if (tw_reactor_call_later(st.reactor, left > 0 ? left : 0, timed_out, &st, &timer) < 0)
        die(EX_OSERR, "out of memory");
    int rc = tw_transport_adopt(st.reactor, fd, factory);
    if (rc < 0)
        die(EX_OSERR, "cannot use the connection to %s: %s", spec, tw_strerror(rc));
    rc = tw_reactor_run(st.reactor);
    if (rc < 0) {
        fprintf(stderr, "%s: the event loop failed: %s\n", progname, tw_strerror(rc));
        st.exit_code = EX_SOFTWARE;
    }
    tw_call_cancel(timer);
    tw_call_release(timer);
    tw_deferred_unref(st.d);
    tw_reactor_free(st.reactor);
    tw_factory_free(factory);
    tw_amp_box_free(st.args);
    return st.exit_code;
}
