/* cuda_conv.h: one convolution layer on cuDNN, NHWC activations and KRSC (out_c, kh, kw,
 * in_c/groups) weights of one dtype (float32, or bfloat16 with float32 accumulation),
 * with torch.nn.Conv2d's semantics (ConvDesc, trainer/cpu_conv.h). The descriptors and the three algorithms (forward, backward data,
 * backward filter) are chosen once per layer by cudnnFind*AlgorithmEx (measured on the
 * layer's own buffers) within a workspace bound; the passes then only run. `strict`
 * keeps float32 arithmetic: no TF32 tensor cores and no FFT or Winograd transforms, what
 * the checks against the CPU backend need; without it cuDNN may use both for float32, as
 * PyTorch does by default.
 *
 * float32 layers may instead run in NCHW on copies: cuDNN's NHWC float32 kernels are far
 * slower for some shapes (measured on the H200, strict float32, 512x64x28x28 -> 128
 * channels: backward data 113.8 ms NHWC against 2.4 ms NCHW; bench_conv_layout). The
 * choice is measured per layer (cudnnFind on both layouts, plus the cost of the copies,
 * cuda_layout.h, on the handle's stream); the copies live in the layer's workspace, the batch split
 * into chunks so that they fit its bound, so the memory plan's workspace bound holds. */
#ifndef CUDA_CONV_H
#define CUDA_CONV_H

#include <stddef.h>

#include <cudnn.h>

#include "cpu_conv.h" /* ConvDesc */
#include "cuda_dtype.h"
#include "stk_err.h"

typedef struct CudaConv {
    ConvDesc d;
    CudaDtype dt;
    Shape4 in, out;                       /* batched NCHW-named shapes (data is NHWC) */
    cudnnTensorDescriptor_t x, y;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    size_t ws_fwd, ws_bwd_data, ws_bwd_filter; /* workspace bytes each needs */
    float ms_fwd, ms_bwd_data, ms_bwd_filter;  /* what cudnnFind measured for each choice */
    /* NCHW mode (float32): x, y and w above describe one chunk in NCHW/KCRS; the passes
     * copy into and out of the workspace: x's copy at 0, y's at off_y, w's at off_w, the
     * algorithms' own workspace from off_ws (ws_* above include the copies). */
    int nchw;
    int chunk;                            /* images per pass, a divisor of in.n */
    size_t off_y, off_w, off_ws;
    float ms_nhwc, ms_nchw;               /* the choice's estimates, all passes per batch */
} CudaConv;

/* Which layout a float32 layer's passes run in (16-bit layers are always NHWC). */
typedef enum CudaConvLayout {
    CUDA_CONV_AUTO = 0,   /* measured: NCHW when it is clearly faster and fits */
    CUDA_CONV_NHWC = 1,
    CUDA_CONV_NCHW = 2,   /* for tests: NCHW wherever the copies fit */
} CudaConvLayout;

/* Buffers cuda_conv_init measures the algorithms on (device; contents overwritten). */
typedef struct CudaConvScratch {
    void *x, *w, *y, *dx, *dw;            /* big enough for the layer, of its dtype */
    void *ws;                             /* workspace of ws_limit bytes */
    size_t ws_limit;
} CudaConvScratch;

/* Makes the descriptors for d on a batched input shape and picks the fastest algorithm
 * of each pass whose workspace fits ws_limit (and, when strict, uses no tensor-op math).
 * need_dx = 0 skips the backward-data choice (a network's first layer), need_dw = 0 the
 * backward-filter one (a frozen layer: sc->dw may then be NULL). */
int cuda_conv_init(CudaConv *cv, cudnnHandle_t h, const ConvDesc *d, CudaDtype dt, Shape4 in, int strict,
                   int need_dx, int need_dw, CudaConvLayout layout, const CudaConvScratch *sc,
                   StkErr *err);
void cuda_conv_free(CudaConv *cv);

/* y = conv(x, w) (+ nothing: the bias is a separate per-channel add). */
int cuda_conv_forward(const CudaConv *cv, cudnnHandle_t h, const void *x, const void *w,
                      void *y, void *ws, StkErr *err);

/* dx = conv_transpose(dy, w), or dx += it when accumulate (a node's second gradient
 * lands in place, without a scratch buffer and an add). */
int cuda_conv_backward_data(const CudaConv *cv, cudnnHandle_t h, const void *dy,
                            const void *w, void *dx, int accumulate, void *ws, StkErr *err);

/* dw = correlation of x with dy (overwritten, not accumulated). ws: at least the largest
 * ws_* bytes (NCHW mode keeps its copies there). */
int cuda_conv_backward_filter(const CudaConv *cv, cudnnHandle_t h, const void *x,
                              const void *dy, void *dw, void *ws, StkErr *err);

#endif
