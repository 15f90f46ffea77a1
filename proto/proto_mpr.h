/* proto_mpr.h: a bounded msgpack reader over one buffer ("mpr": msgpack read).
 *
 * Why not msgpack-c's msgpack_unpack_next: its object unpacker allocates
 * count * sizeof(msgpack_object) when it meets an array or map header, before reading
 * any element, so a 5-byte hostile message (0xdd + a 32-bit count) makes it try to
 * allocate up to 96 GiB. This reader walks the buffer with a cursor, checks every
 * length against the bytes left, never allocates and returns views into the buffer.
 * msgpack-c still does all the packing (proto_encode.c).
 *
 * Every function reads one value at the cursor, advances past it and returns 0, or
 * returns -1 with err saying "<what>: <problem>" and leaves the cursor unspecified. */
#ifndef PROTO_MPR_H
#define PROTO_MPR_H

#include <stdint.h>

#include "stk_err.h"

typedef struct Mpr {
    const uint8_t *p;   /* next byte to read */
    const uint8_t *end; /* one past the last byte */
} Mpr;

/* Starts reading buf[0..len). */
void mpr_init(Mpr *r, const void *buf, size_t len);

/* Bytes not yet read. */
size_t mpr_left(const Mpr *r);

/* An array header; *count is its element count, already checked to be at most the
 * bytes left (each element takes at least one byte). */
int mpr_array(Mpr *r, uint32_t *count, const char *what, StkErr *err);

/* A map header; *count pairs, checked against the bytes left likewise. */
int mpr_map(Mpr *r, uint32_t *count, const char *what, StkErr *err);

/* A non-negative integer (any msgpack int encoding) no larger than max. */
int mpr_uint(Mpr *r, uint64_t max, uint64_t *v, const char *what, StkErr *err);

/* A float32 or float64, as a double. */
int mpr_f64(Mpr *r, double *v, const char *what, StkErr *err);

/* A str of at most max_len bytes; *s points into the buffer (not NUL-terminated). */
int mpr_str(Mpr *r, uint32_t max_len, const char **s, uint32_t *len, const char *what,
            StkErr *err);

/* A bin of exactly want bytes; *b points into the buffer. */
int mpr_bin(Mpr *r, uint64_t want, const uint8_t **b, const char *what, StkErr *err);

/* Name of the msgpack type whose first byte is b ("array", "str", "uint"...), for
 * messages. */
const char *mpr_type_name(uint8_t b);

#endif
