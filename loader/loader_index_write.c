/* loader_index_write.c: writes a scanned tree as an index file (layout in
 * loader_index.h) and the scan-and-write entry point.
 *
 * The scan's string arena already holds the class names and paths NUL-terminated, so
 * it becomes the blob as it is (its offsets stay valid) with the root appended. */
#include "loader_index.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(sizeof(LoaderIndexHeader) == 128, "index header layout");
_Static_assert(sizeof(LoaderIndexClass) == 32, "index class layout");
_Static_assert(sizeof(LoaderIndexRecord) == 32, "index record layout");

static uint64_t align8(uint64_t x) { return (x + 7) & ~(uint64_t)7; }

/* Fills the header for scan: counts, section offsets and split settings. */
static void index_header(LoaderIndexHeader *h, const LoaderScan *scan,
                         const LoaderScanStats *stats) {
    memset(h, 0, sizeof *h);
    memcpy(h->magic, LOADER_INDEX_MAGIC, sizeof h->magic);
    h->version = LOADER_INDEX_VERSION;
    h->byte_order = LOADER_INDEX_BYTE_ORDER;
    h->header_size = sizeof(LoaderIndexHeader);
    h->class_size = sizeof(LoaderIndexClass);
    h->record_size = sizeof(LoaderIndexRecord);
    h->num_classes = scan->num_classes;
    memcpy(h->num_samples, scan->split_count, sizeof h->num_samples);
    h->classes_off = align8(sizeof *h);
    h->records_off = align8(h->classes_off + (uint64_t)scan->num_classes * h->class_size);
    h->strings_off = align8(h->records_off + scan->num_samples * h->record_size);
    h->root_off = scan->strings_len;
    h->strings_size = scan->strings_len + strlen(scan->root) + 1;
    h->file_size = h->strings_off + h->strings_size;
    h->split_mode = stats->val_from_folder ? LOADER_SPLIT_FOLDER : LOADER_SPLIT_HASH;
    h->split_seed = stats->val_from_folder ? 0 : stats->seed;
    h->val_fraction = stats->val_from_folder ? 0 : stats->val_fraction;
}

/* Writes zero bytes up to file offset target (sections are 8-byte aligned). */
static int pad_to(FILE *f, uint64_t *pos, uint64_t target) {
    static const char zeros[8];
    if (target > *pos && fwrite(zeros, 1, target - *pos, f) != target - *pos) return -1;
    *pos = target;
    return 0;
}

/* Streams header, class table, records and blob to f. Returns 0 or -1 (errno set). */
static int index_stream(FILE *f, const LoaderScan *scan, const LoaderIndexHeader *h) {
    uint64_t *counts = calloc((size_t)scan->num_classes * LOADER_NUM_SPLITS, sizeof *counts);
    if (!counts) return -1;
    for (uint64_t i = 0; i < scan->num_samples; i++)
        counts[(size_t)scan->samples[i].label * LOADER_NUM_SPLITS + scan->samples[i].split]++;
    uint64_t pos = sizeof *h;
    int rc = fwrite(h, sizeof *h, 1, f) == 1 ? pad_to(f, &pos, h->classes_off) : -1;
    for (uint32_t c = 0; rc == 0 && c < scan->num_classes; c++) {
        LoaderIndexClass k = {.name_off = scan->class_off[c]};
        k.name_len = (uint32_t)strlen(scan->strings + k.name_off);
        memcpy(k.count, counts + (size_t)c * LOADER_NUM_SPLITS, sizeof k.count);
        if (fwrite(&k, sizeof k, 1, f) != 1) rc = -1;
    }
    free(counts);
    pos = h->classes_off + (uint64_t)scan->num_classes * sizeof(LoaderIndexClass);
    if (rc == 0) rc = pad_to(f, &pos, h->records_off);
    for (uint64_t i = 0; rc == 0 && i < scan->num_samples; i++) {
        const LoaderScanSample *s = &scan->samples[i];
        LoaderIndexRecord r = {.path_off = s->path_off, .file_size = s->size,
                               .path_len = s->path_len, .label = s->label, .split = s->split};
        if (fwrite(&r, sizeof r, 1, f) != 1) rc = -1;
    }
    pos = h->records_off + scan->num_samples * sizeof(LoaderIndexRecord);
    if (rc == 0) rc = pad_to(f, &pos, h->strings_off);
    if (rc == 0 && fwrite(scan->strings, 1, scan->strings_len, f) != scan->strings_len) rc = -1;
    if (rc == 0 && fwrite(scan->root, 1, strlen(scan->root) + 1, f) != strlen(scan->root) + 1)
        rc = -1;
    return rc;
}

/* fsyncs the directory holding path, so that a rename into it is durable. */
static int sync_parent(const char *path, StkErr *err) {
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    const char *dir = dirname(buf);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return stk_errf(err, "open directory %s: %s", dir, strerror(errno));
    int rc = fsync(fd);
    close(fd);
    return rc == 0 ? 0 : stk_errf(err, "fsync directory %s: %s", dir, strerror(errno));
}

int loader_index_write(const LoaderScan *scan, const LoaderScanStats *stats,
                       const char *path, StkErr *err) {
    LoaderIndexHeader h;
    index_header(&h, scan, stats);
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp-XXXXXX", path) >= (int)sizeof tmp)
        return stk_errf(err, "index %s: path too long", path);
    int fd = mkstemp(tmp);
    if (fd < 0) return stk_errf(err, "create %s: %s", tmp, strerror(errno));
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        stk_errf(err, "fdopen %s: %s", tmp, strerror(errno));
        close(fd);
        goto bailout;
    }
    if (fchmod(fd, 0644) != 0 || index_stream(f, scan, &h) != 0 || fflush(f) != 0 ||
        fsync(fd) != 0) {
        stk_errf(err, "write %s: %s", tmp, strerror(errno));
        fclose(f);
        goto bailout;
    }
    if (fclose(f) != 0) {
        stk_errf(err, "close %s: %s", tmp, strerror(errno));
        goto bailout;
    }
    if (rename(tmp, path) != 0) {
        stk_errf(err, "rename %s to %s: %s", tmp, path, strerror(errno));
        goto bailout;
    }
    return sync_parent(path, err);
bailout:
    unlink(tmp);
    return -1;
}

int loader_index_build(const char *dir, const LoaderScanOptions *opt, const char *out_path,
                       LoaderScanStats *stats, StkErr *err) {
    LoaderScan scan;
    LoaderScanStats local;
    if (!stats) stats = &local;
    char def[PATH_MAX];
    if (!out_path) {
        if (snprintf(def, sizeof def, "%s/%s", dir, LOADER_INDEX_DEFAULT_NAME) >= (int)sizeof def)
            return stk_errf(err, "dataset directory %s: path too long", dir);
        out_path = def;
    }
    int rc = loader_scan_run(&scan, dir, opt, stats, err);
    if (rc == 0) rc = loader_index_write(&scan, stats, out_path, err);
    loader_scan_free(&scan);
    return rc;
}
