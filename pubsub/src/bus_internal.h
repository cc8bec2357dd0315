/*
 * What the two bus implementations share and nobody outside pubsub sees:
 * the check every channel name passes before it reaches a bus, the set of
 * channels a bus wants (its "desired set", kept across reconnects), the
 * limits both buses apply, and the history helpers (history.c): epochs, the
 * text a stored message gets, and the in-memory store of the in-process bus.
 * The public contract is in pubsub/pubsub.h.
 */
#ifndef PUBSUB_BUS_INTERNAL_H
#define PUBSUB_BUS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "pubsub/pubsub.h"

/* Longest channel name a bus takes, without the Redis prefix. The protocol
 * allows 128 bytes; the bus is looser so that it never decides naming
 * policy, only what it can carry safely. */
#define PS__CHANNEL_MAX 255

/* Largest payload by default (ps_redis_opts.max_payload = 0, and the
 * in-process bus). */
#define PS__DEFAULT_MAX_PAYLOAD (1024u * 1024u)

/* 1 when channel is 1..PS__CHANNEL_MAX bytes of visible ASCII (0x21..0x7e):
 * no spaces, no control bytes, nothing a log line or a Redis key could
 * misread. */
int ps__channel_valid(const char *channel);

/* A set of channel names (uthash inside). NULL is the empty set. */
typedef struct ps__chanset ps__chanset;

/* Returns 1 when channel was added, 0 when it was there already, PS_ENOMEM. */
int ps__chanset_add(ps__chanset **set, const char *channel);
/* Returns 1 when channel was removed, 0 when it was not there. */
int ps__chanset_remove(ps__chanset **set, const char *channel);
/* Membership test on a name of len bytes (need not be NUL terminated). */
int ps__chanset_has(const ps__chanset *set, const char *channel, size_t len);
size_t ps__chanset_count(const ps__chanset *set);
/* Calls fn for every channel; fn must not change the set. */
void ps__chanset_foreach(const ps__chanset *set, ps_subs_channel_cb *fn, void *arg);
/* Frees every entry; *set becomes NULL. */
void ps__chanset_clear(ps__chanset **set);

/* The set as a counter per channel (a set used only this way): adds delta
 * to channel's count, creating the entry at 0 first and dropping it when the
 * count falls to 0 or below. Returns the new count (0 for a channel that was
 * absent and is not added), or PS_ENOMEM. */
long ps__chanset_adjust(ps__chanset **set, const char *channel, long delta);
/* Removes some channel from a non-empty set and copies its name into buf
 * (PS__CHANNEL_MAX + 1 bytes). Returns 1, or 0 when the set is empty. Lets a
 * caller walk a set whose callbacks may change it. */
int ps__chanset_pop(ps__chanset **set, char *buf);

/* ------------------------------------------------------------ history */

/* The epochs this library makes: PS__EPOCH_LEN characters of [A-Za-z0-9]
 * (about 95 bits), a subset of what PS_EPOCH_MAX allows. */
#define PS__EPOCH_LEN 16

/* A generator for epochs (xoshiro256**), seeded once from the kernel. An
 * epoch must differ from every earlier epoch of its channel, across
 * processes and restarts; it need not be secret. */
typedef struct ps__rng {
    uint64_t s[4];
} ps__rng;

/* Seeds r from uv_random (getrandom). Returns 0, or -1 when the kernel gave
 * nothing. */
int ps__rng_seed(ps__rng *r);
/* Writes a fresh epoch, NUL terminated, into out. */
void ps__epoch_new(ps__rng *r, char out[PS__EPOCH_LEN + 1]);
/* 1 when s (len bytes) is a valid epoch: 1..PS_EPOCH_MAX of [A-Za-z0-9_-]. */
int ps__epoch_valid(const char *s, size_t len);

/* 1 when hist asks for history (size > 0). */
int ps__history_on(const ps_history_policy *hist);

/* When the Redis bus refreshes a history channel's TTLs (ttl_refresh.c):
 * the channels this process refreshed within the last minute, and when. */
typedef struct ps__refresh_entry ps__refresh_entry;
typedef struct ps__refresh {
    ps__refresh_entry *table;  /* uthash, by channel */
    ps__refresh_entry *oldest; /* the same entries by age (utlist DL) */
    size_t n, max;
} ps__refresh;

/* An empty table that keeps at most max channels. */
void ps__refresh_init(ps__refresh *r, size_t max);
/* 1 when a publish to channel under ttl_s at now_ms (a monotonic clock)
 * must refresh the keys' TTLs: never refreshed here, refreshed under
 * another ttl, or PS_TTL_SLACK(ttl_s) seconds ago or more. */
int ps__refresh_due(ps__refresh *r, const char *channel, uint32_t ttl_s, uint64_t now_ms);
/* Records that Redis refreshed channel to ttl_s + slack by a command sent
 * at at_ms. Out of memory it records nothing (a refresh more, later). */
void ps__refresh_done(ps__refresh *r, const char *channel, uint32_t ttl_s, uint64_t at_ms);
size_t ps__refresh_count(const ps__refresh *r);
/* Frees every entry; the table stays usable. */
void ps__refresh_clear(ps__refresh *r);

/* A stored message is the published envelope with "offset" and "epoch"
 * appended as its last members: head + sep + "offset":N,"epoch":"E"}.
 * ps__object_split finds head (everything before the closing brace, trailing
 * blanks excluded) and sep ("," or "" for an empty object) in payload.
 * Returns 0, or -1 when payload does not start with '{' and end with '}'
 * (blanks aside). Only the shape is checked: the caller's envelope is
 * trusted to be an object without those two keys. */
int ps__object_split(const char *payload, size_t len, size_t *head_len, const char **sep);

/* One message of a publish as a bus checked it: its length and, with
 * history, where its closing brace goes (ps__object_split). */
typedef struct ps__part {
    size_t len, head_len;
    const char *sep;
} ps__part;

/* The checked messages of one publish. A plain struct (no pointer into
 * itself), so a bus may copy it into what it keeps. */
typedef struct ps__parts {
    size_t n, total; /* messages, and their bytes together */
    ps__part one;    /* the message when n == 1 */
    ps__part *many;  /* n > 1: malloc'd, freed by ps__parts_clear */
} ps__parts;

/* Checks the n messages of a publish into p: each one, and all together,
 * at most max bytes (else PS_ETOOBIG); with history each an object (else
 * PS_EINVAL); PS_ENOMEM. Whatever it returns, ps__parts_clear(p) after. */
int ps__parts_check(ps__parts *p, const ps_payload *msgs, size_t n, int with_history, size_t max);
void ps__parts_clear(ps__parts *p);

static inline const ps__part *ps__part_at(const ps__parts *p, size_t i)
{
    return p->many ? &p->many[i] : &p->one;
}

/* A payload on the bus is one envelope; or, from a batch publish with
 * history, the JSON array [<first offset>,"<epoch>",<envelope>,...] whose
 * envelopes lack offset and epoch (redis_scripts.c), or, from older
 * versions, a JSON array of complete envelopes. A splitter walks any of
 * them: each ps__envelopes_next gives the next complete envelope (*text,
 * *len) and returns 1, or returns 0 at the end and at anything it cannot
 * split (what follows is dropped; the envelopes it gives out are parsed
 * strictly afterwards anyway) or on OOM. The text is borrowed from the
 * payload, or, for a batch with a header, built in the splitter with
 * "offset" and "epoch" appended as a history read would (ps__object_split);
 * either way valid until the next call. ps__envelopes_end frees what the
 * splitter built. */
typedef struct ps__splitter {
    const char *p, *end;
    int array;         /* inside an array: ',' or ']' follows each element */
    int64_t offset;    /* the next envelope's offset, after a header; else -1 */
    const char *epoch; /* the header's epoch (epoch_len bytes, in the payload) */
    size_t epoch_len;
    char *buf; /* the text handed out after a header (cap bytes) */
    size_t cap;
} ps__splitter;

void ps__envelopes_begin(ps__splitter *s, const char *payload, size_t len);
int ps__envelopes_next(ps__splitter *s, const char **text, size_t *len);
void ps__envelopes_end(ps__splitter *s);

/* The in-memory history of the in-process bus: per channel an epoch, the
 * top offset and the last `size` stored texts, dropped `ttl_s` after the
 * last publish. Bounded in total (see history.c); under pressure whole
 * channels go, least recently written first, as Redis would evict keys. */
typedef struct ps__hstore ps__hstore;

/* NULL on OOM or when no random seed could be had. */
ps__hstore *ps__hstore_new(void);
void ps__hstore_free(ps__hstore *hs);
/* Gives the message (head/sep from ps__object_split) the channel's next
 * offset and stores it. On PS_OK res is filled and *text, *text_len give
 * the stored text, valid until the next call on hs; else PS_ENOMEM. */
int ps__hstore_append(ps__hstore *hs, const char *channel, const char *head, size_t head_len,
                      const char *sep, const ps_history_policy *hist, uint64_t now_ms,
                      ps_publish_result *res, const char **text, size_t *text_len);
/* Reads channel's history as ps_bus_history describes (creating the epoch
 * when missing). On PS_OK h->entries is malloc'd (the caller frees it) and
 * points into hs, valid until the next call on hs; else PS_ENOMEM. */
int ps__hstore_read(ps__hstore *hs, const char *channel, int64_t since, size_t limit,
                    const ps_history_policy *hist, uint64_t now_ms, ps_history *h);

#endif
