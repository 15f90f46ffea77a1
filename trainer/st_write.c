/* st_write.c: writing safetensors files atomically (see st_file.h). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_file.h"

static const char *dtype_names[ST_DTYPE_COUNT] = {"F32", "F16", "BF16", "F64",
                                                  "I64", "I32", "U8",  "BOOL"};
static const size_t dtype_sizes[ST_DTYPE_COUNT] = {4, 2, 2, 8, 8, 4, 1, 1};

size_t st_dtype_size(StDtype d) { return (unsigned)d < ST_DTYPE_COUNT ? dtype_sizes[d] : 0; }

const char *st_dtype_name(StDtype d) { return (unsigned)d < ST_DTYPE_COUNT ? dtype_names[d] : "?"; }

int64_t st_numel(const StTensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static int check_tensors(const StTensor *t, size_t n, StkErr *err) {
    for (size_t i = 0; i < n; i++) {
        if (!t[i].name || !t[i].name[0] || !strcmp(t[i].name, "__metadata__"))
            return stk_errf(err, "tensor %zu: missing or reserved name", i);
        if (!st_dtype_size(t[i].dtype) || t[i].ndim < 0 || t[i].ndim > ST_MAX_DIMS)
            return stk_errf(err, "tensor %s: bad dtype or %d dimensions", t[i].name, t[i].ndim);
        for (int d = 0; d < t[i].ndim; d++)
            if (t[i].shape[d] < 0) return stk_errf(err, "tensor %s: negative shape", t[i].name);
        if (!t[i].data && st_numel(&t[i]) > 0) return stk_errf(err, "tensor %s: no data", t[i].name);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(t[i].name, t[j].name)) return stk_errf(err, "tensor %s: name used twice", t[i].name);
    }
    return 0;
}

/* The JSON header, space-padded so that 8 + its length is a multiple of 8. */
static char *make_header(const StTensor *t, size_t n, const StMeta *meta, size_t meta_count,
                         size_t *len) {
    json_t *root = json_object(), *md = json_object();
    int bad = !root || !md;
    for (size_t i = 0; !bad && i < meta_count; i++)
        bad = json_object_set_new(md, meta[i].key, json_string(meta[i].value)) != 0;
    if (!bad && meta_count) bad = json_object_set(root, "__metadata__", md) != 0;
    json_decref(md);
    uint64_t off = 0;
    for (size_t i = 0; !bad && i < n; i++) {
        json_t *shape = json_array();
        for (int d = 0; shape && d < t[i].ndim; d++)
            bad |= json_array_append_new(shape, json_integer(t[i].shape[d])) != 0;
        uint64_t bytes = (uint64_t)st_numel(&t[i]) * st_dtype_size(t[i].dtype);
        json_t *entry = json_pack("{s:s, s:o, s:[I, I]}", "dtype", st_dtype_name(t[i].dtype),
                                  "shape", shape, "data_offsets", (json_int_t)off,
                                  (json_int_t)(off + bytes));
        bad |= !entry || json_object_set_new(root, t[i].name, entry) != 0;
        off += bytes;
    }
    /* a key or value that is not UTF-8, or no memory: refuse rather than drop entries */
    char *json = bad ? NULL : json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!json) return NULL;
    size_t raw = strlen(json), padded = (raw + 7) / 8 * 8;
    char *out = realloc(json, padded + 1);
    if (!out) { free(json); return NULL; }
    memset(out + raw, ' ', padded - raw);
    out[padded] = '\0';
    *len = padded;
    return out;
}

static int write_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Writes the whole file to fd; -1 with errno set on failure. */
static int write_body(int fd, const char *header, size_t hlen, const StTensor *t, size_t n) {
    uint8_t le[8];
    for (int i = 0; i < 8; i++) le[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    if (write_all(fd, le, 8) || write_all(fd, header, hlen)) return -1;
    for (size_t i = 0; i < n; i++)
        if (write_all(fd, t[i].data, (size_t)st_numel(&t[i]) * st_dtype_size(t[i].dtype))) return -1;
    return fsync(fd);
}

static void fsync_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) { fsync(fd); close(fd); }
    free(copy);
}

int st_write(const char *path, const StTensor *t, size_t n, const StMeta *meta,
             size_t meta_count, StkErr *err) {
    if (check_tensors(t, n, err)) return stk_err_wrap(err, "write %s", path);
    size_t hlen;
    char *header = make_header(t, n, meta, meta_count, &hlen);
    if (!header)
        return stk_errf(err, "write %s: cannot build the JSON header (names and metadata must "
                             "be UTF-8)", path);
    size_t plen = strlen(path) + 16;
    char *tmp = malloc(plen);
    int fd = -1, rc = -1;
    if (!tmp) { stk_errf(err, "write %s: out of memory", path); goto out; }
    snprintf(tmp, plen, "%s.tmp-XXXXXX", path);
    fd = mkstemp(tmp);
    if (fd < 0) { stk_errf(err, "write %s: mkstemp: %s", path, strerror(errno)); goto out; }
    int failed = write_body(fd, header, hlen, t, n), e = errno;
    if (close(fd) && !failed) failed = 1, e = errno; /* close can report a deferred ENOSPC */
    fd = -1;
    if (failed) {
        unlink(tmp);
        stk_errf(err, "write %s: %s (the previous file, if any, is intact)", path, strerror(e));
        goto out;
    }
    if (rename(tmp, path)) {
        stk_errf(err, "write %s: rename: %s", path, strerror(errno));
        unlink(tmp);
        goto out;
    }
    fsync_dir(path);
    rc = 0;
out:
    if (fd >= 0) close(fd);
    free(tmp);
    free(header);
    return rc;
}
