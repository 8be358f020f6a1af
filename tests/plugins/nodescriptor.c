/* SPDX-License-Identifier: MIT */
/*
 * A shared object that loads fine but is no protocol module: it exports no
 * tw_plugin_descriptor.
 */
#include <twine.h>

TW_API int nodescriptor_answer(void);

TW_API int nodescriptor_answer(void)
{
    return 42;
}
