/* test_eval.c: stoker-eval as stoker-run drives it and as a user runs it: the figures
 * of a checkpoint equal stoker-train's own evaluation of it; following notices on a
 * conflated SUB it evaluates the newest, reports loss/top-k/per-class/confusion, keeps
 * best.safetensors, drops foreign messages and stops on a shutdown message. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_loader_fixture.h"
#include "test_proc_fixture.h"

static char *root, data[512], ckpt[600];
static char ep_ck[600], ep_ctl[600], ep_rep[600];
static void *ctx, *pub_ck, *pub_ctl, *rep;
static pid_t kid;

#define SIZES "-b 16 --val-resize-size 16 --val-crop-size 16"

static void setup(void) {
    root = fx_tmpdir();
    snprintf(data, sizeof data, "%s/syn", root);
    px_synth(data);
    snprintf(ckpt, sizeof ckpt, "%s/out/checkpoints/last.safetensors", root);
    snprintf(ep_ck, sizeof ep_ck, "ipc://%s/k", root);
    snprintf(ep_ctl, sizeof ep_ctl, "ipc://%s/c", root);
    snprintf(ep_rep, sizeof ep_rep, "ipc://%s/r", root);
    ctx = zmq_ctx_new();
    pub_ck = px_socket(ctx, ZMQ_PUB, ep_ck, 1);
    pub_ctl = px_socket(ctx, ZMQ_PUB, ep_ctl, 1);
    rep = px_socket(ctx, ZMQ_PULL, ep_rep, 1);
}

static void teardown(void) {
    if (kid > 0) kill(-kid, SIGKILL);
    zmq_close(pub_ck), zmq_close(pub_ctl), zmq_close(rep);
    zmq_ctx_term(ctx);
    fx_rmtree(root);
    free(root);
}

TestSuite(eval, .init = setup, .fini = teardown, .timeout = 60);

/* Trains one epoch standalone into root/out; returns the top-1 it printed. */
static double train_one_epoch(void) {
    char args[2048], out[8192];
    snprintf(args, sizeof args, "--data-path %s --train-crop-size 16 " SIZES " -j 1 "
             "--epochs 1 --lr 0.05 --output-dir %s/out", data, root);
    cr_assert_eq(fx_run_tool(root, "stoker-train", args, out, sizeof out, NULL, 0), 0);
    const char *p = strstr(out, "top-1 ");
    cr_assert(p, "%s", out);
    return atof(p + 6);
}

Test(eval, a_checkpoint_scores_as_the_trainer_scored_it) {
    double trainer = train_one_epoch();
    char args[2048], out[8192];
    snprintf(args, sizeof args, "--data-path %s --checkpoint %s " SIZES, data, ckpt);
    cr_assert_eq(fx_run_tool(root, "stoker-eval", args, out, sizeof out, NULL, 0), 0);
    const char *p = strstr(out, "top-1 ");
    cr_assert(p, "%s", out);
    /* the trainer prints two decimals */
    cr_assert_float_eq(atof(p + 6), trainer, 0.006, "eval %s vs trainer %.2f", p, trainer);
    cr_assert(strstr(out, "(64 images)"), "%s", out);
    /* the confusion matrix: 4 rows of 16 samples each, diagonal = top-1 */
    p = strstr(out, "predicted):\n");
    cr_assert(p, "%s", out);
    p += strlen("predicted):\n");
    long diag = 0;
    for (int i = 0; i < 4; i++) {
        long row = 0;
        for (int j = 0; j < 4; j++) {
            char *e;
            long v = strtol(p, &e, 10);
            cr_assert(e != p, "row %d: %s", i, p);
            row += v, diag += i == j ? v : 0, p = e;
        }
        cr_assert_eq(row, 16, "row %d sums to %ld", i, row);
    }
    cr_assert_float_eq(100.0 * diag / 64, trainer, 0.006);
}

Test(eval, a_missing_checkpoint_fails_and_says_so) {
    char args[2048], err[4096];
    snprintf(args, sizeof args, "--data-path %s --checkpoint %s/nope " SIZES, data, root);
    cr_assert_eq(fx_run_tool(root, "stoker-eval", args, NULL, 0, err, sizeof err), 1);
    cr_assert(strstr(err, "nope"), "%s", err);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return 1e3 * (double)t.tv_sec + 1e-6 * (double)t.tv_nsec;
}

/* final: the notice of the run's last checkpoint */
static void notice_final(uint32_t epoch, uint32_t final) {
    ProtoMsg m = {.type = PROTO_CHECKPOINT};
    /* the file's own step (one epoch of 16): a notice the file contradicts is labelled
     * by the file, as when the trainer replaced it meanwhile */
    m.u.checkpoint = (ProtoCheckpoint){proto_str(ckpt), epoch, 16, final};
    ProtoOut o;
    StkErr err;
    cr_assert_eq(proto_out_init(&o, &err), 0);
    cr_assert_eq(proto_send(&o, pub_ck, &m, NULL, 0, &err), PROTO_OK, "%s", err.msg);
    proto_out_free(&o);
}

static void notice(uint32_t epoch) { notice_final(epoch, 0); }

static double value(const ProtoMetrics *m, const char *name) {
    for (uint32_t i = 0; i < m->count; i++)
        if (m->items[i].name.len == strlen(name) && !memcmp(m->items[i].name.ptr, name, m->items[i].name.len))
            return m->items[i].value;
    return -1;
}

/* Reads reports until an eval_done; returns the epoch evaluated, sums its confusion. */
static uint32_t one_evaluation(double *top1, double *cm_sum, int ms) {
    *cm_sum = 0;
    for (;;) {
        ProtoRecv r;
        cr_assert_eq(px_recv(rep, &r, ms), PROTO_OK, "no evaluation report");
        if (r.msg.type == PROTO_HEARTBEAT) { /* the evaluator's liveness, once a second */
            cr_assert_eq(r.msg.u.heartbeat.role, PROTO_ROLE_EVALUATOR);
            proto_recv_release(&r);
            continue;
        }
        const ProtoMetrics *m = &r.msg.u.metrics;
        cr_assert(r.msg.type == PROTO_METRICS && m->role == PROTO_ROLE_EVALUATOR,
                  "an evaluator report of type %d", r.msg.type);
        if (value(m, "top1") >= 0) *top1 = value(m, "top1");
        for (uint32_t i = 0; i < m->count; i++)
            if (!strncmp(m->items[i].name.ptr, "cm.", 3)) *cm_sum += m->items[i].value;
        int done = value(m, "eval_done") == 1;
        uint32_t epoch = m->epoch;
        proto_recv_release(&r);
        if (done) return epoch;
    }
}

/* Starts stoker-eval following the notices, logging to root/eval.log, with extra flags
 * (NULL-terminated) after the usual ones; returns after its first full evaluation (of
 * epoch 1's notice), its top-1 in *top1. */
static void follow(double *top1, const char *const *extra) {
    static char best[700], log[700];
    snprintf(best, sizeof best, "%s/best.safetensors", root);
    snprintf(log, sizeof log, "%s/eval.log", root);
    const char *argv[32] = {STOKER_BIN_DIR "/stoker-eval", "--data-path", data, "--checkpoints",
                            ep_ck, "--control", ep_ctl, "--reports", ep_rep, "--best", best, "-b",
                            "16", "--val-resize-size", "16", "--val-crop-size", "16"};
    int k = 17;
    for (; extra && *extra; extra++) argv[k++] = *extra;
    argv[k] = NULL;
    kid = px_spawn(argv, log);
    /* notices until the SUB has joined and one is evaluated */
    ProtoRecv r;
    int joined = 0;
    for (int i = 0; i < 100 && !joined; i++) {
        notice(1);
        if (px_recv(rep, &r, 100) != PROTO_OK) continue;
        joined = r.msg.type == PROTO_METRICS; /* heartbeats come from the start */
        if (!joined) proto_recv_release(&r);
    }
    cr_assert(joined, "no report after 100 notices");
    int done = value(&r.msg.u.metrics, "eval_done") == 1;
    if (value(&r.msg.u.metrics, "top1") >= 0) *top1 = value(&r.msg.u.metrics, "top1");
    proto_recv_release(&r);
    double cm;
    if (!done) one_evaluation(top1, &cm, 10000); /* the rest of epoch 1's */
}

/* A shutdown message stops the follower, which exits 0. */
static void shut_down(void) {
    ProtoMsg m = {.type = PROTO_SHUTDOWN};
    m.u.shutdown.reason = proto_str("test");
    ProtoOut o;
    StkErr err;
    cr_assert_eq(proto_out_init(&o, &err), 0);
    int status = 0, t = 0;
    for (; t < 5000 && px_running(kid, &status); t += 50) {
        cr_assert_eq(proto_send(&o, pub_ctl, &m, NULL, 0, &err), PROTO_OK);
        usleep(50000);
    }
    proto_out_free(&o);
    cr_assert(t < 5000 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit after shutdown");
    kid = 0;
}

Test(eval, follows_the_newest_notice_reports_everything_and_keeps_the_best) {
    double trainer = train_one_epoch(), top1 = -1, cm;
    char best[700], log[700];
    snprintf(best, sizeof best, "%s/best.safetensors", root);
    snprintf(log, sizeof log, "%s/eval.log", root);
    follow(&top1, NULL);
    /* garbage on its control socket is dropped and logged, and does not stop it */
    cr_assert_eq(zmq_send(pub_ctl, "\x93\x01\x05", 3, 0), 3);
    /* a foreign frame on the idle evaluator's notice socket is logged and dropped (sent
     * alone: conflation would replace it by a notice right after it) */
    usleep(300000);
    char *text = NULL;
    for (int t = 0; t < 4000 && !(text && strstr(text, "checkpoints: dropped")); t += 200) {
        free(text);
        cr_assert_eq(zmq_send(pub_ck, "\xc1", 1, 0), 1);
        usleep(200000);
        text = px_slurp(log);
    }
    cr_assert(text && strstr(text, "checkpoints: dropped"), "%s", text ? text : "");
    cr_assert(strstr(text, "control: dropped"), "%s", text);
    free(text);
    for (uint32_t e = 5; e <= 7; e++) notice(e); /* a burst: conflation keeps the newest */
    int evaluations = 0;
    for (uint32_t last = 0; last != 7;) {
        last = one_evaluation(&top1, &cm, 10000);
        evaluations += last >= 5; /* a repeated epoch-1 notice may still be in flight */
    }
    cr_assert(evaluations <= 2, "%d evaluations of a 3-notice burst: not conflated", evaluations);
    cr_assert_float_eq(top1, trainer, 0.006, "evaluator %f, trainer %f", top1, trainer);
    cr_assert_float_eq(cm, 64, 0, "the confusion matrix counts %f samples", cm);
    cr_assert(fx_exists(best), "best.safetensors kept");
    shut_down();
}

/* --duty (stoker-run's --eval-duty beside a GPU trainer): after an evaluation of T s the
 * next waits T(1/duty - 1) s, T its forward passes and checkpoint load; the first (a
 * one-time warm-up on a GPU) does not count. At 1e-5 the second (64 images: over 0.1 ms)
 * holds the next notice for 10 s or more; the run's final notice is not held, and
 * replaces the one held. */
Test(eval, a_paced_evaluator_holds_notices_but_not_the_final_one) {
    double trainer = train_one_epoch(), top1 = -1, cm;
    char log[700];
    snprintf(log, sizeof log, "%s/eval.log", root);
    char args[2048], err[4096];
    snprintf(args, sizeof args, "--data-path %s --checkpoint %s --duty 0 " SIZES, data, ckpt);
    cr_expect_eq(fx_run_tool(root, "stoker-eval", args, NULL, 0, err, sizeof err), 2);
    cr_expect(strstr(err, "--duty: a fraction in (0, 1], not '0'"), "%s", err);
    const char *const extra[] = {"--duty", "0.00001", NULL};
    follow(&top1, extra);
    notice(2); /* the second evaluation (of 1 or 2): at once, the first set no pace */
    one_evaluation(&top1, &cm, 10000);
    notice(2);
    ProtoRecv r;
    for (double t0 = now_ms(); now_ms() - t0 < 2000;) {
        if (px_recv(rep, &r, 200) != PROTO_OK) continue;
        cr_assert_eq(r.msg.type, PROTO_HEARTBEAT, "a report within 2 s of the last evaluation");
        proto_recv_release(&r);
    }
    usleep(100000);
    notice(2); /* held again, replaced by the one above: the evaluator says it holds them */
    notice_final(3, 1);
    uint32_t last = one_evaluation(&top1, &cm, 10000);
    cr_assert_eq(last, 3, "the final checkpoint evaluated at once, not epoch %u", last);
    cr_assert_float_eq(top1, trainer, 0.006, "evaluator %f, trainer %f", top1, trainer);
    shut_down();
    char *text = px_slurp(log);
    cr_assert(text && strstr(text, "(--duty 1e-05)"), "%s", text ? text : "");
    free(text);
}

/* Empties every val JPEG: a loader now finds only bad files there. */
static void empty_the_val_split(void) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "find '%s/val' -name '*.jpg' -exec truncate -s 0 {} +", data);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

/* After the first evaluation the val split is evaluated from memory: the figures stay
 * those of the JPEGs even once the files are emptied, where an evaluator without the
 * cache (--val-cache 0) can no longer read them. */
Test(eval, later_checkpoints_are_evaluated_from_the_val_cache) {
    double trainer = train_one_epoch(), first = -1, later = -1, cm;
    char log[700];
    snprintf(log, sizeof log, "%s/eval.log", root);
    follow(&first, NULL);
    cr_assert_float_eq(first, trainer, 0.006, "evaluator %f, trainer %f", first, trainer);
    empty_the_val_split();
    notice(2);
    for (uint32_t last = 0; last != 2;) last = one_evaluation(&later, &cm, 10000);
    cr_assert_float_eq(later, first, 1e-9, "from the cache %f, from the JPEGs %f", later, first);
    cr_assert_float_eq(cm, 64, 0, "the confusion matrix counts %f samples", cm);
    shut_down();
    char *text = px_slurp(log);
    cr_assert(text && strstr(text, "is kept in memory after its first evaluation"), "%s", text ? text : "");
    cr_assert_null(strstr(text, "empty"), "a loader read the emptied files: %s", text);
    free(text);
    /* the control: without the cache the emptied files are what an evaluation reads */
    char args[2048], out[8192], err[8192];
    snprintf(args, sizeof args, "--data-path %s --checkpoint %s --val-cache 0 " SIZES, data, ckpt);
    int rc = fx_run_tool(root, "stoker-eval", args, out, sizeof out, err, sizeof err);
    cr_assert(rc != 0 || strstr(err, "empty") || strstr(out, "empty"),
              "the emptied val split read as before (rc %d): %s %s", rc, out, err);
}

/* The cap: a split larger than --val-cache is decoded each time, and says so; the flag
 * refuses what is not a size. */
Test(eval, val_cache_flag) {
    char args[2048], out[8192], err[4096];
    double trainer = train_one_epoch();
    snprintf(args, sizeof args, "--data-path %s --checkpoint %s --val-cache 1KiB " SIZES, data, ckpt);
    cr_assert_eq(fx_run_tool(root, "stoker-eval", args, out, sizeof out, NULL, 0), 0);
    cr_assert(strstr(out, "is over --val-cache 0.0 MiB: each evaluation decodes it again"), "%s", out);
    const char *p = strstr(out, "top-1 ");
    cr_assert(p, "%s", out);
    cr_assert_float_eq(atof(p + 6), trainer, 0.006, "eval %s vs trainer %.2f", p, trainer);
    snprintf(args, sizeof args, "--data-path %s --checkpoint %s --val-cache lots " SIZES, data, ckpt);
    cr_assert_eq(fx_run_tool(root, "stoker-eval", args, NULL, 0, err, sizeof err), 2);
    cr_assert(strstr(err, "--val-cache: a size such as 1GiB, or 0, not 'lots'"), "%s", err);
}

/* --device and --precision as stoker-train takes them: wrong values are refused by name;
 * --device cuda evaluates as the CPU does where there is a GPU (bf16 logits: top-1 within
 * a sample or two of 64), and says why not where there is none (CI). */
Test(eval, device_flags) {
    char args[2048], out[8192], err[4096];
    snprintf(args, sizeof args, "--data-path %s --checkpoint %s --device tpu " SIZES, data, ckpt);
    cr_expect_eq(fx_run_tool(root, "stoker-eval", args, NULL, 0, err, sizeof err), 2);
    cr_expect(strstr(err, "--device: cpu or cuda, not 'tpu'"), "%s", err);
    snprintf(args, sizeof args, "--data-path %s --checkpoint %s --precision bf16 " SIZES, data, ckpt);
    cr_expect_eq(fx_run_tool(root, "stoker-eval", args, NULL, 0, err, sizeof err), 2);
    cr_expect(strstr(err, "--precision on the CPU is fp32"), "%s", err);
    double trainer = train_one_epoch();
    snprintf(args, sizeof args, "--data-path %s --checkpoint %s --device cuda " SIZES, data, ckpt);
    int rc = fx_run_tool(root, "stoker-eval", args, out, sizeof out, err, sizeof err);
    if (rc == 0) {
        const char *p = strstr(out, "top-1 ");
        cr_assert(p, "%s", out);
        cr_expect_float_eq(atof(p + 6), trainer, 3.2, "cuda eval %s vs trainer %.2f", p, trainer);
    } else {
        cr_expect_eq(rc, 1);
        cr_expect(strstr(err, "--device cuda"), "the reason: %s", err);
    }
}

/* The evaluator's memory share (stoker-run passes --eval-share x the card): refused off
 * the GPU; a share smaller than the context fails with the numbers (on any machine:
 * the preset says the card); one that fits prints the plan's batch and precision (fp32
 * on a GTX 1050) before the backend opens, and evaluates where there is a GPU. */
Test(eval, memory_share_flags) {
    char args[2048], out[8192], err[4096];
    snprintf(args, sizeof args, "--data-path %s --checkpoint %s --vram-budget 512MiB " SIZES, data, ckpt);
    cr_expect_eq(fx_run_tool(root, "stoker-eval", args, NULL, 0, err, sizeof err), 2);
    cr_expect(strstr(err, "--vram-budget is a GPU's share; it needs '--device cuda'"), "%s", err);
    snprintf(args, sizeof args, "--data-path %s --checkpoint %s --device cuda --gpu gtx9999 "
             "--vram-budget 512MiB " SIZES, data, ckpt);
    cr_expect_eq(fx_run_tool(root, "stoker-eval", args, NULL, 0, err, sizeof err), 2);
    cr_expect(strstr(err, "--gpu: not a preset"), "%s", err);
    train_one_epoch();
    snprintf(args, sizeof args, "--data-path %s --checkpoint %s --device cuda --gpu gtx1050-2g "
             "--vram-budget 200MiB " SIZES, data, ckpt);
    cr_expect_eq(fx_run_tool(root, "stoker-eval", args, out, sizeof out, err, sizeof err), 1);
    cr_expect(strstr(err, "does not fit") && strstr(err, "the evaluator's share is 200 MiB"), "%s", err);
    snprintf(args, sizeof args, "--data-path %s --checkpoint %s --device cuda --gpu gtx1050-2g "
             "--vram-budget 512MiB " SIZES, data, ckpt);
    int rc = fx_run_tool(root, "stoker-eval", args, out, sizeof out, err, sizeof err);
    cr_expect(strstr(out, "eval plan: batch 16 of 16 asked, fp32"), "%s", out);
    if (rc == 0) cr_expect(strstr(out, "top-1 "), "%s", out);
    else cr_expect(strstr(err, "--device cuda"), "the reason: %s", err);
}
