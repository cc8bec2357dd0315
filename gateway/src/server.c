/*
 * server: one gateway process.
 *
 * Startup builds, in order: the keyring (a bad key stops us before we take
 * any client), the subscription table and the bus, the lws context on our
 * own libuv loop (epoll; lws's default poll loop collapses at 10k idle
 * connections), the vhost without a listener of its own, our listener, and
 * the signal handlers (lws installs none on a foreign loop).
 *
 * Fan-out: a bus message is parsed and turned into its client frame once;
 * the same frame is queued to every local subscriber by reference.
 *
 * Stopping (SIGTERM drains, SIGINT closes at once) lives in drain.c.
 */
#include "server.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channels.h"
#include "conn.h"
#include "flush.h"
#include "http_api.h"
#include "keyfile.h"
#include "static_dir.h"
#include "client_limits.h"
#include "log.h"
#include "timers.h"
#include "session.h"

/* Largest frame lws may send in one piece: bus payloads are capped at 1 MiB
 * and the client frame adds the channel and a few fields. */
#define GW_TX_PACKET_MAX (1024 * 1024 + 4096)
#define GW_BUS_MAX_PAYLOAD (1024 * 1024)

static struct lws_protocols protocols[] = {
    {
        .name = "wsgw",
        .callback = gw_session_callback,
        .per_session_data_size = sizeof(gw_conn),
        /* Small receive buffer: it is allocated per connection, and larger
         * messages are reassembled in session.c anyway. */
        .rx_buffer_size = 128,
        .tx_packet_size = GW_TX_PACKET_MAX,
    },
    {NULL, NULL, 0, 0, 0, NULL, 0}, /* terminator */
};

static void on_bus_state(void *udata, int up)
{
    gw_server *s = udata;
    if (s->bus_up == up)
        return;
    s->bus_up = up;
    if (up)
        gw_channels_on_bus_up(s);
    else
        gw_channels_on_bus_down(s);
    if (up)
        gw_info("bus_up", NULL, "message bus connected; %zu channels subscribed",
                ps_subs_channels(s->subs));
    else
        gw_warn("bus_down", NULL, "message bus lost (%s); reconnecting",
                ps_bus_last_error(s->bus));
}

static int bus_create(gw_server *s)
{
    const gw_config *cfg = s->cfg;
    ps_bus_callbacks cb = {.on_message = gw_channels_on_message,
                           .on_state = on_bus_state,
                           .on_subscribed = gw_channels_on_subscribed,
                           .udata = s};
    ps_redis_opts o = {0};

    if (!cfg->redis_url) {
        s->bus = ps_inproc_bus_new(s->loop, &cb);
        s->bus_up = s->bus != NULL;
        gw_info("bus", NULL, "in-process bus: one process, no Redis");
        return s->bus ? 0 : -1;
    }
    if (ps_redis_url_parse(cfg->redis_url, &o.url) != PS_OK) {
        gw_error("config", NULL, "--redis: cannot parse '%s'", cfg->redis_url);
        return -1;
    }
    o.prefix = cfg->redis_prefix;
    o.max_payload = GW_BUS_MAX_PAYLOAD;
    s->bus = ps_redis_bus_new(s->loop, &o, &cb);
    if (!s->bus) {
        gw_error("config", NULL, "--redis: cannot use '%s:%d'", o.url.host, o.url.port);
        return -1;
    }
    gw_info("bus", NULL, "Redis bus %s:%d db %d prefix '%s'", o.url.host, o.url.port, o.url.db,
            cfg->redis_prefix);
    return 0;
}

/* ------------------------------------------------------------ readiness */

int gw_server_ready(const gw_server *s)
{
    return !s->stopping && s->bus_up && s->listener.active;
}

/* ------------------------------------------------------------ lws */

static void on_accept(void *arg, int fd)
{
    gw_server *s = arg;
    /* While draining, HTTP still gets in (/readyz says 503); upgrades do not. */
    if (s->stopping > GW_STOP_DRAINING) {
        close(fd);
        return;
    }
    /* --max-connects-per-ip: refused before lws spends anything on it. */
    if (!gw_limits_admit_fd(s, fd)) {
        close(fd);
        return;
    }
    /* On failure lws has already closed the fd (every path of adoption does). */
    if (!lws_adopt_socket_vhost(s->vhost, fd))
        gw_warn("adopt_failed", NULL, "lws could not take a new connection");
}

/* lws's own log lines become JSON lines like ours, so stderr stays one
 * format an operator can parse. */
static void lws_log_emit(int level, const char *line)
{
    size_t n = strlen(line);
    int lvl = level == LLL_ERR ? GW_LOG_ERROR : level == LLL_WARN ? GW_LOG_WARN : GW_LOG_DEBUG;
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    /* lws warns once per upgrade our filter refused (a limit, a drain, a
     * wrong path): under a connect flood that is a flood of warnings. The
     * refusals are counted in /metrics instead. */
    if (strstr(line, "denied connection"))
        lvl = GW_LOG_DEBUG;
    gw_log(lvl, "lws", NULL, "%.*s", (int)n, line);
}

static int lws_create(gw_server *s)
{
    struct lws_context_creation_info info;
    void *loops[1] = {s->loop};

    lws_set_log_level(LLL_ERR | LLL_WARN |
                          (gw_log_enabled(GW_LOG_DEBUG) ? LLL_NOTICE : 0),
                      lws_log_emit);
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS |
                   LWS_SERVER_OPTION_DISABLE_IPV6;
    info.foreign_loops = loops;
    info.user = s;
    /* Adopted sockets get this long to finish their HTTP request or upgrade
     * (lws arms the timeout at adoption and clears it at ESTABLISHED); both
     * are vhost settings, and the vhost below is made from this info. */
    info.timeout_secs = (unsigned int)s->cfg->handshake_timeout_s;
    info.timeout_secs_ah_idle = (unsigned int)s->cfg->handshake_timeout_s;
    s->ctx = lws_create_context(&info);
    if (!s->ctx) {
        gw_error("lws", NULL, "cannot create the lws context (is libwebsockets-evlib-uv "
                              "installed?)");
        return -1;
    }
    /* No retry_and_idle_policy: its ping and hangup timers are one lws sul
     * per connection, and lws inserts suls into a sorted list by walking it
     * (59% of the CPU while 15,000 clients connect). timers.c does keepalive
     * with one 1 s tick instead. */
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.vhost_name = "wsgw";
    info.server_string = "wsgw";
    s->vhost = lws_create_vhost(s->ctx, &info);
    if (!s->vhost) {
        gw_error("lws", NULL, "cannot create the lws vhost");
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ signals */

/* SIGTERM drains over --drain-seconds; SIGINT (Ctrl-C), or a second signal
 * during a drain, closes everybody at once. Both handles stay open until the
 * stop finishes so that the second signal is heard. */
static void on_signal(uv_signal_t *h, int signum)
{
    gw_server *s = h->data;
    gw_info("signal", NULL, "received signal %d", signum);
    if (signum == SIGTERM && !s->stopping)
        gw_server_stop(s, (uint64_t)s->cfg->drain_seconds * 1000);
    else
        gw_server_stop(s, 0);
}

static void on_handle_closed(uv_handle_t *h)
{
    (void)h;
}

void gw_server_close_signals(gw_server *s)
{
    if (!uv_is_closing((uv_handle_t *)&s->sig_term))
        uv_close((uv_handle_t *)&s->sig_term, on_handle_closed);
    if (!uv_is_closing((uv_handle_t *)&s->sig_int))
        uv_close((uv_handle_t *)&s->sig_int, on_handle_closed);
}

/* ------------------------------------------------------------ life cycle */

static void make_id_prefix(gw_server *s)
{
    unsigned char r[4];
    if (uv_random(NULL, NULL, r, sizeof(r), 0, NULL) != 0)
        memset(r, 0, sizeof(r));
    snprintf(s->id_prefix, sizeof(s->id_prefix), "%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
}

static int start_listening(gw_server *s)
{
    int rc = gw_listener_start(&s->listener, s->loop, s->cfg->listen_host, s->cfg->listen_port,
                               on_accept, s);
    if (rc < 0) {
        gw_error("listen", NULL, "cannot listen on %s: %s", s->cfg->listen, uv_strerror(rc));
        return -1;
    }
    gw_info("listening", NULL, "ws://%s/ws", s->cfg->listen);
    return 0;
}

static int load_statics(gw_server *s)
{
    char err[512];
    if (!s->cfg->static_dir)
        return 0;
    s->statics = gw_static_load(s->cfg->static_dir, err, sizeof(err));
    if (!s->statics) {
        gw_error("config", NULL, "%s", err);
        return -1;
    }
    gw_info("static_dir", NULL, "%zu files from %s", gw_static_count(s->statics),
            s->cfg->static_dir);
    return 0;
}

int gw_server_init(gw_server *s, const gw_config *cfg, uv_loop_t *loop)
{
    char err[512];
    memset(s, 0, sizeof(*s));
    s->cfg = cfg;
    s->loop = loop;
    s->listener.fd = -1;
    make_id_prefix(s);
    uv_timer_init(loop, &s->stop_timer);
    uv_timer_init(loop, &s->drain_timer);
    s->stop_timer.data = s->drain_timer.data = s;
    uv_signal_init(loop, &s->sig_term);
    uv_signal_init(loop, &s->sig_int);
    s->sig_term.data = s->sig_int.data = s;
    gw_timers_start(s);
    gw_flush_start(s);

    s->keys = gw_keyring_from_config(cfg, err, sizeof(err));
    if (!s->keys) {
        gw_error("config", NULL, "%s", err);
        return -1;
    }
    if (gw_api_init(s) < 0 || load_statics(s) < 0)
        return -1;
    s->max_connections = gw_limits_max_connections(cfg);
    if (cfg->max_connects_per_ip > 0 && !(s->ips = gw_ip_table_new()))
        return -1;
    s->subs = ps_subs_new();
    if (!s->subs || bus_create(s) < 0 || lws_create(s) < 0 || start_listening(s) < 0)
        return -1;
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    return 0;
}

int gw_server_run(gw_server *s)
{
    uv_run(s->loop, UV_RUN_DEFAULT);
    return s->exit_code;
}

void gw_server_destroy(gw_server *s)
{
    /* After a failed init nothing has run yet: close what init opened and
     * let the loop release it. */
    if (!s->stopping) {
        gw_server_stop_now(s);
        uv_run(s->loop, UV_RUN_DEFAULT);
    }
    if (s->ctx)
        lws_context_destroy(s->ctx);
    s->ctx = NULL;
    ps_bus_destroy(s->bus);
    s->bus = NULL;
    ps_subs_free(s->subs);
    s->subs = NULL;
    auth_keyring_free(s->keys);
    s->keys = NULL;
    gw_api_keys_free(s->api_keys);
    s->api_keys = NULL;
    gw_static_free(s->statics);
    s->statics = NULL;
    gw_ip_table_free(s->ips);
    s->ips = NULL;
}
