/*
 * ipc: framed records between the coordinator and its worker processes.
 *
 * Workers are forked copies of one binary, so records are plain structs sent
 * as bytes: a header {type, length} then the body. Workers write with blocking
 * write(2) (their records are small and the coordinator reads all the time);
 * the coordinator reads through libuv and reassembles frames with an
 * ipc_reader, since one read may hold part of a record or several.
 */
#ifndef BENCH_IPC_H
#define BENCH_IPC_H

#include <stddef.h>
#include <stdint.h>

#include "hist.h"

enum {
    IPC_READY = 1,      /* worker -> coordinator: connect phase over (bench_ready) */
    IPC_READY_IDX,      /* worker -> coordinator: uint32 global indices of ready connections */
    IPC_PROGRESS,       /* worker -> coordinator: bench_progress, whenever it changes */
    IPC_FINAL,          /* worker -> coordinator: bench_final, once, after a stop */
};

#define IPC_MAX_RECORD (16u << 20) /* a larger length means a corrupt stream */
#define BENCH_MAX_CODES 16         /* distinct close codes counted per worker */

/* Why connections never became ready. */
typedef struct bench_fails {
    uint32_t connect;      /* TCP connect or bind failed */
    uint32_t handshake;    /* no 101 Switching Protocols, or a bad accept key */
    uint32_t auth;         /* closed or errored while authenticating */
    uint32_t subscribe;    /* subscribe refused or closed while subscribing */
    uint32_t timeout;      /* not ready within --connect-timeout */
} bench_fails;

typedef struct bench_ready {
    uint32_t attempted;
    uint32_t ready;
    bench_fails fails;
    uint64_t t_first_start;  /* CLOCK_MONOTONIC ns, comparable across processes */
    uint64_t t_last_ready;
    char last_error[120];    /* one example failure, for the summary */
} bench_ready;

typedef struct bench_progress {
    uint64_t unique;         /* first-time deliveries of this run's messages */
    uint64_t deliveries;     /* all deliveries of this run's messages */
    uint32_t ready;          /* connections ready so far */
    uint32_t failed;         /* connections that failed to get ready */
} bench_progress;

typedef struct bench_code_count {
    int32_t code;
    uint32_t count;
} bench_code_count;

typedef struct bench_final {
    uint64_t deliveries;
    uint64_t unique;
    uint64_t duplicates;     /* a sequence number seen twice by one connection */
    uint64_t reordered;      /* first seen after a later one (order broken) */
    uint64_t misrouted;      /* a bench message of another connection's channel */
    uint64_t foreign;        /* bench messages of another run (ignored) */
    uint64_t other_frames;   /* non-message frames after ready (errors, ...) */
    uint64_t t_first_recv;
    uint64_t t_last_recv;
    uint32_t disconnects;    /* ready connections the gateway closed */
    uint32_t n_codes;
    bench_code_count codes[BENCH_MAX_CODES]; /* close codes of those disconnects */
    uint64_t rss_kb;         /* the worker's own VmRSS at stop */
    bench_hist latency;      /* publish-to-receive, ns, unique deliveries only */
    bench_hist connect;      /* connect start to subscribed, ns */
} bench_final;

/* Writes one record, retrying on EINTR and short writes. Returns 0 or -1. */
int ipc_send(int fd, uint32_t type, const void *body, uint32_t len);

typedef void (*ipc_record_cb)(void *arg, uint32_t type, const void *body, uint32_t len);

typedef struct ipc_reader {
    char *buf;
    size_t len;
    size_t cap;
    int corrupt;
} ipc_reader;

/* Appends n bytes and calls cb for every complete record; the body is valid
 * for the duration of the call. Returns 0, or -1 on a corrupt stream or OOM. */
int ipc_feed(ipc_reader *r, const char *data, size_t n, ipc_record_cb cb, void *arg);
void ipc_reader_free(ipc_reader *r);

#endif
