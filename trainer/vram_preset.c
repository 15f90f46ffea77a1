/* vram_preset.c: the --gpu presets and --vram-budget sizes (vram_plan.h), apart from the
 * arithmetic so that flag parsing (train_config.c, also in stoker-run) needs no model. */
#include <stdlib.h>
#include <string.h>

#include "vram_plan.h"

/* Capacities as the cards report them; reserves: the CUDA context before the first
 * allocation (cuDNN and cuBLAS are VRAM_LIBRARY_BYTES in the plan). h100: 527 MiB measured
 * on an H200 with CUDA 13 (cudaFree(0), then cudaMemGetInfo), rounded up; the others are
 * estimates not yet measured on those cards. */
static const VramPreset presets[] = {
    {"gtx1050-2g", 2048 * VRAM_MIB, 256 * VRAM_MIB, 0, "GeForce GTX 1050 2 GB (Pascal: fp32 only)"},
    {"gtx1050-4g", 4096 * VRAM_MIB, 256 * VRAM_MIB, 0, "GeForce GTX 1050 Ti 4 GB (Pascal: fp32 only)"},
    {"rtx3070", 8192 * VRAM_MIB, 384 * VRAM_MIB, 1, "GeForce RTX 3070 8 GB (Ampere: bf16, tf32)"},
    {"h100", 81559 * VRAM_MIB, 528 * VRAM_MIB, 1, "H100 80 GB (Hopper: bf16, tf32)"},
};

const VramPreset *vram_preset(const char *name) {
    for (size_t i = 0; name && i < sizeof presets / sizeof *presets; i++)
        if (!strcmp(name, presets[i].name)) return &presets[i];
    return NULL;
}

const char *vram_preset_names(void) { return "gtx1050-2g, gtx1050-4g, rtx3070, h100"; }

int vram_parse_size(const char *s, uint64_t *bytes, StkErr *err) {
    char *e;
    double v = s ? strtod(s, &e) : 0;
    if (!s || e == s || !(v > 0))
        return stk_errf(err, "size '%s': a positive number with MiB or GiB", s ? s : "");
    static const struct { const char *suffix; double mult; } units[] = {
        {"", 1}, {"B", 1}, {"K", 1024.0}, {"KiB", 1024.0}, {"M", 1048576.0}, {"MiB", 1048576.0},
        {"MB", 1e6}, {"G", 1073741824.0}, {"GiB", 1073741824.0}, {"GB", 1e9}};
    for (size_t i = 0; i < sizeof units / sizeof *units; i++)
        if (!strcmp(e, units[i].suffix)) {
            *bytes = (uint64_t)(v * units[i].mult);
            return 0;
        }
    return stk_errf(err, "size '%s': unknown unit '%s' (MiB, GiB, MB, GB, or bytes)", s, e);
}

