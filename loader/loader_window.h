/* loader_window.h: the part of a restart-marked JPEG that a crop needs, as a JPEG of its
 * own, so that libjpeg entropy-decodes only those MCUs.
 *
 * Without restart markers a decoder must Huffman-decode every MCU of every row above the
 * crop's bottom, across the whole width (jpeg_skip_scanlines and jpeg_crop_scanline save
 * the IDCT, not the entropy decoding, which is most of a loader's time). A file with a
 * restart marker every k MCUs (data_restart.h writes k = 1) is made of segments that
 * decode on their own: each starts on a byte with its DC predictions at 0. Copied behind
 * the file's headers, with the frame's size changed and the markers renumbered, a run of
 * whole segments is a valid JPEG whose pixels are exactly those of the same MCUs in a
 * decode of the whole file, at every DCT scale, away from the window's edges (upsampling
 * treats them as image edges: the caller keeps an MCU of margin where the image goes on).
 * When k divides a row's MCUs the window is MCU rows [r0, r1) by columns [c0, c1); when
 * it does not (camera files' intervals), whole rows from one where a segment starts. */
#ifndef LOADER_WINDOW_H
#define LOADER_WINDOW_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jpeglib.h>

typedef struct LoaderWindowGeom {
    int width, height;   /* the image, pixels */
    int mcu_w, mcu_h;    /* one MCU, pixels at full size */
    int cols, rows;      /* MCUs per row, MCU rows */
    int interval;        /* MCUs per restart segment */
    int by_columns;      /* interval divides cols: windows can be cut in columns too */
    int row_step;        /* segments start a row every row_step rows (1 when by_columns) */
    size_t sof, sof_len; /* the frame marker's offset and bytes (marker included) */
    size_t scan;         /* the first entropy-coded byte (after the scan header) */
} LoaderWindowGeom;

/* Reused between images: they only grow. */
typedef struct LoaderWindow {
    uint8_t *out; /* the window's JPEG */
    size_t out_len, out_cap;
    uint32_t *seg; /* start and end offset of each segment scanned */
    size_t seg_cap;
} LoaderWindow;

/* 1 with g filled when the JPEG whose header ci has read (its bytes p, n) can be cut
 * into windows: sequential Huffman coding, one scan holding every component, restart
 * markers, a frame size in the frame header; 0 otherwise. */
int loader_window_geom(const struct jpeg_decompress_struct *ci, const uint8_t *p, size_t n,
                       LoaderWindowGeom *g);

/* Writes into w->out the JPEG of MCU columns [c0, c1) and rows [r0, r1) of the file
 * (0 <= r0 < r1 <= g->rows; by_columns: c0 a multiple of g->interval, c1 rounded up to
 * one; else c0 = 0, c1 = g->cols and r0 a multiple of g->row_step). Returns 0, -1 when
 * the entropy-coded data does not hold the segments the geometry promises (a restart
 * marker missing, out of order, or the data ending early: the caller then decodes the
 * file whole and libjpeg reports what is wrong), or -2 out of memory. Only the markers
 * are checked: corrupt data in segments outside the window goes unnoticed, where a
 * whole decode would have failed on it. */
int loader_window_build(LoaderWindow *w, const LoaderWindowGeom *g, const uint8_t *p, size_t n,
                        int c0, int c1, int r0, int r1);

void loader_window_free(LoaderWindow *w);

#endif
