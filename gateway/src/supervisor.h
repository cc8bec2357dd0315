/*
 * supervisor: --workers N, one process per core on a single host.
 *
 * The supervisor forks N workers that each run a whole gateway (own lws
 * context, connection table and Redis links) on the same port: each opens
 * its own SO_REUSEPORT listener and the kernel spreads new connections
 * across them. It restarts a worker that dies, with backoff, and passes
 * SIGTERM/SIGINT on to all of them so they drain, then exits.
 */
#ifndef GW_SUPERVISOR_H
#define GW_SUPERVISOR_H

#include "config.h"

/* What a worker runs: a whole gateway. Returns the process exit code;
 * GW_EXIT_INIT_FAILED when it could not start (then restarting cannot help
 * and the supervisor stops everything). */
typedef int gw_worker_fn(const gw_config *cfg, int worker);

#define GW_EXIT_INIT_FAILED 3

/* Runs cfg->workers workers until a signal stopped them. Returns the exit
 * code of the supervisor: 0 when every worker drained and exited 0. */
int gw_supervise(const gw_config *cfg, gw_worker_fn *run);

#endif
