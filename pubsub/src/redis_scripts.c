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
 * publish: reads the meta; without one (first use, expired, FLUSHALL) it
 * creates it with the candidate epoch the caller passes in (Lua has no good
 * randomness of its own) and deletes any stale stream, whose offsets would
 * belong to the old epoch. Then top + 1 is the offset, the text is the
 * envelope with "offset" and "epoch" appended, XADD stores it trimmed to
 * about `size` (MAXLEN ~), EXPIRE refreshes both keys and PUBLISH sends the
 * very same text. Offset order is thus publish order, on the stream and on
 * the channel alike.
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

/* KEYS: meta, stream. ARGV: candidate epoch, size, ttl, pub/sub channel,
 * envelope head, separator. Returns {offset, epoch}. */
static const char publish_lua[] =
    "local epoch = redis.call('HGET', KEYS[1], 'epoch')\n"
    "if not epoch or #epoch > 32 or not string.match(epoch, '^[%w_%-]+$') then\n"
    "  epoch = ARGV[1]\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)\n"
    "end\n"
    "local top = redis.call('HINCRBY', KEYS[1], 'top', 1)\n"
    "local text = ARGV[5] .. ARGV[6] .. '\"offset\":' .. string.format('%d', top) ..\n"
    "  ',\"epoch\":\"' .. epoch .. '\"}'\n"
    "redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], string.format('%d-0', top), 'm', text)\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
    "redis.call('EXPIRE', KEYS[2], ARGV[3])\n"
    "redis.call('PUBLISH', ARGV[4], text)\n"
    "return {top, epoch}\n";

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

/* An EVALSHA argument list: fixed slots, some pointing into bufs. */
struct args {
    const char *v[12];
    size_t len[12];
    int n;
};

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

    a->n = 0;
    arg_str(a, "EVALSHA");
    arg_str(a, t->sha);
    arg_str(a, "2");
    arg(a, k->meta, (size_t)n);
    arg(a, k->stream, (size_t)m);
}

static long format(char **cmd, struct args *a)
{
    int len = redisFormatCommandArgv(cmd, a->n, a->v, a->len);

    return len < 0 ? -1 : (long)len;
}

long ps__script_publish_cmd(char **cmd, const ps__script_target *t, const char *payload,
                            size_t head_len, const char *sep, const ps_history_policy *hist,
                            const char *epoch)
{
    struct args a;
    struct keys k;
    char size[16], ttl[16], channel[400];
    int n = snprintf(channel, sizeof(channel), "%.*s%s", (int)t->prefix_len, t->prefix, t->channel);

    snprintf(size, sizeof(size), "%u", (unsigned)hist->size);
    snprintf(ttl, sizeof(ttl), "%u", (unsigned)hist->ttl_s);
    head_args(&a, &k, t);
    arg_str(&a, epoch);
    arg_str(&a, size);
    arg_str(&a, ttl);
    arg(&a, channel, (size_t)n);
    arg(&a, payload, head_len);
    arg_str(&a, sep);
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
