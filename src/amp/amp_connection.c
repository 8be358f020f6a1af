/* SPDX-License-Identifier: MIT */
/*
 * An AMP connection as a protocol, Twisted's BinaryBoxProtocol: it feeds
 * what the transport reads to the box parser, routes each box to the
 * requests (a _command), or to the outstanding calls (an _answer or
 * _error), and writes the boxes they send. Reading pauses while too many
 * responders are pending or while the peer does not read what we write.
 *
 * The connection is the protocol its factory built: the transport owns it
 * and destroys it after connection_lost. The rules for which failures close
 * the connection are Twisted's, listed in amp.h. A connection that twine
 * decided to close stops dispatching at once.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine/amp.h>
#include <twine/log.h>

#include "amp/amp_conn_internal.h"
#include "amp/amp_internal.h"

static const tw_protocol_ops amp_protocol_ops;

TW_API tw_amp *tw_amp_from_protocol(tw_protocol *p)
{
    if (p == NULL || (p->ops != &amp_protocol_ops && p->ops != &tw__amp_switched_ops &&
                      p->ops != &tw__amp_switched_half_close_ops))
        return NULL;
    return tw_container_of(p, tw_amp, base);
}

TW_API tw_transport *tw_amp_transport(tw_amp *amp)
{
    return amp != NULL && !amp->lost ? amp->base.transport : NULL;
}

TW_API int tw_amp_closed(const tw_amp *amp)
{
    return amp == NULL || amp->closing;
}

const char *tw__amp_peer_name(tw_amp *amp, char *buf, size_t len)
{
    tw_address a;
    if (amp->base.transport == NULL || tw_transport_get_peer(amp->base.transport, &a) < 0)
        return "the peer";
    return tw_address_format(&a, buf, len);
}

/* ------------------------------------------------------------ sending */

void tw__amp_close(tw_amp *amp)
{
    if (amp->closing)
        return;
    amp->closing = 1;
    tw_transport_lose_connection(amp->base.transport);
}

TW_API void tw_amp_lose_connection(tw_amp *amp)
{
    if (amp != NULL && !amp->lost)
        tw__amp_close(amp);
}

void tw__amp_violation(tw_amp *amp, const char *fmt, ...)
{
    char why[512], where[TW_ADDRSTRLEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    tw_log(TW_LOG_WARN, "amp", "closing the connection with %s: %s",
           tw__amp_peer_name(amp, where, sizeof where), why);
    if (!amp->closing && amp->base.transport != NULL)
        tw_transport_set_close_reason(amp->base.transport, TW_CLOSE_PROTOCOL_ERROR);
    tw__amp_close(amp);
}

/*
 * Boxes sent while a read is processed (answers of responders that answer
 * at once, above all) leave together when it ends: the transport batches
 * them, so a pipelining peer costs one system call per read.
 */
int tw__amp_send_box(tw_amp *amp, const tw_amp_box *box)
{
    if (amp->lost || amp->locked)
        return TW_ESTATE;
    size_t n = tw_amp_box_encoded_size(box);
    char stackbuf[1024];
    char *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
    if (buf == NULL)
        return -ENOMEM;
    tw_amp_box_encode(box, buf, n);
    /* Between a StartTLS request and its answer, boxes wait for TLS. */
    int rc = amp->tls_pending ? tw__amp_hold_for_tls(amp, buf, n)
                              : tw_transport_write(amp->base.transport, buf, n);
    if (buf != stackbuf)
        free(buf);
    return rc;
}

/* ------------------------------------------------------------ reading */

static void update_reading(tw_amp *amp)
{
    if (amp->lost || amp->base.transport == NULL)
        return;
    if (amp->paused_pending || amp->paused_write)
        tw_transport_pause_producing(amp->base.transport);
    else
        tw_transport_resume_producing(amp->base.transport);
}

static int box_received(tw_amp_box *box, void *arg)
{
    tw_amp *amp = arg;
    int taken = 0;
    if (TW__AMP_GET(box, "_answer", NULL) != NULL)
        taken = tw__amp_answer_received(amp, box);
    else if (TW__AMP_GET(box, "_error", NULL) != NULL)
        tw__amp_error_received(amp, box);
    else if (TW__AMP_GET(box, "_command", NULL) != NULL)
        tw__amp_command_received(amp, box);
    else
        tw__amp_violation(amp, "a box with %zu keys and none of _command, _answer or _error",
                          tw_amp_box_count(box));
    if (!taken)
        tw__amp_parser_recycle(amp->parser, box);
    /* The connection switched protocols: the rest is the new protocol's. */
    if (amp->inner != NULL)
        return 1;
    /* A responder that closed or aborted the transport itself ends the
     * delivery too: the boxes after it have no connection to answer on. */
    if (amp->closing || tw_transport_disconnecting(amp->base.transport))
        return 1;
    /* Pending responders are counted per box, not per read: past the
     * limit the rest of the read waits, unparsed, until answers go out. */
    return amp->requests.count >= amp->max_pending ? 1 : 0;
}

/* Keep what a stopped parse left: a copy of at most one read. */
static void hold_rest(tw_amp *amp, const unsigned char *rest, size_t n)
{
    unsigned char *h = realloc(amp->held, amp->held_len + n);
    if (h == NULL) {
        tw__amp_violation(amp, "out of memory");
        return;
    }
    memcpy(h + amp->held_len, rest, n);
    amp->held = h;
    amp->held_len += n;
}

static void feed(tw_amp *amp, const unsigned char *data, size_t len)
{
    amp->in_feed = 1;
    size_t used = 0;
    int rc = tw_amp_parser_feed(amp->parser, data, len, box_received, amp, &used);
    amp->in_feed = 0;
    if (amp->inner != NULL) {
        /* The switch came at a box's end, where the parser holds nothing. */
        tw__amp_switched_data(amp, data + used, len - used);
        return;
    }
    if (rc < 0 && !amp->closing) {
        tw_transport_set_close_reason(amp->base.transport, rc == TW_ETOOBIG ? TW_CLOSE_TOO_LONG
                                      : rc == -ENOMEM ? TW_CLOSE_OVERLOAD
                                                      : TW_CLOSE_PROTOCOL_ERROR);
        tw__amp_violation(amp, "%s", tw_amp_parser_error(amp->parser));
    }
    else if (rc > 0 && used < len && !amp->closing &&
             !tw_transport_disconnecting(amp->base.transport))
        hold_rest(amp, data + used, len - used);
    /* Idle connections keep no buffer. */
    tw__amp_parser_trim(amp->parser);
    if (!amp->closing && !amp->paused_pending && amp->requests.count >= amp->max_pending) {
        amp->paused_pending = 1;
        update_reading(amp);
    }
}

/* Parse what waited while too many requests were pending. */
static void feed_held(tw_amp *amp)
{
    unsigned char *buf = amp->held;
    size_t n = amp->held_len;
    amp->held = NULL;
    amp->held_len = 0;
    if (!amp->closing)
        feed(amp, buf, n);
    free(buf);
}

void tw__amp_request_finished(tw_amp *amp)
{
    if (amp->paused_pending && amp->requests.count < amp->max_pending / 2 + 1) {
        amp->paused_pending = 0;
        if (amp->held_len > 0 && !amp->in_feed)
            feed_held(amp);
        update_reading(amp);
    }
}

/* ------------------------------------------------------------ protocol */

static void amp_connection_made(tw_protocol *p)
{
    tw_amp *amp = tw_amp_from_protocol(p);
    if (amp->factory->connected != NULL)
        amp->factory->connected(amp, amp->factory->cb_arg);
}

static void amp_data_received(tw_protocol *p, const void *data, size_t len)
{
    tw_amp *amp = tw_amp_from_protocol(p);
    if (amp->closing)
        return;
    if (amp->held_len > 0) {
        /* Read before the pause took effect: it queues behind the rest. */
        hold_rest(amp, data, len);
        return;
    }
    feed(amp, data, len);
}

void tw__amp_connection_lost(tw_protocol *p, const tw_failure *reason)
{
    tw_amp *amp = tw_amp_from_protocol(p);
    amp->lost = 1;
    amp->closing = 1;
    amp->lost_reason = tw_failure_ref((tw_failure *)reason);
    tw__amp_calls_fail(amp);
    tw__amp_requests_cancel(amp);
    if (amp->factory->lost != NULL)
        amp->factory->lost(amp, reason, amp->factory->cb_arg);
}

static void amp_pause_producing(tw_protocol *p)
{
    tw_amp *amp = tw_amp_from_protocol(p);
    amp->paused_write = 1;
    update_reading(amp);
}

static void amp_resume_producing(tw_protocol *p)
{
    tw_amp *amp = tw_amp_from_protocol(p);
    amp->paused_write = 0;
    update_reading(amp);
}

void tw__amp_destroy(tw_protocol *p)
{
    tw_amp *amp = tw_amp_from_protocol(p);
    tw_amp_protocol_free(amp->inner);
    tw_amp_parser_free(amp->parser);
    tw_failure_unref(amp->lost_reason);
    tw__amp_call_table_release(&amp->calls);
    free(amp->held);
    free(amp->tls_held);
    free(amp);
}

static size_t amp_buffered_input(tw_protocol *p)
{
    return tw_amp_parser_buffered(tw_amp_from_protocol(p)->parser);
}

static const tw_protocol_ops amp_protocol_ops = {
    .buffered_input = amp_buffered_input,
    .connection_made = amp_connection_made,
    .data_received = amp_data_received,
    .connection_lost = tw__amp_connection_lost,
    .pause_producing = amp_pause_producing,
    .resume_producing = amp_resume_producing,
    .destroy = tw__amp_destroy,
};

tw_protocol *tw__amp_connection_new(tw__amp_factory *f)
{
    tw_amp *amp = calloc(1, sizeof *amp);
    if (amp == NULL)
        return NULL;
    amp->parser = tw_amp_parser_new(f->max_box);
    if (amp->parser == NULL) {
        free(amp);
        return NULL;
    }
    amp->base.ops = &amp_protocol_ops;
    amp->factory = f;
    amp->max_pending = f->max_pending;
    return &amp->base;
}
