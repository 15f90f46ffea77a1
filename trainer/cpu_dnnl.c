/* cpu_dnnl.c: the CPU backend's oneDNN engine and stream, plain-layout memory objects and
 * synchronous execution (see cpu_dnnl.h). */
#include "cpu_dnnl.h"

#include <string.h>

static int dnnl_init_(CpuDnnl *dn, StkErr *err) {
    DNNL_TRY(err, dnnl_engine_create(&dn->engine, dnnl_cpu, 0));
    DNNL_TRY(err, dnnl_stream_create(&dn->stream, dn->engine, dnnl_stream_default_flags));
    return 0;
}

int cpu_dnnl_init(CpuDnnl *dn, StkErr *err) {
    memset(dn, 0, sizeof *dn);
    if (dnnl_init_(dn, err) == 0) return 0;
    cpu_dnnl_free(dn);
    return -1;
}

void cpu_dnnl_free(CpuDnnl *dn) {
    /* Destroy never fails on a valid handle; a status here would be a bug in oneDNN. */
    if (dn->stream) dnnl_stream_destroy(dn->stream);
    if (dn->engine) dnnl_engine_destroy(dn->engine);
    dn->stream = NULL;
    dn->engine = NULL;
}

int cpu_dnnl_plain_memory(const CpuDnnl *dn, dnnl_memory_t *m, int ndims, const dnnl_dims_t dims,
                          dnnl_format_tag_t tag, StkErr *err) {
    dnnl_memory_desc_t md;
    dnnl_memory_t made = NULL;
    *m = NULL;
    DNNL_TRY(err, dnnl_memory_desc_init_by_tag(&md, ndims, dims, dnnl_f32, tag));
    DNNL_TRY(err, dnnl_memory_create(&made, &md, dn->engine, DNNL_MEMORY_NONE));
    *m = made;
    return 0;
}

int cpu_dnnl_run(const CpuDnnl *dn, dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args,
                 StkErr *err) {
    DNNL_TRY(err, dnnl_primitive_execute(p, dn->stream, nargs, args));
    DNNL_TRY(err, dnnl_stream_wait(dn->stream));
    return 0;
}
