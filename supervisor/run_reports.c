/* run_reports.c: what stoker-run does with each report (metrics, bad files, errors,
 * heartbeats) and checkpoint notice. Anything malformed or unexpected is dropped,
 * counted and logged: a foreign peer must not crash or steer the supervisor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_sup.h"

#define LOGGED_DROPS 20 /* drops logged one by one; after that only counted */

static void drop(Sup *s, const char *sock, const char *why) {
    if (++s->dropped <= LOGGED_DROPS)
        run_progress_say(&s->prog, "stoker-run: %s: dropped %s", sock, why);
}

/* 1 and *v = the value of metric name if the message has it, else 0. */
static int metric(const ProtoMetrics *m, const char *name, double *v) {
    size_t n = strlen(name);
    for (uint32_t i = 0; i < m->count; i++)
        if (m->items[i].name.len == n && !memcmp(m->items[i].name.ptr, name, n)) {
            *v = m->items[i].value;
            return 1;
        }
    return 0;
}

static void trainer_metrics(Sup *s, const ProtoMetrics *m) {
    double loss, lr, ips, wait, step, steps, lost, rep, el, es;
    if (m->id >= (uint32_t)s->gpus) return drop(s, "reports", "metrics of a trainer rank not started");
    /* the ranks step together; rank 0 speaks for the group (loaders restart at its epoch) */
    if (m->id == 0) s->train_epoch = m->epoch;
    if (m->id == 0 && metric(m, "loss", &loss) && metric(m, "lr", &lr) && metric(m, "images_per_s", &ips) &&
        metric(m, "input_wait", &wait) && metric(m, "epoch_step", &step) &&
        metric(m, "epoch_steps", &steps)) {
        run_dir_train(&s->dir, m->epoch, m->step, loss, lr, ips, wait);
        run_progress_step(&s->prog, m->epoch, (uint64_t)step, (uint64_t)steps, ips, loss, lr, wait);
        return;
    }
    if (metric(m, "samples_lost", &lost) && metric(m, "samples_repeated", &rep) &&
        metric(m, "epoch_loss", &el) && metric(m, "epoch_seconds", &es)) {
        const char *names[PROTO_MAX_METRICS];
        double v[PROTO_MAX_METRICS];
        char buf[PROTO_MAX_METRICS][PROTO_MAX_METRIC_NAME + 1];
        for (uint32_t i = 0; i < m->count; i++) {
            snprintf(buf[i], sizeof buf[i], "%.*s", (int)m->items[i].name.len, m->items[i].name.ptr);
            names[i] = buf[i], v[i] = m->items[i].value;
        }
        run_dir_epoch(&s->dir, m->epoch, m->step, names, v, (int)m->count);
        char who[32] = "";
        if (s->gpus > 1) snprintf(who, sizeof who, " (rank %u)", m->id);
        run_progress_say(&s->prog, "epoch %u%s: train loss %.4f in %.1f s; samples lost %.0f, "
                         "repeated %.0f", m->epoch, who, el, es, lost, rep);
        return;
    }
    drop(s, "reports", "trainer metrics of no known kind");
}

/* Sizes the evaluation being assembled for k classes. */
static int eval_classes(Sup *s, int k) {
    RunEval *e = &s->ev;
    if (k < 1 || k > 100000) return -1;
    free(e->class_acc), free(e->confusion);
    e->classes = k;
    e->class_acc = calloc((size_t)k, sizeof *e->class_acc);
    e->confusion = calloc((size_t)k * k, sizeof *e->confusion);
    if (!e->class_acc || !e->confusion) return e->classes = 0, -1;
    return 0;
}

/* Notices before step that no evaluation took (dropped from pending with step's own). */
static uint64_t skipped_before(Sup *s, uint64_t step) {
    uint64_t n = s->pending_lost;
    int k = 0;
    while (k < s->npending && s->pending[k] <= step) n += s->pending[k++] < step;
    memmove(s->pending, s->pending + k, sizeof *s->pending * (size_t)(s->npending - k));
    s->npending -= k, s->pending_lost = 0;
    return n;
}

static void eval_done(Sup *s) {
    RunEval *e = &s->ev;
    e->skipped = skipped_before(s, e->step);
    run_dir_eval(&s->dir, e);
    run_progress_eval(&s->prog, e->top1);
    char held[160] = "";
    if (e->skipped)
        snprintf(held, sizeof held,
                 "  (%llu checkpoint%s before it not evaluated: evaluator busy or paced, --eval-duty)",
                 (unsigned long long)e->skipped, e->skipped == 1 ? "" : "s");
    run_progress_say(&s->prog, "eval epoch %u step %llu: loss %.4f  top-1 %.2f%%  top-5 %.2f%%%s%s",
                     e->epoch, (unsigned long long)e->step, e->loss, e->top1, e->top5,
                     e->best > 0 ? "  (best so far: best.safetensors)" : "", held);
    if (e->best > 0) s->best_top1 = e->top1, s->best_epoch = e->epoch;
    s->evaluated_step = e->step;
    s->evaluations++;
}

static void evaluator_metrics(Sup *s, const ProtoMetrics *m) {
    RunEval *e = &s->ev;
    double v;
    if (metric(m, "top1", &e->top1)) {
        e->epoch = m->epoch, e->step = m->step;
        metric(m, "loss", &e->loss), metric(m, "top5", &e->top5), metric(m, "best", &e->best);
        if (metric(m, "classes", &v) && (int)v != e->classes && eval_classes(s, (int)v))
            drop(s, "reports", "an evaluation with an impossible class count");
        if (e->classes) memset(e->confusion, 0, (size_t)e->classes * e->classes * 8);
        return;
    }
    if (metric(m, "eval_done", &v)) return eval_done(s);
    for (uint32_t i = 0; i < m->count; i++) {
        char name[PROTO_MAX_METRIC_NAME + 1];
        int a, b, n = 0;
        snprintf(name, sizeof name, "%.*s", (int)m->items[i].name.len, m->items[i].name.ptr);
        if (sscanf(name, "class_acc.%d%n", &a, &n) == 1 && !name[n] && a >= 0 && a < e->classes)
            e->class_acc[a] = m->items[i].value;
        else if (sscanf(name, "cm.%d.%d%n", &a, &b, &n) == 2 && !name[n] && a >= 0 &&
                 b >= 0 && a < e->classes && b < e->classes && m->items[i].value >= 0)
            e->confusion[(size_t)a * e->classes + b] = (uint64_t)m->items[i].value;
        else
            drop(s, "reports", "an evaluator metric out of range");
    }
}

static const char *role_name(uint32_t role) {
    static const char *const names[] = {"stoker-run", "stoker-loader", "stoker-train", "stoker-eval"};
    return role < PROTO_ROLE_COUNT ? names[role] : "unknown";
}

static void one_report(Sup *s, const ProtoMsg *m) {
    char path[PROTO_MAX_PATH + 1], text[PROTO_MAX_TEXT + 1];
    switch (m->type) {
    case PROTO_METRICS:
        if (m->u.metrics.role == PROTO_ROLE_TRAINER) trainer_metrics(s, &m->u.metrics);
        else if (m->u.metrics.role == PROTO_ROLE_EVALUATOR) evaluator_metrics(s, &m->u.metrics);
        return; /* loaders' per-epoch figures: in their own log lines, not the run's */
    case PROTO_BAD_FILE:
        snprintf(path, sizeof path, "%.*s", (int)m->u.bad_file.path.len, m->u.bad_file.path.ptr);
        snprintf(text, sizeof text, "%.*s", (int)m->u.bad_file.reason.len, m->u.bad_file.reason.ptr);
        run_dir_bad_file(&s->dir, m->u.bad_file.loader, m->u.bad_file.sample_id, path, text);
        return;
    case PROTO_ERROR:
        run_progress_say(&s->prog, "stoker-run: %s %u reports: %.*s", role_name(m->u.error.role),
                         m->u.error.id, (int)m->u.error.text.len, m->u.error.text.ptr);
        return;
    case PROTO_HEARTBEAT: { /* a death is seen by waitpid; a hang by missing heartbeats */
        const ProtoHeartbeat *h = &m->u.heartbeat;
        int slot = h->role == PROTO_ROLE_TRAINER && h->id < (uint32_t)s->gpus
                       ? run_ranks_trainer_slot((int)h->id, s->workers) :
                   h->role == PROTO_ROLE_TRAINER ? -1 :
                   h->role == PROTO_ROLE_EVALUATOR ? RUN_EVALUATOR_SLOT :
                   h->role == PROTO_ROLE_LOADER && h->id < (uint32_t)s->workers
                       ? RUN_FIRST_LOADER + (int)h->id : -1;
        if (slot >= 0 && s->procs.p[slot].pid == (pid_t)h->pid)
            s->procs.p[slot].heard_ms = run_now_ms();
        return;
    }
    default:
        drop(s, "reports", proto_type_name(m->type));
    }
}

static void one_notice(Sup *s, const ProtoMsg *m) {
    if (m->type != PROTO_CHECKPOINT) return drop(s, "checkpoints", proto_type_name(m->type));
    s->final_step = m->u.checkpoint.step;
    s->final_epoch = m->u.checkpoint.epoch;
    s->have_notice = 1;
    /* a notice seen after its own evaluation's report (both were waiting) is not pending */
    uint64_t st = m->u.checkpoint.step;
    if ((!s->evaluations || st > s->evaluated_step) && (!s->npending || st > s->pending[s->npending - 1])) {
        if (s->npending == RUN_PENDING_NOTICES) {
            memmove(s->pending, s->pending + 1, sizeof *s->pending * (RUN_PENDING_NOTICES - 1));
            s->npending--, s->pending_lost++;
        }
        s->pending[s->npending++] = st;
    }
    snprintf(s->final_path, sizeof s->final_path, "%.*s", (int)m->u.checkpoint.path.len,
             m->u.checkpoint.path.ptr);
}

void run_reports_drain(Sup *s) {
    void *socks[2] = {s->pull, s->notices};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 10000; i++) { /* bounded: the loop must get back to its children */
            ProtoRecv r;
            StkErr err;
            int rc = proto_recv(socks[k], &r, ZMQ_DONTWAIT, &err);
            if (rc == PROTO_AGAIN || rc == PROTO_FAIL) break;
            if (rc == PROTO_BAD) {
                drop(s, k ? "checkpoints" : "reports", err.msg);
                continue;
            }
            if (k) one_notice(s, &r.msg);
            else one_report(s, &r.msg);
            proto_recv_release(&r);
        }
}
