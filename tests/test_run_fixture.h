/* test_run_fixture.h: what the stoker-run suites share (test_run.c, test_run_net.c): a
 * tiny synthetic dataset per test (CPU backend, smallcnn at 16x16), stoker-run started on
 * it into root/run with its log at root/run.log, and the helpers that read the run.
 * Header-only: each suite is its own program, with its own copy of this state. */
#ifndef TEST_RUN_FIXTURE_H
#define TEST_RUN_FIXTURE_H

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_loader_fixture.h"
#include "test_proc_fixture.h"

static char *root, data[512], run[600], log_[600];
static pid_t sup;
static pid_t strays[4]; /* loaders a test started itself, killed even when it fails */

static inline void setup(void) {
    /* 2 shared cores: one thread per process keeps the trainer and evaluator from
     * oversubscribing them (inherited by every child) */
    setenv("OMP_NUM_THREADS", "1", 1);
    setenv("OPENBLAS_NUM_THREADS", "1", 1);
    root = fx_tmpdir();
    snprintf(data, sizeof data, "%s/syn", root);
    px_synth(data);
    snprintf(run, sizeof run, "%s/run", root);
    snprintf(log_, sizeof log_, "%s/run.log", root);
}

static inline void teardown(void) {
    if (sup > 0) kill(-sup, SIGKILL);
    for (int i = 0; i < 4; i++)
        if (strays[i] > 0) kill(-strays[i], SIGKILL);
    fx_rmtree(root);
    free(root);
}

#define RUN_FLAGS "-b", "16", "--train-crop-size", "16", "--val-resize-size", "16", \
                  "--val-crop-size", "16", "--print-freq", "4", "-j", "2"

/* Starts stoker-run on the dataset into root/run with extra flags (NULL-terminated). */
static inline pid_t start_run(const char *epochs, const char *const *extra) {
    const char *argv[48] = {STOKER_BIN_DIR "/stoker-run", "--data-path", data, "--epochs",
                            epochs, "--output-dir", run, RUN_FLAGS};
    int n = 19;
    for (; extra && *extra; extra++) argv[n++] = *extra;
    argv[n] = NULL;
    return sup = px_spawn(argv, log_);
}

static inline char *run_file(const char *rel) {
    char p[800];
    snprintf(p, sizeof p, "%s/%s", run, rel);
    return px_slurp(p);
}

/* Waits until the log holds text (asserting within ms); returns 1. */
static inline int wait_log(const char *text, int ms) {
    for (int t = 0; t < ms; t += 20) {
        char *s = px_slurp(log_);
        int hit = s && strstr(s, text);
        free(s);
        if (hit) return 1;
        usleep(20000);
    }
    char *s = px_slurp(log_);
    cr_assert_fail("no \"%s\" in the log within %d ms:\n%s", text, ms, s ? s : "");
    return 0;
}

static inline int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

/* Runs stoker-run with extra flags and expects it to refuse at once (status want). */
static inline char *refused(const char *const *extra, int want) {
    start_run("1", extra);
    cr_assert_eq(px_wait(sup, 10000), want);
    sup = 0;
    return px_slurp(log_);
}

#endif
