/* SPDX-License-Identifier: MIT */
/*
 * line: a line echo server built on the line receiver. Each complete line
 * is sent back with the delimiter; a line longer than max-length is logged
 * and closes the connection.
 *
 *     reactord --protocol line --port 9001 -o max-length=4096
 *     reactord --protocol line --port 9001 -o delimiter=lf      # for nc
 *
 * Options: delimiter ("crlf", the default, or "lf") and max-length (default
 * 16384). The defaults are Twisted's LineReceiver's, so a Twisted client
 * (or telnet) is served exactly as a Twisted server would serve it: a CRLF
 * line of max-length bytes is accepted, and a lone LF is ordinary data.
 * With delimiter=lf, lines end at LF (what nc sends) and a CR before it is
 * part of the line, so it counts against max-length and comes back.
 *
 * Each line is echoed with its own write; the transport gathers the
 * writes made while one chunk is processed and sends them together when
 * data_received returns, so a peer that sends many lines at once costs one
 * system call per chunk. An idle connection holds no output buffer.
 *
 * A peer that sends lines but does not read the echoes fills the
 * transport's queue; past the high watermark the line receiver is paused
 * (no more lines are delivered and the socket is not read), and it resumes
 * once the queue drained.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine.h>
#include <twine/line.h>

/* Longest max-length an operator may ask for. */
#define LINE_MAX_LENGTH_LIMIT (1 << 30)

typedef struct {
    tw_factory base;
    size_t max_length;
    char delimiter[2];
    size_t delimiter_len;
} line_factory;

typedef struct {
    tw_protocol base;
    tw_line_receiver lr;
} line_protocol;

static void on_line(tw_line_receiver *lr, const char *line, size_t len)
{
    tw_line_receiver_send_line(lr, line, len);
}

static void on_too_long(tw_line_receiver *lr, const char *data, size_t len)
{
    (void)data;
    (void)len;
    line_protocol *lp = tw_container_of(lr, line_protocol, lr);
    tw_address peer;
    char where[TW_ADDRSTRLEN] = "the peer";
    if (tw_transport_get_peer(lp->base.transport, &peer) == 0)
        tw_address_format(&peer, where, sizeof where);
    tw_log(TW_LOG_INFO, "line", "%s sent a line longer than %zu bytes; closing", where,
           tw_line_receiver_max_length(lr));
    tw_transport_set_close_reason(lp->base.transport, TW_CLOSE_TOO_LONG);
    tw_transport_lose_connection(lp->base.transport);
}

static const tw_line_receiver_ops line_receiver_ops = {
    .line_received = on_line,
    .line_length_exceeded = on_too_long,
};

static void line_data(tw_protocol *p, const void *data, size_t len)
{
    line_protocol *lp = tw_container_of(p, line_protocol, base);
    tw_line_receiver_data_received(&lp->lr, data, len);
}

static void line_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    (void)reason;
}

static void line_pause(tw_protocol *p)
{
    tw_line_receiver_pause_producing(&tw_container_of(p, line_protocol, base)->lr);
}

static void line_resume(tw_protocol *p)
{
    line_protocol *lp = tw_container_of(p, line_protocol, base);
    tw_line_receiver_resume_producing(&lp->lr);
}

static void line_destroy(tw_protocol *p)
{
    line_protocol *lp = tw_container_of(p, line_protocol, base);
    tw_line_receiver_cleanup(&lp->lr);
    free(lp);
}

static size_t line_buffered_input(tw_protocol *p)
{
    return tw_line_receiver_buffered(&tw_container_of(p, line_protocol, base)->lr);
}

static const tw_protocol_ops line_protocol_ops = {
    .buffered_input = line_buffered_input,
    .data_received = line_data,
    .connection_lost = line_lost,
    .pause_producing = line_pause,
    .resume_producing = line_resume,
    .destroy = line_destroy,
};

static tw_protocol *line_build(tw_factory *base, const tw_address *peer)
{
    (void)peer;
    line_factory *f = tw_container_of(base, line_factory, base);
    line_protocol *lp = calloc(1, sizeof *lp);
    if (lp == NULL)
        return NULL;
    lp->base.ops = &line_protocol_ops;
    tw_line_receiver_init(&lp->lr, &lp->base, &line_receiver_ops);
    tw_line_receiver_set_delimiter(&lp->lr, f->delimiter, f->delimiter_len);
    tw_line_receiver_set_max_length(&lp->lr, f->max_length);
    return &lp->base;
}

static void line_factory_destroy(tw_factory *base)
{
    free(tw_container_of(base, line_factory, base));
}

static const tw_factory_ops line_factory_ops = {
    .build_protocol = line_build,
    .destroy = line_factory_destroy,
};

static const tw_option_spec line_options[] = {
    {"delimiter", TW_OPTION_STRING, "crlf", "line delimiter: crlf (\\r\\n) or lf (\\n)"},
    {"max-length", TW_OPTION_INT, "16384", "longest line in bytes; a longer one closes"},
    {NULL, 0, NULL, NULL},
};

static tw_factory *line_make_factory(tw_reactor *r, const tw_options *opts, char *err,
                                     size_t errlen)
{
    (void)r;
    const char *delim = tw_options_get(opts, "delimiter");
    long long max = tw_options_get_int(opts, "max-length", TW_LINE_DEFAULT_MAX_LENGTH);
    if (delim == NULL)
        delim = "crlf";
    if (strcmp(delim, "crlf") != 0 && strcmp(delim, "lf") != 0) {
        snprintf(err, errlen, "option 'delimiter' must be 'lf' or 'crlf', not '%s'", delim);
        return NULL;
    }
    if (max < 1 || max > LINE_MAX_LENGTH_LIMIT) {
        snprintf(err, errlen, "option 'max-length' must be from 1 to %d, not %lld",
                 LINE_MAX_LENGTH_LIMIT, max);
        return NULL;
    }
    line_factory *f = calloc(1, sizeof *f);
    if (f == NULL) {
        snprintf(err, errlen, "out of memory creating the line factory");
        return NULL;
    }
    tw_factory_init(&f->base, &line_factory_ops);
    f->max_length = (size_t)max;
    if (strcmp(delim, "crlf") == 0) {
        f->delimiter[0] = '\r';
        f->delimiter[1] = '\n';
        f->delimiter_len = 2;
    } else {
        f->delimiter[0] = '\n';
        f->delimiter_len = 1;
    }
    return &f->base;
}

TW_PLUGIN(line, .type = TW_PLUGIN_PROTOCOL, .name = "line",
          .description = "line echo: sends back every line (options delimiter, max-length)",
          .options = line_options,
          .ctx = &(const tw_plugin_protocol){.make_factory = line_make_factory});
