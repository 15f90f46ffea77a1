/* test_train_group_net.c: the CPU backend's data parallel step: 2 ranks (processes) at
 * batch B, their gradients averaged by train_group before each SGD step, end K steps
 * with the weights of 1 trainer at batch 2B on the same samples, for a model without
 * batch norm (with it, each rank normalises by its own B samples: another function).
 * Tolerance: 1e-5 relative per weight (the mean of two B-sample means rounds otherwise
 * than one 2B-sample mean; measured ~1e-7), and the ranks bit-identical to each other. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "cpu_net.h"
#include "model.h"
#include "test_nobn.h"
#include "test_loader_fixture.h"
#include "train_group.h"

enum { B = 4, WORLD = 2, K = 4, C = 3, S = 8, CLASSES = 5 };

static void build(Model *m) { cr_assert_eq(test_nobn_build(m, C, S, CLASSES), 0, "%s", m->err.msg); }

/* Sample i of the whole run: inputs and a label, the same for every process. */
static void sample(size_t i, float *x, int32_t *label) { test_nobn_sample(i, C, S, CLASSES, x, label); }

/* K SGD steps at batch `batch` on the samples of rank `rank` of `world` (group step k
 * holds samples [k*world*batch, (k+1)*world*batch), rank r the r-th batch of them);
 * with g, the gradients are averaged over the group first. Writes the parameters. */
static int train(int batch, int rank, int world, TrainGroup *g, float *params_out, StkErr *err) {
    static Model m;
    static CpuNet net;
    build(&m);
    if (m.failed) return stk_errf(err, "%s", m.err.msg);
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0.9, 0.999, 1e-8};
    if (cpu_net_init(&net, &m, batch, &opt, err)) return -1;
    model_init_params(&m, net.params, 3);
    size_t per = (size_t)C * S * S;
    int32_t labels[2 * B];
    for (int k = 0; k < K; k++) {
        for (int i = 0; i < batch; i++)
            sample((size_t)(k * world + rank) * batch + i, cpu_net_input(&net) + i * per, &labels[i]);
        const float *logits;
        double loss;
        if (cpu_net_forward(&net, 1, 1, &logits, err) || cpu_net_backward(&net, labels, 0, 1, &loss, err))
            return -1;
        if (g && train_group_mean(g, net.grads, m.trainable_floats, err)) return -1;
        cpu_net_step(&net, 0.1, 1e-4, 0);
    }
    memcpy(params_out, net.params, m.total_floats * 4);
    cpu_net_free(&net);
    return 0;
}

/* A rank's process: joins the group, trains, writes its weights to path. */
static int rank_main(int rank, const char *ep, const char *path) {
    StkErr err;
    void *ctx = zmq_ctx_new();
    TrainGroup g;
    static float params[1 << 16];
    int rc = train_group_open(&g, ctx, ep, rank, WORLD, &err);
    g.timeout_ms = 30000; /* a peer that failed: give up well inside the test's timeout */
    if (rc || train(B, rank, WORLD, &g, params, &err)) {
        fprintf(stderr, "rank %d: %s\n", rank, err.msg);
        return 1;
    }
    train_group_close(&g);
    zmq_ctx_term(ctx);
    static Model m;
    build(&m);
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(params, 4, m.total_floats, f) == m.total_floats;
    if (f) fclose(f);
    return ok ? 0 : 1;
}

Test(train_group_net, two_ranks_at_b_step_as_one_trainer_at_2b, .timeout = 60) {
    char *root = fx_tmpdir(), ep[600], path[WORLD][600];
    snprintf(ep, sizeof ep, "ipc://%s/g", root);
    pid_t pid[WORLD];
    for (int r = 0; r < WORLD; r++) {
        snprintf(path[r], sizeof path[r], "%s/rank%d.bin", root, r);
        if ((pid[r] = fork()) == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test must not leave a rank waiting */
            _exit(rank_main(r, ep, path[r]));
        }
        cr_assert_gt(pid[r], 0);
    }
    int ok[WORLD];
    for (int r = 0; r < WORLD; r++) {
        int st;
        ok[r] = waitpid(pid[r], &st, 0) == pid[r] && WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (!ok[r]) /* the other would wait for it until its timeout */
            for (int q = 0; q < WORLD; q++) kill(pid[q], SIGKILL);
    }
    for (int r = 0; r < WORLD; r++) cr_assert(ok[r], "rank %d failed (its stderr says why)", r);
    static Model m;
    build(&m);
    static float ref[1 << 16], got[WORLD][1 << 16];
    StkErr err;
    cr_assert_eq(train(WORLD * B, 0, 1, NULL, ref, &err), 0, "%s", err.msg);
    for (int r = 0; r < WORLD; r++) {
        FILE *f = fopen(path[r], "rb");
        cr_assert(f && fread(got[r], 4, m.total_floats, f) == m.total_floats, "%s", path[r]);
        fclose(f);
    }
    cr_assert_eq(memcmp(got[0], got[1], m.total_floats * 4), 0, "the ranks hold the same weights");
    double worst = 0, moved = 0;
    static float init[1 << 16];
    model_init_params(&m, init, 3);
    for (uint64_t i = 0; i < m.total_floats; i++) {
        worst = fmax(worst, fabs((double)got[0][i] - ref[i]) / fmax(fabs((double)ref[i]), 1e-3));
        moved = fmax(moved, fabs((double)ref[i] - init[i]));
    }
    printf("train_group_net: 2 x %d vs 1 x %d after %d steps: largest relative difference %.3g\n",
           B, WORLD * B, K, worst);
    cr_assert_gt(moved, 1e-3, "the steps changed the weights (else the comparison says nothing)");
    cr_assert_leq(worst, 1e-5, "largest relative difference %.3g", worst);
    fx_rmtree(root);
    free(root);
}
