/*
 * History: what both buses share about a channel's stored messages, and the
 * in-memory store that gives the in-process bus the same semantics as the
 * Redis scripts (redis_scripts.c).
 *
 * A channel with history has an epoch, a top offset and the last `size`
 * messages. Each publish takes top + 1 as its offset and is stored and sent
 * with "offset" and "epoch" appended to its envelope; the epoch is made when
 * the channel has none (first use, or its history expired or was lost), so a
 * subscriber that knows (epoch, offset) can tell "I have everything up to
 * here" from "what I had is gone". Epochs come from a generator seeded once
 * from the kernel: rand() would repeat across processes started together,
 * and a repeated epoch would make a lost history look continuous.
 *
 * The store keeps per channel a FIFO of stored texts and expires a channel
 * ttl_s after its last write, checked when the channel is touched and, for
 * the least recently written ones, on every call. Its total is bounded:
 * HSTORE_MAX_CHANNELS channels and HSTORE_MAX_BYTES of stored text plus
 * bookkeeping. Past either, whole channels go, least recently written
 * first: their epoch goes with them, exactly as when Redis evicts or
 * expires the keys, so a subscriber is told it lost messages instead of
 * silently getting a shortened history. A single channel over the byte bound
 * alone loses its oldest messages instead (its first offset moves, which a
 * subscriber also notices).
 *
 * Nothing here calls back: the bus decides when a result is reported, and
 * pointers handed out stay valid until the next call on the store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH_NONFATAL_OOM 1
#include <uthash.h>

#include "bus_internal.h"

#define HSTORE_MAX_CHANNELS 65536
#define HSTORE_MAX_BYTES (64u * 1024u * 1024u)

/* ------------------------------------------------------------ epochs */

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(ps__rng *r)
{
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

int ps__rng_seed(ps__rng *r)
{
    /* Synchronous uv_random: getrandom(2), which blocks only before the
     * kernel's pool is first initialised, long before a gateway starts. */
    if (uv_random(NULL, NULL, r->s, sizeof(r->s), 0, NULL) != 0)
        return -1;
    /* xoshiro's one forbidden state. */
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0)
        r->s[0] = 1;
    return 0;
}

void ps__epoch_new(ps__rng *r, char out[PS__EPOCH_LEN + 1])
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    int i;

    /* The top 32 bits scaled to 0..61: a bias of 62 / 2^32, nothing. */
    for (i = 0; i < PS__EPOCH_LEN; i++)
        out[i] = alphabet[((rng_next(r) >> 32) * 62) >> 32];
    out[PS__EPOCH_LEN] = '\0';
}

int ps__epoch_valid(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len > PS_EPOCH_MAX)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int ps__history_on(const ps_history_policy *hist)
{
    return hist && hist->size > 0;
}

/* ------------------------------------------------------------ stored text */

static int blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int ps__object_split(const char *payload, size_t len, size_t *head_len, const char **sep)
{
    size_t start = 0, end = len, inner;

    while (start < end && blank(payload[start]))
        start++;
    while (end > start && blank(payload[end - 1]))
        end--;
    if (end - start < 2 || payload[start] != '{' || payload[end - 1] != '}')
        return -1;
    *head_len = end - 1;
    /* Empty object: nothing but blanks between the braces, so no comma. */
    for (inner = start + 1; inner < end - 1 && blank(payload[inner]); inner++)
        ;
    *sep = inner == end - 1 ? "" : ",";
    return 0;
}

/* ------------------------------------------------------------ the store */

typedef struct hentry {
    struct hentry *next;
    int64_t offset;
    size_t len;
    char text[];
} hentry;

typedef struct hchan {
    UT_hash_handle hh;                 /* in ps__hstore.chans, by name */
    struct hchan *lru_prev, *lru_next; /* least recently written first */
    char epoch[PS__EPOCH_LEN + 1];
    int64_t top;
    uint64_t expires_ms;
    hentry *head, *tail; /* oldest first */
    size_t n;
    size_t bytes; /* this record, its name and its entries */
    size_t len;
    char name[];
} hchan;

struct ps__hstore {
    hchan *chans;
    hchan *lru_head, *lru_tail;
    size_t nchans;
    size_t bytes;
    ps__rng rng;
};

ps__hstore *ps__hstore_new(void)
{
    ps__hstore *hs = calloc(1, sizeof(*hs));

    if (hs && ps__rng_seed(&hs->rng) < 0) {
        free(hs);
        return NULL;
    }
    return hs;
}

static void lru_unlink(ps__hstore *hs, hchan *c)
{
    if (c->lru_prev)
        c->lru_prev->lru_next = c->lru_next;
    else
        hs->lru_head = c->lru_next;
    if (c->lru_next)
        c->lru_next->lru_prev = c->lru_prev;
    else
        hs->lru_tail = c->lru_prev;
    c->lru_prev = c->lru_next = NULL;
}

static void lru_append(ps__hstore *hs, hchan *c)
{
    c->lru_prev = hs->lru_tail;
    c->lru_next = NULL;
    if (hs->lru_tail)
        hs->lru_tail->lru_next = c;
    else
        hs->lru_head = c;
    hs->lru_tail = c;
}

static void drop_oldest_entry(ps__hstore *hs, hchan *c)
{
    hentry *e = c->head;
    size_t sz = sizeof(*e) + e->len;

    c->head = e->next;
    if (!c->head)
        c->tail = NULL;
    c->n--;
    c->bytes -= sz;
    hs->bytes -= sz;
    free(e);
}

static void drop_channel(ps__hstore *hs, hchan *c)
{
    while (c->head)
        drop_oldest_entry(hs, c);
    HASH_DEL(hs->chans, c);
    lru_unlink(hs, c);
    hs->nchans--;
    hs->bytes -= c->bytes;
    free(c);
}

/* Expiry of the least recently written channels. With one TTL for all
 * channels the list is in expiry order and this is exact; with several it
 * stops early, and touch() catches the rest when they are used. */
static void expire_some(ps__hstore *hs, uint64_t now_ms)
{
    while (hs->lru_head && hs->lru_head->expires_ms <= now_ms)
        drop_channel(hs, hs->lru_head);
}

/* Makes room for `more` bytes (and, with a new channel, one more channel)
 * by dropping whole channels other than keep, least recently written first. */
static void make_room(ps__hstore *hs, size_t more, int new_channel, const hchan *keep)
{
    hchan *c = hs->lru_head;

    while (c && (hs->bytes + more > HSTORE_MAX_BYTES ||
                 hs->nchans + (size_t)new_channel > HSTORE_MAX_CHANNELS)) {
        hchan *next = c->lru_next;
        if (c != keep)
            drop_channel(hs, c);
        c = next;
    }
}

static hchan *channel_new(ps__hstore *hs, const char *name, const ps_history_policy *hist,
                          uint64_t now_ms)
{
    size_t len = strlen(name), sz = sizeof(hchan) + len + 1;
    hchan *c;

    make_room(hs, sz, 1, NULL);
    c = calloc(1, sz);
    if (!c)
        return NULL;
    c->len = len;
    memcpy(c->name, name, len + 1);
    HASH_ADD_KEYPTR(hh, hs->chans, c->name, len, c);
    if (!c->hh.tbl) {
        free(c);
        return NULL;
    }
    ps__epoch_new(&hs->rng, c->epoch);
    c->expires_ms = now_ms + (uint64_t)hist->ttl_s * 1000u;
    c->bytes = sz;
    hs->bytes += sz;
    hs->nchans++;
    lru_append(hs, c);
    return c;
}

/* The channel's live record, a fresh one (new epoch, top 0) when it had
 * none or its TTL ran out. */
static hchan *touch(ps__hstore *hs, const char *name, const ps_history_policy *hist,
                    uint64_t now_ms)
{
    hchan *c;

    expire_some(hs, now_ms);
    HASH_FIND(hh, hs->chans, name, strlen(name), c);
    if (c && c->expires_ms <= now_ms) {
        drop_channel(hs, c);
        c = NULL;
    }
    return c ? c : channel_new(hs, name, hist, now_ms);
}

static hentry *entry_new(const char *head, size_t head_len, const char *sep, int64_t offset,
                         const char *epoch)
{
    char tail[96];
    int n = snprintf(tail, sizeof(tail), "%s\"offset\":%lld,\"epoch\":\"%s\"}", sep,
                     (long long)offset, epoch);
    hentry *e = malloc(sizeof(*e) + head_len + (size_t)n + 1);

    if (!e)
        return NULL;
    e->next = NULL;
    e->offset = offset;
    e->len = head_len + (size_t)n;
    memcpy(e->text, head, head_len);
    memcpy(e->text + head_len, tail, (size_t)n + 1);
    return e;
}

static void push_entry(ps__hstore *hs, hchan *c, hentry *e)
{
    size_t sz = sizeof(*e) + e->len;

    if (c->tail)
        c->tail->next = e;
    else
        c->head = e;
    c->tail = e;
    c->n++;
    c->bytes += sz;
    hs->bytes += sz;
}

int ps__hstore_append(ps__hstore *hs, const char *channel, const char *head, size_t head_len,
                      const char *sep, const ps_history_policy *hist, uint64_t now_ms,
                      ps_publish_result *res, const char **text, size_t *text_len)
{
    hchan *c = touch(hs, channel, hist, now_ms);
    hentry *e = c ? entry_new(head, head_len, sep, c->top + 1, c->epoch) : NULL;

    if (!e)
        return PS_ENOMEM;
    c->top++;
    c->expires_ms = now_ms + (uint64_t)hist->ttl_s * 1000u;
    lru_unlink(hs, c);
    lru_append(hs, c);
    make_room(hs, sizeof(*e) + e->len, 0, c);
    push_entry(hs, c, e);
    /* The policy may have shrunk since the last publish: trim to it now. */
    while (c->n > hist->size || (hs->bytes > HSTORE_MAX_BYTES && c->head != e))
        drop_oldest_entry(hs, c);
    res->offset = c->top;
    memcpy(res->epoch, c->epoch, sizeof(c->epoch));
    *text = e->text;
    *text_len = e->len;
    return PS_OK;
}

/* The first stored entry with offset > since, and how many follow it. */
static hentry *entries_after(const hchan *c, int64_t since, size_t *avail)
{
    hentry *e = c->head;
    size_t skipped = 0;

    if (since < 0) {
        *avail = c->tail ? 1 : 0;
        return c->tail;
    }
    for (; e && e->offset <= since; e = e->next)
        skipped++;
    *avail = c->n - skipped;
    return e;
}

int ps__hstore_read(ps__hstore *hs, const char *channel, int64_t since, size_t limit,
                    const ps_history_policy *hist, uint64_t now_ms, ps_history *h)
{
    hchan *c = touch(hs, channel, hist, now_ms);
    ps_history_entry *v = NULL;
    size_t avail = 0, i;
    hentry *e;

    if (!c)
        return PS_ENOMEM;
    e = entries_after(c, since, &avail);
    if (since < 0)
        limit = 1;
    if (avail > limit)
        avail = limit;
    if (avail > 0 && !(v = malloc(avail * sizeof(*v))))
        return PS_ENOMEM;
    for (i = 0; i < avail; i++, e = e->next)
        v[i] = (ps_history_entry){e->offset, e->text, e->len};
    memcpy(h->epoch, c->epoch, sizeof(c->epoch));
    h->top = c->top;
    h->first = c->head ? c->head->offset : 0;
    h->entries = v;
    h->n = avail;
    return PS_OK;
}

void ps__hstore_free(ps__hstore *hs)
{
    if (!hs)
        return;
    while (hs->lru_head)
        drop_channel(hs, hs->lru_head);
    free(hs);
}
