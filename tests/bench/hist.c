/*
 * hist: log-linear bucketing of latencies; see hist.h for the layout and its
 * error bound.
 */
#include "hist.h"

#include <string.h>

#define HIST_VMAX ((UINT64_C(1) << (HIST_MAX_SHIFT + HIST_SUB_BITS + 1)) - 1)

static unsigned bucket_of(uint64_t v)
{
    unsigned msb, shift;
    if (v < 2 * HIST_SUB)
        return (unsigned)v;
    if (v > HIST_VMAX)
        v = HIST_VMAX;
    msb = 63u - (unsigned)__builtin_clzll(v);
    shift = msb - HIST_SUB_BITS;
    /* v >> shift is in [SUB, 2*SUB): the 64 linear steps of this octave. */
    return shift * HIST_SUB + (unsigned)(v >> shift);
}

/* The largest value that falls in bucket i. */
static uint64_t bucket_top(unsigned i)
{
    unsigned shift;
    uint64_t m;
    if (i < 2 * HIST_SUB)
        return i;
    shift = i / HIST_SUB - 1;
    m = i - (uint64_t)shift * HIST_SUB;
    return ((m + 1) << shift) - 1;
}

void hist_init(bench_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

void hist_add(bench_hist *h, uint64_t v)
{
    h->b[bucket_of(v)]++;
    h->count++;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void hist_merge(bench_hist *dst, const bench_hist *src)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t hist_quantile(const bench_hist *h, double q)
{
    uint64_t rank, seen = 0;
    if (h->count == 0)
        return 0;
    if (q <= 0)
        return h->min;
    if (q >= 1)
        return h->max;
    rank = (uint64_t)(q * (double)h->count + 0.999999);
    if (rank == 0)
        rank = 1;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t top = bucket_top(i);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}
