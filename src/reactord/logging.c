/* SPDX-License-Identifier: MIT */
/*
 * Where reactord's log goes. It is libtwine's one log sink, configured once
 * at start-up: level and format first, so that even start-up messages come
 * out as asked, then the file, which is opened before privileges are given
 * up (a log directory is often root's). On SIGHUP the file is opened again
 * by name, which is all logrotate needs: it renames the old file, and the
 * next record lands in a new one.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "reactord.h"

/* Workers share the supervisor's log; their records say whose they are. */
static char system_name[32] = "reactord";
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
}

int rd_logging_open(const char *path)
{
    if (path == NULL || strcmp(path, "-") == 0)
        return 0;
    /* Absolute, so SIGHUP after --chdir reopens the same file. */
    char *abs = rd_absolute_path(path);
    if (abs == NULL)
        return rd_error(EX_OSERR, "out of memory opening the log file %s", path);
    int rc = tw_log_set_file(abs);
    free(abs);
    if (rc < 0)
        return rd_error(EX_CANTCREAT, "cannot open the log file %s: %s", path, tw_strerror(rc));
    to_file = 1;
    return 0;
}

void rd_logging_reopen(void)
{
    if (!to_file) {
        tw_log(TW_LOG_INFO, system_name, "SIGHUP: logging to standard error, nothing to reopen");
        return;
    }
    int rc = tw_log_reopen();
    if (rc < 0)
        tw_log(TW_LOG_ERROR, system_name, "SIGHUP: cannot reopen the log file: %s; still "
                                         "writing to the old one", tw_strerror(rc));
    else
        tw_log(TW_LOG_INFO, system_name, "SIGHUP: reopened the log file");
}
