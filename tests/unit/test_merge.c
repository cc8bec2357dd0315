/*
 * Unit tests of ps_merge (pubsub/src/merge.c).
 *
 * What a subscriber recovering with `since` would notice: it gets every
 * message after since exactly once, in offset order, whatever order the
 * stored and the live copies came in; it never gets one it already had; a
 * stored copy is preferred to the live copy of the same message; and when
 * something between since and the last message is missing, it is told (the
 * gap flag), so that it reloads instead of silently missing a message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "pubsub/pubsub.h"

/* Tags for the item pointers: which list a written item came from. */
static char stored_tag[64], live_tag[64];

#define S(o) ((ps_merge_item){(o), &stored_tag[(o) % 64]})
#define L(o) ((ps_merge_item){(o), &live_tag[(o) % 64]})

static int from_stored(const ps_merge_item *it)
{
    return (char *)it->item >= stored_tag && (char *)it->item < stored_tag + 64;
}

/* Checks out[0..n) is exactly the offsets want[0..nw). */
static void assert_offsets(const ps_merge_item *out, size_t n, const int64_t *want, size_t nw)
{
    size_t i;

    assert_int_equal(n, nw);
    for (i = 0; i < n; i++)
        assert_int_equal(out[i].offset, want[i]);
}

static void in_order_without_duplicates(void **state)
{
    ps_merge_item stored[] = {S(7), S(5), S(6)}, live[] = {L(9), L(6), L(8), L(7)};
    ps_merge_item out[7];
    const int64_t want[] = {5, 6, 7, 8, 9};
    int gap = -1;
    size_t n = ps_merge(4, stored, 3, live, 4, out, &gap);

    assert_offsets(out, n, want, 5);
    assert_int_equal(gap, 0);
    /* 5..7 were stored: the stored copies; 8, 9 only live. */
    assert_true(from_stored(&out[0]) && from_stored(&out[1]) && from_stored(&out[2]));
    assert_false(from_stored(&out[3]) || from_stored(&out[4]));
    /* Both inputs were sorted in place. */
    assert_int_equal(stored[0].offset, 5);
    assert_int_equal(live[0].offset, 6);
    assert_int_equal(live[3].offset, 9);
}

static void shuffled_inputs(void **state)
{
    enum { N = 200 };
    ps_merge_item stored[N], live[N], out[2 * N];
    int64_t want[N];
    size_t i, n, ns = 0, nl = 0;
    int gap = -1, round;

    srand(42);
    for (round = 0; round < 50; round++) {
        ns = nl = 0;
        /* 1..N: each in stored, live or both, then both lists shuffled. */
        for (i = 0; i < N; i++) {
            int where = rand() % 3;
            if (where != 1)
                stored[ns++] = S((int64_t)i + 1);
            if (where != 0)
                live[nl++] = L((int64_t)i + 1);
            want[i] = (int64_t)i + 1;
        }
        for (i = ns; i > 1; i--) {
            size_t j = (size_t)rand() % i;
            ps_merge_item t = stored[i - 1];
            stored[i - 1] = stored[j];
            stored[j] = t;
        }
        for (i = nl; i > 1; i--) {
            size_t j = (size_t)rand() % i;
            ps_merge_item t = live[i - 1];
            live[i - 1] = live[j];
            live[j] = t;
        }
        n = ps_merge(0, stored, ns, live, nl, out, &gap);
        assert_offsets(out, n, want, N);
        assert_int_equal(gap, 0);
    }
}

static void duplicates_within_and_across(void **state)
{
    ps_merge_item stored[] = {S(3), S(2), S(3), S(2)}, live[] = {L(4), L(3), L(4), L(2), L(4)};
    ps_merge_item out[9];
    const int64_t want[] = {2, 3, 4};
    int gap = -1;
    size_t n = ps_merge(1, stored, 4, live, 5, out, &gap);

    assert_offsets(out, n, want, 3);
    assert_int_equal(gap, 0);
    assert_true(from_stored(&out[0]));
    assert_true(from_stored(&out[1]));
    assert_false(from_stored(&out[2]));
}

static void stored_copy_wins(void **state)
{
    int a, b;
    ps_merge_item stored[] = {{10, &a}}, live[] = {{10, &b}};
    ps_merge_item out[2];
    int gap = -1;

    assert_int_equal(ps_merge(9, stored, 1, live, 1, out, &gap), 1);
    assert_ptr_equal(out[0].item, &a);
    assert_int_equal(gap, 0);
}

/* The tie is decided by the list, not by the order items come in. */
static void stored_copy_wins_among_many(void **state)
{
    int a, b, c;
    ps_merge_item stored[] = {{10, &a}}, live[] = {{10, &b}, {9, &c}, {10, &b}};
    ps_merge_item out[4];
    int gap = -1;

    assert_int_equal(ps_merge(8, stored, 1, live, 3, out, &gap), 2);
    assert_ptr_equal(out[0].item, &c);
    assert_ptr_equal(out[1].item, &a);
    assert_int_equal(gap, 0);
}

static void at_or_below_since_dropped(void **state)
{
    ps_merge_item stored[] = {S(1), S(5), S(3), S(4)}, live[] = {L(2), L(5), L(6), L(1)};
    ps_merge_item out[8];
    const int64_t want[] = {6};
    int gap = -1;
    size_t n;

    n = ps_merge(5, stored, 4, live, 4, out, &gap);
    assert_offsets(out, n, want, 1);
    assert_int_equal(gap, 0);
    /* Everything already had: nothing, and no gap. */
    n = ps_merge(6, stored, 4, live, 4, out, &gap);
    assert_int_equal(n, 0);
    assert_int_equal(gap, 0);
    n = ps_merge(100, stored, 4, live, 4, out, &gap);
    assert_int_equal(n, 0);
    assert_int_equal(gap, 0);
}

static void gaps_are_flagged(void **state)
{
    ps_merge_item out[8];
    int gap = -1;
    size_t n;

    {
        /* 7 missing in the middle. */
        ps_merge_item stored[] = {S(6), S(5)}, live[] = {L(9), L(8)};
        const int64_t want[] = {5, 6, 8, 9};
        n = ps_merge(4, stored, 2, live, 2, out, &gap);
        assert_offsets(out, n, want, 4);
        assert_int_equal(gap, 1);
    }
    {
        /* since + 1 missing (history trimmed past since). */
        ps_merge_item stored[] = {S(12), S(11)};
        const int64_t want[] = {11, 12};
        n = ps_merge(9, stored, 2, NULL, 0, out, &gap);
        assert_offsets(out, n, want, 2);
        assert_int_equal(gap, 1);
    }
    {
        /* Only live, contiguous from since + 1. */
        ps_merge_item live[] = {L(3), L(2)};
        const int64_t want[] = {2, 3};
        n = ps_merge(1, NULL, 0, live, 2, out, &gap);
        assert_offsets(out, n, want, 2);
        assert_int_equal(gap, 0);
    }
    {
        /* No position at all (since < 0): offsets start at 1. */
        ps_merge_item stored[] = {S(2), S(1)}, live[] = {L(4)};
        const int64_t want[] = {1, 2, 4};
        n = ps_merge(-1, stored, 2, live, 1, out, &gap);
        assert_offsets(out, n, want, 3);
        assert_int_equal(gap, 1);
    }
}

static void empty_inputs(void **state)
{
    ps_merge_item out[1];
    ps_merge_item one[] = {S(1)};
    int gap = -1;

    assert_int_equal(ps_merge(0, NULL, 0, NULL, 0, out, &gap), 0);
    assert_int_equal(gap, 0);
    gap = -1;
    assert_int_equal(ps_merge(0, one, 1, NULL, 0, out, &gap), 1);
    assert_int_equal(out[0].offset, 1);
    assert_int_equal(gap, 0);
    assert_int_equal(ps_merge(0, NULL, 0, one, 1, out, &gap), 1);
    assert_int_equal(gap, 0);
}

static void extreme_offsets(void **state)
{
    ps_merge_item stored[] = {S(INT64_MAX), S(INT64_MAX - 1)};
    ps_merge_item out[2];
    int gap = -1;

    assert_int_equal(ps_merge(INT64_MAX - 2, stored, 2, NULL, 0, out, &gap), 2);
    assert_int_equal(gap, 0);
    assert_int_equal(out[1].offset, INT64_MAX);
    assert_int_equal(ps_merge(INT64_MAX, stored, 2, NULL, 0, out, &gap), 0);
    assert_int_equal(gap, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(in_order_without_duplicates),
        cmocka_unit_test(shuffled_inputs),
        cmocka_unit_test(duplicates_within_and_across),
        cmocka_unit_test(stored_copy_wins),
        cmocka_unit_test(stored_copy_wins_among_many),
        cmocka_unit_test(at_or_below_since_dropped),
        cmocka_unit_test(gaps_are_flagged),
        cmocka_unit_test(empty_inputs),
        cmocka_unit_test(extreme_offsets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
