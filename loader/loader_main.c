/* loader_main.c: stoker-loader, the decode + augment process. One process per core;
 * -j N starts N of them (loader ids 0..N-1) and waits for all. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "loader_proc.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: stoker-loader --data ENDPOINT DATASET|INDEX [options]\n"
        "Decodes and augments its shard of DATASET (an ImageFolder indexed by\n"
        "`stoker-data index`, or the index file itself) and pushes batches to ENDPOINT.\n"
        "  --data EP           trainer's data endpoint (ipc://... or tcp://...), required\n"
        "  --split train|val   which split (default train; val means the eval transform)\n"
        "  -j, --workers N     start N loader processes, ids 0..N-1 (default 1)\n"
        "  --id I --loaders N  be loader I of N (what -j does for each child)\n"
        "  --rank R --world W  feed trainer rank R of W (--gpus W): its batches k*W + R,\n"
        "                      the tail of fewer than W batches dropped (needs --drop-last);\n"
        "                      --id/--loaders then count the loaders of that rank\n"
        "  --batch B           samples per batch (256)\n"
        "  --epochs E          epochs to produce (1); --start-epoch S (0)\n"
        "  --seed S            seed of every order, crop and flip (0)\n"
        "  --train-crop-size C output side for train (224)\n"
        "  --val-resize-size R eval: resize the short side to R (256)\n"
        "  --val-crop-size C   eval: then centre-crop C (224)\n"
        "  --drop-last         drop the last partial batch\n"
        "  --rrc-scale LO,HI   RandomResizedCrop's area range (0.08,1)\n"
        "  --rrc-ratio LO,HI   RandomResizedCrop's aspect range (0.75,1.3333)\n"
        "  --color-jitter B[,C,S] ColorJitter(brightness B, contrast C, saturation S);\n"
        "                      one value sets all three (off by default)\n"
        "  --random-erase P    RandomErasing with probability P (torchvision's scale and\n"
        "                      ratio; fills with the ImageNet mean colour; off by default)\n"
        "  --max-pixels N      refuse images over N pixels (100000000)\n"
        "  --hwm H             batches queued on the socket per loader (2)\n"
        "  --control EP        control endpoint (SUB: shutdown)\n"
        "  --reports EP        reports endpoint (PUSH: bad files, heartbeats, errors)\n"
        "  --root DIR          dataset root if it moved since it was indexed\n"
        "  --curve-key FILE    CURVE: this loader's key pair (NAME.key from `stoker-data\n"
        "                      keygen`, mode 0600) for a trainer on another host\n"
        "  --curve-server-key FILE  CURVE: the server's public key (server.pub); both or\n"
        "                      neither (stoker-run --bind prints the whole command)\n"
        "  -q, --quiet         no per-epoch line (images/s, RSS) on stderr\n"
        "  --stay              after the last epoch, stay connected until SIGTERM or a\n"
        "                      shutdown message (for receivers that are still reading)\n");
}

/* Parses argv into c; returns 0, 1 for --help, -1 (message printed) on bad usage. */
static int parse(int argc, char **argv, LoaderProcConfig *c, int *workers, char **dataset,
                 const char **curve_key, const char **curve_server) {
    enum { O_DATA = 256, O_SPLIT, O_ID, O_LOADERS, O_BATCH, O_EPOCHS, O_START, O_SEED,
           O_TCROP, O_VRESIZE, O_VCROP, O_DROP, O_JITTER, O_ERASE, O_RRC_SCALE, O_RRC_RATIO, O_MAXPX, O_HWM, O_CONTROL, O_REPORTS, O_ROOT, O_STAY,
           O_CURVE_KEY, O_CURVE_SERVER, O_RANK, O_WORLD };
    static const struct option opts[] = {
        {"data", 1, 0, O_DATA}, {"split", 1, 0, O_SPLIT}, {"workers", 1, 0, 'j'},
        {"id", 1, 0, O_ID}, {"loaders", 1, 0, O_LOADERS}, {"batch", 1, 0, O_BATCH},
        {"epochs", 1, 0, O_EPOCHS}, {"start-epoch", 1, 0, O_START}, {"seed", 1, 0, O_SEED},
        {"train-crop-size", 1, 0, O_TCROP}, {"val-resize-size", 1, 0, O_VRESIZE},
        {"val-crop-size", 1, 0, O_VCROP}, {"drop-last", 0, 0, O_DROP},
        {"color-jitter", 1, 0, O_JITTER}, {"random-erase", 1, 0, O_ERASE},
        {"rrc-scale", 1, 0, O_RRC_SCALE}, {"rrc-ratio", 1, 0, O_RRC_RATIO},
        {"max-pixels", 1, 0, O_MAXPX}, {"hwm", 1, 0, O_HWM}, {"control", 1, 0, O_CONTROL},
        {"reports", 1, 0, O_REPORTS}, {"root", 1, 0, O_ROOT}, {"quiet", 0, 0, 'q'}, {"stay", 0, 0, O_STAY},
        {"curve-key", 1, 0, O_CURVE_KEY}, {"curve-server-key", 1, 0, O_CURVE_SERVER},
        {"rank", 1, 0, O_RANK}, {"world", 1, 0, O_WORLD},
        {"help", 0, 0, 'h'}, {0}};
    int tcrop = 224, vcrop = 224, opt;
    while ((opt = getopt_long(argc, argv, "j:hq", opts, NULL)) != -1) {
        char *end = NULL;
        unsigned long long v = optarg ? strtoull(optarg, &end, 10) : 0;
        int numeric = optarg && end && *end == '\0' && optarg[0] != '-';
        switch (opt) {
        case 'h': usage(stdout); return 1;
        case 'q': c->quiet = 1; continue;
        case O_STAY: c->stay = 1; continue;
        case O_DATA: c->data = optarg; continue;
        case O_CONTROL: c->control = optarg; continue;
        case O_REPORTS: c->reports = optarg; continue;
        case O_ROOT: c->root = optarg; continue;
        case O_CURVE_KEY: *curve_key = optarg; continue;
        case O_CURVE_SERVER: *curve_server = optarg; continue;
        case O_DROP: c->batch.drop_last = 1; continue;
        case O_JITTER: {
            AugJitter *j = &c->batch.jitter;
            int got = sscanf(optarg, "%lf,%lf,%lf", &j->brightness, &j->contrast, &j->saturation);
            if (got == 1) j->contrast = j->saturation = j->brightness;
            if (got != 1 && got != 3) break;
            continue;
        }
        case O_RRC_SCALE:
        case O_RRC_RATIO: {
            double lo, hi;
            if (sscanf(optarg, "%lf,%lf", &lo, &hi) != 2) break;
            AugRrcParams *r = &c->batch.rrc;
            if (opt == O_RRC_SCALE) r->scale_lo = lo, r->scale_hi = hi;
            else r->ratio_lo = lo, r->ratio_hi = hi;
            continue; /* ranges are checked with the rest of the config */
        }
        case O_ERASE: {
            char *e = NULL;
            double p = strtod(optarg, &e);
            if (!e || *e || p < 0 || p > 1) break;
            c->batch.erase = aug_erase_default();
            c->batch.erase.p = p;
            continue;
        }
        case O_SPLIT:
            if (strcmp(optarg, "train") && strcmp(optarg, "val")) break;
            c->batch.split = optarg[0] == 't' ? LOADER_TRAIN : LOADER_VAL;
            c->batch.train = optarg[0] == 't';
            continue;
        default:
            if (!numeric || v > 1ull << 40) break;
            switch (opt) {
            case 'j': *workers = (int)v; break;
            case O_ID: c->id = (uint32_t)v; break;
            case O_LOADERS: c->loaders = (uint32_t)v; break;
            case O_RANK: c->rank = (uint32_t)v; break;
            case O_WORLD: c->world = (uint32_t)v; break;
            case O_BATCH: c->batch.batch = (uint32_t)v; break;
            case O_EPOCHS: c->epochs = (uint32_t)v; break;
            case O_START: c->start_epoch = (uint32_t)v; break;
            case O_SEED: c->batch.seed = v; break;
            case O_TCROP: tcrop = (int)v; break;
            case O_VRESIZE: c->batch.val_resize = (int)v; break;
            case O_VCROP: vcrop = (int)v; break;
            case O_MAXPX: c->batch.max_pixels = v; break;
            case O_HWM: c->hwm = (int)v; break;
            default: usage(stderr); return -1;
            }
            continue;
        }
        fprintf(stderr, "stoker-loader: bad value '%s' (see --help)\n", optarg ? optarg : "");
        return -1;
    }
    c->batch.crop = c->batch.train ? tcrop : vcrop;
    if (optind != argc - 1 || !c->data) {
        fprintf(stderr, "stoker-loader: need --data ENDPOINT and one DATASET or INDEX\n");
        usage(stderr);
        return -1;
    }
    if (*workers < 1 || *workers > 1024 || c->hwm < 1 || c->hwm > 64) {
        fprintf(stderr, "stoker-loader: -j must be 1..1024 and --hwm 1..64\n");
        return -1;
    }
    if (!*curve_key != !*curve_server) {
        fprintf(stderr, "stoker-loader: CURVE needs both --curve-key and --curve-server-key\n");
        return -1;
    }
    *dataset = argv[optind];
    return 0;
}

/* DATASET may be the ImageFolder (its index is DATASET/stoker.index, and its files are
 * read under DATASET even if the tree moved since it was indexed) or the index itself
 * (files under the root it recorded, or --root). */
static int resolve_index(const char *dataset, char *buf, size_t cap, int *is_dir) {
    struct stat st;
    if (stat(dataset, &st)) {
        fprintf(stderr, "stoker-loader: %s: %s\n", dataset, strerror(errno));
        return -1;
    }
    *is_dir = S_ISDIR(st.st_mode);
    if (!*is_dir) return snprintf(buf, cap, "%s", dataset) >= (int)cap ? -1 : 0;
    snprintf(buf, cap, "%s/%s", dataset, LOADER_INDEX_DEFAULT_NAME);
    if (access(buf, R_OK)) {
        fprintf(stderr, "stoker-loader: %s has no index (%s): run `stoker-data index %s` first\n",
                dataset, buf, dataset);
        return -1;
    }
    return 0;
}

static pid_t children[1024];
static int nchildren;

static void forward(int sig) {
    for (int i = 0; i < nchildren; i++) kill(children[i], sig);
}

/* Runs one loader whose signal handlers are in place. */
static int run_proc(const LoaderProcConfig *c) {
    StkErr err;
    if (loader_proc_run(c, &err)) {
        fprintf(stderr, "stoker-loader[%u]: %s\n", c->id, err.msg);
        return 1;
    }
    return 0;
}

static int run_one(const LoaderProcConfig *c) {
    StkErr err;
    if (loader_proc_signals(&err)) {
        fprintf(stderr, "stoker-loader[%u]: %s\n", c->id, err.msg);
        return 1;
    }
    return run_proc(c);
}

/* Starts `workers` loaders as children and waits for them; non-zero if any failed.
 * SIGINT/SIGTERM stay blocked while forking: a child must not run the parent's
 * forwarding handler (it would swallow its own stop), so it installs its self-pipe
 * handler first and only then unblocks; a signal that came meanwhile is delivered then. */
static int run_workers(LoaderProcConfig *c, int workers) {
    sigset_t stops, old;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    sigprocmask(SIG_BLOCK, &stops, &old);
    struct sigaction sa = {0};
    sa.sa_handler = forward;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    c->loaders = (uint32_t)workers;
    for (int i = 0; i < workers; i++) {
        pid_t pid = fork();
        if (pid < 0) {
            fprintf(stderr, "stoker-loader: fork: %s\n", strerror(errno));
            break;
        }
        if (pid == 0) {
            c->id = (uint32_t)i;
            StkErr err;
            int rc = loader_proc_signals(&err);
            sigprocmask(SIG_SETMASK, &old, NULL);
            if (rc) {
                fprintf(stderr, "stoker-loader[%d]: %s\n", i, err.msg);
                _exit(1);
            }
            _exit(run_proc(c));
        }
        children[nchildren++] = pid;
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (nchildren < workers) forward(SIGTERM);
    int failed = nchildren < workers;
    for (int i = 0; i < nchildren; i++) {
        int status;
        while (waitpid(children[i], &status, 0) < 0 && errno == EINTR) {}
        if (!WIFEXITED(status) || WEXITSTATUS(status)) failed = 1;
    }
    return failed;
}

int main(int argc, char **argv) {
    LoaderProcConfig c = {.batch = loader_batch_config_default(), .loaders = 1, .epochs = 1,
                          .hwm = 2};
    int workers = 1;
    char *dataset = NULL;
    const char *curve_key = NULL, *curve_server = NULL;
    int rc = parse(argc, argv, &c, &workers, &dataset, &curve_key, &curve_server);
    if (rc) return rc > 0 ? 0 : 2;
    static ProtoCurve curve; /* read once, before any fork: every child uses the same keys */
    StkErr err;
    if (curve_key && proto_curve_open(&curve, curve_key, curve_server, &err)) {
        fprintf(stderr, "stoker-loader: %s\n", err.msg);
        return 2;
    }
    if (curve_key) c.curve = &curve;
    char index[4096];
    int is_dir;
    if (resolve_index(dataset, index, sizeof index, &is_dir)) return 2;
    c.index_path = index;
    if (is_dir && !c.root) c.root = dataset;
    return workers > 1 ? run_workers(&c, workers) : run_one(&c);
}
