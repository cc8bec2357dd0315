/*
 * jobs: the simulated background jobs of wsgw-demo.
 *
 * A job stands in for the user's real work (a report, an export): it
 * publishes its state on job:<id> through the publisher, in the message
 * convention of docs/backend.md: queued, then running with progress 0, 5,
 * ..., 100, then done; with --fail-percent chance it fails part way
 * instead. The steps are spread over --job-seconds.
 */
#ifndef DEMO_JOBS_H
#define DEMO_JOBS_H

#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "publisher.h"

#define DEMO_JOBS_MAX 64   /* jobs running at once; more are refused */
#define DEMO_JOB_ID_LEN 12 /* hex characters */

typedef struct demo_jobs demo_jobs;

/* Returns the job runner, or NULL when out of memory. cfg and pub must
 * outlive it. */
demo_jobs *demo_jobs_new(uv_loop_t *loop, const demo_config *cfg, demo_publisher *pub);

/* Starts a job for `owner` and writes its id (DEMO_JOB_ID_LEN hex digits)
 * into id. Returns 0, or -1 when DEMO_JOBS_MAX jobs run already or memory
 * ran out. */
int demo_jobs_start(demo_jobs *j, const char *owner, char id[DEMO_JOB_ID_LEN + 1]);

/* Stops every job (they publish nothing more) and frees the runner once
 * their timers are closed. */
void demo_jobs_close(demo_jobs *j);

#endif
