/*
 * common: the clock, the RSS reader and the channel naming that the
 * coordinator and the workers must agree on.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_rss_kb(int pid)
{
    char path[64], line[256];
    unsigned long long kb = 0;
    FILE *f;
    if (pid > 0)
        snprintf(path, sizeof(path), "/proc/%d/status", pid);
    else
        snprintf(path, sizeof(path), "/proc/self/status");
    if (!(f = fopen(path, "r")))
        return 0;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
            break;
    }
    fclose(f);
    return kb;
}

double bench_cpu_seconds(int pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut, st;
    size_t n;
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (!(f = fopen(path, "r")))
        return -1;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: skip to the last ')'.
     * Then state is field 3, utime and stime fields 14 and 15. */
    if (!(p = strrchr(buf, ')')) ||
        sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

void bench_channel_of(const bench_config *cfg, uint32_t idx, char *out, size_t outlen)
{
    if (cfg->pattern == BENCH_BROADCAST)
        snprintf(out, outlen, "%s", cfg->channel);
    else
        snprintf(out, outlen, "%s%u", cfg->job_prefix, idx);
}

/* A write request with its own copy of what the kernel did not take. */
typedef struct write_req {
    uv_write_t req;
    char data[];
} write_req;

static void on_write_done(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

int bench_stream_write(uv_stream_t *stream, const char *buf, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    int n = uv_try_write(stream, &b, 1);
    write_req *w;

    if (n >= 0 && (size_t)n == len)
        return 0;
    if (n < 0 && n != UV_EAGAIN)
        return n;
    if (n < 0)
        n = 0;
    w = malloc(sizeof(*w) + len - (size_t)n);
    if (!w)
        return UV_ENOMEM;
    memcpy(w->data, buf + n, len - (size_t)n);
    b = uv_buf_init(w->data, (unsigned)(len - (size_t)n));
    n = uv_write(&w->req, stream, &b, 1, on_write_done);
    if (n < 0)
        free(w);
    return n;
}
