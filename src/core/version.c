/* SPDX-License-Identifier: MIT */
/* The library's own idea of its version, for programs to compare with the
 * TW_VERSION_STRING they were compiled against. */
#include "config.h"

#include <twine/version.h>

TW_API const char *tw_version(void)
{
    return PACKAGE_VERSION;
}
