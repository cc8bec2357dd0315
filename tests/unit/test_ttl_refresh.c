/*
 * Unit tests of the TTL refresh table (pubsub/src/ttl_refresh.c), on
 * explicit times.
 *
 * What a backend would notice if it were wrong: history that expires
 * while its channel is still in use (a refresh skipped when one was due),
 * or a gateway that refreshes on every publish (the cost the table exists
 * to save), or one whose memory grows with every channel it ever touched.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>

#include "bus_internal.h"

/* ttl 3600 s: slack 60 s (the longest); ttl 16 s: slack 1 s. */
static void due_until_refreshed_then_after_the_slack(void **state)
{
    ps__refresh r;

    (void)state;
    ps__refresh_init(&r, 100);
    assert_true(ps__refresh_due(&r, "job:1", 16, 1000));
    /* Asked, not answered: still due (a failed script refreshed nothing). */
    assert_true(ps__refresh_due(&r, "job:1", 16, 1001));
    ps__refresh_done(&r, "job:1", 16, 1000);
    assert_false(ps__refresh_due(&r, "job:1", 16, 1000));
    assert_false(ps__refresh_due(&r, "job:1", 16, 1999));
    assert_true(ps__refresh_due(&r, "job:1", 16, 2000));
    /* Another channel is its own. */
    assert_true(ps__refresh_due(&r, "job:2", 16, 1500));
    ps__refresh_done(&r, "job:2", 3600, 1500);
    assert_false(ps__refresh_due(&r, "job:2", 3600, 61499));
    assert_true(ps__refresh_due(&r, "job:2", 3600, 61500));
    ps__refresh_clear(&r);
}

/* Under another ttl (a policy changed) the keys must be set again at once. */
static void another_ttl_is_due(void **state)
{
    ps__refresh r;

    (void)state;
    ps__refresh_init(&r, 100);
    ps__refresh_done(&r, "chat:1", 3600, 0);
    assert_false(ps__refresh_due(&r, "chat:1", 3600, 10));
    assert_true(ps__refresh_due(&r, "chat:1", 16, 10));
    assert_true(ps__refresh_due(&r, "chat:1", 86400, 10));
    ps__refresh_done(&r, "chat:1", 16, 10);
    assert_false(ps__refresh_due(&r, "chat:1", 16, 20));
    assert_int_equal(ps__refresh_count(&r), 1);
    ps__refresh_clear(&r);
}

/* Under 16 s of ttl the slack is 0: every publish refreshes. */
static void short_ttl_always_due(void **state)
{
    ps__refresh r;

    (void)state;
    ps__refresh_init(&r, 100);
    ps__refresh_done(&r, "job:1", 15, 5000);
    assert_true(ps__refresh_due(&r, "job:1", 15, 5000));
    ps__refresh_clear(&r);
}

/* Entries a minute old can spare nothing and go; a later refresh moves a
 * channel to the young end, so it stays. */
static void old_entries_go(void **state)
{
    ps__refresh r;
    char name[32];
    int i;

    (void)state;
    ps__refresh_init(&r, 1000);
    for (i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "user:%d", i);
        ps__refresh_done(&r, name, 3600, (uint64_t)i * 1000);
    }
    ps__refresh_done(&r, "user:0", 3600, 30000);
    assert_int_equal(ps__refresh_count(&r), 10);
    assert_false(ps__refresh_due(&r, "user:9", 3600, 65000)); /* prunes user:1..5 */
    assert_int_equal(ps__refresh_count(&r), 5);
    assert_false(ps__refresh_due(&r, "user:0", 3600, 65000));
    assert_true(ps__refresh_due(&r, "nobody", 3600, 200000));
    assert_int_equal(ps__refresh_count(&r), 0);
    ps__refresh_clear(&r);
}

/* At most max entries: the least recently refreshed make room. */
static void bounded(void **state)
{
    ps__refresh r;
    char name[32];
    int i;

    (void)state;
    ps__refresh_init(&r, 3);
    for (i = 0; i < 5; i++) {
        snprintf(name, sizeof(name), "job:%d", i);
        ps__refresh_done(&r, name, 3600, 100 + (uint64_t)i);
    }
    assert_int_equal(ps__refresh_count(&r), 3);
    assert_true(ps__refresh_due(&r, "job:0", 3600, 200));
    assert_true(ps__refresh_due(&r, "job:1", 3600, 200));
    assert_false(ps__refresh_due(&r, "job:2", 3600, 200));
    assert_false(ps__refresh_due(&r, "job:4", 3600, 200));
    ps__refresh_clear(&r);
    assert_int_equal(ps__refresh_count(&r), 0);
    assert_true(ps__refresh_due(&r, "job:4", 3600, 200));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(due_until_refreshed_then_after_the_slack),
        cmocka_unit_test(another_ttl_is_due),
        cmocka_unit_test(short_ttl_always_due),
        cmocka_unit_test(old_entries_go),
        cmocka_unit_test(bounded),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
