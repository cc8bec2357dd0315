/*
 * main: the wsgw executable.
 *
 * `wsgw` runs the gateway; `wsgw token` prints a signed token for development
 * and tests; `wsgw publish` publishes one message as a backend would. Parse,
 * build, run until a signal, destroy (with --workers N, in each of N forked
 * workers: supervisor.c): everything else lives in the files named after
 * what it does.
 */
#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "config.h"
#include "log.h"
#include "publish_cli.h"
#include "server.h"
#include "supervisor.h"
#include "token_cli.h"

/* One gateway process: the whole of it with --workers 1, else one worker. */
static int run_gateway(const gw_config *cfg, int worker)
{
    gw_server srv;
    uv_loop_t loop;
    int rc;

    (void)worker;
    uv_loop_init(&loop);
    rc = gw_server_init(&srv, cfg, &loop) == 0 ? gw_server_run(&srv) : GW_EXIT_INIT_FAILED;
    gw_server_destroy(&srv);
    if (uv_loop_close(&loop) != 0)
        gw_warn("loop_close", NULL, "handles still open at exit");
    gw_info("exit", NULL, "exit code %d", rc);
    return rc;
}

static int serve(int argc, char **argv)
{
    gw_config cfg;
    char err[512];
    int rc = gw_config_load(&cfg, argc, argv, err, sizeof(err), stdout);

    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "wsgw: %s\n", err);
        gw_config_free(&cfg);
        return rc < 0 ? 2 : 0;
    }
    gw_log_set_level(cfg.log_level);
    rc = cfg.workers > 1 ? gw_supervise(&cfg, run_gateway) : run_gateway(&cfg, -1);
    gw_config_free(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "token") == 0)
        return gw_token_main(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "publish") == 0)
        return gw_publish_main(argc - 1, argv + 1);
    return serve(argc, argv);
}
