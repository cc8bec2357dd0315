/*
 * The hiredis <-> libuv adapter: one uv_poll_t per hiredis async context,
 * started and stopped by hiredis through the ac->ev hooks.
 *
 * Why our own and not hiredis's adapters/libuv.h (0.14.1): when libuv
 * reports an error on the socket (status < 0, e.g. a refused connect shows
 * up as EPOLLERR and libuv answers UV_EBADF) the stock adapter returns
 * without telling hiredis, and libuv has already stopped the watcher: the
 * connection hangs forever, no callback, commands pile up. Here an error
 * status is handed to hiredis as an I/O event, so that hiredis makes the
 * failing read (or connect check) itself, learns the errno and runs its
 * connect or disconnect callback.
 *
 * Lifetime: hiredis calls the cleanup hook (possibly twice, from its
 * disconnect and its free paths) just before it closes the fd. uv_close is
 * asynchronous, so the watcher is freed in its close callback; from cleanup
 * on, the context pointer is cleared and the hooks are detached so that
 * nothing can restart a closing handle.
 */
#include <stdlib.h>

#include "redis_uv.h"

typedef struct watcher {
    uv_poll_t poll;
    redisAsyncContext *ac; /* NULL once hiredis let go */
    int events;            /* UV_READABLE | UV_WRITABLE that hiredis wants */
} watcher;

static void on_poll(uv_poll_t *h, int status, int events);

/* Applies w->events to the poll handle. */
static void apply(watcher *w)
{
    if (!w->ac)
        return;
    if (w->events)
        uv_poll_start(&w->poll, w->events, on_poll);
    else
        uv_poll_stop(&w->poll);
}

/* libuv stops the handle by itself after an error, so "already watching
 * these events" is checked against libuv's view too, not only ours. */
static void set_events(watcher *w, int events)
{
    if (events == w->events && uv_is_active((uv_handle_t *)&w->poll) == (events != 0))
        return;
    w->events = events;
    apply(w);
}

/* An error on the socket: let hiredis find out which. Before the connect
 * completed, a write event makes hiredis check SO_ERROR and fail the
 * connect; after it, a read event makes it read, fail and disconnect. */
static void on_poll_error(watcher *w)
{
    redisAsyncContext *ac = w->ac;

    if (ac->c.flags & REDIS_CONNECTED)
        redisAsyncHandleRead(ac);
    else
        redisAsyncHandleWrite(ac);
    /* Still alive (hiredis saw nothing wrong): watch again, since libuv
     * stopped the handle. The connect timeout bounds any repetition. */
    if (w->ac)
        apply(w);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    watcher *w = h->data;

    if (!w->ac)
        return;
    if (status < 0) {
        on_poll_error(w);
        return;
    }
    /* Each hiredis call may free the context: check before the next. */
    if (events & UV_READABLE)
        redisAsyncHandleRead(w->ac);
    if (w->ac && (events & UV_WRITABLE))
        redisAsyncHandleWrite(w->ac);
}

static void add_read(void *priv)
{
    watcher *w = priv;
    set_events(w, w->events | UV_READABLE);
}

static void del_read(void *priv)
{
    watcher *w = priv;
    set_events(w, w->events & ~UV_READABLE);
}

static void add_write(void *priv)
{
    watcher *w = priv;
    set_events(w, w->events | UV_WRITABLE);
}

static void del_write(void *priv)
{
    watcher *w = priv;
    set_events(w, w->events & ~UV_WRITABLE);
}

static void on_closed(uv_handle_t *h)
{
    free(h->data);
}

static void cleanup(void *priv)
{
    watcher *w = priv;
    redisAsyncContext *ac = w->ac;

    if (!ac)
        return;
    w->ac = NULL;
    ac->ev.data = NULL;
    ac->ev.addRead = NULL;
    ac->ev.delRead = NULL;
    ac->ev.addWrite = NULL;
    ac->ev.delWrite = NULL;
    ac->ev.cleanup = NULL;
    /* Closing stops the watcher and drops the fd from the loop's epoll set
     * now, before hiredis closes the fd. */
    uv_close((uv_handle_t *)&w->poll, on_closed);
}

int ps__redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    watcher *w;

    if (ac->ev.data)
        return -1;
    w = calloc(1, sizeof(*w));
    if (!w)
        return -1;
    /* On failure uv_poll_init has not registered the handle: plain free. */
    if (uv_poll_init(loop, &w->poll, ac->c.fd) != 0) {
        free(w);
        return -1;
    }
    w->poll.data = w;
    w->ac = ac;
    ac->ev.data = w;
    ac->ev.addRead = add_read;
    ac->ev.delRead = del_read;
    ac->ev.addWrite = add_write;
    ac->ev.delWrite = del_write;
    ac->ev.cleanup = cleanup;
    return 0;
}
