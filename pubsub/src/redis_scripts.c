/*
 * History in Redis: two Lua scripts, run with EVALSHA on the Redis bus's
 * command link, each one atomic step (Redis runs a script to the end before
 * any other command).
 *
 * Keys per channel, both with the channel as a hash tag so that Redis
 * Cluster keeps them in one slot (a script may only touch one slot):
 *   <prefix>m:{<channel>}  hash {epoch, top}: the channel's epoch and the
 *                          last offset given out;
 *   <prefix>h:{<channel>}  stream of (at least) the last `size` messages,
 *                          entry ID "<offset>-0", one field "m" with the
 *                          stored text.
 * The pub/sub channel stays <prefix><channel>, as for plain publishes.
 *
 * publish: stores and sends n messages (1 or more, a batch) in one call.
 * It reads the meta; without one (first use, expired, FLUSHALL) it creates
 * it with the candidate epoch the caller passes in (Lua has no good
 * randomness of its own) and deletes any stale stream, whose offsets would
 * belong to the old epoch. HINCRBY by n reserves the next n offsets, each
 * text is its envelope with "offset" and "epoch" appended, XADD stores each
 * trimmed to about `size` (MAXLEN ~), and the TTLs are refreshed (below).
 * One message is PUBLISHed as its very text; several as one JSON array of
 * their texts, which the receiving buses split again (envelope.c): one
 * PUBLISH, one reply to build and one message per subscribed gateway
 * instead of n. Offset order is thus publish order, on the stream and on
 * the channel alike.
 *
 * Why the TTLs are refreshed only now and then: two EXPIREs per message
 * were a third of the script's commands. The keys get ttl + slack seconds
 * (PS_TTL_SLACK: ttl / 16, at most 60) and are refreshed only when the
 * stream's PTTL fell below ttl (or is over ttl + slack, after the policy
 * shrank), so after every publish both keys still live at least ttl and at
 * most ttl + slack seconds, and a busy channel pays one cheap PTTL instead.
 * The stream's PTTL speaks for both keys: they are only ever expired
 * together, and a stream that XADD just created has none (-1), which
 * refreshes both.
 *
 * Why '~': an exact MAXLEN deletes the oldest entry from the front of a
 * stream node at every publish, which moves the whole node in memory;
 * measured with redis-benchmark, it halved the script's throughput (50k/s
 * against 105k/s for 100-entry streams). Approximate trimming drops whole
 * nodes instead, so a stream holds between `size` and `size` + one node
 * (100 entries, Redis's stream-node-max-entries). Clients still see exactly
 * the last `size`: the history script treats top - size + 1 as the first
 * offset and never returns an entry before it.
 *
 * history: creates the meta the same way when missing (so the epoch a
 * subscriber is told is the one the next publish uses), then returns
 * epoch, top, the first offset kept (the oldest stored, or top - size + 1
 * when more are stored) and the entries after `since` from there on
 * (exclusive XRANGE, Redis >= 6.2) or only the latest one (since < 0).
 *
 * A meta whose epoch is not a valid epoch (someone else wrote the key) is
 * treated as missing rather than published into every message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_scripts.h"

/* KEYS: meta, stream. ARGV: candidate epoch, size, ttl, ttl + slack,
 * pub/sub channel, then per message its envelope head and separator.
 * Returns {first offset, epoch}. */
static const char publish_lua[] =
    "local epoch = redis.call('HGET', KEYS[1], 'epoch')\n"
    "if not epoch or #epoch > 32 or not string.match(epoch, '^[%w_%-]+$') then\n"
    "  epoch = ARGV[1]\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)\n"
    "end\n"
    "local n = (#ARGV - 5) / 2\n"
    "local first = redis.call('HINCRBY', KEYS[1], 'top', n) - n + 1\n"
    "local tail = ',\"epoch\":\"' .. epoch .. '\"}'\n"
    "local texts = {}\n"
    "for i = 1, n do\n"
    "  local offset = string.format('%d', first + i - 1)\n"
    "  texts[i] = ARGV[2 * i + 4] .. ARGV[2 * i + 5] .. '\"offset\":' .. offset .. tail\n"
    "  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], offset .. '-0', 'm', texts[i])\n"
    "end\n"
    "local left = redis.call('PTTL', KEYS[2])\n"
    "if left < tonumber(ARGV[3]) * 1000 or left > tonumber(ARGV[4]) * 1000 then\n"
    "  redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
    "  redis.call('EXPIRE', KEYS[2], ARGV[4])\n"
    "end\n"
    "if n == 1 then\n"
    "  redis.call('PUBLISH', ARGV[5], texts[1])\n"
    "else\n"
    "  redis.call('PUBLISH', ARGV[5], '[' .. table.concat(texts, ',') .. ']')\n"
    "end\n"
    "return {first, epoch}\n";

/* KEYS: meta, stream. ARGV: candidate epoch, ttl, since, limit, size.
 * Returns {epoch, top, first, {offset, text, offset, text, ...}}. */
static const char history_lua[] =
    "local meta = redis.call('HMGET', KEYS[1], 'epoch', 'top')\n"
    "local epoch, top = meta[1], tonumber(meta[2]) or 0\n"
    "if not epoch or #epoch > 32 or not string.match(epoch, '^[%w_%-]+$') then\n"
    "  epoch, top = ARGV[1], 0\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)\n"
    "  redis.call('EXPIRE', KEYS[1], ARGV[2])\n"
    "end\n"
    "local function offset_of(id) return tonumber(string.match(id, '^%d+')) end\n"
    "local first = 0\n"
    "local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)\n"
    "if oldest[1] then first = offset_of(oldest[1][1]) end\n"
    "local size = tonumber(ARGV[5])\n"
    "if first > 0 and top - size + 1 > first then first = top - size + 1 end\n"
    "local from = tonumber(ARGV[3])\n"
    "if from < first - 1 then from = first - 1 end\n"
    "local found = {}\n"
    "if tonumber(ARGV[3]) < 0 then\n"
    "  found = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)\n"
    "elseif tonumber(ARGV[4]) > 0 then\n"
    "  found = redis.call('XRANGE', KEYS[2], '(' .. string.format('%d', from) .. '-0', '+', 'COUNT', ARGV[4])\n"
    "end\n"
    "local out = {}\n"
    "for i, e in ipairs(found) do\n"
    "  out[2 * i - 1] = offset_of(e[1])\n"
    "  out[2 * i] = e[2][2]\n"
    "end\n"
    "return {epoch, top, first, out}\n";

const char *ps__script_text(enum ps__script which)
{
    return which == PS__SCRIPT_PUBLISH ? publish_lua : history_lua;
}

/* ------------------------------------------------------------ commands */

/* An EVALSHA argument list: cap slots, some pointing into caller buffers.
 * The history command fits in the inline slots; a batch publish gets its
 * slots from the heap. */
#define ARGS_INLINE 16

struct args {
    const char **v;
    size_t *len;
    int n;
    const char *inline_v[ARGS_INLINE];
    size_t inline_len[ARGS_INLINE];
};

static int args_init(struct args *a, size_t cap)
{
    a->n = 0;
    a->v = a->inline_v;
    a->len = a->inline_len;
    if (cap <= ARGS_INLINE)
        return 0;
    a->v = malloc(cap * sizeof(*a->v));
    a->len = malloc(cap * sizeof(*a->len));
    return a->v && a->len ? 0 : -1;
}

static void args_free(struct args *a)
{
    if (a->v != a->inline_v)
        free((void *)a->v);
    if (a->len != a->inline_len)
        free(a->len);
}

static void arg(struct args *a, const char *s, size_t len)
{
    a->v[a->n] = s;
    a->len[a->n++] = len;
}

static void arg_str(struct args *a, const char *s)
{
    arg(a, s, strlen(s));
}

/* The key buffers: prefix (64) + "m:{" + channel (255) + "}" fit in 400. */
struct keys {
    char meta[400], stream[400];
};

static void head_args(struct args *a, struct keys *k, const ps__script_target *t)
{
    int n =
        snprintf(k->meta, sizeof(k->meta), "%.*sm:{%s}", (int)t->prefix_len, t->prefix, t->channel);
    int m = snprintf(k->stream, sizeof(k->stream), "%.*sh:{%s}", (int)t->prefix_len, t->prefix,
                     t->channel);

    arg_str(a, "EVALSHA");
    arg_str(a, t->sha);
    arg_str(a, "2");
    arg(a, k->meta, (size_t)n);
    arg(a, k->stream, (size_t)m);
}

/* Formats the command and lets go of the slots. */
static long format(char **cmd, struct args *a)
{
    int len = redisFormatCommandArgv(cmd, a->n, a->v, a->len);

    args_free(a);
    return len < 0 ? -1 : (long)len;
}

long ps__script_publish_cmd(char **cmd, const ps__script_target *t, const ps_payload *msgs,
                            const ps__parts *parts, const ps_history_policy *hist,
                            const char *epoch)
{
    struct args a;
    struct keys k;
    char size[16], ttl[16], keep[24], channel[400];
    int len =
        snprintf(channel, sizeof(channel), "%.*s%s", (int)t->prefix_len, t->prefix, t->channel);
    size_t i;

    if (args_init(&a, 10 + 2 * parts->n) < 0) {
        args_free(&a);
        return -1;
    }
    snprintf(size, sizeof(size), "%u", (unsigned)hist->size);
    snprintf(ttl, sizeof(ttl), "%u", (unsigned)hist->ttl_s);
    snprintf(keep, sizeof(keep), "%llu",
             (unsigned long long)hist->ttl_s + PS_TTL_SLACK(hist->ttl_s));
    head_args(&a, &k, t);
    arg_str(&a, epoch);
    arg_str(&a, size);
    arg_str(&a, ttl);
    arg_str(&a, keep);
    arg(&a, channel, (size_t)len);
    for (i = 0; i < parts->n; i++) {
        arg(&a, msgs[i].text, ps__part_at(parts, i)->head_len);
        arg_str(&a, ps__part_at(parts, i)->sep);
    }
    return format(cmd, &a);
}

long ps__script_history_cmd(char **cmd, const ps__script_target *t, int64_t since, size_t limit,
                            const ps_history_policy *hist, const char *epoch)
{
    struct args a;
    struct keys k;
    char ttl[16], since_s[24], limit_s[24], size[16];

    /* More than the stream can hold is the same as "all"; the cap keeps
     * COUNT within what Redis parses. */
    if (limit > UINT32_MAX)
        limit = UINT32_MAX;
    snprintf(ttl, sizeof(ttl), "%u", (unsigned)hist->ttl_s);
    snprintf(since_s, sizeof(since_s), "%lld", (long long)(since < 0 ? -1 : since));
    snprintf(limit_s, sizeof(limit_s), "%zu", limit);
    snprintf(size, sizeof(size), "%u", (unsigned)hist->size);
    args_init(&a, ARGS_INLINE);
    head_args(&a, &k, t);
    arg_str(&a, epoch);
    arg_str(&a, ttl);
    arg_str(&a, since_s);
    arg_str(&a, limit_s);
    arg_str(&a, size);
    return format(cmd, &a);
}

/* ------------------------------------------------------------ replies */

static int epoch_reply(const redisReply *r, char out[PS_EPOCH_MAX + 1])
{
    if (r->type != REDIS_REPLY_STRING || !ps__epoch_valid(r->str, (size_t)r->len))
        return -1;
    memcpy(out, r->str, (size_t)r->len);
    out[r->len] = '\0';
    return 0;
}

static int offset_reply(const redisReply *r, int64_t min, int64_t *out)
{
    if (r->type != REDIS_REPLY_INTEGER || r->integer < min)
        return -1;
    *out = (int64_t)r->integer;
    return 0;
}

int ps__script_publish_reply(const redisReply *r, ps_publish_result *res)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        offset_reply(r->element[0], 1, &res->offset) < 0 ||
        epoch_reply(r->element[1], res->epoch) < 0)
        return PS_EINVAL;
    return PS_OK;
}

/* The flat {offset, text, ...} list: offsets ascending, texts strings. */
static int entries_reply(const redisReply *r, ps_history *h)
{
    ps_history_entry *v;
    size_t i;

    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0)
        return PS_EINVAL;
    h->n = r->elements / 2;
    if (h->n == 0)
        return PS_OK;
    if (!(v = malloc(h->n * sizeof(*v))))
        return PS_ENOMEM;
    for (i = 0; i < h->n; i++) {
        const redisReply *text = r->element[2 * i + 1];
        if (offset_reply(r->element[2 * i], i ? v[i - 1].offset + 1 : 1, &v[i].offset) < 0 ||
            text->type != REDIS_REPLY_STRING) {
            free(v);
            return PS_EINVAL;
        }
        v[i].payload = text->str;
        v[i].len = (size_t)text->len;
    }
    h->entries = v;
    return PS_OK;
}

int ps__script_history_reply(const redisReply *r, ps_history *h)
{
    memset(h, 0, sizeof(*h));
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 4 ||
        epoch_reply(r->element[0], h->epoch) < 0 || offset_reply(r->element[1], 0, &h->top) < 0 ||
        offset_reply(r->element[2], 0, &h->first) < 0)
        return PS_EINVAL;
    return entries_reply(r->element[3], h);
}

int ps__refusal_status(const char *err)
{
    static const char *const transient[] = {"LOADING",     "BUSY",       "OOM",
                                            "READONLY",    "MASTERDOWN", "TRYAGAIN",
                                            "CLUSTERDOWN", "NOREPLICAS", "NOSCRIPT"};
    size_t i, n;

    for (i = 0; i < sizeof(transient) / sizeof(transient[0]); i++) {
        n = strlen(transient[i]);
        if (strncmp(err, transient[i], n) == 0 && (err[n] == ' ' || err[n] == '\0'))
            return PS_EUNAVAILABLE;
    }
    return PS_EINVAL;
}

int ps__is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}
