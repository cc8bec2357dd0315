/*
 * channels: what a process knows about each channel its clients hold, and
 * how messages reach them in order, once each.
 *
 * A subscription goes WAITING (the bus has not confirmed the channel yet) ->
 * READING (history channels: one atomic read of the stream is in flight) ->
 * LIVE. Because the read starts only after the bus confirmed the
 * subscription, every message published after the read's snapshot arrives
 * live; live messages that arrive while the read is in flight are held back
 * and merged with the stored ones by offset (ps_merge), so the client gets no
 * gap and no duplicate. A LIVE subscription drops any offset it already has.
 *
 * A channel with history remembers the last offset it delivered live. A jump
 * (a message Redis lost, or an outage of the bus) makes the channel fill the
 * gap from the stream before delivering more; if the stream no longer has
 * what is missing, every subscriber gets {"code":"gap"} and is unsubscribed,
 * so its client resubscribes with `since` and learns recovered:false.
 *
 * Ownership: gw_channel and gw_sub live in the subscription table's data
 * slots and are freed here when the table reports their removal. A history
 * read names its subscription by (connection serial, channel, token), never
 * by pointer, because either may be gone when Redis answers.
 */
#include "channels.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

/* A live message held back while history is read. */
typedef struct held {
    int64_t offset;
    ps_frame *frame;
} held;

typedef struct held_list {
    held *v;
    size_t n, cap;
} held_list;

typedef struct gw_channel {
    const gw_namespace *ns;        /* NULL: the channel keeps no history */
    int active;                    /* the bus confirmed the subscription */
    int confirmed_once;            /* a later confirmation is a reconnect */
    int64_t last;                  /* last offset delivered live; 0: none yet */
    char epoch[PS_EPOCH_MAX + 1];
    int filling;                   /* a gap fill is in flight */
    int refill;                    /* a fill failed on the link: retry when the bus is up */
    uint64_t fill_token;
    held_list held;                /* live messages held back during the fill */
} gw_channel;

enum sub_state { SUB_WAITING, SUB_READING, SUB_LIVE };

/* What a subscription needs only until it is live: the `subscribed` reply
 * it owes and its history read. Kept apart so that the many idle live
 * subscriptions do not carry it (about 140 bytes each). */
typedef struct sub_pending {
    int has_id;
    int64_t id;
    gw_since since;
    uint64_t token;                /* of the history read in flight */
    int overflow;                  /* more live messages than could be held */
    held_list held;                /* live messages held back during the read */
} sub_pending;

typedef struct gw_sub {
    enum sub_state state;
    int64_t exp;                   /* subscription token's exp; 0: by pattern, no end */
    int64_t last;                  /* last offset this subscriber got */
    char epoch[PS_EPOCH_MAX + 1];
    sub_pending *p;                /* while a reply is owed (WAITING, READING) */
} gw_sub;

/* Names a history read's target without pointing at it. */
typedef struct read_req {
    gw_server *srv;
    uint64_t serial; /* connection; 0 for a channel fill */
    uint64_t token;
    char channel[];
} read_req;

static void start_read(gw_server *s, gw_conn *c, const char *channel, gw_channel *ch,
                       gw_sub *sub);
static void start_fill(gw_server *s, const char *channel, gw_channel *ch);

/* ------------------------------------------------------------ small helpers */

static void held_clear(held_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        ps_frame_unref(l->v[i].frame);
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* Holds a reference to frame. Returns -1 past max (nothing held). */
static int held_push(held_list *l, int64_t offset, ps_frame *frame, size_t max)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        held *v;
        if (l->n >= max)
            return -1;
        v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = (held){offset, ps_frame_ref(frame)};
    return 0;
}

static size_t held_max(const gw_server *s)
{
    return (size_t)s->cfg->recovery_max + 1;
}

static read_req *read_req_new(gw_server *s, uint64_t serial, uint64_t token, const char *channel)
{
    size_t n = strlen(channel) + 1;
    read_req *r = malloc(sizeof(*r) + n);
    if (!r)
        return NULL;
    r->srv = s;
    r->serial = serial;
    r->token = token;
    memcpy(r->channel, channel, n);
    return r;
}

static ps_history_policy policy_of(const gw_namespace *ns)
{
    return (ps_history_policy){ns->size, ns->ttl_s};
}

static gw_channel *channel_of(gw_server *s, const char *channel)
{
    void **slot = ps_subs_channel_data(s->subs, channel);
    return slot ? *slot : NULL;
}

static gw_sub *sub_of(gw_server *s, const char *channel, gw_conn *c)
{
    void **slot = ps_subs_link_data(s->subs, channel, c);
    return slot ? *slot : NULL;
}

static gw_conn *conn_by_serial(gw_server *s, uint64_t serial)
{
    gw_conn *c = NULL;
    HASH_FIND(hh, s->conns, &serial, sizeof(serial), c);
    return c && c->state == GW_CONN_OPEN ? c : NULL;
}

/* ------------------------------------------------------------ replies */

static void reply_subscribed(gw_conn *c, const char *channel, gw_sub *sub, const ps_history *h,
                             int recovered)
{
    json_t *o = json_pack("{s:s,s:s}", "type", "subscribed", "channel", channel);
    if (!o)
        return;
    if (sub->p->has_id)
        json_object_set_new(o, "id", json_integer(sub->p->id));
    if (h) {
        json_object_set_new(o, "offset", json_integer(h->top));
        json_object_set_new(o, "epoch", json_string(h->epoch));
    }
    if (recovered >= 0)
        json_object_set_new(o, "recovered", json_boolean(recovered));
    gw_conn_send_owned(c, gw_frame_from_json(o, LWS_PRE));
    json_decref(o);
}

static void reply_error(gw_conn *c, int has_id, int64_t id, const char *code, const char *msg,
                        const char *channel)
{
    gw_conn_send_owned(c, gw_reply_error(has_id, id, code, msg, channel, LWS_PRE));
}

/* ------------------------------------------------------------ table changes */

static void free_pending(gw_sub *sub)
{
    if (sub->p) {
        held_clear(&sub->p->held);
        free(sub->p);
        sub->p = NULL;
    }
}

static void free_sub(gw_sub *sub)
{
    if (!sub)
        return;
    free_pending(sub);
    free(sub);
}

/* The subscription owes a reply (and may read history): its pending state
 * from the command. Returns -1 when memory ran out. */
static int set_pending(gw_sub *sub, const gw_cmd *cmd)
{
    sub->p = calloc(1, sizeof(*sub->p));
    if (!sub->p)
        return -1;
    sub->p->has_id = cmd->has_id;
    sub->p->id = cmd->id;
    sub->p->since = cmd->since;
    return 0;
}

static void free_channel(gw_channel *ch)
{
    if (!ch)
        return;
    held_clear(&ch->held);
    free(ch);
}

/* Frees what a removal took away and leaves the bus channel when empty. */
static void on_removed(void *arg, const ps_subs_removal *r)
{
    gw_server *s = arg;
    free_sub(r->link_data);
    if (!r->channel_empty)
        return;
    free_channel(r->channel_data);
    if (s->stopping != GW_STOP_DONE) /* the bus is stopped then */
        ps_bus_unsubscribe(s->bus, r->channel);
}

int gw_channels_unsubscribe(gw_server *s, gw_conn *c, const char *channel)
{
    ps_subs_removal r;
    int rc = ps_subs_remove(s->subs, channel, c, &r);
    if (rc < 0)
        return rc;
    on_removed(s, &r);
    return 0;
}

void gw_channels_remove_conn(gw_server *s, gw_conn *c)
{
    ps_subs_remove_all(s->subs, c, on_removed, s);
}

/* Adds the pair and its state. Returns the new subscription, or NULL with
 * *err set (PS_EEXISTS when c already holds channel). */
static gw_sub *add_sub(gw_server *s, gw_conn *c, const char *channel, int *err)
{
    gw_sub *sub = calloc(1, sizeof(*sub));
    gw_channel *ch = NULL;
    int rc;

    if (!sub) {
        *err = PS_ENOMEM;
        return NULL;
    }
    rc = ps_subs_add(s->subs, channel, c);
    if (rc < 0) {
        free(sub);
        *err = rc;
        return NULL;
    }
    *ps_subs_link_data(s->subs, channel, c) = sub;
    if (rc == 1) {
        ch = calloc(1, sizeof(*ch));
        if (ch)
            ch->ns = gw_config_namespace(s->cfg, channel);
        *ps_subs_channel_data(s->subs, channel) = ch;
        rc = ch ? ps_bus_subscribe(s->bus, channel) : PS_ENOMEM;
        if (rc < 0) {
            gw_channels_unsubscribe(s, c, channel);
            *err = rc;
            return NULL;
        }
    }
    return sub;
}

/* ------------------------------------------------------------ subscribing */

/* The channel is confirmed: the subscription can go live, through a history
 * read when the channel keeps history and the client asked for anything. */
static void activate(gw_server *s, gw_conn *c, const char *channel, gw_channel *ch, gw_sub *sub)
{
    if (ch->ns) {
        start_read(s, c, channel, ch, sub);
        return;
    }
    sub->state = SUB_LIVE;
    if (sub->p)
        reply_subscribed(c, channel, sub, NULL, sub->p->since.present ? 0 : -1);
    free_pending(sub);
}

int gw_channels_subscribe_user(gw_server *s, gw_conn *c, const char *channel)
{
    int err = 0;
    gw_sub *sub = add_sub(s, c, channel, &err);
    if (!sub)
        return err;
    /* The user channel is live from the first moment: no reply is owed and
     * no state to restore, so no history read either. */
    sub->state = SUB_LIVE;
    return 0;
}

/* A subscribe for a channel c already holds: answer again, and on a history
 * channel read again (the client may be asking to recover with since). */
static void resubscribe(gw_server *s, gw_conn *c, const gw_cmd *cmd, gw_channel *ch, gw_sub *sub)
{
    if (sub->state != SUB_LIVE) {
        reply_error(c, cmd->has_id, cmd->id, GW_ERR_BAD_REQUEST,
                    "a subscribe to this channel is already in progress", cmd->channel);
        return;
    }
    if (set_pending(sub, cmd) < 0) {
        reply_error(c, cmd->has_id, cmd->id, GW_ERR_UNAVAILABLE, "out of memory", cmd->channel);
        return;
    }
    activate(s, c, cmd->channel, ch, sub);
}

/* The subscription now ends with the token that allowed it (or never). The
 * connection keeps only the earliest such exp, so the tick reads one number
 * per connection; a later or cleared exp is found by the next expiry walk. */
static void set_expiry(gw_conn *c, gw_sub *sub, int64_t token_exp)
{
    sub->exp = token_exp;
    if (token_exp && (!c->sub_exp || token_exp < c->sub_exp))
        c->sub_exp = token_exp;
}

void gw_channels_subscribe(gw_server *s, gw_conn *c, const gw_cmd *cmd, int64_t token_exp)
{
    int err = 0;
    gw_channel *ch;
    gw_sub *sub = add_sub(s, c, cmd->channel, &err);

    if (!sub && err == PS_EEXISTS) {
        sub = sub_of(s, cmd->channel, c);
        if (sub->state == SUB_LIVE)
            set_expiry(c, sub, token_exp);
        resubscribe(s, c, cmd, channel_of(s, cmd->channel), sub);
        return;
    }
    if (!sub) {
        reply_error(c, cmd->has_id, cmd->id, GW_ERR_UNAVAILABLE, ps_strerror(err), cmd->channel);
        return;
    }
    if (set_pending(sub, cmd) < 0) {
        reply_error(c, cmd->has_id, cmd->id, GW_ERR_UNAVAILABLE, "out of memory", cmd->channel);
        gw_channels_unsubscribe(s, c, cmd->channel);
        return;
    }
    set_expiry(c, sub, token_exp);
    ch = channel_of(s, cmd->channel);
    if (ch->active)
        activate(s, c, cmd->channel, ch, sub);
}

/* ------------------------------------------------------------ delivering */

/* The client frame of a stored message, built for this one subscriber. */
static ps_frame *stored_frame(const ps_history_entry *e, const char *channel)
{
    ps_envelope env;
    ps_frame *f;
    if (ps_envelope_parse(e->payload, e->len, &env) != PS_OK)
        return NULL;
    f = ps_envelope_frame(&env, channel, LWS_PRE);
    ps_envelope_clear(&env);
    return f;
}

typedef struct delivery {
    gw_server *srv;
    int64_t offset; /* -1: a message without history */
    const char *epoch;
    ps_frame *frame;
} delivery;

static void deliver_live(gw_conn *c, gw_sub *sub, const delivery *d)
{
    if (d->offset >= 0) {
        if (strcmp(sub->epoch, d->epoch) != 0) {
            /* A new epoch: the old offsets mean nothing any more. */
            snprintf(sub->epoch, sizeof(sub->epoch), "%s", d->epoch);
            sub->last = 0;
        }
        if (d->offset <= sub->last)
            return; /* already delivered (from the stream) */
        sub->last = d->offset;
    }
    if (gw_conn_send(c, d->frame) == 0)
        d->srv->counters.deliveries++;
}

static void deliver_one(void *arg, void *subscriber, void **link_data)
{
    const delivery *d = arg;
    gw_conn *c = subscriber;
    gw_sub *sub = *link_data;

    if (c->state != GW_CONN_OPEN || !sub)
        return;
    if (sub->state == SUB_LIVE) {
        deliver_live(c, sub, d);
    } else if (sub->state == SUB_READING) {
        if (d->offset < 0) {
            gw_conn_send(c, d->frame); /* no offset: nothing to merge it with */
        } else if (!sub->p->overflow &&
                   held_push(&sub->p->held, d->offset, d->frame, held_max(d->srv)) < 0) {
            sub->p->overflow = 1;
        }
    }
}

static void fan_out(gw_server *s, const char *channel, int64_t offset, const char *epoch,
                    ps_frame *frame)
{
    delivery d = {s, offset, epoch ? epoch : "", frame};
    ps_subs_foreach(s->subs, channel, deliver_one, &d);
}

/* Channel-level order for history messages: drops what was delivered and
 * starts a fill on a jump. Returns 1 when the message may be fanned out. */
static int channel_admit(gw_server *s, const char *channel, gw_channel *ch, int64_t offset,
                         const char *epoch, ps_frame *frame)
{
    int same_epoch = strcmp(ch->epoch, epoch) == 0;
    if (ch->filling || ch->refill) {
        if (held_push(&ch->held, offset, frame, held_max(s)) < 0)
            gw_warn("fill_overflow", NULL, "dropped a message on %s during a gap fill", channel);
        return 0;
    }
    if (ch->last && same_epoch && offset <= ch->last)
        return 0;
    if (ch->last && same_epoch && offset > ch->last + 1) {
        gw_warn("gap", NULL, "%s jumped from offset %lld to %lld; filling from the stream",
                channel, (long long)ch->last, (long long)offset);
        held_push(&ch->held, offset, frame, held_max(s));
        start_fill(s, channel, ch);
        return 0;
    }
    ch->last = offset;
    snprintf(ch->epoch, sizeof(ch->epoch), "%s", epoch);
    return 1;
}

void gw_channels_on_message(void *udata, const char *channel, const char *payload, size_t len)
{
    gw_server *s = udata;
    gw_channel *ch = channel_of(s, channel);
    ps_envelope env;
    ps_frame *frame;
    int64_t offset;

    s->counters.messages_in++;
    if (ps_envelope_parse(payload, len, &env) != PS_OK) {
        s->counters.bad_envelopes++;
        gw_warn("bad_envelope", NULL, "dropped a payload on %s that is not {\"data\":...}",
                channel);
        return;
    }
    frame = ps_envelope_frame(&env, channel, LWS_PRE);
    offset = env.epoch ? env.offset : -1;
    gw_metrics_latency(s, env.ts_ms);
    if (!frame) {
        gw_error("out_of_memory", NULL, "dropped a message on %s", channel);
    } else if (!ch || !ch->ns || offset < 0 ||
               channel_admit(s, channel, ch, offset, env.epoch, frame)) {
        fan_out(s, channel, offset, env.epoch, frame);
    }
    ps_frame_unref(frame);
    ps_envelope_clear(&env);
}

/* ------------------------------------------------------------ history reads */

/* Sends a merged run of stored and held messages; returns the last offset. */
static int64_t send_merged(gw_conn *c, const char *channel, const ps_history *h,
                           const ps_merge_item *out, size_t n, int64_t last)
{
    for (size_t i = 0; i < n; i++) {
        const ps_history_entry *e = out[i].item;
        int stored = e >= h->entries && e < h->entries + h->n;
        if (stored)
            gw_conn_send_owned(c, stored_frame(e, channel));
        else
            gw_conn_send(c, (ps_frame *)out[i].item);
        last = out[i].offset;
    }
    return last;
}

/* Merges the stored entries after `since` (with_stored) and the held live
 * messages into *out (caller frees). Returns the count, or -1 when memory
 * ran out; *gap tells whether an offset is missing. */
static long merge_held(const held_list *live, const ps_history *h, int64_t since, int with_stored,
                       ps_merge_item **out, int *gap)
{
    size_t ns = with_stored ? h->n : 0, nl = live->n;
    ps_merge_item *a = calloc(ns + 1, sizeof(*a)), *b = calloc(nl + 1, sizeof(*b));
    long n = -1;

    *out = calloc(ns + nl + 1, sizeof(**out));
    *gap = 0;
    if (a && b && *out) {
        for (size_t i = 0; i < ns; i++)
            a[i] = (ps_merge_item){h->entries[i].offset, (void *)&h->entries[i]};
        for (size_t i = 0; i < nl; i++)
            b[i] = (ps_merge_item){live->v[i].offset, live->v[i].frame};
        n = (long)ps_merge(since, a, ns, b, nl, *out, gap);
    }
    free(a);
    free(b);
    return n;
}

/* Sends the held live messages after `from` (no stored ones). */
static void send_held_after(gw_server *s, gw_conn *c, const char *channel, gw_sub *sub,
                            const ps_history *h, int64_t from)
{
    ps_merge_item *out;
    int gap;
    long n = merge_held(&sub->p->held, h, from, 0, &out, &gap);
    if (n > 0) {
        sub->last = send_merged(c, channel, h, out, (size_t)n, sub->last);
        s->counters.deliveries += (uint64_t)n;
    }
    free(out);
}

static int can_recover(const gw_server *s, const gw_sub *sub, const ps_history *h)
{
    int64_t since = sub->p->since.offset;
    if (strcmp(h->epoch, sub->p->since.epoch) != 0 || since > h->top || sub->p->overflow)
        return 0;
    if (since == h->top)
        return 1;
    return h->first && h->first <= since + 1 && h->top - since <= s->cfg->recovery_max;
}

/* subscribe with since: stored messages after since, then the held live
 * ones, merged; or recovered:false and only what is newer than the top. */
static void finish_recovery(gw_server *s, gw_conn *c, const char *channel, gw_sub *sub,
                            const ps_history *h)
{
    ps_merge_item *out = NULL;
    int gap = 0, recovered = can_recover(s, sub, h);
    long n = 0;

    if (recovered) {
        n = merge_held(&sub->p->held, h, sub->p->since.offset, 1, &out, &gap);
        recovered = n >= 0 && !gap;
    }
    reply_subscribed(c, channel, sub, h, recovered);
    sub->last = recovered ? sub->p->since.offset : h->top;
    if (recovered) {
        sub->last = send_merged(c, channel, h, out, (size_t)n, sub->last);
        s->counters.deliveries += (uint64_t)n;
    } else {
        send_held_after(s, c, channel, sub, h, h->top);
    }
    free(out);
}

/* subscribe without since: the current position, the latest message where
 * the namespace delivers latest state, then what came live after it. */
static void finish_latest(gw_server *s, gw_conn *c, const char *channel, gw_channel *ch,
                          gw_sub *sub, const ps_history *h)
{
    int64_t from = h->top;
    reply_subscribed(c, channel, sub, h, -1);
    if (ch->ns->latest && h->n > 0) {
        gw_conn_send_owned(c, stored_frame(&h->entries[h->n - 1], channel));
        from = h->entries[h->n - 1].offset;
    }
    sub->last = from;
    send_held_after(s, c, channel, sub, h, from);
}

static void finish_read(gw_server *s, gw_conn *c, const char *channel, gw_channel *ch,
                        gw_sub *sub, const ps_history *h)
{
    snprintf(sub->epoch, sizeof(sub->epoch), "%s", h->epoch);
    if (sub->p->since.present)
        finish_recovery(s, c, channel, sub, h);
    else
        finish_latest(s, c, channel, ch, sub, h);
    free_pending(sub);
    sub->state = SUB_LIVE;
}

static void on_read(void *udata, int status, const ps_history *h)
{
    read_req *r = udata;
    gw_server *s = r->srv;
    gw_conn *c = conn_by_serial(s, r->serial);
    gw_sub *sub = c ? sub_of(s, r->channel, c) : NULL;

    if (sub && sub->state == SUB_READING && sub->p->token == r->token) {
        if (status == PS_OK) {
            finish_read(s, c, r->channel, channel_of(s, r->channel), sub, h);
        } else {
            reply_error(c, sub->p->has_id, sub->p->id, GW_ERR_UNAVAILABLE,
                        "history unavailable, retry", r->channel);
            gw_channels_unsubscribe(s, c, r->channel);
        }
    }
    free(r);
}

static void start_read(gw_server *s, gw_conn *c, const char *channel, gw_channel *ch,
                       gw_sub *sub)
{
    ps_history_policy p = policy_of(ch->ns);
    int64_t since = sub->p->since.present ? sub->p->since.offset : -1;
    read_req *r;
    int rc;

    sub->state = SUB_READING;
    sub->p->token = ++s->next_token;
    r = read_req_new(s, c->serial, sub->p->token, channel);
    rc = r ? ps_bus_history(s->bus, channel, since, (size_t)s->cfg->recovery_max + 1, &p,
                            on_read, r)
           : PS_ENOMEM;
    if (rc != PS_OK) {
        free(r);
        reply_error(c, sub->p->has_id, sub->p->id, GW_ERR_UNAVAILABLE, ps_strerror(rc), channel);
        gw_channels_unsubscribe(s, c, channel);
    }
}

/* ------------------------------------------------------------ gap fills */

typedef struct gap_notice {
    gw_conn **conns;
    size_t n, cap;
} gap_notice;

static void collect_conn(void *arg, void *subscriber, void **link_data)
{
    gap_notice *g = arg;
    (void)link_data;
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        gw_conn **v = realloc(g->conns, cap * sizeof(*v));
        if (!v)
            return;
        g->conns = v;
        g->cap = cap;
    }
    g->conns[g->n++] = subscriber;
}

/* The stream cannot close the gap: tell every subscriber and unsubscribe it,
 * so its client resubscribes with since and hears recovered:false. The
 * channel (and ch) is freed when the last subscriber leaves. */
static void fill_failed(gw_server *s, const char *channel)
{
    gap_notice g = {0};
    ps_subs_foreach(s->subs, channel, collect_conn, &g);
    gw_warn("gap_unrecoverable", NULL, "%s: telling %zu subscribers to resubscribe", channel,
            g.n);
    for (size_t i = 0; i < g.n; i++) {
        reply_error(g.conns[i], 0, 0, "gap", "messages were lost; subscribe again with since",
                    channel);
        gw_channels_unsubscribe(s, g.conns[i], channel);
    }
    free(g.conns);
}

/* Delivers the stream's missing messages, then the held live ones. */
static int fill_deliver(gw_server *s, const char *channel, gw_channel *ch, const ps_history *h)
{
    ps_merge_item *out;
    int gap;
    long n = merge_held(&ch->held, h, ch->last, 1, &out, &gap);

    if (n < 0 || gap) {
        free(out);
        return -1;
    }
    for (long i = 0; i < n; i++) {
        const ps_history_entry *e = out[i].item;
        int stored = e >= h->entries && e < h->entries + h->n;
        ps_frame *f = stored ? stored_frame(e, channel) : ps_frame_ref(out[i].item);
        ch->last = out[i].offset;
        if (f)
            fan_out(s, channel, out[i].offset, h->epoch, f);
        ps_frame_unref(f);
    }
    free(out);
    return 0;
}

static void on_fill(void *udata, int status, const ps_history *h)
{
    read_req *r = udata;
    gw_server *s = r->srv;
    gw_channel *ch = channel_of(s, r->channel);
    int ok;

    if (!ch || !ch->filling || ch->fill_token != r->token) {
        free(r);
        return;
    }
    if (status == PS_OK && strcmp(h->epoch, ch->epoch) != 0) {
        /* The history was lost (Redis restarted empty, FLUSHALL, expiry):
         * the old offsets mean nothing. Catch up on the new epoch from its
         * start; subscribers see the new epoch and know to reload. */
        gw_warn("epoch_changed", NULL, "%s: history lost, new epoch %s", r->channel, h->epoch);
        snprintf(ch->epoch, sizeof(ch->epoch), "%s", h->epoch);
        ch->last = 0;
        start_fill(s, r->channel, ch);
        free(r);
        return;
    }
    if (status != PS_OK) {
        /* The link failed, not the history: keep holding and read again once
         * the bus is back (gw_channels_on_bus_up). */
        ch->filling = 0;
        ch->refill = 1;
        free(r);
        return;
    }
    ok = strcmp(h->epoch, ch->epoch) == 0 && h->top >= ch->last &&
         (h->top == ch->last || (h->first && h->first <= ch->last + 1)) &&
         h->top - ch->last <= s->cfg->recovery_max && fill_deliver(s, r->channel, ch, h) == 0;
    ch->filling = 0;
    held_clear(&ch->held);
    if (!ok)
        fill_failed(s, r->channel);
    free(r);
}

static void start_fill(gw_server *s, const char *channel, gw_channel *ch)
{
    ps_history_policy p = policy_of(ch->ns);
    read_req *r;
    int rc;

    ch->filling = 1;
    ch->fill_token = ++s->next_token;
    r = read_req_new(s, 0, ch->fill_token, channel);
    rc = r ? ps_bus_history(s->bus, channel, ch->last, (size_t)s->cfg->recovery_max + 1, &p,
                            on_fill, r)
           : PS_ENOMEM;
    if (rc == PS_EUNAVAILABLE) {
        free(r);
        ch->filling = 0;
        ch->refill = 1;
    } else if (rc != PS_OK) {
        free(r);
        ch->filling = 0;
        held_clear(&ch->held);
        fill_failed(s, channel);
    }
}

/* ------------------------------------------------------------ bus state */

static void collect_waiting(void *arg, void *subscriber, void **link_data)
{
    gw_sub *sub = *link_data;
    if (sub && sub->state == SUB_WAITING)
        collect_conn(arg, subscriber, link_data);
}

void gw_channels_on_subscribed(void *udata, const char *channel)
{
    gw_server *s = udata;
    gw_channel *ch = channel_of(s, channel);
    gap_notice waiting = {0};
    int reconnect;

    if (!ch)
        return;
    reconnect = ch->confirmed_once;
    ch->active = ch->confirmed_once = 1;
    /* Activating may unsubscribe (a failed read), which changes the table:
     * collect first, act after. */
    ps_subs_foreach(s->subs, channel, collect_waiting, &waiting);
    for (size_t i = 0; i < waiting.n; i++) {
        gw_sub *sub = sub_of(s, channel, waiting.conns[i]);
        if (sub && sub->state == SUB_WAITING && sub->p)
            activate(s, waiting.conns[i], channel, ch, sub);
    }
    free(waiting.conns);
    /* After an outage the stream has what was published meanwhile. */
    ch = channel_of(s, channel);
    if (reconnect && ch && ch->ns && ch->last && !ch->filling)
        start_fill(s, channel, ch);
}

static void refill(void *arg, const char *channel)
{
    gw_server *s = arg;
    gw_channel *ch = channel_of(s, channel);
    if (ch && ch->refill && !ch->filling) {
        ch->refill = 0;
        start_fill(s, channel, ch);
    }
}

void gw_channels_on_bus_up(gw_server *s)
{
    ps_subs_foreach_channel(s->subs, refill, s);
}

static void deactivate(void *arg, const char *channel)
{
    gw_channel *ch = channel_of(arg, channel);
    if (ch)
        ch->active = 0;
}

void gw_channels_on_bus_down(gw_server *s)
{
    ps_subs_foreach_channel(s->subs, deactivate, s);
}

/* ------------------------------------------------------------ token expiry */

typedef struct expiry_walk {
    gw_server *srv;
    gw_conn *conn;
    int64_t now_s;
    int64_t next;     /* earliest exp still to come; 0: none */
    char **ended;     /* channels whose token expired */
    size_t n, cap;
    int oom;
} expiry_walk;

static void check_expiry(void *arg, const char *channel, void **link_data)
{
    expiry_walk *w = arg;
    gw_sub *sub = *link_data;
    char **v;
    if (!sub || !sub->exp)
        return;
    if (w->now_s < sub->exp + w->srv->cfg->jwt_leeway_seconds) {
        if (!w->next || sub->exp < w->next)
            w->next = sub->exp;
        return;
    }
    /* A refreshed connection token may allow the channel by itself now. */
    if (auth_can_subscribe(&w->conn->claims, channel)) {
        sub->exp = 0;
        return;
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 4;
        if (!(v = realloc(w->ended, cap * sizeof(*v)))) {
            w->oom = 1;
            return;
        }
        w->ended = v;
        w->cap = cap;
    }
    if (!(w->ended[w->n] = strdup(channel)))
        w->oom = 1;
    else
        w->n++;
}

void gw_channels_expire(gw_server *s, gw_conn *c, int64_t now_s)
{
    expiry_walk w = {.srv = s, .conn = c, .now_s = now_s};
    /* The table may not change during the walk: collect, then end them. */
    ps_subs_foreach_of(s->subs, c, check_expiry, &w);
    for (size_t i = 0; i < w.n; i++) {
        s->counters.sub_token_expiries++;
        gw_info("subscription_expired", c->id, "user %s channel %s", c->claims.sub,
                w.ended[i]);
        gw_channels_unsubscribe(s, c, w.ended[i]);
        reply_error(c, 0, 0, GW_ERR_FORBIDDEN, "subscription token expired", w.ended[i]);
        free(w.ended[i]);
    }
    free(w.ended);
    /* Out of memory: look again at the next tick. */
    c->sub_exp = w.oom ? now_s - s->cfg->jwt_leeway_seconds : w.next;
}
