/* SPDX-License-Identifier: MIT */
/*
 * Protocol switches, Twisted's ProtocolSwitchCommand and
 * BinaryBoxProtocol._switchTo: AMP as the opening of a connection that
 * then speaks something else. The connection stays the transport's
 * protocol and forwards everything to the protocol it switched to, which
 * it owns and destroys with itself; a connection that stops being AMP
 * keeps its outstanding calls and requests until the transport goes, as
 * Twisted keeps them.
 *
 * The bytes read but not yet parsed when the switch happens (the rest of
 * the read that brought the answer or request, a partial box, a read held
 * back while responders were pending) belong to the new protocol: the
 * peer sent them after the switch.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <twine/amp.h>
#include <twine/transport.h>

#include "amp/amp_conn_internal.h"
#include "amp/amp_internal.h"

static tw_amp *switched_amp(tw_protocol *p)
{
    return tw_container_of(p, tw_amp, base);
}

TW_API void tw_amp_protocol_free(void *p)
{
    tw_protocol *proto = p;
    if (proto != NULL && proto->ops != NULL && proto->ops->destroy != NULL)
        proto->ops->destroy(proto);
}

TW_API tw_deferred *tw_amp_switch_to(tw_protocol *p)
{
    tw_deferred *d = tw_deferred_succeed(p, tw_amp_protocol_free);
    if (d == NULL)
        tw_amp_protocol_free(p);
    return d;
}

TW_API tw_protocol *tw_amp_switched_protocol(const tw_amp *amp)
{
    return amp != NULL ? amp->inner : NULL;
}

TW_API tw_deferred *tw_amp_call_switch(tw_amp *amp, const tw_amp_command *command,
                                       const tw_amp_values *args, tw_factory *factory)
{
    if (amp == NULL || command == NULL || command->name == NULL ||
        !command->protocol_switch || factory == NULL)
        return tw_deferred_fail(tw_failure_new(-EINVAL, "call_switch needs a connection, a "
                                                        "protocol-switch command and a factory"));
    return tw__amp_call_command(amp, command, args, factory);
}

/* ------------------------------------------------------------ handing over */

void tw__amp_switched_data(tw_amp *amp, const void *data, size_t len)
{
    tw_protocol *in = amp->inner;
    if (len == 0 || amp->lost || tw_transport_disconnecting(amp->base.transport) ||
        in->ops->data_received == NULL)
        return;
    in->ops->data_received(in, data, len);
}

/* What was read but not parsed when the switch came between two reads. */
static void hand_over_unparsed(tw_amp *amp)
{
    unsigned char *partial;
    size_t n;
    if (tw__amp_parser_take_partial(amp->parser, &partial, &n) < 0) {
        tw__amp_close(amp);
        return;
    }
    unsigned char *held = amp->held;
    size_t held_len = amp->held_len;
    amp->held = NULL;
    amp->held_len = 0;
    /* The partial box came first on the wire, the held read after it. */
    tw__amp_switched_data(amp, partial, n);
    tw__amp_switched_data(amp, held, held_len);
    free(partial);
    free(held);
}

void tw__amp_switch(tw_amp *amp, tw_protocol *p, tw_factory *client_factory)
{
    tw_transport *t = amp->base.transport;
    amp->locked = 1;
    amp->inner = p;
    amp->inner_factory = client_factory;
    p->transport = t;
    amp->base.ops = p->ops->read_connection_lost != NULL ? &tw__amp_switched_half_close_ops
                                                         : &tw__amp_switched_ops;
    /* AMP's reasons to stop reading go with it; the new protocol pauses
     * the transport itself if it wants to, from connection_made on. */
    if (amp->paused_pending || amp->paused_write)
        tw_transport_resume_producing(t);
    amp->paused_pending = 0;
    if (p->ops->connection_made != NULL)
        p->ops->connection_made(p);
    if (amp->paused_write && !amp->lost && p->ops->pause_producing != NULL)
        p->ops->pause_producing(p);
    if (!amp->in_feed)
        hand_over_unparsed(amp);
}

/* ------------------------------------------------------------ forwarding */

static void sw_data(tw_protocol *p, const void *data, size_t len)
{
    tw__amp_switched_data(switched_amp(p), data, len);
}

static void sw_lost(tw_protocol *p, const tw_failure *reason)
{
    tw_amp *amp = switched_amp(p);
    tw_protocol *in = amp->inner;
    if (in->ops->connection_lost != NULL)
        in->ops->connection_lost(in, reason);
    tw_factory *f = amp->inner_factory;
    amp->inner_factory = NULL;
    if (f != NULL) {
        if (f->ops->client_connection_lost != NULL)
            f->ops->client_connection_lost(f, reason);
        tw_factory_stop(f);
    }
    tw__amp_connection_lost(p, reason);
}

static void sw_read_lost(tw_protocol *p)
{
    tw_protocol *in = switched_amp(p)->inner;
    in->ops->read_connection_lost(in);
}

static void sw_write_lost(tw_protocol *p)
{
    tw_protocol *in = switched_amp(p)->inner;
    if (in->ops->write_connection_lost != NULL)
        in->ops->write_connection_lost(in);
}

static void sw_pause(tw_protocol *p)
{
    tw_amp *amp = switched_amp(p);
    amp->paused_write = 1;
    if (amp->inner->ops->pause_producing != NULL)
        amp->inner->ops->pause_producing(amp->inner);
}

static void sw_resume(tw_protocol *p)
{
    tw_amp *amp = switched_amp(p);
    amp->paused_write = 0;
    if (amp->inner->ops->resume_producing != NULL)
        amp->inner->ops->resume_producing(amp->inner);
}

static size_t sw_buffered(tw_protocol *p)
{
    tw_protocol *in = switched_amp(p)->inner;
    return in->ops->buffered_input != NULL ? in->ops->buffered_input(in) : 0;
}

/* Whether the peer's half-close ends the connection is decided by the
 * presence of read_connection_lost, so the connection mirrors its new
 * protocol. */
const tw_protocol_ops tw__amp_switched_ops = {
    .buffered_input = sw_buffered,
    .data_received = sw_data,
    .connection_lost = sw_lost,
    .write_connection_lost = sw_write_lost,
    .pause_producing = sw_pause,
    .resume_producing = sw_resume,
    .destroy = tw__amp_destroy,
};

const tw_protocol_ops tw__amp_switched_half_close_ops = {
    .buffered_input = sw_buffered,
    .data_received = sw_data,
    .connection_lost = sw_lost,
    .read_connection_lost = sw_read_lost,
    .write_connection_lost = sw_write_lost,
    .pause_producing = sw_pause,
    .resume_producing = sw_resume,
    .destroy = tw__amp_destroy,
};
