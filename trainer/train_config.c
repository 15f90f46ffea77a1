/* train_config.c: stoker-train's flags (see train_config.h). */
#include "train_config.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vram_plan.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: stoker-train --data-path DIR [options]   (flags as torchvision's train.py)\n"
        "  --model NAME            smallcnn (default; 28x28 inputs), resnet18, resnet34, resnet50,\n"
        "                          mobilenet_v3_small, mobilenet_v3_large, efficientnet_b0\n"
        "  --device cpu|cuda       cpu (default) or the first GPU\n"
        "  --precision fp32|tf32|bf16|fp16  CUDA's (bf16 where the card has it, else fp32; fp16\n                          with dynamic loss scaling, as torch.amp.GradScaler)\n"
        "  -b, --batch-size N      32     --epochs N 2      -j, --workers N  loader processes (2)\n"
        "  --opt sgd|adamw         sgd    --lr F 0.1   --momentum F 0.9   --nesterov\n"
        "  --weight-decay F        1e-4   --norm-weight-decay F (default: --weight-decay)\n"
        "  --label-smoothing F     0\n"
        "  --lr-scheduler steplr|cosineannealinglr|exponentiallr (steplr)\n"
        "  --lr-step-size N 30  --lr-gamma F 0.1  --lr-min F 0\n"
        "  --lr-warmup-epochs N 0  --lr-warmup-method linear|constant  --lr-warmup-decay F 0.01\n"
        "  --train-crop-size N  --val-resize-size N  --val-crop-size N  (28 for smallcnn and smallresnet, else 224/256/224)\n"
        "  --rrc-scale LO,HI       RandomResizedCrop area range for the loaders (0.08,1)\n"
        "  --output-dir DIR        runs/<time>   --resume CKPT   --seed N 0\n"
        "  --deterministic         consume batches in index order   --print-freq N 50\n"
        "  --lr-per-iteration      move the LR schedule every step, not every epoch\n"
        "  --weights FILE          start from these weights (scripts/export_torchvision.py);\n"
        "                          a head of another class count is replaced\n"
        "  --freeze-backbone       train the head only   --trainable-layers N  head + last N blocks\n"
        "memory plan (docs/ARCHITECTURE.md 'VRAM planner'):\n"
        "  --gpu PRESET            gtx1050-2g, gtx1050-4g, rtx3070, h100: capacity, reserve, bf16\n"
        "  --vram-budget SIZE      e.g. 2GiB, 1536MiB (overrides the preset's capacity)\n"
        "  --eval-share F          fraction of the budget left to an evaluator on the card (0)\n"
        "  --micro-batch M         samples per pass; --batch-size / M passes per step\n"
        "  --plan                  print the plan for --device cuda and exit (no GPU needed)\n"
        "  --recompute auto|off|on batch-norm + activation outputs made again in backward, not\n"
        "                          kept: 17%% less activation memory for resnet18, ~40%% for the\n"
        "                          MobileNets/EfficientNets, 1-5%% slower; auto: when the plan\n"
        "                          needs it to take fewer micro-batches (auto)\n"
        "  --cuda-graphs on|off    replay each training pass as a captured CUDA graph after two\n"
        "                          eager ones (on)\n"
        "supervised mode (stoker-run uses it):\n"
        "  --data-endpoint EP      bind the data socket at EP; start no loaders, no inline eval\n"
        "  --control EP  --reports EP  --checkpoints EP   shutdown SUB, reports PUSH, notices PUB\n"
        "  --curve-key FILE        CURVE on every socket: the server key pair (stoker-run's)\n"
        "  --curve-clients DIR     CURVE: admit the client keys DIR/*.pub (and the server's)\n"
        "data parallel (stoker-run --gpus N starts one stoker-train per rank):\n"
        "  --gpus N                ranks in the group (1); --batch-size is per rank, so a step\n"
        "                          trains N x batch; each epoch is sharded (loader_shard.h)\n"
        "  --rank R                this process's rank (0); CUDA: it trains on device R\n"
        "  --dist-endpoint EP      where rank 0 binds the group's socket (gradients on the CPU\n"
        "                          backend, the NCCL id on CUDA); the others connect\n");
}

static int bad(const char *what, const char *v) {
    fprintf(stderr, "stoker-train: %s: '%s'\n", what, v ? v : "");
    return -1;
}

static int num(const char *s, double lo, double hi, double *out) {
    char *e;
    double v = strtod(s, &e);
    if (e == s || *e || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

enum { O_DATA = 256, O_MODEL, O_DEVICE, O_OUT, O_RESUME, O_EPOCHS, O_OPT, O_LR, O_MOM, O_NEST,
       O_WD, O_NWD, O_LS, O_SCHED, O_STEP, O_GAMMA, O_LRMIN, O_WEP, O_WMETH, O_WDEC, O_SEED,
       O_TCROP, O_VRES, O_VCROP, O_RRC, O_DET, O_PRINT, O_PERIT, O_WEIGHTS, O_FREEZE, O_TRAINABLE,
       O_PREC, O_DATAEP, O_CONTROL, O_REPORTS, O_CKPTS, O_PLAN, O_RECOMP, O_GRAPHS, O_BUDGET, O_GPU, O_ESHARE,
       O_MICRO, O_CURVE_KEY, O_CURVE_CLIENTS, O_GPUS, O_RANK, O_DISTEP };

static const struct option opts[] = {
    {"data-path", 1, 0, O_DATA}, {"model", 1, 0, O_MODEL}, {"device", 1, 0, O_DEVICE},
    {"precision", 1, 0, O_PREC},
    {"output-dir", 1, 0, O_OUT}, {"resume", 1, 0, O_RESUME}, {"batch-size", 1, 0, 'b'},
    {"epochs", 1, 0, O_EPOCHS}, {"workers", 1, 0, 'j'}, {"opt", 1, 0, O_OPT}, {"lr", 1, 0, O_LR},
    {"momentum", 1, 0, O_MOM}, {"nesterov", 0, 0, O_NEST}, {"weight-decay", 1, 0, O_WD},
    {"wd", 1, 0, O_WD}, {"norm-weight-decay", 1, 0, O_NWD}, {"label-smoothing", 1, 0, O_LS},
    {"lr-scheduler", 1, 0, O_SCHED}, {"lr-step-size", 1, 0, O_STEP}, {"lr-gamma", 1, 0, O_GAMMA},
    {"lr-min", 1, 0, O_LRMIN}, {"lr-warmup-epochs", 1, 0, O_WEP},
    {"lr-warmup-method", 1, 0, O_WMETH}, {"lr-warmup-decay", 1, 0, O_WDEC}, {"seed", 1, 0, O_SEED},
    {"train-crop-size", 1, 0, O_TCROP}, {"val-resize-size", 1, 0, O_VRES},
    {"val-crop-size", 1, 0, O_VCROP}, {"rrc-scale", 1, 0, O_RRC}, {"deterministic", 0, 0, O_DET},
    {"print-freq", 1, 0, O_PRINT}, {"lr-per-iteration", 0, 0, O_PERIT}, {"help", 0, 0, 'h'},
    {"weights", 1, 0, O_WEIGHTS}, {"freeze-backbone", 0, 0, O_FREEZE},
    {"trainable-layers", 1, 0, O_TRAINABLE}, {"data-endpoint", 1, 0, O_DATAEP},
    {"control", 1, 0, O_CONTROL}, {"reports", 1, 0, O_REPORTS}, {"checkpoints", 1, 0, O_CKPTS},
    {"curve-key", 1, 0, O_CURVE_KEY}, {"curve-clients", 1, 0, O_CURVE_CLIENTS},
    {"plan", 0, 0, O_PLAN}, {"recompute", 1, 0, O_RECOMP}, {"cuda-graphs", 1, 0, O_GRAPHS},
    {"vram-budget", 1, 0, O_BUDGET}, {"gpu", 1, 0, O_GPU},
    {"eval-share", 1, 0, O_ESHARE}, {"micro-batch", 1, 0, O_MICRO},
    {"gpus", 1, 0, O_GPUS}, {"rank", 1, 0, O_RANK}, {"dist-endpoint", 1, 0, O_DISTEP}, {0}};

/* One numeric flag into its field; -1 when it is not one of them or out of range. */
static int numeric(TrainConfig *c, int opt, const char *arg) {
    double v;
    struct { int opt; double lo, hi; } r[] = {
        {'b', 1, 65536}, {O_EPOCHS, 1, 100000}, {'j', 1, 1024}, {O_LR, 0, 1e3}, {O_MOM, 0, 1},
        {O_WD, 0, 10}, {O_NWD, 0, 10}, {O_LS, 0, 1}, {O_STEP, 1, 1e6}, {O_GAMMA, 0, 10},
        {O_LRMIN, 0, 1e3}, {O_WEP, 0, 1e5}, {O_WDEC, 0, 1}, {O_SEED, 0, 1e18}, {O_TCROP, 1, 4096},
        {O_VRES, 1, 8192}, {O_VCROP, 1, 4096}, {O_PRINT, 1, 1e9}, {O_TRAINABLE, 0, 1000},
        {O_ESHARE, 0, 0.9}, {O_MICRO, 1, 65536}, {O_GPUS, 1, 64}, {O_RANK, 0, 63}};
    for (size_t i = 0; i < sizeof r / sizeof *r; i++) {
        if (r[i].opt != opt) continue;
        if (num(arg, r[i].lo, r[i].hi, &v)) return -1;
        switch (opt) {
        case 'b': c->batch_size = (int)v; break;
        case O_EPOCHS: c->epochs = c->sched.epochs = (int)v; break;
        case 'j': c->workers = (int)v; break;
        case O_LR: c->sched.lr = v; break;
        case O_MOM: c->opt.momentum = v; break;
        case O_WD: c->weight_decay = v; break;
        case O_NWD: c->norm_weight_decay = v; break;
        case O_LS: c->label_smoothing = v; break;
        case O_STEP: c->sched.step_size = (int)v; break;
        case O_GAMMA: c->sched.gamma = v; break;
        case O_LRMIN: c->sched.lr_min = v; break;
        case O_WEP: c->sched.warmup_epochs = (int)v; break;
        case O_WDEC: c->sched.warmup_decay = v; break;
        case O_SEED: c->seed = (uint64_t)v; break;
        case O_TCROP: c->train_crop = (int)v; break;
        case O_VRES: c->val_resize = (int)v; break;
        case O_VCROP: c->val_crop = (int)v; break;
        case O_PRINT: c->print_freq = (int)v; break;
        case O_TRAINABLE: c->trainable_layers = (int)v; break;
        case O_ESHARE: c->eval_share = v; break;
        case O_MICRO: c->micro_batch = (int)v; break;
        case O_GPUS: c->gpus = (int)v; break;
        case O_RANK: c->rank = (int)v; break;
        }
        return 0;
    }
    return -1;
}

/* A named choice; -1 if arg is none of names. */
static int choice(const char *arg, const char *const *names) {
    for (int i = 0; names[i]; i++)
        if (!strcmp(arg, names[i])) return i;
    return -1;
}

static int word(TrainConfig *c, int opt, const char *arg) {
    static const char *const opts_[] = {"sgd", "adamw", NULL};
    static const char *const scheds[] = {"steplr", "cosineannealinglr", "exponentiallr", NULL};
    static const char *const methods[] = {"linear", "constant", NULL};
    static const char *const devices[] = {"cpu", "cuda", NULL};
    static const char *const precisions[] = {"fp32", "tf32", "bf16", "fp16", NULL};
    static const char *const recomputes[] = {"auto", "off", "on", NULL}; /* VramRecompute's order */
    static const char *const on_off[] = {"on", "off", NULL};
    int k;
    switch (opt) {
    case O_DATA: c->data_path = arg; return 0;
    case O_MODEL: c->model = arg; return 0;
    case O_OUT: c->output_dir = arg; return 0;
    case O_RESUME: c->resume = arg; return 0;
    case O_WEIGHTS: c->weights = arg; return 0;
    case O_RRC: c->rrc_scale = arg; return 0;
    case O_DATAEP: c->data_endpoint = arg; return 0;
    case O_CONTROL: c->control = arg; return 0;
    case O_REPORTS: c->reports = arg; return 0;
    case O_CKPTS: c->checkpoints = arg; return 0;
    case O_CURVE_KEY: c->curve_key = arg; return 0;
    case O_CURVE_CLIENTS: c->curve_clients = arg; return 0;
    case O_DISTEP: c->dist_endpoint = arg; return 0;
    case O_GPU: if (!vram_preset(arg)) return -1; c->gpu = arg; return 0;
    case O_BUDGET: {
        StkErr err;
        return vram_parse_size(arg, &c->vram_budget, &err);
    }
    case O_OPT: if ((k = choice(arg, opts_)) < 0) return -1; c->opt.kind = (OptimKind)k; return 0;
    case O_SCHED: if ((k = choice(arg, scheds)) < 0) return -1; c->sched.kind = (SchedKind)k; return 0;
    case O_WMETH: if ((k = choice(arg, methods)) < 0) return -1; c->sched.warmup = (WarmupKind)k; return 0;
    case O_DEVICE: if (choice(arg, devices) < 0) return -1; c->device = arg; return 0;
    case O_PREC: if (choice(arg, precisions) < 0) return -1; c->precision = arg; return 0;
    case O_RECOMP: if ((k = choice(arg, recomputes)) < 0) return -1; c->recompute = k; return 0;
    case O_GRAPHS: if ((k = choice(arg, on_off)) < 0) return -1; c->no_cuda_graphs = k; return 0;
    }
    return numeric(c, opt, arg);
}

/* The long name of option opt, for messages. */
static const char *flag_name(int opt) {
    for (const struct option *o = opts; o->name; o++)
        if (o->val == opt) return o->name;
    return "?";
}

int train_config_parse(TrainConfig *c, int argc, char **argv) {
    *c = (TrainConfig){.model = "smallcnn", .device = "cpu", .batch_size = 32, .epochs = 2,
                       .workers = 2, .sched = sched_default(), .weight_decay = 1e-4,
                       .norm_weight_decay = NAN, .print_freq = 50, .trainable_layers = -1,
                       .gpus = 1};
    c->opt = (OptimConfig){OPTIM_SGD, 0.9, 0, 0, 0.9, 0.999, 1e-8};
    c->sched.epochs = 2;
    int opt;
    while ((opt = getopt_long(argc, argv, "b:j:h", opts, NULL)) != -1) {
        if (opt == 'h') return usage(stdout), 1;
        if (opt == '?') return usage(stderr), -1;
        if (opt == O_NEST) { c->opt.nesterov = 1; continue; }
        if (opt == O_DET) { c->deterministic = 1; continue; }
        if (opt == O_PERIT) { c->lr_per_iteration = 1; continue; }
        if (opt == O_FREEZE) { c->trainable_layers = 0; continue; }
        if (opt == O_PLAN) { c->plan_only = 1; continue; }
        if (word(c, opt, optarg)) {
            char what[64];
            snprintf(what, sizeof what, "bad value for --%s", flag_name(opt));
            return bad(what, optarg);
        }
    }
    if (optind != argc) return bad("unexpected argument", argv[optind]);
    if (!c->data_path && !c->plan_only) return bad("--data-path is required", "");
    if (c->plan_only && !c->gpu && !c->vram_budget)
        return bad("--plan needs a card: --gpu PRESET or --vram-budget SIZE", "");
    if (c->micro_batch > c->batch_size)
        return bad("--micro-batch is larger than --batch-size", "");
    if (c->gpu && c->precision && strcmp(c->precision, "fp32") && !vram_preset(c->gpu)->bf16)
        return bad("--precision: this card (--gpu) computes fp32 only, not", c->precision);
    if (c->precision && !c->plan_only && !strcmp(c->device, "cpu") && strcmp(c->precision, "fp32"))
        return bad("--precision: the CPU backend computes in fp32, not", c->precision);
    if (c->weights && c->resume)
        return bad("--weights starts a run, --resume continues one: give one of", "");
    if (isnan(c->norm_weight_decay)) c->norm_weight_decay = c->weight_decay;
    if (c->rank >= c->gpus) return bad("--rank must be below --gpus", "");
    if (c->gpus > 1 && !c->dist_endpoint && c->data_endpoint)
        return bad("--gpus > 1 needs --dist-endpoint (stoker-run gives it)", "");
    if (c->gpus > 1 && c->micro_batch && c->micro_batch < c->batch_size)
        return bad("--gpus > 1 does not take micro-batches yet", "");
    int resize, crop;
    model_default_sizes(c->model, &resize, &crop);
    if (!c->train_crop) c->train_crop = crop;
    if (!c->val_resize) c->val_resize = resize;
    if (!c->val_crop) c->val_crop = crop;
    if (c->val_crop > c->val_resize) return bad("--val-crop-size is larger than --val-resize-size", "");
    /* one network evaluates what it trains on: its input buffer has the train crop's size */
    if (c->val_crop != c->train_crop)
        return bad("--val-crop-size must equal --train-crop-size for now (one network input); got",
                   c->val_crop > c->train_crop ? "a larger val crop" : "a smaller val crop");
    if (c->sched.kind == SCHED_COSINE && c->sched.warmup_epochs >= c->epochs)
        return bad("--lr-warmup-epochs must be below --epochs for cosine", "");
    return 0;
}
