/* data_restart.c: lossless restart-marker rewriting with jpeglib's coefficient API (see
 * data_restart.h). */
#include "data_restart.h"

#include <stdlib.h>

#include "loader_decode.h"

typedef struct Transcode {
    struct jpeg_decompress_struct src;
    struct jpeg_compress_struct dst;
    LoaderJpegErr jerr; /* one handler for both: either failing ends the rewrite */
    unsigned char *buf;
    unsigned long len;
} Transcode;

/* The rewrite itself; errors longjmp to t->jerr.jump. */
static void rewrite(Transcode *t, const uint8_t *in, size_t len, unsigned interval) {
    jpeg_mem_src(&t->src, in, (unsigned long)len);
    jpeg_read_header(&t->src, TRUE);
    jvirt_barray_ptr *coef = jpeg_read_coefficients(&t->src);
    if (t->jerr.fatal_warning) longjmp(t->jerr.jump, 1); /* jerr.msg has the warning */
    jpeg_copy_critical_parameters(&t->src, &t->dst);
    t->dst.restart_interval = interval;
    t->dst.optimize_coding = TRUE;
    jpeg_mem_dest(&t->dst, &t->buf, &t->len);
    jpeg_write_coefficients(&t->dst, coef);
    jpeg_finish_compress(&t->dst);
    jpeg_finish_decompress(&t->src);
    if (t->jerr.fatal_warning) longjmp(t->jerr.jump, 1);
}

int data_restart_jpeg(const uint8_t *in, size_t len, unsigned interval, uint8_t **out,
                      size_t *out_len, StkErr *err) {
    if (interval < 1 || interval > 65535)
        return stk_errf(err, "restart interval %u: want 1..65535 MCUs", interval);
    Transcode *t = calloc(1, sizeof *t);
    if (!t) return stk_errf(err, "out of memory");
    *out = NULL, *out_len = 0;
    t->src.err = t->dst.err = loader_jpeg_err(&t->jerr);
    volatile int made = 0, rc = -1;
    if (setjmp(t->jerr.jump)) {
        stk_errf(err, "%s", t->jerr.msg);
        goto out;
    }
    if (len < 2 || in[0] != 0xFF || in[1] != 0xD8) {
        stk_errf(err, "not a JPEG file");
        goto out;
    }
    jpeg_create_decompress(&t->src);
    made = 1;
    jpeg_create_compress(&t->dst);
    made = 2;
    rewrite(t, in, len, interval);
    *out = t->buf, *out_len = t->len;
    t->buf = NULL;
    rc = 0;
out:
    /* jpeg_mem_dest hands its latest buffer back only in term_destination (it frees the
     * ones it outgrew): after an error, ask for it, so that it is the one freed */
    if (rc && made >= 2 && t->dst.dest) (*t->dst.dest->term_destination)((j_compress_ptr)&t->dst);
    if (made >= 2) jpeg_destroy_compress(&t->dst);
    if (made >= 1) jpeg_destroy_decompress(&t->src);
    free(t->buf);
    free(t);
    return rc;
}
