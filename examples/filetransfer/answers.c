/* SPDX-License-Identifier: MIT */
/*
 * ftclient's handling of the server's frames: the answer to a put ("ok"
 * with the server's SHA-256, which must be ours), or to a get ("ok", then
 * the body, written to LOCAL.part and renamed to LOCAL only once its
 * SHA-256 matched), or an error frame, which is printed as it came.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "ftclient.h"

/* A get's body arrived whole: keep it if it is the file the server hashed. */
static void got_body(void)
{
    char sha[FT_HEX_LEN + 1];
    const char *bad = ft_sink_check(&app.sink, app.sha, sha);
    if (bad == NULL && rename(app.part, app.local) < 0)
        bad = strerror(errno);
    if (bad != NULL)
        client_finish(1, "%s was not saved: %s", app.local, bad);
    else
        client_finish(0, "fetched %s into %s: %llu bytes, sha256 %s", app.name, app.local,
                      (unsigned long long)app.size, sha);
}

/* The header of a get's answer: get ready for its body. */
static void start_body(const ft_header *h)
{
    app.sink.fd = open(app.part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (app.sink.fd < 0 || (app.sink.sha = ft_sha_new()) == NULL) {
        client_finish(1, "cannot write %s: %s", app.part, strerror(errno));
        return;
    }
    app.sink.left = app.size = h->size;
    memcpy(app.sha, h->sha, sizeof app.sha);
    if (h->size == 0)
        got_body();
}

void client_answer(tw_string_receiver *sr, const void *data, size_t len)
{
    (void)sr;
    ft_header h;
    int rc;
    if (app.finished)
        return;
    if (app.sink.sha != NULL) { /* the body of a get */
        if ((rc = ft_sink_write(&app.sink, data, len)) < 0)
            client_finish(1, "the server sent more than it announced");
        else if (rc == 1)
            got_body();
    } else if (ft_parse(data, len, &h) < 0) {
        client_finish(1, "the server's answer is not a header frame");
    } else if (strcmp(h.verb, "error") == 0) {
        client_finish(1, "server: %s", h.text);
    } else if (strcmp(h.verb, "ok") != 0) {
        client_finish(1, "the server's answer is not 'ok' or 'error'");
    } else if (app.put && strcmp(h.sha, app.sha) != 0) {
        client_finish(1, "the server's SHA-256 of %s is %s, not %s", h.text, h.sha, app.sha);
    } else if (app.put) {
        client_finish(0, "stored %s as %s: %llu bytes, sha256 %s", app.local, h.text,
                      (unsigned long long)h.size, h.sha);
    } else {
        start_body(&h);
    }
}
