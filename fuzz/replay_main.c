/* SPDX-License-Identifier: MIT */
/*
 * A main() for a fuzz harness built without libFuzzer: it feeds files to
 * LLVMFuzzerTestOneInput once each, so that make check replays the seed
 * corpora and the saved regressions with the ordinary compiler, and a
 * crash found by the fuzzer can be rerun under gdb or valgrind.
 *
 *   replay_NAME [FILE|DIR]...   every file given, and every file in each DIR
 *   replay_NAME                 $TWINE_SRCDIR (or $srcdir, or .) fuzz/corpus/NAME,
 *                               which must hold inputs, and fuzz/regressions/NAME
 *
 * NAME comes from -DFUZZ_NAME. A broken invariant aborts, so the program
 * fails as a test; otherwise it says how many inputs it replayed.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

#ifndef FUZZ_NAME
#define FUZZ_NAME "harness"
#endif

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t len = 0, cap = 4096;
    uint8_t *buf = malloc(cap);
    size_t n;
    while (buf != NULL && (n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            uint8_t *more = realloc(buf, cap * 2);
            if (more == NULL) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = more;
            cap *= 2;
        }
    }
    int bad = ferror(f) || buf == NULL;
    fclose(f);
    if (bad) {
        fprintf(stderr, "replay: %s: cannot read it\n", path);
        free(buf);
        return -1;
    }
    LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replay @p path, a file or a directory of files (sorted, not recursive). */
static long replay_path(const char *path, int must_exist)
{
    struct stat st;
    if (stat(path, &st) < 0) {
        if (!must_exist && errno == ENOENT)
            return 0;
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode))
        return replay_file(path) < 0 ? -1 : 1;

    DIR *d = opendir(path);
    if (d == NULL) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t count = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strcmp(e->d_name, "README") == 0)
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 64;
            char **more = realloc(names, cap * sizeof *names);
            if (more == NULL)
                break;
            names = more;
        }
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        if ((names[count] = malloc(len)) == NULL)
            break;
        snprintf(names[count], len, "%s/%s", path, e->d_name);
        count++;
    }
    closedir(d);
    if (count > 0)
        qsort(names, count, sizeof *names, by_name);
    long done = 0;
    for (size_t i = 0; i < count; i++) {
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
            if (replay_file(names[i]) < 0)
                done = -1;
            else if (done >= 0)
                done++;
        }
        free(names[i]);
    }
    free(names);
    return done;
}

int main(int argc, char **argv)
{
    long total = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++) {
            long n = replay_path(argv[i], 1);
            if (n < 0)
                return 1;
            total += n;
        }
    } else {
        const char *top = getenv("TWINE_SRCDIR");
        if (top == NULL || *top == '\0')
            top = getenv("srcdir");
        if (top == NULL || *top == '\0')
            top = ".";
        char path[4096];
        snprintf(path, sizeof path, "%s/fuzz/corpus/%s", top, FUZZ_NAME);
        long n = replay_path(path, 1);
        if (n <= 0) {
            fprintf(stderr, "replay: %s holds no inputs\n", path);
            return 1;
        }
        total += n;
        snprintf(path, sizeof path, "%s/fuzz/regressions/%s", top, FUZZ_NAME);
        if ((n = replay_path(path, 0)) < 0)
            return 1;
        total += n;
    }
    printf("fuzz_%s: %ld inputs replayed, every invariant held\n", FUZZ_NAME, total);
    return 0;
}
