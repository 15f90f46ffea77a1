/* cuda_conv.c: cuDNN convolutions (see cuda_conv.h). */
#include "cuda_conv.h"

#include <limits.h>
#include <string.h>

#include "cuda_check.h"
#include "cuda_layout.h"

#define CONV_ALGOS 16 /* more than cuDNN has of any pass */

/* FFT and Winograd algorithms compute the convolution through a transform whose own
 * error grows with the tile and the values' range, beyond the rounding of the direct sum
 * the CPU backend computes; strict float32 (what the checks against it use) leaves them
 * out, as it leaves out TF32. tf32 may use them, as PyTorch's float32 does. */
static int approx_fwd(int a) {
    return a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
           a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}
static int approx_data(int a) {
    return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
           a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD ||
           a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
}
static int approx_filter(int a) {
    return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
           a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD ||
           a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}

/* Picks the fastest measured algorithm that succeeded, fits the workspace and, when
 * strict, uses neither tensor-op math nor a transform (approx), but a deterministic one
 * instead when one is within 10% of it. cuDNN's search times algorithms on the arenas at
 * start-up; an atomics-based (non-deterministic) one can time well there and then run far
 * slower in the step: smallresnet's first bf16 convolution (3 channels, 512x28x28),
 * backward filter: algo 0 timed 0.278 ms against algo 1's 0.284 ms, then took 2.46 ms
 * per step against algo 1's 0.146 ms on the H200, and which of the two won the search
 * decided whether a whole run went at 90k or 155k images/s. */
#define ELIGIBLE(r, strict, approx, limit)                                               \
    ((r).status == CUDNN_STATUS_SUCCESS && (r).memory <= (limit) &&                     \
     (!(strict) || (((r).mathType == CUDNN_FMA_MATH || (r).mathType == CUDNN_DEFAULT_MATH) && \
                    !approx((int)(r).algo))))
#define PICK(results, count, strict, approx, limit, out_algo, out_ws, out_ms, conv, what, err) \
    do {                                                                                \
        int best_ = -1, pick_ = -1;                                                     \
        for (int i_ = 0; i_ < (count) && best_ < 0; i_++)                               \
            if (ELIGIBLE((results)[i_], strict, approx, limit)) best_ = i_;             \
        if (best_ < 0)                                                                  \
            return stk_errf((err), "cuda_conv: no %s algorithm fits %zu bytes of workspace", \
                            (what), (size_t)(limit));                                   \
        for (int i_ = best_; i_ < (count) && pick_ < 0; i_++)                           \
            if (ELIGIBLE((results)[i_], strict, approx, limit) &&                       \
                (results)[i_].determinism == CUDNN_DETERMINISTIC &&                     \
                (results)[i_].time <= 1.1f * (results)[best_].time)                     \
                pick_ = i_;                                                             \
        if (pick_ < 0) pick_ = best_;                                                   \
        *(out_algo) = (results)[pick_].algo;                                            \
        *(out_ms) = (results)[pick_].time;                                              \
        *(out_ws) = (results)[pick_].memory;                                            \
    } while (0)

/* Descriptors for d on in (in.n images) in layout fmt: activations NCHW or NHWC, weights
 * KCRS or KRSC to match. */
static int describe(CudaConv *cv, const ConvDesc *d, Shape4 in, cudnnTensorFormat_t fmt, int strict,
                    StkErr *err) {
    cudnnDataType_t t = cv->dt == CUDA_BF16 ? CUDNN_DATA_BFLOAT16 : cv->dt == CUDA_F16 ? CUDNN_DATA_HALF
                                                                                    : CUDNN_DATA_FLOAT;
    CUDNN_TRY(err, cudnnCreateTensorDescriptor(&cv->x));
    CUDNN_TRY(err, cudnnCreateTensorDescriptor(&cv->y));
    CUDNN_TRY(err, cudnnCreateFilterDescriptor(&cv->w));
    CUDNN_TRY(err, cudnnCreateConvolutionDescriptor(&cv->conv));
    CUDNN_TRY(err, cudnnSetTensor4dDescriptor(cv->x, fmt, t, in.n, in.c, in.h, in.w));
    CUDNN_TRY(err, cudnnSetFilter4dDescriptor(cv->w, t, fmt, d->out_c,
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
    CUDNN_TRY(err, cudnnSetTensor4dDescriptor(cv->y, fmt, t, n, c, h, w));
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
    PICK(f, cnt, strict, approx_fwd, sc->ws_limit, &cv->fwd, &cv->ws_fwd, &cv->ms_fwd, cv->conv, "forward", err);
    if (need_dx) {
        cudnnConvolutionBwdDataAlgoPerf_t b[CONV_ALGOS];
        CUDNN_TRY(err, cudnnFindConvolutionBackwardDataAlgorithmEx(
                           h, cv->w, sc->w, cv->y, sc->y, cv->conv, cv->x, sc->dx, CONV_ALGOS,
                           &cnt, b, sc->ws, sc->ws_limit));
        PICK(b, cnt, strict, approx_data, sc->ws_limit, &cv->bwd_data, &cv->ws_bwd_data, &cv->ms_bwd_data,
             cv->conv, "backward-data", err);
    }
    if (need_dw) {
        cudnnConvolutionBwdFilterAlgoPerf_t g[CONV_ALGOS];
        CUDNN_TRY(err, cudnnFindConvolutionBackwardFilterAlgorithmEx(
                           h, cv->x, sc->x, cv->y, sc->y, cv->conv, cv->w, sc->dw, CONV_ALGOS, &cnt,
                           g, sc->ws, sc->ws_limit));
        PICK(g, cnt, strict, approx_filter, sc->ws_limit, &cv->bwd_filter, &cv->ws_bwd_filter, &cv->ms_bwd_filter,
             cv->conv, "backward-filter", err);
    }
    return need_workspace(cv, h, need_dx, need_dw, err);
}

static size_t align256(size_t b) { return (b + 255) & ~(size_t)255; }

/* Bytes of NCHW copies for a chunk of c images: x (reused for dx), y (dy), the weights. */
static size_t copies_bytes(const CudaConv *cv, int c, size_t *off_y, size_t *off_w) {
    size_t x = align256((size_t)c * cv->in.c * cv->in.h * cv->in.w * 4);
    size_t y = align256((size_t)c * cv->out.c * cv->out.h * cv->out.w * 4);
    size_t w = align256((size_t)cv->d.out_c * (cv->d.in_c / cv->d.groups) * cv->d.kh * cv->d.kw * 4);
    *off_y = x, *off_w = x + y;
    return x + y + w;
}

/* The fewest chunks (a divisor of the batch, at most 64) whose copies take at most half
 * the workspace bound, leaving the rest to the algorithms; 0 when none does. */
static int chunk_for(const CudaConv *cv, size_t ws_limit) {
    size_t oy, ow;
    for (int k = 1; k <= 64 && k <= cv->in.n; k++)
        if (cv->in.n % k == 0 && copies_bytes(cv, cv->in.n / k, &oy, &ow) <= ws_limit / 2)
            return cv->in.n / k;
    return 0;
}

/* The NCHW mode's copies, on the handle's stream (where every pass of the layer runs):
 * what = 'x' (a chunk of x into its copy), 'y' (a chunk of y or dy into its copy), 'w'
 * (the weights, KRSC into KCRS); back: 'X' (dx out, accumulate or not), 'Y' (y out), 'W'
 * (dw out). */
static int copy(const CudaConv *cv, cudnnHandle_t h, char what, const void *src, void *dst, int acc,
                StkErr *err) {
    cudaStream_t st;
    CUDNN_TRY(err, cudnnGetStream(h, &st));
    const ConvDesc *d = &cv->d;
    int n = cv->chunk, ihw = cv->in.h * cv->in.w, ohw = cv->out.h * cv->out.w;
    int rs = d->kh * d->kw, cg = d->in_c / d->groups;
    switch (what) {
    case 'x': return cuda_nhwc_to_nchw(n, cv->in.c, ihw, src, dst, st, err);
    case 'y': return cuda_nhwc_to_nchw(n, cv->out.c, ohw, src, dst, st, err);
    case 'w': return cuda_nhwc_to_nchw(d->out_c, cg, rs, src, dst, st, err);
    case 'X': return cuda_nchw_to_nhwc(n, cv->in.c, ihw, src, dst, acc, st, err);
    case 'Y': return cuda_nchw_to_nhwc(n, cv->out.c, ohw, src, dst, 0, st, err);
    default: return cuda_nchw_to_nhwc(d->out_c, cg, rs, src, dst, 0, st, err);
    }
}

/* Milliseconds of one copy (after one untimed). */
static int time_copy(const CudaConv *cv, cudnnHandle_t h, char what, const void *src, void *dst,
                     float *ms, StkErr *err) {
    cudaStream_t st;
    cudaEvent_t e0, e1;
    CUDNN_TRY(err, cudnnGetStream(h, &st));
    CUDA_TRY(err, cudaEventCreate(&e0));
    CUDA_TRY(err, cudaEventCreate(&e1));
    int rc = copy(cv, h, what, src, dst, 0, err) || cudaEventRecord(e0, st) != cudaSuccess ||
             copy(cv, h, what, src, dst, 0, err) || cudaEventRecord(e1, st) != cudaSuccess ||
             cudaEventSynchronize(e1) != cudaSuccess || cudaEventElapsedTime(ms, e0, e1) != cudaSuccess;
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    return rc ? stk_errf(err, "cuda_conv: timing a layout copy failed") : 0;
}

/* The NHWC choice's time per batch, all the passes it runs. */
static float nhwc_ms(const CudaConv *cv, int need_dx, int need_dw) {
    return cv->ms_fwd + (need_dx ? cv->ms_bwd_data : 0) + (need_dw ? cv->ms_bwd_filter : 0);
}

/* Builds the NCHW alternative into alt (chunk images per pass, copies at the front of
 * sc->ws) and estimates its time per batch, copies included. -1 + err if cuDNN offers
 * nothing for it within the bound. */
static int try_nchw(CudaConv *alt, const CudaConv *cv, cudnnHandle_t h, int chunk, int strict,
                    int need_dx, int need_dw, const CudaConvScratch *sc, StkErr *err) {
    memset(alt, 0, sizeof *alt);
    alt->d = cv->d, alt->dt = cv->dt, alt->in = cv->in, alt->out = cv->out;
    alt->nchw = 1, alt->chunk = chunk;
    alt->off_ws = copies_bytes(cv, chunk, &alt->off_y, &alt->off_w);
    Shape4 in = cv->in;
    in.n = chunk;
    char *ws = sc->ws;
    if (describe(alt, &cv->d, in, CUDNN_TENSOR_NCHW, strict, err)) return -1;
    alt->out = cv->out; /* describe set the chunk's; the layer's is the batch's */
    CudaConvScratch a = {ws, ws + alt->off_w, ws + alt->off_y, ws, ws + alt->off_w,
                         ws + alt->off_ws, sc->ws_limit - alt->off_ws};
    float tx, ty, tw;
    if (choose(alt, h, strict, need_dx, need_dw, &a, err) ||
        time_copy(alt, h, 'x', sc->x, ws, &tx, err) ||
        time_copy(alt, h, 'Y', ws + alt->off_y, sc->y, &ty, err) ||
        time_copy(alt, h, 'w', sc->w, ws + alt->off_w, &tw, err))
        return -1;
    int k = cv->in.n / chunk;
    alt->ms_nchw = k * (tx + alt->ms_fwd + ty) + tw;
    if (need_dx) alt->ms_nchw += tw + k * (ty + alt->ms_bwd_data + tx);
    if (need_dw) alt->ms_nchw += k * (tx + ty + alt->ms_bwd_filter) + tw;
    alt->ws_fwd += alt->off_ws, alt->ws_bwd_data += alt->off_ws, alt->ws_bwd_filter += alt->off_ws;
    return 0;
}

/* float32: NCHW on copies instead when they fit and it is clearly (20%) faster, or
 * whenever they fit when asked (CUDA_CONV_NCHW). */
static int maybe_nchw(CudaConv *cv, cudnnHandle_t h, int strict, int need_dx, int need_dw,
                      CudaConvLayout layout, const CudaConvScratch *sc, StkErr *err) {
    (void)err; /* NHWC is always there to fall back on */
    int chunk = chunk_for(cv, sc->ws_limit);
    if (!chunk) return 0; /* the copies do not fit the bound */
    CudaConv alt;
    StkErr why;
    int rc = try_nchw(&alt, cv, h, chunk, strict, need_dx, need_dw, sc, &why);
    cv->ms_nhwc = nhwc_ms(cv, need_dx, need_dw);
    if (rc || (layout == CUDA_CONV_AUTO && !(alt.ms_nchw < 0.8f * cv->ms_nhwc))) {
        cv->ms_nchw = rc ? 0 : alt.ms_nchw;
        cuda_conv_free(&alt); /* NHWC stays: cuDNN's NHWC choice is as good or better */
        return 0;
    }
    alt.ms_nhwc = cv->ms_nhwc;
    cuda_conv_free(cv);
    *cv = alt;
    return 0;
}

int cuda_conv_init(CudaConv *cv, cudnnHandle_t h, const ConvDesc *d, CudaDtype dt, Shape4 in, int strict,
                   int need_dx, int need_dw, CudaConvLayout layout, const CudaConvScratch *sc,
                   StkErr *err) {
    memset(cv, 0, sizeof *cv);
    cv->d = *d;
    cv->dt = dt;
    cv->in = in;
    if (d->groups < 1 || d->in_c % d->groups || d->out_c % d->groups || in.c != d->in_c)
        return stk_errf(err, "cuda_conv_init: %d -> %d channels in %d groups on a %d-channel input",
                        d->in_c, d->out_c, d->groups, in.c);
    int strict32 = strict && dt == CUDA_F32;
    if (describe(cv, d, in, CUDNN_TENSOR_NHWC, strict32, err) ||
        choose(cv, h, strict32, need_dx, need_dw, sc, err) ||
        (dt == CUDA_F32 && layout != CUDA_CONV_NHWC &&
         maybe_nchw(cv, h, strict32, need_dx, need_dw, layout, sc, err))) {
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

/* NCHW mode's pieces (cuda_conv.h): one image's bytes of x and of y, and the copies. */
static size_t x_step(const CudaConv *cv) { return (size_t)cv->chunk * cv->in.c * cv->in.h * cv->in.w * 4; }
static size_t y_step(const CudaConv *cv) { return (size_t)cv->chunk * cv->out.c * cv->out.h * cv->out.w * 4; }

static int forward_nchw(const CudaConv *cv, cudnnHandle_t h, const char *x, const void *w, char *y,
                        char *ws, StkErr *err) {
    const float one = 1.0f, zero = 0.0f;
    char *xa = ws, *ya = ws + cv->off_y, *wa = ws + cv->off_w;
    if (copy(cv, h, 'w', w, wa, 0, err)) return -1;
    for (int i = 0; i < cv->in.n / cv->chunk; i++) {
        if (copy(cv, h, 'x', x + i * x_step(cv), xa, 0, err)) return -1;
        CUDNN_TRY(err, cudnnConvolutionForward(h, &one, cv->x, xa, cv->w, wa, cv->conv, cv->fwd,
                                               ws + cv->off_ws, cv->ws_fwd - cv->off_ws, &zero,
                                               cv->y, ya));
        if (copy(cv, h, 'Y', ya, y + i * y_step(cv), 0, err)) return -1;
    }
    return 0;
}

static int backward_data_nchw(const CudaConv *cv, cudnnHandle_t h, const char *dy, const void *w,
                              char *dx, int accumulate, char *ws, StkErr *err) {
    const float one = 1.0f, zero = 0.0f;
    char *dxa = ws, *dya = ws + cv->off_y, *wa = ws + cv->off_w;
    if (copy(cv, h, 'w', w, wa, 0, err)) return -1;
    for (int i = 0; i < cv->in.n / cv->chunk; i++) {
        if (copy(cv, h, 'y', dy + i * y_step(cv), dya, 0, err)) return -1;
        CUDNN_TRY(err, cudnnConvolutionBackwardData(h, &one, cv->w, wa, cv->y, dya, cv->conv,
                                                    cv->bwd_data, ws + cv->off_ws,
                                                    cv->ws_bwd_data - cv->off_ws, &zero, cv->x, dxa));
        if (copy(cv, h, 'X', dxa, dx + i * x_step(cv), accumulate, err)) return -1;
    }
    return 0;
}

/* The chunks' weight gradients sum in the NCHW copy (beta 1 after the first). */
static int backward_filter_nchw(const CudaConv *cv, cudnnHandle_t h, const char *x, const char *dy,
                                void *dw, char *ws, StkErr *err) {
    const float one = 1.0f, zero = 0.0f;
    char *xa = ws, *dya = ws + cv->off_y, *dwa = ws + cv->off_w;
    for (int i = 0; i < cv->in.n / cv->chunk; i++) {
        if (copy(cv, h, 'x', x + i * x_step(cv), xa, 0, err) ||
            copy(cv, h, 'y', dy + i * y_step(cv), dya, 0, err))
            return -1;
        CUDNN_TRY(err, cudnnConvolutionBackwardFilter(h, &one, cv->x, xa, cv->y, dya, cv->conv,
                                                      cv->bwd_filter, ws + cv->off_ws,
                                                      cv->ws_bwd_filter - cv->off_ws,
                                                      i ? &one : &zero, cv->w, dwa));
    }
    return copy(cv, h, 'W', dwa, dw, 0, err);
}

int cuda_conv_forward(const CudaConv *cv, cudnnHandle_t h, const void *x, const void *w,
                      void *y, void *ws, StkErr *err) {
    if (cv->nchw) return forward_nchw(cv, h, x, w, y, ws, err);
    const float one = 1.0f, zero = 0.0f;
    CUDNN_TRY(err, cudnnConvolutionForward(h, &one, cv->x, x, cv->w, w, cv->conv, cv->fwd, ws,
                                           cv->ws_fwd, &zero, cv->y, y));
    return 0;
}

int cuda_conv_backward_data(const CudaConv *cv, cudnnHandle_t h, const void *dy,
                            const void *w, void *dx, int accumulate, void *ws, StkErr *err) {
    if (cv->nchw) return backward_data_nchw(cv, h, dy, w, dx, accumulate, ws, err);
    const float one = 1.0f, zero = 0.0f;
    CUDNN_TRY(err, cudnnConvolutionBackwardData(h, &one, cv->w, w, cv->y, dy, cv->conv,
                                                cv->bwd_data, ws, cv->ws_bwd_data,
                                                accumulate ? &one : &zero, cv->x, dx));
    return 0;
}

int cuda_conv_backward_filter(const CudaConv *cv, cudnnHandle_t h, const void *x,
                              const void *dy, void *dw, void *ws, StkErr *err) {
    if (cv->nchw) return backward_filter_nchw(cv, h, x, dy, dw, ws, err);
    const float one = 1.0f, zero = 0.0f;
    CUDNN_TRY(err, cudnnConvolutionBackwardFilter(h, &one, cv->x, x, cv->y, dy, cv->conv,
                                                  cv->bwd_filter, ws, cv->ws_bwd_filter, &zero,
                                                  cv->w, dw));
    return 0;
}
