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
} ps_envelope;

/* Parses `payload` (len bytes, not NUL terminated) as an envelope: a JSON
 * object with "data"; "from" a valid sub when present; "offset" a
 * non-negative integer and "epoch" a string of 1..64 [A-Za-z0-9_-] when present.
 * Duplicate keys are refused. Returns PS_OK or PS_EENVELOPE (env cleared). */
int ps_envelope_parse(const char *payload, size_t len, ps_envelope *env);
void ps_envelope_clear(ps_envelope *env);

/* Builds the bus payload for a publish: {"data":<data>,"from":"<from>"}
 * (from omitted when NULL). Borrows data. On PS_OK *out is malloc'd, NUL
 * terminated, *out_len its length; the caller frees it. */
int ps_envelope_encode(json_t *data, const char *from, char **out, size_t *out_len);

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
/* Frees the table (not the subscribers). */
void ps_subs_free(ps_subs *s);

/* Adds subscriber to channel. Returns 1 when it is the channel's first local
 * subscriber (the caller then subscribes on the bus), 0 when the channel
 * already had others, PS_EEXISTS when this subscriber already holds it,
 * PS_ENOMEM. */
int ps_subs_add(ps_subs *s, const char *channel, void *subscriber);

/* Removes subscriber from channel. Returns 1 when the channel has no local
 * subscriber left (the caller then unsubscribes on the bus), 0 otherwise,
 * PS_ENOENT when the subscriber did not hold it. */
int ps_subs_remove(ps_subs *s, const char *channel, void *subscriber);

/* Called by ps_subs_remove_all for each channel left without subscribers.
 * `channel` is valid for the duration of the call. */
typedef void ps_subs_empty_cb(void *arg, const char *channel);

/* Removes subscriber from all its channels (connection closed). */
void ps_subs_remove_all(ps_subs *s, void *subscriber, ps_subs_empty_cb *cb, void *arg);

/* Is subscriber on channel? 1 or 0. */
int ps_subs_has(const ps_subs *s, const char *channel, const void *subscriber);
/* How many channels subscriber holds (for the subscription limit). */
size_t ps_subs_count(const ps_subs *s, const void *subscriber);
/* How many local subscribers channel has. */
size_t ps_subs_channel_size(const ps_subs *s, const char *channel);
/* Number of distinct channels with at least one local subscriber. */
size_t ps_subs_channels(const ps_subs *s);

/* Calls fn for every local subscriber of channel. fn must not change the
 * table (mark connections and reap them after). Returns how many were
 * visited. */
typedef void ps_subs_each_cb(void *arg, void *subscriber);
size_t ps_subs_foreach(const ps_subs *s, const char *channel, ps_subs_each_cb *fn, void *arg);

/* Calls fn(arg, channel) for every channel that has local subscribers
 * (used to resubscribe after a Redis reconnect). */
typedef void ps_subs_channel_cb(void *arg, const char *channel);
void ps_subs_foreach_channel(const ps_subs *s, ps_subs_channel_cb *fn, void *arg);

/* --------------------------------------------------------------------- bus */

typedef struct ps_bus ps_bus;

/* A message arrived on a channel this process subscribed to. channel (no
 * prefix, NUL terminated) and payload (len bytes, raw envelope text, not NUL
 * terminated) are valid for the duration of the call. */
typedef void ps_message_cb(void *udata, const char *channel, const char *payload, size_t len);

/* The bus went up (1: can publish, every channel subscribed again) or down (0). */
typedef void ps_state_cb(void *udata, int up);

/* Outcome of a publish. Called exactly once per accepted publish, later, on
 * the loop (never from inside ps_bus_publish): status PS_OK, PS_EUNAVAILABLE
 * (link lost before Redis answered) or PS_ECLOSED (bus stopped). */
typedef void ps_publish_cb(void *udata, int status);

typedef struct ps_bus_callbacks {
    ps_message_cb *on_message;
    ps_state_cb *on_state; /* may be NULL */
    void *udata;
} ps_bus_callbacks;

typedef struct ps_bus_stats {
    uint64_t reconnects;      /* successful connects after the first */
    uint64_t messages_in;     /* messages received from the bus */
    uint64_t publishes;       /* publishes acknowledged */
    uint64_t publish_errors;  /* publishes failed */
    uint64_t bad_envelopes;   /* reserved for the caller's accounting */
} ps_bus_stats;

typedef struct ps_bus_ops {
    int (*subscribe)(ps_bus *b, const char *channel);
    int (*unsubscribe)(ps_bus *b, const char *channel);
    int (*publish)(ps_bus *b, const char *channel, const char *payload, size_t len,
                   ps_publish_cb *cb, void *udata);
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
 * (cb is not called), PS_ETOOBIG, PS_ENOMEM. cb may be NULL. */
int ps_bus_publish(ps_bus *b, const char *channel, const char *payload, size_t len,
                   ps_publish_cb *cb, void *udata);
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
 * returns PS_EUNAVAILABLE; payloads over 1 MiB get PS_ETOOBIG. */
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
 * Returns NULL on a bad option (prefix over 64 bytes or not visible ASCII,
 * bad port), a host that does not resolve, or OOM. Nothing is called back
 * from inside this function; the first connect starts on the loop. */
ps_bus *ps_redis_bus_new(uv_loop_t *loop, const ps_redis_opts *opts, const ps_bus_callbacks *cb);

#ifdef __cplusplus
}
#endif
#endif
