/*
 * publisher: how wsgw-demo publishes job progress, through a gateway's
 * HTTP publish API (POST /api/publish with the API key, docs/backend.md), as
 * a user's backend would.
 *
 * Messages go out one at a time from a bounded FIFO, so messages of a job
 * keep their order. A gateway that refuses the connection, times out or
 * answers 5xx is skipped for the next one in the list (failover: the demo
 * keeps working while one gateway is down); when every gateway failed the
 * message waits and is tried again with a growing delay. A 4xx answer is a
 * bug in the message and drops it (logged).
 */
#ifndef DEMO_PUBLISHER_H
#define DEMO_PUBLISHER_H

#include <stddef.h>
#include <uv.h>

#include "config.h"

#define DEMO_PUBLISH_QUEUE 1024      /* messages waiting; more are refused */
#define DEMO_PUBLISH_TIMEOUT_MS 3000 /* one HTTP exchange with a gateway */

typedef struct demo_publisher demo_publisher;

/* Returns a publisher that publishes to cfg's gateways (resolved here, once:
 * a name lookup at start is fine, one per message would block the loop), or
 * NULL with a reason in err. cfg must outlive the publisher. */
demo_publisher *demo_publisher_new(uv_loop_t *loop, const demo_config *cfg, char *err,
                                   size_t errlen);

/* Queues {"channel":channel,"data":data_json}. data_json is JSON text,
 * copied. Returns 0, or -1 when the queue is full or memory ran out. */
int demo_publisher_publish(demo_publisher *p, const char *channel, const char *data_json);

/* Drops what is queued, aborts the request in flight and frees the
 * publisher once its handles are closed. */
void demo_publisher_close(demo_publisher *p);

#endif
