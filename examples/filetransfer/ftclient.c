/* SPDX-License-Identifier: MIT */
/*
 * ftclient: the client of the filetransfer module, on the same frames (ft.h).
 *
 *   ftclient ENDPOINT get NAME [LOCAL]   fetch NAME into LOCAL (default: its last component)
 *   ftclient ENDPOINT put LOCAL [NAME]   store LOCAL as NAME (default: LOCAL)
 *
 * A put hashes LOCAL (the header carries the SHA-256), then streams it
 * through a pull producer. A get writes LOCAL.part as the frames arrive and
 * renames it to LOCAL only if the SHA-256 matches (answers.c). It prints one
 * line and exits 0, or says why not on stderr (the server's error frame, a
 * mismatch, a lost connection) and exits 1.
 *
 * This half holds the command line and the connection: tw_connect_string()
 * gives a deferred, whose callback sends the request.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ftclient.h"

ft_client app = {.fd = -1, .sink.fd = -1};

void client_finish(int status, const char *fmt, ...)
{
    FILE *out = status == 0 ? stdout : stderr;
    va_list ap;
    va_start(ap, fmt);
    fputs(status == 0 ? "" : "ftclient: ", out);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    va_end(ap);
    if (status != 0 && app.sink.fd >= 0)
        unlink(app.part); /* what a failed get wrote */
    app.finished = 1;
    app.status = status;
    tw_reactor_stop(app.reactor);
}

/* The connection's outcome: send the request, or say why there is none. */
static void connected(tw_deferred *d, tw_result *res, void *arg)
{
    (void)d;
    (void)arg;
    if (tw_result_is_failure(res)) {
        client_finish(1, "%s", tw_failure_message(tw_result_failure(res)));
        tw_failure_unref(tw_result_take_failure(res)); /* handled */
    } else if (app.put) {
        ft_send_header(&app.sr, "put", app.size, app.sha, app.name);
        ft_send_file(&app.sender, &app.sr, app.fd, app.size, NULL);
    } else {
        ft_send_header(&app.sr, "get", 0, NULL, app.name);
    }
}

static void data_received(tw_protocol *p, const void *data, size_t len)
{
    (void)p;
    tw_string_receiver_data_received(&app.sr, data, len);
}

static void connection_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    if (!app.finished)
        client_finish(1, "the connection closed first: %s", tw_failure_message(reason));
}

static const tw_protocol_ops client_ops = {
    .data_received = data_received,
    .connection_lost = connection_lost,
};

/* One connection: the factory hands out the one protocol. */
static tw_protocol *build_protocol(tw_factory *f, const tw_address *peer)
{
    (void)f;
    (void)peer;
    return &app.proto;
}

static const tw_factory_ops factory_ops = {.build_protocol = build_protocol};
static const tw_string_receiver_ops frame_ops = {.string_received = client_answer};

int main(int argc, char **argv)
{
    app.put = argc >= 4 && strcmp(argv[2], "put") == 0;
    if ((argc != 4 && argc != 5) || (!app.put && strcmp(argv[2], "get") != 0)) {
        fprintf(stderr, "usage: ftclient ENDPOINT get NAME [LOCAL] | put LOCAL [NAME]\n");
        return 2;
    }
    app.name = argv[app.put && argc == 5 ? 4 : 3];
    app.local = argv[!app.put && argc == 5 ? 4 : 3];
    if (!app.put && argc == 4 && strrchr(app.name, '/') != NULL)
        app.local = strrchr(app.name, '/') + 1;
    snprintf(app.part, sizeof app.part, "%s.part", app.local);
    if (app.put && ((app.fd = open(app.local, O_RDONLY | O_CLOEXEC)) < 0 ||
                    (errno = -ft_sha_fd(app.fd, app.sha, &app.size)) != 0)) {
        fprintf(stderr, "ftclient: cannot read %s: %s\n", app.local, strerror(errno));
        return 1;
    }

    tw_factory factory;
    tw_factory_init(&factory, &factory_ops);
    app.proto.ops = &client_ops;
    tw_string_receiver_init(&app.sr, &app.proto, TW_FRAMING_INT32, &frame_ops);
    tw_string_receiver_set_max_length(&app.sr, FT_CHUNK);
    tw_deferred *d = NULL;
    if ((app.reactor = tw_reactor_new()) == NULL ||
        (d = tw_connect_string(app.reactor, argv[1], &factory)) == NULL ||
        tw_deferred_add_both(d, connected, NULL) < 0) {
        fprintf(stderr, "ftclient: out of memory\n");
        return 1;
    }
    tw_reactor_set_shutdown_timeout(app.reactor, 2); /* after a refusal, do not wait long */
    tw_reactor_run(app.reactor);
    tw_deferred_unref(d);
    tw_reactor_free(app.reactor);
    tw_string_receiver_cleanup(&app.sr);
    EVP_MD_CTX_free(app.sink.sha);
    if (app.fd >= 0)
        close(app.fd);
    if (app.sink.fd >= 0)
        close(app.sink.fd);
    return app.status;
}
