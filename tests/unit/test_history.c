/*
 * Unit tests of history on the Redis bus (pubsub/src/redis_scripts.c and
 * its use in redis_bus.c) against real redis-server processes on loopback.
 *
 * What a subscriber recovering with (epoch, offset) would notice: offsets
 * 1..N in publish order under one epoch, also with several gateway processes
 * publishing at once; the message it receives live is byte for byte the one
 * stored; a read returns what follows `since` (at most `limit`, or only the
 * latest), the stream keeps the last `size` and both keys carry the TTL; a
 * lost history (FLUSHALL) shows as a new epoch with offsets from 1; a lost
 * script (SCRIPT FLUSH) costs nothing but a reload; a read creates the
 * epoch the next publish uses; reads in flight fail with the documented
 * status on a drop or a stop; and on_subscribed comes when a history read
 * started from it, together with what arrives live, misses nothing, again
 * after a reconnect.
 *
 * Every test starts from an empty Redis (FLUSHALL on the shared server).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "pubsub/pubsub.h"
#include "redis_server.h"

#define MAX_BUSES 5
#define MAX_RECORDS 1024

typedef struct pub_record {
    int bus;
    int status;
    int has_res;
    int64_t offset;
    char epoch[PS_EPOCH_MAX + 1];
} pub_record;

/* A history reply, copied. */
typedef struct hist_record {
    int status;
    char epoch[PS_EPOCH_MAX + 1];
    int64_t top, first;
    size_t n;
    int64_t offsets[MAX_RECORDS];
    char *payloads[MAX_RECORDS];
} hist_record;

typedef struct fixture {
    uv_loop_t loop;
    uv_timer_t tick;
    uv_timer_t publisher; /* read_plus_live_misses_nothing; closed by teardown */
    int publisher_on;
    ps_bus *bus[MAX_BUSES];
    int up[MAX_BUSES];
    int nbus;
    /* messages heard by bus 0 */
    int nmsgs;
    struct {
        char channel[64];
        char *payload;
        int64_t offset;
    } msgs[MAX_RECORDS];
    pub_record pubs[MAX_RECORDS];
    int npubs;
    hist_record reads[16];
    int nreads;
    char subscribed[64][64]; /* on_subscribed of bus 0, in order */
    int nsubscribed;
    int read_on_subscribed; /* start a read (since 0) from on_subscribed */
    int read_rcs[64];       /* what ps_bus_history answered there */
    int want;
} fixture;

static fixture *current;

/* ---- callbacks ---------------------------------------------------------- */

static int64_t offset_in(const char *payload, size_t len)
{
    ps_envelope env;
    int64_t off = -1;

    if (ps_envelope_parse(payload, len, &env) == PS_OK) {
        off = env.offset;
        ps_envelope_clear(&env);
    }
    return off;
}

static void on_message(void *udata, const char *channel, const char *payload, size_t len)
{
    fixture *f = udata;

    assert_true(f->nmsgs < MAX_RECORDS);
    snprintf(f->msgs[f->nmsgs].channel, sizeof(f->msgs[0].channel), "%s", channel);
    f->msgs[f->nmsgs].payload = strndup(payload, len);
    f->msgs[f->nmsgs].offset = offset_in(payload, len);
    f->nmsgs++;
}

static void on_state(void *udata, int up)
{
}

static void on_history(void *udata, int status, const ps_history *h);

static void on_subscribed(void *udata, const char *channel)
{
    fixture *f = udata;
    ps_history_policy p = {1000, 60};

    assert_true(f->nsubscribed < 64);
    snprintf(f->subscribed[f->nsubscribed], sizeof(f->subscribed[0]), "%s", channel);
    if (f->read_on_subscribed)
        f->read_rcs[f->nsubscribed] =
            ps_bus_history(f->bus[0], channel, 0, MAX_RECORDS, &p, on_history, NULL);
    f->nsubscribed++;
}

static void on_published(void *udata, int status, const ps_publish_result *res)
{
    fixture *f = current;
    pub_record *p = &f->pubs[f->npubs++];

    assert_true(f->npubs <= MAX_RECORDS);
    p->bus = (int)(intptr_t)udata;
    p->status = status;
    p->has_res = res != NULL;
    assert_true(!res || status == PS_OK);
    if (res) {
        p->offset = res->offset;
        snprintf(p->epoch, sizeof(p->epoch), "%s", res->epoch);
    }
}

static void on_history(void *udata, int status, const ps_history *h)
{
    fixture *f = current;
    hist_record *r = &f->reads[f->nreads++];
    size_t i;

    assert_true(f->nreads <= 16);
    assert_true((status == PS_OK) == (h != NULL));
    r->status = status;
    if (!h)
        return;
    assert_true(h->n <= MAX_RECORDS);
    snprintf(r->epoch, sizeof(r->epoch), "%s", h->epoch);
    r->top = h->top;
    r->first = h->first;
    r->n = h->n;
    for (i = 0; i < h->n; i++) {
        r->offsets[i] = h->entries[i].offset;
        r->payloads[i] = strndup(h->entries[i].payload, h->entries[i].len);
    }
}

static void on_tick(uv_timer_t *t)
{
}

/* ---- fixture ------------------------------------------------------------ */

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    redisReply *r = sync_command(main_server.port, NULL, "FLUSHALL");

    assert_non_null(r);
    freeReplyObject(r);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, on_tick, 5, 5);
    current = f;
    *state = f;
    return 0;
}

static void free_reads(fixture *f)
{
    int i;
    size_t j;

    for (i = 0; i < f->nreads; i++)
        for (j = 0; j < f->reads[i].n; j++)
            free(f->reads[i].payloads[j]);
    f->nreads = 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    int i;

    for (i = 0; i < f->nbus; i++)
        ps_bus_stop(f->bus[i]);
    uv_close((uv_handle_t *)&f->tick, NULL);
    if (f->publisher_on)
        uv_close((uv_handle_t *)&f->publisher, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    for (i = 0; i < f->nbus; i++)
        ps_bus_destroy(f->bus[i]);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (i = 0; i < f->nmsgs; i++)
        free(f->msgs[i].payload);
    free_reads(f);
    free(f);
    kill_extra_servers();
    return 0;
}

/* Turns the loop until pred holds or ms pass; returns pred's last value. */
static int run_until(fixture *f, int (*pred)(fixture *), int ms)
{
    uint64_t deadline = uv_hrtime() + (uint64_t)ms * 1000000u;

    while (!pred(f)) {
        if (uv_hrtime() >= deadline)
            return 0;
        uv_run(&f->loop, UV_RUN_ONCE);
    }
    return 1;
}

static int never(fixture *f)
{
    return 0;
}

static int all_up(fixture *f)
{
    int i;

    for (i = 0; i < f->nbus; i++)
        if (!ps_bus_is_up(f->bus[i]))
            return 0;
    return 1;
}

static int got_pubs(fixture *f)
{
    return f->npubs >= f->want;
}

static int got_reads(fixture *f)
{
    return f->nreads >= f->want;
}

static int got_msgs(fixture *f)
{
    return f->nmsgs >= f->want;
}

static int got_subscribed(fixture *f)
{
    return f->nsubscribed >= f->want;
}

#define WAIT(f, pred, n)                                                                           \
    do {                                                                                           \
        (f)->want = (n);                                                                           \
        if (!run_until((f), pred, WAIT_MS))                                                        \
            fail_msg("%s: wanted %d", #pred, (n));                                                 \
    } while (0)

static void wait_up(fixture *f)
{
    if (!run_until(f, all_up, WAIT_MS))
        fail_msg("bus not up: %s", ps_bus_last_error(f->bus[0]));
}

/* A new bus on port; bus 0 hears messages and confirmations. */
static ps_bus *bus_add(fixture *f, int port)
{
    ps_bus_callbacks cb = {on_message, on_state, on_subscribed, f};
    ps_redis_opts o;
    ps_bus *b;

    memset(&o, 0, sizeof(o));
    snprintf(o.url.host, sizeof(o.url.host), "127.0.0.1");
    o.url.port = port;
    o.prefix = "wsgw:";
    o.connect_timeout_ms = 1000;
    o.backoff_min_ms = 10;
    o.backoff_max_ms = 80;
    if (f->nbus > 0) {
        cb.on_message = on_message; /* required; these buses subscribe nothing */
        cb.on_subscribed = NULL;
    }
    b = ps_redis_bus_new(&f->loop, &o, &cb);
    assert_non_null(b);
    assert_true(f->nbus < MAX_BUSES);
    f->bus[f->nbus++] = b;
    return b;
}

static int publish_h(fixture *f, int bus, const char *channel, const char *payload, uint32_t size,
                     uint32_t ttl_s)
{
    ps_history_policy p = {size, ttl_s};

    return ps_bus_publish(f->bus[bus], channel, payload, strlen(payload), &p, on_published,
                          (void *)(intptr_t)bus);
}

static int read_h(fixture *f, const char *channel, int64_t since, size_t limit, uint32_t size,
                  uint32_t ttl_s)
{
    ps_history_policy p = {size, ttl_s};

    return ps_bus_history(f->bus[0], channel, since, limit, &p, on_history, NULL);
}

/* Publishes {"data":i} for i in from..to on bus 0 and waits for them. */
static void publish_range(fixture *f, const char *channel, int from, int to, uint32_t size)
{
    char payload[32];
    int i, before = f->npubs;

    for (i = from; i <= to; i++) {
        snprintf(payload, sizeof(payload), "{\"data\":%d}", i);
        assert_int_equal(publish_h(f, 0, channel, payload, size, 60), PS_OK);
    }
    WAIT(f, got_pubs, before + (to - from + 1));
}

/* Reads and waits; returns the copy. */
static hist_record *read_wait(fixture *f, const char *channel, int64_t since, size_t limit,
                              uint32_t size, uint32_t ttl_s)
{
    int before = f->nreads;

    assert_int_equal(read_h(f, channel, since, limit, size, ttl_s), PS_OK);
    WAIT(f, got_reads, before + 1);
    assert_int_equal(f->reads[before].status, PS_OK);
    return &f->reads[before];
}

static void stored_text(char *out, size_t cap, int data, int64_t offset, const char *epoch)
{
    snprintf(out, cap, "{\"data\":%d,\"offset\":%lld,\"epoch\":\"%s\"}", data, (long long)offset,
             epoch);
}

static long long sync_integer(int port, const char *fmt, const char *arg)
{
    redisReply *r = sync_command(port, NULL, fmt, arg);
    long long n;

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    n = r->integer;
    freeReplyObject(r);
    return n;
}

/* ---- tests -------------------------------------------------------------- */

static void offsets_in_order_and_reads(void **state)
{
    fixture *f = *state;
    char want[128];
    hist_record *h;
    int i;

    bus_add(f, main_server.port);
    assert_int_equal(ps_bus_subscribe(f->bus[0], "job:1"), PS_OK);
    wait_up(f);
    WAIT(f, got_subscribed, 1);
    publish_range(f, "job:1", 1, 5, 10);
    /* Offsets 1..5 in order, one epoch of 16 [A-Za-z0-9]. */
    assert_int_equal(strlen(f->pubs[0].epoch), 16);
    assert_int_equal(strspn(f->pubs[0].epoch, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                              "0123456789"),
                     16);
    for (i = 0; i < 5; i++) {
        assert_int_equal(f->pubs[i].status, PS_OK);
        assert_true(f->pubs[i].has_res);
        assert_int_equal(f->pubs[i].offset, i + 1);
        assert_string_equal(f->pubs[i].epoch, f->pubs[0].epoch);
    }
    /* Heard live with offset and epoch in the envelope. */
    WAIT(f, got_msgs, 5);
    for (i = 0; i < 5; i++) {
        stored_text(want, sizeof(want), i + 1, i + 1, f->pubs[0].epoch);
        assert_string_equal(f->msgs[i].payload, want);
    }

    /* since 2: 3..5, each equal to what was heard live. */
    h = read_wait(f, "job:1", 2, 100, 10, 60);
    assert_string_equal(h->epoch, f->pubs[0].epoch);
    assert_int_equal(h->top, 5);
    assert_int_equal(h->first, 1);
    assert_int_equal(h->n, 3);
    for (i = 0; i < 3; i++) {
        assert_int_equal(h->offsets[i], i + 3);
        assert_string_equal(h->payloads[i], f->msgs[i + 2].payload);
    }
    /* limit, latest only, nothing past the top, position only. */
    h = read_wait(f, "job:1", 0, 2, 10, 60);
    assert_int_equal(h->n, 2);
    assert_int_equal(h->offsets[0], 1);
    assert_int_equal(h->offsets[1], 2);
    h = read_wait(f, "job:1", -1, 100, 10, 60);
    assert_int_equal(h->n, 1);
    assert_int_equal(h->offsets[0], 5);
    assert_string_equal(h->payloads[0], f->msgs[4].payload);
    h = read_wait(f, "job:1", 5, 100, 10, 60);
    assert_int_equal(h->n, 0);
    assert_int_equal(h->top, 5);
    h = read_wait(f, "job:1", 0, 0, 10, 60);
    assert_int_equal(h->n, 0);
    assert_int_equal(h->first, 1);
    assert_int_equal(f->bus[0]->stats.history_reads, 5);
    assert_int_equal(f->bus[0]->stats.publishes, 5);
}

static void trimmed_to_size(void **state)
{
    fixture *f = *state;
    hist_record *h;

    bus_add(f, main_server.port);
    wait_up(f);
    publish_range(f, "job:2", 1, 7, 3);
    h = read_wait(f, "job:2", 0, 100, 3, 60);
    assert_int_equal(h->top, 7);
    assert_int_equal(h->first, 5);
    assert_int_equal(h->n, 3);
    assert_int_equal(h->offsets[0], 5);
    /* Reading from before the first kept offset starts at it. */
    h = read_wait(f, "job:2", 2, 100, 3, 60);
    assert_int_equal(h->first, 5);
    assert_int_equal(h->n, 3);
    assert_int_equal(h->offsets[0], 5);
    /* A smaller size takes effect with the next publish. */
    publish_range(f, "job:2", 8, 8, 1);
    h = read_wait(f, "job:2", 0, 100, 1, 60);
    assert_int_equal(h->first, 8);
    assert_int_equal(h->n, 1);
    assert_int_equal(h->offsets[0], 8);
}

/* The stream itself is trimmed approximately (MINID ~, whole nodes of 100
 * entries): one message per publish (each waited for, so that the bus does
 * not group them into one entry), it never holds more than size + one
 * node, and what clients see is exactly the last size (above). */
static void stream_stays_bounded(void **state)
{
    fixture *f = *state;
    hist_record *h;
    long long len;
    int i;

    bus_add(f, main_server.port);
    wait_up(f);
    for (i = 1; i <= 450; i++)
        publish_range(f, "job:5", i, i, 10);
    len = sync_integer(main_server.port, "XLEN %s", "wsgw:h:{job:5}");
    assert_true(len >= 10 && len <= 110);
    h = read_wait(f, "job:5", 0, 1000, 10, 60);
    assert_int_equal(h->top, 450);
    assert_int_equal(h->first, 441);
    assert_int_equal(h->n, 10);
    assert_int_equal(h->offsets[0], 441);
    assert_int_equal(h->offsets[9], 450);
}

/* Sets both keys of channel to ms milliseconds to live, as if time had
 * passed since the last refresh. */
static void age_keys(const char *channel, long long ms)
{
    char key[64], num[24];
    const char *kinds[] = {"m", "h"};
    int i;

    snprintf(num, sizeof(num), "%lld", ms);
    for (i = 0; i < 2; i++) {
        snprintf(key, sizeof(key), "wsgw:%s:{%s}", kinds[i], channel);
        freeReplyObject(sync_command(main_server.port, NULL, "PEXPIRE %s %s", key, num));
    }
}

static long long pttl(const char *kind, const char *channel)
{
    char key[64];

    snprintf(key, sizeof(key), "wsgw:%s:{%s}", kind, channel);
    return sync_integer(main_server.port, "PTTL %s", key);
}

/* Both keys live ttl to ttl + slack (60 + 3 s here) after every publish.
 * The bus refreshes them when it last did slack seconds ago or more (its
 * own clock, ttl_refresh.c), not when Redis says they fell below ttl, so
 * aged keys stay as they are until then (ttl_refreshed_after_the_slack). */
static void ttl_on_both_keys(void **state)
{
    fixture *f = *state;
    long long ms;

    bus_add(f, main_server.port);
    wait_up(f);
    publish_range(f, "job:3", 1, 2, 10); /* ttl 60 */
    ms = pttl("m", "job:3");
    assert_true(ms > 60000 && ms <= 63000);
    ms = pttl("h", "job:3");
    assert_true(ms > 60000 && ms <= 63000);
    /* Refreshed less than slack (3 s) ago: left alone, whatever is left
     * (an EXPIRE here would put both back over 60 s). */
    age_keys("job:3", 61500);
    publish_range(f, "job:3", 3, 3, 10);
    assert_true(pttl("m", "job:3") <= 61500 && pttl("h", "job:3") <= 61500);
    /* A read creating the epoch sets the TTL on the meta; no stream yet. */
    read_wait(f, "job:4", 0, 10, 10, 30);
    ms = pttl("m", "job:4");
    assert_true(ms > 25000 && ms <= 30000);
    assert_int_equal(sync_integer(main_server.port, "EXISTS %s", "wsgw:h:{job:4}"), 0);
    /* A read does not extend an existing history. */
    read_wait(f, "job:3", 0, 10, 10, 3600);
    assert_true(pttl("m", "job:3") <= 61500);
    /* The first publish after that read gives the stream its TTL, and the
     * meta the same one. */
    publish_range(f, "job:4", 1, 1, 10);
    assert_true(pttl("h", "job:4") > 60000 && pttl("m", "job:4") > 60000);
}

/* What the bus cannot know, the script sees: a stream deleted behind its
 * back is created again with its TTL, although the bus refreshed the
 * channel a moment ago; the offsets go on (the meta is intact). */
static void ttl_on_a_stream_recreated(void **state)
{
    fixture *f = *state;
    char key[] = "wsgw:h:{job:5}";

    bus_add(f, main_server.port);
    wait_up(f);
    publish_range(f, "job:5", 1, 2, 10);
    age_keys("job:5", 61000);
    freeReplyObject(sync_command(main_server.port, NULL, "DEL %s", key));
    publish_range(f, "job:5", 3, 3, 10);
    assert_int_equal(f->pubs[2].offset, 3);
    assert_true(pttl("h", "job:5") > 62000 && pttl("m", "job:5") > 62000);
    assert_int_equal(sync_integer(main_server.port, "XLEN %s", key), 1);
}

/* Once slack seconds passed since the last refresh (1 s for ttl 16), the
 * next publish refreshes both keys, however much Redis says is left. */
static void ttl_refreshed_after_the_slack(void **state)
{
    fixture *f = *state;

    bus_add(f, main_server.port);
    wait_up(f);
    assert_int_equal(publish_h(f, 0, "job:6", "{}", 10, 16), PS_OK);
    WAIT(f, got_pubs, 1);
    age_keys("job:6", 15500);
    assert_int_equal(publish_h(f, 0, "job:6", "{}", 10, 16), PS_OK);
    WAIT(f, got_pubs, 2);
    assert_true(pttl("h", "job:6") <= 15500); /* within the slack */
    run_until(f, never, 1100);                /* the loop's clock, which the bus reads */
    assert_int_equal(publish_h(f, 0, "job:6", "{}", 10, 16), PS_OK);
    WAIT(f, got_pubs, 3);
    assert_true(pttl("h", "job:6") > 16000 && pttl("h", "job:6") <= 17000);
    assert_true(pttl("m", "job:6") > 16000 && pttl("m", "job:6") <= 17000);
}

/* A policy whose TTL shrank takes effect with the next publish. */
static void ttl_follows_a_smaller_policy(void **state)
{
    fixture *f = *state;

    bus_add(f, main_server.port);
    wait_up(f);
    assert_int_equal(publish_h(f, 0, "job:7", "{}", 10, 3600), PS_OK);
    WAIT(f, got_pubs, 1);
    assert_true(pttl("h", "job:7") > 3600000);
    assert_int_equal(publish_h(f, 0, "job:7", "{}", 10, 16), PS_OK); /* slack 1 */
    WAIT(f, got_pubs, 2);
    assert_true(pttl("h", "job:7") > 16000 && pttl("h", "job:7") <= 17000);
    assert_true(pttl("m", "job:7") > 16000 && pttl("m", "job:7") <= 17000);
}

static void read_creates_the_epoch_of_the_next_publish(void **state)
{
    fixture *f = *state;
    char epoch[PS_EPOCH_MAX + 1];
    hist_record *h;

    bus_add(f, main_server.port);
    wait_up(f);
    h = read_wait(f, "fresh", 0, 10, 10, 60);
    assert_int_equal(h->top, 0);
    assert_int_equal(h->first, 0);
    assert_int_equal(h->n, 0);
    assert_int_equal(strlen(h->epoch), 16);
    snprintf(epoch, sizeof(epoch), "%s", h->epoch);
    h = read_wait(f, "fresh", 0, 10, 10, 60); /* stable */
    assert_string_equal(h->epoch, epoch);
    publish_range(f, "fresh", 1, 1, 10);
    assert_string_equal(f->pubs[0].epoch, epoch);
    assert_int_equal(f->pubs[0].offset, 1);
}

static void flushall_gives_a_new_epoch(void **state)
{
    fixture *f = *state;
    char epoch[PS_EPOCH_MAX + 1];
    redisReply *r;
    hist_record *h;

    bus_add(f, main_server.port);
    wait_up(f);
    publish_range(f, "job:5", 1, 3, 10);
    snprintf(epoch, sizeof(epoch), "%s", f->pubs[2].epoch);
    r = sync_command(main_server.port, NULL, "FLUSHALL");
    freeReplyObject(r);
    h = read_wait(f, "job:5", 0, 10, 10, 60);
    assert_string_not_equal(h->epoch, epoch);
    assert_int_equal(h->top, 0);
    assert_int_equal(h->n, 0);
    publish_range(f, "job:5", 4, 4, 10);
    assert_int_equal(f->pubs[3].offset, 1);
    assert_string_equal(f->pubs[3].epoch, h->epoch);

    /* And straight to a publish, without a read first. */
    snprintf(epoch, sizeof(epoch), "%s", f->pubs[3].epoch);
    r = sync_command(main_server.port, NULL, "FLUSHALL");
    freeReplyObject(r);
    publish_range(f, "job:5", 5, 5, 10);
    assert_int_equal(f->pubs[4].offset, 1);
    assert_string_not_equal(f->pubs[4].epoch, epoch);
}

static long long script_loads(void)
{
    redisReply *r = sync_command(main_server.port, NULL, "INFO commandstats");
    const char *at;
    long long n = -1;

    assert_non_null(r);
    at = strstr(r->str, "cmdstat_script|load:calls=");
    if (at)
        n = atoll(at + strlen("cmdstat_script|load:calls="));
    freeReplyObject(r);
    return n;
}

/* SCRIPT FLUSH under a running bus: every command that meets NOSCRIPT
 * reloads and is resent once, and each completes once. */
static void script_flush_reloads(void **state)
{
    fixture *f = *state;
    redisReply *r;
    long long loads;
    int i;

    bus_add(f, main_server.port);
    wait_up(f);
    publish_range(f, "job:6", 1, 1, 10);
    r = sync_command(main_server.port, NULL, "SCRIPT FLUSH");
    freeReplyObject(r);
    loads = script_loads();
    publish_range(f, "job:6", 2, 6, 10); /* five in one pipeline */
    for (i = 1; i < 6; i++) {
        assert_int_equal(f->pubs[i].status, PS_OK);
        assert_int_equal(f->pubs[i].offset, i + 1);
    }
    assert_true(script_loads() > loads);
    r = sync_command(main_server.port, NULL, "SCRIPT FLUSH");
    freeReplyObject(r);
    assert_int_equal(read_wait(f, "job:6", 0, 10, 10, 60)->n, 6);
    run_until(f, never, 50);
    assert_int_equal(f->npubs, 6); /* once each */
    assert_int_equal(f->nreads, 1);
    assert_int_equal(f->bus[0]->stats.publishes, 6);
    assert_int_equal(f->bus[0]->stats.publish_errors, 0);
    assert_int_equal(f->bus[0]->stats.history_reads, 1);
}

static int by_offset(const void *a, const void *b);

/* Publishes {"data":i} for i in from..to as one batch from bus `bus`. */
static int publish_batch(fixture *f, int bus, const char *channel, int from, int to, uint32_t size)
{
    ps_history_policy p = {size, 60};
    ps_payload msgs[PS_BATCH_MAX];
    char texts[PS_BATCH_MAX][32];
    int i, n = to - from + 1;

    assert_true(n >= 1 && n <= PS_BATCH_MAX);
    for (i = 0; i < n; i++) {
        msgs[i].len = (size_t)snprintf(texts[i], sizeof(texts[i]), "{\"data\":%d}", from + i);
        msgs[i].text = texts[i];
    }
    return ps_bus_publish_batch(f->bus[bus], channel, msgs, (size_t)n, &p, on_published,
                                (void *)(intptr_t)bus);
}

static int data_in(const char *payload)
{
    ps_envelope env;
    int d;

    assert_int_equal(ps_envelope_parse(payload, strlen(payload), &env), PS_OK);
    d = (int)json_integer_value(env.data);
    ps_envelope_clear(&env);
    return d;
}

/* How often Redis ran cmd ("evalsha", "publish") so far. */
static long long calls_of(const char *cmd)
{
    redisReply *r = sync_command(main_server.port, NULL, "INFO commandstats");
    char key[64];
    const char *at;
    long long n = 0;

    assert_non_null(r);
    snprintf(key, sizeof(key), "cmdstat_%s:calls=", cmd);
    at = strstr(r->str, key);
    if (at)
        n = atoll(at + strlen(key));
    freeReplyObject(r);
    return n;
}

static long long publish_calls(void)
{
    return calls_of("publish");
}

/* A batch from another gateway's bus: one callback with the first of n
 * consecutive offsets, one PUBLISH, and the subscriber's bus hands over
 * every message once, in order, byte for byte as stored. Single publishes
 * before and after continue the same offsets. */
static void batch_takes_consecutive_offsets(void **state)
{
    fixture *f = *state;
    char want[128];
    long long publishes;
    hist_record *h;
    int i;

    bus_add(f, main_server.port);
    bus_add(f, main_server.port);
    assert_int_equal(ps_bus_subscribe(f->bus[0], "job:b"), PS_OK);
    wait_up(f);
    WAIT(f, got_subscribed, 1);
    assert_int_equal(publish_h(f, 1, "job:b", "{\"data\":1}", 100, 60), PS_OK);
    WAIT(f, got_pubs, 1);
    publishes = publish_calls();
    assert_int_equal(publish_batch(f, 1, "job:b", 2, 41, 100), PS_OK);
    WAIT(f, got_pubs, 2);
    assert_int_equal(publish_calls() - publishes, 1);
    assert_int_equal(f->pubs[1].status, PS_OK);
    assert_int_equal(f->pubs[1].offset, 2);
    assert_string_equal(f->pubs[1].epoch, f->pubs[0].epoch);
    assert_int_equal(f->bus[1]->stats.publishes, 41);
    assert_int_equal(publish_h(f, 1, "job:b", "{\"data\":42}", 100, 60), PS_OK);
    WAIT(f, got_pubs, 3);
    assert_int_equal(f->pubs[2].offset, 42);

    WAIT(f, got_msgs, 42);
    run_until(f, never, 50);
    assert_int_equal(f->nmsgs, 42);
    assert_int_equal(f->bus[0]->stats.messages_in, 42);
    h = read_wait(f, "job:b", 0, 100, 100, 60);
    assert_int_equal(h->n, 42);
    for (i = 0; i < 42; i++) {
        stored_text(want, sizeof(want), i + 1, i + 1, f->pubs[0].epoch);
        assert_string_equal(f->msgs[i].payload, want);
        assert_string_equal(h->payloads[i], want);
        assert_int_equal(h->offsets[i], i + 1);
    }
}

/* Two gateways sending batches to one channel at once: each batch's
 * offsets are a block no other publish enters, together 1..N without a
 * hole, heard in offset order. */
static void concurrent_batches_stay_whole(void **state)
{
    fixture *f = *state;
    int i, b, k, prev = 0;

    for (b = 0; b < 3; b++)
        bus_add(f, main_server.port);
    ps_bus_subscribe(f->bus[0], "room:b");
    wait_up(f);
    WAIT(f, got_subscribed, 1);
    for (i = 0; i < 10; i++)
        for (b = 1; b < 3; b++)
            assert_int_equal(
                publish_batch(f, b, "room:b", b * 1000 + i * 10, b * 1000 + i * 10 + 9, 500),
                PS_OK);
    WAIT(f, got_pubs, 20);
    WAIT(f, got_msgs, 200);
    qsort(f->pubs, 20, sizeof(f->pubs[0]), by_offset);
    for (i = 0; i < 20; i++) {
        assert_int_equal(f->pubs[i].status, PS_OK);
        assert_int_equal(f->pubs[i].offset, i * 10 + 1);
    }
    /* Within a block the data runs on: nothing interleaved. */
    for (i = 0; i < 200; i++) {
        k = data_in(f->msgs[i].payload);
        assert_int_equal(f->msgs[i].offset, i + 1);
        if (i % 10)
            assert_int_equal(k, prev + 1);
        prev = k;
    }
    assert_int_equal(read_wait(f, "room:b", 0, 1000, 500, 60)->n, 200);
}

/* SCRIPT FLUSH before a batch: reloaded, resent once, same offsets. */
static void batch_after_script_flush(void **state)
{
    fixture *f = *state;
    long long loads;

    bus_add(f, main_server.port);
    ps_bus_subscribe(f->bus[0], "job:f");
    wait_up(f);
    WAIT(f, got_subscribed, 1);
    assert_int_equal(publish_batch(f, 0, "job:f", 1, 5, 10), PS_OK);
    WAIT(f, got_pubs, 1);
    freeReplyObject(sync_command(main_server.port, NULL, "SCRIPT FLUSH"));
    loads = script_loads();
    assert_int_equal(publish_batch(f, 0, "job:f", 6, 10, 10), PS_OK);
    assert_int_equal(publish_batch(f, 0, "job:f", 11, 12, 10), PS_OK);
    WAIT(f, got_pubs, 3);
    assert_true(script_loads() > loads);
    assert_int_equal(f->pubs[1].status, PS_OK);
    assert_int_equal(f->pubs[1].offset, 6);
    assert_int_equal(f->pubs[2].status, PS_OK);
    assert_int_equal(f->pubs[2].offset, 11);
    WAIT(f, got_msgs, 12);
    run_until(f, never, 50);
    assert_int_equal(f->npubs, 3);
    assert_int_equal(f->nmsgs, 12);
    assert_int_equal(f->msgs[11].offset, 12);
    assert_int_equal(f->bus[0]->stats.publishes, 12);
}

/* What a batch refuses at once. */
static void batch_refused(void **state)
{
    fixture *f = *state;
    ps_history_policy p = {10, 60}, off = {0, 0};
    ps_payload ok = {"{}", 2}, bad[2] = {{"{}", 2}, {"[1]", 3}};
    ps_payload *big = calloc(PS_BATCH_MAX + 1, sizeof(*big));
    char *huge = malloc(600 * 1024);
    size_t i;

    assert_non_null(big);
    assert_non_null(huge);
    memset(huge, ' ', 600 * 1024);
    huge[0] = '{';
    huge[600 * 1024 - 1] = '}';
    for (i = 0; i <= PS_BATCH_MAX; i++)
        big[i] = ok;
    bus_add(f, main_server.port);
    wait_up(f);
    assert_int_equal(ps_bus_publish_batch(f->bus[0], "x:y", &ok, 0, &p, NULL, NULL), PS_EINVAL);
    assert_int_equal(ps_bus_publish_batch(f->bus[0], "x:y", &ok, 1, &off, NULL, NULL), PS_EINVAL);
    assert_int_equal(ps_bus_publish_batch(f->bus[0], "x:y", &ok, 1, NULL, NULL, NULL), PS_EINVAL);
    assert_int_equal(ps_bus_publish_batch(f->bus[0], "x:y", bad, 2, &p, NULL, NULL), PS_EINVAL);
    assert_int_equal(ps_bus_publish_batch(f->bus[0], "x:y", big, PS_BATCH_MAX + 1, &p, NULL, NULL),
                     PS_EINVAL);
    /* Each under the 1 MiB limit, together over it. */
    big[0] = (ps_payload){huge, 600 * 1024};
    big[1] = big[0];
    assert_int_equal(ps_bus_publish_batch(f->bus[0], "x:y", big, 2, &p, NULL, NULL), PS_ETOOBIG);
    assert_int_equal(ps_bus_publish_batch(f->bus[0], "x:y", big, 1, &p, on_published, NULL), PS_OK);
    WAIT(f, got_pubs, 1);
    assert_int_equal(f->pubs[0].offset, 1);
    free(big);
    free(huge);
}

/* A read gave n messages from offset `from` on, each byte for byte the
 * one bus 0 heard live (its messages are offsets 1, 2, ... in order). */
static void assert_as_heard(const fixture *f, const hist_record *h, int64_t from, size_t n)
{
    size_t i;

    assert_int_equal(h->n, n);
    for (i = 0; i < n; i++) {
        assert_int_equal(h->offsets[i], from + (int64_t)i);
        assert_string_equal(h->payloads[i], f->msgs[from + (int64_t)i - 1].payload);
    }
}

/* Reads from anywhere inside batches, each stored as one stream entry:
 * what follows `since`, at most `limit`, each message with its own offset,
 * byte for byte the text heard live; the latest state is a batch's last
 * message. Batches and single publishes mix in one stream. */
static void batch_reads_from_the_middle(void **state)
{
    fixture *f = *state;
    char want[128];
    hist_record *h;
    int i;

    bus_add(f, main_server.port);
    assert_int_equal(ps_bus_subscribe(f->bus[0], "job:m"), PS_OK);
    wait_up(f);
    WAIT(f, got_subscribed, 1);
    assert_int_equal(publish_batch(f, 0, "job:m", 1, 10, 100), PS_OK);
    WAIT(f, got_pubs, 1);
    h = read_wait(f, "job:m", -1, 100, 100, 60);
    assert_int_equal(h->n, 1);
    assert_int_equal(h->offsets[0], 10);
    stored_text(want, sizeof(want), 10, 10, f->pubs[0].epoch);
    assert_string_equal(h->payloads[0], want);
    assert_int_equal(publish_batch(f, 0, "job:m", 11, 30, 100), PS_OK);
    assert_int_equal(publish_h(f, 0, "job:m", "{\"data\":31}", 100, 60), PS_OK);
    assert_int_equal(publish_batch(f, 0, "job:m", 32, 40, 100), PS_OK);
    WAIT(f, got_pubs, 4);
    WAIT(f, got_msgs, 40);
    for (i = 0; i < 40; i++) {
        stored_text(want, sizeof(want), i + 1, i + 1, f->pubs[0].epoch);
        assert_string_equal(f->msgs[i].payload, want);
    }

    /* 6..15 spans the end of one batch and the start of the next. */
    h = read_wait(f, "job:m", 5, 10, 100, 60);
    assert_int_equal(h->first, 1);
    assert_int_equal(h->top, 40);
    assert_as_heard(f, h, 6, 10);
    /* Inside one batch, neither end included. */
    assert_as_heard(f, read_wait(f, "job:m", 12, 3, 100, 60), 13, 3);
    /* Across the single message, to the end; everything; nothing. */
    assert_as_heard(f, read_wait(f, "job:m", 29, 100, 100, 60), 30, 11);
    assert_as_heard(f, read_wait(f, "job:m", 0, 1000, 100, 60), 1, 40);
    assert_int_equal(read_wait(f, "job:m", 40, 100, 100, 60)->n, 0);
    /* The latest state: the last batch's last message. */
    assert_as_heard(f, read_wait(f, "job:m", -1, 100, 100, 60), 40, 1);
    /* A smaller size cuts into a batch: exactly the last 5 are readable. */
    h = read_wait(f, "job:m", 0, 1000, 5, 60);
    assert_int_equal(h->first, 36);
    assert_as_heard(f, h, 36, 5);
}

/* Envelopes with blanks around and inside, an empty object, brackets and
 * "}," inside strings: a read gives each byte for byte as heard live. */
static void odd_envelopes_in_a_batch_read_as_heard(void **state)
{
    fixture *f = *state;
    ps_history_policy p = {100, 60};
    ps_payload msgs[4] = {
        {"{ }", 3}, {" \n{\"data\":2 } ", 14}, {"{\"data\":\"},\\\"{[\"}", 17}, {"{\t}", 3}};
    hist_record *h;
    int i;

    bus_add(f, main_server.port);
    assert_int_equal(ps_bus_subscribe(f->bus[0], "job:odd"), PS_OK);
    wait_up(f);
    WAIT(f, got_subscribed, 1);
    assert_int_equal(ps_bus_publish_batch(f->bus[0], "job:odd", msgs, 4, &p, on_published, NULL),
                     PS_OK);
    assert_int_equal(
        ps_bus_publish(f->bus[0], "job:odd", msgs[1].text, msgs[1].len, &p, on_published, NULL),
        PS_OK);
    WAIT(f, got_pubs, 2);
    WAIT(f, got_msgs, 5);
    h = read_wait(f, "job:odd", 0, 100, 100, 60);
    assert_int_equal(h->n, 5);
    for (i = 0; i < 5; i++)
        assert_string_equal(h->payloads[i], f->msgs[i].payload);
    assert_int_equal(data_in(f->msgs[1].payload), 2);
    assert_int_equal(f->msgs[1].offset, 2);
    assert_int_equal(f->msgs[4].offset, 5);
    assert_memory_equal(f->msgs[0].payload, "{ \"offset\":1,\"epoch\":\"", 22);
}

/* Messages (not entries) in a channel's stream: the lengths of each entry
 * of this version ("n"), one per entry of an older one. */
static long long stored_messages(const char *channel)
{
    char key[64];
    redisReply *r;
    long long n = 0;
    size_t i;

    snprintf(key, sizeof(key), "wsgw:h:{%s}", channel);
    r = sync_command(main_server.port, NULL, "XRANGE %s - +", key);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    for (i = 0; i < r->elements; i++) {
        const redisReply *fields = r->element[i]->element[1];
        const char *p = fields->element[1]->str;

        n++;
        if (strcmp(fields->element[0]->str, "n") == 0)
            for (; *p; p++)
                n += *p == ',';
    }
    freeReplyObject(r);
    return n;
}

/* Trimming counts messages: with batches of 7 messages of 600 bytes (one
 * entry per stream node, as a node takes 4 KB), a stream of size 10 holds
 * the last 10, plus the older part of the batch that straddles the cut,
 * plus at most one node: 23 at most, after 280 published. Clients still
 * see exactly the last 10. */
static void batch_trimmed_in_messages(void **state)
{
    fixture *f = *state;
    ps_history_policy p = {10, 60};
    ps_payload msgs[7];
    static char texts[7][700];
    hist_record *h;
    long long stored;
    int b, i;

    bus_add(f, main_server.port);
    wait_up(f);
    for (b = 0; b < 40; b++) {
        for (i = 0; i < 7; i++) {
            msgs[i].len = (size_t)snprintf(texts[i], sizeof(texts[i]),
                                           "{\"data\":%d,\"pad\":\"%0600d\"}", b * 7 + i + 1, 0);
            msgs[i].text = texts[i];
        }
        assert_int_equal(ps_bus_publish_batch(f->bus[0], "job:t", msgs, 7, &p, on_published, NULL),
                         PS_OK);
        WAIT(f, got_pubs, b + 1);
    }
    stored = stored_messages("job:t");
    assert_true(stored >= 10 && stored <= 10 + 6 + 7);
    h = read_wait(f, "job:t", 0, 1000, 10, 60);
    assert_int_equal(h->top, 280);
    assert_int_equal(h->first, 271);
    assert_int_equal(h->n, 10);
    for (i = 0; i < 10; i++) {
        assert_int_equal(h->offsets[i], 271 + i);
        assert_int_equal(data_in(h->payloads[i]), 271 + i);
    }
    /* From inside the straddling batch, before the first kept: from 271. */
    h = read_wait(f, "job:t", 268, 1000, 10, 60);
    assert_int_equal(h->n, 10);
    assert_int_equal(h->offsets[0], 271);
}

/* A stream written by the previous version (one entry per message, field
 * "m", the whole stored text) reads as before, and a batch published on
 * top continues it. */
static void entries_of_the_previous_layout_still_read(void **state)
{
    fixture *f = *state;
    char text[3][128], want[128];
    hist_record *h;
    redisReply *r;
    int i;

    for (i = 0; i < 3; i++) {
        char id[16];
        stored_text(text[i], sizeof(text[i]), i + 1, i + 1, "OldEpoch");
        snprintf(id, sizeof(id), "%d-0", i + 1);
        freeReplyObject(
            sync_command(main_server.port, NULL, "XADD wsgw:h:{job:o} %s m %s", id, text[i]));
    }
    freeReplyObject(
        sync_command(main_server.port, NULL, "HSET wsgw:m:{job:o} epoch OldEpoch top %s", "3"));
    bus_add(f, main_server.port);
    wait_up(f);
    h = read_wait(f, "job:o", -1, 100, 100, 60);
    assert_string_equal(h->epoch, "OldEpoch");
    assert_int_equal(h->n, 1);
    assert_int_equal(h->offsets[0], 3);
    assert_string_equal(h->payloads[0], text[2]);
    h = read_wait(f, "job:o", 1, 100, 100, 60);
    assert_int_equal(h->first, 1);
    assert_int_equal(h->n, 2);
    assert_string_equal(h->payloads[0], text[1]);

    assert_int_equal(publish_batch(f, 0, "job:o", 4, 6, 100), PS_OK);
    WAIT(f, got_pubs, 1);
    assert_int_equal(f->pubs[0].offset, 4);
    assert_string_equal(f->pubs[0].epoch, "OldEpoch");
    h = read_wait(f, "job:o", 0, 100, 100, 60);
    assert_int_equal(h->n, 6);
    for (i = 0; i < 6; i++) {
        assert_int_equal(h->offsets[i], i + 1);
        if (i < 3) {
            assert_string_equal(h->payloads[i], text[i]);
        } else {
            stored_text(want, sizeof(want), i + 1, i + 1, "OldEpoch");
            assert_string_equal(h->payloads[i], want);
        }
    }
    /* A single message is stored in that layout still, so gateways of the
     * previous version read it during a rolling upgrade. */
    assert_int_equal(publish_h(f, 0, "job:o", "{\"data\":7}", 100, 60), PS_OK);
    WAIT(f, got_pubs, 2);
    r = sync_command(main_server.port, NULL, "XREVRANGE wsgw:h:{job:o} + - COUNT 1");
    assert_non_null(r);
    assert_int_equal(r->elements, 1);
    assert_string_equal(r->element[0]->element[0]->str, "7-0");
    assert_int_equal(r->element[0]->element[1]->elements, 2);
    assert_string_equal(r->element[0]->element[1]->element[0]->str, "m");
    stored_text(want, sizeof(want), 7, 7, "OldEpoch");
    assert_string_equal(r->element[0]->element[1]->element[1]->str, want);
    freeReplyObject(r);
}

static int by_offset(const void *a, const void *b)
{
    int64_t x = ((const pub_record *)a)->offset, y = ((const pub_record *)b)->offset;

    return (x > y) - (x < y);
}

/* Four gateway processes publishing to one channel at once: the offsets
 * are unique and contiguous, one epoch, and a subscriber hears them in
 * offset order. */
static void concurrent_publishers(void **state)
{
    fixture *f = *state;
    char payload[32];
    int i, b;

    for (b = 0; b < 4; b++)
        bus_add(f, main_server.port);
    ps_bus_subscribe(f->bus[0], "room");
    wait_up(f);
    WAIT(f, got_subscribed, 1);
    for (i = 0; i < 50; i++)
        for (b = 0; b < 4; b++) {
            snprintf(payload, sizeof(payload), "{\"data\":%d}", b * 1000 + i);
            assert_int_equal(publish_h(f, b, "room", payload, 500, 60), PS_OK);
        }
    WAIT(f, got_pubs, 200);
    WAIT(f, got_msgs, 200);
    qsort(f->pubs, 200, sizeof(f->pubs[0]), by_offset);
    for (i = 0; i < 200; i++) {
        assert_int_equal(f->pubs[i].status, PS_OK);
        assert_int_equal(f->pubs[i].offset, i + 1);
        assert_string_equal(f->pubs[i].epoch, f->pubs[0].epoch);
        assert_int_equal(f->msgs[i].offset, i + 1);
    }
    assert_int_equal(read_wait(f, "room", 0, 1000, 500, 60)->n, 200);
}

/* ---- group commit ------------------------------------------------------- */

/* A publish from bus 1 whose callback record names i (its issue index). */
static int publish_i(fixture *f, int i, const char *channel, const ps_history_policy *p)
{
    char payload[32];

    snprintf(payload, sizeof(payload), "{\"data\":%d}", i);
    return ps_bus_publish(f->bus[1], channel, payload, strlen(payload), p, on_published,
                          (void *)(intptr_t)i);
}

/* Bus 0 hears channels, bus 1 publishes. */
static void two_buses(fixture *f, const char *const *channels, int n)
{
    int i;

    bus_add(f, main_server.port);
    bus_add(f, main_server.port);
    for (i = 0; i < n; i++)
        assert_int_equal(ps_bus_subscribe(f->bus[0], channels[i]), PS_OK);
    wait_up(f);
    WAIT(f, got_subscribed, n);
}

/* Single publishes to one channel issued in one loop turn (concurrent
 * requests) go to Redis as one publish script, and each caller still hears
 * its own offset, in the order it asked; subscribers hear each message
 * once, in that order, as if published alone. */
static void singles_in_one_turn_share_one_script(void **state)
{
    fixture *f = *state;
    const char *chans[] = {"job:g"};
    ps_history_policy p = {100, 60};
    long long evalsha, publish;
    char want[128];
    int i;

    two_buses(f, chans, 1);
    evalsha = calls_of("evalsha");
    publish = calls_of("publish");
    for (i = 0; i < 20; i++)
        assert_int_equal(publish_i(f, i, "job:g", &p), PS_OK);
    assert_int_equal(f->npubs, 0); /* never from inside publish */
    WAIT(f, got_pubs, 20);
    WAIT(f, got_msgs, 20);
    run_until(f, never, 30);
    assert_int_equal(calls_of("evalsha") - evalsha, 1);
    assert_int_equal(calls_of("publish") - publish, 1);
    assert_int_equal(f->npubs, 20);
    assert_int_equal(f->nmsgs, 20);
    for (i = 0; i < 20; i++) {
        assert_int_equal(f->pubs[i].bus, i);
        assert_int_equal(f->pubs[i].status, PS_OK);
        assert_int_equal(f->pubs[i].offset, i + 1);
        assert_string_equal(f->pubs[i].epoch, f->pubs[0].epoch);
        stored_text(want, sizeof(want), i, i + 1, f->pubs[0].epoch);
        assert_string_equal(f->msgs[i].payload, want);
    }
    assert_int_equal(f->bus[1]->stats.publishes, 20);
    assert_int_equal(read_wait(f, "job:g", 0, 100, 100, 60)->n, 20);
}

/* One flush in flight at a time: publishes asked for while the previous
 * script call awaits its reply (Redis paused here, so that it surely
 * does) wait for that reply and then go together, as one script call, in
 * issue order, each with its own offset. */
static void publishes_gather_while_a_call_is_in_flight(void **state)
{
    fixture *f = *state;
    const char *chans[] = {"job:w"};
    ps_history_policy p = {100, 60};
    long long evalsha;
    int i;

    two_buses(f, chans, 1);
    evalsha = calls_of("evalsha");
    assert_int_equal(publish_i(f, 0, "job:w", &p), PS_OK);
    freeReplyObject(sync_command(main_server.port, NULL, "CLIENT PAUSE %s ALL", "300"));
    run_until(f, never, 20); /* the first call goes out and waits in Redis */
    assert_int_equal(f->npubs, 0);
    for (i = 1; i < 10; i++) {
        assert_int_equal(publish_i(f, i, "job:w", &p), PS_OK);
        run_until(f, never, 5); /* turns pass; the queue waits */
    }
    WAIT(f, got_pubs, 10);
    WAIT(f, got_msgs, 10);
    assert_int_equal(calls_of("evalsha") - evalsha, 2);
    for (i = 0; i < 10; i++) {
        assert_int_equal(f->pubs[i].status, PS_OK);
        assert_int_equal(f->pubs[i].offset, i + 1);
    }
}

/* Runs break at a plain publish and at the run bound (100 messages);
 * another channel or policy starts another group of the same call. The
 * link sends everything in issue order, so subscribers hear it in that
 * order across channels, and an explicit batch joins a run it fits. */
static void interleaved_channels_keep_issue_order(void **state)
{
    fixture *f = *state;
    const char *chans[] = {"job:a", "job:b", "plain"};
    static const char *order[] = {"job:a", "job:a", "job:b", "plain", "job:a", "job:a"};
    ps_history_policy p = {100, 60}, other = {50, 60};
    ps_payload two[2] = {{"{\"data\":6}", 10}, {"{\"data\":7}", 10}};
    long long evalsha;
    int i;

    two_buses(f, chans, 3);
    evalsha = calls_of("evalsha");
    assert_int_equal(publish_i(f, 0, "job:a", &p), PS_OK);
    assert_int_equal(publish_i(f, 1, "job:a", &p), PS_OK);
    assert_int_equal(publish_i(f, 2, "job:b", &p), PS_OK);
    assert_int_equal(publish_i(f, 3, "plain", NULL), PS_OK);
    assert_int_equal(publish_i(f, 4, "job:a", &p), PS_OK);
    assert_int_equal(
        ps_bus_publish_batch(f->bus[1], "job:a", two, 2, &p, on_published, (void *)(intptr_t)5),
        PS_OK);
    WAIT(f, got_pubs, 6);
    WAIT(f, got_msgs, 7);
    /* [a a | b] plain [a, batch of 2]: groups of other channels share a
     * call, a plain publish ends it. */
    assert_int_equal(calls_of("evalsha") - evalsha, 2);
    for (i = 0; i < 6; i++) {
        assert_int_equal(f->pubs[i].bus, i);
        assert_int_equal(f->pubs[i].status, PS_OK);
        assert_string_equal(f->msgs[i].channel, order[i]);
        assert_int_equal(data_in(f->msgs[i].payload), i < 5 ? i : 6);
    }
    assert_string_equal(f->msgs[6].channel, "job:a");
    assert_int_equal(data_in(f->msgs[6].payload), 7);
    assert_int_equal(f->pubs[0].offset, 1);
    assert_int_equal(f->pubs[1].offset, 2);
    assert_int_equal(f->pubs[2].offset, 1);
    assert_false(f->pubs[3].has_res);
    assert_int_equal(f->pubs[4].offset, 3);
    assert_int_equal(f->pubs[5].offset, 4);
    assert_int_equal(f->bus[1]->stats.publishes, 7);

    /* Another policy starts another group; the run bound (100 messages)
     * cuts 152 singles into two calls. */
    f->npubs = 0;
    evalsha = calls_of("evalsha");
    assert_int_equal(publish_i(f, 0, "job:b", &p), PS_OK);
    assert_int_equal(publish_i(f, 1, "job:b", &other), PS_OK);
    for (i = 2; i < 152; i++)
        assert_int_equal(publish_i(f, i, "job:b", &other), PS_OK);
    WAIT(f, got_pubs, 152);
    assert_int_equal(calls_of("evalsha") - evalsha, 2);
    for (i = 0; i < 152; i++) {
        assert_int_equal(f->pubs[i].bus, i);
        assert_int_equal(f->pubs[i].offset, i + 2);
    }
}

/* Publishes queued behind a call that never comes back (Redis frozen,
 * then gone) are not left waiting: when the link drops, the call in
 * flight fails, and then the queue, in issue order, each once. */
static void queued_behind_a_lost_call_fail_too(void **state)
{
    fixture *f = *state;
    server *s = extra_server();
    int port = free_port();
    ps_history_policy p = {10, 60};
    int i;

    server_start(s, port, NULL, NULL);
    bus_add(f, port);
    wait_up(f);
    server_freeze(s);
    assert_int_equal(
        ps_bus_publish(f->bus[0], "job:q", "{}", 2, &p, on_published, (void *)(intptr_t)0), PS_OK);
    run_until(f, never, 20); /* sent; no answer comes */
    for (i = 1; i < 4; i++) {
        assert_int_equal(
            ps_bus_publish(f->bus[0], "job:q", "{}", 2, &p, on_published, (void *)(intptr_t)i),
            PS_OK);
        run_until(f, never, 5);
    }
    assert_int_equal(f->npubs, 0);
    server_kill(s);
    WAIT(f, got_pubs, 4);
    run_until(f, never, 30);
    assert_int_equal(f->npubs, 4);
    for (i = 0; i < 4; i++) {
        assert_int_equal(f->pubs[i].bus, i);
        assert_int_equal(f->pubs[i].status, PS_EUNAVAILABLE);
    }
    assert_int_equal(f->bus[0]->stats.publish_errors, 4);
}

/* Groups of one call succeed and fail each on its own: a channel whose
 * meta key someone else made a string fails its callers (PS_EINVAL), and
 * the groups before and after it are published, stored and heard. */
static void a_refused_group_fails_only_its_callers(void **state)
{
    fixture *f = *state;
    const char *chans[] = {"job:x", "job:bad", "job:y"};
    ps_history_policy p = {10, 60};

    two_buses(f, chans, 3);
    freeReplyObject(sync_command(main_server.port, NULL, "SET %s x", "wsgw:m:{job:bad}"));
    assert_int_equal(publish_i(f, 0, "job:x", &p), PS_OK);
    assert_int_equal(publish_i(f, 1, "job:bad", &p), PS_OK);
    assert_int_equal(publish_i(f, 2, "job:bad", &p), PS_OK);
    assert_int_equal(publish_i(f, 3, "job:y", &p), PS_OK);
    WAIT(f, got_pubs, 4);
    WAIT(f, got_msgs, 2);
    run_until(f, never, 30);
    assert_int_equal(f->pubs[0].status, PS_OK);
    assert_int_equal(f->pubs[0].offset, 1);
    assert_int_equal(f->pubs[1].status, PS_EINVAL);
    assert_int_equal(f->pubs[2].status, PS_EINVAL);
    assert_false(f->pubs[2].has_res);
    assert_int_equal(f->pubs[3].status, PS_OK);
    assert_int_equal(f->pubs[3].offset, 1);
    assert_int_equal(f->nmsgs, 2);
    assert_string_equal(f->msgs[0].channel, "job:x");
    assert_string_equal(f->msgs[1].channel, "job:y");
    assert_int_equal(f->bus[1]->stats.publishes, 2);
    assert_int_equal(f->bus[1]->stats.publish_errors, 2);
    assert_non_null(strstr(ps_bus_last_error(f->bus[1]), "WRONGTYPE"));
    assert_int_equal(read_wait(f, "job:y", 0, 10, 10, 60)->n, 1);
}

/* A group whose XADD Redis refuses (someone else's key at the stream's
 * name) gives its offsets back: once the key is gone, the next publish
 * takes the offset after the last one published, so subscribers see no
 * hole where nothing was lost. */
static void a_refused_append_leaves_no_offset_gap(void **state)
{
    fixture *f = *state;
    const char *chans[] = {"job:z"};
    ps_history_policy p = {10, 60};

    two_buses(f, chans, 1);
    assert_int_equal(publish_i(f, 0, "job:z", &p), PS_OK);
    WAIT(f, got_pubs, 1);
    freeReplyObject(sync_command(main_server.port, NULL, "SET %s x", "wsgw:h:{job:z}"));
    assert_int_equal(publish_i(f, 1, "job:z", &p), PS_OK);
    WAIT(f, got_pubs, 2);
    freeReplyObject(sync_command(main_server.port, NULL, "DEL %s", "wsgw:h:{job:z}"));
    assert_int_equal(publish_i(f, 2, "job:z", &p), PS_OK);
    WAIT(f, got_pubs, 3);
    assert_int_equal(f->pubs[0].status, PS_OK);
    assert_int_equal(f->pubs[0].offset, 1);
    assert_int_equal(f->pubs[1].status, PS_EINVAL);
    assert_non_null(strstr(ps_bus_last_error(f->bus[1]), "WRONGTYPE"));
    assert_int_equal(f->pubs[2].status, PS_OK);
    assert_int_equal(f->pubs[2].offset, 2);
    assert_string_equal(f->pubs[2].epoch, f->pubs[0].epoch);
}

/* A run's command failing fails each of its messages, once, with the same
 * status: refused by Redis (PS_EINVAL), and lost with the link
 * (PS_EUNAVAILABLE). */
static void failed_run_fails_each_message_once(void **state)
{
    fixture *f = *state;
    server *s = extra_server();
    int port = free_port();
    ps_history_policy p = {10, 60};
    redisReply *r = sync_command(main_server.port, NULL, "SET wsgw:m:{job:w} x");
    int i;

    freeReplyObject(r);
    bus_add(f, main_server.port);
    wait_up(f);
    for (i = 0; i < 3; i++)
        assert_int_equal(
            ps_bus_publish(f->bus[0], "job:w", "{}", 2, &p, on_published, (void *)(intptr_t)i),
            PS_OK);
    WAIT(f, got_pubs, 3);
    run_until(f, never, 30);
    assert_int_equal(f->npubs, 3);
    for (i = 0; i < 3; i++) {
        assert_int_equal(f->pubs[i].bus, i);
        assert_int_equal(f->pubs[i].status, PS_EINVAL);
    }
    assert_int_equal(f->bus[0]->stats.publish_errors, 3);

    server_start(s, port, NULL, NULL);
    bus_add(f, port);
    wait_up(f);
    server_freeze(s);
    f->npubs = 0;
    for (i = 0; i < 4; i++)
        assert_int_equal(
            ps_bus_publish(f->bus[1], "job:w", "{}", 2, &p, on_published, (void *)(intptr_t)i),
            PS_OK);
    run_until(f, never, 50);
    assert_int_equal(f->npubs, 0);
    server_kill(s);
    WAIT(f, got_pubs, 4);
    run_until(f, never, 30);
    assert_int_equal(f->npubs, 4);
    for (i = 0; i < 4; i++) {
        assert_int_equal(f->pubs[i].bus, i);
        assert_int_equal(f->pubs[i].status, PS_EUNAVAILABLE);
    }
    assert_int_equal(f->bus[1]->stats.publish_errors, 4);
}

static void on_published_then_stop(void *udata, int status, const ps_publish_result *res)
{
    on_published(udata, status, res);
    if ((intptr_t)udata == 0)
        ps_bus_stop(current->bus[0]);
}

/* Stop completes what waits for the end of the turn, inside stop, each
 * once (PS_ECLOSED, reads too); and stopped from a run's callback, it tells
 * the run's other callers their outcome before it returns. */
static void stop_completes_queued_publishes(void **state)
{
    fixture *f = *state;
    ps_history_policy p = {10, 60};
    long long evalsha;
    int i;

    bus_add(f, main_server.port);
    wait_up(f);
    evalsha = calls_of("evalsha");
    for (i = 0; i < 3; i++)
        assert_int_equal(publish_h(f, 0, "job:s", "{}", 10, 60), PS_OK);
    assert_int_equal(ps_bus_publish(f->bus[0], "plain", "{}", 2, NULL, on_published, NULL), PS_OK);
    assert_int_equal(read_h(f, "job:s", 0, 10, 10, 60), PS_OK);
    ps_bus_stop(f->bus[0]);
    assert_int_equal(f->npubs, 4);
    assert_int_equal(f->nreads, 1);
    for (i = 0; i < 4; i++)
        assert_int_equal(f->pubs[i].status, PS_ECLOSED);
    assert_int_equal(f->reads[0].status, PS_ECLOSED);
    assert_int_equal(f->bus[0]->stats.publish_errors, 4);
    run_until(f, never, 50);
    assert_int_equal(f->npubs, 4);
    assert_int_equal(calls_of("evalsha") - evalsha, 0);

    ps_bus_destroy(f->bus[0]); /* stopped, and the loop ran */
    f->nbus = 0;
    bus_add(f, main_server.port);
    wait_up(f);
    f->npubs = 0;
    for (i = 0; i < 3; i++)
        assert_int_equal(ps_bus_publish(f->bus[0], "job:s", "{}", 2, &p, on_published_then_stop,
                                        (void *)(intptr_t)i),
                         PS_OK);
    WAIT(f, got_pubs, 1);
    assert_int_equal(f->npubs, 3); /* the others inside that stop */
    for (i = 0; i < 3; i++) {
        assert_int_equal(f->pubs[i].bus, i);
        assert_int_equal(f->pubs[i].status, PS_OK);
        assert_int_equal(f->pubs[i].offset, i + 1);
    }
    run_until(f, never, 30);
    assert_int_equal(f->npubs, 3);
}

static void refused_and_odd(void **state)
{
    fixture *f = *state;
    ps_history_policy off = {0, 0}, no_ttl = {10, 0};
    redisReply *r;
    char want[128];

    bus_add(f, main_server.port);
    ps_bus_subscribe(f->bus[0], "odd");
    wait_up(f);
    WAIT(f, got_subscribed, 1);
    /* Shapes refused at once. */
    assert_int_equal(publish_h(f, 0, "odd", "[1]", 10, 60), PS_EINVAL);
    assert_int_equal(publish_h(f, 0, "odd", "{\"data\":1", 10, 60), PS_EINVAL);
    assert_int_equal(ps_bus_publish(f->bus[0], "odd", "{}", 2, &no_ttl, NULL, NULL), PS_EINVAL);
    assert_int_equal(ps_bus_history(f->bus[0], "odd", 0, 1, &off, on_history, NULL), PS_EINVAL);
    /* An empty object gets no comma. */
    assert_int_equal(publish_h(f, 0, "odd", "{}", 10, 60), PS_OK);
    WAIT(f, got_msgs, 1);
    WAIT(f, got_pubs, 1);
    snprintf(want, sizeof(want), "{\"offset\":1,\"epoch\":\"%s\"}", f->pubs[0].epoch);
    assert_string_equal(f->msgs[0].payload, want);
    /* size 0: a plain PUBLISH, no result. */
    assert_int_equal(ps_bus_publish(f->bus[0], "odd", "raw", 3, &off, on_published, NULL), PS_OK);
    WAIT(f, got_pubs, 2);
    assert_int_equal(f->pubs[1].status, PS_OK);
    assert_false(f->pubs[1].has_res);
    WAIT(f, got_msgs, 2);
    assert_string_equal(f->msgs[1].payload, "raw");

    /* A meta key of the wrong type: Redis refuses, PS_EINVAL, bus up. */
    r = sync_command(main_server.port, NULL, "SET %s %s", "wsgw:m:{odd2}", "x");
    freeReplyObject(r);
    assert_int_equal(publish_h(f, 0, "odd2", "{}", 10, 60), PS_OK);
    WAIT(f, got_pubs, 3);
    assert_int_equal(f->pubs[2].status, PS_EINVAL);
    assert_non_null(strstr(ps_bus_last_error(f->bus[0]), "WRONGTYPE"));
    assert_int_equal(ps_bus_is_up(f->bus[0]), 1);
    /* A meta with a malformed epoch is replaced, never published. */
    r = sync_command(main_server.port, NULL, "HSET %s epoch %s top 7", "wsgw:m:{odd3}", "no way");
    freeReplyObject(r);
    assert_int_equal(publish_h(f, 0, "odd3", "{}", 10, 60), PS_OK);
    WAIT(f, got_pubs, 4);
    assert_int_equal(f->pubs[3].status, PS_OK);
    assert_int_equal(f->pubs[3].offset, 1);
    assert_int_equal(strlen(f->pubs[3].epoch), 16);
}

/* Reads fail at once while down, with PS_EUNAVAILABLE when the link drops
 * under them and with PS_ECLOSED inside stop. */
static void reads_on_drop_and_stop(void **state)
{
    fixture *f = *state;
    server *s = extra_server();
    int port = free_port();

    server_start(s, port, NULL, NULL);
    bus_add(f, port);
    wait_up(f);
    server_freeze(s);
    assert_int_equal(read_h(f, "j", 0, 10, 10, 60), PS_OK);
    assert_int_equal(read_h(f, "j", 0, 10, 10, 60), PS_OK);
    run_until(f, never, 50);
    assert_int_equal(f->nreads, 0);
    server_kill(s);
    WAIT(f, got_reads, 2);
    assert_int_equal(f->reads[0].status, PS_EUNAVAILABLE);
    assert_int_equal(f->reads[1].status, PS_EUNAVAILABLE);
    assert_int_equal(f->bus[0]->stats.history_errors, 2);
    run_until(f, never, 30);
    assert_int_equal(read_h(f, "j", 0, 10, 10, 60), PS_EUNAVAILABLE);

    server_start(s, port, NULL, NULL);
    wait_up(f);
    server_freeze(s);
    assert_int_equal(read_h(f, "j", 0, 10, 10, 60), PS_OK);
    assert_int_equal(publish_h(f, 0, "j", "{}", 10, 60), PS_OK);
    run_until(f, never, 50);
    ps_bus_stop(f->bus[0]);
    assert_int_equal(f->nreads, 3); /* inside stop */
    assert_int_equal(f->reads[2].status, PS_ECLOSED);
    assert_int_equal(f->npubs, 1);
    assert_int_equal(f->pubs[0].status, PS_ECLOSED);
    assert_int_equal(read_h(f, "j", 0, 10, 10, 60), PS_ECLOSED);
}

static int in_list(const fixture *f, const char *channel)
{
    int i, n = 0;

    for (i = 0; i < f->nsubscribed; i++)
        n += strcmp(f->subscribed[i], channel) == 0;
    return n;
}

/* on_subscribed: once Redis confirmed, once per effective subscribe, and
 * for every channel after a reconnect; a read started from it is accepted. */
static void subscribed_and_resubscribed(void **state)
{
    fixture *f = *state;
    server *s = extra_server();
    int port = free_port(), i;
    redisReply *r;

    server_start(s, port, NULL, NULL);
    bus_add(f, port);
    f->read_on_subscribed = 1;
    ps_bus_subscribe(f->bus[0], "a");
    wait_up(f);
    WAIT(f, got_subscribed, 1);
    assert_string_equal(f->subscribed[0], "a");
    r = sync_command(port, NULL, "PUBSUB NUMSUB %s", "wsgw:a");
    assert_int_equal(r->element[1]->integer, 1); /* Redis has it by then */
    freeReplyObject(r);
    assert_int_equal(ps_bus_subscribe(f->bus[0], "a"), PS_OK); /* wanted already: no call */
    /* Churn in one turn: b once, c never. */
    ps_bus_subscribe(f->bus[0], "b");
    ps_bus_unsubscribe(f->bus[0], "b");
    ps_bus_subscribe(f->bus[0], "b");
    ps_bus_subscribe(f->bus[0], "c");
    ps_bus_unsubscribe(f->bus[0], "c");
    ps_bus_subscribe(f->bus[0], "d");
    WAIT(f, got_subscribed, 3);
    run_until(f, never, 100);
    assert_int_equal(f->nsubscribed, 3);
    assert_int_equal(in_list(f, "b"), 1);
    assert_int_equal(in_list(f, "c"), 0);
    assert_int_equal(in_list(f, "d"), 1);

    /* Restart: a, b, d again, each once, each able to read. */
    server_kill(s);
    run_until(f, never, 100);
    server_start(s, port, NULL, NULL);
    wait_up(f);
    WAIT(f, got_subscribed, 6);
    run_until(f, never, 100);
    assert_int_equal(f->nsubscribed, 6);
    assert_int_equal(in_list(f, "a"), 2);
    assert_int_equal(in_list(f, "b"), 2);
    assert_int_equal(in_list(f, "d"), 2);
    for (i = 0; i < 6; i++)
        assert_int_equal(f->read_rcs[i], PS_OK);
    WAIT(f, got_reads, 6);
    for (i = 0; i < 6; i++)
        assert_int_equal(f->reads[i].status, PS_OK);
}

/* The command link down while the subscriber link is up (an ACL user that
 * may not SCRIPT LOAD, the cmd handshake fails): confirmations wait, and
 * come once the command link is up, so that the reads started from them are
 * accepted; a channel unsubscribed meanwhile never speaks. */
static void confirmations_wait_for_the_command_link(void **state)
{
    fixture *f = *state;
    const char *const extra[] = {"--user", "carl",  "on",           ">pw", "~*",
                                 "&*",     "+@all", "-script|load", NULL};
    server *s = extra_server();
    ps_bus_callbacks cb = {on_message, on_state, on_subscribed, f};
    ps_redis_opts o;
    redisReply *r;

    server_start(s, free_port(), NULL, extra);
    memset(&o, 0, sizeof(o));
    assert_int_equal(ps_redis_url_parse("redis://carl:pw@127.0.0.1", &o.url), PS_OK);
    o.url.port = s->port;
    o.backoff_min_ms = 10;
    o.backoff_max_ms = 40;
    f->bus[f->nbus++] = ps_redis_bus_new(&f->loop, &o, &cb);
    assert_non_null(f->bus[0]);
    f->read_on_subscribed = 1;
    ps_bus_subscribe(f->bus[0], "x");
    ps_bus_subscribe(f->bus[0], "y");
    run_until(f, never, 300);
    r = sync_command(s->port, NULL, "PUBSUB NUMSUB %s %s", "wsgw:x", "wsgw:y");
    assert_int_equal(r->element[1]->integer, 1); /* the sub link did subscribe */
    assert_int_equal(r->element[3]->integer, 1);
    freeReplyObject(r);
    assert_int_equal(f->nsubscribed, 0);
    assert_int_equal(ps_bus_is_up(f->bus[0]), 0);
    assert_non_null(strstr(ps_bus_last_error(f->bus[0]), "NOPERM"));
    ps_bus_unsubscribe(f->bus[0], "y");

    r = sync_command(s->port, NULL, "ACL SETUSER carl +script|load");
    freeReplyObject(r);
    wait_up(f);
    WAIT(f, got_subscribed, 1);
    run_until(f, never, 50);
    assert_int_equal(f->nsubscribed, 1);
    assert_string_equal(f->subscribed[0], "x");
    assert_int_equal(f->read_rcs[0], PS_OK);
    WAIT(f, got_reads, 1);
    assert_int_equal(f->reads[0].status, PS_OK);
}

/* The recovery promise end to end: while another process publishes
 * steadily, bus 0 subscribes and reads from on_subscribed; what the read
 * returned plus what arrived live covers every offset, with no gap. */
static struct {
    int sent, total, subscribe_at;
} stream;

static void on_publisher_tick(uv_timer_t *t)
{
    fixture *f = t->data;
    char payload[32];
    int i;

    for (i = 0; i < 5 && stream.sent < stream.total; i++, stream.sent++) {
        snprintf(payload, sizeof(payload), "{\"data\":%d}", stream.sent);
        assert_int_equal(publish_h(f, 1, "live", payload, 1000, 60), PS_OK);
    }
    if (stream.sent >= stream.subscribe_at && !ps_bus_subscribe(f->bus[0], "live"))
        stream.subscribe_at = stream.total + 1; /* once */
}

static void read_plus_live_misses_nothing(void **state)
{
    fixture *f = *state;
    ps_merge_item stored[MAX_RECORDS], live[MAX_RECORDS], out[2 * MAX_RECORDS];
    size_t n, i;
    int gap;

    bus_add(f, main_server.port);
    bus_add(f, main_server.port);
    f->read_on_subscribed = 1;
    wait_up(f);
    stream.sent = 0;
    stream.total = 400;
    stream.subscribe_at = 150;
    uv_timer_init(&f->loop, &f->publisher);
    f->publisher_on = 1;
    f->publisher.data = f;
    uv_timer_start(&f->publisher, on_publisher_tick, 1, 1);
    WAIT(f, got_pubs, 400);
    uv_timer_stop(&f->publisher);
    WAIT(f, got_reads, 1);
    assert_int_equal(f->read_rcs[0], PS_OK);
    assert_int_equal(f->reads[0].status, PS_OK);
    /* The last message live marks the end of the stream. */
    while (f->nmsgs == 0 || f->msgs[f->nmsgs - 1].offset != 400) {
        f->want = f->nmsgs + 1;
        if (!run_until(f, got_msgs, WAIT_MS))
            fail_msg("the last message never arrived live");
    }
    for (i = 0; i < f->reads[0].n; i++)
        stored[i] = (ps_merge_item){f->reads[0].offsets[i], NULL};
    for (i = 0; i < (size_t)f->nmsgs; i++)
        live[i] = (ps_merge_item){f->msgs[i].offset, NULL};
    n = ps_merge(0, stored, f->reads[0].n, live, (size_t)f->nmsgs, out, &gap);
    assert_int_equal(gap, 0);
    assert_int_equal(n, 400);
    /* Subscribed mid-stream: the read had the start, live the rest. */
    assert_true(f->reads[0].n > 0);
    assert_true(f->msgs[0].offset > 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(offsets_in_order_and_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(trimmed_to_size, setup, teardown),
        cmocka_unit_test_setup_teardown(stream_stays_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(ttl_on_both_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(ttl_on_a_stream_recreated, setup, teardown),
        cmocka_unit_test_setup_teardown(ttl_refreshed_after_the_slack, setup, teardown),
        cmocka_unit_test_setup_teardown(ttl_follows_a_smaller_policy, setup, teardown),
        cmocka_unit_test_setup_teardown(read_creates_the_epoch_of_the_next_publish, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(flushall_gives_a_new_epoch, setup, teardown),
        cmocka_unit_test_setup_teardown(script_flush_reloads, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_publishers, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_takes_consecutive_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_batches_stay_whole, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_after_script_flush, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_reads_from_the_middle, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_trimmed_in_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(odd_envelopes_in_a_batch_read_as_heard, setup, teardown),
        cmocka_unit_test_setup_teardown(entries_of_the_previous_layout_still_read, setup, teardown),
        cmocka_unit_test_setup_teardown(singles_in_one_turn_share_one_script, setup, teardown),
        cmocka_unit_test_setup_teardown(publishes_gather_while_a_call_is_in_flight, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(interleaved_channels_keep_issue_order, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_run_fails_each_message_once, setup, teardown),
        cmocka_unit_test_setup_teardown(a_refused_group_fails_only_its_callers, setup, teardown),
        cmocka_unit_test_setup_teardown(a_refused_append_leaves_no_offset_gap, setup, teardown),
        cmocka_unit_test_setup_teardown(queued_behind_a_lost_call_fail_too, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_completes_queued_publishes, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_and_odd, setup, teardown),
        cmocka_unit_test_setup_teardown(reads_on_drop_and_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(subscribed_and_resubscribed, setup, teardown),
        cmocka_unit_test_setup_teardown(confirmations_wait_for_the_command_link, setup, teardown),
        cmocka_unit_test_setup_teardown(read_plus_live_misses_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, servers_setup, servers_teardown);
}
