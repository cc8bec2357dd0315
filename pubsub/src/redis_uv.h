/*
 * pubsub's hiredis <-> libuv adapter (redis_uv.c): watches a hiredis async
 * context's socket with a uv_poll_t on the given loop. Used instead of
 * hiredis's adapters/libuv.h, which drops libuv's error status and so never
 * lets hiredis see a refused or reset connection.
 */
#ifndef PUBSUB_REDIS_UV_H
#define PUBSUB_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* Hooks ac to loop. Returns 0, or -1 (ac already attached, OOM, fd refused
 * by libuv); on -1 the caller still owns ac and frees it. From then on
 * hiredis drives the watcher through ac->ev and releases it when the
 * context is freed; the watcher's memory goes in its close callback, so the
 * loop must run once more after the last context is freed. */
int ps__redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
