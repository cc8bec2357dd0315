/*
 * hist: a fixed-size log-linear latency histogram (the HDR histogram idea).
 *
 * Every receiver records one latency per delivery, hundreds of thousands per
 * second, so recording must cost a few instructions and never allocate. Values
 * below 128 land in exact buckets; above that each power of two is cut into 64
 * equal buckets, which bounds the relative error of a quantile by 1/64 (1.6%).
 * The struct is plain data: worker processes send it to the coordinator over a
 * pipe as is, and the coordinator adds them up.
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 6                        /* 64 buckets per power of two */
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_MAX_SHIFT 34                      /* values clamp at 2^41 ns (36 min) */
#define HIST_BUCKETS ((HIST_MAX_SHIFT + 2) * HIST_SUB)

typedef struct bench_hist {
    uint64_t count;
    uint64_t sum;                              /* for the mean; 2^64 ns is 584 years */
    uint64_t min;
    uint64_t max;                              /* exact, not bucketed */
    uint64_t b[HIST_BUCKETS];
} bench_hist;

void hist_init(bench_hist *h);
void hist_add(bench_hist *h, uint64_t v);
void hist_merge(bench_hist *dst, const bench_hist *src);

/* The smallest recorded value v such that a fraction q (0..1) of the values is
 * <= v, reported as the upper edge of v's bucket and never above the exact
 * maximum. Returns 0 for an empty histogram. */
uint64_t hist_quantile(const bench_hist *h, double q);

#endif
