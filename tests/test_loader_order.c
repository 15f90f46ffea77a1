/* test_loader_order.c: the epoch order is a permutation, a pure function of (seed,
 * epoch), and stride sharding gives every sample exactly once for any loader count, also across
 * trainer ranks (loader_shard.h). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "loader_order.h"
#include "loader_shard.h"

static uint64_t sizes[] = {1, 2, 3, 7, 64, 65, 1000, 4099, 100003};
ParameterizedTestParameters(loader_order, is_a_permutation) {
    return cr_make_param_array(uint64_t, sizes, sizeof sizes / sizeof *sizes);
}

ParameterizedTest(uint64_t *n, loader_order, is_a_permutation) {
    LoaderOrder o;
    loader_order_init(&o, *n, 42, 3, 1);
    uint8_t *seen = calloc(*n, 1);
    uint64_t fixed = 0;
    for (uint64_t i = 0; i < *n; i++) {
        uint64_t s = loader_order_at(&o, i);
        cr_assert(s < *n, "position %llu -> %llu out of range", (unsigned long long)i,
                  (unsigned long long)s);
        cr_assert(!seen[s], "sample %llu appears twice", (unsigned long long)s);
        seen[s] = 1;
        fixed += s == i;
    }
    /* a shuffle leaves about one element in place; a broken one leaves many */
    if (*n >= 64) cr_assert(fixed < 10, "%llu fixed points", (unsigned long long)fixed);
    free(seen);
}

Test(loader_order, depends_on_seed_and_epoch_only) {
    LoaderOrder a, b, c, d;
    loader_order_init(&a, 5000, 7, 1, 1);
    loader_order_init(&b, 5000, 7, 1, 1);
    loader_order_init(&c, 5000, 7, 2, 1);
    loader_order_init(&d, 5000, 8, 1, 1);
    int same_c = 0, same_d = 0;
    for (uint64_t i = 0; i < 5000; i++) {
        cr_assert_eq(loader_order_at(&a, i), loader_order_at(&b, i));
        same_c += loader_order_at(&a, i) == loader_order_at(&c, i);
        same_d += loader_order_at(&a, i) == loader_order_at(&d, i);
    }
    cr_assert(same_c < 20 && same_d < 20, "epochs or seeds give the same order (%d, %d)",
              same_c, same_d);
}

Test(loader_order, unshuffled_is_the_identity) {
    LoaderOrder o;
    loader_order_init(&o, 100, 7, 1, 0);
    for (uint64_t i = 0; i < 100; i++) cr_assert_eq(loader_order_at(&o, i), i);
}

Test(loader_order, stride_shards_cover_every_sample_once) {
    const uint64_t n = 1003; /* no loader count or batch size below divides it */
    const uint32_t batch = 16;
    for (uint32_t loaders = 1; loaders <= 7; loaders++)
        for (int drop_last = 0; drop_last <= 1; drop_last++) {
            LoaderOrder o;
            loader_order_init(&o, n, 1, 0, 1);
            uint8_t *seen = calloc(n, 1);
            uint64_t total = 0, nb = loader_order_batches(n, batch, drop_last);
            for (uint32_t id = 0; id < loaders; id++)
                for (uint64_t b = id; b < nb; b += loaders)
                    for (uint32_t j = 0; j < loader_order_batch_size(n, batch, b); j++) {
                        uint64_t s = loader_order_at(&o, b * batch + j);
                        cr_assert(!seen[s]);
                        seen[s] = 1;
                        total++;
                    }
            cr_assert_eq(total, drop_last ? n / batch * batch : n, "loaders %u drop_last %d",
                         loaders, drop_last);
            free(seen);
        }
    cr_assert_eq(loader_order_batches(n, batch, 0), 63);
    cr_assert_eq(loader_order_batches(n, batch, 1), 62);
    cr_assert_eq(loader_order_batch_size(n, batch, 62), 11);
}

/* Ranks (loader_shard.h): over every (n, B, W, L, epoch), each rank gets the same number
 * of batches, no batch goes to two ranks or two loaders, the batches made cover each of
 * the first steps*W*B positions exactly once, and group step k holds the positions of
 * batch k of a single trainer at batch W*B (the tail dropped the same way). */
Test(loader_shard, ranks_share_an_epoch_exactly_once) {
    static uint8_t seen[4096];
    const uint64_t ns[] = {1, 7, 13, 64, 100, 1001};
    const uint32_t batches[] = {1, 2, 4, 5}, worlds[] = {1, 2, 3, 4, 8}, loaders[] = {1, 2, 3};
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
        for (size_t bb = 0; bb < sizeof batches / sizeof *batches; bb++)
            for (size_t w = 0; w < sizeof worlds / sizeof *worlds; w++)
                for (size_t l = 0; l < sizeof loaders / sizeof *loaders; l++)
                for (uint32_t e = 0; e < 4; e++) {
                    uint64_t n = ns[a];
                    uint32_t B = batches[bb], W = worlds[w], L = loaders[l];
                    uint64_t steps = loader_shard_steps(n, B, 1, W);
                    cr_assert_eq(steps, loader_order_batches(n, B * W, 1),
                                 "n %llu B %u W %u: %llu steps, one trainer at batch %u has %llu",
                                 (unsigned long long)n, B, W, (unsigned long long)steps, B * W,
                                 (unsigned long long)loader_order_batches(n, B * W, 1));
                    memset(seen, 0, sizeof seen);
                    uint64_t made = 0;
                    for (uint32_t r = 0; r < W; r++) {
                        uint64_t per_rank = 0;
                        for (uint32_t i = 0; i < L; i++) {
                            LoaderShard s = {r, W, i, L};
                            char why[128];
                            cr_assert_eq(loader_shard_check(&s, why, sizeof why), 0, "%s", why);
                            uint64_t count = 0;
                            for (uint64_t k = loader_shard_first(&s, steps, e); k < steps;
                                 k += L, count++) {
                                uint64_t b = loader_shard_batch(r, W, k), back;
                                cr_assert(loader_shard_local(r, W, steps, b, &back) && back == k);
                                for (uint32_t q = 0; q < W; q++)
                                    if (q != r) cr_assert(!loader_shard_local(q, W, steps, b, &back));
                                /* group step k = batch k at W*B: positions [kWB, (k+1)WB) */
                                cr_assert(b * B >= k * W * B && (b + 1) * B <= (k + 1) * W * B);
                                for (uint64_t pos = b * B; pos < (b + 1) * B; pos++) {
                                    cr_assert_lt(pos, n);
                                    cr_assert_eq(seen[pos], 0, "position %llu twice", (unsigned long long)pos);
                                    seen[pos] = 1, made++;
                                }
                            }
                            cr_assert_eq(count, loader_shard_count(&s, steps, e));
                            per_rank += count;
                        }
                        cr_assert_eq(per_rank, steps, "rank %u of %u: %llu batches, not %llu", r, W,
                                     (unsigned long long)per_rank, (unsigned long long)steps);
                    }
                    cr_assert_eq(made, steps * W * B);
                    cr_assert_lt(n - made, W > 1 ? (uint64_t)W * B : n + 1, "tail under W*B");
                    uint64_t k;
                    cr_assert(!loader_shard_local(0, W, steps, steps * W, &k), "the tail is no rank's");
                }
}

/* The epoch's extra batches rotate among the loaders: 4,000 samples at batch 256 are 16
 * batches an epoch, and over 9 epochs each of 15 loaders makes 9 or 10 of the 144, where
 * a per-epoch stride gave loader 0 18 and the others 9. Any (steps, L): at most one apart. */
Test(loader_shard, extra_batches_rotate_over_epochs) {
    const uint64_t steps_of[] = {16, 235, 7, 3, 1};
    const uint32_t loaders_of[] = {15, 13, 4, 5, 3};
    for (size_t c = 0; c < sizeof steps_of / sizeof *steps_of; c++) {
        uint64_t steps = steps_of[c], lo = UINT64_MAX, hi = 0;
        uint32_t L = loaders_of[c];
        for (uint32_t i = 0; i < L; i++) {
            LoaderShard s = {0, 1, i, L};
            uint64_t made = 0;
            for (uint32_t e = 0; e < 9; e++) made += loader_shard_count(&s, steps, e);
            lo = made < lo ? made : lo, hi = made > hi ? made : hi;
        }
        cr_assert_leq(hi - lo, 1, "steps %llu over %u loaders, 9 epochs: %llu to %llu batches each",
                      (unsigned long long)steps, L, (unsigned long long)lo, (unsigned long long)hi);
        if (steps == 16) cr_assert_eq(hi, 10);
    }
}

Test(loader_shard, one_rank_keeps_the_epoch_as_it_was) {
    cr_assert_eq(loader_shard_steps(13, 4, 0, 1), 4, "world 1 keeps the partial batch");
    cr_assert_eq(loader_shard_steps(13, 4, 1, 1), 3);
    cr_assert_eq(loader_shard_steps(13, 4, 0, 2), 1, "world 2 always drops: 3 full batches, 1 step");
}

Test(loader_shard, bad_ranks_are_named) {
    char why[128];
    LoaderShard s = {2, 2, 0, 1};
    cr_assert_eq(loader_shard_check(&s, why, sizeof why), -1);
    cr_assert(strstr(why, "rank 2 of world 2"), "%s", why);
    s = (LoaderShard){0, 1, 3, 3};
    cr_assert_eq(loader_shard_check(&s, why, sizeof why), -1);
    cr_assert(strstr(why, "loader id 3 of 3"), "%s", why);
}
