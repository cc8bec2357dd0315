/*
 * metrics: the process's counters in Prometheus text format (/metrics).
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stddef.h>

#include "server.h"

/* Counts one auth outcome: AUTH_OK, an AUTH_E* code, GW_AUTH_TIMEOUT or
 * GW_AUTH_PROTOCOL. */
void gw_metrics_auth(gw_server *s, int outcome);
/* Observes one message's publish-to-fan-out latency (publish time from its
 * envelope, wall clock in ms since the epoch; negative: unknown). */
void gw_metrics_latency(gw_server *s, int64_t published_ms);

/* Renders the metrics into buf (at most len bytes, NUL terminated).
 * Returns the length written. */
size_t gw_metrics_render(const gw_server *s, char *buf, size_t len);

#endif
