/* loader_index.h: the dataset index, one flat file that every loader process maps
 * read-only, so that N loaders over a million files share one copy in the page cache.
 *
 * Layout (host byte order, every section 8-byte aligned, all offsets from file start):
 *
 *   LoaderIndexHeader                      128 bytes at offset 0
 *   LoaderIndexClass[num_classes]          at classes_off, sorted by name
 *   LoaderIndexRecord[train + val]         at records_off: train records, then val
 *   string blob                            at strings_off: NUL-terminated UTF-8 class
 *                                          names, the root, and paths relative to root
 *
 * Sample i of a split is record split_start + i: O(1), no search. Within a split,
 * records are in ImageFolder order (class, then torchvision's walk order), so index i
 * of the train split is torchvision's ImageFolder(DIR/train).samples[i] (for trees
 * torchvision accepts). loader_index_open checks every offset, length, label and count
 * before anything is used; the writer replaces the file atomically (temp, fsync,
 * rename). */
#ifndef LOADER_INDEX_H
#define LOADER_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "loader_scan.h"
#include "stk_err.h"

#define LOADER_INDEX_MAGIC "STKINDEX"      /* 8 bytes, no NUL in the file */
#define LOADER_INDEX_VERSION 1u            /* bumped on any layout change */
#define LOADER_INDEX_BYTE_ORDER 0x01020304u /* reads 0x04030201 on the other byte order */
#define LOADER_INDEX_DEFAULT_NAME "stoker.index" /* default file: DIR/stoker.index */

typedef enum LoaderSplitMode {
    LOADER_SPLIT_FOLDER = 0, /* val samples came from DIR/val */
    LOADER_SPLIT_HASH = 1,   /* val samples were hashed out of DIR/train */
} LoaderSplitMode;

typedef struct LoaderIndexHeader {
    char magic[8];            /* LOADER_INDEX_MAGIC */
    uint32_t version;         /* LOADER_INDEX_VERSION */
    uint32_t byte_order;      /* LOADER_INDEX_BYTE_ORDER as the writer stored it */
    uint32_t header_size;     /* sizeof(LoaderIndexHeader) */
    uint32_t class_size;      /* sizeof(LoaderIndexClass) */
    uint32_t record_size;     /* sizeof(LoaderIndexRecord) */
    uint32_t num_classes;     /* entries in the class table, >= 1 */
    uint64_t num_samples[LOADER_NUM_SPLITS]; /* records per split, train first */
    uint64_t classes_off;     /* file offset of the class table */
    uint64_t records_off;     /* file offset of the record array */
    uint64_t strings_off;     /* file offset of the string blob */
    uint64_t strings_size;    /* bytes in the blob; its last byte is NUL */
    uint64_t root_off;        /* blob offset of DIR's absolute path at build time */
    uint64_t file_size;       /* total file size: a shorter file is truncated */
    uint64_t split_seed;      /* LOADER_SPLIT_HASH: the seed */
    double val_fraction;      /* LOADER_SPLIT_HASH: the fraction; 0 for folders */
    uint32_t split_mode;      /* LoaderSplitMode */
    uint32_t reserved[3];     /* zero */
} LoaderIndexHeader;

typedef struct LoaderIndexClass {
    uint64_t name_off;                 /* blob offset of the class (folder) name */
    uint32_t name_len;                 /* strlen(name), >= 1 */
    uint32_t reserved;                 /* zero */
    uint64_t count[LOADER_NUM_SPLITS]; /* samples of this class per split */
} LoaderIndexClass;

typedef struct LoaderIndexRecord {
    uint64_t path_off;  /* blob offset of the path, relative to the root */
    uint64_t file_size; /* bytes on disk when indexed (a loader may pre-size reads) */
    uint32_t path_len;  /* strlen(path), >= 1 */
    int32_t label;      /* class index, 0 <= label < num_classes */
    uint32_t split;     /* LoaderSplit; equals the split the record lies in */
    uint32_t reserved;  /* zero */
} LoaderIndexRecord;

/* An open index: a read-only mapping and typed views into it. */
typedef struct LoaderIndex {
    char *path;                      /* the file's path (malloc'd, for messages) */
    const uint8_t *map;              /* the mapping, header->file_size bytes */
    size_t map_size;                 /* bytes mapped */
    const LoaderIndexHeader *header; /* == map */
    const LoaderIndexClass *classes; /* [num_classes] */
    const LoaderIndexRecord *records;/* [train + val] */
    const char *strings;             /* the blob */
} LoaderIndex;

/* One sample as a loader sees it; pointers point into the mapping. */
typedef struct LoaderSample {
    const char *path;   /* relative to loader_index_root (or the tree's new place) */
    int32_t label;      /* class index */
    uint64_t file_size; /* bytes when indexed */
} LoaderSample;

/* Writes scan (from loader_scan_run; stats gives the split settings) to path: a temp
 * file next to it, fsync, rename, fsync of the directory. Returns 0, or -1 with err
 * naming the file and the failing call; the temp file is removed on failure. */
int loader_index_write(const LoaderScan *scan, const LoaderScanStats *stats,
                       const char *path, StkErr *err);

/* Scans dir (see loader_scan_run) and writes its index to out_path, or to
 * dir/LOADER_INDEX_DEFAULT_NAME when out_path is NULL. stats (may be NULL) receives
 * the counts. Returns 0, or -1 with err set. */
int loader_index_build(const char *dir, const LoaderScanOptions *opt, const char *out_path,
                       LoaderScanStats *stats, StkErr *err);

/* Maps path read-only and validates it: magic, version, byte order, sizes, every
 * offset and length in bounds, strings NUL-terminated inside the blob, labels below
 * the class count, splits and per-class counts consistent. Returns 0 with ix ready, or
 * -1 with err naming the file and what is wrong (ix is then zeroed). Close with
 * loader_index_close. */
int loader_index_open(LoaderIndex *ix, const char *path, StkErr *err);

/* Unmaps and frees; safe on a zeroed index. */
void loader_index_close(LoaderIndex *ix);

/* Returns the number of samples in split. */
uint64_t loader_index_count(const LoaderIndex *ix, LoaderSplit split);

/* Returns the number of classes. */
uint32_t loader_index_num_classes(const LoaderIndex *ix);

/* Returns the name of class c, or NULL if c is out of range. Owned by the mapping. */
const char *loader_index_class_name(const LoaderIndex *ix, uint32_t c);

/* Returns the number of samples of class c in split (0 if c is out of range). */
uint64_t loader_index_class_count(const LoaderIndex *ix, uint32_t c, LoaderSplit split);

/* Returns DIR's absolute path when the index was built. Owned by the mapping. */
const char *loader_index_root(const LoaderIndex *ix);

/* Fills out with sample i of split in O(1). Returns 0, or -1 if i is out of range. */
int loader_index_get(const LoaderIndex *ix, LoaderSplit split, uint64_t i, LoaderSample *out);

#endif
