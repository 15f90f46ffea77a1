/* bench_conv_layout.c: what float32 convolutions cost in each layout and math type on
 * this GPU, to choose the CUDA backend's float32 layout (issue 6): cuDNN's own measured
 * best (cudnnFind*AlgorithmEx) for forward, backward data and backward filter, NCHW
 * against NHWC, strict float32 (FMA) against TF32, on smallresnet's and resnet18's
 * layer shapes. One line per (shape, layout, math): the best ms of each pass and its
 * algorithm. Diagnostic only: the backend's choice is made per layer at start-up.
 * usage: bench_conv_layout */
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <stdio.h>
#include <stdlib.h>

#include "cuda_check.h"

typedef struct Shape {
    const char *name;
    int n, c, h, k, r, stride;
} Shape;

static const Shape shapes[] = {
    {"smallresnet 3->64 @28", 512, 3, 28, 64, 3, 1},
    {"smallresnet 64->128 @28", 512, 64, 28, 128, 3, 1},
    {"smallresnet 128->128 @14", 512, 128, 14, 128, 3, 1},
    {"smallresnet 128->256 @14", 512, 128, 14, 256, 3, 1},
    {"smallresnet 256->256 @7", 512, 256, 7, 256, 3, 1},
    {"resnet18 64->64 @56 b256", 256, 64, 56, 64, 3, 1},
    {"resnet18 256->256 @14 b256", 256, 256, 14, 256, 3, 1},
};

#define ALGOS 16

static int probe(cudnnHandle_t h, const Shape *s, cudnnTensorFormat_t fmt, cudnnMathType_t math,
                 void *x, void *w, void *y, void *ws, size_t wsz, StkErr *err) {
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    CUDNN_TRY(err, cudnnCreateTensorDescriptor(&xd));
    CUDNN_TRY(err, cudnnCreateTensorDescriptor(&yd));
    CUDNN_TRY(err, cudnnCreateFilterDescriptor(&wd));
    CUDNN_TRY(err, cudnnCreateConvolutionDescriptor(&cd));
    int pad = s->r / 2, o = (s->h + 2 * pad - s->r) / s->stride + 1;
    CUDNN_TRY(err, cudnnSetTensor4dDescriptor(xd, fmt, CUDNN_DATA_FLOAT, s->n, s->c, s->h, s->h));
    CUDNN_TRY(err, cudnnSetTensor4dDescriptor(yd, fmt, CUDNN_DATA_FLOAT, s->n, s->k, o, o));
    CUDNN_TRY(err, cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, fmt, s->k, s->c, s->r, s->r));
    CUDNN_TRY(err, cudnnSetConvolution2dDescriptor(cd, pad, pad, s->stride, s->stride, 1, 1,
                                                   CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_TRY(err, cudnnSetConvolutionMathType(cd, math));
    int n;
    cudnnConvolutionFwdAlgoPerf_t f[ALGOS];
    cudnnConvolutionBwdDataAlgoPerf_t d[ALGOS];
    cudnnConvolutionBwdFilterAlgoPerf_t g[ALGOS];
    CUDNN_TRY(err, cudnnFindConvolutionForwardAlgorithmEx(h, xd, x, wd, w, cd, yd, y, ALGOS, &n, f, ws, wsz));
    CUDNN_TRY(err, cudnnFindConvolutionBackwardDataAlgorithmEx(h, wd, w, yd, y, cd, xd, x, ALGOS, &n, d, ws, wsz));
    CUDNN_TRY(err, cudnnFindConvolutionBackwardFilterAlgorithmEx(h, xd, x, yd, y, cd, wd, w, ALGOS, &n, g, ws, wsz));
    printf("%-28s %s %-4s fwd %8.3f ms (algo %d)  data %8.3f ms (algo %d)  filter %8.3f ms (algo %d)\n",
           s->name, fmt == CUDNN_TENSOR_NCHW ? "NCHW" : "NHWC", math == CUDNN_FMA_MATH ? "fma" : "tf32",
           f[0].time, (int)f[0].algo, d[0].time, (int)d[0].algo, g[0].time, (int)g[0].algo);
    cudnnDestroyTensorDescriptor(xd), cudnnDestroyTensorDescriptor(yd);
    cudnnDestroyFilterDescriptor(wd), cudnnDestroyConvolutionDescriptor(cd);
    return 0;
}

static int run(StkErr *err) {
    cudnnHandle_t h;
    CUDNN_TRY(err, cudnnCreate(&h));
    size_t big = 0, wsz = (size_t)256 << 20;
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        const Shape *s = &shapes[i];
        size_t a = (size_t)s->n * (s->c > s->k ? s->c : s->k) * s->h * s->h * 4;
        big = a > big ? a : big;
    }
    void *x, *w, *y, *ws;
    CUDA_TRY(err, cudaMalloc(&x, big));
    CUDA_TRY(err, cudaMalloc(&y, big));
    CUDA_TRY(err, cudaMalloc(&w, (size_t)256 * 256 * 9 * 4));
    CUDA_TRY(err, cudaMalloc(&ws, wsz));
    CUDA_TRY(err, cudaMemset(x, 0, big));
    CUDA_TRY(err, cudaMemset(y, 0, big));
    CUDA_TRY(err, cudaMemset(w, 0, (size_t)256 * 256 * 9 * 4));
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++)
        for (int fmt = 0; fmt < 2; fmt++)
            for (int m = 0; m < 2; m++)
                if (probe(h, &shapes[i], fmt ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW,
                          m ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH, x, w, y, ws, wsz, err))
                    return -1;
    cudaFree(x), cudaFree(y), cudaFree(w), cudaFree(ws);
    cudnnDestroy(h);
    return 0;
}

int main(void) {
    StkErr err;
    if (run(&err)) {
        fprintf(stderr, "bench_conv_layout: %s\n", err.msg);
        return 1;
    }
    return 0;
}
