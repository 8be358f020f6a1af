/* SPDX-License-Identifier: MIT */
/*
 * Child processes as transports (Twisted's spawnProcess, ProcessProtocol
 * and ProcessEndpoint).
 *
 * tw_spawn_process() starts a program and connects a process protocol to
 * the descriptors it shares with the child: by default the child's stdin
 * (fd 0), which the parent writes, and its stdout (1) and stderr (2),
 * which the parent reads, each a pipe. Any other mapping (Twisted's
 * childFDs), or a pseudo-terminal, is an option.
 *
 * Lifecycle of a tw_process_protocol:
 *
 *     connection_made ──> child_data_received(fd, ...)* ──> child_connection_lost(fd)
 *       (per pipe, in any order)              process_exited (the child was reaped)
 *                         ──> process_ended (both: it exited and every pipe closed)
 *                         ──> destroy
 *
 * Children are reaped by the reactor that spawned them, on SIGCHLD, which
 * each reactor with children watches through libevent's signal events
 * (once per reactor; with several reactors, whichever one the signal
 * reaches wakes the others). Only twine's own children are reaped
 * (waitpid on their pids): children the program starts otherwise are left
 * to it. libevent delivers signals to one event_base at a time, so a
 * program running several reactors that also watch other signals should
 * know that SIGCHLD's registration moves that delivery.
 *
 * A child that outlives its reactor: tw_reactor_free() closes the pipes
 * (the child sees EOF on stdin and EPIPE on its writes), releases the
 * protocol without process_ended, and neither kills nor reaps the child,
 * which stays a zombie after it exits until the program reaps it or
 * exits. Signal it first (tw_process_signal()) and let the reactor run
 * until process_ended when that matters. A graceful stop
 * (tw_reactor_stop()) closes the pipes after flushing stdin and waits for
 * the exit up to the shutdown timeout.
 */
#ifndef TWINE_PROCESS_H
#define TWINE_PROCESS_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <twine/common.h>
#include <twine/deferred.h>
#include <twine/protocol.h>
#include <twine/reactor.h>
#include <twine/transport.h>

TW_BEGIN_DECLS

/** A running (or exited) child and its pipes; owned by the reactor. */
typedef struct tw_process tw_process;
typedef struct tw_process_protocol tw_process_protocol;

/** How a child ended. */
typedef struct tw_process_status {
    int exited;      /**< nonzero: it called exit(); exit_code is set */
    int exit_code;   /**< its exit status (0-255) when exited */
    int signal;      /**< the signal that killed it, or 0 */
    int core_dumped; /**< nonzero when killed with a core dump */
} tw_process_status;

typedef struct tw_process_protocol_ops {
    /** The child runs; pp->process is set. */
    void (*connection_made)(tw_process_protocol *pp);
    /** The child wrote @p len bytes on its descriptor @p child_fd. */
    void (*child_data_received)(tw_process_protocol *pp, int child_fd, const void *data, size_t len);
    /** The pipe of @p child_fd closed (EOF, an error, or closed by us). */
    void (*child_connection_lost)(tw_process_protocol *pp, int child_fd);
    /** The child was reaped; pipes may still be open. */
    void (*process_exited)(tw_process_protocol *pp, const tw_process_status *st);
    /** The child was reaped and all its pipes are closed: the end.
     *  pp->process answers calls here (writes and signals are refused)
     *  and is freed once this returns. */
    void (*process_ended)(tw_process_protocol *pp, const tw_process_status *st);
    /** Writes to stdin passed the high watermark (NULL: ignored). */
    void (*pause_producing)(tw_process_protocol *pp);
    /** ...and drained below the low one. */
    void (*resume_producing)(tw_process_protocol *pp);
    /** Release the protocol, last; NULL when it is not twine's to free. */
    void (*destroy)(tw_process_protocol *pp);
} tw_process_protocol_ops;

/** Embed in your own struct; recover yours with tw_container_of(). */
struct tw_process_protocol {
    const tw_process_protocol_ops *ops;
    tw_process *process; /**< read-only: set before connection_made */
};

/** What a child descriptor is connected to (Twisted's childFDs values). */
typedef enum tw_child_fd_kind {
    TW_CHILD_READ,    /**< a pipe the parent reads (the child writes): "r" */
    TW_CHILD_WRITE,   /**< a pipe the parent writes (the child reads): "w" */
    TW_CHILD_INHERIT  /**< the parent's descriptor parent_fd, shared as is */
} tw_child_fd_kind;

typedef struct tw_child_fd {
    int child_fd;          /**< the descriptor number in the child */
    tw_child_fd_kind kind;
    int parent_fd;         /**< TW_CHILD_INHERIT: the parent's descriptor */
} tw_child_fd;

/** Options of tw_spawn_process(); zero-initialize, then set what you need. */
typedef struct tw_process_options {
    /** The child's environment, "NAME=value" strings ending with NULL;
     *  NULL: the parent's (environ). */
    const char *const *env;
    /** The child's working directory; NULL: the parent's. */
    const char *cwd;
    /** Run as this user and group (only when the parent is root; a
     *  non-root parent asking for another id fails with -EPERM). Set
     *  set_ids to use them. */
    int set_ids;
    uid_t uid;
    gid_t gid;
    /** The child's descriptors, each mapped once; descriptors not listed
     *  are closed in the child. NULL: stdin written, stdout and stderr
     *  read (0 "w", 1 "r", 2 "r"). Ignored with use_pty. */
    const tw_child_fd *child_fds;
    size_t n_child_fds;
    /** Nonzero: stdin, stdout and stderr are one pseudo-terminal, the
     *  child's controlling terminal in a new session. Its output arrives
     *  as child_data_received(1, ...), writes go to its input. */
    int use_pty;
    /** Nonzero: the child leads a new process group (setpgid), so that
     *  tw_process_signal_group() reaches what it starts too, and a
     *  terminal's ^C aimed at the parent's group does not reach it. A pty
     *  child leads one anyway (its own session). */
    int new_process_group;
} tw_process_options;

/**
 * Start @p argv[0] with arguments @p argv (NULL-terminated; argv[0] is
 * looked up in the parent's PATH when it has no '/') and connect @p pp to
 * it. posix_spawn is used when it covers the options, fork and exec
 * otherwise; either way the child gets only the descriptors of its
 * mapping (every other one is closed), SIGPIPE at its default, and an
 * empty signal mask.
 *
 * @p pp is borrowed until its destroy (or, without destroy, until
 * process_ended or the reactor's free). connection_made runs before this
 * returns; nothing else does.
 * @param opts NULL for the defaults.
 * @param out if non-NULL, receives the process, valid until process_ended
 *        returned.
 * @return 0; -EINVAL for an empty @p argv or a bad mapping (a child fd
 *         listed twice or negative, an INHERIT of a closed descriptor);
 *         -ENOENT, -EACCES, ... (the exec's errno) when the program cannot
 *         run, in which case nothing was called back; -ENOMEM; -EAGAIN.
 */
TW_API int tw_spawn_process(tw_reactor *r, tw_process_protocol *pp, const char *const *argv,
                            const tw_process_options *opts, tw_process **out);

/** @return the child's pid; 0 once it was reaped. */
TW_API pid_t tw_process_pid(const tw_process *p);

/**
 * Write to the child's stdin (its descriptor 0, or the terminal). Never
 * blocks: what the pipe refuses is queued, with the transport's
 * watermarks (pause_producing/resume_producing on @p p's protocol, or the
 * registered producer).
 * @return 0; TW_ESTATE when stdin is closed or closing; -ENOMEM.
 */
TW_API int tw_process_write(tw_process *p, const void *data, size_t len);

/** Gathering form of tw_process_write(). */
TW_API int tw_process_writev(tw_process *p, const struct iovec *iov, int iovcnt);

/**
 * Write to the child's descriptor @p child_fd, which must be a
 * TW_CHILD_WRITE pipe (stdin is one). Watermarks apply to stdin only.
 * @return 0; -EBADF when @p child_fd is no open pipe the parent writes;
 *         TW_ESTATE when it is closing; -ENOMEM.
 */
TW_API int tw_process_write_to_child(tw_process *p, int child_fd, const void *data, size_t len);

/**
 * Close the child's stdin once what is queued was written: the child
 * reads EOF. child_connection_lost(0) follows from the loop. With a pty,
 * an end-of-file character (^D) is sent instead, as a terminal would.
 * @return 0; TW_ESTATE when already closed or closing.
 */
TW_API int tw_process_close_stdin(tw_process *p);

/**
 * Close the pipe of @p child_fd now (a pipe the parent reads, or one it
 * writes, dropping what is queued); child_connection_lost(@p child_fd)
 * follows from the loop. @return 0; -EBADF when no such pipe is open.
 */
TW_API int tw_process_close_child_fd(tw_process *p, int child_fd);

/**
 * Send @p sig to the child (Twisted's signalProcess).
 * @return 0; TW_ESTATE once the child was reaped (Twisted's
 *         ProcessExitedAlready); a negated errno from kill().
 */
TW_API int tw_process_signal(tw_process *p, int sig);

/**
 * Send @p sig to the child's whole process group: the child and every
 * process it started that stayed in its group (a shell pipeline, a
 * program's workers). The child must lead its group: started with
 * new_process_group or use_pty.
 * This still works after the child itself exited and was reaped, for
 * what it left running in the group (the group's id stays reserved while
 * any member lives); with none left, -ESRCH.
 * @return 0; -EINVAL when the child leads no group; a negated errno from
 *         kill() (-ESRCH: nobody is left in the group).
 */
TW_API int tw_process_signal_group(tw_process *p, int sig);

/**
 * Close every pipe: stdin once flushed, the others now (Twisted's
 * loseConnection on a process). The child is not signalled; process_ended
 * follows once it exits.
 */
TW_API void tw_process_lose_connection(tw_process *p);

/** Stop reading the child's output (all its pipes). Idempotent. */
TW_API void tw_process_pause_producing(tw_process *p);

/** Read again after tw_process_pause_producing(). Idempotent. */
TW_API void tw_process_resume_producing(tw_process *p);

/** @return the bytes queued for stdin and not yet taken by the pipe. */
TW_API size_t tw_process_write_buffer_size(tw_process *p);

/** Set stdin's watermarks (defaults 64 KiB / 16 KiB); @p low is clamped. */
TW_API void tw_process_set_write_watermarks(tw_process *p, size_t high, size_t low);

/**
 * Register a producer that writes to stdin, with the rules of
 * tw_transport_register_producer().
 * @return 0; TW_ESTATE when one is registered or stdin is closed (the
 *         producer then gets stop_producing at once).
 */
TW_API int tw_process_register_producer(tw_process *p, tw_producer *prod, int streaming);

/** Forget the registered producer without calling it. Idempotent. */
TW_API void tw_process_unregister_producer(tw_process *p);

/**
 * Connect to a command as a client stream (Twisted's ProcessEndpoint):
 * spawn @p argv with @p opts (child_fds must be NULL: the child's stdout
 * and stdin are the stream), build a protocol with @p f and give it a
 * transport that writes the child's stdin and delivers its stdout as
 * data_received. The child's stderr is logged at TW_LOG_INFO, a line per
 * read. The connection is lost when the child has exited and its pipes
 * closed: the reason is TW_EDONE for an exit status of 0, TW_ECONNLOST
 * otherwise (its message says the status or the signal). The transport's
 * lose_connection closes stdin (flushed) and stdout; abort_connection
 * also sends SIGKILL; lose_write_connection closes stdin only.
 * tw_transport_get_peer() and get_host() return -ENOTSOCK.
 * @return a deferred that fires with the connected protocol (a borrowed
 *         tw_protocol *, valid until connection_lost) or fails with the
 *         spawn's error (-ENOENT...) or -ECONNREFUSED when the factory
 *         refused. Owned by the caller (tw_deferred_unref()).
 */
TW_API tw_deferred *tw_process_endpoint_connect(tw_reactor *r, const char *const *argv,
                                                const tw_process_options *opts, tw_factory *f);

TW_END_DECLS

#endif
