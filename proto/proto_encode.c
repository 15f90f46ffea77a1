/* proto_encode.c: packs every message's header frame with msgpack-c into the caller's
 * buffer (no allocation), after checking it against the decoder's rules. */
#include "proto.h"
#include "proto_check.h"

#include <msgpack.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "labels and ids travel as little-endian arrays copied from host memory");

/* A fixed buffer msgpack-c writes into; overflow makes every later pack call fail. */
typedef struct FixedBuf {
    uint8_t *data;
    size_t cap, len;
} FixedBuf;

static int fixed_write(void *data, const char *buf, size_t len) {
    FixedBuf *fb = data;
    if (len == 0) return 0; /* msgpack-c passes NULL for empty bodies */
    if (len > fb->cap - fb->len) return -1;
    memcpy(fb->data + fb->len, buf, len);
    fb->len += len;
    return 0;
}

static int pack_str(msgpack_packer *pk, ProtoStr s) {
    return msgpack_pack_str(pk, s.len) || msgpack_pack_str_body(pk, s.ptr, s.len);
}

static int pack_bin(msgpack_packer *pk, const void *p, size_t len) {
    return msgpack_pack_bin(pk, len) || msgpack_pack_bin_body(pk, p, len);
}

static int pack_batch(msgpack_packer *pk, const ProtoBatch *b) {
    return msgpack_pack_uint32(pk, b->epoch) || msgpack_pack_uint32(pk, b->loader) ||
           msgpack_pack_uint64(pk, b->seq) || msgpack_pack_uint64(pk, b->index) ||
           msgpack_pack_uint32(pk, b->n) || msgpack_pack_uint32(pk, b->h) ||
           msgpack_pack_uint32(pk, b->w) || msgpack_pack_uint32(pk, b->c) ||
           pack_bin(pk, b->labels, 4 * (size_t)b->n) || pack_bin(pk, b->ids, 8 * (size_t)b->n);
}

static int pack_metrics(msgpack_packer *pk, const ProtoMetrics *m) {
    if (msgpack_pack_uint32(pk, m->role) || msgpack_pack_uint32(pk, m->id) ||
        msgpack_pack_uint32(pk, m->epoch) || msgpack_pack_uint64(pk, m->step) ||
        msgpack_pack_map(pk, m->count))
        return -1;
    for (uint32_t i = 0; i < m->count; i++)
        if (pack_str(pk, m->items[i].name) || msgpack_pack_double(pk, m->items[i].value))
            return -1;
    return 0;
}

static int pack_fields(msgpack_packer *pk, const ProtoMsg *m) {
    switch (m->type) {
    case PROTO_BATCH: return pack_batch(pk, &m->u.batch);
    case PROTO_END_OF_EPOCH: {
        const ProtoEndOfEpoch *e = &m->u.end_of_epoch;
        return msgpack_pack_uint32(pk, e->loader) || msgpack_pack_uint32(pk, e->epoch) ||
               msgpack_pack_uint64(pk, e->samples) || msgpack_pack_uint64(pk, e->batches);
    }
    case PROTO_BAD_FILE: {
        const ProtoBadFile *f = &m->u.bad_file;
        return msgpack_pack_uint32(pk, f->loader) || msgpack_pack_uint64(pk, f->sample_id) ||
               pack_str(pk, f->path) || pack_str(pk, f->reason);
    }
    case PROTO_HEARTBEAT: {
        const ProtoHeartbeat *h = &m->u.heartbeat;
        return msgpack_pack_uint32(pk, h->role) || msgpack_pack_uint32(pk, h->id) ||
               msgpack_pack_uint32(pk, h->pid) || msgpack_pack_uint64(pk, h->time_ms);
    }
    case PROTO_SHUTDOWN: return pack_str(pk, m->u.shutdown.reason);
    case PROTO_CHECKPOINT: {
        const ProtoCheckpoint *c = &m->u.checkpoint;
        return pack_str(pk, c->path) || msgpack_pack_uint32(pk, c->epoch) ||
               msgpack_pack_uint64(pk, c->step) || msgpack_pack_uint32(pk, c->final);
    }
    case PROTO_METRICS: return pack_metrics(pk, &m->u.metrics);
    case PROTO_ERROR: {
        const ProtoError *e = &m->u.error;
        return msgpack_pack_uint32(pk, e->role) || msgpack_pack_uint32(pk, e->id) ||
               pack_str(pk, e->text);
    }
    }
    return -1;
}

int proto_encode(const ProtoMsg *m, void *buf, size_t cap, size_t *len, StkErr *err) {
    if (proto_check_msg(m, err)) return stk_err_wrap(err, "encode %s", proto_type_name(m->type));
    FixedBuf fb = {buf, cap, 0};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &fb, fixed_write);
    if (msgpack_pack_array(&pk, 2 + proto_field_count(m->type)) ||
        msgpack_pack_uint32(&pk, PROTO_VERSION) || msgpack_pack_uint32(&pk, m->type) ||
        pack_fields(&pk, m))
        return stk_errf(err, "encode %s: does not fit in a %zu-byte buffer",
                        proto_type_name(m->type), cap);
    *len = fb.len;
    return 0;
}
