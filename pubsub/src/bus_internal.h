/*
 * What the two bus implementations share and nobody outside pubsub sees:
 * the check every channel name passes before it reaches a bus, the set of
 * channels a bus wants (its "desired set", kept across reconnects), and the
 * limits both buses apply. The public contract is in pubsub/pubsub.h.
 */
#ifndef PUBSUB_BUS_INTERNAL_H
#define PUBSUB_BUS_INTERNAL_H

#include <stddef.h>

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

#endif
