/*
 * redis-server processes for the unit tests (see redis_server.h): fork and
 * exec with no persistence, wait for PING, kill with SIGKILL (which also
 * ends a frozen one), and the sync hiredis helpers the tests check Redis
 * with.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "redis_server.h"

server main_server;

static struct {
    char dir[64];
    server extra[MAX_SERVERS]; /* started and killed by single tests */
} G;

int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

redisContext *sync_connect(int port, const char *password)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    redisReply *r;

    if (!c || c->err) {
        redisFree(c);
        return NULL;
    }
    if (password) {
        r = redisCommand(c, "AUTH %s", password);
        freeReplyObject(r);
    }
    return c;
}

static int server_answers(int port, const char *password)
{
    redisContext *c = sync_connect(port, password);
    redisReply *r = c ? redisCommand(c, "PING") : NULL;
    int ok = r && r->type == REDIS_REPLY_STATUS;

    freeReplyObject(r);
    redisFree(c);
    return ok;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

void server_start(server *s, int port, const char *password, const char *const *extra)
{
    char portstr[16];
    const char *argv[32] = {"redis-server", "--port",     portstr,  "--bind",
                            "127.0.0.1",    "--save",     "",       "--appendonly",
                            "no",           "--dir",      G.dir,    "--daemonize",
                            "no",           "--loglevel", "warning"};
    int argc = 15, i;

    snprintf(portstr, sizeof(portstr), "%d", port);
    for (i = 0; extra && extra[i]; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;
    s->port = port;
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        freopen("/dev/null", "w", stdout);
        execvp("redis-server", (char *const *)argv);
        _exit(127);
    }
    for (i = 0; i < WAIT_MS / 10 && !server_answers(port, password); i++)
        sleep_ms(10);
    assert_true(server_answers(port, password));
}

void server_kill(server *s)
{
    if (s->pid <= 0)
        return;
    /* SIGKILL ends a stopped (SIGSTOP) process too; no SIGCONT first, or
     * a frozen Redis would get to answer what it holds. */
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

/* kill() only queues the signal, and a Redis still running would answer. */
void server_freeze(server *s)
{
    char path[64], buf[256];
    const char *state;
    int i;

    assert_int_equal(kill(s->pid, SIGSTOP), 0);
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)s->pid);
    for (i = 0; i < WAIT_MS; i++) {
        FILE *fp = fopen(path, "r");
        size_t n = fp ? fread(buf, 1, sizeof(buf) - 1, fp) : 0;
        if (fp)
            fclose(fp);
        buf[n] = '\0';
        /* "pid (comm) S ...": the state follows the last ')'. */
        state = strrchr(buf, ')');
        if (state && state[1] == ' ' && state[2] == 'T')
            return;
        sleep_ms(1);
    }
    fail_msg("redis-server did not stop");
}

server *extra_server(void)
{
    int i;

    for (i = 0; i < MAX_SERVERS; i++)
        if (G.extra[i].pid == 0)
            return &G.extra[i];
    fail_msg("too many servers");
    return NULL;
}

void kill_extra_servers(void)
{
    int i;

    for (i = 0; i < MAX_SERVERS; i++)
        server_kill(&G.extra[i]);
}

int servers_setup(void **state)
{
    snprintf(G.dir, sizeof(G.dir), "/tmp/wsgw-test-redis-XXXXXX");
    if (!mkdtemp(G.dir))
        return -1;
    server_start(&main_server, free_port(), NULL, NULL);
    return 0;
}

int servers_teardown(void **state)
{
    char cmd[128];

    server_kill(&main_server);
    kill_extra_servers();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", G.dir);
    return system(cmd) == 0 ? 0 : -1;
}

redisReply *sync_command(int port, const char *password, const char *fmt, ...)
{
    redisContext *c = sync_connect(port, password);
    redisReply *r = NULL;
    va_list ap;

    if (!c)
        return NULL;
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}
