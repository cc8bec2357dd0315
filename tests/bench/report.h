/*
 * report: the outcome of a run, as a table for people and JSON for scripts.
 *
 * The coordinator fills a bench_result from the workers' records and the
 * publisher's counters; this file only derives rates and verdicts and
 * prints. The verdict is the exit code: tests assert on it.
 */
#ifndef BENCH_REPORT_H
#define BENCH_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "bench.h"
#include "hist.h"
#include "ipc.h"

typedef struct bench_result {
    /* connect phase */
    uint32_t attempted;
    uint32_t ready;
    bench_fails fails;
    uint32_t crashed_workers;
    uint32_t lost_to_crashes;     /* connections of workers that died */
    double connect_seconds;       /* first connect to last ready */
    char example_error[160];
    bench_hist connect;

    /* publish phase */
    uint64_t sent;
    uint64_t acked;
    uint64_t pub_errors;
    uint64_t zero_receivers;
    char pub_error[160];
    double publish_seconds;       /* first to last publish */
    double delivery_seconds;      /* first publish to last delivery */
    int interrupted;
    int stalled;                  /* closed loop: deliveries stopped coming */

    /* deliveries, summed over workers */
    uint64_t expected;
    bench_final f;                /* counters and histograms, merged */

    /* idle mode and memory */
    uint64_t gw_rss_before_kb;
    uint64_t gw_rss_after_kb;
    uint64_t bench_rss_kb;        /* all workers */
    /* CPU time used while publishing (--pid: the server; the bench's
     * workers), in seconds; negative when unknown. */
    double gw_cpu_s;
    double bench_cpu_s;
} bench_result;

/* Lost deliveries: expected but never received. */
uint64_t bench_result_lost(const bench_result *r);

/* 0 when every connection got ready and stayed, and every expected message
 * arrived exactly once, in order, at the right connection; 1 otherwise. */
int bench_result_exit_code(const bench_result *r, const bench_config *cfg);

void bench_report_table(FILE *out, const bench_result *r, const bench_config *cfg);

/* Writes the JSON report to path ("-": stdout). Returns 0 or -1. */
int bench_report_json(const char *path, const bench_result *r, const bench_config *cfg);

#endif
