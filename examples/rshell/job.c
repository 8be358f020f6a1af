/* SPDX-License-Identifier: MIT */
/*
 * One command running for a connection: the process protocol that frames
 * its output back to the client, and the two limits that end it early.
 *
 * The child gets the allowlist's absolute path as argv[0], the client's
 * arguments as they came (never through a shell), an environment of PATH
 * alone, the configured working directory, and a stdin that is either
 * closed at once ('r': it reads EOF) or fed by the client's 'i' frames
 * until its 'c' ('s'). While the stdin pipe is full past its high
 * watermark, the client's connection is not read. Its stdout and stderr are counted together: past
 * max_output bytes, or past the time limit, it gets SIGKILL and its pipes
 * are closed, so that a grandchild still holding them cannot keep the
 * command alive. The 'x' frame is sent from process_ended, after every
 * byte of output, and names the limit that killed it.
 *
 * While the client reads slower than the command writes, the job is the
 * transport's streaming producer: it stops reading the child's pipes, so
 * the child blocks on its writes instead of the server's memory growing
 * (the time limit still runs).
 *
 * The job belongs to itself: the reactor frees it (destroy) after
 * process_ended, or when it is freed itself. A connection that goes away
 * first orphans it (rs_job_orphan): it is killed and ends on its own.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rshell.h"

struct rs_job {
    tw_process_protocol pp;
    tw_producer producer; /* registered with the connection's transport */
    rs_conn *conn;        /* NULL once orphaned */
    tw_call *timer;
    size_t output, max_output;
    const char *why; /* why the server killed it: NULL, "timeout", "output-limit" */
    int killed;
    int input_paused; /* the connection is not read: stdin is full */
};

/* Read the client again, if stdin's backlog had stopped it. */
static void resume_input(rs_job *j)
{
    if (j->input_paused && j->conn != NULL)
        tw_transport_resume_producing(j->conn->base.transport);
    j->input_paused = 0;
}

static void stop_timer(rs_job *j)
{
    if (j->timer != NULL) {
        tw_call_cancel(j->timer);
        tw_call_release(j->timer);
        j->timer = NULL;
    }
}

static void kill_job(rs_job *j, const char *why)
{
    if (j->why == NULL)
        j->why = why;
    if (j->killed)
        return;
    j->killed = 1;
    /* The whole group: what the command started in the background dies
     * with it instead of outliving the limit. -ESRCH when none is left. */
    tw_process_signal_group(j->pp.process, SIGKILL);
    tw_process_lose_connection(j->pp.process);
}

static void on_timeout(void *arg)
{
    kill_job(arg, "timeout");
}

static void child_data_received(tw_process_protocol *pp, int child_fd, const void *data,
                                size_t len)
{
    rs_job *j = tw_container_of(pp, rs_job, pp);
    if (j->conn == NULL || j->killed)
        return;
    size_t room = j->max_output - j->output;
    size_t n = len < room ? len : room;
    if (n > 0)
        rs_send(j->conn, child_fd == 2 ? 'e' : 'o', data, n);
    j->output += n;
    if (n < len)
        kill_job(j, "output-limit");
}

static void process_ended(tw_process_protocol *pp, const tw_process_status *st)
{
    rs_job *j = tw_container_of(pp, rs_job, pp);
    stop_timer(j);
    resume_input(j); /* what the client still sends is dropped now */
    if (j->conn == NULL)
        return;
    char status[64];
    int n = snprintf(status, sizeof status, st->exited ? "exit %d" : "signal %d",
                     st->exited ? st->exit_code : st->signal);
    if (j->why != NULL)
        snprintf(status + n, sizeof status - (size_t)n, " %s", j->why);
    tw_transport_unregister_producer(j->conn->base.transport);
    rs_send(j->conn, 'x', status, strlen(status));
    j->conn->job = NULL;
    j->conn = NULL;
}

static void destroy(tw_process_protocol *pp)
{
    rs_job *j = tw_container_of(pp, rs_job, pp);
    stop_timer(j); /* the reactor was freed before the command ended */
    if (j->conn != NULL)
        j->conn->job = NULL;
    free(j);
}

/* The command's stdin went past its high watermark, or drained. */
static void stdin_full(tw_process_protocol *pp)
{
    rs_job *j = tw_container_of(pp, rs_job, pp);
    if (!j->input_paused && j->conn != NULL) {
        j->input_paused = 1;
        tw_transport_pause_producing(j->conn->base.transport);
    }
}

static void stdin_drained(tw_process_protocol *pp)
{
    resume_input(tw_container_of(pp, rs_job, pp));
}

static const tw_process_protocol_ops job_ops = {
    .child_data_received = child_data_received,
    .process_ended = process_ended,
    .pause_producing = stdin_full,
    .resume_producing = stdin_drained,
    .destroy = destroy,
};

void rs_job_stdin(rs_job *j, const void *data, size_t len)
{
    /* Refused once stdin is closed (a 'c' came, or the command was
     * killed): the bytes had nowhere to go anyway. */
    if (len > 0 && !j->killed)
        tw_process_write(j->pp.process, data, len);
}

void rs_job_close_stdin(rs_job *j)
{
    if (!j->killed)
        tw_process_close_stdin(j->pp.process);
}

/* The client's transport is full, or drained, or gone. */
static void pause_output(tw_producer *p)
{
    rs_job *j = tw_container_of(p, rs_job, producer);
    if (!j->killed)
        tw_process_pause_producing(j->pp.process);
}

static void resume_output(tw_producer *p)
{
    rs_job *j = tw_container_of(p, rs_job, producer);
    if (!j->killed)
        tw_process_resume_producing(j->pp.process);
}

static void stop_output(tw_producer *p)
{
    kill_job(tw_container_of(p, rs_job, producer), NULL);
}

static const tw_producer_ops producer_ops = {
    .pause_producing = pause_output,
    .resume_producing = resume_output,
    .stop_producing = stop_output,
};

int rs_job_start(rs_conn *c, const char *path, char *const *argv, int keep_stdin)
{
    rs_server *srv = c->srv;
    const char **args = calloc(c->argc + 1, sizeof *args);
    rs_job *j = calloc(1, sizeof *j);
    if (args == NULL || j == NULL) {
        free(args);
        free(j);
        return -ENOMEM;
    }
    args[0] = path;
    for (size_t i = 1; i < c->argc; i++)
        args[i] = argv[i];
    const char *env[] = {srv->path_env, NULL};
    tw_process_options opts = {.env = env, .cwd = srv->cwd, .new_process_group = 1};
    j->pp.ops = &job_ops;
    j->conn = c;
    j->max_output = srv->max_output;
    j->producer.ops = &producer_ops;
    int rc = tw_spawn_process(srv->reactor, &j->pp, args, &opts, NULL);
    free(args);
    if (rc < 0) {
        free(j); /* nothing was called back */
        return rc;
    }
    c->job = j;
    if (!keep_stdin)
        tw_process_close_stdin(j->pp.process);
    if (tw_reactor_call_later(srv->reactor, srv->timeout, on_timeout, j, &j->timer) < 0)
        kill_job(j, "timeout"); /* no memory to time it: never let it run unbounded */
    tw_transport_register_producer(c->base.transport, &j->producer, 1);
    return 0;
}

void rs_job_orphan(rs_job *j)
{
    j->conn = NULL;
    kill_job(j, NULL);
}
