/* train_main.c: stoker-train on the CPU backend. Standalone, it starts its own loader
 * processes (stoker-loader next to this program) on private ipc:// sockets, trains,
 * evaluates the val split after every epoch and writes checkpoints/last.safetensors (and
 * best.safetensors by top-1) under --output-dir. Supervised (--data-endpoint, used by
 * stoker-run), it takes batches from loaders started by the supervisor, reports metrics,
 * announces each checkpoint for stoker-eval and stops on a shutdown message; in both
 * modes SIGINT/SIGTERM end it with a final checkpoint (train_link.h). */
#include <errno.h>
#include <math.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "ckpt_writer.h"
#include "ckpt_meta.h"
#include "cpu_input.h"
#include "cpu_loss.h"
#include "cpu_net.h"
#include "stk_proc.h"
#include "train_backend.h"
#include "loader_index.h"
#include "loader_order.h"
#include "model_freeze.h"
#include "train_account.h"
#include "train_config.h"
#include "loader_shard.h"
#include "train_group.h"
#include "train_input.h"
#include "train_link.h"
#include "train_plan.h"
#include "transfer.h"

#define POLL_MS 200             /* how often a wait for data looks at the stop flag */
#define DATA_TIMEOUT_MS 600000  /* no batch for this long: the loaders are gone */

typedef struct Run {
    TrainConfig cfg;
    LoaderIndex ix;
    Model model;
    TrainBackend tb;     /* CPU or CUDA backend; its host arenas are what checkpoints hold */
    void *ctx;
    TrainInput *train, *val;
    char sock[64], out[PATH_MAX], loader[PATH_MAX];
    pid_t train_loaders, val_loaders;
    uint64_t n_train, n_val, train_batches, val_batches; /* batches: micro-batches */
    TrainSplit split;    /* --batch-size as micro-batches x accumulation (train_plan.h) */
    double best_top1;
    double input_wait_s; /* this epoch's time in train_input_next */
    int start_epoch;     /* 0, or the epoch after the one --resume's checkpoint ended */
    CkptMeta meta;       /* what checkpoints say about the model: arch, class names, sizes */
    int supervised;      /* --data-endpoint: loaders and evaluation are someone else's */
    TrainLink link;      /* control, reports, checkpoint notices (supervised mode) */
    TrainAccount acct;   /* sample ids consumed in the current epoch */
    ProtoCurve curve;    /* --curve-key: CURVE server keys of every socket */
    ProtoZap *zap;       /* its allow-list of client keys (--curve-clients), or NULL */
    TrainGroup group;    /* --gpus > 1: the other ranks (train_group.h) */
    int grouped;         /* group is open */
    CkptWriter ckw;      /* rank 0: checkpoints written while training goes on */
} Run;

/* Rank 0 alone writes checkpoints, announces them and evaluates: the ranks hold the same
 * weights (the same mean gradient every step), so one copy is the run's. */
static int owns_checkpoints(const Run *r) { return r->cfg.rank == 0; }

static TrainLink *error_link; /* where die() reports, once the link is open */
static CkptWriter *live_writer; /* rank 0's checkpoint writer, once started */
static void collect(Run *r, int wait);

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Explains a data timeout with what the receiving side saw. */
static void die_input(TrainInput *in, const char *what, const StkErr *err) {
    TrainInputStats s;
    train_input_stats(in, &s);
    char msg[2 * STK_ERR_LEN + 256];
    snprintf(msg, sizeof msg, "%s: %s (received %llu, duplicates %llu, rejected %llu%s%s)",
             what, err->msg, (unsigned long long)s.received, (unsigned long long)s.duplicates,
             (unsigned long long)s.rejected, s.rejected ? ": " : "", s.last_reject);
    fprintf(stderr, "stoker-train: %s\n", msg);
    if (error_link) train_link_error(error_link, msg), train_link_close(error_link);
    if (live_writer) ckpt_writer_free(live_writer); /* a checkpoint being written is kept */
    exit(1);
}

static void die(const char *what, const StkErr *err) {
    char msg[STK_ERR_LEN + 256];
    snprintf(msg, sizeof msg, "%s: %s", what, err ? err->msg : strerror(errno));
    fprintf(stderr, "stoker-train: %s\n", msg);
    if (error_link) train_link_error(error_link, msg), train_link_close(error_link);
    if (live_writer) ckpt_writer_free(live_writer); /* a checkpoint being written is kept */
    exit(1);
}

/* The backend could not be made. A device allocation out of memory (another process took
 * it, or no plan was asked for): the message says what is free and what to change, with
 * what the backend holds let go first so that the free figure is the card's. */
static void die_device(Run *r, StkErr *err) {
    uint64_t free_b;
    StkErr qerr;
    int device_oom = !strcmp(r->cfg.device, "cuda") && strstr(err->msg, "cudaMalloc") &&
                     strstr(err->msg, "out of memory");
    if (r->tb.cuda) tb_free(&r->tb); /* tb_init_ex frees on its own failure; tb_set_accum not */
    if (device_oom && tb_device_free(r->cfg.rank, &free_b, &qerr) == 0) {
        char hint[STK_ERR_LEN];
        train_plan_oom_hint(&r->cfg, &r->split, free_b, hint, sizeof hint);
        size_t n = strlen(err->msg);
        if (n + 3 < sizeof err->msg)
            snprintf(err->msg + n, sizeof err->msg - n, "; %.*s", (int)(sizeof err->msg - n - 3), hint);
    }
    die("model", err);
}

/* Starts stoker-loader with args (NULL-terminated) plus the dataset; returns its pid.
 * Loaders get --stay: they exit when stop_loaders says so, after their last batch was
 * taken (see loader_proc.h). */
static pid_t spawn_loader(Run *r, const char **args) {
    const char *argv[48] = {r->loader};
    int n = 1;
    for (; *args && n < 46; args++) argv[n++] = *args;
    argv[n++] = r->cfg.data_path;
    argv[n] = NULL;
    StkSpawn o = {"stoker-train", 0, -1, 0}; /* signals blocked across fork, no orphans */
    pid_t pid;
    StkErr err;
    if (stk_spawn(argv, &o, &pid, &err)) die("start the loaders", &err);
    return pid;
}

static void stop_loaders(pid_t pid) { stk_stop(pid); }

static void start_train_loaders(Run *r) {
    char ep[128], j[16], b[16], e[16], seed[32], crop[16], start[16];
    snprintf(ep, sizeof ep, "ipc://%s/train", r->sock);
    snprintf(j, sizeof j, "%d", r->cfg.workers);
    snprintf(b, sizeof b, "%d", r->split.micro);
    snprintf(e, sizeof e, "%d", r->cfg.epochs - r->start_epoch);
    snprintf(start, sizeof start, "%d", r->start_epoch);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)r->cfg.seed);
    snprintf(crop, sizeof crop, "%d", r->cfg.train_crop);
    char rank[16], world[16];
    snprintf(rank, sizeof rank, "%d", r->cfg.rank);
    snprintf(world, sizeof world, "%d", r->cfg.gpus);
    const char *args[28] = {"--data", ep, "-j", j, "--batch", b, "--epochs", e, "--seed", seed,
                            "--train-crop-size", crop, "--drop-last", "-q", "--stay",
                            "--start-epoch", start, "--rank", rank, "--world", world};
    int n = 21;
    if (r->cfg.rrc_scale) args[n++] = "--rrc-scale", args[n++] = r->cfg.rrc_scale;
    args[n] = NULL;
    r->train_loaders = spawn_loader(r, args);
}

static void start_val_loaders(Run *r, int epoch) {
    char ep[128], j[16], b[16], e[16], res[16], crop[16];
    snprintf(ep, sizeof ep, "ipc://%s/val", r->sock);
    snprintf(j, sizeof j, "%d", r->cfg.workers);
    snprintf(b, sizeof b, "%d", r->split.micro);
    snprintf(e, sizeof e, "%d", epoch);
    snprintf(res, sizeof res, "%d", r->cfg.val_resize);
    snprintf(crop, sizeof crop, "%d", r->cfg.val_crop);
    const char *args[] = {"--data", ep, "--split", "val", "-j", j, "--batch", b, "--epochs", "1",
                          "--start-epoch", e, "--val-resize-size", res, "--val-crop-size", crop,
                          "-q", "--stay", NULL};
    r->val_loaders = spawn_loader(r, args);
}

/* Opens (or builds) the dataset index and sizes the run from it. */
static void open_dataset(Run *r) {
    char path[PATH_MAX];
    StkErr err;
    snprintf(path, sizeof path, "%s/%s", r->cfg.data_path, LOADER_INDEX_DEFAULT_NAME);
    if (access(path, R_OK)) {
        LoaderScanOptions opt = {.val_fraction = -1};
        fprintf(stderr, "stoker-train: indexing %s\n", r->cfg.data_path);
        if (loader_index_build(r->cfg.data_path, &opt, NULL, NULL, &err)) die("index", &err);
    }
    if (loader_index_open(&r->ix, path, &err)) die("index", &err);
    r->n_train = loader_index_count(&r->ix, LOADER_TRAIN);
    r->n_val = loader_index_count(&r->ix, LOADER_VAL);
}

/* Batches per epoch at the micro-batch; whole optimizer steps need accum of them. */
static void count_batches(Run *r) {
    /* a rank's share: the ranks agree on it, the tail is dropped (loader_shard.h) */
    r->train_batches = loader_shard_steps(r->n_train, (uint32_t)r->split.micro, 1, (uint32_t)r->cfg.gpus);
    r->val_batches = loader_order_batches(r->n_val, (uint32_t)r->split.micro, 0);
    if (r->train_batches < (uint64_t)r->split.accum)
        die("dataset", &(StkErr){"fewer training samples than one batch (per rank, with --gpus)"});
}

/* Binds a data socket: at the supervisor's endpoint, or ipc://<private dir>/name. */
static TrainInput *open_input(Run *r, const char *name, uint64_t batches, int crop) {
    char ep[PATH_MAX];
    if (r->supervised) snprintf(ep, sizeof ep, "%s", r->cfg.data_endpoint);
    else snprintf(ep, sizeof ep, "ipc://%s/%s", r->sock, name);
    TrainInputConfig c = {.endpoint = ep, .batches_per_epoch = batches,
                          .batch = (uint32_t)r->split.micro, .height = (uint32_t)crop,
                          .width = (uint32_t)crop, .channels = 3,
                          .start_epoch = (uint32_t)r->start_epoch,
                          .epochs = (uint32_t)(r->cfg.epochs - r->start_epoch),
                          .deterministic = r->cfg.deterministic,
                          .window = 2 * (uint32_t)r->cfg.workers + 2,
                          .alloc = tb_slot_alloc(&r->tb), /* pinned for the CUDA copy engine */
                          .curve = r->zap && r->supervised ? &r->curve : NULL,
                          .rank = (uint32_t)(name[0] == 't' ? r->cfg.rank : 0),
                          .world = (uint32_t)(name[0] == 't' ? r->cfg.gpus : 1)};
    TrainInput *in;
    StkErr err;
    if (train_input_open(&in, r->ctx, &c, &err)) die("data socket", &err);
    return in;
}

/* "x.safetensors" -> "x.state.safetensors": the training state beside a checkpoint. */
static void state_path(const char *ckpt, char *out, size_t cap) {
    size_t n = strlen(ckpt);
    const char *ext = ".safetensors";
    if (n > strlen(ext) && !strcmp(ckpt + n - strlen(ext), ext)) n -= strlen(ext);
    snprintf(out, cap, "%.*s.state.safetensors", (int)n, ckpt);
}

/* --resume: the weights, then the optimizer state, step count and epoch beside them, so
 * the run goes on exactly where it stopped. */
static void resume(Run *r) {
    StkErr err;
    char path[PATH_MAX + 32];
    if (ckpt_load(r->cfg.resume, &r->model, r->tb.params, r->tb.num_batches_tracked, &err))
        die("--resume", &err);
    state_path(r->cfg.resume, path, sizeof path);
    StFile f;
    if (st_open(&f, path, &err)) die("--resume: training state", &err);
    const StTensor *t = st_find(&f, "optimizer.state");
    size_t want = r->model.trainable_floats * (size_t)optim_state_per_element(&r->cfg.opt) * 4;
    const char *epoch = st_meta(&f, "epoch"), *steps = st_meta(&f, "steps");
    if (!epoch || !steps || (want && (!t || t->nbytes != want))) {
        StkErr e2;
        stk_errf(&e2, "%s: no optimizer state of %zu bytes, epoch and steps for this model "
                      "and --opt", path, want);
        die("--resume", &e2);
    }
    if (want) memcpy(r->tb.optim_state, t->data, want);
    *r->tb.steps = strtoull(steps, NULL, 10);
    r->start_epoch = atoi(epoch) + 1;
    st_close(&f);
    if (r->start_epoch >= r->cfg.epochs) {
        StkErr e3;
        stk_errf(&e3, "the checkpoint ends at epoch %d; --epochs %d leaves nothing to do",
                 r->start_epoch - 1, r->cfg.epochs);
        die("--resume", &e3);
    }
    printf("stoker-train: resuming after epoch %d (step %llu) from %s\n", r->start_epoch - 1,
           (unsigned long long)*r->tb.steps, r->cfg.resume);
}

/* --weights: fine-tuning starts from them; a head of another class count keeps its fresh
 * initialisation (transfer.h). */
static void start_from_weights(Run *r) {
    StkErr err;
    TransferReport rep;
    if (transfer_load(r->cfg.weights, &r->model, r->tb.params, r->tb.num_batches_tracked, &rep, &err))
        die("--weights", &err);
    printf("stoker-train: %d tensors from %s\n", rep.loaded, r->cfg.weights);
    if (rep.head_replaced)
        printf("stoker-train: replaced the head %s: %d classes in the weights, %d in the dataset; "
               "initialised as torchvision does\n", rep.head, rep.file_classes, r->model.num_classes);
}

/* --freeze-backbone / --trainable-layers: before the plan, which they shrink. */
static void freeze(Run *r) {
    StkErr err;
    if (r->cfg.trainable_layers < 0) return;
    if (model_freeze(&r->model, r->cfg.trainable_layers, &err)) die("--trainable-layers", &err);
    printf("stoker-train: training the head and the last %d of %d blocks (%llu of %llu floats; "
           "frozen batch norms keep their statistics)\n", r->cfg.trainable_layers,
           model_num_blocks(&r->model), (unsigned long long)r->model.trainable_floats,
           (unsigned long long)r->model.total_floats);
}

/* Checkpoint metadata: the class names from the index, so stoker-predict can name them. */
static void describe_model(Run *r) {
    StkErr err;
    uint32_t k = loader_index_num_classes(&r->ix);
    const char **names = calloc(k, sizeof *names);
    if (!names) die("class names", NULL);
    for (uint32_t c = 0; c < k; c++) names[c] = loader_index_class_name(&r->ix, c);
    if (ckpt_meta_init(&r->meta, r->model.arch, (int)k, names, r->cfg.train_crop,
                       r->cfg.val_resize, r->cfg.val_crop, &err))
        die("checkpoint metadata", &err);
    free(names);
}

/* --curve-key: the supervisor's key pair serves the data and checkpoint sockets and is
 * this process's client key towards the supervisor (whose public key it also is); the
 * ZAP handler, started before any bind, admits --curve-clients and that key. */
static void open_curve(Run *r) {
    StkErr err;
    if (!r->cfg.curve_key) return;
    if (!r->supervised) die("--curve-key", &(StkErr){"only with --data-endpoint (stoker-run)"});
    if (proto_curve_open(&r->curve, r->cfg.curve_key, r->cfg.curve_key, &err) ||
        proto_zap_start(&r->zap, r->ctx, "stoker-train", r->curve.pub, r->cfg.curve_clients, &err))
        die("--curve-key", &err);
}

static int link_stopped(void *link) { return train_link_stop(link); }

/* --gpus > 1: joins the other ranks and starts from rank 0's weights (bit-identical
 * ranks, as DDP broadcasts at construction), then the backend's gradient exchange. */
static void join_group(Run *r) {
    if (r->cfg.gpus < 2) return;
    StkErr err;
    const char *ep = r->cfg.dist_endpoint;
    if (!ep) die("--gpus", &(StkErr){"--gpus > 1 needs --dist-endpoint EP (stoker-run gives it)"});
    if (train_group_open(&r->group, r->ctx, ep, r->cfg.rank, r->cfg.gpus, &err)) die("--gpus", &err);
    r->grouped = 1;
    r->group.stop = link_stopped, r->group.stop_ctx = &r->link;
    int rc = train_group_broadcast(&r->group, r->tb.params, r->model.total_floats * sizeof(float), &err);
    if (!rc) rc = tb_join_group(&r->tb, &r->group, &err);
    if (rc == TRAIN_GROUP_STOPPED) {
        printf("stoker-train: rank %d: stopped while the group was forming\n", r->cfg.rank);
        exit(0);
    }
    if (rc) die("--gpus: joining the group", &err);
    printf("stoker-train: rank %d of %d joined; a step trains %d x %d samples\n", r->cfg.rank,
           r->cfg.gpus, r->cfg.gpus, r->split.micro);
}

static void setup(Run *r, const char *argv0) {
    StkErr err;
    char self[PATH_MAX];
    snprintf(self, sizeof self, "%s", argv0); /* dirname may write into its argument */
    snprintf(r->loader, sizeof r->loader, "%s/stoker-loader", dirname(self));
    open_dataset(r);
    uint32_t classes = loader_index_num_classes(&r->ix);
    if (model_build(&r->model, r->cfg.model, 3, r->cfg.train_crop, r->cfg.train_crop,
                    (int)classes, &err))
        die("model", &err);
    freeze(r);
    describe_model(r);
    /* a budget without a card's name: plan for the precision this card will run (the
     * planner alone would assume fp32, the safe guess) */
    if (!r->cfg.precision && !r->cfg.gpu && r->cfg.vram_budget && !strcmp(r->cfg.device, "cuda") &&
        tb_default_precision(r->cfg.device, r->cfg.rank, &r->cfg.precision, &err))
        die("memory plan", &err);
    if (train_plan_split(&r->cfg, &r->model, tb_vram_kernels(), stdout, &r->split, &err))
        die("memory plan", &err);
    count_batches(r);
    /* --gpu PRESET without --precision: the preset's precision, as the plan assumed (a
     * gtx1050-2g plan is an fp32 plan, whatever card this runs on) */
    const char *precision = r->cfg.precision ? r->cfg.precision : r->split.precision;
    if (tb_init_ex(&r->tb, r->cfg.device, precision, &r->model, r->split.micro, &r->cfg.opt,
                   r->cfg.rank, &(TbExtra){.workspace = r->split.workspace, .recompute = r->split.recompute,
                              .eager = r->cfg.no_cuda_graphs}, &err) ||
        tb_set_accum(&r->tb, r->split.accum, &err))
        die_device(r, &err);
    model_init_params(&r->model, r->tb.params, r->cfg.seed);
    if (r->cfg.weights) start_from_weights(r);
    if (r->cfg.resume) resume(r);
    if (train_account_init(&r->acct, r->n_train, &err)) die("setup", &err);
    if (owns_checkpoints(r)) {
        uint64_t state = r->model.trainable_floats * (uint64_t)optim_state_per_element(&r->cfg.opt);
        if (ckpt_writer_init(&r->ckw, &r->model, state, &err)) die("setup", &err);
        live_writer = &r->ckw;
    }
    if (!(r->ctx = zmq_ctx_new())) die("zmq_ctx_new", NULL);
    open_curve(r);
    if (train_link_open(&r->link, r->ctx, r->cfg.control, r->cfg.reports,
                        owns_checkpoints(r) ? r->cfg.checkpoints : NULL, r->zap ? &r->curve : NULL, &err))
        die("sockets", &err);
    r->link.id = (uint32_t)r->cfg.rank;
    error_link = &r->link;
    join_group(r);
    if (tb_upload(&r->tb, &err)) die("model", &err);
    if (!r->supervised) {
        strcpy(r->sock, "/tmp/stoker-XXXXXX");
        if (!mkdtemp(r->sock)) die("mkdtemp", NULL); /* mode 0700: the sockets are private */
        r->val = open_input(r, "val", r->val_batches, r->cfg.val_crop);
    }
    r->train = open_input(r, "train", r->train_batches, r->cfg.train_crop);
    printf("stoker-train: %s, %llu parameters, %u classes; %llu train / %llu val samples; "
           "batch %d (%d x %d), %d epochs, %d loaders; %s backend on %s (%s), plan %.1f MB\n",
           r->model.arch, (unsigned long long)model_num_trainable(&r->model), classes,
           (unsigned long long)r->n_train, (unsigned long long)r->n_val, r->cfg.batch_size,
           r->split.micro, r->split.accum,
           r->cfg.epochs, r->supervised ? 0 : r->cfg.workers, r->tb.cuda ? "CUDA" : "CPU",
           r->tb.device_name, r->tb.precision, r->tb.plan_bytes / 1e6);
    uint64_t bytes;
    StkErr err2;
    /* before any step: the arenas, cuDNN's and cuBLAS's handles; the epochs' figure adds
     * what the first steps load (kernels, cuBLAS's workspace) */
    if (tb_device_bytes(&r->tb, &bytes, &err2) == 0)
        printf("stoker-train: device memory %.0f MiB above the CUDA context after setup, %.0f MiB of "
               "it our arenas\n", bytes / 1048576.0, r->tb.plan_bytes / 1048576.0);
}

/* Adds one step's loss (NAN: the CUDA backend's first step, whose loss comes later). */
static void count_loss(double loss, double *sum, uint64_t *n) {
    if (!isnan(loss)) *sum += loss, (*n)++;
}

/* The next training batch of epoch, polling the stop flag meanwhile; 1 when told to
 * stop. Time spent waiting is added to *wait_s (the input-wait figure). */
static int next_batch(Run *r, int epoch, TrainBatch *b, int *done, double *wait_s) {
    double t0 = now_s();
    StkErr err;
    for (int waited = 0;; waited += POLL_MS) {
        if (train_link_stop(&r->link)) return 1;
        int rc = train_input_next(r->train, (uint32_t)epoch, POLL_MS, b, done, &err);
        if (rc == 0) break;
        if (rc < 0 || waited >= DATA_TIMEOUT_MS) die_input(r->train, "train data", &err);
    }
    *wait_s += now_s() - t0;
    return 0;
}

/* A logged optimizer step: a plain line standalone, a metrics report supervised. */
static void log_step(Run *r, int epoch, uint64_t steps, double loss, double lr, double ips,
                     double wait) {
    uint64_t per_epoch = r->train_batches / (uint64_t)r->split.accum;
    /* the ranks step together: rank 0 speaks for the group, its rate times the ranks (its
     * loss is its own shard's: averaging it would cost a collective per logged step) */
    if (r->cfg.rank) return;
    ips *= r->cfg.gpus;
    if (!r->supervised)
        printf("epoch %d step %llu/%llu  loss %.4f  lr %.4g  %.0f images/s\n", epoch,
               (unsigned long long)steps, (unsigned long long)per_epoch, loss, lr, ips);
    const char *names[] = {"loss", "lr", "images_per_s", "input_wait", "epoch_step",
                           "epoch_steps"};
    double v[] = {loss, lr, ips, wait, (double)steps, (double)per_epoch};
    train_link_metrics(&r->link, (uint32_t)epoch, *r->tb.steps, names, v, 6);
}

/* The epoch's figures, sample accounting included, as a metrics report. */
static void report_epoch(Run *r, int epoch, double loss, double seconds) {
    TrainInputStats s;
    train_input_stats(r->train, &s);
    uint64_t expected = r->train_batches * (uint64_t)r->split.micro;
    /* every rank reports its own share (expected: its batches), with its rank in a group */
    const char *names[] = {"epoch_loss", "epoch_seconds", "samples", "samples_lost",
                           "samples_repeated", "duplicates_dropped", "rejected", "rank", "world"};
    double v[] = {loss, seconds, (double)r->acct.consumed,
                  (double)train_account_lost(&r->acct, expected),
                  (double)train_account_repeated(&r->acct), (double)s.duplicates,
                  (double)s.rejected, r->cfg.rank, r->cfg.gpus};
    train_link_metrics(&r->link, (uint32_t)epoch, *r->tb.steps, names, v, r->cfg.gpus > 1 ? 9 : 7);
}

/* Trains one epoch (of micro-batches; an optimizer step after every accum of them, and a
 * tail of fewer than accum is received and counted but not trained on, as --drop-last
 * drops a partial batch); *mean_loss gets its mean loss, r->input_wait_s the time spent waiting
 * for (and copying in) batches: an upper bound of the time the GPU waited for data, since
 * with the CUDA backend the next step is queued before the wait begins. Returns 1 if told
 * to stop midway. */
static int train_epoch(Run *r, int epoch, double *mean_loss) {
    double lr = sched_lr(&r->cfg.sched, epoch), loss_sum = 0, t0 = now_s(), wait_s = 0;
    uint64_t steps = 0, passes = 0, counted = 0;
    StkErr err;
    train_account_reset(&r->acct);
    tb_accum_reset(&r->tb);
    for (;;) {
        TrainBatch b;
        int done;
        if (tb_before_next(&r->tb, &err)) die("step", &err);
        if (next_batch(r, epoch, &b, &done, &wait_s)) return 1;
        if (done) break;
        train_account_add(&r->acct, b.ids, b.n);
        double loss;
        int stepped;
        uint64_t key = b.epoch * 1000003ull + b.index;
        if (r->cfg.lr_per_iteration)
            lr = sched_lr_at(&r->cfg.sched, epoch + (double)passes / (double)r->train_batches);
        int rc = tb_train(&r->tb, &b, r->cfg.train_crop, r->cfg.label_smoothing, key, lr,
                          r->cfg.weight_decay, r->cfg.norm_weight_decay, &loss, &stepped, &err);
        if (rc == TRAIN_GROUP_STOPPED) return 1; /* told to stop while waiting for the ranks */
        if (rc) die("step", &err);
        count_loss(loss, &loss_sum, &counted);
        passes++;
        collect(r, 0); /* the last epoch's checkpoint, once written */
        if (stepped && ++steps % (uint64_t)r->cfg.print_freq == 0) {
            double el = now_s() - t0;
            log_step(r, epoch, steps, loss_sum / (double)counted, lr,
                     passes * r->split.micro / el, wait_s / el);
        }
    }
    double last;
    if (tb_last_loss(&r->tb, &last, &err)) die("step", &err);
    count_loss(last, &loss_sum, &counted);
    *mean_loss = loss_sum / (double)counted;
    r->input_wait_s = wait_s;
    report_epoch(r, epoch, *mean_loss, now_s() - t0);
    return 0;
}

/* Evaluates the val split: mean loss, top-1 and top-5 in percent. */
static void evaluate(Run *r, int epoch, double *loss, double *top1, double *top5) {
    StkErr err;
    start_val_loaders(r, epoch);
    int k = r->model.num_classes;
    float *scratch = malloc((size_t)r->split.micro * k * 4);
    double loss_sum = 0;
    uint64_t seen = 0, c1 = 0, c5 = 0;
    for (;;) {
        TrainBatch b;
        int done, t1, t5;
        if (train_input_next(r->val, (uint32_t)epoch, 60000, &b, &done, &err))
            die_input(r->val, "val data", &err);
        if (done) break;
        const float *logits;
        double l;
        if (tb_eval(&r->tb, &b, r->cfg.val_crop, &logits, &err) ||
            cpu_ce_loss((int)b.n, k, logits, b.labels, 0, &l, scratch, &err) ||
            cpu_topk_correct((int)b.n, k, logits, b.labels, &t1, &t5, &err))
            die("eval", &err);
        loss_sum += l * b.n, seen += b.n, c1 += (uint64_t)t1, c5 += (uint64_t)t5;
    }
    free(scratch);
    stop_loaders(r->val_loaders); /* every batch is here; they stayed so none was lost */
    r->val_loaders = 0;
    *loss = loss_sum / (double)seen;
    *top1 = 100.0 * c1 / seen;
    *top5 = 100.0 * c5 / seen;
}

/* Announces a checkpoint the writer has finished (wait: first waits for one in
 * progress), or reports that it failed; training goes on either way. */
static void collect(Run *r, int wait) {
    CkptDone d;
    if (!owns_checkpoints(r) || !ckpt_writer_poll(&r->ckw, wait, &d)) return;
    if (d.rc) {
        fprintf(stderr, "stoker-train: %s\n", d.msg);
        train_link_error(&r->link, d.msg);
        return;
    }
    train_link_checkpoint(&r->link, d.path, d.epoch, d.steps, d.final);
}

/* ckpt_writer's layout step: the backend's copies into the CPU layout (train_backend.h). */
static void snapshot_layout(void *ctx, const float *raw_params, const float *raw_state, float *params,
                            float *state) {
    tb_snapshot_layout(ctx, raw_params, raw_state, params, state);
}

/* Saves checkpoints/name with the training state beside it, as of `done`, the last
 * complete epoch (-1: none; a stop midway saves the weights so far and --resume redoes
 * the interrupted epoch): the state is copied off the device into the writer's snapshot
 * and written by its thread (ckpt_writer.h), announced once written (collect). A failure
 * (a full disk) is reported and training goes on: the previous checkpoint is intact
 * (st_write is atomic). final: the run's last, so said in its notice. */
static int save(Run *r, const char *name, int done, int epoch, int final) {
    if (!owns_checkpoints(r)) return 0; /* rank 0's weights are every rank's */
    collect(r, 1); /* the previous one first: one snapshot, announced in order */
    char path[PATH_MAX + 64], spath[PATH_MAX + 96], ep[16], steps[32];
    snprintf(path, sizeof path, "%s/checkpoints/%s", r->out, name);
    state_path(path, spath, sizeof spath);
    snprintf(ep, sizeof ep, "%d", done);
    snprintf(steps, sizeof steps, "%llu", (unsigned long long)*r->tb.steps);
    size_t nmeta;
    const StMeta *base = ckpt_meta_entries(&r->meta, ep, &nmeta);
    StMeta meta[CKPT_WRITER_META];
    if (nmeta > CKPT_WRITER_META - 1) nmeta = CKPT_WRITER_META - 1;
    memcpy(meta, base, nmeta * sizeof *meta);
    meta[nmeta++] = (StMeta){"steps", steps};
    /* the training state beside it: optimizer moments, steps, epoch (for --resume) */
    StMeta smeta[3] = {{"epoch", ep}, {"steps", steps}, {"model", r->model.arch}};
    StkErr err;
    char msg[STK_ERR_LEN + 64];
    /* the training thread only copies the state off the backend; its layout work (tens of
     * ms a checkpoint for a ResNet-9 with AdamW, the GPU idle meanwhile) is the writer's */
    CkptSave s = {path, spath, NULL, r->tb.num_batches_tracked, NULL, meta, smeta, nmeta, 3,
                  (uint32_t)epoch, *r->tb.steps, final, snapshot_layout, &r->tb};
    float *raw_params, *raw_state;
    if (ckpt_writer_raw(&r->ckw, &raw_params, &raw_state, &err) ||
        tb_snapshot(&r->tb, raw_params, raw_state, &err) || ckpt_writer_save(&r->ckw, &s, &err)) {
        snprintf(msg, sizeof msg, "checkpoint not written: %s", err.msg);
        fprintf(stderr, "stoker-train: %s\n", msg);
        train_link_error(&r->link, msg);
        return -1;
    }
    return 0;
}

static void make_output_dir(Run *r) {
    if (r->cfg.output_dir) snprintf(r->out, sizeof r->out, "%s", r->cfg.output_dir);
    else {
        time_t t = time(NULL);
        strftime(r->out, sizeof r->out, "runs/%Y%m%d-%H%M%S", localtime(&t));
        mkdir("runs", 0755);
    }
    char ck[PATH_MAX + 16];
    snprintf(ck, sizeof ck, "%s/checkpoints", r->out);
    if ((mkdir(r->out, 0755) && errno != EEXIST) || (mkdir(ck, 0755) && errno != EEXIST))
        die(r->out, NULL);
    char abs[PATH_MAX]; /* checkpoint notices carry absolute paths: peers have other cwds */
    if (!realpath(r->out, abs)) die(r->out, NULL);
    snprintf(r->out, sizeof r->out, "%s", abs);
}

/* The CUDA backend's device memory above the bare context, after an epoch (everything is
 * allocated by then, cuBLAS's workspace included): what --gpu/--vram-budget plans for. */
static void report_device_memory(Run *r, int epoch) {
    uint64_t bytes;
    StkErr err;
    int rc = tb_device_bytes(&r->tb, &bytes, &err);
    if (rc < 0) die("device memory", &err);
    if (rc == 0)
        printf("epoch %d: device memory %.0f MiB above the CUDA context\n", epoch, (double)bytes / 1048576.0);
    uint64_t replayed, eager;
    const char *note;
    if (tb_graphs(&r->tb, &replayed, &eager, &note) == 0)
        printf("epoch %d: CUDA graphs: %llu training passes replayed, %llu eager%s%s\n", epoch,
               (unsigned long long)replayed, (unsigned long long)eager, note ? "; " : "", note ? note : "");
    float scale;
    uint64_t skipped;
    rc = tb_loss_scale(&r->tb, &scale, &skipped, &err);
    if (rc < 0) die("loss scale", &err);
    if (rc == 0)
        printf("epoch %d: fp16 loss scale %g, %llu steps skipped so far (inf/NaN gradients)\n", epoch,
               (double)scale, (unsigned long long)skipped);
}

/* Trains the remaining epochs; returns 1 if stopped by a signal or shutdown. */
static int train_all(Run *r) {
    double t0 = now_s();
    for (int e = r->start_epoch; e < r->cfg.epochs; e++) {
        double te = now_s(), train_loss, vl, t1, t5;
        if (train_epoch(r, e, &train_loss)) {
            save(r, "last.safetensors", e - 1, e, 1); /* the final checkpoint */
            return 1;
        }
        double train_s = now_s() - te;
        report_device_memory(r, e);
        save(r, "last.safetensors", e, e, e == r->cfg.epochs - 1);
        if (r->supervised || !owns_checkpoints(r)) continue; /* stoker-eval / rank 0 evaluate */
        evaluate(r, e, &vl, &t1, &t5);
        printf("epoch %d: train loss %.4f (%.1f s, %.0f images/s, input-wait %.1f%%)  val loss %.4f  "
               "top-1 %.2f%%  top-5 %.2f%%  (%.1f s so far)\n", e, train_loss, train_s,
               r->train_batches * r->split.micro / train_s, 100 * r->input_wait_s / train_s, vl,
               t1, t5, now_s() - t0);
        fflush(stdout);
        if (t1 > r->best_top1) r->best_top1 = t1, save(r, "best.safetensors", e, e, 0);
    }
    return 0;
}

int main(int argc, char **argv) {
    static Run r;
    int rc = train_config_parse(&r.cfg, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    if (r.cfg.plan_only) return train_plan_main(&r.cfg, tb_vram_kernels());
    StkErr err;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit makes a checkpoint fail, not the run */
    if (train_link_signals(&err)) die("signals", &err);
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines appear as they happen, also in logs */
    r.supervised = r.cfg.data_endpoint != NULL;
    make_output_dir(&r);
    setup(&r, argv[0]);
    if (!r.supervised) start_train_loaders(&r);
    int stopped = train_all(&r);
    if (owns_checkpoints(&r)) collect(&r, 1), ckpt_writer_free(&r.ckw);
    live_writer = NULL;
    stop_loaders(r.train_loaders);
    stop_loaders(r.val_loaders);
    error_link = NULL;
    train_link_close(&r.link);
    if (r.grouped) train_group_close(&r.group);
    train_input_close(r.train);
    if (r.val) train_input_close(r.val);
    proto_zap_stop(r.zap); /* its socket is in the context */
    zmq_ctx_term(r.ctx);
    if (!r.supervised) rmdir(r.sock);
    train_account_free(&r.acct);
    tb_free(&r.tb);
    ckpt_meta_free(&r.meta);
    loader_index_close(&r.ix);
    if (stopped) printf("stoker-train: stopped; final checkpoint in %s/checkpoints\n", r.out);
    else if (r.supervised) printf("stoker-train: done; checkpoints in %s/checkpoints\n", r.out);
    else printf("stoker-train: best val top-1 %.2f%%, checkpoints in %s/checkpoints\n",
                r.best_top1, r.out);
    return 0;
}
