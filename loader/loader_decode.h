/* loader_decode.h: JPEG file -> the crop a batch slot needs, with libjpeg-turbo.
 *
 * One LoaderDecoder per loader thread, made once: its libjpeg handle, file buffer, row
 * buffer and resize workspace are reused for every image (they only grow, to the largest
 * image seen), so the steady state allocates nothing of ours. libjpeg's own per-image
 * pools are malloc'd and freed by the library.
 *
 * What it saves over decoding whole images: the smallest DCT scale (1/8, 1/4, 1/2, 1;
 * the SIMD-accelerated ones) whose output still covers the crop at its target size;
 * jpeg_crop_scanline to decode only the crop's columns (to iMCU alignment);
 * jpeg_skip_scanlines to skip the rows above it; stopping after its last row. A file
 * with a restart marker every few MCUs (what `stoker-data shrink --restart` writes) is
 * cut to the crop's MCUs first (loader_window.h), so that libjpeg entropy-decodes only
 * those: the same pixels, bit for bit. Only the markers of such a file are checked
 * outside the window: corrupt data beside or above a crop goes unnoticed there, where a
 * whole decode fails on it (`stoker-data verify` decodes every file whole).
 *
 * Every JPEG becomes RGB: grayscale, YCbCr, RGB, CMYK and YCCK (converted as Pillow does,
 * Adobe-inverted), baseline or progressive, with restart markers, any size from 1x1.
 * Bad files fail with a reason: empty, not a JPEG, truncated (premature end, or no EOI
 * marker at the end), corrupt beyond what libjpeg can decode, over the pixel cap (checked
 * on the header, before libjpeg allocates). */
#ifndef LOADER_DECODE_H
#define LOADER_DECODE_H

#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>

#include <jpeglib.h>

#include "aug_resize.h"
#include "loader_window.h"
#include "stk_err.h"

#define LOADER_DEFAULT_MAX_PIXELS 100000000ull /* 100 megapixels */

/* libjpeg's error manager plus where to jump and what it said. */
typedef struct LoaderJpegErr {
    struct jpeg_error_mgr mgr; /* first: libjpeg casts cinfo->err to this */
    jmp_buf jump;              /* error_exit longjmps here */
    char msg[JMSG_LENGTH_MAX]; /* the last error or fatal warning */
    int fatal_warning;         /* a warning we treat as an error (truncation) was seen */
} LoaderJpegErr;

typedef struct LoaderDecoder {
    struct jpeg_decompress_struct cinfo; /* reused for every image */
    LoaderJpegErr jerr;
    uint64_t max_pixels;  /* header width*height above this is rejected */
    uint8_t *file;        /* the current file's bytes; grows */
    size_t file_len, file_cap;
    uint8_t *rows;        /* decoded crop rows (3 or 4 channels); grows */
    size_t rows_cap;
    AugWork work;         /* resize scratch */
    int width, height;    /* the current image's size, after loader_decode_open */
    int components;       /* its colour components (1, 3, 4) */
    int scale_denom;      /* DCT scale used by the last loader_decode_crop: 1, 2, 4, 8 */
    int use_windows;      /* 1 (the default): cut restart-marked files to the crop; 0: not */
    int windowed;         /* the last loader_decode_crop decoded a window of the file */
    int can_window;       /* the open file has restart segments loader_window can cut */
    LoaderWindowGeom geom; /* its geometry, when can_window */
    LoaderWindow window;  /* the window's bytes; grows */
} LoaderDecoder;

/* What to make of the open image: the box (in its full-size pixel coordinates) resized
 * to out_w x out_h, of which the window at (win_x, win_y) the size of dst is written,
 * then mirrored if flip. */
typedef struct LoaderCropSpec {
    AugBox box;
    int out_w, out_h;
    int win_x, win_y;
    int flip;
} LoaderCropSpec;

/* Sets up d (max_pixels 0 means LOADER_DEFAULT_MAX_PIXELS). Returns 0 or -1 + err. */
int loader_decoder_init(LoaderDecoder *d, uint64_t max_pixels, StkErr *err);
void loader_decoder_free(LoaderDecoder *d);

/* The error manager libjpeg handles of ours use (e's handlers: errors longjmp to
 * e->jump with the message in e->msg; truncation and corrupt-data warnings set
 * e->fatal_warning); returns &e->mgr for cinfo.err. */
struct jpeg_error_mgr *loader_jpeg_err(LoaderJpegErr *e);

/* Reads the file at path and its JPEG header; sets d->width, d->height, d->components.
 * Fails with the reason (empty, not a JPEG, truncated, over the pixel cap, I/O error). */
int loader_decode_open(LoaderDecoder *d, const char *path, StkErr *err);

/* Same, for bytes already in memory (copied into d's buffer). */
int loader_decode_open_mem(LoaderDecoder *d, const void *data, size_t len, StkErr *err);

/* Decodes the open image per spec into dst (3 channels, dst->w x dst->h). Fails with
 * libjpeg's reason if the data is corrupt or truncated within the rows decoded. */
int loader_decode_crop(LoaderDecoder *d, const LoaderCropSpec *spec, AugImage *dst,
                       StkErr *err);

/* Decodes the whole open image at full size into dst (d->width x d->height x 3), for
 * verify and shrink, where every pixel matters. */
int loader_decode_full(LoaderDecoder *d, AugImage *dst, StkErr *err);

#endif
