/* data_restart.h: a JPEG rewritten losslessly with a restart marker after every MCU, as
 * `jpegtran -restart 1B -optimize` does: jpeglib reads the DCT coefficients and writes
 * them again (no decode, no rounding), so every decoder gives the same pixels as from
 * the original, and the loader can then decode only the MCUs a crop needs
 * (loader_window.h). Huffman tables are optimised for the file, which about pays for the
 * markers (two bytes and a partial byte per MCU). Progressive and arithmetic-coded
 * sources become sequential Huffman; the frame's colour space, sampling and quantisation
 * tables are kept; of the other markers only what libjpeg writes for the colour space is
 * (JFIF or Adobe, whose transform flag says how to read RGB, CMYK and YCCK). */
#ifndef DATA_RESTART_H
#define DATA_RESTART_H

#include <stddef.h>
#include <stdint.h>

#include "stk_err.h"

#define DATA_RESTART_INTERVAL 1 /* MCUs per restart segment: windows cut to the MCU */

/* Rewrites the JPEG in (len bytes) with a restart marker every `interval` MCUs (1..65535)
 * into a new malloc'd buffer *out of *out_len bytes (free it). Fails with libjpeg's
 * reason on a file that is not a JPEG, corrupt or truncated (what the loader's decoder
 * would refuse too). */
int data_restart_jpeg(const uint8_t *in, size_t len, unsigned interval, uint8_t **out,
                      size_t *out_len, StkErr *err);

#endif
