/* loader_window.c: restart segments cut into a JPEG of their own (see loader_window.h). */
#include "loader_window.h"

#include <stdlib.h>
#include <string.h>

/* The frame marker (SOF0 baseline or SOF1 extended, both sequential Huffman) before the
 * scan's data at `scan` (where libjpeg's header reading stopped), walking the marker
 * segments from SOI as libjpeg does: bytes other than FF between markers skipped, fill
 * bytes, and TEM and RSTn without a length. */
static int find_frame(const uint8_t *p, size_t scan, LoaderWindowGeom *g) {
    size_t i = 2;
    g->sof = 0;
    while (i + 1 < scan) {
        if (p[i] != 0xFF || p[i + 1] == 0xFF) { i++; continue; } /* garbage, fill byte */
        uint8_t m = p[i + 1];
        if (m == 0x01 || (m >= 0xD0 && m <= 0xD7)) { i += 2; continue; }
        if (i + 4 > scan) return 0;
        size_t len = (size_t)p[i + 2] << 8 | p[i + 3];
        if (len < 2 || i + 2 + len > scan) return 0;
        if (m == 0xC0 || m == 0xC1) g->sof = i, g->sof_len = len + 2;
        else if (m >= 0xC2 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC) return 0;
        if (m == 0xDA) return i + 2 + len == scan && g->sof != 0 && g->sof_len >= 10;
        i += 2 + len;
    }
    return 0;
}

int loader_window_geom(const struct jpeg_decompress_struct *ci, const uint8_t *p, size_t n,
                       LoaderWindowGeom *g) {
    memset(g, 0, sizeof *g);
    if (ci->progressive_mode || ci->arith_code || ci->restart_interval == 0) return 0;
    if (ci->comps_in_scan != ci->num_components || n >= UINT32_MAX) return 0;
    /* the scan's data starts where libjpeg stopped reading the header (its source is
     * these bytes); the frame found on the way must be the one libjpeg read */
    const uint8_t *next = ci->src ? ci->src->next_input_byte : NULL;
    if (!next || next < p + 2 || next > p + n || !find_frame(p, (size_t)(next - p), g)) return 0;
    g->scan = (size_t)(next - p);
    const uint8_t *f = p + g->sof;
    if (((unsigned)f[5] << 8 | f[6]) != ci->image_height || ((unsigned)f[7] << 8 | f[8]) != ci->image_width ||
        f[9] != ci->num_components || f[4] != 8)
        return 0; /* also a height of 0, given later by a DNL marker */
    g->width = (int)ci->image_width, g->height = (int)ci->image_height;
    if (ci->num_components == 1) { /* a one-component scan's MCU is one block */
        g->mcu_w = 8 * ci->max_h_samp_factor / ci->comp_info[0].h_samp_factor;
        g->mcu_h = 8 * ci->max_v_samp_factor / ci->comp_info[0].v_samp_factor;
    } else {
        g->mcu_w = 8 * ci->max_h_samp_factor;
        g->mcu_h = 8 * ci->max_v_samp_factor;
    }
    g->cols = (g->width + g->mcu_w - 1) / g->mcu_w;
    g->rows = (g->height + g->mcu_h - 1) / g->mcu_h;
    g->interval = (int)ci->restart_interval;
    g->by_columns = g->cols % g->interval == 0;
    /* rows r where a segment starts: r * cols a multiple of interval */
    int a = g->cols, b = g->interval;
    while (b) { int t = a % b; a = b, b = t; }
    g->row_step = g->interval / a;
    return 1;
}

/* Start and end offsets of the first `need` segments into w->seg: each ends at a restart
 * marker numbered as its place (mod 8) or, the last of the scan, at any other marker. */
static int scan_segments(LoaderWindow *w, const LoaderWindowGeom *g, const uint8_t *p,
                         size_t n, size_t need) {
    if (2 * need > w->seg_cap) {
        uint32_t *s = realloc(w->seg, 2 * need * sizeof *s);
        if (!s) return -2;
        w->seg = s, w->seg_cap = 2 * need;
    }
    size_t pos = g->scan, start = pos, k = 0;
    while (k < need) {
        const uint8_t *f = pos < n ? memchr(p + pos, 0xFF, n - pos) : NULL;
        if (!f) return -1;
        size_t end = (size_t)(f - p);
        pos = end;
        while (pos + 1 < n && p[pos + 1] == 0xFF) pos++; /* fill bytes before a marker */
        if (pos + 1 >= n) return -1;
        uint8_t m = p[pos + 1];
        pos += 2;
        if (m == 0x00) continue; /* a stuffed data byte */
        w->seg[2 * k] = (uint32_t)start, w->seg[2 * k + 1] = (uint32_t)end;
        k++;
        if (m >= 0xD0 && m <= 0xD7) {
            if ((m & 7) != ((k - 1) & 7)) return -1;
            start = pos;
        } else if (k < need) {
            return -1; /* the scan ended early */
        }
    }
    return 0;
}

static int put(LoaderWindow *w, const void *src, size_t len) {
    if (w->out_len + len > w->out_cap) {
        size_t cap = w->out_cap ? w->out_cap : 65536;
        while (cap < w->out_len + len) cap *= 2;
        uint8_t *o = realloc(w->out, cap);
        if (!o) return -2;
        w->out = o, w->out_cap = cap;
    }
    memcpy(w->out + w->out_len, src, len);
    w->out_len += len;
    return 0;
}

/* The headers up to the scan's data, with the frame's height and width set to wh, ww. */
static int put_headers(LoaderWindow *w, const LoaderWindowGeom *g, const uint8_t *p, int wh,
                       int ww) {
    int rc = put(w, p, g->sof + g->sof_len);
    if (rc) return rc;
    uint8_t *f = w->out + g->sof;
    f[5] = (uint8_t)(wh >> 8), f[6] = (uint8_t)wh, f[7] = (uint8_t)(ww >> 8), f[8] = (uint8_t)ww;
    return put(w, p + g->sof + g->sof_len, g->scan - g->sof - g->sof_len);
}

/* Segments [s0, s1) of every row in [r0, r1) (by columns), or segments [s0, s1) of the
 * file (rows: per_row 0), from p, renumbered, then EOI. */
static int put_segments(LoaderWindow *w, const uint8_t *p, int r0, int r1, int per_row, size_t s0,
                        size_t s1) {
    static const uint8_t rst[8][2] = {{0xFF, 0xD0}, {0xFF, 0xD1}, {0xFF, 0xD2}, {0xFF, 0xD3},
                                      {0xFF, 0xD4}, {0xFF, 0xD5}, {0xFF, 0xD6}, {0xFF, 0xD7}};
    static const uint8_t eoi[2] = {0xFF, 0xD9};
    unsigned k = 0;
    int rc = 0;
    for (int r = per_row ? r0 : 0; r < (per_row ? r1 : 1); r++)
        for (size_t s = s0; s < s1; s++, k++) {
            size_t i = per_row ? (size_t)r * per_row + s : s;
            if (k && (rc = put(w, rst[(k - 1) & 7], 2))) return rc;
            if ((rc = put(w, p + w->seg[2 * i], w->seg[2 * i + 1] - w->seg[2 * i]))) return rc;
        }
    return put(w, eoi, 2);
}

int loader_window_build(LoaderWindow *w, const LoaderWindowGeom *g, const uint8_t *p, size_t n,
                        int c0, int c1, int r0, int r1) {
    int k = g->interval;
    if (!(0 <= c0 && c0 < c1 && c1 <= g->cols && 0 <= r0 && r0 < r1 && r1 <= g->rows)) return -1;
    if (g->by_columns ? c0 % k != 0 : c0 != 0 || c1 != g->cols || r0 % g->row_step != 0) return -1;
    /* segments: per row [s0, s1) by columns; else the file's [s0, s1) */
    int per_row = g->by_columns ? g->cols / k : 0;
    size_t s0 = per_row ? (size_t)(c0 / k) : (size_t)r0 * g->cols / k;
    size_t s1 = per_row ? (size_t)((c1 + k - 1) / k) : ((size_t)r1 * g->cols + k - 1) / k;
    int rc = scan_segments(w, g, p, n, per_row ? (size_t)r1 * per_row : s1);
    if (rc) return rc;
    int x0 = c0 * g->mcu_w, x1 = per_row ? (int)s1 * k * g->mcu_w : c1 * g->mcu_w;
    int y0 = r0 * g->mcu_h, y1 = r1 * g->mcu_h;
    if (x1 > g->width) x1 = g->width;
    if (y1 > g->height) y1 = g->height;
    w->out_len = 0;
    if ((rc = put_headers(w, g, p, y1 - y0, x1 - x0))) return rc;
    return put_segments(w, p, r0, r1, per_row, s0, s1);
}

void loader_window_free(LoaderWindow *w) {
    free(w->out);
    free(w->seg);
    memset(w, 0, sizeof *w);
}
