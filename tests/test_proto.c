/* test_proto.c: every message round-trips; malformed, hostile and random messages are
 * rejected with a message that names the problem, never a crash (run under ASan). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static uint8_t hdr[PROTO_MAX_HEADER_BYTES];

/* A small valid batch: 3 images of 2x4x3 with known labels, ids and pixels. */
static int32_t labels3[3] = {0, 7, 999};
static uint64_t ids3[3] = {5, 1ull << 40, 42};
static uint8_t pixels3[3 * 2 * 4 * 3];

static ProtoMsg small_batch(void) {
    for (size_t i = 0; i < sizeof pixels3; i++) pixels3[i] = (uint8_t)(i * 7 + 1);
    ProtoMsg m = {.type = PROTO_BATCH};
    m.u.batch = (ProtoBatch){.epoch = 3, .loader = 2, .seq = 11, .index = 23, .n = 3, .h = 2,
                             .w = 4, .c = 3, .pixels = pixels3, .labels = labels3, .ids = ids3};
    return m;
}

static size_t encode_ok(const ProtoMsg *m) {
    size_t len = 0;
    StkErr err = {{0}};
    cr_assert_eq(proto_encode(m, hdr, sizeof hdr, &len, &err), 0, "encode: %s", err.msg);
    return len;
}

/* Decodes and expects failure with a message containing want. */
static void expect_reject(const void *h, size_t hl, const void *p, size_t pl, const char *want) {
    ProtoMsg out;
    StkErr err = {{0}};
    cr_assert_eq(proto_decode(h, hl, p, pl, &out, &err), -1, "accepted, expected '%s'", want);
    cr_assert(strstr(err.msg, want), "error '%s' does not mention '%s'", err.msg, want);
}

static int streq(ProtoStr s, const char *c) {
    return s.len == strlen(c) && !memcmp(s.ptr, c, s.len);
}

Test(proto, batch_round_trip_keeps_pixels_in_place) {
    ProtoMsg m = small_batch(), out;
    size_t len = encode_ok(&m);
    StkErr err;
    cr_assert_eq(proto_decode(hdr, len, pixels3, sizeof pixels3, &out, &err), 0, "%s", err.msg);
    ProtoBatch *b = &out.u.batch;
    cr_assert_eq(out.type, PROTO_BATCH);
    cr_assert_eq(b->epoch, 3); cr_assert_eq(b->loader, 2);
    cr_assert_eq(b->seq, 11); cr_assert_eq(b->index, 23);
    cr_assert_eq(b->n, 3); cr_assert_eq(b->h, 2); cr_assert_eq(b->w, 4); cr_assert_eq(b->c, 3);
    cr_assert_eq(b->pixels, pixels3, "pixels must be the payload itself, not a copy");
    for (uint32_t i = 0; i < 3; i++) {
        cr_assert_eq(proto_batch_label(b, i), labels3[i]);
        cr_assert_eq(proto_batch_id(b, i), ids3[i]);
    }
    /* labels and ids are views into the header frame too */
    cr_assert((const uint8_t *)b->labels > hdr && (const uint8_t *)b->ids < hdr + len);
}

Test(proto, end_of_epoch_round_trip) {
    ProtoMsg m = {.type = PROTO_END_OF_EPOCH}, out;
    m.u.end_of_epoch = (ProtoEndOfEpoch){.loader = 4, .epoch = 9, .samples = 1281167,
                                         .batches = UINT64_MAX};
    size_t len = encode_ok(&m);
    cr_assert_eq(proto_decode(hdr, len, NULL, 0, &out, NULL), 0);
    cr_assert_eq(out.type, PROTO_END_OF_EPOCH);
    cr_assert_eq(out.u.end_of_epoch.loader, 4); cr_assert_eq(out.u.end_of_epoch.epoch, 9);
    cr_assert_eq(out.u.end_of_epoch.samples, 1281167);
    cr_assert_eq(out.u.end_of_epoch.batches, UINT64_MAX);
}

Test(proto, bad_file_round_trip) {
    ProtoMsg m = {.type = PROTO_BAD_FILE}, out;
    m.u.bad_file = (ProtoBadFile){.loader = 1, .sample_id = 77,
                                  .path = proto_str("train/cat/ü 1.jpg"),
                                  .reason = proto_str("Premature end of JPEG file")};
    size_t len = encode_ok(&m);
    cr_assert_eq(proto_decode(hdr, len, NULL, 0, &out, NULL), 0);
    cr_assert_eq(out.u.bad_file.loader, 1); cr_assert_eq(out.u.bad_file.sample_id, 77);
    cr_assert(streq(out.u.bad_file.path, "train/cat/ü 1.jpg"));
    cr_assert(streq(out.u.bad_file.reason, "Premature end of JPEG file"));
}

Test(proto, heartbeat_round_trip) {
    ProtoMsg m = {.type = PROTO_HEARTBEAT}, out;
    m.u.heartbeat = (ProtoHeartbeat){.role = PROTO_ROLE_EVALUATOR, .id = 0, .pid = 4242,
                                     .time_ms = 1795000000123ull};
    size_t len = encode_ok(&m);
    cr_assert_eq(proto_decode(hdr, len, NULL, 0, &out, NULL), 0);
    cr_assert_eq(out.u.heartbeat.role, PROTO_ROLE_EVALUATOR);
    cr_assert_eq(out.u.heartbeat.pid, 4242);
    cr_assert_eq(out.u.heartbeat.time_ms, 1795000000123ull);
}

Test(proto, shutdown_round_trip_with_empty_reason) {
    ProtoMsg m = {.type = PROTO_SHUTDOWN}, out;
    size_t len = encode_ok(&m);
    cr_assert_eq(proto_decode(hdr, len, NULL, 0, &out, NULL), 0);
    cr_assert_eq(out.type, PROTO_SHUTDOWN);
    cr_assert_eq(out.u.shutdown.reason.len, 0);
}

Test(proto, checkpoint_round_trip) {
    ProtoMsg m = {.type = PROTO_CHECKPOINT}, out;
    m.u.checkpoint = (ProtoCheckpoint){.path = proto_str("runs/a/checkpoints/last.safetensors"),
                                       .epoch = 12, .step = 5000000000ull, .final = 1};
    size_t len = encode_ok(&m);
    cr_assert_eq(proto_decode(hdr, len, NULL, 0, &out, NULL), 0);
    cr_assert(streq(out.u.checkpoint.path, "runs/a/checkpoints/last.safetensors"));
    cr_assert_eq(out.u.checkpoint.epoch, 12);
    cr_assert_eq(out.u.checkpoint.step, 5000000000ull);
    cr_assert_eq(out.u.checkpoint.final, 1);
}

Test(proto, metrics_round_trip_keeps_nan) {
    ProtoMsg m = {.type = PROTO_METRICS}, out;
    ProtoMetrics *mm = &m.u.metrics;
    *mm = (ProtoMetrics){.role = PROTO_ROLE_TRAINER, .id = 0, .epoch = 2, .step = 300, .count = 3};
    mm->items[0] = (ProtoMetric){proto_str("loss"), NAN};
    mm->items[1] = (ProtoMetric){proto_str("lr"), 0.1};
    mm->items[2] = (ProtoMetric){proto_str("images_per_s"), 12345.5};
    size_t len = encode_ok(&m);
    cr_assert_eq(proto_decode(hdr, len, NULL, 0, &out, NULL), 0);
    cr_assert_eq(out.u.metrics.count, 3);
    cr_assert(streq(out.u.metrics.items[0].name, "loss"));
    cr_assert(isnan(out.u.metrics.items[0].value));
    cr_assert_eq(out.u.metrics.items[1].value, 0.1);
    cr_assert(streq(out.u.metrics.items[2].name, "images_per_s"));
    cr_assert_eq(out.u.metrics.step, 300);
}

Test(proto, error_round_trip) {
    ProtoMsg m = {.type = PROTO_ERROR}, out;
    m.u.error = (ProtoError){.role = PROTO_ROLE_LOADER, .id = 3, .text = proto_str("disk full")};
    size_t len = encode_ok(&m);
    cr_assert_eq(proto_decode(hdr, len, NULL, 0, &out, NULL), 0);
    cr_assert_eq(out.u.error.id, 3);
    cr_assert(streq(out.u.error.text, "disk full"));
}

Test(proto, rejects_every_truncation) {
    ProtoMsg m = small_batch();
    size_t len = encode_ok(&m);
    for (size_t cut = 0; cut < len; cut++) {
        ProtoMsg out;
        StkErr err = {{0}};
        cr_assert_eq(proto_decode(hdr, cut, pixels3, sizeof pixels3, &out, &err), -1,
                     "accepted a message cut to %zu of %zu bytes", cut, len);
        cr_assert(err.msg[0], "no error message at cut %zu", cut);
    }
    expect_reject(hdr, len - 1, pixels3, sizeof pixels3, "truncated");
}

Test(proto, rejects_wrong_version) {
    ProtoMsg m = small_batch();
    size_t len = encode_ok(&m);
    hdr[1] = 2; /* [fixarray, version, ...]: version is a positive fixint */
    expect_reject(hdr, len, pixels3, sizeof pixels3, "protocol version 2");
}

Test(proto, rejects_unknown_type) {
    ProtoMsg m = {.type = PROTO_SHUTDOWN};
    size_t len = encode_ok(&m);
    hdr[2] = 99;
    expect_reject(hdr, len, NULL, 0, "type 99 unknown");
}

/* Packs a message field by field with msgpack-c, to build what our encoder never would. */
typedef struct Raw {
    msgpack_sbuffer sb;
    msgpack_packer pk;
} Raw;

static void raw_begin(Raw *r, uint32_t count, uint32_t type) {
    msgpack_sbuffer_init(&r->sb);
    msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
    msgpack_pack_array(&r->pk, count);
    msgpack_pack_uint32(&r->pk, PROTO_VERSION);
    msgpack_pack_uint32(&r->pk, type);
}

static void raw_batch_fields(Raw *r, uint32_t n, uint32_t h, uint32_t w, uint32_t c,
                             size_t label_bytes, const void *labels) {
    msgpack_pack_uint32(&r->pk, 0); msgpack_pack_uint32(&r->pk, 0);
    msgpack_pack_uint64(&r->pk, 0); msgpack_pack_uint64(&r->pk, 0);
    msgpack_pack_uint32(&r->pk, n); msgpack_pack_uint32(&r->pk, h);
    msgpack_pack_uint32(&r->pk, w); msgpack_pack_uint32(&r->pk, c);
    msgpack_pack_bin(&r->pk, label_bytes); msgpack_pack_bin_body(&r->pk, labels, label_bytes);
    uint64_t ids[4] = {0};
    msgpack_pack_bin(&r->pk, 8 * (size_t)n);
    msgpack_pack_bin_body(&r->pk, ids, n <= 4 ? 8 * (size_t)n : 0);
}

Test(proto, rejects_wrong_field_type) {
    Raw r;
    raw_begin(&r, 6, PROTO_END_OF_EPOCH);
    msgpack_pack_uint32(&r.pk, 1);
    msgpack_pack_str(&r.pk, 3); msgpack_pack_str_body(&r.pk, "two", 3);
    msgpack_pack_uint32(&r.pk, 1); msgpack_pack_uint32(&r.pk, 1);
    expect_reject(r.sb.data, r.sb.size, NULL, 0, "end_of_epoch.epoch: expected unsigned integer, got str");
    msgpack_sbuffer_destroy(&r.sb);
}

Test(proto, rejects_negative_and_too_wide_integers) {
    Raw r;
    raw_begin(&r, 6, PROTO_END_OF_EPOCH);
    msgpack_pack_int32(&r.pk, -1);
    msgpack_pack_uint32(&r.pk, 1); msgpack_pack_uint32(&r.pk, 1); msgpack_pack_uint32(&r.pk, 1);
    expect_reject(r.sb.data, r.sb.size, NULL, 0, "end_of_epoch.loader: negative");
    msgpack_sbuffer_destroy(&r.sb);
    raw_begin(&r, 6, PROTO_END_OF_EPOCH);
    msgpack_pack_uint64(&r.pk, 1ull << 32);
    msgpack_pack_uint32(&r.pk, 1); msgpack_pack_uint32(&r.pk, 1); msgpack_pack_uint32(&r.pk, 1);
    expect_reject(r.sb.data, r.sb.size, NULL, 0, "exceeds the limit 4294967295");
    msgpack_sbuffer_destroy(&r.sb);
}

Test(proto, rejects_wrong_field_count) {
    Raw r;
    raw_begin(&r, 5, PROTO_END_OF_EPOCH);
    for (int i = 0; i < 3; i++) msgpack_pack_uint32(&r.pk, 1);
    expect_reject(r.sb.data, r.sb.size, NULL, 0, "end_of_epoch: 3 fields, expected 4");
    msgpack_sbuffer_destroy(&r.sb);
}

Test(proto, rejects_pixel_length_mismatch) {
    ProtoMsg m = small_batch();
    size_t len = encode_ok(&m);
    expect_reject(hdr, len, pixels3, sizeof pixels3 - 1, "pixel frame of 71 bytes, but n*h*w*c");
    expect_reject(hdr, len, NULL, 0, "pixel frame missing");
}

Test(proto, rejects_label_array_of_wrong_length) {
    Raw r;
    int32_t labels[3] = {0};
    raw_begin(&r, 12, PROTO_BATCH);
    raw_batch_fields(&r, 3, 2, 4, 3, 8, labels);
    expect_reject(r.sb.data, r.sb.size, pixels3, sizeof pixels3, "batch.labels: 8 bytes, expected 12");
    msgpack_sbuffer_destroy(&r.sb);
}

Test(proto, rejects_negative_label) {
    Raw r;
    int32_t labels[3] = {1, -5, 2};
    raw_begin(&r, 12, PROTO_BATCH);
    raw_batch_fields(&r, 3, 2, 4, 3, 12, labels);
    expect_reject(r.sb.data, r.sb.size, pixels3, sizeof pixels3, "batch.labels[1]: -5");
    msgpack_sbuffer_destroy(&r.sb);
}

Test(proto, rejects_oversized_batch_dimensions) {
    Raw r;
    raw_begin(&r, 12, PROTO_BATCH);
    raw_batch_fields(&r, PROTO_MAX_BATCH_N + 1, 2, 2, 3, 0, NULL);
    expect_reject(r.sb.data, r.sb.size, pixels3, sizeof pixels3, "batch.n: 65537");
    msgpack_sbuffer_destroy(&r.sb);
    int32_t labels[1] = {0};
    raw_begin(&r, 12, PROTO_BATCH);
    raw_batch_fields(&r, 1, PROTO_MAX_SIDE + 1, 2, 3, 4, labels);
    expect_reject(r.sb.data, r.sb.size, pixels3, sizeof pixels3, "each side must be");
    msgpack_sbuffer_destroy(&r.sb);
    int32_t labels4[4] = {0};
    raw_begin(&r, 12, PROTO_BATCH);
    raw_batch_fields(&r, 4, PROTO_MAX_SIDE, PROTO_MAX_SIDE, 3, 16, labels4);
    expect_reject(r.sb.data, r.sb.size, pixels3, sizeof pixels3, "over the limit");
    msgpack_sbuffer_destroy(&r.sb);
}

Test(proto, rejects_hostile_container_counts_without_allocating) {
    /* msgpack-c's unpacker would try to allocate 4G * 24 bytes for this. */
    const uint8_t arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xf0};
    expect_reject(arr32, sizeof arr32, NULL, 0, "cannot fit in the 0 bytes left");
    Raw r;
    raw_begin(&r, 7, PROTO_METRICS);
    for (int i = 0; i < 4; i++) msgpack_pack_uint32(&r.pk, 0);
    const uint8_t map32[] = {0xdf, 0x7f, 0xff, 0xff, 0xff};
    msgpack_sbuffer_write(&r.sb, (const char *)map32, sizeof map32);
    expect_reject(r.sb.data, r.sb.size, NULL, 0, "metrics.values: truncated: map of 2147483647 elements");
    msgpack_sbuffer_destroy(&r.sb);
}

Test(proto, rejects_str_longer_than_its_bytes) {
    Raw r;
    raw_begin(&r, 3, PROTO_SHUTDOWN);
    const uint8_t str32[] = {0xdb, 0x10, 0x00, 0x00, 0x00, 'a', 'b'};
    msgpack_sbuffer_write(&r.sb, (const char *)str32, sizeof str32);
    expect_reject(r.sb.data, r.sb.size, NULL, 0, "str of 268435456 bytes but only 2 bytes left");
    msgpack_sbuffer_destroy(&r.sb);
}

/* final is a flag: anything but 0 or 1 is refused both ways, and a notice from before
 * the field (3 fields) is named as such */
Test(proto, checkpoint_final_is_0_or_1) {
    Raw r;
    raw_begin(&r, 6, PROTO_CHECKPOINT);
    msgpack_pack_str(&r.pk, 1);
    msgpack_pack_str_body(&r.pk, "p", 1);
    msgpack_pack_uint32(&r.pk, 0); msgpack_pack_uint64(&r.pk, 0); msgpack_pack_uint32(&r.pk, 2);
    expect_reject(r.sb.data, r.sb.size, NULL, 0, "checkpoint.final: 2, not 0 or 1");
    msgpack_sbuffer_destroy(&r.sb);
    raw_begin(&r, 5, PROTO_CHECKPOINT);
    msgpack_pack_str(&r.pk, 1);
    msgpack_pack_str_body(&r.pk, "p", 1);
    msgpack_pack_uint32(&r.pk, 0); msgpack_pack_uint64(&r.pk, 0);
    expect_reject(r.sb.data, r.sb.size, NULL, 0, "checkpoint: 3 fields, expected 4");
    msgpack_sbuffer_destroy(&r.sb);
    ProtoMsg m = {.type = PROTO_CHECKPOINT};
    m.u.checkpoint = (ProtoCheckpoint){.path = proto_str("p"), .final = 7};
    size_t len;
    StkErr err;
    cr_assert_eq(proto_encode(&m, hdr, sizeof hdr, &len, &err), -1);
    cr_assert(strstr(err.msg, "checkpoint.final: 7"), "%s", err.msg);
}

Test(proto, rejects_oversized_path) {
    char *path = malloc(PROTO_MAX_PATH + 2);
    memset(path, 'p', PROTO_MAX_PATH + 1);
    path[PROTO_MAX_PATH + 1] = '\0';
    Raw r;
    raw_begin(&r, 6, PROTO_CHECKPOINT);
    msgpack_pack_str(&r.pk, PROTO_MAX_PATH + 1);
    msgpack_pack_str_body(&r.pk, path, PROTO_MAX_PATH + 1);
    msgpack_pack_uint32(&r.pk, 0); msgpack_pack_uint32(&r.pk, 0); msgpack_pack_uint32(&r.pk, 0);
    expect_reject(r.sb.data, r.sb.size, NULL, 0, "checkpoint.path: 4097 bytes, longer than");
    msgpack_sbuffer_destroy(&r.sb);
    /* and the encoder refuses to produce it */
    ProtoMsg m = {.type = PROTO_CHECKPOINT};
    m.u.checkpoint.path = proto_str(path);
    size_t len;
    StkErr err;
    cr_assert_eq(proto_encode(&m, hdr, sizeof hdr, &len, &err), -1);
    cr_assert(strstr(err.msg, "checkpoint.path: 4097 bytes"), "%s", err.msg);
    free(path);
}

Test(proto, rejects_nul_in_string_and_duplicate_metric) {
    Raw r;
    raw_begin(&r, 3, PROTO_SHUTDOWN);
    msgpack_pack_str(&r.pk, 3); msgpack_pack_str_body(&r.pk, "a\0b", 3);
    expect_reject(r.sb.data, r.sb.size, NULL, 0, "shutdown.reason: contains a NUL byte");
    msgpack_sbuffer_destroy(&r.sb);
    raw_begin(&r, 7, PROTO_METRICS);
    for (int i = 0; i < 4; i++) msgpack_pack_uint32(&r.pk, 0);
    msgpack_pack_map(&r.pk, 2);
    for (int i = 0; i < 2; i++) {
        msgpack_pack_str(&r.pk, 4); msgpack_pack_str_body(&r.pk, "loss", 4);
        msgpack_pack_double(&r.pk, 1.0);
    }
    expect_reject(r.sb.data, r.sb.size, NULL, 0, "name 'loss' appears twice");
    msgpack_sbuffer_destroy(&r.sb);
}

Test(proto, rejects_trailing_bytes_and_stray_payload) {
    ProtoMsg m = {.type = PROTO_SHUTDOWN};
    size_t len = encode_ok(&m);
    hdr[len] = 0x01;
    expect_reject(hdr, len + 1, NULL, 0, "1 unexpected bytes after the message");
    expect_reject(hdr, len, pixels3, 4, "unexpected second frame of 4 bytes");
}

Test(proto, encoder_reports_small_buffer) {
    ProtoMsg m = small_batch();
    size_t len;
    StkErr err;
    cr_assert_eq(proto_encode(&m, hdr, 10, &len, &err), -1);
    cr_assert(strstr(err.msg, "does not fit in a 10-byte buffer"), "%s", err.msg);
}

/* xorshift64*: a fixed-seed generator so failures reproduce. */
static uint64_t rng_next(uint64_t *s) {
    *s ^= *s >> 12; *s ^= *s << 25; *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

Test(proto, survives_random_bytes, .timeout = 120) {
    uint64_t s = 0x5eed;
    uint8_t buf[256];
    int accepted = 0;
    for (int iter = 0; iter < 200000; iter++) {
        size_t len = rng_next(&s) % sizeof buf;
        for (size_t i = 0; i < len; i++) buf[i] = (uint8_t)rng_next(&s);
        if (len > 2) { buf[0] = 0x90 | (buf[0] & 15); buf[1] = PROTO_VERSION; buf[2] &= 7; }
        ProtoMsg out;
        StkErr err = {{0}};
        int rc = proto_decode(buf, len, NULL, 0, &out, &err);
        if (rc == 0) accepted++;
        else cr_assert(err.msg[0], "rejected without a message");
    }
    cr_log_info("random: %d of 200000 accepted", accepted);
}

Test(proto, survives_mutated_valid_messages, .timeout = 120) {
    uint64_t s = 0xfeed;
    ProtoMsg m = small_batch();
    size_t len = encode_ok(&m);
    uint8_t *orig = malloc(len), *buf = malloc(len);
    memcpy(orig, hdr, len);
    for (int iter = 0; iter < 100000; iter++) {
        memcpy(buf, orig, len);
        int flips = 1 + (int)(rng_next(&s) % 4);
        for (int f = 0; f < flips; f++) buf[rng_next(&s) % len] = (uint8_t)rng_next(&s);
        ProtoMsg out;
        StkErr err = {{0}};
        if (proto_decode(buf, len, pixels3, sizeof pixels3, &out, &err) == 0) {
            /* whatever was accepted must be self-consistent */
            cr_assert_eq(proto_batch_pixel_bytes(&out.u.batch), sizeof pixels3);
        } else {
            cr_assert(err.msg[0]);
        }
    }
    free(orig);
    free(buf);
}
