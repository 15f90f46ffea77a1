/* cuda_ddp.c: bucketed, overlapped NCCL all-reduce of the gradients (see cuda_ddp.h). */
#include "cuda_ddp.h"

#include <stdlib.h>
#include <string.h>

#include "cuda_check.h"

/* Every NCCL status, checked with the call named (CUDA_TRY's twin). */
#define NCCL_TRY(err, call)                                                              \
    do {                                                                                 \
        ncclResult_t st_ = (call);                                                       \
        if (st_ != ncclSuccess)                                                          \
            return stk_errf((err), "%s:%d: %s: %s", __FILE__, __LINE__, #call,           \
                            ncclGetErrorString(st_));                                    \
    } while (0)

int cuda_ddp_make_id(CudaDdpId *id, StkErr *err) {
    ncclUniqueId u;
    NCCL_TRY(err, ncclGetUniqueId(&u));
    memcpy(id->bytes, u.internal, sizeof id->bytes);
    return 0;
}

/* Queues bucket k's all-reduce: the comm stream waits for its gradients, then averages
 * them in place over the ranks. */
static int launch(CudaDdp *d, int k, StkErr *err) {
    const GradBucket *b = &d->buckets.b[k];
    float *g = d->net->grads + b->lo;
    CUDA_TRY(err, cudaEventRecord(d->ready[k], d->net->stream));
    CUDA_TRY(err, cudaStreamWaitEvent(d->comm_stream, d->ready[k], 0));
    NCCL_TRY(err, ncclAllReduce(g, g, (size_t)(b->hi - b->lo), ncclFloat32, ncclAvg, d->comm,
                                d->comm_stream));
    d->launched = k + 1;
    return 0;
}

/* The net's hook: layer li's gradients are queued; launch the bucket it completes. */
static int on_grads_ready(void *ctx, int li, StkErr *err) {
    CudaDdp *d = ctx;
    int k = d->buckets.closes[li];
    if (k < 0) return 0;
    /* buckets complete from the top down, each once a step: launch any skipped first */
    while (d->launched < k)
        if (launch(d, d->launched, err)) return -1;
    return d->launched == k ? launch(d, k, err) : 0;
}

int cuda_ddp_init(CudaDdp *d, CudaNet *net, int rank, int world, const CudaDdpId *id,
                  size_t bucket_bytes, StkErr *err) {
    memset(d, 0, sizeof *d);
    d->net = net, d->rank = rank, d->world = world;
    if (world < 2 || rank < 0 || rank >= world)
        return stk_errf(err, "cuda_ddp_init: rank %d of world %d", rank, world);
    if (grad_buckets_plan(&d->buckets, net->m, bucket_bytes / sizeof(float) ? bucket_bytes / sizeof(float) : 1, err))
        return -1;
    ncclUniqueId u;
    memcpy(u.internal, id->bytes, sizeof id->bytes);
    NCCL_TRY(err, ncclCommInitRank(&d->comm, world, u, rank));
    CUDA_TRY(err, cudaStreamCreateWithFlags(&d->comm_stream, cudaStreamNonBlocking));
    CUDA_TRY(err, cudaEventCreateWithFlags(&d->reduced, cudaEventDisableTiming));
    d->ready = calloc((size_t)d->buckets.n, sizeof *d->ready);
    if (!d->ready) return stk_errf(err, "cuda_ddp_init: out of memory");
    for (int k = 0; k < d->buckets.n; k++)
        CUDA_TRY(err, cudaEventCreateWithFlags(&d->ready[k], cudaEventDisableTiming));
    net->grads_ready = on_grads_ready;
    net->grads_ready_ctx = d;
    return 0;
}

int cuda_ddp_finish(CudaDdp *d, StkErr *err) {
    while (d->launched < d->buckets.n)
        if (launch(d, d->launched, err)) return -1;
    d->launched = 0;
    /* the optimizer step (and the next backward, which overwrites the gradients) come
     * after every all-reduce of this step */
    CUDA_TRY(err, cudaEventRecord(d->reduced, d->comm_stream));
    CUDA_TRY(err, cudaStreamWaitEvent(d->net->stream, d->reduced, 0));
    return 0;
}

void cuda_ddp_free(CudaDdp *d) {
    if (d->net && d->net->grads_ready_ctx == d) d->net->grads_ready = NULL, d->net->grads_ready_ctx = NULL;
    if (d->comm_stream) cudaStreamSynchronize(d->comm_stream);
    if (d->comm) ncclCommDestroy(d->comm);
    for (int k = 0; d->ready && k < d->buckets.n; k++)
        if (d->ready[k]) cudaEventDestroy(d->ready[k]);
    free(d->ready);
    if (d->reduced) cudaEventDestroy(d->reduced);
    if (d->comm_stream) cudaStreamDestroy(d->comm_stream);
    grad_buckets_free(&d->buckets);
    memset(d, 0, sizeof *d);
}
