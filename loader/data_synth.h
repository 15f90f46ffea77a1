/* data_synth.h: a synthetic ImageFolder of ImageNet-sized RGB JPEGs whose classes can
 * be learned, for exercising the pipeline at full scale without a real data set.
 *
 *   OUT/train/class_000/00000.jpg ...   per_class images per class
 *   OUT/val/class_000/00000.jpg ...     val_per_class images per class
 *   OUT/stoker.index, OUT/.stoker-complete   (as in data_fmnist.h)
 *
 * A class fixes a shape kind (disc, box, triangle, ring, cross, diamond: class % 6), a
 * hue, and the mean size and position of the shape; each image draws the shape's exact
 * size, position, rotation, shade and the background (hue, two gratings) around those,
 * and adds per-pixel noise, which is what sets the file size. Every value comes from a
 * counter-based hash keyed by (seed, split, class, index) (stk_rng.h): the same seed
 * gives byte-identical files whatever the thread count. Class folders are class_NNN
 * with enough digits that name order is numeric order. */
#ifndef DATA_SYNTH_H
#define DATA_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "data_pool.h"
#include "loader_scan.h"
#include "stk_err.h"

#define DATA_SYNTH_DEFAULT_WIDTH 500   /* a typical ImageNet photo is 500x375 or 500x333 */
#define DATA_SYNTH_DEFAULT_HEIGHT 375
#define DATA_SYNTH_DEFAULT_QUALITY 90
#define DATA_SYNTH_MIN_SIDE 8
#define DATA_SYNTH_MAX_SIDE 8192
#define DATA_SYNTH_MAX_CLASSES 100000
#define DATA_SYNTH_MAX_IMAGES 100000000ull /* train + val */

typedef struct DataSynthOptions {
    uint32_t classes;        /* number of classes, 1..DATA_SYNTH_MAX_CLASSES */
    uint32_t per_class;      /* train images per class, >= 1 */
    uint32_t val_per_class;  /* val images per class, >= 0 */
    uint32_t width;          /* image width in pixels */
    uint32_t height;         /* image height in pixels */
    uint64_t seed;           /* keys every random value */
    int quality;             /* JPEG quality, 1..100 */
    int threads;             /* worker threads, >= 1 */
    DataProgressFn progress; /* may be NULL */
    void *progress_ctx;      /* passed to progress */
} DataSynthOptions;

typedef struct DataSynthResult {
    int already_complete;                /* 1: OUT held this build; nothing written */
    uint64_t written[LOADER_NUM_SPLITS]; /* images per split */
    uint64_t bytes[LOADER_NUM_SPLITS];   /* JPEG bytes per split */
    int stale_partials;                  /* OUT.partial-* left by interrupted runs */
    LoaderScanStats index;               /* the index's classes and sample counts */
} DataSynthResult;

/* Returns the bytes of scratch memory data_synth_render needs for opt's image size. */
size_t data_synth_buffer_bytes(const DataSynthOptions *opt);

/* Renders image idx of class cls in split (LoaderSplit) as packed RGB into the first
 * width*height*3 bytes of buf (data_synth_buffer_bytes(opt) bytes; the rest is
 * scratch). Pure: the same arguments give the same pixels. */
void data_synth_render(const DataSynthOptions *opt, uint32_t split, uint32_t cls, uint32_t idx,
                       uint8_t *buf);

/* Writes the tree described above, or does nothing but ensure the index when OUT
 * already holds the same build. Returns 0 with res filled, or -1 with err (bad option,
 * OUT holding something else, a write failing); nothing is left at OUT after a failure. */
int data_synth_write(const char *out, const DataSynthOptions *opt, DataSynthResult *res,
                     StkErr *err);

#endif
