/* run_dir.c: the run directory's files (see run_dir.h); JSON through jansson. */
#include "run_dir.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* mkdir -p */
static int make_dirs(const char *path, StkErr *err) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        char c = *p;
        if (c != '/' && c) continue;
        *p = 0;
        if (mkdir(buf, 0755) && errno != EEXIST)
            return stk_errf(err, "mkdir %s: %s", buf, strerror(errno));
        *p = c;
        if (!c) return 0;
    }
}

static FILE *open_append(const RunDir *d, const char *name, StkErr *err) {
    char p[4200];
    snprintf(p, sizeof p, "%s/%s", d->path, name);
    FILE *f = fopen(p, "a");
    if (!f) stk_errf(err, "open %s: %s", p, strerror(errno));
    return f;
}

static double mono_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

int run_dir_open(RunDir *d, const char *path, StkErr *err) {
    *d = (RunDir){0};
    d->t0 = mono_s();
    snprintf(d->path, sizeof d->path, "%s", path);
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/checkpoints", path);
    if (make_dirs(sub, err)) return -1;
    snprintf(sub, sizeof sub, "%s/plots", path);
    if (make_dirs(sub, err)) return -1;
    if (!(d->jsonl = open_append(d, "metrics.jsonl", err)) ||
        !(d->csv = open_append(d, "metrics.csv", err)) ||
        !(d->bad = open_append(d, "bad_files.log", err))) {
        run_dir_close(d);
        return -1;
    }
    if (ftell(d->csv) == 0)
        fprintf(d->csv, "kind,epoch,step,loss,lr,images_per_s,input_wait,top1,top5\n");
    fflush(d->csv);
    return 0;
}

void run_dir_close(RunDir *d) {
    FILE *f[3] = {d->jsonl, d->csv, d->bad};
    for (int i = 0; i < 3; i++)
        if (f[i]) fclose(f[i]);
    d->jsonl = d->csv = d->bad = NULL;
}

int run_dir_config(RunDir *d, void *json, StkErr *err) {
    char p[4200];
    snprintf(p, sizeof p, "%s/config.json", d->path);
    int rc = json_dump_file(json, p, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(json);
    return rc ? stk_errf(err, "write %s failed", p) : 0;
}

/* Writes one object as a line, with the run's wall time last, and frees it. */
static void line(RunDir *d, json_t *o) {
    json_object_set_new(o, "wall_s", json_real(round((mono_s() - d->t0) * 1000) / 1000));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s) fprintf(d->jsonl, "%s\n", s), fflush(d->jsonl);
    free(s);
    json_decref(o);
}

static json_t *record(const char *kind, uint32_t epoch, uint64_t step) {
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string(kind));
    json_object_set_new(o, "epoch", json_integer(epoch));
    json_object_set_new(o, "step", json_integer((json_int_t)step));
    return o;
}

void run_dir_train(RunDir *d, uint32_t epoch, uint64_t step, double loss, double lr,
                   double images_per_s, double input_wait) {
    json_t *o = record("train", epoch, step);
    json_object_set_new(o, "loss", json_real(loss));
    json_object_set_new(o, "lr", json_real(lr));
    json_object_set_new(o, "images_per_s", json_real(images_per_s));
    json_object_set_new(o, "input_wait", json_real(input_wait));
    line(d, o);
    fprintf(d->csv, "train,%u,%llu,%.6g,%.6g,%.6g,%.6g,,\n", epoch, (unsigned long long)step,
            loss, lr, images_per_s, input_wait);
    fflush(d->csv);
}

void run_dir_unevaluated(RunDir *d, uint32_t epoch, uint64_t step, const char *path,
                         const char *why) {
    json_t *o = record("unevaluated", epoch, step);
    json_object_set_new(o, "checkpoint", json_string(path));
    json_object_set_new(o, "why", json_string(why));
    line(d, o);
}

void run_dir_epoch(RunDir *d, uint32_t epoch, uint64_t step, const char *const *names,
                   const double *values, int n) {
    json_t *o = record("epoch", epoch, step);
    for (int i = 0; i < n; i++) json_object_set_new(o, names[i], json_real(values[i]));
    line(d, o);
}

static void write_confusion(RunDir *d, const RunEval *e) {
    char p[4200], tmp[4300];
    snprintf(p, sizeof p, "%s/confusion.csv", d->path);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    for (int i = 0; i < e->classes; i++)
        for (int j = 0; j < e->classes; j++)
            fprintf(f, "%llu%c", (unsigned long long)e->confusion[(size_t)i * e->classes + j],
                    j + 1 < e->classes ? ',' : '\n');
    if (fclose(f) == 0) rename(tmp, p);
    else unlink(tmp);
}

void run_dir_eval(RunDir *d, const RunEval *e) {
    json_t *o = record("eval", e->epoch, e->step);
    json_object_set_new(o, "loss", json_real(e->loss));
    json_object_set_new(o, "top1", json_real(e->top1));
    json_object_set_new(o, "top5", json_real(e->top5));
    json_object_set_new(o, "best", json_boolean(e->best > 0));
    json_object_set_new(o, "skipped", json_integer((json_int_t)e->skipped));
    json_t *pc = json_array();
    for (int c = 0; c < e->classes; c++)
        json_array_append_new(pc, e->class_acc[c] < 0 ? json_null() : json_real(e->class_acc[c]));
    json_object_set_new(o, "per_class", pc);
    line(d, o);
    fprintf(d->csv, "eval,%u,%llu,%.6g,,,,%.6g,%.6g\n", e->epoch, (unsigned long long)e->step,
            e->loss, e->top1, e->top5);
    fflush(d->csv);
    if (e->classes) write_confusion(d, e);
}

void run_dir_bad_file(RunDir *d, uint32_t loader, uint64_t sample, const char *path,
                      const char *reason) {
    fprintf(d->bad, "loader %u: sample %llu: %s: %s\n", loader, (unsigned long long)sample, path,
            reason);
    fflush(d->bad);
}
