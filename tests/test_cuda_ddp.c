/* test_cuda_ddp.c: NCCL data parallel (cuda_ddp.h) on 2 GPUs, one process per rank as
 * stoker-train runs it: 2 ranks at batch B, gradients all-reduced (ncclAvg) in small
 * buckets so several overlap the backward, end K SGD steps with the weights of 1 GPU
 * at batch 2B on the same samples, on a model without batch norm (with it each rank
 * normalises its own B samples: another function). Strict float32 (no TF32).
 * Tolerance: 1e-4 relative per weight (floor 1e-3): cuDNN may pick other algorithms
 * at batch B and 2B, which sum in other orders (a few 1e-6 per step); the two ranks must
 * hold bit-identical weights (every rank gets the same all-reduce result). Skips with a
 * message on hosts with fewer than 2 GPUs (CI, single-GPU machines). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cuda_check.h"
#include "cuda_ddp.h"
#include "cuda_device.h"
#include "model.h"
#include "test_nobn.h"
#include "test_loader_fixture.h"

enum { B = 4, WORLD = 2, K = 4, C = 3, S = 8, CLASSES = 5, MAXF = 1 << 16 };
#define BUCKET_BYTES 2048 /* small: several buckets, so the overlap path is exercised */

static void build(Model *m) { cr_assert_eq(test_nobn_build(m, C, S, CLASSES), 0, "%s", m->err.msg); }

static void sample(size_t i, float *x, int32_t *label) { test_nobn_sample(i, C, S, CLASSES, x, label); }

/* K steps on device `device` at batch `batch` on rank's samples (group step k holds
 * samples [k*world*batch, (k+1)*world*batch)); ddp id NULL: alone. Writes the weights. */
static int train(int device, int batch, int rank, int world, const CudaDdpId *id, float *out,
                 StkErr *err) {
    static Model m;
    static CudaNet net;
    static CudaDdp ddp;
    static float params[MAXF], input[2 * B * C * S * S];
    int32_t labels[2 * B];
    build(&m);
    if (m.failed || m.total_floats > MAXF) return stk_errf(err, "model: %s", m.err.msg);
    CUDA_TRY(err, cudaSetDevice(device));
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0.9, 0.999, 1e-8};
    CudaNetOptions o = {.precision = CUDA_PREC_FP32};
    if (cuda_net_init(&net, &m, batch, &opt, &o, err)) return -1;
    model_init_params(&m, params, 3);
    if (cuda_net_set_params(&net, params, err)) return -1;
    if (id && cuda_ddp_init(&ddp, &net, rank, world, id, BUCKET_BYTES, err)) return -1;
    if (id && ddp.buckets.n < 2) return stk_errf(err, "only %d bucket(s): no overlap tested", ddp.buckets.n);
    size_t per = (size_t)C * S * S;
    for (int k = 0; k < K; k++) {
        for (int i = 0; i < batch; i++)
            sample((size_t)(k * world + rank) * batch + i, input + i * per, &labels[i]);
        if (cuda_net_set_input_nchw(&net, input, err) || cuda_net_forward(&net, 1, 1, err) ||
            cuda_net_backward(&net, labels, 0, err) || (id && cuda_ddp_finish(&ddp, err)) ||
            cuda_net_step(&net, 0.1, 1e-4, 0, err))
            return stk_err_wrap(err, "step %d", k);
    }
    if (cuda_net_get_params(&net, out, err)) return -1;
    if (id) cuda_ddp_free(&ddp);
    cuda_net_free(&net);
    return 0;
}

static int write_floats(const char *path, const float *x, size_t n) {
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(x, 4, n, f) == n;
    if (f) fclose(f);
    return ok ? 0 : -1;
}

static void read_floats(const char *path, float *x, size_t n) {
    FILE *f = fopen(path, "rb");
    cr_assert(f && fread(x, 4, n, f) == n, "%s", path);
    fclose(f);
}

/* A child process's work (CUDA is never touched in the test process itself: a CUDA
 * context does not survive fork). */
static int rank_main(int rank, int pipe_fd[2], const char *path) {
    static float out[MAXF];
    static Model m;
    CudaDdpId id;
    StkErr err;
    build(&m);
    if (rank == 0) {
        if (cudaSetDevice(0) != cudaSuccess || cuda_ddp_make_id(&id, &err)) return 1;
        if (write(pipe_fd[1], &id, sizeof id) != (ssize_t)sizeof id) return 1;
    } else if (read(pipe_fd[0], &id, sizeof id) != (ssize_t)sizeof id) {
        return 1;
    }
    if (train(rank, B, rank, WORLD, &id, out, &err)) {
        fprintf(stderr, "rank %d: %s\n", rank, err.msg);
        return 1;
    }
    return write_floats(path, out, m.total_floats) ? 1 : 0;
}

static int reference_main(const char *path) {
    static float out[MAXF];
    static Model m;
    StkErr err;
    build(&m);
    if (train(0, WORLD * B, 0, 1, NULL, out, &err)) {
        fprintf(stderr, "reference: %s\n", err.msg);
        return 1;
    }
    return write_floats(path, out, m.total_floats) ? 1 : 0;
}

static int gpus_in_a_child(void) {
    pid_t p = fork();
    if (p == 0) {
        int n = 0;
        StkErr err;
        if (cuda_device_count(&n, &err)) n = 0;
        _exit(n > 100 ? 100 : n);
    }
    int st;
    waitpid(p, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 0;
}

static int wait_ok(pid_t p) {
    int st;
    return waitpid(p, &st, 0) == p && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

Test(cuda_ddp, two_gpus_at_b_equal_one_gpu_at_2b, .timeout = 180) {
    int n = gpus_in_a_child();
    if (n < 2) cr_skip_test("needs 2 GPUs, this host has %d", n);
    char *root = fx_tmpdir(), path[WORLD + 1][600];
    for (int r = 0; r <= WORLD; r++) snprintf(path[r], sizeof path[r], "%s/w%d.bin", root, r);
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    pid_t pid[WORLD];
    for (int r = 0; r < WORLD; r++)
        if ((pid[r] = fork()) == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed test must not leave a rank waiting */
            _exit(rank_main(r, fd, path[r]));
        }
    int ok[WORLD];
    for (int r = 0; r < WORLD; r++)
        if (!(ok[r] = wait_ok(pid[r]))) /* the other would wait in NCCL for it */
            for (int q = 0; q < WORLD; q++) kill(pid[q], SIGKILL);
    for (int r = 0; r < WORLD; r++) cr_assert(ok[r], "rank %d failed (its stderr says why)", r);
    pid_t ref = fork();
    if (ref == 0) _exit(reference_main(path[WORLD]));
    cr_assert(wait_ok(ref), "the 1-GPU reference failed");
    static Model m;
    static float w[WORLD + 1][MAXF], init[MAXF];
    build(&m);
    for (int r = 0; r <= WORLD; r++) read_floats(path[r], w[r], m.total_floats);
    cr_assert_eq(memcmp(w[0], w[1], m.total_floats * 4), 0, "the ranks hold the same weights");
    model_init_params(&m, init, 3);
    double worst = 0, moved = 0;
    for (uint64_t i = 0; i < m.total_floats; i++) {
        worst = fmax(worst, fabs((double)w[0][i] - w[WORLD][i]) / fmax(fabs((double)w[WORLD][i]), 1e-3));
        moved = fmax(moved, fabs((double)w[WORLD][i] - init[i]));
    }
    printf("cuda_ddp: 2 GPUs x %d vs 1 GPU x %d after %d steps: largest relative difference %.3g\n",
           B, WORLD * B, K, worst);
    cr_assert_gt(moved, 1e-3, "the steps changed the weights");
    cr_assert_leq(worst, 1e-4, "largest relative difference %.3g", worst);
    fx_rmtree(root);
    free(root);
}
