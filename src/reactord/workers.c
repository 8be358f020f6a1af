/* SPDX-License-Identifier: MIT */
/*
 * The supervisor of --workers N: N single-reactor worker processes, each
 * listening on every endpoint with SO_REUSEPORT, so the kernel spreads the
 * connections between them and no process is a bottleneck or a single point
 * of failure.
 *
 * The supervisor runs no reactor and serves nothing; it only forks, watches
 * and signals, so it keeps no state a fork could duplicate. It starts
 * worker 1 alone and waits for its start-up report, which carries the ports
 * it got, so that "port 0" is resolved once and the other workers join the
 * same port. Start-up fails as a whole if any worker fails to start.
 * Afterwards, a worker that dies is restarted after a delay that doubles
 * with each quick death (a worker that ran for a while starts over at the
 * shortest delay), so a crash loop cannot spin. SIGHUP or SIGUSR1 reopens
 * the supervisor's log and is forwarded, so every worker reopens too;
 * SIGTERM, SIGINT or SIGQUIT is forwarded as SIGTERM, the workers drain,
 * and the supervisor exits once they all have, killing any that outlive the
 * shutdown timeout by a grace period; a second one is forwarded again, and
 * the workers abort what is left. SIGUSR2 is ignored.
 *
 * A worker that hangs (stopped, or stuck in a module) would keep taking
 * its share of new connections, so each worker's loop writes a heartbeat
 * byte to a pipe every third of --worker-timeout; one silent for that long
 * is logged, killed and restarted like a worker that died.
 *
 * Two servers must not share a port by accident: SO_REUSEPORT would let a
 * second reactord, of any protocol, take part of the traffic silently. So
 * before forking, the supervisor binds each port once without it, which
 * fails while anyone listens there.
 *
 * The supervisor logs "worker I running as pid P" for each worker, which is
 * how operators (and tests) find them. Signals reach the loop through a
 * self-pipe; they are blocked around fork() so a child never runs the
 * supervisor's handlers.
 *
 * The supervisor is the process a service manager watches: it sends
 * READY=1 once every worker runs and STOPPING=1 when a stop begins.
 *
 * With --metrics the supervisor serves the endpoint, with evhttp on an
 * event_base of its own, which its loop then waits on instead of poll();
 * at each scrape it asks the workers for their figures over a socket pair
 * each (metrics_workers.c). The base uses poll or select, never epoll or
 * kqueue, whose kernel state a fork would share: a new worker frees its
 * copy of the base and of the HTTP server (closing its copies of their
 * sockets) without touching the supervisor's.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <event2/buffer.h>
#include <event2/event.h>
#include <sys/socket.h>

#include "core/fd_internal.h"
#include "reactord.h"

#define RESTART_MIN 0.1        /* seconds before the first restart */
#define RESTART_MAX 30.0       /* the longest delay between restarts */
#define STABLE_AFTER 10.0      /* a worker up this long resets the delay */
#define START_TIMEOUT 60.0     /* longest start-up before a worker is killed */
#define KILL_GRACE 5.0         /* beyond the shutdown timeout, before SIGKILL */
#define SCRAPE_TIMEOUT_MS 1000 /* the longest a scrape waits for a worker's figures */

typedef struct {
    pid_t pid;         /* 0 when not running */
    int status_fd;     /* -1 once its start-up report was read */
    int beat_fd;       /* the heartbeat pipe, -1 when not running */
    double last_beat;  /* when it last wrote one (or became ready) */
    int ready;
    double started;    /* when it was forked */
    double restart_at; /* 0: no restart scheduled */
    unsigned quick_deaths;
    int metrics_fd;    /* the metrics stream to it, -1 when not running or no --metrics */
    struct evbuffer *metrics_in; /* what it sent on it, not taken yet */
} slot;

typedef struct {
    rd_run *run;
    slot *slots;
    unsigned n;
    int starting;   /* the initial start-up is not complete */
    int stopping;
    double kill_at; /* when stopping: SIGKILL whoever is left */
    int killed;
    int failure;    /* a code: start-up failed */
    unsigned long long restarts;
    struct event_base *base;    /* --metrics: what the loop waits on */
    rd_metrics_server *metrics; /* --metrics */
} supervisor;

static int self_pipe[2] = {-1, -1};

static const int watched[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2, SIGCHLD};
#define NWATCHED (sizeof watched / sizeof watched[0])

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char c = (unsigned char)sig;
    ssize_t w = write(self_pipe[1], &c, 1);
    (void)w; /* a full pipe already holds a wake-up */
    errno = saved;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void set_handlers(void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < NWATCHED; i++) {
        sa.sa_flags = SA_RESTART | (watched[i] == SIGCHLD ? SA_NOCLDSTOP : 0);
        sigaction(watched[i], &sa, NULL);
    }
}

static void describe_exit(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, len, "ended with wait status %d", status);
}

/* In the new worker: shed everything that belongs to the supervisor. */
static int become_worker(supervisor *s, unsigned i, int status_fd, int beat_fd, int metrics_fd,
                         sigset_t *old, pid_t supervisor_pid)
{
    set_handlers(SIG_DFL);
    close(self_pipe[0]);
    close(self_pipe[1]);
    for (unsigned j = 0; j < s->n; j++) {
        if (s->slots[j].status_fd >= 0)
            close(s->slots[j].status_fd);
        if (s->slots[j].beat_fd >= 0)
            close(s->slots[j].beat_fd);
        if (s->slots[j].metrics_fd >= 0)
            close(s->slots[j].metrics_fd);
        if (s->slots[j].metrics_in != NULL)
            evbuffer_free(s->slots[j].metrics_in);
    }
    rd_metrics_server_forget(s->metrics);
    if (s->base != NULL)
        event_base_free(s->base);
    rd_process_mark_start();
    /* The daemon's status pipe is the supervisor's to answer. */
    if (rd_status_pipe() >= 0)
        close(rd_status_pipe());
    rd_status_use_pipe(status_fd, 1);
#ifdef __linux__
    /* An orphaned worker would hold the port forever: follow the supervisor. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
#endif
    pid_t parent = getppid();
    sigprocmask(SIG_SETMASK, old, NULL);
    free(s->slots);
    if (parent != supervisor_pid)
        return rd_error(EX_SOFTWARE, "the supervisor exited while worker %u was starting", i + 1);
    char name[32];
    snprintf(name, sizeof name, "worker %u", i + 1);
    rd_logging_name_process(name);
    double timeout = s->run->app->cfg->worker_timeout;
    rd_worker w = {i + 1, beat_fd, timeout > 0 ? timeout / 3 : 0, metrics_fd};
    return rd_serve(s->run, &w);
}

/* Fork worker @p i. @return 0 or a code in the supervisor. In the worker it
 * returns once the worker is done serving, with *is_worker set and the
 * worker's exit code in *worker_rc, for main() to clean up and exit. */
static int start_worker(supervisor *s, unsigned i, int *is_worker, int *worker_rc)
{
    slot *sl = &s->slots[i];
    int p[2], beat[2], m[2] = {-1, -1};
    if (tw__pipe(p, O_CLOEXEC) < 0)
        return rd_error(EX_OSERR, "cannot create a status pipe for worker %u: %s", i + 1,
                        strerror(errno));
    if (tw__pipe(beat, O_NONBLOCK | O_CLOEXEC) < 0 ||
        (s->metrics != NULL &&
         tw__socketpair(AF_UNIX, SOCK_STREAM, 0, m, O_NONBLOCK | O_CLOEXEC) < 0)) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        if (m[0] < 0 && s->metrics != NULL) {
            close(beat[0]);
            close(beat[1]);
        }
        return rd_error(EX_OSERR, "cannot create the pipes to worker %u: %s", i + 1,
                        strerror(e));
    }
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    fflush(NULL);
    pid_t supervisor_pid = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        close(beat[0]);
        if (m[0] >= 0)
            close(m[0]);
        *is_worker = 1;
        *worker_rc = become_worker(s, i, p[1], beat[1], m[1], &old, supervisor_pid);
        return 0;
    }
    int e = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    close(p[1]);
    close(beat[1]);
    if (m[1] >= 0)
        close(m[1]);
    if (pid < 0) {
        close(p[0]);
        close(beat[0]);
        if (m[0] >= 0)
            close(m[0]);
        return rd_error(EX_OSERR, "cannot fork worker %u: %s", i + 1, strerror(e));
    }
    sl->pid = pid;
    sl->status_fd = p[0];
    sl->beat_fd = beat[0];
    sl->metrics_fd = m[0];
    if (sl->metrics_in != NULL) /* what the previous worker of the slot left */
        evbuffer_drain(sl->metrics_in, evbuffer_get_length(sl->metrics_in));
    sl->ready = 0;
    sl->started = now();
    sl->restart_at = 0;
    tw_log(TW_LOG_DEBUG, "reactord", "forked worker %u as pid %ld", i + 1, (long)pid);
    return 0;
}

static void signal_all(supervisor *s, int sig)
{
    for (unsigned i = 0; i < s->n; i++)
        if (s->slots[i].pid > 0)
            kill(s->slots[i].pid, sig);
}

/* Stop every worker; @p why is logged, NULL when start-up failed (the
 * failure's sentence says it all). */
static void begin_stop(supervisor *s, const char *why)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    s->kill_at = now() + s->run->app->cfg->shutdown_timeout + KILL_GRACE;
    if (why != NULL) {
        tw_log(TW_LOG_INFO, "reactord", "%s: stopping %u workers", why, s->n);
        rd_notify("STOPPING=1");
    }
    signal_all(s, SIGTERM);
}

/* Worker 1 reports the port each endpoint got; later workers reuse them. */
static void pin_ports(supervisor *s, const char *ports)
{
    const char *at = ports;
    for (size_t i = 0; i < s->run->nendpoints && *at != '\0'; i++) {
        char *end;
        long port = strtol(at, &end, 10);
        if (end == at)
            break;
        if (port > 0 && rd_endpoint_wants_any_port(s->run->endpoints[i]))
            rd_endpoint_set_port(s->run->endpoints[i], (int)port);
        at = end;
        while (*at == ' ')
            at++;
    }
}

static void read_report(supervisor *s, unsigned i, int *is_worker, int *worker_rc)
{
    slot *sl = &s->slots[i];
    int code = 0;
    char msg[1024];
    int got = rd_status_read(sl->status_fd, &code, msg, sizeof msg, 1000);
    if (got < 0)
        return; /* a partial report: try again */
    close(sl->status_fd);
    sl->status_fd = -1;
    if (got == 0)
        return; /* it died before reporting; its exit status will tell */
    if (code != 0) {
        /* During start-up the sentence is the supervisor's own to report. */
        if (!s->starting)
            tw_log(TW_LOG_ERROR, "reactord", "worker %u could not start: %s", i + 1, msg);
        else if (!s->failure)
            s->failure = rd_error(code, "%s", msg);
        if (s->starting)
            begin_stop(s, NULL);
        return;
    }
    sl->ready = 1;
    sl->last_beat = now();
    tw_log(TW_LOG_INFO, "reactord", "worker %u running as pid %ld", i + 1, (long)sl->pid);
    if (!s->starting)
        return;
    if (i == 0)
        pin_ports(s, msg);
    if (i + 1 < s->n) {
        int rc = start_worker(s, i + 1, is_worker, worker_rc);
        if (rc != 0 && !*is_worker) {
            s->failure = rc;
            begin_stop(s, NULL);
        }
        return;
    }
    s->starting = 0;
    tw_log(TW_LOG_INFO, "reactord", "all %u workers running", s->n);
    rd_status_report(0, NULL);
    char state[160];
    snprintf(state, sizeof state, "READY=1\nSTATUS=serving protocol '%s' with %u workers\n"
             "MAINPID=%ld", s->run->app->plugin->name, s->n, (long)getpid());
    rd_notify(state);
}

static void reap(supervisor *s)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        unsigned i = 0;
        while (i < s->n && s->slots[i].pid != pid)
            i++;
        if (i == s->n)
            continue;
        slot *sl = &s->slots[i];
        char how[128];
        describe_exit(status, how, sizeof how);
        sl->pid = 0;
        close(sl->beat_fd);
        sl->beat_fd = -1;
        if (sl->metrics_fd >= 0)
            close(sl->metrics_fd);
        sl->metrics_fd = -1;
        if (sl->status_fd >= 0) {
            /* Its last words may be waiting in the pipe, behind SIGCHLD. */
            int code = 0;
            char msg[1024];
            if (rd_status_read(sl->status_fd, &code, msg, sizeof msg, 200) == 1 && code != 0) {
                if (!s->starting)
                    tw_log(TW_LOG_ERROR, "reactord", "worker %u could not start: %s", i + 1, msg);
                else if (!s->failure)
                    s->failure = rd_error(code, "%s", msg);
            }
            close(sl->status_fd);
            sl->status_fd = -1;
        }
        if (s->stopping) {
            /* After a failed start, the failure's sentence says it all. */
            tw_log(s->failure ? TW_LOG_DEBUG : TW_LOG_INFO, "reactord", "worker %u (pid %ld) %s",
                   i + 1, (long)pid, how);
            continue;
        }
        if (s->starting) {
            if (!s->failure)
                s->failure = rd_error(EX_SOFTWARE, "worker %u (pid %ld) %s during start-up",
                                      i + 1, (long)pid, how);
            begin_stop(s, NULL);
            continue;
        }
        double t = now();
        sl->quick_deaths = t - sl->started >= STABLE_AFTER ? 0 : sl->quick_deaths + 1;
        double delay = RESTART_MIN;
        for (unsigned k = 1; k < sl->quick_deaths && delay < RESTART_MAX; k++)
            delay *= 2;
        if (delay > RESTART_MAX)
            delay = RESTART_MAX;
        sl->restart_at = t + delay;
        s->restarts++;
        tw_log(TW_LOG_WARN, "reactord", "worker %u (pid %ld) %s; restarting it in %.1f s", i + 1,
               (long)pid, how, delay);
    }
}

static unsigned running(const supervisor *s)
{
    unsigned n = 0;
    for (unsigned i = 0; i < s->n; i++)
        n += s->slots[i].pid > 0;
    return n;
}

/* Handle the signals that arrived; stop requests before deaths, so that a
 * worker that stopped because of the same Ctrl-C is not restarted. */
static void drain_signals(supervisor *s)
{
    unsigned char buf[64];
    int stop = 0, reopen = 0, chld = 0;
    ssize_t n;
    while ((n = read(self_pipe[0], buf, sizeof buf)) > 0) {
        for (ssize_t k = 0; k < n; k++) {
            if (buf[k] == SIGTERM || buf[k] == SIGINT || buf[k] == SIGQUIT)
                stop = buf[k];
            else if (buf[k] == SIGHUP || buf[k] == SIGUSR1)
                reopen = buf[k];
            else if (buf[k] == SIGUSR2)
                tw_log(TW_LOG_INFO, "reactord", "SIGUSR2: ignored");
            else if (buf[k] == SIGCHLD)
                chld = 1;
        }
    }
    if (stop && s->stopping && !s->starting) {
        /* The workers abort what is left on a second SIGTERM. */
        tw_log(TW_LOG_INFO, "reactord", "%s again: the workers close their connections now",
               rd_signal_name(stop));
        signal_all(s, SIGTERM);
    } else if (stop) {
        begin_stop(s, rd_signal_name(stop));
    }
    if (reopen) {
        rd_logging_reopen(reopen);
        signal_all(s, reopen);
    }
    if (chld)
        reap(s);
}

/* Read the heartbeats of worker @p i. */
static void read_beats(slot *sl)
{
    char buf[64];
    ssize_t n;
    while ((n = read(sl->beat_fd, buf, sizeof buf)) > 0)
        sl->last_beat = now();
}

static void on_ready(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    struct pollfd *p = arg;
    if (what & EV_READ)
        p->revents |= POLLIN;
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* poll(), or, with --metrics, one turn of the base, which also serves the
 * scrapes that arrive meanwhile. @return as poll(). */
static int wait_ready(supervisor *s, struct pollfd *pfd, nfds_t n, int timeout)
{
    if (s->base == NULL)
        return poll(pfd, n, timeout);
    struct event *ev[1 + 2 * RD_MAX_WORKERS];
    nfds_t made = 0;
    int rc = -1;
    for (; made < n; made++) {
        pfd[made].revents = 0;
        ev[made] = event_new(s->base, pfd[made].fd, EV_READ, on_ready, &pfd[made]);
        if (ev[made] == NULL || event_add(ev[made], NULL) < 0)
            goto out;
    }
    struct timeval tv = {timeout / 1000, (timeout % 1000) * 1000};
    struct event *wake = evtimer_new(s->base, on_wake, NULL);
    if (wake == NULL || evtimer_add(wake, &tv) < 0 ||
        event_base_loop(s->base, EVLOOP_ONCE) < 0) {
        if (wake != NULL)
            event_free(wake);
        goto out;
    }
    event_free(wake);
    rc = 0;
    for (nfds_t k = 0; k < n; k++)
        rc += pfd[k].revents != 0;
out:
    for (nfds_t k = 0; k < made; k++)
        if (ev[k] != NULL)
            event_free(ev[k]);
    if (made < n && ev[made] != NULL)
        event_free(ev[made]);
    if (rc < 0)
        errno = ENOMEM;
    return rc;
}

/* A scrape of the supervisor's --metrics: every running worker's figures. */
static void scrape(struct evbuffer *out, void *arg)
{
    supervisor *s = arg;
    rd_metrics_peer peers[RD_MAX_WORKERS];
    for (unsigned i = 0; i < s->n; i++) {
        slot *sl = &s->slots[i];
        peers[i] = (rd_metrics_peer){sl->pid > 0 && sl->ready ? sl->metrics_fd : -1, i + 1,
                                     sl->metrics_in};
    }
    rd_metrics_collect(out, peers, s->n, running(s), s->restarts, SCRAPE_TIMEOUT_MS);
}

static int loop(supervisor *s, int *is_worker, int *worker_rc)
{
    for (;;) {
        if (s->stopping && running(s) == 0)
            break;
        struct pollfd pfd[1 + 2 * 1024];
        unsigned owner[1 + 2 * 1024];
        double beat_timeout = s->run->app->cfg->worker_timeout;
        nfds_t nfd = 0;
        pfd[nfd++] = (struct pollfd){self_pipe[0], POLLIN, 0};
        double t = now(), wake = t + 3600;
        for (unsigned i = 0; i < s->n; i++) {
            slot *sl = &s->slots[i];
            if (sl->status_fd >= 0) {
                owner[nfd] = i;
                pfd[nfd++] = (struct pollfd){sl->status_fd, POLLIN, 0};
                if (sl->started + START_TIMEOUT < wake)
                    wake = sl->started + START_TIMEOUT;
            }
            if (sl->pid == 0 && sl->restart_at > 0 && !s->stopping && sl->restart_at < wake)
                wake = sl->restart_at;
            if (sl->pid > 0 && sl->beat_fd >= 0) {
                owner[nfd] = i;
                pfd[nfd++] = (struct pollfd){sl->beat_fd, POLLIN, 0};
                if (sl->ready && beat_timeout > 0 && !s->stopping &&
                    sl->last_beat + beat_timeout < wake)
                    wake = sl->last_beat + beat_timeout;
            }
        }
        if (s->stopping && !s->killed && s->kill_at < wake)
            wake = s->kill_at;
        int timeout = wake <= t ? 0 : (int)((wake - t) * 1000) + 1;
        int pr = wait_ready(s, pfd, nfd, timeout);
        if (pr < 0 && errno != EINTR)
            return rd_error(EX_OSERR, "the supervisor's poll failed: %s", strerror(errno));
        if (pr > 0 && (pfd[0].revents & POLLIN))
            drain_signals(s);
        for (nfds_t k = 1; pr > 0 && k < nfd; k++) {
            slot *sl = &s->slots[owner[k]];
            if (pfd[k].revents != 0 && sl->beat_fd == pfd[k].fd)
                read_beats(sl);
            if (pfd[k].revents == 0 || sl->status_fd != pfd[k].fd)
                continue;
            read_report(s, owner[k], is_worker, worker_rc);
            if (*is_worker)
                return 0;
        }
        t = now();
        for (unsigned i = 0; i < s->n; i++) {
            slot *sl = &s->slots[i];
            if (sl->status_fd >= 0 && sl->pid > 0 && t > sl->started + START_TIMEOUT) {
                tw_log(TW_LOG_ERROR, "reactord", "worker %u (pid %ld) did not start within %g s; "
                       "killing it", i + 1, (long)sl->pid, START_TIMEOUT);
                kill(sl->pid, SIGKILL);
                close(sl->status_fd);
                sl->status_fd = -1;
            }
            if (sl->pid > 0 && sl->ready && beat_timeout > 0 && !s->stopping &&
                t > sl->last_beat + beat_timeout) {
                tw_log(TW_LOG_ERROR, "reactord", "worker %u (pid %ld) sent no heartbeat for %g s "
                       "(--worker-timeout); killing it", i + 1, (long)sl->pid, beat_timeout);
                kill(sl->pid, SIGKILL);
                sl->ready = 0; /* once: reap() restarts it */
            }
            if (sl->pid == 0 && sl->restart_at > 0 && t >= sl->restart_at && !s->stopping) {
                sl->restart_at = 0;
                int rc = start_worker(s, i, is_worker, worker_rc);
                if (*is_worker)
                    return 0;
                if (rc != 0) {
                    tw_log(TW_LOG_ERROR, "reactord", "%s", rd_error_message());
                    sl->restart_at = t + RESTART_MAX;
                }
            }
        }
        if (s->stopping && !s->killed && t >= s->kill_at && running(s) > 0) {
            tw_log(TW_LOG_WARN, "reactord", "%u workers still running %g s after SIGTERM; "
                   "killing them", running(s), s->run->app->cfg->shutdown_timeout + KILL_GRACE);
            signal_all(s, SIGKILL);
            s->killed = 1;
        }
    }
    return 0;
}

int rd_workers_check(const rd_run *run)
{
    for (size_t i = 0; i < run->nendpoints; i++)
        if (!rd_endpoint_shareable(run->endpoints[i]))
            return rd_error(EX_USAGE,
                            "--workers cannot share the endpoint '%s': workers share TCP ports "
                            "(with SO_REUSEPORT) and systemd sockets only; serve it from a "
                            "reactord without --workers",
                            rd_endpoint_describe(run->endpoints[i]));
    return 0;
}

/* Serve --metrics from the supervisor: a base without shared kernel state
 * (see the top), the endpoint, and a buffer per worker. */
static int open_metrics(supervisor *s)
{
    struct event_config *cfg = event_config_new();
    if (cfg != NULL) {
        const char *shared[] = {"epoll", "kqueue", "devpoll", "evport"};
        for (size_t i = 0; i < sizeof shared / sizeof *shared; i++)
            event_config_avoid_method(cfg, shared[i]);
        s->base = event_base_new_with_config(cfg);
        event_config_free(cfg);
    }
    if (s->base == NULL)
        return rd_error(EX_OSERR, "cannot create the supervisor's event loop for --metrics");
    for (unsigned i = 0; i < s->n; i++)
        if ((s->slots[i].metrics_in = evbuffer_new()) == NULL)
            return rd_error(EX_OSERR, "out of memory for the metrics of %u workers", s->n);
    return rd_metrics_serve(s->run->app->cfg->metrics, s->base, scrape, s, &s->metrics);
}

static void close_metrics(supervisor *s)
{
    rd_metrics_server_free(s->metrics);
    s->metrics = NULL;
    for (unsigned i = 0; i < s->n; i++) {
        if (s->slots[i].metrics_fd >= 0)
            close(s->slots[i].metrics_fd);
        s->slots[i].metrics_fd = -1;
        if (s->slots[i].metrics_in != NULL)
            evbuffer_free(s->slots[i].metrics_in);
        s->slots[i].metrics_in = NULL;
    }
    if (s->base != NULL)
        event_base_free(s->base);
    s->base = NULL;
}

int rd_supervise(rd_run *run)
{
    int rc = rd_workers_check(run);
    for (size_t i = 0; i < run->nendpoints && rc == 0; i++)
        rc = rd_endpoint_check_free(run->endpoints[i], &run->app->cfg->listen_opts);
    if (rc != 0)
        return rc;
    if (tw__pipe(self_pipe, O_NONBLOCK | O_CLOEXEC) < 0)
        return rd_error(EX_OSERR, "cannot create the supervisor's signal pipe: %s",
                        strerror(errno));
    supervisor s = {.run = run, .n = run->app->cfg->workers, .starting = 1};
    s.slots = calloc(s.n, sizeof *s.slots);
    if (s.slots == NULL) {
        close(self_pipe[0]);
        close(self_pipe[1]);
        return rd_error(EX_OSERR, "out of memory for %u workers", s.n);
    }
    for (unsigned i = 0; i < s.n; i++)
        s.slots[i].status_fd = s.slots[i].beat_fd = s.slots[i].metrics_fd = -1;
    if (run->app->cfg->metrics != NULL && (rc = open_metrics(&s)) != 0) {
        close_metrics(&s);
        free(s.slots);
        close(self_pipe[0]);
        close(self_pipe[1]);
        return rc;
    }
    set_handlers(on_signal);
    tw_log(TW_LOG_DEBUG, "reactord", "supervisor pid %ld starting %u workers", (long)getpid(),
           s.n);

    int is_worker = 0, worker_rc = 0;
    rc = start_worker(&s, 0, &is_worker, &worker_rc);
    if (is_worker)
        return worker_rc; /* become_worker() already freed the supervisor's state */
    if (rc != 0)
        s.failure = rc, s.stopping = 1;
    else
        rc = loop(&s, &is_worker, &worker_rc);
    if (is_worker)
        return worker_rc;

    set_handlers(SIG_DFL);
    close(self_pipe[0]);
    close(self_pipe[1]);
    for (unsigned i = 0; i < s.n; i++) {
        if (s.slots[i].status_fd >= 0)
            close(s.slots[i].status_fd);
        if (s.slots[i].beat_fd >= 0)
            close(s.slots[i].beat_fd);
    }
    close_metrics(&s);
    free(s.slots);
    if (s.failure)
        return s.failure;
    if (rc != 0)
        return rc;
    tw_log(TW_LOG_INFO, "reactord", "all workers stopped");
    return 0;
}
