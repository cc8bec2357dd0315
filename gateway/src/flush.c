/*
 * flush: writes queued client frames before the loop sleeps (see flush.h).
 *
 * The list is an array of connection pointers that grows by doubling. Each
 * connection is on it at most once and knows its slot (flush_slot), so it
 * holds no more entries than there are connections, a closing connection
 * leaves it in O(1) by clearing its slot, and it is emptied on every loop
 * iteration.
 */
#include "flush.h"

#include <stdlib.h>

#include "conn.h"

static void flush_all(gw_server *s)
{
    /* gw_conn_flush queues nothing, so the list does not grow during the
     * walk; the bound is read each time all the same. */
    for (size_t i = 0; i < s->flush_len; i++) {
        gw_conn *c = s->flush[i];
        if (!c)
            continue; /* closed since it was listed */
        c->flush_slot = 0;
        gw_conn_flush(c);
    }
    s->flush_len = 0;
}

static void on_prepare(uv_prepare_t *h)
{
    flush_all(h->data);
}

void gw_flush_start(gw_server *s)
{
    uv_prepare_init(s->loop, &s->flusher);
    s->flusher.data = s;
    uv_prepare_start(&s->flusher, on_prepare);
    /* Pending writes alone are no reason to keep running: during a stop the
     * loop must end once the clients and the other handles are gone. */
    uv_unref((uv_handle_t *)&s->flusher);
    s->flush_started = 1;
}

static void on_closed(uv_handle_t *h)
{
    gw_server *s = h->data;
    free(s->flush);
    s->flush = NULL;
    s->flush_len = s->flush_cap = 0;
}

void gw_flush_stop(gw_server *s)
{
    if (!s->flush_started)
        return;
    s->flush_started = 0;
    flush_all(s); /* from here on, sends ask for WRITEABLE callbacks */
    uv_close((uv_handle_t *)&s->flusher, on_closed);
}

static int grow(gw_server *s)
{
    size_t cap = s->flush_cap ? s->flush_cap * 2 : 64;
    gw_conn **list = realloc(s->flush, cap * sizeof(*list));
    if (!list)
        return -1;
    s->flush = list;
    s->flush_cap = cap;
    return 0;
}

void gw_flush_add(gw_server *s, gw_conn *c)
{
    if (c->flush_slot)
        return;
    /* Not started (or stopping), or out of memory: the WRITEABLE callback
     * still sends everything, only later. */
    if (!s->flush_started || (s->flush_len == s->flush_cap && grow(s) < 0) ||
        s->flush_len >= UINT32_MAX) {
        gw_conn_wait_writable(c);
        return;
    }
    s->flush[s->flush_len++] = c;
    c->flush_slot = (uint32_t)s->flush_len;
}

void gw_flush_remove(gw_server *s, gw_conn *c)
{
    if (!c->flush_slot)
        return;
    s->flush[c->flush_slot - 1] = NULL;
    c->flush_slot = 0;
}
