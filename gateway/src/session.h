/*
 * session: what a client connection says and how the gateway answers.
 *
 * The lws protocol callback of the gateway: WebSocket events go to the
 * first-message authentication and the command handlers, HTTP requests on
 * the same port to http.c.
 */
#ifndef GW_SESSION_H
#define GW_SESSION_H

#include <libwebsockets.h>

int gw_session_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                        size_t len);

#endif
