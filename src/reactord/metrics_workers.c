/* SPDX-License-Identifier: MIT */
/*
 * The metrics of --workers N. Each worker counts its own connections, so
 * the supervisor, which serves --metrics, asks every running worker for
 * its samples at each scrape and exposes them side by side, each with a
 * worker="N" label (N is the worker's slot, 1 to N, kept across restarts),
 * under one HELP and TYPE per family; its own process figures come without
 * the label. A restarted worker starts counting from zero again, which
 * Prometheus reads as a counter reset, as it does for any restarted target.
 *
 * Each worker has a stream socket pair to the supervisor. A request is a
 * 4-byte sequence number; the answer is that number, a 4-byte length and
 * the samples. The worker answers from its loop through a bufferevent, so
 * a long answer never blocks it; the supervisor waits for the answers with
 * a deadline, so a hung worker delays a scrape by at most that and is left
 * out of it. Answers that arrive after their deadline are recognised by
 * their number and skipped at the next scrape, so the stream never loses
 * its framing.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "reactord.h"

#define MAX_ANSWER (16u << 20) /* larger is a broken stream, not a real answer */

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* SIGPIPE is ignored by main() anyway */
#endif

/* ---------------------------------------------------------------- the worker's side */

typedef struct worker_side {
    struct bufferevent *bev;
    const rd_figures *fig;
} worker_side;

static worker_side worker; /* one per worker process */

static void on_request(struct bufferevent *bev, void *arg)
{
    worker_side *w = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    uint32_t seq;
    while (evbuffer_get_length(in) >= sizeof seq) {
        evbuffer_remove(in, &seq, sizeof seq);
        struct evbuffer *text = evbuffer_new();
        if (text == NULL)
            return; /* the supervisor's deadline passes; this scrape goes without us */
        rd_metrics_render(w->fig, text, 0);
        uint32_t head[2] = {seq, (uint32_t)evbuffer_get_length(text)};
        bufferevent_write(bev, head, sizeof head);
        bufferevent_write_buffer(bev, text);
        evbuffer_free(text);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        bufferevent_disable(bev, EV_READ | EV_WRITE); /* the supervisor is gone */
}

int rd_metrics_worker_start(const rd_worker *w, struct event_base *base, const rd_figures *f,
                            struct bufferevent **out)
{
    worker.fig = f;
    worker.bev = bufferevent_socket_new(base, w->metrics_fd, BEV_OPT_CLOSE_ON_FREE);
    if (worker.bev == NULL)
        return rd_error(EX_OSERR, "cannot answer the supervisor's metrics requests: out "
                                        "of memory");
    bufferevent_setcb(worker.bev, on_request, NULL, on_event, &worker);
    bufferevent_enable(worker.bev, EV_READ);
    *out = worker.bev;
    return 0;
}

/* ---------------------------------------------------------------- the supervisor's side */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Take the complete answers out of @p in; @return 1 once the one numbered
 * @p seq is in @p text, 0 while it is not, -1 for a broken stream. */
static int take_answers(struct evbuffer *in, uint32_t seq, struct evbuffer *text)
{
    for (;;) {
        uint32_t head[2];
        if (evbuffer_copyout(in, head, sizeof head) < (ev_ssize_t)sizeof head)
            return 0;
        if (head[1] > MAX_ANSWER)
            return -1;
        if (evbuffer_get_length(in) < sizeof head + head[1])
            return 0;
        evbuffer_drain(in, sizeof head);
        if (head[0] != seq) {
            evbuffer_drain(in, head[1]); /* a late answer to an earlier scrape */
            continue;
        }
        evbuffer_remove_buffer(in, text, head[1]);
        return 1;
    }
}

/* Read what @p p has sent. @return 0, or -1 when the stream ended or failed. */
static int read_peer(rd_metrics_peer *p)
{
    for (;;) {
        int n = evbuffer_read(p->in, p->fd, 65536);
        if (n > 0)
            continue;
        if (n == 0)
            return -1;
        return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? 0 : -1;
    }
}

void rd_metrics_collect(struct evbuffer *out, rd_metrics_peer *peers, size_t n, unsigned running,
                        unsigned long long restarts, int timeout_ms)
{
    static uint32_t seq;
    seq++;
    struct evbuffer *texts[RD_MAX_WORKERS_METRICS] = {NULL};
    int done[RD_MAX_WORKERS_METRICS] = {0};
    if (n > RD_MAX_WORKERS_METRICS)
        n = RD_MAX_WORKERS_METRICS;
    size_t waiting = 0;
    for (size_t i = 0; i < n; i++) {
        done[i] = 1; /* unless asked below */
        if (peers[i].fd < 0 || (texts[i] = evbuffer_new()) == NULL)
            continue;
        if (send(peers[i].fd, &seq, sizeof seq, MSG_NOSIGNAL) != (ssize_t)sizeof seq)
            continue;
        done[i] = 0;
        waiting++;
    }
    double deadline = now_ms() + timeout_ms;
    struct pollfd pfd[RD_MAX_WORKERS_METRICS];
    size_t who[RD_MAX_WORKERS_METRICS];
    while (waiting > 0) {
        nfds_t np = 0;
        for (size_t i = 0; i < n; i++) {
            if (done[i])
                continue;
            /* An answer may be complete already, read with the last one. */
            int got = take_answers(peers[i].in, seq, texts[i]);
            if (got != 0) {
                done[i] = got > 0 ? 2 : 1;
                if (got < 0)
                    evbuffer_drain(peers[i].in, evbuffer_get_length(peers[i].in));
                waiting--;
                continue;
            }
            who[np] = i;
            pfd[np++] = (struct pollfd){peers[i].fd, POLLIN, 0};
        }
        double left = deadline - now_ms();
        if (np == 0 || left <= 0)
            break;
        int pr = poll(pfd, np, (int)left + 1);
        if (pr < 0 && errno != EINTR)
            break;
        for (nfds_t k = 0; pr > 0 && k < np; k++) {
            if (pfd[k].revents == 0)
                continue;
            size_t i = who[k];
            if (read_peer(&peers[i]) < 0 && take_answers(peers[i].in, seq, texts[i]) <= 0) {
                done[i] = 1;
                waiting--;
            }
        }
    }

    rd_metrics_part parts[RD_MAX_WORKERS_METRICS + 1];
    char labels[RD_MAX_WORKERS_METRICS][16];
    size_t np = 0;
    struct evbuffer *own = evbuffer_new();
    if (own != NULL) {
        rd_figures none = {0};
        rd_metrics_render(&none, own, 0);
        rd_metrics_render_supervisor(own, running, restarts);
        parts[np++] = (rd_metrics_part){(const char *)evbuffer_pullup(own, -1),
                                        evbuffer_get_length(own), NULL};
    }
    for (size_t i = 0; i < n; i++) {
        if (done[i] != 2)
            continue;
        snprintf(labels[i], sizeof labels[i], "%u", peers[i].index);
        parts[np++] = (rd_metrics_part){(const char *)evbuffer_pullup(texts[i], -1),
                                        evbuffer_get_length(texts[i]), labels[i]};
    }
    rd_metrics_merge(out, parts, np);
    if (own != NULL)
        evbuffer_free(own);
    for (size_t i = 0; i < n; i++)
        if (texts[i] != NULL)
            evbuffer_free(texts[i]);
}
