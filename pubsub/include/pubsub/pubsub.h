/*
 * pubsub: how a wsgw process hears about messages and sends them on.
 *
 * Four parts, one public header:
 *  - the bus: a small vtable (ps_bus_ops) with two implementations, the Redis
 *    bus (one hiredis connection SUBSCRIBEs, another PUBLISHes, both on the
 *    caller's libuv loop through pubsub's own adapter) and the in-process bus
 *    (one process, no Redis). The gateway does not care which one it has.
 *  - the subscription table: channel -> local subscribers and subscriber ->
 *    channels, so a process subscribes on the bus only while one of its own
 *    clients holds a channel.
 *  - envelopes: the JSON text that travels on the bus ({"data":...,"from":...})
 *    and its conversion, once per message, into the client frame.
 *  - frames: reference-counted buffers shared by every subscriber a message
 *    is queued to.
 *  - history: per channel an epoch, offsets and the last N messages, kept
 *    atomically with each publish (Redis scripts, or memory for the
 *    in-process bus), read in one step, and merged with live messages by
 *    offset (ps_merge) so that a subscriber recovers without gap or
 *    duplicate.
 * Nothing here knows libwebsockets: subscribers are opaque pointers and a
 * frame reserves caller-chosen headroom (the gateway passes LWS_PRE).
 *
 * Errors are negative PS_E* codes; ps_strerror() names them.
 */
#ifndef PUBSUB_PUBSUB_H
#define PUBSUB_PUBSUB_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PS_OK 0
#define PS_ENOMEM -1       /* out of memory */
#define PS_EINVAL -2       /* bad argument (channel, URL, option) */
#define PS_EUNAVAILABLE -3 /* the bus is down: Redis unreachable */
#define PS_ECLOSED -4      /* the bus was stopped before the operation completed */
#define PS_EEXISTS -5      /* already subscribed */
#define PS_ENOENT -6       /* not subscribed */
#define PS_EENVELOPE -7    /* a payload that is not a valid envelope */
#define PS_ETOOBIG -8      /* a payload over the bus's size limit */

const char *ps_strerror(int code);

/* ------------------------------------------------------------------ frames */

/* A reference-counted, immutable-after-build byte buffer. The text of the
 * frame is at buf + headroom, len bytes; the headroom belongs to whoever
 * writes the frame (lws needs LWS_PRE bytes in front of what it sends). */
typedef struct ps_frame {
    uint32_t refs;
    size_t headroom;
    size_t len;
    unsigned char buf[];
} ps_frame;

/* Returns a frame with refs = 1 and room for headroom + len bytes (+1 for a
 * NUL after the text, handy for logs), or NULL on OOM. */
ps_frame *ps_frame_new(size_t headroom, size_t len);
static inline unsigned char *ps_frame_data(ps_frame *f)
{
    return f->buf + f->headroom;
}
static inline ps_frame *ps_frame_ref(ps_frame *f)
{
    f->refs++;
    return f;
}
/* Drops one reference; frees at zero. NULL is a no-op. */
void ps_frame_unref(ps_frame *f);

/* --------------------------------------------------------------- envelopes */

/* A parsed bus payload. `root` owns everything; the other pointers borrow
 * from it and live until ps_envelope_clear. */
typedef struct ps_envelope {
    json_t *root;
    json_t *data;       /* required: any JSON value */
    const char *from;   /* optional: the publishing user's sub, else NULL */
    int64_t offset;     /* optional: history offset, else -1 */
    const char *epoch;  /* optional: history epoch, else NULL */
    int64_t ts_ms;      /* optional: publish time, ms since the Unix epoch, else -1 */
} ps_envelope;

/* Parses `payload` (len bytes, not NUL terminated) as an envelope: a JSON
 * object with "data"; "from" a valid sub when present; "offset" a
 * non-negative integer and "epoch" a string of 1..PS_EPOCH_MAX [A-Za-z0-9_-] when present;
 * "ts" a non-negative integer when present.
 * Duplicate keys are refused. Returns PS_OK or PS_EENVELOPE (env cleared). */
int ps_envelope_parse(const char *payload, size_t len, ps_envelope *env);
void ps_envelope_clear(ps_envelope *env);

/* Builds the bus payload for a publish: {"data":<data>,"from":"<from>","ts":T}
 * (from omitted when NULL, ts when negative). Borrows data. On PS_OK *out is malloc'd, NUL
 * terminated, *out_len its length; the caller frees it. */
int ps_envelope_encode(json_t *data, const char *from, int64_t ts_ms, char **out,
                       size_t *out_len);
/* Wall-clock milliseconds since the Unix epoch, for the "ts" of envelopes. */
int64_t ps_now_ms(void);

/* Builds the client frame for an envelope received on `channel`:
 * {"type":"message","channel":"<channel>","data":<data>[,"offset":N,"epoch":"E"][,"from":"<sub>"]}
 * with `headroom` bytes reserved in front. Returns a frame with refs = 1 or
 * NULL on OOM. Called once per message; the frame is then shared. */
ps_frame *ps_envelope_frame(const ps_envelope *env, const char *channel, size_t headroom);

/* ------------------------------------------------------ subscription table */

/* channel -> local subscribers and subscriber -> channels, for one process.
 * Subscribers are opaque non-NULL pointers (the gateway's connections). */
typedef struct ps_subs ps_subs;

ps_subs *ps_subs_new(void);
/* Frees the table (not the subscribers, nor what the data slots point to). */
void ps_subs_free(ps_subs *s);

/* Adds subscriber to channel. Returns 1 when it is the channel's first local
 * subscriber (the caller then subscribes on the bus), 0 when the channel
 * already had others, PS_EEXISTS when this subscriber already holds it,
 * PS_ENOMEM. */
int ps_subs_add(ps_subs *s, const char *channel, void *subscriber);

/* What a removal took away: the caller frees its own data with it. */
typedef struct ps_subs_removal {
    const char *channel;  /* valid for the duration of the callback/until the next change */
    void *link_data;      /* the pair's data (ps_subs_link_data), or NULL */
    int channel_empty;    /* 1: the channel has no local subscriber left (unsubscribe on the bus) */
    void *channel_data;   /* when channel_empty: the channel's data (ps_subs_channel_data), or NULL */
} ps_subs_removal;

/* Removes subscriber from channel. Returns 1 when the channel has no local
 * subscriber left (the caller then unsubscribes on the bus), 0 otherwise,
 * PS_ENOENT when the subscriber did not hold it. When out is not NULL it
 * receives what was removed (out->channel points at the caller's string). */
int ps_subs_remove(ps_subs *s, const char *channel, void *subscriber, ps_subs_removal *out);

/* Called by ps_subs_remove_all for each channel the subscriber held. */
typedef void ps_subs_removed_cb(void *arg, const ps_subs_removal *r);

/* Removes subscriber from all its channels (connection closed). */
void ps_subs_remove_all(ps_subs *s, void *subscriber, ps_subs_removed_cb *cb, void *arg);

/* One pointer of the caller's per (channel, subscriber) pair, NULL when the
 * pair is added: the gateway keeps a subscription's recovery state there.
 * Returns the slot, or NULL when subscriber does not hold channel. */
void **ps_subs_link_data(ps_subs *s, const char *channel, const void *subscriber);
/* One pointer of the caller's per channel (NULL when the channel gets its
 * first subscriber): the gateway keeps the channel's offset state there.
 * Returns the slot, or NULL when the channel has no local subscriber. */
void **ps_subs_channel_data(ps_subs *s, const char *channel);

/* Is subscriber on channel? 1 or 0. */
int ps_subs_has(const ps_subs *s, const char *channel, const void *subscriber);
/* How many channels subscriber holds (for the subscription limit). */
size_t ps_subs_count(const ps_subs *s, const void *subscriber);
/* How many local subscribers channel has. */
size_t ps_subs_channel_size(const ps_subs *s, const char *channel);
/* Number of distinct channels with at least one local subscriber. */
size_t ps_subs_channels(const ps_subs *s);
/* Number of (channel, subscriber) pairs: every subscription held. */
size_t ps_subs_pairs(const ps_subs *s);

/* Calls fn for every local subscriber of channel. fn must not change the
 * table (mark connections and reap them after). Returns how many were
 * visited. */
typedef void ps_subs_each_cb(void *arg, void *subscriber, void **link_data);
size_t ps_subs_foreach(const ps_subs *s, const char *channel, ps_subs_each_cb *fn, void *arg);

/* Calls fn(arg, channel) for every channel that has local subscribers
 * (used to resubscribe after a Redis reconnect). */
typedef void ps_subs_channel_cb(void *arg, const char *channel);
void ps_subs_foreach_channel(const ps_subs *s, ps_subs_channel_cb *fn, void *arg);

/* Calls fn for every channel subscriber holds, with the pair's data slot
 * (the gateway ends expired subscriptions with it). fn must not change the
 * table. Returns how many were visited. */
typedef void ps_subs_held_cb(void *arg, const char *channel, void **link_data);
size_t ps_subs_foreach_of(const ps_subs *s, const void *subscriber, ps_subs_held_cb *fn,
                          void *arg);

/* --------------------------------------------------------------------- bus */

typedef struct ps_bus ps_bus;

/* A message arrived on a channel this process subscribed to. channel (no
 * prefix, NUL terminated) and payload (len bytes, raw envelope text, not NUL
 * terminated) are valid for the duration of the call. */
typedef void ps_message_cb(void *udata, const char *channel, const char *payload, size_t len);

/* The bus went up (1: can publish, every channel subscribed again) or down (0). */
typedef void ps_state_cb(void *udata, int up);

/* The bus confirmed the subscription to channel: every message published
 * from now on reaches on_message. Called after each ps_bus_subscribe that
 * sent a SUBSCRIBE, and again for every channel after each reconnect.
 * channel is valid for the duration of the call.
 * Details (both buses): called only for a channel still wanted, and only
 * for the confirmation of the last subscribe/unsubscribe of it (subscribe,
 * unsubscribe, subscribe before the bus answered: one call, for the second
 * subscribe). on_message for a channel may come before its on_subscribed
 * (a message already on its way). Redis bus: called only while the command
 * link is up, so ps_bus_history is accepted from inside it; a confirmation
 * that arrives while the command link is down is held and reported when it
 * is up again (after on_state(1) when the bus comes up with it), or dropped
 * if the subscriber link fails first (the next reconnect confirms again).
 * During resubscription it runs per channel, before on_state(1). */
typedef void ps_subscribed_cb(void *udata, const char *channel);

/* ------------------------------------------------------------- history */

#define PS_EPOCH_MAX 32 /* an epoch is 1..32 of [A-Za-z0-9_-] */

/* How a channel keeps history: the last `size` messages for `ttl_s` seconds
 * after the last publish. size 0: no history (plain PUBLISH). With size > 0,
 * ttl_s must be at least 1 (else PS_EINVAL). The Redis bus keeps them at
 * least ttl_s and at most ttl_s + PS_TTL_SLACK(ttl_s) seconds after each
 * publish: it refreshes the keys' TTLs (to ttl_s + slack) at most once per
 * slack and channel, which spares most publishes to a busy channel two
 * EXPIREs and the question whether they are due. */
#define PS_TTL_SLACK(ttl_s) ((ttl_s) / 16 < 60 ? (ttl_s) / 16 : 60)
typedef struct ps_history_policy {
    uint32_t size;
    uint32_t ttl_s;
} ps_history_policy;

/* What a publish with history got: the message's offset and the epoch. */
typedef struct ps_publish_result {
    int64_t offset;
    char epoch[PS_EPOCH_MAX + 1];
} ps_publish_result;

/* Outcome of a publish. Called exactly once per accepted publish, later, on
 * the loop (never from inside ps_bus_publish): status PS_OK, PS_EUNAVAILABLE
 * (link lost before Redis answered), PS_EINVAL (Redis refused it) or
 * PS_ECLOSED (bus stopped). res is non-NULL only for PS_OK on a publish with
 * history, and valid for the duration of the call.
 * Redis errors that mean "not now" (LOADING, BUSY, OOM, READONLY,
 * MASTERDOWN, TRYAGAIN, CLUSTERDOWN, NOREPLICAS, NOSCRIPT after the one
 * reload) give PS_EUNAVAILABLE, the others (NOPERM, WRONGTYPE, a script
 * error, a reply the script cannot have given) PS_EINVAL. The in-process
 * bus may also report PS_ENOMEM (no memory to store the history), and the
 * Redis bus when it cannot build a group commit (below). The same
 * statuses apply to ps_history_cb. */
typedef void ps_publish_cb(void *udata, int status, const ps_publish_result *res);

/* One stored message: payload is the full envelope as published, with
 * "offset" and "epoch" in it. */
typedef struct ps_history_entry {
    int64_t offset;
    const char *payload;
    size_t len;
} ps_history_entry;

/* A channel's history as read in one atomic step. */
typedef struct ps_history {
    char epoch[PS_EPOCH_MAX + 1];
    int64_t top;    /* the latest offset given out in this epoch; 0: none yet */
    int64_t first;  /* the oldest offset still stored; 0: nothing stored */
    const ps_history_entry *entries; /* in offset order */
    size_t n;
} ps_history;

/* Outcome of a history read: h is non-NULL only for PS_OK and valid for the
 * duration of the call (copy what must outlive it). */
typedef void ps_history_cb(void *udata, int status, const ps_history *h);

typedef struct ps_bus_callbacks {
    ps_message_cb *on_message;
    ps_state_cb *on_state;           /* may be NULL */
    ps_subscribed_cb *on_subscribed; /* may be NULL */
    void *udata;
} ps_bus_callbacks;

typedef struct ps_bus_stats {
    uint64_t reconnects;      /* successful connects after the first */
    uint64_t messages_in;     /* messages received from the bus */
    uint64_t publishes;       /* messages published (a batch counts each) */
    uint64_t publish_errors;  /* messages whose publish failed */
    uint64_t bad_envelopes;   /* reserved for the caller's accounting */
    uint64_t history_reads;   /* history reads answered (PS_OK) */
    uint64_t history_errors;  /* history reads failed */
} ps_bus_stats;

/* One message of a publish: an envelope's text, len bytes, borrowed for
 * the duration of the call (the bus copies what it keeps). */
typedef struct ps_payload {
    const char *text;
    size_t len;
} ps_payload;

#define PS_BATCH_MAX 1000 /* messages in one ps_bus_publish_batch */

typedef struct ps_bus_ops {
    int (*subscribe)(ps_bus *b, const char *channel);
    int (*unsubscribe)(ps_bus *b, const char *channel);
    /* n messages, 1..PS_BATCH_MAX; more than one only with history. */
    int (*publish)(ps_bus *b, const char *channel, const ps_payload *msgs, size_t n,
                   const ps_history_policy *hist, ps_publish_cb *cb, void *udata);
    int (*history)(ps_bus *b, const char *channel, int64_t since, size_t limit,
                   const ps_history_policy *hist, ps_history_cb *cb, void *udata);
    int (*is_up)(const ps_bus *b);
    void (*stop)(ps_bus *b);
    void (*destroy)(ps_bus *b);
    const char *(*last_error)(const ps_bus *b); /* may be NULL: no errors to tell */
} ps_bus_ops;

struct ps_bus {
    const ps_bus_ops *ops;
    ps_bus_callbacks cb;
    ps_bus_stats stats;
};

/* Declares interest in channel. Idempotent per channel; the bus keeps the set
 * and subscribes it again after every reconnect. While the link is down it
 * returns PS_OK and subscribes when the link comes back. */
int ps_bus_subscribe(ps_bus *b, const char *channel);
/* Drops interest in channel. PS_ENOENT if it was not subscribed. */
int ps_bus_unsubscribe(ps_bus *b, const char *channel);
/* Publishes payload (an envelope, copied) to channel. Returns PS_OK when
 * accepted (cb follows later), PS_EUNAVAILABLE at once when the link is down
 * (cb is not called), PS_ETOOBIG, PS_ENOMEM, PS_EINVAL (bad channel; with
 * history: a payload that does not start with '{' and end with '}', blanks
 * aside, or ttl_s 0). cb may be NULL.
 * With hist (size > 0) the publish is atomic with the history: one Redis
 * script gives the message the channel's next offset, stores it in the
 * channel's stream (trimmed to hist->size), refreshes the TTLs and PUBLISHes
 * it with "offset" and "epoch" added to the envelope. The payload must then be
 * a JSON object without those two keys. hist NULL or size 0: plain PUBLISH.
 * Redis bus, group commit: publishes (and history reads) are checked at
 * once and sent, in the order asked for, at the end of the current loop
 * turn; consecutive history publishes to one channel with the same policy
 * in that turn go as one script call (a batch of at most 100 messages and
 * 256 KiB), each publish still with its own callback and offset. A failed
 * call fails each of its publishes with the same status. */
int ps_bus_publish(ps_bus *b, const char *channel, const char *payload, size_t len,
                   const ps_history_policy *hist, ps_publish_cb *cb, void *udata);

/* Publishes n messages (1..PS_BATCH_MAX, in the order given) to one channel
 * that keeps history, in one atomic step: one Redis script (the same one
 * ps_bus_publish runs) reads the channel's meta once, gives the messages the
 * next n offsets, stores each, refreshes the TTLs and publishes them; no
 * other publish to the channel comes between them. Subscribers receive each
 * message as if it had been published alone (the Redis bus sends a batch as
 * one JSON array of envelopes, which receiving buses split again).
 * Returns as ps_bus_publish, and PS_EINVAL also when hist has no history
 * (size 0), n is 0 or over PS_BATCH_MAX, or a payload is not an object;
 * PS_ETOOBIG when a payload, or all of them together, exceed the bus's
 * payload limit. cb follows once for the whole batch: on PS_OK res->offset
 * is the first message's offset, message i got res->offset + i, all of them
 * res->epoch; any other status is every message's. (The in-process bus may
 * report PS_ENOMEM after delivering the first messages of the batch.) */
int ps_bus_publish_batch(ps_bus *b, const char *channel, const ps_payload *msgs, size_t n,
                         const ps_history_policy *hist, ps_publish_cb *cb, void *udata);

/* Reads channel's history in one atomic step: with since >= 0 the stored
 * messages with offset > since, at most limit of them (the oldest first);
 * with since < 0 only the latest stored message, if any. Creates the
 * channel's epoch (with hist's TTL) when it has none, so the epoch a
 * subscriber is told is the one the next publish uses. Returns PS_OK (cb
 * follows exactly once, later, on the loop), PS_EUNAVAILABLE at once when
 * the link is down, PS_EINVAL, PS_ENOMEM.
 * Details: hist must have size > 0 and ttl_s > 0, cb must not be NULL
 * (else PS_EINVAL); limit 0 with since >= 0 reads only epoch, top and first.
 * The Redis bus needs only its command link for reads (they work while the
 * subscriber link resubscribes); a read in flight completes with
 * PS_EUNAVAILABLE when that link drops and PS_ECLOSED inside ps_bus_stop.
 * Reads count against the same bound as publishes. Redis keys:
 * <prefix>h:{<channel>} (stream) and <prefix>m:{<channel>} (hash: epoch,
 * top), one hash tag so that both share a Redis Cluster slot. */
int ps_bus_history(ps_bus *b, const char *channel, int64_t since, size_t limit,
                   const ps_history_policy *hist, ps_history_cb *cb, void *udata);

/* Merging stored and live messages for one subscriber (pure; no bus).
 * Items are (offset, pointer) pairs; ps_merge sorts both arrays in place and
 * writes to out (room for n_stored + n_live) the items with offset > since in
 * offset order, each offset once (the stored copy wins). Returns the number
 * written; *gap is set to 1 when an offset between since + 1 and the last one
 * written is missing (the subscriber would miss a message), else 0. */
typedef struct ps_merge_item {
    int64_t offset;
    void *item;
} ps_merge_item;
size_t ps_merge(int64_t since, ps_merge_item *stored, size_t n_stored, ps_merge_item *live,
                size_t n_live, ps_merge_item *out, int *gap);

/* 1 while publishes can be sent and subscriptions are active. */
int ps_bus_is_up(const ps_bus *b);
/* Begins an orderly shutdown: pending publishes complete with PS_ECLOSED, the
 * links close, no further callbacks. The loop must then run until its handles
 * are closed before ps_bus_destroy.
 * The PS_ECLOSED publish callbacks run inside ps_bus_stop itself; after it
 * returns no callback of any kind follows (not even on_state(0)). Safe to call
 * from inside any bus callback; a second call is a no-op. After stop,
 * subscribe and publish return PS_ECLOSED. */
void ps_bus_stop(ps_bus *b);
/* Frees the bus. Only after ps_bus_stop and the loop has run. NULL is a no-op.
 * (Called too early, it stops the bus and leaves the last free to the close
 * callback of its handles, which needs the loop to run once more.) */
void ps_bus_destroy(ps_bus *b);
/* Why the bus is down, for logs: the last connection error (e.g. "Connection
 * refused", "connect timeout", the Redis reply to AUTH), "" when there is none.
 * Valid until the next loop iteration. */
const char *ps_bus_last_error(const ps_bus *b);

/* The in-process bus: delivers each publish to this process's own
 * subscribers on a later loop iteration. For one process and no Redis.
 * ps_bus_is_up is 1 at once; on_state(1) still follows once, from the loop.
 * At most 65536 publishes (64 MiB) wait for delivery, beyond that publish
 * returns PS_EUNAVAILABLE; payloads over 1 MiB get PS_ETOOBIG.
 * Publishes, history reads and subscription confirmations are done in the
 * order they were asked for, on later loop iterations: a read sees exactly
 * the publishes asked for before it. History lives in memory with the same
 * semantics as in Redis, bounded to 65536 channels and 64 MiB in total;
 * beyond that whole channels go (least recently written first) and get a
 * new epoch when used again, as when Redis evicts keys. */
ps_bus *ps_inproc_bus_new(uv_loop_t *loop, const ps_bus_callbacks *cb);

/* redis://[:password@]host:port[/db] */
typedef struct ps_redis_url {
    char host[256];
    int port;          /* default 6379 */
    char password[256];/* empty: no AUTH */
    int db;            /* default 0 */
    char username[256];/* empty: AUTH <password>; else AUTH <username> <password> (Redis 6 ACL) */
} ps_redis_url;

/* Parses url into *out. Returns PS_OK or PS_EINVAL.
 * Accepted: redis://[[user]:password@]host[:port][/[db]], host a name, an IPv4
 * address or a bracketed IPv6 address ([::1]); user and password may carry
 * %XX escapes (for '@', ':' or '/' in a password). Refused: other schemes
 * (rediss:// included: no TLS), a user without a password, an empty host, a
 * port outside 1..65535, a db that is not a non-negative integer, a query, a
 * fragment, anything after the db. */
int ps_redis_url_parse(const char *url, ps_redis_url *out);

typedef struct ps_redis_opts {
    ps_redis_url url;
    const char *prefix;          /* Redis channel prefix, e.g. "wsgw:"; copied; NULL: "wsgw:" */
    uint32_t connect_timeout_ms; /* 0: 2000; also the PING heartbeat of the publish link */
    uint32_t backoff_min_ms;     /* 0: 100; reconnect delay doubles from here */
    uint32_t backoff_max_ms;     /* 0: 5000; with full jitter */
    size_t max_payload;          /* 0: 1 MiB; larger publishes: PS_ETOOBIG; at most 64 MiB */
} ps_redis_opts;

/* The Redis bus on `loop`. Resolves url.host once, here (it blocks: call at
 * startup), then connects in the background and reconnects forever with
 * capped exponential backoff and full jitter; on_state reports the link.
 * The command link loads the history scripts (SCRIPT LOAD) in its handshake:
 * a Redis user must be allowed SCRIPT LOAD and EVALSHA, or the bus stays
 * down with Redis's refusal as ps_bus_last_error. Keep '{' and '}' out of
 * the prefix: the history keys rely on their hash tag.
 * Returns NULL on a bad option (prefix over 64 bytes or not visible ASCII,
 * bad port), a host that does not resolve, or OOM. Nothing is called back
 * from inside this function; the first connect starts on the loop. */
ps_bus *ps_redis_bus_new(uv_loop_t *loop, const ps_redis_opts *opts, const ps_bus_callbacks *cb);

#ifdef __cplusplus
}
#endif
#endif
