# SPDX-License-Identifier: MIT
# AX_PTHREAD_SIMPLE: find the flags that make POSIX threads work.
# Sets PTHREAD_CFLAGS and PTHREAD_LIBS; fails with one sentence if none do.
AC_DEFUN([AX_PTHREAD_SIMPLE], [
  AC_MSG_CHECKING([for POSIX threads])
  tw_save_CFLAGS=$CFLAGS
  tw_save_LIBS=$LIBS
  CFLAGS="$CFLAGS -pthread"
  LIBS="$LIBS -pthread"
  AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <pthread.h>]],
      [[pthread_t t; pthread_create(&t, 0, 0, 0); pthread_join(t, 0);]])],
    [PTHREAD_CFLAGS=-pthread; PTHREAD_LIBS=-pthread; AC_MSG_RESULT([-pthread])],
    [AC_MSG_RESULT([no]); AC_MSG_ERROR([POSIX threads are required but -pthread does not link.])])
  CFLAGS=$tw_save_CFLAGS
  LIBS=$tw_save_LIBS
  AC_SUBST([PTHREAD_CFLAGS])
  AC_SUBST([PTHREAD_LIBS])
])
