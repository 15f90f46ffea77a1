/* ckpt_writer.c: the checkpoint thread (see ckpt_writer.h). */
#include "ckpt_writer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"

/* Writes the snapshot: the checkpoint, then the training state beside it. */
static void write_snapshot(CkptWriter *w, CkptDone *d) {
    StkErr err;
    d->rc = ckpt_save(w->path, w->m, w->params, w->nbt, w->meta, w->meta_count, &err);
    if (d->rc) {
        snprintf(d->msg, sizeof d->msg, "checkpoint not written: %s", err.msg);
        return;
    }
    uint64_t n = w->state_floats;
    StTensor t = {.name = "optimizer.state", .dtype = ST_F32, .ndim = 1, .shape = {(int64_t)n},
                  .data = w->state};
    d->rc = st_write(w->state_path, &t, n ? 1 : 0, w->state_meta, w->state_meta_count, &err);
    if (d->rc) snprintf(d->msg, sizeof d->msg, "training state not written: %s", err.msg);
}

static void *writer_main(void *arg) {
    CkptWriter *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->busy && !w->quit) pthread_cond_wait(&w->cv, &w->mu);
        if (!w->busy) break; /* quit, nothing left to write */
        pthread_mutex_unlock(&w->mu);
        /* the snapshot is the thread's while busy: no lock needed to read it */
        CkptDone d = {.epoch = w->done.epoch, .steps = w->done.steps, .final = w->done.final};
        snprintf(d.path, sizeof d.path, "%s", w->path);
        if (w->layout) w->layout(w->layout_ctx, w->raw_params, w->raw_state, w->params, w->state);
        write_snapshot(w, &d);
        pthread_mutex_lock(&w->mu);
        w->done = d;
        w->busy = 0, w->finished = 1;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int ckpt_writer_init(CkptWriter *w, const Model *m, uint64_t state_floats, StkErr *err) {
    memset(w, 0, sizeof *w);
    w->m = m, w->state_floats = state_floats;
    w->params = malloc((m->total_floats ? m->total_floats : 1) * sizeof *w->params);
    w->nbt = malloc((size_t)(m->nbn ? m->nbn : 1) * sizeof *w->nbt);
    w->state = malloc((state_floats ? state_floats : 1) * sizeof *w->state);
    if (!w->params || !w->nbt || !w->state) {
        free(w->params), free(w->nbt), free(w->state);
        return stk_errf(err, "checkpoint writer: out of memory for a %llu-float snapshot",
                        (unsigned long long)(m->total_floats + state_floats));
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    int rc = pthread_create(&w->thread, NULL, writer_main, w);
    if (rc) {
        pthread_mutex_destroy(&w->mu), pthread_cond_destroy(&w->cv);
        free(w->params), free(w->nbt), free(w->state);
        return stk_errf(err, "checkpoint writer: pthread_create: %s", strerror(rc));
    }
    return 0;
}

/* Copies n entries into dst, their strings into w->chars from *used; -1 when over. */
static int copy_meta(CkptWriter *w, StMeta *dst, const StMeta *src, size_t n, size_t *used) {
    if (n > CKPT_WRITER_META) return -1;
    for (size_t i = 0; i < n; i++) {
        const char *s[2] = {src[i].key, src[i].value};
        const char *out[2];
        for (int k = 0; k < 2; k++) {
            size_t len = strlen(s[k]) + 1;
            if (len > sizeof w->chars - *used) return -1;
            out[k] = memcpy(w->chars + *used, s[k], len);
            *used += len;
        }
        dst[i] = (StMeta){out[0], out[1]};
    }
    return 0;
}

/* Waits until the thread holds nothing; -1 + err if its last outcome is uncollected. */
static int idle(CkptWriter *w, StkErr *err) {
    pthread_mutex_lock(&w->mu);
    while (w->busy) pthread_cond_wait(&w->cv, &w->mu);
    int uncollected = w->finished;
    pthread_mutex_unlock(&w->mu);
    if (uncollected)
        return stk_errf(err, "checkpoint writer: %s's outcome was not collected", w->done.path);
    return 0;
}

int ckpt_writer_raw(CkptWriter *w, float **params, float **state, StkErr *err) {
    if (idle(w, err)) return -1;
    if (!w->raw_params) {
        w->raw_params = malloc((w->m->total_floats ? w->m->total_floats : 1) * sizeof *w->raw_params);
        w->raw_state = malloc((w->state_floats ? w->state_floats : 1) * sizeof *w->raw_state);
        if (!w->raw_params || !w->raw_state) {
            free(w->raw_params), free(w->raw_state);
            w->raw_params = w->raw_state = NULL;
            return stk_errf(err, "checkpoint writer: out of memory for a %llu-float raw snapshot",
                            (unsigned long long)(w->m->total_floats + w->state_floats));
        }
    }
    *params = w->raw_params, *state = w->raw_state;
    return 0;
}

int ckpt_writer_save(CkptWriter *w, const CkptSave *s, StkErr *err) {
    if (idle(w, err)) return -1;
    if (!s->params != !s->state || (!s->params && (!s->layout || !w->raw_params)))
        return stk_errf(err, "checkpoint writer: %s: give params and state, or fill "
                        "ckpt_writer_raw's buffers and give a layout", s->path);
    size_t used = 0;
    if (copy_meta(w, w->meta, s->meta, s->meta_count, &used) ||
        copy_meta(w, w->state_meta, s->state_meta, s->state_meta_count, &used))
        return stk_errf(err, "checkpoint writer: %zu + %zu metadata entries, more than %d each or "
                        "%d characters", s->meta_count, s->state_meta_count, CKPT_WRITER_META,
                        CKPT_WRITER_META_CHARS);
    if (snprintf(w->path, sizeof w->path, "%s", s->path) >= (int)sizeof w->path ||
        snprintf(w->state_path, sizeof w->state_path, "%s", s->state_path) >= (int)sizeof w->state_path)
        return stk_errf(err, "checkpoint writer: path too long: %s", s->path);
    w->meta_count = s->meta_count, w->state_meta_count = s->state_meta_count;
    w->layout = s->params ? NULL : s->layout, w->layout_ctx = s->layout_ctx;
    if (s->params) {
        memcpy(w->params, s->params, w->m->total_floats * sizeof *w->params);
        if (w->state_floats) memcpy(w->state, s->state, w->state_floats * sizeof *w->state);
    }
    memcpy(w->nbt, s->nbt, (size_t)w->m->nbn * sizeof *w->nbt);
    pthread_mutex_lock(&w->mu);
    w->done.epoch = s->epoch, w->done.steps = s->steps, w->done.final = s->final;
    w->busy = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int ckpt_writer_poll(CkptWriter *w, int wait, CkptDone *out) {
    pthread_mutex_lock(&w->mu);
    while (wait && w->busy) pthread_cond_wait(&w->cv, &w->mu);
    int got = w->finished;
    if (got) *out = w->done, w->finished = 0;
    pthread_mutex_unlock(&w->mu);
    return got;
}

void ckpt_writer_free(CkptWriter *w) {
    if (!w->params) return;
    pthread_mutex_lock(&w->mu);
    w->quit = 1; /* the thread writes what it holds first */
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu), pthread_cond_destroy(&w->cv);
    free(w->params), free(w->nbt), free(w->state), free(w->raw_params), free(w->raw_state);
    w->params = w->raw_params = w->raw_state = NULL;
}
