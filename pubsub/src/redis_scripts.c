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
 * publish: stores and sends n messages (1 or more, a batch) in one call.
 * It reads the meta; without one (first use, expired, FLUSHALL) it creates
 * it with the candidate epoch the caller passes in (Lua has no good
 * randomness of its own) and deletes any stale stream, whose offsets would
 * belong to the old epoch. HINCRBY by n reserves the next n offsets, XADD
 * stores the entry, the TTLs are refreshed (below) and one PUBLISH sends
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

/* KEYS: meta, stream. ARGV: candidate epoch, size, "1" to refresh the
 * TTLs (else ""), ttl + slack, pub/sub channel, n, lengths ("n" above;
 * empty for n = 1), body ("b" above; for n = 1 the head alone), and for
 * n = 1 the separator between head and "offset" ("," or "" after an empty
 * object). Returns {first offset, epoch}. */
static const char publish_lua[] =
    "local refresh = ARGV[3] == '1'\n"
    "local epoch = redis.call('HGET', KEYS[1], 'epoch')\n"
    "if not epoch or #epoch > 32 or not string.match(epoch, '^[%w_%-]+$') then\n"
    "  epoch = ARGV[1]\n"
    "  redis.call('DEL', KEYS[2])\n"
    "  redis.call('HSET', KEYS[1], 'epoch', epoch, 'top', 0)\n"
    "  refresh = true\n"
    "end\n"
    "local n = tonumber(ARGV[6])\n"
    "local top = redis.call('HINCRBY', KEYS[1], 'top', n)\n"
    "local first = string.format('%d', top - n + 1)\n"
    "local keep = string.format('%d', math.max(top - tonumber(ARGV[2]) + 1, 0))\n"
    "local id = string.format('%d', top) .. '-0'\n"
    "local text, added\n"
    "if n == 1 then\n"
    "  text = ARGV[8] .. ARGV[9] .. '\"offset\":' .. first .. ',\"epoch\":\"' .. epoch .. '\"}'\n"
    "  added = redis.call('XADD', KEYS[2], 'NOMKSTREAM', 'MINID', '~', keep, id, 'm', text)\n"
    "  if not added then redis.call('XADD', KEYS[2], id, 'm', text) end\n"
    "else\n"
    "  text = '[' .. first .. ',\"' .. epoch .. '\",' .. ARGV[8]\n"
    "  added = redis.call('XADD', KEYS[2], 'NOMKSTREAM', 'MINID', '~', keep, id, 'n', ARGV[7],\n"
    "                     'b', ARGV[8])\n"
    "  if not added then redis.call('XADD', KEYS[2], id, 'n', ARGV[7], 'b', ARGV[8]) end\n"
    "end\n"
    "if not added then refresh = true end\n"
    "if refresh then\n"
    "  redis.call('EXPIRE', KEYS[1], ARGV[4])\n"
    "  redis.call('EXPIRE', KEYS[2], ARGV[4])\n"
    "end\n"
    "redis.call('PUBLISH', ARGV[5], text)\n"
    "return {tonumber(first), epoch}\n";

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

/* An EVALSHA argument list, pointing into caller buffers. Both commands
 * have a fixed number of arguments (a batch travels in three of them). */
#define ARGS_MAX 16

struct args {
    int n;
    const char *v[ARGS_MAX];
    size_t len[ARGS_MAX];
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

long ps__script_publish_cmd(char **cmd, const ps__script_target *t, const ps_payload *msgs,
                            const ps__parts *parts, const ps_history_policy *hist,
                            const char *epoch, int refresh)
{
    struct args a;
    struct keys k;
    char size[16], keep[24], n[24], channel[400];
    int len =
        snprintf(channel, sizeof(channel), "%.*s%s", (int)t->prefix_len, t->prefix, t->channel);
    char *lens = NULL, *body = NULL;
    size_t lens_len, body_len;
    long rc = -1;

    snprintf(size, sizeof(size), "%u", (unsigned)hist->size);
    snprintf(keep, sizeof(keep), "%llu",
             (unsigned long long)hist->ttl_s + PS_TTL_SLACK(hist->ttl_s));
    snprintf(n, sizeof(n), "%zu", parts->n);
    head_args(&a, &k, t);
    arg_str(&a, epoch);
    arg_str(&a, size);
    arg_str(&a, refresh ? "1" : "");
    arg_str(&a, keep);
    arg(&a, channel, (size_t)len);
    arg_str(&a, n);
    if (parts->n == 1) {
        /* One message: its head is a slice of the caller's text, and the
         * script needs its separator to complete it; no lengths. */
        size_t head = parts->one.head_len, skip = leading_blanks(msgs[0].text, head);
        arg_str(&a, "");
        arg(&a, msgs[0].text + skip, head - skip);
        arg_str(&a, parts->one.sep);
        return format(cmd, &a);
    }
    if (batch_args(msgs, parts, &lens, &lens_len, &body, &body_len) == 0) {
        arg(&a, lens, lens_len);
        arg(&a, body, body_len);
        arg_str(&a, "");
        rc = format(cmd, &a);
    }
    free(lens);
    free(body);
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
