/*
 * When the Redis bus must refresh a history channel's TTLs: a small table
 * of the channels this process refreshed lately, and when.
 *
 * Why: the publish script used to ask Redis every time (PTTL, then two
 * EXPIREs when the keys had fallen below ttl). That PTTL was one of the
 * script's five Redis calls, and each call from Lua costs Redis about as
 * much as a plain PUBLISH does in all (docs/benchmarks.md). Each process
 * remembers instead when it last refreshed a channel, on its own monotonic
 * clock, and asks the script to refresh only when that was PS_TTL_SLACK
 * seconds ago or more (or under another ttl, or never). The guarantee of
 * pubsub.h holds per publish without comparing clocks across processes:
 * this process refreshed at r, to ttl + slack; its publish at t < r + slack
 * leaves both keys at least ttl (and, as every refresh is to ttl + slack
 * from a time before t, at most ttl + slack) to live. A refresh by another
 * process only moves the expiry later. What this process cannot know, keys
 * deleted or recreated behind its back, the script sees itself and
 * refreshes then: a new epoch, or a stream XADD had to create.
 *
 * A channel counts as refreshed only once Redis answered the script that
 * refreshed it (ps__refresh_done, with the time the command was sent): a
 * failed one leaves it due, so the next publish refreshes again.
 *
 * Bounds: entries older than the longest slack (60 s) can never spare a
 * refresh and are dropped as time passes (the list is oldest first), and
 * at most `max` are kept (beyond, the oldest go). A dropped entry costs
 * one refresh more, nothing else.
 */
#include <stdlib.h>
#include <string.h>

#define HASH_NONFATAL_OOM 1
#include <uthash.h>
#include <utlist.h>

#include "bus_internal.h"

struct ps__refresh_entry {
    UT_hash_handle hh;
    struct ps__refresh_entry *prev, *next; /* utlist DL, by age: oldest first */
    uint64_t at_ms;
    uint32_t ttl_s;
    size_t len;
    char name[]; /* NUL terminated; the hash key */
};

typedef struct ps__refresh_entry entry;

/* Past this age an entry spares nothing: PS_TTL_SLACK is at most 60 s. */
#define LONGEST_SLACK_MS 60000u

void ps__refresh_init(ps__refresh *r, size_t max)
{
    memset(r, 0, sizeof(*r));
    r->max = max;
}

static void drop_entry(ps__refresh *r, entry *e)
{
    DL_DELETE(r->oldest, e);
    HASH_DEL(r->table, e);
    free(e);
    r->n--;
}

/* Drops what can no longer spare a refresh at now_ms. */
static void prune(ps__refresh *r, uint64_t now_ms)
{
    while (r->oldest && now_ms - r->oldest->at_ms >= LONGEST_SLACK_MS)
        drop_entry(r, r->oldest);
}

int ps__refresh_due(ps__refresh *r, const char *channel, uint32_t ttl_s, uint64_t now_ms)
{
    uint64_t slack_ms = (uint64_t)PS_TTL_SLACK(ttl_s) * 1000u;
    entry *e;

    prune(r, now_ms);
    HASH_FIND(hh, r->table, channel, strlen(channel), e);
    return !e || e->ttl_s != ttl_s || now_ms - e->at_ms >= slack_ms;
}

void ps__refresh_done(ps__refresh *r, const char *channel, uint32_t ttl_s, uint64_t at_ms)
{
    size_t len = strlen(channel);
    entry *e;

    HASH_FIND(hh, r->table, channel, len, e);
    if (e) {
        DL_DELETE(r->oldest, e);
    } else {
        if (r->max == 0)
            return;
        if (r->n >= r->max)
            drop_entry(r, r->oldest);
        if (!(e = malloc(sizeof(*e) + len + 1)))
            return; /* not remembered: the next publish refreshes again */
        e->len = len;
        memcpy(e->name, channel, len + 1);
        HASH_ADD_KEYPTR(hh, r->table, e->name, len, e);
        /* uthash in non-fatal mode leaves tbl NULL when it could not grow. */
        if (!e->hh.tbl) {
            free(e);
            return;
        }
        r->n++;
    }
    e->at_ms = at_ms;
    e->ttl_s = ttl_s;
    DL_APPEND(r->oldest, e);
}

size_t ps__refresh_count(const ps__refresh *r)
{
    return r->n;
}

void ps__refresh_clear(ps__refresh *r)
{
    while (r->oldest)
        drop_entry(r, r->oldest);
}
