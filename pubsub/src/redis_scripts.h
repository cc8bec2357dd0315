/*
 * The Redis side of history (redis_scripts.c): the two Lua scripts the
 * Redis bus loads on its command link, the EVALSHA commands that run them,
 * and the parsing of their replies. redis_bus.c owns the links and the
 * bookkeeping; this file owns what the commands say.
 */
#ifndef PUBSUB_REDIS_SCRIPTS_H
#define PUBSUB_REDIS_SCRIPTS_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "bus_internal.h"

enum ps__script { PS__SCRIPT_PUBLISH, PS__SCRIPT_HISTORY, PS__SCRIPTS };

/* The script's Lua text, for SCRIPT LOAD. */
const char *ps__script_text(enum ps__script which);

/* Where a channel's history lives: "<prefix>h:{<channel>}" (the stream)
 * and "<prefix>m:{<channel>}" (the meta hash: epoch, top). */
typedef struct ps__script_target {
    const char *prefix;
    size_t prefix_len;
    const char *channel;
    const char *sha; /* 40 hex digits from SCRIPT LOAD */
} ps__script_target;

/* One group of a publish script call: consecutive messages to one
 * channel under one policy (1 or more, checked with ps__parts_check, which
 * gave parts), the candidate epoch for a meta the script creates, and
 * refresh: the keys' TTLs are due (ps__refresh_due). */
typedef struct ps__publish_group {
    const char *channel;
    const ps_payload *msgs;
    const ps__parts *parts;
    const ps_history_policy *hist;
    const char *epoch;
    int refresh;
} ps__publish_group;

/* Formats EVALSHA of the publish script (sha) for ngroups groups, which
 * Redis runs in this order. On success *cmd is the RESP command (free with
 * redisFreeCommand) and its length is returned; -1 on OOM. */
long ps__script_publish_cmd(char **cmd, const char *prefix, size_t prefix_len, const char *sha,
                            const ps__publish_group *g, size_t ngroups);
/* The same for the history read script. */
long ps__script_history_cmd(char **cmd, const ps__script_target *t, int64_t since, size_t limit,
                            const ps_history_policy *hist, const char *epoch);

/* Parse the scripts' replies. The publish script's: PS_OK when it has one
 * element per group, PS_EINVAL when it is not what the script returns
 * (someone else wrote the keys); then each group's outcome: PS_OK with res
 * (its first message's offset, and the epoch), the refusal status of the
 * group's own error (*err: its text, borrowed from r), or PS_EINVAL. */
int ps__script_publish_reply(const redisReply *r, size_t ngroups);
int ps__script_publish_group(const redisReply *r, size_t i, ps_publish_result *res,
                             const char **err);
/* The history script's: PS_OK or PS_EINVAL as above. */
/* On PS_OK h->entries is malloc'd (the caller frees it) and borrows from
 * r; PS_ENOMEM possible too. */
int ps__script_history_reply(const redisReply *r, ps_history *h);

/* The status for an error reply: PS_EUNAVAILABLE when Redis cannot serve
 * now but may later (LOADING, BUSY, OOM, READONLY, ...), PS_EINVAL when it
 * refuses the command itself (NOPERM, WRONGTYPE, a script error). */
int ps__refusal_status(const char *err);
/* 1 for the NOSCRIPT error reply. */
int ps__is_noscript(const redisReply *r);

#endif
