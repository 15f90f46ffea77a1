/* test_data_cli.c: the stoker-data command line: help, usage errors (exit 2), runtime
 * errors (exit 1, message naming the path) and the index summary. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "test_loader_fixture.h"

static char *root;
static char output[8192]; /* stdout and stderr of the last run */

static void setup(void) { root = fx_tmpdir(); }

static void teardown(void) {
    fx_rmtree(root);
    free(root);
}

TestSuite(data_cli, .init = setup, .fini = teardown, .timeout = 60);

/* Runs stoker-data with args (a shell fragment); returns its exit status, output kept. */
static int run(const char *args) {
    char cmd[4096], *log = fx_path(root, "out.log");
    snprintf(cmd, sizeof cmd, "'%s/stoker-data' %s >'%s' 2>&1", STOKER_BIN_DIR, args, log);
    int st = system(cmd);
    size_t n;
    uint8_t *text = fx_read(log, &n);
    n = n < sizeof output - 1 ? n : sizeof output - 1;
    memcpy(output, text, n);
    output[n] = '\0';
    free(text);
    free(log);
    cr_assert(WIFEXITED(st), "stoker-data %s did not exit", args);
    return WEXITSTATUS(st);
}

Test(data_cli, no_arguments_is_a_usage_error) {
    cr_expect_eq(run(""), 2);
    cr_expect(strstr(output, "usage: stoker-data COMMAND") != NULL, "%s", output);
}

Test(data_cli, every_command_has_help) {
    const char *cmds[] = {"index", "fashion-mnist", "synth", "info", "verify", "shrink"};
    char args[64], want[64];
    for (int i = 0; i < 6; i++) {
        snprintf(args, sizeof args, "%s --help", cmds[i]);
        snprintf(want, sizeof want, "usage: stoker-data %s ", cmds[i]);
        cr_expect_eq(run(args), 0, "%s", args);
        cr_expect(strstr(output, want) != NULL, "%s: %s", args, output);
    }
}

Test(data_cli, unknown_command_and_option_are_usage_errors) {
    cr_expect_eq(run("frobnicate"), 2);
    cr_expect(strstr(output, "unknown command \"frobnicate\"") != NULL, "%s", output);
    cr_expect_eq(run("index . --bogus"), 2);
    cr_expect(strstr(output, "bogus") != NULL, "%s", output);
}

Test(data_cli, bad_numbers_are_usage_errors) {
    cr_expect_eq(run("synth x --classes abc --per-class 2"), 2);
    cr_expect(strstr(output, "--classes: \"abc\" is not an integer") != NULL, "%s", output);
    cr_expect_eq(run("index . --val-fraction 1.5"), 2);
    cr_expect(strstr(output, "--val-fraction") != NULL, "%s", output);
    cr_expect_eq(run("synth x --classes 2 --per-class 2 --size 500by375"), 2);
    cr_expect_eq(run("synth x --per-class 2"), 2);
    cr_expect(strstr(output, "missing --classes") != NULL, "%s", output);
}

Test(data_cli, missing_dataset_fails_naming_the_path) {
    char args[4200];
    snprintf(args, sizeof args, "index '%s/absent'", root);
    cr_expect_eq(run(args), 1);
    cr_expect(strstr(output, "/absent") && strstr(output, "No such file"), "%s", output);
}

Test(data_cli, index_prints_one_summary_and_info_reads_it) {
    fx_touch(root, "ds/train/a/1.jpg");
    fx_touch(root, "ds/train/a/2.JPG");
    fx_touch(root, "ds/train/b/3.jpeg");
    fx_touch(root, "ds/train/b/.4.jpg");
    fx_touch(root, "ds/train/b/5.png");
    fx_touch(root, "ds/val/b/6.jpg");
    char args[4200];
    snprintf(args, sizeof args, "index '%s/ds'", root);
    cr_assert_eq(run(args), 0, "%s", output);
    cr_expect(strstr(output, "2 classes, 3 train + 1 val samples (val from val/)"), "%s", output);
    cr_expect(strstr(output, "1 hidden files") && strstr(output, "1 non-JPEG"), "%s", output);
    snprintf(args, sizeof args, "info '%s/ds/stoker.index' --list", root);
    cr_assert_eq(run(args), 0, "%s", output);
    cr_expect(strstr(output, "val\t0\t1\tval/b/6.jpg") != NULL, "%s", output);
}
