/* data_shrink.c: copy or re-encode every file of a dataset on the data_pool threads,
 * into a partial tree renamed into place at the end (see data_shrink.h). */
#include "data_shrink.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <turbojpeg.h>

#include "data_restart.h"
#include "data_tree.h"
#include "loader_decode.h"
#include "loader_index.h"

/* One thread's decoder, made by its first job. */
typedef struct ShrinkThread {
    LoaderDecoder dec; /* the loader's decoder */
    int ready;         /* dec was initialised */
} ShrinkThread;

/* Shared by the jobs of one run. */
typedef struct ShrinkCtx {
    const DataFiles *files;           /* SRC's samples */
    const DataShrinkOptions *opt;     /* the build */
    const char *partial;              /* the directory being filled */
    ShrinkThread *threads;            /* [opt->threads], indexed by DataWorker.thread */
    DataBadList *bad;                 /* files left out */
    atomic_uint_fast64_t copied;      /* files copied */
    atomic_uint_fast64_t shrunk;      /* files re-encoded */
    atomic_uint_fast64_t bytes_in;    /* their bytes in SRC */
    atomic_uint_fast64_t bytes_out;   /* their bytes in DST */
} ShrinkCtx;

void data_shrink_size(int w, int h, int max_side, int *ow, int *oh) {
    int lng = w > h ? w : h, shrt = w > h ? h : w;
    if (lng <= max_side) {
        *ow = w;
        *oh = h;
        return;
    }
    uint64_t s = ((uint64_t)shrt * (uint64_t)max_side * 2 + (uint64_t)lng) / (2 * (uint64_t)lng);
    int so = s < 1 ? 1 : (int)s;
    *ow = w > h ? max_side : so;
    *oh = w > h ? so : max_side;
}

/* Writes the JPEG in (n bytes) to dst_path, first rewritten with restart markers when
 * the run asks for them; *written: the bytes written. Returns 1 for a file the rewrite
 * refuses (reason in why), 0 when written, -1 with err on failure. */
static int write_out(ShrinkCtx *c, const uint8_t *in, size_t n, const char *dst_path,
                     size_t *written, StkErr *why, StkErr *err) {
    if (!c->opt->restart) {
        *written = n;
        return data_tree_write_file(dst_path, in, n, err) != 0 ? -1 : 0;
    }
    uint8_t *out;
    size_t len;
    if (data_restart_jpeg(in, n, DATA_RESTART_INTERVAL, &out, &len, why) != 0) return 1;
    int rc = data_tree_write_file(dst_path, out, len, err) != 0 ? -1 : 0;
    free(out);
    *written = len;
    return rc;
}

/* Checks the open image by a full decode into w->pixels (it fits: both sides are at
 * most max_side) and writes the file's bytes, already in the decoder, to dst_path.
 * Returns 1 for a bad file (reason in why), 0 when copied, -1 with err on failure. */
static int shrink_copy(ShrinkCtx *c, DataWorker *w, LoaderDecoder *d, const char *dst_path,
                       StkErr *why, StkErr *err) {
    AugImage img = {w->pixels, d->width, d->height, 3, (size_t)d->width * 3};
    if (loader_decode_full(d, &img, why) != 0) return 1;
    size_t written;
    int rc = write_out(c, d->file, d->file_len, dst_path, &written, why, err);
    if (rc) return rc;
    atomic_fetch_add(&c->copied, 1);
    atomic_fetch_add(&c->bytes_in, d->file_len);
    atomic_fetch_add(&c->bytes_out, written);
    return 0;
}

/* Decodes the open image to its shrunk size and encodes it to dst_path. Returns 1 for
 * a bad file (reason in why), 0 when written, -1 with err on failure. */
static int shrink_encode(ShrinkCtx *c, DataWorker *w, LoaderDecoder *d, const char *dst_path,
                         StkErr *why, StkErr *err) {
    int ow, oh, gray = d->components == 1;
    size_t in_bytes = d->file_len;
    data_shrink_size(d->width, d->height, c->opt->max_side, &ow, &oh);
    LoaderCropSpec spec = {.box = {0, 0, d->width, d->height}, .out_w = ow, .out_h = oh};
    AugImage img = {w->pixels, ow, oh, 3, (size_t)ow * 3};
    if (loader_decode_crop(d, &spec, &img, why) != 0) return 1;
    if (gray) /* R = G = B: keep one channel, in place (i <= 3i) */
        for (size_t i = 0, n = (size_t)ow * oh; i < n; i++) w->pixels[i] = w->pixels[3 * i];
    unsigned long size;
    if (data_pool_encode_jpeg(w, w->pixels, dst_path, ow, oh, gray ? TJPF_GRAY : TJPF_RGB,
                              gray ? TJSAMP_GRAY : TJSAMP_420, c->opt->quality, &size, err) != 0)
        return -1;
    size_t written;
    int rc = write_out(c, w->jpeg, size, dst_path, &written, why, err);
    if (rc) return rc;
    atomic_fetch_add(&c->shrunk, 1);
    atomic_fetch_add(&c->bytes_in, in_bytes);
    atomic_fetch_add(&c->bytes_out, written);
    return 0;
}

/* Job j: sample j of SRC, copied, shrunk, or listed as bad. */
static int shrink_job(void *ctx, DataWorker *w, uint64_t job, StkErr *err) {
    ShrinkCtx *c = ctx;
    ShrinkThread *t = &c->threads[w->thread];
    if (!t->ready) {
        if (loader_decoder_init(&t->dec, c->opt->max_pixels, err) != 0) return -1;
        t->ready = 1;
    }
    const char *rel = data_files_path(c->files, job, NULL);
    if (!rel) return stk_errf(err, "sample %llu: not in the index", (unsigned long long)job);
    char src[PATH_MAX], dst[PATH_MAX];
    if (snprintf(src, sizeof src, "%s/%s", c->files->root, rel) >= (int)sizeof src ||
        snprintf(dst, sizeof dst, "%s/%s", c->partial, rel) >= (int)sizeof dst)
        return data_bad_add(c->bad, job, rel, "path too long", err);
    StkErr why;
    int rc = 1;
    if (loader_decode_open(&t->dec, src, &why) == 0) {
        int fits = t->dec.width <= c->opt->max_side && t->dec.height <= c->opt->max_side;
        rc = fits ? shrink_copy(c, w, &t->dec, dst, &why, err)
                  : shrink_encode(c, w, &t->dec, dst, &why, err);
    }
    return rc == 1 ? data_bad_add(c->bad, job, rel, why.msg, err) : rc;
}

/* Makes every directory DST's files go in, once per directory (samples come in walk
 * order, so a directory's files are consecutive), and val/ when SRC's split is the
 * val/ folder, so DST's index splits the same way even if val/ ends up empty. */
static int shrink_dirs(const DataFiles *f, const char *partial, StkErr *err) {
    char path[PATH_MAX], last[PATH_MAX] = "";
    if (f->split_folder) {
        if (snprintf(path, sizeof path, "%s/val", partial) >= (int)sizeof path)
            return stk_errf(err, "%s/val: path too long", partial);
        if (data_tree_mkdirs(path, err) != 0) return -1;
    }
    for (uint64_t i = 0; i < f->count; i++) {
        const char *rel = data_files_path(f, i, NULL), *slash = strrchr(rel, '/');
        if (!slash) continue; /* the scan puts no file directly in DIR */
        int n = snprintf(path, sizeof path, "%s/%.*s", partial, (int)(slash - rel), rel);
        if (n >= (int)sizeof path) continue; /* the job reports it as too long */
        if (strcmp(path, last) == 0) continue;
        if (data_tree_mkdirs(path, err) != 0) return -1;
        memcpy(last, path, (size_t)n + 1);
    }
    return 0;
}

/* Fails if dir (which exists) lies inside src. */
static int check_outside(const char *src, const char *dir, StkErr *err) {
    char s[PATH_MAX], d[PATH_MAX];
    if (!realpath(src, s)) return stk_errf(err, "realpath %s: %s", src, strerror(errno));
    if (!realpath(dir, d)) return stk_errf(err, "realpath %s: %s", dir, strerror(errno));
    size_t n = strlen(s);
    if (strncmp(s, d, n) == 0 && (d[n] == '/' || s[n - 1] == '/'))
        return stk_errf(err, "the output directory would lie inside %s: choose one outside "
                        "the source", src);
    return 0;
}

/* Runs the jobs into t's partial directory with one decoder per thread. */
static int shrink_pool(ShrinkCtx *c, StkErr *err) {
    const DataShrinkOptions *o = c->opt;
    c->threads = calloc(o->threads > 0 ? (size_t)o->threads : 1, sizeof *c->threads);
    if (!c->threads) return stk_errf(err, "thread state: out of memory");
    DataPoolSpec spec = {.threads = o->threads, .jobs = c->files->count,
                         .pixel_bytes = (size_t)o->max_side * o->max_side * 3,
                         .max_width = o->max_side, .max_height = o->max_side,
                         .fn = shrink_job, .ctx = c, .progress = o->progress,
                         .progress_ctx = o->progress_ctx};
    int rc = data_pool_run(&spec, err);
    for (int i = 0; i < o->threads; i++)
        if (c->threads[i].ready) loader_decoder_free(&c->threads[i].dec);
    free(c->threads);
    c->threads = NULL;
    return rc;
}

/* Builds the partial tree from files and renames it to dst. */
static int shrink_build(const DataFiles *files, const char *src, const char *dst,
                        const DataShrinkOptions *o, DataShrinkResult *res, StkErr *err) {
    DataTree t;
    if (data_tree_begin(&t, dst, NULL, 0, err) != 0) return -1;
    ShrinkCtx c = {.files = files, .opt = o, .partial = t.partial, .bad = &res->bad};
    atomic_init(&c.copied, 0);
    atomic_init(&c.shrunk, 0);
    atomic_init(&c.bytes_in, 0);
    atomic_init(&c.bytes_out, 0);
    int rc = check_outside(src, t.partial, err);
    if (rc == 0) rc = shrink_dirs(files, t.partial, err);
    if (rc == 0) rc = shrink_pool(&c, err);
    res->copied = atomic_load(&c.copied);
    res->shrunk = atomic_load(&c.shrunk);
    res->bytes_in = atomic_load(&c.bytes_in);
    res->bytes_out = atomic_load(&c.bytes_out);
    char marker[DATA_TREE_MARKER_MAX];
    snprintf(marker, sizeof marker, "stoker-data shrink 1\nsource %.512s\nmax-side %d\n"
             "quality %d\ncopied %llu\nshrunk %llu\nbad %zu\n", files->root, o->max_side,
             o->quality, (unsigned long long)res->copied, (unsigned long long)res->shrunk,
             res->bad.count);
    if (rc != 0 || data_tree_commit(&t, marker, err) != 0) {
        data_tree_abort(&t);
        return -1;
    }
    return 0;
}

/* Checks the options and that dst does not exist. */
static int shrink_check(const char *dst, const DataShrinkOptions *o, StkErr *err) {
    if (o->max_side < 1 || o->max_side > DATA_SHRINK_MAX_SIDE)
        return stk_errf(err, "max side %d out of range [1, %d]", o->max_side,
                        DATA_SHRINK_MAX_SIDE);
    if (o->quality < 1 || o->quality > 100)
        return stk_errf(err, "JPEG quality %d out of range [1, 100]", o->quality);
    struct stat st;
    if (lstat(dst, &st) == 0)
        return stk_errf(err, "%s already exists: refusing to overwrite it (remove it or "
                        "choose another directory)", dst);
    if (errno != ENOENT) return stk_errf(err, "%s: %s", dst, strerror(errno));
    return 0;
}

int data_shrink_run(const char *src, const char *dst, const DataShrinkOptions *opt,
                    DataShrinkResult *res, StkErr *err) {
    memset(res, 0, sizeof *res);
    data_bad_init(&res->bad);
    DataFiles files;
    memset(&files, 0, sizeof files);
    int rc = shrink_check(dst, opt, err);
    if (rc == 0) rc = data_files_open(&files, src, err);
    if (rc == 0) {
        res->from_index = files.from_index;
        res->src_classes = files.num_classes;
        res->stale_partials = data_tree_stale(dst);
        rc = shrink_build(&files, src, dst, opt, res, err);
    }
    LoaderScanOptions so = {.val_fraction = files.split_folder ? -1 : files.val_fraction,
                            .seed = files.seed};
    data_files_close(&files);
    if (rc == 0) rc = loader_index_build(dst, &so, NULL, &res->index, err);
    if (rc != 0) {
        data_shrink_result_free(res);
        return -1;
    }
    data_bad_sort(&res->bad);
    return 0;
}

void data_shrink_result_free(DataShrinkResult *res) {
    data_bad_free(&res->bad);
    memset(res, 0, sizeof *res);
}
