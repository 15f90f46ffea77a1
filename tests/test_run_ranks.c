/* test_run_ranks.c: data parallel on the CPU backend (--gpus 2: two stoker-train ranks
 * averaging gradients through train_group), end to end through stoker-run: each epoch
 * is shared by the ranks with 0 lost and 0 repeated and the step count of one trainer
 * at twice the batch; rank 0 alone writes and announces checkpoints; a rank SIGKILLed
 * stops the group by name and --resume finishes the run. Then the layout rules of
 * run_ranks.h. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "run_ranks.h"
#include "test_loader_fixture.h"
#include "test_proc_fixture.h"

static char *root, data[512], run[600], log_[600];
static pid_t sup;

static void setup(void) {
    setenv("OMP_NUM_THREADS", "1", 1); /* 2 shared cores: one thread per process */
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    root = fx_tmpdir();
    snprintf(data, sizeof data, "%s/syn", root);
    px_synth(data); /* 256 train samples, 64 val, no bad file */
    snprintf(run, sizeof run, "%s/run", root);
    snprintf(log_, sizeof log_, "%s/run.log", root);
}

static void teardown(void) {
    if (sup > 0) kill(-sup, SIGKILL);
    fx_rmtree(root);
    free(root);
}

TestSuite(run_ranks, .init = setup, .fini = teardown, .timeout = 120);

/* stoker-run --gpus 2 at batch 16 per rank: 256 samples = 16 batches, 8 steps a rank. */
static pid_t start_run(const char *epochs) {
    const char *argv[] = {STOKER_BIN_DIR "/stoker-run", "--data-path", data, "--epochs", epochs,
                          "--output-dir", run, "-b", "16", "--train-crop-size", "16",
                          "--val-resize-size", "16", "--val-crop-size", "16", "--print-freq", "4",
                          "-j", "2", "--gpus", "2", NULL};
    return sup = px_spawn(argv, log_);
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

static char *run_file(const char *rel) {
    char p[800];
    snprintf(p, sizeof p, "%s/%s", run, rel);
    return px_slurp(p);
}

Test(run_ranks, two_ranks_share_each_epoch_and_rank_0_alone_checkpoints) {
    start_run("2");
    cr_assert_eq(px_wait(sup, 100000), 0, "the run finishes");
    sup = 0;
    char *j = run_file("metrics.jsonl"), *text = px_slurp(log_);
    cr_assert(j && text);
    for (int e = 0; e < 2; e++)
        for (int r = 0; r < 2; r++) {
            /* each rank: its 8 batches of 16, nothing lost, repeated or foreign; the group
             * steps 8 times an epoch (one trainer at batch 32 would too) */
            char rec[256];
            snprintf(rec, sizeof rec, "{\"kind\":\"epoch\",\"epoch\":%d,\"step\":%d,", e, 8 * (e + 1));
            const char *at = strstr(j, rec);
            for (int skip = 0; at && skip < 2; skip++) {
                char want[128];
                snprintf(want, sizeof want, "\"rank\":%d.0,", r);
                const char *end = strchr(at, '\n');
                if (strstr(at, want) && strstr(at, want) < end) break;
                at = strstr(at + 1, rec);
            }
            cr_assert(at, "no epoch %d record of rank %d:\n%s", e, r, j);
            const char *end = strchr(at, '\n');
            char line[1024];
            snprintf(line, sizeof line, "%.*s", (int)(end - at), at);
            cr_assert(strstr(line, "\"samples\":128.0,\"samples_lost\":0.0,\"samples_repeated\":0.0,"
                                   "\"duplicates_dropped\":0.0,\"rejected\":0.0"), "%s", line);
        }
    /* one notice per epoch (rank 0's), so one evaluation each, at the group's steps */
    cr_assert_eq(count(j, "\"kind\":\"eval\""), 2, "%s", j);
    cr_assert(strstr(j, "\"kind\":\"eval\",\"epoch\":1,\"step\":16,"), "%s", j);
    cr_assert_eq(count(text, "joined; a step trains 2 x 16 samples"), 2, "%s", text);
    char ck[800];
    snprintf(ck, sizeof ck, "%s/checkpoints", run);
    cr_assert_eq(px_count_entries(ck), 3, "last (+ state) and the evaluator's best");
    free(j), free(text);
}

/* Two standalone stoker-train ranks (the user's own launcher instead of stoker-run), each
 * with its own --output-dir: only rank 0's gets checkpoints, and only rank 0 evaluates. */
Test(run_ranks, standalone_ranks_leave_checkpoints_to_rank_0) {
    char ep[700], out[2][700], lg[2][700], ck[800];
    snprintf(ep, sizeof ep, "ipc://%s/dist", root);
    pid_t p[2];
    for (int r = 0; r < 2; r++) {
        char rank[8];
        snprintf(rank, sizeof rank, "%d", r);
        snprintf(out[r], sizeof out[r], "%s/out%d", root, r);
        snprintf(lg[r], sizeof lg[r], "%s/rank%d.log", root, r);
        const char *argv[] = {STOKER_BIN_DIR "/stoker-train", "--data-path", data, "--epochs", "1",
                              "--output-dir", out[r], "-b", "16", "--train-crop-size", "16",
                              "--val-resize-size", "16", "--val-crop-size", "16", "-j", "1",
                              "--gpus", "2", "--rank", rank, "--dist-endpoint", ep, NULL};
        p[r] = px_spawn(argv, lg[r]);
    }
    for (int r = 0; r < 2; r++) cr_assert_eq(px_wait(p[r], 60000), 0, "rank %d", r);
    snprintf(ck, sizeof ck, "%s/checkpoints", out[0]);
    cr_assert_eq(px_count_entries(ck), 4, "rank 0: last and best, each with its state");
    snprintf(ck, sizeof ck, "%s/checkpoints", out[1]);
    cr_assert_eq(px_count_entries(ck), 0, "rank 1 writes no checkpoint");
    char *t0 = px_slurp(lg[0]), *t1 = px_slurp(lg[1]);
    cr_assert(strstr(t0, "epoch 0: train loss") && strstr(t0, "val loss"), "%s", t0);
    cr_assert(!strstr(t1, "val loss"), "rank 1 evaluates nothing:\n%s", t1);
    free(t0), free(t1);
}

/* The pid of the trainer of `rank` among sup's children (via /proc). */
static pid_t rank_pid(int rank) {
    char p[64], want[32];
    snprintf(p, sizeof p, "/proc/%d/task/%d/children", (int)sup, (int)sup);
    snprintf(want, sizeof want, "--rank %d ", rank);
    char *list = px_slurp(p);
    cr_assert(list, "%s", p);
    pid_t found = 0;
    for (char *tok = strtok(list, " \n"); tok && !found; tok = strtok(NULL, " \n")) {
        snprintf(p, sizeof p, "/proc/%s/cmdline", tok);
        FILE *f = fopen(p, "rb");
        char cmd[8192] = {0};
        size_t got = f ? fread(cmd, 1, sizeof cmd - 1, f) : 0;
        if (f) fclose(f);
        for (size_t i = 0; i < got; i++) cmd[i] = cmd[i] ? cmd[i] : ' ';
        if (strstr(cmd, "stoker-train") && strstr(cmd, want)) found = atoi(tok);
    }
    free(list);
    return found;
}

Test(run_ranks, a_killed_rank_stops_the_group_and_resume_finishes_it) {
    start_run("6");
    char state[800];
    snprintf(state, sizeof state, "%s/checkpoints/last.state.safetensors", run);
    for (int t = 0; t < 60000 && !fx_exists(state); t += 5) usleep(5000);
    cr_assert(fx_exists(state), "a first checkpoint");
    pid_t victim = rank_pid(1);
    cr_assert_gt(victim, 0, "rank 1 is running");
    cr_assert_eq(kill(victim, SIGKILL), 0);
    cr_assert_eq(px_wait(sup, 10000), 1, "a failed run: the group cannot go on without rank 1");
    char *text = px_slurp(log_);
    cr_assert(strstr(text, "stoker-train rank 1 killed by signal 9 (Killed): stopping the group "
                           "(ranks 0-1) and the run"), "%s", text);
    cr_assert(strstr(text, "continue with: stoker-run --resume"), "%s", text);
    free(text);
    const char *argv[] = {STOKER_BIN_DIR "/stoker-run", "--resume", run, NULL};
    sup = px_spawn(argv, log_);
    cr_assert_eq(px_wait(sup, 100000), 0, "the resumed run (both ranks again) finishes");
    sup = 0;
    char *j = run_file("metrics.jsonl");
    /* (the step count is not checked: the stop saved mid-epoch, and --resume redoes that
     * epoch on top of its partial steps, as with one trainer) */
    cr_assert(strstr(j, "\"kind\":\"eval\",\"epoch\":5,"), "epoch 5 evaluated:\n%s", j);
    cr_assert_eq(count(j, "\"kind\":\"epoch\",\"epoch\":5,"), 2, "both ranks did epoch 5:\n%s", j);
    free(j);
}

Test(run_ranks, loaders_are_dealt_out_round_robin) {
    /* 5 loaders over 2 ranks: 0, 2, 4 feed rank 0 (ids 0, 1, 2 of 3); 1, 3 rank 1 (of 2) */
    int rank[5], id[5];
    for (int i = 0; i < 5; i++) rank[i] = run_ranks_loader_rank(i, 2), id[i] = run_ranks_loader_id(i, 2);
    cr_assert(rank[0] == 0 && rank[1] == 1 && rank[2] == 0 && rank[3] == 1 && rank[4] == 0);
    cr_assert(id[0] == 0 && id[2] == 1 && id[4] == 2 && id[1] == 0 && id[3] == 1);
    cr_assert_eq(run_ranks_loaders_of(0, 5, 2), 3);
    cr_assert_eq(run_ranks_loaders_of(1, 5, 2), 2);
    for (int w = 1; w < 20; w++)
        for (int g = 1; g <= w && g < 8; g++) {
            int total = 0;
            for (int r = 0; r < g; r++) {
                int n = run_ranks_loaders_of(r, w, g);
                cr_assert_geq(n, 1, "rank %d of %d with %d loaders has none", r, g, w);
                total += n;
            }
            cr_assert_eq(total, w);
        }
}

Test(run_ranks, slots_keep_the_single_gpu_layout) {
    cr_assert_eq(run_ranks_trainer_slot(0, 6), 0);
    cr_assert_eq(run_ranks_trainer_slot(1, 6), RUN_FIRST_LOADER + 6, "after the loaders");
    cr_assert_eq(run_ranks_trainer_slot(3, 6), RUN_FIRST_LOADER + 8);
    cr_assert_eq(run_ranks_default_workers(16, 1, 1), 13, "one GPU: the trainer, the evaluator and its val loader");
    cr_assert_eq(run_ranks_default_workers(16, 1, 0), 15, "--no-eval: its cores go to loaders");
    cr_assert_eq(run_ranks_default_workers(2, 1, 1), 1);
    cr_assert_eq(run_ranks_default_workers(16, 4, 1), 10, "a core per rank and two for evaluation");
    cr_assert_eq(run_ranks_default_workers(4, 4, 1), 4, "at least a loader per rank");
}
