/* proto_check.c: semantic rules of every message (see proto_check.h). */
#include "proto_check.h"

#include <string.h>

/* Number of fields after [version, type] for each type. */
uint32_t proto_field_count(ProtoType t) {
    switch (t) {
    case PROTO_BATCH: return 10;
    case PROTO_END_OF_EPOCH: return 4;
    case PROTO_BAD_FILE: return 4;
    case PROTO_HEARTBEAT: return 4;
    case PROTO_SHUTDOWN: return 1;
    case PROTO_CHECKPOINT: return 4;
    case PROTO_METRICS: return 5;
    case PROTO_ERROR: return 3;
    }
    return 0;
}

const char *proto_type_name(uint32_t type) {
    static const char *names[] = {"unknown",    "batch",   "end_of_epoch", "bad_file",
                                  "heartbeat",  "shutdown", "checkpoint",  "metrics",
                                  "error"};
    return type < sizeof names / sizeof *names ? names[type] : "unknown";
}

ProtoStr proto_str(const char *s) {
    ProtoStr r = {s, s ? (uint32_t)strlen(s) : 0};
    return r;
}

int32_t proto_batch_label(const ProtoBatch *b, uint32_t i) {
    int32_t v;
    memcpy(&v, (const uint8_t *)b->labels + 4 * (size_t)i, sizeof v);
    return v;
}

uint64_t proto_batch_id(const ProtoBatch *b, uint32_t i) {
    uint64_t v;
    memcpy(&v, (const uint8_t *)b->ids + 8 * (size_t)i, sizeof v);
    return v;
}

uint64_t proto_batch_pixel_bytes(const ProtoBatch *b) {
    return (uint64_t)b->n * b->h * b->w * b->c;
}

int proto_check_str(ProtoStr s, uint32_t min, uint32_t max, const char *what, StkErr *err) {
    if (s.len < min || s.len > max)
        return stk_errf(err, "%s: %u bytes, must be %u..%u", what, s.len, min, max);
    if (s.len && !s.ptr) return stk_errf(err, "%s: NULL pointer with length %u", what, s.len);
    if (s.len && memchr(s.ptr, 0, s.len)) return stk_errf(err, "%s: contains a NUL byte", what);
    return 0;
}

int proto_check_role(uint32_t role, const char *what, StkErr *err) {
    if (role >= PROTO_ROLE_COUNT)
        return stk_errf(err, "%s: role %u unknown (0..%d)", what, role, PROTO_ROLE_COUNT - 1);
    return 0;
}

int proto_check_batch(const ProtoBatch *b, StkErr *err) {
    if (b->n < 1 || b->n > PROTO_MAX_BATCH_N)
        return stk_errf(err, "batch.n: %u, must be 1..%u", b->n, PROTO_MAX_BATCH_N);
    if (b->h < 1 || b->h > PROTO_MAX_SIDE || b->w < 1 || b->w > PROTO_MAX_SIDE)
        return stk_errf(err, "batch: image %ux%u, each side must be 1..%u", b->h, b->w,
                        PROTO_MAX_SIDE);
    if (b->c < 1 || b->c > PROTO_MAX_CHANNELS)
        return stk_errf(err, "batch.c: %u channels, must be 1..%u", b->c, PROTO_MAX_CHANNELS);
    if (proto_batch_pixel_bytes(b) > PROTO_MAX_PIXEL_BYTES)
        return stk_errf(err, "batch: %ux%ux%ux%u = %llu pixel bytes, over the limit %llu",
                        b->n, b->h, b->w, b->c, (unsigned long long)proto_batch_pixel_bytes(b),
                        (unsigned long long)PROTO_MAX_PIXEL_BYTES);
    if (!b->pixels || !b->labels || !b->ids)
        return stk_errf(err, "batch: pixels, labels and ids must all be set");
    for (uint32_t i = 0; i < b->n; i++) {
        int32_t label = proto_batch_label(b, i);
        if (label < 0 || (uint32_t)label >= PROTO_MAX_CLASSES)
            return stk_errf(err, "batch.labels[%u]: %d, must be 0..%u", i, label,
                            PROTO_MAX_CLASSES - 1);
    }
    return 0;
}

int proto_check_metrics(const ProtoMetrics *m, StkErr *err) {
    if (proto_check_role(m->role, "metrics.role", err)) return -1;
    if (m->count > PROTO_MAX_METRICS)
        return stk_errf(err, "metrics: %u entries, limit %u", m->count, PROTO_MAX_METRICS);
    for (uint32_t i = 0; i < m->count; i++) {
        ProtoStr a = m->items[i].name;
        if (proto_check_str(a, 1, PROTO_MAX_METRIC_NAME, "metrics name", err)) return -1;
        for (uint32_t j = 0; j < i; j++) {
            ProtoStr b = m->items[j].name;
            if (a.len == b.len && !memcmp(a.ptr, b.ptr, a.len))
                return stk_errf(err, "metrics: name '%.*s' appears twice", (int)a.len, a.ptr);
        }
    }
    return 0;
}

int proto_check_msg(const ProtoMsg *m, StkErr *err) {
    switch (m->type) {
    case PROTO_BATCH: return proto_check_batch(&m->u.batch, err);
    case PROTO_END_OF_EPOCH: return 0;
    case PROTO_BAD_FILE:
        if (proto_check_str(m->u.bad_file.path, 1, PROTO_MAX_PATH, "bad_file.path", err))
            return -1;
        return proto_check_str(m->u.bad_file.reason, 1, PROTO_MAX_TEXT, "bad_file.reason", err);
    case PROTO_HEARTBEAT: return proto_check_role(m->u.heartbeat.role, "heartbeat.role", err);
    case PROTO_SHUTDOWN:
        return proto_check_str(m->u.shutdown.reason, 0, PROTO_MAX_TEXT, "shutdown.reason", err);
    case PROTO_CHECKPOINT:
        if (m->u.checkpoint.final > 1)
            return stk_errf(err, "checkpoint.final: %u, not 0 or 1", m->u.checkpoint.final);
        return proto_check_str(m->u.checkpoint.path, 1, PROTO_MAX_PATH, "checkpoint.path", err);
    case PROTO_METRICS: return proto_check_metrics(&m->u.metrics, err);
    case PROTO_ERROR:
        if (proto_check_role(m->u.error.role, "error.role", err)) return -1;
        return proto_check_str(m->u.error.text, 1, PROTO_MAX_TEXT, "error.text", err);
    }
    return stk_errf(err, "message type %u unknown", (unsigned)m->type);
}
