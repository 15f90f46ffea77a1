/* eval_plan.c: the evaluator's batch and precision within its memory share (see
 * eval_plan.h). */
#include "eval_plan.h"

#include <string.h>

/* The precision: --precision, else the preset's best (fp32 on a card without bf16, as
 * stoker-train plans it), else the device's own default. */
static int pick(const EvalConfig *c, const VramPreset *pre, const char *card_default,
                const char **name, VramPrecision *prec, StkErr *err) {
    const char *want = c->precision ? c->precision : pre ? (pre->bf16 ? "bf16" : "fp32") : card_default;
    if (!want) want = "fp32";
    if (pre && !pre->bf16 && strcmp(want, "fp32"))
        return stk_errf(err, "--precision %s: %s has no %s; use fp32", want, pre->what, want);
    for (int i = VRAM_FP32; i <= VRAM_FP16; i++)
        if (!strcmp(want, vram_precision_name((VramPrecision)i))) {
            *name = vram_precision_name((VramPrecision)i), *prec = (VramPrecision)i;
            return 0;
        }
    return stk_errf(err, "--precision %s: fp32, tf32, bf16 or fp16", want);
}

int eval_plan_decide(const EvalConfig *c, const Model *m, const char *card_default,
                     const VramKernels *k, EvalPlan *p, StkErr *err) {
    memset(p, 0, sizeof *p);
    p->batch = c->batch_size;
    p->precision = c->precision;
    if (strcmp(c->device, "cuda") || !c->vram_budget) return 0;
    const VramPreset *pre = vram_preset(c->gpu);
    if (c->gpu && !pre) return stk_errf(err, "--gpu %s: not a preset (%s)", c->gpu, vram_preset_names());
    VramPrecision prec = VRAM_FP32;
    if (pick(c, pre, card_default, &p->precision, &prec, err)) return -1;
    /* forward algorithms need far less workspace than a training step's backward ones: a
     * sixteenth of the share (32 MiB of 512), at most the trainer's 256 MiB */
    uint64_t ws = c->vram_budget / 16 < VRAM_DEFAULT_WORKSPACE ? c->vram_budget / 16 : VRAM_DEFAULT_WORKSPACE;
    p->req = (VramRequest){.m = m, .prec = prec, .workspace = ws, .batch = c->batch_size,
                           .budget = c->vram_budget,
                           .reserve = pre ? pre->reserve : VRAM_DEFAULT_RESERVE, .k = k,
                           .inference = 1};
    if (vram_eval_search(&p->req, &p->plan, err)) return stk_err_wrap(err, "--vram-budget");
    p->batch = p->plan.micro, p->planned = 1, p->workspace = ws;
    return 0;
}

void eval_plan_print(FILE *f, const EvalPlan *p, int asked) {
    if (!p->planned) return;
    const VramArenas *a = &p->plan.a;
    fprintf(f, "eval plan: batch %d of %d asked, %s, peak %.1f MiB of a %.1f MiB share (params %.1f, "
            "activations %.1f, workspace %.1f, inputs %.1f, cuDNN/cuBLAS %.0f, context %.0f MiB)\n",
            p->batch, asked, p->precision, (double)p->plan.peak / VRAM_MIB,
            (double)p->req.budget / VRAM_MIB, (double)a->params / VRAM_MIB, (double)a->acts / VRAM_MIB,
            (double)a->workspace / VRAM_MIB, (double)p->plan.inputs / VRAM_MIB,
            (double)p->plan.library / VRAM_MIB, (double)p->req.reserve / VRAM_MIB);
}
