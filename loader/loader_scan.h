/* loader_scan.h: ImageFolder scanning, as torchvision's datasets.ImageFolder reads a tree.
 *
 *   DIR/train/<class>/ ... .jpg   classes = sub-directories of train/, sorted by name
 *   DIR/val/<class>/ ... .jpg     optional; uses train's class list
 *
 * Order: classes sort by byte order of their UTF-8 names (Python's sorted() on str);
 * inside a class, files are found recursively following symlinks and ordered as
 * torchvision's make_dataset orders them: by directory path (sorted(os.walk(...))), then
 * by file name. Samples are ordered by split, class, then that walk order.
 *
 * Where we differ from torchvision, on purpose, and count what we skip:
 *   - names starting with '.' (files and directories) are skipped (torchvision would
 *     make ".ipynb_checkpoints" a class);
 *   - only JPEG files are samples: .jpg .jpeg .jpe .jfif, any letter case;
 *   - a class folder without a JPEG is skipped and reported (torchvision raises);
 *   - a symlink that leads back to one of its own parent directories is skipped
 *     (os.walk(followlinks=True) would loop until the path is too long).
 * Without DIR/val, a sample of train/ goes to val iff a 64-bit hash of (seed, its path)
 * falls under the fraction: stable when files are added or removed. */
#ifndef LOADER_SCAN_H
#define LOADER_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "stk_err.h"

typedef enum LoaderSplit {
    LOADER_TRAIN = 0, /* the training split */
    LOADER_VAL = 1,   /* the validation split */
} LoaderSplit;
#define LOADER_NUM_SPLITS 2

#define LOADER_SCAN_DEFAULT_VAL_FRACTION 0.1 /* used when DIR has no val/ */
#define LOADER_SCAN_MAX_DEPTH 64             /* directory nesting below DIR */
#define LOADER_SCAN_NAMES_LEN 512            /* bytes of skipped class names reported */

typedef struct LoaderScanOptions {
    double val_fraction; /* without DIR/val: share of train/ moved to val, in [0, 1);
                            < 0 means "not given": the default 0.1. Giving one while
                            DIR/val exists is an error (the split would be ambiguous) */
    uint64_t seed;       /* keys the hash split; the same seed gives the same split */
} LoaderScanOptions;

typedef struct LoaderScanStats {
    uint32_t num_classes;          /* classes found (train/ folders with a JPEG) */
    uint64_t num_samples[LOADER_NUM_SPLITS]; /* samples per split */
    int val_from_folder;           /* 1: val came from DIR/val; 0: hash split of train/ */
    double val_fraction;           /* the hash split's fraction (0 with a val/ folder) */
    uint64_t seed;                 /* the hash split's seed */
    uint64_t hidden_files;         /* files whose name starts with '.' */
    uint64_t hidden_dirs;          /* directories whose name starts with '.' (not entered) */
    uint64_t non_jpeg;             /* regular files without a JPEG extension */
    uint64_t other;                /* dangling links, special files, files directly in
                                      train/ or val/, symlink loops */
    uint32_t empty_classes;        /* train/ folders without any JPEG: not classes */
    uint32_t unknown_val_classes;  /* val/ folders that are not classes of train/ */
    char empty_class_names[LOADER_SCAN_NAMES_LEN];  /* "a, b, ..." (truncated) */
    char unknown_val_names[LOADER_SCAN_NAMES_LEN];  /* "x, y, ..." (truncated) */
} LoaderScanStats;

typedef struct LoaderScanSample {
    uint64_t path_off; /* offset of the path (relative to DIR) in LoaderScan.strings */
    const char *path;  /* the same path; valid once loader_scan_run has returned */
    uint64_t size;     /* file size in bytes when scanned */
    int32_t label;     /* class index */
    uint32_t path_len; /* strlen(path) */
    uint32_t dir_len;  /* bytes of path before its last '/': walk-order sorting */
    uint8_t split;     /* LoaderSplit */
} LoaderScanSample;

typedef struct LoaderScan {
    char *root;                 /* realpath of DIR (malloc'd) */
    char *strings;              /* arena of NUL-terminated class names and paths */
    size_t strings_len;         /* bytes used in strings */
    size_t strings_cap;         /* bytes allocated for strings */
    uint64_t *class_off;        /* [num_classes] offsets of class names in strings */
    uint32_t num_classes;       /* classes, sorted by name; label = position */
    uint32_t class_cap;         /* entries allocated in class_off */
    LoaderScanSample *samples;  /* [num_samples] sorted by split, label, walk order */
    uint64_t num_samples;       /* all splits together */
    uint64_t sample_cap;        /* entries allocated in samples */
    uint64_t split_count[LOADER_NUM_SPLITS]; /* samples per split (train first) */
} LoaderScan;

/* Scans DIR into scan (which the caller then frees with loader_scan_free, also after a
 * failure). opt may be NULL (defaults); stats may be NULL. Returns 0, or -1 with err
 * naming the path and the reason: DIR or DIR/train missing or unreadable, no class,
 * an unreadable sub-directory, a path longer than PATH_MAX, out of memory. */
int loader_scan_run(LoaderScan *scan, const char *dir, const LoaderScanOptions *opt,
                    LoaderScanStats *stats, StkErr *err);

/* Frees everything scan holds and zeroes it; safe on a zeroed or half-built scan. */
void loader_scan_free(LoaderScan *scan);

/* Returns the name of class c (c < num_classes), owned by scan. */
const char *loader_scan_class_name(const LoaderScan *scan, uint32_t c);

/* Returns 1 if name ends in .jpg, .jpeg, .jpe or .jfif (any case), else 0. */
int loader_scan_is_jpeg_name(const char *name);

#endif
