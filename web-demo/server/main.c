/*
 * wsgw-demo: the web demo's backend, standing in for the backend of an app
 * that uses wsgw. It serves the demo page, signs connection tokens for any
 * name typed in (which is why it refuses to start without --insecure-demo),
 * and runs simulated jobs that publish their progress through the gateways'
 * HTTP publish API. Parse options, start, run until SIGINT/SIGTERM, stop.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include <uv.h>

#include "app.h"
#include "config.h"
#include "log.h"

typedef struct run_state {
    demo_app *app;
    uv_signal_t sigint, sigterm;
} run_state;

static void on_signal(uv_signal_t *s, int signum)
{
    run_state *st = s->data;
    demo_info("stopping", "signal %d", signum);
    demo_app_stop(st->app);
    st->app = NULL;
    uv_close((uv_handle_t *)&st->sigint, NULL);
    uv_close((uv_handle_t *)&st->sigterm, NULL);
}

int main(int argc, char **argv)
{
    demo_config cfg;
    run_state st = {0};
    char err[512];
    int rc = demo_config_load(&cfg, argc, argv, err, sizeof(err), stdout);
    uv_loop_t *loop = uv_default_loop();

    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "wsgw-demo: %s\n", err);
        demo_config_free(&cfg);
        return rc < 0 ? 2 : 0;
    }
    st.app = demo_app_start(loop, &cfg, err, sizeof(err));
    if (!st.app) {
        fprintf(stderr, "wsgw-demo: %s\n", err);
        rc = 1;
    } else {
        uv_signal_init(loop, &st.sigint);
        uv_signal_init(loop, &st.sigterm);
        st.sigint.data = st.sigterm.data = &st;
        uv_signal_start(&st.sigint, on_signal, SIGINT);
        uv_signal_start(&st.sigterm, on_signal, SIGTERM);
        demo_info("listening", "http://%s:%d/ (gateways: %zu)", cfg.listen_host, cfg.listen_port,
                  cfg.n_gateways);
    }
    uv_run(loop, UV_RUN_DEFAULT); /* after a failed start: closes what was opened */
    uv_loop_close(loop);
    demo_config_free(&cfg);
    return rc;
}
