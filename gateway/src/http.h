/*
 * http: the plain HTTP endpoints of a gateway process.
 *
 * /healthz (liveness), /readyz (readiness: accepting clients and the bus is
 * up), /metrics (Prometheus text), --static-dir's files, and the check that
 * lets a WebSocket upgrade through only on /ws.
 */
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <libwebsockets.h>

#include "server.h"

/* LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: 0 lets the upgrade through. */
int gw_http_filter_upgrade(gw_server *s, struct lws *wsi);
/* Every callback reason the session does not handle itself. */
int gw_http_callback(gw_server *s, struct lws *wsi, enum lws_callback_reasons reason, void *user,
                     void *in, size_t len);

#endif
