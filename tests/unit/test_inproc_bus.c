/*
 * Unit tests of the in-process bus (pubsub/src/inproc_bus.c).
 *
 * What the gateway relies on: a publish reaches this process's subscribers
 * of that channel only, once, in order, on a later turn of the loop (never
 * from inside ps_bus_publish), the publish callback follows the delivery,
 * and stop() completes whatever is still queued with PS_ECLOSED and then
 * stays silent. With history, the same semantics as the Redis scripts:
 * offsets 1..N in publish order under one epoch, the delivered text is the
 * stored one, reads return what follows `since` (or the latest), the ring
 * keeps the last `size`, an expired or evicted history comes back with a new
 * epoch and offsets from 1; a batch takes consecutive offsets and is
 * delivered message by message; and on_subscribed comes from the loop, once per
 * effective subscribe. Every test ends with the loop closing cleanly (no
 * handle left behind) and, under ASan, no leak.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pubsub/pubsub.h"

/* Everything the bus told us, in order, as text: "S1" state up, "M<ch>=<payload>"
 * a message, "P<tag>:<status>" a publish outcome ("P<tag>:0@<offset>" with
 * history), "C<ch>" a subscription confirmed, "H<tag>:<status>" a history
 * read (the last one is kept in `hist`). */
typedef struct fixture {
    uv_loop_t loop;
    ps_bus *bus;
    char log[1 << 16];
    int messages, states, publishes, reads;
    int in_publish;               /* set around ps_bus_* calls */
    int stop_on_message;          /* call ps_bus_stop from on_message */
    int republish;                /* publish once more from on_message */
    char epoch[PS_EPOCH_MAX + 1]; /* of the last publish with history */
    /* the last history read, copied */
    struct {
        char epoch[PS_EPOCH_MAX + 1];
        int64_t top, first;
        size_t n;
        int64_t offsets[64];
        char payloads[64][128];
    } hist;
    char last_message[256];
} fixture;

static void logf_(fixture *f, const char *fmt, ...)
{
    size_t n = strlen(f->log);
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(f->log + n, sizeof(f->log) - n, fmt, ap);
    va_end(ap);
}

static int publish(fixture *f, const char *channel, const char *payload, const char *tag);

static void on_message(void *udata, const char *channel, const char *payload, size_t len)
{
    fixture *f = udata;

    assert_false(f->in_publish); /* never re-entrant */
    f->messages++;
    logf_(f, "M%s=%.*s;", channel, (int)len, payload);
    snprintf(f->last_message, sizeof(f->last_message), "%.*s", (int)len, payload);
    if (f->republish) {
        f->republish = 0;
        assert_int_equal(publish(f, channel, "again", "r"), PS_OK);
    }
    if (f->stop_on_message)
        ps_bus_stop(f->bus);
}

static void on_state(void *udata, int up)
{
    fixture *f = udata;

    f->states++;
    logf_(f, "S%d;", up);
}

/* The fixture of the running test (cmocka runs them one at a time), so that
 * a publish callback's udata can be just its tag. */
static fixture *current;

static void on_published(void *udata, int status, const ps_publish_result *res)
{
    fixture *f = current;

    assert_false(f->in_publish);
    f->publishes++;
    if (res) {
        assert_int_equal(status, PS_OK);
        logf_(f, "P%s:%d@%lld;", (const char *)udata, status, (long long)res->offset);
        snprintf(f->epoch, sizeof(f->epoch), "%s", res->epoch);
    } else {
        logf_(f, "P%s:%d;", (const char *)udata, status);
    }
}

static void on_subscribed(void *udata, const char *channel)
{
    fixture *f = udata;

    assert_false(f->in_publish);
    logf_(f, "C%s;", channel);
}

static void on_history(void *udata, int status, const ps_history *h)
{
    fixture *f = current;
    size_t i;

    assert_false(f->in_publish);
    f->reads++;
    logf_(f, "H%s:%d;", (const char *)udata, status);
    assert_true((status == PS_OK) == (h != NULL));
    if (!h)
        return;
    assert_true(h->n <= 64);
    snprintf(f->hist.epoch, sizeof(f->hist.epoch), "%s", h->epoch);
    f->hist.top = h->top;
    f->hist.first = h->first;
    f->hist.n = h->n;
    for (i = 0; i < h->n; i++) {
        assert_true(h->entries[i].len < sizeof(f->hist.payloads[0]));
        f->hist.offsets[i] = h->entries[i].offset;
        snprintf(f->hist.payloads[i], sizeof(f->hist.payloads[0]), "%.*s", (int)h->entries[i].len,
                 h->entries[i].payload);
    }
}

static int publish(fixture *f, const char *channel, const char *payload, const char *tag)
{
    int rc;

    f->in_publish = 1;
    rc = ps_bus_publish(f->bus, channel, payload, strlen(payload), NULL, on_published, (void *)tag);
    f->in_publish = 0;
    return rc;
}

static int publish_h(fixture *f, const char *channel, const char *payload, const char *tag,
                     uint32_t size, uint32_t ttl_s)
{
    ps_history_policy p = {size, ttl_s};
    int rc;

    f->in_publish = 1;
    rc = ps_bus_publish(f->bus, channel, payload, strlen(payload), &p, on_published, (void *)tag);
    f->in_publish = 0;
    return rc;
}

static int read_h(fixture *f, const char *channel, int64_t since, size_t limit, const char *tag,
                  uint32_t size, uint32_t ttl_s)
{
    ps_history_policy p = {size, ttl_s};
    int rc;

    f->in_publish = 1;
    rc = ps_bus_history(f->bus, channel, since, limit, &p, on_history, (void *)tag);
    f->in_publish = 0;
    return rc;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    ps_bus_callbacks cb = {on_message, on_state, on_subscribed, f};

    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->bus = ps_inproc_bus_new(&f->loop, &cb);
    assert_non_null(f->bus);
    current = f;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;

    ps_bus_stop(f->bus);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    ps_bus_destroy(f->bus);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void run_once(fixture *f)
{
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

/* ---- tests -------------------------------------------------------------- */

static void state_up_from_the_loop(void **state)
{
    fixture *f = *state;

    assert_int_equal(ps_bus_is_up(f->bus), 1);
    assert_int_equal(f->states, 0); /* not from inside ps_inproc_bus_new */
    run_once(f);
    assert_string_equal(f->log, "S1;");
    run_once(f);
    assert_int_equal(f->states, 1);
    assert_string_equal(ps_bus_last_error(f->bus), "");
}

static void delivered_on_a_later_iteration(void **state)
{
    fixture *f = *state;

    run_once(f);
    f->log[0] = '\0';
    assert_int_equal(ps_bus_subscribe(f->bus, "job:42"), PS_OK);
    assert_int_equal(ps_bus_subscribe(f->bus, "job:42"), PS_OK); /* idempotent */
    assert_int_equal(publish(f, "job:42", "{\"data\":{\"progress\":40}}", "a"), PS_OK);
    assert_string_equal(f->log, ""); /* nothing yet */
    run_once(f);
    /* The confirmation, then delivery, then the publish callback, each once. */
    assert_string_equal(f->log, "Cjob:42;Mjob:42={\"data\":{\"progress\":40}};Pa:0;");
    run_once(f);
    assert_int_equal(f->messages, 1);
    assert_int_equal(f->publishes, 1);
    assert_int_equal(f->bus->stats.messages_in, 1);
    assert_int_equal(f->bus->stats.publishes, 1);
}

static void only_subscribed_channels(void **state)
{
    fixture *f = *state;

    run_once(f);
    f->log[0] = '\0';
    ps_bus_subscribe(f->bus, "job:1");
    ps_bus_subscribe(f->bus, "job:2");
    assert_int_equal(ps_bus_unsubscribe(f->bus, "job:2"), PS_OK);
    assert_int_equal(ps_bus_unsubscribe(f->bus, "job:2"), PS_ENOENT);
    publish(f, "job:2", "x", "unsub");
    publish(f, "job:3", "y", "never");
    publish(f, "job:10", "z", "prefix");
    publish(f, "job:1", "w", "sub");
    run_once(f);
    /* A publish nobody hears still succeeds, as with Redis. */
    assert_string_equal(f->log, "Cjob:1;Punsub:0;Pnever:0;Pprefix:0;Mjob:1=w;Psub:0;");
    assert_int_equal(f->bus->stats.messages_in, 1);
    assert_int_equal(f->bus->stats.publishes, 4);
}

static void order_is_kept(void **state)
{
    fixture *f = *state;
    char payload[16], want[64];
    int i;

    ps_bus_subscribe(f->bus, "chat:x");
    run_once(f);
    for (i = 0; i < 3000; i++) {
        snprintf(payload, sizeof(payload), "%d", i);
        assert_int_equal(publish(f, "chat:x", payload, "o"), PS_OK);
    }
    f->log[0] = '\0';
    /* At most a batch per iteration, all of them in the end, in order. */
    for (i = 0; i < 10 && f->messages < 3000; i++)
        run_once(f);
    assert_int_equal(f->messages, 3000);
    assert_int_equal(f->publishes, 3000);
    assert_true(i > 1);
    assert_non_null(strstr(f->log, "Mchat:x=0;Po:0;Mchat:x=1;Po:0;Mchat:x=2;"));
    snprintf(want, sizeof(want), "Mchat:x=2998;Po:0;Mchat:x=2999;Po:0;");
    assert_string_equal(f->log + strlen(f->log) - strlen(want), want);
}

static void publish_from_a_callback_waits(void **state)
{
    fixture *f = *state;

    ps_bus_subscribe(f->bus, "chat:x");
    run_once(f);
    f->log[0] = '\0';
    f->republish = 1;
    publish(f, "chat:x", "first", "1");
    run_once(f);
    assert_string_equal(f->log, "Mchat:x=first;P1:0;");
    run_once(f);
    assert_string_equal(f->log, "Mchat:x=first;P1:0;Mchat:x=again;Pr:0;");
}

static void stop_completes_pending(void **state)
{
    fixture *f = *state;

    ps_bus_subscribe(f->bus, "job:1");
    run_once(f);
    f->log[0] = '\0';
    publish(f, "job:1", "a", "a");
    publish(f, "job:1", "b", "b");
    ps_bus_stop(f->bus);
    /* Completed inside stop, in order, not delivered. */
    assert_string_equal(f->log, "Pa:-4;Pb:-4;");
    assert_int_equal(ps_bus_is_up(f->bus), 0);
    assert_int_equal(publish(f, "job:1", "c", "c"), PS_ECLOSED);
    assert_int_equal(ps_bus_subscribe(f->bus, "job:2"), PS_ECLOSED);
    ps_bus_stop(f->bus); /* twice is harmless */
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_string_equal(f->log, "Pa:-4;Pb:-4;"); /* and nothing after */
    assert_int_equal(f->bus->stats.publish_errors, 2);
}

static void stop_from_on_message(void **state)
{
    fixture *f = *state;

    ps_bus_subscribe(f->bus, "job:1");
    run_once(f);
    f->log[0] = '\0';
    f->stop_on_message = 1;
    publish(f, "job:1", "a", "a");
    publish(f, "job:1", "b", "b");
    run_once(f);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_string_equal(f->log, "Mjob:1=a;Pa:-4;Pb:-4;");
}

static void refused_publishes(void **state)
{
    fixture *f = *state;
    static char big[1024 * 1024 + 1];
    int i, rc = PS_OK;

    assert_int_equal(ps_bus_publish(f->bus, "job:1", big, sizeof(big), NULL, NULL, NULL),
                     PS_ETOOBIG);
    assert_int_equal(ps_bus_publish(f->bus, "", "x", 1, NULL, NULL, NULL), PS_EINVAL);
    assert_int_equal(ps_bus_publish(f->bus, "a b", "x", 1, NULL, NULL, NULL), PS_EINVAL);
    assert_int_equal(ps_bus_publish(f->bus, NULL, "x", 1, NULL, NULL, NULL), PS_EINVAL);
    assert_int_equal(ps_bus_subscribe(f->bus, "bad\nname"), PS_EINVAL);
    /* The queue is bounded: 65536 wait, the next is refused at once. */
    for (i = 0; i < 65536 && rc == PS_OK; i++)
        rc = ps_bus_publish(f->bus, "job:1", "x", 1, NULL, NULL, NULL);
    assert_int_equal(rc, PS_OK);
    assert_int_equal(ps_bus_publish(f->bus, "job:1", "x", 1, NULL, NULL, NULL), PS_EUNAVAILABLE);
    /* History reads share the bound. */
    assert_int_equal(read_h(f, "job:1", 0, 10, "h", 10, 60), PS_EUNAVAILABLE);
    /* A NULL callback is fine; the outcome is still counted. */
    ps_bus_stop(f->bus);
    assert_int_equal(f->bus->stats.publish_errors, 65536);
    assert_int_equal(f->publishes, 0);
}

/* ---- subscriptions and history ------------------------------------------ */

static int subscribe(fixture *f, const char *channel)
{
    int rc;

    f->in_publish = 1;
    rc = ps_bus_subscribe(f->bus, channel);
    f->in_publish = 0;
    return rc;
}

static void subscribed_from_the_loop(void **state)
{
    fixture *f = *state;

    run_once(f);
    f->log[0] = '\0';
    assert_int_equal(subscribe(f, "job:1"), PS_OK);
    assert_int_equal(subscribe(f, "job:1"), PS_OK); /* already wanted: no second one */
    assert_string_equal(f->log, "");
    run_once(f);
    assert_string_equal(f->log, "Cjob:1;");
    /* Subscribed, unsubscribed and subscribed again in one turn: once. */
    f->log[0] = '\0';
    subscribe(f, "x");
    ps_bus_unsubscribe(f->bus, "x");
    subscribe(f, "x");
    /* Subscribed and unsubscribed: never. */
    subscribe(f, "y");
    ps_bus_unsubscribe(f->bus, "y");
    run_once(f);
    run_once(f);
    assert_string_equal(f->log, "Cx;");
    /* A publish asked for after the subscribe is delivered after it. */
    f->log[0] = '\0';
    subscribe(f, "z");
    publish(f, "z", "after", "a");
    run_once(f);
    assert_string_equal(f->log, "Cz;Mz=after;Pa:0;");
}

/* A full queue refuses publishes, not confirmations. */
static void confirmed_past_the_queue_bound(void **state)
{
    fixture *f = *state;
    int i;

    run_once(f);
    for (i = 0; i < 65536; i++)
        assert_int_equal(ps_bus_publish(f->bus, "job:1", "x", 1, NULL, NULL, NULL), PS_OK);
    assert_int_equal(ps_bus_publish(f->bus, "job:1", "x", 1, NULL, NULL, NULL), PS_EUNAVAILABLE);
    f->log[0] = '\0';
    assert_int_equal(subscribe(f, "late"), PS_OK);
    for (i = 0; i < 100 && !strstr(f->log, "Clate;"); i++)
        run_once(f);
    assert_string_equal(f->log, "Clate;");
}

/* The exact text a stored message has: the envelope with offset and epoch. */
static void stored_text(char *out, size_t cap, int data, int64_t offset, const char *epoch)
{
    snprintf(out, cap, "{\"data\":%d,\"offset\":%lld,\"epoch\":\"%s\"}", data, (long long)offset,
             epoch);
}

static void history_offsets_and_reads(void **state)
{
    fixture *f = *state;
    char payload[64], want[128], log[1024] = "";
    ps_envelope env;
    int i;

    subscribe(f, "job:1");
    run_once(f);
    f->log[0] = '\0';
    for (i = 1; i <= 5; i++) {
        snprintf(payload, sizeof(payload), "{\"data\":%d}", i);
        assert_int_equal(publish_h(f, "job:1", payload, "p", 10, 60), PS_OK);
    }
    assert_string_equal(f->log, ""); /* offsets are given later, from the loop */
    run_once(f);
    assert_int_equal(strlen(f->epoch), 16);
    for (i = 0; i < 16; i++)
        assert_non_null(
            strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", f->epoch[i]));
    /* Delivered with offsets 1..5 under one epoch, each publish told its offset. */
    for (i = 1; i <= 5; i++) {
        stored_text(want, sizeof(want), i, i, f->epoch);
        snprintf(log + strlen(log), sizeof(log) - strlen(log), "Mjob:1=%s;Pp:0@%d;", want, i);
    }
    assert_string_equal(f->log, log);
    /* The delivered text is a valid envelope carrying them. */
    assert_int_equal(ps_envelope_parse(f->last_message, strlen(f->last_message), &env), PS_OK);
    assert_int_equal(env.offset, 5);
    assert_string_equal(env.epoch, f->epoch);
    assert_int_equal(json_integer_value(env.data), 5);
    ps_envelope_clear(&env);

    /* since 2: 3..5, the very texts that were delivered. */
    assert_int_equal(read_h(f, "job:1", 2, 100, "r", 10, 60), PS_OK);
    assert_int_equal(f->reads, 0);
    run_once(f);
    assert_int_equal(f->reads, 1);
    assert_string_equal(f->hist.epoch, f->epoch);
    assert_int_equal(f->hist.top, 5);
    assert_int_equal(f->hist.first, 1);
    assert_int_equal(f->hist.n, 3);
    for (i = 0; i < 3; i++) {
        assert_int_equal(f->hist.offsets[i], i + 3);
        stored_text(want, sizeof(want), i + 3, i + 3, f->epoch);
        assert_string_equal(f->hist.payloads[i], want);
    }
    /* The limit, the latest only, nothing after the top, only the position. */
    read_h(f, "job:1", 0, 2, "r", 10, 60);
    run_once(f);
    assert_int_equal(f->hist.n, 2);
    assert_int_equal(f->hist.offsets[0], 1);
    assert_int_equal(f->hist.offsets[1], 2);
    read_h(f, "job:1", -1, 100, "r", 10, 60);
    run_once(f);
    assert_int_equal(f->hist.n, 1);
    assert_int_equal(f->hist.offsets[0], 5);
    stored_text(want, sizeof(want), 5, 5, f->epoch);
    assert_string_equal(f->hist.payloads[0], want);
    read_h(f, "job:1", 5, 100, "r", 10, 60);
    run_once(f);
    assert_int_equal(f->hist.n, 0);
    assert_int_equal(f->hist.top, 5);
    read_h(f, "job:1", 0, 0, "r", 10, 60);
    run_once(f);
    assert_int_equal(f->hist.n, 0);
    assert_int_equal(f->hist.first, 1);
    assert_int_equal(f->bus->stats.history_reads, 5);
    assert_int_equal(f->bus->stats.publishes, 5);
}

static int publish_batch(fixture *f, const char *channel, const char *const *texts, size_t n,
                         const char *tag)
{
    ps_history_policy p = {10, 60};
    ps_payload msgs[8];
    size_t i;
    int rc;

    assert_true(n <= 8);
    for (i = 0; i < n; i++)
        msgs[i] = (ps_payload){texts[i], strlen(texts[i])};
    f->in_publish = 1;
    rc = ps_bus_publish_batch(f->bus, channel, msgs, n, &p, on_published, (void *)tag);
    f->in_publish = 0;
    return rc;
}

/* A batch: consecutive offsets, each message delivered and stored as if
 * published alone, one outcome naming the first offset; a publish queued
 * after it continues the offsets. A stop from on_message ends the batch. */
static void history_batch(void **state)
{
    fixture *f = *state;
    const char *texts[] = {"{\"data\":1}", "{\"data\":2}", "{\"data\":3}"};
    char want[128], log[1024] = "";
    int i;

    ps_bus_subscribe(f->bus, "job:1");
    run_once(f);
    f->log[0] = '\0';
    assert_int_equal(publish_batch(f, "job:1", texts, 3, "b"), PS_OK);
    assert_int_equal(publish_h(f, "job:1", "{\"data\":4}", "p", 10, 60), PS_OK);
    run_once(f);
    for (i = 1; i <= 3; i++) {
        stored_text(want, sizeof(want), i, i, f->epoch);
        snprintf(log + strlen(log), sizeof(log) - strlen(log), "Mjob:1=%s;", want);
    }
    stored_text(want, sizeof(want), 4, 4, f->epoch);
    snprintf(log + strlen(log), sizeof(log) - strlen(log), "Pb:0@1;Mjob:1=%s;Pp:0@4;", want);
    assert_string_equal(f->log, log);
    assert_int_equal(f->bus->stats.publishes, 4);
    read_h(f, "job:1", 0, 100, "r", 10, 60);
    run_once(f);
    assert_int_equal(f->hist.n, 4);
    assert_int_equal(f->hist.offsets[3], 4);

    assert_int_equal(publish_batch(f, "job:1", texts, 0, "e"), PS_EINVAL);
    assert_int_equal(ps_bus_publish_batch(f->bus, "job:1", NULL, 1, NULL, NULL, NULL), PS_EINVAL);
    f->log[0] = '\0';
    f->stop_on_message = 1;
    assert_int_equal(publish_batch(f, "job:1", texts, 3, "s"), PS_OK);
    run_once(f);
    stored_text(want, sizeof(want), 1, 5, f->epoch);
    snprintf(log, sizeof(log), "Mjob:1=%s;Ps:-4;", want);
    assert_string_equal(f->log, log);
}

static void history_trimmed_to_size(void **state)
{
    fixture *f = *state;
    char payload[32];
    int i;

    for (i = 1; i <= 7; i++) {
        snprintf(payload, sizeof(payload), "{\"data\":%d}", i);
        publish_h(f, "job:1", payload, "p", 3, 60);
    }
    read_h(f, "job:1", 0, 100, "r", 3, 60);
    run_once(f);
    assert_int_equal(f->hist.top, 7);
    assert_int_equal(f->hist.first, 5);
    assert_int_equal(f->hist.n, 3);
    assert_int_equal(f->hist.offsets[0], 5);
    assert_int_equal(f->hist.offsets[2], 7);
    /* A smaller size applies at the next publish. */
    publish_h(f, "job:1", "{\"data\":8}", "p", 1, 60);
    read_h(f, "job:1", 0, 100, "r", 1, 60);
    run_once(f);
    assert_int_equal(f->hist.first, 8);
    assert_int_equal(f->hist.n, 1);
}

/* A read on a channel with no history creates the epoch the next publish
 * uses, and sees exactly the publishes asked for before it. */
static void read_creates_epoch_and_sees_earlier_publishes(void **state)
{
    fixture *f = *state;
    char epoch[PS_EPOCH_MAX + 1];

    subscribe(f, "c");
    run_once(f);
    read_h(f, "c", 0, 10, "r", 10, 60);
    run_once(f);
    assert_int_equal(f->hist.top, 0);
    assert_int_equal(f->hist.first, 0);
    assert_int_equal(f->hist.n, 0);
    assert_int_equal(strlen(f->hist.epoch), 16);
    snprintf(epoch, sizeof(epoch), "%s", f->hist.epoch);

    f->log[0] = '\0';
    publish_h(f, "c", "{\"data\":1}", "a", 10, 60);
    read_h(f, "c", 0, 10, "r", 10, 60);
    publish_h(f, "c", "{\"data\":2}", "b", 10, 60);
    run_once(f);
    assert_string_equal(f->epoch, epoch);
    assert_int_equal(f->hist.top, 1);
    assert_int_equal(f->hist.n, 1);
    assert_non_null(strstr(f->log, "Pa:0@1;Hr:0;Mc="));
    assert_non_null(strstr(f->log, "Pb:0@2;"));
}

static void payload_shapes(void **state)
{
    fixture *f = *state;
    ps_history_policy p = {10, 60}, no_ttl = {10, 0}, off = {0, 0};
    char want[128];

    subscribe(f, "s");
    run_once(f);
    /* An empty object gets no comma; blanks around are kept or dropped. */
    publish_h(f, "s", "{}", "a", 10, 60);
    run_once(f);
    snprintf(want, sizeof(want), "{\"offset\":1,\"epoch\":\"%s\"}", f->epoch);
    assert_string_equal(f->last_message, want);
    publish_h(f, "s", " { \n} \n", "b", 10, 60);
    run_once(f);
    snprintf(want, sizeof(want), " { \n\"offset\":2,\"epoch\":\"%s\"}", f->epoch);
    assert_string_equal(f->last_message, want);
    publish_h(f, "s", "{\"data\":{\"a\":[1,{}]}}\t", "c", 10, 60);
    run_once(f);
    snprintf(want, sizeof(want), "{\"data\":{\"a\":[1,{}]},\"offset\":3,\"epoch\":\"%s\"}",
             f->epoch);
    assert_string_equal(f->last_message, want);

    /* Not an object: refused at once. */
    assert_int_equal(publish_h(f, "s", "[1]", "x", 10, 60), PS_EINVAL);
    assert_int_equal(publish_h(f, "s", "", "x", 10, 60), PS_EINVAL);
    assert_int_equal(publish_h(f, "s", "{", "x", 10, 60), PS_EINVAL);
    assert_int_equal(publish_h(f, "s", "}", "x", 10, 60), PS_EINVAL);
    assert_int_equal(publish_h(f, "s", "{\"data\":1}x", "x", 10, 60), PS_EINVAL);
    /* History without a TTL, reads without history or callback. */
    assert_int_equal(ps_bus_publish(f->bus, "s", "{}", 2, &no_ttl, NULL, NULL), PS_EINVAL);
    assert_int_equal(ps_bus_history(f->bus, "s", 0, 1, NULL, on_history, "x"), PS_EINVAL);
    assert_int_equal(ps_bus_history(f->bus, "s", 0, 1, &off, on_history, "x"), PS_EINVAL);
    assert_int_equal(ps_bus_history(f->bus, "s", 0, 1, &no_ttl, on_history, "x"), PS_EINVAL);
    assert_int_equal(ps_bus_history(f->bus, "s", 0, 1, &p, NULL, NULL), PS_EINVAL);
    assert_int_equal(ps_bus_history(f->bus, "bad name", 0, 1, &p, on_history, "x"), PS_EINVAL);
    /* size 0 is a plain publish: any payload, no offset. */
    f->log[0] = '\0';
    assert_int_equal(ps_bus_publish(f->bus, "s", "raw", 3, &off, on_published, "d"), PS_OK);
    run_once(f);
    assert_string_equal(f->log, "Ms=raw;Pd:0;");
    run_once(f);
    assert_int_equal(f->reads, 0);
}

static void on_timer(uv_timer_t *t)
{
}

/* Sleeps ms on the loop, so that uv_now moves. */
static void loop_sleep(fixture *f, uint64_t ms)
{
    uv_timer_t t;

    uv_timer_init(&f->loop, &t);
    uv_timer_start(&t, on_timer, ms, 0);
    uv_run(&f->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void history_expires(void **state)
{
    fixture *f = *state;
    char epoch[PS_EPOCH_MAX + 1];

    publish_h(f, "e", "{\"data\":1}", "a", 10, 1);
    publish_h(f, "e", "{\"data\":2}", "b", 10, 1);
    run_once(f);
    assert_non_null(strstr(f->log, "Pb:0@2;"));
    snprintf(epoch, sizeof(epoch), "%s", f->epoch);
    loop_sleep(f, 500);
    publish_h(f, "e", "{\"data\":3}", "c", 10, 1); /* refreshes the TTL */
    run_once(f);
    assert_non_null(strstr(f->log, "Pc:0@3;"));
    loop_sleep(f, 700);
    read_h(f, "e", 0, 10, "r", 10, 1);
    run_once(f);
    assert_int_equal(f->hist.top, 3); /* 1.2 s after the first, 0.7 s after the last */
    assert_string_equal(f->hist.epoch, epoch);
    loop_sleep(f, 1100);
    /* Gone: a new epoch, offsets from 1 again. */
    publish_h(f, "e", "{\"data\":4}", "d", 10, 1);
    run_once(f);
    assert_non_null(strstr(f->log, "Pd:0@1;"));
    assert_string_not_equal(f->epoch, epoch);
    read_h(f, "e", 0, 10, "r", 10, 1);
    run_once(f);
    assert_int_equal(f->hist.first, 1);
    assert_int_equal(f->hist.n, 1);
}

static void stop_completes_reads(void **state)
{
    fixture *f = *state;

    run_once(f);
    f->log[0] = '\0';
    publish_h(f, "j", "{}", "a", 10, 60);
    read_h(f, "j", 0, 10, "r", 10, 60);
    ps_bus_stop(f->bus);
    assert_string_equal(f->log, "Pa:-4;Hr:-4;");
    assert_int_equal(read_h(f, "j", 0, 10, "r", 10, 60), PS_ECLOSED);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_string_equal(f->log, "Pa:-4;Hr:-4;");
    assert_int_equal(f->bus->stats.history_errors, 1);
}

/* Runs the loop until n reads in all have been answered. */
static void wait_reads(fixture *f, int n)
{
    while (f->reads < n)
        run_once(f);
}

/* Past the channel bound, the least recently written channel goes whole:
 * used again, it has a new epoch. */
static void channels_bounded(void **state)
{
    fixture *f = *state;
    char name[32], first_epoch[PS_EPOCH_MAX + 1], last_epoch[PS_EPOCH_MAX + 1];
    int i, n = 0;

    read_h(f, "keep:0", 0, 1, "r", 10, 60);
    wait_reads(f, ++n);
    snprintf(first_epoch, sizeof(first_epoch), "%s", f->hist.epoch);
    for (i = 0; i < 65536; i++) {
        snprintf(name, sizeof(name), "other:%d", i);
        assert_int_equal(read_h(f, name, 0, 1, "r", 10, 60), PS_OK);
        if (++n % 8192 == 0)
            wait_reads(f, n);
    }
    wait_reads(f, n);
    snprintf(last_epoch, sizeof(last_epoch), "%s", f->hist.epoch);
    read_h(f, "other:65535", 0, 1, "r", 10, 60);
    wait_reads(f, ++n);
    assert_string_equal(f->hist.epoch, last_epoch); /* the newest stays */
    read_h(f, "keep:0", 0, 1, "r", 10, 60);
    wait_reads(f, ++n);
    assert_string_not_equal(f->hist.epoch, first_epoch);
}

/* One channel alone over the byte bound keeps only its newest messages. */
static void bytes_bounded(void **state)
{
    fixture *f = *state;
    size_t len = 1000 * 1000;
    char *payload = malloc(len + 1);
    int i;

    assert_non_null(payload);
    memset(payload, ' ', len);
    memcpy(payload, "{\"data\":1", 9);
    payload[len - 1] = '}';
    payload[len] = '\0';
    for (i = 0; i < 80; i++) {
        ps_history_policy p = {1000, 60};
        assert_int_equal(ps_bus_publish(f->bus, "big", payload, len, &p, NULL, NULL), PS_OK);
        run_once(f);
    }
    free(payload);
    read_h(f, "big", 0, 0, "r", 1000, 60);
    wait_reads(f, 1);
    assert_int_equal(f->hist.top, 80);
    assert_true(f->hist.first > 1);
    assert_true(f->hist.first < 80);
}

static void destroy_before_the_loop_ran(void **state)
{
    uv_loop_t loop;
    ps_bus_callbacks cb = {on_message, NULL, NULL, NULL};
    ps_bus *b;

    assert_int_equal(uv_loop_init(&loop), 0);
    b = ps_inproc_bus_new(&loop, &cb);
    assert_non_null(b);
    assert_int_equal(ps_bus_publish(b, "job:1", "x", 1, NULL, NULL, NULL), PS_OK);
    ps_bus_destroy(b); /* the last free waits for the close callback */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    ps_bus_destroy(NULL);
    assert_null(ps_inproc_bus_new(&loop, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(state_up_from_the_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(delivered_on_a_later_iteration, setup, teardown),
        cmocka_unit_test_setup_teardown(only_subscribed_channels, setup, teardown),
        cmocka_unit_test_setup_teardown(order_is_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(publish_from_a_callback_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_completes_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_from_on_message, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_publishes, setup, teardown),
        cmocka_unit_test_setup_teardown(subscribed_from_the_loop, setup, teardown),
        cmocka_unit_test_setup_teardown(confirmed_past_the_queue_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(history_offsets_and_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(history_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(history_trimmed_to_size, setup, teardown),
        cmocka_unit_test_setup_teardown(read_creates_epoch_and_sees_earlier_publishes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(payload_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(history_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_completes_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(channels_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(bytes_bounded, setup, teardown),
        cmocka_unit_test(destroy_before_the_loop_ran),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
