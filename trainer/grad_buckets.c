/* grad_buckets.c: gradient buckets in backward order (see grad_buckets.h). */
#include "grad_buckets.h"

#include <stdlib.h>
#include <string.h>

/* The float range of layer li's trainable parameters: 0 when it has none. */
static int layer_range(const Model *m, int li, uint64_t *lo, uint64_t *hi) {
    const ModelLayer *l = &m->layer[li];
    int any = 0;
    for (int p = l->param0; p < l->param0 + l->nparams; p++) {
        const ModelParam *mp = &m->param[p];
        if (!mp->trainable) continue;
        if (!any || mp->offset < *lo) *lo = mp->offset;
        if (!any || mp->offset + mp->numel > *hi) *hi = mp->offset + mp->numel;
        any = 1;
    }
    return any;
}

int grad_buckets_plan(GradBuckets *gb, const Model *m, uint64_t bucket_floats, StkErr *err) {
    memset(gb, 0, sizeof *gb);
    gb->b = calloc((size_t)m->nlayers + 1, sizeof *gb->b);
    gb->closes = malloc(((size_t)m->nlayers + 1) * sizeof *gb->closes);
    if (!gb->b || !gb->closes) return grad_buckets_free(gb), stk_errf(err, "grad_buckets_plan: out of memory");
    for (int li = 0; li < m->nlayers; li++) gb->closes[li] = -1;
    uint64_t top = m->trainable_floats; /* the next layer down must end here */
    GradBucket *open = NULL;
    for (int li = m->nlayers - 1; li >= 0; li--) {
        uint64_t lo = 0, hi = 0;
        if (!layer_range(m, li, &lo, &hi)) continue;
        if (hi != top)
            return grad_buckets_free(gb),
                   stk_errf(err, "grad_buckets_plan: layer %s's parameters end at %llu, not at %llu "
                            "where the layer above starts", m->layer[li].name,
                            (unsigned long long)hi, (unsigned long long)top);
        if (!open) open = &gb->b[gb->n++], open->hi = hi;
        open->lo = lo, open->close_layer = li;
        top = lo;
        if (open->hi - open->lo >= bucket_floats) gb->closes[li] = (int)(open - gb->b), open = NULL;
    }
    if (open) gb->closes[open->close_layer] = (int)(open - gb->b);
    if (top != 0)
        return grad_buckets_free(gb),
               stk_errf(err, "grad_buckets_plan: %llu trainable floats below the lowest layer's",
                        (unsigned long long)top);
    return 0;
}

void grad_buckets_free(GradBuckets *gb) {
    free(gb->b);
    free(gb->closes);
    memset(gb, 0, sizeof *gb);
}
