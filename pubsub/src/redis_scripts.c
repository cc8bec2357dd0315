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
 *                          one entry per publish call (a batch, or one
 *                          message), described below.
 * The pub/sub channel stays <prefix><channel>, as for plain publishes.
 *
 * A stream entry holds the messages of one publish call, with ID
 * "<last offset>-0". One message is stored as the previous version stored
 * every message: field "m" with its complete text (the very text it is
 * published as), so gateways of either version read it. A batch of n is
 * stored as field "n" with their lengths ("107,98,...") and field "b" with
 * their heads, each envelope without its closing brace (ps__object_split),
 * joined by "}," and ending in "}]" (see the PUBLISH below); the i-th has
 * offset last - n + i. A batch's offsets and epoch are not stored per
 * message: the offsets follow from the ID and the epoch is the meta's (the
 * stream is deleted whenever the epoch changes). The history script
 * appends both when it reads, so a reader gets exactly the text a live
 * subscriber got. Why one entry per batch and no per-message text: a batch
 * of 50 stored as 50 XADDs, each text built in Lua, cost Redis 5.4 µs per
 * message (an XADD from Lua alone 2.65 µs); as one entry of two fields,
 * built by the caller, about 0.8 µs (redis-benchmark, INFO commandstats;
 * docs/benchmarks.md). Reads are rare and pay for the assembly instead.
 * A gateway of the previous version cannot read batch entries (it takes
 * the lengths for the text and drops it): during a rolling upgrade its
 * subscribers may miss batched messages in a recovery or gap fill.
 *
 * Why the ID is the last offset: trimming then needs no lookup. XADD
 * MINID ~ (top - size + 1) drops only entries whose last message is before
 * the first one clients may see, so the entry that straddles that point
 * stays. '~' trims whole stream nodes (at most 100 entries or 4 KB,
 * Redis's stream-node-max-*), so a stream holds the last `size` messages,
 * plus the older part of the batch that straddles the cut, plus at most
 * one node; an exact trim would move a node in memory at every publish
 * (it halved the throughput of the previous layout). Clients still see
 * exactly the last `size`: the history script treats top - size + 1 as
 * the first offset and never returns a message before it.
 *
 * publish: takes one or more groups, each n messages (1 or more, a batch)
 * to one channel, and runs them in order, each on its own (pcall: a group
 * that fails leaves the others alone); several groups in one call spare
 * Redis the EVALSHA and its round trip per channel. For each group it
 * reads the meta; without one (first use, expired, FLUSHALL) it creates
 * it with the candidate epoch the caller passes in (Lua has no good
 * randomness of its own) and deletes any stale stream, whose offsets would
 * belong to the old epoch. HINCRBY by n reserves the next n offsets, XADD
 * stores the entry (when Redis refuses it, e.g. someone else's key of
 * another type at the stream's name, the offsets are given back before the
 * group fails: a refused publish must not leave a hole that every
 * subscriber would later take for lost messages), the TTLs are refreshed (below) and one PUBLISH sends
 * the lot: one message as its complete stored text (head, separator,
 * "offset":N,"epoch":"E"}); a batch as the JSON array
 * [<first offset>,"<epoch>",<envelope>,...], the caller's "b" with one
 * concatenation in front, which the receiving buses split into complete
 * texts again (envelope.c). A gateway of the previous version drops that
 * array and fills the gap from the stream, which it cannot read either
 * (above). Offset order is thus publish order, on the
 * stream and on the channel alike.
 *
 * Why the TTLs are refreshed only now and then: two EXPIREs per message
 * were a third of the script's commands, and asking Redis whether they
 * were due (a PTTL per call) was still one of five. The keys get ttl +
 * slack seconds (PS_TTL_SLACK: ttl / 16, at most 60), and the caller says
 * when (ttl_refresh.c: when it last refreshed that channel slack seconds
 * ago or more, on its own clock), so after every publish both keys still
 * live at least ttl and at most ttl + slack seconds. What the caller
 * cannot know the script sees: a meta it creates, and a stream that is
 * gone while the meta is not (XADD NOMKSTREAM answers nil; the stream is
 * then created by a second XADD), get their TTLs at once.
 *
 * history: creates the meta the same way when missing (so the epoch a
 * subscriber is told is the one the next publish uses), then returns
 * epoch, top, the first offset kept (the oldest stored, or top - size + 1
 * when more are stored) and the messages after `since` from there on, at
 * most `limit` (the entries whose last offset falls in that range, plus
 * the one after it that holds its end), or only the latest one
 * (since < 0): each as {offset, complete text}.
 *
 * A meta whose epoch is not a valid epoch (someone else wrote the key) is
 * treated as missing rather than published into every message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis_scripts.h"

/* KEYS: meta and stream of each group in turn. ARGV: nine per group, in
 * the same order: candidate epoch, size, "1" to refresh the TTLs (else ""),
 * ttl + slack, pub/sub channel, n, lengths ("n" above; empty for n = 1),
 * body ("b" above; for n = 1 the head alone), and for n = 1 the separator
 * between head and "offset" ("," or "" after an empty object). Returns one
 * element per group: {first offset, epoch}, or the error that stopped
 * that group (pcall), so that a refused group (someone else's key of
 * another type, say) fails only its own callers: the groups before it
 * are published, and said so. */
static const char publish_lua[] =
    "local function publish(m, h, a)\n"
    "  local refresh = ARGV[a + 3] == '1'\n"
    "  local epoch = redis.call('HGET', m, 'epoch')\n"
    "  if not epoch or #epoch > 32 or not string.match(epoch, '^[%w_%-]+$') then\n"
    "    epoch = ARGV[a + 1]\n"
    "    redis.call('DEL', h)\n"
    "    redis.call('HSET', m, 'epoch', epoch, 'top', 0)\n"
    "    refresh = true\n"
    "  end\n"
    "  local n = tonumber(ARGV[a + 6])\n"
    "  local top = redis.call('HINCRBY', m, 'top', n)\n"
    "  local first = string.format('%d', top - n + 1)\n"
    "  local keep = string.format('%d', math.max(top - tonumber(ARGV[a + 2]) + 1, 0))\n"
    "  local id = string.format('%d', top) .. '-0'\n"
    "  local text, added\n"
    "  if n == 1 then\n"
    "    text = ARGV[a + 8] .. ARGV[a + 9] .. '\"offset\":' .. first .. ',\"epoch\":\"' .. epoch "
    ".. '\"}'\n"
    "    added = redis.pcall('XADD', h, 'NOMKSTREAM', 'MINID', '~', keep, id, 'm', text)\n"
    "    if not added then redis.call('XADD', h, id, 'm', text) end\n"
    "  else\n"
    "    text = '[' .. first .. ',\"' .. epoch .. '\",' .. ARGV[a + 8]\n"
    "    added = redis.pcall('XADD', h, 'NOMKSTREAM', 'MINID', '~', keep, id, 'n', ARGV[a + 7],\n"
    "                       'b', ARGV[a + 8])\n"
    "    if not added then redis.call('XADD', h, id, 'n', ARGV[a + 7], 'b', ARGV[a + 8]) end\n"
    "  end\n"
    "  if type(added) == 'table' then\n"
    "    redis.call('HINCRBY', m, 'top', -n)\n"
    "    error(added)\n"
    "  end\n"
    "  if not added then refresh = true end\n"
    "  if refresh then\n"
    "    redis.call('EXPIRE', m, ARGV[a + 4])\n"
    "    redis.call('EXPIRE', h, ARGV[a + 4])\n"
    "  end\n"
    "  redis.call('PUBLISH', ARGV[a + 5], text)\n"
    "  return {tonumber(first), epoch}\n"
    "end\n"
    "local out = {}\n"
    "for g = 1, #KEYS / 2 do\n"
    "  local ok, r = pcall(publish, KEYS[2 * g - 1], KEYS[2 * g], 9 * (g - 1))\n"
    "  if ok then\n"
    "    out[g] = r\n"
    "  elseif type(r) == 'table' and r.err then\n"
    "    out[g] = {err = r.err}\n"
    "  else\n"
    "    out[g] = {err = 'ERR ' .. tostring(r)}\n"
    "  end\n"
    "end\n"
    "return out\n";

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
    "local function id(offset) return string.format('%d', offset) end\n"
    "local function last_of(e) return tonumber(string.match(e[1], '^%d+')) end\n"
    "local function lengths(e)\n"
    "  local v = {}\n"
    "  if e[2][1] == 'n' then\n"
    "    for len in string.gmatch(e[2][2], '%d+') do v[#v + 1] = tonumber(len) end\n"
    "  end\n"
    "  return v\n"
    "end\n"
    "local function first_of(e) return last_of(e) - math.max(#lengths(e), 1) + 1 end\n"
    "local tail = ',\"epoch\":\"' .. epoch .. '\"}'\n"
    "local out = {}\n"
    "local function expand(e, lo, hi)\n"
    "  local f, last = e[2], last_of(e)\n"
    "  if f[1] == 'm' then\n"
    "    if last >= lo and last <= hi then out[#out + 1] = last; out[#out + 1] = f[2] end\n"
    "    return\n"
    "  end\n"
    "  if f[1] ~= 'n' or f[3] ~= 'b' then return end\n"
    "  local lens = lengths(e)\n"
    "  local offset, pos = last - #lens + 1, 1\n"
    "  for _, len in ipairs(lens) do\n"
    "    if offset >= lo and offset <= hi then\n"
    "      local head = string.sub(f[4], pos, pos + len - 1)\n"
    "      local sep = string.find(head, '^{[ \\t\\n\\r]*$') and '' or ','\n"
    "      out[#out + 1] = offset\n"
    "      out[#out + 1] = head .. sep .. '\"offset\":' .. id(offset) .. tail\n"
    "    end\n"
    "    offset, pos = offset + 1, pos + len + 2\n"
    "  end\n"
    "end\n"
    "local first = 0\n"
    "local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)\n"
    "if oldest[1] then first = first_of(oldest[1]) end\n"
    "local size = tonumber(ARGV[5])\n"
    "if first > 0 and top - size + 1 > first then first = top - size + 1 end\n"
    "local since, limit = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
    "if since < 0 then\n"
    "  local e = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]\n"
    "  if e then expand(e, last_of(e), last_of(e)) end\n"
    "elseif limit > 0 then\n"
    "  local lo = math.max(since, first - 1) + 1\n"
    "  local hi = math.min(lo + limit - 1, top)\n"
    "  if lo <= hi then\n"
    "    local found = redis.call('XRANGE', KEYS[2], id(lo), id(hi))\n"
    "    if not found[1] or last_of(found[#found]) < hi then\n"
    "      found[#found + 1] = redis.call('XRANGE', KEYS[2], '(' .. id(hi), '+', 'COUNT', 1)[1]\n"
    "    end\n"
    "    for _, e in ipairs(found) do expand(e, lo, hi) end\n"
    "  end\n"
    "end\n"
    "return {epoch, top, first, out}\n";

const char *ps__script_text(enum ps__script which)
{
    return which == PS__SCRIPT_PUBLISH ? publish_lua : history_lua;
}

/* ------------------------------------------------------------ commands */

/* An EVALSHA argument list, pointing into caller buffers. The history
 * command has a fixed number of arguments, which fit in the struct; a
 * publish command has eleven per group and two more (args_big). */
#define ARGS_MAX 16

struct args {
    int n;
    const char **v;
    size_t *len;
    const char *v_small[ARGS_MAX];
    size_t len_small[ARGS_MAX];
};

static void args_small(struct args *a)
{
    a->n = 0;
    a->v = a->v_small;
    a->len = a->len_small;
}

/* Room for cap arguments. Returns 0, or -1 on OOM (args_free still due). */
static int args_big(struct args *a, size_t cap)
{
    args_small(a);
    if (cap <= ARGS_MAX)
        return 0;
    a->v = malloc(cap * sizeof(*a->v));
    a->len = malloc(cap * sizeof(*a->len));
    return a->v && a->len ? 0 : -1;
}

static void args_free(struct args *a)
{
    if (a->v != a->v_small)
        free(a->v);
    if (a->len != a->len_small)
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

/* A channel's two keys (see the top of the file), the one place that
 * spells them. prefix (64) + "m:{" + channel (255) + "}" fit in 400. */
struct keys {
    char meta[400], stream[400];
    size_t meta_len, stream_len;
};

static size_t put(char *buf, size_t cap, const char *fmt, const char *prefix, size_t prefix_len,
                  const char *channel)
{
    int n = snprintf(buf, cap, fmt, (int)prefix_len, prefix, channel);

    return n < 0 ? 0 : (size_t)n;
}

static void keys_of(struct keys *k, const char *prefix, size_t prefix_len, const char *channel)
{
    k->meta_len = put(k->meta, sizeof(k->meta), "%.*sm:{%s}", prefix, prefix_len, channel);
    k->stream_len = put(k->stream, sizeof(k->stream), "%.*sh:{%s}", prefix, prefix_len, channel);
}

static void head_args(struct args *a, struct keys *k, const ps__script_target *t)
{
    keys_of(k, t->prefix, t->prefix_len, t->channel);
    args_small(a);
    arg_str(a, "EVALSHA");
    arg_str(a, t->sha);
    arg_str(a, "2");
    arg(a, k->meta, k->meta_len);
    arg(a, k->stream, k->stream_len);
}

static long format(char **cmd, struct args *a)
{
    int len = redisFormatCommandArgv(cmd, a->n, a->v, a->len);

    return len < 0 ? -1 : (long)len;
}

/* The blanks ps__object_split allows around an object. */
static size_t leading_blanks(const char *s, size_t len)
{
    size_t i = 0;

    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* A batch's "n" and "b" arguments (see the top of the file), malloc'd
 * into *lens and *body. Heads are written from their '{' on: the receiving
 * splitter starts each piece there too, so stored and live texts agree
 * byte for byte. Returns 0, or -1 on OOM. */
static int batch_args(const ps_payload *msgs, const ps__parts *parts, char **lens, size_t *lens_len,
                      char **body, size_t *body_len)
{
    size_t i, l = 0, b = 0;

    *lens = malloc(parts->n * 21);
    *body = malloc(parts->total + 2 * parts->n);
    if (!*lens || !*body)
        return -1;
    for (i = 0; i < parts->n; i++) {
        size_t head = ps__part_at(parts, i)->head_len;
        size_t skip = leading_blanks(msgs[i].text, head);

        l += (size_t)sprintf(*lens + l, i ? ",%zu" : "%zu", head - skip);
        memcpy(*body + b, msgs[i].text + skip, head - skip);
        b += head - skip;
        memcpy(*body + b, i + 1 < parts->n ? "}," : "}]", 2);
        b += 2;
    }
    *lens_len = l;
    *body_len = b;
    return 0;
}

/* What one group of a publish command formats on its own: its keys, and
 * the arguments that are not slices of the caller's messages. */
struct group_bufs {
    struct keys keys;
    char channel[400];
    size_t channel_len;
    char size[16], keep[24], n[24];
    char *lens, *body; /* a batch's "n" and "b", malloc'd */
    size_t lens_len, body_len;
};

static int group_prepare(struct group_bufs *gb, const char *prefix, size_t prefix_len,
                         const ps__publish_group *g)
{
    const ps_history_policy *hist = g->hist;

    keys_of(&gb->keys, prefix, prefix_len, g->channel);
    gb->channel_len =
        put(gb->channel, sizeof(gb->channel), "%.*s%s", prefix, prefix_len, g->channel);
    snprintf(gb->size, sizeof(gb->size), "%u", (unsigned)hist->size);
    snprintf(gb->keep, sizeof(gb->keep), "%llu",
             (unsigned long long)hist->ttl_s + PS_TTL_SLACK(hist->ttl_s));
    snprintf(gb->n, sizeof(gb->n), "%zu", g->parts->n);
    if (g->parts->n == 1)
        return 0;
    return batch_args(g->msgs, g->parts, &gb->lens, &gb->lens_len, &gb->body, &gb->body_len);
}

/* The group's nine arguments (see publish_lua). */
static void group_args(struct args *a, const struct group_bufs *gb, const ps__publish_group *g)
{
    arg_str(a, g->epoch);
    arg_str(a, gb->size);
    arg_str(a, g->refresh ? "1" : "");
    arg_str(a, gb->keep);
    arg(a, gb->channel, gb->channel_len);
    arg_str(a, gb->n);
    if (g->parts->n == 1) {
        /* One message: its head is a slice of the caller's text, and the
         * script needs its separator to complete it; no lengths. */
        size_t head = g->parts->one.head_len, skip = leading_blanks(g->msgs[0].text, head);
        arg_str(a, "");
        arg(a, g->msgs[0].text + skip, head - skip);
        arg_str(a, g->parts->one.sep);
    } else {
        arg(a, gb->lens, gb->lens_len);
        arg(a, gb->body, gb->body_len);
        arg_str(a, "");
    }
}

long ps__script_publish_cmd(char **cmd, const char *prefix, size_t prefix_len, const char *sha,
                            const ps__publish_group *g, size_t ngroups)
{
    struct args a;
    struct group_bufs *gb = calloc(ngroups, sizeof(*gb));
    char numkeys[24];
    long rc = -1;
    size_t i;

    if (args_big(&a, 3 + 11 * ngroups) < 0 || !gb)
        goto out;
    for (i = 0; i < ngroups; i++)
        if (group_prepare(&gb[i], prefix, prefix_len, &g[i]) < 0)
            goto out;
    snprintf(numkeys, sizeof(numkeys), "%zu", 2 * ngroups);
    arg_str(&a, "EVALSHA");
    arg_str(&a, sha);
    arg_str(&a, numkeys);
    for (i = 0; i < ngroups; i++) {
        arg(&a, gb[i].keys.meta, gb[i].keys.meta_len);
        arg(&a, gb[i].keys.stream, gb[i].keys.stream_len);
    }
    for (i = 0; i < ngroups; i++)
        group_args(&a, &gb[i], &g[i]);
    rc = format(cmd, &a);
out:
    for (i = 0; gb && i < ngroups; i++) {
        free(gb[i].lens);
        free(gb[i].body);
    }
    free(gb);
    args_free(&a);
    return rc;
}

long ps__script_history_cmd(char **cmd, const ps__script_target *t, int64_t since, size_t limit,
                            const ps_history_policy *hist, const char *epoch)
{
    struct args a;
    struct keys k;
    char ttl[16], since_s[24], limit_s[24], size[16];

    /* More than the stream can hold is the same as "all"; the cap keeps
     * since + limit within the integers a Lua number holds exactly. */
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

int ps__script_publish_reply(const redisReply *r, size_t ngroups)
{
    return r->type == REDIS_REPLY_ARRAY && r->elements == ngroups ? PS_OK : PS_EINVAL;
}

int ps__script_publish_group(const redisReply *r, size_t i, ps_publish_result *res,
                             const char **err)
{
    const redisReply *e = r->element[i];

    *err = NULL;
    if (e->type == REDIS_REPLY_ERROR) {
        *err = e->str;
        return ps__refusal_status(e->str);
    }
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        offset_reply(e->element[0], 1, &res->offset) < 0 ||
        epoch_reply(e->element[1], res->epoch) < 0)
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
