/* SPDX-License-Identifier: MIT */
/*
 * Inside src/proc: the child watcher (child.c) that reaps the children a
 * reactor spawned, and the spawn itself (spawn.c), which process.c builds
 * the process transport on.
 */
#ifndef TWINE_PROC_INTERNAL_H
#define TWINE_PROC_INTERNAL_H

#include <sys/types.h>
#include <twine/process.h>

#include "core/list_internal.h"

/* A child its owner waits for, embedded in the owner. */
typedef struct tw__child tw__child;
struct tw__child {
    tw__link link;
    pid_t pid;
    /* Reaped with wait status @p status, or -1 when someone else reaped it
     * (the pid is then unknown to the kernel). Called from the loop, once;
     * the child is no longer watched. */
    void (*exited)(tw__child *c, int status);
};

/* Before spawning on @p r: make sure SIGCHLD is watched, so an exit that
 * comes before tw__child_add() is not missed. @return 0 or -ENOMEM. */
int tw__children_prepare(tw_reactor *r);
/* Watch @p c (pid set) on @p r, which tw__children_prepare() set up. */
void tw__child_add(tw_reactor *r, tw__child *c);
/* A spawn after tw__children_prepare() failed: stop watching SIGCHLD if
 * no child is left, so an idle reactor holds no signal event. */
void tw__children_settle(tw_reactor *r);
/* Stop watching @p c, which is left unreaped. */
void tw__child_forget(tw_reactor *r, tw__child *c);

/* What spawn.c needs to start a child. */
typedef struct tw__spawn_fd {
    int child_fd;
    int parent_fd; /* the descriptor the child gets as child_fd */
} tw__spawn_fd;

/* Start @p argv with @p env (NULL: environ), @p cwd (NULL: ours), the
 * descriptors @p fds (sorted or not; every other one is closed in the
 * child), optionally the ids, with @p tty >= 0 a new session whose
 * controlling terminal is @p tty (also in fds), and with @p new_group a
 * process group of its own (a session leader has one anyway). @return the
 * pid, or a negated errno (the exec's own when the program could not
 * run). */
pid_t tw__spawn(const char *const *argv, const char *const *env, const char *cwd,
                const tw__spawn_fd *fds, size_t nfds, int set_ids, uid_t uid, gid_t gid, int tty,
                int new_group);

/* Decode a wait status, or -1 for a child reaped by someone else. */
void tw__process_status(int status, tw_process_status *st);

#endif
