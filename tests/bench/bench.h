/*
 * bench: the configuration every part of wsgw-bench reads, and small helpers.
 *
 * wsgw-bench is a coordinator process (coordinator.c) that forks worker
 * processes (worker.c), each holding a share of the WebSocket connections,
 * and publishes the test messages itself (publisher.c). This header is what
 * they all agree on; it is filled once by options.c and then only read.
 */
#ifndef BENCH_BENCH_H
#define BENCH_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include <netinet/in.h>
#include <uv.h>

#define BENCH_MAX_PROCS 64
#define BENCH_MAX_CONNECTIONS 200000

typedef enum { BENCH_BROADCAST, BENCH_PER_JOB } bench_pattern;
typedef enum { BENCH_VIA_REDIS, BENCH_VIA_WS, BENCH_VIA_HTTP } bench_via;
/* What is measured: wsgw (auth and subscribe messages, JSON envelopes), or
 * Nchan (channel in the URL, raw bodies, HTTP publishing; see nchan.h). */
typedef enum { BENCH_TARGET_WSGW, BENCH_TARGET_NCHAN } bench_target;

typedef struct bench_config {
    /* Target: a loopback address only (checked by options.c). */
    bench_target target;
    struct sockaddr_in dst;
    char host_header[80];
    char path[128];
    char url[256];

    /* Connections. */
    uint32_t connections;
    uint32_t procs;
    uint32_t src_first;          /* first source address, host byte order */
    uint32_t src_count;          /* source addresses used round robin */
    double connect_rate;         /* new connections per second, all processes */
    uint32_t max_pending;        /* per process: connects not yet ready */
    double connect_timeout;      /* seconds for one connection to get ready */

    /* Tokens. */
    unsigned char *secret;
    size_t secret_len;
    const char *kid;
    const char *issuer;
    const char *audience;

    /* Subscriptions. */
    bench_pattern pattern;
    char channel[129];           /* broadcast: the channel */
    char job_prefix[64];         /* per-job: channel of connection i is <prefix><i> */

    /* Publishing. */
    bench_via via;
    struct sockaddr_in redis;
    int have_redis;
    char redis_prefix[64];
    char pub_path[128];          /* nchan: publisher location, channel appended */
    uint32_t http_conns;         /* nchan: keep-alive publishing connections */
    uint32_t http_depth;         /* nchan: requests pipelined on each */
    double rate;                 /* messages per second; 0 with closed_loop */
    int closed_loop;
    uint32_t window;             /* closed loop: messages in flight */
    double duration;             /* seconds of publishing (or holding, --idle) */
    uint64_t messages;           /* 0: no limit but the duration */
    uint32_t payload_bytes;      /* size of the data object published */
    double drain_timeout;        /* seconds to wait for stragglers */
    double settle;               /* seconds between all ready and the first publish */

    /* Modes and output. */
    int idle;
    int pid;                     /* gateway process for RSS readings, 0: none */
    const char *json_path;       /* "-" for stdout */
    int quiet;
    uint64_t run_id;             /* tells this run's messages from older ones */
} bench_config;

/* CLOCK_MONOTONIC in ns: one clock for every process of the machine, so a
 * timestamp taken by the publisher means the same to every worker. */
uint64_t bench_now_ns(void);

/* VmRSS of a process in KiB (pid 0: this one), or 0 when unreadable. */
uint64_t bench_rss_kb(int pid);

/* User plus system CPU time a process has used, in seconds, from
 * /proc/<pid>/stat; -1 when unreadable. */
double bench_cpu_seconds(int pid);

/* The channel connection `idx` subscribes to. */
void bench_channel_of(const bench_config *cfg, uint32_t idx, char *out, size_t outlen);
/* Writes buf to stream: at once as far as the kernel takes it, the rest
 * copied and queued (uv_write). Returns 0 or a libuv error. */
int bench_stream_write(uv_stream_t *stream, const char *buf, size_t len);

/* Fills cfg from argv. Returns 0 to run, 1 when help was printed, -1 on a
 * usage error (message written to stderr). */
int bench_options_parse(bench_config *cfg, int argc, char **argv);
void bench_options_free(bench_config *cfg);

/* Runs the whole benchmark; returns the process exit code. */
int bench_coordinator_run(const bench_config *cfg);

#endif
