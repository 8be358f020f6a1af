/* SPDX-License-Identifier: MIT */
/*
 * Where reactord's log goes. It is libtwine's one log sink, configured once
 * at start-up: level and format first, so that even start-up messages come
 * out as asked, then the file, which is opened before privileges are given
 * up (a log directory is often root's). On SIGHUP or SIGUSR1 the file is
 * opened again by name, which is all logrotate needs: it renames the old
 * file, and the next record lands in a new one. With --user, the file is
 * given to that user when it is opened, as nginx does, since that user's
 * processes reopen it and logrotate's `create` copies the old owner.
 *
 * A fatal sentence is logged too (rd_logging_fatal), in the configured
 * format, opening the file if start-up failed before it was opened.
 *
 * Under systemd, standard error is often the journal, which stamps each
 * line with its own time and reads a "<N>" prefix as its syslog priority.
 * systemd says so with JOURNAL_STREAM=DEV:INODE, the identity of that
 * stream; when it matches stderr (it may have been redirected since, and a
 * child inherits the variable, not the stream), text records there become
 * "<N>system: message", so `journalctl -p err` finds the errors. With
 * --syslog, records go to syslog(3) instead, as twistd's --syslog does,
 * with facility daemon and the pid in each.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <syslog.h>
#include <unistd.h>

#include "reactord.h"

/* Workers share the supervisor's log; their records say whose they are. */
static char system_name[32] = "reactord";
static const char *log_path; /* --logfile, NULL or "-" for standard error */
static tw_log_format log_format;
static int to_file;
static int to_journal; /* stderr is the journal: lines carry "<N>" */
static int to_syslog;

void rd_logging_name_process(const char *name)
{
    snprintf(system_name, sizeof system_name, "%s", name);
}

const char *rd_logging_system(void)
{
    return system_name;
}

/* Syslog's priority of a record: also the journal's "<N>". */
static int priority(tw_log_level level)
{
    switch (level) {
    case TW_LOG_ERROR:
        return LOG_ERR;
    case TW_LOG_WARN:
        return LOG_WARNING;
    case TW_LOG_INFO:
        return LOG_INFO;
    default:
        return LOG_DEBUG;
    }
}

/* Whether JOURNAL_STREAM names the stream that stderr is now. */
static int stderr_is_journal(void)
{
    const char *v = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    char end;
    struct stat st;
    if (v == NULL || sscanf(v, "%llu:%llu%c", &dev, &ino, &end) != 2 || fstat(2, &st) < 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* One record, one write(2), as libtwine's own sink does, so records from
 * several threads or workers never interleave. */
static void journal_sink(tw_log_level level, const char *subsystem, const char *message,
                         void *arg)
{
    (void)arg;
    char line[2048];
    int n = snprintf(line, sizeof line - 1, "<%d>%s: %s", priority(level), subsystem, message);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    /* One record, one journal entry: a newline would start another, at the
     * default priority. */
    for (size_t i = 0; i < len; i++)
        if (line[i] == '\n')
            line[i] = ' ';
    line[len++] = '\n';
    ssize_t w;
    do
        w = write(2, line, len);
    while (w < 0 && errno == EINTR);
}

static void syslog_sink(tw_log_level level, const char *subsystem, const char *message,
                        void *arg)
{
    (void)arg;
    syslog(priority(level), "%s: %s", subsystem, message);
}

void rd_logging_configure(const rd_config *cfg)
{
    tw_log_set_level(cfg->log_level);
    tw_log_set_format(cfg->log_format);
    log_format = cfg->log_format;
    log_path = cfg->logfile != NULL && strcmp(cfg->logfile, "-") != 0 ? cfg->logfile : NULL;
    if (cfg->syslog) {
        /* Connected at the first record, so the daemon's closing of what it
         * inherited cannot leave syslog writing into a reused descriptor. */
        openlog("reactord", LOG_PID, LOG_DAEMON);
        to_syslog = 1;
        tw_log_set_handler(syslog_sink, NULL);
    } else if (log_path == NULL && log_format == TW_LOG_TEXT && stderr_is_journal()) {
        to_journal = 1;
        tw_log_set_handler(journal_sink, NULL);
    }
}

const char *rd_logging_error_prefix(void)
{
    return to_journal ? "<3>" : "";
}

void rd_logging_detached(void)
{
    if (to_syslog)
        closelog(); /* its socket, if open, was closed with the rest */
    /* stderr is /dev/null now: the "<N>" lines would go nowhere either way */
}

/* @return 0 or a negated errno, recording nothing: the fatal path uses it. */
static int open_file(void)
{
    /* Absolute, so reopening after --chdir opens the same file. */
    char *abs = rd_absolute_path(log_path);
    if (abs == NULL)
        return -ENOMEM;
    int rc = tw_log_set_file(abs);
    free(abs);
    to_file = rc == 0;
    return rc;
}

int rd_logging_open(const rd_credentials *owner)
{
    if (log_path == NULL)
        return 0;
    /* The --user account must be able to reopen the file after logrotate
     * moved it, and logrotate's `create` copies the old file's owner. */
    if (owner != NULL && owner->change && geteuid() == 0)
        tw_log_set_owner(owner->uid, owner->gid);
    int rc = to_file ? 0 : open_file();
    if (rc < 0)
        return rd_error(rc == -ENOMEM ? EX_OSERR : EX_CANTCREAT,
                        "cannot open the log file %s: %s", log_path, tw_strerror(rc));
    return 0;
}

int rd_logging_fatal(const char *sentence)
{
    if (!to_file && log_path != NULL)
        open_file(); /* it failed before the log was opened; if it cannot be, stderr has it */
    if (to_file || to_syslog || log_format == TW_LOG_JSON)
        tw_log(TW_LOG_ERROR, system_name, "%s", sentence);
    return !to_file && !to_syslog && log_format == TW_LOG_JSON;
}

const char *rd_signal_name(int sig)
{
    switch (sig) {
    case SIGTERM:
        return "SIGTERM";
    case SIGINT:
        return "SIGINT";
    case SIGQUIT:
        return "SIGQUIT";
    case SIGHUP:
        return "SIGHUP";
    case SIGUSR1:
        return "SIGUSR1";
    case SIGUSR2:
        return "SIGUSR2";
    default:
        return "a signal";
    }
}

void rd_logging_reopen(int sig)
{
    const char *name = rd_signal_name(sig);
    if (!to_file) {
        tw_log(TW_LOG_INFO, system_name, "%s: logging to %s, nothing to reopen", name,
               to_syslog ? "syslog" : "standard error");
        return;
    }
    int rc = tw_log_reopen();
    if (rc < 0)
        tw_log(TW_LOG_ERROR, system_name, "%s: cannot reopen the log file: %s; still "
                                         "writing to the old one", name, tw_strerror(rc));
    else
        tw_log(TW_LOG_INFO, system_name, "%s: reopened the log file", name);
}
