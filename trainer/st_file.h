/* st_file.h: safetensors files, the checkpoint format (huggingface/safetensors).
 *
 * Layout: u64 little-endian N, N bytes of UTF-8 JSON {name: {"dtype", "shape",
 * "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the byte buffer the
 * offsets index. We write tensors in the order given, packed with no holes, the header
 * padded with spaces to a multiple of 8 so every tensor starts 8-byte aligned.
 *
 * Writing is atomic: a temporary file in the target's directory, fsync, rename, fsync
 * of the directory. A failure (a full disk included) removes the temporary file, leaves
 * any previous file at path intact and says which call failed and why.
 *
 * Reading maps the file read-only and validates everything before returning views:
 * header size against the file, JSON shape, dtypes, shapes (element count times dtype
 * size equals the byte range), ranges inside the buffer, no overlaps, no holes, unique
 * names. A bad file gives -1 and a message naming the file and the first problem. */
#ifndef ST_FILE_H
#define ST_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "stk_err.h"

#define ST_MAX_DIMS 8
#define ST_MAX_HEADER (100u << 20) /* the reference implementation's limit: 100 MB */

typedef enum StDtype {
    ST_F32 = 0,
    ST_F16,
    ST_BF16,
    ST_F64,
    ST_I64,
    ST_I32,
    ST_U8,
    ST_BOOL,
    ST_DTYPE_COUNT
} StDtype;

/* One tensor: for writing, what to write; for reading, a view into the mapping. */
typedef struct StTensor {
    const char *name;            /* unique; for reading, NUL-terminated, owned by StFile */
    StDtype dtype;
    int ndim;                    /* 0..ST_MAX_DIMS (0: a scalar) */
    int64_t shape[ST_MAX_DIMS];
    const void *data;            /* bytes: product(shape) * st_dtype_size(dtype) */
    size_t nbytes;               /* reading: the tensor's byte count; writing: ignored */
} StTensor;

/* One __metadata__ entry (strings only, as the format requires). */
typedef struct StMeta {
    const char *key, *value;
} StMeta;

/* An open safetensors file. */
typedef struct StFile {
    char *path;           /* for messages (owned) */
    const uint8_t *map;   /* the whole file, read-only */
    size_t map_size;
    StTensor *tensors;    /* [count], in file order (owned; names point into names) */
    size_t count;
    char *names;          /* NUL-terminated names, back to back (owned) */
    StMeta *meta;         /* [meta_count] (owned; strings in meta_strings) */
    size_t meta_count;
    char *meta_strings;   /* (owned) */
} StFile;

/* Bytes of one element ("F32" -> 4); 0 for an unknown dtype. */
size_t st_dtype_size(StDtype dtype);

/* safetensors' name for a dtype ("F32", "BF16", ...). */
const char *st_dtype_name(StDtype dtype);

/* Elements of a tensor: the product of its shape (1 for a scalar). */
int64_t st_numel(const StTensor *t);

/* Writes n tensors and meta_count metadata entries to path, atomically. */
int st_write(const char *path, const StTensor *tensors, size_t n, const StMeta *meta,
             size_t meta_count, StkErr *err);

/* Opens and validates path; on success f holds views valid until st_close. */
int st_open(StFile *f, const char *path, StkErr *err);

/* The tensor called name, or NULL. */
const StTensor *st_find(const StFile *f, const char *name);

/* The metadata value for key, or NULL. */
const char *st_meta(const StFile *f, const char *key);

/* Unmaps and frees; safe on a zeroed StFile. */
void st_close(StFile *f);

#endif
