/* SPDX-License-Identifier: MIT */
/*
 * A module built for a future major ABI, whose descriptor layout this twine
 * cannot know: the loader must refuse it, naming both versions.
 */
#include <twine.h>

TW_API const tw_plugin tw_plugin_descriptor = {
    .magic = TW_PLUGIN_MAGIC,
    .abi_major = TW_PLUGIN_ABI_MAJOR + 1,
    .abi_minor = 0,
    .name = "future",
    .description = "built for the next major ABI",
};
