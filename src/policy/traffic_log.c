/* SPDX-License-Identifier: MIT */
/*
 * The traffic log (Twisted's TrafficLoggingFactory): every byte each
 * connection receives and sends, as a hex dump at debug level, sixteen
 * bytes a record, in the classic offset, hex and text columns, so that a
 * protocol can be debugged from the log alone. Each connection gets a
 * number, named with its peer when it starts, so interleaved connections
 * stay apart. Nothing is formatted unless the option is on and the log
 * level lets debug records through.
 */
#include "config.h"

#include <stdio.h>
#include <twine/log.h>

#include "policy/policy_internal.h"

#define BYTES_PER_LINE 16

static int logging(const tw__policy_conn *c)
{
    return c->f->opts.log_traffic && tw_log_get_level() <= TW_LOG_DEBUG;
}

void tw__traffic_made(tw__policy_conn *c)
{
    if (!logging(c))
        return;
    char where[TW_ADDRSTRLEN] = "?";
    tw_address a;
    if (tw_transport_get_peer(c->base.transport, &a) == 0)
        tw_address_format(&a, where, sizeof where);
    tw_log(TW_LOG_DEBUG, "traffic", "connection %lu: made with %s", c->id, where);
}

/* One record: @p n (1 to BYTES_PER_LINE) bytes at offset @p off. */
static void dump_line(const tw__policy_conn *c, char dir, size_t off, const unsigned char *b,
                      size_t n)
{
    char hex[BYTES_PER_LINE * 3 + 1], text[BYTES_PER_LINE + 1];
    for (size_t i = 0; i < BYTES_PER_LINE; i++)
        snprintf(hex + 3 * i, 4, i < n ? "%02x " : "   ", i < n ? b[i] : 0);
    for (size_t i = 0; i < n; i++)
        text[i] = b[i] >= 0x20 && b[i] < 0x7f ? (char)b[i] : '.';
    text[n] = '\0';
    tw_log(TW_LOG_DEBUG, "traffic", "connection %lu %c %08zx  %s |%s|", c->id, dir, off, hex,
           text);
}

void tw__traffic_bytes(tw__policy_conn *c, char dir, const void *data, size_t len)
{
    if (!logging(c))
        return;
    const unsigned char *b = data;
    tw_log(TW_LOG_DEBUG, "traffic", "connection %lu: %s %zu bytes", c->id,
           dir == '<' ? "received" : "sent", len);
    for (size_t off = 0; off < len; off += BYTES_PER_LINE)
        dump_line(c, dir, off, b + off, len - off < BYTES_PER_LINE ? len - off : BYTES_PER_LINE);
}

void tw__traffic_lost(tw__policy_conn *c, const tw_failure *reason)
{
    if (!logging(c))
        return;
    tw_log(TW_LOG_DEBUG, "traffic", "connection %lu: lost (%s)", c->id,
           tw_strerror(tw_failure_code(reason)));
}
