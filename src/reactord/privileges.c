/* SPDX-License-Identifier: MIT */
/*
 * Giving up privileges. reactord binds its endpoints first (so ports below
 * 1024 work when started as root), then switches user and group for good:
 * supplementary groups, then the group, then the user, in the only order in
 * which each step is still permitted. Running on with the wrong identity is
 * worse than not running, so a step that fails, or a switch that can be
 * undone, stops the start-up.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "reactord.h"

static int numeric_id(const char *s, unsigned long *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v >= (unsigned long)UINT_MAX)
        return -1;
    *out = v;
    return 0;
}

int rd_credentials_resolve(const rd_config *cfg, rd_credentials *out)
{
    memset(out, 0, sizeof *out);
    out->uid = getuid();
    out->gid = getgid();
    if (cfg->user == NULL && cfg->group == NULL)
        return 0;
    out->change = 1;
    if (cfg->user != NULL) {
        struct passwd *pw = getpwnam(cfg->user);
        unsigned long id;
        if (pw == NULL && numeric_id(cfg->user, &id) == 0)
            pw = getpwuid((uid_t)id);
        if (pw == NULL)
            return rd_error(EX_NOUSER, "unknown user '%s': no such user in the password database",
                            cfg->user);
        out->uid = pw->pw_uid;
        out->gid = pw->pw_gid;
        /* initgroups() needs the name; the passwd buffer is reused by libc. */
        out->user = strdup(pw->pw_name);
        if (out->user == NULL)
            return rd_error(EX_OSERR, "out of memory looking up user '%s'", cfg->user);
    }
    if (cfg->group != NULL) {
        struct group *gr = getgrnam(cfg->group);
        unsigned long id;
        if (gr == NULL && numeric_id(cfg->group, &id) == 0)
            gr = getgrgid((gid_t)id);
        if (gr == NULL)
            return rd_error(EX_NOUSER, "unknown group '%s': no such group in the group database",
                            cfg->group);
        out->gid = gr->gr_gid;
    }
    return 0;
}

int rd_credentials_apply(const rd_credentials *c)
{
    if (!c->change)
        return 0;
    /* Nothing to give up: asking anyway would fail for an unprivileged user. */
    if (geteuid() != 0 && c->uid == geteuid() && c->uid == getuid() && c->gid == getegid() &&
        c->gid == getgid())
        return 0;
    const char *who = c->user != NULL ? c->user : "the same user";
    if (c->user != NULL) {
        if (initgroups(c->user, c->gid) < 0)
            return rd_error(errno == EPERM ? EX_NOPERM : EX_OSERR,
                            "cannot take the groups of user '%s': %s", c->user, strerror(errno));
    } else if (setgroups(1, &c->gid) < 0) {
        return rd_error(errno == EPERM ? EX_NOPERM : EX_OSERR,
                        "cannot drop the supplementary groups: %s", strerror(errno));
    }
    if (setgid(c->gid) < 0)
        return rd_error(errno == EPERM ? EX_NOPERM : EX_OSERR, "cannot switch to group %u: %s",
                        (unsigned)c->gid, strerror(errno));
    if (c->user != NULL && setuid(c->uid) < 0)
        return rd_error(errno == EPERM ? EX_NOPERM : EX_OSERR, "cannot switch to user '%s': %s",
                        c->user, strerror(errno));
    /* Check what the kernel says, and that there is no way back. */
    if (getgid() != c->gid || getegid() != c->gid ||
        (c->user != NULL && (getuid() != c->uid || geteuid() != c->uid)))
        return rd_error(EX_NOPERM, "switching to %s and group %u did not take effect", who,
                        (unsigned)c->gid);
    if (c->user != NULL && c->uid != 0 && setuid(0) == 0)
        return rd_error(EX_NOPERM, "switched to user '%s', but could switch back to root",
                        c->user);
    tw_log(TW_LOG_INFO, rd_logging_system(), "running as uid %u, gid %u", (unsigned)getuid(),
           (unsigned)getgid());
    return 0;
}

char *rd_absolute_path(const char *path)
{
    if (path[0] == '/')
        return strdup(path);
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL)
        return NULL;
    size_t n = strlen(cwd) + strlen(path) + 2;
    char *s = malloc(n);
    if (s != NULL)
        snprintf(s, n, "%s/%s", cwd, path);
    return s;
}
