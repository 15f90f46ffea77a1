/* proto_mpr.c: the bounded msgpack reader (see proto_mpr.h for why it exists). */
#include "proto_mpr.h"

#include <string.h>

void mpr_init(Mpr *r, const void *buf, size_t len) {
    r->p = buf;
    r->end = r->p + (buf ? len : 0);
}

size_t mpr_left(const Mpr *r) { return (size_t)(r->end - r->p); }

const char *mpr_type_name(uint8_t b) {
    if (b <= 0x7f || (b >= 0xcc && b <= 0xcf)) return "uint";
    if (b >= 0xe0 || (b >= 0xd0 && b <= 0xd3)) return "int";
    if (b <= 0x8f || b == 0xde || b == 0xdf) return "map";
    if (b <= 0x9f || b == 0xdc || b == 0xdd) return "array";
    if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb)) return "str";
    switch (b) {
    case 0xc0: return "nil";
    case 0xc2: case 0xc3: return "bool";
    case 0xc4: case 0xc5: case 0xc6: return "bin";
    case 0xca: case 0xcb: return "float";
    case 0xc1: return "reserved byte 0xc1";
    default: return "ext";
    }
}

/* Reads a big-endian unsigned of nbytes (1, 2, 4 or 8) after checking it is there. */
static int read_be(Mpr *r, int nbytes, uint64_t *v, const char *what, StkErr *err) {
    if (mpr_left(r) < (size_t)nbytes)
        return stk_errf(err, "%s: truncated (needs %d more bytes, %zu left)", what, nbytes,
                        mpr_left(r));
    uint64_t x = 0;
    for (int i = 0; i < nbytes; i++) x = (x << 8) | r->p[i];
    r->p += nbytes;
    *v = x;
    return 0;
}

/* Reads the type byte, failing cleanly at the end of the buffer. */
static int read_tag(Mpr *r, uint8_t *tag, const char *what, StkErr *err) {
    if (r->p >= r->end) return stk_errf(err, "%s: truncated (message ends here)", what);
    *tag = *r->p++;
    return 0;
}

static int type_error(StkErr *err, const char *what, const char *want, uint8_t tag) {
    return stk_errf(err, "%s: expected %s, got %s", what, want, mpr_type_name(tag));
}

/* Shared by array and map: n_small is the fix-type range base, b16/b32 the long tags;
 * per is the minimum bytes one element takes (1 for arrays, 2 for map pairs). */
static int container(Mpr *r, uint8_t fix_lo, uint8_t b16, uint8_t b32, uint32_t per,
                     const char *kind, uint32_t *count, const char *what, StkErr *err) {
    uint8_t tag = 0;
    uint64_t n = 0;
    if (read_tag(r, &tag, what, err)) return -1;
    if (tag >= fix_lo && tag <= fix_lo + 15) n = tag - fix_lo;
    else if (tag == b16) { if (read_be(r, 2, &n, what, err)) return -1; }
    else if (tag == b32) { if (read_be(r, 4, &n, what, err)) return -1; }
    else return type_error(err, what, kind, tag);
    if (n * per > mpr_left(r))
        return stk_errf(err, "%s: truncated: %s of %llu elements cannot fit in the %zu bytes left",
                        what, kind, (unsigned long long)n, mpr_left(r));
    *count = (uint32_t)n;
    return 0;
}

int mpr_array(Mpr *r, uint32_t *count, const char *what, StkErr *err) {
    return container(r, 0x90, 0xdc, 0xdd, 1, "array", count, what, err);
}

int mpr_map(Mpr *r, uint32_t *count, const char *what, StkErr *err) {
    return container(r, 0x80, 0xde, 0xdf, 2, "map", count, what, err);
}

int mpr_uint(Mpr *r, uint64_t max, uint64_t *v, const char *what, StkErr *err) {
    uint8_t tag = 0;
    uint64_t x = 0;
    if (read_tag(r, &tag, what, err)) return -1;
    if (tag <= 0x7f) {
        x = tag;
    } else if (tag >= 0xcc && tag <= 0xcf) {
        if (read_be(r, 1 << (tag - 0xcc), &x, what, err)) return -1;
    } else if (tag >= 0xd0 && tag <= 0xd3) {
        int nb = 1 << (tag - 0xd0);
        if (read_be(r, nb, &x, what, err)) return -1;
        if (x >> (nb * 8 - 1)) return stk_errf(err, "%s: negative, must be >= 0", what);
    } else if (tag >= 0xe0) {
        return stk_errf(err, "%s: negative, must be >= 0", what);
    } else {
        return type_error(err, what, "unsigned integer", tag);
    }
    if (x > max)
        return stk_errf(err, "%s: %llu exceeds the limit %llu", what, (unsigned long long)x,
                        (unsigned long long)max);
    *v = x;
    return 0;
}

int mpr_f64(Mpr *r, double *v, const char *what, StkErr *err) {
    uint8_t tag = 0;
    uint64_t bits = 0;
    if (read_tag(r, &tag, what, err)) return -1;
    if (tag == 0xcb) {
        if (read_be(r, 8, &bits, what, err)) return -1;
        memcpy(v, &bits, sizeof *v);
    } else if (tag == 0xca) {
        if (read_be(r, 4, &bits, what, err)) return -1;
        uint32_t b32 = (uint32_t)bits;
        float f;
        memcpy(&f, &b32, sizeof f);
        *v = f;
    } else {
        return type_error(err, what, "float", tag);
    }
    return 0;
}

/* Reads the length of a str or bin whose tags are fix (str only), t8, t16, t32, and
 * checks the body is there. */
static int blob(Mpr *r, int is_str, uint64_t *len, const uint8_t **body, const char *what,
                StkErr *err) {
    uint8_t tag = 0, t8 = is_str ? 0xd9 : 0xc4;
    if (read_tag(r, &tag, what, err)) return -1;
    if (is_str && tag >= 0xa0 && tag <= 0xbf) *len = tag - 0xa0;
    else if (tag >= t8 && tag <= t8 + 2) {
        if (read_be(r, 1 << (tag - t8), len, what, err)) return -1;
    } else return type_error(err, what, is_str ? "str" : "bin", tag);
    if (*len > mpr_left(r))
        return stk_errf(err, "%s: truncated: %s of %llu bytes but only %zu bytes left", what,
                        is_str ? "str" : "bin", (unsigned long long)*len, mpr_left(r));
    *body = r->p;
    r->p += *len;
    return 0;
}

int mpr_str(Mpr *r, uint32_t max_len, const char **s, uint32_t *len, const char *what,
            StkErr *err) {
    uint64_t n = 0;
    const uint8_t *body = NULL;
    if (blob(r, 1, &n, &body, what, err)) return -1;
    if (n > max_len)
        return stk_errf(err, "%s: %llu bytes, longer than the limit %u", what,
                        (unsigned long long)n, max_len);
    if (memchr(body, 0, n)) return stk_errf(err, "%s: contains a NUL byte", what);
    *s = n ? (const char *)body : NULL;
    *len = (uint32_t)n;
    return 0;
}

int mpr_bin(Mpr *r, uint64_t want, const uint8_t **b, const char *what, StkErr *err) {
    uint64_t n = 0;
    if (blob(r, 0, &n, b, what, err)) return -1;
    if (n != want)
        return stk_errf(err, "%s: %llu bytes, expected %llu", what, (unsigned long long)n,
                        (unsigned long long)want);
    return 0;
}
