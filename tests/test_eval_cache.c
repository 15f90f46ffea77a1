/* test_eval_cache.c: the evaluator's val cache keeps batches by index, whatever order
 * they come in, gives back the bytes and labels it was given, says when the whole split
 * is held, and is off when the split does not fit its cap. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "eval_cache.h"

#define SAMPLE 12 /* 2 x 2 x 3 */

/* Batch i of a split with `n` samples: every byte and label a function of (i, sample). */
static TrainBatch make(uint64_t i, uint32_t n, uint8_t *px, int32_t *lab) {
    for (uint32_t s = 0; s < n; s++) {
        lab[s] = (int32_t)(i * 7 + s) % 5;
        for (int k = 0; k < SAMPLE; k++) px[s * SAMPLE + k] = (uint8_t)(i * 31 + s * 13 + k);
    }
    return (TrainBatch){.index = i, .n = n, .pixels = px, .labels = lab};
}

Test(eval_cache, keeps_batches_out_of_order_and_gives_them_back) {
    EvalCache c;
    StkErr err;
    /* 3 batches of 4, the last one short (2 samples): a 10-sample split */
    cr_assert_eq(eval_cache_init(&c, 1 << 20, 3, 4, SAMPLE, (TrainSlotAlloc){0}, &err), 0, "%s", err.msg);
    cr_assert(eval_cache_on(&c));
    uint8_t px[4 * SAMPLE];
    int32_t lab[4];
    const uint64_t order[] = {2, 0, 1};
    for (int k = 0; k < 3; k++) {
        cr_assert_not(eval_cache_complete(&c), "complete after %d of 3 batches", k);
        TrainBatch b = make(order[k], order[k] == 2 ? 2 : 4, px, lab);
        cr_assert_eq(eval_cache_put(&c, &b, &err), 0, "%s", err.msg);
        memset(px, 0xee, sizeof px); /* the cache holds a copy, not the caller's buffer */
    }
    cr_assert(eval_cache_complete(&c));
    for (uint64_t i = 0; i < 3; i++) {
        TrainBatch got, want;
        uint8_t wpx[4 * SAMPLE];
        int32_t wlab[4];
        cr_assert_eq(eval_cache_get(&c, i, &got, &err), 0, "%s", err.msg);
        want = make(i, i == 2 ? 2 : 4, wpx, wlab);
        cr_assert_eq(got.n, want.n, "batch %llu: %u samples", (unsigned long long)i, got.n);
        cr_assert_eq(got.index, i);
        cr_assert_eq(memcmp(got.pixels, wpx, got.n * SAMPLE), 0, "batch %llu's pixels", (unsigned long long)i);
        cr_assert_eq(memcmp(got.labels, wlab, got.n * sizeof *wlab), 0, "batch %llu's labels", (unsigned long long)i);
    }
    eval_cache_free(&c);
    cr_assert_not(eval_cache_on(&c));
}

Test(eval_cache, a_batch_sent_twice_is_held_once) {
    EvalCache c;
    StkErr err;
    cr_assert_eq(eval_cache_init(&c, 1 << 20, 2, 4, SAMPLE, (TrainSlotAlloc){0}, &err), 0);
    uint8_t px[4 * SAMPLE];
    int32_t lab[4];
    TrainBatch b = make(0, 4, px, lab);
    cr_assert_eq(eval_cache_put(&c, &b, &err), 0);
    cr_assert_eq(eval_cache_put(&c, &b, &err), 0);
    cr_assert_not(eval_cache_complete(&c), "two copies of batch 0 taken for the whole split");
    TrainBatch got;
    cr_assert_eq(eval_cache_get(&c, 1, &got, &err), -1, "batch 1 was never put");
    cr_assert(strstr(err.msg, "batch 1 is not held"), "%s", err.msg);
    eval_cache_free(&c);
}

Test(eval_cache, refuses_batches_outside_the_split) {
    EvalCache c;
    StkErr err;
    cr_assert_eq(eval_cache_init(&c, 1 << 20, 2, 4, SAMPLE, (TrainSlotAlloc){0}, &err), 0);
    uint8_t px[5 * SAMPLE];
    int32_t lab[5];
    TrainBatch b = make(2, 4, px, lab);
    cr_assert_eq(eval_cache_put(&c, &b, &err), -1, "index 2 of a 2-batch split kept");
    cr_assert(strstr(err.msg, "batch 2 of a 2-batch split"), "%s", err.msg);
    b = make(1, 5, px, lab);
    cr_assert_eq(eval_cache_put(&c, &b, &err), -1, "5 samples in a 4-sample batch kept");
    cr_assert(strstr(err.msg, "holds 5 samples"), "%s", err.msg);
    cr_assert_eq(c.held, 0);
    eval_cache_free(&c);
}

Test(eval_cache, off_when_the_split_is_over_the_cap_or_the_cap_is_zero) {
    EvalCache c;
    StkErr err;
    uint64_t need = eval_cache_bytes(3, 4, SAMPLE);
    cr_assert_eq(need, 3 * (4 * (SAMPLE + 4) + 4), "%llu bytes", (unsigned long long)need);
    cr_assert_eq(eval_cache_init(&c, need - 1, 3, 4, SAMPLE, (TrainSlotAlloc){0}, &err), 0);
    cr_assert_not(eval_cache_on(&c), "a cache one byte over its cap");
    uint8_t px[4 * SAMPLE];
    int32_t lab[4];
    TrainBatch b = make(0, 4, px, lab);
    cr_assert_eq(eval_cache_put(&c, &b, &err), 0, "an off cache ignores what it is given");
    cr_assert_not(eval_cache_complete(&c));
    eval_cache_free(&c);
    cr_assert_eq(eval_cache_init(&c, need, 3, 4, SAMPLE, (TrainSlotAlloc){0}, &err), 0);
    cr_assert(eval_cache_on(&c), "a cache exactly at its cap");
    eval_cache_free(&c);
    cr_assert_eq(eval_cache_init(&c, 0, 3, 4, SAMPLE, (TrainSlotAlloc){0}, &err), 0);
    cr_assert_not(eval_cache_on(&c), "--val-cache 0 turns it off");
    cr_assert_eq(eval_cache_bytes(UINT64_MAX / 2, 4096, 1 << 20), UINT64_MAX, "overflow");
}

static int allocs, frees;
static void *count_alloc(void *ctx, size_t bytes) { (void)ctx; allocs++; return malloc(bytes); }
static void count_free(void *ctx, void *p) { (void)ctx; frees++; free(p); }

Test(eval_cache, pixels_come_from_the_given_allocator_and_go_back_to_it) {
    EvalCache c;
    StkErr err;
    allocs = frees = 0;
    TrainSlotAlloc a = {count_alloc, count_free, NULL};
    cr_assert_eq(eval_cache_init(&c, 1 << 20, 2, 4, SAMPLE, a, &err), 0);
    cr_assert_eq(allocs, 1, "the pixels (pinned for CUDA) from the slot allocator");
    eval_cache_free(&c);
    cr_assert_eq(frees, 1);
    cr_assert_eq(eval_cache_init(&c, 10, 2, 4, SAMPLE, a, &err), 0);
    cr_assert_eq(allocs, 1, "an off cache allocates nothing");
    eval_cache_free(&c);
    cr_assert_eq(frees, 1);
}
