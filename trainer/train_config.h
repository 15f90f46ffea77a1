/* train_config.h: stoker-train's settings, parsed from flags named as torchvision's
 * references/classification/train.py names them where it has one. */
#ifndef TRAIN_CONFIG_H
#define TRAIN_CONFIG_H

#include <stdint.h>

#include "optim.h"
#include "lr_sched.h"

typedef struct TrainConfig {
    const char *data_path;   /* --data-path: an ImageFolder (indexed if it has no index) */
    const char *model;       /* --model (smallcnn) */
    const char *device;      /* --device cpu|cuda */
    const char *precision;   /* --precision fp32|tf32|bf16|fp16 (CUDA; NULL: the card's best) */
    const char *output_dir;  /* --output-dir (runs/<time>) */
    const char *resume;      /* --resume: a checkpoint to start from */
    const char *weights;     /* --weights: initial weights for fine-tuning (transfer.h) */
    int trainable_layers;    /* --trainable-layers N: head + last N blocks train
                                (model_freeze.h); --freeze-backbone is 0; -1: all */
    int batch_size;          /* --batch-size (32, as train.py): the effective batch of one
                                optimizer step */
    int micro_batch;         /* --micro-batch M: samples per forward/backward (0: the plan's,
                                or the whole batch); batch_size / M passes per step */
    int plan_only;           /* --plan: print the memory plan and exit (no GPU needed) */
    int recompute;           /* --recompute auto|off|on: a VramRecompute (auto) */
    int no_cuda_graphs;      /* --cuda-graphs off: 1 (cuda_train.h; on by default) */
    uint64_t vram_budget;    /* --vram-budget SIZE (bytes; 0: the preset's, or none) */
    const char *gpu;         /* --gpu PRESET (vram_plan.h): capacity, reserve, bf16 or not */
    double eval_share;       /* --eval-share F: fraction of the budget left to an evaluator
                                on the same GPU (0; stoker-eval on the card: 0.25 is ample
                                for its forward-only net at the same micro-batch) */
    int epochs;              /* --epochs */
    int workers;             /* -j/--workers: loader processes */
    OptimConfig opt;         /* --opt sgd|adamw, --momentum, --nesterov */
    SchedConfig sched;       /* --lr, --lr-scheduler, --lr-step-size, --lr-gamma, --lr-min,
                                --lr-warmup-epochs, --lr-warmup-method, --lr-warmup-decay */
    double weight_decay;     /* --weight-decay (1e-4) */
    double norm_weight_decay; /* --norm-weight-decay (default: the weight decay) */
    double label_smoothing;  /* --label-smoothing (0) */
    uint64_t seed;           /* --seed */
    int train_crop, val_resize, val_crop; /* --train-crop-size, --val-resize-size, --val-crop-size */
    const char *rrc_scale;   /* --rrc-scale LO,HI passed to the loaders, or NULL */
    int deterministic;       /* --deterministic: batches in index order */
    int lr_per_iteration;    /* --lr-per-iteration: move the schedule every step (torchvision
                                steps it per epoch) */
    int print_freq;          /* --print-freq (steps between progress lines) */
    /* Supervised mode (stoker-run starts the loaders and the evaluator): with
       --data-endpoint the trainer binds its data socket there, starts no loaders and
       evaluates nothing itself (stoker-eval does, from the checkpoint notices). */
    const char *data_endpoint; /* --data-endpoint EP: bind the data PULL here */
    const char *control;       /* --control EP: SUB for shutdown */
    const char *reports;       /* --reports EP: PUSH metrics, errors, heartbeats */
    const char *checkpoints;   /* --checkpoints EP: PUB checkpoint-ready notices */
    const char *curve_key;     /* --curve-key FILE: CURVE on every socket with this server
                                  key pair (the supervisor's; also the client key of the
                                  trainer's own connections to it), or NULL: plain */
    const char *curve_clients; /* --curve-clients DIR: the client public keys admitted */
    /* Data parallel (train_group.h): --gpus N ranks, one process each, started by
       stoker-run; rank 0 alone writes checkpoints and announces them. */
    int gpus;                  /* --gpus N: ranks in the group (1) */
    int rank;                  /* --rank R: this process's rank, CUDA device R (0) */
    const char *dist_endpoint; /* --dist-endpoint EP: rank 0 binds the group socket here */
} TrainConfig;

/* Parses argv (after defaults); returns 0, 1 for --help (printed), -1 after printing
 * what is wrong (bad flag, impossible value). */
int train_config_parse(TrainConfig *c, int argc, char **argv);

#endif
