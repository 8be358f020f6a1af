/* SPDX-License-Identifier: MIT */
/*
 * daytime: RFC 867 over TCP. On connection the server sends the current
 * date and time as one human-readable line, in UTC, in the syntax the RFC
 * suggests ("Weekday, Month Day, Year HH:MM:SS-Zone"), then closes. What
 * the client sends is ignored.
 *
 * The names come from a fixed English table rather than strftime(), so
 * that the line does not change with the process's locale.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <twine.h>

static const char *const weekdays[] = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                       "Thursday", "Friday", "Saturday"};
static const char *const months[] = {"January", "February", "March",     "April",
                                     "May",     "June",     "July",      "August",
                                     "September", "October", "November", "December"};

static void daytime_made(tw_protocol *p)
{
    time_t now = time(NULL);
    struct tm tm;
    char line[96];
    int n;
    if (gmtime_r(&now, &tm) == NULL || tm.tm_wday < 0 || tm.tm_wday > 6 || tm.tm_mon < 0 ||
        tm.tm_mon > 11)
        n = snprintf(line, sizeof line, "%lld seconds since 1970-01-01 00:00:00-UTC\r\n",
                     (long long)now);
    else
        n = snprintf(line, sizeof line, "%s, %s %d, %d %02d:%02d:%02d-UTC\r\n",
                     weekdays[tm.tm_wday], months[tm.tm_mon], tm.tm_mday, tm.tm_year + 1900,
                     tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (n > 0)
        tw_transport_write(p->transport, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
    tw_transport_lose_connection(p->transport);
}

static void daytime_data(tw_protocol *p, const void *data, size_t len)
{
    (void)p;
    (void)data;
    (void)len;
}

static void daytime_lost(tw_protocol *p, const tw_failure *reason)
{
    (void)p;
    (void)reason;
}

static const tw_protocol_ops daytime_protocol_ops = {
    .connection_made = daytime_made,
    .data_received = daytime_data,
    .connection_lost = daytime_lost,
};

static tw_factory *daytime_make_factory(tw_reactor *r, const tw_options *opts, char *err,
                                        size_t errlen)
{
    (void)r;
    (void)opts;
    tw_factory *f = tw_factory_for_protocol(&daytime_protocol_ops, sizeof(tw_protocol));
    if (f == NULL)
        snprintf(err, errlen, "out of memory creating the daytime factory");
    return f;
}

TW_PLUGIN(daytime, .type = TW_PLUGIN_PROTOCOL, .name = "daytime",
          .description = "RFC 867 daytime: sends the date and time as text, then closes",
          .ctx = &(const tw_plugin_protocol){.make_factory = daytime_make_factory});
