/* SPDX-License-Identifier: MIT */
/*
 * A well-formed protocol module for the loader tests, built as good.so. It
 * greets each client with its "greeting" option and a newline, then echoes
 * (upper-cased with shout=true), so a test can see both that the module was
 * loaded and that its options arrived.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <twine.h>

typedef struct {
    tw_factory base;
    char *greeting;
    int shout;
} good_factory;

static void good_made(tw_protocol *p)
{
    good_factory *gf = tw_container_of(p->factory, good_factory, base);
    tw_transport_write(p->transport, gf->greeting, strlen(gf->greeting));
    tw_transport_write(p->transport, "\n", 1);
}

static void good_data(tw_protocol *p, const void *data, size_t len)
{
    good_factory *gf = tw_container_of(p->factory, good_factory, base);
    if (!gf->shout) {
        tw_transport_write(p->transport, data, len);
        return;
    }
    char buf[4096];
    for (size_t at = 0; at < len; at += sizeof buf) {
        size_t n = len - at < sizeof buf ? len - at : sizeof buf;
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)toupper(((const unsigned char *)data)[at + i]);
        tw_transport_write(p->transport, buf, n);
    }
}

static void good_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    (void)reason;
}

static void good_destroy(tw_protocol *p)
{
    free(p);
}

static const tw_protocol_ops good_ops = {
    .connection_made = good_made,
    .data_received = good_data,
    .connection_lost = good_lost,
    .destroy = good_destroy,
};

static tw_protocol *good_build(tw_factory *f, const tw_address *peer)
{
    (void)f;
    (void)peer;
    tw_protocol *p = calloc(1, sizeof *p);
    if (p != NULL)
        p->ops = &good_ops;
    return p;
}

static void good_factory_destroy(tw_factory *f)
{
    good_factory *gf = tw_container_of(f, good_factory, base);
    free(gf->greeting);
    free(gf);
}

static const tw_factory_ops good_factory_ops = {
    .build_protocol = good_build,
    .destroy = good_factory_destroy,
};

static tw_factory *good_make_factory(tw_reactor *r, const tw_options *opts, char *err,
                                     size_t errlen)
{
    (void)r;
    good_factory *gf = calloc(1, sizeof *gf);
    const char *greeting = tw_options_get(opts, "greeting");
    if (gf == NULL || (gf->greeting = strdup(greeting ? greeting : "")) == NULL) {
        free(gf);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    gf->shout = tw_options_get_bool(opts, "shout", 0);
    if (tw_options_get_int(opts, "fail", 0) != 0) {
        free(gf->greeting);
        free(gf);
        snprintf(err, errlen, "the fail option asked this module to refuse to start");
        return NULL;
    }
    tw_factory_init(&gf->base, &good_factory_ops);
    return &gf->base;
}

static const tw_option_spec good_options[] = {
    {"greeting", TW_OPTION_STRING, "hello", "the line sent to each new client"},
    {"shout", TW_OPTION_BOOL, "false", "echo in upper case"},
    {"fail", TW_OPTION_INT, "0", "nonzero: refuse to make a factory"},
    {NULL, 0, NULL, NULL},
};

TW_PLUGIN(good, .type = TW_PLUGIN_PROTOCOL, .name = "good",
          .description = "greets, then echoes (a test module)",
          .options = good_options,
          .ctx = &(const tw_plugin_protocol){.make_factory = good_make_factory});
