/* train_input.c: receiving thread, duplicate filter, window and double buffer (see
 * train_input.h).
 *
 * The window is an array of ProtoRecv entries, each allocated once and never moved
 * (decoded views may point inside a ZeroMQ frame struct, so entries are filled and read
 * in place). An entry is FREE, FILLING (the receiver is receiving into it), HELD (a
 * valid batch waiting) or TAKEN (the training thread is copying it into a slot).
 *
 * Flow control: the receiver stops receiving when every entry is in use, so loaders
 * block on their high-water marks. If the training thread then waits for a batch that
 * is not in the full window (a slow loader holds the next index, or only later epochs
 * are in), it marks the input starved and the receiver takes one more entry: ZeroMQ
 * serves the loaders' pipes in turn, so the batch arrives within a bounded number of
 * extra entries. WINDOW_MAX_GROWTH bounds that growth and turns a runaway into an error. */
#include "train_input.h"

#include "loader_shard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POLL_MS 100           /* how often the receiver looks at its stop flag */
#define WINDOW_MAX_GROWTH 16  /* the window may grow to this times its configured size */

enum { FREE = 0, FILLING, HELD, TAKEN };

struct TrainInput {
    TrainInputConfig cfg;
    void *sock;
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t changed;    /* an entry changed state, or the receiver failed */
    int stop, failed, starved;
    StkErr fail;               /* why the receiver stopped */
    ProtoRecv **entry;         /* [cap], each malloc'd once */
    uint8_t *state;            /* [cap] */
    uint32_t cap;              /* entries allocated */
    uint8_t *seen;             /* [epochs][ceil(batches/8)]: received or handed out */
    uint64_t *handed;          /* [epochs]: batches handed out */
    uint64_t *next_index;      /* [epochs]: deterministic mode's next index */
    uint8_t *slot[TRAIN_INPUT_SLOTS];
    size_t labels_off, ids_off, slot_bytes;
    int next_slot;
    TrainInputStats stats;
};

static size_t seen_row(const TrainInput *in) { return (size_t)(in->cfg.batches_per_epoch + 7) / 8; }

static int test_and_set_seen(TrainInput *in, uint32_t e, uint64_t i) {
    uint8_t *row = in->seen + (size_t)(e - in->cfg.start_epoch) * seen_row(in);
    int was = row[i / 8] >> (i % 8) & 1;
    row[i / 8] |= (uint8_t)(1u << (i % 8));
    return was;
}

static uint32_t world_of(const TrainInputConfig *c) { return c->world ? c->world : 1; }

/* This rank's k of an epoch batch index, or UINT64_MAX when it is not this rank's. */
static uint64_t local_index(const TrainInputConfig *c, uint64_t index) {
    uint64_t k;
    return loader_shard_local(c->rank, world_of(c), c->batches_per_epoch, index, &k) ? k : UINT64_MAX;
}

/* Checks a received batch against the run; the message says what is wrong. */
static int check_batch(const TrainInput *in, const ProtoBatch *b, StkErr *err) {
    const TrainInputConfig *c = &in->cfg;
    if (world_of(c) > 1 && local_index(c, b->index) == UINT64_MAX)
        return stk_errf(err, "batch %llu of epoch %u from loader %u is not rank %u's (of %u, "
                        "%llu batches each)", (unsigned long long)b->index, b->epoch, b->loader,
                        c->rank, world_of(c), (unsigned long long)c->batches_per_epoch);
    if (b->h != c->height || b->w != c->width || b->c != c->channels)
        return stk_errf(err, "batch %llu of epoch %u from loader %u is %ux%ux%u, this run takes %ux%ux%u",
                        (unsigned long long)b->index, b->epoch, b->loader, b->h, b->w, b->c,
                        c->height, c->width, c->channels);
    if (b->epoch >= c->start_epoch + c->epochs)
        return stk_errf(err, "batch of epoch %u from loader %u: this run ends with epoch %u",
                        b->epoch, b->loader, c->start_epoch + c->epochs - 1);
    uint64_t k = local_index(c, b->index);
    if (k >= c->batches_per_epoch || b->n > c->batch || (b->n < c->batch && k + 1 != c->batches_per_epoch))
        return stk_errf(err, "batch %llu of %u samples from loader %u: epochs here have %llu "
                        "batches of %u", (unsigned long long)b->index, b->n, b->loader,
                        (unsigned long long)c->batches_per_epoch, c->batch);
    return 0;
}

/* Decides about a message just received into entry k: keep it HELD or free it. Under mu. */
static void file_entry(TrainInput *in, uint32_t k) {
    ProtoRecv *r = in->entry[k];
    const ProtoBatch *b = &r->msg.u.batch;
    StkErr why;
    int keep = 0;
    if (r->msg.type == PROTO_BATCH) in->stats.received++;
    if (r->msg.type != PROTO_BATCH) {
        /* end-of-epoch and the like: completeness comes from the indices */
    } else if (b->epoch < in->cfg.start_epoch) {
        in->stats.stale++;
    } else if (check_batch(in, b, &why)) {
        in->stats.rejected++;
        memcpy(in->stats.last_reject, why.msg, sizeof why.msg);
    } else if (test_and_set_seen(in, b->epoch, local_index(&in->cfg, b->index))) {
        in->stats.duplicates++;
    } else {
        keep = 1;
    }
    if (!keep) proto_recv_release(r);
    in->state[k] = keep ? HELD : FREE;
    if (keep) {
        in->starved = 0;
        pthread_cond_broadcast(&in->changed);
    }
}

/* A FREE entry (growing the window when the training thread is starved), or -1 while
 * there is none to have. Under mu. */
static int free_entry(TrainInput *in) {
    for (uint32_t k = 0; k < in->cap; k++)
        if (in->state[k] == FREE) return (int)k;
    if (!in->starved || in->cap >= in->cfg.window * WINDOW_MAX_GROWTH) return -1;
    ProtoRecv **e = realloc(in->entry, (in->cap + 1) * sizeof *e);
    if (!e) return -1;
    in->entry = e;
    uint8_t *s = realloc(in->state, in->cap + 1);
    if (!s) return -1;
    in->state = s;
    if (!(in->entry[in->cap] = calloc(1, sizeof(ProtoRecv)))) return -1;
    in->state[in->cap] = FREE;
    return (int)in->cap++;
}

static void receiver_failed(TrainInput *in, const StkErr *err) {
    pthread_mutex_lock(&in->mu);
    in->failed = 1;
    in->fail = *err;
    pthread_cond_broadcast(&in->changed);
    pthread_mutex_unlock(&in->mu);
}

static void *receiver(void *arg) {
    TrainInput *in = arg;
    for (;;) {
        pthread_mutex_lock(&in->mu);
        int k;
        while (!in->stop && (k = free_entry(in)) < 0) /* full: loaders wait on their HWM */
            pthread_cond_wait(&in->changed, &in->mu);
        if (in->stop) {
            pthread_mutex_unlock(&in->mu);
            return NULL;
        }
        in->state[k] = FILLING;
        ProtoRecv *r = in->entry[k];
        pthread_mutex_unlock(&in->mu);
        int rc = PROTO_AGAIN;
        StkErr err;
        zmq_pollitem_t item = {in->sock, 0, ZMQ_POLLIN, 0};
        int ready = zmq_poll(&item, 1, POLL_MS);
        if (ready < 0 && zmq_errno() != EINTR) {
            stk_errf(&err, "zmq_poll: %s", zmq_strerror(zmq_errno()));
            rc = PROTO_FAIL;
        } else if (ready > 0) {
            rc = proto_recv(in->sock, r, ZMQ_DONTWAIT, &err);
        }
        pthread_mutex_lock(&in->mu);
        if (rc == PROTO_OK) file_entry(in, (uint32_t)k);
        else in->state[k] = FREE;
        if (rc == PROTO_BAD) {
            in->stats.rejected++;
            memcpy(in->stats.last_reject, err.msg, sizeof err.msg);
        }
        pthread_mutex_unlock(&in->mu);
        if (rc == PROTO_FAIL) {
            receiver_failed(in, &err);
            return NULL;
        }
    }
}

/* The HELD entry to hand out next for epoch e, or -1. Under mu. */
static int pick(const TrainInput *in, uint32_t e) {
    for (uint32_t k = 0; k < in->cap; k++) {
        if (in->state[k] != HELD) continue;
        const ProtoBatch *b = &in->entry[k]->msg.u.batch;
        if (b->epoch != e) continue;
        if (!in->cfg.deterministic ||
            local_index(&in->cfg, b->index) == in->next_index[e - in->cfg.start_epoch])
            return (int)k;
    }
    return -1;
}

static int window_full(const TrainInput *in) {
    for (uint32_t k = 0; k < in->cap; k++)
        if (in->state[k] == FREE) return 0;
    return 1;
}

/* Copies a received batch into the next slot and fills out. */
static void to_slot(TrainInput *in, const ProtoBatch *b, TrainBatch *out) {
    uint8_t *s = in->slot[in->next_slot];
    in->next_slot = (in->next_slot + 1) % TRAIN_INPUT_SLOTS;
    out->pixels = s;
    out->labels = (int32_t *)(s + in->labels_off);
    out->ids = (uint64_t *)(s + in->ids_off);
    memcpy(out->pixels, b->pixels, proto_batch_pixel_bytes(b));
    memcpy(out->labels, b->labels, 4ull * b->n);
    memcpy(out->ids, b->ids, 8ull * b->n);
    out->epoch = b->epoch;
    out->index = b->index;
    out->n = b->n;
}

static void deadline_after(struct timespec *ts, int ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts->tv_nsec >= 1000000000) ts->tv_sec++, ts->tv_nsec -= 1000000000;
}

/* Waits under mu until entry *k of epoch e can be handed out, the epoch is done (0,
 * *k = -1), the time is up (TRAIN_INPUT_TIMEOUT + err) or the receiver failed (-1 + err). */
static int wait_for(TrainInput *in, uint32_t epoch, int timeout_ms, int *k, StkErr *err) {
    const TrainInputConfig *c = &in->cfg;
    uint32_t e = epoch - c->start_epoch;
    struct timespec deadline;
    deadline_after(&deadline, timeout_ms < 0 ? 0 : timeout_ms);
    while (in->handed[e] < c->batches_per_epoch && (*k = pick(in, epoch)) < 0) {
        if (in->failed) return stk_errf(err, "data socket: %s", in->fail.msg);
        if (window_full(in) && !in->starved) {
            in->starved = 1; /* let the receiver take one more entry */
            pthread_cond_broadcast(&in->changed);
        }
        int rc = timeout_ms < 0 ? pthread_cond_wait(&in->changed, &in->mu)
                                : pthread_cond_timedwait(&in->changed, &in->mu, &deadline);
        if (rc == ETIMEDOUT) {
            stk_errf(err, "no batch of epoch %u for %d ms: %llu of %llu still missing%s",
                     epoch, timeout_ms, (unsigned long long)(c->batches_per_epoch - in->handed[e]),
                     (unsigned long long)c->batches_per_epoch,
                     c->deterministic ? " (deterministic: waiting for the next index)" : "");
            return TRAIN_INPUT_TIMEOUT;
        }
    }
    if (in->handed[e] == c->batches_per_epoch) *k = -1;
    return 0;
}

int train_input_next(TrainInput *in, uint32_t epoch, int timeout_ms, TrainBatch *out,
                     int *done, StkErr *err) {
    const TrainInputConfig *c = &in->cfg;
    if (epoch < c->start_epoch || epoch >= c->start_epoch + c->epochs)
        return stk_errf(err, "train_input_next: epoch %u outside this run", epoch);
    int k;
    *done = 0;
    pthread_mutex_lock(&in->mu);
    int rc = wait_for(in, epoch, timeout_ms, &k, err);
    if (rc) {
        pthread_mutex_unlock(&in->mu);
        return rc;
    }
    if (k < 0) {
        pthread_mutex_unlock(&in->mu);
        *done = 1;
        return 0;
    }
    in->state[k] = TAKEN;
    in->handed[epoch - c->start_epoch]++;
    in->next_index[epoch - c->start_epoch]++;
    ProtoRecv *r = in->entry[k];
    pthread_mutex_unlock(&in->mu);
    to_slot(in, &r->msg.u.batch, out); /* the one copy, outside the lock */
    proto_recv_release(r);
    pthread_mutex_lock(&in->mu);
    in->state[k] = FREE;
    pthread_cond_broadcast(&in->changed); /* the receiver may be waiting for room */
    pthread_mutex_unlock(&in->mu);
    return 0;
}

void train_input_stats(TrainInput *in, TrainInputStats *out) {
    pthread_mutex_lock(&in->mu);
    *out = in->stats;
    pthread_mutex_unlock(&in->mu);
}

static void *default_alloc(void *ctx, size_t n) {
    (void)ctx;
    return aligned_alloc(64, (n + 63) / 64 * 64);
}

static void default_free(void *ctx, void *p) {
    (void)ctx;
    free(p);
}

static int check_config(const TrainInputConfig *c, StkErr *err) {
    if (!c->endpoint || !c->batches_per_epoch || !c->batch || !c->height || !c->width ||
        !c->channels || !c->epochs || c->window < 1 || c->rank >= world_of(c))
        return stk_errf(err, "train_input_open: endpoint, batches, batch size, shape, epochs "
                             "and window must all be set, and rank below world");
    if ((uint64_t)c->epochs * c->batches_per_epoch > (1ull << 36))
        return stk_errf(err, "train_input_open: %u epochs x %llu batches is too many to track",
                        c->epochs, (unsigned long long)c->batches_per_epoch);
    return 0;
}

/* Everything but the socket and thread. */
static int allocate(TrainInput *in, StkErr *err) {
    const TrainInputConfig *c = &in->cfg;
    in->cap = c->window;
    in->entry = calloc(c->window, sizeof *in->entry);
    in->state = calloc(c->window, 1);
    in->seen = calloc((size_t)c->epochs, seen_row(in));
    in->handed = calloc(c->epochs, sizeof *in->handed);
    in->next_index = calloc(c->epochs, sizeof *in->next_index);
    if (!in->entry || !in->state || !in->seen || !in->handed || !in->next_index)
        return stk_errf(err, "train_input_open: out of memory");
    for (uint32_t k = 0; k < c->window; k++)
        if (!(in->entry[k] = calloc(1, sizeof(ProtoRecv)))) return stk_errf(err, "out of memory");
    size_t px = (size_t)c->batch * c->height * c->width * c->channels;
    in->labels_off = (px + 7) / 8 * 8;
    in->ids_off = (in->labels_off + 4ull * c->batch + 7) / 8 * 8;
    in->slot_bytes = in->ids_off + 8ull * c->batch;
    for (int i = 0; i < TRAIN_INPUT_SLOTS; i++)
        if (!(in->slot[i] = c->alloc.alloc(c->alloc.ctx, in->slot_bytes)))
            return stk_errf(err, "train_input_open: cannot allocate two %zu-byte slots", in->slot_bytes);
    return 0;
}

int train_input_open(TrainInput **pin, void *ctx, const TrainInputConfig *cfg, StkErr *err) {
    *pin = NULL;
    if (check_config(cfg, err)) return -1;
    TrainInput *in = calloc(1, sizeof *in);
    if (!in) return stk_errf(err, "train_input_open: out of memory");
    in->cfg = *cfg;
    if (!in->cfg.alloc.alloc) in->cfg.alloc = (TrainSlotAlloc){default_alloc, default_free, NULL};
    pthread_mutex_init(&in->mu, NULL);
    pthread_cond_init(&in->changed, NULL);
    if (allocate(in, err)) goto fail;
    if (!(in->sock = zmq_socket(ctx, ZMQ_PULL))) {
        stk_errf(err, "zmq_socket: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (proto_zmq_setup(in->sock, 2, 2, 0, err) || proto_curve_apply(in->sock, cfg->curve, 1, err))
        goto fail;
    if (zmq_bind(in->sock, cfg->endpoint)) {
        stk_errf(err, "bind %s: %s", cfg->endpoint, zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (pthread_create(&in->thread, NULL, receiver, in)) {
        stk_errf(err, "pthread_create: %s", strerror(errno));
        goto fail;
    }
    in->thread_started = 1;
    *pin = in;
    return 0;
fail:
    train_input_close(in);
    return -1;
}

void train_input_close(TrainInput *in) {
    if (!in) return;
    if (in->thread_started) {
        pthread_mutex_lock(&in->mu);
        in->stop = 1;
        pthread_cond_broadcast(&in->changed);
        pthread_mutex_unlock(&in->mu);
        pthread_join(in->thread, NULL);
    }
    for (uint32_t k = 0; in->entry && k < in->cap; k++) {
        if (in->entry[k] && in->state[k] == HELD) proto_recv_release(in->entry[k]);
        free(in->entry[k]);
    }
    if (in->sock) zmq_close(in->sock);
    for (int i = 0; i < TRAIN_INPUT_SLOTS; i++)
        if (in->slot[i]) in->cfg.alloc.free(in->cfg.alloc.ctx, in->slot[i]);
    free(in->entry), free(in->state), free(in->seen), free(in->handed), free(in->next_index);
    pthread_mutex_destroy(&in->mu);
    pthread_cond_destroy(&in->changed);
    free(in);
}
