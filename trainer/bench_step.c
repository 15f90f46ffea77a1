/* bench_step.c: one model's training step on the CPU backend (forward, backward, SGD),
 * synthetic input, for scripts/bench_train_cpu.sh (PyTorch's step is its peer).
 * --trainable-layers N freezes all but the head and the last N blocks (model_freeze.h;
 * -1, the default, trains everything), to measure what freezing saves.
 * usage: bench_step [--model resnet18] [--batch 16] [--size 224] [--steps 5]
 *                   [--trainable-layers N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu_net.h"
#include "model_freeze.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const char *arch = "resnet18";
    int batch = 16, size = 224, steps = 5, trainable = -1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) arch = argv[i + 1];
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size")) size = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--trainable-layers")) trainable = atoi(argv[i + 1]);
    }
    static Model m;
    CpuNet net;
    StkErr err;
    OptimConfig opt = {OPTIM_SGD, 0.9, 0, 0, 0, 0, 0};
    if (model_build(&m, arch, 3, size, size, 1000, &err) ||
        (trainable >= 0 && model_freeze(&m, trainable, &err)) ||
        cpu_net_init(&net, &m, batch, &opt, &err)) {
        fprintf(stderr, "bench_step: %s\n", err.msg);
        return 1;
    }
    model_init_params(&m, net.params, 1);
    float *in = cpu_net_input(&net);
    for (size_t i = 0; i < (size_t)batch * 3 * size * size; i++) in[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    int32_t *labels = malloc(sizeof *labels * (size_t)batch);
    for (int i = 0; i < batch; i++) labels[i] = (i * 37) % 1000;
    double t0 = 0;
    for (int s = -1; s < steps; s++) { /* one warm-up step */
        if (s == 0) t0 = now_s();
        const float *logits;
        double loss;
        if (cpu_net_forward(&net, 1, 0, &logits, &err) ||
            cpu_net_backward(&net, labels, 0, 0, &loss, &err)) {
            fprintf(stderr, "bench_step: %s\n", err.msg);
            return 1;
        }
        cpu_net_step(&net, 0.01, 1e-4, 1e-4);
    }
    double dt = (now_s() - t0) / steps;
    printf("stoker %s batch %d %dx%d: %.1f ms/step, %.1f images/s (plan %.0f MB; trainable %llu "
           "of %llu floats)\n", arch, batch, size, size, dt * 1e3, batch / dt, net.plan.total / 1e6,
           (unsigned long long)m.trainable_floats, (unsigned long long)m.total_floats);
    free(labels);
    cpu_net_free(&net);
    return 0;
}
