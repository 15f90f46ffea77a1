/* cpu_tensor.h: what the CPU backend's operations take: float32 buffers in NCHW order
 * (N samples, C channels, H rows, W columns) with their shape, owned by the caller (the
 * arenas of the memory plan). Operations never allocate per call: anything they need
 * (oneDNN primitives, scratch) is made once in an _init for a given shape. */
#ifndef CPU_TENSOR_H
#define CPU_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "stk_err.h"

/* An NCHW shape; a matrix is {n, c, 1, 1}, a vector {1, c, 1, 1}. */
typedef struct Shape4 {
    int n, c, h, w;
} Shape4;

/* Elements of a shape. */
static inline size_t shape4_numel(Shape4 s) { return (size_t)s.n * s.c * s.h * s.w; }

#endif
