/*
 * redis_uv: hiredis async contexts driven by a libuv loop.
 *
 * The stock adapters/libuv.h of hiredis 0.14 drops a negative poll status
 * (a refused or reset connection), so hiredis never learns of the error and
 * commands pile up silently. This adapter hands every event, errors
 * included, to hiredis, which then reads the error and calls back.
 */
#ifndef BENCH_REDIS_UV_H
#define BENCH_REDIS_UV_H

#include <hiredis/async.h>
#include <uv.h>

/* Returns REDIS_OK, or REDIS_ERR when the context already has an adapter or
 * memory ran out. The adapter frees itself when hiredis frees the context. */
int bench_redis_attach(redisAsyncContext *ac, uv_loop_t *loop);

#endif
