/*
 * Envelopes: the JSON text a message travels in on the bus,
 * {"data":<any JSON>,"from":"<sub>","ts":T,"offset":N,"epoch":"E"}, and its one-time
 * conversion into the frame every subscriber of the channel is sent:
 * {"type":"message","channel":"c","data":...,"offset":N,"epoch":"E","from":"s"}.
 *
 * Payloads on the bus come from anyone who can PUBLISH to Redis, so parsing
 * is strict (duplicate keys refused, every optional field type-checked) and
 * a bad payload is an ordinary PS_EENVELOPE, never a crash. Unknown keys are
 * ignored so that a newer publisher can add fields. "ts" (publish time, ms
 * since the Unix epoch) is for the gateway's latency histogram only and
 * never reaches clients.
 *
 * A batch publish with history sends its envelopes as one JSON array (one
 * PUBLISH for the lot, see redis_scripts.c), headed by the batch's first
 * offset and its epoch, which the envelopes themselves lack; the splitter
 * at the end of this file cuts such a payload back into envelopes without
 * parsing them and appends each one's offset and epoch, so that each is
 * then parsed, framed and checked for gaps as if it had been published
 * alone, byte for byte what a history read returns.
 *
 * Output is written straight into its final buffer: a frame is built in
 * memory that becomes the ps_frame (headroom and all), and jansson
 * serialises `data` through a callback into that buffer, so the data is
 * encoded once and never copied again.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus_internal.h"
#include "pubsub/pubsub.h"

#define SUB_MAX 128  /* the protocol's limit on a user id */
#define EPOCH_MAX PS_EPOCH_MAX /* what history gives out; longer ones are refused */
#define DUMP_FLAGS (JSON_COMPACT | JSON_ENCODE_ANY)

/* ------------------------------------------------------------ output buffer */

/* Text under construction at mem + start; `start` bytes in front are
 * reserved (the ps_frame header and headroom, or nothing). One spare byte
 * is always kept for the closing NUL. */
struct out {
    unsigned char *mem;
    size_t start, len, cap;
    int oom;
};

static void out_init(struct out *o, size_t start, size_t cap)
{
    o->start = start;
    o->len = 0;
    o->cap = cap;
    o->oom = 0;
    o->mem = malloc(start + cap + 1);
    if (!o->mem)
        o->oom = 1;
}

static int out_reserve(struct out *o, size_t n)
{
    size_t cap = o->cap;
    unsigned char *mem;

    if (o->oom)
        return -1;
    if (n <= o->cap - o->len)
        return 0;
    while (n > cap - o->len) {
        if (cap > ((size_t)-1 - o->start - 1) / 2) {
            o->oom = 1;
            return -1;
        }
        cap *= 2;
    }
    mem = realloc(o->mem, o->start + cap + 1);
    if (!mem) {
        o->oom = 1;
        return -1;
    }
    o->mem = mem;
    o->cap = cap;
    return 0;
}

static void out_put(struct out *o, const void *p, size_t n)
{
    if (out_reserve(o, n) == 0) {
        memcpy(o->mem + o->start + o->len, p, n);
        o->len += n;
    }
}

static void out_lit(struct out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

/* A JSON string literal. The fields written this way (channel, from, epoch)
 * are plain ASCII in practice; escaping anyway keeps the frame valid JSON
 * whatever a caller passes. */
static void out_jstr(struct out *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const char *run = s;

    out_put(o, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        out_put(o, run, (size_t)(s - run));
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            out_put(o, esc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            out_put(o, esc, 6);
        }
        run = s + 1;
    }
    out_put(o, run, (size_t)(s - run));
    out_put(o, "\"", 1);
}

static int dump_cb(const char *buf, size_t size, void *data)
{
    struct out *o = data;

    out_put(o, buf, size);
    return o->oom ? -1 : 0;
}

static void out_json(struct out *o, const json_t *v)
{
    if (!o->oom && json_dump_callback(v, dump_cb, o, DUMP_FLAGS) != 0)
        o->oom = 1;
}

/* ------------------------------------------------------------ field checks */

static int sub_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '@' || c == '-';
}

static int epoch_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* 1 when s is n bytes (1..max), each accepted by ok. */
static int token_valid(const char *s, size_t n, size_t max, int (*ok)(unsigned char))
{
    size_t i;

    if (n == 0 || n > max)
        return 0;
    for (i = 0; i < n; i++)
        if (!ok((unsigned char)s[i]))
            return 0;
    return 1;
}

/* A JSON string field of at most max bytes of ok characters; NULL if not. */
static const char *token_field(const json_t *v, size_t max, int (*ok)(unsigned char))
{
    if (!json_is_string(v) || !token_valid(json_string_value(v), json_string_length(v), max, ok))
        return NULL;
    return json_string_value(v);
}

static int read_fields(ps_envelope *env)
{
    json_t *from = json_object_get(env->root, "from");
    json_t *offset = json_object_get(env->root, "offset");
    json_t *epoch = json_object_get(env->root, "epoch");
    json_t *ts = json_object_get(env->root, "ts");

    env->data = json_object_get(env->root, "data");
    if (!env->data)
        return -1;
    if (from && !(env->from = token_field(from, SUB_MAX, sub_char)))
        return -1;
    if (epoch && !(env->epoch = token_field(epoch, EPOCH_MAX, epoch_char)))
        return -1;
    if (offset) {
        if (!json_is_integer(offset) || json_integer_value(offset) < 0)
            return -1;
        env->offset = (int64_t)json_integer_value(offset);
    }
    if (ts) {
        if (!json_is_integer(ts) || json_integer_value(ts) < 0)
            return -1;
        env->ts_ms = (int64_t)json_integer_value(ts);
    }
    return 0;
}

/* ------------------------------------------------------------ public */

static void envelope_reset(ps_envelope *env)
{
    env->root = NULL;
    env->data = NULL;
    env->from = NULL;
    env->offset = -1;
    env->epoch = NULL;
    env->ts_ms = -1;
}

int ps_envelope_parse(const char *payload, size_t len, ps_envelope *env)
{
    json_error_t err;

    if (!env)
        return PS_EINVAL;
    envelope_reset(env);
    if (!payload)
        return PS_EENVELOPE;
    /* Rejects by default: trailing data, invalid UTF-8, \u0000, top-level
     * scalars; duplicate keys only with the flag. */
    env->root = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &err);
    if (!env->root)
        return PS_EENVELOPE;
    if (!json_is_object(env->root) || read_fields(env) < 0) {
        ps_envelope_clear(env);
        return PS_EENVELOPE;
    }
    return PS_OK;
}

void ps_envelope_clear(ps_envelope *env)
{
    if (!env)
        return;
    json_decref(env->root);
    envelope_reset(env);
}

int64_t ps_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int ps_envelope_encode(json_t *data, const char *from, int64_t ts_ms, char **out,
                       size_t *out_len)
{
    struct out o;
    char num[32];

    if (!data || !out || !out_len || (from && !token_valid(from, strlen(from), SUB_MAX, sub_char)))
        return PS_EINVAL;
    out_init(&o, 0, 128);
    out_lit(&o, "{\"data\":");
    out_json(&o, data);
    if (from) {
        out_lit(&o, ",\"from\":");
        out_jstr(&o, from);
    }
    if (ts_ms >= 0) {
        int n = snprintf(num, sizeof(num), ",\"ts\":%lld", (long long)ts_ms);
        out_put(&o, num, (size_t)n);
    }
    out_lit(&o, "}");
    if (o.oom) {
        free(o.mem);
        return PS_ENOMEM;
    }
    o.mem[o.len] = '\0';
    *out = (char *)o.mem;
    *out_len = o.len;
    return PS_OK;
}

static void frame_fields(struct out *o, const ps_envelope *env, const char *channel)
{
    char num[32];

    out_lit(o, "{\"type\":\"message\",\"channel\":");
    out_jstr(o, channel);
    out_lit(o, ",\"data\":");
    out_json(o, env->data);
    if (env->offset >= 0) {
        int n = snprintf(num, sizeof(num), ",\"offset\":%lld", (long long)env->offset);
        out_put(o, num, (size_t)n);
    }
    if (env->epoch) {
        out_lit(o, ",\"epoch\":");
        out_jstr(o, env->epoch);
    }
    if (env->from) {
        out_lit(o, ",\"from\":");
        out_jstr(o, env->from);
    }
    out_lit(o, "}");
}

ps_frame *ps_envelope_frame(const ps_envelope *env, const char *channel, size_t headroom)
{
    struct out o;
    ps_frame *f;

    if (!env || !env->data || !channel || headroom > ((size_t)-1) / 4)
        return NULL;
    /* 256 bytes hold a typical progress message without a single realloc. */
    out_init(&o, offsetof(ps_frame, buf) + headroom, 256);
    frame_fields(&o, env, channel);
    if (o.oom) {
        free(o.mem);
        return NULL;
    }
    f = (ps_frame *)o.mem;
    f->refs = 1;
    f->headroom = headroom;
    f->len = o.len;
    f->buf[headroom + o.len] = '\0';
    return f;
}

/* ------------------------------------------------------------ batches */

static int blank_char(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static const char *skip_blanks(const char *p, const char *end)
{
    while (p < end && blank_char(*p))
        p++;
    return p;
}

/* The end of the object that starts at p ('{'), or NULL when it does not
 * end with a '}' before `end`. Only brackets and strings are followed (a
 * bracket inside may be mismatched): the envelope parser checks the rest. */
static const char *object_end(const char *p, const char *end)
{
    size_t depth = 0;
    int in_string = 0;

    for (; p < end; p++) {
        if (in_string) {
            if (*p == '\\')
                p++;
            else if (*p == '"')
                in_string = 0;
        } else if (*p == '"') {
            in_string = 1;
        } else if (*p == '{' || *p == '[') {
            depth++;
        } else if ((*p == '}' || *p == ']') && --depth == 0) {
            return *p == '}' ? p + 1 : NULL;
        }
    }
    return NULL;
}

/* The header of a batch from the history script, `<offset>,"<epoch>",`
 * right after the '['. Returns what follows it, or NULL when p does not
 * start with one. An offset of more than 18 digits is refused rather than
 * overflowed. */
static const char *batch_header(ps__splitter *s, const char *p, const char *end)
{
    const char *e;
    int64_t offset = 0;
    int digits = 0;

    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (++digits > 18)
            return NULL;
        offset = offset * 10 + (*p - '0');
    }
    p = skip_blanks(p, end);
    if (digits == 0 || p == end || *p != ',')
        return NULL;
    p = skip_blanks(p + 1, end);
    if (p == end || *p != '"')
        return NULL;
    for (e = ++p; e < end && *e != '"' && epoch_char((unsigned char)*e); e++)
        ;
    if (e == end || *e != '"' || !token_valid(p, (size_t)(e - p), EPOCH_MAX, epoch_char))
        return NULL;
    s->offset = offset;
    s->epoch = p;
    s->epoch_len = (size_t)(e - p);
    p = skip_blanks(e + 1, end);
    return p < end && *p == ',' ? p + 1 : NULL;
}

void ps__envelopes_begin(ps__splitter *s, const char *payload, size_t len)
{
    const char *start = skip_blanks(payload, payload + len);

    s->end = payload + len;
    s->array = start < s->end && *start == '[';
    s->p = s->array ? start + 1 : payload;
    s->offset = -1;
    s->epoch = NULL;
    s->epoch_len = 0;
    s->buf = NULL;
    s->cap = 0;
    if (s->array) {
        start = skip_blanks(s->p, s->end);
        if (start < s->end && *start >= '0' && *start <= '9')
            s->p = batch_header(s, start, s->end);
    }
}

/* The piece (an object's text) completed as a history read would give it:
 * head, separator, "offset":N,"epoch":"E"}. NULL on OOM, or when the piece
 * does not end with '}' (it always does: object_end found it). */
static const char *complete(ps__splitter *s, const char *piece, size_t n, size_t *len)
{
    size_t head_len, need;
    const char *sep;
    char num[48]; /* "offset":, 18 digits at most (batch_header), ,"epoch":" */
    int k = snprintf(num, sizeof(num), "\"offset\":%lld,\"epoch\":\"", (long long)s->offset++);

    if (ps__object_split(piece, n, &head_len, &sep) < 0)
        return NULL;
    need = head_len + strlen(sep) + (size_t)k + s->epoch_len + 2;
    if (need > s->cap) {
        char *buf = realloc(s->buf, need);
        if (!buf)
            return NULL;
        s->buf = buf;
        s->cap = need;
    }
    memcpy(s->buf, piece, head_len);
    *len = head_len;
    memcpy(s->buf + *len, sep, strlen(sep));
    *len += strlen(sep);
    memcpy(s->buf + *len, num, (size_t)k);
    *len += (size_t)k;
    memcpy(s->buf + *len, s->epoch, s->epoch_len);
    *len += s->epoch_len;
    memcpy(s->buf + *len, "\"}", 2);
    *len += 2;
    return s->buf;
}

int ps__envelopes_next(ps__splitter *s, const char **text, size_t *len)
{
    const char *start, *stop, *after;

    if (!s->p)
        return 0;
    if (!s->array) {
        /* A single envelope: handed over whole, blanks and all. */
        *text = s->p;
        *len = (size_t)(s->end - s->p);
        s->p = NULL;
        return 1;
    }
    start = skip_blanks(s->p, s->end);
    stop = start < s->end && *start == '{' ? object_end(start, s->end) : NULL;
    after = stop ? skip_blanks(stop, s->end) : s->end;
    s->p = NULL;
    if (after == s->end)
        return 0; /* not an object, or nothing after it */
    if (*after == ',')
        s->p = after + 1;
    else if (*after != ']' || skip_blanks(after + 1, s->end) != s->end)
        return 0;
    *text = start;
    *len = (size_t)(stop - start);
    if (s->epoch && !(*text = complete(s, start, *len, len))) {
        s->p = NULL;
        return 0;
    }
    return 1;
}

void ps__envelopes_end(ps__splitter *s)
{
    free(s->buf);
    s->buf = NULL;
    s->cap = 0;
}
