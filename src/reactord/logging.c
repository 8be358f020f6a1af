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
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "reactord.h"

/* Workers share the supervisor's log; their records say whose they are. */
static char system_name[32] = "reactord";
static const char *log_path; /* --logfile, NULL or "-" for standard error */
static tw_log_format log_format;
static int to_file;

void rd_logging_name_process(const char *name)
{
    snprintf(system_name, sizeof system_name, "%s", name);
}

const char *rd_logging_system(void)
{
    return system_name;
}

void rd_logging_configure(const rd_config *cfg)
{
    tw_log_set_level(cfg->log_level);
    tw_log_set_format(cfg->log_format);
    log_format = cfg->log_format;
    log_path = cfg->logfile != NULL && strcmp(cfg->logfile, "-") != 0 ? cfg->logfile : NULL;
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
    if (to_file || log_format == TW_LOG_JSON)
        tw_log(TW_LOG_ERROR, system_name, "%s", sentence);
    return !to_file && log_format == TW_LOG_JSON;
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
        tw_log(TW_LOG_INFO, system_name, "%s: logging to standard error, nothing to reopen",
               name);
        return;
    }
    int rc = tw_log_reopen();
    if (rc < 0)
        tw_log(TW_LOG_ERROR, system_name, "%s: cannot reopen the log file: %s; still "
                                         "writing to the old one", name, tw_strerror(rc));
    else
        tw_log(TW_LOG_INFO, system_name, "%s: reopened the log file", name);
}
