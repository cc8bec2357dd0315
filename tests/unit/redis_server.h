/*
 * redis-server processes for the unit tests that need a real Redis
 * (test_redis_bus.c, test_history.c), and the synchronous hiredis calls
 * they check Redis with.
 *
 * Servers run from a temporary directory with no persistence, on ports
 * found free by binding port 0. servers_teardown kills whatever is still
 * running, so a failed assertion leaves no redis-server behind. The
 * functions fail the running cmocka test when a server will not start.
 * Include after <cmocka.h>.
 */
#ifndef WSGW_TESTS_REDIS_SERVER_H
#define WSGW_TESTS_REDIS_SERVER_H

#include <sys/types.h>

#include <hiredis/hiredis.h>

#define WAIT_MS 5000 /* generous: shared CI machines are slow */
#define MAX_SERVERS 4

typedef struct server {
    pid_t pid;
    int port;
} server;

/* Shared by the tests that do not kill it; started by servers_setup. */
extern server main_server;

/* cmocka group setup and teardown: a temporary directory and main_server;
 * teardown kills every server and removes the directory. */
int servers_setup(void **state);
int servers_teardown(void **state);

/* A free slot for a server of the running test, killed by
 * kill_extra_servers (call it from the test's teardown). */
server *extra_server(void);
void kill_extra_servers(void);

int free_port(void);
void sleep_ms(int ms);
/* Starts redis-server on port (extra args appended, NULL-terminated) and
 * waits until it answers PING. */
void server_start(server *s, int port, const char *password, const char *const *extra);
void server_kill(server *s);
/* SIGSTOP, returning once the kernel reports the process stopped. */
void server_freeze(server *s);

/* A sync connection (AUTH when password), or NULL. */
redisContext *sync_connect(int port, const char *password);
/* Runs one command on a fresh sync connection; the reply or NULL. */
redisReply *sync_command(int port, const char *password, const char *fmt, ...);

#endif
