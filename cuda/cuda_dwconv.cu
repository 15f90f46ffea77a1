/* cuda_dwconv.cu: depthwise convolution kernels (see cuda_dwconv.h).
 *
 * Why they can run near HBM bandwidth: a depthwise layer does k*k multiply-adds per
 * element it reads (9 or 25), against an H200's ~4.8 TB/s and ~60 TFLOP/s of float FMA:
 * one bf16 element (2 bytes) moved per 9-25 FMAs is ~120-350x below the FMA rate, so
 * every pass is bound by memory traffic, and the target is to move each tensor through
 * HBM about once: forward reads x and writes y (mobilenet_v3_large's first 112x112x16
 * layer at batch 256, bf16: 2 x 103 MB, ~45 us at 4.5 TB/s); backward data reads dy,
 * writes dx; backward filter reads x and dy. The design serves that:
 *   - channels are the fastest dimension of NHWC, so a thread owns a vector of V
 *     channels (8 bf16 or 4 floats: one 16-byte load or store) and a warp's lanes read
 *     neighbouring vectors: full 128-byte lines. When c is not a multiple of V, or a
 *     buffer is not 16-byte aligned, the same kernels run with V = 1 (scalar path).
 *   - forward (and backward data at stride 1, which is the forward's correlation of dy
 *     with the flipped kernel, padded k-1-p) gives each thread a run of DW_TW outputs
 *     along a row: the (DW_TW-1)*s + k inputs of a kernel row are loaded once and serve
 *     every output of the run from registers (3x3 stride 1: 6 loads for 4 outputs instead
 *     of 12); the other kernel rows' reuse comes from L1/L2, as neighbouring threads of
 *     a block read neighbouring rows. A block stages its channels' weights in shared
 *     memory as float, lane-major in 16-byte groups (a warp's reads of one tap are
 *     coalesced and hit distinct banks), and each thread lifts one kernel row into
 *     registers per row of input.
 *   - backward data at stride 2 gathers per input element: only the outputs whose window
 *     holds it (about k*k/4 of them), dy read from cache; dx, 4x the size of dy, is the
 *     traffic that counts.
 *   - backward filter: a block owns a kernel row kh, a slab of channels and a contiguous
 *     range of output-row segments (a "part"); each thread slides a window of k inputs
 *     along its segment (s new loads and one dy load per output) and keeps k*V float
 *     sums in registers. The part's threads are reduced in shared memory in a fixed
 *     order into one float partial per (part, kh, kw, c) in the caller's scratch, and a
 *     last kernel sums the parts in order: the same bits every run, no atomics. The
 *     blocks of one part's kh rows are adjacent in launch order, so x and dy come from L2
 *     for all but the first of them.
 * The kernel width kw (3 and 5, the models' sizes) and the stride are template arguments
 * so that the register arrays are indexed at compile time; any other kw up to DW_KMAX
 * runs a generic instantiation (masked to DW_KMAX). kh is a runtime loop bound.
 *
 * Index math is 32-bit: the entries refuse shapes of 2^31 pixels (n*h*w) or more, so
 * pixel indices and thread/tile counts fit int/unsigned; the element offset
 * (size_t)pixel * c + channel is the one 64-bit multiply-add per access, as a batch's
 * elements may pass 2^31. Parts' unit ranges use one 64-bit product per block. */
#include <stdint.h>

#include "cuda_check.h"
#include "cuda_dtype.h"
#include "cuda_dwconv.h"

#define DW_THREADS 256        /* threads per block, every kernel */
#define DW_MIN_BLOCKS 2       /* resident blocks per SM the register budget must allow */
#define DW_CH_PER_BLOCK 128   /* channels per block at most: weights staged <= 25 KB */
#define DW_KMAX 7             /* largest kernel side supported */
#define DW_TW 4               /* outputs per thread along a row (forward) */
#define DW_GRID_BLOCKS 1024   /* blocks per launch at most (default): several waves on an H200 */
#define DW_SEG 32             /* outputs per window slide in backward filter */
#define DW_UNITS_PER_PART 256 /* row segments per backward-filter part */
#define DW_MAX_PARTS 1024     /* parts at most: bounds the scratch */
#define DW_SUM_BLOCK 256      /* threads per block of the parts' final sum */

/* The geometry every kernel reads: input (ih x iw) and output (oh x ow) of the pass,
 * kernel, strides, and padding (negative in backward data's flipped form when p > k-1).
 * The kernels take the column stride as a template argument S (it shapes their register
 * windows) and read the row stride sh at run time. */
struct DwGeom {
    int n, c, ih, iw, oh, ow, kh, kw, sh, sw, ph, pw;
};

/* V consecutive channels to or from float registers: 16-byte accesses where V fills
 * them, scalar loads otherwise. */
template <typename T, int V> struct Vec {
    __device__ static inline void load(const T *__restrict__ p, float *f) {
#pragma unroll
        for (int v = 0; v < V; v++) f[v] = ld(p + v);
    }
    __device__ static inline void store(T *__restrict__ p, const float *f) {
#pragma unroll
        for (int v = 0; v < V; v++) st(p + v, f[v]);
    }
};

template <> struct Vec<float, 4> {
    __device__ static inline void load(const float *__restrict__ p, float *f) {
        float4 q = *reinterpret_cast<const float4 *>(p);
        f[0] = q.x, f[1] = q.y, f[2] = q.z, f[3] = q.w;
    }
    __device__ static inline void store(float *__restrict__ p, const float *f) {
        *reinterpret_cast<float4 *>(p) = make_float4(f[0], f[1], f[2], f[3]);
    }
};

/* The packed pair of each 16-bit type, for 8 channels in one 16-byte access. */
template <typename T> struct Half2;
template <> struct Half2<__nv_bfloat16> {
    typedef __nv_bfloat162 type;
    __device__ static inline float2 widen(type h) { return __bfloat1622float2(h); }
    __device__ static inline type narrow(float a, float b) { return __floats2bfloat162_rn(a, b); }
};
template <> struct Half2<__half> {
    typedef __half2 type;
    __device__ static inline float2 widen(type h) { return __half22float2(h); }
    __device__ static inline type narrow(float a, float b) { return __floats2half2_rn(a, b); }
};

template <typename T> struct Vec<T, 8> { /* T: a 16-bit type */
    typedef typename Half2<T>::type P;
    __device__ static inline void load(const T *__restrict__ p, float *f) {
        uint4 q = *reinterpret_cast<const uint4 *>(p);
        const P *h = reinterpret_cast<const P *>(&q);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            float2 t = Half2<T>::widen(h[i]);
            f[2 * i] = t.x, f[2 * i + 1] = t.y;
        }
    }
    __device__ static inline void store(T *__restrict__ p, const float *f) {
        uint4 q;
        P *h = reinterpret_cast<P *>(&q);
#pragma unroll
        for (int i = 0; i < 4; i++) h[i] = Half2<T>::narrow(f[2 * i], f[2 * i + 1]);
        *reinterpret_cast<uint4 *>(p) = q;
    }
};

/* Elements per 16-byte vector of T. */
template <typename T> struct VecWidth {
    static const int value = (int)(16 / sizeof(T));
};

/* The staged weights' layout: for each kernel tap, the block's channels as float in
 * 16-byte groups, lane-major within a group ((tap * V/4 + v/4) * cx + lane) * 4 + v%4, so
 * that a warp's lanes read consecutive 16 bytes (no bank conflicts; a lane's 8 bf16
 * channels stored side by side were 4-way conflicted, 8 scalar reads per tap); V = 1:
 * tap * cx + lane. cx = blockDim.x. */
template <int V> __device__ static inline int ws_index(int tap, int lane, int v, int cx) {
    if (V < 4) return tap * cx * V + lane * V + v;
    return ((tap * (V / 4) + v / 4) * cx + lane) * 4 + (v & 3);
}

/* Tap `tap`'s V weights of this thread's lane into f. */
template <int V> __device__ static inline void load_w(const float *ws, int tap, int lane, int cx, float *f) {
    if (V < 4) {
#pragma unroll
        for (int v = 0; v < V; v++) f[v] = ws[ws_index<V>(tap, lane, v, cx)];
    } else {
#pragma unroll
        for (int h = 0; h < V / 4; h++) {
            float4 q = reinterpret_cast<const float4 *>(ws)[(tap * (V / 4) + h) * cx + lane];
            f[4 * h] = q.x, f[4 * h + 1] = q.y, f[4 * h + 2] = q.z, f[4 * h + 3] = q.w;
        }
    }
}

/* Stages the block's channels' weights as float in ws_index's layout, kernel-flipped when
 * flip (backward data as a correlation); channels past c read 0. i walks w in memory
 * order (taps fastest), so a warp's reads coalesce. */
template <typename T, int V>
__device__ static void stage_weights(float *ws, const T *__restrict__ w, int c0, int c, int kk, int flip) {
    int tid = threadIdx.y * blockDim.x + threadIdx.x, nt = blockDim.x * blockDim.y;
    int cx = blockDim.x, cxv = cx * V;
    for (int i = tid; i < kk * cxv; i += nt) {
        int k = i % kk, ch = i / kk, cc = c0 + ch;
        ws[ws_index<V>(flip ? kk - 1 - k : k, ch / V, ch % V, cx)] = cc < c ? ld(w + (size_t)cc * kk + k) : 0.0f;
    }
}

/* V channels at column iw of a row (pix0: the row's first pixel) into f, zeros outside
 * 0 <= iw < w. Branch-free: the load is from a clamped column and the zeros a select, so
 * the compiler can issue a row's loads together (behind a branch each, they went one at
 * a time). */
template <typename T, int V>
__device__ static inline void load_col(const T *__restrict__ x, int pix0, int iw, int w, int cstride,
                                       float *f) {
    int ok = iw >= 0 && iw < w, col = min(max(iw, 0), w - 1);
    Vec<T, V>::load(x + (size_t)(pix0 + col) * cstride, f);
#pragma unroll
    for (int v = 0; v < V; v++) f[v] = ok ? f[v] : 0.0f;
}

/* y = correlation of x with the staged kernel, strides (sh, S), padding (ph, pw): the forward,
 * and backward data at stride 1 (x = dy, flipped kernel, padding k-1-p). Block: x over
 * channel vectors, y over tiles of DW_TW outputs along a row; grid.y strides the tiles. */
template <typename T, int V, int KW, int S>
__global__ void __launch_bounds__(DW_THREADS, DW_MIN_BLOCKS)
    dw_corr_kernel(DwGeom g, int flip, const T *__restrict__ x, const T *__restrict__ w,
                   T *__restrict__ y) {
    extern __shared__ __align__(16) float ws[]; /* load_w reads float4 */
    const int KWM = KW ? KW : DW_KMAX;  /* register extent of a kernel row */
    const int SEGW = (DW_TW - 1) * S + KWM; /* inputs of a row one tile reads */
    const int kw = KW ? KW : g.kw;
    const int cxv = blockDim.x * V;
    stage_weights<T, V>(ws, w, blockIdx.x * cxv, g.c, g.kh * kw, flip);
    __syncthreads();
    int c = (blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (c >= g.c) return;
    unsigned ntw = (unsigned)(g.ow + DW_TW - 1) / DW_TW;
    unsigned tiles = (unsigned)g.n * g.oh * ntw;
    for (unsigned t = blockIdx.y * blockDim.y + threadIdx.y; t < tiles; t += gridDim.y * blockDim.y) {
        int tw = (int)(t % ntw);
        unsigned r = t / ntw;
        int oh = (int)(r % (unsigned)g.oh), n = (int)(r / (unsigned)g.oh);
        int ow0 = tw * DW_TW, iw0 = ow0 * S - g.pw;
        float acc[DW_TW][V];
#pragma unroll
        for (int i = 0; i < DW_TW; i++)
#pragma unroll
            for (int v = 0; v < V; v++) acc[i][v] = 0.0f;
        for (int kh = 0; kh < g.kh; kh++) {
            int ih = oh * g.sh - g.ph + kh;
            if (ih < 0 || ih >= g.ih) continue;
            float wr[KWM][V];
#pragma unroll
            for (int k = 0; k < KWM; k++) {
                if (k < kw) load_w<V>(ws, kh * kw + k, threadIdx.x, blockDim.x, wr[k]);
                else
#pragma unroll
                    for (int v = 0; v < V; v++) wr[k][v] = 0.0f;
            }
            int pix0 = (n * g.ih + ih) * g.iw;
#pragma unroll
            for (int j = 0; j < SEGW; j++) {
                if (!KW && j >= (DW_TW - 1) * S + kw) break; /* generic: past the last tap */
                float xv[V];
                load_col<T, V>(x + c, pix0, iw0 + j, g.iw, g.c, xv);
#pragma unroll
                for (int i = 0; i < DW_TW; i++) {
                    const int k = j - i * S; /* this input's kernel column for output i */
                    if (k < 0 || k >= KWM || (!KW && k >= kw)) continue;
#pragma unroll
                    for (int v = 0; v < V; v++) acc[i][v] = fmaf(xv[v], wr[k][v], acc[i][v]);
                }
            }
        }
        int opix = (n * g.oh + oh) * g.ow + ow0;
#pragma unroll
        for (int i = 0; i < DW_TW; i++)
            if (ow0 + i < g.ow) Vec<T, V>::store(y + (size_t)(opix + i) * g.c + c, acc[i]);
    }
}

/* Backward data at a stride other than 1x1, gathered per input element: dx[n, ih, iw]
 * sums dy[n, oh, ow] * w[kh][kw] over oh*sh - ph + kh = ih, ow*sw - pw + kw = iw. S = 2:
 * both strides 2 (the models' case), KW the kernel width (0: read from g). g: input is
 * dx's (ih x iw), output dy's. Block as the forward's, one input pixel per y lane. */
template <typename T, int V, int S, int KW>
__global__ void __launch_bounds__(DW_THREADS, DW_MIN_BLOCKS)
    dw_bwd_data_gather_kernel(DwGeom g, const T *__restrict__ dy, const T *__restrict__ w,
                              T *__restrict__ dx) {
    extern __shared__ __align__(16) float ws[]; /* load_w reads float4 */
    const int cxv = blockDim.x * V;
    stage_weights<T, V>(ws, w, blockIdx.x * cxv, g.c, g.kh * g.kw, 0);
    __syncthreads();
    int c = (blockIdx.x * blockDim.x + threadIdx.x) * V;
    if (c >= g.c) return;
    unsigned pixels = (unsigned)g.n * g.ih * g.iw;
    for (unsigned p = blockIdx.y * blockDim.y + threadIdx.y; p < pixels; p += gridDim.y * blockDim.y) {
        int iw = (int)(p % (unsigned)g.iw);
        unsigned r = p / (unsigned)g.iw;
        int ih = (int)(r % (unsigned)g.ih), n = (int)(r / (unsigned)g.ih);
        float acc[V];
#pragma unroll
        for (int v = 0; v < V; v++) acc[v] = 0.0f;
        if (S == 2 && KW) {
            /* the taps whose output holds (ih, iw) have the parity of ih + ph and iw + pw:
             * ceil(kw/2)^2 candidates (the dispatch sends kh > kw elsewhere), all loaded
             * (clamped, then masked: no branches, so the loads issue together) */
            const int HALF = (KW + 1) / 2;
            int kh0 = (ih + g.ph) & 1, kw0 = (iw + g.pw) & 1;
#pragma unroll
            for (int a = 0; a < HALF; a++) {
                int kh = kh0 + 2 * a, th = ih + g.ph - kh, oh = th >> 1;
                int okh = kh < g.kh && th >= 0 && oh < g.oh;
                int ohc = min(max(oh, 0), g.oh - 1);
#pragma unroll
                for (int b = 0; b < HALF; b++) {
                    int kw = kw0 + 2 * b, tw = iw + g.pw - kw, ow = tw >> 1;
                    int ok = okh && kw < KW && tw >= 0 && ow < g.ow;
                    int owc = min(max(ow, 0), g.ow - 1);
                    float gv[V], wk[V];
                    Vec<T, V>::load(dy + (size_t)((n * g.oh + ohc) * g.ow + owc) * g.c + c, gv);
                    load_w<V>(ws, ok ? kh * KW + kw : 0, threadIdx.x, blockDim.x, wk);
#pragma unroll
                    for (int v = 0; v < V; v++) acc[v] = fmaf(ok ? gv[v] : 0.0f, ok ? wk[v] : 0.0f, acc[v]);
                }
            }
        } else {
            const int sh = S ? S : g.sh, sw = S ? S : g.sw;
            for (int kh = 0; kh < g.kh; kh++) {
                int th = ih + g.ph - kh; /* = oh * sh when output row oh's window holds ih */
                if (th < 0 || th % sh) continue;
                int oh = th / sh;
                if (oh >= g.oh) continue;
                for (int kw = 0; kw < g.kw; kw++) {
                    int tw = iw + g.pw - kw;
                    if (tw < 0 || tw % sw) continue;
                    int ow = tw / sw;
                    if (ow >= g.ow) continue;
                    float gv[V], wk[V];
                    Vec<T, V>::load(dy + (size_t)((n * g.oh + oh) * g.ow + ow) * g.c + c, gv);
                    load_w<V>(ws, kh * g.kw + kw, threadIdx.x, blockDim.x, wk);
#pragma unroll
                    for (int v = 0; v < V; v++) acc[v] = fmaf(gv[v], wk[v], acc[v]);
                }
            }
        }
        Vec<T, V>::store(dx + (size_t)p * g.c + c, acc);
    }
}

/* Backward filter, first level. grid.x = channel blocks * kh (kh fastest: a part's kh
 * blocks run together and share x and dy through L2), grid.y = parts. Block: x over
 * channel vectors, y over lanes taking the part's row segments (units) in turn. Writes
 * part[(p * kh + kh_i) * kw + k][c]. */
template <typename T, int V, int KW, int S>
__global__ void __launch_bounds__(DW_THREADS, DW_MIN_BLOCKS)
    dw_filter_part_kernel(DwGeom g, unsigned nseg, unsigned units, const T *__restrict__ x,
                          const T *__restrict__ dy, float *__restrict__ part) {
    extern __shared__ float red[]; /* [blockDim.y][cxv] */
    const int KWM = KW ? KW : DW_KMAX;
    /* window columns carried to the next output (the rest are loaded anew): the
     * generic width carries none, as its new columns' place is a run-time kw - S */
    const int KEEP = KW > S ? KW - S : 0;
    const int kw = KW ? KW : g.kw;
    const int cxv = blockDim.x * V;
    int kh = (int)(blockIdx.x % (unsigned)g.kh), cb = (int)(blockIdx.x / (unsigned)g.kh);
    int c = (cb * blockDim.x + threadIdx.x) * V;
    unsigned u0 = (unsigned)((unsigned long long)blockIdx.y * units / gridDim.y);
    unsigned u1 = (unsigned)((unsigned long long)(blockIdx.y + 1) * units / gridDim.y);
    float acc[KWM][V];
#pragma unroll
    for (int k = 0; k < KWM; k++)
#pragma unroll
        for (int v = 0; v < V; v++) acc[k][v] = 0.0f;
    /* threads past the last channel keep zeros but stay for the reduction's barriers */
    for (unsigned u = u0 + threadIdx.y; c < g.c && u < u1; u += blockDim.y) {
        unsigned r = u / nseg;
        int seg = (int)(u % nseg), oh = (int)(r % (unsigned)g.oh), n = (int)(r / (unsigned)g.oh);
        int ih = oh * g.sh - g.ph + kh;
        if (ih < 0 || ih >= g.ih) continue;
        int ow0 = seg * DW_SEG, ow1 = min(ow0 + DW_SEG, g.ow);
        int xpix = (n * g.ih + ih) * g.iw, ypix = (n * g.oh + oh) * g.ow;
        const T *xc = x + c, *dyc = dy + c;
        float win[KWM][V]; /* win[k] = x at column ow*S - pw + k of the current output */
#pragma unroll
        for (int k = 0; k < KEEP; k++)
            load_col<T, V>(xc, xpix, k < kw ? ow0 * S - g.pw + k : -1, g.iw, g.c, win[k]);
#pragma unroll 2 /* two outputs' loads in flight (one at a time, a segment was 32 latencies; four spill) */
        for (int ow = ow0; ow < ow1; ow++) {
            int iwb = ow * S - g.pw;
#pragma unroll
            for (int k = KEEP; k < KWM; k++)
                load_col<T, V>(xc, xpix, k < kw ? iwb + k : -1, g.iw, g.c, win[k]);
            float gv[V];
            Vec<T, V>::load(dyc + (size_t)(ypix + ow) * g.c, gv);
#pragma unroll
            for (int k = 0; k < KWM; k++)
#pragma unroll
                for (int v = 0; v < V; v++) acc[k][v] = fmaf(gv[v], win[k][v], acc[k][v]);
#pragma unroll
            for (int k = 0; k < KEEP; k++)
#pragma unroll
                for (int v = 0; v < V; v++) win[k][v] = win[k + S][v];
        }
    }
    /* one kernel column at a time: the lanes' sums into shared memory, then a tree over
     * the lanes (fixed pairs, so the bits repeat), lane 0 writing the part's sum */
    int c0 = cb * cxv, slot = threadIdx.x * V;
    unsigned ny = blockDim.y, top = 1;
    while (top < ny) top <<= 1;
#pragma unroll
    for (int k = 0; k < KWM; k++) {
        if (k >= kw) break; /* uniform over the block */
#pragma unroll
        for (int v = 0; v < V; v++) red[threadIdx.y * cxv + slot + v] = acc[k][v];
        __syncthreads();
        for (unsigned half = top >> 1; half > 0; half >>= 1) {
            if (threadIdx.y < half && threadIdx.y + half < ny)
#pragma unroll
                for (int v = 0; v < V; v++)
                    red[threadIdx.y * cxv + slot + v] += red[(threadIdx.y + half) * cxv + slot + v];
            __syncthreads();
        }
        if (threadIdx.y == 0 && c < g.c)
#pragma unroll
            for (int v = 0; v < V; v++)
                part[((size_t)(blockIdx.y * g.kh + kh) * kw + k) * g.c + c0 + slot + v] = red[slot + v];
        __syncthreads(); /* lane 0 has read red before the next column overwrites it */
    }
}

/* Backward filter, second level: dw[c][kh][kw] = the sum over parts, in part order, of
 * part[p][kh][kw][c]; a thread per weight, channels fastest so reads coalesce. */
template <typename T>
__global__ void __launch_bounds__(DW_SUM_BLOCK)
    dw_filter_sum_kernel(int c, int kk, int parts, const float *__restrict__ part, T *__restrict__ dw) {
    int total = c * kk;
    for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < total; j += gridDim.x * blockDim.x) {
        float s = 0.0f;
        for (int p = 0; p < parts; p++) s += part[(size_t)p * total + j];
        int ch = j % c, k = j / c;
        st(dw + (size_t)ch * kk + k, s);
    }
}

/* ---- host side ---- */

int cuda_dwconv_supported(const ConvDesc *d) {
    return d && d->in_c >= 1 && d->groups == d->in_c && d->out_c == d->in_c && d->kh >= 1 &&
           d->kh <= DW_KMAX && d->kw >= 1 && d->kw <= DW_KMAX && d->stride_h >= 1 &&
           d->stride_h <= 2 && d->stride_w >= 1 && d->stride_w <= 2 && d->pad_h >= 0 &&
           d->pad_w >= 0;
}

/* What every entry checks before launching: a supported layer, shapes the geometry
 * gives, pixel counts within 32-bit indexing, a known dtype, no NULL buffer. */
static int check_args(const ConvDesc *d, CudaDtype dt, Shape4 in, Shape4 out, const void *a,
                      const void *b, const void *c, const char *fn, StkErr *err) {
    if (!d) return stk_errf(err, "%s: NULL ConvDesc", fn);
    if (!cuda_dwconv_supported(d))
        return stk_errf(err, "%s: not a supported depthwise layer (in_c %d, out_c %d, groups %d, "
                        "kernel %dx%d, stride %dx%d, padding %dx%d)", fn, d->in_c, d->out_c,
                        d->groups, d->kh, d->kw, d->stride_h, d->stride_w, d->pad_h, d->pad_w);
    if (dt != CUDA_F32 && dt != CUDA_BF16 && dt != CUDA_F16) return stk_errf(err, "%s: dtype %d", fn, (int)dt);
    Shape4 want = cpu_conv_out_shape(d, in);
    if (want.n == 0)
        return stk_errf(err, "%s: input %dx%dx%dx%d does not fit the layer (in_c %d, kernel %dx%d, "
                        "padding %dx%d)", fn, in.n, in.c, in.h, in.w, d->in_c, d->kh, d->kw,
                        d->pad_h, d->pad_w);
    if (want.n != out.n || want.c != out.c || want.h != out.h || want.w != out.w)
        return stk_errf(err, "%s: output %dx%dx%dx%d, the geometry gives %dx%dx%dx%d", fn, out.n,
                        out.c, out.h, out.w, want.n, want.c, want.h, want.w);
    if ((long long)in.n * in.h * in.w > INT32_MAX || (long long)out.n * out.h * out.w > INT32_MAX)
        return stk_errf(err, "%s: input %dx%dx%dx%d has 2^31 pixels or more", fn, in.n, in.c,
                        in.h, in.w);
    if (!a || !b || !c)
        return stk_errf(err, "%s: NULL buffer (%p, %p, %p)", fn, a, b, c);
    return 0;
}

static DwGeom geom(const ConvDesc *d, Shape4 in, Shape4 out) {
    DwGeom g = {in.n, in.c, in.h, in.w, out.h, out.w, d->kh, d->kw,
                d->stride_h, d->stride_w, d->pad_h, d->pad_w};
    return g;
}

/* V for a pass: 16-byte vectors when every channel offset and buffer allows them. */
static int vec_width(CudaDtype dt, int c, const void *a, const void *b) {
    int v = dt == CUDA_F32 ? 4 : 8;
    if (c % v || ((uintptr_t)a | (uintptr_t)b) % 16) return 1;
    return v;
}

/* Block: channel-vector lanes by lanes over space. The channel vectors are split into
 * equal blocks of at most DW_CH_PER_BLOCK channels (144 channels of bf16: 2 x 9 lanes,
 * where 16 + 2 left 44% of the threads idle). */
static dim3 block_for(int c, int v) {
    int cvec = c / v, most = DW_CH_PER_BLOCK / v, nb = (cvec + most - 1) / most;
    int cx = (cvec + nb - 1) / nb;
    return dim3((unsigned)cx, (unsigned)(DW_THREADS / cx));
}

static unsigned grid_cap = DW_GRID_BLOCKS;

extern "C" void cuda_dwconv_set_grid_blocks(unsigned blocks) {
    grid_cap = blocks ? blocks : DW_GRID_BLOCKS;
}

/* Row blocks of a launch with gx channel blocks: enough for the items, but at most
 * grid_cap blocks in all (gx, if gx alone passes it) and never past gridDim.y's 65535.
 * Each block stages its weights once, so a block must walk many
 * items: one block per 16 tiles had the staging cost more than the convolution. */
static unsigned grid_y(unsigned long long items, unsigned lanes, unsigned gx) {
    unsigned long long b = (items + lanes - 1) / lanes, most = grid_cap / gx;
    if (most < 1) most = 1;
    if (most > 65535) most = 65535;
    return (unsigned)(b < 1 ? 1 : b < most ? b : most);
}

template <typename T, int V, int KW, int S>
static void corr_launch(DwGeom g, int flip, const T *x, const T *w, T *y, cudaStream_t s) {
    dim3 block = block_for(g.c, V);
    unsigned cvec = (unsigned)(g.c / V), ntw = (unsigned)(g.ow + DW_TW - 1) / DW_TW;
    unsigned gx = (cvec + block.x - 1) / block.x;
    dim3 grid(gx, grid_y((unsigned long long)g.n * g.oh * ntw, block.y, gx));
    size_t smem = sizeof(float) * g.kh * g.kw * block.x * V;
    dw_corr_kernel<T, V, KW, S><<<grid, block, smem, s>>>(g, flip, x, w, y);
}

/* The instantiation for (v, kw): the models' widths 3 and 5 unrolled, any other kw on the
 * generic one; the scalar path is generic only (odd channel counts are rare here). */
template <typename T, int S>
static void corr_pick(int v, DwGeom g, int flip, const T *x, const T *w, T *y, cudaStream_t s) {
    const int VW = VecWidth<T>::value;
    if (v == 1) corr_launch<T, 1, 0, S>(g, flip, x, w, y, s);
    else if (g.kw == 3) corr_launch<T, VW, 3, S>(g, flip, x, w, y, s);
    else if (g.kw == 5) corr_launch<T, VW, 5, S>(g, flip, x, w, y, s);
    else corr_launch<T, VW, 0, S>(g, flip, x, w, y, s);
}

template <typename T>
static void corr_run(int v, int stride, DwGeom g, int flip, const T *x, const T *w, T *y,
                     cudaStream_t s) {
    if (stride == 1) corr_pick<T, 1>(v, g, flip, x, w, y, s);
    else corr_pick<T, 2>(v, g, flip, x, w, y, s);
}


extern "C" int cuda_dwconv_forward(const ConvDesc *d, CudaDtype dt, Shape4 in, Shape4 out,
                                   const void *x, const void *w, void *y, cudaStream_t s,
                                   StkErr *err) {
    if (check_args(d, dt, in, out, x, w, y, "cuda_dwconv_forward", err)) return -1;
    DwGeom g = geom(d, in, out);
    int v = vec_width(dt, in.c, x, y);
    CUDA_DISPATCH(dt, T, corr_run<T>(v, g.sw, g, 0, (const T *)x, (const T *)w, (T *)y, s));
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

template <typename T, int V, int S, int KW>
static void gather_launch(DwGeom g, const T *dy, const T *w, T *dx, cudaStream_t s) {
    dim3 block = block_for(g.c, V);
    unsigned cvec = (unsigned)(g.c / V);
    unsigned gx = (cvec + block.x - 1) / block.x;
    dim3 grid(gx, grid_y((unsigned long long)g.n * g.ih * g.iw, block.y, gx));
    size_t smem = sizeof(float) * g.kh * g.kw * block.x * V;
    dw_bwd_data_gather_kernel<T, V, S, KW><<<grid, block, smem, s>>>(g, dy, w, dx);
}

/* Stride 2 both ways with the models' widths 3 and 5 and kh <= kw: the unrolled parity
 * gather (its row loop has kw's extent); any other stride or shape (and the scalar path):
 * the generic loops. */
template <typename T>
static void gather_run(int v, DwGeom g, const T *dy, const T *w, T *dx, cudaStream_t s) {
    const int VW = VecWidth<T>::value;
    int s2 = g.sh == 2 && g.sw == 2, fit = g.kh <= g.kw;
    if (v == 1) s2 ? gather_launch<T, 1, 2, 0>(g, dy, w, dx, s) : gather_launch<T, 1, 0, 0>(g, dy, w, dx, s);
    else if (s2 && fit && g.kw == 3) gather_launch<T, VW, 2, 3>(g, dy, w, dx, s);
    else if (s2 && fit && g.kw == 5) gather_launch<T, VW, 2, 5>(g, dy, w, dx, s);
    else s2 ? gather_launch<T, VW, 2, 0>(g, dy, w, dx, s) : gather_launch<T, VW, 0, 0>(g, dy, w, dx, s);
}

/* At stride 1x1, dx is the correlation of dy with the flipped kernel padded k-1-p (the
 * forward's fast kernel, input and output swapped); other strides gather. */
extern "C" int cuda_dwconv_backward_data(const ConvDesc *d, CudaDtype dt, Shape4 in, Shape4 out,
                                         const void *dy, const void *w, void *dx, cudaStream_t s,
                                         StkErr *err) {
    if (check_args(d, dt, in, out, dy, w, dx, "cuda_dwconv_backward_data", err)) return -1;
    int v = vec_width(dt, in.c, dy, dx);
    if (d->stride_h == 1 && d->stride_w == 1) {
        DwGeom g = {in.n, in.c, out.h, out.w, in.h, in.w, d->kh, d->kw,
                    1, 1, d->kh - 1 - d->pad_h, d->kw - 1 - d->pad_w};
        CUDA_DISPATCH(dt, T, corr_run<T>(v, 1, g, 1, (const T *)dy, (const T *)w, (T *)dx, s));
    } else {
        DwGeom g = geom(d, in, out);
        CUDA_DISPATCH(dt, T, gather_run<T>(v, g, (const T *)dy, (const T *)w, (T *)dx, s));
    }
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}

/* Backward filter's split of the output rows: units are DW_SEG-output segments of rows,
 * in memory order; parts are contiguous runs of at most DW_UNITS_PER_PART units, and
 * enough of them that the launch (parts x kh x channel blocks) has about DW_GRID_BLOCKS
 * blocks: the 7x7 layers had 7 parts, 315 blocks in 1.2 waves, each thread walking 112
 * outputs in turn. Shapes only, so the scratch size is known before any buffer is (the
 * channel blocks are c / DW_CH_PER_BLOCK rounded up whatever the dtype's vector). */
static unsigned filter_nseg(Shape4 out) { return (unsigned)(out.w + DW_SEG - 1) / DW_SEG; }

static unsigned filter_parts(unsigned units, int kh, int c) {
    unsigned p = (units + DW_UNITS_PER_PART - 1) / DW_UNITS_PER_PART;
    unsigned rows = (unsigned)kh * (unsigned)((c + DW_CH_PER_BLOCK - 1) / DW_CH_PER_BLOCK);
    unsigned fill = (DW_GRID_BLOCKS + rows - 1) / rows;
    if (p < fill) p = fill < units ? fill : units;
    return p < 1 ? 1 : p < DW_MAX_PARTS ? p : DW_MAX_PARTS;
}

extern "C" size_t cuda_dwconv_filter_scratch(const ConvDesc *d, Shape4 in, Shape4 out) {
    if (check_args(d, CUDA_F32, in, out, d, d, d, "", NULL)) return 0;
    unsigned units = (unsigned)out.n * out.h * filter_nseg(out);
    return (size_t)filter_parts(units, d->kh, d->in_c) * d->kh * d->kw * d->in_c;
}

template <typename T, int V, int KW, int S>
static void filter_launch(DwGeom g, unsigned parts, const T *x, const T *dy, float *part,
                          cudaStream_t s) {
    dim3 block = block_for(g.c, V);
    unsigned cvec = (unsigned)(g.c / V), nseg = (unsigned)(g.ow + DW_SEG - 1) / DW_SEG;
    dim3 grid((cvec + block.x - 1) / block.x * g.kh, parts);
    size_t smem = sizeof(float) * block.x * block.y * V;
    dw_filter_part_kernel<T, V, KW, S><<<grid, block, smem, s>>>(
        g, nseg, (unsigned)g.n * g.oh * nseg, x, dy, part);
}

template <typename T, int S>
static void filter_pick(int v, DwGeom g, unsigned parts, const T *x, const T *dy, float *part,
                        cudaStream_t s) {
    const int VW = VecWidth<T>::value;
    if (v == 1) filter_launch<T, 1, 0, S>(g, parts, x, dy, part, s);
    else if (g.kw == 3) filter_launch<T, VW, 3, S>(g, parts, x, dy, part, s);
    else if (g.kw == 5) filter_launch<T, VW, 5, S>(g, parts, x, dy, part, s);
    else filter_launch<T, VW, 0, S>(g, parts, x, dy, part, s);
}

template <typename T>
static void filter_run(int v, DwGeom g, unsigned parts, const T *x, const T *dy, float *part,
                       T *dw, cudaStream_t s) {
    if (g.sw == 1) filter_pick<T, 1>(v, g, parts, x, dy, part, s);
    else filter_pick<T, 2>(v, g, parts, x, dy, part, s);
    int total = g.c * g.kh * g.kw;
    unsigned blocks = (unsigned)((total + DW_SUM_BLOCK - 1) / DW_SUM_BLOCK);
    dw_filter_sum_kernel<T><<<blocks, DW_SUM_BLOCK, 0, s>>>(g.c, g.kh * g.kw, (int)parts, part, dw);
}

extern "C" int cuda_dwconv_backward_filter(const ConvDesc *d, CudaDtype dt, Shape4 in, Shape4 out,
                                           const void *x, const void *dy, void *dw, float *scratch,
                                           size_t scratch_floats, cudaStream_t s, StkErr *err) {
    const char *fn = "cuda_dwconv_backward_filter";
    if (check_args(d, dt, in, out, x, dy, dw, fn, err)) return -1;
    size_t need = cuda_dwconv_filter_scratch(d, in, out);
    if (!scratch || scratch_floats < need)
        return stk_errf(err, "%s: scratch %p of %zu floats, the layer needs %zu", fn,
                        (void *)scratch, scratch_floats, need);
    DwGeom g = geom(d, in, out);
    unsigned parts = (unsigned)(need / ((size_t)d->kh * d->kw * d->in_c));
    int v = vec_width(dt, in.c, x, dy);
    CUDA_DISPATCH(dt, T, filter_run<T>(v, g, parts, (const T *)x, (const T *)dy, scratch, (T *)dw, s));
    CUDA_TRY(err, cudaGetLastError());
    return 0;
}
