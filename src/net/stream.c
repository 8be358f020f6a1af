/* SPDX-License-Identifier: MIT */
/*
 * The stream transport: one connected socket, watched through the reactor's
 * poller (core/poller_internal.h), and an output queue (outq_internal.h)
 * that exists only while there is something to send.
 *
 * Writes made inside one of twine's dispatches (a read's data_received, a
 * timer, a kick, a deferred fired from any of them) join the
 * stream's batch, which goes out in one send() when the outermost dispatch
 * returns (tw__leave() runs flush_batch): a protocol that answers each
 * message of a read with its own write makes one system call, not one per
 * message, and needs no cork of its own. A write from outside every
 * dispatch goes straight to the socket, since nothing would send it later;
 * so does a large write into an empty queue, which a batch would only copy.
 * Otherwise only the part the kernel refuses stays queued, and writability
 * is watched only while it does. An idle connection therefore costs this
 * small header and the poller's entry, with no buffers at all.
 *
 * Closing never happens inside a call the protocol makes. lose and abort
 * mark the stream and kick it (the poller's deferred work); the close,
 * connection_lost and destroy run from the loop. So a protocol may close its
 * own transport in data_received and both stay valid until the callback
 * returns. Kicks also run other work that must not happen inside the
 * protocol's call (a pull producer's next pull, a deferred write shutdown).
 *
 * An orderly close (lose_connection, the peer's EOF for a protocol that is
 * not half-close aware, a graceful stop, an idle timeout) never drops what is
 * queued and never resets: the queue flushes, shutdown(SHUT_WR) sends FIN
 * (or, after the peer's EOF, the close itself does), and then the stream
 * lingers, reading and discarding whatever the peer still sends, until
 * the peer's EOF or the reactor's linger timeout (nginx's lingering close).
 * close() with unread input would make the kernel send an RST, and the
 * peer would lose the output it had not read yet. Input that
 * arrives while the queue flushes is discarded too, so a peer that writes
 * everything before it reads does not stall the close. Only
 * abort_connection (and the timeouts that give up on a peer that does not
 * read) closes with RST.
 *
 * The closes the stream decides itself (an idle timeout, a graceful stop,
 * the input budget) first ask a protocol that is a layer of its own (TLS,
 * which must send close_notify; a wrapper, which asks the protocol it
 * wraps) to end its part, through its close_requested; the layer then
 * closes the stream as any protocol does. The stream knows nothing of what
 * the layer is, and closes under it if it is still open the next time it
 * would close it.
 *
 * A closed stream is handed to the poller's deferred free (tw__io_release):
 * it is freed at once unless a pointer to it may still be held, while it
 * waits for its kick or while a dispatch runs.
 *
 * An accepted stream is a member of its listener's group (stream_internal.h)
 * from its start until its protocol is gone; the listener's idle sweep
 * looks at its members only.
 *
 * What every stream of a reactor shares (the batch hook, the spare queues)
 * is set up with its first stream and freed, as a service of the reactor,
 * with the reactor.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>
#include <twine/log.h>

#include "core/buf_internal.h"
#include "core/poller_internal.h"
#include "core/reactor_internal.h"
#include "net/outq_internal.h"
#include "net/pipe_internal.h"
#include "net/stream_internal.h"
#include "net/unixmsg_internal.h"

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* BSDs: SO_NOSIGPIPE is set on the socket instead */
#endif

/* A batch that reaches this size goes out at once rather than grow. */
#define BATCH_MAX (64 * 1024)
/* A write at least this large into an empty queue goes straight out even
 * inside a dispatch: one system call carries it anyway, and copying it into
 * the batch would cost more than the call a batch could save. */
#define DIRECT_MIN 4096

/* Where a stream is in its life. It only moves forward: an orderly close
 * goes OPEN, DRAINING, LINGERING, CLOSING, CLOSED (through ASKED when the
 * stream decided it and its protocol is a layer: see close_below()); an
 * error or an abort jumps to CLOSING from wherever the stream was. */
enum {
    S_OPEN,      /* the protocol reads and writes */
    S_ASKED,     /* as OPEN, but its protocol was asked to close (close_requested) */
    S_DRAINING,  /* lose_connection: the queue flushes, then FIN */
    S_LINGERING, /* FIN sent: discarding input until the peer's EOF */
    S_CLOSING,   /* queued to close from the loop */
    S_CLOSED     /* the socket is closed; only the memory remains */
};

/* What may hold in any state. */
enum {
    F_READ_PAUSED = 1 << 0,      /* the transport as a producer was paused */
    F_RESET = 1 << 1,            /* abort_connection: close with RST, queue dropped */
    F_WRITE_SHUT_REQ = 1 << 2,   /* lose_write_connection: shut once flushed */
    F_WRITE_SHUT = 1 << 3,       /* shutdown(SHUT_WR) done */
    F_READ_EOF = 1 << 4,         /* the peer half-closed */
    F_PROTO_PAUSED = 1 << 5,     /* we called the protocol's pause_producing */
    F_STREAMING = 1 << 6,        /* the registered producer is a streaming one */
    F_PRODUCER_PAUSED = 1 << 7,  /* we paused the registered producer */
    F_WROTE = 1 << 8,            /* a pull producer wrote since it was asked */
    F_IDLE_TRACK = 1 << 9,       /* the listener closes idle connections */
    F_CLIENT = 1 << 10,          /* an outgoing connection */
    F_HUP_SEEN = 1 << 11,        /* a hangup heard while not reading: input may be unread */
    F_LOST = 1 << 12,            /* the protocol heard connection_lost and is gone */
    F_UNIX = 1 << 13,            /* a UNIX socket: descriptors may come with the bytes */
    F_FDS_LOGGED = 1 << 14,      /* said once that descriptors past the bound were closed */
    F_USER = 1 << 15             /* adopted or a client: a user of its factory (tw_factory_start) */
};

/* Every idle connection pays for this header, so it is packed tight: keep
 * the pointers together and the small fields after them. */
typedef struct tw__stream {
    tw_transport base;
    tw__closeable node;
    tw__link group_link;     /* in group->members */
    tw__stream_group *group; /* the listener's or the reactor's, until the protocol is gone */
    tw__outq *out; /* NULL while nothing is queued */
    tw_producer *producer; /* registered producer, borrowed */
    tw_call *linger;       /* ends the linger (S_LINGERING), owned */
    tw__stream_record *record; /* owned, only when the group wants records */
    uint32_t high_wm, low_wm;
    uint32_t last_active; /* reactor milliseconds, kept when F_IDLE_TRACK */
    uint32_t held;        /* input the protocol holds, counted in r->input_held */
    tw__io io;            /* the socket and what is watched on it */
    int32_t error; /* negated errno or TW_E* that will close the stream, or 0 */
    uint16_t flags; /* F_* */
    uint8_t state;  /* S_* */
    uint8_t why;    /* tw_close_reason + 1 once known (the first one wins), or 0 */
} tw__stream;

static const tw_transport_ops stream_ops;
static const tw__closeable_ops stream_closeable_ops;

static uint32_t now_ms(const tw__stream *s)
{
    return (uint32_t)(int64_t)(tw_reactor_seconds(s->base.reactor) * 1000.0);
}

static void touch(tw__stream *s)
{
    if (s->flags & F_IDLE_TRACK)
        s->last_active = now_ms(s);
}

static int stream_fd(const tw__stream *s)
{
    return s->io.fd;
}

static void set_error(tw__stream *s, int code)
{
    s->error = code;
}

/* Note why the stream is closing, unless a reason came first. */
static void mark(tw__stream *s, tw_close_reason why)
{
    if (s->why == 0)
        s->why = (uint8_t)(why + 1);
}

/* Why the stream ended: the reason noted first, or what its state says. */
static tw_close_reason close_reason(const tw__stream *s)
{
    if (s->why != 0)
        return (tw_close_reason)(s->why - 1);
    if (s->error == TW_EIDLE)
        return TW_CLOSE_IDLE;
    if (s->flags & F_RESET)
        return TW_CLOSE_ABORT;
    if (s->error != 0)
        return TW_CLOSE_ERROR;
    return s->flags & F_READ_EOF ? TW_CLOSE_PEER : TW_CLOSE_LOCAL;
}

/* Closing in any way: lose_connection was called, or abort, or an error
 * decided it. The protocol may still write while DRAINING. */
static int is_closing(const tw__stream *s)
{
    return s->state > S_ASKED;
}

/* Whether a write is taken: until the FIN, as Twisted takes them until the
 * connection is lost, but not after an abort or a write shutdown. */
static int takes_writes(const tw__stream *s)
{
    return s->state <= S_DRAINING && !(s->flags & (F_WRITE_SHUT_REQ | F_WRITE_SHUT));
}

/* One system call for all of @p iov, never raising SIGPIPE. send() for a
 * single buffer: the kernel's sendmsg path costs measurably more per call,
 * and one buffer is the common case (an echo, a framed message). */
static ssize_t send_iov(int fd, const struct iovec *iov, int n)
{
    ssize_t w;
    do {
        if (n == 1) {
            w = send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL);
        } else {
            struct msghdr msg = {.msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)n};
            w = sendmsg(fd, &msg, MSG_NOSIGNAL);
        }
    } while (w < 0 && errno == EINTR);
    return w;
}

static size_t queued(const tw__stream *s)
{
    return s->out != NULL ? s->out->len : 0;
}

/* Whether the queue is a batch that goes out when the dispatch returns (or
 * else what the kernel refused, which goes out when it is writable). */
static int batching(const tw__stream *s)
{
    return s->out != NULL && s->out->in_batch;
}

/* Let go of the queue and what it holds. A queue on the batch list stays
 * there, disowned, and the batch run gives it back. */
static void drop_queue(tw__stream *s)
{
    tw__outq *q = s->out;
    if (q == NULL)
        return;
    s->out = NULL;
    q->len = 0;
    if (q->in_batch)
        q->owner = NULL;
    else
        tw__outq_put(s->base.reactor, q);
}

/* Run handle_event from the loop soon, as if the socket were writable, to
 * finish work the protocol asked for. */
static void kick(tw__stream *s)
{
    tw__io_kick(s->base.reactor, &s->io);
}

/* Ask the loop to close the stream; see the comment at the top. */
static void schedule_close(tw__stream *s)
{
    if (s->state >= S_CLOSING)
        return;
    s->state = S_CLOSING;
    kick(s);
}

/* Watch the socket for exactly what the stream needs now. */
static void update_events(tw__stream *s)
{
    if (s->state >= S_CLOSING)
        return; /* the kick does the rest */
    int want = 0;
    if (is_closing(s)) {
        if (!(s->flags & F_READ_EOF))
            want |= TW__POLL_IN; /* to discard: see the comment at the top */
    } else if (!(s->flags & (F_READ_PAUSED | F_READ_EOF))) {
        want |= TW__POLL_IN;
    } else if (!(s->flags & (F_READ_EOF | F_HUP_SEEN))) {
        want |= TW__POLL_HUP; /* not reading: still hear the peer leave */
    }
    if (queued(s) > 0 && !batching(s))
        want |= TW__POLL_OUT;
    if (want == 0 && is_closing(s) && (s->flags & F_READ_EOF) && tw__io_kick_pending(&s->io))
        return; /* its kick flushes nothing and closes it: a change of interest would be wasted */
    int rc = tw__io_watch(s->base.reactor, &s->io, want);
    if (rc < 0) {
        /* Unwatched, the connection would hang: close it with the reason. */
        set_error(s, rc);
        schedule_close(s);
    }
}

/* Free @p s once nothing may hold a pointer to it (on_io, TW__IO_FREE). */
static void release(tw_reactor *r, tw__stream *s)
{
    tw__io_release(r, &s->io);
}

/* The protocol no longer counts against the input budget: it is closing,
 * and will be given no more input. */
static void release_held(tw__stream *s)
{
    s->base.reactor->input_held -= s->held;
    s->held = 0;
}

/* Count @p n bytes read (@p in) or sent: in the group's totals, where
 * its owner reads them, and in the stream's own record when it keeps one.
 * A stream whose protocol is gone (a lingering one) has no group: what it
 * discards is no longer the connection's traffic. */
static void count_bytes(tw__stream *s, uint64_t n, int in)
{
    if (s->group != NULL)
        *(in ? &s->group->bytes_in : &s->group->bytes_out) += n;
    if (s->record != NULL)
        *(in ? &s->record->bytes_in : &s->record->bytes_out) += n;
}

/* How the stream ended, with its record when it keeps one. */
static void end_record(tw__stream *s, int code, tw__stream_end *end)
{
    memset(end, 0, sizeof *end);
    end->reason = close_reason(s);
    end->code = code;
    if (s->record != NULL) {
        end->record = s->record;
        s->record->duration = tw_reactor_seconds(s->base.reactor) - s->record->started;
    }
}

/* The protocol's side of the end: its producer stops, it hears
 * connection_lost(@p code) and is destroyed, and its factory and group
 * learn that it is gone. With @p closed the stream is closed for good and
 * is unregistered and released here; otherwise it lingers on (F_LOST),
 * still counted by the reactor, so that a graceful stop waits for it. */
static void end_protocol(tw__stream *s, int code, int closed)
{
    tw_reactor *r = s->base.reactor;
    tw_protocol *p = s->base.protocol;
    tw__stream_end end;
    if (s->group != NULL)
        end_record(s, code, &end);
    s->flags |= F_LOST;
    release_held(s);

    tw_producer *producer = s->producer;
    s->producer = NULL;
    if (producer != NULL && producer->ops->stop_producing != NULL)
        producer->ops->stop_producing(producer);

    tw_factory *f = p->factory;
    int client = s->flags & F_CLIENT;
    int user = s->flags & F_USER;
    tw_failure *reason = tw_failure_new(code, NULL);
    p->ops->connection_lost(p, reason);
    if (p->ops->destroy != NULL)
        p->ops->destroy(p);

    tw__stream_group *g = s->group;
    s->group = NULL;
    if (g != NULL)
        tw__list_remove(&g->members, &s->group_link);
    /* Ours from here: releasing the stream may free it at once. */
    tw__stream_record *record = s->record;
    s->record = NULL;
    if (closed) {
        tw__reactor_unregister_conn(r, &s->node);
        release(r, s);
    }
    if (client && f->ops->client_connection_lost != NULL)
        f->ops->client_connection_lost(f, reason);
    tw_failure_unref(reason);
    if (g != NULL)
        g->member_done(g, &end);
    if (user)
        tw_factory_stop(f); /* adopted and client connections count themselves */
    free(record);
}

static void close_now(tw__stream *s, int code)
{
    tw_reactor *r = s->base.reactor;
    int fd = stream_fd(s);

    s->state = S_CLOSED;
    tw__io_stop(r, &s->io);
    if (s->linger != NULL) {
        tw_call_cancel(s->linger);
        tw_call_release(s->linger);
        s->linger = NULL;
    }
    if (s->flags & F_RESET) {
        /* Linger 0 turns close() into an RST, as abortConnection promises. */
        struct linger lg = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    close(fd);
    drop_queue(s);

    if (!(s->flags & F_LOST)) {
        end_protocol(s, code, 1);
        return;
    }
    /* A lingering stream: its protocol is gone already. */
    tw__reactor_unregister_conn(r, &s->node);
    release(r, s);
}

static int close_code(const tw__stream *s)
{
    /* An idle connection that would not take its output is aborted but
     * still tells its protocol why. */
    if ((s->flags & F_RESET) && s->error != TW_EIDLE)
        return TW_EABORTED;
    return s->error != 0 ? s->error : TW_EDONE;
}

/* The linger timeout passed: close with whatever the peer still sends. */
static void linger_expired(void *arg)
{
    tw__stream *s = arg;
    tw_call_release(s->linger);
    s->linger = NULL;
    close_now(s, close_code(s));
}

/* The queue of a closing stream is empty: send FIN, then linger. */
static void begin_linger(tw__stream *s)
{
    tw_reactor *r = s->base.reactor;
    s->state = S_LINGERING;
    /* After the peer's EOF was read nothing unread is left, so the close()
     * that follows at once sends the FIN: no shutdown call of its own. An
     * EOF heard as a hangup while paused (F_HUP_SEEN) may have input
     * before it, and keeps the FIN first. */
    if (!(s->flags & F_WRITE_SHUT) && (s->flags & (F_READ_EOF | F_HUP_SEEN)) != F_READ_EOF) {
        shutdown(stream_fd(s), SHUT_WR);
        s->flags |= F_WRITE_SHUT;
    }
    if ((s->flags & F_READ_EOF) || r->linger_timeout <= 0 ||
        tw_reactor_call_later(r, r->linger_timeout, linger_expired, s, &s->linger) < 0) {
        schedule_close(s); /* nothing more will come, or no time to wait */
        return;
    }
    /* The connection is over for the protocol: it can send nothing more
     * and will be given nothing more. Only the socket lingers. */
    end_protocol(s, close_code(s), 0);
}

/* Send the front of @p q: plainly up to the next byte that carries
 * descriptors, or that byte with them and what follows up to the next. */
static ssize_t send_front(int fd, tw__outq *q)
{
    struct iovec iov = {q->data + q->off, q->len};
    tw__outq_fds *m = q->fds;
    if (m == NULL)
        return send_iov(fd, &iov, 1);
    if (m->pos > q->consumed) {
        iov.iov_len = m->pos - q->consumed;
        return send_iov(fd, &iov, 1);
    }
    if (m->next != NULL && m->next->pos - q->consumed < iov.iov_len)
        iov.iov_len = m->next->pos - q->consumed;
    ssize_t w = tw__unix_send_fds(fd, &iov, m->fd, m->n);
    if (w > 0)
        tw__outq_pop_fds(q); /* they went with the first byte; ours are closed */
    return w;
}

/* Send as much of the queue as the kernel takes. @return 0 or a negated errno. */
static int flush(tw__stream *s)
{
    int fd = stream_fd(s);
    while (queued(s) > 0) {
        tw__outq *q = s->out;
        ssize_t w = send_front(fd, q);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -errno;
        }
        tw__outq_consume(q, (size_t)w);
        count_bytes(s, (uint64_t)w, 0);
        touch(s);
    }
    return 0;
}

/* The queue grew: pause whoever fills it once it passes the high mark. As
 * in Twisted, that is the registered producer when there is one, and the
 * protocol only when there is none. */
static void check_high_watermark(tw__stream *s)
{
    if (queued(s) <= s->high_wm)
        return;
    tw_protocol *p = s->base.protocol;
    if (s->producer == NULL && !(s->flags & F_PROTO_PAUSED)) {
        s->flags |= F_PROTO_PAUSED;
        if (p->ops->pause_producing != NULL)
            p->ops->pause_producing(p);
    }
    tw_producer *prod = s->producer;
    if (prod != NULL && (s->flags & F_STREAMING) && !(s->flags & F_PRODUCER_PAUSED)) {
        s->flags |= F_PRODUCER_PAUSED;
        if (prod->ops->pause_producing != NULL)
            prod->ops->pause_producing(prod);
    }
}

/* Ask a pull producer for its next piece. */
static void pull(tw__stream *s)
{
    tw_producer *prod = s->producer;
    s->flags &= (uint16_t)~F_WROTE;
    if (prod->ops->resume_producing != NULL)
        prod->ops->resume_producing(prod);
}

/* After the queue shrank: resume the producers, finish a pending close. */
static void after_drain(tw__stream *s)
{
    tw_protocol *p = s->base.protocol;
    if ((s->flags & F_PROTO_PAUSED) && queued(s) <= s->low_wm) {
        s->flags &= (uint16_t)~F_PROTO_PAUSED;
        if (p->ops->resume_producing != NULL)
            p->ops->resume_producing(p);
    }
    if ((s->flags & F_PRODUCER_PAUSED) && queued(s) <= s->low_wm && s->producer != NULL) {
        s->flags &= (uint16_t)~F_PRODUCER_PAUSED;
        if (s->producer->ops->resume_producing != NULL)
            s->producer->ops->resume_producing(s->producer);
    }
    if (queued(s) > 0 || s->state == S_CLOSED)
        return;
    if (s->producer != NULL && !(s->flags & F_STREAMING) && !is_closing(s)) {
        pull(s);
        /* What it wrote may all have gone straight out, so no writability
         * will come to ask again: ask from the loop instead. */
        if (queued(s) == 0 && (s->flags & F_WROTE) && s->producer != NULL)
            kick(s);
        if (queued(s) > 0)
            return;
    }
    drop_queue(s); /* idle connections hold no buffer */
    if (is_closing(s)) {
        if (s->state == S_DRAINING)
            begin_linger(s);
        return;
    }
    if ((s->flags & F_WRITE_SHUT_REQ) && !(s->flags & F_WRITE_SHUT)) {
        shutdown(stream_fd(s), SHUT_WR);
        s->flags |= F_WRITE_SHUT;
        if (p->ops->write_connection_lost != NULL)
            p->ops->write_connection_lost(p);
        if (s->flags & F_READ_EOF)
            schedule_close(s);
    }
}

static void stream_lose(tw_transport *t);
static int stream_get_peer(tw_transport *t, tw_address *out);

/* Close for a reason of the stream's own, noted first with mark(): a
 * protocol with close_requested ends its part (a TLS layer's close_notify)
 * and then closes the stream itself; asked once, so a layer that has not
 * closed by the next time is closed under it. */
static void close_below(tw__stream *s)
{
    tw_protocol *p = s->base.protocol;
    if (is_closing(s))
        return;
    if (s->state == S_OPEN && p->ops->close_requested != NULL) {
        s->state = S_ASKED;
        p->ops->close_requested(p);
        return;
    }
    stream_lose(&s->base);
}

/* Over the reactor's input budget, and this stream's protocol holds the
 * most (tw__reactor_enforce_budget): close it, and take back what it held. */
static void shed(tw__stream *s)
{
    tw_reactor *r = s->base.reactor;
    char peer[TW_ADDRSTRLEN] = "?";
    tw_address a;
    if (stream_get_peer(&s->base, &a) == 0)
        tw_address_format(&a, peer, sizeof peer);
    tw_log(TW_LOG_WARN, "stream",
           "input budget of %zu bytes exceeded (%zu held); closing the connection from %s, "
           "which holds %u",
           r->input_budget, r->input_held, peer, (unsigned)s->held);
    if (s->error == 0)
        set_error(s, -ENOBUFS);
    mark(s, TW_CLOSE_OVERLOAD);
    close_below(s);
    /* Asked or closing, it stops counting until it holds input again. */
    release_held(s);
}

/* The protocol now holds @p bytes of input. */
static void note_held(tw__stream *s, size_t bytes)
{
    tw_reactor *r = s->base.reactor;
    uint32_t now = bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)bytes;
    r->input_held = r->input_held - s->held + now;
    s->held = now;
    if (r->input_budget > 0 && r->input_held > r->input_budget)
        tw__reactor_enforce_budget(r);
}

/* The peer sent FIN: it will send nothing more. */
static void peer_eof(tw__stream *s)
{
    tw_protocol *p = s->base.protocol;
    s->flags |= F_READ_EOF;
    if ((s->state == S_LINGERING || (s->flags & F_WRITE_SHUT)) && queued(s) == 0) {
        schedule_close(s); /* both directions are done */
        return;
    }
    if (is_closing(s)) {
        update_events(s); /* the flush goes on; nothing more to read */
        return;
    }
    /* A protocol that opted in to half-close keeps the connection. */
    if (p->ops->read_connection_lost != NULL && !(s->flags & F_WRITE_SHUT)) {
        update_events(s);
        p->ops->read_connection_lost(p);
        return;
    }
    /* Otherwise the connection ends, but what was queued still goes out. */
    mark(s, TW_CLOSE_PEER);
    stream_lose(&s->base);
}

/* The poller reported an error or hangup while the stream was not reading. */
static void handle_hangup(tw__stream *s)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(stream_fd(s), SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
        /* A reset: nothing queued can reach the peer any more. */
        set_error(s, -err);
        close_now(s, -err);
        return;
    }
    tw_protocol *p = s->base.protocol;
    if (!(s->flags & F_READ_EOF) && !is_closing(s) && p->ops->read_connection_lost == NULL) {
        /* The peer's FIN, seen while paused: a protocol that is not
         * half-close aware would end on it once it read that far, and the
         * input it paused on can only be answered to a peer that left. */
        s->flags |= F_HUP_SEEN;
        peer_eof(s);
        return;
    }
    /* Nothing to do about it now; the next read or write reports it. */
    s->flags |= F_HUP_SEEN;
    tw__io_stop(s->base.reactor, &s->io);
}

/* Descriptors the peer sent (UNIX streams): each to the protocol, in
 * order, while it wants them; the others are closed, never leaked. */
static void deliver_fds(tw__stream *s, const int *fds, int nfds, int dropped)
{
    tw_protocol *p = s->base.protocol;
    int i = 0;
    for (; i < nfds && !is_closing(s) && p->ops->file_descriptor_received != NULL; i++)
        p->ops->file_descriptor_received(p, fds[i]);
    tw__close_fds(fds + i, nfds - i);
    if (dropped > 0 && !(s->flags & F_FDS_LOGGED)) {
        s->flags |= F_FDS_LOGGED; /* once: the peer decides how often */
        tw_log(TW_LOG_WARN, "stream",
               "closed %d descriptor(s) a peer sent past the limit of %d per read "
               "(said once per connection)",
               dropped, TW_TRANSPORT_FDS_MAX);
    }
}

static void handle_read(tw__stream *s)
{
    tw_reactor *r = s->base.reactor;
    tw_protocol *p = s->base.protocol;
    ssize_t n;
    if (s->flags & F_UNIX) {
        int fds[TW_TRANSPORT_FDS_MAX], nfds, dropped;
        n = tw__unix_recv_fds(stream_fd(s), r->read_buf, TW__READ_SIZE, fds, TW_TRANSPORT_FDS_MAX,
                              &nfds, &dropped);
        if (n >= 0 && (nfds > 0 || dropped > 0))
            deliver_fds(s, fds, nfds, dropped); /* before the bytes they came with */
    } else {
        do
            n = recv(stream_fd(s), r->read_buf, TW__READ_SIZE, 0);
        while (n < 0 && errno == EINTR);
    }

    if (n > 0) {
        count_bytes(s, (uint64_t)n, 1);
        if (is_closing(s))
            return; /* discarded, and no sign of life either */
        touch(s);
        p->ops->data_received(p, r->read_buf, (size_t)n);
        if (p->ops->buffered_input != NULL && !is_closing(s))
            note_held(s, p->ops->buffered_input(p));
        return;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        set_error(s, -errno);
        schedule_close(s);
        return;
    }
    peer_eof(s);
}

/* The socket is ready for @p what (TW__POLL_*), or the stream was kicked
 * (TW__POLL_OUT). */
static void handle_event(tw__stream *s, int what)
{
    if (s->state == S_CLOSING) {
        close_now(s, close_code(s));
        return;
    }
    if (what & TW__POLL_OUT) {
        int rc = flush(s);
        if (rc < 0) {
            set_error(s, rc);
            close_now(s, rc);
            return;
        }
        after_drain(s);
        if (s->state >= S_CLOSING)
            return; /* the kick does the close */
    }
    if (what & TW__POLL_HUP) {
        handle_hangup(s);
        if (s->state == S_CLOSED)
            return;
    }
    if ((what & TW__POLL_IN) && !(s->flags & F_READ_EOF) &&
        (!(s->flags & F_READ_PAUSED) || is_closing(s)))
        handle_read(s);
    update_events(s);
}

/* The poller's call: readiness, a kick (run as writability), or the free.
 * The poller brackets it as a dispatch (tw__enter), so what the protocol
 * writes in it goes out as one batch. */
static void on_io(tw__io *io, int what)
{
    tw__stream *s = tw_container_of(io, tw__stream, io);
    if (what == TW__IO_FREE) {
        free(s->record);
        free(s);
        return;
    }
    if (s->state != S_CLOSED)
        handle_event(s, what == TW__IO_KICK ? TW__POLL_OUT : what);
}

static void flush_batch(tw_reactor *r);

/* What the streams of a reactor share, freed with it: the service, and
 * the group of the streams no listener accepted, with the counters
 * tw_reactor_conn_stats() reads. */
struct tw__streams {
    tw__service service; /* first */
    tw_reactor *r;
    tw__stream_group group;
    tw_conn_stats stats; /* accepted, refused and closed; the group has the rest */
};

static void streams_free(tw__service *sv)
{
    tw_reactor *r = ((struct tw__streams *)sv)->r;
    r->streams = NULL;
    /* Every batch went out when its dispatch returned; a queue left on the
     * list now belongs to no stream. */
    while (r->batch != NULL) {
        tw__outq *q = r->batch;
        r->batch = q->next;
        q->in_batch = 0;
        tw__outq_put(r, q);
    }
    tw__outq_free_spares(r);
    r->flush_batch = NULL;
    free(sv);
}

static const tw__service_ops streams_service_ops = {NULL, streams_free};

/* A stream of the reactor's group is done (tw__stream_group). */
static void unaccepted_done(tw__stream_group *g, const tw__stream_end *end)
{
    struct tw__streams *sh = tw_container_of(g, struct tw__streams, group);
    sh->stats.closed[end->reason]++;
}

/* Before @p r's first stream: hook the batch into the reactor's dispatches
 * and have what streams share freed with it. @return 0 or -ENOMEM. */
static int streams_setup(tw_reactor *r)
{
    if (r->streams != NULL)
        return 0;
    struct tw__streams *sh = calloc(1, sizeof *sh);
    if (sh == NULL)
        return -ENOMEM;
    sh->service.ops = &streams_service_ops;
    sh->r = r;
    sh->group.member_done = unaccepted_done;
    tw__reactor_add_service(r, &sh->service);
    r->streams = sh;
    r->flush_batch = flush_batch;
    return 0;
}

TW_API int tw_reactor_conn_stats(const tw_reactor *r, tw_conn_stats *out)
{
    memset(out, 0, sizeof *out);
    const struct tw__streams *sh = r->streams;
    if (sh == NULL)
        return 0;
    *out = sh->stats;
    out->bytes_in = sh->group.bytes_in;
    out->bytes_out = sh->group.bytes_out;
    out->tls_handshakes = sh->group.tls_handshakes;
    memcpy(out->tls_failures, sh->group.tls_failures, sizeof out->tls_failures);
    unsigned long long closed = 0;
    for (int i = 0; i < TW_CLOSE_REASONS; i++)
        closed += out->closed[i];
    out->open = out->accepted - closed;
    return 0;
}

/* Send the batch of @p s, which was on the batch list. */
static void send_batch(tw__stream *s)
{
    int rc = flush(s);
    if (rc < 0) {
        set_error(s, rc);
        schedule_close(s);
        return;
    }
    if (queued(s) > 0) {
        update_events(s); /* the rest when the socket is writable */
        check_high_watermark(s);
        return;
    }
    /* All of it went out. What a drained queue starts (resuming a
     * producer, the next pull, a shutdown) runs from the loop, as it would
     * after writability; plain writers just give the queue back. */
    if (s->producer != NULL || is_closing(s) ||
        (s->flags & (F_PROTO_PAUSED | F_PRODUCER_PAUSED | F_WRITE_SHUT_REQ)))
        kick(s);
    else
        drop_queue(s);
}

/* tw__leave(): the outermost dispatch returned; send every batch. What the
 * callbacks under this run write (a pause_producing) forms a new batch,
 * which the loop sends too. Nothing here frees a stream (a close is only
 * scheduled), so a batch's owner stays valid until the run reaches it. */
static void flush_batch(tw_reactor *r)
{
    r->depth++;
    while (r->batch != NULL) {
        tw__outq *q = r->batch;
        r->batch = NULL;
        while (q != NULL) {
            tw__outq *next = q->next;
            q->next = NULL;
            q->in_batch = 0;
            if (q->owner == NULL)
                tw__outq_put(r, q); /* its stream let go of it meanwhile */
            else
                send_batch(q->owner);
            q = next;
        }
    }
    r->depth--;
}

/* Add @p iov to the batch of @p s, opening one if needed. */
static int batch_write(tw__stream *s, const struct iovec *iov, int iovcnt)
{
    tw_reactor *r = s->base.reactor;
    if (s->out == NULL && (s->out = tw__outq_get(r, s)) == NULL)
        return -ENOMEM;
    tw__outq *q = s->out;
    if (!q->in_batch) {
        q->in_batch = 1;
        q->next = r->batch;
        r->batch = q;
    }
    if (tw__outq_append(q, iov, iovcnt, 0) < 0)
        return -ENOMEM;
    if (q->len >= BATCH_MAX) {
        /* Large enough to go now; it stays on the list, and what the
         * kernel refuses goes with the end of the batch. */
        int rc = flush(s);
        if (rc < 0) {
            set_error(s, rc);
            schedule_close(s);
            return 0;
        }
        check_high_watermark(s);
    }
    return 0;
}

static int stream_writev(tw_transport *t, const struct iovec *iov, int iovcnt)
{
    tw__stream *s = (tw__stream *)t;
    if (!takes_writes(s))
        return TW_ESTATE;
    size_t total;
    int rc = tw__iov_total(iov, iovcnt, &total);
    if (rc < 0 || total == 0)
        return rc;

    s->flags |= F_WROTE;
    /* Inside one of twine's callbacks, small writes wait for it to return
     * and leave together; outside, nothing would send them later. */
    if (batching(s) || (queued(s) == 0 && s->base.reactor->depth > 0 && total < DIRECT_MIN))
        return batch_write(s, iov, iovcnt);

    size_t sent = 0;
    if (queued(s) == 0) {
        ssize_t w = send_iov(stream_fd(s), iov, iovcnt);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            set_error(s, -errno);
            schedule_close(s);
            return 0;
        }
        sent = w < 0 ? 0 : (size_t)w;
        count_bytes(s, sent, 0);
        if (sent == total)
            return 0;
    }

    if (s->out == NULL && (s->out = tw__outq_get(s->base.reactor, s)) == NULL)
        return -ENOMEM;
    if (tw__outq_append(s->out, iov, iovcnt, sent) < 0)
        return -ENOMEM;
    update_events(s);
    check_high_watermark(s);
    return 0;
}

/* Descriptors ride on the first byte of @p data: the bytes join the
 * queue (or the batch) as any write does, and the descriptors, duplicated,
 * are attached to the first of them, so they leave in stream order. */
static int stream_send_fds(tw_transport *t, const void *data, size_t len, const int *fds, int nfds)
{
    tw__stream *s = (tw__stream *)t;
    tw_reactor *r = s->base.reactor;
    if (!takes_writes(s))
        return TW_ESTATE;
    if (!(s->flags & F_UNIX))
        return -EOPNOTSUPP;
    tw__outq_fds *m = malloc(sizeof *m);
    if (m == NULL)
        return -ENOMEM;
    int rc = tw__dup_fds(fds, nfds, m->fd);
    if (rc < 0) {
        free(m);
        return rc;
    }
    m->n = nfds;
    int fresh = s->out == NULL;
    if (fresh && (s->out = tw__outq_get(r, s)) == NULL) {
        tw__close_fds(m->fd, nfds);
        free(m);
        return -ENOMEM;
    }
    tw__outq *q = s->out;
    tw__outq_push_fds(q, m);
    struct iovec iov = {(void *)data, len};
    s->flags |= F_WROTE;
    if (batching(s) || (queued(s) == 0 && r->depth > 0))
        rc = batch_write(s, &iov, 1);
    else
        rc = tw__outq_append(q, &iov, 1, 0);
    if (rc < 0) {
        tw__outq_unpush_fds(q); /* nothing of it was appended */
        if (fresh && queued(s) == 0)
            drop_queue(s);
        return rc;
    }
    if (batching(s))
        return 0;
    if (queued(s) == len) {
        /* Nothing was waiting: send now, as a plain write would. */
        int err = flush(s);
        if (err < 0) {
            set_error(s, err);
            schedule_close(s);
            return 0;
        }
        if (queued(s) == 0) {
            drop_queue(s);
            return 0;
        }
    }
    update_events(s);
    check_high_watermark(s);
    return 0;
}

static void stream_lose(tw_transport *t)
{
    tw__stream *s = (tw__stream *)t;
    if (is_closing(s))
        return;
    s->state = S_DRAINING;
    release_held(s);
    /* The protocol may still write in this call: flush, FIN and linger
     * from the loop. */
    kick(s);
    update_events(s);
}

static void stream_abort(tw_transport *t)
{
    tw__stream *s = (tw__stream *)t;
    if ((s->flags & F_RESET) || s->state == S_CLOSED)
        return;
    s->flags |= F_RESET; /* a close already queued now resets instead */
    drop_queue(s);
    schedule_close(s);
}

static int stream_lose_write(tw_transport *t)
{
    tw__stream *s = (tw__stream *)t;
    if (is_closing(s) || (s->flags & (F_WRITE_SHUT_REQ | F_WRITE_SHUT)))
        return TW_ESTATE;
    s->flags |= F_WRITE_SHUT_REQ;
    if (queued(s) == 0)
        kick(s); /* not from inside the protocol's own call */
    return 0;
}

static void stream_pause(tw_transport *t)
{
    tw__stream *s = (tw__stream *)t;
    s->flags |= F_READ_PAUSED;
    update_events(s);
}

static void stream_resume(tw_transport *t)
{
    tw__stream *s = (tw__stream *)t;
    s->flags &= (uint16_t)~F_READ_PAUSED;
    update_events(s);
}

static int stream_get_peer(tw_transport *t, tw_address *out)
{
    out->len = sizeof out->u.storage;
    if (getpeername(stream_fd((tw__stream *)t), &out->u.sa, &out->len) < 0) {
        out->len = 0;
        return -errno;
    }
    return 0;
}

static int stream_get_host(tw_transport *t, tw_address *out)
{
    out->len = sizeof out->u.storage;
    if (getsockname(stream_fd((tw__stream *)t), &out->u.sa, &out->len) < 0) {
        out->len = 0;
        return -errno;
    }
    return 0;
}

static size_t stream_buffer_size(tw_transport *t)
{
    return queued((tw__stream *)t);
}

static void stream_set_watermarks(tw_transport *t, size_t high, size_t low)
{
    tw__stream *s = (tw__stream *)t;
    if (high > UINT32_MAX)
        high = UINT32_MAX;
    if (low > high)
        low = high;
    s->high_wm = (uint32_t)high;
    s->low_wm = (uint32_t)low;
}

static int stream_register_producer(tw_transport *t, tw_producer *prod, int streaming)
{
    tw__stream *s = (tw__stream *)t;
    if (s->producer != NULL)
        return TW_ESTATE;
    if (is_closing(s)) {
        if (prod->ops->stop_producing != NULL)
            prod->ops->stop_producing(prod);
        return TW_ESTATE;
    }
    s->producer = prod;
    s->flags &= (uint16_t)~(F_STREAMING | F_PRODUCER_PAUSED);
    if (streaming) {
        s->flags |= F_STREAMING;
        check_high_watermark(s);
    } else if (queued(s) == 0) {
        kick(s); /* the first pull comes from the loop */
    }
    return 0;
}

static void stream_unregister_producer(tw_transport *t)
{
    tw__stream *s = (tw__stream *)t;
    s->producer = NULL;
    s->flags &= (uint16_t)~(F_STREAMING | F_PRODUCER_PAUSED);
}

/* The protocol's own calls: what it closes is closed for its reasons. */
static void stream_lose_op(tw_transport *t)
{
    tw__stream *s = (tw__stream *)t;
    if (!is_closing(s))
        mark(s, TW_CLOSE_LOCAL);
    stream_lose(t);
}

static void stream_abort_op(tw_transport *t)
{
    tw__stream *s = (tw__stream *)t;
    if (s->state != S_CLOSED)
        mark(s, TW_CLOSE_ABORT);
    stream_abort(t);
}

static void stream_set_close_reason(tw_transport *t, tw_close_reason reason)
{
    mark((tw__stream *)t, reason);
}

static int stream_disconnecting(tw_transport *t)
{
    return is_closing((tw__stream *)t);
}

static int stream_fileno(tw_transport *t)
{
    return stream_fd((tw__stream *)t);
}

static const tw_transport_ops stream_ops = {
    .fileno = stream_fileno,
    .register_producer = stream_register_producer,
    .unregister_producer = stream_unregister_producer,
    .disconnecting = stream_disconnecting,
    .writev = stream_writev,
    .lose_connection = stream_lose_op,
    .abort_connection = stream_abort_op,
    .lose_write_connection = stream_lose_write,
    .pause_producing = stream_pause,
    .resume_producing = stream_resume,
    .get_peer = stream_get_peer,
    .get_host = stream_get_host,
    .write_buffer_size = stream_buffer_size,
    .set_write_watermarks = stream_set_watermarks,
    .set_close_reason = stream_set_close_reason,
    .send_fds = stream_send_fds,
};

static void closeable_lose(tw__closeable *c)
{
    tw__stream *s = tw_container_of(c, tw__stream, node);
    if (!is_closing(s))
        mark(s, TW_CLOSE_SHUTDOWN);
    close_below(s);
}

static void closeable_abort(tw__closeable *c)
{
    tw__stream *s = tw_container_of(c, tw__stream, node);
    mark(s, TW_CLOSE_SHUTDOWN);
    s->flags |= F_RESET;
    close_now(s, TW_EABORTED);
}

static size_t closeable_held(tw__closeable *c)
{
    return tw_container_of(c, tw__stream, node)->held;
}

static void closeable_shed(tw__closeable *c)
{
    shed(tw_container_of(c, tw__stream, node));
}

static const tw__closeable_ops stream_closeable_ops = {closeable_lose, closeable_abort,
                                                       closeable_held, closeable_shed};

static void tune_socket(int fd, const tw_address *peer)
{
    int one = 1;
    int family = peer != NULL ? tw_address_family(peer) : AF_UNSPEC;
    if (family == AF_INET || family == AF_INET6)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
#ifdef SO_NOSIGPIPE
    setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
}

/* Whether @p fd is a UNIX socket; the peer's address says so without a
 * system call, except for a peer that has none. */
static int is_unix(int fd, const tw_address *peer)
{
    if (peer != NULL && tw_address_family(peer) != AF_UNSPEC)
        return tw_address_family(peer) == AF_UNIX;
    tw_address host;
    host.len = sizeof host.u.storage;
    return getsockname(fd, &host.u.sa, &host.len) == 0 && host.u.sa.sa_family == AF_UNIX;
}

int tw__stream_start(tw_reactor *r, int fd, tw_factory *f, const tw_address *peer,
                     tw__stream_origin origin, tw__stream_group *group, tw_protocol **out)
{
    if (streams_setup(r) < 0) {
        close(fd);
        return -ENOMEM;
    }
    tune_socket(fd, peer);
    if (origin != TW__STREAM_ACCEPTED) {
        group = &r->streams->group;
        tw_factory_start(f);
    }
    tw_protocol *p = f->ops->build_protocol(f, peer);
    if (p == NULL) {
        close(fd);
        if (origin != TW__STREAM_ACCEPTED) {
            r->streams->stats.refused[TW_REFUSE_FACTORY]++;
            tw_factory_stop(f);
        }
        return -ECONNREFUSED;
    }
    tw__stream *s = calloc(1, sizeof *s);
    if (s == NULL) {
        close(fd);
        /* The protocol never saw connection_made; it is only released. */
        if (p->ops->destroy != NULL)
            p->ops->destroy(p);
        if (origin != TW__STREAM_ACCEPTED)
            tw_factory_stop(f);
        return -ENOMEM;
    }
    s->base.ops = &stream_ops;
    s->base.protocol = p;
    s->base.reactor = r;
    s->node.ops = &stream_closeable_ops;
    s->group = group;
    tw__list_push(&group->members, &s->group_link);
    if (origin != TW__STREAM_ACCEPTED) {
        s->flags |= F_USER;
        r->streams->stats.accepted++; /* a listener counts its own */
    }
    /* Kept from the start: a socket whose peer closed has no peer name. */
    if (group->want_records && (s->record = calloc(1, sizeof *s->record)) != NULL) {
        if (peer != NULL)
            s->record->peer = *peer;
        s->record->host.len = sizeof s->record->host.u.storage;
        if (getsockname(fd, &s->record->host.u.sa, &s->record->host.len) < 0)
            s->record->host.len = 0;
        s->record->started = tw_reactor_seconds(r);
    }
    if (origin == TW__STREAM_CLIENT)
        s->flags |= F_CLIENT;
    if (is_unix(fd, peer))
        s->flags |= F_UNIX;
    s->high_wm = TW_WRITE_HIGH_WATERMARK;
    s->low_wm = TW_WRITE_LOW_WATERMARK;
    if (group->idle_timeout > 0) {
        s->flags |= F_IDLE_TRACK;
        s->last_active = now_ms(s);
    }
    tw__io_init(&s->io, fd, on_io);
    tw__reactor_register_conn(r, &s->node);

    p->transport = &s->base;
    p->factory = f;
    if (out != NULL)
        *out = p;
    if (p->ops->connection_made != NULL)
        p->ops->connection_made(p);
    update_events(s);
    return 0;
}

void tw__stream_note_tls(tw_transport *t, int ok, tw_tls_failure why)
{
    if (t->ops != &stream_ops)
        return;
    tw__stream_group *g = ((tw__stream *)t)->group;
    if (g == NULL)
        return;
    if (ok)
        g->tls_handshakes++;
    else if ((unsigned)why < TW_TLS_FAILURES)
        g->tls_failures[why]++;
}

int tw__stream_close_reason(tw_transport *t, tw_close_reason *out)
{
    if (t->ops != &stream_ops)
        return -EINVAL;
    *out = close_reason((tw__stream *)t);
    return 0;
}

void tw__stream_note_peer(tw_transport *t, const tw_address *peer)
{
    if (t->ops != &stream_ops)
        return;
    tw__stream *s = (tw__stream *)t;
    if (s->record != NULL)
        s->record->peer = *peer;
}

void tw__stream_close_idle(tw_reactor *r, tw__stream_group *g)
{
    double timeout = g->idle_timeout;
    uint32_t now = (uint32_t)(int64_t)(tw_reactor_seconds(r) * 1000.0);
    uint32_t limit = timeout * 1000.0 > UINT32_MAX / 2 ? UINT32_MAX / 2 : (uint32_t)(timeout * 1000.0);
    for (tw__link *n = g->members.head, *next; n != NULL; n = next) {
        next = n->next; /* closing never leaves the group within this call */
        tw__stream *s = tw_container_of(n, tw__stream, group_link);
        /* Both times are truncated to the millisecond: a difference of
         * exactly the limit may be up to 1 ms short of it. */
        if (!(s->flags & F_IDLE_TRACK) || now - s->last_active <= limit)
            continue;
        if (s->state >= S_LINGERING)
            continue; /* closing already; a linger ends on its own timer */
        if (s->state == S_DRAINING) {
            /* Closing, but not a byte of the queue went out for a whole
             * timeout: the peer does not read, and waiting longer would
             * hold the connection for ever. */
            tw_log(TW_LOG_INFO, "stream", "aborting a connection whose peer read nothing for %.3g s",
                   timeout);
            if (s->error == 0)
                set_error(s, TW_EIDLE);
            mark(s, TW_CLOSE_IDLE);
            stream_abort(&s->base);
            continue;
        }
        /* Nothing was heard or sent for the whole timeout: an orderly close
         * whose reason says why. It gets one more timeout to flush. */
        set_error(s, TW_EIDLE);
        mark(s, TW_CLOSE_IDLE);
        s->last_active = now;
        close_below(s);
    }
}

TW_API int tw_transport_adopt(tw_reactor *r, int fd, tw_factory *f)
{
    tw_address peer;
    peer.len = sizeof peer.u.storage;
    if (getpeername(fd, &peer.u.sa, &peer.len) < 0) {
        if (errno == ENOTSOCK)
            return tw__pipe_adopt(r, fd, f);
        int err = -errno;
        close(fd);
        return err;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return tw__stream_start(r, fd, f, &peer, TW__STREAM_ADOPTED, NULL, NULL);
}
