/*
 * redis_uv: the event glue between hiredis and libuv; see redis_uv.h.
 */
#include "redis_uv.h"

#include <stdlib.h>

typedef struct redis_uv {
    redisAsyncContext *ac;   /* NULL once hiredis let go of us */
    uv_poll_t poll;
    int events;
} redis_uv;

static void on_poll(uv_poll_t *h, int status, int events)
{
    redis_uv *r = h->data;
    /* On an error, let hiredis try both directions: the failing read or
     * write is how it finds the error and calls its callbacks. */
    if (status < 0)
        events = r->events ? r->events : UV_READABLE;
    if (r->ac && (events & UV_READABLE))
        redisAsyncHandleRead(r->ac);
    if (r->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(r->ac);
}

static void update(redis_uv *r, int add, int del)
{
    int ev = (r->events | add) & ~del;
    if (ev == r->events)
        return;
    r->events = ev;
    if (ev)
        uv_poll_start(&r->poll, ev, on_poll);
    else
        uv_poll_stop(&r->poll);
}

static void add_read(void *p) { update(p, UV_READABLE, 0); }
static void del_read(void *p) { update(p, 0, UV_READABLE); }
static void add_write(void *p) { update(p, UV_WRITABLE, 0); }
static void del_write(void *p) { update(p, 0, UV_WRITABLE); }

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

static void cleanup(void *p)
{
    redis_uv *r = p;
    r->ac = NULL;
    uv_close((uv_handle_t *)&r->poll, on_closed);
}

int bench_redis_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    redis_uv *r;
    if (ac->ev.data)
        return REDIS_ERR;
    if (!(r = calloc(1, sizeof(*r))))
        return REDIS_ERR;
    if (uv_poll_init(loop, &r->poll, ac->c.fd) != 0) {
        free(r);
        return REDIS_ERR;
    }
    r->ac = ac;
    r->poll.data = r;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    ac->ev.data = r;
    return REDIS_OK;
}
