/* loader_decode.c: crop-aware JPEG decoding with libjpeg-turbo's jpeglib API (see
 * loader_decode.h). TurboJPEG 2.1 (Debian 12) cannot decode a region, jpeglib can. */
#include "loader_decode.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jerror.h>


/* Tail searched for the end-of-image marker: FF D9 appears nowhere else near the end
 * (entropy-coded data stuffs every FF), and some writers append a trailer after it. */
#define EOI_SEARCH_BYTES 65536

static void on_error_exit(j_common_ptr cinfo) {
    LoaderJpegErr *e = (LoaderJpegErr *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jump, 1);
}

/* Warnings that mean the pixels are garbage: truncation and broken entropy-coded data.
 * libjpeg goes on and fills in grey or noise; we would rather skip and report the file.
 * Other warnings (extraneous bytes before a marker, common in real datasets) decode as
 * Pillow decodes them. */
static int is_fatal_warning(int code) {
    return code == JWRN_JPEG_EOF || code == JWRN_HUFF_BAD_CODE || code == JWRN_HIT_MARKER ||
           code == JWRN_MUST_RESYNC;
}

/* Warnings are quiet; fatal ones are remembered and fail the decode. */
static void on_message(j_common_ptr cinfo, int level) {
    LoaderJpegErr *e = (LoaderJpegErr *)cinfo->err;
    if (level == -1 && is_fatal_warning(cinfo->err->msg_code) && !e->fatal_warning) {
        (*cinfo->err->format_message)(cinfo, e->msg);
        e->fatal_warning = 1;
    }
}

static void on_output(j_common_ptr cinfo) { (void)cinfo; }

struct jpeg_error_mgr *loader_jpeg_err(LoaderJpegErr *e) {
    struct jpeg_error_mgr *m = jpeg_std_error(&e->mgr);
    m->error_exit = on_error_exit;
    m->emit_message = on_message;
    m->output_message = on_output;
    e->fatal_warning = 0;
    return m;
}

int loader_decoder_init(LoaderDecoder *d, uint64_t max_pixels, StkErr *err) {
    memset(d, 0, sizeof *d);
    d->max_pixels = max_pixels ? max_pixels : LOADER_DEFAULT_MAX_PIXELS;
    d->use_windows = 1;
    d->cinfo.err = loader_jpeg_err(&d->jerr);
    if (setjmp(d->jerr.jump)) return stk_errf(err, "jpeg_create_decompress: %s", d->jerr.msg);
    jpeg_create_decompress(&d->cinfo);
    return 0;
}

void loader_decoder_free(LoaderDecoder *d) {
    jpeg_destroy_decompress(&d->cinfo);
    free(d->file);
    free(d->rows);
    aug_work_free(&d->work);
    loader_window_free(&d->window);
    memset(d, 0, sizeof *d);
}

static int grow(uint8_t **p, size_t *cap, size_t n, StkErr *err) {
    if (n <= *cap) return 0;
    uint8_t *q = realloc(*p, n);
    if (!q) return stk_errf(err, "out of memory (%zu bytes)", n);
    *p = q;
    *cap = n;
    return 0;
}

static int read_file(LoaderDecoder *d, const char *path, StkErr *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return stk_errf(err, "%s", strerror(errno));
    struct stat st;
    int rc = -1;
    if (fstat(fd, &st)) { stk_errf(err, "fstat: %s", strerror(errno)); goto out; }
    if (!S_ISREG(st.st_mode)) { stk_errf(err, "not a regular file"); goto out; }
    if (grow(&d->file, &d->file_cap, (size_t)st.st_size + 1, err)) goto out;
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, d->file + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) { stk_errf(err, "read: %s", strerror(errno)); goto out; }
        if (n == 0) break; /* shrank while we read: decode what is there */
        got += (size_t)n;
    }
    d->file_len = got;
    rc = 0;
out:
    close(fd);
    return rc;
}

static int has_eoi(const uint8_t *p, size_t len) {
    size_t from = len > EOI_SEARCH_BYTES ? len - EOI_SEARCH_BYTES : 0;
    for (size_t i = len; i-- > from + 1;)
        if (p[i] == 0xD9 && p[i - 1] == 0xFF) return 1;
    return 0;
}

/* Parses the header of the bytes in d->file. */
static int read_header(LoaderDecoder *d, StkErr *err) {
    d->can_window = 0;
    if (d->file_len == 0) return stk_errf(err, "empty file");
    if (d->file_len < 2 || d->file[0] != 0xFF || d->file[1] != 0xD8)
        return stk_errf(err, "not a JPEG file: starts with 0x%02x 0x%02x", d->file[0],
                        d->file_len > 1 ? d->file[1] : 0);
    if (!has_eoi(d->file, d->file_len))
        return stk_errf(err, "truncated: no end-of-image marker");
    d->jerr.fatal_warning = 0;
    if (setjmp(d->jerr.jump)) {
        jpeg_abort_decompress(&d->cinfo);
        return stk_errf(err, "%s", d->jerr.msg);
    }
    jpeg_abort_decompress(&d->cinfo); /* an image opened and not decoded ends here */
    jpeg_mem_src(&d->cinfo, d->file, (unsigned long)d->file_len);
    if (jpeg_read_header(&d->cinfo, TRUE) != JPEG_HEADER_OK) {
        jpeg_abort_decompress(&d->cinfo);
        return stk_errf(err, "no image in the file (tables only)");
    }
    d->width = (int)d->cinfo.image_width;
    d->height = (int)d->cinfo.image_height;
    d->components = d->cinfo.num_components;
    if ((uint64_t)d->width * (uint64_t)d->height > d->max_pixels) {
        jpeg_abort_decompress(&d->cinfo);
        int w = d->width, h = d->height;
        d->width = d->height = 0; /* nothing open */
        return stk_errf(err, "%dx%d = %.1f megapixels, over the %.1f megapixel cap", w, h,
                        (double)w * h / 1e6, d->max_pixels / 1e6);
    }
    d->can_window = loader_window_geom(&d->cinfo, d->file, d->file_len, &d->geom);
    return 0;
}

int loader_decode_open(LoaderDecoder *d, const char *path, StkErr *err) {
    d->width = d->height = 0;
    if (read_file(d, path, err)) return -1;
    return read_header(d, err);
}

int loader_decode_open_mem(LoaderDecoder *d, const void *data, size_t len, StkErr *err) {
    d->width = d->height = 0;
    if (grow(&d->file, &d->file_cap, len + 1, err)) return -1;
    if (len) memcpy(d->file, data, len);
    d->file_len = len;
    return read_header(d, err);
}

/* Pillow's CMYK -> RGB (Convert.c cmyk2rgb) on Adobe-inverted data, as Pillow reads every
 * CMYK JPEG ("CMYK;I"), so CMYK files look as they do in torchvision. */
static void cmyk_to_rgb(const uint8_t *in, uint8_t *out, size_t n) {
    for (size_t x = 0; x < n; x++, in += 4, out += 3) {
        int nk = in[3]; /* 255 - K, where K = 255 - stored */
        for (int c = 0; c < 3; c++) {
            int tmp = (255 - in[c]) * nk + 128;
            int v = nk - (((tmp >> 8) + tmp) >> 8);
            out[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
}

/* The rows and columns of the image decoded at 1/denom scale that cover box (full-size
 * coordinates), and the box in the coordinates of that decoded region. */
typedef struct Region {
    JDIMENSION x0, width; /* columns decoded: libjpeg widens them to iMCU boundaries */
    int y0, y1;           /* rows decoded */
    AugBox box;           /* the crop box relative to (x0, y0), scaled */
} Region;

/* Smallest SIMD-friendly DCT scale whose output still holds the crop at its size. */
static int pick_denom(AugBox b, int out_w, int out_h) {
    static const int denoms[] = {8, 4, 2};
    for (int i = 0; i < 3; i++)
        if ((b.x1 - b.x0) / denoms[i] >= out_w && (b.y1 - b.y0) / denoms[i] >= out_h)
            return denoms[i];
    return 1;
}

/* Decodes the rows of the region into d->rows as packed RGB (width*3 bytes a row); CMYK
 * rows go through a line buffer after them. Must run under d's setjmp. */
static int decode_region(LoaderDecoder *d, Region *r, StkErr *err) {
    struct jpeg_decompress_struct *ci = &d->cinfo;
    jpeg_crop_scanline(ci, &r->x0, &r->width);
    const int cmyk = ci->out_color_components == 4;
    const size_t stride = (size_t)r->width * 3;
    const size_t packed = stride * (size_t)(r->y1 - r->y0);
    if (grow(&d->rows, &d->rows_cap, packed + (cmyk ? (size_t)r->width * 4 : 0), err))
        return -1;
    if (r->y0 > 0 && jpeg_skip_scanlines(ci, (JDIMENSION)r->y0) != (JDIMENSION)r->y0)
        return stk_errf(err, "jpeg_skip_scanlines: short skip");
    while ((int)ci->output_scanline < r->y1) {
        uint8_t *out = d->rows + (size_t)((int)ci->output_scanline - r->y0) * stride;
        JSAMPROW row = cmyk ? d->rows + packed : out;
        if (jpeg_read_scanlines(ci, &row, 1) != 1)
            return stk_errf(err, "jpeg_read_scanlines: no row");
        if (cmyk) cmyk_to_rgb(row, out, r->width);
        if (d->jerr.fatal_warning) return stk_errf(err, "%s", d->jerr.msg);
    }
    return 0;
}

/* Starts decompression at 1/denom scale and works out the region covering box. The
 * stream decoded may be a window of the image whose origin is (ox, oy) in it (full-size
 * pixels, on an MCU: a multiple of 8, so exact at every scale); box and the scale are
 * the whole image's, as libjpeg rounds its size (output = ceil(size / denom)). */
static void start(LoaderDecoder *d, int denom, AugBox box, Region *r, int ox, int oy) {
    struct jpeg_decompress_struct *ci = &d->cinfo;
    ci->scale_num = 1;
    ci->scale_denom = (unsigned)denom;
    ci->out_color_space = d->components == 4 ? JCS_CMYK : JCS_RGB;
    jpeg_start_decompress(ci);
    int fw = (d->width + denom - 1) / denom, fh = (d->height + denom - 1) / denom;
    double sx = (double)fw / d->width, sy = (double)fh / d->height;
    AugBox b = {box.x0 * sx, box.y0 * sy, box.x1 * sx, box.y1 * sy};
    if (b.x1 > fw) b.x1 = fw;
    if (b.y1 > fh) b.y1 = fh;
    b.x0 -= ox / denom, b.x1 -= ox / denom, b.y0 -= oy / denom, b.y1 -= oy / denom;
    if (b.x1 > ci->output_width) b.x1 = ci->output_width;
    if (b.y1 > ci->output_height) b.y1 = ci->output_height;
    /* One column more on each side: libjpeg's fancy upsampling treats the edges of a
     * cropped scanline as image edges, so its first and last columns differ from a full
     * decode; with the margin those columns are never used. */
    double c0 = floor(b.x0) - 1, c1 = ceil(b.x1) + 1;
    r->x0 = (JDIMENSION)(c0 < 0 ? 0 : c0);
    r->width = (JDIMENSION)(c1 > ci->output_width ? ci->output_width : c1) - r->x0;
    r->y0 = (int)floor(b.y0);
    r->y1 = (int)ceil(b.y1);
    r->box = b;
}

/* For a restart-marked file: the window of the box's MCUs, with one MCU more on each
 * side where the image goes on (upsampling reads a sample past each edge), widened to
 * where segments start, cut into d->window; its origin in *ox, *oy. Returns 1 with a
 * window, 0 to decode the file whole, -1 out of memory. */
static int cut_window(LoaderDecoder *d, AugBox box, int *ox, int *oy) {
    const LoaderWindowGeom *g = &d->geom;
    int c0 = (int)floor(box.x0 / g->mcu_w) - 1, c1 = (int)ceil(box.x1 / g->mcu_w) + 1;
    int r0 = (int)floor(box.y0 / g->mcu_h) - 1, r1 = (int)ceil(box.y1 / g->mcu_h) + 1;
    c0 = c0 < 0 ? 0 : c0 / g->interval * g->interval;
    r0 = r0 < 0 ? 0 : r0 / g->row_step * g->row_step;
    c1 = c1 > g->cols ? g->cols : c1;
    r1 = r1 > g->rows ? g->rows : r1;
    if (!g->by_columns) c0 = 0, c1 = g->cols; /* whole rows */
    if (r0 == 0 && c0 == 0 && c1 >= g->cols) return 0; /* the plain decode does as well */
    int rc = loader_window_build(&d->window, g, d->file, d->file_len, c0, c1, r0, r1);
    if (rc == -2) return -1;
    if (rc) return 0;
    *ox = c0 * g->mcu_w, *oy = r0 * g->mcu_h;
    return 1;
}

int loader_decode_crop(LoaderDecoder *d, const LoaderCropSpec *spec, AugImage *dst,
                       StkErr *err) {
    if (!d->width) return stk_errf(err, "loader_decode_crop: no image open");
    AugBox box = spec->box;
    if (!(box.x0 >= 0 && box.y0 >= 0 && box.x1 <= d->width && box.y1 <= d->height &&
          box.x0 < box.x1 && box.y0 < box.y1))
        return stk_errf(err, "crop (%g,%g)-(%g,%g) outside the %dx%d image", box.x0, box.y0,
                        box.x1, box.y1, d->width, d->height);
    Region r;
    volatile int rc = -1;
    int ox = 0, oy = 0;
    d->scale_denom = pick_denom(box, spec->out_w, spec->out_h);
    int cut = d->use_windows && d->can_window ? cut_window(d, box, &ox, &oy) : 0;
    d->windowed = cut > 0;
    if (cut < 0) {
        stk_errf(err, "out of memory (the crop's window)");
        goto out;
    }
    if (setjmp(d->jerr.jump)) {
        stk_errf(err, "%s", d->jerr.msg);
        goto out;
    }
    if (d->windowed) { /* the window instead of the file: its header, then as before */
        jpeg_abort_decompress(&d->cinfo);
        jpeg_mem_src(&d->cinfo, d->window.out, (unsigned long)d->window.out_len);
        jpeg_read_header(&d->cinfo, TRUE);
    }
    start(d, d->scale_denom, box, &r, ox, oy);
    if (decode_region(d, &r, err)) goto out;
    AugImage src = {d->rows, (int)r.width, r.y1 - r.y0, 3, (size_t)r.width * 3};
    AugBox rel = {r.box.x0 - r.x0, r.box.y0 - r.y0, r.box.x1 - r.x0, r.box.y1 - r.y0};
    if (aug_resize_flip(&d->work, &src, rel, spec->out_w, spec->out_h, spec->win_x,
                        spec->win_y, spec->flip, dst, err))
        goto out;
    rc = 0;
out:
    jpeg_abort_decompress(&d->cinfo); /* stop here: rows below the crop are not needed */
    d->width = d->height = 0;
    return rc;
}

int loader_decode_full(LoaderDecoder *d, AugImage *dst, StkErr *err) {
    if (!d->width) return stk_errf(err, "loader_decode_full: no image open");
    if (dst->w != d->width || dst->h != d->height || dst->c != 3)
        return stk_errf(err, "loader_decode_full: destination %dx%dx%d for a %dx%d image",
                        dst->w, dst->h, dst->c, d->width, d->height);
    Region r;
    volatile int rc = -1;
    d->scale_denom = 1;
    if (setjmp(d->jerr.jump)) {
        stk_errf(err, "%s", d->jerr.msg);
        goto out;
    }
    start(d, 1, (AugBox){0, 0, d->width, d->height}, &r, 0, 0);
    if (decode_region(d, &r, err)) goto out;
    for (int y = 0; y < d->height; y++)
        memcpy(dst->data + (size_t)y * dst->stride, d->rows + (size_t)y * r.width * 3,
               (size_t)d->width * 3);
    rc = 0;
out:
    jpeg_abort_decompress(&d->cinfo);
    d->width = d->height = 0;
    return rc;
}
