/* data_tree.h: making a dataset directory that is either absent or complete.
 *
 * A writer fills OUT.partial-XXXXXX next to OUT, writes a marker file with the build's
 * parameters and counts, syncs, and renames the whole directory to OUT in one step. An
 * interrupted run leaves only a partial directory (reported, never trusted); a second
 * run of the same build finds the marker and does nothing. */
#ifndef DATA_TREE_H
#define DATA_TREE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "loader_scan.h"
#include "stk_err.h"

#define DATA_TREE_MARKER ".stoker-complete" /* in OUT; hidden, outside train/ and val/ */
#define DATA_TREE_MARKER_MAX 1024           /* bytes of marker text */

typedef struct DataTree {
    char out[PATH_MAX];     /* the final directory, without trailing '/' */
    char partial[PATH_MAX]; /* the directory being filled; "" when there is none */
} DataTree;

/* Looks at out: *complete = 0 if it does not exist; 1 if it holds a marker whose text
 * starts with params (the same build), with the marker's text copied to marker (may be
 * NULL). Returns 0, or -1 with err when out exists but is not a complete tree of this
 * build (no marker, or another build's parameters, both quoted). */
int data_tree_check(const char *out, const char *params, int *complete, char *marker,
                    size_t marker_size, StkErr *err);

/* Creates out's parent directories, a fresh partial directory next to out and in it
 * train/<name> and val/<name> for each of the n class names. Returns 0, or -1 with
 * err (the partial directory is then removed). */
int data_tree_begin(DataTree *t, const char *out, const char *const *classes, uint32_t n,
                    StkErr *err);

/* Writes marker_text as the marker, syncs the file systems, renames the partial
 * directory to out and syncs out's parent. Returns 0, or -1 with err (the partial
 * directory is left for data_tree_abort). */
int data_tree_commit(DataTree *t, const char *marker_text, StkErr *err);

/* Removes the partial directory, if any (after a failure); never fails. */
void data_tree_abort(DataTree *t);

/* Returns how many OUT.partial-* directories of earlier, interrupted runs lie next to
 * out (the caller may tell the user; they are never removed automatically). */
int data_tree_stale(const char *out);

/* Makes out's index usable: keeps out/stoker.index if it opens and validates, else
 * builds it (val/ folder split). stats receives class and sample counts. Returns 0, or
 * -1 with err. */
int data_tree_index(const char *out, LoaderScanStats *stats, StkErr *err);

/* Creates path (which must not exist) with mode 0644 and writes n bytes. Returns 0, or
 * -1 with err naming the file. */
int data_tree_write_file(const char *path, const void *buf, size_t n, StkErr *err);

/* mkdir -p path with mode 0755. Returns 0, or -1 with err naming the directory. */
int data_tree_mkdirs(const char *path, StkErr *err);

/* Removes path and everything under it without following symlinks. Returns 0 or -1. */
int data_tree_rmtree(const char *path);

#endif
