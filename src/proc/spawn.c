/* SPDX-License-Identifier: MIT */
/*
 * Starting a child (proc_internal.h): posix_spawn when it covers what is
 * asked (descriptors, environment, working directory), fork and exec when
 * it does not (another user or group, a controlling terminal, or a libc
 * without posix_spawn_file_actions_addclosefrom_np/addchdir_np).
 *
 * The descriptor mapping is done the same way on both paths: the parent
 * first duplicates every source above the highest target, so that no
 * dup2() in the child overwrites a source another mapping still needs;
 * the child dup2()s each copy onto its target and then closes every other
 * descriptor (the copies, the gaps below the highest target, and whatever
 * the program had open without close-on-exec).
 *
 * The child starts with every signal at its default and an empty mask, so
 * neither libevent's handlers nor an ignored SIGPIPE leak into it. On the
 * fork path the signals stay blocked from before the fork until the
 * handlers are reset, so no handler of the parent runs in the child; the
 * exec's error comes back through a close-on-exec pipe.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fd_internal.h"
#include "proc/proc_internal.h"

extern char **environ;

/* The descriptor copies above the highest target, and that target. */
typedef struct plan {
    int *hi;
    size_t n;
    int max_target;
} plan;

static void plan_free(plan *p)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->hi[i] >= 0)
            close(p->hi[i]);
    free(p->hi);
}

static int plan_make(plan *p, const tw__spawn_fd *fds, size_t nfds)
{
    p->n = 0;
    p->max_target = -1;
    for (size_t i = 0; i < nfds; i++)
        if (fds[i].child_fd > p->max_target)
            p->max_target = fds[i].child_fd;
    if ((p->hi = calloc(nfds + 1, sizeof *p->hi)) == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < nfds; i++) {
        p->hi[i] = fcntl(fds[i].parent_fd, F_DUPFD_CLOEXEC, p->max_target + 1);
        if (p->hi[i] < 0) {
            int err = errno == EBADF ? -EINVAL : -errno;
            plan_free(p);
            return err;
        }
        p->n = i + 1;
    }
    return 0;
}

static int is_target(const tw__spawn_fd *fds, size_t nfds, int fd)
{
    for (size_t i = 0; i < nfds; i++)
        if (fds[i].child_fd == fd)
            return 1;
    return 0;
}

#if defined(HAVE_POSIX_SPAWN_FILE_ACTIONS_ADDCLOSEFROM_NP) &&                                      \
    defined(HAVE_POSIX_SPAWN_FILE_ACTIONS_ADDCHDIR_NP)
#define HAVE_FULL_POSIX_SPAWN 1
static pid_t by_posix_spawn(const char *const *argv, char *const *envp, const char *cwd,
                            const tw__spawn_fd *fds, size_t nfds, const plan *p, int new_group)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int rc;
    if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
        return -rc;
    if ((rc = posix_spawnattr_init(&at)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return -rc;
    }
    for (size_t i = 0; i < nfds && rc == 0; i++)
        rc = posix_spawn_file_actions_adddup2(&fa, p->hi[i], fds[i].child_fd);
    for (int fd = 0; fd <= p->max_target && rc == 0; fd++)
        if (!is_target(fds, nfds, fd))
            rc = posix_spawn_file_actions_addclose(&fa, fd);
    if (rc == 0)
        rc = posix_spawn_file_actions_addclosefrom_np(&fa, p->max_target + 1);
    if (rc == 0 && cwd != NULL)
        rc = posix_spawn_file_actions_addchdir_np(&fa, cwd);
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    if (rc == 0)
        rc = posix_spawnattr_setsigdefault(&at, &all);
    if (rc == 0)
        rc = posix_spawnattr_setsigmask(&at, &none);
    short flags = POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK;
    if (new_group) {
        flags |= POSIX_SPAWN_SETPGROUP;
        if (rc == 0)
            rc = posix_spawnattr_setpgroup(&at, 0); /* 0: the child's own pid */
    }
    if (rc == 0)
        rc = posix_spawnattr_setflags(&at, flags);
    pid_t pid = 0;
    if (rc == 0)
        rc = posix_spawnp(&pid, argv[0], &fa, &at, (char *const *)argv, envp);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return rc != 0 ? -rc : pid;
}
#endif

/* In the child, between fork and exec: only async-signal-safe calls. */
static void child_exec(const char *const *argv, char *const *envp, const char *cwd,
                       const tw__spawn_fd *fds, size_t nfds, const plan *p, int set_ids,
                       uid_t uid, gid_t gid, int tty, int new_group, int errfd,
                       const sigset_t *none)
{
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    sigprocmask(SIG_SETMASK, none, NULL);
    int err = 0;
    if (tty >= 0 && setsid() < 0)
        goto fail;
    if (tty < 0 && new_group && setpgid(0, 0) < 0)
        goto fail;
    for (size_t i = 0; i < nfds; i++)
        if (dup2(p->hi[i], fds[i].child_fd) < 0)
            goto fail;
    for (int fd = 0; fd <= p->max_target; fd++)
        if (!is_target(fds, nfds, fd))
            close(fd);
#ifdef HAVE_CLOSE_RANGE
    if (errfd > p->max_target + 1)
        close_range((unsigned)p->max_target + 1, (unsigned)errfd - 1, 0);
    close_range((unsigned)errfd + 1, ~0U, 0);
#else
    {
        long maxfd = sysconf(_SC_OPEN_MAX);
        for (long fd = p->max_target + 1; fd < maxfd; fd++)
            if (fd != errfd)
                close((int)fd);
    }
#endif
    if (tty >= 0 && ioctl(0, TIOCSCTTY, 0) < 0)
        goto fail;
    if (cwd != NULL && chdir(cwd) < 0)
        goto fail;
    if (set_ids && (setgroups(0, NULL) < 0 || setgid(gid) < 0 || setuid(uid) < 0))
        goto fail;
    execvpe(argv[0], (char *const *)argv, envp);
fail:
    err = errno;
    while (write(errfd, &err, sizeof err) < 0 && errno == EINTR)
        ;
    _exit(127);
}

static pid_t by_fork(const char *const *argv, char *const *envp, const char *cwd,
                     const tw__spawn_fd *fds, size_t nfds, const plan *p, int set_ids, uid_t uid,
                     gid_t gid, int tty, int new_group)
{
    int ep[2];
    if (tw__pipe(ep, O_CLOEXEC) < 0)
        return -errno;
    /* Above every target, so the mapping never overwrites it. */
    int errfd = fcntl(ep[1], F_DUPFD_CLOEXEC, p->max_target + 1);
    close(ep[1]);
    if (errfd < 0) {
        int err = -errno;
        close(ep[0]);
        return err;
    }
    sigset_t all, none, old;
    sigfillset(&all);
    sigemptyset(&none);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid == 0)
        child_exec(argv, envp, cwd, fds, nfds, p, set_ids, uid, gid, tty, new_group, errfd, &none);
    int fork_err = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(errfd);
    if (pid < 0) {
        close(ep[0]);
        return -fork_err;
    }
    int child_err = 0;
    ssize_t n;
    do
        n = read(ep[0], &child_err, sizeof child_err);
    while (n < 0 && errno == EINTR);
    close(ep[0]);
    if (n == (ssize_t)sizeof child_err) {
        /* It never ran the program: reap it here, it is ours alone. */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        return -child_err;
    }
    return pid;
}

pid_t tw__spawn(const char *const *argv, const char *const *env, const char *cwd,
                const tw__spawn_fd *fds, size_t nfds, int set_ids, uid_t uid, gid_t gid, int tty,
                int new_group)
{
    if (set_ids && geteuid() != 0 && (uid != geteuid() || gid != getegid()))
        return -EPERM;
    char *const *envp = env != NULL ? (char *const *)env : environ;
    plan p;
    int rc = plan_make(&p, fds, nfds);
    if (rc < 0)
        return rc;
    pid_t pid;
#ifdef HAVE_FULL_POSIX_SPAWN
    if (!set_ids && tty < 0)
        pid = by_posix_spawn(argv, envp, cwd, fds, nfds, &p, new_group);
    else
#endif
        pid = by_fork(argv, envp, cwd, fds, nfds, &p, set_ids, uid, gid, tty, new_group);
    plan_free(&p);
    return pid;
}

void tw__process_status(int status, tw_process_status *st)
{
    st->exited = st->exit_code = st->signal = st->core_dumped = 0;
    if (status == -1)
        return;
    if (WIFEXITED(status)) {
        st->exited = 1;
        st->exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        st->signal = WTERMSIG(status);
#ifdef WCOREDUMP
        st->core_dumped = WCOREDUMP(status) != 0;
#endif
    }
}
