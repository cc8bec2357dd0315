/*
 * The in-process bus: for a single gateway process without Redis. A publish
 * is copied into a bounded FIFO and delivered to this process's own
 * subscribers from a uv_idle handle, never from inside ps_bus_publish, so
 * the caller sees the same timing as with Redis (a message and its publish
 * callback arrive later, from the loop) and a subscriber that publishes
 * from on_message cannot recurse.
 *
 * A batch publish (ps_bus_publish_batch) is one operation: its messages
 * take consecutive offsets and are delivered one by one, as the Redis bus
 * delivers the array a batch arrives in.
 *
 * The FIFO carries three kinds of operations, done in the order they were
 * asked for, as Redis does the commands of one link: publishes, history
 * reads and subscription confirmations. History (history.c) is touched only
 * while an operation is done, never from inside a ps_bus_* call, so a
 * message gets its offset when it is delivered and a read sees exactly the
 * publishes asked for before it; and since callbacks only queue more work,
 * the texts a callback is handed cannot change under it.
 *
 * A subscription takes effect at once (a publish done later reaches it, even
 * one asked for earlier); its confirmation, on_subscribed, follows from the
 * FIFO. Subscribing, unsubscribing and subscribing again before the loop
 * turns confirms once, as the Redis bus does.
 *
 * Each idle pass does at most BATCH operations, and only those queued
 * before the pass began: what callbacks queue meanwhile waits for the next
 * iteration, so a chatty subscriber cannot starve the loop's I/O.
 *
 * Limits: MAX_QUEUED operations and MAX_QUEUED_BYTES payload bytes wait at
 * most; beyond either, publish and history return PS_EUNAVAILABLE (the same
 * answer as an overloaded or absent Redis: try later), payloads over
 * PS__DEFAULT_MAX_PAYLOAD get PS_ETOOBIG. History is bounded in history.c.
 */
#include <stdlib.h>
#include <string.h>

#include "bus_internal.h"

#define MAX_QUEUED 65536
#define MAX_QUEUED_BYTES (64u * 1024u * 1024u)
#define BATCH 1024

enum op_kind {
    OP_PUBLISH,
    OP_HISTORY,
    OP_SUBSCRIBED,
};

/* One queued operation. */
typedef struct msg {
    struct msg *next;
    enum op_kind kind;
    union {
        ps_publish_cb *pub;
        ps_history_cb *hist;
    } cb;
    void *udata;
    int done; /* the outcome was counted and reported */
    ps_history_policy hist;
    /* OP_PUBLISH: its messages, whose texts follow each other in payload;
     * with history each part also says where its closing brace goes. */
    ps__parts parts;
    /* OP_HISTORY */
    int64_t since;
    size_t limit;
    size_t len;
    const char *payload; /* points behind channel in the same block */
    char channel[];
} msg;

typedef struct inproc_bus {
    ps_bus base;
    uv_idle_t idle;
    ps__chanset *channels;
    ps__chanset *confirming; /* per channel: OP_SUBSCRIBED queued */
    ps__hstore *history;
    msg *head, *tail;
    size_t count, bytes;
    msg *current;   /* being done: stop() completes it too */
    int state_told; /* on_state(1) delivered */
    int stopping;
    int closed;          /* the idle handle's close callback ran */
    int destroy_pending; /* destroy came before that */
} inproc_bus;

/* ------------------------------------------------------------ queue */

/* An operation with room for len payload bytes behind its channel. */
static msg *msg_new(enum op_kind kind, const char *channel, size_t len, void *udata)
{
    size_t clen = strlen(channel);
    msg *m = calloc(1, sizeof(*m) + clen + 1 + len);

    if (!m)
        return NULL;
    m->kind = kind;
    m->udata = udata;
    m->len = len;
    memcpy(m->channel, channel, clen + 1);
    m->payload = m->channel + clen + 1;
    return m;
}

static void msg_free(msg *m)
{
    if (m)
        ps__parts_clear(&m->parts);
    free(m);
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

static void on_idle(uv_idle_t *h);

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

static int enqueue(inproc_bus *b, msg *m)
{
    push(b, m);
    uv_idle_start(&b->idle, on_idle);
    return PS_OK;
}

/* Counts and reports an outcome, once. res and h only with PS_OK. */
static void complete(inproc_bus *b, msg *m, int status, const ps_publish_result *res,
                     const ps_history *h)
{
    ps_bus_stats *st = &b->base.stats;

    if (m->done)
        return;
    m->done = 1;
    if (m->kind == OP_PUBLISH) {
        *(status == PS_OK ? &st->publishes : &st->publish_errors) += m->parts.n;
        if (m->cb.pub)
            m->cb.pub(m->udata, status, res);
    } else if (m->kind == OP_HISTORY) {
        *(status == PS_OK ? &st->history_reads : &st->history_errors) += 1;
        m->cb.hist(m->udata, status, h);
    }
}

/* ------------------------------------------------------------ doing */

static void deliver(inproc_bus *b, const char *channel, const char *payload, size_t len)
{
    if (!ps__chanset_has(b->channels, channel, strlen(channel)))
        return;
    b->base.stats.messages_in++;
    b->base.cb.on_message(b->base.cb.udata, channel, payload, len);
}

/* Stores and delivers the messages in order; the outcome names the first
 * one's offset. Stops early when on_message stopped the bus (which then
 * completed m) or the history store ran out of memory. */
static void do_publish(inproc_bus *b, msg *m)
{
    ps_publish_result res, first;
    const char *at = m->payload, *text;
    const ps__part *part = NULL;
    size_t i, len;

    if (!ps__history_on(&m->hist)) {
        deliver(b, m->channel, m->payload, m->len);
        complete(b, m, PS_OK, NULL, NULL);
        return;
    }
    for (i = 0; i < m->parts.n && !b->stopping; at += part->len, i++) {
        part = ps__part_at(&m->parts, i);
        if (ps__hstore_append(b->history, m->channel, at, part->head_len, part->sep, &m->hist,
                              uv_now(b->idle.loop), &res, &text, &len) < 0) {
            complete(b, m, PS_ENOMEM, NULL, NULL);
            return;
        }
        if (i == 0)
            first = res;
        deliver(b, m->channel, text, len);
    }
    complete(b, m, PS_OK, &first, NULL);
}

static void do_history(inproc_bus *b, msg *m)
{
    ps_history h;

    if (ps__hstore_read(b->history, m->channel, m->since, m->limit, &m->hist, uv_now(b->idle.loop),
                        &h) < 0) {
        complete(b, m, PS_ENOMEM, NULL, NULL);
        return;
    }
    complete(b, m, PS_OK, NULL, &h);
    free((void *)h.entries);
}

/* Only the last confirmation queued for a channel speaks, and only if the
 * channel is still wanted: an earlier one was overtaken by an unsubscribe. */
static void do_subscribed(inproc_bus *b, msg *m)
{
    if (ps__chanset_adjust(&b->confirming, m->channel, -1) > 0)
        return;
    if (ps__chanset_has(b->channels, m->channel, strlen(m->channel)) && b->base.cb.on_subscribed)
        b->base.cb.on_subscribed(b->base.cb.udata, m->channel);
}

static void do_op(inproc_bus *b, msg *m)
{
    b->current = m;
    if (m->kind == OP_PUBLISH)
        do_publish(b, m);
    else if (m->kind == OP_HISTORY)
        do_history(b, m);
    else
        do_subscribed(b, m);
    b->current = NULL;
    msg_free(m);
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
        do_op(b, pop(b));
    if (!b->stopping && b->count == 0)
        uv_idle_stop(&b->idle);
}

/* ------------------------------------------------------------ ops */

/* Room for one more operation of len payload bytes. */
static int has_room(const inproc_bus *b, size_t len)
{
    return b->count < MAX_QUEUED && len <= MAX_QUEUED_BYTES - b->bytes;
}

/* The confirmation goes through the queue like any operation, but past the
 * queue's bound too: it carries no payload, comes only from a subscribe that
 * changed the wanted set, and a subscription left unconfirmed would wait
 * forever. */
static int inproc_subscribe(ps_bus *base, const char *channel)
{
    inproc_bus *b = (inproc_bus *)base;
    msg *m;
    int rc;

    if (b->stopping)
        return PS_ECLOSED;
    rc = ps__chanset_add(&b->channels, channel);
    if (rc <= 0)
        return rc; /* PS_OK when already wanted, or PS_ENOMEM */
    m = msg_new(OP_SUBSCRIBED, channel, 0, NULL);
    if (!m || ps__chanset_adjust(&b->confirming, channel, 1) < 0) {
        msg_free(m);
        ps__chanset_remove(&b->channels, channel);
        return PS_ENOMEM;
    }
    return enqueue(b, m);
}

static int inproc_unsubscribe(ps_bus *base, const char *channel)
{
    inproc_bus *b = (inproc_bus *)base;

    if (b->stopping)
        return PS_ECLOSED;
    return ps__chanset_remove(&b->channels, channel) ? PS_OK : PS_ENOENT;
}

/* A new OP_PUBLISH holding copies of msgs; takes over parts. */
static msg *publish_msg(const char *channel, const ps_payload *msgs, ps__parts *parts, void *udata)
{
    msg *m = msg_new(OP_PUBLISH, channel, parts->total, udata);
    char *at;
    size_t i;

    if (!m)
        return NULL;
    for (i = 0, at = m->channel + strlen(channel) + 1; i < parts->n; at += msgs[i++].len)
        if (msgs[i].len)
            memcpy(at, msgs[i].text, msgs[i].len);
    m->parts = *parts;
    parts->many = NULL;
    return m;
}

static int inproc_publish(ps_bus *base, const char *channel, const ps_payload *msgs, size_t n,
                          const ps_history_policy *hist, ps_publish_cb *cb, void *udata)
{
    inproc_bus *b = (inproc_bus *)base;
    ps__parts parts;
    msg *m = NULL;
    int rc = ps__parts_check(&parts, msgs, n, hist != NULL, PS__DEFAULT_MAX_PAYLOAD);

    if (b->stopping)
        rc = PS_ECLOSED;
    if (rc == PS_OK && !has_room(b, parts.total))
        rc = PS_EUNAVAILABLE;
    if (rc == PS_OK && !(m = publish_msg(channel, msgs, &parts, udata)))
        rc = PS_ENOMEM;
    if (rc == PS_OK) {
        m->cb.pub = cb;
        if (hist)
            m->hist = *hist;
        rc = enqueue(b, m);
    }
    ps__parts_clear(&parts);
    return rc;
}

static int inproc_history(ps_bus *base, const char *channel, int64_t since, size_t limit,
                          const ps_history_policy *hist, ps_history_cb *cb, void *udata)
{
    inproc_bus *b = (inproc_bus *)base;
    msg *m;

    if (b->stopping)
        return PS_ECLOSED;
    if (!has_room(b, 0))
        return PS_EUNAVAILABLE;
    m = msg_new(OP_HISTORY, channel, 0, udata);
    if (!m)
        return PS_ENOMEM;
    m->cb.hist = cb;
    m->hist = *hist;
    m->since = since;
    m->limit = limit;
    return enqueue(b, m);
}

static int inproc_is_up(const ps_bus *base)
{
    return !((const inproc_bus *)base)->stopping;
}

static void free_bus(inproc_bus *b)
{
    ps__chanset_clear(&b->channels);
    ps__chanset_clear(&b->confirming);
    ps__hstore_free(b->history);
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
        complete(b, b->current, PS_ECLOSED, NULL, NULL);
    while ((m = pop(b)) != NULL) {
        complete(b, m, PS_ECLOSED, NULL, NULL);
        msg_free(m);
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
    .history = inproc_history,
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
    b->history = ps__hstore_new();
    if (!b->history || uv_idle_init(loop, &b->idle) != 0) {
        ps__hstore_free(b->history);
        free(b);
        return NULL;
    }
    b->idle.data = b;
    /* The first pass tells on_state(1), as the Redis bus does once up. */
    uv_idle_start(&b->idle, on_idle);
    return &b->base;
}
