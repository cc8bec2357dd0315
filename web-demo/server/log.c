/*
 * log: one JSON object per line on stderr.
 *
 * Lines are built with jansson so a name typed into the page cannot break
 * the line structure; a message that is not valid UTF-8 is replaced rather
 * than dropped.
 */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static const char *names[] = {"debug", "info", "warn", "error"};

void demo_log(int level, const char *event, const char *fmt, ...)
{
    char msg[512], ts[64];
    struct timespec now;
    struct tm tm;
    json_t *o;

    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(now.tv_nsec / 1000000) % 1000);
    o = json_pack("{s:s,s:s,s:s,s:s}", "ts", ts, "level", names[level], "event", event, "proc",
                  "wsgw-demo");
    if (!o)
        return;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        json_t *m = json_string(msg);
        json_object_set_new(o, "msg", m ? m : json_string("(unprintable)"));
    }
    json_dumpf(o, stderr, JSON_COMPACT);
    fputc('\n', stderr);
    json_decref(o);
}
