/* SPDX-License-Identifier: MIT */
/*
 * --access-log: one info record per connection that ends, under the
 * subsystem "access", as a web server's access log has one per request.
 * It is the listener's close hook (tw_listen_options.on_close), so the
 * figures are the library's: the peer and local addresses, how long the
 * connection lasted, the bytes each way and why it ended.
 *
 * Two forms: text, key=value pairs that a shell reads, and json, one JSON
 * object (encoded by jansson, so any byte of an endpoint or a path comes out
 * escaped) as the record's message.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <jansson.h>

#include "reactord.h"

static void address(const tw_address *a, char *buf, size_t len)
{
    if (a->len == 0)
        snprintf(buf, len, "-");
    else
        tw_address_format(a, buf, len);
}

void rd_access_log(const tw_conn_record *rec, void *arg)
{
    const rd_access *acc = arg;
    char peer[TW_ADDRSTRLEN], local[TW_ADDRSTRLEN];
    address(&rec->peer, peer, sizeof peer);
    address(&rec->host, local, sizeof local);
    const char *reason = tw_close_reason_name(rec->reason);
    if (acc->format == RD_ACCESS_TEXT) {
        tw_log(TW_LOG_INFO, "access",
               "peer=%s local=%s listener=%s protocol=%s duration=%.6f bytes_in=%llu "
               "bytes_out=%llu reason=%s",
               peer, local, acc->listener, acc->protocol, rec->duration, rec->bytes_in,
               rec->bytes_out, reason);
        return;
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:f, s:I, s:I, s:s}", "peer", peer, "local",
                          local, "listener", acc->listener, "protocol", acc->protocol,
                          "duration", rec->duration, "bytes_in", (json_int_t)rec->bytes_in,
                          "bytes_out", (json_int_t)rec->bytes_out, "reason", reason);
    char *text = o != NULL ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (text != NULL)
        tw_log(TW_LOG_INFO, "access", "%s", text);
    else
        tw_log(TW_LOG_WARN, "access", "cannot encode the record of a connection from %s", peer);
    free(text);
    json_decref(o);
}
