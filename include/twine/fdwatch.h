/* SPDX-License-Identifier: MIT */
/*
 * Watching any descriptor (Twisted's IReactorFDSet: addReader, addWriter,
 * removeReader, removeWriter): the reactor calls you back when a descriptor
 * you own is readable or writable, through the same poller as its own
 * connections. Reading and writing are yours to do.
 *
 * A descriptor the poller cannot watch (a regular file: epoll refuses them)
 * is always ready, as the kernel would say if it could: its callbacks run
 * once per loop pass while they are wanted, so other events go on between
 * them, as Twisted's continuous polling does for such files.
 *
 * Lifecycle: tw_reactor_watch_fd() starts a watch; tw_fd_watch_set()
 * changes what it waits for; tw_fd_watch_close() ends it (never closing
 * the descriptor, which stays yours), and may be called from the watch's
 * own callbacks. Watches left open when the reactor is freed are closed by
 * tw_reactor_free().
 */
#ifndef TWINE_FDWATCH_H
#define TWINE_FDWATCH_H

#include <twine/common.h>
#include <twine/reactor.h>

TW_BEGIN_DECLS

/** A watch on one descriptor, owned by the reactor until closed. */
typedef struct tw_fd_watch tw_fd_watch;

/** What a watch waits for. */
enum {
    TW_FD_READABLE = 1, /**< readable, at EOF, or in error */
    TW_FD_WRITABLE = 2  /**< writable, or in error */
};

/**
 * A watch's callback: @p fd is ready. The readable callback also hears of
 * a hangup or an error (the read that follows reports it); the writable
 * one hears of an error when it is the only one wanted.
 */
typedef void (*tw_fd_fn)(tw_fd_watch *w, int fd, void *arg);

/**
 * Watch @p fd: @p on_readable runs while it is readable and
 * @p on_writable while it is writable, each only while its bit is in the
 * watch's events (TW_FD_READABLE and TW_FD_WRITABLE for the callbacks that
 * are not NULL, at the start). The descriptor stays the caller's and must
 * stay open until the watch is closed; it is not made non-blocking.
 * Nothing is called back before this returns.
 * @param out receives the watch, valid until tw_fd_watch_close().
 * @return 0; -EINVAL for a negative @p fd or no callback at all; -EBADF
 *         for a closed one; -EEXIST, with the epoll poller, when the
 *         descriptor is watched already (watch a dup() of it instead);
 *         -ENOMEM; another negated errno from the poller.
 */
TW_API int tw_reactor_watch_fd(tw_reactor *r, int fd, tw_fd_fn on_readable, tw_fd_fn on_writable,
                               void *arg, tw_fd_watch **out);

/**
 * Wait for @p events (TW_FD_* bits whose callbacks exist; the others are
 * ignored) from now on: 0 pauses the watch, as removeReader plus
 * removeWriter do.
 * @return 0, or a negated errno from the poller (the watch then waits for
 *         nothing).
 */
TW_API int tw_fd_watch_set(tw_fd_watch *w, int events);

/** @return the TW_FD_* events @p w waits for now. */
TW_API int tw_fd_watch_events(const tw_fd_watch *w);

/**
 * Stop watching and release @p w; the descriptor is left open. Safe from
 * inside the watch's own callbacks (no callback runs after this returns).
 * NULL is ignored.
 */
TW_API void tw_fd_watch_close(tw_fd_watch *w);

TW_END_DECLS

#endif
