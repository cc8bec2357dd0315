/*
 * worker: one process's share of the bench connections.
 *
 * A worker connects its connections at its share of the connect rate,
 * authenticates each with a token of its own (sub bench-<i>), subscribes it,
 * reports READY to the coordinator, then checks every message it receives:
 * run id, channel, sequence number (lost, duplicate, reordered) and latency
 * from the publish timestamp. It reports PROGRESS as counts change and FINAL
 * when told to stop, then exits.
 */
#ifndef BENCH_WORKER_H
#define BENCH_WORKER_H

#include <stdint.h>

#include "bench.h"

/* Runs connections [first, first + n) until the coordinator says stop (a
 * byte on ctl_fd) or goes away (EOF). Records go to report_fd. Returns the
 * process exit code. */
int bench_worker_main(const bench_config *cfg, uint32_t first, uint32_t n, uint32_t nprocs,
                      int report_fd, int ctl_fd);

#endif
