/* data_synth.c: renders the synthetic classes (see data_synth.h) and writes them on the
 * worker pool.
 *
 * File size is set by SYNTH_NOISE, the amplitude of the per-pixel noise; the gratings
 * and the shape add little. Measured with libjpeg-turbo 2.1.5, 500x375, quality 90,
 * 4:2:0 (tests/test_data_synth.c checks 80..120 KiB): see SYNTH_NOISE. */
#include "data_synth.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

#include "data_tree.h"
#include "stk_rng.h"

#define SYNTH_KINDS 6        /* disc, box, triangle, ring, cross, diamond */
#define SYNTH_GRATINGS 2     /* background texture: sum of two sinusoidal gratings */
/* Noise amplitude (triangular distribution, in 8-bit levels) per channel. At 500x375
 * q90 it gives files of about 100 KiB, near ImageNet's mean (about 110 KB): measured
 * with --classes 10 --per-class 20 (220 files): mean 100.6 KiB, min 97.4, max 102.9
 * (amplitude 30 gave 71.7, 40 gave 86.0, 50 gave 96.9, 60 gave 105.8). */
#define SYNTH_NOISE 54.0f
#define SYNTH_PI 3.14159265358979f

/* Everything that varies from image to image, drawn once per image. */
typedef struct SynthImage {
    int kind;                       /* shape kind, class % SYNTH_KINDS */
    float cx, cy;                   /* shape centre, pixels */
    float r;                        /* shape radius, pixels */
    float cosr, sinr;               /* shape rotation */
    float shade;                    /* relative brightness change across the shape */
    float fg[3];                    /* shape colour, 0..255 */
    float bg[3];                    /* background colour, 0..255 */
    float amp[SYNTH_GRATINGS];      /* grating amplitudes, levels */
    float fx[SYNTH_GRATINGS];       /* grating frequencies along x, radians per pixel */
    float fy[SYNTH_GRATINGS];       /* grating frequencies along y, radians per pixel */
    float phase[SYNTH_GRATINGS];    /* grating phases, radians */
    uint64_t noise_key;             /* keys the per-pixel noise */
} SynthImage;

/* Counters shared by the jobs of one run. */
typedef struct SynthCtx {
    const DataSynthOptions *opt;                 /* the build */
    const char *partial;                         /* the directory being filled */
    int digits;                                  /* digits of class folder numbers */
    atomic_uint_fast64_t bytes[LOADER_NUM_SPLITS]; /* JPEG bytes written per split */
} SynthCtx;

static float u01(uint64_t key, uint64_t n) { return (float)stk_rng_unit(stk_rng_at(key, n)); }

/* HSV (each in [0, 1], hue wrapping) to RGB in 0..255. */
static void hsv_to_rgb(float h, float s, float v, float rgb[3]) {
    h = (h - floorf(h)) * 6.0f;
    int i = (int)h % 6;
    float f = h - floorf(h), p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
    float r[6] = {v, q, p, p, t, v}, g[6] = {t, v, v, q, p, p}, b[6] = {p, p, t, v, v, q};
    rgb[0] = 255 * r[i];
    rgb[1] = 255 * g[i];
    rgb[2] = 255 * b[i];
}

/* Draws image (split, cls, idx)'s parameters: class-level means, image-level jitter. */
static void synth_params(const DataSynthOptions *o, uint32_t split, uint32_t cls, uint32_t idx,
                         SynthImage *im) {
    uint64_t ckey = stk_rng_key(stk_rng_key(o->seed, 0xC1A55), cls);
    uint64_t ikey = stk_rng_key(stk_rng_key(stk_rng_key(o->seed, 0x1A6E + split), cls),
                                   idx);
    float side = (float)(o->width < o->height ? o->width : o->height);
    float hue = (float)fmod(cls * 0.6180339887498949, 1.0); /* golden ratio: spread hues */
    float size = 0.14f + 0.16f * u01(ckey, 0), mx = 0.3f + 0.4f * u01(ckey, 1);
    float my = 0.3f + 0.4f * u01(ckey, 2), rot = 0.6f * (u01(ikey, 3) - 0.5f);
    im->kind = (int)(cls % SYNTH_KINDS);
    im->r = side * size * (0.85f + 0.3f * u01(ikey, 0));
    im->cx = (float)o->width * (mx + 0.16f * (u01(ikey, 1) - 0.5f));
    im->cy = (float)o->height * (my + 0.16f * (u01(ikey, 2) - 0.5f));
    im->cosr = cosf(rot);
    im->sinr = sinf(rot);
    im->shade = 0.5f * (u01(ikey, 4) - 0.5f);
    hsv_to_rgb(hue + 0.04f * (u01(ikey, 5) - 0.5f), 0.65f + 0.35f * u01(ikey, 6),
               0.6f + 0.4f * u01(ikey, 7), im->fg);
    hsv_to_rgb(u01(ikey, 8), 0.1f + 0.3f * u01(ikey, 9), 0.3f + 0.45f * u01(ikey, 10), im->bg);
    for (int g = 0; g < SYNTH_GRATINGS; g++) {
        float angle = 2 * SYNTH_PI * u01(ikey, 11 + 4 * g);
        float freq = 2 * SYNTH_PI * (2 + 14 * u01(ikey, 12 + 4 * g)) / (float)o->width;
        im->fx[g] = freq * cosf(angle);
        im->fy[g] = freq * sinf(angle);
        im->amp[g] = 8 + 14 * u01(ikey, 13 + 4 * g);
        im->phase[g] = 2 * SYNTH_PI * u01(ikey, 14 + 4 * g);
    }
    im->noise_key = stk_rng_key(ikey, 0x0415E);
}

/* Returns 1 if pixel centre (x, y) lies inside the shape, with *along its position
 * along the shape's axis in [-1, 1] (for shading). */
static int synth_inside(const SynthImage *im, float x, float y, float *along) {
    float dx = x - im->cx, dy = y - im->cy, r = im->r;
    float u = dx * im->cosr + dy * im->sinr, v = -dx * im->sinr + dy * im->cosr;
    float au = fabsf(u), av = fabsf(v), d2 = u * u + v * v;
    *along = u / r;
    switch (im->kind) {
    case 0: return d2 < r * r;
    case 1: return au < r && av < 0.8f * r;
    case 2: return v > -r && v < r && au < 0.5f * (v + r);
    case 3: return d2 < r * r && d2 > 0.36f * r * r;
    case 4: return (au < r && av < 0.3f * r) || (av < r && au < 0.3f * r);
    default: return au + av < r;
    }
}

size_t data_synth_buffer_bytes(const DataSynthOptions *opt) {
    size_t rgb = (size_t)opt->width * opt->height * 3, aligned = (rgb + 15) & ~(size_t)15;
    return aligned + sizeof(float) * SYNTH_GRATINGS * 2 * (opt->width + opt->height);
}

void data_synth_render(const DataSynthOptions *opt, uint32_t split, uint32_t cls, uint32_t idx,
                       uint8_t *buf) {
    SynthImage im;
    synth_params(opt, split, cls, idx, &im);
    uint32_t w = opt->width, h = opt->height;
    size_t rgb = (size_t)w * h * 3;
    /* Gratings are separable: sin(a + b) = sin a cos b + cos a sin b, tabulated once. */
    float *sx = (float *)(void *)(buf + ((rgb + 15) & ~(size_t)15)), *cx = sx + SYNTH_GRATINGS * w;
    float *sy = cx + SYNTH_GRATINGS * w, *cy = sy + SYNTH_GRATINGS * h;
    for (int g = 0; g < SYNTH_GRATINGS; g++) {
        for (uint32_t x = 0; x < w; x++) {
            sx[g * w + x] = im.amp[g] * sinf(im.fx[g] * (float)x + im.phase[g]);
            cx[g * w + x] = im.amp[g] * cosf(im.fx[g] * (float)x + im.phase[g]);
        }
        for (uint32_t y = 0; y < h; y++) {
            sy[g * h + y] = sinf(im.fy[g] * (float)y);
            cy[g * h + y] = cosf(im.fy[g] * (float)y);
        }
    }
    const float noise = SYNTH_NOISE / 255.0f;
    for (uint32_t y = 0; y < h; y++) {
        for (uint32_t x = 0; x < w; x++) {
            float along, base[3];
            if (synth_inside(&im, (float)x + 0.5f, (float)y + 0.5f, &along)) {
                for (int ch = 0; ch < 3; ch++) base[ch] = im.fg[ch] * (1 + im.shade * along);
            } else {
                float t = 0;
                for (int g = 0; g < SYNTH_GRATINGS; g++)
                    t += sx[g * w + x] * cy[g * h + y] + cx[g * w + x] * sy[g * h + y];
                for (int ch = 0; ch < 3; ch++) base[ch] = im.bg[ch] + t;
            }
            uint64_t n = stk_rng_at(im.noise_key, (uint64_t)y * w + x);
            uint8_t *px = buf + ((size_t)y * w + x) * 3;
            for (int ch = 0; ch < 3; ch++) {
                int tri = (int)((n >> (16 * ch)) & 0xff) + (int)((n >> (16 * ch + 8)) & 0xff) - 255;
                float v = base[ch] + noise * (float)tri + 0.5f;
                px[ch] = v <= 0 ? 0 : v >= 255 ? 255 : (uint8_t)v;
            }
        }
    }
}

/* Job j: train images class by class, then val images class by class. */
static int synth_job(void *ctx, DataWorker *w, uint64_t job, StkErr *err) {
    SynthCtx *c = ctx;
    const DataSynthOptions *o = c->opt;
    uint32_t split = LOADER_TRAIN, per = o->per_class;
    if (job >= (uint64_t)o->classes * o->per_class) {
        job -= (uint64_t)o->classes * o->per_class;
        split = LOADER_VAL;
        per = o->val_per_class;
    }
    uint32_t cls = (uint32_t)(job / per), idx = (uint32_t)(job % per);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s/class_%0*u/%05u.jpg", c->partial,
             split == LOADER_TRAIN ? "train" : "val", c->digits, cls, idx);
    data_synth_render(o, split, cls, idx, w->pixels);
    unsigned long size;
    if (data_pool_write_jpeg(w, w->pixels, path, (int)o->width, (int)o->height, TJPF_RGB,
                             TJSAMP_420, o->quality, &size, err) != 0)
        return -1;
    atomic_fetch_add(&c->bytes[split], size);
    return 0;
}

/* Checks the options' ranges. */
static int synth_check(const DataSynthOptions *o, StkErr *err) {
    if (o->classes < 1 || o->classes > DATA_SYNTH_MAX_CLASSES)
        return stk_errf(err, "classes %u out of range [1, %u]", o->classes,
                        DATA_SYNTH_MAX_CLASSES);
    if (o->per_class < 1) return stk_errf(err, "per-class must be at least 1");
    if ((uint64_t)o->classes * ((uint64_t)o->per_class + o->val_per_class) > DATA_SYNTH_MAX_IMAGES)
        return stk_errf(err, "%u classes x %u images is more than %llu images", o->classes,
                        o->per_class + o->val_per_class, DATA_SYNTH_MAX_IMAGES);
    if (o->width < DATA_SYNTH_MIN_SIDE || o->width > DATA_SYNTH_MAX_SIDE ||
        o->height < DATA_SYNTH_MIN_SIDE || o->height > DATA_SYNTH_MAX_SIDE)
        return stk_errf(err, "size %ux%u out of range [%d, %d] per side", o->width, o->height,
                        DATA_SYNTH_MIN_SIDE, DATA_SYNTH_MAX_SIDE);
    if (o->quality < 1 || o->quality > 100)
        return stk_errf(err, "JPEG quality %d out of range [1, 100]", o->quality);
    return 0;
}

/* Makes the class folder names class_NNN into one block; *names points into it. */
static int synth_names(const DataSynthOptions *o, int digits, char **block, const char ***names,
                       StkErr *err) {
    size_t stride = 8 + (size_t)digits;
    *block = malloc((size_t)o->classes * stride);
    *names = malloc((size_t)o->classes * sizeof **names);
    if (!*block || !*names) return stk_errf(err, "class names: out of memory");
    for (uint32_t c = 0; c < o->classes; c++) {
        snprintf(*block + c * stride, stride, "class_%0*u", digits, c);
        (*names)[c] = *block + c * stride;
    }
    return 0;
}

/* Writes all images into a partial tree, then renames it to out. */
static int synth_build(const char *out, const DataSynthOptions *o, const char *params,
                       DataSynthResult *res, StkErr *err) {
    SynthCtx c = {.opt = o, .digits = 3};
    for (uint32_t n = o->classes - 1; n >= 1000; n /= 10) c.digits++;
    atomic_init(&c.bytes[0], 0);
    atomic_init(&c.bytes[1], 0);
    char *block = NULL;
    const char **names = NULL;
    DataTree t;
    int rc = synth_names(o, c.digits, &block, &names, err);
    if (rc == 0) rc = data_tree_begin(&t, out, names, o->classes, err);
    free(block);
    free(names);
    if (rc != 0) return -1;
    c.partial = t.partial;
    uint64_t n0 = (uint64_t)o->classes * o->per_class, n1 = (uint64_t)o->classes * o->val_per_class;
    DataPoolSpec spec = {.threads = o->threads, .jobs = n0 + n1,
                         .pixel_bytes = data_synth_buffer_bytes(o), .max_width = (int)o->width,
                         .max_height = (int)o->height, .fn = synth_job, .ctx = &c,
                         .progress = o->progress, .progress_ctx = o->progress_ctx};
    rc = data_pool_run(&spec, err);
    res->bytes[0] = atomic_load(&c.bytes[0]);
    res->bytes[1] = atomic_load(&c.bytes[1]);
    char marker[DATA_TREE_MARKER_MAX];
    snprintf(marker, sizeof marker, "%strain %llu\nval %llu\nbytes %llu %llu\n", params,
             (unsigned long long)n0, (unsigned long long)n1,
             (unsigned long long)res->bytes[0], (unsigned long long)res->bytes[1]);
    if (rc != 0 || data_tree_commit(&t, marker, err) != 0) {
        data_tree_abort(&t);
        return -1;
    }
    res->written[0] = n0;
    res->written[1] = n1;
    return 0;
}

int data_synth_write(const char *out, const DataSynthOptions *opt, DataSynthResult *res,
                     StkErr *err) {
    memset(res, 0, sizeof *res);
    if (synth_check(opt, err) != 0) return -1;
    char params[512], marker[DATA_TREE_MARKER_MAX];
    snprintf(params, sizeof params,
             "stoker-data synth 1\nclasses %u\nper-class %u\nval-per-class %u\nsize %ux%u\n"
             "seed %llu\nquality %d\n", opt->classes, opt->per_class, opt->val_per_class,
             opt->width, opt->height, (unsigned long long)opt->seed, opt->quality);
    int complete;
    if (data_tree_check(out, params, &complete, marker, sizeof marker, err) != 0) return -1;
    if (complete) {
        unsigned long long n0, n1, b0, b1;
        if (sscanf(marker + strlen(params), "train %llu\nval %llu\nbytes %llu %llu", &n0, &n1,
                   &b0, &b1) != 4)
            return stk_errf(err, "%s/%s: no counts in the marker", out, DATA_TREE_MARKER);
        *res = (DataSynthResult){.already_complete = 1, .written = {n0, n1}, .bytes = {b0, b1}};
        return data_tree_index(out, &res->index, err);
    }
    res->stale_partials = data_tree_stale(out);
    if (synth_build(out, opt, params, res, err) != 0) return -1;
    return data_tree_index(out, &res->index, err);
}
