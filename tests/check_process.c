/* SPDX-License-Identifier: MIT */
/*
 * Child processes, standard IO and any descriptor: tw_spawn_process() with
 * its options (environment, directory, child descriptors, pty), exit
 * statuses and signals, pipes that close early, stdin's flow control with
 * 1 GiB through cat, the process endpoint, the pipe transport over pipes,
 * files and terminals, and tw_reactor_watch_fd().
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <twine.h>

#include "recorder.h"
#include "testutil.h"

/* Write all of @p len to a descriptor that need not be a socket. */
static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* 1 when @p fd reads EOF within @p ms, 0 otherwise. */
static int wait_eof(int fd, int ms)
{
    long long deadline = tu_now_ms() + ms;
    char buf[256];
    while (tu_now_ms() < deadline) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0)
            return 1;
        if (n < 0 && errno != EINTR && errno != EAGAIN)
            return 0;
    }
    return 0;
}

/* Read @p len bytes within @p ms; @return how many came. */
static size_t read_exact(int fd, void *buf, size_t len, int ms)
{
    long long deadline = tu_now_ms() + ms;
    size_t got = 0;
    while (got < len && tu_now_ms() < deadline) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        ssize_t n = read(fd, (char *)buf + got, len - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

/* ---- a recording process protocol ---- */

typedef struct {
    tw_process_protocol base;
    tw_reactor *r;
    char out[3][8192]; /* per child fd 1, 2, 3 */
    size_t out_len[3];
    size_t out_total; /* bytes on fd 1, all of them */
    int lost[8];      /* child_connection_lost per fd, the order it came in */
    int lost_order[8];
    int nlost;
    int exited, ended;
    int exited_before_lost1; /* process_exited came before fd 1's loss */
    tw_process_status st;
    int pauses, resumes;
    /* A hasher to forward stdout to (the 1 GiB test). */
    tw_process *forward;
} pproto;

static void pp_made(tw_process_protocol *pp)
{
    (void)pp;
}

static void pp_data(tw_process_protocol *pp, int fd, const void *data, size_t len)
{
    pproto *p = (pproto *)pp;
    if (fd == 1)
        p->out_total += len;
    if (p->forward != NULL && fd == 1) {
        ck_assert_int_eq(tw_process_write(p->forward, data, len), 0);
        return;
    }
    int i = fd - 1;
    if (i < 0 || i > 2)
        return;
    size_t room = sizeof p->out[i] - 1 - p->out_len[i];
    if (len > room)
        len = room;
    memcpy(p->out[i] + p->out_len[i], data, len);
    p->out_len[i] += len;
}

static void pp_lost(tw_process_protocol *pp, int fd)
{
    pproto *p = (pproto *)pp;
    if (fd >= 0 && fd < 8)
        p->lost[fd]++;
    if (fd == 1 && !p->exited)
        p->exited_before_lost1 = -1;
    if (p->nlost < 8)
        p->lost_order[p->nlost++] = fd;
}

static void pp_exited(tw_process_protocol *pp, const tw_process_status *st)
{
    pproto *p = (pproto *)pp;
    p->exited++;
    p->st = *st;
}

static void pp_ended(tw_process_protocol *pp, const tw_process_status *st)
{
    pproto *p = (pproto *)pp;
    p->ended++;
    p->st = *st;
    ck_assert_int_eq(p->exited, 1);
    /* The process is still there to ask, and closed to every call. */
    ck_assert_int_eq(tw_process_pid(pp->process), 0);
    ck_assert_int_eq(tw_process_write(pp->process, "x", 1), TW_ESTATE);
    ck_assert_int_eq(tw_process_signal(pp->process, SIGTERM), TW_ESTATE);
}

static void pp_pause(tw_process_protocol *pp)
{
    ((pproto *)pp)->pauses++;
}

static void pp_resume(tw_process_protocol *pp)
{
    ((pproto *)pp)->resumes++;
}

static const tw_process_protocol_ops pp_ops = {
    .connection_made = pp_made,
    .child_data_received = pp_data,
    .child_connection_lost = pp_lost,
    .process_exited = pp_exited,
    .process_ended = pp_ended,
    .pause_producing = pp_pause,
    .resume_producing = pp_resume,
};

static void pp_init(pproto *p, tw_reactor *r)
{
    memset(p, 0, sizeof *p);
    p->base.ops = &pp_ops;
    p->r = r;
}

static void run_until(tw_reactor *r, const int *flag, int ms)
{
    long long deadline = tu_now_ms() + ms;
    while (!*flag && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.01);
}

static tw_process *spawn(tw_reactor *r, pproto *p, const char *const *argv,
                         const tw_process_options *o)
{
    tw_process *proc = NULL;
    ck_assert_int_eq(tw_spawn_process(r, &p->base, argv, o, &proc), 0);
    ck_assert_ptr_nonnull(proc);
    ck_assert_ptr_eq(p->base.process, proc);
    return proc;
}

START_TEST(test_exit_status_and_output_per_descriptor)
{
    tw_reactor *r = tw_reactor_new();
    pproto p;
    pp_init(&p, r);
    const char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    tw_process *proc = spawn(r, &p, argv, NULL);
    ck_assert_int_gt(tw_process_pid(proc), 0);
    run_until(r, &p.ended, 10000);
    ck_assert_int_eq(p.ended, 1);
    ck_assert(p.st.exited);
    ck_assert_int_eq(p.st.exit_code, 3);
    ck_assert_int_eq(p.st.signal, 0);
    ck_assert_str_eq(p.out[0], "out\n");
    ck_assert_str_eq(p.out[1], "err\n");
    ck_assert_int_eq(p.lost[0], 1);
    ck_assert_int_eq(p.lost[1], 1);
    ck_assert_int_eq(p.lost[2], 1);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_child_killed_by_a_signal)
{
    tw_reactor *r = tw_reactor_new();
    pproto p;
    pp_init(&p, r);
    const char *argv[] = {"sleep", "30", NULL};
    tw_process *proc = spawn(r, &p, argv, NULL);
    ck_assert_int_eq(tw_process_signal(proc, SIGKILL), 0);
    long long t0 = tu_now_ms();
    run_until(r, &p.ended, 10000);
    ck_assert_int_eq(p.ended, 1);
    ck_assert_int_lt(tu_now_ms() - t0, 5000);
    ck_assert(!p.st.exited);
    ck_assert_int_eq(p.st.signal, SIGKILL);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_signal_after_exit_is_refused)
{
    tw_reactor *r = tw_reactor_new();
    pproto p;
    pp_init(&p, r);
    const char *argv[] = {"sh", "-c", "exec 1>&- 2>&- 0<&-; exit 0", NULL};
    tw_process *proc = spawn(r, &p, argv, NULL);
    run_until(r, &p.exited, 10000);
    ck_assert_int_eq(p.exited, 1);
    if (!p.ended) {
        ck_assert_int_eq(tw_process_signal(proc, SIGTERM), TW_ESTATE);
        ck_assert_int_eq(tw_process_pid(proc), 0);
    }
    run_until(r, &p.ended, 10000);
    ck_assert_int_eq(p.ended, 1);
    tw_reactor_free(r);
}
END_TEST

/* The pid a child printed on its stdout as "PID\n", once it came. */
static pid_t printed_pid(tw_reactor *r, pproto *p)
{
    long long deadline = tu_now_ms() + 10000;
    while (memchr(p->out[0], '\n', p->out_len[0]) == NULL && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.01);
    ck_assert_ptr_nonnull(memchr(p->out[0], '\n', p->out_len[0]));
    return (pid_t)atol(p->out[0]);
}

/* Gone, or a zombie nobody reaps (a container's init may not). */
static int is_dead_now(pid_t pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')');
    return close_paren != NULL && close_paren[1] == ' ' && close_paren[2] == 'Z';
}

/* Dead within 2 s: a killed process closes its descriptors a moment
 * before it becomes a zombie. */
static int is_dead(pid_t pid)
{
    long long deadline = tu_now_ms() + 2000;
    while (!is_dead_now(pid) && tu_now_ms() < deadline)
        usleep(10000);
    return is_dead_now(pid);
}

/* Both ways of starting a child (_i: 0 posix_spawn, 1 fork, which asking
 * for our own ids selects): the child leads its group, and one signal to
 * the group ends what it started too, which holds its stdout open. */
START_TEST(test_signal_group_reaches_what_the_child_started)
{
    tw_reactor *r = tw_reactor_new();
    pproto p;
    pp_init(&p, r);
    const char *argv[] = {"sh", "-c", "sleep 30 & echo $!; wait", NULL};
    tw_process_options o = {.new_process_group = 1};
    if (_i == 1) {
        o.set_ids = 1;
        o.uid = getuid();
        o.gid = getgid();
    }
    tw_process *proc = spawn(r, &p, argv, &o);
    pid_t child = tw_process_pid(proc);
    pid_t grandchild = printed_pid(r, &p);
    ck_assert_int_eq(getpgid(child), child);
    ck_assert_int_eq(getpgid(grandchild), child);
    ck_assert_int_ne(getpgid(0), child);

    long long t0 = tu_now_ms();
    ck_assert_int_eq(tw_process_signal_group(proc, SIGKILL), 0);
    run_until(r, &p.ended, 10000);
    ck_assert_int_eq(p.ended, 1);
    ck_assert_int_lt(tu_now_ms() - t0, 5000); /* not the sleep's 30 s */
    ck_assert_int_eq(p.st.signal, SIGKILL);
    ck_assert(is_dead(grandchild));
    tw_reactor_free(r);
}
END_TEST

/* The child exits at once and leaves its own child in the group, holding
 * stdout open: the group can still be signalled after the reap. */
START_TEST(test_signal_group_after_the_child_was_reaped)
{
    tw_reactor *r = tw_reactor_new();
    pproto p;
    pp_init(&p, r);
    const char *argv[] = {"sh", "-c", "sleep 30 & echo $!", NULL};
    tw_process_options o = {.new_process_group = 1};
    tw_process *proc = spawn(r, &p, argv, &o);
    pid_t grandchild = printed_pid(r, &p);
    run_until(r, &p.exited, 10000);
    ck_assert_int_eq(p.exited, 1);
    ck_assert(p.st.exited);
    ck_assert_int_eq(p.ended, 0); /* the sleep holds stdout */
    ck_assert_int_eq(tw_process_pid(proc), 0);
    ck_assert_int_eq(tw_process_signal_group(proc, SIGKILL), 0);
    long long t0 = tu_now_ms();
    run_until(r, &p.ended, 10000);
    ck_assert_int_eq(p.ended, 1);
    ck_assert_int_lt(tu_now_ms() - t0, 5000);
    ck_assert(is_dead(grandchild));
    tw_reactor_free(r);
}
END_TEST

/* Without new_process_group the child stays in our group: signalling
 * "its" group would signal us, so it is refused. */
START_TEST(test_signal_group_needs_a_group_of_its_own)
{
    tw_reactor *r = tw_reactor_new();
    pproto p;
    pp_init(&p, r);
    const char *argv[] = {"sleep", "30", NULL};
    tw_process *proc = spawn(r, &p, argv, NULL);
    ck_assert_int_eq(getpgid(tw_process_pid(proc)), getpgid(0));
    ck_assert_int_eq(tw_process_signal_group(proc, SIGKILL), -EINVAL);
    ck_assert_int_eq(tw_process_signal(proc, SIGKILL), 0);
    run_until(r, &p.ended, 10000);
    ck_assert_int_eq(p.ended, 1);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_child_that_closes_stdout_early)
{
    tw_reactor *r = tw_reactor_new();
    pproto p;
    pp_init(&p, r);
    const char *argv[] = {"sh", "-c", "echo bye; exec 1>&-; sleep 0.5; echo still >&2", NULL};
    spawn(r, &p, argv, NULL);
    run_until(r, &p.lost[1], 10000);
    /* stdout ended long before the child did. */
    ck_assert_int_eq(p.lost[1], 1);
    ck_assert_int_eq(p.exited, 0);
    ck_assert_str_eq(p.out[0], "bye\n");
    run_until(r, &p.ended, 10000);
    ck_assert_int_eq(p.ended, 1);
    ck_assert_str_eq(p.out[1], "still\n");
    ck_assert_int_eq(p.st.exit_code, 0);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_closing_stdin_ends_cat)
{
    tw_reactor *r = tw_reactor_new();
    pproto p;
    pp_init(&p, r);
    const char *argv[] = {"cat", NULL};
    tw_process *proc = spawn(r, &p, argv, NULL);
    ck_assert_int_eq(tw_process_write(proc, "hello ", 6), 0);
    ck_assert_int_eq(tw_process_write(proc, "world", 5), 0);
    ck_assert_int_eq(tw_process_close_stdin(proc), 0);
    ck_assert_int_eq(tw_process_close_stdin(proc), TW_ESTATE);
    ck_assert_int_eq(tw_process_write(proc, "late", 4), TW_ESTATE);
    run_until(r, &p.ended, 10000);
    ck_assert_int_eq(p.ended, 1);
    ck_assert_str_eq(p.out[0], "hello world");
    ck_assert_int_eq(p.lost[0], 1);
    ck_assert_int_eq(p.st.exit_code, 0);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_environment_and_working_directory)
{
    tw_reactor *r = tw_reactor_new();
    pproto p;
    pp_init(&p, r);
    char dir[] = "/tmp/twine-proc.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    const char *env[] = {"GREETING=hi there", "PATH=/usr/bin:/bin", NULL};
    tw_process_options o = {.env = env, .cwd = dir};
    const char *argv[] = {"sh", "-c", "echo \"$GREETING\"; pwd; echo \"${HOME-unset}\"", NULL};
    spawn(r, &p, argv, &o);
    run_until(r, &p.ended, 10000);
    char want[256];
    snprintf(want, sizeof want, "hi there\n%s\nunset\n", dir);
    ck_assert_str_eq(p.out[0], want);
    rmdir(dir);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_missing_program_fails_without_callbacks)
{
    tw_reactor *r = tw_reactor_new();
    pproto p;
    pp_init(&p, r);
    const char *argv[] = {"/nonexistent/twine-no-such-program", NULL};
    ck_assert_int_eq(tw_spawn_process(r, &p.base, argv, NULL, NULL), -ENOENT);
    const char *empty[] = {NULL};
    ck_assert_int_eq(tw_spawn_process(r, &p.base, empty, NULL, NULL), -EINVAL);
    tw_child_fd twice[] = {{1, TW_CHILD_READ, -1}, {1, TW_CHILD_WRITE, -1}};
    tw_process_options o = {.child_fds = twice, .n_child_fds = 2};
    const char *argv2[] = {"true", NULL};
    ck_assert_int_eq(tw_spawn_process(r, &p.base, argv2, &o, NULL), -EINVAL);
    tw_process_options ids = {.set_ids = 1, .uid = 0, .gid = 0};
    if (geteuid() != 0)
        ck_assert_int_eq(tw_spawn_process(r, &p.base, argv2, &ids, NULL), -EPERM);

    tw_reactor_iterate(r, 0.05);
    ck_assert_int_eq(p.nlost + p.exited + p.ended, 0);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_child_fds_map_extra_pipes_and_inherited_descriptors)
{
    tw_reactor *r = tw_reactor_new();
    pproto p;
    pp_init(&p, r);
    int side[2];
    ck_assert_int_eq(pipe(side), 0);
    /* fd 3 is read by us, fd 4 written by us, fd 5 is the parent's pipe. */
    tw_child_fd map[] = {{0, TW_CHILD_WRITE, -1},
                         {1, TW_CHILD_READ, -1},
                         {3, TW_CHILD_READ, -1},
                         {4, TW_CHILD_WRITE, -1},
                         {5, TW_CHILD_INHERIT, side[1]}};
    tw_process_options o = {.child_fds = map, .n_child_fds = 5};
    const char *argv[] = {"sh", "-c",
                          "echo three >&3; read line <&4; echo \"got $line\"; echo five >&5;"
                          "test -e /proc/self/fd/2 && echo stderr-open || echo stderr-closed",
                          NULL};
    tw_process *proc = spawn(r, &p, argv, &o);
    ck_assert_int_eq(tw_process_write_to_child(proc, 4, "four\n", 5), 0);
    ck_assert_int_eq(tw_process_write_to_child(proc, 2, "x", 1), -EBADF);
    run_until(r, &p.ended, 10000);
    ck_assert_int_eq(p.ended, 1);
    ck_assert_str_eq(p.out[2], "three\n");
    ck_assert_str_eq(p.out[0], "got four\nstderr-closed\n");
    close(side[1]);
    char buf[16] = {0};
    ck_assert_int_eq(read(side[0], buf, sizeof buf - 1), 5);
    ck_assert_str_eq(buf, "five\n");
    close(side[0]);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_descriptors_not_mapped_are_not_inherited)
{
    tw_reactor *r = tw_reactor_new();
    pproto p;
    pp_init(&p, r);
    int leak[2];
    ck_assert_int_eq(pipe(leak), 0); /* no close-on-exec: a careless program's */
    const char *argv[] = {"sleep", "2", NULL};
    tw_process *proc = spawn(r, &p, argv, NULL);
    close(leak[1]);
    /* Were the write end in the child, this read would wait for it. */
    ck_assert_int_eq(wait_eof(leak[0], 1000), 1);
    close(leak[0]);
    tw_process_signal(proc, SIGKILL);
    run_until(r, &p.ended, 10000);
    ck_assert_int_eq(p.ended, 1);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_pty_is_the_childs_terminal)
{
    tw_reactor *r = tw_reactor_new();
    pproto p;
    pp_init(&p, r);
    tw_process_options o = {.use_pty = 1};
    const char *argv[] = {"sh", "-c", "test -t 0 && test -t 1 && echo tty; read x; echo \"x=$x\"",
                          NULL};
    tw_process *proc = spawn(r, &p, argv, &o);
    ck_assert_int_eq(tw_process_write(proc, "typed\n", 6), 0);
    run_until(r, &p.ended, 10000);
    ck_assert_int_eq(p.ended, 1);
    ck_assert_int_eq(p.st.exit_code, 0);
    ck_assert_ptr_nonnull(strstr(p.out[0], "tty\r\n"));
    ck_assert_ptr_nonnull(strstr(p.out[0], "x=typed\r\n"));
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_ids_are_set_when_root)
{
    tw_reactor *r = tw_reactor_new();
    pproto p;
    pp_init(&p, r);
    tw_process_options o = {.set_ids = 1, .uid = 65534, .gid = 65534};
    const char *argv[] = {"sh", "-c", "id -u; id -g", NULL};
    if (geteuid() != 0) {
        ck_assert_int_eq(tw_spawn_process(r, &p.base, argv, &o, NULL), -EPERM);
        tw_reactor_free(r);
        return;
    }
    spawn(r, &p, argv, &o);
    run_until(r, &p.ended, 10000);
    ck_assert_str_eq(p.out[0], "65534\n65534\n");
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_stdin_past_the_high_watermark_pauses_the_protocol)
{
    tw_reactor *r = tw_reactor_new();
    pproto p;
    pp_init(&p, r);
    const char *argv[] = {"sh", "-c", "sleep 0.3; exec cat >/dev/null", NULL};
    tw_process *proc = spawn(r, &p, argv, NULL);
    static char big[1 << 20];
    ck_assert_int_eq(tw_process_write(proc, big, sizeof big), 0);
    ck_assert_int_eq(p.pauses, 1);
    ck_assert_uint_gt(tw_process_write_buffer_size(proc), TW_WRITE_HIGH_WATERMARK);
    run_until(r, &p.resumes, 10000);
    ck_assert_int_eq(p.resumes, 1);
    ck_assert_uint_le(tw_process_write_buffer_size(proc), TW_WRITE_LOW_WATERMARK);
    tw_process_close_stdin(proc);
    run_until(r, &p.ended, 10000);
    ck_assert_int_eq(p.st.exit_code, 0);
    tw_reactor_free(r);
}
END_TEST

/* The 1 GiB test: data -> cat -> us -> sha256sum (B), and data -> sha256sum (A). */
#define BIG_TOTAL (1024LL * 1024 * 1024)
#define BIG_CHUNK (256 * 1024)

typedef struct {
    tw_producer prod;
    tw_process *cat, *hash_in;
    unsigned char chunk[BIG_CHUNK];
    long long sent;
    int paused, pauses;
    size_t max_queued;
} feeder;

static void feed(feeder *f)
{
    while (!f->paused && f->sent < BIG_TOTAL) {
        /* Vary the chunk so a lost or repeated chunk changes the hash. */
        memcpy(f->chunk, &f->sent, sizeof f->sent);
        ck_assert_int_eq(tw_process_write(f->cat, f->chunk, BIG_CHUNK), 0);
        ck_assert_int_eq(tw_process_write(f->hash_in, f->chunk, BIG_CHUNK), 0);
        f->sent += BIG_CHUNK;
        size_t q = tw_process_write_buffer_size(f->cat);
        if (q > f->max_queued)
            f->max_queued = q;
        /* The reference hasher is drained fully by the loop between chunks. */
        if (tw_process_write_buffer_size(f->hash_in) > 8 * BIG_CHUNK)
            break;
    }
    if (f->sent >= BIG_TOTAL) {
        tw_process_unregister_producer(f->cat);
        tw_process_close_stdin(f->cat);
        tw_process_close_stdin(f->hash_in);
    }
}

static void feeder_pause(tw_producer *p)
{
    feeder *f = (feeder *)p;
    f->paused = 1;
    f->pauses++;
}

static void feeder_resume(tw_producer *p)
{
    feeder *f = (feeder *)p;
    f->paused = 0;
    feed(f);
}

static void feeder_stop(tw_producer *p)
{
    (void)p;
}

static const tw_producer_ops feeder_ops = {feeder_pause, feeder_resume, feeder_stop};

START_TEST(test_one_gib_through_cat_with_backpressure)
{
    tw_reactor *r = tw_reactor_new();
    static pproto cat_p, a_p, b_p;
    pp_init(&cat_p, r);
    pp_init(&a_p, r);
    pp_init(&b_p, r);
    const char *cat_argv[] = {"cat", NULL};
    const char *sha_argv[] = {"sha256sum", NULL};
    tw_process *b = spawn(r, &b_p, sha_argv, NULL);
    tw_process *a = spawn(r, &a_p, sha_argv, NULL);
    tw_process *cat = spawn(r, &cat_p, cat_argv, NULL);
    cat_p.forward = b;
    static feeder f;
    memset(&f, 0, sizeof f);
    f.prod.ops = &feeder_ops;
    f.cat = cat;
    f.hash_in = a;
    ck_assert_int_eq(tw_process_register_producer(cat, &f.prod, 1), 0);

    long long t0 = tu_now_ms();
    long long deadline = t0 + 60000;
    while (!(cat_p.ended && a_p.ended && b_p.ended) && tu_now_ms() < deadline) {
        if (!f.paused && f.sent < BIG_TOTAL)
            feed(&f);
        /* cat's output is forwarded: hold cat back while the second
         * hasher lags (each process is valid until its process_ended). */
        if (!cat_p.ended) {
            if (tw_process_write_buffer_size(b) > 4 * 1024 * 1024)
                tw_process_pause_producing(cat);
            else
                tw_process_resume_producing(cat);
        }
        tw_reactor_iterate(r, 0.001);
        if (cat_p.lost[1] && !b_p.lost[0] && !b_p.ended && tw_process_write_buffer_size(b) == 0)
            tw_process_close_stdin(b);
    }
    long long ms = tu_now_ms() - t0;
    fprintf(stderr, "1 GiB through cat: %lld ms, %d pauses, max queued %zu\n", ms, f.pauses,
            f.max_queued);
    ck_assert_int_eq(cat_p.ended && a_p.ended && b_p.ended, 1);
    ck_assert_int_eq((long long)cat_p.out_total, BIG_TOTAL);
    ck_assert_int_gt(f.pauses, 0);
    /* The queue never outgrew the high watermark by more than a chunk. */
    ck_assert_uint_le(f.max_queued, TW_WRITE_HIGH_WATERMARK + BIG_CHUNK);
    ck_assert_uint_eq(a_p.out_len[0], 64 + 4);
    ck_assert_mem_eq(a_p.out[0], b_p.out[0], 64);
    ck_assert_int_eq(a_p.st.exit_code, 0);
    ck_assert_int_eq(b_p.st.exit_code, 0);
    tw_reactor_free(r);
}
END_TEST

/* ---- a recording stream protocol, for the endpoint and pipe transports ---- */

typedef struct {
    tw_protocol base;
    char data[65536];
    size_t len;
    long long total;
    int made, lost, read_lost, lost_code;
    char lost_message[256];
    int half_close;
    int *destroyed;
} sproto;

typedef struct {
    tw_factory base;
    sproto *last;
    int half_close;
    int destroyed;
} sfactory;

static void sp_made(tw_protocol *p)
{
    ((sproto *)p)->made++;
}

static void sp_data(tw_protocol *p, const void *data, size_t len)
{
    sproto *s = (sproto *)p;
    s->total += (long long)len;
    size_t room = sizeof s->data - 1 - s->len;
    if (len > room)
        len = room;
    memcpy(s->data + s->len, data, len);
    s->len += len;
}

static void sp_lost(tw_protocol *p, const tw_failure *reason)
{
    sproto *s = (sproto *)p;
    s->lost++;
    s->lost_code = tw_failure_code(reason);
    snprintf(s->lost_message, sizeof s->lost_message, "%s", tw_failure_message(reason));
}

static void sp_read_lost(tw_protocol *p)
{
    sproto *s = (sproto *)p;
    s->read_lost++;
    tw_transport_write(p->transport, "bye", 3);
    tw_transport_lose_connection(p->transport);
}

static void sp_destroy(tw_protocol *p)
{
    (*((sproto *)p)->destroyed)++;
}

static const tw_protocol_ops sp_ops = {
    .connection_made = sp_made, .data_received = sp_data, .connection_lost = sp_lost,
    .destroy = sp_destroy};
static const tw_protocol_ops sp_half_ops = {.connection_made = sp_made,
                                            .data_received = sp_data,
                                            .connection_lost = sp_lost,
                                            .read_connection_lost = sp_read_lost,
                                            .destroy = sp_destroy};

static tw_protocol *sf_build(tw_factory *f, const tw_address *peer)
{
    (void)peer;
    sfactory *sf = (sfactory *)f;
    sproto *s = calloc(1, sizeof *s);
    s->base.ops = sf->half_close ? &sp_half_ops : &sp_ops;
    s->destroyed = &sf->destroyed;
    sf->last = s;
    return &s->base;
}

static const tw_factory_ops sf_ops = {.build_protocol = sf_build};

static void sf_init(sfactory *sf)
{
    memset(sf, 0, sizeof *sf);
    tw_factory_init(&sf->base, &sf_ops);
}

START_TEST(test_process_endpoint_speaks_to_cat_as_a_stream)
{
    tw_reactor *r = tw_reactor_new();
    sfactory sf;
    sf_init(&sf);
    const char *argv[] = {"cat", NULL};
    tw_deferred *d = tw_process_endpoint_connect(r, argv, NULL, &sf.base);
    ck_assert(tw_deferred_called(d));
    tw_deferred_unref(d);
    sproto *s = sf.last;
    ck_assert_int_eq(s->made, 1);
    tw_transport *t = s->base.transport;
    ck_assert_int_eq(tw_transport_write(t, "ping", 4), 0);
    long long deadline = tu_now_ms() + 10000;
    while (s->len < 4 && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.01);
    ck_assert_str_eq(s->data, "ping");
    ck_assert_int_eq(tw_transport_lose_write_connection(t), 0);
    run_until(r, &s->lost, 10000);
    ck_assert_int_eq(s->lost, 1);
    ck_assert_int_eq(s->lost_code, TW_EDONE);
    free(s);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_process_endpoint_reports_a_failing_command)
{
    tw_reactor *r = tw_reactor_new();
    sfactory sf;
    sf_init(&sf);
    const char *argv[] = {"sh", "-c", "exit 7", NULL};
    tw_deferred *d = tw_process_endpoint_connect(r, argv, NULL, &sf.base);
    tw_deferred_unref(d);
    sproto *s = sf.last;
    run_until(r, &s->lost, 10000);
    ck_assert_int_eq(s->lost_code, TW_ECONNLOST);
    ck_assert_ptr_nonnull(strstr(s->lost_message, "status 7"));
    free(s);
    const char *none[] = {"/nonexistent/twine-none", NULL};
    tu_outcome o = {0};
    d = tw_process_endpoint_connect(r, none, NULL, &sf.base);
    tu_watch(d, &o);
    ck_assert(o.fired && !o.ok);
    ck_assert_int_eq(o.code, -ENOENT);
    /* The protocol built for it was released, never connected. */
    ck_assert_int_eq(sf.destroyed, 2);
    ck_assert_int_eq(sf.last->made, 0);
    free(sf.last);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_pipe_transport_reads_and_writes_pipes)
{
    tw_reactor *r = tw_reactor_new();
    sfactory sf;
    sf_init(&sf);
    sf.half_close = 1;
    int in[2], out[2];
    ck_assert_int_eq(pipe(in), 0);
    ck_assert_int_eq(pipe(out), 0);
    ck_assert_int_eq(tw_stdio_start(r, &sf.base, in[0], out[1], NULL), 0);
    close(in[0]); /* the transport works on copies */
    close(out[1]);
    sproto *s = sf.last;
    ck_assert_int_eq(write_all(in[1], "abc", 3), 0);
    close(in[1]);
    run_until(r, &s->lost, 10000);
    ck_assert_str_eq(s->data, "abc");
    ck_assert_int_eq(s->read_lost, 1);
    ck_assert_int_eq(s->lost_code, TW_EDONE);
    char buf[8] = {0};
    ck_assert_uint_eq(read_exact(out[0], buf, 3, 1000), 3);
    ck_assert_str_eq(buf, "bye");
    ck_assert_int_eq(wait_eof(out[0], 1000), 1);
    close(out[0]);
    free(s);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_pipe_transport_reads_a_regular_file)
{
    tw_reactor *r = tw_reactor_new();
    sfactory sf;
    sf_init(&sf);
    char path[] = "/tmp/twine-stdin.XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    static char big[300000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)('a' + i % 26);
    ck_assert_int_eq(write_all(fd, big, sizeof big), 0);
    lseek(fd, 0, SEEK_SET);
    int fl = fcntl(fd, F_GETFL);
    ck_assert_int_eq(tw_stdio_start(r, &sf.base, fd, -1, NULL), 0);
    sproto *s = sf.last;
    run_until(r, &s->lost, 10000);
    ck_assert_int_eq((int)s->total, (int)sizeof big);
    ck_assert_mem_eq(s->data, big, sizeof s->data - 1);
    ck_assert_int_eq(s->lost_code, TW_EDONE);
    /* The shared file's flags are back as they were. */
    ck_assert_int_eq(fcntl(fd, F_GETFL), fl);
    close(fd);
    free(s);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_pipe_transport_over_a_terminal)
{
    tw_reactor *r = tw_reactor_new();
    sfactory sf;
    sf_init(&sf);
    int m = posix_openpt(O_RDWR | O_NOCTTY);
    ck_assert_int_ge(m, 0);
    ck_assert_int_eq(grantpt(m), 0);
    ck_assert_int_eq(unlockpt(m), 0);
    int sl = open(ptsname(m), O_RDWR | O_NOCTTY);
    ck_assert_int_ge(sl, 0);
    struct termios raw;
    ck_assert_int_eq(tcgetattr(sl, &raw), 0);
    raw.c_lflag &= ~(tcflag_t)(ECHO | ECHONL); /* only what the protocol writes comes back */
    ck_assert_int_eq(tcsetattr(sl, TCSANOW, &raw), 0);
    /* A terminal as standard IO: one descriptor, read and written. */
    ck_assert_int_eq(tw_stdio_start(r, &sf.base, sl, sl, NULL), 0);
    sproto *s = sf.last;
    ck_assert_int_eq(write_all(m, "line\n", 5), 0);
    long long deadline = tu_now_ms() + 5000;
    while (s->len < 5 && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.01);
    ck_assert_str_eq(s->data, "line\n");
    ck_assert_int_eq(tw_transport_write(s->base.transport, "out", 3), 0);
    char buf[16] = {0};
    size_t n = 0;
    deadline = tu_now_ms() + 5000;
    while (n < 3 && tu_now_ms() < deadline) {
        tw_reactor_iterate(r, 0.01);
        ssize_t k = read(m, buf + n, sizeof buf - 1 - n);
        if (k > 0)
            n += (size_t)k;
    }
    ck_assert_str_eq(buf, "out");
    ck_assert_int_eq(tw_transport_get_peer(s->base.transport, &(tw_address){0}), -ENOTSOCK);
    tw_transport_lose_connection(s->base.transport);
    run_until(r, &s->lost, 5000);
    ck_assert_int_eq(s->lost_code, TW_EDONE);
    close(sl);
    close(m);
    free(s);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_adopting_a_fifo_reads_and_writes_it)
{
    tw_reactor *r = tw_reactor_new();
    sfactory sf;
    sf_init(&sf);
    char dir[] = "/tmp/twine-fifo.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/f", dir);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    /* Opened for both: one transport reads and writes it. */
    ck_assert_int_eq(tw_transport_adopt(r, fd, &sf.base), 0);
    sproto *s = sf.last;
    ck_assert_int_eq(tw_transport_write(s->base.transport, "loop", 4), 0);
    long long deadline = tu_now_ms() + 5000;
    while (s->len < 4 && tu_now_ms() < deadline)
        tw_reactor_iterate(r, 0.01);
    ck_assert_str_eq(s->data, "loop");
    tw_transport_abort_connection(s->base.transport);
    run_until(r, &s->lost, 5000);
    ck_assert_int_eq(s->lost_code, TW_EABORTED);
    unlink(path);
    rmdir(dir);
    free(s);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_adopting_a_pipe_and_writing_past_a_closed_reader)
{
    tw_reactor *r = tw_reactor_new();
    sfactory sf;
    sf_init(&sf);
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    ck_assert_int_eq(tw_transport_adopt(r, fds[1], &sf.base), 0); /* write-only */
    sproto *s = sf.last;
    close(fds[0]);
    /* No SIGPIPE: the write fails with EPIPE and ends the connection. */
    static char big[100000];
    ck_assert_int_eq(tw_transport_write(s->base.transport, big, sizeof big), 0);
    run_until(r, &s->lost, 5000);
    ck_assert_int_eq(s->lost_code, -EPIPE);
    free(s);
    tw_reactor_free(r);
}
END_TEST

/* ---- tw_reactor_watch_fd ---- */

typedef struct {
    int reads, writes;
    char got[16];
    int close_in_read;
} watch_rec;

static void on_readable(tw_fd_watch *w, int fd, void *arg)
{
    watch_rec *wr = arg;
    wr->reads++;
    ssize_t n = read(fd, wr->got, sizeof wr->got - 1);
    if (n > 0)
        wr->got[n] = 0;
    if (wr->close_in_read)
        tw_fd_watch_close(w);
}

static void on_writable(tw_fd_watch *w, int fd, void *arg)
{
    (void)fd;
    watch_rec *wr = arg;
    wr->writes++;
    tw_fd_watch_set(w, tw_fd_watch_events(w) & ~TW_FD_WRITABLE);
}

START_TEST(test_watch_fd_reports_readable_and_writable)
{
    tw_reactor *r = tw_reactor_new();
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    watch_rec rd = {0}, wr = {0};
    tw_fd_watch *wread, *wwrite;
    ck_assert_int_eq(tw_reactor_watch_fd(r, fds[0], on_readable, NULL, &rd, &wread), 0);
    ck_assert_int_eq(tw_reactor_watch_fd(r, fds[1], NULL, on_writable, &wr, &wwrite), 0);
    ck_assert_int_eq(tw_fd_watch_events(wread), TW_FD_READABLE);
    tw_reactor_iterate(r, 0.05);
    ck_assert_int_eq(rd.reads, 0);
    ck_assert_int_eq(wr.writes, 1); /* then it stopped asking */
    tw_reactor_iterate(r, 0.05);
    ck_assert_int_eq(wr.writes, 1);
    ck_assert_int_eq(write(fds[1], "ping", 4), 4);
    tw_reactor_iterate(r, 0.05);
    ck_assert_int_eq(rd.reads, 1);
    ck_assert_str_eq(rd.got, "ping");
    /* Paused, data waits. */
    ck_assert_int_eq(tw_fd_watch_set(wread, 0), 0);
    ck_assert_int_eq(write(fds[1], "pong", 4), 4);
    tw_reactor_iterate(r, 0.05);
    ck_assert_int_eq(rd.reads, 1);
    ck_assert_int_eq(tw_fd_watch_set(wread, TW_FD_READABLE), 0);
    rd.close_in_read = 1;
    tw_reactor_iterate(r, 0.05);
    ck_assert_int_eq(rd.reads, 2);
    ck_assert_str_eq(rd.got, "pong");
    ck_assert_int_eq(write(fds[1], "more", 4), 4);
    tw_reactor_iterate(r, 0.05);
    ck_assert_int_eq(rd.reads, 2); /* closed from its own callback */
    ck_assert_int_eq(tw_reactor_watch_fd(r, -1, on_readable, NULL, &rd, &wread), -EINVAL);
    /* Left open: the reactor's free closes it; the descriptor stays ours. */
    tw_reactor_free(r);
    ck_assert_int_eq(fcntl(fds[1], F_GETFD) >= 0, 1);
    close(fds[0]);
    close(fds[1]);
}
END_TEST

START_TEST(test_watch_fd_on_a_regular_file_is_always_ready)
{
    tw_reactor *r = tw_reactor_new();
    char path[] = "/tmp/twine-watch.XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    unlink(path);
    watch_rec rd = {0};
    tw_fd_watch *w;
    ck_assert_int_eq(tw_reactor_watch_fd(r, fd, on_readable, NULL, &rd, &w), 0);
    for (int i = 0; i < 5; i++)
        tw_reactor_iterate(r, 0.01);
    /* Once per loop pass, not in a loop that starves the rest. */
    ck_assert_int_ge(rd.reads, 3);
    ck_assert_int_le(rd.reads, 6);
    tw_fd_watch_close(w);
    int before = rd.reads;
    tw_reactor_iterate(r, 0.01);
    ck_assert_int_eq(rd.reads, before);
    close(fd);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_standard_output_to_a_device_without_poll)
{
    tw_reactor *r = tw_reactor_new();
    sfactory sf;
    sf_init(&sf);
    int in[2];
    ck_assert_int_eq(pipe(in), 0);
    int null = open("/dev/null", O_WRONLY);
    ck_assert_int_ge(null, 0);
    ck_assert_int_eq(tw_stdio_start(r, &sf.base, in[0], null, NULL), 0);
    close(in[0]);
    close(null);
    sproto *s = sf.last;
    static char big[1 << 20];
    ck_assert_int_eq(tw_transport_write(s->base.transport, big, sizeof big), 0);
    ck_assert_int_eq(tw_transport_write(s->base.transport, big, sizeof big), 0);
    close(in[1]);
    run_until(r, &s->lost, 5000);
    ck_assert_int_eq(s->lost_code, TW_EDONE);
    free(s);
    tw_reactor_free(r);
}
END_TEST

/* ---- several reactors ---- */

static void *spawn_in_thread(void *arg)
{
    int *ok = arg;
    tw_reactor *r = tw_reactor_new();
    pproto p;
    pp_init(&p, r);
    const char *argv[] = {"sh", "-c", "sleep 0.2; exit 5", NULL};
    if (tw_spawn_process(r, &p.base, argv, NULL, NULL) == 0) {
        run_until(r, &p.ended, 10000);
        *ok = p.ended == 1 && p.st.exit_code == 5;
    }
    tw_reactor_free(r);
    return NULL;
}

START_TEST(test_children_of_several_reactors_are_each_reaped_by_their_own)
{
    pthread_t th[3];
    int ok[3] = {0};
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, spawn_in_thread, &ok[i]), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(ok[i], 1);
}
END_TEST

START_TEST(test_other_children_of_the_program_are_not_reaped)
{
    tw_reactor *r = tw_reactor_new();
    pid_t mine = fork();
    if (mine == 0)
        _exit(9);
    pproto p;
    pp_init(&p, r);
    const char *argv[] = {"sh", "-c", "sleep 0.2", NULL};
    spawn(r, &p, argv, NULL);
    run_until(r, &p.ended, 10000);
    ck_assert_int_eq(p.ended, 1);
    int st = 0;
    ck_assert_int_eq(waitpid(mine, &st, 0), mine);
    ck_assert_int_eq(WEXITSTATUS(st), 9);
    tw_reactor_free(r);
}
END_TEST

START_TEST(test_freeing_the_reactor_under_a_running_child)
{
    tw_reactor *r = tw_reactor_new();
    pproto p;
    pp_init(&p, r);
    const char *argv[] = {"sleep", "30", NULL};
    tw_process *proc = spawn(r, &p, argv, NULL);
    pid_t pid = tw_process_pid(proc);
    tw_reactor_free(r);
    ck_assert_int_eq(p.ended, 0);
    /* Neither killed nor reaped: still ours to handle. */
    ck_assert_int_eq(kill(pid, 0), 0);
    kill(pid, SIGKILL);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("process");
    TCase *tc = tcase_create("process");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_exit_status_and_output_per_descriptor);
    tcase_add_test(tc, test_child_killed_by_a_signal);
    tcase_add_test(tc, test_signal_after_exit_is_refused);
    tcase_add_loop_test(tc, test_signal_group_reaches_what_the_child_started, 0, 2);
    tcase_add_test(tc, test_signal_group_after_the_child_was_reaped);
    tcase_add_test(tc, test_signal_group_needs_a_group_of_its_own);
    tcase_add_test(tc, test_child_that_closes_stdout_early);
    tcase_add_test(tc, test_closing_stdin_ends_cat);
    tcase_add_test(tc, test_environment_and_working_directory);
    tcase_add_test(tc, test_missing_program_fails_without_callbacks);
    tcase_add_test(tc, test_child_fds_map_extra_pipes_and_inherited_descriptors);
    tcase_add_test(tc, test_descriptors_not_mapped_are_not_inherited);
    tcase_add_test(tc, test_pty_is_the_childs_terminal);
    tcase_add_test(tc, test_ids_are_set_when_root);
    tcase_add_test(tc, test_stdin_past_the_high_watermark_pauses_the_protocol);
    tcase_add_test(tc, test_one_gib_through_cat_with_backpressure);
    tcase_add_test(tc, test_process_endpoint_speaks_to_cat_as_a_stream);
    tcase_add_test(tc, test_process_endpoint_reports_a_failing_command);
    tcase_add_test(tc, test_pipe_transport_reads_and_writes_pipes);
    tcase_add_test(tc, test_pipe_transport_reads_a_regular_file);
    tcase_add_test(tc, test_pipe_transport_over_a_terminal);
    tcase_add_test(tc, test_adopting_a_fifo_reads_and_writes_it);
    tcase_add_test(tc, test_adopting_a_pipe_and_writing_past_a_closed_reader);
    tcase_add_test(tc, test_standard_output_to_a_device_without_poll);
    tcase_add_test(tc, test_watch_fd_reports_readable_and_writable);
    tcase_add_test(tc, test_watch_fd_on_a_regular_file_is_always_ready);
    tcase_add_test(tc, test_children_of_several_reactors_are_each_reaped_by_their_own);
    tcase_add_test(tc, test_other_children_of_the_program_are_not_reaped);
    tcase_add_test(tc, test_freeing_the_reactor_under_a_running_child);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
