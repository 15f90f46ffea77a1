/* data_shrink.h: `stoker-data shrink`: a copy of a dataset with large photos re-encoded
 * smaller, once, so that loaders stop decoding pixels they throw away every epoch.
 *
 *   SRC/train/<class>/.../x.jpg  ->  DST/train/<class>/.../x.jpg   (same relative path)
 *
 * Every sample of SRC (its index, or a scan: data_files_open) is decoded by the loader's
 * decoder first; a file that fails is a bad file: listed, not copied. A good image whose
 * longer side is at most max_side is copied byte for byte. A larger one is decoded at
 * the smallest DCT scale that still covers the target, resized with Pillow's
 * antialiased bilinear filter (loader_decode_crop with the whole image as the box) to
 * a longer side of max_side and a shorter side of round(short * max_side / long), at
 * least 1 (halves round up), and encoded with TurboJPEG at the given quality: 4:2:0
 * for colour sources (CMYK and YCCK become RGB), one grayscale component for grayscale
 * sources (the loader expands both to the same RGB). Shrunk files keep no metadata
 * (EXIF, ICC); the loader reads neither. With restart set, every file written (copied
 * or shrunk) is then rewritten losslessly with a restart marker per MCU (data_restart.h:
 * the same pixels), which lets the loader decode only the MCUs each crop needs.
 *
 * DST must not exist. The tree is built in DST.partial-XXXXXX and renamed to DST at
 * the end with a completion marker (data_tree.h), then DST/stoker.index is written with
 * SRC's split settings (val/ folder, or the same hash fraction and seed). */
#ifndef DATA_SHRINK_H
#define DATA_SHRINK_H

#include <stdint.h>

#include "data_pool.h"
#include "data_verify.h"
#include "loader_scan.h"
#include "stk_err.h"

#define DATA_SHRINK_DEFAULT_QUALITY 90
#define DATA_SHRINK_MAX_SIDE 8192 /* largest --max-side: bounds each thread's buffers */

typedef struct DataShrinkOptions {
    int max_side;            /* longer side of shrunk images, 1..DATA_SHRINK_MAX_SIDE */
    int quality;             /* JPEG quality of shrunk images, 1..100 */
    int threads;             /* worker threads, 1..DATA_POOL_MAX_THREADS */
    int restart;             /* 1: restart markers in every file written (see above) */
    uint64_t max_pixels;     /* decoder's pixel cap; 0: LOADER_DEFAULT_MAX_PIXELS */
    DataProgressFn progress; /* may be NULL */
    void *progress_ctx;      /* passed to progress */
} DataShrinkOptions;

typedef struct DataShrinkResult {
    uint64_t copied;        /* files kept at their size: byte for byte, or rewritten
                               losslessly with restart */
    uint64_t shrunk;        /* files re-encoded smaller */
    DataBadList bad;        /* files left out, in SRC's index order */
    uint64_t bytes_in;      /* bytes of the copied and shrunk files in SRC */
    uint64_t bytes_out;     /* their bytes in DST */
    int from_index;         /* 1: SRC/stoker.index was read; 0: SRC was scanned */
    uint32_t src_classes;   /* classes of SRC (DST has fewer if a class lost every file) */
    int stale_partials;     /* DST.partial-* left by earlier, interrupted runs */
    LoaderScanStats index;  /* DST's index: classes and samples per split */
} DataShrinkResult;

/* Returns the size an image of w x h becomes for max_side (see above) in *ow, *oh;
 * an image that fits is returned unchanged. */
void data_shrink_size(int w, int h, int max_side, int *ow, int *oh);

/* Writes DST from SRC as described above. Returns 0 with res filled (free it with
 * data_shrink_result_free; bad files are not a failure), or -1 with err: a bad option,
 * DST existing or lying inside SRC, SRC unreadable, a write failing, or the index
 * build failing (then DST is complete but has no index: `stoker-data index DST`).
 * Nothing is left at DST after any other failure. */
int data_shrink_run(const char *src, const char *dst, const DataShrinkOptions *opt,
                    DataShrinkResult *res, StkErr *err);

void data_shrink_result_free(DataShrinkResult *res);

#endif
