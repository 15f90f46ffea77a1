/* data_verify.h: `stoker-data verify`: decode every file of a dataset in full, through
 * the loader's own decoder (loader_decode.h) and pixel cap, on a thread pool, and list
 * the files the loader would skip, in index order.
 *
 * Also the two pieces `stoker-data shrink` (data_shrink.h) shares with it:
 *   DataFiles    a dataset's samples: DIR/stoker.index if it exists, else a scan of DIR
 *                done as `stoker-data index` does it, kept in memory (nothing written);
 *   DataBadList  bad files collected from many threads, sorted into index order at the
 *                end, so the report is the same for any thread count.
 * Sample paths are relative to the dataset root and are always opened under DIR as
 * given, even if the index recorded another root (a tree that was moved). */
#ifndef DATA_VERIFY_H
#define DATA_VERIFY_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "data_pool.h"
#include "loader_index.h"
#include "loader_scan.h"
#include "stk_err.h"

/* ---- DataFiles: the samples of a dataset ---- */

typedef struct DataFiles {
    char root[PATH_MAX];    /* DIR as given, without trailing '/': paths are under it */
    int from_index;         /* 1: read from DIR/stoker.index; 0: scanned, not written */
    LoaderIndex ix;         /* the open index (from_index) */
    LoaderScan scan;        /* the scan (!from_index) */
    uint64_t count;         /* samples, train then val: sample i is 0 <= i < count */
    uint32_t num_classes;   /* classes */
    int split_folder;       /* 1: val came from DIR/val; 0: hash split of train/ */
    double val_fraction;    /* hash split: its fraction */
    uint64_t seed;          /* hash split: its seed */
} DataFiles;

/* Opens dir's samples: dir/stoker.index when it exists (it must then be valid), else a
 * fresh scan of dir (loader_scan_run with default options). Returns 0, or -1 with err
 * (no such dir, no train/, an invalid index, ...). Close with data_files_close, which
 * is also safe after a failure. */
int data_files_open(DataFiles *f, const char *dir, StkErr *err);

void data_files_close(DataFiles *f);

/* Returns sample i's path relative to f->root (owned by f), or NULL if i >= count.
 * split (may be NULL) receives its LoaderSplit. */
const char *data_files_path(const DataFiles *f, uint64_t i, LoaderSplit *split);

/* ---- DataBadList: bad files, reported from any thread ---- */

typedef struct DataBad {
    uint64_t sample; /* the file's sample number in its DataFiles */
    char *text;      /* "PATH: REASON" (malloc'd) */
} DataBad;

typedef struct DataBadList {
    pthread_mutex_t lock; /* guards the fields below while jobs run */
    DataBad *items;       /* [count]; in index order after data_bad_sort */
    size_t count;         /* entries used */
    size_t cap;           /* entries allocated */
} DataBadList;

void data_bad_init(DataBadList *b);

/* Adds "path: reason" for sample; thread-safe. Returns 0, or -1 with err (out of
 * memory). */
int data_bad_add(DataBadList *b, uint64_t sample, const char *path, const char *reason,
                 StkErr *err);

/* Sorts the entries by sample number (index order: train, then val). */
void data_bad_sort(DataBadList *b);

/* Frees every entry and zeroes the list; safe on a zeroed list. */
void data_bad_free(DataBadList *b);

/* ---- verify ---- */

typedef struct DataVerifyOptions {
    int threads;             /* worker threads, 1..DATA_POOL_MAX_THREADS */
    uint64_t max_pixels;     /* decoder's pixel cap; 0: LOADER_DEFAULT_MAX_PIXELS */
    DataProgressFn progress; /* may be NULL */
    void *progress_ctx;      /* passed to progress */
} DataVerifyOptions;

typedef struct DataVerifyResult {
    uint64_t ok;       /* files that decoded */
    DataBadList bad;   /* files that did not, in index order; bad.count of them */
    int from_index;    /* 1: DIR/stoker.index was read; 0: DIR was scanned */
} DataVerifyResult;

/* Decodes every sample of dir (data_files_open) in full with one LoaderDecoder per
 * thread (loader_decode_open + loader_decode_full, buffers reused). A file that fails
 * to read or decode is a bad file, not an error. Returns 0 with res filled (free it
 * with data_verify_result_free), or -1 with err when the dataset cannot be opened or a
 * thread cannot be set up (res is then empty). */
int data_verify_run(const char *dir, const DataVerifyOptions *opt, DataVerifyResult *res,
                    StkErr *err);

void data_verify_result_free(DataVerifyResult *res);

#endif
