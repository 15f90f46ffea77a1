/* data_fmnist.h: Fashion-MNIST (four gzipped IDX files) to a JPEG ImageFolder tree.
 *
 *   OUT/train/<class>/NNNNN.jpg   60,000 images (train-*-ubyte.gz), NNNNN = position in
 *   OUT/val/<class>/NNNNN.jpg     10,000 images (t10k-*-ubyte.gz)    the source file
 *   OUT/stoker.index              the dataset index (loader_index.h)
 *   OUT/.stoker-complete          marker: parameters and counts of the finished build
 *
 * Images are 28x28 grayscale JPEGs, pixels as stored (0 = background). Class folders
 * are Fashion-MNIST's ten names in the original label order, except that "T-shirt/top"
 * becomes "T-shirt_top" ('/' cannot be in a folder name). ImageFolder then sorts the
 * folders by name, so the labels a loader sees are ImageFolder indices ("Ankle boot" is
 * 0, "Trouser" is 9), not the original ids: map with data_fmnist_class_name. */
#ifndef DATA_FMNIST_H
#define DATA_FMNIST_H

#include <limits.h>
#include <stdint.h>

#include "data_pool.h"
#include "loader_scan.h"
#include "stk_err.h"

#define DATA_FMNIST_DEFAULT_SOURCE "/usr/share/datasets/fashion-mnist"
#define DATA_FMNIST_NUM_CLASSES 10
#define DATA_FMNIST_SIDE 28
#define DATA_FMNIST_DEFAULT_QUALITY 95

typedef struct DataFmnistOptions {
    const char *source;      /* directory with the four .gz files (NULL: the default) */
    uint32_t limit;          /* write only the first limit images of each split; 0: all */
    int quality;             /* JPEG quality, 1..100 */
    int threads;             /* worker threads, >= 1 */
    DataProgressFn progress; /* may be NULL */
    void *progress_ctx;      /* passed to progress */
} DataFmnistOptions;

typedef struct DataFmnistResult {
    int already_complete;                 /* 1: OUT held this build; nothing written */
    uint64_t written[LOADER_NUM_SPLITS];  /* images per split in OUT */
    int stale_partials;                   /* OUT.partial-* left by interrupted runs */
    LoaderScanStats index;                /* the index's classes and sample counts */
} DataFmnistResult;

/* Returns the folder name of original Fashion-MNIST label (0..9), or NULL. */
const char *data_fmnist_class_name(uint32_t label);

/* Builds OUT as described above (reading DIR/train-images-idx3-ubyte.gz and the other
 * three), or does nothing but ensure the index when OUT already holds the same build.
 * Returns 0 with res filled, or -1 with err naming the file and the problem (bad or
 * truncated IDX, images and labels disagreeing, label > 9, not 28x28, OUT holding
 * something else, a write failing); nothing is left at OUT after a failure. */
int data_fmnist_write(const char *out, const DataFmnistOptions *opt, DataFmnistResult *res,
                      StkErr *err);

#endif
