/*
 * supervisor: forks the workers, restarts the ones that die, passes signals.
 *
 * The supervisor runs no event loop and opens no socket: it forks before
 * anything else exists, so a worker starts from a clean process (libuv's
 * and lws's global state are created in the worker, after the fork). It
 * waits for signals with sigtimedwait(), the timeout being the next restart
 * that is due; SIGCHLD, SIGTERM and SIGINT stay blocked in the supervisor
 * and are unblocked in each worker.
 *
 * Restarts back off per worker slot: 100 ms doubling to 10 s, back to
 * 100 ms once a worker has stayed up for a minute, so a worker that crashes
 * at once does not spin. A worker that exits with GW_EXIT_INIT_FAILED could
 * not start at all (a key file it cannot read, a port it cannot bind):
 * restarting cannot fix that, so everything stops with an error.
 *
 * Workers get PR_SET_PDEATHSIG: if the supervisor is killed outright they
 * are sent SIGTERM and drain instead of living on unsupervised.
 */
#include "supervisor.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 10000
#define STABLE_MS 60000 /* up this long: the next crash restarts fast again */

typedef struct worker {
    pid_t pid;            /* 0: not running */
    uint64_t started_ms;
    uint64_t restart_at;  /* 0: no restart pending */
    uint64_t backoff_ms;
} worker;

typedef struct supervisor {
    const gw_config *cfg;
    gw_worker_fn *run;
    worker *w;
    int n;
    int stopping;         /* the signal passed on, or 0 */
    int failed;           /* a worker could not start, or exited badly while stopping */
    sigset_t blocked, old_mask;
} supervisor;

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static int spawn(supervisor *sv, int i)
{
    pid_t pid = fork();
    if (pid < 0) {
        gw_error("worker_fork_failed", NULL, "worker %d: %s", i, strerror(errno));
        return -1;
    }
    if (pid == 0) {
        /* The worker: SIGTERM if the supervisor goes away, its own signals. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() == 1)
            _exit(0); /* the supervisor died before prctl took effect */
        sigprocmask(SIG_SETMASK, &sv->old_mask, NULL);
        gw_log_set_worker(i);
        _exit(sv->run(sv->cfg, i));
    }
    sv->w[i].pid = pid;
    sv->w[i].started_ms = now_ms();
    sv->w[i].restart_at = 0;
    gw_info("worker_started", NULL, "worker %d pid %d", i, (int)pid);
    return 0;
}

static void schedule_restart(supervisor *sv, int i)
{
    worker *w = &sv->w[i];
    uint64_t now = now_ms();
    if (now - w->started_ms >= STABLE_MS || w->backoff_ms == 0)
        w->backoff_ms = BACKOFF_MIN_MS;
    else if ((w->backoff_ms *= 2) > BACKOFF_MAX_MS)
        w->backoff_ms = BACKOFF_MAX_MS;
    w->restart_at = now + w->backoff_ms;
    gw_info("worker_restart_scheduled", NULL, "worker %d in %llu ms", i,
            (unsigned long long)w->backoff_ms);
}

static void signal_all(supervisor *sv, int sig)
{
    for (int i = 0; i < sv->n; i++) {
        sv->w[i].restart_at = 0;
        if (sv->w[i].pid > 0)
            kill(sv->w[i].pid, sig);
    }
}

static void on_exit_of(supervisor *sv, int i, int status)
{
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    sv->w[i].pid = 0;
    if (WIFSIGNALED(status))
        gw_warn("worker_died", NULL, "worker %d killed by signal %d", i, WTERMSIG(status));
    else
        gw_log(code == 0 ? GW_LOG_INFO : GW_LOG_WARN, "worker_exited", NULL,
               "worker %d exit code %d", i, code);
    if (sv->stopping) {
        if (code != 0)
            sv->failed = 1;
        return;
    }
    if (code == GW_EXIT_INIT_FAILED) {
        gw_error("worker_init_failed", NULL, "worker %d could not start; stopping", i);
        sv->failed = 1;
        sv->stopping = SIGTERM;
        signal_all(sv, SIGTERM);
        return;
    }
    schedule_restart(sv, i);
}

static void reap(supervisor *sv)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < sv->n; i++) {
            if (sv->w[i].pid == pid) {
                on_exit_of(sv, i, status);
                break;
            }
        }
    }
}

static void restart_due(supervisor *sv)
{
    uint64_t now = now_ms();
    for (int i = 0; i < sv->n; i++) {
        if (sv->w[i].restart_at && sv->w[i].restart_at <= now && spawn(sv, i) < 0)
            schedule_restart(sv, i);
    }
}

/* Milliseconds until the next pending restart, or -1 for none. */
static int64_t next_timeout(const supervisor *sv)
{
    uint64_t now = now_ms(), next = 0;
    for (int i = 0; i < sv->n; i++) {
        if (sv->w[i].restart_at && (!next || sv->w[i].restart_at < next))
            next = sv->w[i].restart_at;
    }
    if (!next)
        return -1;
    return next > now ? (int64_t)(next - now) : 0;
}

static int running(const supervisor *sv)
{
    int n = 0;
    for (int i = 0; i < sv->n; i++)
        n += sv->w[i].pid > 0;
    return n;
}

static void on_signal(supervisor *sv, int sig)
{
    if (sig == SIGCHLD) {
        reap(sv);
        return;
    }
    /* A second signal is passed on too: it cuts the workers' drain short. */
    gw_info("signal", NULL, "supervisor received signal %d; passing it to %d workers", sig,
            running(sv));
    sv->stopping = sig;
    signal_all(sv, sig);
}

static void wait_once(supervisor *sv)
{
    int64_t ms = next_timeout(sv);
    struct timespec ts = {0};
    int sig;
    if (ms >= 0) {
        ts.tv_sec = ms / 1000;
        ts.tv_nsec = (ms % 1000) * 1000000;
    }
    sig = ms >= 0 ? sigtimedwait(&sv->blocked, NULL, &ts) : sigwaitinfo(&sv->blocked, NULL);
    if (sig > 0)
        on_signal(sv, sig);
    else if (sig < 0 && errno == EAGAIN)
        restart_due(sv);
    /* SIGCHLD may stand for several children: reap catches them all. */
}

int gw_supervise(const gw_config *cfg, gw_worker_fn *run)
{
    supervisor sv = {.cfg = cfg, .run = run, .n = (int)cfg->workers};

    sv.w = calloc((size_t)sv.n, sizeof(*sv.w));
    if (!sv.w) {
        gw_error("out_of_memory", NULL, "cannot supervise %d workers", sv.n);
        return 1;
    }
    sigemptyset(&sv.blocked);
    sigaddset(&sv.blocked, SIGCHLD);
    sigaddset(&sv.blocked, SIGTERM);
    sigaddset(&sv.blocked, SIGINT);
    sigprocmask(SIG_BLOCK, &sv.blocked, &sv.old_mask);
    gw_info("supervisor", NULL, "starting %d workers on %s", sv.n, cfg->listen);

    for (int i = 0; i < sv.n; i++) {
        if (spawn(&sv, i) < 0)
            schedule_restart(&sv, i);
    }
    while (!sv.stopping || running(&sv) > 0)
        wait_once(&sv);

    sigprocmask(SIG_SETMASK, &sv.old_mask, NULL);
    free(sv.w);
    gw_info("supervisor_exit", NULL, "all workers stopped");
    return sv.failed ? 1 : 0;
}
