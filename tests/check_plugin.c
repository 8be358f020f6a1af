/* SPDX-License-Identifier: MIT */
/*
 * The module loader and registry, in process: a good module loads and
 * reports its origin; a wrong magic, an ABI mismatch (major or newer minor),
 * a missing descriptor, an unresolved symbol, a duplicate name and a file
 * misnamed for its protocol are each refused with one sentence naming the
 * file; so are a module of the previous major ABI (1.0), an unknown type and
 * a type's missing constructor; each type's context is read through
 * tw_plugin_context(); a registry starts empty and holds the built-ins its
 * caller registers (reactord's: protocols/builtin.c) before the directories,
 * in the order added.
 *
 * The modules are built from tests/plugins/ into $TWINE_TEST_PLUGINS.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <twine.h>
#include <twine/amp.h>

#include "../protocols/builtin.h"

static const char *plugin_dir(void)
{
    const char *d = getenv("TWINE_TEST_PLUGINS");
    return d != NULL ? d : "tests/plugins/.libs";
}

/* A registry as reactord makes one: the built-ins first. */
static tw_plugin_registry *new_registry(void)
{
    tw_plugin_registry *reg = tw_plugin_registry_new();
    char err[1024];
    ck_assert_ptr_nonnull(reg);
    ck_assert_int_eq(tw__builtin_register(reg, err, sizeof err), 0);
    return reg;
}

static void module_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s.so", plugin_dir(), name);
}

/* Load @p name and expect refusal @p code with @p a and @p b in the sentence. */
static void expect_refusal(const char *name, int code, const char *a, const char *b)
{
    char path[512], err[1024] = "";
    module_path(path, sizeof path, name);
    tw_plugin_module *m = NULL;
    int rc = tw_plugin_load(path, &m, err, sizeof err);
    ck_assert_msg(rc == code, "%s: rc %d, want %d: %s", name, rc, code, err);
    ck_assert_ptr_null(m);
    ck_assert_msg(strstr(err, path) != NULL, "the sentence names the file: %s", err);
    ck_assert_msg(a == NULL || strstr(err, a) != NULL, "'%s' missing from: %s", a, err);
    ck_assert_msg(b == NULL || strstr(err, b) != NULL, "'%s' missing from: %s", b, err);
    ck_assert_ptr_null(strchr(err, '\n'));
}

static void copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0755);
    ck_assert_int_ge(in, 0);
    ck_assert_int_ge(out, 0);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        ck_assert_int_eq(write(out, buf, (size_t)n), n);
    close(in);
    close(out);
}

START_TEST(test_a_good_module_loads_with_its_descriptor)
{
    char path[512], err[1024] = "";
    module_path(path, sizeof path, "good");
    tw_plugin_module *m;
    ck_assert_int_eq(tw_plugin_load(path, &m, err, sizeof err), 0);
    const tw_plugin *p = tw_plugin_module_descriptor(m);
    ck_assert_str_eq(p->name, "good");
    ck_assert_str_eq(p->options[0].name, "greeting");
    ck_assert_uint_eq(p->type, TW_PLUGIN_PROTOCOL);
    ck_assert_str_eq(tw_plugin_type_name(p), "protocol");
    const tw_plugin_protocol *proto = tw_plugin_context(p, TW_PLUGIN_PROTOCOL);
    ck_assert_ptr_nonnull(proto);
    ck_assert_ptr_nonnull(proto->make_factory);
    ck_assert_ptr_null(proto->make_datagram);
    ck_assert_ptr_null(tw_plugin_context(p, TW_PLUGIN_AMP_COMMANDS));
    ck_assert_str_eq(tw_plugin_module_path(m), path);
    tw_plugin_module_close(m);
}
END_TEST

START_TEST(test_a_good_module_makes_a_factory_from_parsed_options)
{
    char path[512], err[1024] = "";
    module_path(path, sizeof path, "good");
    tw_plugin_module *m;
    ck_assert_int_eq(tw_plugin_load(path, &m, err, sizeof err), 0);
    const tw_plugin *p = tw_plugin_module_descriptor(m);
    const char *kv[] = {"greeting=hi", "shout=yes"};
    tw_options *o = tw_options_parse(p->options, kv, 2, err, sizeof err);
    ck_assert_ptr_nonnull(o);
    tw_reactor *r = tw_reactor_new();
    const tw_plugin_protocol *proto = tw_plugin_context(p, TW_PLUGIN_PROTOCOL);
    tw_factory *f = proto->make_factory(r, o, err, sizeof err);
    ck_assert_ptr_nonnull(f);
    tw_factory_free(f);
    tw_reactor_free(r);
    tw_options_free(o);
    tw_plugin_module_close(m);
}
END_TEST

START_TEST(test_a_wrong_magic_is_refused_naming_both_magics)
{
    expect_refusal("badmagic", -EINVAL, "0x12345678", "0x7477706c");
}
END_TEST

START_TEST(test_a_newer_major_abi_is_refused_naming_both_versions)
{
    char theirs[32], ours[32];
    snprintf(theirs, sizeof theirs, "ABI %d.0", TW_PLUGIN_ABI_MAJOR + 1);
    snprintf(ours, sizeof ours, "ABI %d.%d", TW_PLUGIN_ABI_MAJOR, TW_PLUGIN_ABI_MINOR);
    expect_refusal("future", -EINVAL, theirs, ours);
}
END_TEST

START_TEST(test_a_newer_minor_abi_is_refused_naming_both_versions)
{
    char theirs[32], ours[32];
    snprintf(theirs, sizeof theirs, "ABI %d.%d", TW_PLUGIN_ABI_MAJOR, TW_PLUGIN_ABI_MINOR + 1);
    snprintf(ours, sizeof ours, "ABI %d.%d", TW_PLUGIN_ABI_MAJOR, TW_PLUGIN_ABI_MINOR);
    expect_refusal("newer", -EINVAL, theirs, ours);
}
END_TEST

START_TEST(test_a_missing_descriptor_symbol_is_refused)
{
    expect_refusal("nodescriptor", -ENOEXEC, "tw_plugin_descriptor", "TW_PLUGIN()");
}
END_TEST

START_TEST(test_an_unresolved_symbol_is_refused_at_load_time)
{
    expect_refusal("unresolved", -ENOEXEC, "undefined symbol", "tw_factory_that_does_not_exist");
}
END_TEST

START_TEST(test_a_missing_file_is_refused_with_enoent)
{
    expect_refusal("no-such-module", -ENOENT, "No such file", NULL);
}
END_TEST

START_TEST(test_a_file_that_is_not_a_shared_object_is_refused)
{
    char dir[] = "/tmp/twplugXXXXXX", path[600], err[1024];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/text.so", dir);
    FILE *f = fopen(path, "w");
    fputs("not an ELF file\n", f);
    fclose(f);
    tw_plugin_module *m = NULL;
    ck_assert_int_eq(tw_plugin_load(path, &m, err, sizeof err), -ENOEXEC);
    ck_assert_ptr_nonnull(strstr(err, path));
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_an_abi_1_0_module_is_refused_naming_both_versions)
{
    /* Its make_factory sits where ABI 2 has the type: only the magic and
     * the version, which every major shares, may be read. */
    char ours[32];
    snprintf(ours, sizeof ours, "ABI %d.%d", TW_PLUGIN_ABI_MAJOR, TW_PLUGIN_ABI_MINOR);
    expect_refusal("old", -EINVAL, "ABI 1.0", ours);
}
END_TEST

START_TEST(test_an_amp_commands_module_loads_with_its_context)
{
    char path[512], err[1024] = "";
    module_path(path, sizeof path, "reverse");
    tw_plugin_module *m;
    ck_assert_int_eq(tw_plugin_load(path, &m, err, sizeof err), 0);
    const tw_plugin *p = tw_plugin_module_descriptor(m);
    ck_assert_uint_eq(p->type, TW_PLUGIN_AMP_COMMANDS);
    ck_assert_str_eq(tw_plugin_type_name(p), "AMP commands");
    ck_assert_ptr_null(tw_plugin_context(p, TW_PLUGIN_PROTOCOL));
    const tw_plugin_amp_commands *c = tw_plugin_context(p, TW_PLUGIN_AMP_COMMANDS);
    ck_assert_ptr_nonnull(c);
    tw_factory *f = tw_amp_factory_new();
    tw_amp_dispatcher *d = tw_amp_factory_dispatcher(f);
    size_t before = tw_amp_dispatcher_count(d);
    ck_assert_int_eq(c->register_commands(d, NULL, err, sizeof err), 0);
    ck_assert_uint_eq(tw_amp_dispatcher_count(d), before + 1);
    tw_factory_free(f);
    tw_plugin_module_close(m);
}
END_TEST

static tw_factory *no_factory(tw_reactor *r, const tw_options *o, char *err, size_t errlen)
{
    (void)r;
    (void)o;
    snprintf(err, errlen, "none");
    return NULL;
}

START_TEST(test_a_type_is_checked_for_what_it_requires)
{
    static const tw_plugin_protocol empty = {NULL, NULL}, full = {no_factory, NULL};
    tw_plugin p = {.magic = TW_PLUGIN_MAGIC,
                   .abi_major = TW_PLUGIN_ABI_MAJOR,
                   .abi_minor = TW_PLUGIN_ABI_MINOR,
                   .type = TW_PLUGIN_PROTOCOL,
                   .name = "t",
                   .ctx = &full};
    char err[1024];
    ck_assert_int_eq(tw_plugin_check(&p, "here", err, sizeof err), 0);
    p.ctx = &empty;
    ck_assert_int_eq(tw_plugin_check(&p, "here", err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "here is a protocol module without the make_factory"));
    p.ctx = NULL;
    ck_assert_int_eq(tw_plugin_check(&p, "here", err, sizeof err), -EINVAL);
    p.type = TW_PLUGIN_AMP_COMMANDS;
    ck_assert_int_eq(tw_plugin_check(&p, "here", err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "register_commands"));
    /* a kind of module this twine does not know: no context is guessed at */
    p.type = 99;
    p.ctx = &full;
    ck_assert_int_eq(tw_plugin_check(&p, "here", err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "module type 99"));
    ck_assert_ptr_null(tw_plugin_context(&p, TW_PLUGIN_PROTOCOL));
    ck_assert_str_eq(tw_plugin_type_name(&p), "unknown");
}
END_TEST

START_TEST(test_a_registry_holds_the_builtins_its_caller_registers)
{
    tw_plugin_registry *reg = tw_plugin_registry_new();
    ck_assert_uint_eq(tw_plugin_registry_count(reg), 0);
    const tw_plugin *p;
    char err[1024];
    ck_assert_int_eq(tw_plugin_registry_find(reg, "echo", &p, err, sizeof err), -ENOENT);
    ck_assert_int_eq(tw__builtin_register(reg, err, sizeof err), 0);
    ck_assert_uint_eq(tw_plugin_registry_count(reg), tw__builtin_count());
    const char *origin;
    p = tw_plugin_registry_at(reg, 0, &origin);
    ck_assert_ptr_eq(p, tw__builtin_at(0));
    ck_assert_str_eq(origin, TW_PLUGIN_ORIGIN_BUILTIN);
    ck_assert_ptr_null(tw_plugin_registry_at(reg, tw_plugin_registry_count(reg), NULL));
    /* registered twice, or refused by the checks, it is not added */
    ck_assert_int_eq(tw_plugin_registry_add_builtin(reg, tw__builtin_at(0), err, sizeof err),
                     -EEXIST);
    ck_assert_ptr_nonnull(strstr(err, "registered twice"));
    tw_plugin bad = *tw__builtin_at(0);
    bad.name = "other";
    bad.abi_major = TW_PLUGIN_ABI_MAJOR + 1;
    ck_assert_int_eq(tw_plugin_registry_add_builtin(reg, &bad, err, sizeof err), -EINVAL);
    ck_assert_uint_eq(tw_plugin_registry_count(reg), tw__builtin_count());
    tw_plugin_registry_free(reg);
}
END_TEST

START_TEST(test_a_plugin_path_list_adds_each_directory_in_order)
{
    tw_plugin_registry *reg = new_registry();
    ck_assert_int_eq(tw_plugin_registry_add_dir(reg, "/first"), 0);
    ck_assert_int_eq(tw_plugin_registry_add_path(reg, "/a::/b:"), 0);
    ck_assert_int_eq(tw_plugin_registry_add_path(reg, NULL), 0);
    ck_assert_int_eq(tw_plugin_registry_add_dir(reg, ""), 0);
    ck_assert_uint_eq(tw_plugin_registry_dir_count(reg), 3);
    ck_assert_str_eq(tw_plugin_registry_dir(reg, 0), "/first");
    ck_assert_str_eq(tw_plugin_registry_dir(reg, 1), "/a");
    ck_assert_str_eq(tw_plugin_registry_dir(reg, 2), "/b");
    ck_assert_ptr_null(tw_plugin_registry_dir(reg, 3));
    tw_plugin_registry_free(reg);
}
END_TEST

START_TEST(test_find_prefers_a_builtin)
{
    tw_plugin_registry *reg = new_registry();
    tw_plugin_registry_add_dir(reg, plugin_dir()); /* holds an echo.so */
    const tw_plugin *p;
    char err[1024];
    ck_assert_int_eq(tw_plugin_registry_find(reg, "echo", &p, err, sizeof err), 0);
    ck_assert_ptr_eq(p, tw__builtin_find("echo"));
    tw_plugin_registry_free(reg);
}
END_TEST

START_TEST(test_find_loads_name_dot_so_from_the_search_path)
{
    tw_plugin_registry *reg = new_registry();
    tw_plugin_registry_add_dir(reg, "/nonexistent/twine");
    tw_plugin_registry_add_dir(reg, plugin_dir());
    const tw_plugin *p;
    char err[1024], path[512];
    ck_assert_int_eq(tw_plugin_registry_find(reg, "good", &p, err, sizeof err), 0);
    ck_assert_str_eq(p->name, "good");
    size_t n = tw_plugin_registry_count(reg);
    const char *origin;
    ck_assert_ptr_eq(tw_plugin_registry_at(reg, n - 1, &origin), p);
    module_path(path, sizeof path, "good");
    ck_assert_str_eq(origin, path);
    /* a second find does not load it again */
    ck_assert_int_eq(tw_plugin_registry_find(reg, "good", &p, err, sizeof err), 0);
    ck_assert_uint_eq(tw_plugin_registry_count(reg), n);
    tw_plugin_registry_free(reg);
}
END_TEST

START_TEST(test_the_first_directory_in_the_search_order_wins)
{
    char dir[] = "/tmp/twplugXXXXXX", copy[600], orig[512];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    module_path(orig, sizeof orig, "good");
    snprintf(copy, sizeof copy, "%s/good.so", dir);
    copy_file(orig, copy);
    tw_plugin_registry *reg = new_registry();
    tw_plugin_registry_add_dir(reg, dir);
    tw_plugin_registry_add_dir(reg, plugin_dir());
    const tw_plugin *p;
    char err[1024];
    ck_assert_int_eq(tw_plugin_registry_find(reg, "good", &p, err, sizeof err), 0);
    const char *origin;
    tw_plugin_registry_at(reg, tw_plugin_registry_count(reg) - 1, &origin);
    ck_assert_str_eq(origin, copy);
    /* the later good.so is then a duplicate, naming both files */
    ck_assert_int_eq(tw_plugin_registry_load(reg, orig, NULL, err, sizeof err), -EEXIST);
    ck_assert_ptr_nonnull(strstr(err, orig));
    ck_assert_ptr_nonnull(strstr(err, copy));
    tw_plugin_registry_free(reg);
    unlink(copy);
    rmdir(dir);
}
END_TEST

START_TEST(test_a_module_named_like_a_builtin_is_refused_as_a_duplicate)
{
    tw_plugin_registry *reg = new_registry();
    char path[512], err[1024];
    module_path(path, sizeof path, "echo");
    size_t n = tw_plugin_registry_count(reg);
    ck_assert_int_eq(tw_plugin_registry_load(reg, path, NULL, err, sizeof err), -EEXIST);
    ck_assert_ptr_nonnull(strstr(err, path));
    ck_assert_ptr_nonnull(strstr(err, "'echo'"));
    ck_assert_ptr_nonnull(strstr(err, "built-in"));
    ck_assert_uint_eq(tw_plugin_registry_count(reg), n);
    tw_plugin_registry_free(reg);
}
END_TEST

START_TEST(test_a_module_file_must_be_named_after_its_protocol)
{
    tw_plugin_registry *reg = new_registry();
    tw_plugin_registry_add_dir(reg, plugin_dir());
    const tw_plugin *p;
    char err[1024];
    size_t n = tw_plugin_registry_count(reg);
    ck_assert_int_eq(tw_plugin_registry_find(reg, "alias", &p, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "alias.so"));
    ck_assert_ptr_nonnull(strstr(err, "aliased.so"));
    ck_assert_uint_eq(tw_plugin_registry_count(reg), n);
    tw_plugin_registry_free(reg);
}
END_TEST

START_TEST(test_a_refused_module_is_not_passed_over)
{
    tw_plugin_registry *reg = new_registry();
    tw_plugin_registry_add_dir(reg, plugin_dir());
    const tw_plugin *p;
    char err[1024];
    ck_assert_int_eq(tw_plugin_registry_find(reg, "future", &p, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "future.so"));
    tw_plugin_registry_free(reg);
}
END_TEST

START_TEST(test_an_unknown_protocol_lists_the_registered_ones)
{
    tw_plugin_registry *reg = new_registry();
    const tw_plugin *p;
    char err[1024];
    ck_assert_int_eq(tw_plugin_registry_find(reg, "gopher", &p, err, sizeof err), -ENOENT);
    ck_assert_ptr_nonnull(strstr(err, "unknown protocol 'gopher'"));
    ck_assert_ptr_nonnull(strstr(err, "echo"));
    /* a name that is no file name is never looked up on disk */
    ck_assert_int_eq(tw_plugin_registry_find(reg, "../etc/x", &p, err, sizeof err), -ENOENT);
    tw_plugin_registry_free(reg);
}
END_TEST

typedef struct {
    int count;
    char sentences[16][1024];
} refusals;

static void collect(const char *path, int code, const char *sentence, void *arg)
{
    refusals *r = arg;
    ck_assert_ptr_nonnull(strstr(sentence, path));
    ck_assert_int_lt(code, 0);
    if (r->count < 16)
        snprintf(r->sentences[r->count], sizeof r->sentences[0], "%s", sentence);
    r->count++;
}

static int refused(const refusals *r, const char *needle)
{
    for (int i = 0; i < r->count && i < 16; i++)
        if (strstr(r->sentences[i], needle) != NULL)
            return 1;
    return 0;
}

START_TEST(test_a_scan_registers_the_good_modules_and_reports_the_rest)
{
    tw_plugin_registry *reg = new_registry();
    tw_plugin_registry_add_dir(reg, plugin_dir());
    refusals r = {0};
    size_t n = tw_plugin_registry_scan(reg, collect, &r);
    ck_assert_int_eq((int)n, r.count);
    /* badmagic, future, newer, old, nodescriptor, unresolved, echo, alias */
    ck_assert_int_eq(r.count, 8);
    ck_assert(refused(&r, "old.so"));
    ck_assert(refused(&r, "badmagic.so"));
    ck_assert(refused(&r, "future.so"));
    ck_assert(refused(&r, "newer.so"));
    ck_assert(refused(&r, "nodescriptor.so"));
    ck_assert(refused(&r, "unresolved.so"));
    ck_assert(refused(&r, "echo.so"));
    ck_assert(refused(&r, "alias.so"));
    /* good, reverse and crash (which crashes only when started) */
    ck_assert_uint_eq(tw_plugin_registry_count(reg), tw__builtin_count() + 3);
    const tw_plugin *p;
    char err[1024];
    ck_assert_int_eq(tw_plugin_registry_find(reg, "good", &p, err, sizeof err), 0);
    ck_assert_int_eq(tw_plugin_registry_find(reg, "reverse", &p, err, sizeof err), 0);
    /* a second scan finds nothing new and loads nothing twice */
    r.count = 0;
    tw_plugin_registry_scan(reg, collect, &r);
    ck_assert_uint_eq(tw_plugin_registry_count(reg), tw__builtin_count() + 3);
    tw_plugin_registry_free(reg);
}
END_TEST

static void count_file(const char *path, void *arg)
{
    size_t *n = arg;
    size_t len = strlen(path);
    ck_assert(len > 3 && strcmp(path + len - 3, ".so") == 0);
    (*n)++;
}

START_TEST(test_the_module_files_are_listed_without_being_loaded)
{
    tw_plugin_registry *reg = new_registry();
    tw_plugin_registry_add_dir(reg, plugin_dir());
    size_t seen = 0;
    /* good, old, badmagic, future, newer, nodescriptor, unresolved, echo, alias, crash,
     * reverse */
    ck_assert_uint_eq(tw_plugin_registry_files(reg, count_file, &seen), 11);
    ck_assert_uint_eq(seen, 11);
    ck_assert_uint_eq(tw_plugin_registry_count(reg), tw__builtin_count());
    char path[512], err[1024];
    snprintf(path, sizeof path, "%s/good.so", plugin_dir());
    ck_assert_int_eq(tw_plugin_registry_scan_file(reg, path, err, sizeof err), 0);
    ck_assert_int_eq(tw_plugin_registry_scan_file(reg, path, err, sizeof err), 0);
    ck_assert_uint_eq(tw_plugin_registry_count(reg), tw__builtin_count() + 1);
    snprintf(path, sizeof path, "%s/alias.so", plugin_dir());
    ck_assert_int_eq(tw_plugin_registry_scan_file(reg, path, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "alias.so declares protocol 'aliased'"));
    ck_assert_uint_eq(tw_plugin_registry_count(reg), tw__builtin_count() + 1);
    tw_plugin_registry_free(reg);
}
END_TEST

START_TEST(test_the_installed_directory_is_compiled_in)
{
    const char *d = tw_plugin_installed_dir();
    ck_assert(d[0] == '/');
    size_t n = strlen(d);
    ck_assert(n > 10 && strcmp(d + n - 10, "/protocols") == 0);
}
END_TEST

static Suite *plugin_suite(void)
{
    Suite *s = suite_create("plugin");
    TCase *tc = tcase_create("load");
    tcase_add_test(tc, test_a_good_module_loads_with_its_descriptor);
    tcase_add_test(tc, test_a_good_module_makes_a_factory_from_parsed_options);
    tcase_add_test(tc, test_a_wrong_magic_is_refused_naming_both_magics);
    tcase_add_test(tc, test_a_newer_major_abi_is_refused_naming_both_versions);
    tcase_add_test(tc, test_a_newer_minor_abi_is_refused_naming_both_versions);
    tcase_add_test(tc, test_a_missing_descriptor_symbol_is_refused);
    tcase_add_test(tc, test_an_unresolved_symbol_is_refused_at_load_time);
    tcase_add_test(tc, test_a_missing_file_is_refused_with_enoent);
    tcase_add_test(tc, test_a_file_that_is_not_a_shared_object_is_refused);
    tcase_add_test(tc, test_an_abi_1_0_module_is_refused_naming_both_versions);
    tcase_add_test(tc, test_an_amp_commands_module_loads_with_its_context);
    tcase_add_test(tc, test_a_type_is_checked_for_what_it_requires);
    suite_add_tcase(s, tc);
    tc = tcase_create("registry");
    tcase_add_test(tc, test_a_registry_holds_the_builtins_its_caller_registers);
    tcase_add_test(tc, test_a_plugin_path_list_adds_each_directory_in_order);
    tcase_add_test(tc, test_find_prefers_a_builtin);
    tcase_add_test(tc, test_find_loads_name_dot_so_from_the_search_path);
    tcase_add_test(tc, test_the_first_directory_in_the_search_order_wins);
    tcase_add_test(tc, test_a_module_named_like_a_builtin_is_refused_as_a_duplicate);
    tcase_add_test(tc, test_a_module_file_must_be_named_after_its_protocol);
    tcase_add_test(tc, test_a_refused_module_is_not_passed_over);
    tcase_add_test(tc, test_an_unknown_protocol_lists_the_registered_ones);
    tcase_add_test(tc, test_a_scan_registers_the_good_modules_and_reports_the_rest);
    tcase_add_test(tc, test_the_module_files_are_listed_without_being_loaded);
    tcase_add_test(tc, test_the_installed_directory_is_compiled_in);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(plugin_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
