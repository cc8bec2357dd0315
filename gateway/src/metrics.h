/*
 * metrics: the process's counters in Prometheus text format (/metrics).
 */
#ifndef GW_METRICS_H
#define GW_METRICS_H

#include <stddef.h>

#include "server.h"

/* Renders the metrics into buf (at most len bytes, NUL terminated).
 * Returns the length written. */
size_t gw_metrics_render(const gw_server *s, char *buf, size_t len);

#endif
