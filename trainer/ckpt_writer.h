/* ckpt_writer.h: checkpoints written by a thread while training goes on. A save copies
 * the host state (weights, batch-norm counters, optimizer state, metadata) into the
 * writer's one snapshot and returns; the thread writes the checkpoint and its training
 * state beside it (st_write: temp + fsync + rename, so a kill mid-write leaves the
 * previous files). Written in the loop, two fsynced files a epoch stopped the GPU: 0.13 to
 * 0.19 s after every 0.4 to 0.67 s Fashion-MNIST epoch on the H200 test machine.
 *
 * One snapshot: a save while the previous write is in progress waits for it, so the host
 * holds one extra copy of the state, never a queue. The outcome is collected on the
 * caller's thread (ckpt_writer_poll), where it is announced: ZeroMQ sockets are not
 * thread-safe, and an evaluator must not hear of a file before it is complete. */
#ifndef CKPT_WRITER_H
#define CKPT_WRITER_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "st_file.h"
#include "stk_err.h"

#define CKPT_WRITER_META 24    /* metadata entries of one checkpoint, at most */
#define CKPT_WRITER_META_CHARS 8192

/* Turns the raw snapshot (ckpt_writer_raw) into what is written, on the writer's thread. */
typedef void (*CkptLayoutFn)(void *ctx, const float *raw_params, const float *raw_state,
                             float *params, float *state);

/* What a save writes: the checkpoint at path (params of m->total_floats, nbt of m->nbn,
 * meta) and the training state at state_path (state_floats optimizer floats, state_meta).
 * Everything is copied; the caller may change it as soon as ckpt_writer_save returns.
 * params and state NULL: they are in the raw buffers ckpt_writer_raw handed out, and
 * layout (with layout_ctx, which must stay valid until the write is collected) makes
 * them on the thread: the training thread only fills the raw buffers. */
typedef struct CkptSave {
    const char *path, *state_path;
    const float *params;
    const int64_t *nbt;
    const float *state;
    const StMeta *meta, *state_meta;
    size_t meta_count, state_meta_count;
    uint32_t epoch;       /* for the announcement */
    uint64_t steps;
    int final;            /* the run's last checkpoint: passed on in CkptDone */
    CkptLayoutFn layout;  /* with params and state NULL */
    void *layout_ctx;
} CkptSave;

/* A finished write. */
typedef struct CkptDone {
    char path[PATH_MAX + 64];
    uint32_t epoch;
    uint64_t steps;
    int final;            /* CkptSave's */
    int rc;               /* 0 written; -1: msg says what was not */
    char msg[STK_ERR_LEN + 64];
} CkptDone;

typedef struct CkptWriter {
    const Model *m;
    uint64_t state_floats;
    float *params, *state;  /* the snapshot */
    float *raw_params, *raw_state; /* ckpt_writer_raw's buffers, made on first use */
    CkptLayoutFn layout;    /* set: the thread first makes params/state from raw_* */
    void *layout_ctx;
    int64_t *nbt;
    char path[PATH_MAX + 64], state_path[PATH_MAX + 96];
    StMeta meta[CKPT_WRITER_META], state_meta[CKPT_WRITER_META];
    size_t meta_count, state_meta_count;
    char chars[CKPT_WRITER_META_CHARS]; /* the metadata's strings */
    CkptDone done;
    int busy;               /* a snapshot is taken and not written yet */
    int finished;           /* done holds an outcome not yet collected */
    int quit;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} CkptWriter;

/* For model m (not copied: it must outlive the writer) and state_floats optimizer floats;
 * starts the thread. 0 or -1 + err. */
int ckpt_writer_init(CkptWriter *w, const Model *m, uint64_t state_floats, StkErr *err);

/* Waits for a write in progress and hands out the raw snapshot buffers (m->total_floats
 * and state_floats floats) for the caller to fill, then to ckpt_writer_save with params
 * and state NULL and a layout. -1 + err: an outcome not collected, or out of memory. */
int ckpt_writer_raw(CkptWriter *w, float **params, float **state, StkErr *err);

/* Waits for a write in progress (its outcome stays to be collected: collect it first
 * with ckpt_writer_poll(w, 1, ...) to announce it), then takes s and hands it to the
 * thread. -1 + err (nothing taken) for metadata beyond the limits above or an outcome not
 * collected. */
int ckpt_writer_save(CkptWriter *w, const CkptSave *s, StkErr *err);

/* 1 and *out when a write finished since the last call, 0 when none did; wait: first
 * waits for a write in progress. */
int ckpt_writer_poll(CkptWriter *w, int wait, CkptDone *out);

/* Waits for a write in progress, stops the thread, frees the snapshot. */
void ckpt_writer_free(CkptWriter *w);

#endif
