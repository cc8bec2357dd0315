/*
 * The bus seam: the ps_bus_* calls the gateway makes, each a dispatch
 * through the implementation's ps_bus_ops, plus what both implementations
 * share (channel name check, the desired-channel set) and ps_strerror.
 *
 * The wrappers check the arguments every implementation would otherwise
 * check again, so that a bus only ever sees a valid channel name, a
 * non-NULL payload, and a history policy that is either off or usable.
 */
#include <stdlib.h>
#include <string.h>

#define HASH_NONFATAL_OOM 1
#include <uthash.h>

#include "bus_internal.h"

const char *ps_strerror(int code)
{
    switch (code) {
    case PS_OK:
        return "ok";
    case PS_ENOMEM:
        return "out of memory";
    case PS_EINVAL:
        return "invalid argument";
    case PS_EUNAVAILABLE:
        return "bus unavailable";
    case PS_ECLOSED:
        return "bus stopped";
    case PS_EEXISTS:
        return "already subscribed";
    case PS_ENOENT:
        return "not subscribed";
    case PS_EENVELOPE:
        return "invalid envelope";
    case PS_ETOOBIG:
        return "payload too big";
    default:
        return "unknown error";
    }
}

/* ------------------------------------------------------------ dispatch */

int ps_bus_subscribe(ps_bus *b, const char *channel)
{
    if (!b || !ps__channel_valid(channel))
        return PS_EINVAL;
    return b->ops->subscribe(b, channel);
}

int ps_bus_unsubscribe(ps_bus *b, const char *channel)
{
    if (!b || !ps__channel_valid(channel))
        return PS_EINVAL;
    return b->ops->unsubscribe(b, channel);
}

/* A policy with history needs a TTL: EXPIRE 0 would delete the history as
 * it is written, and no TTL at all would keep every channel forever. */
static int policy_usable(const ps_history_policy *hist)
{
    return !ps__history_on(hist) || hist->ttl_s > 0;
}

int ps_bus_publish(ps_bus *b, const char *channel, const char *payload, size_t len,
                   const ps_history_policy *hist, ps_publish_cb *cb, void *udata)
{
    ps_payload one = {payload ? payload : "", len};

    if (!b || !ps__channel_valid(channel) || (!payload && len > 0) || !policy_usable(hist))
        return PS_EINVAL;
    if (!ps__history_on(hist))
        hist = NULL;
    return b->ops->publish(b, channel, &one, 1, hist, cb, udata);
}

int ps_bus_publish_batch(ps_bus *b, const char *channel, const ps_payload *msgs, size_t n,
                         const ps_history_policy *hist, ps_publish_cb *cb, void *udata)
{
    size_t i;

    if (!b || !ps__channel_valid(channel) || !msgs || n == 0 || n > PS_BATCH_MAX ||
        !ps__history_on(hist) || !policy_usable(hist))
        return PS_EINVAL;
    for (i = 0; i < n; i++)
        if (!msgs[i].text)
            return PS_EINVAL;
    return b->ops->publish(b, channel, msgs, n, hist, cb, udata);
}

int ps__parts_check(ps__parts *p, const ps_payload *msgs, size_t n, int with_history, size_t max)
{
    ps__part *v = &p->one;
    size_t i;

    memset(p, 0, sizeof(*p));
    p->n = n;
    if (n > 1 && !(v = p->many = malloc(n * sizeof(*v))))
        return PS_ENOMEM;
    for (i = 0; i < n; i++) {
        if (msgs[i].len > max - p->total)
            return PS_ETOOBIG;
        p->total += msgs[i].len;
        v[i] = (ps__part){msgs[i].len, 0, NULL};
        if (with_history &&
            ps__object_split(msgs[i].text, msgs[i].len, &v[i].head_len, &v[i].sep) < 0)
            return PS_EINVAL;
    }
    return PS_OK;
}

void ps__parts_clear(ps__parts *p)
{
    free(p->many);
    p->many = NULL;
}

int ps_bus_history(ps_bus *b, const char *channel, int64_t since, size_t limit,
                   const ps_history_policy *hist, ps_history_cb *cb, void *udata)
{
    if (!b || !ps__channel_valid(channel) || !cb || !ps__history_on(hist) || !policy_usable(hist))
        return PS_EINVAL;
    return b->ops->history(b, channel, since, limit, hist, cb, udata);
}

int ps_bus_is_up(const ps_bus *b)
{
    return b ? b->ops->is_up(b) : 0;
}

void ps_bus_stop(ps_bus *b)
{
    if (b)
        b->ops->stop(b);
}

void ps_bus_destroy(ps_bus *b)
{
    if (b)
        b->ops->destroy(b);
}

const char *ps_bus_last_error(const ps_bus *b)
{
    if (!b || !b->ops->last_error)
        return "";
    return b->ops->last_error(b);
}

/* ------------------------------------------------------------ channel names */

int ps__channel_valid(const char *channel)
{
    size_t n = 0;

    if (!channel)
        return 0;
    for (; channel[n]; n++) {
        unsigned char c = (unsigned char)channel[n];
        if (c < 0x21 || c > 0x7e || n >= PS__CHANNEL_MAX)
            return 0;
    }
    return n > 0;
}

/* ------------------------------------------------------------ channel set */

struct ps__chanset {
    UT_hash_handle hh;
    long count; /* only for ps__chanset_adjust */
    size_t len;
    char name[]; /* NUL terminated; the hash key */
};

static ps__chanset *chanset_insert(ps__chanset **set, const char *channel, size_t len)
{
    ps__chanset *e = malloc(sizeof(*e) + len + 1);

    if (!e)
        return NULL;
    e->count = 0;
    e->len = len;
    memcpy(e->name, channel, len + 1);
    HASH_ADD_KEYPTR(hh, *set, e->name, len, e);
    /* uthash in non-fatal mode leaves tbl NULL when it could not grow. */
    if (!e->hh.tbl) {
        free(e);
        return NULL;
    }
    return e;
}

int ps__chanset_add(ps__chanset **set, const char *channel)
{
    size_t len = strlen(channel);
    ps__chanset *e;

    HASH_FIND(hh, *set, channel, len, e);
    if (e)
        return 0;
    return chanset_insert(set, channel, len) ? 1 : PS_ENOMEM;
}

long ps__chanset_adjust(ps__chanset **set, const char *channel, long delta)
{
    size_t len = strlen(channel);
    ps__chanset *e;

    HASH_FIND(hh, *set, channel, len, e);
    if (!e && delta <= 0)
        return 0;
    if (!e && !(e = chanset_insert(set, channel, len)))
        return PS_ENOMEM;
    e->count += delta;
    if (e->count > 0)
        return e->count;
    HASH_DEL(*set, e);
    free(e);
    return 0;
}

int ps__chanset_pop(ps__chanset **set, char *buf)
{
    ps__chanset *e = *set;

    if (!e)
        return 0;
    memcpy(buf, e->name, e->len + 1);
    HASH_DEL(*set, e);
    free(e);
    return 1;
}

int ps__chanset_remove(ps__chanset **set, const char *channel)
{
    ps__chanset *e;

    HASH_FIND(hh, *set, channel, strlen(channel), e);
    if (!e)
        return 0;
    HASH_DEL(*set, e);
    free(e);
    return 1;
}

int ps__chanset_has(const ps__chanset *set, const char *channel, size_t len)
{
    const ps__chanset *e;

    HASH_FIND(hh, set, channel, len, e);
    return e != NULL;
}

size_t ps__chanset_count(const ps__chanset *set)
{
    return HASH_COUNT(set);
}

void ps__chanset_foreach(const ps__chanset *set, ps_subs_channel_cb *fn, void *arg)
{
    const ps__chanset *e;

    for (e = set; e; e = e->hh.next)
        fn(arg, e->name);
}

void ps__chanset_clear(ps__chanset **set)
{
    ps__chanset *e, *tmp;

    HASH_ITER(hh, *set, e, tmp)
    {
        HASH_DEL(*set, e);
        free(e);
    }
}
