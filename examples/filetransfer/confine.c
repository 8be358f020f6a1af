/* SPDX-License-Identifier: MIT */
/*
 * Keeping the filetransfer module inside its root directory. A client's
 * name is a relative path; it is resolved one component at a time with
 * openat(O_NOFOLLOW) from a descriptor of the root, never as a string
 * handed to open(), so there is no "../", no absolute path and no symbolic
 * link (inside or out) that can lead anywhere else, and no window between a
 * check and a use for a link to appear in.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ft.h"

static int refuse(char *why, size_t len, const char *fmt, ...) TW_PRINTF(3, 4);
static int refuse(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return -1;
}

int ft_resolve(int root, const char *name, int *dir, char leaf[FT_LEAF_MAX + 1], char *why,
               size_t whylen)
{
    char copy[FT_NAME_MAX + 1];
    size_t len = strlen(name);
    if (len == 0 || name[0] == '/')
        return refuse(why, whylen, "'%s' is not a relative path", name);
    if (len > FT_NAME_MAX)
        return refuse(why, whylen, "'%.64s...' is too long", name);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < ' ' || name[i] == 0x7f)
            return refuse(why, whylen, "'%s' holds a control character", name);
    memcpy(copy, name, len + 1);

    int fd = openat(root, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return refuse(why, whylen, "the root directory cannot be opened for '%s'", name);
    for (char *part = copy;;) {
        char *slash = strchr(part, '/');
        if (slash != NULL)
            *slash = '\0';
        if (part[0] == '\0' || strcmp(part, ".") == 0 || strcmp(part, "..") == 0) {
            close(fd);
            return refuse(why, whylen, "'%s' has an empty, '.' or '..' component", name);
        }
        if (slash == NULL) {
            if (strlen(part) > FT_LEAF_MAX) {
                close(fd);
                return refuse(why, whylen, "'%s' ends in a name that is too long", name);
            }
            strcpy(leaf, part);
            *dir = fd;
            return 0;
        }
        /* O_NOFOLLOW: a link to a directory is refused, not crossed. */
        int next = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int err = errno;
        close(fd);
        if (next < 0)
            return refuse(why, whylen,
                          err == ENOENT ? "'%s': no such directory beneath the root"
                                        : "'%s': a component is not a directory (links are not "
                                          "followed)",
                          name);
        fd = next;
        part = slash + 1;
    }
}
