/* SPDX-License-Identifier: MIT */
/*
 * A module built for a newer minor ABI of the same major: it may have
 * fields this twine would ignore, so it is refused too, naming both versions.
 */
#include <twine.h>

TW_API const tw_plugin tw_plugin_descriptor = {
    .magic = TW_PLUGIN_MAGIC,
    .abi_major = TW_PLUGIN_ABI_MAJOR,
    .abi_minor = TW_PLUGIN_ABI_MINOR + 1,
    .name = "newer",
    .description = "built for a newer minor ABI",
};
