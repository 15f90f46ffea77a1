/* proto_decode.c: reads and validates every message with the bounded reader
 * (proto_mpr.h), then applies the shared rules (proto_check.h). No allocation. */
#include "proto.h"
#include "proto_check.h"
#include "proto_mpr.h"

#include <string.h>

/* Reads a uint32 field. */
static int u32(Mpr *r, uint32_t *v, const char *what, StkErr *err) {
    uint64_t x;
    if (mpr_uint(r, UINT32_MAX, &x, what, err)) return -1;
    *v = (uint32_t)x;
    return 0;
}

static int u64(Mpr *r, uint64_t *v, const char *what, StkErr *err) {
    return mpr_uint(r, UINT64_MAX, v, what, err);
}

static int str(Mpr *r, uint32_t max, ProtoStr *s, const char *what, StkErr *err) {
    return mpr_str(r, max, &s->ptr, &s->len, what, err);
}

static int read_batch(Mpr *r, ProtoBatch *b, StkErr *err) {
    const uint8_t *labels, *ids;
    if (u32(r, &b->epoch, "batch.epoch", err) || u32(r, &b->loader, "batch.loader", err) ||
        u64(r, &b->seq, "batch.seq", err) || u64(r, &b->index, "batch.index", err) ||
        u32(r, &b->n, "batch.n", err) || u32(r, &b->h, "batch.h", err) ||
        u32(r, &b->w, "batch.w", err) || u32(r, &b->c, "batch.c", err))
        return -1;
    /* Bound n before using it in a length: labels and ids lengths follow from it. */
    if (b->n < 1 || b->n > PROTO_MAX_BATCH_N)
        return stk_errf(err, "batch.n: %u, must be 1..%u", b->n, PROTO_MAX_BATCH_N);
    if (mpr_bin(r, 4ull * b->n, &labels, "batch.labels", err) ||
        mpr_bin(r, 8ull * b->n, &ids, "batch.ids", err))
        return -1;
    b->labels = labels;
    b->ids = ids;
    return 0;
}

static int read_metrics(Mpr *r, ProtoMetrics *m, StkErr *err) {
    uint32_t count;
    if (u32(r, &m->role, "metrics.role", err) || u32(r, &m->id, "metrics.id", err) ||
        u32(r, &m->epoch, "metrics.epoch", err) || u64(r, &m->step, "metrics.step", err) ||
        mpr_map(r, &count, "metrics.values", err))
        return -1;
    if (count > PROTO_MAX_METRICS)
        return stk_errf(err, "metrics.values: %u entries, limit %u", count, PROTO_MAX_METRICS);
    m->count = count;
    for (uint32_t i = 0; i < count; i++)
        if (str(r, PROTO_MAX_METRIC_NAME, &m->items[i].name, "metrics name", err) ||
            mpr_f64(r, &m->items[i].value, "metrics value", err))
            return -1;
    return 0;
}

/* Reads the fields of m->type (the count was already checked). */
static int read_fields(Mpr *r, ProtoMsg *m, StkErr *err) {
    switch (m->type) {
    case PROTO_BATCH: return read_batch(r, &m->u.batch, err);
    case PROTO_END_OF_EPOCH: {
        ProtoEndOfEpoch *e = &m->u.end_of_epoch;
        return u32(r, &e->loader, "end_of_epoch.loader", err) ||
               u32(r, &e->epoch, "end_of_epoch.epoch", err) ||
               u64(r, &e->samples, "end_of_epoch.samples", err) ||
               u64(r, &e->batches, "end_of_epoch.batches", err) ? -1 : 0;
    }
    case PROTO_BAD_FILE: {
        ProtoBadFile *f = &m->u.bad_file;
        return u32(r, &f->loader, "bad_file.loader", err) ||
               u64(r, &f->sample_id, "bad_file.sample_id", err) ||
               str(r, PROTO_MAX_PATH, &f->path, "bad_file.path", err) ||
               str(r, PROTO_MAX_TEXT, &f->reason, "bad_file.reason", err) ? -1 : 0;
    }
    case PROTO_HEARTBEAT: {
        ProtoHeartbeat *h = &m->u.heartbeat;
        return u32(r, &h->role, "heartbeat.role", err) || u32(r, &h->id, "heartbeat.id", err) ||
               u32(r, &h->pid, "heartbeat.pid", err) ||
               u64(r, &h->time_ms, "heartbeat.time_ms", err) ? -1 : 0;
    }
    case PROTO_SHUTDOWN: return str(r, PROTO_MAX_TEXT, &m->u.shutdown.reason, "shutdown.reason", err);
    case PROTO_CHECKPOINT: {
        ProtoCheckpoint *c = &m->u.checkpoint;
        return str(r, PROTO_MAX_PATH, &c->path, "checkpoint.path", err) ||
               u32(r, &c->epoch, "checkpoint.epoch", err) ||
               u64(r, &c->step, "checkpoint.step", err) ||
               u32(r, &c->final, "checkpoint.final", err) ? -1 : 0;
    }
    case PROTO_METRICS: return read_metrics(r, &m->u.metrics, err);
    case PROTO_ERROR: {
        ProtoError *e = &m->u.error;
        return u32(r, &e->role, "error.role", err) || u32(r, &e->id, "error.id", err) ||
               str(r, PROTO_MAX_TEXT, &e->text, "error.text", err) ? -1 : 0;
    }
    }
    return stk_errf(err, "message type %u unknown", (unsigned)m->type);
}

/* Reads [version, type, and checks the field count for that type. */
static int read_envelope(Mpr *r, ProtoMsg *m, StkErr *err) {
    uint32_t count, version, type;
    if (mpr_array(r, &count, "message", err)) return -1;
    if (count < 2) return stk_errf(err, "message: array of %u elements, need at least 2", count);
    if (u32(r, &version, "message.version", err)) return -1;
    if (version != PROTO_VERSION)
        return stk_errf(err, "message: protocol version %u, this build speaks %u", version,
                        PROTO_VERSION);
    if (u32(r, &type, "message.type", err)) return -1;
    uint32_t want = proto_field_count((ProtoType)type);
    if (!want) return stk_errf(err, "message: type %u unknown", type);
    if (count != 2 + want)
        return stk_errf(err, "%s: %u fields, expected %u", proto_type_name(type), count - 2,
                        want);
    m->type = (ProtoType)type;
    return 0;
}

static int attach_payload(ProtoMsg *m, const void *payload, size_t payload_len, StkErr *err) {
    if (m->type != PROTO_BATCH) {
        if (payload || payload_len)
            return stk_errf(err, "%s: unexpected second frame of %zu bytes",
                            proto_type_name(m->type), payload_len);
        return 0;
    }
    ProtoBatch *b = &m->u.batch;
    if (!payload) return stk_errf(err, "batch: pixel frame missing");
    /* Dimensions first, so the product below cannot overflow and the message names them. */
    b->pixels = payload;
    if (proto_check_batch(b, err)) return -1;
    if (payload_len != proto_batch_pixel_bytes(b))
        return stk_errf(err, "batch: pixel frame of %zu bytes, but n*h*w*c = %ux%ux%ux%u = %llu",
                        payload_len, b->n, b->h, b->w, b->c,
                        (unsigned long long)proto_batch_pixel_bytes(b));
    return 0;
}

int proto_decode(const void *hdr, size_t hdr_len, const void *payload, size_t payload_len,
                 ProtoMsg *out, StkErr *err) {
    Mpr r;
    memset(out, 0, sizeof *out);
    mpr_init(&r, hdr, hdr_len);
    if (!hdr || !hdr_len) return stk_errf(err, "message: empty frame");
    if (read_envelope(&r, out, err) || read_fields(&r, out, err)) return -1;
    if (mpr_left(&r))
        return stk_errf(err, "%s: %zu unexpected bytes after the message",
                        proto_type_name(out->type), mpr_left(&r));
    if (attach_payload(out, payload, payload_len, err)) return -1;
    return out->type == PROTO_BATCH ? 0 : proto_check_msg(out, err);
}
