/* test_run.c: stoker-run end to end on a tiny synthetic dataset (CPU backend, smallcnn
 * at 16x16): the run directory's contents; a loader SIGKILLed mid-run restarted with
 * exact sample accounting (0 lost, 0 repeated); Ctrl-C and SIGTERM ending every child
 * within 5 s with a final checkpoint and no socket files left; the trainer SIGKILLed
 * and the run resumed; a checkpoint that does not fit the disk (RLIMIT_FSIZE);
 * malformed and foreign messages on the reports and data sockets; the evaluator's pace;
 * micro-batches. tcp and CURVE are test_run_net.c's; the fixture is test_run_fixture.h. */
#include <criterion/criterion.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "test_run_fixture.h"

TestSuite(run, .init = setup, .fini = teardown, .timeout = 90);

/* The private socket directory the run recorded in config.json. */
static void socket_dir(char *out, size_t cap) {
    char *c = run_file("config.json"), *p = c ? strstr(c, "ipc://") : NULL;
    cr_assert(p, "config.json names the sockets");
    p += 6;
    size_t n = strcspn(p, "\"");
    snprintf(out, cap, "%.*s", (int)n, p);
    *strrchr(out, '/') = 0;
    free(c);
}

/* The pids of sup's children whose command line contains word. */
static int children(const char *word, pid_t *out, int cap) {
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/task/%d/children", (int)sup, (int)sup);
    char *list = px_slurp(p);
    cr_assert(list, "%s", p);
    int n = 0;
    for (char *tok = strtok(list, " \n"); tok && n < cap; tok = strtok(NULL, " \n")) {
        snprintf(p, sizeof p, "/proc/%s/cmdline", tok);
        FILE *f = fopen(p, "rb");
        char cmd[4096] = {0};
        size_t got = f ? fread(cmd, 1, sizeof cmd - 1, f) : 0;
        if (f) fclose(f);
        for (size_t i = 0; i < got; i++) cmd[i] = cmd[i] ? cmd[i] : ' ';
        if (strstr(cmd, word)) out[n++] = atoi(tok);
    }
    free(list);
    return n;
}

Test(run, writes_the_run_directory) {
    start_run("2", NULL);
    cr_assert_eq(px_wait(sup, 60000), 0);
    sup = 0;
    char *j = run_file("metrics.jsonl"), *csv = run_file("metrics.csv"), *cfg = run_file("config.json");
    cr_assert(j && csv && cfg);
    cr_assert_eq(count(j, "{\"kind\":\"train\",\"epoch\":"), 8, "a step logged every 4 of 16, twice");
    cr_assert_eq(count(j, "\"kind\":\"eval\""), 2, "both epochs' checkpoints evaluated:\n%s", j);
    cr_assert(strstr(j, "\"kind\":\"eval\",\"epoch\":1,\"step\":32,"), "the final one:\n%s", j);
    cr_assert_eq(count(j, "\"skipped\":0,"), 2, "no checkpoint left out:\n%s", j);
    cr_assert_eq(count(j, "\"samples_lost\":0.0,\"samples_repeated\":0.0"), 2, "%s", j);
    cr_assert(strstr(j, "\"input_wait\":") && strstr(j, "\"per_class\":["));
    cr_assert_eq(count(j, ",\"wall_s\":"), count(j, "\n"), "every record ends with its wall time:\n%s", j);
    cr_assert(!strncmp(csv, "kind,epoch,step,loss,lr,images_per_s,input_wait,top1,top5\n", 57));
    cr_assert_eq(count(csv, "\ntrain,"), 8);
    cr_assert_eq(count(csv, "\neval,"), 2);
    cr_assert(strstr(cfg, "\"epochs\": 2") && strstr(cfg, "\"workers\": 2") &&
              strstr(cfg, "\"batch_size\": 16"), "%s", cfg);
    const char *files[] = {"checkpoints/last.safetensors", "checkpoints/best.safetensors",
                           "bad_files.log", "confusion.csv", "plots/loss.png",
                           "plots/accuracy.png", "plots/throughput.png", "plots/confusion.png"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char p[800];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", run, files[i]);
        cr_assert(stat(p, &st) == 0 && (st.st_size > 0 || strstr(p, "bad_files")), "%s", p);
    }
    char dir[256];
    socket_dir(dir, sizeof dir);
    cr_assert(!fx_exists(dir), "the private socket directory %s is gone", dir);
    char *text = px_slurp(log_);
    cr_assert(strstr(text, "best val top-1") && strstr(text, "CPU backend"), "%s", text);
    free(text), free(j), free(csv), free(cfg);
}

/* --no-eval: training and checkpoints as usual, no stoker-eval started, no evaluation
 * recorded (what the evaluator's overhead is measured against). */
Test(run, no_eval_trains_without_an_evaluator) {
    const char *extra[] = {"--no-eval", NULL};
    start_run("1", extra);
    cr_assert_eq(px_wait(sup, 60000), 0);
    sup = 0;
    char *j = run_file("metrics.jsonl"), *cfg = run_file("config.json"), *text = px_slurp(log_);
    cr_assert(j && cfg && text);
    cr_assert_eq(count(j, "{\"kind\":\"train\",\"epoch\":"), 4, "a step logged every 4 of 16:\n%s", j);
    cr_assert_eq(count(j, "\"kind\":\"eval\""), 0, "nothing evaluated:\n%s", j);
    cr_assert_eq(count(j, "\"kind\":\"unevaluated\""), 0, "none was asked for:\n%s", j);
    cr_assert(strstr(cfg, "\"evaluator\": false"), "%s", cfg);
    cr_assert(strstr(text, "no evaluator (--no-eval)") && !strstr(text, "stoker-eval"), "%s", text);
    char p[800];
    snprintf(p, sizeof p, "%s/checkpoints/last.safetensors", run);
    cr_assert(fx_exists(p), "the checkpoint is written");
    free(j), free(cfg), free(text);
}

/* On a terminal the progress line rewrites itself; in a log file it is plain lines. */
Test(run, a_terminal_gets_one_live_progress_line) {
    int master;
    pid_t p = forkpty(&master, NULL, NULL, NULL);
    cr_assert(p >= 0, "forkpty");
    if (p == 0) {
        execl(STOKER_BIN_DIR "/stoker-run", "stoker-run", "--data-path", data, "--epochs", "1",
              "--output-dir", run, RUN_FLAGS, (char *)NULL);
        _exit(127);
    }
    char buf[65536];
    size_t n = 0;
    for (ssize_t got; n < sizeof buf - 1 && (got = read(master, buf + n, sizeof buf - 1 - n)) > 0;)
        n += (size_t)got; /* EIO once the child side is closed */
    buf[n] = 0;
    close(master);
    int rc = px_wait(p, 10000);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, buf);
    cr_assert(strstr(buf, "\r\033[Kepoch 1/1  step 4/16  "), "%s", buf);
    cr_assert(strstr(buf, "ETA ") && strstr(buf, "input wait "), "%s", buf);
    char *log = px_slurp(log_); /* the other tests' logs: plain lines, no escapes */
    cr_assert(!log || !strchr(log, '\033'));
    free(log);
}

Test(run, a_killed_loader_is_restarted_and_no_sample_is_lost_or_repeated) {
    const char *b8[] = {"-b", "8", NULL}; /* 32 batches an epoch: room to land mid-epoch */
    start_run("3", b8);
    wait_log("step 4/32", 30000);
    pid_t l[4];
    cr_assert_eq(children("--id 1 ", l, 4), 1, "one loader 1");
    cr_assert_eq(kill(l[0], SIGKILL), 0);
    cr_assert_eq(px_wait(sup, 60000), 0);
    sup = 0;
    char *text = px_slurp(log_), *j = run_file("metrics.jsonl");
    cr_assert(strstr(text, "stoker-loader 1 killed by signal 9 (Killed); restarted"), "%s", text);
    cr_assert_eq(count(j, "\"kind\":\"epoch\""), 3, "%s", j);
    cr_assert_eq(count(j, "\"samples\":256.0,\"samples_lost\":0.0,\"samples_repeated\":0.0"), 3,
                 "every epoch: 256 samples, none lost, none repeated:\n%s", j);
    free(text), free(j);
}

Test(run, a_hung_loader_is_killed_and_restarted_and_nothing_is_lost) {
    const char *args[] = {"-b", "8", "--hang-timeout", "2", NULL};
    start_run("3", args);
    wait_log("step 4/32", 30000);
    pid_t l[4];
    cr_assert_eq(children("--id 1 ", l, 4), 1);
    cr_assert_eq(kill(l[0], SIGSTOP), 0); /* alive to waitpid, but silent */
    wait_log("stoker-loader 1 (pid", 10000);
    cr_assert_eq(px_wait(sup, 60000), 0);
    sup = 0;
    char *text = px_slurp(log_), *j = run_file("metrics.jsonl");
    cr_assert(strstr(text, "sent no heartbeat for 2 s: killing it") &&
              strstr(text, "stoker-loader 1 killed by signal 9 (Killed); restarted"), "%s", text);
    cr_assert_eq(count(j, "\"samples\":256.0,\"samples_lost\":0.0,\"samples_repeated\":0.0"), 3,
                 "%s", j);
    free(text), free(j);
}

Test(run, a_hung_evaluator_is_killed_and_restarted_and_the_last_checkpoint_evaluated) {
    const char *args[] = {"-b", "8", "--hang-timeout", "2", NULL};
    start_run("3", args);
    wait_log("step 4/32", 30000);
    pid_t e[2];
    cr_assert_eq(children("stoker-eval", e, 2), 1);
    cr_assert_eq(kill(e[0], SIGSTOP), 0); /* alive to waitpid, but silent */
    wait_log("stoker-eval (pid", 10000);
    int st, t = 0;
    while (px_running(sup, &st) && t < 60000) usleep(20000), t += 20;
    char *text = px_slurp(log_);
    cr_assert(t < 60000, "the run did not end:\n%s", text);
    sup = 0;
    char *j = run_file("metrics.jsonl");
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d:\n%s", st, text);
    cr_assert(strstr(text, "sent no heartbeat for 2 s: killing it") &&
              strstr(text, "stoker-eval killed by signal 9 (Killed); restarted"), "%s", text);
    cr_assert(!strstr(text, "the final checkpoint was not evaluated"), "%s", text);
    cr_assert(count(j, "\"kind\":\"eval\"") >= 1, "no evaluation after the restart:\n%s", j);
    free(text), free(j);
}

/* The (epoch, step) the final checkpoint records, as its metadata says, in the form an
 * eval record of metrics.jsonl names them: "epoch":E,"step":S, */
static void final_position(char *out, size_t cap) {
    char p[800];
    snprintf(p, sizeof p, "%s/checkpoints/last.safetensors", run);
    size_t n;
    uint8_t *raw = fx_read(p, &n);
    uint64_t hlen = 0;
    for (int i = 7; raw && n >= 8 && i >= 0; i--) hlen = hlen << 8 | raw[i]; /* LE u64 */
    cr_assert(raw && hlen <= n - 8, "%s: a safetensors header", p);
    char *f = strndup((const char *)raw + 8, hlen); /* the JSON header, NUL-terminated */
    free(raw);
    char *e = strstr(f, "\"epoch\":\""), *st = strstr(f, "\"steps\":\"");
    cr_assert(e && st, "the final checkpoint %s records its epoch and steps", p);
    int epoch = atoi(e + 9); /* -1: stopped within the first epoch, reported as epoch 0 */
    snprintf(out, cap, "\"epoch\":%d,\"step\":%lld,", epoch < 0 ? 0 : epoch, atoll(st + 9));
    free(f);
}

/* Waits until every pid is gone, asserting it happens within ms of t0. */
static void all_gone_within(const pid_t *pids, int n, const struct timespec *t0, int ms);

/* Stops a long run with sig sent as a terminal sends Ctrl-C (to the whole group) or as
 * kill does (to stoker-run alone); asserts the trainer and the loaders are gone within
 * 5 s, then that the final checkpoint is evaluated and nothing is left. */
static void stop_cleanly(int sig, int group) {
    start_run("1000", NULL);
    wait_log("step 8/16", 30000);
    pid_t kids[8];
    int n = children("stoker-", kids, 8);
    cr_assert_eq(n, 4, "2 loaders, trainer, evaluator");
    pid_t work[4];
    int nw = children("stoker-train", work, 4);
    nw += children("stoker-loader", work + nw, 4 - nw);
    cr_assert_eq(nw, 3, "2 loaders and the trainer");
    char dir[256];
    socket_dir(dir, sizeof dir);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(kill(group ? -sup : sup, sig), 0);
    all_gone_within(work, nw, &t0, 5000);
    cr_assert_eq(px_wait(sup, 30000), 130);
    sup = 0;
    for (int i = 0; i < n; i++) cr_assert(kill(kids[i], 0) != 0, "child %d still there", (int)kids[i]);
    cr_assert(!fx_exists(dir), "socket directory %s left behind", dir);
    char pos[96], want[160];
    final_position(pos, sizeof pos);
    snprintf(want, sizeof want, "{\"kind\":\"eval\",%s", pos);
    char *text = px_slurp(log_), *j = run_file("metrics.jsonl");
    cr_assert(strstr(text, "stopping (final checkpoint") && !strstr(text, "restarted"), "%s", text);
    cr_assert(strstr(j, want), "the final checkpoint (%s) evaluated:\n%s\n%s", pos, j, text);
    cr_assert(!strstr(j, "unevaluated"), "%s", j);
    free(text), free(j);
}

/* 1 once pid has exited (gone, or a zombie nobody reaped yet). */
static int gone(pid_t pid) {
    char p[64], st[512];
    snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f) return 1;
    int n = fgets(st, sizeof st, f) != NULL;
    fclose(f);
    char *paren = n ? strrchr(st, ')') : NULL;
    return !paren || paren[2] == 'Z' || paren[2] == 'X';
}

Test(run, a_supervisor_killed_outright_takes_its_children_with_it) {
    start_run("1000", NULL);
    wait_log("step 4/16", 30000);
    pid_t kids[8];
    int n = children("stoker-", kids, 8);
    cr_assert_eq(n, 4);
    cr_assert_eq(kill(sup, SIGKILL), 0);
    cr_assert_eq(px_wait(sup, 2000), 128 + SIGKILL);
    for (int i = 0; i < n; i++) {
        int t = 0;
        for (; t < 5000 && !gone(kids[i]); t += 10) usleep(10000);
        cr_assert(t < 5000, "child %d outlived its supervisor by 5 s", (int)kids[i]);
    }
    sup = 0;
    char p[800];
    snprintf(p, sizeof p, "%s/checkpoints/last.safetensors", run);
    cr_assert(fx_exists(p), "the trainer, told by SIGTERM, saved a final checkpoint");
    /* nobody was left to remove the socket files: the next stoker-run does. A stoker-run
     * of the test running beside this one (--jobs 2) may be that next one, and sweep it
     * first: then only its absence can be checked. */
    char dir[256];
    socket_dir(dir, sizeof dir);
    int left = fx_exists(dir);
    start_run("1", NULL);
    cr_assert_eq(px_wait(sup, 60000), 0);
    sup = 0;
    char *text = px_slurp(log_);
    cr_assert(!fx_exists(dir), "stale socket directory %s left by the next run:\n%s", dir, text);
    if (left) cr_assert(strstr(text, "its stoker-run") && strstr(text, "is gone"), "%s", text);
    free(text);
}

static void all_gone_within(const pid_t *pids, int n, const struct timespec *t0, int ms) {
    for (int i = 0; i < n; i++) {
        struct timespec t;
        double el;
        do {
            clock_gettime(CLOCK_MONOTONIC, &t);
            el = (double)(t.tv_sec - t0->tv_sec) * 1e3 + (t.tv_nsec - t0->tv_nsec) / 1e6;
            if (gone(pids[i])) break;
            usleep(10000);
        } while (el < ms);
        cr_assert(gone(pids[i]), "child %d still there after %.0f ms", (int)pids[i], el);
    }
}

Test(run, ctrl_c_stops_every_child_within_5_s_and_the_final_checkpoint_is_evaluated) {
    stop_cleanly(SIGINT, 1);
}
Test(run, sigterm_stops_every_child_within_5_s_and_the_final_checkpoint_is_evaluated) {
    stop_cleanly(SIGTERM, 0);
}

/* A second Ctrl-C: no final evaluation, said on screen and in metrics.jsonl; the run
 * still ends within the 5 s of a stop. */
Test(run, a_second_ctrl_c_skips_the_final_evaluation_and_records_it) {
    start_run("1000", NULL);
    wait_log("step 8/16", 30000);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    cr_assert_eq(kill(-sup, SIGINT), 0);
    wait_log("stopping (final checkpoint", 2000);
    cr_assert_eq(kill(-sup, SIGINT), 0);
    cr_assert_eq(px_wait(sup, 5000), 130);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    sup = 0;
    double s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    cr_assert(s < 5, "%.1f s to stop", s);
    char pos[96], want[1024];
    final_position(pos, sizeof pos);
    snprintf(want, sizeof want, "{\"kind\":\"unevaluated\",%s\"checkpoint\":\"%s/checkpoints/"
             "last.safetensors\",\"why\":\"skipped by a second interrupt\",\"wall_s\":", pos, run);
    char *text = px_slurp(log_), *j = run_file("metrics.jsonl");
    cr_assert(strstr(text, ") was not evaluated: skipped by a second interrupt") &&
              !strstr(text, "evaluating the final checkpoint"), "%s", text);
    cr_assert(strstr(j, want), "want %s in:\n%s", want, j);
    free(text), free(j);
}

Test(run, a_killed_trainer_stops_the_run_and_resume_finishes_it) {
    start_run("8", NULL); /* epochs enough that the kill lands before the end */
    char state[800];
    snprintf(state, sizeof state, "%s/checkpoints/last.state.safetensors", run);
    for (int t = 0; t < 30000 && !fx_exists(state); t += 5) usleep(5000);
    pid_t t[2];
    cr_assert_eq(children("stoker-train", t, 2), 1);
    cr_assert_eq(kill(t[0], SIGKILL), 0);
    cr_assert_eq(px_wait(sup, 5000), 1, "a failed run");
    char *text = px_slurp(log_);
    cr_assert(strstr(text, "stoker-train killed by signal 9 (Killed): stopping the run; "
                           "continue it with: stoker-run --resume"), "%s", text);
    free(text);
    const char *argv[] = {STOKER_BIN_DIR "/stoker-run", "--resume", run, NULL};
    sup = px_spawn(argv, log_);
    cr_assert_eq(px_wait(sup, 60000), 0, "the resumed run finishes");
    sup = 0;
    char *j = run_file("metrics.jsonl");
    cr_assert(strstr(j, "\"kind\":\"eval\",\"epoch\":7,\"step\":128,"), "epoch 7 evaluated:\n%s", j);
    cr_assert(strstr(j, "\"kind\":\"epoch\",\"epoch\":7,"), "%s", j);
    free(j);
}

Test(run, a_checkpoint_that_does_not_fit_fails_clearly_and_training_goes_on) {
    start_run("1", NULL);
    cr_assert_eq(px_wait(sup, 60000), 0);
    size_t n0, n1;
    char ck[800], cmd[4096];
    snprintf(ck, sizeof ck, "%s/checkpoints/last.safetensors", run);
    uint8_t *before = fx_read(ck, &n0);
    /* 1,000 KiB: the metrics files fit, a 1.1 MB checkpoint does not */
    snprintf(cmd, sizeof cmd, "ulimit -f 1000; exec '%s/stoker-run' --resume '%s' --data-path '%s' "
             "--epochs 3 -b 16 --train-crop-size 16 --val-resize-size 16 --val-crop-size 16 "
             "--print-freq 4 -j 2 >>'%s' 2>&1", STOKER_BIN_DIR, run, data, log_);
    cr_assert_eq(system(cmd), 0, "the run goes on to its end");
    sup = 0;
    uint8_t *after = fx_read(ck, &n1);
    cr_assert(n0 == n1 && !memcmp(before, after, n0), "the previous checkpoint is intact");
    char *text = px_slurp(log_), *j = run_file("metrics.jsonl");
    cr_assert(strstr(text, "checkpoint not written") && strstr(text, "File too large"), "%s", text);
    cr_assert(strstr(j, "\"kind\":\"epoch\",\"epoch\":2,"), "epochs 1 and 2 trained:\n%s", j);
    char dir[800];
    snprintf(dir, sizeof dir, "%s/checkpoints", run);
    cr_assert_eq(px_count_entries(dir), 3, "last, its state and best: no temporary file left");
    free(before), free(after), free(text), free(j);
}

/* Connects a PUSH to one of the run's sockets (named in config.json). */
static void *push_to(void *ctx, const char *name) {
    char *c = run_file("config.json"), key[64], ep[256];
    snprintf(key, sizeof key, "\"%s\": \"", name);
    char *p = c ? strstr(c, key) : NULL;
    cr_assert(p, "%s in config.json", name);
    p += strlen(key);
    snprintf(ep, sizeof ep, "%.*s", (int)strcspn(p, "\""), p);
    free(c);
    return px_socket(ctx, ZMQ_PUSH, ep, 0);
}

Test(run, malformed_and_foreign_messages_are_dropped_counted_and_logged) {
    start_run("1000", NULL);
    wait_log("step 4/16", 30000);
    void *ctx = zmq_ctx_new(), *rep = push_to(ctx, "reports"), *data_ = push_to(ctx, "data");
    ProtoOut o;
    StkErr err;
    cr_assert_eq(proto_out_init(&o, &err), 0);
    ProtoMsg shut = {.type = PROTO_SHUTDOWN}; /* valid, but no report */
    shut.u.shutdown.reason = proto_str("foreign");
    ProtoMsg odd = {.type = PROTO_METRICS}; /* an evaluator metric out of range */
    odd.u.metrics = (ProtoMetrics){.role = PROTO_ROLE_EVALUATOR, .count = 1};
    odd.u.metrics.items[0] = (ProtoMetric){proto_str("cm.999.0"), 1};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(zmq_send(rep, "\xdd\xff\xff\xff\xf0", 5, 0), 5);
        cr_assert_eq(proto_send(&o, rep, &shut, NULL, 0, &err), PROTO_OK);
        cr_assert_eq(proto_send(&o, rep, &odd, NULL, 0, &err), PROTO_OK);
        cr_assert_eq(zmq_send(data_, "\x93\x01\x01\xc0", 4, 0), 4);
    }
    /* the trainer counts the malformed batches: its next epoch record says so */
    char *j = NULL;
    for (int t = 0; t < 20000 && !(j && strstr(j, "\"rejected\":3.0")); t += 50) {
        free(j);
        usleep(50000);
        j = run_file("metrics.jsonl");
    }
    cr_assert(j && strstr(j, "\"rejected\":3.0"), "%s", j ? j : "");
    free(j);
    proto_out_free(&o);
    zmq_close(rep), zmq_close(data_);
    zmq_ctx_term(ctx);
    cr_assert_eq(kill(sup, SIGTERM), 0);
    cr_assert_eq(px_wait(sup, 5000), 130);
    sup = 0;
    char *text = px_slurp(log_);
    cr_assert(strstr(text, "reports: dropped shutdown") &&
              strstr(text, "reports: dropped an evaluator metric out of range"), "%s", text);
    cr_assert_eq(count(text, "reports: dropped"), 9, "%s", text);
    cr_assert(strstr(text, "9 malformed or foreign messages dropped"), "%s", text);
    free(text);
}

/* A paced evaluator (--eval-duty) leaves checkpoints out, and the run says how many: of
 * four, at 1e-5 the first two are evaluated (the first sets no pace), the third is held
 * and replaced by the fourth, the final one, evaluated at once. Whatever the timing, every
 * checkpoint is either evaluated or counted in the next evaluation's "skipped". */
Test(run, a_paced_evaluator_says_which_checkpoints_it_left_out) {
    const char *extra[] = {"--eval-duty", "0.00001", NULL};
    start_run("4", extra);
    cr_assert_eq(px_wait(sup, 60000), 0);
    sup = 0;
    char *j = run_file("metrics.jsonl"), *text = px_slurp(log_);
    cr_assert(j && text);
    int evals = count(j, "\"kind\":\"eval\"");
    long skipped = 0;
    for (const char *p = strstr(j, "\"skipped\":"); p; p = strstr(p + 1, "\"skipped\":"))
        skipped += strtol(p + 10, NULL, 10);
    cr_assert_eq(evals + skipped, 4, "%d evaluations and %ld left out of 4 checkpoints:\n%s", evals,
                 skipped, j);
    cr_assert_geq(skipped, 1, "the pace held none back:\n%s", j);
    cr_assert(strstr(j, "\"kind\":\"eval\",\"epoch\":3,"), "the final one evaluated:\n%s", j);
    cr_assert(strstr(text, "not evaluated: evaluator busy or paced"), "%s", text);
    free(j), free(text);
}

/* --eval-duty is a share of the time, refused otherwise before anything starts */
Test(run, eval_duty_must_be_a_fraction) {
    const char *args[] = {"--eval-duty", "1.5", NULL};
    char *text = refused(args, 2);
    cr_assert(strstr(text, "--eval-duty: a fraction in (0, 1]"), "%s", text);
    free(text);
}

/* --micro-batch through stoker-run: the loaders make micro-batches, so the sample
 * accounting is exact, and with --deterministic the weights are the bytes stoker-train
 * alone makes with one loader (batch content depends on neither the loader count nor the
 * supervisor). Steps are optimizer steps: 16 an epoch, not 64 passes. */
Test(run, micro_batches_through_stoker_run_match_stoker_train_alone) {
    const char *args[] = {"--micro-batch", "4", "--deterministic", NULL};
    start_run("2", args);
    cr_assert_eq(px_wait(sup, 60000), 0);
    sup = 0;
    char alone[700], a[800], b[800];
    snprintf(alone, sizeof alone, "%s/alone", root);
    const char *argv[] = {STOKER_BIN_DIR "/stoker-train", "--data-path", data, "--epochs", "2",
                          "--output-dir", alone, "-b", "16", "--train-crop-size", "16",
                          "--val-resize-size", "16", "--val-crop-size", "16", "--micro-batch",
                          "4", "--deterministic", "-j", "1", NULL};
    cr_assert_eq(px_wait(px_spawn(argv, log_), 60000), 0);
    snprintf(a, sizeof a, "%s/checkpoints/last.safetensors", run);
    snprintf(b, sizeof b, "%s/checkpoints/last.safetensors", alone);
    size_t na, nb;
    uint8_t *wa = fx_read(a, &na), *wb = fx_read(b, &nb);
    cr_assert(wa && wb && na == nb && !memcmp(wa, wb, na), "%s and %s differ", a, b);
    char *text = px_slurp(log_), *j = run_file("metrics.jsonl"), *cfg = run_file("config.json");
    cr_assert(strstr(text, "batch 16 (4 x 4)"), "%s", text);
    cr_assert(strstr(cfg, "\"micro_batch\": 4") && strstr(cfg, "\"accum_steps\": 4"), "%s", cfg);
    cr_assert_eq(count(j, "\"samples\":256.0,\"samples_lost\":0.0,\"samples_repeated\":0.0"), 2, "%s", j);
    cr_assert_eq(count(j, "{\"kind\":\"train\","), 8, "a step logged every 4 of 16, twice:\n%s", j);
    cr_assert(strstr(j, "\"kind\":\"eval\",\"epoch\":1,\"step\":32,"), "%s", j);
    free(wa), free(wb), free(text), free(j), free(cfg);
}

/* A second Ctrl-C while the final checkpoint is being evaluated stops that evaluation:
 * the evaluator is held (SIGSTOP) so it cannot finish first; stoker-run's SIGTERM waits
 * behind the stop, and its SIGKILL a second later ends it. The val split is photo-sized
 * so the one-shot evaluator lives long enough to be caught. */
Test(run, a_second_ctrl_c_during_the_final_evaluation_stops_it_and_records_it) {
    char cmd[1400];
    snprintf(data, sizeof data, "%s/photos", root);
    snprintf(cmd, sizeof cmd, "'%s/stoker-data' synth '%s' --classes 4 --per-class 16 "
             "--val-per-class 100 >/dev/null 2>&1", STOKER_BIN_DIR, data);
    cr_assert_eq(system(cmd), 0);
    start_run("1000", NULL);
    wait_log("step 4/4", 60000);
    cr_assert_eq(kill(sup, SIGINT), 0);
    wait_log("evaluating the final checkpoint", 10000);
    pid_t e[2];
    int n = 0;
    for (int t = 0; t < 5000 && !(n = children("stoker-eval", e, 2)); t += 2) usleep(2000);
    cr_assert_eq(n, 1, "the one-shot evaluator");
    cr_assert_eq(kill(e[0], SIGSTOP), 0);
    char *j = run_file("metrics.jsonl"), pos[96], want[160];
    final_position(pos, sizeof pos);
    snprintf(want, sizeof want, "{\"kind\":\"eval\",%s", pos);
    cr_assert(!strstr(j, want), "evaluated before it was held; the test needs a slower one:\n%s", j);
    free(j);
    cr_assert_eq(kill(sup, SIGINT), 0);
    cr_assert_eq(px_wait(sup, 5000), 130);
    sup = 0;
    cr_assert(gone(e[0]), "the held evaluator is gone");
    char *text = px_slurp(log_);
    j = run_file("metrics.jsonl");
    cr_assert(strstr(text, "interrupted again: stopping the final evaluation") &&
              strstr(text, ") was not evaluated: stopped by a second interrupt"), "%s", text);
    snprintf(want, sizeof want, "{\"kind\":\"unevaluated\",%s", pos);
    cr_assert(strstr(j, want) && strstr(j, "\"why\":\"stopped by a second interrupt\""), "%s", j);
    free(text), free(j);
}
