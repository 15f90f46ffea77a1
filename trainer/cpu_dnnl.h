/* cpu_dnnl.h: the CPU backend's oneDNN context and how library code checks oneDNN calls.
 *
 * One CpuDnnl (a CPU engine and an in-order stream) is made once by the backend and
 * borrowed by every operation's _init; it must outlive them. DNNL_TRY turns a failing
 * oneDNN call into stoker's convention (stk_err.h): return -1 with the call's text and
 * oneDNN's status name in the caller's StkErr. Threads: oneDNN's OpenMP runtime reads
 * OMP_NUM_THREADS. */
#ifndef CPU_DNNL_H
#define CPU_DNNL_H

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "stk_err.h"

typedef struct CpuDnnl {
    dnnl_engine_t engine; /* CPU engine 0; NULL until cpu_dnnl_init succeeds */
    dnnl_stream_t stream; /* in-order stream on engine; operations execute and wait on it */
} CpuDnnl;

/* Evaluates call (a dnnl_status_t expression); if it is not dnnl_success, fills err with
 * "CALL TEXT: status name" and makes the enclosing int function return -1. */
#define DNNL_TRY(err, call)                                                              \
    do {                                                                                 \
        dnnl_status_t dnnl_st_ = (call);                                                 \
        if (dnnl_st_ != dnnl_success)                                                    \
            return stk_errf((err), "%s: %s", #call, dnnl_status2str(dnnl_st_));         \
    } while (0)

/* Creates the engine and stream. Returns 0, or -1 with err filled and nothing held
 * (cpu_dnnl_free is still safe to call). */
int cpu_dnnl_init(CpuDnnl *dn, StkErr *err);

/* Destroys the stream and engine; safe on a zeroed or failed CpuDnnl, and twice. */
void cpu_dnnl_free(CpuDnnl *dn);

/* A memory object of plain layout tag (e.g. dnnl_nchw) and float32, with no buffer: the
 * caller points it at its own data with dnnl_memory_set_data_handle before each use.
 * Returns 0, or -1 with err filled and *m NULL. The caller destroys *m. */
int cpu_dnnl_plain_memory(const CpuDnnl *dn, dnnl_memory_t *m, int ndims, const dnnl_dims_t dims,
                          dnnl_format_tag_t tag, StkErr *err);

/* Executes primitive p with its arguments on dn's stream and waits for it to finish.
 * Returns 0, or -1 with err filled. */
int cpu_dnnl_run(const CpuDnnl *dn, dnnl_primitive_t p, int nargs, const dnnl_exec_arg_t *args,
                 StkErr *err);

#endif
