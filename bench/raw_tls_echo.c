/* SPDX-License-Identifier: MIT */
/*
 * raw_tls_echo: the TLS floor that bench/ measures twine's TLS against. The
 * same minimal single-threaded epoll echo server as raw_echo, written
 * directly on OpenSSL's libssl with no framework: non-blocking sockets
 * handed to SSL_set_fd, the handshake driven by SSL_accept from the epoll
 * loop, and every read echoed at once with SSL_write (write-through). It
 * reads up to 64 KiB at a time, as raw_echo does: the socket is read 64 KiB
 * at a time (read-ahead into a 64 KiB record buffer) and the plaintext of
 * one read is gathered into one shared 64 KiB buffer and written back with
 * one SSL_write. Only what SSL_write cannot take is kept (partial writes and
 * a moving write buffer are allowed), in a buffer that exists only while it
 * is needed; meanwhile the connection is not read from.
 *
 * The TLS settings are those a production server would choose and twine's
 * server contexts choose: TLS 1.2 and 1.3 only, no compression, no
 * renegotiation, server cipher preference, OpenSSL's default groups and
 * ciphers, session tickets as OpenSSL sends them by default, and record
 * buffers released while a connection is idle (SSL_MODE_RELEASE_BUFFERS),
 * which is what makes an idle TLS connection cheap.
 *
 * Usage: raw_tls_echo PORT CERT KEY   (binds 127.0.0.1; PORT 0 picks a free
 * port, printed as "listening on 127.0.0.1:PORT"; CERT and KEY are PEM files).
 */
#include "config.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define READ_SIZE 65536
#define MAX_EVENTS 256

typedef struct {
    int fd;
    SSL *ssl;
    int handshaking;
    unsigned want;      /* epoll events registered */
    char *pending;      /* plaintext SSL_write has not taken yet, or NULL */
    size_t len, off;
} conn;

static int epfd;
static char buf[READ_SIZE];

static void watch(conn *c, unsigned want)
{
    if (want == c->want)
        return;
    struct epoll_event e = {.events = want, .data.ptr = c};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e);
    c->want = want;
}

static void drop(conn *c)
{
    SSL_free(c->ssl);
    close(c->fd); /* also removes it from the epoll set */
    free(c->pending);
    free(c);
    /* A failed connection leaves its reasons on the thread's error queue. */
    ERR_clear_error();
}

/* The peer sent close_notify: answer with ours (best effort) and close. */
static void finish(conn *c)
{
    SSL_shutdown(c->ssl);
    drop(c);
}

/*
 * Where an SSL call that returned @p r <= 0 leaves the connection.
 * @return EPOLLIN or EPOLLOUT to wait for, or 0 to drop it.
 */
static unsigned wait_for(conn *c, int r)
{
    switch (SSL_get_error(c->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        return EPOLLIN;
    case SSL_ERROR_WANT_WRITE:
        return EPOLLOUT;
    default:
        return 0;
    }
}

/*
 * SSL_write @p len bytes. With partial writes each call takes at most one
 * record, so it is called until the bytes are gone or the socket refuses.
 * @p done counts the bytes taken.
 * @return 0 when all were taken, 1 when the socket refused (*want says
 * what to wait for), -1 to drop.
 */
static int write_all(conn *c, const char *data, size_t len, size_t *done, unsigned *want)
{
    *done = 0;
    while (*done < len) {
        int w = SSL_write(c->ssl, data + *done, (int)(len - *done));
        if (w <= 0) {
            *want = wait_for(c, w);
            return *want == 0 ? -1 : 1;
        }
        *done += (size_t)w;
    }
    return 0;
}

/* SSL_write @p len bytes, keeping what it does not take. @return 0, or -1 to drop. */
static int write_or_keep(conn *c, const char *data, size_t len)
{
    size_t done;
    unsigned want;
    int r = write_all(c, data, len, &done, &want);
    if (r <= 0)
        return r;
    /* SSL_write is called again with these bytes, the first of which
     * already sit, encrypted, in its record buffer. */
    c->pending = malloc(len - done);
    if (c->pending == NULL)
        return -1;
    memcpy(c->pending, data + done, len - done);
    c->len = len - done;
    c->off = 0;
    watch(c, want);
    return 0;
}

/* Offer the kept bytes again. @return 0, or -1 to drop. */
static int flush_pending(conn *c)
{
    size_t done;
    unsigned want;
    int r = write_all(c, c->pending + c->off, c->len - c->off, &done, &want);
    c->off += done;
    if (r < 0)
        return -1;
    if (r > 0) {
        watch(c, want);
        return 0;
    }
    free(c->pending);
    c->pending = NULL;
    return 0;
}

/*
 * Read what the socket has (read-ahead takes up to 64 KiB of records in one
 * read) and echo its plaintext in one SSL_write. Records already read stay
 * in OpenSSL's buffer, where epoll cannot see them, so the loop goes on
 * while SSL_has_pending says some are there, and stops without another
 * read(2) once they are used up.
 */
static void on_readable(conn *c)
{
    for (;;) {
        size_t n = 0;
        int r = 1, err = SSL_ERROR_NONE;
        while (n < READ_SIZE && (n == 0 || SSL_has_pending(c->ssl))) {
            r = SSL_read(c->ssl, buf + n, READ_SIZE - (int)n);
            if (r <= 0) {
                err = SSL_get_error(c->ssl, r);
                break;
            }
            n += (size_t)r;
        }
        if (n > 0 && write_or_keep(c, buf, n) < 0) {
            drop(c);
            return;
        }
        if (err == SSL_ERROR_ZERO_RETURN) {
            finish(c); /* what it sent before close_notify was echoed above */
            return;
        }
        if (c->pending != NULL)
            return; /* not read from until the backlog is gone */
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
            watch(c, err == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT);
            return;
        }
        if (err != SSL_ERROR_NONE) {
            drop(c);
            return;
        }
        if (!SSL_has_pending(c->ssl)) {
            watch(c, EPOLLIN);
            return;
        }
    }
}

static void on_handshake(conn *c)
{
    int r = SSL_accept(c->ssl);
    if (r == 1) {
        c->handshaking = 0;
        /* The client may have sent data right behind its Finished. */
        on_readable(c);
        return;
    }
    unsigned want = wait_for(c, r);
    if (want == 0)
        drop(c);
    else
        watch(c, want);
}

static void on_accept(int lfd, SSL_CTX *ctx)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                perror("raw_tls_echo: accept");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = calloc(1, sizeof *c);
        SSL *ssl = SSL_new(ctx);
        if (c == NULL || ssl == NULL || SSL_set_fd(ssl, fd) != 1) {
            SSL_free(ssl);
            free(c);
            close(fd);
            continue;
        }
        SSL_set_accept_state(ssl);
        c->fd = fd;
        c->ssl = ssl;
        c->handshaking = 1;
        c->want = EPOLLIN;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
            SSL_free(ssl);
            close(fd);
            free(c);
        }
    }
}

static SSL_CTX *make_ctx(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, READ_SIZE);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: raw_tls_echo PORT CERT KEY\n");
        return 2;
    }
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end != '\0' || port < 0 || port > 65535) {
        fprintf(stderr, "raw_tls_echo: PORT must be a number from 0 to 65535\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    SSL_CTX *ctx = make_ctx(argv[2], argv[3]);
    if (ctx == NULL) {
        unsigned long e = ERR_peek_last_error();
        fprintf(stderr, "raw_tls_echo: cannot use certificate %s with key %s: %s\n", argv[2],
                argv[3], e != 0 ? ERR_reason_error_string(e) : "unknown error");
        return 1;
    }

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t slen = sizeof sin;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, 511) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &slen) < 0) {
        fprintf(stderr, "raw_tls_echo: cannot listen on 127.0.0.1:%ld: %s\n", port,
                strerror(errno));
        return 1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    /* The listener is told apart from connections by a NULL pointer. */
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
    if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &le) < 0) {
        perror("raw_tls_echo: epoll");
        return 1;
    }
    printf("listening on 127.0.0.1:%u\n", ntohs(sin.sin_port));
    fflush(stdout);

    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, evs, MAX_EVENTS, -1);
        if (n < 0 && errno != EINTR) {
            perror("raw_tls_echo: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c == NULL)
                on_accept(lfd, ctx);
            else if (c->handshaking)
                on_handshake(c);
            else if (c->pending != NULL) {
                if (flush_pending(c) < 0)
                    drop(c);
                else if (c->pending == NULL)
                    on_readable(c); /* records read earlier may wait in OpenSSL */
            } else
                on_readable(c);
        }
    }
}
