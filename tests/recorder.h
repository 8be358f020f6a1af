/* SPDX-License-Identifier: MIT */
/*
 * A recording protocol and factory for the transport tests: it notes every
 * callback in order, counts bytes, and can be told to misbehave (close or
 * abort from inside data_received, refuse connections, opt in to
 * half-close) so that one protocol serves many specifications.
 */
#ifndef TWINE_TEST_RECORDER_H
#define TWINE_TEST_RECORDER_H

#include <check.h>
#include <twine.h>

enum { EV_MADE = 1, EV_DATA, EV_LOST, EV_DESTROY, EV_READ_LOST, EV_WRITE_LOST, EV_PAUSE, EV_RESUME };

typedef struct {
    tw_factory base;
    int starts, stops;
    int refuse;
    int close_in_data; /* lose_connection from inside data_received */
    int abort_in_data; /* abort_connection from inside data_received */
    int half_close;    /* opt in to read_connection_lost */
    tw_reactor *r;
    /* what the protocols saw */
    int events[64];
    int nevents;
    int lost_code;
    char lost_message[256];
    size_t received, max_chunk;
    int built, destroyed;
    int pauses, resumes;
    tw_protocol *last;
} rec_factory;

void rec_init(rec_factory *rf, tw_reactor *r);

/* Run the loop until *done is nonzero or ms pass. */
void spin(tw_reactor *r, const int *done, int ms);
void spin_ms(tw_reactor *r, int ms);

/* A socketpair with one end adopted into the reactor; *peer is the other. */
int adopt_pair(tw_reactor *r, rec_factory *rf, int *peer);

/* Listen on host:0 with @p opts (may be NULL); *port receives the port. */
tw_listener *listen_on(tw_reactor *r, const char *host, rec_factory *rf,
                       const tw_listen_options *opts, int *port);

/*
 * A recording client factory: the recorder, plus what a client factory
 * alone hears (client_connection_failed / client_connection_lost).
 */
typedef struct {
    rec_factory rf; /* first: the factory pointer is ours too */
    tw_factory_ops ops;
    int failed, lost;
    int failed_code, lost_code;
    int protocol_lost_first; /* the protocol was destroyed before lost ran */
    char failed_message[512];
} tu_client_factory;

void tu_client_init(tu_client_factory *cf, tw_reactor *r);

/* What a deferred fired with. */
typedef struct {
    int fired, ok;
    void *value; /* taken out of the result: the test owns it */
    tw_free_fn free_fn;
    int code;
    char message[512];
    int made_before; /* with tu_watch_made: connection_made had run by then */
    const rec_factory *watch_rf;
} tu_outcome;

/* The callback and errback that fill a tu_outcome (arg). */
void tu_out_cb(tw_deferred *d, tw_result *res, void *arg);
void tu_out_eb(tw_deferred *d, tw_result *res, void *arg);

/* Watch @p d (which must not be NULL) and drop the caller's reference. */
void tu_watch(tw_deferred *d, tu_outcome *o);

/* tu_watch, also noting whether @p rf's protocol was made when it fired. */
void tu_watch_made(tw_deferred *d, tu_outcome *o, const rec_factory *rf);

#endif
