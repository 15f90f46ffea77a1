/* test_cuda_plan.c: cuda_net_plan (the kernels' own work splits) against vram_arenas with
 * the host rules a build without CUDA uses, on models with and without depthwise layers:
 * --plan on a machine without CUDA must print what cuda_net_init will allocate. Host
 * arithmetic only: no GPU is touched. */
#include <criterion/criterion.h>

#include "cuda_dwconv.h"
#include "cuda_net.h"
#include "vram_nodes.h"
#include "vram_plan.h"

typedef struct Case { const char *arch; int size, batch, prec; } Case;

static const Case cases[] = {{"resnet18", 224, 32, 2}, {"mobilenet_v3_small", 224, 64, 2},
                             {"mobilenet_v3_large", 224, 7, 0}, {"efficientnet_b0", 160, 48, 1},
                             {"smallcnn", 28, 256, 0}};

Test(cuda_plan, host_rules_match_the_kernels) {
    static Model m;
    StkErr err;
    OptimConfig opt = {OPTIM_ADAMW, 0.9, 0, 0, 0.9, 0.999, 1e-8};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const Case *c = &cases[i];
        cr_assert_eq(model_build(&m, c->arch, 3, c->size, c->size, 100, &err), 0, "%s", err.msg);
        CudaNetOptions o = {.precision = (CudaPrecision)c->prec};
        CudaNetPlan p = cuda_net_plan(&m, c->batch, &opt, &o);
        VramArenas a = vram_arenas(&m, c->batch, &opt, (VramPrecision)c->prec, 0, NULL);
        cr_expect_eq(p.total, a.total, "%s: %llu vs %llu", c->arch, (unsigned long long)p.total,
                     (unsigned long long)a.total);
        cr_expect_eq(p.scratch, a.scratch, "%s", c->arch);
        cr_expect_eq(p.dw_scratch, a.dw_scratch, "%s", c->arch);
        cr_expect_gt(a.dw_scratch + (c->arch[0] != 'm'), 0, "%s: mobilenets have depthwise layers", c->arch);
    }
}

/* Layer by layer (the arenas hold only the largest): every depthwise layer of every
 * model at batches that put the parts' count on each side of its limits (a few rows that
 * must still fill the GPU, the part cap). */
Test(cuda_plan, depthwise_scratch_rule_per_layer) {
    static Model m;
    StkErr err;
    static const int batches[] = {1, 3, 64, 512};
    int layers = 0;
    for (int i = 0; model_archs[i]; i++) {
        cr_assert_eq(model_build(&m, model_archs[i], 3, 224, 224, 10, &err), 0, "%s", err.msg);
        for (int li = 0; li < m.nlayers; li++) {
            const ModelLayer *l = &m.layer[li];
            if (l->kind != LAYER_CONV || !cuda_dwconv_supported(&l->conv)) continue;
            for (size_t b = 0; b < sizeof batches / sizeof *batches; b++) {
                Shape4 in = model_node_shape(&m, l->in), out = l->out;
                in.n = out.n = batches[b];
                size_t want = cuda_dwconv_filter_scratch(&l->conv, in, out);
                cr_expect_gt(want, 0, "%s %s", model_archs[i], l->name);
                cr_expect_eq(vram_host_dw_scratch(&l->conv, in, out), want, "%s %s batch %d",
                             model_archs[i], l->name, batches[b]);
            }
            layers++;
        }
    }
    cr_expect_gt(layers, 0, "the mobilenets have depthwise layers");
}

/* The node plan decides where a second gradient needs scratch from the host's depthwise
 * rule: it must pick the same convolutions as the kernels (cuda_net_init refuses else). */
Test(cuda_plan, depthwise_rule_matches_the_kernels) {
    static Model m;
    StkErr err;
    int dw = 0;
    for (int i = 0; model_archs[i]; i++) {
        cr_assert_eq(model_build(&m, model_archs[i], 3, 96, 96, 10, &err), 0, "%s", err.msg);
        for (int li = 0; li < m.nlayers; li++) {
            if (m.layer[li].kind != LAYER_CONV) continue;
            cr_expect_eq(!!vram_conv_depthwise(&m.layer[li].conv), !!cuda_dwconv_supported(&m.layer[li].conv),
                         "%s %s", model_archs[i], m.layer[li].name);
            dw += cuda_dwconv_supported(&m.layer[li].conv) != 0;
        }
    }
    cr_expect_gt(dw, 0, "the mobilenets have depthwise layers");
}
