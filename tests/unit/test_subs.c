/*
 * Unit tests of the subscription table (pubsub/src/subscriptions.c).
 *
 * The table decides two things a user notices: who receives a message on a
 * channel (exactly its holders, each once), and when the process subscribes
 * and unsubscribes on the bus (first holder in, last holder out). It also
 * keeps the caller's per-subscription and per-channel data, and hands each
 * back exactly once when it is removed, so that the gateway frees it once.
 * Subscribers are fake connections: addresses of array elements.
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

static int conns[5000]; /* their addresses are the subscribers */
#define A (&conns[0])
#define B (&conns[1])
#define C (&conns[2])

static int setup(void **state)
{
    *state = ps_subs_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    ps_subs_free(*state);
    return 0;
}

/* Records what a callback was called with. */
struct seen {
    int n;
    char names[16][64];
    void *subs[16];
    void **slots[16];
    ps_subs_removal removed[16]; /* channel pointers not kept: see names */
};

static void record_channel(void *arg, const char *channel)
{
    struct seen *s = arg;
    assert_true(s->n < 16);
    snprintf(s->names[s->n++], sizeof(s->names[0]), "%s", channel);
}

static void record_removal(void *arg, const ps_subs_removal *r)
{
    struct seen *s = arg;
    assert_true(s->n < 16);
    s->removed[s->n] = *r;
    s->removed[s->n].channel = NULL;
    record_channel(arg, r->channel);
}

static void record_subscriber(void *arg, void *subscriber, void **link_data)
{
    struct seen *s = arg;
    assert_true(s->n < 16);
    s->slots[s->n] = link_data;
    s->subs[s->n++] = subscriber;
}

/* For fan-outs too large to record: checks each visit only. */
static void count_only(void *arg, void *subscriber, void **link_data)
{
    (void)arg;
    assert_non_null(subscriber);
    assert_non_null(link_data);
}

/* The index of name in s, which must be there once. */
static int index_of(const struct seen *s, const char *name)
{
    int i, at = -1;
    for (i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0) {
            assert_int_equal(at, -1);
            at = i;
        }
    assert_true(at >= 0);
    return at;
}

static int seen_name(const struct seen *s, const char *name)
{
    int i, hits = 0;
    for (i = 0; i < s->n; i++)
        hits += strcmp(s->names[i], name) == 0;
    return hits;
}

static int seen_sub(const struct seen *s, const void *sub)
{
    int i, hits = 0;
    for (i = 0; i < s->n; i++)
        hits += s->subs[i] == sub;
    return hits;
}

static void first_and_last(void **state)
{
    ps_subs *s = *state;

    assert_int_equal(ps_subs_add(s, "job:1", A), 1); /* first: subscribe on the bus */
    assert_int_equal(ps_subs_add(s, "job:1", B), 0);
    assert_int_equal(ps_subs_add(s, "job:1", A), PS_EEXISTS);
    assert_int_equal(ps_subs_channel_size(s, "job:1"), 2);
    assert_int_equal(ps_subs_remove(s, "job:1", A, NULL), 0);
    assert_int_equal(ps_subs_remove(s, "job:1", A, NULL), PS_ENOENT);
    assert_int_equal(ps_subs_remove(s, "job:1", B, NULL), 1); /* last: unsubscribe on the bus */
    assert_int_equal(ps_subs_remove(s, "job:1", B, NULL), PS_ENOENT);
    assert_int_equal(ps_subs_channels(s), 0);
    assert_int_equal(ps_subs_count(s, A), 0);
    /* The channel is new again. */
    assert_int_equal(ps_subs_add(s, "job:1", B), 1);
}

static void unknown_names(void **state)
{
    ps_subs *s = *state;

    assert_int_equal(ps_subs_remove(s, "nope", A, NULL), PS_ENOENT);
    assert_int_equal(ps_subs_add(s, "job:1", A), 1);
    assert_int_equal(ps_subs_remove(s, "job:1", B, NULL), PS_ENOENT);
    assert_int_equal(ps_subs_remove(s, "job:2", A, NULL), PS_ENOENT);
    assert_null(ps_subs_link_data(s, "job:1", B));
    assert_null(ps_subs_link_data(s, "job:2", A));
    assert_null(ps_subs_channel_data(s, "job:2"));
    assert_int_equal(ps_subs_has(s, "job:2", A), 0);
    assert_int_equal(ps_subs_has(s, "job:1", B), 0);
    assert_int_equal(ps_subs_has(s, "job:1", A), 1);
    assert_int_equal(ps_subs_channel_size(s, "job:2"), 0);
    assert_int_equal(ps_subs_foreach(s, "job:2", count_only, NULL), 0);
    ps_subs_remove_all(s, B, record_removal, NULL); /* holds nothing: no call */
    assert_int_equal(ps_subs_add(s, NULL, A), PS_EINVAL);
    assert_int_equal(ps_subs_add(s, "x", NULL), PS_EINVAL);
    /* Names are compared whole, not by prefix. */
    assert_int_equal(ps_subs_add(s, "job:10", A), 1);
    assert_int_equal(ps_subs_channel_size(s, "job:1"), 1);
}

static void counts(void **state)
{
    ps_subs *s = *state;

    ps_subs_add(s, "a", A);
    ps_subs_add(s, "b", A);
    ps_subs_add(s, "c", A);
    ps_subs_add(s, "a", B);
    assert_int_equal(ps_subs_count(s, A), 3);
    assert_int_equal(ps_subs_count(s, B), 1);
    assert_int_equal(ps_subs_count(s, C), 0);
    assert_int_equal(ps_subs_channels(s), 3);
    assert_int_equal(ps_subs_channel_size(s, "a"), 2);
    ps_subs_remove(s, "b", A, NULL);
    assert_int_equal(ps_subs_count(s, A), 2);
    assert_int_equal(ps_subs_channels(s), 2);
}

static void foreach_visits_each_holder_once(void **state)
{
    ps_subs *s = *state;
    struct seen seen = {0};

    ps_subs_add(s, "chat:x", A);
    ps_subs_add(s, "chat:x", B);
    ps_subs_add(s, "chat:y", C);
    assert_int_equal(ps_subs_foreach(s, "chat:x", record_subscriber, &seen), 2);
    assert_int_equal(seen.n, 2);
    assert_int_equal(seen_sub(&seen, A), 1);
    assert_int_equal(seen_sub(&seen, B), 1);
    assert_int_equal(seen_sub(&seen, C), 0);

    memset(&seen, 0, sizeof(seen));
    ps_subs_foreach_channel(s, record_channel, &seen);
    assert_int_equal(seen.n, 2);
    assert_int_equal(seen_name(&seen, "chat:x"), 1);
    assert_int_equal(seen_name(&seen, "chat:y"), 1);
}

static void held_name(void *arg, const char *channel, void **link_data)
{
    struct seen *seen = arg;
    record_channel(seen, channel);
    *link_data = (void *)channel; /* the slot is the pair's own */
}

/* ps_subs_foreach_of: every channel of one subscriber, with its pair's slot. */
static void foreach_of_one_subscriber(void **state)
{
    ps_subs *s = *state;
    struct seen seen = {0};

    ps_subs_add(s, "chat:x", A);
    ps_subs_add(s, "chat:x", B);
    ps_subs_add(s, "job:1", A);
    ps_subs_add(s, "job:2", B);
    assert_int_equal(ps_subs_foreach_of(s, A, held_name, &seen), 2);
    assert_int_equal(seen.n, 2);
    assert_int_equal(seen_name(&seen, "chat:x"), 1);
    assert_int_equal(seen_name(&seen, "job:1"), 1);
    assert_non_null(*ps_subs_link_data(s, "job:1", A));
    assert_null(*ps_subs_link_data(s, "chat:x", B));
    assert_int_equal(ps_subs_foreach_of(s, C, held_name, &seen), 0);
    ps_subs_remove_all(s, A, NULL, NULL);
    ps_subs_remove_all(s, B, NULL, NULL);
}

static void remove_all_reports_every_channel(void **state)
{
    ps_subs *s = *state;
    struct seen seen = {0};

    ps_subs_add(s, "user:a", A); /* only A */
    ps_subs_add(s, "job:1", A);  /* only A */
    ps_subs_add(s, "chat:x", A); /* A and B */
    ps_subs_add(s, "chat:x", B);
    ps_subs_remove_all(s, A, record_removal, &seen);
    assert_int_equal(seen.n, 3);
    assert_int_equal(seen.removed[index_of(&seen, "user:a")].channel_empty, 1);
    assert_int_equal(seen.removed[index_of(&seen, "job:1")].channel_empty, 1);
    assert_int_equal(seen.removed[index_of(&seen, "chat:x")].channel_empty, 0);
    assert_int_equal(ps_subs_count(s, A), 0);
    assert_int_equal(ps_subs_has(s, "chat:x", A), 0);
    assert_int_equal(ps_subs_channel_size(s, "chat:x"), 1);
    assert_int_equal(ps_subs_channels(s), 1);
    /* A can come back as a fresh subscriber. */
    assert_int_equal(ps_subs_add(s, "user:a", A), 1);
    assert_int_equal(ps_subs_add(s, "chat:x", A), 0);

    /* A NULL callback is allowed. */
    ps_subs_remove_all(s, B, NULL, NULL);
    assert_int_equal(ps_subs_channel_size(s, "chat:x"), 1);
    ps_subs_remove_all(s, A, NULL, NULL);
    assert_int_equal(ps_subs_channels(s), 0);
}

static void remove_all_with_no_channels_left(void **state)
{
    ps_subs *s = *state;
    struct seen seen = {0};

    ps_subs_add(s, "chat:x", A);
    ps_subs_add(s, "chat:x", B);
    ps_subs_remove_all(s, A, record_removal, &seen);
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.removed[0].channel_empty, 0); /* B still holds it: no unsubscribe */
    ps_subs_remove_all(s, B, record_removal, &seen);
    assert_int_equal(seen.n, 2);
    assert_string_equal(seen.names[1], "chat:x");
    assert_int_equal(seen.removed[1].channel_empty, 1);
}

/* 5000 subscribers on a broadcast channel, each with its own user channel
 * and every tenth in a room: the counts and the fan-out stay exact, and
 * removal in both orders leaves an empty table. */
static void many(void **state)
{
    ps_subs *s = *state;
    const size_t n = sizeof(conns) / sizeof(conns[0]);
    char name[32];
    size_t i;

    for (i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "user:%zu", i);
        assert_int_equal(ps_subs_add(s, name, &conns[i]), 1);
        assert_int_equal(ps_subs_add(s, "news:all", &conns[i]), i == 0 ? 1 : 0);
        snprintf(name, sizeof(name), "chat:%zu", i % 10);
        assert_int_equal(ps_subs_add(s, name, &conns[i]), i < 10 ? 1 : 0);
    }
    assert_int_equal(ps_subs_channels(s), n + 1 + 10);
    assert_int_equal(ps_subs_channel_size(s, "news:all"), n);
    assert_int_equal(ps_subs_channel_size(s, "chat:3"), n / 10);
    assert_int_equal(ps_subs_count(s, &conns[77]), 3);
    assert_int_equal(ps_subs_foreach(s, "news:all", count_only, NULL), n);

    for (i = 0; i < n; i += 2) /* even ones one channel at a time */
        assert_int_equal(ps_subs_remove(s, "news:all", &conns[i], NULL), 0);
    for (i = 1; i < n; i += 2) /* odd ones all at once */
        ps_subs_remove_all(s, &conns[i], NULL, NULL);
    assert_int_equal(ps_subs_channel_size(s, "news:all"), 0);
    /* Left: the even user channels and the even rooms (chat:0, 2, 4, 6, 8). */
    assert_int_equal(ps_subs_channels(s), n / 2 + 5);
    for (i = 0; i < n; i += 2)
        ps_subs_remove_all(s, &conns[i], NULL, NULL);
    assert_int_equal(ps_subs_channels(s), 0);
}

/* The data slots: NULL when created, one per pair and one per channel,
 * handed to foreach, and reported once by the removal that ends them. */
static void data_slots(void **state)
{
    ps_subs *s = *state;
    struct seen seen = {0};
    ps_subs_removal r;
    int a_x, b_x, a_y, chan_x, chan_y;
    char name[16];

    assert_null(ps_subs_link_data(s, "x", A)); /* nothing held yet */
    assert_null(ps_subs_channel_data(s, "x"));
    ps_subs_add(s, "x", A);
    ps_subs_add(s, "x", B);
    ps_subs_add(s, "y", A);
    assert_null(*ps_subs_link_data(s, "x", A));
    assert_null(*ps_subs_channel_data(s, "x"));
    *ps_subs_link_data(s, "x", A) = &a_x;
    *ps_subs_link_data(s, "x", B) = &b_x;
    *ps_subs_link_data(s, "y", A) = &a_y;
    *ps_subs_channel_data(s, "x") = &chan_x;
    *ps_subs_channel_data(s, "y") = &chan_y;
    assert_ptr_equal(*ps_subs_link_data(s, "x", B), &b_x);
    assert_ptr_equal(*ps_subs_channel_data(s, "y"), &chan_y);

    /* foreach hands out the pair's own slot. */
    assert_int_equal(ps_subs_foreach(s, "x", record_subscriber, &seen), 2);
    assert_ptr_equal(*seen.slots[seen.subs[0] == A ? 0 : 1], &a_x);
    assert_ptr_equal(*seen.slots[seen.subs[0] == A ? 1 : 0], &b_x);
    assert_ptr_equal(seen.slots[0], ps_subs_link_data(s, "x", seen.subs[0]));

    /* B leaves x: its pair's data, not the channel's (A still holds x). */
    memset(&r, 0x5a, sizeof(r));
    snprintf(name, sizeof(name), "x");
    assert_int_equal(ps_subs_remove(s, name, B, &r), 0);
    assert_ptr_equal(r.channel, name); /* the caller's string */
    assert_ptr_equal(r.link_data, &b_x);
    assert_int_equal(r.channel_empty, 0);
    assert_null(r.channel_data);
    assert_ptr_equal(*ps_subs_channel_data(s, "x"), &chan_x); /* untouched */

    /* A closes: both its pairs and both channels' data, once each. */
    memset(&seen, 0, sizeof(seen));
    ps_subs_remove_all(s, A, record_removal, &seen);
    assert_int_equal(seen.n, 2);
    assert_ptr_equal(seen.removed[index_of(&seen, "x")].link_data, &a_x);
    assert_ptr_equal(seen.removed[index_of(&seen, "x")].channel_data, &chan_x);
    assert_ptr_equal(seen.removed[index_of(&seen, "y")].link_data, &a_y);
    assert_ptr_equal(seen.removed[index_of(&seen, "y")].channel_data, &chan_y);
    assert_int_equal(ps_subs_channels(s), 0);

    /* A channel or pair that comes back starts with empty slots. */
    ps_subs_add(s, "x", A);
    assert_null(*ps_subs_link_data(s, "x", A));
    assert_null(*ps_subs_channel_data(s, "x"));
    *ps_subs_channel_data(s, "x") = &chan_x;
    assert_int_equal(ps_subs_remove(s, "x", A, &r), 1);
    assert_int_equal(r.channel_empty, 1);
    assert_null(r.link_data);
    assert_ptr_equal(r.channel_data, &chan_x);
}

static void free_with_entries(void **state)
{
    ps_subs *s = ps_subs_new();

    ps_subs_add(s, "a", A);
    ps_subs_add(s, "b", A);
    ps_subs_add(s, "a", B);
    assert_int_equal(ps_subs_foreach(s, "a", count_only, NULL), 2);
    ps_subs_free(s); /* ASan checks that everything went */
    ps_subs_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(first_and_last, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_names, setup, teardown),
        cmocka_unit_test_setup_teardown(counts, setup, teardown),
        cmocka_unit_test_setup_teardown(foreach_visits_each_holder_once, setup, teardown),
        cmocka_unit_test_setup_teardown(foreach_of_one_subscriber, setup, teardown),
        cmocka_unit_test_setup_teardown(remove_all_reports_every_channel, setup, teardown),
        cmocka_unit_test_setup_teardown(remove_all_with_no_channels_left, setup, teardown),
        cmocka_unit_test_setup_teardown(many, setup, teardown),
        cmocka_unit_test_setup_teardown(data_slots, setup, teardown),
        cmocka_unit_test(free_with_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
