/* test_cuda_buf.h: device buffers for the GPU suites, each with a host copy of its values
 * as the device holds them (rounded to its dtype), so that a reference computed on the
 * host starts from the same inputs. */
#ifndef TEST_CUDA_BUF_H
#define TEST_CUDA_BUF_H

#include <criterion/criterion.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdlib.h>

#include "cuda_dtype.h"

typedef struct Buf {
    CudaDtype dt;
    size_t n;
    void *dev;   /* `shift` elements past base */
    float *host; /* the values as the device holds them (rounded to dt) */
    void *base;  /* what cudaMalloc gave */
} Buf;

/* v[0..n) as dt on the device, shift elements past an allocation's start (1: not 16-byte
 * aligned, for the kernels' scalar paths). */
static inline Buf buf_upload(CudaDtype dt, const float *v, size_t n, int shift) {
    Buf b = {dt, n, NULL, malloc(n * sizeof(float)), NULL};
    size_t es = cuda_dtype_size(dt);
    void *raw = malloc(n * es);
    for (size_t i = 0; i < n; i++) {
        if (dt == CUDA_F32) ((float *)raw)[i] = v[i], b.host[i] = v[i];
        else ((uint16_t *)raw)[i] = cuda_f32_to_half(dt, v[i]), b.host[i] = cuda_half_to_f32(dt, ((uint16_t *)raw)[i]);
    }
    cr_assert_eq(cudaMalloc(&b.base, (n + (size_t)shift) * es), cudaSuccess);
    b.dev = (char *)b.base + (size_t)shift * es;
    cr_assert_eq(cudaMemcpy(b.dev, raw, n * es, cudaMemcpyHostToDevice), cudaSuccess);
    free(raw);
    return b;
}

/* The device's values into b->host. */
static inline void buf_fetch(Buf *b) {
    size_t es = cuda_dtype_size(b->dt);
    void *raw = malloc(b->n * es);
    cr_assert_eq(cudaMemcpy(raw, b->dev, b->n * es, cudaMemcpyDeviceToHost), cudaSuccess);
    for (size_t i = 0; i < b->n; i++)
        b->host[i] = b->dt == CUDA_F32 ? ((float *)raw)[i] : cuda_half_to_f32(b->dt, ((uint16_t *)raw)[i]);
    free(raw);
}

static inline void buf_drop(Buf *b) { cudaFree(b->base), free(b->host); }

#endif
