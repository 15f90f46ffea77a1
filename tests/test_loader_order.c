/* test_loader_order.c: the epoch order is a permutation, a pure function of (seed,
 * epoch), and stride sharding gives every sample exactly once for any loader count. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <stdlib.h>
#include <string.h>

#include "loader_order.h"

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
