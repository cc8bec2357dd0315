/*
 * publisher: where the bench's messages enter the system.
 *
 * Two paths to wsgw, as backends and browsers publish: Redis PUBLISH on
 * <prefix><channel> with {"data":...} (hiredis, async, pipelined on one
 * connection), or the {"type":"publish"} command of one WebSocket client
 * whose token grants publish rights. Either way each message is acknowledged
 * (PUBLISH's integer reply, or "published"/"error"), in order, and the
 * publisher counts acknowledgements and errors. The data object is the
 * caller's; the publisher only wraps it. A third path, HTTP POST of the bare
 * object, publishes to Nchan (nchan.h).
 */
#ifndef BENCH_PUBLISHER_H
#define BENCH_PUBLISHER_H

#include <stdint.h>

#include <hiredis/async.h>
#include <uv.h>

#include "bench.h"
#include "wsclient.h"

/* Called after something changed: ready, an acknowledgement, a failure. */
typedef void (*bench_pub_cb)(void *arg);

typedef struct bench_pub {
    const bench_config *cfg;
    uv_loop_t *loop;
    bench_pub_cb cb;
    void *arg;
    int ready;                /* messages may be sent */
    int failed;               /* the path broke; see error */
    int stopping;
    uint64_t sent;
    uint64_t acked;           /* acknowledged as published */
    uint64_t errors;          /* refused, or lost with the connection */
    uint64_t zero_receivers;  /* Redis PUBLISH that reached no subscriber */
    char error[160];
    redisAsyncContext *ac;
    ws_client ws;
    ws_shared *sh;
    struct nchan_pub *http;   /* --publish-via http: Nchan's publisher (nchan.c) */
    char *buf;                /* one message being framed */
    size_t buf_cap;
} bench_pub;

/* Starts connecting. Returns 0, or -1 with p->error set. */
int bench_pub_start(bench_pub *p, uv_loop_t *loop, const bench_config *cfg, bench_pub_cb cb,
                    void *arg);

/* Publishes data (a JSON object text) on channel. Returns 0, or -1 when the
 * path is not ready or already has too much in flight (try again later). */
int bench_pub_send(bench_pub *p, const char *channel, const char *data, size_t len);

/* Messages sent and not yet acknowledged or failed. */
uint64_t bench_pub_inflight(const bench_pub *p);

/* Closes the path; pending acknowledgements count as errors. */
void bench_pub_stop(bench_pub *p);

/* Frees what bench_pub_start allocated; call after the loop has run down. */
void bench_pub_free(bench_pub *p);

/* Checks, synchronously and before any loop runs, that Redis answers PING.
 * Returns 0, or -1 with a reason in err. */
int bench_pub_check_redis(const bench_config *cfg, char *err, size_t errlen);

/* Marks p failed with a message (the first failure wins) and tells its
 * owner. For the publishing modes in other files (nchan.c). */
void bench_pub_fail(bench_pub *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
