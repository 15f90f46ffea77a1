/* test_loader_proc.c: stoker-loader as users run it: processes pushing to a socket this
 * test binds. Exactly-once delivery over N processes, the same bytes for any N, bad
 * files reported, clean exit on SIGTERM and on a shutdown message, usage errors. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "loader_index.h"
#include "train_input.h"
#include "proto_zmq.h"
#include "test_loader_fixture.h"

static char *root, ep_data[128], ep_ctl[128], ep_rep[128];
static void *ctx, *pull, *pub, *rep;

static void *bind_sock(int type, const char *ep) {
    void *s = zmq_socket(ctx, type);
    StkErr err;
    cr_assert(s && proto_zmq_setup(s, 1000, 1000, 0, &err) == 0);
    cr_assert_eq(zmq_bind(s, ep), 0, "bind %s: %s", ep, zmq_strerror(zmq_errno()));
    return s;
}

static void setup(void) {
    root = fx_tmpdir();
    fx_jpeg_dataset(root);
    LoaderScanOptions opt = {.val_fraction = -1};
    StkErr err;
    cr_assert_eq(loader_index_build(root, &opt, NULL, NULL, &err), 0, "%s", err.msg);
    snprintf(ep_data, sizeof ep_data, "ipc://%s/d", root);
    snprintf(ep_ctl, sizeof ep_ctl, "ipc://%s/c", root);
    snprintf(ep_rep, sizeof ep_rep, "ipc://%s/r", root);
    ctx = zmq_ctx_new();
    pull = bind_sock(ZMQ_PULL, ep_data);
    pub = bind_sock(ZMQ_PUB, ep_ctl);
    rep = bind_sock(ZMQ_PULL, ep_rep);
}

static void teardown(void) {
    zmq_close(pull);
    zmq_close(pub);
    zmq_close(rep);
    zmq_ctx_term(ctx);
    fx_rmtree(root);
    free(root);
}

TestSuite(loader_proc, .init = setup, .fini = teardown, .timeout = 60);

/* Starts stoker-loader with the data endpoint, extra args and the dataset (or root). */
static pid_t spawn_on(const char *dataset, const char *const *extra);
static pid_t spawn(const char *const *extra) { return spawn_on(root, extra); }

static pid_t spawn_on(const char *dataset, const char *const *extra) {
    const char *argv[32] = {STOKER_BIN_DIR "/stoker-loader", "--data", ep_data,
                            "--train-crop-size", "16", "--batch", "4"};
    int n = 7;
    for (; *extra; extra++) argv[n++] = *extra;
    argv[n++] = dataset;
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid, int seconds) {
    int status;
    for (int i = 0; i < seconds * 100; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        usleep(10000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    cr_assert_fail("stoker-loader did not exit within %d s", seconds);
    return -1;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ ((const uint8_t *)p)[i]) * 0x100000001B3ull;
    return h;
}

/* Receives until `ends` end-of-epoch messages; hashes[e * 8 + index] gets each batch's
 * hash (pixels and ids), each (epoch, index) at most once, epochs below `epochs` and
 * indices below `indices` (<= 8); returns the samples received. */
static uint64_t collect_into(uint32_t ends, uint32_t epochs, uint64_t indices, uint64_t *hashes) {
    uint64_t samples = 0;
    for (uint32_t got = 0; got < ends;) {
        ProtoRecv r;
        StkErr err;
        cr_assert_eq(proto_recv(pull, &r, 0, &err), PROTO_OK, "%s", err.msg);
        if (r.msg.type == PROTO_END_OF_EPOCH) got++;
        if (r.msg.type == PROTO_BATCH) {
            const ProtoBatch *b = &r.msg.u.batch;
            cr_assert(b->epoch < epochs && b->index < indices, "epoch %u index %llu", b->epoch,
                      (unsigned long long)b->index);
            uint64_t *h = &hashes[b->epoch * 8 + b->index];
            cr_assert_eq(*h, 0, "batch %llu of epoch %u twice", (unsigned long long)b->index, b->epoch);
            *h = fnv(fnv(0xCBF29CE484222325ull, b->pixels, proto_batch_pixel_bytes(b)), b->ids, 8ull * b->n);
            samples += b->n;
        }
        proto_recv_release(&r);
    }
    return samples;
}

/* Two epochs of 4 batches: hashes[e][index]. */
static uint64_t collect(uint32_t ends, uint64_t hashes[2][8]) { return collect_into(ends, 2, 4, hashes[0]); }

Test(loader_proc, every_batch_once_and_identical_for_1_or_3_loaders) {
    uint64_t one[2][8] = {{0}}, three[2][8] = {{0}};
    const char *a1[] = {"--epochs", "2", "--seed", "9", NULL};
    pid_t p = spawn(a1);
    cr_assert_eq(collect(2, one), 26, "13 samples per epoch, twice");
    cr_assert_eq(wait_exit(p, 20), 0);
    const char *a3[] = {"-j", "3", "--epochs", "2", "--seed", "9", NULL};
    p = spawn(a3);
    cr_assert_eq(collect(6, three), 26);
    cr_assert_eq(wait_exit(p, 20), 0);
    for (int e = 0; e < 2; e++)
        for (int i = 0; i < 4; i++) {
            cr_assert_neq(one[e][i], 0, "batch %d of epoch %d missing", i, e);
            cr_assert_eq(one[e][i], three[e][i], "batch %d of epoch %d differs", i, e);
        }
}

Test(loader_proc, bad_files_are_reported_once_each) {
    const char *a[] = {"--epochs", "2", "--reports", ep_rep, NULL};
    uint64_t h[2][8] = {{0}};
    pid_t p = spawn(a);
    collect(2, h);
    cr_assert_eq(wait_exit(p, 20), 0);
    int bad = 0;
    char paths[3][256] = {{0}};
    ProtoRecv r;
    StkErr err;
    while (proto_recv(rep, &r, ZMQ_DONTWAIT, &err) == PROTO_OK) {
        if (r.msg.type == PROTO_BAD_FILE) {
            cr_assert(bad < 3, "more than three bad-file reports");
            snprintf(paths[bad++], 256, "%.*s: %.*s", (int)r.msg.u.bad_file.path.len,
                     r.msg.u.bad_file.path.ptr, (int)r.msg.u.bad_file.reason.len,
                     r.msg.u.bad_file.reason.ptr);
        }
        proto_recv_release(&r);
    }
    cr_assert_eq(bad, 3, "%d bad-file reports", bad);
    for (int i = 0; i < 3; i++) cr_assert(strstr(paths[i], "/train/b/"), "%s", paths[i]);
}

/* Receives a couple of batches from an endless loader, then stops it with `stop`. */
static void stop_midway(const char *const *args, void (*stop)(pid_t)) {
    pid_t p = spawn(args);
    for (int got = 0; got < 2;) {
        ProtoRecv r;
        StkErr err;
        cr_assert_eq(proto_recv(pull, &r, 0, &err), PROTO_OK, "%s", err.msg);
        got += r.msg.type == PROTO_BATCH;
        proto_recv_release(&r);
    }
    stop(p);
    /* nobody reads any more: the loader is blocked on a full socket and must still go */
    if (kill(p, 0) == 0 || waitpid(p, NULL, WNOHANG) == 0)
        cr_assert_eq(wait_exit(p, 10), 0, "exit status after stop");
}

static void sigterm(pid_t p) { kill(p, SIGTERM); }

/* PUB drops messages sent before a subscriber's subscription arrives (ZeroMQ's slow
 * joiner), so like a supervisor we repeat the shutdown until the process is gone. */
static void shutdown_msg(pid_t p) {
    ProtoMsg m = {.type = PROTO_SHUTDOWN};
    m.u.shutdown.reason = proto_str("test");
    ProtoOut out;
    StkErr err;
    cr_assert_eq(proto_out_init(&out, &err), 0);
    for (int i = 0; i < 100 && kill(p, 0) == 0; i++) {
        cr_assert_eq(proto_send(&out, pub, &m, NULL, 0, &err), PROTO_OK, "%s", err.msg);
        int status;
        pid_t w = waitpid(p, &status, WNOHANG);
        if (w == p) { /* put it back for stop_midway's wait: it exited with status */
            cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status %d", status);
            break;
        }
        usleep(50000);
    }
    proto_out_free(&out);
}

Test(loader_proc, sigterm_stops_one_loader_cleanly) {
    const char *a[] = {"--epochs", "100000", NULL};
    stop_midway(a, sigterm);
}

Test(loader_proc, sigterm_stops_all_workers_cleanly) {
    const char *a[] = {"-j", "2", "--epochs", "100000", NULL};
    stop_midway(a, sigterm);
}

Test(loader_proc, shutdown_message_stops_it) {
    const char *a[] = {"--epochs", "100000", "--control", ep_ctl, NULL};
    usleep(100000);
    stop_midway(a, shutdown_msg);
}

Test(loader_proc, usage_errors_exit_2) {
    const char *a[] = {"--batch", "many", NULL};
    cr_assert_eq(wait_exit(spawn(a), 10), 2);
    const char *b[] = {"--split", "test", NULL};
    cr_assert_eq(wait_exit(spawn(b), 10), 2);
}

Test(loader_proc, a_dataset_moved_after_indexing_still_loads) {
    char *tree = fx_tmpdir(), moved[512];
    fx_jpeg_dataset(tree);
    LoaderScanOptions opt = {.val_fraction = -1};
    StkErr err;
    cr_assert_eq(loader_index_build(tree, &opt, NULL, NULL, &err), 0, "%s", err.msg);
    snprintf(moved, sizeof moved, "%s-moved", tree);
    cr_assert_eq(rename(tree, moved), 0);
    uint64_t h[2][8] = {{0}};
    const char *a[] = {"-q", NULL};
    pid_t p = spawn_on(moved, a);
    cr_assert_eq(collect(1, h), 13, "every sample read from the moved tree");
    cr_assert_eq(wait_exit(p, 20), 0);
    fx_rmtree(moved);
    free(tree);
}

/* A trainer whose window is full while the loader finishes: without --stay the loader's
 * exit loses the message ZeroMQ was holding (4.3), with it every batch arrives. */
Test(loader_proc, a_slow_trainer_gets_every_batch_from_a_loader_that_stays) {
    TrainInput *in;
    StkErr err;
    char ep[128];
    snprintf(ep, sizeof ep, "ipc://%s/t", root);
    TrainInputConfig c = {.endpoint = ep, .batches_per_epoch = 4, .batch = 4, .height = 16,
                          .width = 16, .channels = 3, .epochs = 1, .window = 1};
    cr_assert_eq(train_input_open(&in, ctx, &c, &err), 0, "%s", err.msg);
    const char *argv[] = {STOKER_BIN_DIR "/stoker-loader", "--data", ep, "--train-crop-size",
                          "16", "--batch", "4", "--stay", "-q", root, NULL};
    pid_t p = fork();
    if (p == 0) {
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int got = 0, done = 0;
    while (!done) {
        TrainBatch b;
        cr_assert_eq(train_input_next(in, 0, 10000, &b, &done, &err), 0, "%s", err.msg);
        got += !done;
        usleep(200000); /* the loader is long finished by the last batches */
    }
    cr_assert_eq(got, 4);
    kill(p, SIGTERM);
    cr_assert_eq(wait_exit(p, 10), 0);
    train_input_close(in);
}

/* One epoch's batches (index < 8): hashes[index]. (Sample ids alone may repeat: the
 * fixture's bad files are replaced by good samples.) */
static uint64_t collect_epoch(uint32_t ends, uint64_t hashes[8]) { return collect_into(ends, 1, 8, hashes); }

/* --gpus 3 at batch 2 over 13 samples: 6 full batches, 2 steps per rank; rank r gets
 * batches r and r + 3 (two loaders each, one batch apiece), byte-identical to the
 * same indices of one unsharded loader; the 7th batch (the tail) is nobody's. */
Test(loader_proc, ranks_get_their_shard_with_the_same_bytes) {
    uint64_t plain[8] = {0}, ranked[8] = {0};
    uint64_t samples = 0;
    const char *a1[] = {"--batch", "2", "--seed", "5", "--drop-last", NULL};
    pid_t p = spawn(a1);
    collect_epoch(1, plain);
    cr_assert_eq(wait_exit(p, 20), 0);
    for (int r = 0; r < 3; r++) {
        char rank[8];
        snprintf(rank, sizeof rank, "%d", r);
        const char *ar[] = {"--batch", "2", "--seed", "5", "--drop-last", "--rank", rank,
                            "--world", "3", "-j", "2", NULL};
        uint64_t mine[8] = {0};
        p = spawn(ar);
        samples += collect_epoch(2, mine);
        cr_assert_eq(wait_exit(p, 20), 0);
        for (int b = 0; b < 8; b++) {
            int ours = b % 3 == r && b < 6;
            cr_assert_eq(mine[b] != 0, ours, "rank %d %s batch %d", r, ours ? "lacks" : "got", b);
            if (ours) ranked[b] = mine[b];
        }
    }
    for (int b = 0; b < 6; b++)
        cr_assert_eq(ranked[b], plain[b], "batch %d differs between world 3 and world 1", b);
    cr_assert_eq(samples, 12, "6 batches of 2 over the ranks; the 13th sample is the dropped tail");
}

Test(loader_proc, a_world_without_drop_last_is_refused) {
    const char *a[] = {"--rank", "0", "--world", "2", NULL};
    cr_assert_eq(wait_exit(spawn(a), 20), 1, "ranks must agree on the steps of an epoch");
    const char *b[] = {"--rank", "2", "--world", "2", "--drop-last", NULL};
    cr_assert_eq(wait_exit(spawn(b), 20), 1, "rank 2 of world 2");
}
