/* data_verify.c: a dataset's file list (index or scan), the bad-file list, and verify:
 * every file decoded in full by the loader's decoder on the data_pool threads. */
#include "data_verify.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loader_decode.h"

int data_files_open(DataFiles *f, const char *dir, StkErr *err) {
    memset(f, 0, sizeof *f);
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    if (len == 0 || len >= sizeof f->root) return stk_errf(err, "dataset \"%s\": empty or "
                                                           "too long", dir);
    memcpy(f->root, dir, len);
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", f->root, LOADER_INDEX_DEFAULT_NAME);
    struct stat st;
    if (stat(path, &st) == 0 || errno != ENOENT) {
        if (loader_index_open(&f->ix, path, err) != 0) return -1;
        const LoaderIndexHeader *h = f->ix.header;
        f->from_index = 1;
        f->count = h->num_samples[LOADER_TRAIN] + h->num_samples[LOADER_VAL];
        f->num_classes = h->num_classes;
        f->split_folder = h->split_mode == LOADER_SPLIT_FOLDER;
        f->val_fraction = h->val_fraction;
        f->seed = h->split_seed;
        return 0;
    }
    LoaderScanStats st_scan;
    if (loader_scan_run(&f->scan, f->root, NULL, &st_scan, err) != 0) return -1;
    f->count = f->scan.num_samples;
    f->num_classes = f->scan.num_classes;
    f->split_folder = st_scan.val_from_folder;
    f->val_fraction = st_scan.val_fraction;
    f->seed = st_scan.seed;
    return 0;
}

void data_files_close(DataFiles *f) {
    loader_index_close(&f->ix);
    loader_scan_free(&f->scan);
    memset(f, 0, sizeof *f);
}

const char *data_files_path(const DataFiles *f, uint64_t i, LoaderSplit *split) {
    if (i >= f->count) return NULL;
    if (!f->from_index) {
        if (split) *split = (LoaderSplit)f->scan.samples[i].split;
        return f->scan.samples[i].path;
    }
    uint64_t ntrain = loader_index_count(&f->ix, LOADER_TRAIN);
    LoaderSplit s = i < ntrain ? LOADER_TRAIN : LOADER_VAL;
    LoaderSample sample;
    if (loader_index_get(&f->ix, s, s == LOADER_TRAIN ? i : i - ntrain, &sample) != 0)
        return NULL;
    if (split) *split = s;
    return sample.path;
}

void data_bad_init(DataBadList *b) {
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->lock, NULL);
}

int data_bad_add(DataBadList *b, uint64_t sample, const char *path, const char *reason,
                 StkErr *err) {
    size_t n = strlen(path) + strlen(reason) + 3;
    char *text = malloc(n);
    if (!text) return stk_errf(err, "bad-file list: out of memory");
    snprintf(text, n, "%s: %s", path, reason);
    pthread_mutex_lock(&b->lock);
    if (b->count == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 64;
        DataBad *items = realloc(b->items, cap * sizeof *items);
        if (!items) {
            pthread_mutex_unlock(&b->lock);
            free(text);
            return stk_errf(err, "bad-file list: out of memory");
        }
        b->items = items;
        b->cap = cap;
    }
    b->items[b->count++] = (DataBad){sample, text};
    pthread_mutex_unlock(&b->lock);
    return 0;
}

static int bad_cmp(const void *a, const void *b) {
    uint64_t x = ((const DataBad *)a)->sample, y = ((const DataBad *)b)->sample;
    return (x > y) - (x < y);
}

void data_bad_sort(DataBadList *b) {
    if (b->count > 1) qsort(b->items, b->count, sizeof *b->items, bad_cmp);
}

void data_bad_free(DataBadList *b) {
    for (size_t i = 0; i < b->count; i++) free(b->items[i].text);
    free(b->items);
    pthread_mutex_destroy(&b->lock);
    memset(b, 0, sizeof *b);
}

/* One thread's decoder and full-size image buffer, made by its first job. */
typedef struct VerifyThread {
    LoaderDecoder dec;  /* the loader's decoder */
    int ready;          /* dec was initialised */
    uint8_t *image;     /* [image_cap] RGB of the largest image so far */
    size_t image_cap;   /* bytes allocated in image */
} VerifyThread;

/* Shared by the jobs of one run. */
typedef struct VerifyCtx {
    const DataFiles *files;   /* what to verify */
    uint64_t max_pixels;      /* decoder cap */
    VerifyThread *threads;    /* [opt->threads], indexed by DataWorker.thread */
    DataBadList *bad;         /* where bad files go */
} VerifyCtx;

/* Decodes the open image in full into t->image (grown to fit). Returns 0, or -1 with
 * err: the decoder's reason. *oom is set when our buffer could not be allocated. */
static int verify_decode(VerifyThread *t, int *oom, StkErr *err) {
    size_t need = (size_t)t->dec.width * (size_t)t->dec.height * 3;
    if (need > t->image_cap) {
        uint8_t *p = realloc(t->image, need);
        if (!p) {
            *oom = 1;
            return stk_errf(err, "image buffer: out of memory (%zu bytes)", need);
        }
        t->image = p;
        t->image_cap = need;
    }
    AugImage dst = {t->image, t->dec.width, t->dec.height, 3, (size_t)t->dec.width * 3};
    return loader_decode_full(&t->dec, &dst, err);
}

/* Job j: decode sample j; a failure is a bad file. */
static int verify_job(void *ctx, DataWorker *w, uint64_t job, StkErr *err) {
    VerifyCtx *c = ctx;
    VerifyThread *t = &c->threads[w->thread];
    if (!t->ready) {
        if (loader_decoder_init(&t->dec, c->max_pixels, err) != 0) return -1;
        t->ready = 1;
    }
    const char *rel = data_files_path(c->files, job, NULL);
    if (!rel) return stk_errf(err, "sample %llu: not in the index", (unsigned long long)job);
    char path[PATH_MAX];
    StkErr why;
    int oom = 0;
    if (snprintf(path, sizeof path, "%s/%s", c->files->root, rel) >= (int)sizeof path)
        return data_bad_add(c->bad, job, rel, "path too long", err);
    if (loader_decode_open(&t->dec, path, &why) == 0 && verify_decode(t, &oom, &why) == 0)
        return 0;
    if (oom) return stk_errf(err, "%s: %s", path, why.msg);
    return data_bad_add(c->bad, job, rel, why.msg, err);
}

int data_verify_run(const char *dir, const DataVerifyOptions *opt, DataVerifyResult *res,
                    StkErr *err) {
    memset(res, 0, sizeof *res);
    data_bad_init(&res->bad);
    DataFiles files;
    if (data_files_open(&files, dir, err) != 0) {
        data_files_close(&files);
        data_verify_result_free(res);
        return -1;
    }
    res->from_index = files.from_index;
    int threads = opt->threads;
    VerifyThread *ts = calloc(threads > 0 ? (size_t)threads : 1, sizeof *ts);
    VerifyCtx c = {.files = &files, .max_pixels = opt->max_pixels, .threads = ts,
                   .bad = &res->bad};
    DataPoolSpec spec = {.threads = threads, .jobs = files.count, .max_width = 1,
                         .max_height = 1, .fn = verify_job, .ctx = &c,
                         .progress = opt->progress, .progress_ctx = opt->progress_ctx};
    int rc = ts ? data_pool_run(&spec, err) : stk_errf(err, "thread state: out of memory");
    for (int i = 0; ts && i < threads; i++) {
        if (ts[i].ready) loader_decoder_free(&ts[i].dec);
        free(ts[i].image);
    }
    free(ts);
    uint64_t count = files.count;
    data_files_close(&files);
    if (rc != 0) {
        data_verify_result_free(res);
        return -1;
    }
    data_bad_sort(&res->bad);
    res->ok = count - res->bad.count;
    return 0;
}

void data_verify_result_free(DataVerifyResult *res) {
    data_bad_free(&res->bad);
    memset(res, 0, sizeof *res);
}
