/* bench_sink.c: a counting stand-in for the trainer's data socket, for the loader
 * benchmark and the end-to-end tests. Binds PULL, receives batches until every loader
 * has ended every epoch, checks each batch index arrives exactly once per epoch, and
 * prints images/s. With --digest FILE it writes "epoch index n hash" per batch (FNV-1a
 * over pixels, labels and ids), sorted, to compare runs byte for byte.
 * usage: bench_sink --bind EP --loaders N [--epochs E] [--start-epoch S] [--digest FILE] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto_zmq.h"

typedef struct Digest {
    uint32_t epoch, n;
    uint64_t index, hash;
} Digest;

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001B3ull;
    return h;
}

static int cmp_digest(const void *a, const void *b) {
    const Digest *x = a, *y = b;
    if (x->epoch != y->epoch) return x->epoch < y->epoch ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const char *bind = NULL, *digest_path = NULL;
    uint32_t loaders = 1, epochs = 1, start = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--bind")) bind = argv[i + 1];
        else if (!strcmp(argv[i], "--loaders")) loaders = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--epochs")) epochs = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--start-epoch")) start = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--digest")) digest_path = argv[i + 1];
        else bind = NULL, i = argc;
    }
    if (!bind || loaders < 1 || epochs < 1) {
        fprintf(stderr, "usage: bench_sink --bind EP --loaders N [--epochs E] [--start-epoch S] [--digest FILE]\n");
        return 2;
    }
    /* several I/O threads read the loaders' pipes in parallel, as the trainer's will */
    void *ctx = zmq_ctx_new();
    zmq_ctx_set(ctx, ZMQ_IO_THREADS, 4);
    void *pull = zmq_socket(ctx, ZMQ_PULL);
    StkErr err;
    if (proto_zmq_setup(pull, 2, 2 * (int)loaders, 0, &err) || zmq_bind(pull, bind)) {
        fprintf(stderr, "bench_sink: bind %s: %s\n", bind, zmq_strerror(zmq_errno()));
        return 1;
    }
    size_t cap = 1024, nd = 0;
    Digest *d = malloc(cap * sizeof *d);
    uint64_t images = 0, bytes = 0, bad = 0;
    uint32_t ends = 0;
    uint64_t *announced = calloc(epochs, sizeof *announced); /* batches per epoch, from ends */
    double t0 = 0;
    while (ends < loaders * epochs) {
        ProtoRecv r;
        int rc = proto_recv(pull, &r, 0, &err);
        if (rc == PROTO_AGAIN) continue;
        if (rc == PROTO_BAD) { fprintf(stderr, "bench_sink: dropped: %s\n", err.msg); bad++; continue; }
        if (rc == PROTO_FAIL) { fprintf(stderr, "bench_sink: %s\n", err.msg); return 1; }
        if (r.msg.type == PROTO_END_OF_EPOCH) {
            ends++;
            uint32_t e = r.msg.u.end_of_epoch.epoch;
            if (e >= start && e < start + epochs) announced[e - start] += r.msg.u.end_of_epoch.batches;
        }
        if (r.msg.type == PROTO_BATCH) {
            const ProtoBatch *b = &r.msg.u.batch;
            if (!t0) t0 = now_s();
            images += b->n;
            bytes += proto_batch_pixel_bytes(b);
            if (nd == cap) d = realloc(d, (cap *= 2) * sizeof *d);
            uint64_t h = 0; /* hashing every byte costs more than receiving: only on request */
            if (digest_path) {
                h = fnv(0xCBF29CE484222325ull, b->pixels, proto_batch_pixel_bytes(b));
                h = fnv(fnv(h, b->labels, 4ull * b->n), b->ids, 8ull * b->n);
            }
            d[nd++] = (Digest){b->epoch, b->n, b->index, h};
        }
        proto_recv_release(&r);
    }
    double dt = now_s() - t0;
    qsort(d, nd, sizeof *d, cmp_digest);
    uint64_t dups = 0;
    for (size_t i = 1; i < nd; i++)
        dups += d[i].epoch == d[i - 1].epoch && d[i].index == d[i - 1].index;
    uint64_t missing = 0;
    for (size_t i = 0; i < nd; i++)
        if (d[i].epoch < start || d[i].epoch >= start + epochs) bad++;
    /* complete: per epoch, the indices received are exactly 0..announced-1 */
    for (uint32_t e = 0; e < epochs; e++) {
        uint64_t got = 0;
        for (size_t i = 0; i < nd; i++)
            if (d[i].epoch == start + e && d[i].index < announced[e]) got++;
        missing += announced[e] > got ? announced[e] - got : 0;
    }
    printf("bench_sink: %llu images in %zu batches, %.1f images/s, %.1f MB/s, "
           "%llu duplicate, %llu missing, %llu bad\n", (unsigned long long)images, nd,
           images / dt, bytes / dt / 1e6, (unsigned long long)dups,
           (unsigned long long)missing, (unsigned long long)bad);
    if (digest_path) {
        FILE *f = fopen(digest_path, "w");
        for (size_t i = 0; f && i < nd; i++)
            fprintf(f, "%u %llu %u %016llx\n", d[i].epoch, (unsigned long long)d[i].index,
                    d[i].n, (unsigned long long)d[i].hash);
        if (!f || fclose(f)) { perror(digest_path); return 1; }
    }
    free(d);
    free(announced);
    zmq_close(pull);
    zmq_ctx_term(ctx);
    return dups || bad || missing ? 1 : 0;
}
