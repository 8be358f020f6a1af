/* SPDX-License-Identifier: MIT */
/*
 * A module whose descriptor has the wrong magic, as a stray shared object
 * or a corrupted build would: the loader must refuse it without reading any
 * other field.
 */
#include <twine.h>

TW_API const tw_plugin tw_plugin_descriptor = {
    .magic = 0x12345678u,
    .abi_major = TW_PLUGIN_ABI_MAJOR,
    .abi_minor = TW_PLUGIN_ABI_MINOR,
    .name = "badmagic",
    .description = "has the wrong magic",
};
