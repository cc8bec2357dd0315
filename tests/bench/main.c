/*
 * main: the wsgw-bench executable.
 *
 * Parse the options, run the benchmark, exit with its verdict: 0 when every
 * message reached every subscriber exactly once, 1 when not, 2 on bad usage
 * or setup. Everything else lives in the files named after what it does
 * (coordinator, worker, publisher, wsclient, report).
 */
#include <stdio.h>

#include "bench.h"

int main(int argc, char **argv)
{
    bench_config cfg;
    int rc = bench_options_parse(&cfg, argc, argv);
    if (rc == 0)
        rc = bench_coordinator_run(&cfg);
    else
        rc = rc > 0 ? 0 : 2;
    bench_options_free(&cfg);
    return rc;
}
