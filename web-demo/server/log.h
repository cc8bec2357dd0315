/*
 * log: the demo backend's log, one JSON object per line on stderr.
 *
 * The same shape as the gateway's lines (ts, level, event, msg), so the
 * demo's four processes can be read with one jq filter.
 */
#ifndef DEMO_LOG_H
#define DEMO_LOG_H

enum demo_log_level { DEMO_LOG_DEBUG, DEMO_LOG_INFO, DEMO_LOG_WARN, DEMO_LOG_ERROR };

/* Logs `event` (a short machine-readable name) with a printf message (may be NULL). */
void demo_log(int level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define demo_info(ev, ...) demo_log(DEMO_LOG_INFO, ev, __VA_ARGS__)
#define demo_warn(ev, ...) demo_log(DEMO_LOG_WARN, ev, __VA_ARGS__)
#define demo_error(ev, ...) demo_log(DEMO_LOG_ERROR, ev, __VA_ARGS__)

#endif
