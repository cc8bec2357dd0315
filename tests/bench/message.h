/*
 * message: the data object of a bench message, written by the coordinator
 * and read back by every receiving worker.
 *
 *   {"bench":[run_id,seq,t_ns,channel_index],"pad":"xxxx..."}
 *
 * run_id tells this run's messages from older ones (a job channel may replay
 * its latest message on subscribe); seq is the per-channel sequence number;
 * t_ns the publisher's CLOCK_MONOTONIC at send time; channel_index the
 * connection whose channel it was sent to (0 when broadcasting). The pad
 * brings the object to the size asked for.
 */
#ifndef BENCH_MESSAGE_H
#define BENCH_MESSAGE_H

#include <stddef.h>
#include <stdint.h>

typedef struct bench_msg {
    uint64_t run_id;
    uint64_t seq;
    uint64_t t_ns;
    uint64_t channel;
} bench_msg;

/* Writes the data object into buf, padded to `size` bytes when size is larger
 * than the bare object. cap must be at least size + 128. Returns its length. */
size_t bench_msg_encode(char *buf, size_t cap, const bench_msg *m, size_t size);

/* Finds the bench array in a whole gateway frame (the data object sits inside
 * {"type":"message",...}). The gateway may re-encode the object, so JSON
 * whitespace is allowed. Returns 1 when found and well formed, 0 when the
 * frame has no bench array, -1 when it is malformed. */
int bench_msg_decode(const char *frame, size_t len, bench_msg *out);

#endif
