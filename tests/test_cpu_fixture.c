/* test_cpu_fixture.c: the CPU layer suites' fixture reader, comparisons and gradient
 * check (see test_cpu_fixture.h). */
#include "test_cpu_fixture.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stk_rng.h"

static void read_str(FILE *f, char *dst, size_t cap) {
    uint32_t len;
    cr_assert(fread(&len, 4, 1, f) == 1 && len < cap, "layers.bin: bad string length");
    cr_assert(fread(dst, 1, len, f) == len, "layers.bin: truncated string");
    dst[len] = '\0';
}

static void read_tensor(FILE *f, FxTensor *t) {
    int32_t dims[4];
    uint32_t dtype;
    read_str(f, t->name, sizeof t->name);
    cr_assert(fread(dims, 4, 4, f) == 4 && fread(&dtype, 4, 1, f) == 1 && dtype <= 1,
              "layers.bin: bad header of tensor %s", t->name);
    t->shape = (Shape4){dims[0], dims[1], dims[2], dims[3]};
    t->dtype = (int)dtype;
    size_t n = shape4_numel(t->shape);
    cr_assert(n > 0 && n < (1u << 24), "layers.bin: tensor %s has %zu values", t->name, n);
    t->data = malloc(n * 4);
    cr_assert(fread(t->data, 4, n, f) == n, "layers.bin: tensor %s truncated", t->name);
}

int fx_load(FxCase **cases) {
    FILE *f = fopen(STOKER_TEST_DATA "/layers.bin", "rb");
    cr_assert(f, "cannot open %s/layers.bin", STOKER_TEST_DATA);
    char magic[4];
    uint32_t version, n;
    cr_assert(fread(magic, 4, 1, f) == 1 && !memcmp(magic, "STKL", 4), "layers.bin: magic");
    cr_assert(fread(&version, 4, 1, f) == 1 && version == 1, "layers.bin: version");
    cr_assert(fread(&n, 4, 1, f) == 1 && n > 0 && n < 1000, "layers.bin: case count");
    *cases = calloc(n, sizeof **cases);
    for (uint32_t i = 0; i < n; i++) {
        FxCase *c = &(*cases)[i];
        uint32_t count;
        read_str(f, c->name, sizeof c->name);
        read_str(f, c->op, sizeof c->op);
        cr_assert(fread(c->cfg, 8, 8, f) == 8 && fread(&count, 4, 1, f) == 1 &&
                  count <= FX_MAX_TENSORS, "layers.bin: case %s header", c->name);
        c->count = (int)count;
        for (int k = 0; k < c->count; k++) read_tensor(f, &c->t[k]);
    }
    cr_assert(fgetc(f) == EOF, "layers.bin: trailing bytes");
    fclose(f);
    return (int)n;
}

void fx_free(FxCase *cases, int n) {
    for (int i = 0; i < n; i++)
        for (int k = 0; k < cases[i].count; k++) free(cases[i].t[k].data);
    free(cases);
}

static const FxTensor *find(const FxCase *c, const char *name) {
    for (int k = 0; k < c->count; k++)
        if (!strcmp(c->t[k].name, name)) return &c->t[k];
    return NULL;
}

int fx_has(const FxCase *c, const char *name) { return find(c, name) != NULL; }

float *fx_f32(const FxCase *c, const char *name, Shape4 *shape) {
    const FxTensor *t = find(c, name);
    cr_assert(t && t->dtype == 0, "%s: no float tensor %s", c->name, name);
    if (shape) *shape = t->shape;
    return t->data;
}

int32_t *fx_i32(const FxCase *c, const char *name) {
    const FxTensor *t = find(c, name);
    cr_assert(t && t->dtype == 1, "%s: no int32 tensor %s", c->name, name);
    return t->data;
}

double fx_compare(const char *case_name, const char *what, const float *got, const float *want,
                  size_t n, double atol, double rtol) {
    double worst = 0.0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(want[i]) || isnan(got[i])) {
            cr_assert(isnan(want[i]) && isnan(got[i]), "%s: %s[%zu] = %g, PyTorch %g",
                      case_name, what, i, got[i], want[i]);
            continue;
        }
        double d = fabs((double)got[i] - want[i]);
        if (d > worst) worst = d, at = i;
        cr_assert(d <= atol + rtol * fabs(want[i]), "%s: %s[%zu] = %.9g, PyTorch %.9g (diff %.3g)",
                  case_name, what, i, got[i], want[i], d);
    }
    cr_log_info("%s: %s max |diff| %.3g (at %zu of %zu)", case_name, what, worst, at, n);
    return worst;
}

void fx_fill(float *x, size_t n, uint64_t key, float lo, float hi) {
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * (float)stk_rng_unit(stk_rng_at(key, i));
}

double fx_dot(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

double fx_gradcheck(const char *what, FxObjective f, void *ctx, float *buf, size_t n,
                    const float *grad, double h, double atol, double rtol, size_t samples) {
    size_t count = n < samples ? n : samples;
    double worst = 0.0;
    for (size_t s = 0; s < count; s++) {
        size_t i = s * n / count;
        float keep = buf[i], up = (float)(keep + h), down = (float)(keep - h);
        buf[i] = up;
        double fu = f(ctx);
        buf[i] = down;
        double fd_down = f(ctx);
        buf[i] = keep;
        double fd = (fu - fd_down) / ((double)up - down), d = fabs(fd - grad[i]);
        worst = d > worst ? d : worst;
        cr_assert(d <= atol + rtol * fabs(fd), "%s: d/d[%zu] analytic %.7g, central difference "
                  "%.7g", what, i, grad[i], fd);
    }
    cr_log_info("%s: %zu of %zu gradients, worst |analytic - central difference| %.3g", what,
                count, n, worst);
    return worst;
}
