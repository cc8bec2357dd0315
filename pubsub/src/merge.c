/*
 * ps_merge: how one subscriber's stored and live messages become a single
 * sequence with no duplicate and, when possible, no gap.
 *
 * While a subscriber's history read is in flight, live messages of the
 * channel keep arriving; some were published before the read's snapshot
 * (they are in both lists), some after (only live), and the two links give
 * no order between the lists. Merging by offset puts that right. The stored
 * copy wins a tie because it is exactly what the stream holds; the live copy
 * of the same offset is the same text, but the caller may have built
 * something different from it (a frame).
 *
 * Pure: no bus, no allocation. Sorting is qsort; both lists are short (the
 * recovery limit and what arrived during one round trip).
 */
#include <stdlib.h>

#include "pubsub/pubsub.h"

static int by_offset(const void *a, const void *b)
{
    int64_t x = ((const ps_merge_item *)a)->offset, y = ((const ps_merge_item *)b)->offset;

    return (x > y) - (x < y);
}

/* Skips the items of v (sorted) with offset <= since. */
static size_t first_after(const ps_merge_item *v, size_t n, int64_t since)
{
    size_t i = 0;

    while (i < n && v[i].offset <= since)
        i++;
    return i;
}

size_t ps_merge(int64_t since, ps_merge_item *stored, size_t n_stored, ps_merge_item *live,
                size_t n_live, ps_merge_item *out, int *gap)
{
    size_t i, j, n = 0;
    /* The last offset accounted for. Offsets start at 1, so a negative
     * since (no position at all) means "from the beginning". */
    int64_t last = since < 0 ? 0 : since;

    if (n_stored > 1)
        qsort(stored, n_stored, sizeof(*stored), by_offset);
    if (n_live > 1)
        qsort(live, n_live, sizeof(*live), by_offset);
    i = first_after(stored, n_stored, since);
    j = first_after(live, n_live, since);
    *gap = 0;
    while (i < n_stored || j < n_live) {
        int take_stored = j >= n_live || (i < n_stored && stored[i].offset <= live[j].offset);
        const ps_merge_item *it = take_stored ? &stored[i++] : &live[j++];
        if (n > 0 && it->offset == out[n - 1].offset)
            continue; /* a duplicate: the first copy, stored if any, stays */
        /* offset - 1 cannot overflow: offset > since >= INT64_MIN. */
        if (it->offset - 1 > last)
            *gap = 1;
        last = it->offset;
        out[n++] = *it;
    }
    return n;
}
