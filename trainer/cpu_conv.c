/* cpu_conv.c: torch.nn.Conv2d on oneDNN (see cpu_conv.h). init checks the layer, builds
 * the three convolution primitives once and one "port" per tensor argument: a memory
 * object over the caller's plain buffer, plus, where the primitive prefers a blocked
 * layout, a buffer of that layout and the reorder into or out of it. Each pass points
 * the ports at the caller's buffers, reorders inputs, runs, reorders outputs.
 *
 * Why the primitives choose their layouts (format_tag_any) instead of running on NCHW:
 * on resnet18's layer1 (64->64 3x3 @56, batch 16, 2 threads, AVX-512) oneDNN then runs
 * its blocked direct kernels (jit:avx512_core), forward + both backward passes 57-59 ms
 * with every reorder, against 91-101 ms for its gemm kernels (x64:gemm:jit) on plain
 * layouts. */
#include "cpu_conv.h"

#include <string.h>

/* The problems cpu_conv_init rejects, in the order it reports them. */
static int conv_check(const ConvDesc *d, Shape4 in, StkErr *err) {
    if (d->groups < 1) return stk_errf(err, "conv: groups %d < 1", d->groups);
    if (d->in_c < 1 || d->out_c < 1)
        return stk_errf(err, "conv: channels %d->%d must be >= 1", d->in_c, d->out_c);
    if (d->in_c % d->groups)
        return stk_errf(err, "conv: in_c %d not divisible by groups %d", d->in_c, d->groups);
    if (d->out_c % d->groups)
        return stk_errf(err, "conv: out_c %d not divisible by groups %d", d->out_c, d->groups);
    if (d->kh < 1 || d->kw < 1) return stk_errf(err, "conv: kernel %dx%d < 1x1", d->kh, d->kw);
    if (d->stride_h < 1 || d->stride_w < 1)
        return stk_errf(err, "conv: stride %dx%d < 1x1", d->stride_h, d->stride_w);
    if (d->pad_h < 0 || d->pad_w < 0)
        return stk_errf(err, "conv: padding %dx%d < 0", d->pad_h, d->pad_w);
    if (d->bias != 0 && d->bias != 1) return stk_errf(err, "conv: bias %d not 0 or 1", d->bias);
    if (in.n < 1 || in.h < 1 || in.w < 1)
        return stk_errf(err, "conv: input %dx%dx%dx%d is empty", in.n, in.c, in.h, in.w);
    if (in.c != d->in_c)
        return stk_errf(err, "conv: input has %d channels, layer in_c %d", in.c, d->in_c);
    long long ph = in.h + 2LL * d->pad_h, pw = in.w + 2LL * d->pad_w;
    if (ph < d->kh || pw < d->kw)
        return stk_errf(err, "conv: kernel %dx%d larger than padded input %lldx%lld", d->kh,
                        d->kw, ph, pw);
    if (ph > 1 << 30 || pw > 1 << 30)
        return stk_errf(err, "conv: padded input %lldx%lld too large", ph, pw);
    return 0;
}

Shape4 cpu_conv_out_shape(const ConvDesc *d, Shape4 in) {
    Shape4 none = {0, 0, 0, 0};
    if (conv_check(d, in, NULL)) return none;
    Shape4 out = {in.n, d->out_c, (in.h + 2 * d->pad_h - d->kh) / d->stride_h + 1,
                  (in.w + 2 * d->pad_w - d->kw) / d->stride_w + 1};
    return out;
}

/* Makes p: the user memory of plain layout user_md (no buffer yet) and, if the primitive
 * wants prim_md instead, an inner buffer and the reorder between them (out: inner->user). */
static int port_init(CpuConvPort *p, const CpuDnnl *dn, const dnnl_memory_desc_t *user_md,
                     const dnnl_memory_desc_t *prim_md, int out, StkErr *err) {
    DNNL_TRY(err, dnnl_memory_create(&p->user, user_md, dn->engine, DNNL_MEMORY_NONE));
    if (dnnl_memory_desc_equal(user_md, prim_md)) {
        p->inner = p->user;
        return 0;
    }
    DNNL_TRY(err, dnnl_memory_create(&p->inner, prim_md, dn->engine, DNNL_MEMORY_ALLOCATE));
    dnnl_primitive_desc_t rpd;
    const dnnl_memory_desc_t *from = out ? prim_md : user_md, *to = out ? user_md : prim_md;
    DNNL_TRY(err, dnnl_reorder_primitive_desc_create(&rpd, from, dn->engine, to, dn->engine, NULL));
    dnnl_status_t st = dnnl_primitive_create(&p->reorder, rpd);
    dnnl_primitive_desc_destroy(rpd);
    DNNL_TRY(err, st);
    return 0;
}

static void port_free(CpuConvPort *p) {
    if (p->reorder) dnnl_primitive_destroy(p->reorder);
    if (p->inner && p->inner != p->user) dnnl_memory_destroy(p->inner);
    if (p->user) dnnl_memory_destroy(p->user);
    memset(p, 0, sizeof *p);
}

/* Points p at the caller's buffer. */
static int port_bind(CpuConvPort *p, const float *data, StkErr *err) {
    /* oneDNN takes void *; it only reads the buffers given as inputs */
    DNNL_TRY(err, dnnl_memory_set_data_handle(p->user, (void *)data));
    return 0;
}

/* Copies between the user and inner buffers if they differ (direction fixed at init). */
static int port_reorder(CpuConvPort *p, const CpuDnnl *dn, int out, StkErr *err) {
    if (!p->reorder) return 0;
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, out ? p->inner : p->user},
                            {DNNL_ARG_TO, out ? p->user : p->inner}};
    return cpu_dnnl_run(dn, p->reorder, 2, a, err);
}

/* The primitive descriptors init needs, destroyed at its end. */
typedef struct ConvPds {
    dnnl_primitive_desc_t fwd, bwd_data, bwd_weights;
} ConvPds;

/* Plain descriptors of x, y, w and b, and the ones the primitives are asked for. */
typedef struct ConvMds {
    dnnl_memory_desc_t x, y, w, b;    /* the caller's layouts */
    dnnl_memory_desc_t px, py, pw;    /* the same with format_tag_any */
    dnnl_dims_t strides, pad;
} ConvMds;

static int conv_mds(const CpuConv *cv, ConvMds *m, StkErr *err) {
    const ConvDesc *d = &cv->d;
    int g = d->groups, grouped = g > 1;
    dnnl_dims_t xd = {cv->in.n, cv->in.c, cv->in.h, cv->in.w};
    dnnl_dims_t yd = {cv->out.n, cv->out.c, cv->out.h, cv->out.w}, bd = {d->out_c};
    dnnl_dims_t wd = {d->out_c, d->in_c, d->kh, d->kw};
    dnnl_dims_t gwd = {g, d->out_c / g, d->in_c / g, d->kh, d->kw};
    int wn = grouped ? 5 : 4;
    const dnnl_dim_t *w_dims = grouped ? gwd : wd;
    dnnl_format_tag_t wtag = grouped ? dnnl_goihw : dnnl_oihw;
    DNNL_TRY(err, dnnl_memory_desc_init_by_tag(&m->x, 4, xd, dnnl_f32, dnnl_nchw));
    DNNL_TRY(err, dnnl_memory_desc_init_by_tag(&m->y, 4, yd, dnnl_f32, dnnl_nchw));
    DNNL_TRY(err, dnnl_memory_desc_init_by_tag(&m->w, wn, w_dims, dnnl_f32, wtag));
    DNNL_TRY(err, dnnl_memory_desc_init_by_tag(&m->b, 1, bd, dnnl_f32, dnnl_x));
    DNNL_TRY(err, dnnl_memory_desc_init_by_tag(&m->px, 4, xd, dnnl_f32, dnnl_format_tag_any));
    DNNL_TRY(err, dnnl_memory_desc_init_by_tag(&m->py, 4, yd, dnnl_f32, dnnl_format_tag_any));
    DNNL_TRY(err, dnnl_memory_desc_init_by_tag(&m->pw, wn, w_dims, dnnl_f32, dnnl_format_tag_any));
    m->strides[0] = d->stride_h, m->strides[1] = d->stride_w;
    m->pad[0] = d->pad_h, m->pad[1] = d->pad_w;
    return 0;
}

/* oneDNN 2.6's AVX2 direct forward kernel (jit:avx2) computes strided convolutions wrongly
 * on an AVX2-only CPU (measured on an AMD EPYC without AVX-512: resnet18's and resnet50's
 * gradients 1-13% from torchvision's, while ONEDNN_MAX_CPU_ISA=AVX, i.e. its SSE4.1 kernel,
 * matches; exact right padding instead of symmetric did not help). Strided layers are a
 * few per network (stem, downsampling): they take the next implementation oneDNN offers. */
static int avoided(const_dnnl_primitive_desc_t pd, const ConvDesc *d) {
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl)
        return 0;
    return !strcmp(impl, "jit:avx2") && (d->stride_h > 1 || d->stride_w > 1);
}

static int forward_pd(dnnl_primitive_desc_t *pd, const dnnl_convolution_desc_t *fd, dnnl_engine_t e,
                      const ConvDesc *d, StkErr *err) {
    dnnl_primitive_desc_iterator_t it;
    DNNL_TRY(err, dnnl_primitive_desc_iterator_create(&it, fd, NULL, e, NULL));
    for (;;) {
        *pd = dnnl_primitive_desc_iterator_fetch(it);
        if (!*pd || !avoided(*pd, d)) break;
        dnnl_primitive_desc_destroy(*pd), *pd = NULL;
        if (dnnl_primitive_desc_iterator_next(it) != dnnl_success) break;
    }
    dnnl_primitive_desc_iterator_destroy(it);
    if (!*pd) return stk_errf(err, "conv forward: oneDNN offers no implementation but its jit:avx2");
    return 0;
}

/* The three primitive descriptors (bwd_data only if requested); backward ones hinted by
 * forward, as oneDNN requires. Padding is symmetric: with the floor in the output size,
 * oneDNN's right padding then covers at least what PyTorch reads. */
static int conv_pds(const CpuConv *cv, const ConvMds *m, ConvPds *p, StkErr *err) {
    const dnnl_memory_desc_t *b = cv->d.bias ? &m->b : NULL;
    dnnl_convolution_desc_t fd, bdd, wdd;
    dnnl_engine_t e = cv->dn->engine;
    DNNL_TRY(err, dnnl_convolution_forward_desc_init(&fd, dnnl_forward_training,
                  dnnl_convolution_direct, &m->px, &m->pw, b, &m->py, m->strides, m->pad, m->pad));
    if (forward_pd(&p->fwd, &fd, e, &cv->d, err)) return -1;
    DNNL_TRY(err, dnnl_convolution_backward_weights_desc_init(&wdd, dnnl_convolution_direct,
                  &m->px, &m->pw, b, &m->py, m->strides, m->pad, m->pad));
    DNNL_TRY(err, dnnl_primitive_desc_create(&p->bwd_weights, &wdd, NULL, e, p->fwd));
    if (!cv->need_data_grad) return 0;
    DNNL_TRY(err, dnnl_convolution_backward_data_desc_init(&bdd, dnnl_convolution_direct,
                  &m->px, &m->pw, &m->py, m->strides, m->pad, m->pad));
    DNNL_TRY(err, dnnl_primitive_desc_create(&p->bwd_data, &bdd, NULL, e, p->fwd));
    return 0;
}

/* The layout primitive pd chose for argument what (index 1 of weights: the bias). */
static const dnnl_memory_desc_t *md_of(const_dnnl_primitive_desc_t pd, dnnl_query_t what,
                                       int index) {
    return dnnl_primitive_desc_query_md(pd, what, index);
}

static int conv_fwd_make(CpuConv *cv, const ConvMds *m, const ConvPds *p, StkErr *err) {
    const CpuDnnl *dn = cv->dn;
    DNNL_TRY(err, dnnl_primitive_create(&cv->fwd, p->fwd));
    if (port_init(&cv->x, dn, &m->x, md_of(p->fwd, dnnl_query_src_md, 0), 0, err) ||
        port_init(&cv->w, dn, &m->w, md_of(p->fwd, dnnl_query_weights_md, 0), 0, err) ||
        port_init(&cv->y, dn, &m->y, md_of(p->fwd, dnnl_query_dst_md, 0), 1, err))
        return -1;
    dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, cv->x.inner}, {DNNL_ARG_WEIGHTS, cv->w.inner},
                            {DNNL_ARG_DST, cv->y.inner}};
    cv->fwd_nargs = 3;
    if (cv->d.bias) {
        if (port_init(&cv->b, dn, &m->b, md_of(p->fwd, dnnl_query_weights_md, 1), 0, err))
            return -1;
        a[cv->fwd_nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, cv->b.inner};
    }
    memcpy(cv->fwd_args, a, sizeof a);
    return 0;
}

static int conv_bwd_data_make(CpuConv *cv, const ConvMds *m, const ConvPds *p, StkErr *err) {
    const CpuDnnl *dn = cv->dn;
    DNNL_TRY(err, dnnl_primitive_create(&cv->bwd_data, p->bwd_data));
    if (port_init(&cv->dy_d, dn, &m->y, md_of(p->bwd_data, dnnl_query_diff_dst_md, 0), 0, err) ||
        port_init(&cv->w_d, dn, &m->w, md_of(p->bwd_data, dnnl_query_weights_md, 0), 0, err) ||
        port_init(&cv->dx, dn, &m->x, md_of(p->bwd_data, dnnl_query_diff_src_md, 0), 1, err))
        return -1;
    dnnl_exec_arg_t a[3] = {{DNNL_ARG_DIFF_DST, cv->dy_d.inner}, {DNNL_ARG_WEIGHTS, cv->w_d.inner},
                            {DNNL_ARG_DIFF_SRC, cv->dx.inner}};
    memcpy(cv->bwd_data_args, a, sizeof a);
    return 0;
}

static int conv_bwd_weights_make(CpuConv *cv, const ConvMds *m, const ConvPds *p, StkErr *err) {
    const CpuDnnl *dn = cv->dn;
    const_dnnl_primitive_desc_t pd = p->bwd_weights;
    DNNL_TRY(err, dnnl_primitive_create(&cv->bwd_weights, pd));
    if (port_init(&cv->x_w, dn, &m->x, md_of(pd, dnnl_query_src_md, 0), 0, err) ||
        port_init(&cv->dy_w, dn, &m->y, md_of(pd, dnnl_query_diff_dst_md, 0), 0, err) ||
        port_init(&cv->dw, dn, &m->w, md_of(pd, dnnl_query_diff_weights_md, 0), 1, err))
        return -1;
    dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, cv->x_w.inner}, {DNNL_ARG_DIFF_DST, cv->dy_w.inner},
                            {DNNL_ARG_DIFF_WEIGHTS, cv->dw.inner}};
    cv->bwd_weights_nargs = 3;
    if (cv->d.bias) {
        if (port_init(&cv->db, dn, &m->b, md_of(pd, dnnl_query_diff_weights_md, 1), 1, err))
            return -1;
        a[cv->bwd_weights_nargs++] = (dnnl_exec_arg_t){DNNL_ARG_DIFF_BIAS, cv->db.inner};
    }
    memcpy(cv->bwd_weights_args, a, sizeof a);
    return 0;
}

static int conv_build(CpuConv *cv, ConvPds *p, StkErr *err) {
    ConvMds m;
    if (conv_mds(cv, &m, err) || conv_pds(cv, &m, p, err) || conv_fwd_make(cv, &m, p, err) ||
        conv_bwd_weights_make(cv, &m, p, err))
        return -1;
    return cv->need_data_grad ? conv_bwd_data_make(cv, &m, p, err) : 0;
}

int cpu_conv_init(CpuConv *cv, const CpuDnnl *dn, const ConvDesc *d, Shape4 in,
                  int need_data_grad, StkErr *err) {
    memset(cv, 0, sizeof *cv);
    if (conv_check(d, in, err)) return -1;
    cv->dn = dn;
    cv->d = *d;
    cv->in = in;
    cv->out = cpu_conv_out_shape(d, in);
    cv->need_data_grad = need_data_grad != 0;
    ConvPds p = {0};
    /* oneDNN's create calls write their handle only on success: after a failure every
     * field is a handle to release or NULL, which is what cpu_conv_free expects. */
    int rc = conv_build(cv, &p, err);
    if (p.fwd) dnnl_primitive_desc_destroy(p.fwd);
    if (p.bwd_data) dnnl_primitive_desc_destroy(p.bwd_data);
    if (p.bwd_weights) dnnl_primitive_desc_destroy(p.bwd_weights);
    if (rc) {
        stk_err_wrap(err, "conv init %d->%d %dx%d", d->in_c, d->out_c, d->kh, d->kw);
        cpu_conv_free(cv);
    }
    return rc;
}

int cpu_conv_forward(CpuConv *cv, const float *x, const float *w, const float *b, float *y,
                     StkErr *err) {
    const CpuDnnl *dn = cv->dn;
    if (!x || !w || !y || (cv->d.bias && !b))
        return stk_errf(err, "conv forward: NULL buffer (x %p, w %p, b %p, y %p)", (void *)x,
                        (void *)w, (void *)b, (void *)y);
    if (port_bind(&cv->x, x, err) || port_bind(&cv->w, w, err) || port_bind(&cv->y, y, err) ||
        (cv->d.bias && port_bind(&cv->b, b, err)) || port_reorder(&cv->x, dn, 0, err) ||
        port_reorder(&cv->w, dn, 0, err) || port_reorder(&cv->b, dn, 0, err) ||
        cpu_dnnl_run(dn, cv->fwd, cv->fwd_nargs, cv->fwd_args, err) ||
        port_reorder(&cv->y, dn, 1, err))
        return stk_err_wrap(err, "conv forward");
    return 0;
}

int cpu_conv_backward_data(CpuConv *cv, const float *dy, const float *w, float *dx,
                           StkErr *err) {
    const CpuDnnl *dn = cv->dn;
    if (!cv->need_data_grad)
        return stk_errf(err, "conv backward_data: not requested at init (need_data_grad 0)");
    if (!dy || !w || !dx)
        return stk_errf(err, "conv backward_data: NULL buffer (dy %p, w %p, dx %p)", (void *)dy,
                        (void *)w, (void *)dx);
    if (port_bind(&cv->dy_d, dy, err) || port_bind(&cv->w_d, w, err) ||
        port_bind(&cv->dx, dx, err) || port_reorder(&cv->dy_d, dn, 0, err) ||
        port_reorder(&cv->w_d, dn, 0, err) ||
        cpu_dnnl_run(dn, cv->bwd_data, 3, cv->bwd_data_args, err) ||
        port_reorder(&cv->dx, dn, 1, err))
        return stk_err_wrap(err, "conv backward_data");
    return 0;
}

int cpu_conv_backward_weights(CpuConv *cv, const float *x, const float *dy, float *dw,
                              float *db, StkErr *err) {
    const CpuDnnl *dn = cv->dn;
    if (!x || !dy || !dw || (cv->d.bias && !db))
        return stk_errf(err, "conv backward_weights: NULL buffer (x %p, dy %p, dw %p, db %p)",
                        (void *)x, (void *)dy, (void *)dw, (void *)db);
    if (port_bind(&cv->x_w, x, err) || port_bind(&cv->dy_w, dy, err) ||
        port_bind(&cv->dw, dw, err) || (cv->d.bias && port_bind(&cv->db, db, err)) ||
        port_reorder(&cv->x_w, dn, 0, err) || port_reorder(&cv->dy_w, dn, 0, err) ||
        cpu_dnnl_run(dn, cv->bwd_weights, cv->bwd_weights_nargs, cv->bwd_weights_args, err) ||
        port_reorder(&cv->dw, dn, 1, err) || port_reorder(&cv->db, dn, 1, err))
        return stk_err_wrap(err, "conv backward_weights");
    return 0;
}

void cpu_conv_free(CpuConv *cv) {
    if (cv->fwd) dnnl_primitive_destroy(cv->fwd);
    if (cv->bwd_data) dnnl_primitive_destroy(cv->bwd_data);
    if (cv->bwd_weights) dnnl_primitive_destroy(cv->bwd_weights);
    CpuConvPort *ports[] = {&cv->x, &cv->w, &cv->b, &cv->y, &cv->dy_d, &cv->w_d, &cv->dx,
                            &cv->x_w, &cv->dy_w, &cv->dw, &cv->db};
    for (size_t i = 0; i < sizeof ports / sizeof *ports; i++) port_free(ports[i]);
    memset(cv, 0, sizeof *cv);
}
