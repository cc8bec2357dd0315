/*
 * The in-process bus: for a single gateway process without Redis. A publish
 * is copied into a bounded FIFO and delivered to this process's own
 * subscribers from a uv_idle handle, never from inside ps_bus_publish, so
 * the caller sees the same timing as with Redis (a message and its publish
 * callback arrive later, from the loop) and a subscriber that publishes
 * from on_message cannot recurse.
 *
 * Each idle pass delivers at most BATCH messages, and only those queued
 * before the pass began: what callbacks publish meanwhile waits for the next
 * iteration, so a chatty subscriber cannot starve the loop's I/O.
 *
 * Limits: MAX_QUEUED messages and MAX_QUEUED_BYTES payload bytes wait at
 * most; beyond either, publish returns PS_EUNAVAILABLE (the same answer as
 * an overloaded or absent Redis: try later), payloads over
 * PS__DEFAULT_MAX_PAYLOAD get PS_ETOOBIG.
 */
#include <stdlib.h>
#include <string.h>

#include "bus_internal.h"

#define MAX_QUEUED 65536
#define MAX_QUEUED_BYTES (64u * 1024u * 1024u)
#define BATCH 1024

typedef struct msg {
    struct msg *next;
    ps_publish_cb *cb;
    void *udata;
    int done; /* the publish outcome was counted and reported */
    size_t len;
    const char *payload; /* points behind channel in the same block */
    char channel[];
} msg;

typedef struct inproc_bus {
    ps_bus base;
    uv_idle_t idle;
    ps__chanset *channels;
    msg *head, *tail;
    size_t count, bytes;
    msg *current;   /* being delivered: stop() completes it too */
    int state_told; /* on_state(1) delivered */
    int stopping;
    int closed;          /* the idle handle's close callback ran */
    int destroy_pending; /* destroy came before that */
} inproc_bus;

/* ------------------------------------------------------------ queue */

static msg *msg_new(const char *channel, const char *payload, size_t len, ps_publish_cb *cb,
                    void *udata)
{
    size_t clen = strlen(channel);
    msg *m = malloc(sizeof(*m) + clen + 1 + len);

    if (!m)
        return NULL;
    m->next = NULL;
    m->cb = cb;
    m->udata = udata;
    m->done = 0;
    m->len = len;
    memcpy(m->channel, channel, clen + 1);
    m->payload = m->channel + clen + 1;
    memcpy(m->channel + clen + 1, payload, len);
    return m;
}

static void push(inproc_bus *b, msg *m)
{
    if (b->tail)
        b->tail->next = m;
    else
        b->head = m;
    b->tail = m;
    b->count++;
    b->bytes += m->len;
}

static msg *pop(inproc_bus *b)
{
    msg *m = b->head;

    if (!m)
        return NULL;
    b->head = m->next;
    if (!b->head)
        b->tail = NULL;
    b->count--;
    b->bytes -= m->len;
    return m;
}

/* Counts and reports a publish outcome, once. */
static void complete(inproc_bus *b, msg *m, int status)
{
    if (m->done)
        return;
    m->done = 1;
    if (status == PS_OK)
        b->base.stats.publishes++;
    else
        b->base.stats.publish_errors++;
    if (m->cb)
        m->cb(m->udata, status);
}

/* ------------------------------------------------------------ delivery */

static void deliver(inproc_bus *b, msg *m)
{
    b->current = m;
    if (ps__chanset_has(b->channels, m->channel, strlen(m->channel))) {
        b->base.stats.messages_in++;
        b->base.cb.on_message(b->base.cb.udata, m->channel, m->payload, m->len);
    }
    /* on_message may have stopped the bus, which then completed m. */
    if (!b->stopping)
        complete(b, m, PS_OK);
    b->current = NULL;
    free(m);
}

static void on_idle(uv_idle_t *h)
{
    inproc_bus *b = h->data;
    size_t n = b->count < BATCH ? b->count : BATCH;

    if (!b->state_told) {
        b->state_told = 1;
        if (b->base.cb.on_state)
            b->base.cb.on_state(b->base.cb.udata, 1);
    }
    while (n-- > 0 && !b->stopping)
        deliver(b, pop(b));
    if (!b->stopping && b->count == 0)
        uv_idle_stop(&b->idle);
}

/* ------------------------------------------------------------ ops */

static int inproc_subscribe(ps_bus *base, const char *channel)
{
    inproc_bus *b = (inproc_bus *)base;
    int rc;

    if (b->stopping)
        return PS_ECLOSED;
    rc = ps__chanset_add(&b->channels, channel);
    return rc < 0 ? rc : PS_OK;
}

static int inproc_unsubscribe(ps_bus *base, const char *channel)
{
    inproc_bus *b = (inproc_bus *)base;

    if (b->stopping)
        return PS_ECLOSED;
    return ps__chanset_remove(&b->channels, channel) ? PS_OK : PS_ENOENT;
}

static int inproc_publish(ps_bus *base, const char *channel, const char *payload, size_t len,
                          ps_publish_cb *cb, void *udata)
{
    inproc_bus *b = (inproc_bus *)base;
    msg *m;

    if (b->stopping)
        return PS_ECLOSED;
    if (len > PS__DEFAULT_MAX_PAYLOAD)
        return PS_ETOOBIG;
    if (b->count >= MAX_QUEUED || len > MAX_QUEUED_BYTES - b->bytes)
        return PS_EUNAVAILABLE;
    m = msg_new(channel, payload, len, cb, udata);
    if (!m)
        return PS_ENOMEM;
    push(b, m);
    uv_idle_start(&b->idle, on_idle);
    return PS_OK;
}

static int inproc_is_up(const ps_bus *base)
{
    return !((const inproc_bus *)base)->stopping;
}

static void free_bus(inproc_bus *b)
{
    ps__chanset_clear(&b->channels);
    free(b);
}

static void on_closed(uv_handle_t *h)
{
    inproc_bus *b = h->data;

    b->closed = 1;
    if (b->destroy_pending)
        free_bus(b);
}

static void inproc_stop(ps_bus *base)
{
    inproc_bus *b = (inproc_bus *)base;
    msg *m;

    if (b->stopping)
        return;
    b->stopping = 1;
    uv_close((uv_handle_t *)&b->idle, on_closed);
    if (b->current)
        complete(b, b->current, PS_ECLOSED);
    while ((m = pop(b)) != NULL) {
        complete(b, m, PS_ECLOSED);
        free(m);
    }
}

static void inproc_destroy(ps_bus *base)
{
    inproc_bus *b = (inproc_bus *)base;

    inproc_stop(base);
    if (b->closed)
        free_bus(b);
    else
        b->destroy_pending = 1;
}

static const ps_bus_ops inproc_ops = {
    .subscribe = inproc_subscribe,
    .unsubscribe = inproc_unsubscribe,
    .publish = inproc_publish,
    .is_up = inproc_is_up,
    .stop = inproc_stop,
    .destroy = inproc_destroy,
    .last_error = NULL,
};

ps_bus *ps_inproc_bus_new(uv_loop_t *loop, const ps_bus_callbacks *cb)
{
    inproc_bus *b;

    if (!loop || !cb || !cb->on_message)
        return NULL;
    b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    b->base.ops = &inproc_ops;
    b->base.cb = *cb;
    if (uv_idle_init(loop, &b->idle) != 0) {
        free(b);
        return NULL;
    }
    b->idle.data = b;
    /* The first pass tells on_state(1), as the Redis bus does once up. */
    uv_idle_start(&b->idle, on_idle);
    return &b->base;
}
