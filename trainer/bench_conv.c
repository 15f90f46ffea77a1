/* bench_conv.c: which library the CPU backend's convolutions should use (issue 5):
 * im2col + OpenBLAS SGEMM against oneDNN's direct convolution, forward, backward-data
 * and backward-weights, float32 NCHW, on resnet18 layers at batch 16. The peer
 * (PyTorch on the same layers, same threads) is scripts/bench_conv.py; both run from
 * scripts/bench_conv.sh. Prints one line per (layer, library): ms for each pass.
 * usage: bench_conv [--threads 2] [--iters 10] */
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct Layer {
    const char *name;
    int n, c, h, w, k, r, stride, pad;
} Layer;

static const Layer layers[] = {
    {"conv1 3->64 7x7/2 @224", 16, 3, 224, 224, 64, 7, 2, 3},
    {"layer1 64->64 3x3 @56", 16, 64, 56, 56, 64, 3, 1, 1},
    {"layer3 256->256 3x3 @14", 16, 256, 14, 14, 256, 3, 1, 1},
};

static int out_side(int in, const Layer *l) { return (in + 2 * l->pad - l->r) / l->stride + 1; }

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static float *rand_buf(size_t n) {
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

/* col[(c*r + i)*r + j][oy*ow + ox] = x[c][oy*s - p + i][ox*s - p + j] (0 outside) */
static void im2col(const float *x, const Layer *l, int oh, int ow, float *col) {
    for (int c = 0; c < l->c; c++)
        for (int i = 0; i < l->r; i++)
            for (int j = 0; j < l->r; j++) {
                float *row = col + ((size_t)(c * l->r + i) * l->r + j) * oh * ow;
                for (int oy = 0; oy < oh; oy++) {
                    int y = oy * l->stride - l->pad + i;
                    for (int ox = 0; ox < ow; ox++) {
                        int x0 = ox * l->stride - l->pad + j;
                        row[oy * ow + ox] = (y < 0 || y >= l->h || x0 < 0 || x0 >= l->w)
                                                ? 0.0f : x[((size_t)c * l->h + y) * l->w + x0];
                    }
                }
            }
}

/* The adjoint of im2col: accumulates col back into dx. */
static void col2im(const float *col, const Layer *l, int oh, int ow, float *dx) {
    memset(dx, 0, sizeof *dx * l->c * l->h * l->w);
    for (int c = 0; c < l->c; c++)
        for (int i = 0; i < l->r; i++)
            for (int j = 0; j < l->r; j++) {
                const float *row = col + ((size_t)(c * l->r + i) * l->r + j) * oh * ow;
                for (int oy = 0; oy < oh; oy++) {
                    int y = oy * l->stride - l->pad + i;
                    if (y < 0 || y >= l->h) continue;
                    for (int ox = 0; ox < ow; ox++) {
                        int x0 = ox * l->stride - l->pad + j;
                        if (x0 >= 0 && x0 < l->w) dx[((size_t)c * l->h + y) * l->w + x0] += row[oy * ow + ox];
                    }
                }
            }
}

/* ms for forward, backward-data, backward-weights with im2col + SGEMM, per image. */
static void run_blas(const Layer *l, int iters, double ms[3]) {
    int oh = out_side(l->h, l), ow = out_side(l->w, l), ckk = l->c * l->r * l->r, ohw = oh * ow;
    size_t xin = (size_t)l->c * l->h * l->w, yout = (size_t)l->k * ohw;
    float *x = rand_buf(xin * l->n), *wt = rand_buf((size_t)l->k * ckk), *y = rand_buf(yout * l->n);
    float *dy = rand_buf(yout * l->n), *dx = rand_buf(xin * l->n), *dw = rand_buf((size_t)l->k * ckk);
    float *col = malloc(sizeof *col * (size_t)ckk * ohw);
    for (int it = -1; it < iters; it++) {
        double t0 = now_ms();
        for (int b = 0; b < l->n; b++) {
            im2col(x + b * xin, l, oh, ow, col);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, l->k, ohw, ckk, 1.0f, wt, ckk,
                        col, ohw, 0.0f, y + b * yout, ohw);
        }
        double t1 = now_ms();
        for (int b = 0; b < l->n; b++) {
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ckk, ohw, l->k, 1.0f, wt, ckk,
                        dy + b * yout, ohw, 0.0f, col, ohw);
            col2im(col, l, oh, ow, dx + b * xin);
        }
        double t2 = now_ms();
        for (int b = 0; b < l->n; b++) {
            im2col(x + b * xin, l, oh, ow, col);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, l->k, ckk, ohw, 1.0f,
                        dy + b * yout, ohw, col, ohw, b ? 1.0f : 0.0f, dw, ckk);
        }
        double t3 = now_ms();
        if (it >= 0) ms[0] += (t1 - t0) / iters, ms[1] += (t2 - t1) / iters, ms[2] += (t3 - t2) / iters;
    }
    free(x), free(wt), free(y), free(dy), free(dx), free(dw), free(col);
}

#define DNNL_OK(call)                                                                    \
    do {                                                                                 \
        dnnl_status_t st_ = (call);                                                      \
        if (st_ != dnnl_success) {                                                       \
            fprintf(stderr, "bench_conv: %s:%d: %s: status %d\n", __FILE__, __LINE__, #call, \
                    (int)st_);                                                           \
            exit(1);                                                                     \
        }                                                                                \
    } while (0)

/* A memory object in the layout primitive desc pd chose for what (src, weights...). */
static dnnl_memory_t mem_for(const_dnnl_primitive_desc_t pd, dnnl_query_t what, dnnl_engine_t e) {
    dnnl_memory_t m;
    DNNL_OK(dnnl_memory_create(&m, dnnl_primitive_desc_query_md(pd, what, 0), e, DNNL_MEMORY_ALLOCATE));
    return m;
}

static double exec_ms(dnnl_primitive_t p, dnnl_stream_t s, int nargs, const dnnl_exec_arg_t *a,
                      int iters) {
    DNNL_OK(dnnl_primitive_execute(p, s, nargs, a));
    DNNL_OK(dnnl_stream_wait(s));
    double t0 = now_ms();
    for (int i = 0; i < iters; i++) DNNL_OK(dnnl_primitive_execute(p, s, nargs, a));
    DNNL_OK(dnnl_stream_wait(s));
    return (now_ms() - t0) / iters;
}

/* oneDNN direct convolution with the layouts it prefers (format_tag_any), as a backend
 * keeping activations in those layouts would run it; reorders are not timed. */
static void run_dnnl(const Layer *l, int iters, double ms[3]) {
    dnnl_engine_t eng;
    dnnl_stream_t s;
    DNNL_OK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    DNNL_OK(dnnl_stream_create(&s, eng, dnnl_stream_default_flags));
    int oh = out_side(l->h, l), ow = out_side(l->w, l);
    dnnl_dims_t xd = {l->n, l->c, l->h, l->w}, wd = {l->k, l->c, l->r, l->r};
    dnnl_dims_t yd = {l->n, l->k, oh, ow}, st = {l->stride, l->stride}, pad = {l->pad, l->pad};
    dnnl_memory_desc_t x_md, w_md, y_md;
    DNNL_OK(dnnl_memory_desc_init_by_tag(&x_md, 4, xd, dnnl_f32, dnnl_format_tag_any));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&w_md, 4, wd, dnnl_f32, dnnl_format_tag_any));
    DNNL_OK(dnnl_memory_desc_init_by_tag(&y_md, 4, yd, dnnl_f32, dnnl_format_tag_any));
    dnnl_convolution_desc_t fd, bd, wdsc;
    DNNL_OK(dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training, dnnl_convolution_direct,
                                               &x_md, &w_md, NULL, &y_md, st, pad, pad));
    DNNL_OK(dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &x_md, &w_md,
                                                     &y_md, st, pad, pad));
    DNNL_OK(dnnl_convolution_backward_weights_desc_init(&wdsc, dnnl_convolution_direct, &x_md,
                                                        &w_md, NULL, &y_md, st, pad, pad));
    dnnl_primitive_desc_t fpd, bpd, wpd;
    DNNL_OK(dnnl_primitive_desc_create(&fpd, &fd, NULL, eng, NULL));
    DNNL_OK(dnnl_primitive_desc_create(&bpd, &bd, NULL, eng, fpd));
    DNNL_OK(dnnl_primitive_desc_create(&wpd, &wdsc, NULL, eng, fpd));
    dnnl_primitive_t fp, bp, wp;
    DNNL_OK(dnnl_primitive_create(&fp, fpd));
    DNNL_OK(dnnl_primitive_create(&bp, bpd));
    DNNL_OK(dnnl_primitive_create(&wp, wpd));
    dnnl_memory_t x = mem_for(fpd, dnnl_query_src_md, eng), w = mem_for(fpd, dnnl_query_weights_md, eng);
    dnnl_memory_t y = mem_for(fpd, dnnl_query_dst_md, eng);
    dnnl_memory_t dx = mem_for(bpd, dnnl_query_diff_src_md, eng), bw = mem_for(bpd, dnnl_query_weights_md, eng);
    dnnl_memory_t dy = mem_for(bpd, dnnl_query_diff_dst_md, eng);
    dnnl_memory_t wx = mem_for(wpd, dnnl_query_src_md, eng), dw = mem_for(wpd, dnnl_query_diff_weights_md, eng);
    dnnl_memory_t wdy = mem_for(wpd, dnnl_query_diff_dst_md, eng);
    dnnl_exec_arg_t fa[] = {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, y}};
    dnnl_exec_arg_t ba[] = {{DNNL_ARG_DIFF_SRC, dx}, {DNNL_ARG_WEIGHTS, bw}, {DNNL_ARG_DIFF_DST, dy}};
    dnnl_exec_arg_t wa[] = {{DNNL_ARG_SRC, wx}, {DNNL_ARG_DIFF_WEIGHTS, dw}, {DNNL_ARG_DIFF_DST, wdy}};
    ms[0] = exec_ms(fp, s, 3, fa, iters);
    ms[1] = exec_ms(bp, s, 3, ba, iters);
    ms[2] = exec_ms(wp, s, 3, wa, iters);
    dnnl_memory_t all[] = {x, w, y, dx, bw, dy, wx, dw, wdy};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) dnnl_memory_destroy(all[i]);
    dnnl_primitive_destroy(fp), dnnl_primitive_destroy(bp), dnnl_primitive_destroy(wp);
    dnnl_primitive_desc_destroy(fpd), dnnl_primitive_desc_destroy(bpd), dnnl_primitive_desc_destroy(wpd);
    dnnl_stream_destroy(s);
    dnnl_engine_destroy(eng);
}

int main(int argc, char **argv) {
    int threads = 2, iters = 10;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--iters")) iters = atoi(argv[i + 1]);
    }
    if (threads < 1 || iters < 1) {
        fprintf(stderr, "usage: bench_conv [--threads T] [--iters N]\n");
        return 2;
    }
    openblas_set_num_threads(threads);
    /* oneDNN's OpenMP runtime reads OMP_NUM_THREADS: scripts/bench_conv.sh sets it */
    for (size_t i = 0; i < sizeof layers / sizeof *layers; i++) {
        double blas[3] = {0}, dnnl[3] = {0};
        run_blas(&layers[i], iters, blas);
        run_dnnl(&layers[i], iters, dnnl);
        printf("%-26s openblas-im2col fwd %7.2f  bwd-data %7.2f  bwd-weights %7.2f  total %7.2f ms\n",
               layers[i].name, blas[0], blas[1], blas[2], blas[0] + blas[1] + blas[2]);
        printf("%-26s onednn-direct   fwd %7.2f  bwd-data %7.2f  bwd-weights %7.2f  total %7.2f ms\n",
               layers[i].name, dnnl[0], dnnl[1], dnnl[2], dnnl[0] + dnnl[1] + dnnl[2]);
    }
    return 0;
}
