/* SPDX-License-Identifier: MIT */
/*
 * An in-memory transport for unit tests: a real tw_transport_ops
 * implementation with no socket behind it, so that a protocol can be driven
 * byte by byte, deterministically, without a reactor.
 *
 * What it does, mirroring the stream transport's contract:
 *   - every accepted write is appended to an output record the test reads
 *     back (tu_mem_output) and can clear;
 *   - lose_connection / abort_connection / lose_write_connection are
 *     counted, and from then on writes (empty ones too) are refused with
 *     TW_ESTATE, as a closing stream refuses them; connection_lost is NOT
 *     called from inside the protocol's call: the test delivers it with
 *     tu_mem_run_close() (what the loop would do next) or tu_mem_lose();
 *   - pause_producing / resume_producing of reading are counted and tracked
 *     in @c reading_paused;
 *   - in "hold" mode written bytes also count as queued in a simulated
 *     kernel-refused queue: crossing the high watermark (default
 *     TW_WRITE_HIGH_WATERMARK) calls the protocol's pause_producing, and
 *     tu_mem_drain() going down to the low watermark calls resume_producing,
 *     exactly as the stream transport does;
 *   - a registered producer (tw_transport_register_producer) is driven the
 *     same way: a streaming one is paused and resumed at the watermarks, a
 *     pull one is asked for more by tu_mem_drain() each time the simulated
 *     queue empties (tu_mem_pull() asks it explicitly), and it gets
 *     stop_producing when the connection is lost;
 *   - @c write_error, when nonzero, is returned by every write (to test a
 *     protocol's error paths).
 *
 * tu_mem_feed() calls data_received whatever @c reading_paused says: the
 * test decides what "arrives" while reading is paused (bytes already in
 * flight). Like the stream transport, it delivers nothing once the protocol
 * lost or aborted its connection, or after connection_lost.
 *
 * The fields are public to the tests: read the counters directly.
 */
#ifndef TWINE_TESTS_MEMTRANSPORT_H
#define TWINE_TESTS_MEMTRANSPORT_H

#include <stddef.h>
#include <twine.h>

typedef struct tu_mem {
    tw_transport base; /* base.protocol is the protocol under test */

    char *out; /* everything written, in order */
    size_t out_len, out_cap;
    size_t writes; /* writev calls that were accepted */
    int write_error;

    int lose_calls, abort_calls, lose_write_calls;
    int pause_calls, resume_calls; /* of reading, by the protocol */
    int reading_paused;
    int closing; /* lose or abort was called */
    int write_shut_requested;

    int hold;           /* writes stay queued until tu_mem_drain() */
    size_t queued;      /* bytes in the simulated queue */
    size_t high_wm, low_wm;
    int producer_paused; /* the protocol's pause_producing was called */
    int producer_pause_calls, producer_resume_calls;
    tw_producer *producer; /* registered producer, borrowed */
    int streaming;
    int registered_paused; /* the registered streaming producer was paused */

    int made, lost; /* connection_made / connection_lost were delivered */
    int lost_code;
    int write_lost;  /* write_connection_lost was delivered */
    tw_factory *factory; /* set by tu_mem_open() */

    tw_address peer, host;
} tu_mem;

/*
 * Attach a new in-memory transport to @p p (p->transport is set) and call
 * its connection_made. The transport owns @p p from now on: tu_mem_free()
 * calls p->ops->destroy when it is set. @return NULL on allocation failure.
 */
tu_mem *tu_mem_new(tw_protocol *p);

/*
 * Build a protocol with @p f (peer 127.0.0.1:40000), count the connection
 * as a user of @p f and call connection_made. @return NULL if the factory
 * refused or memory ran out.
 */
tu_mem *tu_mem_open(tw_factory *f);

/* Deliver bytes to data_received; ignored once closing or lost (see above). */
void tu_mem_feed(tu_mem *m, const void *data, size_t len);

/* tu_mem_feed() of a NUL-terminated string. */
void tu_mem_feed_str(tu_mem *m, const char *s);

/* The bytes written so far (not NUL-terminated; may be NULL when empty). */
const char *tu_mem_output(const tu_mem *m, size_t *len);

/* Whether the output is exactly the NUL-terminated @p s. */
int tu_mem_output_is(const tu_mem *m, const char *s);

/* Forget the output recorded so far. */
void tu_mem_clear_output(tu_mem *m);

/* Turn hold mode on or off (see above). Turning it off drains everything. */
void tu_mem_set_hold(tu_mem *m, int on);

/*
 * Let the simulated kernel take @p n queued bytes ((size_t)-1: all), calling
 * resume_producing when the queue falls to the low watermark.
 */
void tu_mem_drain(tu_mem *m, size_t n);

/* Ask a registered pull producer for its next piece. @return 0, or -1 if none. */
int tu_mem_pull(tu_mem *m);

/*
 * Do what the loop would do after the protocol's call returned: deliver
 * write_connection_lost after lose_write_connection, and connection_lost
 * (TW_EABORTED after abort, TW_EDONE after lose once the queue is empty).
 * @return 1 if connection_lost was delivered now, else 0.
 */
int tu_mem_run_close(tu_mem *m);

/* The peer went away: deliver connection_lost(@p code) unless already done. */
void tu_mem_lose(tu_mem *m, int code);

/*
 * Deliver connection_lost if it has not run (TW_ECONNLOST unless the
 * protocol closed), destroy the protocol, release the factory user counted
 * by tu_mem_open(), and free @p m. NULL is ignored.
 */
void tu_mem_free(tu_mem *m);

#endif
