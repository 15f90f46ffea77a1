/* test_cpu_fixture.h: what the CPU layer suites share: the PyTorch fixture file
 * (tests/data/layers.bin, made by tests/fixtures/make_layer_fixtures.py), tolerance
 * comparison with logging, seeded test data and a central-difference gradient check. */
#ifndef TEST_CPU_FIXTURE_H
#define TEST_CPU_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "cpu_tensor.h"

#define FX_MAX_TENSORS 16

/* One named tensor of a case. */
typedef struct FxTensor {
    char name[32];
    Shape4 shape; /* NCHW, padded with 1s */
    int dtype;    /* 0 float32, 1 int32 */
    void *data;   /* shape4_numel(shape) values */
} FxTensor;

/* One PyTorch computation: its op, settings and tensors (see the script's docstring). */
typedef struct FxCase {
    char name[96];
    char op[16];
    double cfg[8];
    int count;
    FxTensor t[FX_MAX_TENSORS];
} FxCase;

/* Loads every case of layers.bin (asserting on any format error) and returns the count;
 * fx_free releases them. */
int fx_load(FxCase **cases);
void fx_free(FxCase *cases, int n);

/* Returns the case's float tensor called name (asserting it exists), and its shape. */
float *fx_f32(const FxCase *c, const char *name, Shape4 *shape);
/* Returns the case's int32 tensor called name, asserting it exists. */
int32_t *fx_i32(const FxCase *c, const char *name);
/* Whether the case has a tensor called name. */
int fx_has(const FxCase *c, const char *name);

/* Asserts |got - want| <= atol + rtol * |want| elementwise (NaN only where want is NaN),
 * logs the largest absolute difference for "case: what", and returns it. */
double fx_compare(const char *case_name, const char *what, const float *got, const float *want,
                  size_t n, double atol, double rtol);

/* Fills x[n] with uniform values in [lo, hi) from key (stk_rng.h). */
void fx_fill(float *x, size_t n, uint64_t key, float lo, float hi);

/* A scalar function of the op's inputs: runs the forward and returns, in double,
 * sum(y * r) for the test's fixed upstream gradient r (or the loss itself). */
typedef double (*FxObjective)(void *ctx);

/* Checks grad[i] = d f / d buf[i] by central differences (buf[i] moved by +-h as float,
 * divided by the real float step) at up to `samples` evenly spaced i; asserts
 * |fd - grad| <= atol + rtol * |fd|, restores buf, logs and returns the worst
 * |fd - grad|. */
double fx_gradcheck(const char *what, FxObjective f, void *ctx, float *buf, size_t n,
                    const float *grad, double h, double atol, double rtol, size_t samples);

/* sum_i a[i] * b[i] in double. */
double fx_dot(const float *a, const float *b, size_t n);

#endif
