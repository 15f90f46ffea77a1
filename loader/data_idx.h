/* data_idx.h: reading MNIST-style IDX files (gzipped or plain) of unsigned bytes.
 *
 * An IDX file is a big-endian header (two zero bytes, the element type 0x08 = uint8,
 * the number of dimensions) followed by one big-endian uint32 per dimension and the
 * data, row-major. We read images (magic 0x00000803: count, rows, cols) and labels
 * (0x00000801: count). Every size is bounded before anything is allocated. */
#ifndef DATA_IDX_H
#define DATA_IDX_H

#include <stddef.h>
#include <stdint.h>

#include "stk_err.h"

#define DATA_IDX_MAGIC_LABELS 0x00000801u /* uint8, 1 dimension */
#define DATA_IDX_MAGIC_IMAGES 0x00000803u /* uint8, 3 dimensions */
#define DATA_IDX_MAX_COUNT 100000000u     /* items per file we accept */
#define DATA_IDX_MAX_SIDE 4096u           /* rows or cols we accept */

typedef struct DataIdx {
    uint8_t *data;       /* [count * rows * cols] bytes, row-major (malloc'd) */
    uint32_t file_count; /* items the file declares */
    uint32_t count;      /* items read (the file's count, or fewer with a limit) */
    uint32_t rows;       /* 1 for labels */
    uint32_t cols;       /* 1 for labels */
} DataIdx;

/* Reads path (gzip or plain, via zlib) expecting magic (DATA_IDX_MAGIC_LABELS or
 * DATA_IDX_MAGIC_IMAGES) into out, keeping only the first limit items (0: all).
 * Without a limit, bytes after the data are an error. Returns 0, or -1 with err naming
 * the file and what is wrong (cannot open, bad magic, bad dimensions, truncated,
 * corrupt gzip stream). Free out with data_idx_free, also after a failure. */
int data_idx_read(DataIdx *out, const char *path, uint32_t magic, uint32_t limit, StkErr *err);

/* Frees out's data and zeroes it. */
void data_idx_free(DataIdx *out);

#endif
