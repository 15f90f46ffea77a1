/* fuzz_proto_decode.c: libFuzzer target for proto_decode.
 *
 * Input layout: byte 0 picks whether a second (pixel) frame exists; bytes 1-2 give the
 * header length; the header follows and the rest is the pixel frame. Beyond "no crash,
 * no out-of-bounds read" (ASan/UBSan), it checks that the encoder and decoder agree:
 * whatever decodes must re-encode and decode to the same message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static uint8_t scratch[PROTO_MAX_HEADER_BYTES];

static int same_str(ProtoStr a, ProtoStr b) {
    return a.len == b.len && (!a.len || !memcmp(a.ptr, b.ptr, a.len));
}

/* Field-by-field equality of two decoded messages of the same type. */
static int same(const ProtoMsg *a, const ProtoMsg *b) {
    if (a->type != b->type) return 0;
    switch (a->type) {
    case PROTO_BATCH: {
        const ProtoBatch *x = &a->u.batch, *y = &b->u.batch;
        return x->epoch == y->epoch && x->loader == y->loader && x->seq == y->seq &&
               x->index == y->index && x->n == y->n && x->h == y->h && x->w == y->w &&
               x->c == y->c && !memcmp(x->labels, y->labels, 4 * (size_t)x->n) &&
               !memcmp(x->ids, y->ids, 8 * (size_t)x->n);
    }
    case PROTO_BAD_FILE:
        return same_str(a->u.bad_file.path, b->u.bad_file.path) &&
               same_str(a->u.bad_file.reason, b->u.bad_file.reason) &&
               a->u.bad_file.sample_id == b->u.bad_file.sample_id;
    case PROTO_SHUTDOWN: return same_str(a->u.shutdown.reason, b->u.shutdown.reason);
    case PROTO_CHECKPOINT:
        return same_str(a->u.checkpoint.path, b->u.checkpoint.path) &&
               a->u.checkpoint.step == b->u.checkpoint.step &&
               a->u.checkpoint.epoch == b->u.checkpoint.epoch &&
               a->u.checkpoint.final == b->u.checkpoint.final;
    case PROTO_METRICS:
        if (a->u.metrics.count != b->u.metrics.count) return 0;
        for (uint32_t i = 0; i < a->u.metrics.count; i++)
            if (!same_str(a->u.metrics.items[i].name, b->u.metrics.items[i].name)) return 0;
        return 1;
    case PROTO_ERROR: return same_str(a->u.error.text, b->u.error.text);
    default: return !memcmp(&a->u, &b->u, sizeof(ProtoHeartbeat));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    int has_payload = data[0] & 1;
    size_t hlen = (size_t)data[1] << 8 | data[2];
    data += 3;
    size -= 3;
    if (hlen > size) hlen = size;
    const uint8_t *payload = has_payload ? data + hlen : NULL;
    size_t plen = has_payload ? size - hlen : 0;

    ProtoMsg m, again;
    StkErr err;
    if (proto_decode(data, hlen, payload, plen, &m, &err)) {
        if (!err.msg[0]) abort(); /* every rejection must say why */
        return 0;
    }
    size_t len;
    if (proto_encode(&m, scratch, sizeof scratch, &len, &err)) abort();
    if (proto_decode(scratch, len, payload, plen, &again, &err)) abort();
    if (!same(&m, &again)) abort();
    return 0;
}
