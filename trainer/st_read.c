/* st_read.c: opening and validating safetensors files (see st_file.h). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "st_file.h"

static int parse_dtype(const char *s, StDtype *d) {
    for (int i = 0; i < ST_DTYPE_COUNT; i++)
        if (!strcmp(s, st_dtype_name((StDtype)i))) return *d = (StDtype)i, 0;
    return -1;
}

/* Fills t from one header entry; `buffer` is the byte buffer's size. */
static int parse_entry(const char *name, json_t *v, uint64_t buffer, StTensor *t, char *why,
                       size_t cap) {
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
    json_t *offs = json_object_get(v, "data_offsets");
    if (!json_is_object(v) || !json_is_string(dt) || !json_is_array(shape) ||
        !json_is_array(offs) || json_array_size(offs) != 2)
        return snprintf(why, cap, "tensor %s: needs dtype, shape and data_offsets", name), -1;
    if (parse_dtype(json_string_value(dt), &t->dtype))
        return snprintf(why, cap, "tensor %s: dtype %s not supported", name, json_string_value(dt)), -1;
    if (json_array_size(shape) > ST_MAX_DIMS)
        return snprintf(why, cap, "tensor %s: %zu dimensions", name, json_array_size(shape)), -1;
    t->ndim = (int)json_array_size(shape);
    uint64_t numel = 1;
    for (int d = 0; d < t->ndim; d++) {
        json_t *e = json_array_get(shape, (size_t)d);
        if (!json_is_integer(e) || json_integer_value(e) < 0 || (uint64_t)json_integer_value(e) > buffer)
            return snprintf(why, cap, "tensor %s: bad shape", name), -1;
        t->shape[d] = json_integer_value(e);
        numel *= (uint64_t)t->shape[d]; /* each factor <= buffer size: checked below */
        if (numel > buffer) numel = buffer + 1;
    }
    json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
        json_integer_value(e) < json_integer_value(b) || (uint64_t)json_integer_value(e) > buffer)
        return snprintf(why, cap, "tensor %s: data_offsets outside the %llu-byte buffer", name,
                        (unsigned long long)buffer), -1;
    uint64_t begin = (uint64_t)json_integer_value(b), end = (uint64_t)json_integer_value(e);
    if (numel * st_dtype_size(t->dtype) != end - begin)
        return snprintf(why, cap, "tensor %s: shape and dtype make %llu bytes, offsets %llu",
                        name, (unsigned long long)(numel * st_dtype_size(t->dtype)),
                        (unsigned long long)(end - begin)), -1;
    t->nbytes = end - begin;
    t->data = (const void *)(uintptr_t)begin; /* an offset until the buffer is known */
    return 0;
}

static int by_offset(const void *a, const void *b) {
    uintptr_t x = (uintptr_t)((const StTensor *)a)->data, y = (uintptr_t)((const StTensor *)b)->data;
    return x < y ? -1 : x > y;
}

/* Copies the metadata object's strings into f. */
static int parse_meta(StFile *f, json_t *md, char *why, size_t cap) {
    if (!json_is_object(md)) return snprintf(why, cap, "__metadata__ is not an object"), -1;
    size_t bytes = 0, n = json_object_size(md);
    const char *k;
    json_t *v;
    json_object_foreach(md, k, v) {
        if (!json_is_string(v)) return snprintf(why, cap, "__metadata__.%s is not a string", k), -1;
        bytes += strlen(k) + strlen(json_string_value(v)) + 2;
    }
    f->meta = calloc(n ? n : 1, sizeof *f->meta);
    f->meta_strings = malloc(bytes ? bytes : 1);
    if (!f->meta || !f->meta_strings) return snprintf(why, cap, "out of memory"), -1;
    char *p = f->meta_strings;
    json_object_foreach(md, k, v) {
        f->meta[f->meta_count].key = strcpy(p, k), p += strlen(k) + 1;
        f->meta[f->meta_count++].value = strcpy(p, json_string_value(v));
        p += strlen(json_string_value(v)) + 1;
    }
    return 0;
}

/* Parses and checks the header JSON; fills f->tensors and f->names. */
static int parse_header(StFile *f, const char *json, size_t len, uint64_t buffer, char *why,
                        size_t cap) {
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        if (!root) snprintf(why, cap, "header is not valid JSON: %s", jerr.text);
        else snprintf(why, cap, "header is not a JSON object");
        json_decref(root);
        return -1;
    }
    int rc = -1;
    size_t n = json_object_size(root), names = 0;
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) names += strlen(k) + 1;
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    f->names = malloc(names ? names : 1);
    if (!f->tensors || !f->names) { snprintf(why, cap, "out of memory"); goto out; }
    char *p = f->names;
    json_object_foreach(root, k, v) {
        if (!strcmp(k, "__metadata__")) {
            if (parse_meta(f, v, why, cap)) goto out;
            continue;
        }
        StTensor *t = &f->tensors[f->count];
        if (parse_entry(k, v, buffer, t, why, cap)) goto out;
        t->name = strcpy(p, k);
        p += strlen(k) + 1;
        f->count++;
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* The byte buffer must be covered exactly: sorted by offset, each tensor starts where
 * the previous ended, the last ends at the buffer's end (no overlaps, no holes). */
static int check_coverage(StFile *f, uint64_t buffer, char *why, size_t cap) {
    qsort(f->tensors, f->count, sizeof *f->tensors, by_offset);
    uint64_t at = 0;
    for (size_t i = 0; i < f->count; i++) {
        uint64_t begin = (uintptr_t)f->tensors[i].data;
        if (begin != at)
            return snprintf(why, cap, "tensor %s starts at %llu, expected %llu (%s)",
                            f->tensors[i].name, (unsigned long long)begin,
                            (unsigned long long)at, begin < at ? "overlap" : "hole"), -1;
        at = begin + f->tensors[i].nbytes;
    }
    if (at != buffer)
        return snprintf(why, cap, "tensors end at %llu but the buffer has %llu bytes",
                        (unsigned long long)at, (unsigned long long)buffer), -1;
    return 0;
}

int st_open(StFile *f, const char *path, StkErr *err) {
    memset(f, 0, sizeof *f);
    char why[512] = "";
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return stk_errf(err, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st)) {
        int e = errno;
        close(fd);
        return stk_errf(err, "%s: fstat: %s", path, strerror(e));
    }
    if (st.st_size < 8) {
        close(fd);
        return stk_errf(err, "%s: %lld bytes, not a safetensors file", path, (long long)st.st_size);
    }
    f->map_size = (size_t)st.st_size;
    void *map = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return stk_errf(err, "%s: mmap: %s", path, strerror(errno));
    f->map = map;
    f->path = strdup(path);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | f->map[i];
    if (hlen > ST_MAX_HEADER || hlen > f->map_size - 8) {
        snprintf(why, sizeof why, "header length %llu does not fit the %zu-byte file",
                 (unsigned long long)hlen, f->map_size);
        goto fail;
    }
    uint64_t buffer = f->map_size - 8 - hlen;
    if (parse_header(f, (const char *)f->map + 8, hlen, buffer, why, sizeof why) ||
        check_coverage(f, buffer, why, sizeof why))
        goto fail;
    for (size_t i = 0; i < f->count; i++)
        f->tensors[i].data = f->map + 8 + hlen + (uintptr_t)f->tensors[i].data;
    return 0;
fail:
    stk_errf(err, "%s: %s", path, why);
    st_close(f);
    return -1;
}

const StTensor *st_find(const StFile *f, const char *name) {
    for (size_t i = 0; i < f->count; i++)
        if (!strcmp(f->tensors[i].name, name)) return &f->tensors[i];
    return NULL;
}

const char *st_meta(const StFile *f, const char *key) {
    for (size_t i = 0; i < f->meta_count; i++)
        if (!strcmp(f->meta[i].key, key)) return f->meta[i].value;
    return NULL;
}

void st_close(StFile *f) {
    if (f->map) munmap((void *)f->map, f->map_size);
    free(f->path);
    free(f->tensors);
    free(f->names);
    free(f->meta);
    free(f->meta_strings);
    memset(f, 0, sizeof *f);
}
