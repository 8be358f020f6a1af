/* SPDX-License-Identifier: MIT */
/*
 * client: connect to a stream server, send one message, print what comes
 * back, exit. It is the client half of the classic echo pair, written the
 * reactor way: nothing blocks, and each step that takes time is a deferred.
 * tw_connect_string() gives the connection; its callback sends the message
 * and hands the chain a second deferred, the reply, which the protocol
 * fires once as many bytes came back as were sent. One timeout covers both.
 *
 *   client [-n] [-t SECONDS] ENDPOINT MESSAGE
 *
 *   ENDPOINT  where to connect: tcp:HOST:PORT or unix:PATH (endpoint.h)
 *   -n        append a newline to MESSAGE, as line protocols expect
 *   -t        give up after SECONDS (default 10)
 *
 * It prints the reply and exits 0, or prints why there was none on stderr
 * and exits 1:
 *
 *   reactord --protocol echo --listen unix:/tmp/echo.sock &
 *   client unix:/tmp/echo.sock hello        # prints hello
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine.h>
#include <unistd.h>

/* One connection, so its state is static: the factory hands out app.proto. */
static struct {
    tw_reactor *reactor;
    tw_factory factory;
    tw_protocol proto;
    tw_deferred *reply;
    char *msg, *buf;
    size_t len, have;
    int status;
} app;

static void data_received(tw_protocol *p, const void *data, size_t len)
{
    (void)p;
    if (len > app.len - app.have)
        len = app.len - app.have; /* more than we sent: not an echo; ignore the rest */
    memcpy(app.buf + app.have, data, len);
    app.have += len;
    if (app.have == app.len && !tw_deferred_called(app.reply))
        tw_deferred_callback(app.reply, app.buf, NULL);
}

/* Lost before the whole reply came: the reply fails, saying why. */
static void connection_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    tw_failure *f = tw_failure_ref((tw_failure *)reason);
    if (!tw_deferred_called(app.reply))
        tw_deferred_errback(app.reply, tw_failure_wrap(f, TW_ECONNLOST, "closed after %zu of %zu B",
                                                       app.have, app.len));
    else
        tw_failure_unref(f);
}

static const tw_protocol_ops client_ops = {
    .data_received = data_received,
    .connection_lost = connection_lost,
};

static tw_protocol *build_protocol(tw_factory *f, const tw_address *peer)
{
    (void)f;
    (void)peer;
    app.proto.ops = &client_ops;
    return &app.proto;
}

static const tw_factory_ops factory_ops = {.build_protocol = build_protocol};

/* The connection is up: send, then make the chain wait for the reply. */
static void on_connected(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)arg;
    tw_protocol *p = tw_result_value(res);
    tw_transport_write(p->transport, app.msg, app.len);
    if (app.len == 0)
        tw_deferred_callback(app.reply, app.buf, NULL);
    tw_result_set_deferred(res, app.reply);
}

static void on_reply(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)arg;
    const char *reply = tw_result_value(res);
    fwrite(reply, 1, app.len, stdout);
    if (app.len == 0 || reply[app.len - 1] != '\n')
        putchar('\n');
    tw_reactor_stop(app.reactor);
}

static void on_failure(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)arg;
    char why[512];
    tw_failure *f = tw_result_take_failure(res); /* taking it handles it */
    tw_failure_format(f, why, sizeof why);
    fprintf(stderr, "client: %s\n", why);
    tw_failure_unref(f);
    app.status = 1;
    tw_reactor_stop(app.reactor);
}

int main(int argc, char **argv)
{
    int newline = 0, opt;
    double timeout = 10;
    while ((opt = getopt(argc, argv, "nt:")) != -1) {
        if (opt == 'n')
            newline = 1;
        else if (opt != 't' || (timeout = strtod(optarg, NULL)) <= 0)
            argc = 0; /* a bad option: show the usage below */
    }
    if (argc - optind != 2) {
        fprintf(stderr, "usage: client [-n] [-t SECONDS] ENDPOINT MESSAGE\n");
        return 2;
    }
    app.len = strlen(argv[optind + 1]) + (size_t)newline;
    app.msg = malloc(app.len + 1);
    app.buf = malloc(app.len + 1);
    app.reactor = tw_reactor_new();
    app.reply = tw_deferred_new(NULL, NULL);
    if (app.msg == NULL || app.buf == NULL || app.reactor == NULL || app.reply == NULL)
        return 1; /* out of memory */
    snprintf(app.msg, app.len + 1, "%s%s", argv[optind + 1], newline ? "\n" : "");
    tw_factory_init(&app.factory, &factory_ops);

    /* connected -> sent -> replied, all within the timeout; then report and stop */
    tw_deferred *d = tw_connect_string(app.reactor, argv[optind], &app.factory);
    if (d == NULL || tw_deferred_add_callback(d, on_connected, NULL) < 0 ||
        tw_deferred_add_timeout(d, app.reactor, timeout) < 0 ||
        tw_deferred_add_callbacks(d, on_reply, on_failure, NULL) < 0)
        return 1; /* out of memory */
    tw_reactor_run(app.reactor);
    tw_deferred_unref(d);
    tw_deferred_unref(app.reply);
    tw_reactor_free(app.reactor);
    free(app.msg);
    free(app.buf);
    return app.status;
}
