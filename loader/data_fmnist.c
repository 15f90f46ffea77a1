/* data_fmnist.c: reads the four Fashion-MNIST IDX files, checks them against each
 * other, and writes one JPEG per image on the worker pool (layout in data_fmnist.h). */
#include "data_fmnist.h"

#include <stdio.h>
#include <string.h>
#include <turbojpeg.h>

#include "data_idx.h"
#include "data_tree.h"

static const char *const fmnist_names[DATA_FMNIST_NUM_CLASSES] = {
    "T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot",
};

/* One split's images and labels, and the folder name it is written to. */
typedef struct FmnistSplit {
    DataIdx images;  /* [count] 28x28 images */
    DataIdx labels;  /* [count] original labels 0..9 */
    const char *dir; /* "train" or "val" */
} FmnistSplit;

/* What every job needs. */
typedef struct FmnistCtx {
    FmnistSplit split[LOADER_NUM_SPLITS]; /* train, val */
    const char *partial;                  /* the directory being filled */
    int quality;                          /* JPEG quality */
} FmnistCtx;

const char *data_fmnist_class_name(uint32_t label) {
    return label < DATA_FMNIST_NUM_CLASSES ? fmnist_names[label] : NULL;
}

/* Reads SOURCE/<prefix>-images-idx3-ubyte.gz and -labels-idx1-ubyte.gz and checks that
 * they agree: 28x28, the same item count, labels 0..9. */
static int fmnist_load(FmnistSplit *s, const char *source, const char *prefix, uint32_t limit,
                       StkErr *err) {
    char ipath[PATH_MAX], lpath[PATH_MAX];
    snprintf(ipath, sizeof ipath, "%s/%s-images-idx3-ubyte.gz", source, prefix);
    snprintf(lpath, sizeof lpath, "%s/%s-labels-idx1-ubyte.gz", source, prefix);
    if (data_idx_read(&s->images, ipath, DATA_IDX_MAGIC_IMAGES, limit, err) != 0 ||
        data_idx_read(&s->labels, lpath, DATA_IDX_MAGIC_LABELS, limit, err) != 0)
        return -1;
    if (s->images.rows != DATA_FMNIST_SIDE || s->images.cols != DATA_FMNIST_SIDE)
        return stk_errf(err, "%s: images are %ux%u, Fashion-MNIST's are %dx%d", ipath,
                        s->images.rows, s->images.cols, DATA_FMNIST_SIDE, DATA_FMNIST_SIDE);
    if (s->images.file_count != s->labels.file_count)
        return stk_errf(err, "%s declares %u images but %s declares %u labels", ipath,
                        s->images.file_count, lpath, s->labels.file_count);
    for (uint32_t i = 0; i < s->labels.count; i++)
        if (s->labels.data[i] >= DATA_FMNIST_NUM_CLASSES)
            return stk_errf(err, "%s: label %u of item %u is not a class (0..%d)", lpath,
                            s->labels.data[i], i, DATA_FMNIST_NUM_CLASSES - 1);
    return 0;
}

/* Job j: image j of train, or image j - train count of val. */
static int fmnist_job(void *ctx, DataWorker *w, uint64_t job, StkErr *err) {
    FmnistCtx *c = ctx;
    const FmnistSplit *s = &c->split[LOADER_TRAIN];
    if (job >= s->images.count) {
        job -= s->images.count;
        s = &c->split[LOADER_VAL];
    }
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s/%s/%05u.jpg", c->partial, s->dir,
             fmnist_names[s->labels.data[job]], (unsigned)job);
    const uint8_t *pixels = s->images.data + job * DATA_FMNIST_SIDE * DATA_FMNIST_SIDE;
    return data_pool_write_jpeg(w, pixels, path, DATA_FMNIST_SIDE, DATA_FMNIST_SIDE,
                                TJPF_GRAY, TJSAMP_GRAY, c->quality, NULL, err);
}

/* Loads both splits and writes them into a partial tree, then renames it to out. */
static int fmnist_build(const char *out, const DataFmnistOptions *opt, const char *params,
                        FmnistCtx *c, DataFmnistResult *res, StkErr *err) {
    const char *source = opt->source ? opt->source : DATA_FMNIST_DEFAULT_SOURCE;
    if (fmnist_load(&c->split[LOADER_TRAIN], source, "train", opt->limit, err) != 0 ||
        fmnist_load(&c->split[LOADER_VAL], source, "t10k", opt->limit, err) != 0)
        return -1;
    DataTree t;
    if (data_tree_begin(&t, out, fmnist_names, DATA_FMNIST_NUM_CLASSES, err) != 0) return -1;
    c->partial = t.partial;
    uint64_t n0 = c->split[LOADER_TRAIN].images.count, n1 = c->split[LOADER_VAL].images.count;
    DataPoolSpec spec = {.threads = opt->threads, .jobs = n0 + n1, .pixel_bytes = 0,
                         .max_width = DATA_FMNIST_SIDE, .max_height = DATA_FMNIST_SIDE,
                         .fn = fmnist_job, .ctx = c, .progress = opt->progress,
                         .progress_ctx = opt->progress_ctx};
    char marker[DATA_TREE_MARKER_MAX];
    snprintf(marker, sizeof marker, "%strain %llu\nval %llu\n", params,
             (unsigned long long)n0, (unsigned long long)n1);
    if (data_pool_run(&spec, err) != 0 || data_tree_commit(&t, marker, err) != 0) {
        data_tree_abort(&t);
        return -1;
    }
    res->written[LOADER_TRAIN] = n0;
    res->written[LOADER_VAL] = n1;
    return 0;
}

int data_fmnist_write(const char *out, const DataFmnistOptions *opt, DataFmnistResult *res,
                      StkErr *err) {
    memset(res, 0, sizeof *res);
    if (opt->quality < 1 || opt->quality > 100)
        return stk_errf(err, "JPEG quality %d out of range [1, 100]", opt->quality);
    char params[256], marker[DATA_TREE_MARKER_MAX];
    snprintf(params, sizeof params, "stoker-data fashion-mnist 1\nlimit %u\nquality %d\n",
             opt->limit, opt->quality);
    int complete;
    if (data_tree_check(out, params, &complete, marker, sizeof marker, err) != 0) return -1;
    if (complete) {
        unsigned long long n0 = 0, n1 = 0;
        const char *counts = marker + strlen(params);
        if (sscanf(counts, "train %llu\nval %llu", &n0, &n1) != 2)
            return stk_errf(err, "%s/%s: no counts in the marker", out, DATA_TREE_MARKER);
        res->already_complete = 1;
        res->written[LOADER_TRAIN] = n0;
        res->written[LOADER_VAL] = n1;
        return data_tree_index(out, &res->index, err);
    }
    res->stale_partials = data_tree_stale(out);
    FmnistCtx c = {.split = {{.dir = "train"}, {.dir = "val"}}, .quality = opt->quality};
    int rc = fmnist_build(out, opt, params, &c, res, err);
    for (int s = 0; s < LOADER_NUM_SPLITS; s++) {
        data_idx_free(&c.split[s].images);
        data_idx_free(&c.split[s].labels);
    }
    return rc == 0 ? data_tree_index(out, &res->index, err) : -1;
}
