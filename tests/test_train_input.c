/* test_train_input.c: the trainer's receiving side: every batch index once per epoch
 * whatever the arrival order, duplicates and strangers dropped with a reason, in-order
 * hand-out in deterministic mode (without deadlock when a slow loader holds the next
 * index), two slots that stay valid while the next batch is fetched. */
#include <criterion/criterion.h>
#include <string.h>

#include "train_input.h"

enum { B = 3, H = 4, W = 5, C = 3, NB = 4 }; /* 4 batches per epoch, the last of 2 */

static void *ctx, *push;
static ProtoOut out;
static TrainInput *in;

static void open_rank(int deterministic, uint32_t window, uint32_t epochs, uint64_t batches,
                      uint32_t rank, uint32_t world) {
    ctx = zmq_ctx_new();
    TrainInputConfig c = {.endpoint = "inproc://data", .batches_per_epoch = batches, .batch = B,
                          .height = H, .width = W, .channels = C, .start_epoch = 0,
                          .epochs = epochs, .deterministic = deterministic, .window = window,
                          .rank = rank, .world = world};
    StkErr err;
    cr_assert_eq(train_input_open(&in, ctx, &c, &err), 0, "%s", err.msg);
    push = zmq_socket(ctx, ZMQ_PUSH);
    int hwm = 100;
    zmq_setsockopt(push, ZMQ_SNDHWM, &hwm, sizeof hwm);
    cr_assert_eq(zmq_connect(push, "inproc://data"), 0);
    cr_assert_eq(proto_out_init(&out, &err), 0);
}

static void teardown(void) {
    proto_out_free(&out);
    zmq_close(push);
    train_input_close(in);
    zmq_ctx_term(ctx);
}

static void open_input(int deterministic, uint32_t window, uint32_t epochs) {
    open_rank(deterministic, window, epochs, NB, 0, 1);
}

TestSuite(train_input, .fini = teardown, .timeout = 30);

/* Sends batch `index` of `epoch` whose pixels are all (epoch * 16 + index). */
static void send_batch(uint32_t epoch, uint64_t index, uint32_t n, uint32_t h) {
    static uint8_t px[B * 9 * W * C];
    int32_t labels[B] = {1, 2, 3};
    uint64_t ids[B] = {index * 10, index * 10 + 1, index * 10 + 2};
    memset(px, (int)(epoch * 16 + index), sizeof px);
    ProtoMsg m = {.type = PROTO_BATCH};
    m.u.batch = (ProtoBatch){.epoch = epoch, .loader = 0, .seq = index, .index = index, .n = n,
                             .h = h, .w = W, .c = C, .pixels = px, .labels = labels, .ids = ids};
    StkErr err;
    cr_assert_eq(proto_send(&out, push, &m, NULL, 0, &err), PROTO_OK, "%s", err.msg);
}

static void send_full(uint32_t epoch, uint64_t index) {
    send_batch(epoch, index, index == NB - 1 ? 2 : B, H);
}

/* Takes batches of epoch until done; returns how many and writes their indices. */
static int drain(uint32_t epoch, uint64_t *order) {
    int got = 0, done = 0;
    while (!done) {
        TrainBatch b;
        StkErr err;
        cr_assert_eq(train_input_next(in, epoch, 5000, &b, &done, &err), 0, "%s", err.msg);
        if (done) break;
        cr_assert_eq(b.pixels[0], (uint8_t)(epoch * 16 + b.index), "pixels of batch %llu",
                     (unsigned long long)b.index);
        cr_assert_eq(b.ids[1], b.index * 10 + 1);
        cr_assert_eq(b.labels[2 % b.n], (int32_t)(2 % b.n) + 1);
        order[got++] = b.index;
    }
    return got;
}

Test(train_input, every_index_once_in_any_arrival_order) {
    open_input(0, 8, 1);
    uint64_t sent[NB] = {2, 0, 3, 1}, order[8];
    for (int i = 0; i < NB; i++) send_full(0, sent[i]);
    cr_assert_eq(drain(0, order), NB);
    int seen[NB] = {0};
    for (int i = 0; i < NB; i++) seen[order[i]]++;
    for (int i = 0; i < NB; i++) cr_assert_eq(seen[i], 1, "index %d handed %d times", i, seen[i]);
}

Test(train_input, duplicates_and_strangers_are_dropped_with_a_reason) {
    open_input(0, 8, 2);
    send_full(0, 0);
    send_full(0, 0);            /* a restarted loader's repeat */
    send_batch(0, 1, B, H + 1); /* wrong shape */
    send_full(5, 1);            /* past the run's last epoch */
    for (int i = 1; i < NB; i++) send_full(0, (uint64_t)i);
    uint64_t order[8];
    cr_assert_eq(drain(0, order), NB);
    TrainInputStats s;
    train_input_stats(in, &s);
    cr_assert_eq(s.duplicates, 1);
    cr_assert_eq(s.rejected, 2);
    cr_assert(strstr(s.last_reject, "this run ends with epoch 1"), "%s", s.last_reject);
}

Test(train_input, wrong_shape_reason_names_both_shapes) {
    open_input(0, 8, 1);
    send_batch(0, 1, B, H + 1);
    for (int i = 0; i < NB; i++) send_full(0, (uint64_t)i);
    uint64_t order[8];
    cr_assert_eq(drain(0, order), NB);
    TrainInputStats s;
    train_input_stats(in, &s);
    cr_assert(strstr(s.last_reject, "is 5x5x3, this run takes 4x5x3"), "%s", s.last_reject);
}

Test(train_input, deterministic_mode_hands_out_in_index_order) {
    open_input(1, 8, 1);
    uint64_t sent[NB] = {3, 1, 2, 0}, order[8];
    for (int i = 0; i < NB; i++) send_full(0, sent[i]);
    cr_assert_eq(drain(0, order), NB);
    for (int i = 0; i < NB; i++) cr_assert_eq(order[i], (uint64_t)i);
}

Test(train_input, a_full_window_without_the_next_index_does_not_deadlock) {
    /* window of 2: indices 1, 2, 3 arrive before 0 (a slow loader holds index 0) */
    open_input(1, 2, 1);
    for (int i = 1; i < NB; i++) send_full(0, (uint64_t)i);
    send_full(0, 0);
    uint64_t order[8];
    cr_assert_eq(drain(0, order), NB);
    for (int i = 0; i < NB; i++) cr_assert_eq(order[i], (uint64_t)i);
}

Test(train_input, next_epoch_batches_wait_for_their_epoch) {
    open_input(0, 4, 2);
    send_full(1, 0); /* a fast loader already in epoch 1 */
    for (int i = 0; i < NB; i++) send_full(0, (uint64_t)i);
    for (int i = 1; i < NB; i++) send_full(1, (uint64_t)i);
    uint64_t order[8];
    cr_assert_eq(drain(0, order), NB);
    cr_assert_eq(drain(1, order), NB);
}

Test(train_input, a_batch_stays_valid_while_the_next_is_fetched) {
    open_input(1, 8, 1);
    for (int i = 0; i < NB; i++) send_full(0, (uint64_t)i);
    TrainBatch a, b;
    int done;
    StkErr err;
    cr_assert_eq(train_input_next(in, 0, 5000, &a, &done, &err), 0, "%s", err.msg);
    cr_assert_eq(train_input_next(in, 0, 5000, &b, &done, &err), 0, "%s", err.msg);
    cr_assert_neq(a.pixels, b.pixels, "two batches in one slot");
    cr_assert_eq(a.pixels[0], 0, "batch 0 overwritten by batch 1");
    cr_assert_eq(b.pixels[0], 1);
}

Test(train_input, missing_batches_time_out_with_a_count) {
    open_input(0, 8, 1);
    send_full(0, 0);
    TrainBatch b;
    int done;
    StkErr err;
    cr_assert_eq(train_input_next(in, 0, 5000, &b, &done, &err), 0, "%s", err.msg);
    cr_assert_eq(train_input_next(in, 0, 200, &b, &done, &err), TRAIN_INPUT_TIMEOUT);
    cr_assert(strstr(err.msg, "3 of 4 still missing"), "%s", err.msg);
}

/* Rank 1 of 3 with 2 batches an epoch takes epoch batches 1 and 4, in order when
 * deterministic; the other ranks' batches (0, 2, 3, 5) and the dropped tail (7) are
 * rejected with the rank named, and the epoch ends after its own two. */
Test(train_input, a_rank_takes_only_its_batches) {
    open_rank(1, 8, 1, 2, 1, 3);
    uint64_t sent[] = {4, 0, 2, 7, 3, 5, 1}, order[8];
    for (size_t i = 0; i < sizeof sent / sizeof *sent; i++) send_batch(0, sent[i], B, H);
    cr_assert_eq(drain(0, order), 2);
    cr_assert_eq(order[0], 1, "rank 1's first batch is epoch batch 1");
    cr_assert_eq(order[1], 4, "its second is 1 + 3");
    TrainInputStats s;
    train_input_stats(in, &s);
    cr_assert_eq(s.rejected, 5, "the other ranks' four and the tail");
    cr_assert(strstr(s.last_reject, "not rank 1's"), "%s", s.last_reject);
}
