/* SPDX-License-Identifier: MIT */
/*
 * The connection race of Happy Eyeballs (RFC 8305) that connect.c runs once
 * it has its addresses: see happy.c. Internal to libtwine.
 */
#ifndef TWINE_HAPPY_INTERNAL_H
#define TWINE_HAPPY_INTERNAL_H

#include <twine/address.h>
#include <twine/reactor.h>
#include <twine/resolve.h>

typedef struct tw__race tw__race;

/*
 * How a race ended, told exactly once. Either @p fd >= 0: the connected
 * socket (non-blocking, close-on-exec), now the callee's, and @p addr its
 * peer; or @p fd < 0: every address failed, @p err is the negated errno of
 * the last failure and @p addr the address it was for. The race is gone by
 * the time this runs.
 */
typedef void (*tw__race_fn)(void *arg, int fd, const tw_address *addr, int err);

/*
 * Race connections to @p addrs (copied; at least one address), IPv6 and
 * IPv4 interleaved starting with IPv6, a new attempt every @p delay seconds
 * or as soon as the previous one fails. @p bind_address (len 0 for none) is
 * bound first; addresses of another family fail with -EAFNOSUPPORT. With
 * @p more, the race is not lost while addresses may still come through
 * tw__race_add().
 *
 * *@p out is set before the first attempt starts, and @p done may run
 * before this returns (every address failed at once); the caller touches
 * nothing @p done may have freed after the call.
 * @return 0, or -ENOMEM (then @p done never runs).
 */
int tw__race_start(tw_reactor *r, const tw_address_list *addrs, const tw_address *bind_address,
                   double delay, int more, tw__race_fn done, void *arg, tw__race **out);

/*
 * Add @p addrs (copied; NULL for none) to those still to try, as RFC 8305
 * section 4 sorts late answers in; with @p last, none will follow, and the
 * race may be lost before this returns (as above).
 * @return 0, or -ENOMEM (then nothing changed and @p done has not run).
 */
int tw__race_add(tw__race *race, const tw_address_list *addrs, int last);

/* End a race that has not told its outcome: every socket is closed and
 * @p done never runs. */
void tw__race_cancel(tw__race *race);

#endif
