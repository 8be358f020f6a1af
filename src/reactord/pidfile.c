/* SPDX-License-Identifier: MIT */
/*
 * The pidfile: one file holding the process id that init scripts and
 * operators signal. Two servers must not share one, and a crash must not
 * lock the service out, so an existing pidfile is probed with kill(pid, 0):
 * a live process (or one we may not signal, EPERM, which is alive too)
 * makes start-up fail, a dead one (ESRCH) is a stale file, removed with a
 * log line. The file is written under a temporary name and linked into
 * place, so no one ever reads a half-written pidfile, and two servers
 * starting at once cannot both win.
 *
 * reactord often writes it as root into a directory that the --user
 * account can write, so nothing that account plants there may be
 * followed: the temporary name is unpredictable and created exclusively
 * (mkstemp), link() never follows or replaces what is at the pidfile's
 * name, and an existing pidfile is read without following a symbolic link
 * and only if it is a regular file. A directory that every user may write
 * without the sticky bit is refused: there, anyone could swap the file.
 *
 * Only the process that created the file removes it, and only while it
 * still holds that process's id: worker processes forked later, or a file
 * replaced by someone else, are left alone.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <sys/stat.h>
#include <unistd.h>

#include "reactord.h"

static char *owned_path;
static pid_t owner;

/* @return the pid in @p path; 0 when it holds none; -errno when unreadable
 * (-ELOOP for a symbolic link, -EISDIR or -EINVAL when not a regular file). */
static long read_pid(const char *path)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        int e = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        close(fd);
        return -e;
    }
    char buf[32];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    if (end == buf || (*end != '\0' && *end != '\n') || pid <= 0)
        return 0;
    return pid;
}

static int create_code(int e)
{
    return e == EACCES || e == EPERM || e == EROFS || e == ENOENT || e == ENOTDIR ||
                   e == EISDIR || e == ELOOP || e == EINVAL
               ? EX_CANTCREAT
               : EX_OSERR;
}

/* Refuse a directory where another user could replace the pidfile. */
static int check_directory(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 1 : slash == path ? 1 : (size_t)(slash - path);
    if (n >= sizeof dir)
        return rd_error(EX_USAGE, "the pidfile path %s is too long", path);
    memcpy(dir, slash == NULL ? "." : path, n);
    dir[n] = '\0';
    struct stat st;
    if (stat(dir, &st) < 0)
        return rd_error(create_code(errno), "cannot create the pidfile %s: %s", path,
                        strerror(errno));
    if ((st.st_mode & S_IWOTH) && !(st.st_mode & S_ISVTX))
        return rd_error(EX_CANTCREAT,
                        "refusing to create the pidfile %s: its directory %s is writable by "
                        "every user and has no sticky bit, so any of them could replace it",
                        path, dir);
    return 0;
}

static int write_new(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.XXXXXX", path) >= (int)sizeof tmp)
        return rd_error(EX_USAGE, "the pidfile path %s is too long", path);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return rd_error(create_code(errno), "cannot create the pidfile %s: %s", path,
                        strerror(errno));
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    ssize_t w = fchmod(fd, 0644) < 0 ? -1 : write(fd, buf, (size_t)n);
    int e = errno;
    close(fd);
    if (w != n) {
        unlink(tmp);
        return rd_error(EX_IOERR, "cannot write the pidfile %s: %s", path,
                        w < 0 ? strerror(e) : "short write");
    }
    /* link() fails with EEXIST rather than replacing or following whatever
     * is at @p path: creation is atomic. */
    int rc = link(tmp, path) < 0 ? -errno : 0;
    unlink(tmp);
    return rc;
}

int rd_pidfile_acquire(const char *path)
{
    int rc = check_directory(path);
    if (rc != 0)
        return rc;
    for (int attempt = 0; attempt < 5; attempt++) {
        rc = write_new(path);
        if (rc > 0)
            return rc; /* a code from rd_error() */
        if (rc == 0) {
            owned_path = strdup(path);
            owner = getpid();
            if (owned_path == NULL) {
                unlink(path);
                return rd_error(EX_OSERR, "out of memory recording the pidfile");
            }
            return 0;
        }
        if (rc != -EEXIST)
            return rd_error(create_code(-rc), "cannot create the pidfile %s: %s", path,
                            strerror(-rc));
        long pid = read_pid(path);
        if (pid == -ENOENT)
            continue; /* removed meanwhile */
        if (pid == -ELOOP || pid == -EISDIR || pid == -EINVAL)
            return rd_error(EX_CANTCREAT,
                            "cannot create the pidfile %s: something other than a pidfile is "
                            "there (%s); remove it or choose another --pidfile",
                            path, pid == -ELOOP ? "a symbolic link" : pid == -EISDIR ? "a directory"
                                                                                     : "not a regular file");
        if (pid < 0)
            return rd_error(EX_NOPERM, "cannot read the existing pidfile %s: %s", path,
                            strerror((int)-pid));
        if (pid > 0 && pid != (long)getpid()) {
            if (kill((pid_t)pid, 0) == 0)
                return rd_error(EX_UNAVAILABLE,
                                "the pidfile %s belongs to process %ld, which is still running; "
                                "stop it or choose another --pidfile",
                                path, pid);
            if (errno == EPERM)
                return rd_error(EX_UNAVAILABLE,
                                "the pidfile %s belongs to process %ld, which is still running "
                                "as another user; stop it or choose another --pidfile",
                                path, pid);
        }
        if (pid > 0)
            tw_log(TW_LOG_WARN, "reactord",
                   "removing the stale pidfile %s: process %ld is no longer running", path, pid);
        else
            tw_log(TW_LOG_WARN, "reactord",
                   "removing the stale pidfile %s: it holds no process id", path);
        if (unlink(path) < 0 && errno != ENOENT)
            return rd_error(create_code(errno), "cannot remove the stale pidfile %s: %s", path,
                            strerror(errno));
    }
    return rd_error(EX_TEMPFAIL, "the pidfile %s keeps being recreated by another process",
                    path);
}

void rd_pidfile_release(void)
{
    if (owned_path == NULL)
        return;
    if (owner == getpid()) {
        if (read_pid(owned_path) == (long)owner && unlink(owned_path) < 0)
            tw_log(TW_LOG_WARN, "reactord", "cannot remove the pidfile %s: %s", owned_path,
                   strerror(errno));
    }
    free(owned_path);
    owned_path = NULL;
}
