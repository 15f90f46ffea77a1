/* test_predict.c: stoker-predict as a user runs it: the same probabilities as
 * torchvision for a torchvision resnet18 exported by scripts/export_torchvision.py (PIL +
 * torchvision's eval transform on the PyTorch side), class names from the checkpoint,
 * bad files named while the others are predicted, and checkpoints without metadata. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "ckpt_meta.h"
#include "cpu_net.h"
#include "test_loader_fixture.h"

static char *root;

static void setup(void) { root = fx_tmpdir(); }
static void teardown(void) { fx_rmtree(root), free(root); }

TestSuite(predict, .init = setup, .fini = teardown, .timeout = 240);

/* Runs script (under /usr/bin/python3) with args formatted from root: every %1$s. */
static int py(const char *script, const char *args) {
    char fmt[1024], cmd[4096];
    snprintf(fmt, sizeof fmt, "/usr/bin/python3 %s %s", script, args);
    snprintf(cmd, sizeof cmd, fmt, root);
    return system(cmd);
}

Test(predict, matches_torchvision_on_the_same_files) {
    const char *fx = STOKER_TEST_DATA "/../fixtures/predict_torch.py";
    const char *ex = STOKER_TEST_DATA "/../../scripts/export_torchvision.py";
    if (system("/usr/bin/python3 -c 'import torchvision' 2>/dev/null"))
        cr_skip_test("no torchvision for /usr/bin/python3 (scripts/setup.sh installs it)");
    cr_assert_eq(py(fx, "make %1$s"), 0);
    cr_assert_eq(py(ex, "resnet18 %1$s/m.safetensors --weights %1$s/weights.pth "
                        "--classes %1$s/classes.txt >/dev/null"), 0);
    char args[2048], out[16384], err[4096];
    snprintf(args, sizeof args, "--checkpoint %s/m.safetensors --json --topk 4 --val-resize-size 64 "
             "--val-crop-size 64 %s/img", root, root);
    cr_assert_eq(fx_run_tool(root, "stoker-predict", args, out, sizeof out, err, sizeof err), 0, "%s", err);
    fx_write(root, "pred.jsonl", out, strlen(out));
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s check %s %s/pred.jsonl 64", fx, root, root);
    FILE *p = popen(cmd, "r");
    char line[256] = "";
    cr_assert(p && fgets(line, sizeof line, p));
    cr_log_info("stoker-predict vs torchvision: %s", line);
    cr_assert_eq(pclose(p), 0, "%s", line);
}

/* A smallcnn checkpoint for 16x16 inputs with class names (or none: meta 0). */
static void write_ckpt(const char *path, int meta) {
    static Model m;
    CpuNet net;
    StkErr err;
    OptimConfig opt = {OPTIM_SGD, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(model_build(&m, "smallcnn", 3, 16, 16, 3, &err), 0, "%s", err.msg);
    cr_assert_eq(cpu_net_init(&net, &m, 1, &opt, &err), 0, "%s", err.msg);
    model_init_params(&m, net.params, 9);
    CkptMeta cm;
    const char *names[3] = {"apple", "pear", "plum"};
    cr_assert_eq(ckpt_meta_init(&cm, "smallcnn", 3, names, 16, 16, 16, &err), 0, "%s", err.msg);
    size_t n;
    const StMeta *e = ckpt_meta_entries(&cm, "0", &n);
    cr_assert_eq(ckpt_save(path, &m, net.params, net.num_batches_tracked, meta ? e : NULL,
                           meta ? n : 0, &err), 0, "%s", err.msg);
    ckpt_meta_free(&cm);
    cpu_net_free(&net);
}

static void images(void) {
    fx_gradient_jpeg(root, "img/a_good.jpg", 20, 16, 0);
    fx_gradient_jpeg(root, "img/sub/b_gray.jpg", 16, 30, 1);
    fx_write(root, "img/c_empty.jpg", "", 0);
    fx_write(root, "img/d_text.jpg", "not a picture\n", 14);
    fx_write(root, "img/notes.txt", "skipped: not a JPEG name\n", 25);
    size_t n;
    char *good = fx_path(root, "img/a_good.jpg");
    uint8_t *b = fx_read(good, &n);
    fx_write(root, "img/e_truncated.jpg", b, n / 2);
    free(b), free(good);
}

Test(predict, bad_files_are_named_and_the_others_predicted) {
    char *ckpt = fx_path(root, "m.safetensors"), args[2048], out[4096], err[4096];
    write_ckpt(ckpt, 1);
    images();
    snprintf(args, sizeof args, "--checkpoint %s --topk 2 %s/img %s/missing.jpg", ckpt, root, root);
    cr_assert_eq(fx_run_tool(root, "stoker-predict", args, out, sizeof out, err, sizeof err), 1,
                 "%s", err);
    cr_assert(strstr(out, "img/a_good.jpg: ") && strstr(out, "img/sub/b_gray.jpg: "), "%s", out);
    cr_assert(strstr(out, "apple") || strstr(out, "pear") || strstr(out, "plum"), "%s", out);
    const char *bad[] = {"c_empty.jpg: empty file", "d_text.jpg: not a JPEG", "e_truncated.jpg",
                         "missing.jpg: No such file"};
    for (int i = 0; i < 4; i++) cr_assert(strstr(err, bad[i]), "%s not in: %s", bad[i], err);
    cr_assert(strstr(err, "4 of 6 files could not be read") && !strstr(err, "notes.txt"), "%s", err);
    free(ckpt);
}

Test(predict, checkpoint_without_metadata_needs_the_model_named) {
    char *ckpt = fx_path(root, "old.safetensors"), args[2048], out[4096], err[4096];
    write_ckpt(ckpt, 0);
    fx_gradient_jpeg(root, "img/a.jpg", 20, 16, 0);
    snprintf(args, sizeof args, "--checkpoint %s %s/img/a.jpg", ckpt, root);
    cr_assert_eq(fx_run_tool(root, "stoker-predict", args, out, sizeof out, err, sizeof err), 2);
    cr_assert(strstr(err, "pass --model"), "%s", err);
    snprintf(args, sizeof args, "--checkpoint %s --model smallcnn --val-resize-size 16 "
             "--val-crop-size 16 --json %s/img/a.jpg", ckpt, root);
    cr_assert_eq(fx_run_tool(root, "stoker-predict", args, out, sizeof out, err, sizeof err), 0, "%s", err);
    cr_assert(strstr(out, "\"class\":\"class "), "%s", out);
    free(ckpt);
}
