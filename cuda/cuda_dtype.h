/* cuda_dtype.h: the element types the CUDA backend stores activations in, and, for .cu
 * files, load/store helpers that make one templated kernel serve both (arithmetic is
 * always float; bfloat16 values are rounded to nearest even on store). */
#ifndef CUDA_DTYPE_H
#define CUDA_DTYPE_H

#include <stddef.h>
#include <stdint.h>

typedef enum CudaDtype {
    CUDA_F32 = 0,  /* float */
    CUDA_BF16 = 1, /* __nv_bfloat16 */
} CudaDtype;

/* Bytes of one element. */
static inline size_t cuda_dtype_size(CudaDtype t) { return t == CUDA_BF16 ? 2 : 4; }

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

#ifdef __CUDACC__
#include <cuda_bf16.h>
__device__ static inline float ld(const float *p) { return *p; }
__device__ static inline float ld(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
__device__ static inline void st(float *p, float v) { *p = v; }
__device__ static inline void st(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

/* Runs the statement(s) with T defined as the element type of dt: a launcher writes
 * kernel<T><<<...>>>((const T *)x, ...) once for both types. */
#define CUDA_DISPATCH(dt, T, ...)                                                        \
    do {                                                                                 \
        if ((dt) == CUDA_BF16) {                                                         \
            typedef __nv_bfloat16 T;                                                     \
            __VA_ARGS__;                                                                 \
        } else {                                                                         \
            typedef float T;                                                             \
            __VA_ARGS__;                                                                 \
        }                                                                                \
    } while (0)
#endif

#endif
