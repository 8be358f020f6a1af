/* SPDX-License-Identifier: MIT */
/*
 * The amp module's commands: see amp_commands.h.
 */
#include "amp_commands.h"

const tw_amp_command amp_echo_command = {
    .name = "Echo",
    .arguments = (const tw_amp_arg[]){{"value", TW_AMP_T_STRING, 0}, {NULL, NULL, 0}},
    .response = (const tw_amp_arg[]){{"value", TW_AMP_T_STRING, 0}, {NULL, NULL, 0}},
};

const tw_amp_command amp_sum_command = {
    .name = "Sum",
    .arguments = (const tw_amp_arg[]){{"a", TW_AMP_T_INTEGER, 0},
                                      {"b", TW_AMP_T_INTEGER, 0},
                                      {NULL, NULL, 0}},
    .response = (const tw_amp_arg[]){{"total", TW_AMP_T_INTEGER, 0}, {NULL, NULL, 0}},
    .errors = (const tw_amp_error_spec[]){{"OVERFLOW", "the numbers do not fit in 64 bits", 0},
                                          {NULL, NULL, 0}},
};

const tw_amp_command amp_divide_command = {
    .name = "Divide",
    .arguments = (const tw_amp_arg[]){{"numerator", TW_AMP_T_INTEGER, 0},
                                      {"denominator", TW_AMP_T_INTEGER, 0},
                                      {NULL, NULL, 0}},
    .response = (const tw_amp_arg[]){{"result", TW_AMP_T_FLOAT, 0}, {NULL, NULL, 0}},
    .errors = (const tw_amp_error_spec[]){{"ZERO_DIVISION", "division by zero", 0},
                                          {"OVERFLOW", "the numbers do not fit in 64 bits", 0},
                                          {NULL, NULL, 0}},
};

const tw_amp_command amp_time_command = {
    .name = "Time",
    .arguments = NULL,
    .response = (const tw_amp_arg[]){{"now", TW_AMP_T_FLOAT, 0}, {NULL, NULL, 0}},
};

const tw_amp_command amp_delay_command = {
    .name = "Delay",
    .arguments = (const tw_amp_arg[]){{"seconds", TW_AMP_T_FLOAT, 0}, {NULL, NULL, 0}},
    .response = (const tw_amp_arg[]){{"done", TW_AMP_T_BOOLEAN, 0}, {NULL, NULL, 0}},
    .errors = (const tw_amp_error_spec[]){{"BAD_DELAY",
                                           "the delay must be from 0 to 86400 seconds", 0},
                                          {NULL, NULL, 0}},
};
