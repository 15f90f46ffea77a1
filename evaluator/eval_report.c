/* eval_report.c: stoker-eval's sockets and reports (see eval_report.h). */
#include "eval_report.h"

#include <time.h>
#include <unistd.h>

#include <stdio.h>
#include <string.h>

#define REPORTS_HWM 10000

static void *open_sub_or_push(void *ctx, int type, const char *ep, int conflate,
                              const ProtoCurve *curve, StkErr *err) {
    void *s = zmq_socket(ctx, type);
    if (!s) return stk_errf(err, "zmq_socket: %s", zmq_strerror(zmq_errno())), NULL;
    int one = 1, hwm = type == ZMQ_PUSH ? REPORTS_HWM : 1000;
    if (proto_zmq_setup(s, hwm, hwm, 0, err) || proto_curve_apply(s, curve, 0, err)) {
        zmq_close(s);
        return NULL;
    }
    /* CONFLATE before connect: a queue of one, always the newest notice */
    if ((conflate && zmq_setsockopt(s, ZMQ_CONFLATE, &one, sizeof one)) ||
        (type == ZMQ_SUB && zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0)) || zmq_connect(s, ep)) {
        stk_errf(err, "socket %s: %s", ep, zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    return s;
}

int eval_report_open(EvalReport *r, void *ctx, const EvalConfig *c, void **notices, StkErr *err) {
    *r = (EvalReport){0};
    *notices = NULL;
    if (proto_out_init(&r->out, err)) return -1;
    const ProtoCurve *cv = c->curve_key ? &r->curve : NULL;
    if (cv && proto_curve_open(&r->curve, c->curve_key, c->curve_server, err)) {
        eval_report_close(r);
        return -1;
    }
    if ((c->control && !(r->control = open_sub_or_push(ctx, ZMQ_SUB, c->control, 0, cv, err))) ||
        (c->reports && !(r->reports = open_sub_or_push(ctx, ZMQ_PUSH, c->reports, 0, cv, err))) ||
        (c->checkpoints && !(*notices = open_sub_or_push(ctx, ZMQ_SUB, c->checkpoints, 1, cv, err)))) {
        eval_report_close(r);
        return -1;
    }
    return 0;
}

static void dropped(EvalReport *r, const char *sock, const char *why) {
    r->dropped++;
    fprintf(stderr, "stoker-eval: %s: dropped %s\n", sock, why);
}

int eval_report_stop(EvalReport *r) {
    while (r->control && !r->stop) {
        ProtoRecv m;
        StkErr err;
        int rc = proto_recv(r->control, &m, ZMQ_DONTWAIT, &err);
        if (rc == PROTO_AGAIN || rc == PROTO_FAIL) break;
        if (rc == PROTO_BAD) { dropped(r, "control", err.msg); continue; }
        if (m.msg.type == PROTO_SHUTDOWN) r->stop = 1;
        else dropped(r, "control", proto_type_name(m.msg.type));
        proto_recv_release(&m);
    }
    return r->stop;
}

int eval_report_next_notice(EvalReport *r, void *notices, int ms, ProtoCheckpoint *ck,
                            char *path, size_t cap) {
    zmq_pollitem_t it = {notices, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, ms) <= 0) return 1;
    ProtoRecv m;
    StkErr err;
    int rc = proto_recv(notices, &m, ZMQ_DONTWAIT, &err);
    if (rc == PROTO_BAD) dropped(r, "checkpoints", err.msg);
    if (rc != PROTO_OK) return 1;
    int ok = m.msg.type == PROTO_CHECKPOINT && m.msg.u.checkpoint.path.len < cap;
    if (ok) {
        *ck = m.msg.u.checkpoint;
        memcpy(path, ck->path.ptr, ck->path.len);
        path[ck->path.len] = 0;
        ck->path = (ProtoStr){path, ck->path.len};
    } else {
        dropped(r, "checkpoints", proto_type_name(m.msg.type));
    }
    proto_recv_release(&m);
    return !ok;
}

/* Collects name/value pairs into metrics messages of at most PROTO_MAX_METRICS. */
typedef struct Batcher {
    EvalReport *r;
    ProtoMsg m;
    char names[PROTO_MAX_METRICS][PROTO_MAX_METRIC_NAME + 1];
} Batcher;

static void flush(Batcher *b) {
    if (!b->m.u.metrics.count) return;
    StkErr err;
    if (proto_send(&b->r->out, b->r->reports, &b->m, NULL, ZMQ_DONTWAIT, &err) != PROTO_OK)
        b->r->reports_dropped++;
    b->m.u.metrics.count = 0;
}

static void put(Batcher *b, const char *name, double v) {
    ProtoMetrics *mm = &b->m.u.metrics;
    if (mm->count == PROTO_MAX_METRICS) flush(b);
    char *n = b->names[mm->count];
    snprintf(n, PROTO_MAX_METRIC_NAME + 1, "%s", name);
    mm->items[mm->count++] = (ProtoMetric){proto_str(n), v};
}

static void print_stats(const EvalStats *s, const char *path, uint32_t epoch, uint64_t step) {
    printf("stoker-eval: %s (epoch %u, step %llu): loss %.4f  top-1 %.2f%%  top-5 %.2f%%  "
           "(%llu images)\n", path, epoch, (unsigned long long)step, eval_stats_loss(s),
           eval_stats_top1(s), eval_stats_top5(s), (unsigned long long)s->seen);
    printf("per-class accuracy:");
    for (int c = 0; c < s->k; c++) printf(" %.1f", eval_stats_class_acc(s, c));
    printf("\nconfusion matrix (row: true class, column: predicted):\n");
    for (int i = 0; i < s->k && s->k <= 100; i++) {
        for (int j = 0; j < s->k; j++)
            printf("%s%llu", j ? " " : "", (unsigned long long)s->confusion[(size_t)i * s->k + j]);
        printf("\n");
    }
}

void eval_report_stats(EvalReport *r, const EvalStats *s, const char *path, uint32_t epoch,
                       uint64_t step, int best) {
    if (!r->reports) {
        print_stats(s, path, epoch, step);
        return;
    }
    Batcher b = {.r = r, .m = {.type = PROTO_METRICS}};
    b.m.u.metrics = (ProtoMetrics){.role = PROTO_ROLE_EVALUATOR, .epoch = epoch, .step = step};
    put(&b, "loss", eval_stats_loss(s));
    put(&b, "top1", eval_stats_top1(s));
    put(&b, "top5", eval_stats_top5(s));
    put(&b, "images", (double)s->seen);
    put(&b, "best", best);
    put(&b, "classes", s->k);
    flush(&b);
    char name[64];
    for (int c = 0; c < s->k; c++) {
        snprintf(name, sizeof name, "class_acc.%d", c);
        put(&b, name, eval_stats_class_acc(s, c));
    }
    for (int i = 0; i < s->k; i++)
        for (int j = 0; j < s->k; j++) {
            uint64_t v = s->confusion[(size_t)i * s->k + j];
            if (!v) continue;
            snprintf(name, sizeof name, "cm.%d.%d", i, j);
            put(&b, name, (double)v);
        }
    flush(&b);
    put(&b, "eval_done", 1);
    flush(&b);
}

void eval_report_error(EvalReport *r, const char *text) {
    if (!r->reports) return;
    ProtoMsg m = {.type = PROTO_ERROR};
    m.u.error = (ProtoError){PROTO_ROLE_EVALUATOR, 0, proto_str(text)};
    if (m.u.error.text.len > PROTO_MAX_TEXT) m.u.error.text.len = PROTO_MAX_TEXT;
    StkErr err;
    if (m.u.error.text.len) proto_send(&r->out, r->reports, &m, NULL, ZMQ_DONTWAIT, &err);
}

void eval_report_close(EvalReport *r) {
    if (r->control) zmq_close(r->control);
    if (r->reports) zmq_close(r->reports);
    r->control = r->reports = NULL;
    proto_out_free(&r->out);
}

#define EVAL_HEARTBEAT_MS 1000

void eval_report_heartbeat(EvalReport *r) {
    if (!r->reports) return;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t t = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (t - r->last_heartbeat_ms < EVAL_HEARTBEAT_MS) return;
    r->last_heartbeat_ms = t;
    ProtoMsg m = {.type = PROTO_HEARTBEAT};
    m.u.heartbeat = (ProtoHeartbeat){PROTO_ROLE_EVALUATOR, 0, (uint32_t)getpid(), t};
    StkErr err;
    if (proto_send(&r->out, r->reports, &m, NULL, ZMQ_DONTWAIT, &err) != PROTO_OK) r->reports_dropped++;
}
