/* SPDX-License-Identifier: MIT */
/*
 * time: RFC 868 over TCP. On connection the server sends the number of
 * seconds since 1900-01-01 00:00 UTC as a 32-bit big-endian unsigned
 * integer, then closes. What the client sends is ignored.
 *
 * The count is taken modulo 2^32, as the RFC's 32 bits imply: it wraps in
 * February 2036, and clients are expected to resolve the era themselves.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <twine.h>

/* Seconds from 1900-01-01 to 1970-01-01: 70 years with 17 leap days. */
#define EPOCH_1900_OFFSET 2208988800ULL

static void time_made(tw_protocol *p)
{
    uint32_t v = (uint32_t)((uint64_t)(int64_t)time(NULL) + EPOCH_1900_OFFSET);
    unsigned char out[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                            (unsigned char)(v >> 8), (unsigned char)v};
    tw_transport_write(p->transport, out, sizeof out);
    tw_transport_lose_connection(p->transport);
}

static void time_data(tw_protocol *p, const void *data, size_t len)
{
    (void)p;
    (void)data;
    (void)len;
}

static void time_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    (void)reason;
}

static const tw_protocol_ops time_protocol_ops = {
    .connection_made = time_made,
    .data_received = time_data,
    .connection_lost = time_lost,
};

static tw_factory *time_make_factory(tw_reactor *r, const tw_options *opts, char *err,
                                     size_t errlen)
{
    (void)r;
    (void)opts;
    tw_factory *f = tw_factory_for_protocol(&time_protocol_ops, sizeof(tw_protocol));
    if (f == NULL)
        snprintf(err, errlen, "out of memory creating the time factory");
    return f;
}

TW_PLUGIN(time, .type = TW_PLUGIN_PROTOCOL, .name = "time",
          .description = "RFC 868 time: sends seconds since 1900 as 32 bits, then closes",
          .ctx = &(const tw_plugin_protocol){.make_factory = time_make_factory});
