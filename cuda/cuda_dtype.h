/* cuda_dtype.h: the element types the CUDA backend stores activations in, and, for .cu
 * files, load/store helpers that make one templated kernel serve all three (arithmetic is
 * always float; half-precision values are rounded to nearest even on store). */
#ifndef CUDA_DTYPE_H
#define CUDA_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum CudaDtype {
    CUDA_F32 = 0,  /* float */
    CUDA_BF16 = 1, /* __nv_bfloat16 */
    CUDA_F16 = 2,  /* __half (IEEE binary16: max 65504, hence loss scaling) */
} CudaDtype;

/* Bytes of one element. */
static inline size_t cuda_dtype_size(CudaDtype t) { return t == CUDA_F32 ? 4 : 2; }

/* Host-side bfloat16 conversions (round to nearest even; NaN stays NaN). */
static inline uint16_t cuda_f32_to_bf16(float f) {
    union { float f; uint32_t u; } v = {f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40);
    return (uint16_t)((v.u + 0x7fffu + ((v.u >> 16) & 1)) >> 16);
}
static inline float cuda_bf16_to_f32(uint16_t b) {
    union { uint32_t u; float f; } v = {(uint32_t)b << 16};
    return v.f;
}

/* Host-side IEEE half conversions (round to nearest even; overflow to infinity, NaN stays
 * NaN, subnormals kept), for weights staged to and from the device in fp16. */
static inline uint16_t cuda_f32_to_f16(float f) {
    union { float f; uint32_t u; } v = {f};
    uint32_t sign = (v.u >> 16) & 0x8000u, a = v.u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);           /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);          /* rounds past 65504 */
    if (a < 0x38800000u) {                                            /* below 2^-14: subnormal */
        if (a < 0x33000000u) return (uint16_t)sign;                   /* below half of 2^-24 */
        uint32_t m = (a & 0x7fffffu) | 0x800000u, shift = 126 - (a >> 23); /* value / 2^-24 = m >> shift */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        q += rem > half || (rem == half && (q & 1));
        return (uint16_t)(sign | q);
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1);                        /* to nearest even */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}
static inline float cuda_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ffu, u;
    if (e == 0x1f) u = sign | 0x7f800000u | (m << 13);                /* inf, NaN */
    else if (e) u = sign | ((e + 112) << 23) | (m << 13);
    else if (!m) u = sign;
    else {                                                            /* subnormal: normalise */
        int k = 0;
        while (!(m & 0x400u)) m <<= 1, k++;
        u = sign | ((uint32_t)(113 - k) << 23) | ((m & 0x3ffu) << 13);
    }
    union { uint32_t u; float f; } v = {u};
    return v.f;
}

/* Either 16-bit type from/to float on the host. */
static inline uint16_t cuda_f32_to_half(CudaDtype t, float f) {
    return t == CUDA_F16 ? cuda_f32_to_f16(f) : cuda_f32_to_bf16(f);
}
static inline float cuda_half_to_f32(CudaDtype t, uint16_t h) {
    return t == CUDA_F16 ? cuda_f16_to_f32(h) : cuda_bf16_to_f32(h);
}

#ifdef __CUDACC__
#include <cuda_bf16.h>
#include <cuda_fp16.h>
__device__ static inline float ld(const float *p) { return *p; }
__device__ static inline float ld(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
__device__ static inline void st(float *p, float v) { *p = v; }
__device__ static inline void st(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }
__device__ static inline float ld(const __half *p) { return __half2float(*p); }
__device__ static inline void st(__half *p, float v) { *p = __float2half_rn(v); }

/* Runs the statement(s) with T defined as the element type of dt: a launcher writes
 * kernel<T><<<...>>>((const T *)x, ...) once for all three types. */
#define CUDA_DISPATCH(dt, T, ...)                                                        \
    do {                                                                                 \
        if ((dt) == CUDA_BF16) {                                                         \
            typedef __nv_bfloat16 T;                                                     \
            __VA_ARGS__;                                                                 \
        } else if ((dt) == CUDA_F16) {                                                   \
            typedef __half T;                                                            \
            __VA_ARGS__;                                                                 \
        } else {                                                                         \
            typedef float T;                                                             \
            __VA_ARGS__;                                                                 \
        }                                                                                \
    } while (0)
#endif

#endif
