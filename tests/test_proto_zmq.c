/* test_proto_zmq.c: messages over real ZeroMQ sockets: zero-copy batches, ownership of
 * the pixel buffer, malformed frames dropped without harming the socket. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto_zmq.h"

static void *ctx, *push, *pull;
static ProtoOut out;

/* ipc:// (not inproc) so frames cross a real socket as between processes. */
static void setup(void) {
    char ep[128];
    snprintf(ep, sizeof ep, "ipc:///tmp/stoker-test-%d.sock", getpid());
    StkErr err;
    ctx = zmq_ctx_new();
    push = zmq_socket(ctx, ZMQ_PUSH);
    pull = zmq_socket(ctx, ZMQ_PULL);
    cr_assert(ctx && push && pull);
    cr_assert_eq(proto_zmq_setup(pull, 2, 2, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(proto_zmq_setup(push, 2, 2, 0, &err), 0, "%s", err.msg);
    cr_assert_eq(zmq_bind(pull, ep), 0, "bind %s: %s", ep, zmq_strerror(zmq_errno()));
    cr_assert_eq(zmq_connect(push, ep), 0);
    cr_assert_eq(proto_out_init(&out, &err), 0);
}

static void teardown(void) {
    proto_out_free(&out);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
    char path[128];
    snprintf(path, sizeof path, "/tmp/stoker-test-%d.sock", getpid());
    unlink(path);
}

static atomic_int freed;
static void count_free(void *data, void *hint) {
    (void)hint;
    free(data);
    atomic_fetch_add(&freed, 1);
}

static ProtoMsg batch_of(uint8_t *pixels, int32_t *labels, uint64_t *ids, uint32_t n) {
    ProtoMsg m = {.type = PROTO_BATCH};
    m.u.batch = (ProtoBatch){.epoch = 1, .loader = 0, .seq = 5, .index = 9, .n = n, .h = 8,
                             .w = 8, .c = 3, .pixels = pixels, .labels = labels, .ids = ids};
    return m;
}

Test(proto_zmq, batch_travels_zero_copy_and_owner_is_told, .init = setup, .fini = teardown,
     .timeout = 20) {
    const uint32_t n = 4;
    size_t bytes = n * 8 * 8 * 3;
    uint8_t *pixels = malloc(bytes);
    for (size_t i = 0; i < bytes; i++) pixels[i] = (uint8_t)(i ^ 0x5a);
    int32_t labels[4] = {3, 1, 4, 1};
    uint64_t ids[4] = {10, 20, 30, 40};
    ProtoMsg m = batch_of(pixels, labels, ids, n);
    ProtoPixelsOwner owner = {count_free, NULL};
    StkErr err;
    atomic_store(&freed, 0);
    cr_assert_eq(proto_send(&out, push, &m, &owner, 0, &err), PROTO_OK, "%s", err.msg);

    ProtoRecv r;
    cr_assert_eq(proto_recv(pull, &r, 0, &err), PROTO_OK, "%s", err.msg);
    ProtoBatch *b = &r.msg.u.batch;
    cr_assert_eq(r.msg.type, PROTO_BATCH);
    cr_assert_eq(b->n, n);
    cr_assert_eq(b->index, 9);
    cr_assert_eq(proto_batch_label(b, 2), 4);
    cr_assert_eq(proto_batch_id(b, 3), 40);
    for (size_t i = 0; i < bytes; i++) cr_assert_eq(b->pixels[i], (uint8_t)(i ^ 0x5a));
    proto_recv_release(&r);
    /* ZeroMQ frees the sender's buffer once written out, from its I/O thread */
    for (int i = 0; i < 200 && atomic_load(&freed) == 0; i++) usleep(10000);
    cr_assert_eq(atomic_load(&freed), 1, "free_fn called %d times", atomic_load(&freed));
}

Test(proto_zmq, recv_would_block_says_again, .init = setup, .fini = teardown, .timeout = 20) {
    ProtoRecv r;
    StkErr err;
    cr_assert_eq(proto_recv(pull, &r, ZMQ_DONTWAIT, &err), PROTO_AGAIN);
}

Test(proto_zmq, garbage_is_dropped_and_the_next_message_arrives, .init = setup,
     .fini = teardown, .timeout = 20) {
    StkErr err;
    ProtoRecv r;
    cr_assert_eq(zmq_send(push, "\xdd\xff\xff\xff\xff", 5, 0), 5);
    /* three frames: more than any message has */
    zmq_send(push, "\x91\x01", 2, ZMQ_SNDMORE);
    zmq_send(push, "x", 1, ZMQ_SNDMORE);
    zmq_send(push, "y", 1, 0);
    ProtoMsg hb = {.type = PROTO_HEARTBEAT};
    hb.u.heartbeat = (ProtoHeartbeat){.role = PROTO_ROLE_LOADER, .id = 7, .pid = 1, .time_ms = 2};
    cr_assert_eq(proto_send(&out, push, &hb, NULL, 0, &err), PROTO_OK, "%s", err.msg);

    cr_assert_eq(proto_recv(pull, &r, 0, &err), PROTO_BAD);
    cr_assert(strstr(err.msg, "array of 4294967295 elements"), "%s", err.msg);
    cr_assert_eq(proto_recv(pull, &r, 0, &err), PROTO_BAD);
    cr_assert(strstr(err.msg, "more than 2 frames"), "%s", err.msg);
    cr_assert_eq(proto_recv(pull, &r, 0, &err), PROTO_OK, "%s", err.msg);
    cr_assert_eq(r.msg.type, PROTO_HEARTBEAT);
    cr_assert_eq(r.msg.u.heartbeat.id, 7);
    proto_recv_release(&r);
}

Test(proto_zmq, batch_with_wrong_pixel_frame_is_rejected, .init = setup, .fini = teardown,
     .timeout = 20) {
    uint8_t pixels[2 * 8 * 8 * 3] = {0};
    int32_t labels[2] = {0, 1};
    uint64_t ids[2] = {0, 1};
    ProtoMsg m = batch_of(pixels, labels, ids, 2);
    size_t len;
    StkErr err;
    cr_assert_eq(proto_encode(&m, out.buf, PROTO_MAX_HEADER_BYTES, &len, &err), 0);
    zmq_send(push, out.buf, len, ZMQ_SNDMORE);
    zmq_send(push, pixels, sizeof pixels - 3, 0);
    ProtoRecv r;
    cr_assert_eq(proto_recv(pull, &r, 0, &err), PROTO_BAD);
    cr_assert(strstr(err.msg, "pixel frame of 381 bytes"), "%s", err.msg);
}

Test(proto_zmq, sender_refuses_invalid_message, .init = setup, .fini = teardown, .timeout = 20) {
    ProtoMsg m = {.type = PROTO_HEARTBEAT};
    m.u.heartbeat.role = 99;
    StkErr err;
    cr_assert_eq(proto_send(&out, push, &m, NULL, 0, &err), PROTO_FAIL);
    cr_assert(strstr(err.msg, "heartbeat.role: role 99 unknown"), "%s", err.msg);
}
