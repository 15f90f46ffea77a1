/* eval_config.h: stoker-eval's settings, flags named as stoker-train's. */
#ifndef EVAL_CONFIG_H
#define EVAL_CONFIG_H

#include <stdint.h>

typedef struct EvalConfig {
    const char *data_path;   /* --data-path: the indexed ImageFolder (its val split) */
    const char *model;       /* --model (smallcnn) */
    int batch_size;          /* -b/--batch-size (32) */
    int workers;             /* -j/--workers: val loader processes (1) */
    int val_resize, val_crop; /* --val-resize-size, --val-crop-size (28/28 smallcnn, else 256/224) */
    const char *checkpoint;  /* --checkpoint FILE: evaluate it once and exit */
    const char *checkpoints; /* --checkpoints EP: follow a trainer's notices (SUB, conflated) */
    const char *control;     /* --control EP: SUB for shutdown */
    const char *reports;     /* --reports EP: PUSH the figures; without it they are printed */
    const char *best;        /* --best FILE: keep the best checkpoint by top-1 there */
    const char *curve_key;   /* --curve-key FILE: CURVE client key pair for the sockets above */
    const char *curve_server; /* --curve-server-key FILE: their server's public key */
    const char *device;      /* --device cpu|cuda (cpu): stoker-run gives the trainer's */
    const char *precision;   /* --precision (CUDA; NULL: the card's best, as stoker-train) */
    uint64_t vram_budget;    /* --vram-budget SIZE: the evaluator's share of the GPU, its own
                                CUDA context included (eval_plan.h); 0: no limit */
    uint64_t val_cache;      /* --val-cache SIZE (1 GiB): the val split is kept in memory after
                                its first evaluation when it fits (eval_cache.h); 0: never */
    double duty;             /* --duty F (1): the most of the time spent evaluating (eval_pace.h) */
    const char *gpu;         /* --gpu NAME: the card's preset (its context reserve, whether it
                                has bf16), as stoker-train's */
} EvalConfig;

/* Parses argv; 0, 1 for --help (printed), -1 after printing what is wrong. */
int eval_config_parse(EvalConfig *c, int argc, char **argv);

#endif
