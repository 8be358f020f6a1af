/* SPDX-License-Identifier: MIT */
/*
 * Fuzzing the real stream transport: stream.c, the poller with its
 * kicks and deferred frees, and linger, driven over socketpairs.
 *
 * Up to three connections are adopted into a reactor; the harness holds the
 * peer end of each. The input is a script of operations: the peer writes,
 * reads, half-closes or closes; the harness (as the protocol's owner)
 * writes, loses, aborts, pauses, resumes, half-closes or changes the
 * watermarks; the protocol is told what to do from inside data_received
 * (echo, write a lot, lose, abort, pause, half-close, write after lose);
 * the reactor turns. At the end every connection still open is lost in
 * order and its peer reads to the end.
 *
 * Invariants: every protocol hears connection_made, then connection_lost
 * exactly once, then destroy, and nothing after; writes return 0 or
 * TW_ESTATE; what a peer reads is exactly the start of what its protocol
 * wrote, in order; and a connection that ended in order (TW_EDONE, never
 * aborted, its peer never closed) delivered every byte written -- closing
 * loses nothing. Nothing leaks (LeakSanitizer).
 *
 * Input: [linger: 0 none, else 1 ms][connections 1-3][half-close-aware
 * bits], then operations, each an opcode byte and an argument byte.
 */
#include "config.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>
#include <twine.h>

#include "core/fd_internal.h"
#include "fuzz.h"

#define MAX_CONNS 3

enum { ACT_NONE, ACT_ECHO, ACT_BIG, ACT_LOSE, ACT_ABORT, ACT_PAUSE, ACT_LOSE_WRITE,
       ACT_LOSE_THEN_WRITE, ACT_COUNT };

typedef struct conn conn;

typedef struct {
    tw_protocol base;
    conn *c;
} fz_proto;

struct conn {
    int peer;           /* our end, -1 once closed */
    int peer_closed;    /* the peer closed or reset: bytes may be lost */
    int peer_eof;       /* the peer read EOF */
    int reset;          /* the peer's read failed (a linger that timed out) */
    int aborted;        /* an abort was asked for */
    int made, lost, destroyed;
    int lost_code;
    int action;         /* what data_received does */
    fz_proto *proto;    /* NULL before made and after destroy */
    size_t written;     /* bytes the transport took */
    size_t read;        /* bytes the peer read, checked against written */
};

static conn conns[MAX_CONNS];

static unsigned char pattern(const conn *c, size_t off)
{
    return (unsigned char)(off * 7 + (size_t)(c - conns) * 101);
}

static void transport_write(conn *c, size_t len)
{
    static unsigned char buf[1 << 18];
    if (len > sizeof buf)
        len = sizeof buf;
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern(c, c->written + i);
    int rc = tw_transport_write(c->proto->base.transport, buf, len);
    FZ_CHECK(rc == 0 || rc == TW_ESTATE || rc == -ENOMEM, "write returned %d", rc);
    if (rc == 0)
        c->written += len;
}

static void p_made(tw_protocol *p)
{
    conn *c = ((fz_proto *)p)->c;
    FZ_CHECK(!c->made && !c->lost, "connection_made twice or after lost");
    c->made = 1;
}

static void p_data(tw_protocol *p, const void *data, size_t len)
{
    conn *c = ((fz_proto *)p)->c;
    FZ_CHECK(c->made && !c->lost, "data_received outside the connection's life");
    tw_transport *t = p->transport;
    switch (c->action) {
    case ACT_ECHO:
        transport_write(c, len < 4096 ? len : 4096);
        break;
    case ACT_BIG:
        transport_write(c, 200000);
        break;
    case ACT_LOSE:
        tw_transport_lose_connection(t);
        break;
    case ACT_ABORT:
        c->aborted = 1;
        tw_transport_abort_connection(t);
        break;
    case ACT_PAUSE:
        tw_transport_pause_producing(t);
        break;
    case ACT_LOSE_WRITE:
        tw_transport_lose_write_connection(t);
        break;
    case ACT_LOSE_THEN_WRITE:
        tw_transport_lose_connection(t);
        transport_write(c, 1000 + len % 50000);
        break;
    default:
        break;
    }
    (void)data;
}

static void p_lost(tw_protocol *p, const tw_failure *reason)
{
    conn *c = ((fz_proto *)p)->c;
    FZ_CHECK(c->made && !c->lost, "connection_lost without made, or twice");
    c->lost = 1;
    c->lost_code = tw_failure_code(reason);
    /* Calls into the transport from here must be harmless. */
    int rc = tw_transport_write(p->transport, "x", 1);
    FZ_CHECK(rc == TW_ESTATE, "a write in connection_lost returned %d", rc);
    tw_transport_lose_connection(p->transport);
}

static void p_destroy(tw_protocol *p)
{
    conn *c = ((fz_proto *)p)->c;
    FZ_CHECK(c->lost && !c->destroyed, "destroy before lost, or twice");
    c->destroyed = 1;
    c->proto = NULL;
    free(p);
}

static void p_read_lost(tw_protocol *p)
{
    conn *c = ((fz_proto *)p)->c;
    FZ_CHECK(c->made && !c->lost, "read_connection_lost outside the connection's life");
}

static const tw_protocol_ops ops_plain = {
    .connection_made = p_made,
    .data_received = p_data,
    .connection_lost = p_lost,
    .destroy = p_destroy,
};

static const tw_protocol_ops ops_half = {
    .connection_made = p_made,
    .data_received = p_data,
    .connection_lost = p_lost,
    .destroy = p_destroy,
    .read_connection_lost = p_read_lost,
};

typedef struct {
    tw_factory base;
    conn *next;
    int half;
} fz_factory;

static tw_protocol *f_build(tw_factory *fb, const tw_address *addr)
{
    (void)addr;
    fz_factory *f = (fz_factory *)fb;
    fz_proto *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->base.ops = f->half ? &ops_half : &ops_plain;
    p->c = f->next;
    f->next->proto = p;
    return &p->base;
}

static const tw_factory_ops factory_ops = {.build_protocol = f_build};

/* The peer reads what is there, checking it against what was written. */
static void peer_read(conn *c, size_t most)
{
    unsigned char buf[65536];
    while (c->peer >= 0 && !c->peer_eof && most > 0) {
        ssize_t n = recv(c->peer, buf, most < sizeof buf ? most : sizeof buf, MSG_DONTWAIT);
        if (n == 0) {
            c->peer_eof = 1;
            return;
        }
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                c->reset = 1;
                close(c->peer);
                c->peer = -1;
            }
            return;
        }
        for (ssize_t i = 0; i < n; i++)
            FZ_CHECK(buf[i] == pattern(c, c->read + (size_t)i),
                     "byte %zu of connection %d is not what was written", c->read + (size_t)i,
                     (int)(c - conns));
        c->read += (size_t)n;
        FZ_CHECK(c->read <= c->written, "the peer read %zu bytes of %zu written", c->read,
                 c->written);
        most -= (size_t)n;
    }
}

static void peer_write(conn *c, size_t len)
{
    static const unsigned char junk[65536];
    if (c->peer < 0)
        return;
    if (len > sizeof junk)
        len = sizeof junk;
    ssize_t n = send(c->peer, junk, len, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void)n; /* a full buffer or a closed transport is part of the game */
}

static void peer_close(conn *c)
{
    if (c->peer < 0)
        return;
    close(c->peer);
    c->peer = -1;
    c->peer_closed = 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    fz_quiet_logs();
    tw_reactor *r = tw_reactor_new();
    if (r == NULL)
        return 0;
    tw_reactor_set_linger_timeout(r, fz_byte(&in, 0) & 1 ? 0.001 : 0);
    int n = 1 + fz_byte(&in, 0) % MAX_CONNS;
    uint8_t half = fz_byte(&in, 0);

    memset(conns, 0, sizeof conns);
    fz_factory f[MAX_CONNS];
    for (int i = 0; i < n; i++) {
        conn *c = &conns[i];
        c->peer = -1;
        int sv[2];
        if (tw__socketpair(AF_UNIX, SOCK_STREAM, 0, sv, O_CLOEXEC) < 0)
            continue;
        f[i].base.ops = &factory_ops;
        f[i].next = c;
        f[i].half = (half >> i) & 1;
        c->peer = sv[1];
        if (tw_transport_adopt(r, sv[0], &f[i].base) < 0) {
            close(sv[1]);
            c->peer = -1;
            c->proto = NULL;
        }
    }

    while (in.n > 0) {
        uint8_t op = fz_byte(&in, 0), arg = fz_byte(&in, 0);
        conn *c = &conns[(op >> 4) % n];
        int live = c->proto != NULL && !c->lost;
        tw_transport *t = live ? c->proto->base.transport : NULL;
        switch (op & 15) {
        case 0:
            peer_write(c, (size_t)arg * 257 + 1);
            break;
        case 1:
            peer_read(c, (size_t)arg * 1024 + 1);
            break;
        case 2:
            if (c->peer >= 0)
                shutdown(c->peer, SHUT_WR);
            break;
        case 3:
            peer_close(c);
            break;
        case 4:
            if (live)
                transport_write(c, (size_t)arg * 1024 + 1);
            break;
        case 5:
            if (live)
                tw_transport_lose_connection(t);
            break;
        case 6:
            if (live) {
                c->aborted = 1;
                tw_transport_abort_connection(t);
            }
            break;
        case 7:
            if (live)
                tw_transport_pause_producing(t);
            break;
        case 8:
            if (live)
                tw_transport_resume_producing(t);
            break;
        case 9:
            if (live)
                tw_transport_lose_write_connection(t);
            break;
        case 10:
            if (live)
                tw_transport_set_write_watermarks(t, (size_t)arg * 1024, (size_t)arg * 256);
            break;
        case 11:
            c->action = arg % ACT_COUNT;
            break;
        default:
            for (int i = 0; i <= arg % 8; i++)
                tw_reactor_iterate(r, 0);
            break;
        }
    }

    /* The end: everything still open closes in order, its peer reading on. */
    for (int i = 0; i < n; i++) {
        conn *c = &conns[i];
        c->action = ACT_NONE;
        if (c->proto != NULL && !c->lost) {
            tw_transport_resume_producing(c->proto->base.transport);
            tw_transport_lose_connection(c->proto->base.transport);
        }
    }
    for (int round = 0; round < 20000; round++) {
        int open = 0;
        tw_reactor_iterate(r, 0);
        for (int i = 0; i < n; i++) {
            conn *c = &conns[i];
            peer_read(c, SIZE_MAX);
            if (c->peer_eof && c->peer >= 0 && c->lost) {
                close(c->peer); /* ends the linger */
                c->peer = -1;
            }
            open += (c->proto != NULL) || c->peer >= 0;
        }
        if (open == 0)
            break;
    }
    for (int i = 0; i < n; i++) {
        conn *c = &conns[i];
        if (c->made) {
            FZ_CHECK(c->lost && c->destroyed, "connection %d never ended", i);
            if (c->lost_code == TW_EDONE && !c->aborted && !c->peer_closed) {
                FZ_CHECK(c->read == c->written,
                         "an orderly close of connection %d delivered %zu of %zu bytes", i,
                         c->read, c->written);
                /* A reset is fair only once the linger gave up on the peer:
                 * AF_UNIX still delivers what was queued before it. */
                FZ_CHECK(c->peer_eof || c->reset, "an orderly close of connection %d did not end",
                         i);
            }
        }
        if (c->peer >= 0)
            close(c->peer);
    }
    tw_reactor_free(r);
    return 0;
}
