/* data_pool.h: runs independent image jobs on a few threads, each thread owning one
 * TurboJPEG compressor and its buffers, made once (no allocation per image).
 *
 * Jobs are handed out dynamically; a job's output must depend on its number only, so
 * results are identical for any thread count. The first failing job stops the rest. */
#ifndef DATA_POOL_H
#define DATA_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <turbojpeg.h>

#include "stk_err.h"

#define DATA_POOL_MAX_THREADS 256

typedef struct DataWorker {
    tjhandle tj;            /* compressor of this thread */
    uint8_t *pixels;        /* [pixel_bytes] scratch image a job renders into */
    unsigned char *jpeg;    /* [jpeg_cap] compressed output (TJFLAG_NOREALLOC) */
    unsigned long jpeg_cap; /* worst-case JPEG size of the largest image */
    int thread;             /* 0 .. threads-1 */
} DataWorker;

/* One job: fills or uses w's buffers, writes its file. Returns 0, or -1 with err. */
typedef int (*DataJobFn)(void *ctx, DataWorker *w, uint64_t job, StkErr *err);

/* Called from the starting thread about once a second while jobs run. */
typedef void (*DataProgressFn)(void *ctx, uint64_t done, uint64_t total);

typedef struct DataPoolSpec {
    int threads;             /* 1 .. DATA_POOL_MAX_THREADS */
    uint64_t jobs;           /* job numbers 0 .. jobs-1 */
    size_t pixel_bytes;      /* bytes of each worker's pixels buffer */
    int max_width;           /* largest image, for the JPEG buffer */
    int max_height;          /* largest image, for the JPEG buffer */
    DataJobFn fn;            /* the job */
    void *ctx;               /* passed to fn */
    DataProgressFn progress; /* may be NULL */
    void *progress_ctx;      /* passed to progress */
} DataPoolSpec;

/* Runs every job. Returns 0, or -1 with err holding the first failure (a job's message,
 * or the thread or TurboJPEG set-up that failed). */
int data_pool_run(const DataPoolSpec *spec, StkErr *err);

/* Compresses pixels as data_pool_write_jpeg does into w->jpeg, *size bytes, without
 * writing them. Returns 0, or -1 with err (what names the image). */
int data_pool_encode_jpeg(DataWorker *w, const uint8_t *pixels, const char *what, int width,
                          int height, int pf, int subsamp, int quality, unsigned long *size,
                          StkErr *err);

/* Compresses pixels (width x height, TJPF_* pixel format pf, TJSAMP_* subsamp,
 * quality 1..100; often w->pixels) into w->jpeg and writes it to path (created; must
 * not exist). *size (may be NULL) receives the JPEG's bytes. Returns 0, or -1 with
 * err naming the file. */
int data_pool_write_jpeg(DataWorker *w, const uint8_t *pixels, const char *path, int width,
                         int height, int pf, int subsamp, int quality, unsigned long *size,
                         StkErr *err);

/* Returns the number of online CPUs (at least 1), the default thread count. */
int data_pool_default_threads(void);

#endif
