/* cuda_ddp.h: NCCL data parallel for the CUDA backend, one process per GPU (stoker-train
 * --gpus N --rank r on device r).
 *
 * Set-up: rank 0 makes an NCCL unique id (cuda_ddp_make_id) and the trainer hands it to
 * the other ranks through train_group's broadcast (the supervisor's private socket
 * directory, or tcp); every rank then calls cuda_ddp_init with it, which makes the
 * communicator on the net's device and hooks the net's backward (CudaNet.grads_ready).
 *
 * Per step: the gradient arena is split into buckets of >= bucket_bytes (grad_buckets.h:
 * contiguous ranges, top of the network first). When the backward has queued a bucket's
 * lowest layer, an event is recorded on the compute stream, the communication stream
 * waits for it and all-reduces the bucket in place with ncclAvg (the mean gradient, as
 * torch DDP), so the reduction of the top overlaps the backward of the bottom.
 * cuda_ddp_finish (before the optimizer step) makes the compute stream wait for the last
 * bucket. Nothing here blocks the host. Batch norm stays per GPU (each rank normalises
 * by its own batch; running statistics are rank 0's in checkpoints); synchronised batch
 * norm is not built. Every NCCL and CUDA status is checked with the call named. */
#ifndef CUDA_DDP_H
#define CUDA_DDP_H

#include <stddef.h>

#include <nccl.h>

#include "cuda_net.h"
#include "grad_buckets.h"

#define CUDA_DDP_BUCKET_BYTES (25u << 20) /* torch DDP's bucket_cap_mb default */

/* The communicator's id as bytes, to send to the other ranks. */
typedef struct CudaDdpId {
    char bytes[NCCL_UNIQUE_ID_BYTES];
} CudaDdpId;

typedef struct CudaDdp {
    CudaNet *net;              /* not owned; its backward calls us */
    int rank, world;
    ncclComm_t comm;
    cudaStream_t comm_stream;  /* the all-reduces, beside the net's compute stream */
    GradBuckets buckets;       /* ranges and the layer that completes each */
    cudaEvent_t *ready;        /* [buckets.n]: recorded on the compute stream when complete */
    cudaEvent_t reduced;       /* recorded on comm_stream after the step's last bucket */
    int launched;              /* buckets launched this step */
} CudaDdp;

/* Rank 0: a fresh NCCL unique id. */
int cuda_ddp_make_id(CudaDdpId *id, StkErr *err);

/* Joins the communicator of world ranks as rank (the current device must be the net's)
 * and hooks net's backward. bucket_bytes: CUDA_DDP_BUCKET_BYTES unless testing. Returns
 * 0 or -1 + err naming the NCCL or CUDA call. */
int cuda_ddp_init(CudaDdp *d, CudaNet *net, int rank, int world, const CudaDdpId *id,
                  size_t bucket_bytes, StkErr *err);

/* After the backward, before the optimizer step: launches any bucket not yet launched
 * and makes the compute stream wait for every all-reduce of the step. */
int cuda_ddp_finish(CudaDdp *d, StkErr *err);

/* Unhooks the net, destroys the communicator (after the streams drain) and the events. */
void cuda_ddp_free(CudaDdp *d);

#endif
