/* SPDX-License-Identifier: MIT */
/*
 * The socket file a UNIX listener or UNIX datagram port binds: clearing a
 * stale one before binding, and removing the file when its owner stops --
 * only if it is still the file that owner created, since a server started
 * since may own the path. Abstract names (Linux) have no file.
 */
#ifndef TWINE_UNIXFILE_INTERNAL_H
#define TWINE_UNIXFILE_INTERNAL_H

#include <sys/types.h>
#include <twine/address.h>

/* A socket file that its owner created and removes when it stops. */
typedef struct tw__unix_file {
    int owned;
    dev_t dev;
    ino_t ino;
} tw__unix_file;

/* A UNIX address naming a file (not an abstract name, and terminated
 * within the address): its path, or NULL. */
const char *tw__unix_path(const tw_address *addr);

/*
 * Make way for binding a socket of @p type (SOCK_STREAM, SOCK_DGRAM) at the
 * file of @p addr: nothing there, or a socket nobody answers on (connect
 * is refused), which is removed.
 * @return 0, -EADDRINUSE for a live socket or a file that is no socket
 *         (with *@p why saying which), or another negated errno.
 */
int tw__unix_clear_stale(const tw_address *addr, int type, const char **why);

/* After bind(): set @p mode (-1: leave the umask's) on the file at @p path
 * and remember which file it is. @return 0 or a negated errno. */
int tw__unix_file_claim(tw__unix_file *f, const char *path, int mode);

/* The owner stops: remove the file at @p path if it is still the one
 * claimed. Idempotent. */
void tw__unix_file_remove(tw__unix_file *f, const char *path);

#endif
