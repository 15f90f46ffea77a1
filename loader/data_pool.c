/* data_pool.c: pthreads over an atomic job counter; per-thread TurboJPEG state. */
#include "data_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "data_tree.h"

/* State shared by the threads of one run. */
typedef struct Pool {
    const DataPoolSpec *spec; /* what to run */
    atomic_uint_fast64_t next;/* next job number to hand out */
    atomic_uint_fast64_t done;/* jobs finished */
    atomic_int failed;        /* set by the first failure: others stop */
    pthread_mutex_t lock;     /* guards err */
    StkErr err;               /* the first failure */
} Pool;

/* Thread arguments: the pool and this thread's number. */
typedef struct PoolThread {
    Pool *pool;       /* shared state */
    int thread;       /* 0 .. threads-1 */
    pthread_t id;     /* for join */
} PoolThread;

int data_pool_default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) return 1;
    return n > DATA_POOL_MAX_THREADS ? DATA_POOL_MAX_THREADS : (int)n;
}

/* Records the first failure and tells the other threads to stop. */
static void pool_fail(Pool *p, const StkErr *e) {
    pthread_mutex_lock(&p->lock);
    if (!atomic_load(&p->failed)) p->err = *e;
    atomic_store(&p->failed, 1);
    pthread_mutex_unlock(&p->lock);
}

/* Makes the worker's compressor and buffers. */
static int worker_init(DataWorker *w, const DataPoolSpec *s, int thread, StkErr *err) {
    memset(w, 0, sizeof *w);
    w->thread = thread;
    if (!(w->tj = tjInitCompress()))
        return stk_errf(err, "tjInitCompress: %s", tjGetErrorStr2(NULL));
    w->jpeg_cap = tjBufSize(s->max_width, s->max_height, TJSAMP_444);
    if (w->jpeg_cap == (unsigned long)-1)
        return stk_errf(err, "tjBufSize %dx%d: %s", s->max_width, s->max_height,
                        tjGetErrorStr2(NULL));
    w->jpeg = tjAlloc((int)w->jpeg_cap);
    w->pixels = malloc(s->pixel_bytes ? s->pixel_bytes : 1);
    if (!w->jpeg || !w->pixels) return stk_errf(err, "worker buffers: out of memory");
    return 0;
}

static void worker_free(DataWorker *w) {
    if (w->tj) tjDestroy(w->tj);
    tjFree(w->jpeg);
    free(w->pixels);
    memset(w, 0, sizeof *w);
}

static void *pool_thread(void *arg) {
    PoolThread *t = arg;
    Pool *p = t->pool;
    const DataPoolSpec *s = p->spec;
    DataWorker w;
    StkErr err = {{0}};
    if (worker_init(&w, s, t->thread, &err) != 0) pool_fail(p, &err);
    while (!atomic_load(&p->failed)) {
        uint64_t job = atomic_fetch_add(&p->next, 1);
        if (job >= s->jobs) break;
        if (s->fn(s->ctx, &w, job, &err) != 0) {
            pool_fail(p, &err);
            break;
        }
        atomic_fetch_add(&p->done, 1);
    }
    worker_free(&w);
    return NULL;
}

/* Waits for the jobs to finish, reporting progress about once a second. */
static void pool_wait(Pool *p) {
    const DataPoolSpec *s = p->spec;
    struct timespec tick = {0, 100 * 1000 * 1000}, last, now;
    clock_gettime(CLOCK_MONOTONIC, &last);
    while (atomic_load(&p->done) < s->jobs && !atomic_load(&p->failed)) {
        nanosleep(&tick, NULL);
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (s->progress && now.tv_sec > last.tv_sec) {
            s->progress(s->progress_ctx, atomic_load(&p->done), s->jobs);
            last = now;
        }
    }
}

int data_pool_run(const DataPoolSpec *spec, StkErr *err) {
    if (spec->threads < 1 || spec->threads > DATA_POOL_MAX_THREADS)
        return stk_errf(err, "thread count %d out of range [1, %d]", spec->threads,
                        DATA_POOL_MAX_THREADS);
    Pool p = {.spec = spec};
    atomic_init(&p.next, 0);
    atomic_init(&p.done, 0);
    atomic_init(&p.failed, 0);
    pthread_mutex_init(&p.lock, NULL);
    PoolThread *threads = calloc((size_t)spec->threads, sizeof *threads);
    if (!threads) return stk_errf(err, "thread table: out of memory");
    int started = 0;
    for (; started < spec->threads; started++) {
        threads[started] = (PoolThread){.pool = &p, .thread = started};
        int e = pthread_create(&threads[started].id, NULL, pool_thread, &threads[started]);
        if (e != 0) {
            StkErr te;
            stk_errf(&te, "pthread_create: %s", strerror(e));
            pool_fail(&p, &te);
            break;
        }
    }
    pool_wait(&p);
    for (int i = 0; i < started; i++) pthread_join(threads[i].id, NULL);
    free(threads);
    pthread_mutex_destroy(&p.lock);
    if (atomic_load(&p.failed)) return stk_errf(err, "%s", p.err.msg);
    if (spec->progress) spec->progress(spec->progress_ctx, spec->jobs, spec->jobs);
    return 0;
}

int data_pool_encode_jpeg(DataWorker *w, const uint8_t *pixels, const char *what, int width,
                          int height, int pf, int subsamp, int quality, unsigned long *size,
                          StkErr *err) {
    unsigned long n = w->jpeg_cap;
    if (tjCompress2(w->tj, pixels, width, 0, height, pf, &w->jpeg, &n, subsamp, quality,
                    TJFLAG_NOREALLOC) != 0)
        return stk_errf(err, "tjCompress2 %s: %s", what, tjGetErrorStr2(w->tj));
    *size = n;
    return 0;
}

int data_pool_write_jpeg(DataWorker *w, const uint8_t *pixels, const char *path, int width,
                         int height, int pf, int subsamp, int quality, unsigned long *size,
                         StkErr *err) {
    unsigned long n;
    if (data_pool_encode_jpeg(w, pixels, path, width, height, pf, subsamp, quality, &n, err))
        return -1;
    if (size) *size = n;
    return data_tree_write_file(path, w->jpeg, n, err);
}
