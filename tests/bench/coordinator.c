/*
 * coordinator: forks the workers, publishes, decides when the run is over,
 * and reports.
 *
 * Why processes: one process may hold about 20,000 descriptors here, so
 * connections are split over K forked workers, each with its own libuv loop;
 * they report over a pipe (ipc.h). The coordinator itself holds no
 * subscriber connection: it runs the publisher and the phases.
 *
 *   CONNECT  workers ramp up; each reports READY once all of its connections
 *            are ready or failed (bounded by --connect-timeout).
 *   SETTLE   --settle seconds of quiet, for servers that confirm a
 *            subscription before it is in place everywhere (Nchan).
 *   PUBLISH  rate mode: a 1 ms tick publishes what the schedule says is due;
 *            closed loop: publish while fewer than --window messages are
 *            still being delivered (deliveries counted by workers' PROGRESS).
 *   HOLD     --idle: nothing is published; connections are held, and the
 *            gateway's RSS is read before and after.
 *   DRAIN    wait until every expected delivery arrived (bounded by
 *            --drain-timeout), then a short grace to catch duplicates.
 *   STOP     ask workers for FINAL, merge, report.
 *
 * Expected deliveries are counted, not listed: each message published and
 * acknowledged is owed to every ready subscriber of its channel (all of them
 * when broadcasting, one per job channel), so lost = expected - first-time
 * deliveries. Duplicates and order are checked by the receiving worker.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <uv.h>

#include "bench.h"
#include "ipc.h"
#include "message.h"
#include "publisher.h"
#include "report.h"
#include "worker.h"

#define TICK_MS 1
#define PROGRESS_MS 1000
#define GRACE_MS 250           /* after the last expected delivery: late duplicates */
#define STOP_TIMEOUT_MS 20000  /* FINAL records must arrive within this */
#define CONNECT_SLACK_S 30     /* on top of ramp time and --connect-timeout */

enum { PH_CONNECT, PH_SETTLE, PH_PUBLISH, PH_HOLD, PH_DRAIN, PH_STOP, PH_DONE };

typedef struct bench_run bench_run;

typedef struct child {
    bench_run *run;
    pid_t pid;
    int ctl_fd;
    int rep_fd;
    uv_pipe_t rep;
    ipc_reader rd;
    uint32_t first, n;
    int got_ready, got_final, eof;
    bench_ready ready;
    bench_progress prog;
    bench_final *fin;
} child;

struct bench_run {
    const bench_config *cfg;
    uv_loop_t loop;
    child ch[BENCH_MAX_PROCS];
    uint32_t k;
    bench_pub pub;
    int phase;
    uv_timer_t tick, progress, phase_timer;
    uv_signal_t sigint, sigterm;
    uint32_t *targets;         /* per-job: ready connection indices, the channels to publish to */
    uint32_t n_targets;
    uint64_t fanout;           /* deliveries owed per message */
    char *data;
    size_t data_cap;
    uint64_t t_start, t_pub_start, t_pub_end;
    uint64_t unique;           /* sum of workers' first-time deliveries */
    uint64_t t_last_change;
    int drained;
    double cpu0_gw, cpu0_bench;  /* CPU seconds used before publishing began */
    bench_result res;
};

static void begin_stop(bench_run *r);
static void end_publish(bench_run *r);
static void maybe_start(bench_run *r);
static void on_phase_timer(uv_timer_t *t);

static int quiet(const bench_run *r)
{
    return r->cfg->quiet;
}

/* ---- workers ----------------------------------------------------------- */

static void close_fds_of_earlier(bench_run *r, uint32_t upto)
{
    /* A worker must not hold other workers' pipe ends: the coordinator's
     * death would then not close their control pipes. */
    for (uint32_t j = 0; j < upto; j++) {
        close(r->ch[j].ctl_fd);
        close(r->ch[j].rep_fd);
    }
}

static int spawn(bench_run *r)
{
    const bench_config *cfg = r->cfg;
    uint32_t per = cfg->connections / cfg->procs, extra = cfg->connections % cfg->procs, first = 0;
    r->k = cfg->procs;
    fflush(NULL);
    for (uint32_t i = 0; i < r->k; i++) {
        child *c = &r->ch[i];
        int rep[2], ctl[2];
        c->run = r;
        c->first = first;
        c->n = per + (i < extra ? 1 : 0);
        first += c->n;
        if (pipe(rep) < 0 || pipe(ctl) < 0 || (c->pid = fork()) < 0) {
            fprintf(stderr, "wsgw-bench: cannot start worker %u: %s\n", i, strerror(errno));
            r->k = i;
            return -1;
        }
        if (c->pid == 0) {
            close_fds_of_earlier(r, i);
            close(rep[0]);
            close(ctl[1]);
            _exit(bench_worker_main(cfg, c->first, c->n, r->k, rep[1], ctl[0]));
        }
        close(rep[1]);
        close(ctl[0]);
        c->rep_fd = rep[0];
        c->ctl_fd = ctl[1];
    }
    return 0;
}

static uint32_t total_ready(const bench_run *r)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->k; i++)
        n += r->ch[i].got_ready ? r->ch[i].ready.ready : 0;
    return n;
}

static int all_children(const bench_run *r, int final)
{
    for (uint32_t i = 0; i < r->k; i++) {
        const child *c = &r->ch[i];
        if (!c->eof && !(final ? c->got_final : c->got_ready))
            return 0;
    }
    return 1;
}

/* ---- publishing -------------------------------------------------------- */

static uint64_t expected(const bench_run *r)
{
    return (r->pub.sent - r->pub.errors) * r->fanout;
}

/* Publishes message number pub.sent. Returns 0, or -1 when the publisher
 * cannot take it now. */
static int publish_one(bench_run *r)
{
    const bench_config *cfg = r->cfg;
    uint64_t k = r->pub.sent;
    bench_msg m = {cfg->run_id, k, 0, 0};
    char chan[192];
    size_t n;
    if (cfg->pattern == BENCH_PER_JOB) {
        m.channel = r->targets[k % r->n_targets];
        m.seq = k / r->n_targets;
    }
    bench_channel_of(cfg, (uint32_t)m.channel, chan, sizeof(chan));
    m.t_ns = bench_now_ns();
    n = bench_msg_encode(r->data, r->data_cap, &m, cfg->payload_bytes);
    if (bench_pub_send(&r->pub, chan, r->data, n) < 0)
        return -1;
    if (cfg->messages && r->pub.sent >= cfg->messages)
        end_publish(r);
    return 0;
}

static void on_tick(uv_timer_t *t)
{
    bench_run *r = t->data;
    double elapsed = (double)(bench_now_ns() - r->t_pub_start) / 1e9;
    uint64_t due = (uint64_t)(r->cfg->rate * elapsed) + 1;
    while (r->phase == PH_PUBLISH && r->pub.sent < due && publish_one(r) == 0)
        ;
}

/* Closed loop: keep at most --window messages' deliveries outstanding. */
static void pump(bench_run *r)
{
    uint64_t limit = (uint64_t)r->cfg->window * r->fanout;
    while (r->phase == PH_PUBLISH) {
        uint64_t exp = expected(r), out = exp > r->unique ? exp - r->unique : 0;
        if (out + r->fanout > limit || publish_one(r) < 0)
            break;
    }
}

/* CPU seconds of the server (--pid) and of all workers, so that a report
 * tells which side was saturated; -1 when unreadable. */
static double cpu_of_server(const bench_run *r)
{
    return r->cfg->pid ? bench_cpu_seconds(r->cfg->pid) : -1;
}

static double cpu_of_workers(const bench_run *r)
{
    double sum = 0, t;
    for (uint32_t i = 0; i < r->k; i++) {
        if ((t = bench_cpu_seconds((int)r->ch[i].pid)) < 0)
            return -1;
        sum += t;
    }
    return sum;
}

static void cpu_window_end(bench_run *r)
{
    double g = cpu_of_server(r), b = cpu_of_workers(r);
    r->res.gw_cpu_s = g >= 0 && r->cpu0_gw >= 0 ? g - r->cpu0_gw : -1;
    r->res.bench_cpu_s = b >= 0 && r->cpu0_bench >= 0 ? b - r->cpu0_bench : -1;
}

static void check_drained(bench_run *r)
{
    if (r->phase != PH_DRAIN || r->drained)
        return;
    if (bench_pub_inflight(&r->pub) == 0 && r->unique >= expected(r)) {
        r->drained = 1;
        uv_timer_start(&r->phase_timer, on_phase_timer, GRACE_MS, 0);
    }
}

static void end_publish(bench_run *r)
{
    if (r->phase != PH_PUBLISH)
        return;
    uv_timer_stop(&r->tick);
    r->t_pub_end = bench_now_ns();
    cpu_window_end(r);
    r->phase = PH_DRAIN;
    uv_timer_start(&r->phase_timer, on_phase_timer,
                   (uint64_t)(r->cfg->drain_timeout * 1000), 0);
    check_drained(r);
}

static void on_pub_event(void *arg)
{
    bench_run *r = arg;
    if (r->pub.failed && r->phase == PH_PUBLISH)
        end_publish(r);
    if (r->phase == PH_PUBLISH && r->cfg->closed_loop)
        pump(r);
    else if (r->phase == PH_DRAIN)
        check_drained(r);
    else if (r->phase == PH_CONNECT)
        maybe_start(r);
}

/* ---- phases ------------------------------------------------------------ */

static void start_publish(bench_run *r)
{
    const bench_config *cfg = r->cfg;
    r->fanout = cfg->pattern == BENCH_BROADCAST ? total_ready(r) : 1;
    r->phase = PH_PUBLISH;
    r->cpu0_gw = cpu_of_server(r);
    r->cpu0_bench = cpu_of_workers(r);
    r->t_pub_start = r->t_last_change = bench_now_ns();
    uv_timer_start(&r->phase_timer, on_phase_timer, (uint64_t)(cfg->duration * 1000), 0);
    if (cfg->closed_loop)
        pump(r);
    else
        uv_timer_start(&r->tick, on_tick, 0, TICK_MS);
}

/* Leaves CONNECT once every worker reported and the publisher is ready. */
static void maybe_start(bench_run *r)
{
    const bench_config *cfg = r->cfg;
    if (r->phase != PH_CONNECT || !all_children(r, 0))
        return;
    if (total_ready(r) == 0) {
        begin_stop(r);
    } else if (cfg->idle) {
        r->phase = PH_HOLD;
        uv_timer_start(&r->phase_timer, on_phase_timer,
                       (uint64_t)(cfg->duration * 1000), 0);
    } else if (r->pub.failed) {
        begin_stop(r);
    } else if (r->pub.ready && cfg->settle > 0) {
        r->phase = PH_SETTLE;
        uv_timer_start(&r->phase_timer, on_phase_timer, (uint64_t)(cfg->settle * 1000), 0);
    } else if (r->pub.ready) {
        start_publish(r);
    }
}

static void send_stop(child *c)
{
    char s = 'S';
    if (!c->eof && write(c->ctl_fd, &s, 1) < 0 && errno != EPIPE)
        fprintf(stderr, "wsgw-bench: worker %d: %s\n", (int)c->pid, strerror(errno));
}

static void begin_stop(bench_run *r)
{
    if (r->phase >= PH_STOP)
        return;
    if (r->phase == PH_PUBLISH) {
        r->t_pub_end = bench_now_ns();
        cpu_window_end(r);
    }
    /* Read while the connections are still open: that is what was asked. */
    if (r->cfg->pid && r->phase != PH_CONNECT)
        r->res.gw_rss_after_kb = bench_rss_kb(r->cfg->pid);
    r->phase = PH_STOP;
    uv_timer_stop(&r->tick);
    uv_timer_start(&r->phase_timer, on_phase_timer, STOP_TIMEOUT_MS, 0);
    for (uint32_t i = 0; i < r->k; i++)
        send_stop(&r->ch[i]);
}

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void finish(bench_run *r)
{
    r->phase = PH_DONE;
    close_handle((uv_handle_t *)&r->tick);
    close_handle((uv_handle_t *)&r->progress);
    close_handle((uv_handle_t *)&r->phase_timer);
    close_handle((uv_handle_t *)&r->sigint);
    close_handle((uv_handle_t *)&r->sigterm);
    for (uint32_t i = 0; i < r->k; i++)
        close_handle((uv_handle_t *)&r->ch[i].rep);
    if (!r->cfg->idle)
        bench_pub_stop(&r->pub);
}

static void on_phase_timer(uv_timer_t *t)
{
    bench_run *r = t->data;
    switch (r->phase) {
    case PH_CONNECT:
        fprintf(stderr, "wsgw-bench: connect phase did not end in time; stopping\n");
        begin_stop(r);
        break;
    case PH_SETTLE:
        if (r->pub.failed)
            begin_stop(r);
        else
            start_publish(r);
        break;
    case PH_PUBLISH:
        end_publish(r);
        break;
    case PH_HOLD:
    case PH_DRAIN:
        begin_stop(r);
        break;
    case PH_STOP:
        /* Our own children only, by pid: they missed their FINAL deadline. */
        for (uint32_t i = 0; i < r->k; i++)
            if (!r->ch[i].got_final && !r->ch[i].eof)
                kill(r->ch[i].pid, SIGKILL);
        break;
    }
}

/* ---- worker records ---------------------------------------------------- */

static void on_progress(bench_run *r)
{
    uint64_t u = 0;
    for (uint32_t i = 0; i < r->k; i++)
        u += r->ch[i].prog.unique;
    if (u != r->unique)
        r->t_last_change = bench_now_ns();
    r->unique = u;
    if (r->phase == PH_PUBLISH && r->cfg->closed_loop)
        pump(r);
    else if (r->phase == PH_DRAIN)
        check_drained(r);
}

static void add_targets(bench_run *r, const uint32_t *idx, uint32_t n)
{
    uint32_t *t = realloc(r->targets, sizeof(uint32_t) * (r->n_targets + n + 1));
    if (!t)
        abort();
    memcpy(t + r->n_targets, idx, sizeof(uint32_t) * n);
    r->targets = t;
    r->n_targets += n;
}

static void on_record(void *arg, uint32_t type, const void *body, uint32_t len)
{
    child *c = arg;
    bench_run *r = c->run;
    if (type == IPC_READY && len == sizeof(c->ready)) {
        memcpy(&c->ready, body, len);
    } else if (type == IPC_READY_IDX) {
        add_targets(r, body, len / sizeof(uint32_t));
        c->got_ready = 1;
        maybe_start(r);
    } else if (type == IPC_PROGRESS && len == sizeof(c->prog)) {
        memcpy(&c->prog, body, len);
        on_progress(r);
    } else if (type == IPC_FINAL && len == sizeof(bench_final) && !c->fin) {
        if (!(c->fin = malloc(sizeof(bench_final))))
            abort();
        memcpy(c->fin, body, len);
        c->got_final = 1;
        if (all_children(r, 1))
            finish(r);
    }
}

static void on_rep_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char b[64 * 1024];
    *buf = uv_buf_init(b, sizeof(b));
}

static void on_rep_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    child *c = s->data;
    bench_run *r = c->run;
    if (nread > 0 && ipc_feed(&c->rd, buf->base, (size_t)nread, on_record, c) == 0)
        return;
    if (nread == 0)
        return;
    /* EOF or a corrupt stream: this worker is done, one way or another. */
    c->eof = 1;
    close_handle((uv_handle_t *)s);
    if (!c->got_final)
        fprintf(stderr, "wsgw-bench: worker %d ended without a report\n", (int)c->pid);
    if (r->phase == PH_CONNECT)
        maybe_start(r);
    if (r->phase == PH_STOP && all_children(r, 1))
        finish(r);
}

/* ---- progress and signals ---------------------------------------------- */

static void on_progress_timer(uv_timer_t *t)
{
    bench_run *r = t->data;
    double at = (double)(bench_now_ns() - r->t_start) / 1e9;
    uint32_t ready = 0, failed = 0;
    for (uint32_t i = 0; i < r->k; i++) {
        ready += r->ch[i].prog.ready;
        failed += r->ch[i].prog.failed;
    }
    /* A closed loop whose deliveries stopped cannot go on: that is loss. */
    if (r->phase == PH_PUBLISH && r->cfg->closed_loop && r->unique < expected(r) &&
        (double)(bench_now_ns() - r->t_last_change) / 1e9 > r->cfg->drain_timeout) {
        r->res.stalled = 1;
        fprintf(stderr, "wsgw-bench: no delivery for %.0f s: stopping\n", r->cfg->drain_timeout);
        end_publish(r);
        begin_stop(r);
    }
    if (quiet(r))
        return;
    if (r->phase == PH_CONNECT || r->phase == PH_HOLD)
        fprintf(stderr, "[%6.1fs] %s: %u ready, %u failed of %u", at,
                r->phase == PH_CONNECT ? "connecting" : "holding", ready, failed,
                r->cfg->connections);
    if (r->phase == PH_HOLD && r->cfg->pid)
        fprintf(stderr, ", gateway RSS %.1f MiB", (double)bench_rss_kb(r->cfg->pid) / 1024);
    if (r->phase == PH_CONNECT || r->phase == PH_HOLD)
        fputc('\n', stderr);
    else if (r->phase == PH_PUBLISH || r->phase == PH_DRAIN)
        fprintf(stderr, "[%6.1fs] %s: published %llu, delivered %llu of %llu\n", at,
                r->phase == PH_PUBLISH ? "publishing" : "draining",
                (unsigned long long)r->pub.sent, (unsigned long long)r->unique,
                (unsigned long long)expected(r));
}

static void on_signal(uv_signal_t *s, int signum)
{
    bench_run *r = s->data;
    r->res.interrupted = 1;
    if (r->phase == PH_PUBLISH)
        end_publish(r);
    else
        begin_stop(r);
}

/* ---- setup, results ---------------------------------------------------- */

static void setup_loop(bench_run *r)
{
    uv_loop_init(&r->loop);
    uv_timer_init(&r->loop, &r->tick);
    uv_timer_init(&r->loop, &r->progress);
    uv_timer_init(&r->loop, &r->phase_timer);
    uv_signal_init(&r->loop, &r->sigint);
    uv_signal_init(&r->loop, &r->sigterm);
    r->tick.data = r->progress.data = r->phase_timer.data = r->sigint.data = r->sigterm.data = r;
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);
    for (uint32_t i = 0; i < r->k; i++) {
        child *c = &r->ch[i];
        uv_pipe_init(&r->loop, &c->rep, 0);
        c->rep.data = c;
        if (uv_pipe_open(&c->rep, c->rep_fd) < 0 ||
            uv_read_start((uv_stream_t *)&c->rep, on_rep_alloc, on_rep_read) < 0)
            c->eof = 1;
    }
    uv_timer_start(&r->progress, on_progress_timer, PROGRESS_MS, PROGRESS_MS);
    /* The phase timer's callback is fixed; each phase only re-arms it. */
    uv_timer_start(&r->phase_timer, on_phase_timer,
                   (uint64_t)((r->cfg->connections / r->cfg->connect_rate +
                               r->cfg->connect_timeout + CONNECT_SLACK_S) * 1000), 0);
    if (!r->cfg->idle && bench_pub_start(&r->pub, &r->loop, r->cfg, on_pub_event, r) < 0) {
        fprintf(stderr, "wsgw-bench: %s\n", r->pub.error);
        r->pub.failed = 1;
    }
}

static void merge_final(bench_final *dst, const bench_final *src)
{
    dst->deliveries += src->deliveries;
    dst->unique += src->unique;
    dst->duplicates += src->duplicates;
    dst->reordered += src->reordered;
    dst->misrouted += src->misrouted;
    dst->foreign += src->foreign;
    dst->other_frames += src->other_frames;
    dst->disconnects += src->disconnects;
    dst->rss_kb += src->rss_kb;
    if (src->t_first_recv && (!dst->t_first_recv || src->t_first_recv < dst->t_first_recv))
        dst->t_first_recv = src->t_first_recv;
    if (src->t_last_recv > dst->t_last_recv)
        dst->t_last_recv = src->t_last_recv;
    for (uint32_t i = 0; i < src->n_codes; i++) {
        uint32_t j = 0;
        while (j < dst->n_codes && dst->codes[j].code != src->codes[i].code)
            j++;
        if (j == dst->n_codes && j < BENCH_MAX_CODES)
            dst->codes[dst->n_codes++].code = src->codes[i].code;
        if (j < BENCH_MAX_CODES)
            dst->codes[j].count += src->codes[i].count;
    }
    hist_merge(&dst->latency, &src->latency);
    hist_merge(&dst->connect, &src->connect);
}

static void add_connect(bench_result *res, const child *c, uint64_t *t0, uint64_t *t1)
{
    const bench_ready *rd = &c->ready;
    res->attempted += c->n;
    if (!c->got_final) {
        res->crashed_workers++;
        res->lost_to_crashes += c->n;
        return;
    }
    if (!c->got_ready) {
        /* Stopped before its connect phase ended: the rest never got ready. */
        res->ready += c->prog.ready;
        res->fails.timeout += c->n - c->prog.ready;
        return;
    }
    res->ready += rd->ready;
    res->fails.connect += rd->fails.connect;
    res->fails.handshake += rd->fails.handshake;
    res->fails.auth += rd->fails.auth;
    res->fails.subscribe += rd->fails.subscribe;
    res->fails.timeout += rd->fails.timeout;
    if (rd->last_error[0])
        snprintf(res->example_error, sizeof(res->example_error), "%s", rd->last_error);
    if (rd->t_first_start && (!*t0 || rd->t_first_start < *t0))
        *t0 = rd->t_first_start;
    if (rd->t_last_ready > *t1)
        *t1 = rd->t_last_ready;
}

static void collect(bench_run *r)
{
    bench_result *res = &r->res;
    uint64_t t0 = 0, t1 = 0;
    hist_init(&res->f.latency);
    hist_init(&res->f.connect);
    for (uint32_t i = 0; i < r->k; i++) {
        add_connect(res, &r->ch[i], &t0, &t1);
        if (r->ch[i].fin)
            merge_final(&res->f, r->ch[i].fin);
    }
    res->connect = res->f.connect;
    res->connect_seconds = t1 > t0 ? (double)(t1 - t0) / 1e9 : 0;
    res->bench_rss_kb = res->f.rss_kb;
    res->sent = r->pub.sent;
    res->acked = r->pub.acked;
    res->pub_errors = r->pub.errors;
    res->zero_receivers = r->pub.zero_receivers;
    if (r->pub.error[0])
        snprintf(res->pub_error, sizeof(res->pub_error), "%s", r->pub.error);
    res->expected = expected(r);
    if (r->t_pub_start) {
        res->publish_seconds = (double)(r->t_pub_end - r->t_pub_start) / 1e9;
        if (res->f.t_last_recv > r->t_pub_start)
            res->delivery_seconds = (double)(res->f.t_last_recv - r->t_pub_start) / 1e9;
    }
}

/* Children exit right after their FINAL; give them a moment, then insist. */
static void reap(bench_run *r)
{
    for (int tries = 0; tries < 100; tries++) {
        int left = 0;
        for (uint32_t i = 0; i < r->k; i++) {
            if (r->ch[i].pid > 0 && waitpid(r->ch[i].pid, NULL, WNOHANG) == 0)
                left++;
            else
                r->ch[i].pid = 0;
        }
        if (!left)
            return;
        usleep(100000);
    }
    for (uint32_t i = 0; i < r->k; i++) {
        if (r->ch[i].pid > 0) {
            kill(r->ch[i].pid, SIGKILL);
            waitpid(r->ch[i].pid, NULL, 0);
        }
    }
}

static void cleanup(bench_run *r)
{
    for (uint32_t i = 0; i < r->k; i++) {
        ipc_reader_free(&r->ch[i].rd);
        free(r->ch[i].fin);
        if (r->ch[i].ctl_fd >= 0)
            close(r->ch[i].ctl_fd);
    }
    bench_pub_free(&r->pub);
    free(r->targets);
    free(r->data);
    free(r);
}

static int report(bench_run *r)
{
    const bench_config *cfg = r->cfg;
    FILE *out = cfg->json_path && strcmp(cfg->json_path, "-") == 0 ? stderr : stdout;
    int code = bench_result_exit_code(&r->res, cfg);
    bench_report_table(out, &r->res, cfg);
    if (cfg->json_path && bench_report_json(cfg->json_path, &r->res, cfg) < 0) {
        fprintf(stderr, "wsgw-bench: cannot write %s\n", cfg->json_path);
        code = code ? code : 2;
    }
    return code;
}

int bench_coordinator_run(const bench_config *cfg)
{
    bench_run *r = calloc(1, sizeof(*r));
    char err[256];
    int code = 2;

    signal(SIGPIPE, SIG_IGN);
    if (!r || !(r->data = malloc(cfg->payload_bytes + 128)))
        goto out;
    r->cfg = cfg;
    r->data_cap = cfg->payload_bytes + 128;
    if (!cfg->idle && cfg->via == BENCH_VIA_REDIS && bench_pub_check_redis(cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "wsgw-bench: %s\n", err);
        goto out;
    }
    if (cfg->pid && !(r->res.gw_rss_before_kb = bench_rss_kb(cfg->pid))) {
        fprintf(stderr, "wsgw-bench: --pid %d: cannot read /proc/%d/status\n", cfg->pid, cfg->pid);
        goto out;
    }
    r->t_start = bench_now_ns();
    r->res.gw_cpu_s = r->res.bench_cpu_s = -1;
    if (spawn(r) < 0) {
        /* Closing the control pipes (cleanup) stops the workers started. */
        for (uint32_t i = 0; i < r->k; i++)
            close(r->ch[i].ctl_fd), r->ch[i].ctl_fd = -1;
        reap(r);
        goto out;
    }
    setup_loop(r);
    if (!quiet(r))
        fprintf(stderr, "wsgw-bench: run %llu: %u connections in %u processes to %s\n",
                (unsigned long long)cfg->run_id, cfg->connections, r->k, cfg->url);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    uv_loop_close(&r->loop);
    reap(r);
    collect(r);
    code = report(r);
out:
    if (r)
        cleanup(r);
    return code;
}
