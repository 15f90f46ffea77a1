/* cuda_conv.c: cuDNN convolutions (see cuda_conv.h). */
#include "cuda_conv.h"

#include <limits.h>
#include <string.h>

#include "cuda_check.h"

#define CONV_ALGOS 16 /* more than cuDNN has of any pass */

/* Picks the first (fastest) measured algorithm that succeeded, fits the workspace and,
 * when strict, does not use tensor-op math; sets the descriptor's math type to it. */
#define PICK(results, count, strict, limit, out_algo, out_ws, out_ms, conv, what, err)   \
    do {                                                                                \
        int found_ = 0;                                                                 \
        for (int i_ = 0; i_ < (count) && !found_; i_++) {                               \
            if ((results)[i_].status != CUDNN_STATUS_SUCCESS) continue;                 \
            if ((results)[i_].memory > (limit)) continue;                               \
            if ((strict) && (results)[i_].mathType != CUDNN_FMA_MATH &&                 \
                (results)[i_].mathType != CUDNN_DEFAULT_MATH) continue;                 \
            *(out_algo) = (results)[i_].algo;                                           \
            *(out_ms) = (results)[i_].time;                                             \
            *(out_ws) = (results)[i_].memory;                                           \
            found_ = 1;                                                                 \
        }                                                                               \
        if (!found_)                                                                    \
            return stk_errf((err), "cuda_conv: no %s algorithm fits %zu bytes of workspace", \
                            (what), (size_t)(limit));                                   \
    } while (0)

static int describe(CudaConv *cv, const ConvDesc *d, Shape4 in, int strict, StkErr *err) {
    cudnnDataType_t t = cv->dt == CUDA_BF16 ? CUDNN_DATA_BFLOAT16 : cv->dt == CUDA_F16 ? CUDNN_DATA_HALF
                                                                                    : CUDNN_DATA_FLOAT;
    CUDNN_TRY(err, cudnnCreateTensorDescriptor(&cv->x));
    CUDNN_TRY(err, cudnnCreateTensorDescriptor(&cv->y));
    CUDNN_TRY(err, cudnnCreateFilterDescriptor(&cv->w));
    CUDNN_TRY(err, cudnnCreateConvolutionDescriptor(&cv->conv));
    CUDNN_TRY(err, cudnnSetTensor4dDescriptor(cv->x, CUDNN_TENSOR_NHWC, t, in.n,
                                              in.c, in.h, in.w));
    CUDNN_TRY(err, cudnnSetFilter4dDescriptor(cv->w, t, CUDNN_TENSOR_NHWC, d->out_c,
                                              d->in_c / d->groups, d->kh, d->kw));
    CUDNN_TRY(err, cudnnSetConvolution2dDescriptor(cv->conv, d->pad_h, d->pad_w, d->stride_h,
                                                   d->stride_w, 1, 1, CUDNN_CROSS_CORRELATION,
                                                   CUDNN_DATA_FLOAT));
    CUDNN_TRY(err, cudnnSetConvolutionGroupCount(cv->conv, d->groups));
    /* 16-bit types accumulate in float32 (the compute type above) on tensor cores */
    cudnnMathType_t math = cv->dt != CUDA_F32 ? CUDNN_TENSOR_OP_MATH : strict ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
    CUDNN_TRY(err, cudnnSetConvolutionMathType(cv->conv, math));
    int n, c, h, w;
    CUDNN_TRY(err, cudnnGetConvolution2dForwardOutputDim(cv->conv, cv->x, cv->w, &n, &c, &h, &w));
    cv->out = (Shape4){n, c, h, w};
    /* cuDNN's 4-d descriptors hold at most 2^31-1 elements; say which, not NOT_SUPPORTED */
    if ((long long)n * c * h * w > INT_MAX || (long long)in.n * in.c * in.h * in.w > INT_MAX)
        return stk_errf(err, "cuda_conv: %dx%dx%dx%d -> %dx%dx%dx%d (NCHW) exceeds cuDNN's 2^31 "
                        "elements per tensor; use a smaller batch or input size",
                        in.n, in.c, in.h, in.w, n, c, h, w);
    CUDNN_TRY(err, cudnnSetTensor4dDescriptor(cv->y, CUDNN_TENSOR_NHWC, t, n, c, h, w));
    return 0;
}

/* What each chosen algorithm asks for when asked directly: a search's reported memory
 * has been seen smaller than what the run needs (CUDNN_STATUS_BAD_PARAM at run time). */
static int need_workspace(CudaConv *cv, cudnnHandle_t h, int need_dx, int need_dw, StkErr *err) {
    size_t f, d = 0, g = 0;
    CUDNN_TRY(err, cudnnGetConvolutionForwardWorkspaceSize(h, cv->x, cv->w, cv->conv, cv->y, cv->fwd, &f));
    if (need_dx)
        CUDNN_TRY(err, cudnnGetConvolutionBackwardDataWorkspaceSize(h, cv->w, cv->y, cv->conv, cv->x,
                                                                    cv->bwd_data, &d));
    if (need_dw)
        CUDNN_TRY(err, cudnnGetConvolutionBackwardFilterWorkspaceSize(h, cv->x, cv->y, cv->conv,
                                                                      cv->w, cv->bwd_filter, &g));
    cv->ws_fwd = f > cv->ws_fwd ? f : cv->ws_fwd;
    cv->ws_bwd_data = d > cv->ws_bwd_data ? d : cv->ws_bwd_data;
    cv->ws_bwd_filter = g > cv->ws_bwd_filter ? g : cv->ws_bwd_filter;
    return 0;
}

static int choose(CudaConv *cv, cudnnHandle_t h, int strict, int need_dx, int need_dw,
                  const CudaConvScratch *sc, StkErr *err) {
    int cnt;
    cudnnConvolutionFwdAlgoPerf_t f[CONV_ALGOS];
    CUDNN_TRY(err, cudnnFindConvolutionForwardAlgorithmEx(h, cv->x, sc->x, cv->w, sc->w, cv->conv,
                                                          cv->y, sc->y, CONV_ALGOS, &cnt, f,
                                                          sc->ws, sc->ws_limit));
    PICK(f, cnt, strict, sc->ws_limit, &cv->fwd, &cv->ws_fwd, &cv->ms_fwd, cv->conv, "forward", err);
    if (need_dx) {
        cudnnConvolutionBwdDataAlgoPerf_t b[CONV_ALGOS];
        CUDNN_TRY(err, cudnnFindConvolutionBackwardDataAlgorithmEx(
                           h, cv->w, sc->w, cv->y, sc->y, cv->conv, cv->x, sc->dx, CONV_ALGOS,
                           &cnt, b, sc->ws, sc->ws_limit));
        PICK(b, cnt, strict, sc->ws_limit, &cv->bwd_data, &cv->ws_bwd_data, &cv->ms_bwd_data,
             cv->conv, "backward-data", err);
    }
    if (need_dw) {
        cudnnConvolutionBwdFilterAlgoPerf_t g[CONV_ALGOS];
        CUDNN_TRY(err, cudnnFindConvolutionBackwardFilterAlgorithmEx(
                           h, cv->x, sc->x, cv->y, sc->y, cv->conv, cv->w, sc->dw, CONV_ALGOS, &cnt,
                           g, sc->ws, sc->ws_limit));
        PICK(g, cnt, strict, sc->ws_limit, &cv->bwd_filter, &cv->ws_bwd_filter, &cv->ms_bwd_filter,
             cv->conv, "backward-filter", err);
    }
    return need_workspace(cv, h, need_dx, need_dw, err);
}

int cuda_conv_init(CudaConv *cv, cudnnHandle_t h, const ConvDesc *d, CudaDtype dt, Shape4 in, int strict,
                   int need_dx, int need_dw, const CudaConvScratch *sc, StkErr *err) {
    memset(cv, 0, sizeof *cv);
    cv->d = *d;
    cv->dt = dt;
    cv->in = in;
    if (d->groups < 1 || d->in_c % d->groups || d->out_c % d->groups || in.c != d->in_c)
        return stk_errf(err, "cuda_conv_init: %d -> %d channels in %d groups on a %d-channel input",
                        d->in_c, d->out_c, d->groups, in.c);
    int strict32 = strict && dt == CUDA_F32;
    if (describe(cv, d, in, strict32, err) || choose(cv, h, strict32, need_dx, need_dw, sc, err)) {
        cuda_conv_free(cv);
        return -1;
    }
    return 0;
}

void cuda_conv_free(CudaConv *cv) {
    if (cv->x) cudnnDestroyTensorDescriptor(cv->x);
    if (cv->y) cudnnDestroyTensorDescriptor(cv->y);
    if (cv->w) cudnnDestroyFilterDescriptor(cv->w);
    if (cv->conv) cudnnDestroyConvolutionDescriptor(cv->conv);
    cv->x = cv->y = NULL, cv->w = NULL, cv->conv = NULL;
}

int cuda_conv_forward(const CudaConv *cv, cudnnHandle_t h, const void *x, const void *w,
                      void *y, void *ws, StkErr *err) {
    const float one = 1.0f, zero = 0.0f;
    CUDNN_TRY(err, cudnnConvolutionForward(h, &one, cv->x, x, cv->w, w, cv->conv, cv->fwd, ws,
                                           cv->ws_fwd, &zero, cv->y, y));
    return 0;
}

int cuda_conv_backward_data(const CudaConv *cv, cudnnHandle_t h, const void *dy,
                            const void *w, void *dx, int accumulate, void *ws, StkErr *err) {
    const float one = 1.0f, zero = 0.0f;
    CUDNN_TRY(err, cudnnConvolutionBackwardData(h, &one, cv->w, w, cv->y, dy, cv->conv,
                                                cv->bwd_data, ws, cv->ws_bwd_data,
                                                accumulate ? &one : &zero, cv->x, dx));
    return 0;
}

int cuda_conv_backward_filter(const CudaConv *cv, cudnnHandle_t h, const void *x,
                              const void *dy, void *dw, void *ws, StkErr *err) {
    const float one = 1.0f, zero = 0.0f;
    CUDNN_TRY(err, cudnnConvolutionBackwardFilter(h, &one, cv->x, x, cv->y, dy, cv->conv,
                                                  cv->bwd_filter, ws, cv->ws_bwd_filter, &zero,
                                                  cv->w, dw));
    return 0;
}
