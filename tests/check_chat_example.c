/* SPDX-License-Identifier: MIT */
/*
 * The out-of-tree module story, end to end, as a module author lives it:
 * twine is installed (make install into a DESTDIR), the chat
 * example in examples/chat/ is built with nothing but its two-line Makefile
 * and `pkg-config --cflags --libs twine` against that installation, and the
 * installed reactord loads it with --plugin-path; then two clients chat.
 *
 * make check installs twine into TWINE_CHAT_DESTDIR before the tests run;
 * the rest of the environment comes from the Makefile too: TWINE_SRCDIR,
 * TWINE_MAKE, TWINE_CC, TWINE_CFLAGS (a sanitizer build builds the module
 * alike) and the configured bindir, libdir and mandir.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <twine.h>

#include "testutil.h"

static char tmp[64];
static char dest[256];
static char chat_dir[128];
static int prepared;  /* 1 ok, -1 failed */
static char why[4096];

static const char *env(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : fallback;
}

/* Run @p cmd through the shell, its output into @p log. @return 0 on success. */
static int run(const char *cmd, const char *log)
{
    char full[8192];
    snprintf(full, sizeof full, "(%s) >'%s' 2>&1", cmd, log);
    int status = system(full);
    return status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static void tail_of(const char *log)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "tail -c 3000 '%s'", log);
    FILE *f = popen(cmd, "r");
    size_t n = f != NULL ? fread(why, 1, sizeof why - 1, f) : 0;
    why[n] = '\0';
    if (f != NULL)
        pclose(f);
}

/* Build the example against the installed twine, once. */
static void prepare(void)
{
    if (prepared)
        return;
    prepared = -1;
    snprintf(tmp, sizeof tmp, "/tmp/twchatXXXXXX");
    if (mkdtemp(tmp) == NULL) {
        snprintf(why, sizeof why, "mkdtemp: %s", strerror(errno));
        return;
    }
    snprintf(dest, sizeof dest, "%s", env("TWINE_CHAT_DESTDIR", "tests/chat-dest"));
    snprintf(chat_dir, sizeof chat_dir, "%s/chat", tmp);
    mkdir(chat_dir, 0755);
    char cmd[4096], log[256];
    /* A make of our own: the jobserver of the make running the tests is
     * not ours to use. */
    snprintf(log, sizeof log, "%s/build.log", tmp);
    snprintf(cmd, sizeof cmd,
             "cd '%s' && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL "
             "PKG_CONFIG_PATH='%s%s/pkgconfig' PKG_CONFIG_SYSROOT_DIR='%s' "
             "%s CC='%s' CFLAGS='%s' -f '%s/examples/chat/Makefile' VPATH='%s/examples/chat'",
             chat_dir, dest, env("TWINE_LIBDIR", "/usr/local/lib"), dest,
             env("TWINE_MAKE", "make"), env("TWINE_CC", "cc"), env("TWINE_CFLAGS", "-O2"),
             env("TWINE_SRCDIR", ".."), env("TWINE_SRCDIR", ".."));
    if (run(cmd, log) < 0) {
        tail_of(log);
        return;
    }
    prepared = 1;
}

static void need_prepared(void)
{
    prepare();
    if (prepared < 0)
        ck_abort_msg("building the example against the installed twine failed:\n%s", why);
}

/* Use the installed reactord, with the installed libtwine. */
static void use_installed_reactord(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s%s/reactord", dest, env("TWINE_SBINDIR", "/usr/local/sbin"));
    setenv("REACTORD", path, 1);
    snprintf(path, sizeof path, "%s%s", dest, env("TWINE_LIBDIR", "/usr/local/lib"));
    setenv("LD_LIBRARY_PATH", path, 1);
}

/* Read one line (without its "\n") within 5 s. */
static char *read_line(int fd, char *buf, size_t len)
{
    size_t at = 0;
    while (at + 1 < len) {
        if (tu_read_exact(fd, buf + at, 1, 5000) != 1)
            break;
        if (buf[at] == '\n')
            break;
        at++;
    }
    buf[at] = '\0';
    return buf;
}

static void send_line(int fd, const char *line)
{
    ck_assert_int_eq(tu_write_all(fd, line, strlen(line)), 0);
    ck_assert_int_eq(tu_write_all(fd, "\n", 1), 0);
}

START_TEST(test_the_chat_module_builds_against_the_installed_twine_with_pkg_config)
{
    need_prepared();
    char path[256];
    snprintf(path, sizeof path, "%s/chat.so", chat_dir);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    /* built where we asked: the source directory stays clean */
    snprintf(path, sizeof path, "%s/examples/chat/chat.so", env("TWINE_SRCDIR", ".."));
    ck_assert_int_eq(stat(path, &st), -1);
}
END_TEST

START_TEST(test_make_install_installs_reactord_and_its_manual_page)
{
    need_prepared();
    char path[1024];
    struct stat st;
    snprintf(path, sizeof path, "%s%s/man8/reactord.8", dest,
             env("TWINE_MANDIR", "/usr/local/share/man"));
    ck_assert_msg(stat(path, &st) == 0, "%s is missing", path);
    snprintf(path, sizeof path, "%s%s/reactord", dest, env("TWINE_SBINDIR", "/usr/local/sbin"));
    ck_assert_msg(stat(path, &st) == 0 && (st.st_mode & 0111), "%s is missing", path);
}
END_TEST

START_TEST(test_help_protocol_describes_the_chat_module_and_its_options)
{
    need_prepared();
    use_installed_reactord();
    const char *args[] = {"--help-protocol", "chat", "--plugin-path", chat_dir, NULL};
    char out[4096];
    int status = tu_run_reactord(args, out, sizeof out, 10000);
    ck_assert_msg(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s", out);
    ck_assert_ptr_nonnull(strstr(out, "chat: multi-user line chat"));
    ck_assert_ptr_nonnull(strstr(out, "greeting=TEXT"));
    ck_assert_ptr_nonnull(strstr(out, "max-backlog=INTEGER"));
    ck_assert_ptr_nonnull(strstr(out, chat_dir));
}
END_TEST

START_TEST(test_two_clients_chat_through_the_installed_reactord)
{
    need_prepared();
    use_installed_reactord();
    const char *args[] = {"--protocol", "chat", "--plugin-path", chat_dir, "--port", "0",
                          "--interface", "127.0.0.1", "-o", "greeting=Name?", NULL};
    tu_reactord d;
    if (tu_reactord_start(&d, args) < 0)
        ck_abort_msg("the installed reactord did not start: %s", d.log);
    char line[256];

    int alice = tu_connect("127.0.0.1", d.port);
    ck_assert_int_ge(alice, 0);
    ck_assert_str_eq(read_line(alice, line, sizeof line), "Name?");
    send_line(alice, "alice");
    ck_assert_str_eq(read_line(alice, line, sizeof line), "Welcome, alice! 0 other users are here.");

    int bob = tu_connect("127.0.0.1", d.port);
    ck_assert_str_eq(read_line(bob, line, sizeof line), "Name?");
    send_line(bob, "alice");
    ck_assert_str_eq(read_line(bob, line, sizeof line), "alice is taken. Your name?");
    send_line(bob, "bob\r"); /* telnet's line ending works too */
    ck_assert_str_eq(read_line(bob, line, sizeof line), "Welcome, bob! 1 other user is here.");
    ck_assert_str_eq(read_line(alice, line, sizeof line), "* bob has joined");

    send_line(alice, "hello bob");
    ck_assert_str_eq(read_line(bob, line, sizeof line), "<alice> hello bob");
    send_line(bob, "hi alice");
    ck_assert_str_eq(read_line(alice, line, sizeof line), "<bob> hi alice");

    /* nobody hears their own words back */
    char c;
    ck_assert_uint_eq(tu_read_exact(alice, &c, 1, 200), 0);
    ck_assert_uint_eq(tu_read_exact(bob, &c, 1, 200), 0);

    send_line(bob, "/quit");
    ck_assert_str_eq(read_line(bob, line, sizeof line), "Bye!");
    ck_assert_int_eq(tu_wait_eof(bob, 5000), 1);
    ck_assert_str_eq(read_line(alice, line, sizeof line), "* bob has left");
    close(bob);
    close(alice);

    kill(d.pid, SIGTERM);
    int status = tu_wait_child(d.pid, 10000);
    ck_assert(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(d.err_fd);
}
END_TEST

static void cleanup(void)
{
    if (tmp[0] != '\0') {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmp);
    }
}

static Suite *chat_suite(void)
{
    Suite *s = suite_create("chat-example");
    TCase *tc = tcase_create("out-of-tree");
    /* Installing is done once, in the runner's process, before the tests. */
    tcase_add_unchecked_fixture(tc, prepare, cleanup);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_the_chat_module_builds_against_the_installed_twine_with_pkg_config);
    tcase_add_test(tc, test_make_install_installs_reactord_and_its_manual_page);
    tcase_add_test(tc, test_help_protocol_describes_the_chat_module_and_its_options);
    tcase_add_test(tc, test_two_clients_chat_through_the_installed_reactord);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(chat_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
