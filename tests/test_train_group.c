/* test_train_group.c: the ranks' broadcast and mean (train_group.h), each rank a thread
 * with its own socket on one context: the mean is exact and the same bits on every
 * rank, a broadcast reaches everyone, ranks out of step fail naming both rounds, a
 * missing rank times out by name, and a stop ends a wait. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "train_group.h"

#define EP "inproc://group"
enum { MAXW = 4, N = 1000 };

typedef struct Rank {
    int rank, world, timeout_ms;
    size_t n;         /* floats this rank offers to the mean */
    int rounds;       /* means to take part in */
    float x[N];
    int rc;
    StkErr err;
} Rank;

static void *ctx;
static atomic_int stop_now;

static int stop_fn(void *c) {
    (void)c;
    return atomic_load(&stop_now);
}

static void *run_rank(void *arg) {
    Rank *r = arg;
    TrainGroup g;
    if ((r->rc = train_group_open(&g, ctx, EP, r->rank, r->world, &r->err))) return NULL;
    g.timeout_ms = r->timeout_ms ? r->timeout_ms : 10000;
    g.stop = stop_fn;
    for (int k = 0; k < r->rounds && !r->rc; k++) r->rc = train_group_mean(&g, r->x, r->n, &r->err);
    train_group_close(&g);
    return NULL;
}

/* Rank 0 first (it binds), then the others; waits for all. */
static void run_group(Rank *ranks, int world) {
    pthread_t t[MAXW];
    for (int r = 0; r < world; r++) {
        cr_assert_eq(pthread_create(&t[r], NULL, run_rank, &ranks[r]), 0);
        if (r == 0) usleep(20000);
    }
    for (int r = 0; r < world; r++) pthread_join(t[r], NULL);
}

static void setup(void) {
    ctx = zmq_ctx_new();
    atomic_store(&stop_now, 0);
}
static void teardown(void) { zmq_ctx_term(ctx); }
TestSuite(train_group, .init = setup, .fini = teardown, .timeout = 30);

Test(train_group, mean_over_three_ranks_is_exact_and_identical) {
    static Rank r[3];
    for (int k = 0; k < 3; k++) {
        r[k] = (Rank){.rank = k, .world = 3, .n = N, .rounds = 1};
        for (int i = 0; i < N; i++) r[k].x[i] = (float)(k * 3 + i % 7) - 0.5f * (float)(i % 3);
    }
    run_group(r, 3);
    for (int k = 0; k < 3; k++) cr_assert_eq(r[k].rc, 0, "rank %d: %s", k, r[k].err.msg);
    for (int i = 0; i < N; i++) {
        /* (3i%7 + (3i%7 + 3) + (3i%7 + 6)) / 3 - the shared offset: exact in float */
        float want = (float)(3 + i % 7) - 0.5f * (float)(i % 3);
        cr_assert_eq(r[0].x[i], want, "x[%d] = %g, want %g", i, r[0].x[i], want);
        cr_assert_eq(memcmp(&r[1].x[i], &r[0].x[i], 4), 0, "rank 1 differs at %d", i);
        cr_assert_eq(memcmp(&r[2].x[i], &r[0].x[i], 4), 0, "rank 2 differs at %d", i);
    }
}

Test(train_group, many_rounds_keep_step) {
    static Rank r[2];
    for (int k = 0; k < 2; k++) {
        r[k] = (Rank){.rank = k, .world = 2, .n = 8, .rounds = 50};
        for (int i = 0; i < 8; i++) r[k].x[i] = k ? 4.0f : 0.0f;
    }
    run_group(r, 2);
    cr_assert_eq(r[0].rc, 0, "%s", r[0].err.msg);
    cr_assert_eq(r[1].rc, 0, "%s", r[1].err.msg);
    /* the first mean gives 2 everywhere, every later one keeps it */
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(r[0].x[i], 2.0f);
        cr_assert_eq(r[1].x[i], 2.0f);
    }
}

static void *broadcast_rank(void *arg) {
    Rank *r = arg;
    TrainGroup g;
    if ((r->rc = train_group_open(&g, ctx, EP, r->rank, r->world, &r->err))) return NULL;
    r->rc = train_group_broadcast(&g, r->x, sizeof r->x, &r->err);
    train_group_close(&g);
    return NULL;
}

Test(train_group, broadcast_gives_rank_0s_bytes_to_all) {
    static Rank r[3];
    pthread_t t[3];
    for (int k = 0; k < 3; k++) {
        r[k] = (Rank){.rank = k, .world = 3};
        for (int i = 0; i < N; i++) r[k].x[i] = (float)(k * 1000 + i);
        cr_assert_eq(pthread_create(&t[k], NULL, broadcast_rank, &r[k]), 0);
        if (!k) usleep(20000);
    }
    for (int k = 0; k < 3; k++) pthread_join(t[k], NULL);
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(r[k].rc, 0, "rank %d: %s", k, r[k].err.msg);
        cr_assert_eq(memcmp(r[k].x, r[0].x, sizeof r[0].x), 0, "rank %d kept its own", k);
        cr_assert_eq(r[k].x[5], 5.0f);
    }
}

Test(train_group, ranks_out_of_step_fail_naming_both) {
    static Rank r[2];
    r[0] = (Rank){.rank = 0, .world = 2, .n = 10, .rounds = 1};
    r[1] = (Rank){.rank = 1, .world = 2, .n = 12, .rounds = 1, .timeout_ms = 600};
    run_group(r, 2);
    cr_assert_eq(r[0].rc, -1);
    cr_assert(strstr(r[0].err.msg, "expected gradients of round 0, 40 bytes; rank 1 sent gradients "
                                    "of round 0, 48 bytes"), "%s", r[0].err.msg);
    cr_assert_eq(r[1].rc, -1, "rank 1 gets no answer: it times out");
}

Test(train_group, a_missing_rank_times_out_by_name) {
    static Rank r[3];
    r[0] = (Rank){.rank = 0, .world = 3, .n = 4, .rounds = 1, .timeout_ms = 600};
    r[1] = (Rank){.rank = 1, .world = 3, .n = 4, .rounds = 1, .timeout_ms = 600};
    run_group(r, 2); /* rank 2 never starts */
    cr_assert_eq(r[0].rc, -1);
    cr_assert(strstr(r[0].err.msg, "missing ranks: 2"), "%s", r[0].err.msg);
}

static void *stop_later(void *arg) {
    (void)arg;
    usleep(300000);
    atomic_store(&stop_now, 1);
    return NULL;
}

Test(train_group, a_stop_ends_the_wait) {
    static Rank r[1];
    r[0] = (Rank){.rank = 0, .world = 2, .n = 4, .rounds = 1};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, stop_later, NULL), 0);
    run_group(r, 1);
    pthread_join(t, NULL);
    cr_assert_eq(r[0].rc, TRAIN_GROUP_STOPPED, "%d: %s", r[0].rc, r[0].err.msg);
}
