/*
 * log: one JSON object per line on stderr.
 *
 * Every line carries a timestamp, the level, a short machine-readable event
 * name and, where a connection is involved, its id, so that operators can
 * filter with jq and ship the stream to a log store unchanged.
 */
#ifndef GW_LOG_H
#define GW_LOG_H

#include "config.h"

void gw_log_set_level(int level);
int gw_log_enabled(int level);
/* With --workers: every line of this process carries "worker": w. */
void gw_log_set_worker(int w);

/* Logs `event` with an optional connection id (NULL for none) and a printf
 * message (may be NULL). */
void gw_log(int level, const char *event, const char *conn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define gw_debug(ev, conn, ...) gw_log(GW_LOG_DEBUG, ev, conn, __VA_ARGS__)
#define gw_info(ev, conn, ...) gw_log(GW_LOG_INFO, ev, conn, __VA_ARGS__)
#define gw_warn(ev, conn, ...) gw_log(GW_LOG_WARN, ev, conn, __VA_ARGS__)
#define gw_error(ev, conn, ...) gw_log(GW_LOG_ERROR, ev, conn, __VA_ARGS__)

#endif
