/*
 * nchan: the --target nchan mode, to measure Nchan (the nginx pub/sub module)
 * under the very load wsgw gets, for the comparison in docs/benchmarks.md.
 *
 * Nchan differs from wsgw in two places only, and both are here:
 *   - a WebSocket subscriber names its channel in the URL (<url path><channel>,
 *     e.g. /sub/job:42) and sends nothing: the connection is ready once the
 *     upgrade succeeds. Each message arrives as its raw body, which is the
 *     bench data object itself, so the worker's decoder reads it unchanged;
 *   - publishing is an HTTP POST of that body to <pub path><channel> (Nchan's
 *     publisher location). This file keeps --http-conns keep-alive
 *     connections with up to --http-depth requests pipelined on each, and
 *     counts a 2xx answer as the acknowledgement (201: subscribers present,
 *     202: queued, none present).
 *
 * One more difference lives in the coordinator: Nchan in Redis mode answers
 * the upgrade before its Redis subscription is confirmed, so a message
 * published at once can miss a subscriber that looks ready; --settle waits
 * (1 s by default for Nchan) before the first publish.
 */
#ifndef BENCH_NCHAN_H
#define BENCH_NCHAN_H

#include <stddef.h>

#include "publisher.h"

/* Writes the upgrade request target of a subscriber: <url path><channel>. */
void bench_nchan_target(const bench_config *cfg, uint32_t idx, char *out, size_t cap);

/* The HTTP publish path, driven by publisher.c like the Redis and WebSocket
 * paths: start returns 0 or -1 with p->error set; send returns 0, or -1 when
 * every connection has --http-depth requests outstanding (try again later);
 * stop closes the connections (what is in flight counts as errors); free
 * releases the memory once the loop has closed the handles. */
int bench_nchan_pub_start(bench_pub *p);
int bench_nchan_pub_send(bench_pub *p, const char *channel, const char *data, size_t len);
void bench_nchan_pub_stop(bench_pub *p);
void bench_nchan_pub_free(bench_pub *p);

#endif
