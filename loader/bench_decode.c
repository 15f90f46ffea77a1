/* bench_decode.c: one loader's batch making without ZeroMQ, for profiling (perf,
 * callgrind) and for checking that a speed change leaves every byte as it was.
 * Fills the batches of the given epochs in one thread, as one stoker-loader does, and
 * prints images/s and an FNV-1a hash over all pixels, labels and ids: two builds that
 * print the same hash made the same batches.
 * usage: bench_decode DIR [--epochs E] [--start-epoch S] [--batches N] [--batch B] [--val 1] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loader_batch.h"

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001B3ull;
    return h;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_decode DIR [--epochs E] [--start-epoch S] [--batches N] [--batch B] [--val 1]\n");
        return 2;
    }
    uint32_t epochs = 1, start = 0, batch = 256;
    uint64_t max_batches = UINT64_MAX;
    int val = 0; /* 1: the val split with the eval transform (resize window + centre crop) */
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--epochs")) epochs = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--start-epoch")) start = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batches")) max_batches = (uint64_t)atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--val")) val = atoi(argv[i + 1]);
    }
    char ipath[4096];
    snprintf(ipath, sizeof ipath, "%s/stoker.index", argv[1]);
    LoaderIndex ix;
    LoaderBatcher b;
    StkErr err;
    LoaderBatchConfig cfg = loader_batch_config_default();
    cfg.batch = batch;
    if (val) cfg.split = LOADER_VAL, cfg.train = 0;
    if (loader_index_open(&ix, ipath, &err) || loader_batcher_init(&b, &ix, NULL, &cfg, &err)) {
        fprintf(stderr, "bench_decode: %s\n", err.msg);
        return 1;
    }
    size_t bytes = (size_t)batch * cfg.crop * cfg.crop * 3;
    uint8_t *px = malloc(bytes);
    int32_t *labels = malloc(batch * sizeof *labels);
    uint64_t *ids = malloc(batch * sizeof *ids);
    uint64_t h = 0xCBF29CE484222325ull, images = 0;
    double busy = 0; /* time in loader_batch_fill only: the hash is not timed */
    for (uint32_t e = start; e < start + epochs; e++) {
        uint64_t nb = loader_batcher_batches(&b);
        for (uint64_t i = 0; i < nb && i < max_batches; i++) {
            uint32_t n;
            double t0 = now_s();
            if (loader_batch_fill(&b, e, i, px, labels, ids, &n, NULL, NULL, &err)) {
                fprintf(stderr, "bench_decode: %s\n", err.msg);
                return 1;
            }
            busy += now_s() - t0;
            h = fnv(fnv(fnv(h, px, (size_t)n * cfg.crop * cfg.crop * 3), labels, 4ull * n),
                    ids, 8ull * n);
            images += n;
        }
    }
    double dt = busy;
    printf("bench_decode: %llu images in %.3f s, %.1f images/s, hash %016llx\n",
           (unsigned long long)images, dt, images / dt, (unsigned long long)h);
    free(px);
    free(labels);
    free(ids);
    loader_batcher_free(&b);
    loader_index_close(&ix);
    return 0;
}
