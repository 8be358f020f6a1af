/* SPDX-License-Identifier: MIT */
/*
 * The real reactord as an operator runs it: modules from --plugin-path,
 * several endpoints, the daemon and its pidfile, logs (SIGHUP reopen, JSON),
 * graceful drain on SIGTERM, supervised workers, privilege drop, socket
 * activation, and one sentence with a sysexits.h code for every operator
 * mistake. Everything runs on loopback or in a private temporary directory,
 * and every wait is bounded.
 *
 * The daemon tests make this process a child subreaper, so the daemon's
 * grandchild is reparented here and can be waited for like any child.
 */
#include "config.h"

#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <twine.h>
#include <twine/amp.h>
#ifdef __linux__
#include <linux/sockios.h>
#include <sys/prctl.h>
#endif

#include "core/fd_internal.h"
#include "testutil.h"

/* ------------------------------------------------------------ helpers */

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/twrdXXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void remove_tmpdir(void)
{
    if (tmpdir[0] == '\0')
        return;
    nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    tmpdir[0] = '\0';
}

static char *tmp_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
    return buf;
}

static const char *plugins(void)
{
    const char *d = getenv("TWINE_TEST_PLUGINS");
    return d != NULL ? d : "tests/plugins/.libs";
}

static const char *reactord_path(void)
{
    const char *exe = getenv("REACTORD");
    return exe != NULL ? exe : "./reactord";
}

/* Read a whole (small) file; "" when it cannot be read. */
static char *slurp(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return buf;
    size_t got = 0;
    ssize_t n;
    while (got + 1 < len && (n = read(fd, buf + got, len - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = '\0';
    close(fd);
    return buf;
}

/* Wait until @p path contains @p needle. @return 1, or 0 after timeout_ms. */
static int wait_for_text(const char *path, const char *needle, int timeout_ms)
{
    static char buf[65536];
    long long deadline = tu_now_ms() + timeout_ms;
    do {
        if (strstr(slurp(path, buf, sizeof buf), needle) != NULL)
            return 1;
        usleep(10000);
    } while (tu_now_ms() < deadline);
    return 0;
}

/* The port of the @p nth "listening on ...:PORT" in @p text (0-based), or -1. */
static int listening_port(const char *text, int nth)
{
    const char *at = text;
    for (int i = 0; (at = strstr(at, "listening on ")) != NULL; i++, at++) {
        if (i < nth)
            continue;
        const char *end = at;
        while (*end != '\0' && *end != '\n' && *end != '"')
            end++;
        const char *p = end;
        while (p > at && p[-1] != ':')
            p--;
        return atoi(p);
    }
    return -1;
}

typedef struct {
    pid_t pid;
    int out_fd; /* its stdout and stderr, non-blocking */
} child;

typedef struct {
    const char *const *env; /* "NAME=value" to set, or NULL */
    uid_t uid;              /* switch to it before exec when nonzero */
    gid_t gid;
    int fd3;                /* dup2 to descriptor 3 (socket activation), or -1 */
    int drop_cap;           /* a capability root runs reactord without, or 0 */
    const char *trap;       /* plant a link PATH.<pid>.tmp -> trap_target, or NULL */
    const char *trap_target;
    int keep_fd;            /* a descriptor reactord inherits (not close-on-exec), or 0 */
} spawn_opts;

/* The exit code of a child that the unprivileged user cannot run reactord
 * from (a build directory only root may enter). */
#define NO_ACCESS 125

/* Capability numbers, from linux/capability.h. */
#define CAP_KILL_NR 5
#define CAP_NET_BIND_SERVICE_NR 10

/* Start reactord with @p args (NULL-terminated). */
static child spawn_reactord(const char *const *args, const spawn_opts *o)
{
    child c = {-1, -1};
    size_t n = 0;
    while (args[n] != NULL)
        n++;
    const char **argv = calloc(n + 2, sizeof *argv);
    argv[0] = reactord_path();
    memcpy(argv + 1, args, n * sizeof *argv);
    int p[2];
    ck_assert_int_eq(tw__pipe(p, O_CLOEXEC), 0);
    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(p[1], STDOUT_FILENO);
        dup2(p[1], STDERR_FILENO);
        int null = open("/dev/null", O_RDWR);
        dup2(null, STDIN_FILENO);
        if (o != NULL && o->fd3 >= 0) {
            dup2(o->fd3, 3);
            char pidbuf[32];
            snprintf(pidbuf, sizeof pidbuf, "%ld", (long)getpid());
            setenv("LISTEN_PID", pidbuf, 1);
            setenv("LISTEN_FDS", "1", 1);
        }
        for (size_t i = 0; o != NULL && o->env != NULL && o->env[i] != NULL; i++)
            putenv((char *)o->env[i]);
        if (o != NULL && o->trap != NULL) {
            /* what an account that may write the pidfile's directory plants */
            char at[512];
            snprintf(at, sizeof at, "%s.%ld.tmp", o->trap, (long)getpid());
            if (symlink(o->trap_target, at) < 0)
                _exit(126);
        }
        if (o != NULL && o->keep_fd > 0)
            fcntl(o->keep_fd, F_SETFD, 0);
        if (o != NULL && o->uid != 0 &&
            (setgroups(0, NULL) < 0 || setgid(o->gid) < 0 || setuid(o->uid) < 0))
            _exit(126);
        if (o != NULL && o->uid != 0 && access(argv[0], R_OK | X_OK) < 0)
            _exit(NO_ACCESS);
#ifdef __linux__
        /* Out of the bounding set, root does not get it back at exec. */
        if (o != NULL && o->drop_cap > 0 && prctl(PR_CAPBSET_DROP, o->drop_cap, 0, 0, 0) < 0)
            _exit(126);
#endif
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    free(argv);
    close(p[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    c.pid = pid;
    c.out_fd = p[0];
    return c;
}

/* Collect what the child wrote so far (appending to @p buf). */
static void collect(child *c, char *buf, size_t len)
{
    size_t at = strlen(buf);
    ssize_t n;
    while (at + 1 < len && (n = read(c->out_fd, buf + at, len - 1 - at)) > 0)
        at += (size_t)n;
    buf[at] = '\0';
}

/* Collect @p c's output into @p out until it contains @p needle.
 * @return 1, or 0 after @p timeout_ms. */
static int wait_output(child *c, char *out, size_t len, const char *needle, int timeout_ms)
{
    long long deadline = tu_now_ms() + timeout_ms;
    while (strstr(out, needle) == NULL && tu_now_ms() < deadline) {
        usleep(10000);
        collect(c, out, len);
    }
    return strstr(out, needle) != NULL;
}

/* SIGTERM @p c and expect it to exit 0 within 10 s. */
static void expect_child_stops(child *c)
{
    kill(c->pid, SIGTERM);
    int status = tu_wait_child(c->pid, 10000);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "status %d",
                  status);
}

/* Run reactord to completion. @return the wait status, or -1 on timeout. */
static int run_reactord(const char *const *args, const spawn_opts *o, char *out, size_t len,
                        int timeout_ms)
{
    child c = spawn_reactord(args, o);
    out[0] = '\0';
    int status = -1;
    long long deadline = tu_now_ms() + timeout_ms;
    while (tu_now_ms() < deadline) {
        collect(&c, out, len);
        pid_t w = waitpid(c.pid, &status, WNOHANG);
        if (w == c.pid)
            break;
        usleep(5000);
        status = -1;
    }
    if (status == -1) {
        kill(c.pid, SIGKILL);
        waitpid(c.pid, NULL, 0);
    }
    collect(&c, out, len);
    close(c.out_fd);
    return status;
}

/* Expect exit @p code and one sentence, "reactord: ...\n", containing @p a and @p b. */
static void expect_failure(const char *const *args, int code, const char *a, const char *b)
{
    char out[4096];
    int status = run_reactord(args, NULL, out, sizeof out, 10000);
    ck_assert_msg(status != -1 && WIFEXITED(status), "reactord did not exit: %s", out);
    ck_assert_msg(WEXITSTATUS(status) == code, "exit %d, want %d: %s", WEXITSTATUS(status), code,
                  out);
    ck_assert_msg(strncmp(out, "reactord: ", 10) == 0, "not one sentence: %s", out);
    ck_assert_msg(strchr(out, '\n') == out + strlen(out) - 1, "not one line: %s", out);
    ck_assert_msg(a == NULL || strstr(out, a) != NULL, "'%s' missing from: %s", a, out);
    ck_assert_msg(b == NULL || strstr(out, b) != NULL, "'%s' missing from: %s", b, out);
}

/* Start a reactord that logs to stderr and wait for its first endpoint. */
static tu_reactord start(const char *const *args)
{
    tu_reactord d;
    if (tu_reactord_start(&d, args) < 0)
        ck_abort_msg("reactord did not start: %s", d.log);
    return d;
}

/* Wait for the log to contain @p needle, reading as it grows. */
static int wait_log(tu_reactord *d, const char *needle, int timeout_ms)
{
    long long deadline = tu_now_ms() + timeout_ms;
    for (;;) {
        tu_reactord_read_log(d);
        if (strstr(d->log, needle) != NULL)
            return 1;
        if (tu_now_ms() >= deadline)
            return 0;
        usleep(10000);
    }
}

static int stop(tu_reactord *d, int sig)
{
    kill(d->pid, sig);
    int status = tu_wait_child(d->pid, 40000);
    tu_reactord_read_log(d);
    close(d->err_fd);
    d->pid = -1;
    return status;
}

static void expect_clean_exit(tu_reactord *d)
{
    int status = stop(d, SIGTERM);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "status %d: %s", status, d->log);
}

/* Send @p msg and expect it back. */
static void expect_echo(int fd, const char *msg)
{
    char back[256];
    size_t n = strlen(msg);
    ck_assert_int_eq(tu_write_all(fd, msg, n), 0);
    ck_assert_uint_eq(tu_read_exact(fd, back, n, 5000), n);
    ck_assert(memcmp(back, msg, n) == 0);
}

static void expect_tcp_echo(int port, const char *msg)
{
    int fd = tu_connect("127.0.0.1", port);
    ck_assert_int_ge(fd, 0);
    expect_echo(fd, msg);
    close(fd);
}

static long pid_from_file(const char *path)
{
    char buf[64];
    return atol(slurp(path, buf, sizeof buf));
}

/* Field @p n (1-based) of /proc/PID/stat, after the command name. */
static long proc_stat_field(pid_t pid, int n)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    slurp(path, buf, sizeof buf);
    char *p = strrchr(buf, ')');
    if (p == NULL)
        return -1;
    p += 2; /* field 3, the state */
    for (int i = 3; i < n && p != NULL; i++) {
        p = strchr(p, ' ');
        if (p != NULL)
            p++;
    }
    return p != NULL ? atol(p) : -1;
}

/* A process that is gone, or a zombie nobody reaped yet. */
static int process_gone(pid_t pid)
{
    if (kill(pid, 0) < 0 && errno == ESRCH)
        return 1;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    slurp(path, buf, sizeof buf);
    char *p = strrchr(buf, ')');
    return p != NULL && p[2] == 'Z';
}

/* How many live children this process has, besides @p keep. */
static int children_other_than(pid_t keep)
{
    int n = 0;
    DIR *d = opendir("/proc");
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
        pid_t pid = (pid_t)atol(de->d_name);
        if (pid > 0 && pid != keep && proc_stat_field(pid, 4) == getpid() && !process_gone(pid))
            n++;
    }
    if (d != NULL)
        closedir(d);
    return n;
}

/* A daemon is nobody's child to kill when a test fails half way: this is. */
static pid_t loose_daemon;

static void kill_loose_daemon(void)
{
    if (loose_daemon > 0)
        kill(loose_daemon, SIGKILL);
}

static void watch_daemon(pid_t pid)
{
    static int registered;
    if (!registered++)
        atexit(kill_loose_daemon);
    loose_daemon = pid;
}

static void become_subreaper(void)
{
#ifdef __linux__
    ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
#endif
}

/* The uid and gid of "nobody", or 0 when there is none. */
static uid_t nobody(gid_t *gid)
{
    struct passwd *pw = getpwnam("nobody");
    if (pw == NULL || pw->pw_uid == 0)
        return 0;
    *gid = pw->pw_gid;
    return pw->pw_uid;
}

static int unprivileged_port_start(void)
{
    char buf[32];
    slurp("/proc/sys/net/ipv4/ip_unprivileged_port_start", buf, sizeof buf);
    return buf[0] ? atoi(buf) : 1024;
}

/* ------------------------------------------------------------ modules */

START_TEST(test_a_module_from_the_plugin_path_serves_with_its_options)
{
    const char *args[] = {"-p", "good", "--plugin-path", plugins(), "--port", "0",
                          "--interface", "127.0.0.1", "-o", "greeting=hi there", "-o",
                          "shout=yes", NULL};
    tu_reactord d = start(args);
    ck_assert_msg(wait_log(&d, "good.so", 5000), "%s", d.log);
    int fd = tu_connect("127.0.0.1", d.port);
    char buf[16];
    ck_assert_uint_eq(tu_read_exact(fd, buf, 9, 5000), 9);
    ck_assert(memcmp(buf, "hi there\n", 9) == 0);
    ck_assert_int_eq(tu_write_all(fd, "quiet", 5), 0);
    ck_assert_uint_eq(tu_read_exact(fd, buf, 5, 5000), 5);
    ck_assert(memcmp(buf, "QUIET", 5) == 0);
    close(fd);
    expect_clean_exit(&d);
}
END_TEST

START_TEST(test_twine_plugin_path_is_searched_too)
{
    char env[1024];
    snprintf(env, sizeof env, "TWINE_PLUGIN_PATH=/nonexistent:%s", plugins());
    const char *envs[] = {env, NULL};
    spawn_opts o = {envs, 0, 0, -1, 0, NULL, NULL, 0};
    const char *args[] = {"--list-protocols", NULL};
    char out[8192];
    int status = run_reactord(args, &o, out, sizeof out, 10000);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_ptr_nonnull(strstr(out, "good "));
}
END_TEST

START_TEST(test_plugin_path_comes_before_twine_plugin_path)
{
    /* a copy of good.so first on --plugin-path wins over the original */
    make_tmpdir();
    char from[512], to[512], buf[65536];
    snprintf(from, sizeof from, "%s/good.so", plugins());
    tmp_path(to, sizeof to, "good.so");
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT, 0755);
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        ck_assert_int_eq(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
    char env[1024];
    snprintf(env, sizeof env, "TWINE_PLUGIN_PATH=%s", plugins());
    const char *envs[] = {env, NULL};
    spawn_opts o = {envs, 0, 0, -1, 0, NULL, NULL, 0};
    const char *args[] = {"--help-protocol", "good", "--plugin-path", tmpdir, NULL};
    char text[4096];
    int status = run_reactord(args, &o, text, sizeof text, 10000);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_msg(strstr(text, to) != NULL, "%s", text);
    remove_tmpdir();
}
END_TEST

START_TEST(test_list_protocols_shows_each_with_description_and_origin)
{
    const char *args[] = {"--list-protocols", "--plugin-path", plugins(), NULL};
    char out[8192], want[600];
    int status = run_reactord(args, NULL, out, sizeof out, 10000);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_ptr_nonnull(strstr(out, "echo         RFC 862 echo"));
    ck_assert_ptr_nonnull(strstr(out, "(built-in)"));
    snprintf(want, sizeof want, "good         greets, then echoes (a test module) (%s/good.so",
             plugins());
    ck_assert_msg(strstr(out, want) != NULL, "%s", out);
    snprintf(want, sizeof want,
             "reverse      adds Reverse to an AMP protocol (a test module) (%s/reverse.so; AMP "
             "commands, for --amp-commands)",
             plugins());
    ck_assert_msg(strstr(out, want) != NULL, "%s", out);
    /* the refused files are warnings, each naming its file */
    ck_assert_ptr_nonnull(strstr(out, "warning: module "));
    ck_assert_ptr_nonnull(strstr(out, "badmagic.so"));
    ck_assert_ptr_nonnull(strstr(out, "echo.so declares protocol 'echo'"));
}
END_TEST

START_TEST(test_help_protocol_shows_the_option_table)
{
    const char *args[] = {"--help-protocol", "good", "--plugin-path", plugins(), NULL};
    char out[4096];
    int status = run_reactord(args, NULL, out, sizeof out, 10000);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_ptr_nonnull(strstr(out, "good: greets, then echoes"));
    ck_assert_ptr_nonnull(strstr(out, "greeting=TEXT"));
    ck_assert_ptr_nonnull(strstr(out, "(default: hello)"));
    ck_assert_ptr_nonnull(strstr(out, "shout=BOOLEAN"));
    ck_assert_ptr_nonnull(strstr(out, "fail=INTEGER"));
    const char *none[] = {"--help-protocol", "echo", NULL};
    status = run_reactord(none, NULL, out, sizeof out, 10000);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_ptr_nonnull(strstr(out, "Origin: built-in"));
    ck_assert_ptr_nonnull(strstr(out, "Options: none"));
}
END_TEST

START_TEST(test_a_module_of_the_previous_abi_major_exits_78_naming_both_versions)
{
    /* ABI 2 made the descriptor a type and a context: a 1.0 module's layout
     * cannot be read, so it is refused as any other major is. */
    const char *args[] = {"-p", "old", "--plugin-path", plugins(), "--port", "0",
                          "--interface", "127.0.0.1", NULL};
    char ours[32];
    snprintf(ours, sizeof ours, "ABI %d.%d", TW_PLUGIN_ABI_MAJOR, TW_PLUGIN_ABI_MINOR);
    expect_failure(args, 78, "old.so", "ABI 1.0");
    expect_failure(args, 78, ours, NULL);
}
END_TEST

/* Ask the AMP server on @p port to Reverse "stressed"; @p back gets the
 * first @p len bytes of the answer box. */
static void ask_reverse(int port, char *back, size_t len)
{
    int fd = tu_connect("127.0.0.1", port);
    tw_amp_box *req = tw_amp_box_new();
    tw_amp_box_set_str(req, "_command", "Reverse");
    tw_amp_box_set_str(req, "_ask", "1");
    tw_amp_box_set_str(req, "text", "stressed");
    char wire[256];
    size_t n = tw_amp_box_encode(req, wire, sizeof wire);
    tw_amp_box_free(req);
    ck_assert_int_eq(tu_write_all(fd, wire, n), 0);
    ck_assert_uint_eq(tu_read_exact(fd, back, len, 5000), len);
    close(fd);
}

START_TEST(test_amp_serves_the_commands_of_plugin_modules)
{
    const char *args[] = {"-p", "amp", "--plugin-path", plugins(), "--amp-commands", "reverse",
                          "--port", "0", "--interface", "127.0.0.1", NULL};
    tu_reactord d = start(args);
    /* the module is loaded once privileges are dropped, after listening */
    ck_assert_msg(wait_log(&d, "module 'reverse'", 5000), "%s", d.log);
    /* _answer=1, text=desserts: 2+7+2+1 + 2+4+2+8 + 2 bytes */
    char back[30];
    ask_reverse(d.port, back, sizeof back);
    ck_assert(memmem(back, sizeof back, "desserts", 8) != NULL);
    ck_assert(memmem(back, sizeof back, "_answer", 7) != NULL);
    expect_clean_exit(&d);
}
END_TEST

START_TEST(test_amp_runs_no_module_it_was_not_asked_for)
{
    /* reverse.so and crash.so leave a mark when their constructors run. */
    make_tmpdir();
    char record[256], env_record[300], text[1024];
    tmp_path(record, sizeof record, "loaded");
    snprintf(env_record, sizeof env_record, "TWINE_TEST_LOAD_RECORD=%s", record);
    const char *env[] = {env_record, NULL};
    spawn_opts o = {env, 0, 0, -1, 0, NULL, NULL, 0};
    const char *amp[] = {"-p", "amp", "--plugin-path", plugins(), "--port", "0",
                         "--interface", "127.0.0.1", NULL};
    child c = spawn_reactord(amp, &o);
    char out[8192] = "";
    wait_output(&c, out, sizeof out, "serving protocol", 10000);
    int port = 0;
    const char *at = strstr(out, "listening on 127.0.0.1:");
    ck_assert_msg(at != NULL, "%s", out);
    port = atoi(at + strlen("listening on 127.0.0.1:"));
    /* Reverse is not served: _error_code UNHANDLED */
    char back[20];
    ask_reverse(port, back, sizeof back);
    ck_assert(memmem(back, sizeof back, "_error", 6) != NULL);
    expect_child_stops(&c);
    close(c.out_fd);
    ck_assert_msg(access(record, F_OK) == -1, "a module ran: %s", slurp(record, text, sizeof text));
    /* Asked for, only that module runs, once. */
    const char *with[] = {"-p", "amp", "--plugin-path", plugins(), "--amp-commands", "reverse",
                          "--port", "0", "--interface", "127.0.0.1", NULL};
    c = spawn_reactord(with, &o);
    out[0] = '\0';
    wait_output(&c, out, sizeof out, "serving protocol", 10000);
    ck_assert_msg(strstr(out, "module 'reverse'") != NULL, "%s", out);
    expect_child_stops(&c);
    close(c.out_fd);
    char want[64];
    snprintf(want, sizeof want, "loaded as uid %u\n", (unsigned)geteuid());
    ck_assert_str_eq(slurp(record, text, sizeof text), want);
    remove_tmpdir();
}
END_TEST

START_TEST(test_amp_commands_mistakes_exit_64_with_one_sentence)
{
    const char *nosuch[] = {"-p", "amp", "--plugin-path", plugins(), "--amp-commands", "nosuch",
                            "--port", "0", "--interface", "127.0.0.1", NULL};
    expect_failure(nosuch, 64, "unknown module 'nosuch' for --amp-commands", "reverse");
    const char *notamp[] = {"-p", "line", "--plugin-path", plugins(), "--amp-commands",
                            "reverse", "--port", "0", "--interface", "127.0.0.1", NULL};
    expect_failure(notamp, 64, "--amp-commands needs an AMP protocol", "'line'");
    const char *protocol[] = {"-p", "amp", "--plugin-path", plugins(), "--amp-commands", "good",
                              "--port", "0", "--interface", "127.0.0.1", NULL};
    /* Its type is known only once it is loaded, after listening. */
    char out[4096];
    int status = run_reactord(protocol, NULL, out, sizeof out, 10000);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 64, "%s", out);
    ck_assert_msg(strstr(out, "reactord: --amp-commands good: module 'good'") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "is a protocol module, which adds no AMP commands") != NULL, "%s",
                  out);
    const char *served[] = {"-p", "reverse", "--plugin-path", plugins(), "--port", "0",
                            "--interface", "127.0.0.1", NULL};
    expect_failure(served, 64, "adds AMP commands and is not a protocol",
                   "--protocol amp --amp-commands reverse");
}
END_TEST

START_TEST(test_an_abi_mismatch_exits_78_naming_the_file_and_both_versions)
{
    const char *args[] = {"-p", "future", "--plugin-path", plugins(), "--port", "0", NULL};
    char theirs[32], ours[32];
    snprintf(theirs, sizeof theirs, "ABI %d.0", TW_PLUGIN_ABI_MAJOR + 1);
    snprintf(ours, sizeof ours, "ABI %d.%d", TW_PLUGIN_ABI_MAJOR, TW_PLUGIN_ABI_MINOR);
    expect_failure(args, 78, "future.so", theirs);
    expect_failure(args, 78, ours, NULL);
}
END_TEST

START_TEST(test_a_wrong_magic_exits_78_naming_the_file)
{
    const char *args[] = {"-p", "badmagic", "--plugin-path", plugins(), "--port", "0", NULL};
    expect_failure(args, 78, "badmagic.so", "magic");
}
END_TEST

START_TEST(test_a_missing_symbol_exits_78_naming_the_file)
{
    const char *a[] = {"-p", "unresolved", "--plugin-path", plugins(), "--port", "0", NULL};
    expect_failure(a, 78, "unresolved.so", "undefined symbol");
    const char *b[] = {"-p", "nodescriptor", "--plugin-path", plugins(), "--port", "0", NULL};
    expect_failure(b, 78, "nodescriptor.so", "tw_plugin_descriptor");
}
END_TEST

START_TEST(test_a_misnamed_module_exits_78)
{
    const char *args[] = {"-p", "alias", "--plugin-path", plugins(), "--port", "0", NULL};
    expect_failure(args, 78, "alias.so", "aliased.so");
}
END_TEST

START_TEST(test_a_module_that_refuses_to_start_exits_78)
{
    const char *args[] = {"-p", "good", "--plugin-path", plugins(), "--port", "0",
                          "-o", "fail=1", NULL};
    expect_failure(args, 78, "protocol 'good' could not start", "fail option");
}
END_TEST

START_TEST(test_an_unknown_protocol_lists_every_known_one)
{
    const char *args[] = {"-p", "gopher", "--plugin-path", plugins(), "--port", "0", NULL};
    expect_failure(args, 64, "unknown protocol 'gopher'", "good");
    expect_failure(args, 64, "echo", "amp");
}
END_TEST

START_TEST(test_an_unknown_module_option_lists_the_valid_keys)
{
    const char *args[] = {"-p", "good", "--plugin-path", plugins(), "--port", "0",
                          "-o", "colour=red", NULL};
    expect_failure(args, 64, "unknown option 'colour'", "valid options: greeting, shout, fail");
    const char *bad[] = {"-p", "good", "--plugin-path", plugins(), "--port", "0",
                         "-o", "shout=loudly", NULL};
    expect_failure(bad, 64, "shout", "loudly");
}
END_TEST

/* ------------------------------------------------------------ endpoints */

START_TEST(test_a_bad_endpoint_exits_64_naming_the_segment)
{
    const char *port[] = {"-p", "echo", "-l", "tcp:99999", NULL};
    expect_failure(port, 64, "tcp:99999", "'99999'");
    const char *type[] = {"-p", "echo", "-l", "gopher:70", NULL};
    expect_failure(type, 64, "gopher:70", "'gopher'");
    const char *key[] = {"-p", "echo", "-l", "tcp:0:colour=red", NULL};
    expect_failure(key, 64, "colour", NULL);
    const char *none[] = {"-p", "echo", NULL};
    expect_failure(none, 64, "nowhere to listen", NULL);
}
END_TEST

START_TEST(test_an_address_in_use_exits_69_naming_it)
{
    const char *args[] = {"-p", "echo", "-l", "tcp:0:interface=127.0.0.1", NULL};
    tu_reactord d = start(args);
    char ep[64], want[64];
    snprintf(ep, sizeof ep, "tcp:%d:interface=127.0.0.1", d.port);
    snprintf(want, sizeof want, "127.0.0.1:%d", d.port);
    const char *again[] = {"-p", "echo", "-l", ep, NULL};
    expect_failure(again, 69, want, "already in use");
    expect_clean_exit(&d);
}
END_TEST

START_TEST(test_one_protocol_serves_several_endpoints)
{
    make_tmpdir();
    char sock[256], ep[300];
    tmp_path(sock, sizeof sock, "echo.sock");
    snprintf(ep, sizeof ep, "unix:%s:mode=0600", sock);
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "-l", "tcp:0:interface=127.0.0.1", "-l", ep, NULL};
    tu_reactord d = start(args);
    ck_assert(wait_log(&d, "unix:", 5000));
    int second = listening_port(d.log, 1);
    ck_assert_int_gt(second, 0);
    ck_assert_int_ne(second, d.port);
    expect_tcp_echo(d.port, "first");
    expect_tcp_echo(second, "second");
    int fd = tu_connect_unix(sock);
    ck_assert_int_ge(fd, 0);
    expect_echo(fd, "over unix");
    close(fd);
    struct stat st;
    ck_assert_int_eq(stat(sock, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    expect_clean_exit(&d);
    remove_tmpdir();
}
END_TEST

START_TEST(test_tcp6_endpoint_serves_ipv6)
{
    int probe = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    int ok = probe >= 0 && bind(probe, (struct sockaddr *)&a, sizeof a) == 0;
    if (probe >= 0)
        close(probe);
    if (!ok) {
        printf("skipped test_tcp6_endpoint_serves_ipv6: no IPv6 loopback here\n");
        return;
    }
    const char *args[] = {"-p", "echo", "-l", "tcp6:0:interface=\\:\\:1", NULL};
    tu_reactord d = start(args);
    ck_assert_ptr_nonnull(strstr(d.log, "[::1]:"));
    int fd = tu_connect("::1", d.port);
    ck_assert_int_ge(fd, 0);
    expect_echo(fd, "six");
    close(fd);
    expect_clean_exit(&d);
}
END_TEST

START_TEST(test_a_udp_endpoint_is_served_by_the_datagram_protocol)
{
    const char *args[] = {"-p", "echo", "-l", "udp:0:interface=127.0.0.1", NULL};
    tu_reactord d = start(args);
    ck_assert_ptr_nonnull(strstr(d.log, "listening on udp 127.0.0.1:"));
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d.port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(sendto(fd, "ping", 4, 0, (struct sockaddr *)&to, sizeof to), 4);
    struct pollfd pfd = {fd, POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    char back[16];
    ck_assert_int_eq(recv(fd, back, sizeof back, 0), 4);
    ck_assert(memcmp(back, "ping", 4) == 0);
    close(fd);
    expect_clean_exit(&d);
}
END_TEST

START_TEST(test_a_unixgram_endpoint_is_served_by_the_datagram_protocol)
{
    make_tmpdir();
    char sock[256], ep[300], client[256];
    tmp_path(sock, sizeof sock, "echo.dgram");
    tmp_path(client, sizeof client, "client.dgram");
    snprintf(ep, sizeof ep, "unixgram:%s:mode=0600", sock);
    const char *args[] = {"-p", "echo", "-l", ep, NULL};
    tu_reactord d = start(args);
    char want[300];
    snprintf(want, sizeof want, "listening on unixgram unix:%s", sock);
    ck_assert_ptr_nonnull(strstr(d.log, want));
    struct stat st;
    ck_assert_int_eq(stat(sock, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    /* A client bound to a path of its own hears the echo there. */
    int fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    tw_address me, to;
    ck_assert_int_eq(tw_address_from_unix(&me, client), 0);
    ck_assert_int_eq(tw_address_from_unix(&to, sock), 0);
    ck_assert_int_eq(bind(fd, &me.u.sa, me.len), 0);
    ck_assert_int_eq(sendto(fd, "ping", 4, 0, &to.u.sa, to.len), 4);
    struct pollfd pfd = {fd, POLLIN, 0};
    ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
    char back[16];
    ck_assert_int_eq(recv(fd, back, sizeof back, 0), 4);
    ck_assert(memcmp(back, "ping", 4) == 0);
    close(fd);
    unlink(client);
    expect_clean_exit(&d);
    ck_assert_int_eq(access(sock, F_OK), -1); /* the socket file went with it */
    remove_tmpdir();
}
END_TEST

START_TEST(test_a_udp_endpoint_needs_a_datagram_protocol)
{
    const char *args[] = {"-p", "line", "-l", "udp:0", NULL};
    expect_failure(args, 64, "protocol 'line' cannot serve the endpoint 'udp:0'", NULL);
}
END_TEST

START_TEST(test_systemd_socket_activation_is_served)
{
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(ls, 16), 0);
    socklen_t len = sizeof a;
    getsockname(ls, (struct sockaddr *)&a, &len);
    int port = ntohs(a.sin_port);
    const char *args[] = {"-p", "echo", "-l", "systemd:domain=INET:index=0", NULL};
    spawn_opts o = {NULL, 0, 0, ls, 0, NULL, NULL, 0};
    child c = spawn_reactord(args, &o);
    close(ls);
    char out[4096] = "";
    ck_assert_msg(wait_output(&c, out, sizeof out, "listening on", 10000), "%s", out);
    expect_tcp_echo(port, "activated");
    expect_child_stops(&c);
    close(c.out_fd);
}
END_TEST

START_TEST(test_systemd_endpoint_without_activation_exits_64)
{
    const char *args[] = {"-p", "echo", "-l", "systemd:domain=INET:index=0", NULL};
    expect_failure(args, 64, "systemd:domain=INET:index=0", "socket activation");
}
END_TEST

/* ------------------------------------------------------------ limits */

START_TEST(test_max_connections_closes_the_connection_past_the_limit)
{
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--max-connections", "1", NULL};
    tu_reactord d = start(args);
    int first = tu_connect("127.0.0.1", d.port);
    expect_echo(first, "one");
    int second = tu_connect("127.0.0.1", d.port);
    ck_assert_int_eq(tu_wait_eof(second, 5000), 1);
    expect_echo(first, "still one");
    close(first);
    close(second);
    expect_clean_exit(&d);
}
END_TEST

START_TEST(test_idle_timeout_closes_a_silent_connection)
{
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--idle-timeout", "0.3", NULL};
    tu_reactord d = start(args);
    int fd = tu_connect("127.0.0.1", d.port);
    long long t0 = tu_now_ms();
    ck_assert_int_eq(tu_wait_eof(fd, 5000), 1);
    ck_assert_int_ge(tu_now_ms() - t0, 250);
    close(fd);
    expect_clean_exit(&d);
}
END_TEST

/* ------------------------------------------------------------ shutdown */

#ifdef __linux__
/* Bytes the server side of 127.0.0.1:server <- :client has not read yet. */
static long server_unread(int server_port, int client_port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    char line[512];
    long found = -1;
    while (f != NULL && found < 0 && fgets(line, sizeof line, f) != NULL) {
        unsigned lp, rp;
        unsigned long tx, rx;
        if (sscanf(line, " %*d: %*8x:%x %*8x:%x %*x %lx:%lx", &lp, &rp, &tx, &rx) == 4 &&
            (int)lp == server_port && (int)rp == client_port)
            found = (long)rx;
    }
    if (f != NULL)
        fclose(f);
    return found;
}

static int local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    return ntohs(a.sin_port);
}
#endif

START_TEST(test_sigterm_lets_a_transfer_in_flight_finish)
{
#ifndef __linux__
    printf("skipped test_sigterm_lets_a_transfer_in_flight_finish: needs /proc/net/tcp\n");
#else
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--shutdown-timeout", "30", NULL};
    tu_reactord d = start(args);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    int client_port = ntohs(a.sin_port);
    fcntl(fd, F_SETFL, O_NONBLOCK);

    size_t total = 1 << 20, sent = 0, got = 0;
    unsigned char *data = malloc(total), *back = malloc(total);
    for (size_t i = 0; i < total; i++)
        data[i] = (unsigned char)(i * 7 + (i >> 12));
    int signalled = 0;
    size_t got_at_signal = 0;
    long long deadline = tu_now_ms() + 60000;
    /* A slow reader: 4 KiB every 5 ms. */
    while (got < total && tu_now_ms() < deadline) {
        if (sent < total) {
            ssize_t w = send(fd, data + sent, total - sent, MSG_NOSIGNAL);
            if (w > 0)
                sent += (size_t)w;
        }
        ssize_t n = recv(fd, back + got, total - got < 4096 ? total - got : 4096, 0);
        if (n == 0)
            break;
        if (n > 0)
            got += (size_t)n;
        if (!signalled && sent == total) {
            int outq = -1;
            ioctl(fd, SIOCOUTQ, &outq);
            /* Everything sent was read by the server; its echo is in flight. */
            if (outq == 0 && server_unread(d.port, client_port) == 0) {
                kill(d.pid, SIGTERM);
                signalled = 1;
                got_at_signal = got;
            }
        }
        usleep(5000);
    }
    ck_assert_msg(signalled, "the server never read everything: sent %zu got %zu unread %ld", sent, got, server_unread(d.port, client_port));
    ck_assert_msg(got_at_signal < total, "nothing was in flight at SIGTERM");
    ck_assert_uint_eq(got, total);
    ck_assert(memcmp(data, back, total) == 0);
    fcntl(fd, F_SETFL, 0);
    ck_assert_int_eq(tu_wait_eof(fd, 5000), 1);
    close(fd);
    free(data);
    free(back);
    int status = tu_wait_child(d.pid, 10000);
    d.pid = -1;
    ck_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    tu_reactord_read_log(&d);
    ck_assert_ptr_nonnull(strstr(d.log, "SIGTERM: no longer accepting"));
    close(d.err_fd);
#endif
}
END_TEST

/* A client of @p d's echo server that never reads and has a small window,
 * flooded until the server's output for it can no longer drain. */
static int stuck_client(tu_reactord *d)
{
    /* A client that never reads, with a small window. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    expect_echo(fd, "accepted"); /* the server holds the connection */
    fcntl(fd, F_SETFL, O_NONBLOCK);
    static char junk[1 << 16];
#ifdef __linux__
    /* Flood until the server stops reading, which it does only once its own
     * queue is past the high watermark: output that can never drain. */
    long long deadline = tu_now_ms() + 30000;
    size_t flooded = 0;
    long unread = -1, last = -1;
    int steady = 0; /* samples in a row with the same unread bytes, > 0 */
    while (steady < 10 && tu_now_ms() < deadline) {
        ssize_t w = send(fd, junk, sizeof junk, MSG_NOSIGNAL);
        if (w > 0) {
            flooded += (size_t)w;
            steady = 0;
            usleep(5000);
            continue;
        }
        /* Our side is full: is the server's still being read? */
        usleep(100000);
        unread = server_unread(d->port, local_port(fd));
        steady = unread > 0 && unread == last ? steady + 1 : 0;
        last = unread;
    }
    tu_reactord_read_log(d);
    ck_assert_msg(steady >= 10,
                  "the server never stopped reading: %zu bytes sent from port %d, %ld unread; %s",
                  flooded, local_port(fd), unread, d->log);
#else
    for (int i = 0; i < 256 && send(fd, junk, sizeof junk, MSG_NOSIGNAL) > 0; i++)
        ;
    usleep(500000);
#endif
    return fd;
}

START_TEST(test_shutdown_timeout_closes_connections_that_do_not_drain)
{
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--shutdown-timeout", "1", NULL};
    tu_reactord d = start(args);
    int fd = stuck_client(&d);
    long long t0 = tu_now_ms();
    int status = stop(&d, SIGTERM);
    long long took = tu_now_ms() - t0;
    ck_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_msg(took >= 900, "took %lld: %s", took, d.log);
    ck_assert_int_lt(took, 10000);
    close(fd);
}
END_TEST

START_TEST(test_sigint_stops_like_sigterm)
{
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1", NULL};
    tu_reactord d = start(args);
    int status = stop(&d, SIGINT);
    ck_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_ptr_nonnull(strstr(d.log, "SIGINT"));
}
END_TEST

/* ------------------------------------------------------------ logging */

/* @p sig makes reactord reopen its log file, which logrotate renamed. */
static void check_log_reopened_on(int sig, const char *name)
{
    make_tmpdir();
    char log[256], rotated[256], text[8192], want[64];
    tmp_path(log, sizeof log, "reactord.log");
    tmp_path(rotated, sizeof rotated, "reactord.log.1");
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--logfile", log, NULL};
    child c = spawn_reactord(args, NULL);
    ck_assert(wait_for_text(log, "listening on", 10000));
    ck_assert_int_eq(rename(log, rotated), 0);
    kill(c.pid, sig);
    snprintf(want, sizeof want, "%s: reopened the log file", name);
    ck_assert(wait_for_text(log, want, 10000));
    ck_assert_ptr_null(strstr(slurp(rotated, text, sizeof text), name));
    ck_assert_ptr_nonnull(strstr(text, "listening on"));
    expect_child_stops(&c);
    ck_assert_ptr_nonnull(strstr(slurp(log, text, sizeof text), "stopped"));
    ck_assert_ptr_null(strstr(slurp(rotated, text, sizeof text), "stopped"));
    close(c.out_fd);
    remove_tmpdir();
}

START_TEST(test_sighup_reopens_the_log_file)
{
    check_log_reopened_on(SIGHUP, "SIGHUP");
}
END_TEST

START_TEST(test_json_log_format_writes_one_object_a_line)
{
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--log-format", "json", NULL};
    tu_reactord d = start(args);
    expect_clean_exit(&d);
    int lines = 0;
    for (char *line = d.log; *line != '\0'; lines++) {
        char *end = strchr(line, '\n');
        ck_assert_ptr_nonnull(end);
        ck_assert_msg(line[0] == '{' && end[-1] == '}', "not JSON: %.*s", (int)(end - line),
                      line);
        ck_assert(strstr(line, "\"level\":\"") != NULL && strstr(line, "\"message\":\"") != NULL);
        line = end + 1;
    }
    ck_assert_int_ge(lines, 3);
    ck_assert_ptr_nonnull(strstr(d.log, "\"message\":\"echo listening on 127.0.0.1:"));
}
END_TEST

START_TEST(test_log_level_warn_hides_info)
{
    make_tmpdir();
    char log[256], text[4096], sock[256], ep[300];
    tmp_path(log, sizeof log, "quiet.log");
    tmp_path(sock, sizeof sock, "quiet.sock");
    snprintf(ep, sizeof ep, "unix:%s", sock);
    const char *args[] = {"-p", "echo", "-l", ep, "--log-level", "warn", "--logfile", log, NULL};
    child c = spawn_reactord(args, NULL);
    int fd = -1;
    long long deadline = tu_now_ms() + 10000;
    while ((fd = tu_connect_unix(sock)) < 0 && tu_now_ms() < deadline)
        usleep(10000);
    ck_assert_int_ge(fd, 0);
    expect_echo(fd, "served in silence");
    close(fd);
    expect_child_stops(&c);
    ck_assert_str_eq(slurp(log, text, sizeof text), "");
    close(c.out_fd);
    remove_tmpdir();
}
END_TEST

/* ------------------------------------------------------------ daemon and pidfile */

START_TEST(test_daemon_detaches_writes_its_pidfile_and_removes_it_on_exit)
{
    become_subreaper();
    make_tmpdir();
    char pidfile[256], log[256];
    tmp_path(pidfile, sizeof pidfile, "echo.pid");
    tmp_path(log, sizeof log, "echo.log");
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--daemon", "--pidfile", pidfile, "--logfile", log, NULL};
    char out[1024];
    int status = run_reactord(args, NULL, out, sizeof out, 10000);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", out);
    ck_assert_str_eq(out, "");
    pid_t pid = (pid_t)pid_from_file(pidfile);
    ck_assert_int_gt(pid, 0);
    watch_daemon(pid);
    ck_assert_int_eq(kill(pid, 0), 0);
    /* a grandchild, in its own session but not its leader */
    ck_assert_int_eq(proc_stat_field(pid, 4), getpid());
    ck_assert_int_ne(proc_stat_field(pid, 6), getsid(0));
    ck_assert_int_ne(proc_stat_field(pid, 6), pid);
    char link[64], target[256];
    snprintf(link, sizeof link, "/proc/%ld/cwd", (long)pid);
    ssize_t n = readlink(link, target, sizeof target - 1);
    ck_assert_int_gt(n, 0);
    target[n] = '\0';
    ck_assert_str_eq(target, "/");
    snprintf(link, sizeof link, "/proc/%ld/fd/2", (long)pid);
    n = readlink(link, target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    ck_assert_str_eq(target, "/dev/null");

    ck_assert(wait_for_text(log, "listening on", 5000));
    char text[8192];
    expect_tcp_echo(listening_port(slurp(log, text, sizeof text), 0), "daemonic");
    kill(pid, SIGTERM);
    status = tu_wait_child(pid, 10000);
    loose_daemon = 0;
    ck_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_int_eq(access(pidfile, F_OK), -1);
    remove_tmpdir();
}
END_TEST

START_TEST(test_a_daemon_that_fails_to_start_reports_why_and_leaves_nothing)
{
    become_subreaper();
    make_tmpdir();
    const char *first[] = {"-p", "echo", "-l", "tcp:0:interface=127.0.0.1", NULL};
    tu_reactord d = start(first);
    char pidfile[256], log[256], ep[64], want[64];
    tmp_path(pidfile, sizeof pidfile, "echo.pid");
    tmp_path(log, sizeof log, "echo.log");
    snprintf(ep, sizeof ep, "tcp:%d:interface=127.0.0.1", d.port);
    snprintf(want, sizeof want, "127.0.0.1:%d", d.port);
    const char *args[] = {"-p", "echo", "-l", ep, "--daemon", "--pidfile", pidfile,
                          "--logfile", log, NULL};
    expect_failure(args, 69, want, "already in use");
    ck_assert_int_eq(access(pidfile, F_OK), -1);
    ck_assert(wait_for_text(log, "already in use", 1000)); /* and in its log */
    /* No daemon was left behind: any orphan would be our child now. */
    usleep(200000);
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    ck_assert_int_eq(children_other_than(d.pid), 0);
    expect_clean_exit(&d);
    remove_tmpdir();
}
END_TEST

START_TEST(test_a_pidfile_held_by_a_live_process_is_refused)
{
    make_tmpdir();
    char pidfile[256], mine[32];
    tmp_path(pidfile, sizeof pidfile, "held.pid");
    snprintf(mine, sizeof mine, "%ld\n", (long)getpid());
    FILE *f = fopen(pidfile, "w");
    fputs(mine, f);
    fclose(f);
    const char *args[] = {"-p", "echo", "--port", "0", "--pidfile", pidfile, NULL};
    mine[strlen(mine) - 1] = '\0';
    expect_failure(args, 69, pidfile, mine);
    expect_failure(args, 69, "still running", NULL);
    ck_assert_int_eq(pid_from_file(pidfile), getpid()); /* untouched */
    remove_tmpdir();
}
END_TEST

START_TEST(test_a_pidfile_of_another_users_process_counts_as_alive)
{
    make_tmpdir();
    char pidfile[256];
    tmp_path(pidfile, sizeof pidfile, "other.pid");
    pid_t owner = 1; /* init: root's, so kill(1, 0) fails with EPERM for others */
    spawn_opts o = {NULL, 0, 0, -1, 0, NULL, NULL, 0};
    if (geteuid() == 0) {
        /* Root may signal anyone: make a process of another user, and run
         * reactord as a root without CAP_KILL, which may not signal it. */
        gid_t gid;
        uid_t uid = nobody(&gid);
        if (uid == 0)
            uid = gid = 65534;
        int ready[2];
        ck_assert_int_eq(pipe(ready), 0);
        owner = fork();
        if (owner == 0) {
            if (setgid(gid) < 0 || setuid(uid) < 0)
                _exit(1);
            close(ready[0]);
            close(ready[1]);
            pause();
            _exit(0);
        }
        close(ready[1]);
        char c;
        ck_assert_int_eq(read(ready[0], &c, 1), 0); /* closed once it switched */
        close(ready[0]);
        o.drop_cap = CAP_KILL_NR;
    }
    FILE *f = fopen(pidfile, "w");
    fprintf(f, "%ld\n", (long)owner);
    fclose(f);
    const char *args[] = {"-p", "echo", "--port", "0", "--pidfile", pidfile, NULL};
    char out[2048];
    int status = run_reactord(args, &o, out, sizeof out, 10000);
    if (owner != 1) {
        kill(owner, SIGKILL);
        waitpid(owner, NULL, 0);
    }
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 69, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "as another user"));
    ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
    remove_tmpdir();
}
END_TEST

START_TEST(test_a_stale_pidfile_is_replaced_with_a_log_line)
{
    make_tmpdir();
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    waitpid(dead, NULL, 0);
    char pidfile[256], text[64];
    tmp_path(pidfile, sizeof pidfile, "stale.pid");
    FILE *f = fopen(pidfile, "w");
    fprintf(f, "%ld\n", (long)dead);
    fclose(f);
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--pidfile", pidfile, NULL};
    tu_reactord d = start(args);
    snprintf(text, sizeof text, "process %ld is no longer running", (long)dead);
    ck_assert_ptr_nonnull(strstr(d.log, "removing the stale pidfile"));
    ck_assert_ptr_nonnull(strstr(d.log, text));
    ck_assert_int_eq(pid_from_file(pidfile), d.pid);
    expect_clean_exit(&d);
    ck_assert_int_eq(access(pidfile, F_OK), -1);
    remove_tmpdir();
}
END_TEST

START_TEST(test_a_pidfile_without_a_pid_is_stale)
{
    make_tmpdir();
    char pidfile[256];
    tmp_path(pidfile, sizeof pidfile, "garbage.pid");
    FILE *f = fopen(pidfile, "w");
    fputs("not a pid\n", f);
    fclose(f);
    const char *args[] = {"-p", "echo", "--port", "0", "--pidfile", pidfile, NULL};
    tu_reactord d = start(args);
    ck_assert_ptr_nonnull(strstr(d.log, "it holds no process id"));
    ck_assert_int_eq(pid_from_file(pidfile), d.pid);
    expect_clean_exit(&d);
    remove_tmpdir();
}
END_TEST

/* ------------------------------------------------------------ privileges */

START_TEST(test_a_low_port_without_privilege_exits_77)
{
    if (unprivileged_port_start() <= 1) {
        printf("skipped test_a_low_port_without_privilege_exits_77: every port is "
               "unprivileged here (net.ipv4.ip_unprivileged_port_start)\n");
        return;
    }
    spawn_opts o = {NULL, 0, 0, -1, 0, NULL, NULL, 0};
    if (geteuid() == 0) {
        o.uid = nobody(&o.gid);
        if (o.uid == 0) {
            printf("skipped test_a_low_port_without_privilege_exits_77: running as root and "
                   "there is no unprivileged user 'nobody'\n");
            return;
        }
    }
    const char *args[] = {"-p", "echo", "--port", "1", "--interface", "127.0.0.1", NULL};
    char out[2048];
    int status = run_reactord(args, &o, out, sizeof out, 10000);
    if (status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == NO_ACCESS) {
        /* nobody may not enter this build directory: be a root without the
         * capability to bind privileged ports instead */
        spawn_opts unprivileged_root = {NULL,    0,    0, -1, CAP_NET_BIND_SERVICE_NR,
                                        NULL,    NULL, 0};
        status = run_reactord(args, &unprivileged_root, out, sizeof out, 10000);
    }
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 77, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "cannot listen on 127.0.0.1:1: permission denied"));
    ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
}
END_TEST

START_TEST(test_unknown_user_or_group_exits_67)
{
    const char *user[] = {"-p", "echo", "--port", "0", "--user", "no-such-user-here", NULL};
    expect_failure(user, 67, "unknown user 'no-such-user-here'", NULL);
    const char *group[] = {"-p", "echo", "--port", "0", "--group", "no-such-group-here", NULL};
    expect_failure(group, 67, "unknown group 'no-such-group-here'", NULL);
}
END_TEST

START_TEST(test_user_is_applied_after_binding_a_low_port)
{
    gid_t gid;
    uid_t uid = geteuid() == 0 ? nobody(&gid) : 0;
    if (uid == 0) {
        printf("skipped test_user_is_applied_after_binding_a_low_port: needs root and an "
               "unprivileged user 'nobody'\n");
        return;
    }
    /* a free privileged port */
    int port = 0;
    for (int p = 1023; p > 900 && port == 0; p--) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(s, (struct sockaddr *)&a, sizeof a) == 0)
            port = p;
        close(s);
    }
    ck_assert_int_gt(port, 0);
    char ports[16];
    snprintf(ports, sizeof ports, "%d", port);
    const char *args[] = {"-p", "echo", "--port", ports, "--interface", "127.0.0.1",
                          "--user", "nobody", NULL};
    tu_reactord d = start(args);
    ck_assert_int_eq(d.port, port);
    ck_assert(wait_log(&d, "running as uid", 5000));
    char path[64], status[4096], want[64];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)d.pid);
    slurp(path, status, sizeof status);
    snprintf(want, sizeof want, "Uid:\t%u\t%u\t%u\t%u", uid, uid, uid, uid);
    ck_assert_msg(strstr(status, want) != NULL, "%s", status);
    snprintf(want, sizeof want, "Gid:\t%u\t%u\t%u\t%u", gid, gid, gid, gid);
    ck_assert_msg(strstr(status, want) != NULL, "%s", status);
    expect_tcp_echo(port, "unprivileged");
    expect_clean_exit(&d);
}
END_TEST

START_TEST(test_chdir_and_umask_apply_to_the_server)
{
    make_tmpdir();
    char sock[256], ep[300], link[64], target[256];
    tmp_path(sock, sizeof sock, "masked.sock");
    snprintf(ep, sizeof ep, "unix:%s", sock);
    const char *args[] = {"-p", "echo", "-l", ep, "--chdir", tmpdir, "--umask", "077", NULL};
    tu_reactord d = start(args);
    ck_assert(wait_log(&d, "serving protocol 'echo'", 5000));
    snprintf(link, sizeof link, "/proc/%ld/cwd", (long)d.pid);
    ssize_t n = readlink(link, target, sizeof target - 1);
    ck_assert_int_gt(n, 0);
    target[n] = '\0';
    ck_assert_str_eq(target, tmpdir);
    struct stat st;
    ck_assert_int_eq(stat(sock, &st), 0);
    ck_assert_int_eq(st.st_mode & 0077, 0);
    expect_clean_exit(&d);
    remove_tmpdir();
}
END_TEST

/* ------------------------------------------------------------ workers */

static pid_t worker_pid(const char *log, unsigned i, int nth)
{
    char needle[64];
    snprintf(needle, sizeof needle, "worker %u running as pid ", i);
    const char *at = log;
    for (int k = 0; (at = strstr(at, needle)) != NULL; k++) {
        at += strlen(needle);
        if (k == nth)
            return (pid_t)atol(at);
    }
    return -1;
}

START_TEST(test_two_workers_serve_and_a_killed_one_is_restarted)
{
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--workers", "2", NULL};
    tu_reactord d = start(args);
    ck_assert_msg(wait_log(&d, "all 2 workers running", 10000), "%s", d.log);
    pid_t w1 = worker_pid(d.log, 1, 0), w2 = worker_pid(d.log, 2, 0);
    ck_assert_int_gt(w1, 0);
    ck_assert_int_gt(w2, 0);
    ck_assert_int_eq(proc_stat_field(w1, 4), d.pid);
    ck_assert_int_eq(proc_stat_field(w2, 4), d.pid);
    /* both listen on the one port */
    ck_assert_int_eq(listening_port(d.log, 1), d.port);
    for (int i = 0; i < 20; i++)
        expect_tcp_echo(d.port, "many hands");

    kill(w1, SIGKILL);
    ck_assert_msg(wait_log(&d, "worker 1 running as pid", 10000) &&
                      wait_log(&d, "restarting it in", 10000),
                  "%s", d.log);
    long long deadline = tu_now_ms() + 10000;
    pid_t again = -1;
    while ((again = worker_pid(d.log, 1, 1)) <= 0 && tu_now_ms() < deadline) {
        usleep(10000);
        tu_reactord_read_log(&d);
    }
    ck_assert_msg(again > 0 && again != w1, "%s", d.log);
    ck_assert_int_eq(proc_stat_field(again, 4), d.pid);
    for (int i = 0; i < 20; i++)
        expect_tcp_echo(d.port, "restarted");

    expect_clean_exit(&d);
    ck_assert(process_gone(again));
    ck_assert(process_gone(w2));
    ck_assert_ptr_nonnull(strstr(d.log, "all workers stopped"));
}
END_TEST

START_TEST(test_workers_forward_the_log_signals_ignore_sigusr2_and_stop_on_sigquit)
{
    make_tmpdir();
    char log[256], text[16384];
    tmp_path(log, sizeof log, "workers.log");
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--workers", "2", "--logfile", log, NULL};
    child c = spawn_reactord(args, NULL);
    ck_assert(wait_for_text(log, "all 2 workers running", 10000));
    kill(c.pid, SIGHUP);
    ck_assert(wait_for_text(log, "worker 1: SIGHUP: reopened", 10000));
    ck_assert(wait_for_text(log, "worker 2: SIGHUP: reopened", 10000));
    ck_assert(wait_for_text(log, "reactord: SIGHUP: reopened", 10000));
    kill(c.pid, SIGUSR2);
    ck_assert(wait_for_text(log, "reactord: SIGUSR2: ignored", 10000));
    kill(c.pid, SIGUSR1);
    ck_assert(wait_for_text(log, "worker 1: SIGUSR1: reopened", 10000));
    ck_assert(wait_for_text(log, "worker 2: SIGUSR1: reopened", 10000));
    ck_assert(wait_for_text(log, "reactord: SIGUSR1: reopened", 10000));
    ck_assert_ptr_null(strstr(slurp(log, text, sizeof text), "restarting"));
    kill(c.pid, SIGQUIT);
    int status = tu_wait_child(c.pid, 20000);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s",
                  slurp(log, text, sizeof text));
    ck_assert_ptr_nonnull(strstr(slurp(log, text, sizeof text), "all workers stopped"));
    close(c.out_fd);
    remove_tmpdir();
}
END_TEST

START_TEST(test_a_worker_start_up_failure_fails_the_whole_start)
{
    /* worker 1 dies starting its module; its sentence is the supervisor's */
    const char *args[] = {"-p", "crash", "--plugin-path", plugins(), "--port", "0",
                          "--interface", "127.0.0.1", "--workers", "2", NULL};
    expect_failure(args, 70, "protocol 'crash'", "crashed with signal");
}
END_TEST

START_TEST(test_workers_cannot_share_a_unix_endpoint)
{
    const char *args[] = {"-p", "echo", "-l", "unix:/tmp/never.sock", "--workers", "2", NULL};
    expect_failure(args, 64, "unix:/tmp/never.sock", "--workers");
}
END_TEST

/* ------------------------------------------------------------ usage */

START_TEST(test_usage_errors_exit_64_with_one_sentence)
{
    const char *bad_level[] = {"-p", "echo", "--port", "0", "--log-level", "loud", NULL};
    expect_failure(bad_level, 64, "--log-level", "'loud'");
    const char *bad_format[] = {"-p", "echo", "--port", "0", "--log-format", "xml", NULL};
    expect_failure(bad_format, 64, "--log-format", "'xml'");
    const char *bad_workers[] = {"-p", "echo", "--port", "0", "--workers", "0", NULL};
    expect_failure(bad_workers, 64, "--workers", NULL);
    const char *bad_umask[] = {"-p", "echo", "--port", "0", "--umask", "999", NULL};
    expect_failure(bad_umask, 64, "--umask", NULL);
    const char *bad_timeout[] = {"-p", "echo", "--port", "0", "--shutdown-timeout", "-1", NULL};
    expect_failure(bad_timeout, 64, "--shutdown-timeout", NULL);
    const char *missing[] = {"-p", NULL};
    expect_failure(missing, 64, "needs a value", NULL);
    const char *bad_chdir[] = {"-p", "echo", "--port", "0", "--chdir", "/no/such/dir", NULL};
    expect_failure(bad_chdir, 78, "/no/such/dir", NULL);
}
END_TEST

START_TEST(test_version_names_the_module_abi)
{
    const char *args[] = {"--version", NULL};
    char out[256], want[64];
    int status = run_reactord(args, NULL, out, sizeof out, 20000);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    snprintf(want, sizeof want, "module ABI %d.%d", TW_PLUGIN_ABI_MAJOR, TW_PLUGIN_ABI_MINOR);
    ck_assert_ptr_nonnull(strstr(out, tw_version()));
    ck_assert_ptr_nonnull(strstr(out, want));
}
END_TEST

START_TEST(test_help_covers_every_option)
{
    const char *args[] = {"--help", NULL};
    char out[8192];
    int status = run_reactord(args, NULL, out, sizeof out, 20000);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    static const char *const opts[] = {
        "--protocol", "--option", "--plugin-path", "--amp-commands", "--list-protocols",
        "--help-protocol",
        "--listen", "--port", "--interface", "--max-connections", "--idle-timeout",
        "--shutdown-timeout", "--workers", "--daemon", "--pidfile", "--user", "--group",
        "--chdir", "--umask", "--logfile", "--log-format", "--log-level", "--help",
        "--version"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        ck_assert_msg(strstr(out, opts[i]) != NULL, "%s is not in --help", opts[i]);
}
END_TEST

/* ------------------------------------------------------------ trust (issue 15) */

/* The user that privilege tests switch to, and whether root runs them:
 * 0 (after saying why the test is skipped) unless both hold. */
static uid_t test_user(const char *test, gid_t *gid)
{
    uid_t uid = geteuid() == 0 ? nobody(gid) : 0;
    if (uid == 0)
        printf("skipped %s: needs root and an unprivileged user 'nobody'\n", test);
    return uid;
}

/* Whether @p uid may read and enter @p dir (a build tree may be root's alone). */
static int user_can_read(uid_t uid, gid_t gid, const char *dir)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(setgroups(0, NULL) == 0 && setgid(gid) == 0 && setuid(uid) == 0 &&
                      access(dir, R_OK | X_OK) == 0
                  ? 0
                  : 1);
    int status = tu_wait_child(pid, 5000);
    return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Whether every line of @p path parses as JSON, with Python's parser. */
static int every_line_is_json(const char *path)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c 'import json, sys\n"
             "data = open(sys.argv[1], \"rb\").read()\n"
             "assert data.endswith(b\"\\n\"), data\n"
             "[json.loads(line) for line in data.split(b\"\\n\")[:-1]]' '%s'",
             path);
    return system(cmd) == 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

START_TEST(test_a_link_planted_at_a_temporary_pidfile_name_is_not_followed)
{
    make_tmpdir();
    char pidfile[256], target[256], text[64];
    tmp_path(pidfile, sizeof pidfile, "echo.pid");
    tmp_path(target, sizeof target, "precious");
    write_file(target, "precious\n");
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--pidfile", pidfile, NULL};
    spawn_opts o = {NULL, 0, 0, -1, 0, pidfile, target, 0};
    child c = spawn_reactord(args, &o);
    char out[4096] = "";
    ck_assert_msg(wait_output(&c, out, sizeof out, "serving protocol", 10000), "%s", out);
    ck_assert_str_eq(slurp(target, text, sizeof text), "precious\n");
    ck_assert_int_eq(pid_from_file(pidfile), c.pid);
    struct stat st;
    ck_assert_int_eq(lstat(pidfile, &st), 0);
    ck_assert(S_ISREG(st.st_mode));
    expect_child_stops(&c);
    ck_assert_str_eq(slurp(target, text, sizeof text), "precious\n");
    close(c.out_fd);
    remove_tmpdir();
}
END_TEST

START_TEST(test_a_symbolic_link_at_the_pidfile_is_refused_not_followed)
{
    make_tmpdir();
    char pidfile[256], target[256], text[64];
    tmp_path(pidfile, sizeof pidfile, "echo.pid");
    tmp_path(target, sizeof target, "precious");
    write_file(target, "precious\n");
    ck_assert_int_eq(symlink(target, pidfile), 0);
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--pidfile", pidfile, NULL};
    expect_failure(args, 73, pidfile, "symbolic link");
    ck_assert_str_eq(slurp(target, text, sizeof text), "precious\n");
    remove_tmpdir();
}
END_TEST

START_TEST(test_a_pidfile_directory_anyone_may_write_needs_the_sticky_bit)
{
    make_tmpdir();
    char dir[256], pidfile[300];
    tmp_path(dir, sizeof dir, "run");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    ck_assert_int_eq(chmod(dir, 0777), 0);
    snprintf(pidfile, sizeof pidfile, "%s/echo.pid", dir);
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--pidfile", pidfile, NULL};
    expect_failure(args, 73, dir, "sticky bit");
    ck_assert_int_eq(access(pidfile, F_OK), -1);
    /* with the sticky bit, as /tmp has it, nobody can replace our file */
    ck_assert_int_eq(chmod(dir, 01777), 0);
    tu_reactord d = start(args);
    ck_assert_int_eq(pid_from_file(pidfile), d.pid);
    expect_clean_exit(&d);
    remove_tmpdir();
}
END_TEST

START_TEST(test_pidfile_mistakes_exit_73_as_log_file_mistakes_do)
{
    make_tmpdir();
    char missing[256], dir[256];
    tmp_path(missing, sizeof missing, "no/such/dir/echo.pid");
    tmp_path(dir, sizeof dir, "a-directory");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    const char *in_missing[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                                "--pidfile", missing, NULL};
    expect_failure(in_missing, 73, missing, "No such file");
    const char *log_missing[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                                 "--logfile", missing, NULL};
    expect_failure(log_missing, 73, missing, "No such file");
    const char *is_dir[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                            "--pidfile", dir, NULL};
    expect_failure(is_dir, 73, dir, "a directory");
    remove_tmpdir();
}
END_TEST

START_TEST(test_a_systemd_socket_of_the_wrong_type_exits_64)
{
    int udp = socket(AF_INET, SOCK_DGRAM, 0);
    const char *args[] = {"-p", "echo", "-l", "systemd:domain=INET:index=0", NULL};
    spawn_opts o = {NULL, 0, 0, udp, 0, NULL, NULL, 0};
    char out[4096];
    int status = run_reactord(args, &o, out, sizeof out, 10000);
    close(udp);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 64, "%s", out);
    ck_assert_msg(strstr(out, "not a listening INET stream socket") != NULL, "%s", out);
}
END_TEST

START_TEST(test_a_port_in_use_is_said_once_with_workers)
{
    const char *first[] = {"-p", "echo", "-l", "tcp:0:interface=127.0.0.1", NULL};
    tu_reactord d = start(first);
    char ep[64], want[64];
    snprintf(ep, sizeof ep, "tcp:%d:interface=127.0.0.1", d.port);
    snprintf(want, sizeof want, "127.0.0.1:%d", d.port);
    const char *args[] = {"-p", "echo", "-l", ep, "--workers", "2", NULL};
    expect_failure(args, 69, want, "already in use");
    expect_clean_exit(&d);
}
END_TEST

START_TEST(test_a_second_reactord_cannot_share_a_port_served_by_workers)
{
    const char *first[] = {"-p", "echo", "-l", "tcp:0:interface=127.0.0.1", "--workers", "2",
                           NULL};
    tu_reactord d = start(first);
    ck_assert_msg(wait_log(&d, "all 2 workers running", 10000), "%s", d.log);
    char ep[64], want[64];
    snprintf(ep, sizeof ep, "tcp:%d:interface=127.0.0.1", d.port);
    snprintf(want, sizeof want, "127.0.0.1:%d", d.port);
    /* SO_REUSEPORT would let it in, even serving another protocol */
    const char *workers[] = {"-p", "line", "-l", ep, "--workers", "2", NULL};
    expect_failure(workers, 69, want, "already in use");
    const char *alone[] = {"-p", "line", "-l", ep, NULL};
    expect_failure(alone, 69, want, "already in use");
    for (int i = 0; i < 10; i++)
        expect_tcp_echo(d.port, "still all mine");
    expect_clean_exit(&d);
}
END_TEST

START_TEST(test_a_start_up_failure_after_listening_is_in_the_log_file)
{
    make_tmpdir();
    const char *first[] = {"-p", "echo", "-l", "tcp:0:interface=127.0.0.1", NULL};
    tu_reactord d = start(first);
    char ep[64], want[64], log[256], text[8192];
    snprintf(ep, sizeof ep, "tcp:%d:interface=127.0.0.1", d.port);
    snprintf(want, sizeof want, "127.0.0.1:%d", d.port);
    tmp_path(log, sizeof log, "fail.log");
    const char *args[] = {"-p", "echo", "-l", "tcp:0:interface=127.0.0.1", "-l", ep,
                          "--logfile", log, NULL};
    expect_failure(args, 69, want, "already in use");
    slurp(log, text, sizeof text);
    const char *listening = strstr(text, "listening on"), *fatal = strstr(text, "error reactord:");
    ck_assert_msg(listening != NULL && fatal != NULL && fatal > listening, "%s", text);
    ck_assert_msg(strstr(fatal, want) != NULL && strstr(fatal, "already in use") != NULL, "%s",
                  text);
    expect_clean_exit(&d);
    remove_tmpdir();
}
END_TEST

START_TEST(test_a_fatal_sentence_on_stderr_is_json_when_the_log_is)
{
    const char *first[] = {"-p", "echo", "-l", "tcp:0:interface=127.0.0.1", NULL};
    tu_reactord d = start(first);
    char ep[64], out[4096];
    snprintf(ep, sizeof ep, "tcp:%d:interface=127.0.0.1", d.port);
    const char *args[] = {"-p", "echo", "-l", ep, "--log-format", "json", NULL};
    int status = run_reactord(args, NULL, out, sizeof out, 10000);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 69, "%s", out);
    const char *line = strstr(out, "{\"time\":");
    ck_assert_msg(line != NULL && strstr(line, "\"level\":\"error\"") != NULL &&
                      strstr(line, "already in use") != NULL,
                  "%s", out);
    ck_assert_msg(strstr(out, "reactord: ") == NULL, "plain text in a JSON log: %s", out);
    for (const char *l = out; *l != '\0'; l = strchr(l, '\n') + 1) {
        ck_assert_msg(*l == '{', "not JSON: %s", out);
        ck_assert_ptr_nonnull(strchr(l, '\n'));
    }
    expect_clean_exit(&d);
}
END_TEST

START_TEST(test_every_json_log_line_parses_whatever_bytes_it_carries)
{
    make_tmpdir();
    char log[256], sock[256], ep[300], text[16384];
    tmp_path(log, sizeof log, "json.log");
    /* a path that is not UTF-8: a lone continuation byte, a cut sequence */
    tmp_path(sock, sizeof sock, "s\xff\x80\xc3(");
    snprintf(ep, sizeof ep, "unix:%s", sock);
    const char *args[] = {"-p", "echo", "-l", ep, "--log-format", "json", "--logfile", log,
                          NULL};
    child c = spawn_reactord(args, NULL);
    ck_assert(wait_for_text(log, "listening on", 10000));
    expect_child_stops(&c);
    close(c.out_fd);
    ck_assert_msg(strstr(slurp(log, text, sizeof text), "s\\ufffd\\ufffd\\ufffd(") != NULL, "%s",
                  text);
    ck_assert_msg(every_line_is_json(log), "%s", text);

    /* a fatal sentence longer than a record, of two-byte characters, cut
     * wherever the record ends */
    char name[1501], long_log[256];
    for (int i = 0; i < 1500; i += 2)
        memcpy(name + i, "\xc3\xa9", 2);
    name[1500] = '\0';
    tmp_path(long_log, sizeof long_log, "long.log");
    for (int shift = 0; shift < 2; shift++) {
        const char *fail[] = {"-p", name + shift, "--port", "0", "--log-format", "json",
                              "--logfile", long_log, NULL};
        char out[8192];
        int status = run_reactord(fail, NULL, out, sizeof out, 10000);
        ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 64, "%s", out);
    }
    ck_assert_msg(strstr(slurp(long_log, text, sizeof text), "\xc3\xa9\xc3\xa9") != NULL, "%s",
                  text);
    ck_assert_msg(every_line_is_json(long_log), "%s", text);
    remove_tmpdir();
}
END_TEST

START_TEST(test_sigusr1_reopens_the_log_like_sighup)
{
    check_log_reopened_on(SIGUSR1, "SIGUSR1");
}
END_TEST

START_TEST(test_sigusr2_is_ignored_and_sigquit_stops_gracefully)
{
    make_tmpdir();
    char pidfile[256], sock[256], ep[300];
    tmp_path(pidfile, sizeof pidfile, "echo.pid");
    tmp_path(sock, sizeof sock, "echo.sock");
    snprintf(ep, sizeof ep, "unix:%s", sock);
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1", "-l", ep,
                          "--pidfile", pidfile, NULL};
    tu_reactord d = start(args);
    kill(d.pid, SIGUSR2);
    ck_assert_msg(wait_log(&d, "SIGUSR2: ignored", 10000), "%s", d.log);
    expect_tcp_echo(d.port, "still here");
    int status = stop(&d, SIGQUIT);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "%d: %s",
                  status, d.log);
    ck_assert_ptr_nonnull(strstr(d.log, "SIGQUIT: no longer accepting"));
    ck_assert_int_eq(access(pidfile, F_OK), -1);
    ck_assert_int_eq(access(sock, F_OK), -1);
    remove_tmpdir();
}
END_TEST

START_TEST(test_a_second_sigterm_closes_the_remaining_connections_at_once)
{
    make_tmpdir();
    char pidfile[256];
    tmp_path(pidfile, sizeof pidfile, "echo.pid");
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--shutdown-timeout", "60", "--pidfile", pidfile, NULL};
    tu_reactord d = start(args);
    int fd = stuck_client(&d);
    kill(d.pid, SIGTERM);
    ck_assert_msg(wait_log(&d, "no longer accepting", 10000), "%s", d.log);
    long long t0 = tu_now_ms();
    kill(d.pid, SIGTERM);
    int status = tu_wait_child(d.pid, 10000);
    long long took = tu_now_ms() - t0;
    tu_reactord_read_log(&d);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "still draining %lld ms after the second SIGTERM: %s", took, d.log);
    ck_assert_ptr_nonnull(strstr(d.log, "SIGTERM again"));
    ck_assert_int_eq(access(pidfile, F_OK), -1);
    close(d.err_fd);
    close(fd);
    remove_tmpdir();
}
END_TEST

START_TEST(test_a_worker_without_heartbeat_is_killed_and_restarted)
{
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--workers", "2", "--worker-timeout", "1", NULL};
    tu_reactord d = start(args);
    ck_assert_msg(wait_log(&d, "all 2 workers running", 10000), "%s", d.log);
    pid_t w1 = worker_pid(d.log, 1, 0);
    ck_assert_int_gt(w1, 0);
    /* still answering after several timeouts */
    usleep(2500000);
    tu_reactord_read_log(&d);
    ck_assert_msg(strstr(d.log, "no heartbeat") == NULL, "%s", d.log);
    kill(w1, SIGSTOP);
    ck_assert_msg(wait_log(&d, "worker 1 (pid", 10000) && wait_log(&d, "no heartbeat", 10000),
                  "%s", d.log);
    long long deadline = tu_now_ms() + 10000;
    pid_t again = -1;
    while ((again = worker_pid(d.log, 1, 1)) <= 0 && tu_now_ms() < deadline) {
        usleep(10000);
        tu_reactord_read_log(&d);
    }
    ck_assert_msg(again > 0 && again != w1, "%s", d.log);
    ck_assert(process_gone(w1));
    for (int i = 0; i < 20; i++)
        expect_tcp_echo(d.port, "answered");
    expect_clean_exit(&d);
}
END_TEST

START_TEST(test_a_daemon_closes_the_descriptors_it_inherited)
{
    become_subreaper();
    make_tmpdir();
    char pidfile[256], log[256], leak[256];
    tmp_path(pidfile, sizeof pidfile, "echo.pid");
    tmp_path(log, sizeof log, "echo.log");
    tmp_path(leak, sizeof leak, "inherited");
    int fd = open(leak, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    ck_assert_int_ge(fd, 3);
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--daemon", "--pidfile", pidfile, "--logfile", log, NULL};
    spawn_opts o = {NULL, 0, 0, -1, 0, NULL, NULL, fd};
    char out[1024];
    int status = run_reactord(args, &o, out, sizeof out, 10000);
    close(fd);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", out);
    pid_t pid = (pid_t)pid_from_file(pidfile);
    ck_assert_int_gt(pid, 0);
    watch_daemon(pid);
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%ld/fd", (long)pid);
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char link[320], target[512];
        snprintf(link, sizeof link, "%s/%s", dir, de->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        target[n > 0 ? n : 0] = '\0';
        ck_assert_msg(strcmp(target, leak) != 0, "descriptor %s is still %s", de->d_name, leak);
    }
    closedir(d);
    kill(pid, SIGTERM);
    status = tu_wait_child(pid, 10000);
    loose_daemon = 0;
    ck_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    remove_tmpdir();
}
END_TEST

START_TEST(test_a_module_passed_over_for_a_builtin_is_logged)
{
    const char *args[] = {"-p", "echo", "--plugin-path", plugins(), "--port", "0",
                          "--interface", "127.0.0.1", NULL};
    tu_reactord d = start(args);
    char want[600];
    snprintf(want, sizeof want, "protocol 'echo' is served from built-in; the module %s/echo.so",
             plugins());
    ck_assert_msg(strstr(d.log, want) != NULL, "%s", d.log);
    expect_tcp_echo(d.port, "the built-in one");
    expect_clean_exit(&d);
}
END_TEST

START_TEST(test_every_refused_connection_is_counted_in_the_log)
{
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--max-connections", "1", NULL};
    tu_reactord d = start(args);
    int held = tu_connect("127.0.0.1", d.port);
    expect_echo(held, "the one allowed");
    for (int i = 0; i < 5; i++) {
        int fd = tu_connect("127.0.0.1", d.port);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(tu_wait_eof(fd, 5000), 1); /* refused: accepted and closed */
        close(fd);
    }
    expect_clean_exit(&d);
    close(held);
    long total = 0;
    for (const char *at = d.log; (at = strstr(at, "refused ")) != NULL; at++)
        total += atol(at + strlen("refused "));
    ck_assert_msg(total == 5, "%ld refusals logged: %s", total, d.log);
}
END_TEST

START_TEST(test_list_protocols_survives_a_module_that_crashes_while_loading)
{
    /* Under AddressSanitizer the crash must stay a signal, not a report
     * and an exit code, as it is without one. */
    char asan[512];
    const char *prev = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "ASAN_OPTIONS=%s%shandle_segv=0", prev ? prev : "",
             prev && prev[0] ? ":" : "");
    const char *env[] = {"TWINE_TEST_CRASH_ON_LOAD=1", asan, NULL};
    spawn_opts o = {env, 0, 0, -1, 0, NULL, NULL, 0};
    const char *args[] = {"--list-protocols", "--plugin-path", plugins(), NULL};
    char out[8192], want[600];
    int status = run_reactord(args, &o, out, sizeof out, 20000);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", out);
    snprintf(want, sizeof want, "warning: module %s/crash.so crashed while loading, with signal",
             plugins());
    ck_assert_msg(strstr(out, want) != NULL, "%s", out);
    ck_assert_msg(strstr(out, "good         greets") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "old.so was built for module ABI 1.0") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "reverse      adds Reverse") != NULL, "%s", out);
    ck_assert_msg(strstr(out, "echo.so declares protocol 'echo'") != NULL, "%s", out);
}
END_TEST

START_TEST(test_an_unknown_protocol_lists_modules_without_loading_them)
{
    make_tmpdir();
    char record[256], env_record[300];
    tmp_path(record, sizeof record, "loaded");
    snprintf(env_record, sizeof env_record, "TWINE_TEST_LOAD_RECORD=%s", record);
    const char *env[] = {env_record, NULL};
    spawn_opts o = {env, 0, 0, -1, 0, NULL, NULL, 0};
    const char *args[] = {"-p", "nosuch", "--plugin-path", plugins(), "--port", "0", NULL};
    char out[8192];
    int status = run_reactord(args, &o, out, sizeof out, 10000);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 64, "%s", out);
    ck_assert_msg(strstr(out, "crash") != NULL && strstr(out, "good") != NULL, "%s", out);
    ck_assert_int_eq(access(record, F_OK), -1);
    /* nor does serving a protocol load the others */
    const char *echo[] = {"-p", "echo", "--plugin-path", plugins(), "--port", "0",
                          "--interface", "127.0.0.1", NULL};
    child c = spawn_reactord(echo, &o);
    out[0] = '\0';
    wait_output(&c, out, sizeof out, "serving protocol", 10000);
    expect_child_stops(&c);
    close(c.out_fd);
    ck_assert_int_eq(access(record, F_OK), -1);
    remove_tmpdir();
}
END_TEST

START_TEST(test_amp_loads_the_other_modules_only_after_dropping_privileges)
{
    gid_t gid;
    uid_t uid = test_user("test_amp_loads_the_other_modules_only_after_dropping_privileges",
                          &gid);
    if (uid == 0)
        return;
    if (!user_can_read(uid, gid, plugins())) {
        printf("skipped test_amp_loads_the_other_modules_only_after_dropping_privileges: "
               "'nobody' cannot read %s\n", plugins());
        return;
    }
    make_tmpdir();
    ck_assert_int_eq(chmod(tmpdir, 0755), 0);
    char record[256], env_record[300], text[1024], want[64];
    tmp_path(record, sizeof record, "loaded");
    write_file(record, "");
    ck_assert_int_eq(chmod(record, 0666), 0);
    snprintf(env_record, sizeof env_record, "TWINE_TEST_LOAD_RECORD=%s", record);
    const char *env[] = {env_record, NULL};
    spawn_opts o = {env, 0, 0, -1, 0, NULL, NULL, 0};
    const char *args[] = {"-p", "amp", "--plugin-path", plugins(), "--amp-commands", "reverse",
                          "--port", "0", "--interface", "127.0.0.1", "--user", "nobody", NULL};
    child c = spawn_reactord(args, &o);
    char out[8192] = "";
    wait_output(&c, out, sizeof out, "serving protocol", 10000);
    ck_assert_msg(strstr(out, "module 'reverse'") != NULL, "%s", out);
    expect_child_stops(&c);
    close(c.out_fd);
    snprintf(want, sizeof want, "loaded as uid %u\n", (unsigned)uid);
    ck_assert_str_eq(slurp(record, text, sizeof text), want);
    remove_tmpdir();
}
END_TEST

START_TEST(test_a_module_that_crashes_starting_exits_70_naming_it)
{
    const char *args[] = {"-p", "crash", "--plugin-path", plugins(), "--port", "0",
                          "--interface", "127.0.0.1", NULL};
    char want[600];
    snprintf(want, sizeof want, "protocol 'crash' (%s/crash.so), starting, crashed with signal %d",
             plugins(), SIGSEGV);
    expect_failure(args, 70, want, NULL);
}
END_TEST

START_TEST(test_a_daemon_whose_module_crashes_says_so_and_logs_it)
{
    become_subreaper();
    make_tmpdir();
    char log[256], text[4096], want[600];
    tmp_path(log, sizeof log, "crash.log");
    const char *args[] = {"-p", "crash", "--plugin-path", plugins(), "--port", "0",
                          "--interface", "127.0.0.1", "--daemon", "--logfile", log, NULL};
    snprintf(want, sizeof want, "protocol 'crash' (%s/crash.so), starting, crashed with signal",
             plugins());
    expect_failure(args, 70, want, NULL);
    ck_assert_msg(strstr(slurp(log, text, sizeof text), want) != NULL, "%s", text);
    /* No daemon was left behind: it exits right after its report. */
    long long deadline = tu_now_ms() + 5000;
    while (children_other_than(0) > 0 && tu_now_ms() < deadline)
        usleep(10000);
    ck_assert_int_eq(children_other_than(0), 0);
    remove_tmpdir();
}
END_TEST

/* Rotate @p log as logrotate's `create` does: rename it, then create a new
 * empty file with the old one's owner and mode. */
static void logrotate_create(const char *log, const char *rotated)
{
    struct stat st;
    ck_assert_int_eq(stat(log, &st), 0);
    ck_assert_int_eq(rename(log, rotated), 0);
    int fd = open(log, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(fchown(fd, st.st_uid, st.st_gid), 0);
    ck_assert_int_eq(fchmod(fd, st.st_mode & 07777), 0);
    close(fd);
}

/* Started as root with --user, reactord hands its log to that user, who
 * reopens it after logrotate in a root-owned directory such as /var/log. */
static void check_log_rotation_after_user(const char *workers)
{
    gid_t gid;
    uid_t uid = test_user("the --user log rotation tests", &gid);
    if (uid == 0)
        return;
    make_tmpdir();
    ck_assert_int_eq(chmod(tmpdir, 0755), 0);
    char dir[256], log[300], rotated[300], text[16384];
    tmp_path(dir, sizeof dir, "log");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    snprintf(log, sizeof log, "%s/echo.log", dir);
    snprintf(rotated, sizeof rotated, "%s/echo.log.1", dir);
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1", "--user",
                          "nobody", "--logfile", log, "--workers", workers, NULL};
    if (strcmp(workers, "0") == 0)
        args[10] = NULL;
    child c = spawn_reactord(args, NULL);
    ck_assert(wait_for_text(log, strcmp(workers, "0") == 0 ? "serving protocol"
                                                           : "all 2 workers running",
                            10000));
    struct stat st;
    ck_assert_int_eq(stat(log, &st), 0);
    ck_assert_int_eq(st.st_uid, uid);
    logrotate_create(log, rotated);
    kill(c.pid, SIGHUP);
    if (strcmp(workers, "0") == 0) {
        ck_assert_msg(wait_for_text(log, "reactord: SIGHUP: reopened the log file", 10000), "%s",
                      slurp(rotated, text, sizeof text));
    } else {
        ck_assert_msg(wait_for_text(log, "worker 1: SIGHUP: reopened the log file", 10000) &&
                          wait_for_text(log, "worker 2: SIGHUP: reopened the log file", 10000),
                      "%s", slurp(rotated, text, sizeof text));
    }
    ck_assert_ptr_null(strstr(slurp(rotated, text, sizeof text), "cannot reopen"));
    kill(c.pid, SIGTERM);
    int status = tu_wait_child(c.pid, 20000);
    ck_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ck_assert_ptr_nonnull(strstr(slurp(log, text, sizeof text), "stopped"));
    close(c.out_fd);
    remove_tmpdir();
}

START_TEST(test_with_user_the_log_survives_logrotate_create)
{
    check_log_rotation_after_user("0");
}
END_TEST

START_TEST(test_with_user_every_worker_reopens_the_log)
{
    check_log_rotation_after_user("2");
}
END_TEST

/* Byte @p off of client @p c's stream: a pattern, so that every byte
 * received can be checked against the one sent. */
static unsigned char stream_byte(int c, size_t off)
{
    return (unsigned char)((off * 2654435761u) >> 24) ^ (unsigned char)c;
}

START_TEST(test_a_graceful_stop_delivers_queued_output_to_clients_that_sent_unread_data)
{
    enum { CLIENTS = 10 };
    const size_t total = (size_t)16 << 20;
    const char *args[] = {"-p", "echo", "--port", "0", "--interface", "127.0.0.1",
                          "--shutdown-timeout", "20", NULL};
    tu_reactord d = start(args);
    int fd[CLIENTS];
    size_t sent[CLIENTS] = {0}, got[CLIENTS] = {0};
    int eof[CLIENTS] = {0};
    static unsigned char chunk[1 << 16];
    for (int c = 0; c < CLIENTS; c++) {
        fd[c] = tu_connect("127.0.0.1", d.port);
        ck_assert_int_ge(fd[c], 0);
        fcntl(fd[c], F_SETFL, O_NONBLOCK);
    }
    /* Send without reading until the server stops reading from anyone: its
     * echoes are queued, the rest waits unread in its socket buffers. */
    long long deadline = tu_now_ms() + 30000;
    int idle_rounds = 0;
    while (idle_rounds < 10 && tu_now_ms() < deadline) {
        int progress = 0;
        for (int c = 0; c < CLIENTS; c++) {
            while (sent[c] < total) {
                size_t n = total - sent[c] < sizeof chunk ? total - sent[c] : sizeof chunk;
                for (size_t i = 0; i < n; i++)
                    chunk[i] = stream_byte(c, sent[c] + i);
                ssize_t w = send(fd[c], chunk, n, MSG_NOSIGNAL);
                if (w <= 0)
                    break;
                sent[c] += (size_t)w;
                progress = 1;
            }
        }
        idle_rounds = progress ? 0 : idle_rounds + 1;
        usleep(20000);
    }
    ck_assert_msg(idle_rounds >= 10, "the server kept reading everything for 30 s");
#ifdef __linux__
    /* What the server read, it echoed: all of it is queued output, which
     * must arrive whole. (On loopback nothing is in flight in between; the
     * server may still read a little more before the signal, if its kernel
     * buffer grows.) */
    size_t queued[CLIENTS];
    for (int c = 0; c < CLIENTS; c++) {
        int outq = 0;
        ck_assert_int_eq(ioctl(fd[c], SIOCOUTQ, &outq), 0);
        long unread = server_unread(d.port, local_port(fd[c]));
        ck_assert_int_ge(unread, 0);
        queued[c] = sent[c] - (size_t)outq - (size_t)unread;
    }
#endif

    long long t0 = tu_now_ms();
    kill(d.pid, SIGTERM);
    /* Now read: every byte the server echoed arrives, in order, then EOF. */
    static unsigned char buf[1 << 16];
    int open = CLIENTS;
    deadline = t0 + 25000;
    while (open > 0 && tu_now_ms() < deadline) {
        struct pollfd p[CLIENTS];
        for (int c = 0; c < CLIENTS; c++)
            p[c] = (struct pollfd){eof[c] ? -1 : fd[c], POLLIN, 0};
        poll(p, CLIENTS, 100);
        for (int c = 0; c < CLIENTS; c++) {
            if (eof[c] || p[c].revents == 0)
                continue;
            ssize_t n = recv(fd[c], buf, sizeof buf, 0);
            if (n < 0 && errno == EAGAIN)
                continue;
            ck_assert_msg(n >= 0, "client %d: %s after %zu of %zu bytes echoed", c,
                          strerror(errno), got[c], sent[c]);
            if (n == 0) {
                eof[c] = 1;
                open--;
                continue;
            }
            ssize_t i = 0;
            while (i < n && buf[i] == stream_byte(c, got[c] + (size_t)i))
                i++;
            ck_assert_msg(i == n, "client %d: byte %zu differs", c, got[c] + (size_t)i);
            got[c] += (size_t)n;
        }
    }
    long long took = tu_now_ms() - t0;
    tu_reactord_read_log(&d);
    ck_assert_msg(open == 0, "%d clients without EOF %lld ms after SIGTERM (client 0: %zu of %zu "
                  "bytes back): %s", open, took, got[0], sent[0], d.log);
    ck_assert_msg(took < 20000, "the drain took %lld ms", took);
    for (int c = 0; c < CLIENTS; c++) {
        ck_assert_msg(got[c] > 0 && got[c] <= sent[c], "client %d: %zu of %zu", c, got[c],
                      sent[c]);
#ifdef __linux__
        ck_assert_msg(got[c] >= queued[c], "client %d: %zu bytes echoed, %zu were queued", c,
                      got[c], queued[c]);
#endif
        close(fd[c]);
    }
    int status = tu_wait_child(d.pid, 20000);
    tu_reactord_read_log(&d);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", d.log);
    ck_assert_msg(strstr(d.log, "aborting") == NULL, "%s", d.log);
    close(d.err_fd);
}
END_TEST

static Suite *reactord_suite(void)
{
    Suite *s = suite_create("reactord");
    TCase *tc = tcase_create("modules");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_a_module_from_the_plugin_path_serves_with_its_options);
    tcase_add_test(tc, test_twine_plugin_path_is_searched_too);
    tcase_add_test(tc, test_plugin_path_comes_before_twine_plugin_path);
    tcase_add_test(tc, test_list_protocols_shows_each_with_description_and_origin);
    tcase_add_test(tc, test_help_protocol_shows_the_option_table);
    tcase_add_test(tc, test_a_module_of_the_previous_abi_major_exits_78_naming_both_versions);
    tcase_add_test(tc, test_amp_serves_the_commands_of_plugin_modules);
    tcase_add_test(tc, test_amp_runs_no_module_it_was_not_asked_for);
    tcase_add_test(tc, test_amp_commands_mistakes_exit_64_with_one_sentence);
    tcase_add_test(tc, test_an_abi_mismatch_exits_78_naming_the_file_and_both_versions);
    tcase_add_test(tc, test_a_wrong_magic_exits_78_naming_the_file);
    tcase_add_test(tc, test_a_missing_symbol_exits_78_naming_the_file);
    tcase_add_test(tc, test_a_misnamed_module_exits_78);
    tcase_add_test(tc, test_a_module_that_refuses_to_start_exits_78);
    tcase_add_test(tc, test_an_unknown_protocol_lists_every_known_one);
    tcase_add_test(tc, test_an_unknown_module_option_lists_the_valid_keys);
    suite_add_tcase(s, tc);

    tc = tcase_create("endpoints");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_a_bad_endpoint_exits_64_naming_the_segment);
    tcase_add_test(tc, test_an_address_in_use_exits_69_naming_it);
    tcase_add_test(tc, test_one_protocol_serves_several_endpoints);
    tcase_add_test(tc, test_tcp6_endpoint_serves_ipv6);
    tcase_add_test(tc, test_a_udp_endpoint_is_served_by_the_datagram_protocol);
    tcase_add_test(tc, test_a_unixgram_endpoint_is_served_by_the_datagram_protocol);
    tcase_add_test(tc, test_a_udp_endpoint_needs_a_datagram_protocol);
    tcase_add_test(tc, test_systemd_socket_activation_is_served);
    tcase_add_test(tc, test_systemd_endpoint_without_activation_exits_64);
    tcase_add_test(tc, test_max_connections_closes_the_connection_past_the_limit);
    tcase_add_test(tc, test_idle_timeout_closes_a_silent_connection);
    suite_add_tcase(s, tc);

    tc = tcase_create("shutdown-and-logs");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_sigterm_lets_a_transfer_in_flight_finish);
    tcase_add_test(tc, test_shutdown_timeout_closes_connections_that_do_not_drain);
    tcase_add_test(tc, test_sigint_stops_like_sigterm);
    tcase_add_test(tc, test_sighup_reopens_the_log_file);
    tcase_add_test(tc, test_json_log_format_writes_one_object_a_line);
    tcase_add_test(tc, test_log_level_warn_hides_info);
    suite_add_tcase(s, tc);

    tc = tcase_create("daemon");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_daemon_detaches_writes_its_pidfile_and_removes_it_on_exit);
    tcase_add_test(tc, test_a_daemon_that_fails_to_start_reports_why_and_leaves_nothing);
    tcase_add_test(tc, test_a_pidfile_held_by_a_live_process_is_refused);
    tcase_add_test(tc, test_a_pidfile_of_another_users_process_counts_as_alive);
    tcase_add_test(tc, test_a_stale_pidfile_is_replaced_with_a_log_line);
    tcase_add_test(tc, test_a_pidfile_without_a_pid_is_stale);
    suite_add_tcase(s, tc);

    tc = tcase_create("privileges");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_a_low_port_without_privilege_exits_77);
    tcase_add_test(tc, test_unknown_user_or_group_exits_67);
    tcase_add_test(tc, test_user_is_applied_after_binding_a_low_port);
    tcase_add_test(tc, test_chdir_and_umask_apply_to_the_server);
    suite_add_tcase(s, tc);

    tc = tcase_create("workers");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_two_workers_serve_and_a_killed_one_is_restarted);
    tcase_add_test(tc, test_workers_forward_the_log_signals_ignore_sigusr2_and_stop_on_sigquit);
    tcase_add_test(tc, test_a_worker_start_up_failure_fails_the_whole_start);
    tcase_add_test(tc, test_workers_cannot_share_a_unix_endpoint);
    suite_add_tcase(s, tc);

    tc = tcase_create("usage");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_usage_errors_exit_64_with_one_sentence);
    tcase_add_test(tc, test_version_names_the_module_abi);
    tcase_add_test(tc, test_help_covers_every_option);
    suite_add_tcase(s, tc);

    tc = tcase_create("trust");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_a_link_planted_at_a_temporary_pidfile_name_is_not_followed);
    tcase_add_test(tc, test_a_symbolic_link_at_the_pidfile_is_refused_not_followed);
    tcase_add_test(tc, test_a_pidfile_directory_anyone_may_write_needs_the_sticky_bit);
    tcase_add_test(tc, test_list_protocols_survives_a_module_that_crashes_while_loading);
    tcase_add_test(tc, test_an_unknown_protocol_lists_modules_without_loading_them);
    tcase_add_test(tc, test_amp_loads_the_other_modules_only_after_dropping_privileges);
    tcase_add_test(tc, test_a_module_that_crashes_starting_exits_70_naming_it);
    tcase_add_test(tc, test_a_daemon_whose_module_crashes_says_so_and_logs_it);
    tcase_add_test(tc, test_with_user_the_log_survives_logrotate_create);
    tcase_add_test(tc, test_with_user_every_worker_reopens_the_log);
    tcase_add_test(tc, test_a_start_up_failure_after_listening_is_in_the_log_file);
    tcase_add_test(tc, test_a_fatal_sentence_on_stderr_is_json_when_the_log_is);
    tcase_add_test(tc, test_every_json_log_line_parses_whatever_bytes_it_carries);
    tcase_add_test(tc, test_a_second_reactord_cannot_share_a_port_served_by_workers);
    tcase_add_test(tc, test_sigusr1_reopens_the_log_like_sighup);
    tcase_add_test(tc, test_sigusr2_is_ignored_and_sigquit_stops_gracefully);
    tcase_add_test(tc, test_a_second_sigterm_closes_the_remaining_connections_at_once);
    tcase_add_test(tc, test_a_graceful_stop_delivers_queued_output_to_clients_that_sent_unread_data);
    tcase_add_test(tc, test_a_worker_without_heartbeat_is_killed_and_restarted);
    tcase_add_test(tc, test_a_daemon_closes_the_descriptors_it_inherited);
    tcase_add_test(tc, test_a_module_passed_over_for_a_builtin_is_logged);
    tcase_add_test(tc, test_every_refused_connection_is_counted_in_the_log);
    tcase_add_test(tc, test_pidfile_mistakes_exit_73_as_log_file_mistakes_do);
    tcase_add_test(tc, test_a_systemd_socket_of_the_wrong_type_exits_64);
    tcase_add_test(tc, test_a_port_in_use_is_said_once_with_workers);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(reactord_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
