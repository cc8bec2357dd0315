/*
 * log: one JSON object per line on stderr.
 *
 * Lines are built with jansson so that any text a client sent (a channel
 * name, a close reason) is escaped properly and cannot break the line
 * structure. Logging is off the hot path: per-message events are debug level.
 */
#include "log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int min_level = GW_LOG_INFO;
static int worker = -1; /* --workers: which worker this process is */
static const char *names[] = {"debug", "info", "warn", "error"};

void gw_log_set_level(int level)
{
    min_level = level;
}

void gw_log_set_worker(int w)
{
    worker = w;
}

/* One write(2) per line: workers share stderr, and a pipe keeps writes of
 * up to PIPE_BUF bytes whole, so their lines never interleave. */
static void emit(json_t *o)
{
    char *line = json_dumps(o, JSON_COMPACT);
    size_t n;
    if (!line)
        return;
    n = strlen(line);
    line[n] = '\n'; /* over the NUL: the length is known */
    if (write(STDERR_FILENO, line, n + 1) < 0) {
        /* nowhere left to report it */
    }
    free(line);
}

int gw_log_enabled(int level)
{
    return level >= min_level;
}

void gw_log(int level, const char *event, const char *conn, const char *fmt, ...)
{
    char msg[512], ts[64];
    struct timespec now;
    struct tm tm;
    json_t *o;

    if (level < min_level)
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(now.tv_nsec / 1000000) % 1000);
    o = json_pack("{s:s,s:s,s:s}", "ts", ts, "level", names[level], "event", event);
    if (!o)
        return;
    if (worker >= 0)
        json_object_set_new(o, "worker", json_integer(worker));
    if (conn)
        json_object_set_new(o, "conn", json_string(conn));
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        /* json_string refuses invalid UTF-8; keep the line even then. */
        json_t *m = json_string(msg);
        json_object_set_new(o, "msg", m ? m : json_string("(unprintable)"));
    }
    emit(o);
    json_decref(o);
}
