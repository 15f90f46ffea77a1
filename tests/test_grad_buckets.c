/* test_grad_buckets.c: the data-parallel gradient buckets (grad_buckets.h) of every
 * model, frozen backbones included: they tile the trainable gradients from the top
 * down without gap or overlap, each holds at least the bucket size but the last, each
 * closes at its lowest layer, and layers without gradients close none. */
#include <criterion/criterion.h>
#include <string.h>

#include "grad_buckets.h"
#include "model.h"
#include "model_freeze.h"

static void check(const Model *m, uint64_t bucket) {
    GradBuckets gb;
    StkErr err;
    cr_assert_eq(grad_buckets_plan(&gb, m, bucket, &err), 0, "%s: %s", m->arch, err.msg);
    cr_assert_gt(gb.n, 0);
    uint64_t top = m->trainable_floats;
    for (int k = 0; k < gb.n; k++) {
        const GradBucket *b = &gb.b[k];
        cr_assert_eq(b->hi, top, "%s bucket %d starts at %llu, not %llu", m->arch, k,
                     (unsigned long long)b->hi, (unsigned long long)top);
        cr_assert_lt(b->lo, b->hi);
        if (k + 1 < gb.n) cr_assert_geq(b->hi - b->lo, bucket, "%s bucket %d too small", m->arch, k);
        cr_assert_eq(gb.closes[b->close_layer], k);
        const ModelLayer *l = &m->layer[b->close_layer];
        int holds_lo = 0;
        for (int p = l->param0; p < l->param0 + l->nparams; p++)
            holds_lo |= m->param[p].trainable && m->param[p].offset == b->lo;
        cr_assert(holds_lo, "%s bucket %d closes at %s, which does not hold its lowest float",
                  m->arch, k, l->name);
        top = b->lo;
    }
    cr_assert_eq(top, 0, "%s: the buckets cover every trainable float", m->arch);
    int closing = 0;
    for (int li = 0; li < m->nlayers; li++) closing += gb.closes[li] >= 0;
    cr_assert_eq(closing, gb.n);
    grad_buckets_free(&gb);
}

static const char *archs[] = {"smallcnn", "resnet18", "resnet50", "mobilenet_v3_small", "efficientnet_b0"};

static void tile(const char *const *arch) {
    static Model m;
    StkErr err;
    cr_assert_eq(model_build(&m, *arch, 3, 64, 64, 1000, &err), 0, "%s", err.msg);
    check(&m, 25u << 18);     /* 25 MB of floats: torch DDP's default */
    check(&m, 1);             /* every layer with gradients its own bucket */
    check(&m, 1ull << 40);    /* one bucket */
    if (strcmp(*arch, "smallcnn")) {
        cr_assert_eq(model_freeze(&m, 1, &err), 0, "%s", err.msg);
        check(&m, 25u << 18); /* a frozen backbone: only the top has buckets */
        check(&m, 1);
    }
}

Test(grad_buckets, tile_the_gradients_of_every_model) {
    for (size_t i = 0; i < sizeof archs / sizeof *archs; i++) tile(&archs[i]);
}

Test(grad_buckets, resnet50_at_25_mb_has_several) {
    static Model m;
    StkErr err;
    GradBuckets gb;
    cr_assert_eq(model_build(&m, "resnet50", 3, 224, 224, 1000, &err), 0, "%s", err.msg);
    cr_assert_eq(grad_buckets_plan(&gb, &m, 25u << 18, &err), 0, "%s", err.msg);
    /* 25.6 M floats = 102 MB of gradients: 4 to 5 buckets of >= 25 MB */
    cr_assert(gb.n >= 4 && gb.n <= 5, "%d buckets", gb.n);
    grad_buckets_free(&gb);
}
