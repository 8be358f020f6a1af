/* SPDX-License-Identifier: MIT */
/*
 * discard: RFC 863 over TCP. Every byte received is thrown away and nothing
 * is ever sent; the connection stays open until the client closes it.
 *
 * Nothing is buffered, so a client that sends without end costs the server
 * only the reads.
 */
#include <stdlib.h>
#include <twine.h>

static void discard_data(tw_protocol *p, const void *data, size_t len)
{
    (void)p;
    (void)data;
    (void)len;
}

static void discard_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    (void)reason;
}

static const tw_protocol_ops discard_protocol_ops = {
    .data_received = discard_data,
    .connection_lost = discard_lost,
};

static tw_factory *discard_make_factory(tw_reactor *r, const tw_options *opts, char *err,
                                        size_t errlen)
{
    (void)r;
    (void)opts;
    tw_factory *f = tw_factory_for_protocol(&discard_protocol_ops, sizeof(tw_protocol));
    if (f == NULL)
        snprintf(err, errlen, "out of memory creating the discard factory");
    return f;
}

TW_PLUGIN(discard, .type = TW_PLUGIN_PROTOCOL, .name = "discard",
          .description = "RFC 863 discard: reads and drops everything",
          .ctx = &(const tw_plugin_protocol){.make_factory = discard_make_factory});
