/* SPDX-License-Identifier: MIT */
/*
 * The process endpoint (Twisted's ProcessEndpoint): a client "connection"
 * that is a child process. A process protocol of its own sits between the
 * process transport and the user's stream protocol, and a tw_transport of
 * its own gives that protocol the usual calls: stdout is data_received,
 * writes go to stdin, stderr is logged (Twisted's default, errFlag=LOG),
 * and the end of the process is connection_lost, once it exited and its
 * pipes closed.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <twine/log.h>
#include <twine/process.h>

#include "core/reactor_internal.h"

typedef struct pe_conn {
    tw_process_protocol pp;
    tw_transport base;
    tw_process *proc; /* NULL once the process ended */
    tw_factory *f;
    int closing;
} pe_conn;

static pe_conn *from_transport(tw_transport *t)
{
    return tw_container_of(t, pe_conn, base);
}

static int pe_writev(tw_transport *t, const struct iovec *iov, int iovcnt)
{
    pe_conn *c = from_transport(t);
    return c->proc != NULL ? tw_process_writev(c->proc, iov, iovcnt) : TW_ESTATE;
}

static void pe_lose(tw_transport *t)
{
    pe_conn *c = from_transport(t);
    if (c->closing || c->proc == NULL)
        return;
    c->closing = 1;
    tw_process_lose_connection(c->proc);
}

static void pe_abort(tw_transport *t)
{
    pe_conn *c = from_transport(t);
    if (c->proc == NULL)
        return;
    c->closing = 1;
    tw_process_signal(c->proc, SIGKILL);
    for (int fd = 0; fd <= 2; fd++)
        tw_process_close_child_fd(c->proc, fd);
}

static int pe_lose_write(tw_transport *t)
{
    pe_conn *c = from_transport(t);
    if (c->proc == NULL || c->closing)
        return TW_ESTATE;
    return tw_process_close_stdin(c->proc);
}

static void pe_pause(tw_transport *t)
{
    pe_conn *c = from_transport(t);
    if (c->proc != NULL)
        tw_process_pause_producing(c->proc);
}

static void pe_resume(tw_transport *t)
{
    pe_conn *c = from_transport(t);
    if (c->proc != NULL)
        tw_process_resume_producing(c->proc);
}

static int pe_no_address(tw_transport *t, tw_address *out)
{
    (void)t;
    out->len = 0;
    return -ENOTSOCK;
}

static size_t pe_buffer_size(tw_transport *t)
{
    pe_conn *c = from_transport(t);
    return c->proc != NULL ? tw_process_write_buffer_size(c->proc) : 0;
}

static void pe_set_watermarks(tw_transport *t, size_t high, size_t low)
{
    pe_conn *c = from_transport(t);
    if (c->proc != NULL)
        tw_process_set_write_watermarks(c->proc, high, low);
}

static int pe_register_producer(tw_transport *t, tw_producer *p, int streaming)
{
    pe_conn *c = from_transport(t);
    if (c->proc == NULL || c->closing) {
        if (p->ops->stop_producing != NULL)
            p->ops->stop_producing(p);
        return TW_ESTATE;
    }
    return tw_process_register_producer(c->proc, p, streaming);
}

static void pe_unregister_producer(tw_transport *t)
{
    pe_conn *c = from_transport(t);
    if (c->proc != NULL)
        tw_process_unregister_producer(c->proc);
}

static int pe_disconnecting(tw_transport *t)
{
    pe_conn *c = from_transport(t);
    return c->closing || c->proc == NULL;
}

static const tw_transport_ops pe_ops = {
    .writev = pe_writev,
    .lose_connection = pe_lose,
    .abort_connection = pe_abort,
    .lose_write_connection = pe_lose_write,
    .pause_producing = pe_pause,
    .resume_producing = pe_resume,
    .get_peer = pe_no_address,
    .get_host = pe_no_address,
    .write_buffer_size = pe_buffer_size,
    .set_write_watermarks = pe_set_watermarks,
    .register_producer = pe_register_producer,
    .unregister_producer = pe_unregister_producer,
    .disconnecting = pe_disconnecting,
};

static pe_conn *from_pp(tw_process_protocol *pp)
{
    return tw_container_of(pp, pe_conn, pp);
}

static void pp_made(tw_process_protocol *pp)
{
    pe_conn *c = from_pp(pp);
    c->proc = pp->process;
    tw_protocol *p = c->base.protocol;
    if (p->ops->connection_made != NULL)
        p->ops->connection_made(p);
}

static void pp_data(tw_process_protocol *pp, int child_fd, const void *data, size_t len)
{
    pe_conn *c = from_pp(pp);
    tw_protocol *p = c->base.protocol;
    if (child_fd == 1) {
        if (!c->closing)
            p->ops->data_received(p, data, len);
        return;
    }
    const char *s = data;
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
        len--;
    tw_log(TW_LOG_INFO, "process", "stderr of process %ld: %.*s", (long)tw_process_pid(pp->process),
           len > 4096 ? 4096 : (int)len, s);
}

static void pp_lost(tw_process_protocol *pp, int child_fd)
{
    pe_conn *c = from_pp(pp);
    tw_protocol *p = c->base.protocol;
    if (child_fd == 0 && !c->closing && p->ops->write_connection_lost != NULL)
        p->ops->write_connection_lost(p);
}

static void pp_ended(tw_process_protocol *pp, const tw_process_status *st)
{
    pe_conn *c = from_pp(pp);
    tw_protocol *p = c->base.protocol;
    c->proc = NULL;
    tw_failure *reason;
    if (st->exited && st->exit_code == 0)
        reason = tw_failure_new(TW_EDONE, "the process exited with status 0");
    else if (st->exited)
        reason = tw_failure_new(TW_ECONNLOST, "the process exited with status %d", st->exit_code);
    else if (st->signal != 0)
        reason = tw_failure_new(TW_ECONNLOST, "the process was killed by signal %d (%s)",
                                st->signal, strsignal(st->signal));
    else
        reason = tw_failure_new(TW_ECONNLOST, "the process ended with an unknown status");
    p->ops->connection_lost(p, reason);
    tw_failure_unref(reason);
}

static void pp_pause(tw_process_protocol *pp)
{
    tw_protocol *p = from_pp(pp)->base.protocol;
    if (p->ops->pause_producing != NULL)
        p->ops->pause_producing(p);
}

static void pp_resume(tw_process_protocol *pp)
{
    tw_protocol *p = from_pp(pp)->base.protocol;
    if (p->ops->resume_producing != NULL)
        p->ops->resume_producing(p);
}

/* Last: the protocol goes, whether or not it heard connection_lost (a
 * reactor freed under a running child releases it without). */
static void pp_destroy(tw_process_protocol *pp)
{
    pe_conn *c = from_pp(pp);
    tw_protocol *p = c->base.protocol;
    tw_factory *f = c->f;
    if (p->ops->destroy != NULL)
        p->ops->destroy(p);
    free(c);
    tw_factory_stop(f);
}

static const tw_process_protocol_ops pp_ops = {
    .connection_made = pp_made,
    .child_data_received = pp_data,
    .child_connection_lost = pp_lost,
    .process_ended = pp_ended,
    .pause_producing = pp_pause,
    .resume_producing = pp_resume,
    .destroy = pp_destroy,
};

TW_API tw_deferred *tw_process_endpoint_connect(tw_reactor *r, const char *const *argv,
                                                const tw_process_options *opts, tw_factory *f)
{
    if (opts != NULL && opts->child_fds != NULL)
        return tw_deferred_fail(tw_failure_new(-EINVAL, "a process endpoint maps its own descriptors"));
    pe_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return tw_deferred_fail(tw_failure_new(-ENOMEM, NULL));
    tw_factory_start(f);
    tw_protocol *p = f->ops->build_protocol(f, NULL);
    if (p == NULL) {
        free(c);
        tw_factory_stop(f);
        return tw_deferred_fail(tw_failure_new(-ECONNREFUSED, "the factory refused the process"));
    }
    c->pp.ops = &pp_ops;
    c->f = f;
    c->base.ops = &pe_ops;
    c->base.protocol = p;
    c->base.reactor = r;
    p->transport = &c->base;
    p->factory = f;
    int rc = tw_spawn_process(r, &c->pp, argv, opts, NULL);
    if (rc < 0) {
        if (p->ops->destroy != NULL)
            p->ops->destroy(p);
        free(c);
        tw_factory_stop(f);
        return tw_deferred_fail(tw_failure_new(rc, "cannot run %s: %s", argv != NULL && argv[0] != NULL ? argv[0] : "(nothing)", strerror(-rc)));
    }
    return tw_deferred_succeed(p, NULL);
}
