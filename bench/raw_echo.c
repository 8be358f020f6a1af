/* SPDX-License-Identifier: MIT */
/*
 * raw_echo: the floor that bench/ measures twine against. A minimal
 * single-threaded epoll echo server with no framework: it reads up to 64 KiB
 * at a time into one shared buffer, writes straight back, and keeps only
 * what the kernel refuses, in a buffer that exists only while it is needed.
 * While a connection has such a backlog it is not read from, which is the
 * least a server can do to stay bounded against a client that does not read.
 *
 * Usage: raw_echo PORT   (binds 127.0.0.1; PORT 0 picks a free port, and the
 * chosen one is printed as "listening on 127.0.0.1:PORT").
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

#define READ_SIZE 65536
#define MAX_EVENTS 256

typedef struct {
    int fd;
    unsigned want;      /* epoll events registered */
    char *pending;      /* bytes the kernel refused, or NULL */
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
    close(c->fd); /* also removes it from the epoll set */
    free(c->pending);
    free(c);
}

/* Send @p len bytes, keeping what is refused. @return 0, or -1 to drop. */
static int send_or_keep(conn *c, const char *data, size_t len)
{
    ssize_t w;
    do
        w = send(c->fd, data, len, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -1;
        w = 0;
    }
    if ((size_t)w == len)
        return 0;
    c->pending = malloc(len - (size_t)w);
    if (c->pending == NULL)
        return -1;
    memcpy(c->pending, data + w, len - (size_t)w);
    c->len = len - (size_t)w;
    c->off = 0;
    watch(c, EPOLLOUT);
    return 0;
}

static void on_readable(conn *c)
{
    ssize_t n;
    do
        n = recv(c->fd, buf, sizeof buf, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0 || send_or_keep(c, buf, (size_t)n) < 0)
        drop(c);
}

static void on_writable(conn *c)
{
    ssize_t w;
    do
        w = send(c->fd, c->pending + c->off, c->len - c->off, MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            drop(c);
        return;
    }
    c->off += (size_t)w;
    if (c->off == c->len) {
        free(c->pending);
        c->pending = NULL;
        watch(c, EPOLLIN);
    }
}

static void on_accept(int lfd)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE)
                perror("raw_echo: accept");
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->want = EPOLLIN;
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &e) < 0) {
            close(fd);
            free(c);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: raw_echo PORT\n");
        return 2;
    }
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end != '\0' || port < 0 || port > 65535) {
        fprintf(stderr, "raw_echo: PORT must be a number from 0 to 65535\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t slen = sizeof sin;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(lfd, 511) < 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &slen) < 0) {
        fprintf(stderr, "raw_echo: cannot listen on 127.0.0.1:%ld: %s\n", port, strerror(errno));
        return 1;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    /* The listener is told apart from connections by a NULL pointer. */
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
    if (epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &le) < 0) {
        perror("raw_echo: epoll");
        return 1;
    }
    printf("listening on 127.0.0.1:%u\n", ntohs(sin.sin_port));
    fflush(stdout);

    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(epfd, evs, MAX_EVENTS, -1);
        if (n < 0 && errno != EINTR) {
            perror("raw_echo: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (c == NULL)
                on_accept(lfd);
            else if (c->pending != NULL)
                on_writable(c);
            else
                on_readable(c);
        }
    }
}
