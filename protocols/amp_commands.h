/* SPDX-License-Identifier: MIT */
/*
 * The commands the amp module answers (see amp.c), declared once for the
 * module and for code that calls it in-process, the way a Twisted project
 * keeps its Command classes in one module that both sides import.
 */
#ifndef TWINE_PROTOCOLS_AMP_COMMANDS_H
#define TWINE_PROTOCOLS_AMP_COMMANDS_H

#include <twine/amp.h>

/* The longest Delay accepted: a day. Longer ones only pin memory. */
#define AMP_MAX_DELAY 86400.0

extern const tw_amp_command amp_echo_command, amp_sum_command, amp_divide_command,
    amp_time_command, amp_delay_command;

#endif
