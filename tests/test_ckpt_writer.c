/* test_ckpt_writer.c: the checkpoint thread writes the state as it was when saved (the
 * caller's arrays change right after), both files read back through ckpt_load and
 * st_open, metadata included; a failed write is an outcome with a message, not a crash;
 * an outcome must be collected before the next save; freeing waits for a write; a raw
 * snapshot is laid out on the writer's thread (what the trainer's CUDA backend uses). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt.h"
#include "ckpt_writer.h"
#include "test_loader_fixture.h"

static char *root;
static Model m;
static float *params, *state, *back;
static int64_t *nbt, *nbt_back;
static uint64_t nstate;

static void setup(void) {
    root = fx_tmpdir();
    StkErr err;
    cr_assert_eq(model_build(&m, "smallcnn", 3, 8, 8, 4, &err), 0, "%s", err.msg);
    nstate = 2 * m.trainable_floats; /* AdamW's two moments */
    params = malloc(m.total_floats * 4), back = malloc(m.total_floats * 4);
    state = malloc(nstate * 4);
    nbt = calloc((size_t)m.nbn + 1, 8), nbt_back = calloc((size_t)m.nbn + 1, 8);
    model_init_params(&m, params, 7);
    for (uint64_t i = 0; i < nstate; i++) state[i] = (float)i * 0.5f;
    for (int i = 0; i < m.nbn; i++) nbt[i] = 100 + i;
}

static void teardown(void) {
    free(params), free(back), free(state), free(nbt), free(nbt_back);
    fx_rmtree(root);
    free(root);
}

TestSuite(ckpt_writer, .init = setup, .fini = teardown, .timeout = 30);

static CkptSave save_of(const char *path, const char *spath, const StMeta *meta, const StMeta *smeta) {
    return (CkptSave){path, spath, params, nbt, state, meta, smeta, 2, 1, 3, 42, 0, NULL, NULL};
}

Test(ckpt_writer, writes_the_state_as_saved_while_the_caller_goes_on) {
    CkptWriter w;
    StkErr err;
    cr_assert_eq(ckpt_writer_init(&w, &m, nstate, &err), 0, "%s", err.msg);
    char path[600], spath[600], ep[8] = "3";
    snprintf(path, sizeof path, "%s/last.safetensors", root);
    snprintf(spath, sizeof spath, "%s/last.state.safetensors", root);
    StMeta meta[2] = {{"epoch", ep}, {"format", "pt"}}, smeta[1] = {{"steps", "42"}};
    CkptSave s = save_of(path, spath, meta, smeta);
    s.final = 1;
    cr_assert_eq(ckpt_writer_save(&w, &s, &err), 0, "%s", err.msg);
    float first = params[0];
    /* training goes on: the arrays and the metadata buffers change at once */
    for (uint64_t i = 0; i < m.total_floats; i++) params[i] += 1.0f;
    for (uint64_t i = 0; i < nstate; i++) state[i] = -1;
    nbt[0] = -5, ep[0] = '9';
    CkptDone d;
    cr_assert_eq(ckpt_writer_poll(&w, 1, &d), 1, "no outcome after waiting");
    cr_assert_eq(d.rc, 0, "%s", d.msg);
    cr_assert_str_eq(d.path, path);
    cr_assert_eq(d.epoch, 3);
    cr_assert_eq(d.steps, 42);
    cr_assert_eq(d.final, 1, "the notice says it is the run's last");
    cr_assert_eq(ckpt_writer_poll(&w, 0, &d), 0, "one write, one outcome");
    uint32_t at_epoch = 99;
    uint64_t at_steps = 99;
    cr_assert_eq(ckpt_load_at(path, &m, back, nbt_back, &at_epoch, &at_steps, &err), 0, "%s", err.msg);
    cr_assert_eq(at_epoch, 3, "the epoch its metadata records, read as loaded");
    cr_assert_eq(at_steps, 0, "no steps entry in the weights file: 0");
    cr_assert_float_eq(back[0], first, 0, "the weights as saved, not as changed after");
    for (uint64_t i = 0; i < m.total_floats; i++)
        cr_assert_float_eq(back[i] + 1.0f, params[i], 0, "weight %llu", (unsigned long long)i);
    for (int i = 0; i < m.nbn; i++) cr_assert_eq(nbt_back[i], 100 + i, "counter %d", i);
    StFile f;
    cr_assert_eq(st_open(&f, path, &err), 0, "%s", err.msg);
    cr_assert_str_eq(st_meta(&f, "epoch"), "3", "the metadata as saved");
    st_close(&f);
    cr_assert_eq(st_open(&f, spath, &err), 0, "%s", err.msg);
    const StTensor *t = st_find(&f, "optimizer.state");
    cr_assert(t && t->shape[0] == (int64_t)nstate);
    const float *v = t->data;
    for (uint64_t i = 0; i < nstate; i++) cr_assert_float_eq(v[i], (float)i * 0.5f, 0);
    cr_assert_str_eq(st_meta(&f, "steps"), "42");
    st_close(&f);
    ckpt_writer_free(&w);
}

Test(ckpt_writer, a_failed_write_is_an_outcome_and_the_next_save_waits_for_collection) {
    CkptWriter w;
    StkErr err;
    cr_assert_eq(ckpt_writer_init(&w, &m, nstate, &err), 0, "%s", err.msg);
    char path[600], spath[600];
    snprintf(path, sizeof path, "%s/no/such/dir/last.safetensors", root);
    snprintf(spath, sizeof spath, "%s/no/such/dir/last.state.safetensors", root);
    StMeta meta[2] = {{"epoch", "0"}, {"format", "pt"}}, smeta[1] = {{"steps", "1"}};
    CkptSave s = save_of(path, spath, meta, smeta);
    cr_assert_eq(ckpt_writer_save(&w, &s, &err), 0, "%s", err.msg);
    cr_assert_eq(ckpt_writer_save(&w, &s, &err), -1, "a second save over an uncollected outcome");
    cr_assert(strstr(err.msg, "was not collected"), "%s", err.msg);
    CkptDone d;
    cr_assert_eq(ckpt_writer_poll(&w, 1, &d), 1);
    cr_assert_eq(d.rc, -1, "a checkpoint written into a missing directory");
    cr_assert(strstr(d.msg, "checkpoint not written") && strstr(d.msg, "no/such/dir"), "%s", d.msg);
    /* the next save into a good place works */
    snprintf(path, sizeof path, "%s/b.safetensors", root);
    snprintf(spath, sizeof spath, "%s/b.state.safetensors", root);
    s = save_of(path, spath, meta, smeta);
    cr_assert_eq(ckpt_writer_save(&w, &s, &err), 0, "%s", err.msg);
    ckpt_writer_free(&w); /* waits for it */
    cr_assert(fx_exists(path) && fx_exists(spath), "freeing the writer dropped its last write");
}

Test(ckpt_writer, refuses_metadata_beyond_its_limits) {
    CkptWriter w;
    StkErr err;
    cr_assert_eq(ckpt_writer_init(&w, &m, nstate, &err), 0, "%s", err.msg);
    StMeta meta[CKPT_WRITER_META + 1];
    for (int i = 0; i <= CKPT_WRITER_META; i++) meta[i] = (StMeta){"k", "v"};
    char path[600];
    snprintf(path, sizeof path, "%s/m.safetensors", root);
    CkptSave s = save_of(path, path, meta, meta);
    s.meta_count = CKPT_WRITER_META + 1;
    cr_assert_eq(ckpt_writer_save(&w, &s, &err), -1);
    cr_assert(strstr(err.msg, "metadata entries"), "%s", err.msg);
    CkptDone d;
    cr_assert_eq(ckpt_writer_poll(&w, 1, &d), 0, "nothing was taken");
    ckpt_writer_free(&w);
    cr_assert_not(fx_exists(path));
}

/* A stand-in for the CUDA layout step: reverses each array, so a written file shows that
 * the layout ran, on the raw buffers, once. */
static int layout_calls;
static void reverse_layout(void *ctx, const float *rp, const float *rs, float *p, float *st) {
    const Model *mm = ctx;
    for (uint64_t i = 0; i < mm->total_floats; i++) p[i] = rp[mm->total_floats - 1 - i];
    for (uint64_t i = 0; i < nstate; i++) st[i] = rs[nstate - 1 - i];
    layout_calls++;
}

Test(ckpt_writer, a_raw_snapshot_is_laid_out_on_the_thread) {
    CkptWriter w;
    StkErr err;
    cr_assert_eq(ckpt_writer_init(&w, &m, nstate, &err), 0, "%s", err.msg);
    char path[600], spath[600];
    snprintf(path, sizeof path, "%s/raw.safetensors", root);
    snprintf(spath, sizeof spath, "%s/raw.state.safetensors", root);
    StMeta meta[2] = {{"epoch", "1"}, {"format", "pt"}}, smeta[1] = {{"steps", "7"}};
    CkptSave s = save_of(path, spath, meta, smeta);
    s.params = NULL, s.state = NULL;
    cr_assert_eq(ckpt_writer_save(&w, &s, &err), -1, "no data and no raw buffers filled");
    cr_assert(strstr(err.msg, "ckpt_writer_raw"), "%s", err.msg);
    float *rp, *rs;
    cr_assert_eq(ckpt_writer_raw(&w, &rp, &rs, &err), 0, "%s", err.msg);
    for (uint64_t i = 0; i < m.total_floats; i++) rp[i] = params[m.total_floats - 1 - i];
    for (uint64_t i = 0; i < nstate; i++) rs[i] = state[nstate - 1 - i];
    cr_assert_eq(ckpt_writer_save(&w, &s, &err), -1, "raw buffers but no layout");
    s.layout = reverse_layout, s.layout_ctx = &m;
    cr_assert_eq(ckpt_writer_save(&w, &s, &err), 0, "%s", err.msg);
    CkptDone d;
    cr_assert_eq(ckpt_writer_poll(&w, 1, &d), 1);
    cr_assert_eq(d.rc, 0, "%s", d.msg);
    cr_assert_eq(layout_calls, 1);
    cr_assert_eq(ckpt_load(path, &m, back, nbt_back, &err), 0, "%s", err.msg);
    cr_assert_eq(memcmp(back, params, m.total_floats * 4), 0, "the weights as the layout made them");
    StFile f;
    cr_assert_eq(st_open(&f, spath, &err), 0, "%s", err.msg);
    const StTensor *t = st_find(&f, "optimizer.state");
    cr_assert(t && t->shape[0] == (int64_t)nstate);
    cr_assert_eq(memcmp(t->data, state, nstate * 4), 0, "the optimizer state as the layout made it");
    st_close(&f);
    /* the next save with data given does not run the layout again */
    snprintf(path, sizeof path, "%s/plain.safetensors", root);
    snprintf(spath, sizeof spath, "%s/plain.state.safetensors", root);
    s = save_of(path, spath, meta, smeta);
    cr_assert_eq(ckpt_writer_save(&w, &s, &err), 0, "%s", err.msg);
    cr_assert_eq(ckpt_writer_poll(&w, 1, &d), 1);
    cr_assert_eq(d.rc, 0, "%s", d.msg);
    cr_assert_eq(layout_calls, 1, "a save with its data ran the layout");
    ckpt_writer_free(&w);
}
