/*
 * http: the small HTTP/1.1 server of wsgw-demo, on libuv.
 *
 * The demo backend answers a handful of requests from its own page (the
 * page's files, a login, starting a job), so this server does only what
 * that needs: one request per connection (every answer says
 * Connection: close), bodies by Content-Length only, bounded sizes, an idle
 * timeout and a cap on open connections. The handler runs synchronously
 * and fills a reply; nothing here knows what the routes are.
 */
#ifndef DEMO_HTTP_H
#define DEMO_HTTP_H

#include <stddef.h>
#include <uv.h>

#define DEMO_HTTP_MAX_HEADER 8192 /* request line and headers together */
#define DEMO_HTTP_MAX_BODY 4096   /* the demo's requests are tiny JSON objects */
#define DEMO_HTTP_MAX_CONNS 256   /* more concurrent connections are refused */
#define DEMO_HTTP_IDLE_MS 10000   /* a request must arrive complete within this */

/* One parsed request. Every pointer is valid for the duration of the
 * handler call only. */
typedef struct demo_http_request {
    char method[8];
    char path[256];           /* the target without its query string */
    char host[256];           /* the Host header, "" when absent */
    char authorization[2048]; /* the Authorization header, "" when absent */
    char content_type[128];   /* the Content-Type header, "" when absent */
    const char *body;         /* NUL-terminated, body_len bytes */
    size_t body_len;
} demo_http_request;

/* What the handler answers. The handler sets body with demo_http_reply_*;
 * the server owns and frees it after writing. */
typedef struct demo_http_reply {
    int status;
    const char *content_type; /* static string */
    char headers[1024];       /* extra header lines, each ending in \r\n */
    char *body;               /* malloc'd, owned by the reply */
    size_t body_len;
} demo_http_reply;

/* Handles one request. `ud` is the pointer given to demo_http_start. */
typedef void (*demo_http_handler_cb)(void *ud, const demo_http_request *req,
                                     demo_http_reply *reply);

typedef struct demo_http_server demo_http_server;

/* Listens on host:port and calls `handler` for every complete request.
 * Returns the server, or NULL with a reason in err. */
demo_http_server *demo_http_start(uv_loop_t *loop, const char *host, int port,
                                  demo_http_handler_cb handler, void *ud, char *err, size_t errlen);

/* Stops listening and closes every connection. The server frees itself once
 * libuv has closed all its handles; do not use it afterwards. */
void demo_http_stop(demo_http_server *s);

/* Sets the reply's body to a copy of `len` bytes of `data` (and the status
 * and type). Returns 0, or -1 when out of memory (the reply becomes a 500). */
int demo_http_reply_set(demo_http_reply *r, int status, const char *content_type, const char *data,
                        size_t len);

/* Sets a JSON body {"error":"<reason>"} with `status`. */
void demo_http_reply_error(demo_http_reply *r, int status, const char *reason);

/* Appends one header line ("Name: value"). Returns 0, or -1 (and appends
 * nothing) when it does not fit: a header is never sent cut short. */
int demo_http_reply_header(demo_http_reply *r, const char *name, const char *value);

#endif
