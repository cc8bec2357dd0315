/*
 * jobs: simulated jobs, one libuv timer each (see jobs.h).
 *
 * A job is a step counter: step 0 publishes queued, steps 1..21 running
 * with progress 5 * (step - 1), step 22 done. A failing job picks its step
 * of failure at start. Each job's messages go through the publisher's FIFO,
 * so they reach the gateway in step order. A finished job closes its timer
 * and is freed in the close callback, not in the timer callback that
 * finished it.
 */
#include "jobs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tokens.h"

#define STEPS 22 /* steps after queued: 21 progress values, then the outcome */
#define QUEUED_EXTRA_MS 1000

typedef struct job job;

struct demo_jobs {
    uv_loop_t *loop;
    const demo_config *cfg;
    demo_publisher *pub;
    job *list; /* running jobs (and finished ones until their timer closed) */
    size_t n;
    int closing;
};

struct job {
    uv_timer_t timer;
    demo_jobs *owner_set;
    job *prev, *next;
    char id[DEMO_JOB_ID_LEN + 1];
    char channel[DEMO_JOB_ID_LEN + 8];
    char owner[DEMO_NAME_MAX + 1];
    int step;
    int fail_step; /* 0: never fails */
    uint64_t interval;
};

static void maybe_free(demo_jobs *j)
{
    if (j->closing && j->n == 0)
        free(j);
}

static void on_job_closed(uv_handle_t *h)
{
    job *b = h->data;
    demo_jobs *j = b->owner_set;
    if (b->prev)
        b->prev->next = b->next;
    else
        j->list = b->next;
    if (b->next)
        b->next->prev = b->prev;
    j->n--;
    free(b);
    maybe_free(j);
}

/* The data of `step`; returns 1 when it is the job's last message. */
static int step_data(const job *b, char *out, size_t len)
{
    if (b->step == 0) {
        snprintf(out, len, "{\"state\":\"queued\",\"message\":\"waiting for a worker\"}");
        return 0;
    }
    if (b->fail_step && b->step == b->fail_step) {
        snprintf(out, len,
                 "{\"state\":\"failed\",\"progress\":%d,\"message\":\"simulated failure: the "
                 "worker lost its disk\"}",
                 5 * (b->step - 2));
        return 1;
    }
    if (b->step < STEPS) {
        snprintf(out, len, "{\"state\":\"running\",\"progress\":%d,\"message\":\"step %d of 21\"}",
                 5 * (b->step - 1), b->step);
        return 0;
    }
    snprintf(out, len,
             "{\"state\":\"done\",\"progress\":100,\"message\":\"report ready\","
             "\"url\":\"/reports/%s.pdf\"}",
             b->id);
    return 1;
}

static void on_step(uv_timer_t *t)
{
    job *b = t->data;
    char data[256];
    int last = step_data(b, data, sizeof(data));
    if (demo_publisher_publish(b->owner_set->pub, b->channel, data) < 0)
        demo_warn("job_publish_dropped", "job %s: publish queue full, step %d lost", b->id,
                  b->step);
    if (last) {
        demo_info("job_finished", "job %s of %s: %s", b->id, b->owner,
                  b->fail_step ? "failed" : "done");
        uv_close((uv_handle_t *)&b->timer, on_job_closed);
        return;
    }
    /* The job stays queued a little longer than a step: the page that
     * started it has subscribed by then and sees every progress value. */
    uv_timer_start(&b->timer, on_step, b->interval + (b->step == 0 ? QUEUED_EXTRA_MS : 0), 0);
    b->step++;
}

/* A random id: 12 hex digits from the kernel's generator. */
static int make_id(char id[DEMO_JOB_ID_LEN + 1])
{
    unsigned char raw[DEMO_JOB_ID_LEN / 2];
    if (uv_random(NULL, NULL, raw, sizeof(raw), 0, NULL) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(id + 2 * i, 3, "%02x", raw[i]);
    return 0;
}

/* A uniform pick in 0..n-1 (n small; the modulo bias is irrelevant for a demo). */
static int pick(int n)
{
    unsigned int r = 0;
    uv_random(NULL, NULL, &r, sizeof(r), 0, NULL);
    return (int)(r % (unsigned)n);
}

int demo_jobs_start(demo_jobs *j, const char *owner, char id[DEMO_JOB_ID_LEN + 1])
{
    job *b;
    if (j->closing || j->n >= DEMO_JOBS_MAX || !(b = calloc(1, sizeof(*b))))
        return -1;
    if (make_id(b->id) < 0) {
        free(b);
        return -1;
    }
    snprintf(b->channel, sizeof(b->channel), "job:%s", b->id);
    snprintf(b->owner, sizeof(b->owner), "%s", owner);
    /* A failing job fails while running, somewhere between 10% and 80%. */
    if (pick(100) < j->cfg->fail_percent)
        b->fail_step = 4 + pick(14);
    b->owner_set = j;
    uv_timer_init(j->loop, &b->timer);
    b->timer.data = b;
    b->next = j->list;
    if (j->list)
        j->list->prev = b;
    j->list = b;
    j->n++;
    /* Step 0 (queued) at once, so the page has a state to show immediately. */
    b->interval = ((uint64_t)j->cfg->job_seconds * 1000 - QUEUED_EXTRA_MS) / STEPS;
    uv_timer_start(&b->timer, on_step, 0, 0);
    memcpy(id, b->id, sizeof(b->id));
    demo_info("job_started", "job %s for %s%s", b->id, owner, b->fail_step ? " (will fail)" : "");
    return 0;
}

demo_jobs *demo_jobs_new(uv_loop_t *loop, const demo_config *cfg, demo_publisher *pub)
{
    demo_jobs *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->loop = loop;
    j->cfg = cfg;
    j->pub = pub;
    return j;
}

void demo_jobs_close(demo_jobs *j)
{
    if (!j || j->closing)
        return;
    j->closing = 1;
    for (job *b = j->list; b; b = b->next)
        if (!uv_is_closing((uv_handle_t *)&b->timer))
            uv_close((uv_handle_t *)&b->timer, on_job_closed);
    maybe_free(j);
}
