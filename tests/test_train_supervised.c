/* test_train_supervised.c: stoker-train in supervised mode, as stoker-run drives it:
 * batches from loaders it did not start, metrics with exact sample accounting on the
 * reports socket, a checkpoint notice per checkpoint, a shutdown message ending it with a
 * final checkpoint, foreign messages on its sockets dropped and counted. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_loader_fixture.h"
#include "test_proc_fixture.h"

static char *root, data[512], ep_data[600], ep_ctl[600], ep_rep[600], ep_ck[600], out[600];
static void *ctx, *rep, *pub, *ck, *push;
static pid_t kids[2]; /* killed in teardown if a test failed midway */

static void setup(void) {
    root = fx_tmpdir();
    snprintf(data, sizeof data, "%s/syn", root);
    px_synth(data);
    snprintf(ep_data, sizeof ep_data, "ipc://%s/d", root);
    snprintf(ep_ctl, sizeof ep_ctl, "ipc://%s/c", root);
    snprintf(ep_rep, sizeof ep_rep, "ipc://%s/r", root);
    snprintf(ep_ck, sizeof ep_ck, "ipc://%s/k", root);
    snprintf(out, sizeof out, "%s/out", root);
    ctx = zmq_ctx_new();
    rep = px_socket(ctx, ZMQ_PULL, ep_rep, 1);
    pub = px_socket(ctx, ZMQ_PUB, ep_ctl, 1);
    ck = px_socket(ctx, ZMQ_SUB, ep_ck, 0); /* the trainer binds it; ZeroMQ retries */
}

static void teardown(void) {
    for (int i = 0; i < 2; i++)
        if (kids[i] > 0) kill(-kids[i], SIGKILL);
    if (push) zmq_close(push);
    zmq_close(rep), zmq_close(pub), zmq_close(ck);
    zmq_ctx_term(ctx);
    fx_rmtree(root);
    free(root);
}

TestSuite(train_supervised, .init = setup, .fini = teardown, .timeout = 60);

static pid_t trainer(const char *epochs) {
    char log[700];
    snprintf(log, sizeof log, "%s/train.log", root);
    const char *argv[] = {STOKER_BIN_DIR "/stoker-train", "--data-path", data, "-b", "16",
                          "--epochs", epochs, "--train-crop-size", "16", "--val-resize-size",
                          "16", "--val-crop-size", "16", "--print-freq", "2", "--output-dir",
                          out, "--data-endpoint", ep_data, "--control", ep_ctl, "--reports",
                          ep_rep, "--checkpoints", ep_ck, NULL};
    return kids[0] = px_spawn(argv, log);
}

static pid_t loaders(const char *epochs) {
    const char *argv[] = {STOKER_BIN_DIR "/stoker-loader", "--data", ep_data, "-j", "2",
                          "--batch", "16", "--epochs", epochs, "--train-crop-size", "16",
                          "--drop-last", "-q", "--stay", data, NULL};
    return kids[1] = px_spawn(argv, NULL);
}

/* The value of metric name in a trainer metrics message, or -1 if absent. */
static double metric(const ProtoMsg *m, const char *name) {
    if (m->type != PROTO_METRICS || m->u.metrics.role != PROTO_ROLE_TRAINER) return -1;
    for (uint32_t i = 0; i < m->u.metrics.count; i++) {
        const ProtoMetric *it = &m->u.metrics.items[i];
        if (it->name.len == strlen(name) && !memcmp(it->name.ptr, name, it->name.len))
            return it->value;
    }
    return -1;
}

Test(train_supervised, trains_reports_exact_accounting_and_announces_checkpoints) {
    pid_t t = trainer("2"), l = loaders("2");
    int epochs_reported = 0, steps_logged = 0;
    while (epochs_reported < 2) {
        ProtoRecv r;
        cr_assert_eq(px_recv(rep, &r, 20000), PROTO_OK, "no report for 20 s");
        if (metric(&r.msg, "samples_lost") >= 0) {
            cr_assert_eq(metric(&r.msg, "samples_lost"), 0);
            cr_assert_eq(metric(&r.msg, "samples_repeated"), 0);
            cr_assert_eq(metric(&r.msg, "samples"), 256, "16 batches of 16 per epoch");
            epochs_reported++;
        }
        if (metric(&r.msg, "loss") >= 0) {
            steps_logged++;
            cr_assert(metric(&r.msg, "images_per_s") > 0);
            double w = metric(&r.msg, "input_wait");
            cr_assert(w >= 0 && w <= 1, "input_wait %f is a fraction", w);
        }
        proto_recv_release(&r);
    }
    cr_assert_eq(steps_logged, 16, "a step logged every 2 of 16 steps, twice");
    cr_assert_eq(px_wait(t, 20000), 0);
    int notices = 0;
    ProtoRecv r;
    while (px_recv(ck, &r, 500) == PROTO_OK) {
        cr_assert_eq(r.msg.type, PROTO_CHECKPOINT);
        cr_assert(strstr(r.msg.u.checkpoint.path.ptr, "/out/checkpoints/last.safetensors"));
        cr_assert_eq(r.msg.u.checkpoint.epoch, (uint32_t)notices);
        cr_assert_eq(r.msg.u.checkpoint.step, 16ull * (notices + 1));
        cr_assert_eq(r.msg.u.checkpoint.final, notices == 1, "the last epoch's is the final one");
        notices++;
        proto_recv_release(&r);
    }
    cr_assert_eq(notices, 2, "one notice per epoch's checkpoint");
    kill(-l, SIGTERM);
    cr_assert_eq(px_wait(l, 10000), 0);
    kids[0] = kids[1] = 0;
}

/* Sends shutdowns on the control socket (repeated: PUB drops until the SUB has joined)
 * until p exits, at most ms; returns its exit status. */
static int shutdown_until_gone(pid_t p, int ms) {
    ProtoMsg m = {.type = PROTO_SHUTDOWN};
    m.u.shutdown.reason = proto_str("test");
    ProtoOut o;
    StkErr err;
    cr_assert_eq(proto_out_init(&o, &err), 0);
    int status = 0, running = 1;
    for (int t = 0; t < ms && (running = px_running(p, &status)); t += 50) {
        cr_assert_eq(proto_send(&o, pub, &m, NULL, 0, &err), PROTO_OK, "%s", err.msg);
        usleep(50000);
    }
    proto_out_free(&o);
    cr_assert(!running, "still running %d ms after the first shutdown", ms);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Test(train_supervised, foreign_messages_are_dropped_and_shutdown_saves_a_final_checkpoint) {
    pid_t t = trainer("1000"), l = loaders("1000");
    /* garbage on the data socket and the control socket, while it trains */
    push = px_socket(ctx, ZMQ_PUSH, ep_data, 0);
    for (int i = 0; i < 3; i++) cr_assert_eq(zmq_send(push, "\x93\x01\x01\xc0", 4, 0), 4);
    int rejected = 0;
    for (int got = 0; !rejected && got < 2000;) {
        ProtoRecv r;
        cr_assert_eq(px_recv(rep, &r, 20000), PROTO_OK, "no report for 20 s");
        /* it reports, so its control SUB has joined: a PUB would drop this earlier */
        cr_assert_eq(zmq_send(pub, "not msgpack", 11, 0), 11);
        if (metric(&r.msg, "rejected") >= 1) rejected = 1;
        got++;
        proto_recv_release(&r);
    }
    cr_assert(rejected, "the malformed batches were counted as rejected");
    cr_assert_eq(shutdown_until_gone(t, 5000), 0, "exit status after shutdown");
    kids[0] = 0;
    char ckpt[700], log[700];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoints/last.safetensors", out);
    cr_assert(fx_exists(ckpt), "the final checkpoint");
    snprintf(log, sizeof log, "%s/train.log", root);
    char *text = px_slurp(log);
    cr_assert(text && strstr(text, "control: dropped"), "the foreign control message is logged");
    free(text);
    kill(-l, SIGTERM);
    cr_assert_eq(px_wait(l, 10000), 0);
    kids[0] = kids[1] = 0;
}
