/* loader_index.c: maps an index file read-only, validates all of it once, then serves
 * O(1) lookups from the mapping (layout in loader_index.h).
 *
 * Validation reads every record once at open (a few ms per million samples) so that
 * the lookups on the hot path need no checks beyond the split bound. A file replaced
 * by a rebuild while mapped stays valid: rename leaves the old inode to its readers. */
#include "loader_index.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* All messages start with "index PATH: ". */
#define IX_FAIL(ix, err, ...) index_fail((ix), (err), __VA_ARGS__)

__attribute__((format(printf, 3, 4)))
static int index_fail(const LoaderIndex *ix, StkErr *err, const char *fmt, ...) {
    char what[STK_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return stk_errf(err, "index %s: %s", ix->path, what);
}

/* Checks that count elements of size bytes at off are 8-aligned, start at or after
 * lo and end inside the file; *end receives the end offset. */
static int check_section(const LoaderIndex *ix, StkErr *err, const char *what, uint64_t off,
                         uint64_t count, uint64_t size, uint64_t lo, uint64_t *end) {
    uint64_t fsize = ix->header->file_size;
    if (off % 8 != 0 || off < lo || off > fsize)
        return IX_FAIL(ix, err, "%s offset %llu out of range (expected 8-aligned in [%llu, %llu])",
                       what, (unsigned long long)off, (unsigned long long)lo,
                       (unsigned long long)fsize);
    if (size && count > (fsize - off) / size)
        return IX_FAIL(ix, err, "%s (%llu x %llu bytes at offset %llu) run past the end "
                       "of the %llu-byte file", what, (unsigned long long)count,
                       (unsigned long long)size, (unsigned long long)off,
                       (unsigned long long)fsize);
    *end = off + count * size;
    return 0;
}

/* Checks a string of len bytes at blob offset off: inside the blob, NUL right after it,
 * no NUL inside. */
static int check_string(const LoaderIndex *ix, uint64_t off, uint64_t len) {
    uint64_t size = ix->header->strings_size;
    if (len == 0 || off >= size || len >= size - off) return -1;
    const char *s = ix->strings + off;
    return s[len] == '\0' && memchr(s, '\0', len) == NULL ? 0 : -1;
}

/* Validates the fixed header against the real file size. */
static int check_header(const LoaderIndex *ix, StkErr *err) {
    const LoaderIndexHeader *h = ix->header;
    if (ix->map_size < sizeof h->magic || memcmp(h->magic, LOADER_INDEX_MAGIC, sizeof h->magic))
        return IX_FAIL(ix, err, "bad magic (not a stoker index, expected \"%s\")",
                       LOADER_INDEX_MAGIC);
    if (ix->map_size < sizeof *h)
        return IX_FAIL(ix, err, "truncated: %zu bytes, smaller than the %zu-byte header",
                       ix->map_size, sizeof *h);
    if (h->byte_order == __builtin_bswap32(LOADER_INDEX_BYTE_ORDER))
        return IX_FAIL(ix, err, "written on a host of the other byte order; rebuild it here");
    if (h->byte_order != LOADER_INDEX_BYTE_ORDER)
        return IX_FAIL(ix, err, "bad byte-order mark 0x%08x", h->byte_order);
    if (h->version != LOADER_INDEX_VERSION)
        return IX_FAIL(ix, err, "unsupported format version %u (this build reads %u); rebuild "
                       "it with stoker-data index", h->version, LOADER_INDEX_VERSION);
    if (h->header_size != sizeof *h || h->class_size != sizeof(LoaderIndexClass) ||
        h->record_size != sizeof(LoaderIndexRecord))
        return IX_FAIL(ix, err, "bad structure sizes (header %u, class %u, record %u)",
                       h->header_size, h->class_size, h->record_size);
    if (h->file_size > ix->map_size)
        return IX_FAIL(ix, err, "truncated: header says %llu bytes, file has %zu",
                       (unsigned long long)h->file_size, ix->map_size);
    if (h->file_size < ix->map_size)
        return IX_FAIL(ix, err, "%zu trailing bytes after the %llu bytes the header declares",
                       ix->map_size - (size_t)h->file_size, (unsigned long long)h->file_size);
    if (h->num_classes == 0) return IX_FAIL(ix, err, "no classes");
    if (h->split_mode > LOADER_SPLIT_HASH || !(h->val_fraction >= 0 && h->val_fraction < 1))
        return IX_FAIL(ix, err, "bad split settings (mode %u, fraction %g)", h->split_mode,
                       h->val_fraction);
    if (h->reserved[0] || h->reserved[1] || h->reserved[2])
        return IX_FAIL(ix, err, "reserved header fields are not zero");
    return 0;
}

/* Validates section bounds, the blob's terminator and the root string. */
static int check_sections(LoaderIndex *ix, StkErr *err) {
    const LoaderIndexHeader *h = ix->header;
    uint64_t n = h->num_samples[LOADER_TRAIN] + h->num_samples[LOADER_VAL], end = 0;
    if (n < h->num_samples[LOADER_TRAIN])
        return IX_FAIL(ix, err, "sample counts overflow");
    if (check_section(ix, err, "class table", h->classes_off, h->num_classes,
                      sizeof(LoaderIndexClass), sizeof *h, &end) ||
        check_section(ix, err, "record array", h->records_off, n, sizeof(LoaderIndexRecord),
                      end, &end) ||
        check_section(ix, err, "string blob", h->strings_off, h->strings_size, 1, end, &end))
        return -1;
    ix->classes = (const LoaderIndexClass *)(ix->map + h->classes_off);
    ix->records = (const LoaderIndexRecord *)(ix->map + h->records_off);
    ix->strings = (const char *)(ix->map + h->strings_off);
    if (h->strings_size == 0 || ix->strings[h->strings_size - 1] != '\0')
        return IX_FAIL(ix, err, "string blob is not NUL-terminated");
    if (h->root_off >= h->strings_size || ix->strings[h->root_off] != '/')
        return IX_FAIL(ix, err, "root offset %llu out of range or not an absolute path",
                       (unsigned long long)h->root_off);
    return 0;
}

/* Validates the class table: names in the blob, non-empty, no '/', strictly sorted. */
static int check_classes(const LoaderIndex *ix, StkErr *err) {
    for (uint32_t c = 0; c < ix->header->num_classes; c++) {
        const LoaderIndexClass *k = &ix->classes[c];
        if (check_string(ix, k->name_off, k->name_len) != 0)
            return IX_FAIL(ix, err, "class %u: name offset %llu / length %u out of range or "
                           "not NUL-terminated in the %llu-byte string blob", c,
                           (unsigned long long)k->name_off, k->name_len,
                           (unsigned long long)ix->header->strings_size);
        const char *name = ix->strings + k->name_off;
        if (strchr(name, '/') || k->reserved)
            return IX_FAIL(ix, err, "class %u: bad name \"%s\"", c, name);
        if (c > 0 && strcmp(ix->strings + ix->classes[c - 1].name_off, name) >= 0)
            return IX_FAIL(ix, err, "class %u: \"%s\" out of sorted order", c, name);
    }
    return 0;
}

/* Validates every record (path, label, split) and the per-class counts. */
static int check_records(const LoaderIndex *ix, StkErr *err) {
    const LoaderIndexHeader *h = ix->header;
    uint64_t n = h->num_samples[LOADER_TRAIN] + h->num_samples[LOADER_VAL];
    uint64_t *counts = calloc((size_t)h->num_classes * LOADER_NUM_SPLITS, sizeof *counts);
    if (!counts) return IX_FAIL(ix, err, "out of memory");
    int rc = 0;
    for (uint64_t i = 0; rc == 0 && i < n; i++) {
        const LoaderIndexRecord *r = &ix->records[i];
        uint32_t split = i < h->num_samples[LOADER_TRAIN] ? LOADER_TRAIN : LOADER_VAL;
        if (r->label < 0 || (uint32_t)r->label >= h->num_classes)
            rc = IX_FAIL(ix, err, "record %llu: label %d out of range (%u classes)",
                         (unsigned long long)i, r->label, h->num_classes);
        else if (r->split != split || r->reserved)
            rc = IX_FAIL(ix, err, "record %llu: split %u where split %u is expected",
                         (unsigned long long)i, r->split, split);
        else if (check_string(ix, r->path_off, r->path_len) != 0)
            rc = IX_FAIL(ix, err, "record %llu: path offset %llu / length %u out of range or "
                         "not NUL-terminated in the %llu-byte string blob",
                         (unsigned long long)i, (unsigned long long)r->path_off, r->path_len,
                         (unsigned long long)h->strings_size);
        else if (ix->strings[r->path_off] == '/')
            rc = IX_FAIL(ix, err, "record %llu: absolute path %s", (unsigned long long)i,
                         ix->strings + r->path_off);
        else
            counts[(size_t)r->label * LOADER_NUM_SPLITS + split]++;
    }
    for (uint32_t c = 0; rc == 0 && c < h->num_classes; c++) {
        const uint64_t *got = counts + (size_t)c * LOADER_NUM_SPLITS;
        if (memcmp(got, ix->classes[c].count, sizeof ix->classes[c].count) != 0)
            rc = IX_FAIL(ix, err, "class %u: table says %llu train / %llu val samples, records "
                         "have %llu / %llu", c, (unsigned long long)ix->classes[c].count[0],
                         (unsigned long long)ix->classes[c].count[1],
                         (unsigned long long)got[0], (unsigned long long)got[1]);
    }
    free(counts);
    return rc;
}

int loader_index_open(LoaderIndex *ix, const char *path, StkErr *err) {
    memset(ix, 0, sizeof *ix);
    if (!(ix->path = strdup(path))) return stk_errf(err, "index %s: out of memory", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        stk_errf(err, "index %s: %s", path, strerror(errno));
        goto bailout;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        stk_errf(err, "index %s: fstat: %s", path, strerror(errno));
        close(fd);
        goto bailout;
    }
    if (!S_ISREG(st.st_mode) || st.st_size == 0) {
        stk_errf(err, "index %s: %s", path, st.st_size ? "not a regular file" : "empty file");
        close(fd);
        goto bailout;
    }
    ix->map_size = (size_t)st.st_size;
    void *map = mmap(NULL, ix->map_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        stk_errf(err, "index %s: mmap %zu bytes: %s", path, ix->map_size, strerror(errno));
        goto bailout;
    }
    ix->map = map;
    ix->header = map;
    if (check_header(ix, err) || check_sections(ix, err) || check_classes(ix, err) ||
        check_records(ix, err))
        goto bailout;
    return 0;
bailout:
    loader_index_close(ix);
    return -1;
}

void loader_index_close(LoaderIndex *ix) {
    if (ix->map) munmap((void *)ix->map, ix->map_size);
    free(ix->path);
    memset(ix, 0, sizeof *ix);
}

uint64_t loader_index_count(const LoaderIndex *ix, LoaderSplit split) {
    return split < LOADER_NUM_SPLITS ? ix->header->num_samples[split] : 0;
}

uint32_t loader_index_num_classes(const LoaderIndex *ix) { return ix->header->num_classes; }

const char *loader_index_class_name(const LoaderIndex *ix, uint32_t c) {
    return c < ix->header->num_classes ? ix->strings + ix->classes[c].name_off : NULL;
}

uint64_t loader_index_class_count(const LoaderIndex *ix, uint32_t c, LoaderSplit split) {
    if (c >= ix->header->num_classes || split >= LOADER_NUM_SPLITS) return 0;
    return ix->classes[c].count[split];
}

const char *loader_index_root(const LoaderIndex *ix) {
    return ix->strings + ix->header->root_off;
}

int loader_index_get(const LoaderIndex *ix, LoaderSplit split, uint64_t i, LoaderSample *out) {
    if (split >= LOADER_NUM_SPLITS || i >= ix->header->num_samples[split]) return -1;
    uint64_t first = split == LOADER_VAL ? ix->header->num_samples[LOADER_TRAIN] : 0;
    const LoaderIndexRecord *r = &ix->records[first + i];
    out->path = ix->strings + r->path_off;
    out->label = r->label;
    out->file_size = r->file_size;
    return 0;
}
