/* vram_plan.c: the CUDA backend's arena sizes as host arithmetic and the micro-batch
 * search (see vram_plan.h); the presets are in vram_preset.c. */
#include "vram_plan.h"

#include <limits.h>
#include <string.h>

#include "vram_nodes.h"

/* Host copies of the CUDA kernels' work splits, for builds without CUDA. They must match
 * cuda_elem.cu (COLSUM_SPLIT_MAX) and cuda_dwconv.cu (DW_SEG, DW_UNITS_PER_PART,
 * DW_MAX_PARTS, DW_CH_PER_BLOCK, DW_GRID_BLOCKS and filter_parts); tests/test_cuda_plan.c
 * checks they do in a CUDA build. */
#define HOST_COLSUM_SPLIT_MAX 512
#define HOST_DW_SEG 32
#define HOST_DW_UNITS_PER_PART 256
#define HOST_DW_MAX_PARTS 1024
#define HOST_DW_CH_PER_BLOCK 128
#define HOST_DW_GRID_BLOCKS 1024

static size_t host_colsum_scratch(int c) { return ((size_t)HOST_COLSUM_SPLIT_MAX * 2 + 6) * (size_t)c; }

size_t vram_host_dw_scratch(const ConvDesc *d, Shape4 in, Shape4 out) {
    (void)in;
    if (!vram_conv_depthwise(d)) return 0;
    uint64_t units = (uint64_t)out.n * out.h * ((out.w + HOST_DW_SEG - 1) / HOST_DW_SEG);
    uint64_t parts = (units + HOST_DW_UNITS_PER_PART - 1) / HOST_DW_UNITS_PER_PART;
    /* small layers get more parts, so that the launch still fills the GPU */
    uint64_t rows = (uint64_t)d->kh * ((d->in_c + HOST_DW_CH_PER_BLOCK - 1) / HOST_DW_CH_PER_BLOCK);
    uint64_t fill = (HOST_DW_GRID_BLOCKS + rows - 1) / rows;
    if (parts < fill) parts = fill < units ? fill : units;
    parts = parts < 1 ? 1 : parts < HOST_DW_MAX_PARTS ? parts : HOST_DW_MAX_PARTS;
    return (size_t)parts * d->kh * d->kw * d->in_c;
}

/* Floats layer li saves for backward: batch-norm mean + invstd; max-pool argmax (int32
 * in float-sized slots), as cpu_net.c. */
uint64_t vram_saved_floats(const Model *m, int li, int batch) {
    const ModelLayer *l = &m->layer[li];
    if (l->kind == LAYER_BN) return 2ull * l->out.c;
    if (l->kind == LAYER_MAXPOOL) return (uint64_t)batch * shape4_numel(l->out);
    return 0;
}

int vram_max_channels(const Model *m) {
    int c = m->num_classes;
    for (int node = 0; node <= m->nlayers; node++)
        if (model_node_shape(m, node).c > c) c = model_node_shape(m, node).c;
    return c;
}

uint64_t vram_biggest_node(const Model *m, int batch) {
    uint64_t b = 0;
    for (int node = 0; node <= m->nlayers; node++) {
        uint64_t n = (uint64_t)batch * shape4_numel(model_node_shape(m, node));
        b = n > b ? n : b;
    }
    return b;
}

/* bfloat16 elements of the conv/linear weight copies, and the largest single weight (the
 * one gradient slot their bf16 gradients land in before widening). */
void vram_lowp_sizes(const Model *m, uint64_t *copies, uint64_t *largest) {
    *copies = *largest = 0;
    for (int li = 0; li < m->nlayers; li++)
        if (m->layer[li].kind == LAYER_CONV || m->layer[li].kind == LAYER_LINEAR) {
            uint64_t n = m->param[m->layer[li].param0].numel;
            *copies += n;
            *largest = n > *largest ? n : *largest;
        }
}

/* Floats the depthwise layers' backward-filter needs at most (one layer at a time). */
static uint64_t dw_scratch_floats(const Model *m, int batch, const VramKernels *k) {
    uint64_t most = 0;
    for (int li = 0; li < m->nlayers; li++) {
        const ModelLayer *l = &m->layer[li];
        if (l->kind != LAYER_CONV) continue;
        Shape4 in = model_node_shape(m, l->in), out = l->out;
        in.n = out.n = batch;
        uint64_t f = k->dw_scratch(&l->conv, in, out);
        most = f > most ? f : most;
    }
    return most;
}

static VramArenas arenas(const Model *m, int batch, const OptimConfig *opt, VramPrecision prec,
                         uint64_t workspace, const VramKernels *kin, int inference, int recompute) {
    VramKernels k = {host_colsum_scratch, vram_host_dw_scratch};
    if (kin && kin->colsum_scratch) k.colsum_scratch = kin->colsum_scratch;
    if (kin && kin->dw_scratch) k.dw_scratch = kin->dw_scratch;
    VramArenas p = {0};
    int half = prec == VRAM_BF16 || prec == VRAM_FP16;
    uint64_t es = half ? 2 : 4, saved = 0, copies, largest;
    VramNodes nodes;
    StkErr err;
    int rc = inference   ? vram_nodes_plan_inference(m, batch, &nodes, &err)
             : recompute ? vram_nodes_plan_recompute(m, batch, &nodes, &err)
                         : vram_nodes_plan(m, batch, &nodes, &err);
    if (rc) /* out of host memory: every node, twice */
        nodes.pool = 2 * (m->nlayers + 1) * vram_biggest_node(m, batch), nodes.kept = nodes.pool,
        nodes.accum = vram_biggest_node(m, batch);
    for (int li = 0; li < m->nlayers && !inference; li++) saved += vram_saved_floats(m, li, batch);
    vram_lowp_sizes(m, &copies, &largest);
    p.params = 4 * m->total_floats;
    /* forward passes only: no gradients, optimizer state or weight-gradient slot */
    p.grads = inference ? 0 : 4 * m->trainable_floats;
    p.optim = inference ? 0 : 4 * m->trainable_floats * (uint64_t)optim_state_per_element(opt);
    p.lowp = half ? 2 * (copies + (inference ? 0 : largest)) : 0;
    p.acts = es * nodes.pool;
    p.acts_kept = es * nodes.kept;
    uint64_t nodes_accum = nodes.accum;
    vram_nodes_free(&nodes);
    p.saved = 4 * saved;
    p.dw_scratch = inference ? 0 : 4 * dw_scratch_floats(m, batch, &k);
    /* the accumulation buffer (vram_nodes.h), reduction partials, labels + row losses, and the depthwise
     * partials (256: they start aligned) */
    /* + 16: the step's dropout key (8 bytes, 8-aligned), + 256: the partials' alignment */
    p.scratch = es * nodes_accum + 4 * (k.colsum_scratch(vram_max_channels(m)) + 2ull * batch) + 16 + 256 +
                p.dw_scratch;
    p.workspace = workspace ? workspace : VRAM_DEFAULT_WORKSPACE;
    p.total = p.params + p.grads + p.optim + p.lowp + p.acts + p.saved + p.scratch +
              p.workspace;
    return p;
}

VramArenas vram_arenas(const Model *m, int batch, const OptimConfig *opt, VramPrecision prec,
                       uint64_t workspace, const VramKernels *k) {
    return arenas(m, batch, opt, prec, workspace, k, 0, 0);
}

VramArenas vram_arenas_ex(const Model *m, int batch, const OptimConfig *opt, VramPrecision prec,
                          uint64_t workspace, const VramKernels *k, int recompute) {
    return arenas(m, batch, opt, prec, workspace, k, 0, recompute);
}

VramArenas vram_arenas_inference(const Model *m, int batch, VramPrecision prec, uint64_t workspace,
                                 const VramKernels *k) {
    static const OptimConfig none = {OPTIM_SGD, 0, 0, 0, 0, 0, 0};
    return arenas(m, batch, &none, prec, workspace, k, 1, 0);
}

/* The accumulation sum (cuda_accum.h): trainable floats, when micro-batches are summed. */
static uint64_t accum_bytes(const VramRequest *r, int micro) {
    return micro < r->batch && !r->inference ? 4 * r->m->trainable_floats : 0;
}

static VramArenas request_arenas(const VramRequest *r, int micro) {
    return r->inference ? vram_arenas_inference(r->m, micro, r->prec, r->workspace, r->k)
                        : vram_arenas_ex(r->m, micro, r->opt, r->prec, r->workspace, r->k,
                                         r->recompute == VRAM_RECOMPUTE_ON);
}

static void fill(const VramRequest *r, VramPlan *p, int micro) {
    p->micro = micro;
    p->recompute = !r->inference && r->recompute == VRAM_RECOMPUTE_ON;
    p->a = request_arenas(r, micro);
    p->inputs = (uint64_t)VRAM_INPUT_BUFFERS * micro * r->m->input.h * r->m->input.w * r->m->input.c;
    p->accum_sum = accum_bytes(r, micro);
    p->library = VRAM_LIBRARY_BYTES;
    p->peak = p->a.total + p->inputs + p->accum_sum + p->library + r->reserve;
}

uint64_t vram_peak(const VramRequest *r, int micro) {
    VramPlan p;
    fill(r, &p, micro);
    return p.peak;
}

/* The largest micro-batch in [1, r->batch] whose peak fits room (the peak grows with the
 * micro-batch: bisect); 0 when not even 1 does. */
static int largest_fit(const VramRequest *r, uint64_t room) {
    if (vram_peak(r, 1) > room) return 0;
    int lo = 1, hi = r->batch;
    while (lo < hi) {
        int mid = lo + (hi - lo + 1) / 2;
        if (vram_peak(r, mid) <= room) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

/* AUTO's choice (see the header): the request with recompute made OFF or ON. */
static VramRequest decide_recompute(const VramRequest *r, uint64_t room) {
    VramRequest off = *r, on = *r;
    off.recompute = VRAM_RECOMPUTE_OFF, on.recompute = VRAM_RECOMPUTE_ON;
    if (r->recompute != VRAM_RECOMPUTE_AUTO) return *r;
    int keep = largest_fit(&off, room);
    if (keep == r->batch) return off;
    int redo = largest_fit(&on, room);
    if (!redo) return off; /* nothing fits either way: the error names the kept plan */
    int accum_keep = keep ? (r->batch + keep - 1) / keep : INT_MAX;
    return (r->batch + redo - 1) / redo < accum_keep ? on : off;
}

int vram_plan_search(const VramRequest *req, VramPlan *p, StkErr *err) {
    memset(p, 0, sizeof *p);
    if (req->batch < 1) return stk_errf(err, "vram plan: batch %d", req->batch);
    if (req->inference) return stk_errf(err, "vram plan: an inference request (vram_eval_search)");
    p->eval_bytes = (uint64_t)(req->eval_share * (double)req->budget);
    uint64_t room = req->budget - p->eval_bytes; /* the peak includes the reserve */
    p->usable = room > req->reserve ? room - req->reserve : 0;
    VramRequest rr = decide_recompute(req, room);
    const VramRequest *r = &rr;
    int lo = largest_fit(r, room);
    if (!lo) {
        fill(r, p, 1);
        return stk_errf(err, "does not fit: micro-batch 1 needs %.0f MiB (arenas %.0f + inputs "
                        "%.1f + reserve %.0f) but the budget is %.0f MiB (%.0f reserved for the "
                        "evaluator); the fixed part alone is %.0f MiB (params %.0f, grads %.0f, "
                        "optimizer %.0f, workspace %.0f)", (double)p->peak / VRAM_MIB,
                        (double)p->a.total / VRAM_MIB, (double)p->inputs / VRAM_MIB,
                        (double)r->reserve / VRAM_MIB, (double)r->budget / VRAM_MIB,
                        (double)p->eval_bytes / VRAM_MIB,
                        (double)(p->a.params + p->a.grads + p->a.optim + p->a.lowp + p->a.workspace) / VRAM_MIB,
                        (double)p->a.params / VRAM_MIB, (double)p->a.grads / VRAM_MIB,
                        (double)p->a.optim / VRAM_MIB, (double)p->a.workspace / VRAM_MIB);
    }
    p->accum = (r->batch + lo - 1) / lo;
    fill(r, p, (r->batch + p->accum - 1) / p->accum);
    p->effective = p->micro * p->accum;
    return 0;
}

int vram_eval_search(const VramRequest *r, VramPlan *p, StkErr *err) {
    memset(p, 0, sizeof *p);
    if (r->batch < 1) return stk_errf(err, "vram plan: batch %d", r->batch);
    if (!r->inference) return stk_errf(err, "vram plan: a training request (vram_plan_search)");
    p->usable = r->budget > r->reserve ? r->budget - r->reserve : 0;
    int b = largest_fit(r, r->budget);
    fill(r, p, b ? b : 1);
    if (!b)
        return stk_errf(err, "does not fit: an evaluation batch of 1 needs %.0f MiB (parameters "
                        "%.1f, activations %.1f, workspace %.0f, inputs %.1f, cuDNN/cuBLAS %.0f, "
                        "context reserve %.0f) but the evaluator's share is %.0f MiB",
                        (double)p->peak / VRAM_MIB, (double)p->a.params / VRAM_MIB,
                        (double)p->a.acts / VRAM_MIB, (double)p->a.workspace / VRAM_MIB,
                        (double)p->inputs / VRAM_MIB, (double)p->library / VRAM_MIB,
                        (double)r->reserve / VRAM_MIB, (double)r->budget / VRAM_MIB);
    p->accum = 1, p->effective = b;
    return 0;
}

static void row(FILE *f, const char *name, uint64_t bytes, const char *note) {
    fprintf(f, "  %-22s %10.1f MiB  %s\n", name, (double)bytes / VRAM_MIB, note);
}

const char *vram_precision_name(VramPrecision p) {
    static const char *const names[] = {[VRAM_FP32] = "fp32", [VRAM_TF32] = "tf32",
                                        [VRAM_BF16] = "bf16", [VRAM_FP16] = "fp16"};
    return names[p];
}

void vram_plan_print(FILE *f, const VramRequest *r, const VramPlan *p) {
    const char *prec = vram_precision_name(r->prec);
    const VramArenas *a = &p->a;
    fprintf(f, "vram plan: %s %dx%dx%d, %s, batch %d = micro-batch %d x %d accumulation step%s\n",
            r->m->arch, r->m->input.c, r->m->input.h, r->m->input.w, prec, r->batch,
            p->micro, p->accum, p->accum == 1 ? "" : "s");
    if (p->effective != r->batch)
        fprintf(f, "  note: %d does not split evenly; the effective batch is %d\n", r->batch, p->effective);
    row(f, "parameters", a->params, "float32 master weights and buffers");
    row(f, "gradients", a->grads, "float32, trainable");
    row(f, "optimizer state", a->optim, "momentum / Adam moments");
    row(f, "16-bit weight copies", a->lowp, "conv/linear copies + one gradient slot");
    char kept[160];
    snprintf(kept, sizeof kept, "outputs and gradients by lifetime; %.1f MiB kept for backward%s",
             (double)a->acts_kept / VRAM_MIB,
             p->recompute ? " (batch-norm + activation outputs recomputed there instead)" : "");
    row(f, "activations", a->acts, kept);
    row(f, "saved state", a->saved, "batch-norm statistics, max-pool argmax");
    row(f, "scratch", a->scratch, "second gradients of a node + reductions + depthwise partials");
    row(f, "cuDNN workspace", a->workspace, "bound");
    row(f, "input buffers", p->inputs, "2 x uint8 micro-batch");
    row(f, "accumulation sum", p->accum_sum, "float32, trainable: micro-batches summed");
    row(f, "cuDNN + cuBLAS", p->library, "handles, workspace, loaded kernels (measured)");
    row(f, "above the context", a->total + p->inputs + p->accum_sum + p->library, "what this process adds");
    row(f, "context reserve", r->reserve, "the CUDA context");
    row(f, "peak", p->peak, "");
    row(f, "evaluator share", p->eval_bytes, "");
    row(f, "budget", r->budget, "");
    fprintf(f, "plan: micro_batch=%d accum=%d peak_mib=%llu precision=%s recompute=%s\n", p->micro,
            p->accum, (unsigned long long)((p->peak + VRAM_MIB - 1) / VRAM_MIB), prec,
            p->recompute ? "on" : "off"); /* rounded up */
}
