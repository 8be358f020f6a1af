/* SPDX-License-Identifier: MIT */
/*
 * The process transport (<twine/process.h>): a child, reaped by the child
 * watcher (child.c), and one pipe half (net/pipe_internal.h) per
 * descriptor the parent shares with it: a read half for what the child
 * writes, a write half (with stdin's flow control, net/flow_internal.h)
 * for what it reads. A pty is one master descriptor, read as the child's
 * fd 1 and written (through a dup) as its fd 0.
 *
 * What the protocol hears runs from the loop, never inside one of its own
 * calls: a pipe that closes for any reason is marked, and one step call
 * delivers the child_connection_lost of every marked pipe, then
 * process_exited once the child was reaped, then process_ended once both
 * are true (Twisted's rule: ended means exited and every pipe closed),
 * after which the process is freed. The process is a connection of its
 * reactor (tw__closeable): a graceful stop closes its pipes and waits for
 * the child's exit; an abort or the reactor's free closes everything at
 * once and forgets the child, unreaped (see process.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <twine/log.h>

#include "core/fd_internal.h"
#include "core/reactor_internal.h"
#include "net/flow_internal.h"
#include "net/pipe_internal.h"
#include "proc/proc_internal.h"

typedef struct child_pipe {
    struct tw_process *proc;
    int child_fd;
    int writes;       /* the parent writes it (a write half), else reads it */
    int open;         /* its half is open */
    int lost_pending; /* child_connection_lost still to deliver */
    tw__pipe_in in;
    tw__pipe_out out;
} child_pipe;

struct tw_process {
    tw__closeable node;
    tw_reactor *r;
    tw_process_protocol *pp;
    tw__child child;
    tw_process_status status;
    tw__flow flow; /* stdin's */
    tw_call *step; /* delivers what the protocol is owed, from the loop */
    child_pipe *pipes;
    size_t npipes;
    pid_t pid;      /* 0 once reaped */
    int reaped;
    int exited_told;
    int pty;
    int group;      /* leads its own process group (new_process_group or a pty) */
    pid_t group_id; /* that group's id: the child's pid, kept after the reap */
    int paused;
};

static void run_step(void *arg);

static void schedule_step(tw_process *p)
{
    if (p->step != NULL)
        return;
    if (tw_reactor_call_later(p->r, 0, run_step, p, &p->step) < 0) {
        p->step = NULL;
        tw_log(TW_LOG_ERROR, "process", "out of memory: process %ld's events are late",
               (long)p->pid);
    }
}

static child_pipe *find_pipe(tw_process *p, int child_fd)
{
    for (size_t i = 0; i < p->npipes; i++)
        if (p->pipes[i].child_fd == child_fd)
            return &p->pipes[i];
    return NULL;
}

/* @p cp closed (its half is closed already or now). */
static void pipe_closed(child_pipe *cp)
{
    if (!cp->open)
        return;
    if (cp->writes)
        tw__pipe_out_close(&cp->out);
    else
        tw__pipe_in_close(&cp->in);
    cp->open = 0;
    cp->lost_pending = 1;
    schedule_step(cp->proc);
}

static void release(tw_process *p, int tell_end)
{
    tw_process_protocol *pp = p->pp;
    if (p->step != NULL) {
        tw_call_cancel(p->step);
        tw_call_release(p->step);
        p->step = NULL;
    }
    for (size_t i = 0; i < p->npipes; i++) {
        child_pipe *cp = &p->pipes[i];
        if (cp->open) {
            if (cp->writes)
                tw__pipe_out_close(&cp->out);
            else
                tw__pipe_in_close(&cp->in);
            cp->open = 0;
        }
    }
    if (!p->reaped)
        tw__child_forget(p->r, &p->child);
    tw__flow_stop(&p->flow);
    tw__reactor_unregister_conn(p->r, &p->node);
    /* Still valid in process_ended, where every call finds it closed. */
    if (tell_end && pp->ops->process_ended != NULL)
        pp->ops->process_ended(pp, &p->status);
    free(p->pipes);
    free(p);
    if (pp->ops->destroy != NULL)
        pp->ops->destroy(pp);
}

static void run_step(void *arg)
{
    tw_process *p = arg;
    tw_process_protocol *pp = p->pp;
    tw_call_release(p->step);
    p->step = NULL;
    for (size_t i = 0; i < p->npipes; i++) {
        child_pipe *cp = &p->pipes[i];
        if (!cp->lost_pending)
            continue;
        cp->lost_pending = 0;
        if (pp->ops->child_connection_lost != NULL)
            pp->ops->child_connection_lost(pp, cp->child_fd);
    }
    if (p->reaped && !p->exited_told) {
        p->exited_told = 1;
        if (pp->ops->process_exited != NULL)
            pp->ops->process_exited(pp, &p->status);
    }
    if (!p->reaped || p->step != NULL)
        return; /* more to tell first */
    for (size_t i = 0; i < p->npipes; i++)
        if (p->pipes[i].open || p->pipes[i].lost_pending)
            return;
    release(p, 1);
}

static void on_exit_status(tw__child *c, int status)
{
    tw_process *p = tw_container_of(c, tw_process, child);
    p->reaped = 1;
    p->pid = 0;
    tw__process_status(status, &p->status);
    schedule_step(p);
}

static void on_data(tw__pipe_in *in, const void *buf, size_t len)
{
    child_pipe *cp = tw_container_of(in, child_pipe, in);
    tw_process_protocol *pp = cp->proc->pp;
    if (pp->ops->child_data_received != NULL)
        pp->ops->child_data_received(pp, cp->child_fd, buf, len);
}

static void on_in_lost(tw__pipe_in *in, int code)
{
    (void)code;
    child_pipe *cp = tw_container_of(in, child_pipe, in);
    pipe_closed(cp);
    /* A terminal ends as a whole: its input went with the last slave. */
    if (cp->proc->pty)
        pipe_closed(&cp->proc->pipes[0]);
}

static void on_out_lost(tw__pipe_out *out, int code)
{
    (void)code; /* EPIPE: the child closed its end; that is the pipe's end too */
    child_pipe *cp = tw_container_of(out, child_pipe, out);
    pipe_closed(cp);
}

static void on_drained(tw__pipe_out *out)
{
    child_pipe *cp = tw_container_of(out, child_pipe, out);
    tw_process *p = cp->proc;
    if (cp->child_fd == 0 && tw__flow_drained(&p->flow, tw__pipe_out_queued(out)))
        tw__pipe_out_poke(out);
}

static void pause_protocol(tw__flow *fl)
{
    tw_process_protocol *pp = tw_container_of(fl, tw_process, flow)->pp;
    if (pp->ops->pause_producing != NULL)
        pp->ops->pause_producing(pp);
}

static void resume_protocol(tw__flow *fl)
{
    tw_process_protocol *pp = tw_container_of(fl, tw_process, flow)->pp;
    if (pp->ops->resume_producing != NULL)
        pp->ops->resume_producing(pp);
}

static void closeable_lose(tw__closeable *c)
{
    tw_process_lose_connection(tw_container_of(c, tw_process, node));
}

static void closeable_abort(tw__closeable *c)
{
    release(tw_container_of(c, tw_process, node), 0);
}

static const tw__closeable_ops process_closeable_ops = {closeable_lose, closeable_abort, NULL,
                                                        NULL};

/* ---- spawning ---- */

static const tw_child_fd default_fds[] = {
    {0, TW_CHILD_WRITE, -1}, {1, TW_CHILD_READ, -1}, {2, TW_CHILD_READ, -1}};

/* A pseudo-terminal: @p master for the parent, @p slave for the child. */
static int open_pty(int *master, int *slave)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (m < 0)
        return -errno;
    char name[128];
    if (grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, name, sizeof name) != 0) {
        int err = -errno;
        close(m);
        return err;
    }
    int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) {
        int err = -errno;
        close(m);
        return err;
    }
    *master = m;
    *slave = s;
    return 0;
}

static void close_all(int *fds, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

TW_API int tw_spawn_process(tw_reactor *r, tw_process_protocol *pp, const char *const *argv,
                            const tw_process_options *opts, tw_process **out)
{
    static const tw_process_options none;
    if (opts == NULL)
        opts = &none;
    if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0')
        return -EINVAL;
    const tw_child_fd *map = opts->child_fds != NULL ? opts->child_fds : default_fds;
    size_t n = opts->child_fds != NULL ? opts->n_child_fds : 3;
    if (opts->use_pty) {
        map = default_fds;
        n = 3;
    }
    for (size_t i = 0; i < n; i++) {
        if (map[i].child_fd < 0 || map[i].kind > TW_CHILD_INHERIT ||
            (map[i].kind == TW_CHILD_INHERIT && map[i].parent_fd < 0))
            return -EINVAL;
        for (size_t j = 0; j < i; j++)
            if (map[j].child_fd == map[i].child_fd)
                return -EINVAL;
    }
    int rc = tw__children_prepare(r);
    if (rc < 0)
        return rc;

    tw_process *p = calloc(1, sizeof *p);
    tw__spawn_fd *sfd = calloc(n + 1, sizeof *sfd);
    int *mine = malloc((n + 1) * sizeof *mine);   /* the parent's ends */
    int *theirs = malloc((n + 1) * sizeof *theirs); /* the child's, closed here after */
    if (p != NULL)
        p->pipes = calloc(n + 1, sizeof *p->pipes);
    if (p == NULL || p->pipes == NULL || sfd == NULL || mine == NULL || theirs == NULL) {
        if (p != NULL)
            free(p->pipes);
        free(p);
        free(sfd);
        free(mine);
        free(theirs);
        return -ENOMEM;
    }
    for (size_t i = 0; i <= n; i++)
        mine[i] = theirs[i] = -1;

    int tty = -1;
    if (opts->use_pty) {
        int m = -1, s = -1;
        if ((rc = open_pty(&m, &s)) < 0)
            goto fail;
        mine[0] = m;
        theirs[0] = s;
        tty = s;
        for (size_t i = 0; i < 3; i++)
            sfd[i] = (tw__spawn_fd){(int)i, s};
    } else {
        for (size_t i = 0; i < n; i++) {
            sfd[i].child_fd = map[i].child_fd;
            if (map[i].kind == TW_CHILD_INHERIT) {
                sfd[i].parent_fd = map[i].parent_fd;
                continue;
            }
            int pfd[2];
            if (tw__pipe(pfd, O_CLOEXEC) < 0) {
                rc = -errno;
                goto fail;
            }
            int parent_end = map[i].kind == TW_CHILD_WRITE ? pfd[1] : pfd[0];
            int child_end = map[i].kind == TW_CHILD_WRITE ? pfd[0] : pfd[1];
            mine[i] = parent_end;
            theirs[i] = child_end;
            sfd[i].parent_fd = child_end;
        }
    }

    pid_t pid = tw__spawn(argv, opts->env, opts->cwd, sfd, n, opts->set_ids, opts->uid, opts->gid,
                          tty, opts->new_process_group);
    close_all(theirs, n);
    if (pid < 0) {
        rc = (int)pid;
        goto fail;
    }

    p->r = r;
    p->pp = pp;
    p->pid = pid;
    p->pty = opts->use_pty;
    p->group = opts->use_pty || opts->new_process_group;
    p->group_id = pid;
    p->node.ops = &process_closeable_ops;
    p->child.pid = pid;
    p->child.exited = on_exit_status;
    tw__flow_init(&p->flow, pause_protocol, resume_protocol);
    if (opts->use_pty) {
        /* One master: read as the child's output (fd 1), written as its
         * input (fd 0) through a copy, since a poller watches a descriptor
         * once. */
        int master = mine[0];
        int wfd = fcntl(master, F_DUPFD_CLOEXEC, 0);
        p->npipes = 2;
        p->pipes[0] = (child_pipe){
            .proc = p, .child_fd = 0, .writes = 1, .open = wfd >= 0, .lost_pending = wfd < 0};
        p->pipes[1] = (child_pipe){.proc = p, .child_fd = 1, .open = 1};
        mine[0] = wfd;
        mine[1] = master;
    } else {
        for (size_t i = 0; i < n; i++) {
            if (map[i].kind == TW_CHILD_INHERIT)
                continue;
            p->pipes[p->npipes++] = (child_pipe){.proc = p,
                                                 .child_fd = map[i].child_fd,
                                                 .writes = map[i].kind == TW_CHILD_WRITE,
                                                 .open = 1};
            mine[p->npipes - 1] = mine[i];
            if (p->npipes - 1 != i)
                mine[i] = -1;
        }
    }
    for (size_t i = 0; i < p->npipes; i++) {
        child_pipe *cp = &p->pipes[i];
        if (!cp->open)
            continue;
        int fd = mine[i];
        mine[i] = -1;
        int orc;
        if (cp->writes) {
            cp->out.drained = on_drained;
            cp->out.lost = on_out_lost;
            orc = tw__pipe_out_open(r, &cp->out, fd);
        } else {
            cp->in.data = on_data;
            cp->in.lost = on_in_lost;
            orc = tw__pipe_in_open(r, &cp->in, fd);
        }
        if (orc < 0) {
            /* The child runs, so the process goes on without this pipe. */
            tw_log(TW_LOG_WARN, "process", "cannot watch the pipe of child fd %d: %s",
                   cp->child_fd, strerror(-orc));
            cp->open = 0;
            cp->lost_pending = 1;
        }
    }
    free(sfd);
    free(mine);
    free(theirs);
    tw__child_add(r, &p->child);
    tw__reactor_register_conn(r, &p->node);
    pp->process = p;
    if (out != NULL)
        *out = p;
    for (size_t i = 0; i < p->npipes; i++)
        if (p->pipes[i].lost_pending)
            schedule_step(p);
    if (pp->ops->connection_made != NULL)
        pp->ops->connection_made(pp);
    return 0;

fail:
    tw__children_settle(r);
    close_all(mine, n);
    close_all(theirs, n);
    free(sfd);
    free(mine);
    free(theirs);
    free(p->pipes);
    free(p);
    return rc;
}

/* ---- the transport's calls ---- */

TW_API pid_t tw_process_pid(const tw_process *p)
{
    return p->pid;
}

static child_pipe *writer(tw_process *p, int child_fd)
{
    child_pipe *cp = find_pipe(p, child_fd);
    return cp != NULL && cp->writes && cp->open ? cp : NULL;
}

TW_API int tw_process_writev(tw_process *p, const struct iovec *iov, int iovcnt)
{
    child_pipe *cp = writer(p, 0);
    if (cp == NULL)
        return TW_ESTATE;
    if (iovcnt < 0)
        return -EINVAL;
    int rc = tw__pipe_out_writev(&cp->out, iov, iovcnt);
    if (rc == 0)
        tw__flow_grew(&p->flow, tw__pipe_out_queued(&cp->out));
    return rc;
}

TW_API int tw_process_write(tw_process *p, const void *data, size_t len)
{
    struct iovec iov = {(void *)data, len};
    return tw_process_writev(p, &iov, 1);
}

TW_API int tw_process_write_to_child(tw_process *p, int child_fd, const void *data, size_t len)
{
    if (child_fd == 0)
        return tw_process_write(p, data, len);
    child_pipe *cp = writer(p, child_fd);
    if (cp == NULL)
        return -EBADF;
    struct iovec iov = {(void *)data, len};
    return tw__pipe_out_writev(&cp->out, &iov, 1);
}

TW_API int tw_process_close_stdin(tw_process *p)
{
    child_pipe *cp = writer(p, 0);
    if (cp == NULL || cp->out.closing)
        return TW_ESTATE;
    if (p->pty) {
        /* The terminal stays: its end-of-file character is the EOF. */
        struct termios t;
        char eof = 4; /* ^D */
        if (tcgetattr(cp->out.fd, &t) == 0 && t.c_cc[VEOF] != 0)
            eof = (char)t.c_cc[VEOF];
        struct iovec iov = {&eof, 1};
        return tw__pipe_out_writev(&cp->out, &iov, 1);
    }
    tw__pipe_out_close_flushed(&cp->out);
    return 0;
}

TW_API int tw_process_close_child_fd(tw_process *p, int child_fd)
{
    child_pipe *cp = find_pipe(p, child_fd);
    if (cp == NULL || !cp->open)
        return -EBADF;
    pipe_closed(cp);
    return 0;
}

TW_API int tw_process_signal(tw_process *p, int sig)
{
    if (p->reaped)
        return TW_ESTATE;
    return kill(p->pid, sig) < 0 ? -errno : 0;
}

TW_API int tw_process_signal_group(tw_process *p, int sig)
{
    if (!p->group)
        return -EINVAL;
    /* Still after the leader was reaped: what it left running in the
     * group is what this is for. A group's id is not reused while any
     * member lives (POSIX); once none does, kill() finds no group (ESRCH),
     * short of the whole pid space wrapping around meanwhile. */
    return kill(-p->group_id, sig) < 0 ? -errno : 0;
}

TW_API void tw_process_lose_connection(tw_process *p)
{
    for (size_t i = 0; i < p->npipes; i++) {
        child_pipe *cp = &p->pipes[i];
        if (!cp->open)
            continue;
        if (cp->writes && !p->pty)
            tw__pipe_out_close_flushed(&cp->out);
        else
            pipe_closed(cp);
    }
}

TW_API void tw_process_pause_producing(tw_process *p)
{
    p->paused = 1;
    for (size_t i = 0; i < p->npipes; i++)
        if (p->pipes[i].open && !p->pipes[i].writes)
            tw__pipe_in_pause(&p->pipes[i].in);
}

TW_API void tw_process_resume_producing(tw_process *p)
{
    p->paused = 0;
    for (size_t i = 0; i < p->npipes; i++)
        if (p->pipes[i].open && !p->pipes[i].writes)
            tw__pipe_in_resume(&p->pipes[i].in);
}

TW_API size_t tw_process_write_buffer_size(tw_process *p)
{
    child_pipe *cp = writer(p, 0);
    return cp != NULL ? tw__pipe_out_queued(&cp->out) : 0;
}

TW_API void tw_process_set_write_watermarks(tw_process *p, size_t high, size_t low)
{
    tw__flow_set_watermarks(&p->flow, high, low);
}

TW_API int tw_process_register_producer(tw_process *p, tw_producer *prod, int streaming)
{
    if (p->flow.producer != NULL)
        return TW_ESTATE;
    child_pipe *cp = writer(p, 0);
    if (cp == NULL || cp->out.closing) {
        if (prod->ops->stop_producing != NULL)
            prod->ops->stop_producing(prod);
        return TW_ESTATE;
    }
    size_t queued = tw__pipe_out_queued(&cp->out);
    int rc = tw__flow_register(&p->flow, prod, streaming, queued);
    if (rc == 0 && !streaming && queued == 0)
        tw__pipe_out_poke(&cp->out);
    return rc;
}

TW_API void tw_process_unregister_producer(tw_process *p)
{
    tw__flow_unregister(&p->flow);
}
