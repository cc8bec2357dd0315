/*
 * config: the demo backend's command line, and the two secrets it names.
 *
 * The demo signs a connection token for any name typed into its page, so it
 * refuses to start without --insecure-demo: nobody should mistake it for a
 * login. The secret (the gateways' --jwt-secret-file) and the API key (one
 * of the gateways' --api-key-file keys) are read here, once, at start.
 */
#ifndef DEMO_CONFIG_H
#define DEMO_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#define DEMO_MAX_GATEWAYS 8

/* One gateway: where browsers connect and where the backend publishes. */
typedef struct demo_gateway {
    char url[256];  /* browser URL as given by --gateway; "" with --gateway-ports */
    char host[128]; /* publish target: host name or address, without brackets */
    int port;
} demo_gateway;

typedef struct demo_config {
    char listen_host[64];
    int listen_port;
    const char *secret_file;
    const char *api_key_file;
    const char *static_dir;
    demo_gateway gateways[DEMO_MAX_GATEWAYS];
    size_t n_gateways;
    int by_ports;      /* browser URLs are built from the request's Host (--gateway-ports) */
    int insecure_demo; /* --insecure-demo given */
    int job_seconds;   /* default duration of a simulated job */
    int token_ttl;     /* seconds a connection or subscription token lives */
    int fail_percent;  /* chance (0..100) that a simulated job fails part way */
    char *secret;      /* HMAC secret, trailing newlines stripped */
    size_t secret_len;
    char *api_key; /* the first key of --api-key-file */
} demo_config;

/* Fills *c from argv and reads the two files. Returns 0, 1 when --help was
 * printed to out, -1 with a one-line reason in err. The caller frees *c with
 * demo_config_free in every case. */
int demo_config_load(demo_config *c, int argc, char **argv, char *err, size_t errlen, FILE *out);
/* Prints the --help text. */
void demo_config_usage(FILE *out);
/* Wipes and frees the secrets. */
void demo_config_free(demo_config *c);

/* Splits "host:port" (IPv4, name or [IPv6]; brackets removed). Returns 0 or -1. */
int demo_parse_hostport(const char *s, size_t len, char *host, size_t hostlen, int *port);

#endif
