/* loader_proc.c: the stoker-loader process loop (see loader_proc.h). */
#include "loader_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proto_zmq.h"

#define HEARTBEAT_MS 1000
#define REPORTS_HWM 10000     /* reports queued before we drop and count */
#define FLUSH_LINGER_MS 60000 /* at the end, how long unsent batches may take to go */

typedef struct Slot {
    uint8_t *pixels;  /* batch * crop * crop * 3 bytes, page-aligned */
    atomic_int busy;  /* 1 from fill until ZeroMQ has written the frame */
} Slot;

typedef struct Proc {
    const LoaderProcConfig *cfg;
    void *ctx, *data, *control, *reports;
    ProtoOut out;
    LoaderIndex ix;
    LoaderBatcher batcher;
    Slot *slots;
    int nslots;
    int32_t *labels;
    uint64_t *ids;
    uint64_t reports_dropped;
    uint64_t last_heartbeat_ms;
    int stop; /* shutdown message or signal seen */
} Proc;

static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig) {
    (void)sig;
    int saved = errno;
    ssize_t rc = write(sig_pipe[1], "s", 1);
    (void)rc;
    errno = saved;
}

int loader_proc_signals(StkErr *err) {
    if (pipe(sig_pipe)) return stk_errf(err, "pipe: %s", strerror(errno));
    for (int i = 0; i < 2; i++) fcntl(sig_pipe[i], F_SETFL, O_NONBLOCK);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL))
        return stk_errf(err, "sigaction: %s", strerror(errno));
    return 0;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Sends a report without ever blocking; a full queue drops it and counts. */
static void report(Proc *p, const ProtoMsg *m) {
    if (!p->reports) return;
    StkErr err;
    if (proto_send(&p->out, p->reports, m, NULL, ZMQ_DONTWAIT, &err) != PROTO_OK)
        p->reports_dropped++;
}

static void on_bad_file(void *ctx, uint64_t sample, const char *path, const char *reason) {
    Proc *p = ctx;
    if (!p->reports) {
        fprintf(stderr, "stoker-loader[%u]: bad file %s: %s (skipped from now on)\n",
                p->cfg->id, path, reason);
        return;
    }
    ProtoMsg m = {.type = PROTO_BAD_FILE};
    m.u.bad_file = (ProtoBadFile){.loader = p->cfg->id, .sample_id = sample,
                                  .path = proto_str(path), .reason = proto_str(reason)};
    /* paths and reasons over the protocol's limits are cut, not lost */
    if (m.u.bad_file.path.len > PROTO_MAX_PATH) m.u.bad_file.path.len = PROTO_MAX_PATH;
    if (m.u.bad_file.reason.len > PROTO_MAX_TEXT) m.u.bad_file.reason.len = PROTO_MAX_TEXT;
    report(p, &m);
}

static void heartbeat(Proc *p) {
    uint64_t t = now_ms();
    if (t - p->last_heartbeat_ms < HEARTBEAT_MS) return;
    p->last_heartbeat_ms = t;
    ProtoMsg m = {.type = PROTO_HEARTBEAT};
    m.u.heartbeat = (ProtoHeartbeat){PROTO_ROLE_LOADER, p->cfg->id, (uint32_t)getpid(), t};
    report(p, &m);
}

/* Reads what is waiting on the control socket and the signal pipe; sets p->stop. */
static void drain_control(Proc *p) {
    char c;
    while (read(sig_pipe[0], &c, 1) == 1) p->stop = 1;
    while (p->control) {
        ProtoRecv r;
        StkErr err;
        int rc = proto_recv(p->control, &r, ZMQ_DONTWAIT, &err);
        if (rc == PROTO_AGAIN || rc == PROTO_FAIL) break;
        if (rc == PROTO_BAD) {
            fprintf(stderr, "stoker-loader[%u]: control: dropped: %s\n", p->cfg->id, err.msg);
            continue;
        }
        if (r.msg.type == PROTO_SHUTDOWN) p->stop = 1;
        proto_recv_release(&r);
    }
}

/* Waits up to timeout_ms for the data socket to take a message (want_out) or for
 * control/signals; returns after handling them. */
static void wait_events(Proc *p, int want_out, long timeout_ms) {
    zmq_pollitem_t items[3] = {{p->data, 0, want_out ? ZMQ_POLLOUT : 0, 0},
                               {NULL, sig_pipe[0], ZMQ_POLLIN, 0},
                               {p->control, 0, ZMQ_POLLIN, 0}};
    int n = p->control ? 3 : 2;
    if (zmq_poll(items, n, timeout_ms) < 0 && zmq_errno() != EINTR)
        p->stop = 1; /* the context is going away */
    drain_control(p);
    heartbeat(p);
}

static void release_slot(void *data, void *hint) {
    (void)data;
    atomic_store(&((Slot *)hint)->busy, 0);
}

/* A slot ZeroMQ is done with, or NULL if we were told to stop while waiting. */
static Slot *acquire(Proc *p) {
    for (;;) {
        for (int i = 0; i < p->nslots; i++) {
            int expect = 0;
            if (atomic_compare_exchange_strong(&p->slots[i].busy, &expect, 1)) return &p->slots[i];
        }
        wait_events(p, 0, 1);
        if (p->stop) return NULL;
    }
}

/* Sends m (a batch owning slot, or NULL) without blocking past a stop. 0 sent, 1 stopped. */
static int send_msg(Proc *p, const ProtoMsg *m, Slot *slot, StkErr *err) {
    ProtoPixelsOwner owner = {release_slot, slot};
    for (;;) {
        int rc = proto_send(&p->out, p->data, m, slot ? &owner : NULL, ZMQ_DONTWAIT, err);
        if (rc == PROTO_OK) return 0;
        if (rc == PROTO_FAIL) return -1;
        wait_events(p, 1, HEARTBEAT_MS);
        if (p->stop) {
            if (slot) atomic_store(&slot->busy, 0);
            return 1;
        }
    }
}

static void *open_socket(Proc *p, int type, const char *ep, int hwm, StkErr *err) {
    void *s = zmq_socket(p->ctx, type);
    if (!s) return stk_errf(err, "zmq_socket: %s", zmq_strerror(zmq_errno())), NULL;
    if (proto_zmq_setup(s, hwm, hwm, 0, err) || proto_curve_apply(s, p->cfg->curve, 0, err)) {
        zmq_close(s);
        return NULL;
    }
    if ((type == ZMQ_SUB && zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0)) || zmq_connect(s, ep)) {
        stk_errf(err, "connect %s: %s", ep, zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    return s;
}

static int setup(Proc *p, StkErr *err) {
    const LoaderProcConfig *c = p->cfg;
    if (loader_index_open(&p->ix, c->index_path, err) ||
        loader_batcher_init(&p->batcher, &p->ix, c->root, &c->batch, err) ||
        proto_out_init(&p->out, err))
        return -1;
    size_t bytes = (size_t)c->batch.batch * c->batch.crop * c->batch.crop * 3;
    p->nslots = c->hwm + 2;
    p->slots = calloc((size_t)p->nslots, sizeof *p->slots);
    p->labels = calloc(c->batch.batch, sizeof *p->labels);
    p->ids = calloc(c->batch.batch, sizeof *p->ids);
    if (!p->slots || !p->labels || !p->ids) return stk_errf(err, "out of memory");
    for (int i = 0; i < p->nslots; i++) {
        p->slots[i].pixels = aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
        if (!p->slots[i].pixels)
            return stk_errf(err, "out of memory: %d batch buffers of %zu bytes", p->nslots, bytes);
    }
    p->ctx = zmq_ctx_new();
    if (!p->ctx) return stk_errf(err, "zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
    p->data = open_socket(p, ZMQ_PUSH, c->data, c->hwm, err);
    if (!p->data) return -1;
    if (c->control && !(p->control = open_socket(p, ZMQ_SUB, c->control, 1000, err))) return -1;
    if (c->reports && !(p->reports = open_socket(p, ZMQ_PUSH, c->reports, REPORTS_HWM, err)))
        return -1;
    return 0;
}

/* Resident set size in MB from /proc/self/statm, or -1. */
static double rss_mb(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages, resident;
    int ok = f && fscanf(f, "%ld %ld", &pages, &resident) == 2;
    if (f) fclose(f);
    return ok ? resident * (double)sysconf(_SC_PAGESIZE) / 1e6 : -1;
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* One line per epoch on stderr and a metrics report: what a user watching wants. */
static void epoch_summary(Proc *p, uint32_t epoch, uint64_t samples, double seconds) {
    double rss = rss_mb();
    if (!p->cfg->quiet)
        fprintf(stderr, "stoker-loader[%u]: epoch %u: %llu images in %.2f s (%.0f/s), RSS %.1f MB\n",
                p->cfg->id, epoch, (unsigned long long)samples, seconds, samples / seconds, rss);
    ProtoMsg m = {.type = PROTO_METRICS};
    ProtoMetrics *mm = &m.u.metrics;
    *mm = (ProtoMetrics){.role = PROTO_ROLE_LOADER, .id = p->cfg->id, .epoch = epoch, .count = 4};
    mm->items[0] = (ProtoMetric){proto_str("loader_images"), (double)samples};
    mm->items[1] = (ProtoMetric){proto_str("loader_images_per_s"), samples / seconds};
    mm->items[2] = (ProtoMetric){proto_str("loader_rss_mb"), rss};
    mm->items[3] = (ProtoMetric){proto_str("loader_bad_files"), (double)p->batcher.bad_count};
    report(p, &m);
}

static uint32_t world_of(const LoaderProcConfig *c) { return c->world ? c->world : 1; }

/* Makes and sends this loader's batches of one epoch (its share of its rank's batches,
 * loader_shard.h), then its end-of-epoch. */
static int run_epoch(Proc *p, uint32_t epoch, StkErr *err) {
    const LoaderProcConfig *c = p->cfg;
    uint32_t world = world_of(c);
    uint64_t steps = loader_shard_steps(p->batcher.n, c->batch.batch, c->batch.drop_last, world);
    uint64_t samples = 0, batches = 0;
    double t0 = mono_s();
    LoaderShard shard = {c->rank, world, c->id, c->loaders};
    for (uint64_t k = loader_shard_first(&shard, steps, epoch); k < steps; k += c->loaders) {
        uint64_t b = loader_shard_batch(c->rank, world, k);
        Slot *slot = acquire(p);
        if (!slot) return 1;
        ProtoMsg m = {.type = PROTO_BATCH};
        ProtoBatch *pb = &m.u.batch;
        if (loader_batch_fill(&p->batcher, epoch, b, slot->pixels, p->labels, p->ids, &pb->n,
                              on_bad_file, p, err)) {
            atomic_store(&slot->busy, 0);
            return -1;
        }
        pb->epoch = epoch, pb->loader = c->id, pb->seq = batches, pb->index = b;
        pb->h = pb->w = (uint32_t)c->batch.crop, pb->c = 3;
        pb->pixels = slot->pixels, pb->labels = p->labels, pb->ids = p->ids;
        int rc = send_msg(p, &m, slot, err);
        if (rc) return rc;
        samples += pb->n;
        batches++;
    }
    ProtoMsg end = {.type = PROTO_END_OF_EPOCH};
    end.u.end_of_epoch = (ProtoEndOfEpoch){c->id, epoch, samples, batches};
    int rc = send_msg(p, &end, NULL, err);
    if (rc == 0) epoch_summary(p, epoch, samples, mono_s() - t0);
    return rc;
}

static void teardown(Proc *p, int flush) {
    int linger = flush ? FLUSH_LINGER_MS : 0;
    if (p->data) zmq_setsockopt(p->data, ZMQ_LINGER, &linger, sizeof linger);
    void *socks[3] = {p->data, p->control, p->reports};
    for (int i = 0; i < 3; i++)
        if (socks[i]) zmq_close(socks[i]);
    if (p->ctx) zmq_ctx_term(p->ctx); /* returns once every pixel frame is released */
    for (int i = 0; p->slots && i < p->nslots; i++) free(p->slots[i].pixels);
    free(p->slots);
    free(p->labels);
    free(p->ids);
    proto_out_free(&p->out);
    loader_batcher_free(&p->batcher);
    loader_index_close(&p->ix);
}

int loader_proc_run(const LoaderProcConfig *cfg, StkErr *err) {
    Proc p = {.cfg = cfg};
    LoaderShard shard = {cfg->rank, world_of(cfg), cfg->id, cfg->loaders};
    char why[128];
    if (loader_shard_check(&shard, why, sizeof why)) return stk_errf(err, "%s", why);
    if (shard.world > 1 && !cfg->batch.drop_last)
        return stk_errf(err, "--world %u needs --drop-last: ranks must agree on the steps of "
                        "an epoch, so the tail is dropped (loader_shard.h)", shard.world);
    int rc = setup(&p, err);
    for (uint32_t e = cfg->start_epoch; rc == 0 && e < cfg->start_epoch + cfg->epochs; e++)
        rc = run_epoch(&p, e, err);
    while (rc == 0 && cfg->stay && !p.stop) wait_events(&p, 0, HEARTBEAT_MS);
    if (rc < 0 && p.reports && err) {
        ProtoMsg m = {.type = PROTO_ERROR};
        m.u.error = (ProtoError){PROTO_ROLE_LOADER, cfg->id, proto_str(err->msg)};
        report(&p, &m);
    }
    if (p.reports_dropped)
        fprintf(stderr, "stoker-loader[%u]: %llu reports dropped (reports socket full)\n",
                cfg->id, (unsigned long long)p.reports_dropped);
    teardown(&p, rc == 0);
    return rc < 0 ? -1 : 0;
}
