/* SPDX-License-Identifier: MIT */
/*
 * The crash guard around module code. Loading a module runs its
 * constructors and starting it runs its make_factory, inside reactord; a
 * crash there is the module's, and the operator must learn which module
 * and how, in one sentence and exit code 70, on the terminal (or the
 * daemon's status pipe) and in the log, not from a bare SIGSEGV and an
 * empty log. The sentences are composed before the guarded code runs, so
 * the handler only writes them; it runs on its own stack, so a module that
 * overflowed its stack is reported too.
 */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "reactord.h"

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
#define NFATAL (sizeof fatal_signals / sizeof *fatal_signals)
static char crash_sentence[NFATAL][768];
static struct sigaction crash_saved[NFATAL];

static void on_crash(int sig)
{
    for (size_t i = 0; i < NFATAL; i++)
        if (fatal_signals[i] == sig)
            rd_status_crash(EX_SOFTWARE, crash_sentence[i]);
    _exit(EX_SOFTWARE);
}

void rd_guard_begin(const char *what)
{
    static char altstack[1 << 16];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_crash;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND;
    for (size_t i = 0; i < NFATAL; i++) {
        snprintf(crash_sentence[i], sizeof crash_sentence[i],
                 "%s crashed with signal %d (%s); reactord stopped", what, fatal_signals[i],
                 strsignal(fatal_signals[i]));
        sigaction(fatal_signals[i], &sa, &crash_saved[i]);
    }
}

void rd_guard_end(void)
{
    for (size_t i = 0; i < NFATAL; i++)
        sigaction(fatal_signals[i], &crash_saved[i], NULL);
}
