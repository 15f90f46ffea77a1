/* test_loader_fixture.h: scratch trees for the loader and dataset suites. Every helper
 * asserts (Criterion) on failure, so tests read as the tree they build. */
#ifndef TEST_LOADER_FIXTURE_H
#define TEST_LOADER_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

/* Returns a fresh directory under $TMPDIR (or /tmp), malloc'd. */
char *fx_tmpdir(void);

/* Removes path and everything under it (symlinks are removed, not followed). */
void fx_rmtree(const char *path);

/* Returns "root/rel" in a malloc'd string. */
char *fx_path(const char *root, const char *rel);

/* Creates root/rel (and its parent directories) holding n bytes of data. */
void fx_write(const char *root, const char *rel, const void *data, size_t n);

/* Creates root/rel with a few placeholder bytes (the scan never decodes). */
void fx_touch(const char *root, const char *rel);

/* Creates directory root/rel and its parents. */
void fx_mkdir(const char *root, const char *rel);

/* Creates symlink root/rel pointing at target. */
void fx_symlink(const char *target, const char *root, const char *rel);

/* Reads a whole file; returns malloc'd bytes and their count in *n. */
uint8_t *fx_read(const char *path, size_t *n);

/* Returns 1 if path exists (without following a final symlink), else 0. */
int fx_exists(const char *path);

/* Returns an IDX file's bytes (malloc'd, *n bytes): big-endian magic, count, and for
 * 3-dimensional magics rows and cols, then payload_len bytes of payload. */
uint8_t *fx_idx_bytes(uint32_t magic, uint32_t count, uint32_t rows, uint32_t cols,
                      const uint8_t *payload, size_t payload_len, size_t *n);

/* Creates root/rel holding data gzip-compressed. */
void fx_write_gz(const char *root, const char *rel, const void *data, size_t n);

/* Good JPEGs fx_jpeg_dataset puts in train/ (and 6 of them in val/). */
#define FX_DATASET_GOOD 10

/* Builds a small ImageFolder in root from the decode fixtures (tests/data/jpeg): train/
 * with classes a, b, c holding the 10 good files and, in b, three bad ones (empty.jpg,
 * text.jpg, truncated.jpg); val/ with six good files. */
void fx_jpeg_dataset(const char *root);

/* The value of channel ch (0..2) at pixel (x, y) of fx_gradient_jpeg's w x h image
 * before compression: R rises left to right, G top to bottom, B = 255 - R; a gray
 * image holds (R + G) / 2 in every channel. Linear, so a resize keeps it (inside). */
double fx_gradient_value(double x, double y, int w, int h, int ch, int gray);

/* Creates root/rel: a w x h JPEG of fx_gradient_value made with TurboJPEG at quality
 * 95 (4:2:0, or one grayscale component if gray). */
void fx_gradient_jpeg(const char *root, const char *rel, int w, int h, int gray);

/* Runs STOKER_BIN_DIR/tool with args (a shell fragment), logs in dir. Its stdout and
 * stderr are copied, NUL-terminated and truncated to fit, into out and errout (either
 * may be NULL). Returns the exit status; asserts that it exited. */
int fx_run_tool(const char *dir, const char *tool, const char *args, char *out,
                size_t out_cap, char *errout, size_t err_cap);

#endif
