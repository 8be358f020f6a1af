/* SPDX-License-Identifier: MIT */
/*
 * echo: RFC 862 over TCP and UDP. Every byte received is sent back; over
 * UDP each datagram goes back whole to the address it came from.
 *
 * This is also the template for a protocol module: a protocol struct that
 * embeds tw_protocol, a factory, and one TW_PLUGIN() descriptor. Built out
 * of tree the same file becomes a loadable module.
 *
 * A client that writes but never reads would make an echo server buffer
 * without bound; instead, when the transport's queue passes its high
 * watermark the protocol stops reading from that client (the transport is
 * its own producer), and resumes once the queue has drained.
 */
#include <stdlib.h>
#include <twine.h>
#include <twine/udp.h>

static void echo_data(tw_protocol *p, const void *data, size_t len)
{
    tw_transport_write(p->transport, data, len);
}

static void echo_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    (void)reason;
}

static void echo_pause(tw_protocol *p)
{
    tw_transport_pause_producing(p->transport);
}

static void echo_resume(tw_protocol *p)
{
    tw_transport_resume_producing(p->transport);
}

static const tw_protocol_ops echo_protocol_ops = {
    .data_received = echo_data,
    .connection_lost = echo_lost,
    .pause_producing = echo_pause,
    .resume_producing = echo_resume,
};

static tw_factory *echo_make_factory(tw_reactor *r, const tw_options *opts, char *err,
                                     size_t errlen)
{
    (void)r;
    (void)opts;
    tw_factory *f = tw_factory_for_protocol(&echo_protocol_ops, sizeof(tw_protocol));
    if (f == NULL)
        snprintf(err, errlen, "out of memory creating the echo factory");
    return f;
}

static void echo_datagram(tw_datagram_protocol *p, const void *data, size_t len,
                          const tw_address *from)
{
    /* A full socket buffer drops the reply, as UDP drops anything. */
    tw_udp_write(p->port, data, len, from);
}

static void echo_datagram_destroy(tw_datagram_protocol *p)
{
    free(p);
}

static const tw_datagram_ops echo_datagram_ops = {
    .datagram_received = echo_datagram,
    .destroy = echo_datagram_destroy,
};

static tw_datagram_protocol *echo_make_datagram(tw_reactor *r, const tw_options *opts, char *err,
                                                size_t errlen)
{
    (void)r;
    (void)opts;
    tw_datagram_protocol *p = calloc(1, sizeof *p);
    if (p == NULL) {
        snprintf(err, errlen, "out of memory creating the UDP echo protocol");
        return NULL;
    }
    p->ops = &echo_datagram_ops;
    return p;
}

TW_PLUGIN(echo, .type = TW_PLUGIN_PROTOCOL, .name = "echo",
          .description = "RFC 862 echo: sends back every byte received",
          .ctx = &(const tw_plugin_protocol){.make_factory = echo_make_factory,
                                             .make_datagram = echo_make_datagram});
