/*
 * worker: connections of one process, from connect to the per-message checks.
 *
 * Per connection the state is a few words beside its ws_client: a state,
 * the next expected sequence number and a 64-bit map of the sequence numbers
 * just below it, which tells a duplicate from a late (reordered) message
 * without any per-message memory. The hot path (a bench message, see
 * message.h) allocates nothing. Control replies (auth_ok, subscribed, error)
 * are rare and parsed with jansson.
 *
 * Timeouts are swept by one timer over all connections rather than a timer
 * each, which would cost a uv_timer_t per connection for a rare event.
 *
 * With --target nchan a connection is ready at the upgrade: Nchan takes the
 * channel from the URL (conn_target) and has no auth or subscribe message.
 */
#include "worker.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <uv.h>

#include "ipc.h"
#include "message.h"
#include "nchan.h"
#include "token.h"
#include "wsclient.h"

#define RAMP_MS 5            /* ramp timer period */
#define SWEEP_MS 200         /* timeout sweep period */
#define TOKEN_TTL 86400      /* longer than any bench run, so no 4003 mid-run */

enum {
    C_IDLE = 0,
    C_CONNECTING,    /* TCP and upgrade */
    C_AUTH,          /* auth sent, waiting for auth_ok */
    C_SUBSCRIBING,   /* subscribe sent, waiting for subscribed */
    C_READY,
    C_FAILED,        /* never became ready */
    C_GONE,          /* was ready, the gateway closed it */
};

typedef struct bench_worker bench_worker;

typedef struct bench_conn {
    ws_client ws;
    bench_worker *w;
    uint32_t idx;            /* global connection index */
    uint8_t st;
    uint64_t next_seq;       /* next sequence number expected */
    uint64_t seen;           /* bit k: sequence next_seq - 1 - k was received */
    uint64_t t_start;
} bench_conn;

struct bench_worker {
    const bench_config *cfg;
    uv_loop_t loop;
    ws_shared sh;
    bench_conn *conns;
    uint32_t first, n;
    uint32_t started, pending, resolved;
    double rate;             /* this process's share of --connect-rate */
    uint64_t t0;
    uv_timer_t ramp, sweep;
    uv_check_t check;
    uv_pipe_t ctl;
    int report_fd;
    int ready_sent, stopping;
    bench_ready rdy;
    bench_progress prog, prog_sent;
    bench_final fin;
};

static void conn_open(ws_client *ws);
static void conn_text(ws_client *ws, const char *msg, size_t len);
static void conn_closed(ws_client *ws, int stage, int code, const char *why);
static void conn_target(ws_client *ws, char *out, size_t cap);
static const ws_client_cb conn_cb = {conn_open, conn_text, conn_closed, NULL};
/* Nchan names the channel in the URL and needs no auth: see nchan.h. */
static const ws_client_cb nchan_conn_cb = {conn_open, conn_text, conn_closed, conn_target};

/* ---- connect phase ---------------------------------------------------- */

static void send_ready(bench_worker *w)
{
    uint32_t *idx = malloc(sizeof(uint32_t) * (w->n ? w->n : 1));
    uint32_t k = 0;
    if (!idx)
        abort();
    for (uint32_t i = 0; i < w->n; i++)
        if (w->conns[i].st == C_READY)
            idx[k++] = w->conns[i].idx;
    w->rdy.attempted = w->n;
    w->rdy.ready = w->prog.ready;
    ipc_send(w->report_fd, IPC_READY, &w->rdy, sizeof(w->rdy));
    ipc_send(w->report_fd, IPC_READY_IDX, idx, k * (uint32_t)sizeof(uint32_t));
    free(idx);
    w->ready_sent = 1;
    uv_timer_stop(&w->sweep);
}

static void resolve(bench_conn *c)
{
    bench_worker *w = c->w;
    w->pending--;
    w->resolved++;
    if (w->resolved == w->n && !w->ready_sent)
        send_ready(w);
}

/* A connection that will never be ready: count why, keep one example. */
static void conn_fail(bench_conn *c, uint32_t *reason, const char *why, int code)
{
    bench_worker *w = c->w;
    c->st = C_FAILED;
    (*reason)++;
    w->prog.failed++;
    if (code)
        snprintf(w->rdy.last_error, sizeof(w->rdy.last_error), "connection %u: %s (close %d)",
                 c->idx, why, code);
    else
        snprintf(w->rdy.last_error, sizeof(w->rdy.last_error), "connection %u: %s", c->idx, why);
    ws_client_close(&c->ws, 1000);
    resolve(c);
}

static void conn_ready(bench_conn *c)
{
    bench_worker *w = c->w;
    uint64_t now = bench_now_ns();
    c->st = C_READY;
    w->prog.ready++;
    w->rdy.t_last_ready = now;
    hist_add(&w->fin.connect, now - c->t_start);
    resolve(c);
}

static void conn_start(bench_worker *w, bench_conn *c)
{
    const bench_config *cfg = w->cfg;
    struct sockaddr_in src = {0};
    int rc;
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(cfg->src_first + c->idx % cfg->src_count);
    c->w = w;
    c->ws.data = c;
    c->t_start = bench_now_ns();
    c->st = C_CONNECTING;
    w->pending++;
    if (!w->rdy.t_first_start)
        w->rdy.t_first_start = c->t_start;
    rc = ws_client_connect(&c->ws, &w->loop, &w->sh, &src, &cfg->dst,
                           cfg->target == BENCH_TARGET_NCHAN ? &nchan_conn_cb : &conn_cb);
    if (rc < 0)
        conn_fail(c, &w->rdy.fails.connect, uv_strerror(rc), 0);
}

/* Starts connections at this process's share of the connect rate, with at
 * most --max-pending unfinished at once so that a slow gateway is not buried
 * under a SYN flood it cannot accept. */
static void on_ramp(uv_timer_t *t)
{
    bench_worker *w = t->data;
    double elapsed = (double)(bench_now_ns() - w->t0) / 1e9;
    double due = w->rate * elapsed + 1;
    uint32_t target = due >= w->n ? w->n : (uint32_t)due;
    while (w->started < target && w->pending < w->cfg->max_pending && !w->stopping)
        conn_start(w, &w->conns[w->started++]);
    if (w->started == w->n)
        uv_timer_stop(t);
}

static void on_sweep(uv_timer_t *t)
{
    bench_worker *w = t->data;
    uint64_t limit = (uint64_t)(w->cfg->connect_timeout * 1e9), now = bench_now_ns();
    for (uint32_t i = 0; i < w->started; i++) {
        bench_conn *c = &w->conns[i];
        if (c->st >= C_CONNECTING && c->st <= C_SUBSCRIBING && now - c->t_start > limit)
            conn_fail(c, &w->rdy.fails.timeout, "not ready within --connect-timeout", 0);
    }
}

/* ---- protocol --------------------------------------------------------- */

static void conn_target(ws_client *ws, char *out, size_t cap)
{
    bench_conn *c = ws->data;
    bench_nchan_target(c->w->cfg, c->idx, out, cap);
}

static void conn_open(ws_client *ws)
{
    bench_conn *c = ws->data;
    const bench_config *cfg = c->w->cfg;
    char chan[192], claims[768], *token, *msg;
    long long now = (long long)time(NULL);
    int n;

    /* Nchan subscribed the connection during the upgrade. */
    if (cfg->target == BENCH_TARGET_NCHAN) {
        conn_ready(c);
        return;
    }

    bench_channel_of(cfg, c->idx, chan, sizeof(chan));
    n = snprintf(claims, sizeof(claims), "{\"sub\":\"bench-%u\",\"iat\":%lld,\"exp\":%lld,"
                 "\"channels\":[\"%s\"]", c->idx, now, now + TOKEN_TTL, chan);
    if (cfg->issuer)
        n += snprintf(claims + n, sizeof(claims) - (size_t)n, ",\"iss\":\"%s\"", cfg->issuer);
    if (cfg->audience)
        n += snprintf(claims + n, sizeof(claims) - (size_t)n, ",\"aud\":\"%s\"", cfg->audience);
    snprintf(claims + n, sizeof(claims) - (size_t)n, "}");
    token = bench_token_hs256(cfg->secret, cfg->secret_len, cfg->kid, claims);
    msg = token ? malloc(strlen(token) + 32) : NULL;
    if (!msg)
        abort();
    n = sprintf(msg, "{\"type\":\"auth\",\"token\":\"%s\"}", token);
    c->st = C_AUTH;
    if (ws_client_send_text(ws, msg, (size_t)n) < 0)
        conn_fail(c, &c->w->rdy.fails.auth, "auth send failed", 0);
    free(msg);
    free(token);
}

static void send_subscribe(bench_conn *c)
{
    char chan[192], msg[320];
    int n;
    bench_channel_of(c->w->cfg, c->idx, chan, sizeof(chan));
    n = snprintf(msg, sizeof(msg), "{\"type\":\"subscribe\",\"id\":1,\"channel\":\"%s\"}", chan);
    c->st = C_SUBSCRIBING;
    if (ws_client_send_text(&c->ws, msg, (size_t)n) < 0)
        conn_fail(c, &c->w->rdy.fails.subscribe, "subscribe send failed", 0);
}

/* Sequence bookkeeping for one delivery. Returns 1 for a first delivery. */
static int note_seq(bench_conn *c, uint64_t seq)
{
    bench_final *f = &c->w->fin;
    uint64_t d;
    if (seq >= c->next_seq) {
        uint64_t shift = seq - c->next_seq + 1;
        c->seen = shift >= 64 ? 1 : (c->seen << shift) | 1;
        c->next_seq = seq + 1;
        return 1;
    }
    d = c->next_seq - 1 - seq;
    /* Older than the map reaches: cannot tell, so count it against the
     * gateway (a duplicate) rather than risk hiding one. */
    if (d >= 64 || (c->seen >> d & 1)) {
        f->duplicates++;
        return 0;
    }
    c->seen |= UINT64_C(1) << d;
    f->reordered++;
    return 1;
}

static void on_bench_message(bench_conn *c, const bench_msg *m)
{
    bench_worker *w = c->w;
    bench_final *f = &w->fin;
    uint64_t now, want_ch = w->cfg->pattern == BENCH_BROADCAST ? 0 : c->idx;
    if (m->run_id != w->cfg->run_id) {
        f->foreign++;
        return;
    }
    if (m->channel != want_ch) {
        f->misrouted++;
        return;
    }
    f->deliveries++;
    if (!note_seq(c, m->seq))
        return;
    now = bench_now_ns();
    f->unique++;
    hist_add(&f->latency, now > m->t_ns ? now - m->t_ns : 0);
    if (!f->t_first_recv)
        f->t_first_recv = now;
    f->t_last_recv = now;
}

/* Control replies before ready; after ready any non-bench frame is counted. */
static void on_control(bench_conn *c, const char *msg, size_t len)
{
    bench_worker *w = c->w;
    json_t *j = json_loadb(msg, len, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    const char *detail = json_string_value(json_object_get(j, "message"));
    char what[96];

    snprintf(what, sizeof(what), "answered %s%s%s", type ? type : "a non-JSON frame",
             detail ? ": " : "", detail ? detail : "");
    if (c->st == C_AUTH && type && strcmp(type, "auth_ok") == 0)
        send_subscribe(c);
    else if (c->st == C_AUTH)
        conn_fail(c, &w->rdy.fails.auth, what, 0);
    else if (c->st == C_SUBSCRIBING && type && strcmp(type, "subscribed") == 0)
        conn_ready(c);
    else if (c->st == C_SUBSCRIBING && type && strcmp(type, "error") == 0)
        conn_fail(c, &w->rdy.fails.subscribe, what, 0);
    else if (c->st == C_READY)
        w->fin.other_frames++;
    json_decref(j);
}

static void conn_text(ws_client *ws, const char *msg, size_t len)
{
    bench_conn *c = ws->data;
    bench_msg m;
    int rc = c->st >= C_SUBSCRIBING ? bench_msg_decode(msg, len, &m) : 0;
    if (rc > 0)
        on_bench_message(c, &m);
    else if (rc < 0)
        c->w->fin.other_frames++;
    else
        on_control(c, msg, len);
}

static void count_code(bench_final *f, int code)
{
    uint32_t i;
    for (i = 0; i < f->n_codes; i++) {
        if (f->codes[i].code == code) {
            f->codes[i].count++;
            return;
        }
    }
    if (i == BENCH_MAX_CODES)
        i--; /* the last slot collects the rest */
    else
        f->n_codes++;
    f->codes[i].code = code;
    f->codes[i].count++;
}

static void conn_closed(ws_client *ws, int stage, int code, const char *why)
{
    bench_conn *c = ws->data;
    bench_worker *w = c->w;
    bench_fails *fl = &w->rdy.fails;
    switch (c->st) {
    case C_CONNECTING:
        conn_fail(c, stage == WS_CONNECTING ? &fl->connect : &fl->handshake, why,
                  stage == WS_CONNECTING ? 0 : code);
        break;
    case C_AUTH:
        conn_fail(c, &fl->auth, why, code);
        break;
    case C_SUBSCRIBING:
        conn_fail(c, &fl->subscribe, why, code);
        break;
    case C_READY:
        c->st = C_GONE;
        w->fin.disconnects++;
        count_code(&w->fin, code);
        break;
    default:
        break;
    }
}

/* ---- reporting and stop ----------------------------------------------- */

/* After every loop iteration: tell the coordinator when counts moved, so a
 * closed loop can publish the next message as soon as the last one landed. */
static void on_check(uv_check_t *h)
{
    bench_worker *w = h->data;
    w->prog.unique = w->fin.unique;
    w->prog.deliveries = w->fin.deliveries;
    if (memcmp(&w->prog, &w->prog_sent, sizeof(w->prog)) == 0)
        return;
    w->prog_sent = w->prog;
    ipc_send(w->report_fd, IPC_PROGRESS, &w->prog, sizeof(w->prog));
}

static void stop(bench_worker *w)
{
    if (w->stopping)
        return;
    w->stopping = 1;
    on_check(&w->check);
    w->fin.rss_kb = bench_rss_kb(0);
    ipc_send(w->report_fd, IPC_FINAL, &w->fin, sizeof(w->fin));
    for (uint32_t i = 0; i < w->started; i++)
        ws_client_close(&w->conns[i].ws, 1000);
    uv_close((uv_handle_t *)&w->ramp, NULL);
    uv_close((uv_handle_t *)&w->sweep, NULL);
    uv_close((uv_handle_t *)&w->check, NULL);
    uv_close((uv_handle_t *)&w->ctl, NULL);
}

static void on_ctl_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    static char b[64];
    *buf = uv_buf_init(b, sizeof(b));
}

/* Any byte means stop; EOF means the coordinator is gone: stop too, so no
 * worker outlives its run. */
static void on_ctl(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    if (nread != 0)
        stop(s->data);
}

int bench_worker_main(const bench_config *cfg, uint32_t first, uint32_t n, uint32_t nprocs,
                      int report_fd, int ctl_fd)
{
    bench_worker *w = calloc(1, sizeof(*w));
    int rc = 1;

    signal(SIGPIPE, SIG_IGN);
    /* Ctrl-C reaches the whole process group: the coordinator decides. */
    signal(SIGINT, SIG_IGN);
    if (!w || !(w->conns = calloc(n ? n : 1, sizeof(bench_conn))))
        goto done;
    w->cfg = cfg;
    w->first = first;
    w->n = n;
    w->report_fd = report_fd;
    w->rate = cfg->connect_rate / nprocs;
    hist_init(&w->fin.latency);
    hist_init(&w->fin.connect);
    for (uint32_t i = 0; i < n; i++)
        w->conns[i].idx = first + i;
    ws_shared_init(&w->sh, cfg->host_header, cfg->path, cfg->run_id ^ ((uint64_t)first << 32 | 1));
    if (uv_loop_init(&w->loop) < 0)
        goto done;
    uv_timer_init(&w->loop, &w->ramp);
    uv_timer_init(&w->loop, &w->sweep);
    uv_check_init(&w->loop, &w->check);
    uv_pipe_init(&w->loop, &w->ctl, 0);
    w->ramp.data = w->sweep.data = w->check.data = w->ctl.data = w;
    if (uv_pipe_open(&w->ctl, ctl_fd) < 0)
        goto done;
    w->t0 = bench_now_ns();
    uv_timer_start(&w->ramp, on_ramp, 0, RAMP_MS);
    uv_timer_start(&w->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    uv_check_start(&w->check, on_check);
    uv_read_start((uv_stream_t *)&w->ctl, on_ctl_alloc, on_ctl);
    if (n == 0)
        send_ready(w);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&w->loop) == 0 ? 0 : 1;
done:
    if (w)
        free(w->conns);
    free(w);
    return rc;
}
