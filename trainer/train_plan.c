/* train_plan.c: micro-batch and accumulation from stoker-train's flags and the memory
 * planner; the --plan mode (see train_plan.h). */
#include "train_plan.h"

#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "loader_index.h"
#include "model_freeze.h"

/* The precision the plan assumes: --precision, else the preset's best, else fp32 (with
 * only a budget the card is unknown; fp32 needs the most memory, so the plan is safe). */
static int plan_precision(const TrainConfig *c, const VramPreset *p, VramPrecision *out, StkErr *err) {
    const char *want = c->precision ? c->precision : p && p->bf16 ? "bf16" : "fp32";
    if (p && !p->bf16 && strcmp(want, "fp32"))
        return stk_errf(err, "--precision %s: %s has no %s; use fp32", want, p->what, want);
    *out = !strcmp(want, "bf16") ? VRAM_BF16 : !strcmp(want, "fp16") ? VRAM_FP16
         : !strcmp(want, "tf32") ? VRAM_TF32 : VRAM_FP32;
    return 0;
}

static int request(const TrainConfig *c, const Model *m, const VramKernels *k, VramRequest *r,
                   StkErr *err) {
    const VramPreset *p = vram_preset(c->gpu);
    uint64_t budget = c->vram_budget ? c->vram_budget : p ? p->capacity : 0;
    /* cuDNN's workspace bound: 256 MiB, or 1/32 of a small card (64 MiB of 2 GiB). The
     * chosen algorithms take what they need below it, so a bound far above what they
     * take is memory the plan holds back for nothing (measured: resnet18 fp32 took 55 of
     * 256 MiB, the plan 11% above the measured figure) */
    uint64_t ws = budget / 32 < VRAM_DEFAULT_WORKSPACE ? budget / 32 : VRAM_DEFAULT_WORKSPACE;
    *r = (VramRequest){.m = m, .opt = &c->opt, .batch = c->batch_size, .budget = budget,
                       .reserve = p ? p->reserve : VRAM_DEFAULT_RESERVE,
                       .eval_share = c->eval_share, .k = k, .workspace = ws,
                       .recompute = (VramRecompute)c->recompute};
    return plan_precision(c, p, &r->prec, err);
}

int train_plan_split(const TrainConfig *c, const Model *m, const VramKernels *k, FILE *out,
                     TrainSplit *s, StkErr *err) {
    /* without a plan, recompute is what --recompute says (auto: off, nothing to fit) */
    *s = (TrainSplit){c->batch_size, 1, 0, NULL, 0, c->recompute == VRAM_RECOMPUTE_ON};
    int card = (c->gpu || c->vram_budget) && (c->plan_only || !strcmp(c->device, "cuda"));
    if (c->micro_batch) {
        s->accum = (c->batch_size + c->micro_batch - 1) / c->micro_batch;
        s->micro = (c->batch_size + s->accum - 1) / s->accum; /* same rule as the planner */
        if (!card) return 0;
    } else if (!card) {
        return 0;
    }
    VramRequest r;
    VramPlan p;
    if (request(c, m, k, &r, err)) return -1;
    if (vram_plan_search(&r, &p, err)) return -1;
    r.recompute = p.recompute ? VRAM_RECOMPUTE_ON : VRAM_RECOMPUTE_OFF; /* what it decided */
    if (c->micro_batch && c->micro_batch < p.micro) { /* a smaller one asked for: honour it */
        p.micro = s->micro, p.accum = s->accum, p.effective = p.micro * p.accum;
        p.a = vram_arenas_ex(m, p.micro, &c->opt, r.prec, r.workspace, k, p.recompute);
        p.peak = vram_peak(&r, p.micro);
        p.accum_sum = p.accum > 1 ? 4 * m->trainable_floats : 0;
        p.library = VRAM_LIBRARY_BYTES;
        p.inputs = p.peak - p.a.total - p.accum_sum - p.library - r.reserve;
    }
    /* data parallel: every rank holds the whole model and its own --batch-size, so one
     * card's plan is each card's */
    if (out && c->gpus > 1)
        fprintf(out, "per GPU, for each of the %d ranks (a step trains %d x %d samples):\n",
                c->gpus, c->gpus, c->batch_size);
    if (out) vram_plan_print(out, &r, &p);
    *s = (TrainSplit){p.micro, p.accum, 1, vram_precision_name(r.prec), r.workspace, p.recompute};
    return 0;
}

/* The dataset's class count when its index is there; else ImageNet's 1000. */
static int class_count(const TrainConfig *c) {
    char path[PATH_MAX];
    LoaderIndex ix;
    StkErr err;
    if (!c->data_path) return 1000;
    snprintf(path, sizeof path, "%s/%s", c->data_path, LOADER_INDEX_DEFAULT_NAME);
    if (access(path, R_OK) || loader_index_open(&ix, path, &err)) return 1000;
    int k = (int)loader_index_num_classes(&ix);
    loader_index_close(&ix);
    return k;
}

/* Builds --model as stoker-train will (the dataset's class count, frozen blocks). */
static int build_model(const TrainConfig *c, Model *m, StkErr *err) {
    if (model_build(m, c->model, 3, c->train_crop, c->train_crop, class_count(c), err)) return -1;
    return c->trainable_layers >= 0 ? model_freeze(m, c->trainable_layers, err) : 0;
}

int train_plan_split_flags(const TrainConfig *c, const VramKernels *k, TrainSplit *s, StkErr *err) {
    static Model m; /* large: the layer and parameter tables are inline */
    int card = (c->gpu || c->vram_budget) && (c->plan_only || !strcmp(c->device, "cuda"));
    if (card && build_model(c, &m, err)) return -1; /* without a card the model is not read */
    return train_plan_split(c, card ? &m : NULL, k, NULL, s, err);
}

int train_plan_main(const TrainConfig *c, const VramKernels *k) {
    static Model m; /* large: the layer and parameter tables are inline */
    StkErr err;
    TrainSplit s;
    int rc = build_model(c, &m, &err);
    if (!rc) rc = train_plan_split(c, &m, k, stdout, &s, &err);
    if (rc) fprintf(stderr, "stoker-train: --plan: %s\n", err.msg);
    return rc ? 1 : 0;
}

void train_plan_oom_hint(const TrainConfig *c, const TrainSplit *s, uint64_t free_bytes, char *out,
                         size_t cap) {
    const VramPreset *p = vram_preset(c->gpu);
    uint64_t reserve = p ? p->reserve : VRAM_DEFAULT_RESERVE; /* as request() takes it */
    int smaller = s->micro > 1 ? s->micro / 2 : 1;
    snprintf(out, cap, "the card has %llu MiB free now (micro-batch %d x %d planned%s): free the card "
             "(nvidia-smi shows who holds it), or plan for what is free with --vram-budget %lluMiB, or "
             "pass --micro-batch %d", (unsigned long long)(free_bytes >> 20), s->micro, s->accum,
             s->planned ? "" : " without a card: no --gpu or --vram-budget",
             (unsigned long long)((free_bytes + reserve) >> 20), smaller);
}
