/*
 * app: wsgw-demo put together: the page's files, the token signer, the
 * publisher, the job runner and the HTTP server with the demo's routes.
 *
 *   GET  /, /app.js, /style.css, /wsgw-client.js   the page (strict CSP)
 *   GET  /healthz                                   200 while running
 *   POST /demo/login  {"name":"alice"}              a connection token and the gateway URLs
 *   POST /demo/jobs   (Bearer connection token)     starts a job: its id and a subscription token
 */
#ifndef DEMO_APP_H
#define DEMO_APP_H

#include <stddef.h>
#include <uv.h>

#include "config.h"

typedef struct demo_app demo_app;

/* Loads the files, resolves the gateways and starts listening. Returns the
 * app, or NULL with a reason in err (what was started is already being
 * closed: run the loop until it is empty). cfg must outlive the app. */
demo_app *demo_app_start(uv_loop_t *loop, const demo_config *cfg, char *err, size_t errlen);

/* Stops listening, stops the jobs, drops unsent messages and frees the app;
 * the loop then ends once libuv has closed every handle. */
void demo_app_stop(demo_app *a);

#endif
