/* eval_main.c: stoker-eval, the evaluator process. It evaluates a checkpoint on the val
 * split with eval-mode loaders of its own (stoker-loader --split val next to this
 * program, on a private ipc:// socket) and reports loss, top-1, top-5, per-class
 * accuracy and the confusion matrix; it keeps the best checkpoint by top-1.
 *
 *   stoker-eval --data-path D --checkpoint FILE          evaluate once, print, exit
 *   stoker-eval --data-path D --checkpoints EP ...       follow a trainer's notices
 *
 * Following, the checkpoint SUB socket is conflated (ZMQ_CONFLATE): it holds only the
 * newest notice, so an evaluator slower than the trainer skips to the latest checkpoint
 * instead of queueing. The val split's batches are kept after the first complete pass
 * when they fit --val-cache (eval_cache.h): later checkpoints are evaluated from memory,
 * without loaders. Figures go to the reports socket as metrics (eval_report.c), or to
 * stdout without one. A shutdown message or SIGINT/SIGTERM stops it. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "eval_cache.h"
#include "eval_pace.h"
#include "eval_plan.h"
#include "eval_report.h"
#include "loader_index.h"
#include "loader_order.h"
#include "stk_proc.h"
#include "train_backend.h"
#include "train_input.h"

#define POLL_MS 200
#define DATA_TIMEOUT_MS 120000 /* no val batch for this long: the loaders are gone */

typedef struct Eval {
    EvalConfig cfg;
    LoaderIndex ix;
    Model model;
    TrainBackend net;   /* CPU or CUDA (--device): forward passes only */
    EvalPlan plan;      /* its batch and precision (in its memory share on a GPU) */
    EvalStats stats;
    EvalCache cache;    /* the val split after its first pass, when it fits */
    EvalReport rep;
    void *ctx, *notices;
    char sock[64], loader[PATH_MAX];
    uint64_t n_val, val_batches, round;
    double best_top1;
    EvalPace pace;      /* --duty: how soon after one evaluation the next may start */
    double busy_s;      /* of the evaluation in progress: loading and uploading its checkpoint
                           and its forward passes, not the waits for val batches */
    int paced;          /* evaluations timed so far */
    int said_pace;      /* the pace's first held notice was announced */
    uint32_t loaded_epoch; /* what the checkpoint being evaluated records (read as loaded) */
    uint64_t loaded_step;
} Eval;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static volatile sig_atomic_t stop_signal;
static void on_signal(int sig) { (void)sig; stop_signal = 1; }

static void die(Eval *e, const char *what, const StkErr *err) {
    char msg[2 * STK_ERR_LEN];
    snprintf(msg, sizeof msg, "%s: %s", what, err ? err->msg : strerror(errno));
    fprintf(stderr, "stoker-eval: %s\n", msg);
    if (e) eval_report_error(&e->rep, msg);
    exit(1);
}

static int stopping(Eval *e) { return stop_signal || eval_report_stop(&e->rep); }

/* Starts the val loaders on endpoint ep; returns the pid of their parent. */
static pid_t spawn_loaders(Eval *e, const char *ep) {
    char j[16], b[16], res[16], crop[16];
    snprintf(j, sizeof j, "%d", e->cfg.workers);
    snprintf(b, sizeof b, "%d", e->cfg.batch_size);
    snprintf(res, sizeof res, "%d", e->cfg.val_resize);
    snprintf(crop, sizeof crop, "%d", e->cfg.val_crop);
    const char *argv[] = {e->loader, "--data", ep, "--split", "val", "-j", j, "--batch", b,
                          "--epochs", "1", "--val-resize-size", res, "--val-crop-size", crop,
                          "-q", "--stay", e->cfg.data_path, NULL};
    /* a terminal's Ctrl-C is for the evaluator to handle (stk_proc.h) */
    StkSpawn o = {"stoker-eval", 1, -1, 0};
    pid_t pid;
    StkErr err;
    if (stk_spawn(argv, &o, &pid, &err)) die(e, "start the val loaders", &err);
    return pid;
}

static void stop_loaders(pid_t pid) { stk_stop(pid); }

/* One val batch through the net into e->stats. */
static void eval_batch(Eval *e, const TrainBatch *b) {
    StkErr err;
    const float *logits; /* tb_eval normalises as training does, pads a short batch */
    double t0 = now_s();
    if (tb_eval(&e->net, b, e->cfg.val_crop, &logits, &err) ||
        eval_stats_add(&e->stats, (int)b->n, logits, b->labels, &err))
        die(e, "eval", &err);
    e->busy_s += now_s() - t0; /* tb_eval returns with the logits on the host */
}

/* Whether the val loaders (their parent, *pid) have exited; reaps them (*pid = 0). */
static int loaders_exited(pid_t *pid, int *status) {
    if (*pid <= 0 || waitpid(*pid, status, WNOHANG) != *pid) return 0;
    *pid = 0;
    return 1;
}

/* Runs the val split through the net into e->stats, keeping its batches in the cache;
 * 1 if told to stop midway, -1 + err when the loaders (*loaders) exit before the split's
 * end (they say why: every file bad, the index unreadable): no waiting out the timeout. */
static int run_val(Eval *e, TrainInput *in, pid_t *loaders, StkErr *err) {
    eval_stats_reset(&e->stats);
    int status = 0, exited = 0;
    for (int waited = 0;;) {
        if (stopping(e)) return 1;
        eval_report_heartbeat(&e->rep);
        TrainBatch b;
        int done, rc = train_input_next(in, 0, POLL_MS, &b, &done, err);
        if (rc == TRAIN_INPUT_TIMEOUT && exited) /* a poll after their exit: nothing in flight */
            return stk_errf(err, "the val loaders exited (%s %d) before the val split's end: see "
                            "their message", WIFEXITED(status) ? "status" : "signal",
                            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        if (rc == TRAIN_INPUT_TIMEOUT && (waited += POLL_MS) < DATA_TIMEOUT_MS) {
            exited = loaders_exited(loaders, &status);
            continue;
        }
        if (rc) die(e, "val data", err);
        if (done) return 0;
        waited = 0;
        if (eval_cache_put(&e->cache, &b, err)) { /* train_input checked the index: a bug */
            fprintf(stderr, "stoker-eval: %s; the val split will be decoded each time\n", err->msg);
            eval_cache_free(&e->cache);
        }
        eval_batch(e, &b);
    }
}

/* The same from the cache: no loaders, only the forward passes. */
static int run_cached(Eval *e) {
    StkErr err;
    eval_stats_reset(&e->stats);
    for (uint64_t i = 0; i < e->cache.batches; i++) {
        if (stopping(e)) return 1;
        eval_report_heartbeat(&e->rep);
        TrainBatch b;
        if (eval_cache_get(&e->cache, i, &b, &err)) die(e, "eval", &err);
        eval_batch(e, &b);
    }
    return 0;
}

/* Evaluates the checkpoint at path; 0 done, 1 stopped, -1 (reported): the file is
 * unreadable, or the val loaders ended early. */
static int evaluate(Eval *e, const char *path) {
    StkErr err;
    double t0 = now_s();
    int bad = ckpt_load_at(path, &e->model, e->net.params, e->net.num_batches_tracked,
                           &e->loaded_epoch, &e->loaded_step, &err) ||
              tb_upload(&e->net, &err);
    e->busy_s = now_s() - t0; /* a new evaluation: its count starts here */
    if (bad) {
        fprintf(stderr, "stoker-eval: %s\n", err.msg);
        eval_report_error(&e->rep, err.msg);
        return -1;
    }
    if (eval_cache_complete(&e->cache)) return run_cached(e);
    char ep[128];
    snprintf(ep, sizeof ep, "ipc://%s/eval-%llu", e->sock, (unsigned long long)e->round++);
    TrainInputConfig c = {.endpoint = ep, .batches_per_epoch = e->val_batches,
                          .batch = (uint32_t)e->cfg.batch_size, .height = (uint32_t)e->cfg.val_crop,
                          .width = (uint32_t)e->cfg.val_crop, .channels = 3, .epochs = 1,
                          .window = 2 * (uint32_t)e->cfg.workers + 2,
                          .alloc = tb_slot_alloc(&e->net)}; /* pinned for CUDA */
    TrainInput *in;
    if (train_input_open(&in, e->ctx, &c, &err)) die(e, "evaldata socket", &err);
    pid_t loaders = spawn_loaders(e, ep);
    int rc = run_val(e, in, &loaders, &err);
    stop_loaders(loaders); /* they stayed until every batch was taken (loader_proc.h) */
    train_input_close(in);
    unlink(ep + strlen("ipc://")); /* ZeroMQ leaves the socket file behind */
    if (rc < 0) {
        fprintf(stderr, "stoker-eval: %s: %s\n", path, err.msg);
        eval_report_error(&e->rep, err.msg);
    }
    return rc;
}

/* After an evaluation: report it, and keep the checkpoint as best if its top-1 is. */
static void finish(Eval *e, const char *path, uint32_t epoch, uint64_t step) {
    double top1 = eval_stats_top1(&e->stats);
    int best = top1 > e->best_top1 || e->best_top1 < 0;
    if (best && e->cfg.best) {
        char ep[16], st[32], t1[32];
        snprintf(ep, sizeof ep, "%u", epoch);
        snprintf(st, sizeof st, "%llu", (unsigned long long)step);
        snprintf(t1, sizeof t1, "%.4f", top1);
        StMeta meta[4] = {{"format", "pt"}, {"epoch", ep}, {"steps", st}, {"top1", t1}};
        StkErr err;
        if (ckpt_save(e->cfg.best, &e->model, e->net.params, e->net.num_batches_tracked, meta,
                      4, &err)) {
            fprintf(stderr, "stoker-eval: best checkpoint not written: %s\n", err.msg);
            eval_report_error(&e->rep, err.msg);
            best = 0;
        }
    }
    if (best) e->best_top1 = top1;
    eval_report_stats(&e->rep, &e->stats, path, epoch, step, best);
}

/* The top-1 an existing best checkpoint records (a resumed run keeps its best). */
static double previous_best(const char *path) {
    StFile f;
    StkErr err;
    if (!path || st_open(&f, path, &err)) return -1;
    const char *t = st_meta(&f, "top1");
    double v = t ? atof(t) : -1;
    st_close(&f);
    return v;
}

/* The network: fitted to the evaluator's share of the GPU when it has one (eval_plan.h),
 * forward passes only; the batch the plan chose is the val loaders' too. */
static void open_net(Eval *e, int k) {
    StkErr err;
    int crop = e->cfg.val_crop, cuda = !strcmp(e->cfg.device, "cuda");
    const char *card = NULL;
    if (model_build(&e->model, e->cfg.model, 3, crop, crop, k, &err) ||
        (cuda && e->cfg.vram_budget && !e->cfg.precision && !e->cfg.gpu &&
         tb_default_precision("cuda", 0, &card, &err)) ||
        eval_plan_decide(&e->cfg, &e->model, card, tb_vram_kernels(), &e->plan, &err))
        die(e, "model", &err);
    eval_plan_print(stdout, &e->plan, e->cfg.batch_size);
    e->cfg.batch_size = e->plan.batch;
    OptimConfig opt = {OPTIM_SGD, 0, 0, 0, 0.9, 0.999, 1e-8}; /* unused: no steps */
    TbExtra x = {.evaluator = 1, .inference = 1, .workspace = e->plan.workspace};
    if (tb_init_ex(&e->net, e->cfg.device, e->plan.precision, &e->model, e->cfg.batch_size, &opt, 0,
                   &x, &err) ||
        eval_stats_init(&e->stats, k, e->cfg.batch_size, &err))
        die(e, "model", &err);
    /* cudaMemGetInfo sees the whole device: beside a trainer that is allocating too, the
     * difference counts both (scripts/bench_eval_share.sh measures per process) */
    uint64_t bytes;
    if (cuda && tb_device_bytes(&e->net, &bytes, &err) == 0)
        printf("stoker-eval: %s %s, batch %d, inference only: plan %.1f MiB above the context; the "
               "device's free memory fell %.1f MiB meanwhile (every process's allocations)\n",
               e->net.device_name, e->net.precision, e->cfg.batch_size,
               (double)(e->net.plan_bytes + VRAM_LIBRARY_BYTES) / VRAM_MIB, (double)bytes / VRAM_MIB);
}

/* The val cache, on when the split fits --val-cache; says which. */
static void open_cache(Eval *e) {
    StkErr err;
    uint64_t sample = 3ull * (uint64_t)e->cfg.val_crop * (uint64_t)e->cfg.val_crop;
    uint32_t batch = (uint32_t)e->cfg.batch_size;
    double mib = (double)eval_cache_bytes(e->val_batches, batch, sample) / (1 << 20);
    if (eval_cache_init(&e->cache, e->cfg.val_cache, e->val_batches, batch, sample,
                        tb_slot_alloc(&e->net), &err))
        die(e, "val cache", &err);
    if (eval_cache_on(&e->cache))
        printf("stoker-eval: the val split (%.1f MiB decoded) is kept in memory after its first "
               "evaluation\n", mib);
    else if (e->cfg.val_cache)
        printf("stoker-eval: the val split (%.1f MiB decoded) is over --val-cache %.1f MiB: each "
               "evaluation decodes it again\n", mib, (double)e->cfg.val_cache / (1 << 20));
}

static void setup(Eval *e, const char *argv0) {
    StkErr err;
    char self[PATH_MAX], path[PATH_MAX];
    snprintf(self, sizeof self, "%s", argv0);
    snprintf(e->loader, sizeof e->loader, "%s/stoker-loader", dirname(self));
    snprintf(path, sizeof path, "%s/%s", e->cfg.data_path, LOADER_INDEX_DEFAULT_NAME);
    if (loader_index_open(&e->ix, path, &err)) die(e, "index", &err);
    e->n_val = loader_index_count(&e->ix, LOADER_VAL);
    open_net(e, (int)loader_index_num_classes(&e->ix));
    e->val_batches = loader_order_batches(e->n_val, (uint32_t)e->cfg.batch_size, 0);
    if (!e->val_batches) die(e, "dataset", &(StkErr){"the val split is empty"});
    open_cache(e);
    strcpy(e->sock, "/tmp/stoker-eval-XXXXXX");
    if (!mkdtemp(e->sock)) die(e, "mkdtemp", NULL); /* 0700: the val socket is private */
    e->best_top1 = previous_best(e->cfg.best);
}

/* evaluate() timed for the pace: by its forward passes (and the checkpoint's upload),
 * what it takes from a trainer on the same GPU, not its waits for val batches (the first
 * evaluation decodes the split: 0.5 s of loaders for Fashion-MNIST's 10,000 images,
 * which held the next evaluation for 10 s at --duty 0.05) */
static int evaluate_paced(Eval *e, const char *path) {
    int rc = evaluate(e, path);
    /* the first also loads the GPU's kernels and picks algorithms (a quarter second on the
     * H200, which held the next for 5 s at 0.05): once, so it does not set the pace */
    if (e->paced++) eval_pace_done(&e->pace, e->busy_s, now_s());
    return rc;
}

/* Follows the notices until shutdown: always the newest one, evaluated once each, when
 * the pace allows (eval_pace.h): one that arrives sooner is held, and replaced by any
 * newer one meanwhile; a final one is evaluated at once. */
static void follow(Eval *e) {
    char path[PROTO_MAX_PATH + 1];
    ProtoCheckpoint ck;
    int held = 0;
    while (!stopping(e)) {
        eval_report_heartbeat(&e->rep);
        int ms = held ? eval_pace_wait_ms(&e->pace, now_s(), POLL_MS) : POLL_MS;
        if (!eval_report_next_notice(&e->rep, e->notices, ms, &ck, path, sizeof path)) {
            if (held && !e->said_pace) { /* the one held is replaced: say so, once */
                e->said_pace = 1;
                printf("stoker-eval: at most %g%% of the time evaluating (--duty %g): "
                       "a notice sooner than that waits, and newer ones replace it\n",
                       100 * e->pace.duty, e->pace.duty);
            }
            held = 1;
        }
        if (!held || !eval_pace_ready(&e->pace, now_s(), (int)ck.final)) continue;
        held = 0;
        int rc = evaluate_paced(e, path);
        if (rc == 1) break;
        if (rc) continue;
        /* the trainer may have replaced the file since its notice: label the figures
         * with what the file loaded said it was when that differs (read after the
         * evaluation, a first one of 0.5 s labelled epoch 0's weights as epoch 1's) */
        uint32_t epoch = e->loaded_epoch;
        uint64_t step = e->loaded_step;
        if (step == ck.step) epoch = ck.epoch;
        finish(e, path, epoch, step);
    }
}

int main(int argc, char **argv) {
    static Eval e;
    int rc = eval_config_parse(&e.cfg, argc, argv);
    if (rc) return rc > 0 ? 0 : 2;
    StkErr err;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL), sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit fails the best checkpoint, not us */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!(e.ctx = zmq_ctx_new())) die(NULL, "zmq_ctx_new", NULL);
    if (eval_report_open(&e.rep, e.ctx, &e.cfg, &e.notices, &err)) die(NULL, "sockets", &err);
    setup(&e, argv[0]);
    eval_pace_init(&e.pace, e.cfg.duty);
    if (e.cfg.checkpoint) {
        rc = evaluate_paced(&e, e.cfg.checkpoint);
        if (rc == 0) finish(&e, e.cfg.checkpoint, e.loaded_epoch, e.loaded_step);
    }
    if (e.cfg.checkpoints && rc != 1) rc = 0, follow(&e);
    eval_report_close(&e.rep);
    if (e.notices) zmq_close(e.notices);
    zmq_ctx_term(e.ctx);
    rmdir(e.sock);
    eval_stats_free(&e.stats);
    eval_cache_free(&e.cache); /* before the backend: pinned pixels are its allocation */
    tb_free(&e.net);
    loader_index_close(&e.ix);
    return rc < 0 ? 1 : 0;
}
