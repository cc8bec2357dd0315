/*
 * The subscription table of one process: which local subscribers (gateway
 * connections, opaque here) hold which channels. The gateway asks it two
 * things on the hot path: "who gets this message?" (foreach over a
 * channel) and "is this the first/last holder?" (so that it subscribes on
 * the bus only while some local client holds the channel).
 *
 * Two uthash tables, O(1) to add to and remove from:
 *   - channels, by name;
 *   - subscribers, by pointer.
 * A membership (the pair) sits on two intrusive lists, its channel's and its
 * subscriber's, so that fan-out walks one channel and a closing connection
 * walks only its own channels. One hash table per channel or per subscriber
 * would cost a bucket array each (over 500 bytes); a list link costs 16.
 * Finding one pair walks the shorter of its two lists: a connection holds
 * at most --max-subscriptions channels, so this is short, and a third table
 * keyed by the pair cost 56 bytes of every membership, two per idle
 * connection (its own user channel and one more).
 *
 * Each membership and each channel carries one pointer for the caller (the
 * gateway's per-subscription and per-channel state), so that it needs no
 * second table keyed the same way. The table never frees those: every
 * removal reports them (ps_subs_removal) for the caller to free.
 *
 * uthash runs in non-fatal OOM mode: an add that cannot grow a table
 * reports PS_ENOMEM instead of exiting the process.
 */
#include <stdlib.h>
#include <string.h>

#define HASH_NONFATAL_OOM 1
#include <uthash.h>

#include "pubsub/pubsub.h"

typedef struct member member;

typedef struct channel {
    UT_hash_handle hh; /* in ps_subs.channels, by name */
    member *head;      /* its memberships */
    size_t n;
    void *data; /* the caller's: ps_subs_channel_data */
    size_t len;
    char name[];
} channel;

typedef struct subscriber {
    UT_hash_handle hh; /* in ps_subs.subscribers, by ptr */
    void *ptr;
    member *head;
    size_t n;
} subscriber;

struct member_key {
    channel *ch;
    subscriber *sr;
};

struct member {
    struct member_key key;
    member *ch_prev, *ch_next; /* on key.ch's list */
    member *sr_prev, *sr_next; /* on key.sr's list */
    void *data;                /* the caller's: ps_subs_link_data */
};

struct ps_subs {
    channel *channels;
    subscriber *subscribers;
    size_t members; /* memberships, for ps_subs_pairs */
};

ps_subs *ps_subs_new(void)
{
    return calloc(1, sizeof(ps_subs));
}

/* ------------------------------------------------------------ lookups */

static channel *find_channel(const ps_subs *s, const char *name)
{
    channel *ch;

    HASH_FIND(hh, s->channels, name, strlen(name), ch);
    return ch;
}

static subscriber *find_subscriber(const ps_subs *s, const void *ptr)
{
    subscriber *sr;

    HASH_FIND_PTR(s->subscribers, &ptr, sr);
    return sr;
}

static member *find_member(channel *ch, subscriber *sr)
{
    member *m;

    if (sr->n <= ch->n) {
        for (m = sr->head; m && m->key.ch != ch; m = m->sr_next)
            ;
    } else {
        for (m = ch->head; m && m->key.sr != sr; m = m->ch_next)
            ;
    }
    return m;
}

/* ------------------------------------------------------------ creation */

static channel *get_channel(ps_subs *s, const char *name)
{
    size_t len = strlen(name);
    channel *ch = find_channel(s, name);

    if (ch)
        return ch;
    ch = calloc(1, sizeof(*ch) + len + 1);
    if (!ch)
        return NULL;
    ch->len = len;
    memcpy(ch->name, name, len + 1);
    HASH_ADD_KEYPTR(hh, s->channels, ch->name, len, ch);
    if (!ch->hh.tbl) {
        free(ch);
        return NULL;
    }
    return ch;
}

static subscriber *get_subscriber(ps_subs *s, void *ptr)
{
    subscriber *sr = find_subscriber(s, ptr);

    if (sr)
        return sr;
    sr = calloc(1, sizeof(*sr));
    if (!sr)
        return NULL;
    sr->ptr = ptr;
    HASH_ADD_PTR(s->subscribers, ptr, sr);
    if (!sr->hh.tbl) {
        free(sr);
        return NULL;
    }
    return sr;
}

/* Frees a channel or subscriber record that a failed add left empty. */
static void drop_if_empty(ps_subs *s, channel *ch, subscriber *sr)
{
    if (ch && !ch->head) {
        HASH_DEL(s->channels, ch);
        free(ch);
    }
    if (sr && !sr->head) {
        HASH_DEL(s->subscribers, sr);
        free(sr);
    }
}

static void link_member(member *m)
{
    channel *ch = m->key.ch;
    subscriber *sr = m->key.sr;

    m->ch_prev = NULL;
    m->ch_next = ch->head;
    if (ch->head)
        ch->head->ch_prev = m;
    ch->head = m;
    ch->n++;
    m->sr_prev = NULL;
    m->sr_next = sr->head;
    if (sr->head)
        sr->head->sr_prev = m;
    sr->head = m;
    sr->n++;
}

static int add_member(ps_subs *s, channel *ch, subscriber *sr)
{
    member *m = calloc(1, sizeof(*m));

    if (!m)
        return PS_ENOMEM;
    m->key.ch = ch;
    m->key.sr = sr;
    s->members++;
    link_member(m);
    return PS_OK;
}

int ps_subs_add(ps_subs *s, const char *channel_name, void *ptr)
{
    channel *ch;
    subscriber *sr;
    int first;

    if (!s || !channel_name || !ptr)
        return PS_EINVAL;
    ch = get_channel(s, channel_name);
    sr = ch ? get_subscriber(s, ptr) : NULL;
    if (!ch || !sr) {
        drop_if_empty(s, ch, sr);
        return PS_ENOMEM;
    }
    if (find_member(ch, sr))
        return PS_EEXISTS;
    first = ch->head == NULL;
    if (add_member(s, ch, sr) < 0) {
        drop_if_empty(s, ch, sr);
        return PS_ENOMEM;
    }
    return first;
}

/* ------------------------------------------------------------ removal */

static void unlink_from_channel(member *m)
{
    channel *ch = m->key.ch;

    if (m->ch_prev)
        m->ch_prev->ch_next = m->ch_next;
    else
        ch->head = m->ch_next;
    if (m->ch_next)
        m->ch_next->ch_prev = m->ch_prev;
    ch->n--;
}

static void unlink_from_subscriber(member *m)
{
    subscriber *sr = m->key.sr;

    if (m->sr_prev)
        m->sr_prev->sr_next = m->sr_next;
    else
        sr->head = m->sr_next;
    if (m->sr_next)
        m->sr_next->sr_prev = m->sr_prev;
    sr->n--;
}

/* Takes m out of its channel's list, frees it, and
 * says what went. The channel record leaves the table when it is empty;
 * freeing it is the caller's, after the report was used. */
static void drop_member(ps_subs *s, member *m, ps_subs_removal *r)
{
    channel *ch = m->key.ch;

    s->members--;
    unlink_from_channel(m);
    r->link_data = m->data;
    free(m);
    r->channel_empty = ch->head == NULL;
    r->channel_data = r->channel_empty ? ch->data : NULL;
    if (r->channel_empty)
        HASH_DEL(s->channels, ch);
}

int ps_subs_remove(ps_subs *s, const char *channel_name, void *ptr, ps_subs_removal *out)
{
    ps_subs_removal r;
    channel *ch;
    subscriber *sr;
    member *m;

    if (!s || !channel_name || !ptr)
        return PS_EINVAL;
    ch = find_channel(s, channel_name);
    sr = find_subscriber(s, ptr);
    m = ch && sr ? find_member(ch, sr) : NULL;
    if (!m)
        return PS_ENOENT;
    unlink_from_subscriber(m);
    drop_member(s, m, &r);
    if (!sr->head) {
        HASH_DEL(s->subscribers, sr);
        free(sr);
    }
    if (r.channel_empty)
        free(ch);
    r.channel = channel_name;
    if (out)
        *out = r;
    return r.channel_empty;
}

void ps_subs_remove_all(ps_subs *s, void *ptr, ps_subs_removed_cb *cb, void *arg)
{
    subscriber *sr;
    member *m;

    if (!s || !(sr = find_subscriber(s, ptr)))
        return;
    /* The subscriber record goes first: the callback then already sees a
     * table without it. */
    HASH_DEL(s->subscribers, sr);
    while ((m = sr->head) != NULL) {
        channel *ch = m->key.ch;
        ps_subs_removal r;
        sr->head = m->sr_next;
        drop_member(s, m, &r);
        r.channel = ch->name;
        if (cb)
            cb(arg, &r);
        if (r.channel_empty)
            free(ch);
    }
    free(sr);
}

void ps_subs_free(ps_subs *s)
{
    channel *ch, *ctmp;
    subscriber *sr, *stmp;
    member *m;

    if (!s)
        return;
    HASH_ITER(hh, s->subscribers, sr, stmp)
    {
        while ((m = sr->head) != NULL) {
            sr->head = m->sr_next;
            free(m);
        }
        HASH_DEL(s->subscribers, sr);
        free(sr);
    }
    HASH_ITER(hh, s->channels, ch, ctmp)
    {
        HASH_DEL(s->channels, ch);
        free(ch);
    }
    free(s);
}

/* ------------------------------------------------------------ queries */

int ps_subs_has(const ps_subs *s, const char *channel_name, const void *ptr)
{
    channel *ch;
    subscriber *sr;

    if (!s || !channel_name || !ptr)
        return 0;
    ch = find_channel(s, channel_name);
    sr = find_subscriber(s, ptr);
    return ch && sr && find_member(ch, sr) != NULL;
}

size_t ps_subs_count(const ps_subs *s, const void *ptr)
{
    subscriber *sr = s ? find_subscriber(s, ptr) : NULL;

    return sr ? sr->n : 0;
}

size_t ps_subs_channel_size(const ps_subs *s, const char *channel_name)
{
    channel *ch = s && channel_name ? find_channel(s, channel_name) : NULL;

    return ch ? ch->n : 0;
}

size_t ps_subs_channels(const ps_subs *s)
{
    return s ? HASH_COUNT(s->channels) : 0;
}

size_t ps_subs_pairs(const ps_subs *s)
{
    return s ? s->members : 0;
}

void **ps_subs_link_data(ps_subs *s, const char *channel_name, const void *ptr)
{
    channel *ch;
    subscriber *sr;
    member *m;

    if (!s || !channel_name || !ptr)
        return NULL;
    ch = find_channel(s, channel_name);
    sr = find_subscriber(s, ptr);
    m = ch && sr ? find_member(ch, sr) : NULL;
    return m ? &m->data : NULL;
}

void **ps_subs_channel_data(ps_subs *s, const char *channel_name)
{
    channel *ch = s && channel_name ? find_channel(s, channel_name) : NULL;

    return ch ? &ch->data : NULL;
}

/* The table is const to fn's caller, not to fn: the slots it is handed are
 * the caller's own data. */
size_t ps_subs_foreach(const ps_subs *s, const char *channel_name, ps_subs_each_cb *fn, void *arg)
{
    channel *ch = s && channel_name ? find_channel(s, channel_name) : NULL;
    member *m;
    size_t n = 0;

    for (m = ch ? ch->head : NULL; m; m = m->ch_next, n++)
        fn(arg, m->key.sr->ptr, &m->data);
    return n;
}

void ps_subs_foreach_channel(const ps_subs *s, ps_subs_channel_cb *fn, void *arg)
{
    const channel *ch;

    for (ch = s ? s->channels : NULL; ch; ch = ch->hh.next)
        fn(arg, ch->name);
}

size_t ps_subs_foreach_of(const ps_subs *s, const void *ptr, ps_subs_held_cb *fn, void *arg)
{
    subscriber *sr = s ? find_subscriber(s, ptr) : NULL;
    size_t n = 0;

    for (member *m = sr ? sr->head : NULL; m; m = m->sr_next, n++)
        fn(arg, m->key.ch->name, &m->data);
    return n;
}
