/* train_link.c: the trainer's control, reports and checkpoint sockets (see train_link.h). */
#include "train_link.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HEARTBEAT_MS 1000
#define REPORTS_HWM 10000    /* reports queued before we drop and count */
#define NOTICE_LINGER_MS 2000 /* how long the last checkpoint notice may take to go out */

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
    (void)sig;
    stop_signal = 1;
}

int train_link_signals(StkErr *err) {
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL))
        return stk_errf(err, "sigaction: %s", strerror(errno));
    return 0;
}

static void *open_socket(void *ctx, int type, const char *ep, int hwm, int linger,
                         const ProtoCurve *curve, StkErr *err) {
    void *s = zmq_socket(ctx, type);
    if (!s) return stk_errf(err, "zmq_socket: %s", zmq_strerror(zmq_errno())), NULL;
    if (proto_zmq_setup(s, hwm, hwm, linger, err) ||
        proto_curve_apply(s, curve, type == ZMQ_PUB, err)) {
        zmq_close(s);
        return NULL;
    }
    int rc = type == ZMQ_PUB ? zmq_bind(s, ep) : zmq_connect(s, ep);
    if (rc || (type == ZMQ_SUB && zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0))) {
        stk_errf(err, "%s %s: %s", type == ZMQ_PUB ? "bind" : "connect", ep,
                 zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    return s;
}

int train_link_open(TrainLink *l, void *ctx, const char *control, const char *reports,
                    const char *checkpoints, const ProtoCurve *curve, StkErr *err) {
    *l = (TrainLink){0};
    if (proto_out_init(&l->out, err)) return -1;
    if (control && !(l->control = open_socket(ctx, ZMQ_SUB, control, 1000, 0, curve, err))) goto fail;
    if (reports && !(l->reports = open_socket(ctx, ZMQ_PUSH, reports, REPORTS_HWM, 0, curve, err)))
        goto fail;
    if (checkpoints &&
        !(l->checkpoints = open_socket(ctx, ZMQ_PUB, checkpoints, 1000, NOTICE_LINGER_MS, curve, err)))
        goto fail;
    return 0;
fail:
    train_link_close(l);
    return -1;
}

/* Sends without ever blocking; a full queue (or no peer yet) drops and counts. */
static void report(TrainLink *l, const ProtoMsg *m) {
    StkErr err;
    if (l->reports && proto_send(&l->out, l->reports, m, NULL, ZMQ_DONTWAIT, &err) != PROTO_OK)
        l->reports_dropped++;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int train_link_stop(TrainLink *l) {
    if (stop_signal) l->stop = 1;
    while (l->control && !l->stop) {
        ProtoRecv r;
        StkErr err;
        int rc = proto_recv(l->control, &r, ZMQ_DONTWAIT, &err);
        if (rc == PROTO_AGAIN || rc == PROTO_FAIL) break;
        if (rc == PROTO_BAD || r.msg.type != PROTO_SHUTDOWN) {
            l->control_dropped++;
            fprintf(stderr, "stoker-train: control: dropped %s\n",
                    rc == PROTO_BAD ? err.msg : proto_type_name(r.msg.type));
            if (rc == PROTO_OK) proto_recv_release(&r);
            continue;
        }
        l->stop = 1;
        proto_recv_release(&r);
    }
    uint64_t t = now_ms();
    if (l->reports && t - l->last_heartbeat_ms >= HEARTBEAT_MS) {
        l->last_heartbeat_ms = t;
        ProtoMsg m = {.type = PROTO_HEARTBEAT};
        m.u.heartbeat = (ProtoHeartbeat){PROTO_ROLE_TRAINER, l->id, (uint32_t)getpid(), t};
        report(l, &m);
    }
    return l->stop;
}

void train_link_metrics(TrainLink *l, uint32_t epoch, uint64_t step, const char *const *names,
                        const double *values, uint32_t count) {
    if (!l->reports) return;
    ProtoMsg m = {.type = PROTO_METRICS};
    ProtoMetrics *mm = &m.u.metrics;
    *mm = (ProtoMetrics){.role = PROTO_ROLE_TRAINER, .id = l->id, .epoch = epoch, .step = step};
    for (uint32_t i = 0; i < count && i < PROTO_MAX_METRICS; i++)
        mm->items[mm->count++] = (ProtoMetric){proto_str(names[i]), values[i]};
    report(l, &m);
}

void train_link_error(TrainLink *l, const char *text) {
    ProtoMsg m = {.type = PROTO_ERROR};
    m.u.error = (ProtoError){PROTO_ROLE_TRAINER, l->id, proto_str(text)};
    if (m.u.error.text.len > PROTO_MAX_TEXT) m.u.error.text.len = PROTO_MAX_TEXT;
    if (m.u.error.text.len) report(l, &m);
}

void train_link_checkpoint(TrainLink *l, const char *path, uint32_t epoch, uint64_t step, int final) {
    if (!l->checkpoints) return;
    ProtoMsg m = {.type = PROTO_CHECKPOINT};
    m.u.checkpoint = (ProtoCheckpoint){proto_str(path), epoch, step, final ? 1u : 0u};
    StkErr err;
    /* PUB never blocks: with no subscriber the notice is simply not delivered */
    if (proto_send(&l->out, l->checkpoints, &m, NULL, ZMQ_DONTWAIT, &err) != PROTO_OK)
        fprintf(stderr, "stoker-train: checkpoint notice not sent: %s\n", err.msg);
}

void train_link_close(TrainLink *l) {
    void *socks[3] = {l->control, l->reports, l->checkpoints};
    for (int i = 0; i < 3; i++)
        if (socks[i]) zmq_close(socks[i]);
    l->control = l->reports = l->checkpoints = NULL;
    proto_out_free(&l->out);
}
