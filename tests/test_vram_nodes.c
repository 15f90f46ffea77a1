/* test_vram_nodes.c: the CUDA backend's node pool (vram_nodes.h) checked without a GPU by
 * replaying a training step as cuda_net.c runs it, over a shadow of the pool that records
 * which buffer last wrote each stretch and how often it was added into: every read must
 * find its own buffer's data at the version it expects, so a buffer placed over a live
 * one, or a gradient alias that lets an add land before a reader has read, fails here. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "model_freeze.h"
#include "vram_nodes.h"

typedef struct Sim {
    const Model *m;
    const VramNodes *p;
    int batch, nodes;
    int *tag, *ver;        /* per VRAM_NODE_ALIGN elements of the pool */
    int *owner, *expect;   /* per node: whose gradient data its buffer holds, at what version */
    uint8_t *set;
    const char *where;
    int inference;         /* forward passes only (vram_nodes_plan_inference) */
    char fail[200];        /* the first violation, "" if none */
} Sim;

#define FAIL_IF(s, cond, ...)                                                     \
    do {                                                                          \
        if ((cond) && !(s)->fail[0]) snprintf((s)->fail, sizeof (s)->fail, __VA_ARGS__); \
        if ((s)->fail[0]) return;                                                 \
    } while (0)

static uint64_t blocks_of(const Sim *s, int k) {
    uint64_t n = (uint64_t)s->batch * shape4_numel(model_node_shape(s->m, k));
    return (n + VRAM_NODE_ALIGN - 1) / VRAM_NODE_ALIGN;
}

/* Tags: activation k is k, gradient data of node k is nodes + k. */
static void put(Sim *s, int64_t off, int k, int tag) {
    FAIL_IF(s, off < 0, "%s: node %d has no buffer", s->where, k);
    for (uint64_t b = (uint64_t)off / VRAM_NODE_ALIGN, e = b + blocks_of(s, k); b < e; b++) s->tag[b] = tag, s->ver[b] = 0;
}

static void expect_tag(Sim *s, int64_t off, int k, int tag, int ver) {
    FAIL_IF(s, off < 0, "%s: node %d has no buffer", s->where, k);
    for (uint64_t b = (uint64_t)off / VRAM_NODE_ALIGN, e = b + blocks_of(s, k); b < e; b++) {
        FAIL_IF(s, s->tag[b] != tag, "%s: node %d's buffer was overwritten (tag %d, want %d)", s->where,
                k, s->tag[b], tag);
        FAIL_IF(s, ver >= 0 && s->ver[b] != ver, "%s: node %d's gradient was added into too early",
                s->where, k);
    }
}

static void read_act(Sim *s, int k) { expect_tag(s, s->p->act[k], k, k, -1); }
/* A backward's read: a recomputed node's second buffer (tag 2 nodes + k), else its own. */
static void read_bwd(Sim *s, int k) {
    if (s->p->react[k] >= 0) expect_tag(s, s->p->react[k], k, 2 * s->nodes + k, -1);
    else read_act(s, k);
}
static void read_grad(Sim *s, int k) { expect_tag(s, s->p->dact[k], k, s->nodes + s->owner[k], s->expect[k]); }

/* A gradient arrives for node k: written the first time, added in place after. */
static void give_grad(Sim *s, int k) {
    if (k <= s->p->first_trainable) return;
    if (!s->set[k]) {
        s->owner[k] = k, s->expect[k] = 0, s->set[k] = 1;
        put(s, s->p->dact[k], k, s->nodes + k);
        return;
    }
    read_grad(s, k);
    for (uint64_t b = (uint64_t)s->p->dact[k] / VRAM_NODE_ALIGN, e = b + blocks_of(s, k); b < e; b++) s->ver[b]++;
    s->expect[k]++;
}

/* The add at li hands its output gradient (node g's) to input x: aliased or copied. */
static void hand(Sim *s, int g, int x) {
    if (x <= s->p->first_trainable) return;
    if (!s->p->alias[x]) {
        read_grad(s, g);
        give_grad(s, x);
        return;
    }
    FAIL_IF(s, s->p->dact[x] != s->p->dact[g], "%s: aliased node %d has its own buffer", s->where, x);
    FAIL_IF(s, s->set[x], "%s: node %d aliased after another gradient arrived", s->where, x);
    s->owner[x] = s->owner[g], s->expect[x] = s->expect[g], s->set[x] = 1;
}

static int reads_x(const Model *m, int li) {
    LayerKind k = m->layer[li].kind;
    if (k == LAYER_CONV || k == LAYER_LINEAR) return !model_layer_frozen(m, li);
    return k == LAYER_BN || k == LAYER_ACT || k == LAYER_SCALE;
}

static void forward(Sim *s) {
    const Model *m = s->m;
    for (int li = 0; li < m->nlayers; li++) {
        if (vram_nodes_skipped(s->p, li)) continue;
        const ModelLayer *l = &m->layer[li];
        int out = li + 1 + (s->p->fuse[li] != VRAM_NO_FUSE);
        read_act(s, l->in);
        if (l->in2 >= 0) read_act(s, l->in2);
        put(s, s->p->act[out], out, out);
        if (s->fail[0]) return;
    }
}

static void backward_add(Sim *s, int li, int out) {
    const ModelLayer *l = &s->m->layer[li];
    read_grad(s, out);
    if (out != li + 1) { /* the fused ReLU's backward, in place, from its output */
        read_act(s, out);
        for (uint64_t b = (uint64_t)s->p->dact[out] / VRAM_NODE_ALIGN, e = b + blocks_of(s, out); b < e; b++) s->ver[b]++;
        s->expect[out]++;
        FAIL_IF(s, s->p->dact[li + 1] != s->p->dact[out], "fused add %d: two gradient buffers", li);
        s->owner[li + 1] = s->owner[out], s->expect[li + 1] = s->expect[out];
    }
    hand(s, li + 1, l->in);
    hand(s, li + 1, l->in2);
}

static void backward(Sim *s) {
    const Model *m = s->m;
    const VramNodes *p = s->p;
    read_act(s, m->nlayers); /* the loss */
    s->owner[m->nlayers] = m->nlayers, s->set[m->nlayers] = 1;
    put(s, p->dact[m->nlayers], m->nlayers, s->nodes + m->nlayers);
    for (int li = m->nlayers - 1; li >= p->first_trainable; li--) {
        if (vram_nodes_skipped(p, li)) continue;
        const ModelLayer *l = &m->layer[li];
        int out = li + 1 + (p->fuse[li] != VRAM_NO_FUSE), k = p->redo[li];
        if (k >= 0) { /* recomputed from its batch norm's input into its second buffer */
            read_act(s, m->layer[k - 2].in);
            put(s, p->react[k], k, 2 * s->nodes + k);
        }
        if (l->kind == LAYER_ADD) {
            backward_add(s, li, out);
            continue;
        }
        read_grad(s, out);
        if (reads_x(m, li)) read_bwd(s, l->in);
        if (l->kind == LAYER_SCALE) read_bwd(s, l->in2);
        give_grad(s, l->in);
        if (l->kind == LAYER_SCALE) give_grad(s, l->in2);
        if (s->fail[0]) return;
    }
    read_act(s, m->nlayers); /* the logits stay readable, and the input for the next step */
    read_act(s, 0);
}

/* Two training steps (the second over the first's leftovers), or with inference two
 * forward passes each followed by reading the logits; the first violation, or "". */
static void replay_mode(const Model *m, int batch, const VramNodes *p, int inference, const char *where,
                        char *fail) {
    Sim s = {.m = m, .p = p, .batch = batch, .nodes = m->nlayers + 1, .where = where,
             .inference = inference};
    uint64_t nb = p->pool / VRAM_NODE_ALIGN + 1;
    s.tag = malloc(nb * sizeof *s.tag), s.ver = calloc(nb, sizeof *s.ver);
    s.owner = calloc((size_t)s.nodes, sizeof *s.owner), s.expect = calloc((size_t)s.nodes, sizeof *s.expect);
    s.set = calloc((size_t)s.nodes, 1);
    cr_assert(s.tag && s.ver && s.owner && s.expect && s.set);
    for (uint64_t b = 0; b < nb; b++) s.tag[b] = -1;
    s.fail[0] = 0;
    for (int step = 0; step < 2 && !s.fail[0]; step++) {
        memset(s.set, 0, (size_t)s.nodes);
        if (step == 0) put(&s, p->act[0], 0, 0); /* set once, stepped on twice */
        forward(&s);
        if (!s.fail[0] && !inference) backward(&s);
        if (!s.fail[0] && inference) read_act(&s, m->nlayers), read_act(&s, 0);
    }
    strcpy(fail, s.fail);
    free(s.tag), free(s.ver), free(s.owner), free(s.expect), free(s.set);
}

static void replay_into(const Model *m, int batch, const VramNodes *p, const char *where, char *fail) {
    replay_mode(m, batch, p, 0, where, fail);
}

static void replay(const Model *m, int batch, const VramNodes *p, const char *where) {
    char fail[200];
    replay_into(m, batch, p, where, fail);
    cr_assert_eq(fail[0], 0, "%s", fail);
}

static void plan_and_replay_mode(const char *arch, int size, int batch, int trainable_blocks,
                                 int recompute) {
    static Model m;
    StkErr err;
    char where[96];
    cr_assert_eq(model_build(&m, arch, 3, size, size, 10, &err), 0, "%s", err.msg);
    if (trainable_blocks >= 0) cr_assert_eq(model_freeze(&m, trainable_blocks, &err), 0, "%s", err.msg);
    VramNodes p;
    cr_assert_eq((recompute ? vram_nodes_plan_recompute : vram_nodes_plan)(&m, batch, &p, &err), 0,
                 "%s", err.msg);
    snprintf(where, sizeof where, "%s b%d frozen-to-%d%s", arch, batch, trainable_blocks,
             recompute ? " recompute" : "");
    replay(&m, batch, &p, where);
    vram_nodes_free(&p);
}

static void plan_and_replay(const char *arch, int size, int batch, int trainable_blocks) {
    plan_and_replay_mode(arch, size, batch, trainable_blocks, 0);
    plan_and_replay_mode(arch, size, batch, trainable_blocks, 1);
}

Test(vram_nodes, every_model_replays_without_clobbering) {
    for (int i = 0; model_archs[i]; i++) {
        int size = strcmp(model_archs[i], "smallcnn") ? 64 : 28;
        plan_and_replay(model_archs[i], size, 2, -1);
        plan_and_replay(model_archs[i], size, 2, 0);
        plan_and_replay(model_archs[i], size, 2, 1);
    }
}

/* resnet50: every batch norm and every add is followed by a ReLU it takes in, and every
 * add input's gradient is the add's own buffer: no copies in the residual backward. */
Test(vram_nodes, resnet50_fuses_and_aliases_every_block) {
    static Model m;
    StkErr err;
    cr_assert_eq(model_build(&m, "resnet50", 3, 224, 224, 1000, &err), 0, "%s", err.msg);
    VramNodes p;
    cr_assert_eq(vram_nodes_plan(&m, 1, &p, &err), 0, "%s", err.msg);
    int bn_relu = 0, add_relu = 0, adds = 0, aliased = 0;
    for (int li = 0; li < m.nlayers; li++) {
        const ModelLayer *l = &m.layer[li];
        if (l->kind == LAYER_ADD) adds++, aliased += p.alias[l->in] + p.alias[l->in2];
        if (p.fuse[li] == VRAM_NO_FUSE) continue;
        cr_expect_eq(p.fuse[li], CPU_ACT_RELU);
        bn_relu += l->kind == LAYER_BN, add_relu += l->kind == LAYER_ADD;
    }
    cr_expect_eq(adds, 16);
    cr_expect_eq(add_relu, 16, "every bottleneck's add + ReLU");
    cr_expect_eq(bn_relu, 1 + 2 * 16, "the stem's and two per bottleneck");
    cr_expect_eq(aliased, 32, "both inputs of every add");
    replay(&m, 1, &p, "resnet50 b1 224");
    vram_nodes_free(&p);
}

/* What the pool saves: resnet18 at 224 needs under 30% of what storing every node's
 * output and gradient took (8.4 M floats per sample each), and the working set of
 * gradients on top of the kept activations is a few nodes. */
Test(vram_nodes, pool_is_kept_activations_plus_a_few_nodes) {
    static Model m;
    StkErr err;
    cr_assert_eq(model_build(&m, "resnet18", 3, 224, 224, 1000, &err), 0, "%s", err.msg);
    VramNodes p;
    cr_assert_eq(vram_nodes_plan(&m, 4, &p, &err), 0, "%s", err.msg);
    uint64_t every = 0, biggest = 0;
    for (int k = 0; k <= m.nlayers; k++) {
        uint64_t n = 4 * shape4_numel(model_node_shape(&m, k));
        every += n, biggest = n > biggest ? n : biggest;
    }
    cr_expect_lt(p.pool, 2 * every * 3 / 10, "pool %llu vs every node's output and gradient %llu",
                 (unsigned long long)p.pool, (unsigned long long)(2 * every));
    cr_expect_leq(p.kept, p.pool);
    cr_expect_leq(p.pool, p.kept + 3 * biggest, "pool %llu, kept %llu, biggest node %llu",
                  (unsigned long long)p.pool, (unsigned long long)p.kept, (unsigned long long)biggest);
    vram_nodes_free(&p);
}

/* Recompute: every trained batch norm + activation whose output a backward reads (all
 * but the stem's, which only the max-pool reads) is recomputed, once, before its last
 * reader's backward; those outputs are no longer kept, which takes resnet18's kept set
 * (224 px) down by 17% (8.7 -> 7.2 M floats for 2 samples: its blocks' outputs, after the
 * add, stay) and mobilenet_v3_large's and efficientnet_b0's (their expanded and
 * depthwise tensors) by 38-40%; the plans replay (every_model_replays_without_clobbering
 * runs them all). */
Test(vram_nodes, recompute_drops_batch_norm_outputs_from_the_kept_set) {
    static Model m;
    StkErr err;
    const char *archs[] = {"resnet18", "mobilenet_v3_large", "efficientnet_b0"};
    const double cut[] = {0.15, 0.33, 0.33};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(model_build(&m, archs[i], 3, 224, 224, 1000, &err), 0, "%s", err.msg);
        VramNodes p, r;
        cr_assert_eq(vram_nodes_plan(&m, 2, &p, &err), 0, "%s", err.msg);
        cr_assert_eq(vram_nodes_plan_recompute(&m, 2, &r, &err), 0, "%s", err.msg);
        int fused = 0, redone = 0;
        for (int li = 0; li < m.nlayers; li++) {
            int read = 0; /* by a backward */
            for (int q = li + 2; q < m.nlayers && m.layer[li].kind == LAYER_BN && r.fuse[li] != VRAM_NO_FUSE; q++)
                read |= (m.layer[q].in == li + 2 || m.layer[q].in2 == li + 2) && reads_x(&m, q);
            fused += read;
            if (r.redo[li] < 0) continue;
            redone++;
            int k = r.redo[li];
            cr_expect(m.layer[k - 2].kind == LAYER_BN && r.fuse[k - 2] != VRAM_NO_FUSE,
                      "%s: node %d is not a fused batch norm's output", archs[i], k);
            cr_expect_geq(r.react[k], 0, "%s: node %d has no second buffer", archs[i], k);
            cr_expect(m.layer[li].in == k || m.layer[li].in2 == k, "%s: layer %d does not read %d",
                      archs[i], li, k);
        }
        cr_expect_eq(redone, fused, "%s: %d of the %d fused batch norms a backward reads recomputed",
                     archs[i], redone, fused);
        cr_expect_lt((double)r.kept, (1 - cut[i]) * (double)p.kept, "%s: kept %llu with, %llu without",
                     archs[i], (unsigned long long)r.kept, (unsigned long long)p.kept);
        cr_expect_lt(r.pool, p.pool, "%s: pool", archs[i]);
        cr_log_info("%s: kept %.1f -> %.1f M floats, pool %.1f -> %.1f M per 2 samples", archs[i],
                    p.kept / 1e6, r.kept / 1e6, p.pool / 1e6, r.pool / 1e6);
        vram_nodes_free(&p), vram_nodes_free(&r);
    }
}

/* The replay catches a recomputed node read before its recompute: the second buffer
 * moved onto another live one. */
Test(vram_nodes, replay_catches_a_clobbered_recompute) {
    static Model m;
    StkErr err;
    char fail[200];
    cr_assert_eq(model_build(&m, "resnet18", 3, 64, 64, 10, &err), 0, "%s", err.msg);
    VramNodes p;
    cr_assert_eq(vram_nodes_plan_recompute(&m, 2, &p, &err), 0, "%s", err.msg);
    int li = 0;
    while (li < m.nlayers && p.redo[li] < 0) li++;
    cr_assert_lt(li, m.nlayers);
    int k = p.redo[li];
    int64_t own = p.react[k];
    p.react[k] = p.act[m.layer[k - 2].in]; /* onto the batch norm's input */
    replay_into(&m, 2, &p, "moved", fail);
    cr_expect(strstr(fail, "overwritten"), "not caught: '%s'", fail);
    p.react[k] = own;
    vram_nodes_free(&p);
}

/* The replay can fail: a plan with one activation moved onto another live one is caught. */
Test(vram_nodes, replay_catches_a_clobbering_plan) {
    static Model m;
    StkErr err;
    char fail[200];
    cr_assert_eq(model_build(&m, "resnet18", 3, 64, 64, 10, &err), 0, "%s", err.msg);
    VramNodes p;
    cr_assert_eq(vram_nodes_plan(&m, 2, &p, &err), 0, "%s", err.msg);
    replay_into(&m, 2, &p, "intact", fail);
    cr_assert_eq(fail[0], 0, "%s", fail);
    int conv = -1;
    for (int li = 5; li < m.nlayers && conv < 0; li++)
        if (m.layer[li].kind == LAYER_CONV && m.layer[li + 1].kind == LAYER_BN && p.fuse[li + 1] != VRAM_NO_FUSE)
            conv = li;
    cr_assert_geq(conv, 0);
    /* the BN's (fused ReLU's) output placed over its input, which its backward reads */
    int64_t saved = p.act[conv + 1];
    p.act[conv + 1] = p.act[conv + 3];
    replay_into(&m, 2, &p, "moved", fail);
    cr_expect(strstr(fail, "overwritten"), "not caught: '%s'", fail);
    p.act[conv + 1] = saved;
    vram_nodes_free(&p);
}

/* A graph where aliasing add input b would be wrong: b's other reader (conv at layer 3)
 * runs its backward before a's batch norm (layer 2) has read the shared buffer. The
 * planner leaves b unaliased; forcing the alias is caught as an early add. */
Test(vram_nodes, replay_catches_an_unsafe_alias) {
    static Model m;
    StkErr err;
    char fail[200];
    memset(&m, 0, sizeof m);
    strcpy(m.arch, "test");
    m.input = (Shape4){1, 4, 8, 8}, m.num_classes = 3, m.bn_eps = 1e-5, m.bn_momentum = 0.1;
    int b = model_add_conv(&m, "c0", 0, 4, 3, 1, 1, 1, 0);     /* layer 0 -> node 1 */
    int t = model_add_conv(&m, "c1", b, 4, 3, 1, 1, 1, 0);     /* layer 1 -> node 2 */
    int a = model_add_bn(&m, "bn", t);                         /* layer 2 -> node 3 */
    int o = model_add_conv(&m, "c3", b, 4, 3, 1, 1, 1, 0);     /* layer 3 -> node 4 */
    int s1 = model_add_add(&m, a, b);                          /* layer 4 -> node 5 */
    int s2 = model_add_add(&m, s1, o);                         /* layer 5 -> node 6 */
    int f = model_add_linear(&m, "fc", model_add_avgpool(&m, s2), 3);
    cr_assert(f > 0 && !m.failed, "%s", m.err.msg);
    model_layout(&m);
    VramNodes p;
    cr_assert_eq(vram_nodes_plan(&m, 2, &p, &err), 0, "%s", err.msg);
    cr_expect(p.alias[a] && !p.alias[b], "a aliased (%d), b not (%d)", p.alias[a], p.alias[b]);
    replay_into(&m, 2, &p, "as planned", fail);
    cr_assert_eq(fail[0], 0, "%s", fail);
    int64_t own = p.dact[b];
    p.alias[b] = 1, p.dact[b] = p.dact[s1];
    replay_into(&m, 2, &p, "forced alias", fail);
    cr_expect(strstr(fail, "added into too early"), "not caught: '%s'", fail);
    p.alias[b] = 0, p.dact[b] = own;
    vram_nodes_free(&p);
}

/* An evaluator's network (forward passes only): every model's plan replays, no node has a
 * gradient buffer, and the pool is what is alive at once in a forward pass: for resnet18
 * at 224 at most three of its largest nodes beside the input and the logits (the stem's
 * convolution and batch-norm outputs are alive together), and under half of the training
 * step's pool. */
Test(vram_nodes, inference_plan_replays_and_holds_only_live_outputs) {
    static Model m;
    StkErr err;
    char where[96], fail[200];
    for (int i = 0; model_archs[i]; i++) {
        int size = strcmp(model_archs[i], "smallcnn") ? 64 : 28;
        cr_assert_eq(model_build(&m, model_archs[i], 3, size, size, 10, &err), 0, "%s", err.msg);
        VramNodes p, t;
        cr_assert_eq(vram_nodes_plan_inference(&m, 3, &p, &err), 0, "%s", err.msg);
        cr_assert_eq(vram_nodes_plan(&m, 3, &t, &err), 0, "%s", err.msg);
        snprintf(where, sizeof where, "%s b3 inference", model_archs[i]);
        replay_mode(&m, 3, &p, 1, where, fail);
        cr_expect_eq(fail[0], 0, "%s", fail);
        for (int k = 0; k <= m.nlayers; k++) cr_expect_eq(p.dact[k], -1, "%s: node %d has a gradient", where, k);
        cr_expect_eq(p.first_trainable, m.nlayers);
        cr_expect_lt(p.pool, t.pool, "%s: inference pool %llu, training %llu", where,
                     (unsigned long long)p.pool, (unsigned long long)t.pool);
        vram_nodes_free(&p), vram_nodes_free(&t);
    }
    cr_assert_eq(model_build(&m, "resnet18", 3, 224, 224, 1000, &err), 0, "%s", err.msg);
    VramNodes p, t;
    cr_assert_eq(vram_nodes_plan_inference(&m, 4, &p, &err), 0, "%s", err.msg);
    cr_assert_eq(vram_nodes_plan(&m, 4, &t, &err), 0, "%s", err.msg);
    uint64_t biggest = 0;
    for (int k = 0; k <= m.nlayers; k++) {
        uint64_t n = 4 * shape4_numel(model_node_shape(&m, k));
        biggest = n > biggest ? n : biggest;
    }
    uint64_t ends = 4 * (shape4_numel(model_node_shape(&m, 0)) + shape4_numel(model_node_shape(&m, m.nlayers)));
    cr_expect_leq(p.pool, 3 * biggest + ends + 4 * VRAM_NODE_ALIGN, "pool %llu, biggest node %llu",
                  (unsigned long long)p.pool, (unsigned long long)biggest);
    cr_expect_lt(2 * p.pool, t.pool, "inference %llu vs training %llu", (unsigned long long)p.pool,
                 (unsigned long long)t.pool);
    vram_nodes_free(&p), vram_nodes_free(&t);
}

/* Scratch for second gradient writers (accum): a squeeze-and-excitation input x has two
 * readers, the pool and the scale; the scale's backward writes x's gradient and the pool's
 * adds into it in place (cuda_se.h), so x needs no scratch. A depthwise convolution as
 * the second reader does (its backward writes, it cannot add). */
Test(vram_nodes, global_pool_adds_in_place_without_scratch) {
    for (int dw_second = 0; dw_second < 2; dw_second++) {
        static Model m;
        StkErr err;
        memset(&m, 0, sizeof m);
        strcpy(m.arch, "test");
        m.input = (Shape4){1, 8, 8, 8}, m.num_classes = 3, m.bn_eps = 1e-5, m.bn_momentum = 0.1;
        int c0 = model_add_conv(&m, "c0", 0, 8, 3, 1, 1, 1, 0);
        int x = model_add_conv(&m, "c1", c0, 8, 3, 1, 1, 1, 0); /* 8x8x8: the largest node past c0 */
        int s = model_add_act(&m, model_add_conv(&m, "fc", model_add_avgpool(&m, x), 8, 1, 1, 0, 1, 1),
                              CPU_ACT_SIGMOID);
        int y = model_add_scale(&m, x, s);
        if (dw_second) y = model_add_add(&m, y, model_add_conv(&m, "dw", x, 8, 3, 1, 1, 8, 0));
        int f = model_add_linear(&m, "head", model_add_avgpool(&m, y), 3);
        cr_assert(f > 0 && !m.failed, "%s", m.err.msg);
        model_layout(&m);
        VramNodes p;
        cr_assert_eq(vram_nodes_plan(&m, 2, &p, &err), 0, "%s", err.msg);
        uint64_t xs = 2ull * shape4_numel(model_node_shape(&m, x));
        if (dw_second) cr_expect_geq(p.accum, xs, "a depthwise second writer needs scratch: %llu < %llu",
                                     (unsigned long long)p.accum, (unsigned long long)xs);
        else cr_expect_lt(p.accum, xs, "the pool adds in place, yet x got scratch (%llu)",
                          (unsigned long long)p.accum);
        char fail[200];
        replay_into(&m, 2, &p, "se", fail);
        cr_assert_eq(fail[0], 0, "%s", fail);
        vram_nodes_free(&p);
    }
}
