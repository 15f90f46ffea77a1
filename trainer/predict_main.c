/* predict_main.c: stoker-predict: the classes a checkpoint sees in JPEG files, with
 * probabilities, through the eval transform stoker-train validates with.
 * Exit status: 0 all predicted, 1 some files were bad (named on stderr; the others are
 * still predicted), 2 bad usage or an unusable checkpoint. */
#include <dirent.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loader_scan.h"
#include "predict.h"

typedef struct Args {
    PredictConfig cfg;
    int topk, json;
} Args;

typedef struct PathList {
    char **path;
    size_t n, cap;
} PathList;

static void usage(FILE *f) {
    fprintf(f,
        "usage: stoker-predict --checkpoint FILE [options] IMAGE... | DIR...\n"
        "  --checkpoint FILE       stoker-train's checkpoint or scripts/export_torchvision.py's file\n"
        "  --topk N                classes per image (5)    --json   one JSON object per line\n"
        "  --val-resize-size N     short side before the centre crop (checkpoint's, else 256)\n"
        "  --val-crop-size N       centre crop (checkpoint's, else 224)\n"
        "  --model NAME            architecture, for checkpoints that do not name it\n"
        "  -b, --batch-size N      images per forward pass (8)\n"
        "A DIR is searched recursively for .jpg .jpeg .jpe .jfif files (hidden ones skipped),\n"
        "in name order. Bad files are named on stderr; the exit status is then 1.\n");
}

static void push(PathList *l, const char *path) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->path = realloc(l->path, l->cap * sizeof *l->path);
        if (!l->path) perror("stoker-predict"), exit(2);
    }
    if (!(l->path[l->n++] = strdup(path))) perror("stoker-predict"), exit(2);
}

static int by_name(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Adds dir's JPEG files, recursively, in name order; an unreadable dir counts as bad. */
static void walk(PathList *l, const char *dir, int *bad) {
    struct dirent **e;
    int n = scandir(dir, &e, NULL, by_name);
    if (n < 0) { fprintf(stderr, "stoker-predict: %s: cannot read the folder\n", dir); ++*bad; return; }
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e[i]->d_name);
        if (e[i]->d_name[0] != '.' && !stat(path, &st)) {
            if (S_ISDIR(st.st_mode)) walk(l, path, bad);
            else if (loader_scan_is_jpeg_name(e[i]->d_name)) push(l, path);
        }
        free(e[i]);
    }
    free(e);
}

static int parse(Args *a, int argc, char **argv) {
    static const struct option opts[] = {
        {"checkpoint", 1, 0, 'c'}, {"topk", 1, 0, 'k'}, {"json", 0, 0, 'J'}, {"model", 1, 0, 'm'},
        {"val-resize-size", 1, 0, 'r'}, {"val-crop-size", 1, 0, 'C'}, {"batch-size", 1, 0, 'b'},
        {"help", 0, 0, 'h'}, {0}};
    *a = (Args){.cfg = {.batch = 8}, .topk = 5};
    int o;
    while ((o = getopt_long(argc, argv, "b:h", opts, NULL)) != -1) {
        int v = optarg ? atoi(optarg) : 0;
        switch (o) {
        case 'c': a->cfg.checkpoint = optarg; break;
        case 'k': a->topk = v; break;
        case 'J': a->json = 1; break;
        case 'm': a->cfg.model = optarg; break;
        case 'r': a->cfg.val_resize = v; break;
        case 'C': a->cfg.val_crop = v; break;
        case 'b': a->cfg.batch = v; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
        if (optarg && v < 1 && o != 'c' && o != 'm')
            return fprintf(stderr, "stoker-predict: '%s' is not a positive number\n", optarg), -1;
    }
    if (!a->cfg.checkpoint || optind == argc) return usage(stderr), -1;
    return 0;
}

/* Prints image i of the last run: "PATH: name p | name p ..." or a JSON line. */
static void print(const Predictor *p, const Args *a, int i, const char *path) {
    int idx[64], k = predictor_topk(p, i, a->topk < 64 ? a->topk : 64, idx);
    char buf[32];
    if (a->json) {
        json_t *top = json_array(), *o = json_pack("{s:s, s:o}", "path", path, "topk", top);
        for (int j = 0; j < k; j++)
            json_array_append_new(top, json_pack("{s:s, s:i, s:f}", "class",
                predictor_class_name(p, idx[j], buf, sizeof buf), "index", idx[j],
                "prob", p->probs[(size_t)i * p->classes + idx[j]]));
        char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(8));
        printf("%s\n", s ? s : "{}");
        free(s), json_decref(o);
        return;
    }
    printf("%s:", path);
    for (int j = 0; j < k; j++)
        printf("%s %s %.4f", j ? " |" : "", predictor_class_name(p, idx[j], buf, sizeof buf),
               p->probs[(size_t)i * p->classes + idx[j]]);
    printf("\n");
}

/* Runs the filled batch and prints it; names[] are its images' paths. */
static void flush(Predictor *p, const Args *a, const char **names) {
    StkErr err;
    if (!p->filled) return;
    if (predictor_run(p, &err)) fprintf(stderr, "stoker-predict: %s\n", err.msg), exit(2);
    for (int i = 0; i < p->filled; i++) print(p, a, i, names[i]);
    p->filled = 0;
}

int main(int argc, char **argv) {
    Args a;
    if (parse(&a, argc, argv)) return 2;
    static Predictor p;
    StkErr err;
    if (predictor_open(&p, &a.cfg, &err)) {
        fprintf(stderr, "stoker-predict: %s\n", err.msg);
        return 2;
    }
    PathList l = {0};
    int bad = 0;
    for (int i = optind; i < argc; i++) {
        struct stat st;
        if (!stat(argv[i], &st) && S_ISDIR(st.st_mode)) walk(&l, argv[i], &bad);
        else push(&l, argv[i]); /* named files are tried whatever their name */
    }
    const char **names = calloc((size_t)a.cfg.batch, sizeof *names);
    for (size_t i = 0; names && i < l.n; i++) {
        if (predictor_add(&p, l.path[i], &err)) {
            fprintf(stderr, "stoker-predict: bad file %s: %s\n", l.path[i], err.msg);
            bad++;
            continue;
        }
        names[p.filled - 1] = l.path[i];
        if (p.filled == p.batch) flush(&p, &a, names);
    }
    flush(&p, &a, names);
    fflush(stdout);
    if (bad) fprintf(stderr, "stoker-predict: %d of %zu files could not be read\n", bad, l.n);
    for (size_t i = 0; i < l.n; i++) free(l.path[i]);
    free(l.path), free(names);
    predictor_free(&p);
    return bad ? 1 : 0;
}
