/* lr_sched.h: learning-rate schedules as torchvision's references/classification/train.py
 * builds them, stepped once per epoch: a main schedule (step, cosine, exponential or
 * constant) after an optional linear or constant warm-up (SequentialLR). */
#ifndef LR_SCHED_H
#define LR_SCHED_H

typedef enum SchedKind { SCHED_STEP = 0, SCHED_COSINE, SCHED_EXPONENTIAL, SCHED_CONSTANT } SchedKind;
typedef enum WarmupKind { WARMUP_LINEAR = 0, WARMUP_CONSTANT } WarmupKind;

typedef struct SchedConfig {
    SchedKind kind;         /* --lr-scheduler steplr|cosineannealinglr|exponentiallr */
    double lr;              /* --lr */
    int epochs;             /* --epochs */
    int step_size;          /* --lr-step-size (30) */
    double gamma;           /* --lr-gamma (0.1) */
    double lr_min;          /* --lr-min (0.0), cosine's eta_min */
    int warmup_epochs;      /* --lr-warmup-epochs (0: none) */
    WarmupKind warmup;      /* --lr-warmup-method linear|constant */
    double warmup_decay;    /* --lr-warmup-decay (0.01): the starting factor */
} SchedConfig;

/* torchvision's defaults: steplr, lr 0.1, step 30, gamma 0.1, no warm-up. */
SchedConfig sched_default(void);

/* The learning rate during epoch e (0-based), as the PyTorch schedulers give it. */
double sched_lr(const SchedConfig *c, int epoch);

/* The same schedule at a fractional epoch (epoch + step / steps_per_epoch), for
 * per-iteration schedules (--lr-per-iteration): step LR still changes at whole epochs,
 * cosine, exponential and linear warm-up move continuously. */
double sched_lr_at(const SchedConfig *c, double epoch);

#endif
