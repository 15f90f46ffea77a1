/* eval_config.c: stoker-eval's flags (see eval_config.h). */
#include "eval_config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h" /* model_default_sizes */
#include "vram_plan.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: stoker-eval --data-path DIR (--checkpoint FILE | --checkpoints EP | both) [options]\n"
        "  --checkpoint FILE       evaluate FILE on the val split, print the figures, exit\n"
        "  --checkpoints EP        follow checkpoint notices published at EP (the newest only);\n"
        "                          with --checkpoint too, FILE first (a restarted evaluator\n"
        "                          catches up on the notice it missed)\n"
        "  --model NAME            smallcnn (default), or any of stoker-train's models\n"
        "  --device cpu|cuda       where the forward passes run (cpu)\n"
        "  --precision P           fp32|tf32|bf16|fp16 on cuda (default: the card's best)\n"
        "  --vram-budget SIZE      cuda: the evaluator's share of the GPU (its context included):\n"
        "                          an inference-only network in the largest batch up to -b that\n"
        "                          fits (stoker-run gives --eval-share x the trainer's budget)\n"
        "  --gpu NAME              the card's preset (context reserve, bf16 or not), as stoker-train\n"
        "  --duty F                at most F (0..1] of the time spent evaluating: after an\n"
        "                          evaluation of T s the next waits T(1/F - 1) s, newer notices\n"
        "                          replacing the one held; never the final checkpoint's (1:\n"
        "                          every notice at once; stoker-run gives --eval-duty)\n"
        "  --val-cache SIZE        keep the decoded val split in memory after the first\n"
        "                          evaluation when it fits in SIZE (1GiB; 0: decode it each time)\n"
        "  -b, --batch-size N      32      -j, --workers N   val loader processes (1)\n"
        "  --val-resize-size N  --val-crop-size N   (28/28 for smallcnn and smallresnet, else 256/224)\n"
        "  --best FILE             keep the best checkpoint by top-1 at FILE\n"
        "  --control EP  --reports EP   shutdown SUB, reports PUSH (stoker-run uses them)\n"
        "  --curve-key FILE  --curve-server-key FILE   CURVE client keys for those sockets\n");
}

static int bad(const char *what, const char *v) {
    fprintf(stderr, "stoker-eval: %s '%s' (see --help)\n", what, v ? v : "");
    return -1;
}

static int positive(const char *s, int hi, int *out) {
    char *e;
    long v = strtol(s, &e, 10);
    if (e == s || *e || v < 1 || v > hi) return -1;
    *out = (int)v;
    return 0;
}

int eval_config_parse(EvalConfig *c, int argc, char **argv) {
    enum { O_DATA = 256, O_MODEL, O_VRES, O_VCROP, O_CKPT, O_CKPTS, O_CONTROL, O_REPORTS, O_BEST,
           O_CURVE_KEY, O_CURVE_SERVER, O_DEVICE, O_PREC, O_VRAM, O_GPU, O_VCACHE,
           O_DUTY };
    static const struct option opts[] = {
        {"data-path", 1, 0, O_DATA}, {"model", 1, 0, O_MODEL}, {"batch-size", 1, 0, 'b'},
        {"workers", 1, 0, 'j'}, {"val-resize-size", 1, 0, O_VRES}, {"val-crop-size", 1, 0, O_VCROP},
        {"checkpoint", 1, 0, O_CKPT}, {"checkpoints", 1, 0, O_CKPTS}, {"control", 1, 0, O_CONTROL},
        {"reports", 1, 0, O_REPORTS}, {"best", 1, 0, O_BEST},
        {"curve-key", 1, 0, O_CURVE_KEY}, {"curve-server-key", 1, 0, O_CURVE_SERVER},
        {"device", 1, 0, O_DEVICE}, {"precision", 1, 0, O_PREC},
        {"vram-budget", 1, 0, O_VRAM}, {"gpu", 1, 0, O_GPU}, {"duty", 1, 0, O_DUTY},
        {"val-cache", 1, 0, O_VCACHE}, {"help", 0, 0, 'h'}, {0}};
    *c = (EvalConfig){.model = "smallcnn", .batch_size = 32, .workers = 1, .device = "cpu",
                      .val_cache = 1ull << 30, .duty = 1};
    int opt;
    while ((opt = getopt_long(argc, argv, "b:j:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'h': usage(stdout); return 1;
        case O_DATA: c->data_path = optarg; break;
        case O_MODEL: c->model = optarg; break;
        case O_CKPT: c->checkpoint = optarg; break;
        case O_CKPTS: c->checkpoints = optarg; break;
        case O_CONTROL: c->control = optarg; break;
        case O_REPORTS: c->reports = optarg; break;
        case O_BEST: c->best = optarg; break;
        case O_CURVE_KEY: c->curve_key = optarg; break;
        case O_CURVE_SERVER: c->curve_server = optarg; break;
        case O_DEVICE:
            if (strcmp(optarg, "cpu") && strcmp(optarg, "cuda")) return bad("--device: cpu or cuda, not", optarg);
            c->device = optarg;
            break;
        case O_PREC: c->precision = optarg; break;
        case O_VRAM: {
            StkErr err;
            if (vram_parse_size(optarg, &c->vram_budget, &err) || !c->vram_budget)
                return bad("--vram-budget: a size such as 512MiB, not", optarg);
            break;
        }
        case O_VCACHE: {
            StkErr err;
            if (strcmp(optarg, "0") && (vram_parse_size(optarg, &c->val_cache, &err) || !c->val_cache))
                return bad("--val-cache: a size such as 1GiB, or 0, not", optarg);
            if (!strcmp(optarg, "0")) c->val_cache = 0;
            break;
        }
        case O_DUTY: {
            char *end;
            c->duty = strtod(optarg, &end);
            if (end == optarg || *end || !(c->duty > 0 && c->duty <= 1))
                return bad("--duty: a fraction in (0, 1], not", optarg);
            break;
        }
        case O_GPU:
            if (!vram_preset(optarg)) return bad("--gpu: not a preset (see stoker-train --help):", optarg);
            c->gpu = optarg;
            break;
        case 'b': if (positive(optarg, 65536, &c->batch_size)) return bad("bad -b", optarg); break;
        case 'j': if (positive(optarg, 1024, &c->workers)) return bad("bad -j", optarg); break;
        case O_VRES: if (positive(optarg, 8192, &c->val_resize)) return bad("bad size", optarg); break;
        case O_VCROP: if (positive(optarg, 4096, &c->val_crop)) return bad("bad size", optarg); break;
        default: usage(stderr); return -1;
        }
    }
    if (optind != argc) return bad("unexpected argument", argv[optind]);
    if (!c->data_path) return bad("--data-path is required", "");
    if (!c->checkpoint && !c->checkpoints) return bad("give --checkpoint, --checkpoints or both", "");
    if (!c->curve_key != !c->curve_server) return bad("CURVE needs both --curve-key and", "--curve-server-key");
    if (c->vram_budget && strcmp(c->device, "cuda"))
        return bad("--vram-budget is a GPU's share; it needs", "--device cuda");
    if (c->precision && !strcmp(c->device, "cpu") && strcmp(c->precision, "fp32"))
        return bad("--precision on the CPU is fp32, not", c->precision);
    int resize, crop;
    model_default_sizes(c->model, &resize, &crop);
    if (!c->val_resize) c->val_resize = resize;
    if (!c->val_crop) c->val_crop = crop;
    if (c->val_crop > c->val_resize) return bad("--val-crop-size is larger than", "--val-resize-size");
    return 0;
}
