/* SPDX-License-Identifier: MIT */
/*
 * AMP's DateTime: Twisted's fixed 32-byte text
 * "YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM".
 *
 * Writing is Twisted's toString(): every field zero-padded, and the sign
 * of the offset '+' only when it is east of UTC, so UTC itself is
 * "-00:00". Reading is Twisted's fromString(), which is looser than the
 * format: it wants 32 ASCII bytes, reads each field from its fixed
 * position with Python's int() (so " 7", "+7" and "0_7" are 7, and the
 * separators are never looked at), and the offset sign must be '+' or
 * '-'. datetime() then checks the ranges, the day against its month and
 * leap years included. Python builds a time zone of any offset the two
 * digits allow and fails only when something asks for it; twine refuses
 * offsets of 24 hours or more at once, since nothing could use them.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "amp/amp_internal.h"

#define MAX_OFFSET (24 * 60 - 1)

static int leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int y, int m)
{
    static const unsigned char days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* Would Python's datetime() accept these fields? */
static int fields_valid(int64_t year, int64_t month, int64_t day, int64_t hour, int64_t minute,
                        int64_t second, int64_t microsecond)
{
    return year >= 1 && year <= 9999 && month >= 1 && month <= 12 && day >= 1 &&
           day <= days_in_month((int)year, (int)month) && hour >= 0 && hour <= 23 &&
           minute >= 0 && minute <= 59 && second >= 0 && second <= 59 && microsecond >= 0 &&
           microsecond <= 999999;
}

int tw__amp_datetime_format(const tw_amp_datetime *dt, char out[TW__AMP_DATETIME_LENGTH + 1])
{
    if (!fields_valid(dt->year, dt->month, dt->day, dt->hour, dt->minute, dt->second,
                      dt->microsecond) ||
        dt->utc_offset < -MAX_OFFSET || dt->utc_offset > MAX_OFFSET)
        return -EINVAL;
    int off = dt->utc_offset < 0 ? -dt->utc_offset : dt->utc_offset;
    char text[64]; /* room for any int fields, though checked ones take 32 bytes */
    snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%06d%c%02d:%02d",
             (int)dt->year, (int)dt->month, (int)dt->day, (int)dt->hour, (int)dt->minute,
             (int)dt->second, (int)dt->microsecond, dt->utc_offset > 0 ? '+' : '-', off / 60,
             off % 60);
    memcpy(out, text, TW__AMP_DATETIME_LENGTH + 1);
    return 0;
}

int tw__amp_datetime_parse(const char *text, size_t len, tw_amp_datetime *out)
{
    if (len != TW__AMP_DATETIME_LENGTH)
        return -EINVAL;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] > 0x7f)
            return -EINVAL;
    static const struct {
        unsigned char at, len;
    } pos[9] = {{0, 4}, {5, 2}, {8, 2}, {11, 2}, {14, 2}, {17, 2}, {20, 6}, {27, 2}, {30, 2}};
    int64_t v[9];
    for (int i = 0; i < 9; i++)
        if (tw_amp_integer_parse(text + pos[i].at, pos[i].len, &v[i]) < 0)
            return -EINVAL;
    char sign = text[26];
    if ((sign != '+' && sign != '-') || !fields_valid(v[0], v[1], v[2], v[3], v[4], v[5], v[6]))
        return -EINVAL;
    int64_t offset = v[7] * 60 + v[8];
    if (sign == '-')
        offset = -offset;
    if (offset < -MAX_OFFSET || offset > MAX_OFFSET)
        return -EINVAL;
    out->year = (int16_t)v[0];
    out->month = (uint8_t)v[1];
    out->day = (uint8_t)v[2];
    out->hour = (uint8_t)v[3];
    out->minute = (uint8_t)v[4];
    out->second = (uint8_t)v[5];
    out->microsecond = (int32_t)v[6];
    out->utc_offset = (int16_t)offset;
    return 0;
}
