/* cpu_conv.h: 2-D convolution for the CPU backend with torch.nn.Conv2d's semantics
 * (groups, depthwise, stride, symmetric zero padding per axis, dilation 1, optional
 * bias), float32, forward and both backward passes, on oneDNN.
 *
 * Layouts at this interface are PyTorch's: activations NCHW; weights [out_c,
 * in_c/groups, kh, kw] (OIHW; with groups, group g owns output channels
 * [g*out_c/groups, (g+1)*out_c/groups) and sees input channels [g*in_c/groups, ...));
 * bias [out_c]. All buffers belong to the caller. Everything oneDNN needs is made once by
 * cpu_conv_init for one (desc, input shape); the passes allocate nothing. A CpuConv is
 * used by one thread at a time. */
#ifndef CPU_CONV_H
#define CPU_CONV_H

#include "cpu_dnnl.h"
#include "cpu_tensor.h"

/* What torch.nn.Conv2d(in_c, out_c, (kh, kw), (stride_h, stride_w), (pad_h, pad_w),
 * groups=groups, bias=bias) describes. */
typedef struct ConvDesc {
    int in_c, out_c;        /* channels in and out, >= 1, both divisible by groups */
    int kh, kw;             /* kernel rows and columns, >= 1 */
    int stride_h, stride_w; /* >= 1 */
    int pad_h, pad_w;       /* zero rows (columns) added above and below (left and right), >= 0 */
    int groups;             /* >= 1; depthwise when groups == in_c */
    int bias;               /* 1: y gets b[out_c] added, and backward_weights gives db; or 0 */
} ConvDesc;

/* One tensor argument of a oneDNN primitive (internal to cpu_conv.c). */
typedef struct CpuConvPort {
    dnnl_memory_t user;       /* plain layout over the caller's buffer, set per call */
    dnnl_memory_t inner;      /* what the primitive reads or writes: user itself, or a
                                 buffer of its preferred layout made at init */
    dnnl_primitive_t reorder; /* user->inner (inputs) or inner->user (outputs); NULL when
                                 inner is user */
} CpuConvPort;

/* A convolution ready to run on one input shape. Fields are read-only to callers. */
typedef struct CpuConv {
    const CpuDnnl *dn;        /* borrowed engine and stream; outlives the CpuConv */
    ConvDesc d;               /* the layer */
    Shape4 in, out;           /* input shape given to init; output shape it implies */
    int need_data_grad;       /* 1 if backward_data was requested at init */
    dnnl_primitive_t fwd, bwd_data, bwd_weights; /* bwd_data NULL unless need_data_grad */
    CpuConvPort x, w, b, y;         /* forward's arguments (b unused without bias) */
    CpuConvPort dy_d, w_d, dx;      /* backward-data's */
    CpuConvPort x_w, dy_w, dw, db;  /* backward-weights' (db unused without bias) */
    dnnl_exec_arg_t fwd_args[4], bwd_data_args[3], bwd_weights_args[4];
    int fwd_nargs, bwd_weights_nargs; /* 3 or 4: with bias or without */
} CpuConv;

/* The output shape of d on input in: {in.n, out_c, (in.h + 2 pad_h - kh) / stride_h + 1,
 * likewise w} (floor, as PyTorch). Returns {0, 0, 0, 0} for any (d, in) that
 * cpu_conv_init would reject. */
Shape4 cpu_conv_out_shape(const ConvDesc *d, Shape4 in);

/* Validates d and the input shape in (in.c must equal d->in_c) and creates the forward and
 * backward-weights primitives, plus backward-data if need_data_grad (a network's first
 * layer needs no dx). dn must outlive cv. Returns 0, or -1 with err naming the problem
 * ("conv: in_c 6 not divisible by groups 4") and nothing held (cpu_conv_free is safe). */
int cpu_conv_init(CpuConv *cv, const CpuDnnl *dn, const ConvDesc *d, Shape4 in,
                  int need_data_grad, StkErr *err);

/* y[out] = conv(x[in], w) (+ b). b is read only with bias and must then be non-NULL.
 * Returns 0, or -1 with err filled (a NULL buffer, or oneDNN failing). */
int cpu_conv_forward(CpuConv *cv, const float *x, const float *w, const float *b, float *y,
                     StkErr *err);

/* dx[in] = the gradient of sum(y * dy) with respect to x: overwritten, not accumulated.
 * Returns -1 with err filled if need_data_grad was 0 at init, a buffer is NULL or
 * oneDNN fails; else 0. */
int cpu_conv_backward_data(CpuConv *cv, const float *dy, const float *w, float *dx,
                           StkErr *err);

/* dw[out_c, in_c/groups, kh, kw] and, with bias, db[out_c] = the gradients of
 * sum(y * dy) with respect to w and b: overwritten, not accumulated. db is ignored (may be
 * NULL) without bias and required with it. Returns 0, or -1 with err filled. */
int cpu_conv_backward_weights(CpuConv *cv, const float *x, const float *dy, float *dw,
                              float *db, StkErr *err);

/* Releases what init made (not dn); safe on a zeroed or failed CpuConv, and twice. */
void cpu_conv_free(CpuConv *cv);

#endif
