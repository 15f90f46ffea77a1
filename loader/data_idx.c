/* data_idx.c: IDX reader over zlib's gz* stream API, which reads gzip and plain files
 * alike, with every declared size checked before it is trusted. */
#include "data_idx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

void data_idx_free(DataIdx *out) {
    free(out->data);
    memset(out, 0, sizeof *out);
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads exactly n bytes or fails naming what was being read: truncation versus a
 * damaged gzip stream. */
static int gz_read_all(gzFile gz, void *buf, size_t n, const char *path, const char *what,
                       StkErr *err) {
    uint8_t *p = buf;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? 1u << 30 : (unsigned)n;
        int got = gzread(gz, p, chunk);
        if (got < 0) {
            int code;
            const char *msg = gzerror(gz, &code);
            if (code == Z_BUF_ERROR) /* the gzip stream ends early */
                return stk_errf(err, "%s: truncated: gzip stream ends with %zu bytes of %s "
                                "missing", path, n, what);
            return stk_errf(err, "%s: corrupt gzip stream while reading %s: %s", path, what,
                            code == Z_ERRNO ? strerror(errno) : msg);
        }
        if (got == 0)
            return stk_errf(err, "%s: truncated: %zu bytes of %s missing", path, n, what);
        p += got;
        n -= (size_t)got;
    }
    return 0;
}

/* Reads and checks the header; fills count, rows and cols. */
static int idx_header(gzFile gz, DataIdx *out, const char *path, uint32_t magic, StkErr *err) {
    uint8_t hdr[16];
    int ndim = (int)(magic & 0xff);
    if (gz_read_all(gz, hdr, 4, path, "the header", err) != 0) return -1;
    if (be32(hdr) != magic)
        return stk_errf(err, "%s: bad magic 0x%08x (expected 0x%08x: %s)", path, be32(hdr),
                        magic, magic == DATA_IDX_MAGIC_IMAGES ? "uint8 images" : "uint8 labels");
    if (gz_read_all(gz, hdr + 4, 4 * (size_t)ndim, path, "the header", err) != 0) return -1;
    out->file_count = be32(hdr + 4);
    out->rows = ndim == 3 ? be32(hdr + 8) : 1;
    out->cols = ndim == 3 ? be32(hdr + 12) : 1;
    if (out->file_count == 0 || out->file_count > DATA_IDX_MAX_COUNT)
        return stk_errf(err, "%s: item count %u out of range [1, %u]", path, out->file_count,
                        DATA_IDX_MAX_COUNT);
    if (out->rows == 0 || out->rows > DATA_IDX_MAX_SIDE || out->cols == 0 ||
        out->cols > DATA_IDX_MAX_SIDE)
        return stk_errf(err, "%s: image size %ux%u out of range [1, %u]", path, out->rows,
                        out->cols, DATA_IDX_MAX_SIDE);
    return 0;
}

int data_idx_read(DataIdx *out, const char *path, uint32_t magic, uint32_t limit, StkErr *err) {
    memset(out, 0, sizeof *out);
    if (magic != DATA_IDX_MAGIC_IMAGES && magic != DATA_IDX_MAGIC_LABELS)
        return stk_errf(err, "%s: unsupported IDX magic 0x%08x requested", path, magic);
    gzFile gz = gzopen(path, "rb");
    if (!gz) return stk_errf(err, "open %s: %s", path, errno ? strerror(errno) : "gzopen failed");
    int rc = -1;
    if (idx_header(gz, out, path, magic, err) != 0) goto bailout;
    out->count = limit && limit < out->file_count ? limit : out->file_count;
    size_t item = (size_t)out->rows * out->cols, bytes = item * out->count;
    if (!(out->data = malloc(bytes))) {
        stk_errf(err, "%s: out of memory for %zu bytes", path, bytes);
        goto bailout;
    }
    if (gz_read_all(gz, out->data, bytes, path, "the data", err) != 0) goto bailout;
    if (out->count == out->file_count) {
        uint8_t extra;
        int got = gzread(gz, &extra, 1);
        if (got != 0) {
            stk_errf(err, "%s: %s after the %u declared items", path,
                     got > 0 ? "trailing bytes" : "corrupt gzip stream", out->file_count);
            goto bailout;
        }
    }
    rc = 0;
bailout:
    gzclose(gz);
    return rc;
}
