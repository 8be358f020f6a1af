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

#endif
