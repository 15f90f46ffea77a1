/* train_group.c: broadcast and mean over the ranks through rank 0 (see train_group.h).
 *
 * Frames: a rank > 0 sends [header][payload] on its DEALER; rank 0's ROUTER sees
 * [routing id "rN"][header][payload] and answers [routing id][header][payload]. */
#include "train_group.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "proto_zmq.h"

#define MAGIC 0x53544b47u /* "STKG" */
#define GROUP_HWM 64      /* messages: one per rank and round is all that is ever queued */
#define CLOSE_LINGER_MS 2000

enum { HELLO = 1, BCAST, GRAD, MEAN };

typedef struct Hdr {
    uint32_t magic, kind;
    int32_t rank, world;
    uint64_t round, bytes; /* HELLO: the broadcast size the sender expects */
} Hdr;

static const char *kind_name(uint32_t k) {
    return k == HELLO ? "hello" : k == BCAST ? "broadcast" : k == GRAD ? "gradients" : k == MEAN ? "mean" : "?";
}

int train_group_open(TrainGroup *g, void *ctx, const char *endpoint, int rank, int world,
                     StkErr *err) {
    memset(g, 0, sizeof *g);
    g->rank = rank, g->world = world, g->timeout_ms = TRAIN_GROUP_TIMEOUT_MS;
    if (world < 2 || rank < 0 || rank >= world || !endpoint)
        return stk_errf(err, "train_group_open: rank %d of world %d at %s", rank, world,
                        endpoint ? endpoint : "(no endpoint)");
    g->sock = zmq_socket(ctx, rank ? ZMQ_DEALER : ZMQ_ROUTER);
    if (!g->sock) return stk_errf(err, "zmq_socket: %s", zmq_strerror(zmq_errno()));
    if (proto_zmq_setup(g->sock, GROUP_HWM, GROUP_HWM, 0, err)) return train_group_close(g), -1;
    int one = 1, rc;
    char id[16];
    if (rank == 0) {
        /* an answer to a rank that is gone fails instead of vanishing */
        rc = zmq_setsockopt(g->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
        if (!rc) rc = zmq_bind(g->sock, endpoint);
        g->held = calloc((size_t)world, sizeof *g->held);
        if (!g->held) return train_group_close(g), stk_errf(err, "train_group_open: out of memory");
    } else {
        snprintf(id, sizeof id, "r%d", rank);
        rc = zmq_setsockopt(g->sock, ZMQ_ROUTING_ID, id, strlen(id));
        if (!rc) rc = zmq_connect(g->sock, endpoint);
    }
    if (rc) {
        stk_errf(err, "%s %s: %s", rank ? "connect" : "bind", endpoint, zmq_strerror(zmq_errno()));
        train_group_close(g);
        return -1;
    }
    return 0;
}

static void release_held(TrainGroup *g) {
    for (int r = 0; g->held && r < g->world; r++)
        if (g->held[r]) {
            zmq_msg_close(g->held[r]);
            free(g->held[r]);
            g->held[r] = NULL;
        }
}

void train_group_close(TrainGroup *g) {
    release_held(g);
    free(g->held);
    free(g->sum);
    if (g->sock) {
        /* rank 0's last answers (the final step's mean) must still reach ranks that are
         * reading: a bounded linger; a peer that is gone is not waited for (ROUTER drops) */
        int linger = g->rank == 0 ? CLOSE_LINGER_MS : 0;
        zmq_setsockopt(g->sock, ZMQ_LINGER, &linger, sizeof linger);
        zmq_close(g->sock);
    }
    memset(g, 0, sizeof *g);
}

/* Waits until the socket has a message: 0, TRAIN_GROUP_STOPPED, or -1 after timeout_ms
 * (what names what is missing). */
static int wait_readable(TrainGroup *g, const char *what, StkErr *err) {
    for (int waited = 0;; waited += TRAIN_GROUP_POLL_MS) {
        zmq_pollitem_t it = {g->sock, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&it, 1, TRAIN_GROUP_POLL_MS);
        if (n < 0 && zmq_errno() != EINTR) return stk_errf(err, "zmq_poll: %s", zmq_strerror(zmq_errno()));
        if (n > 0) return 0;
        if (g->stop && g->stop(g->stop_ctx)) return TRAIN_GROUP_STOPPED;
        if (waited >= g->timeout_ms)
            return stk_errf(err, "rank %d: no %s for %d s (round %llu)", g->rank, what,
                            g->timeout_ms / 1000, (unsigned long long)g->round);
    }
}

/* Receives one whole message (ZeroMQ delivers all its frames together) into up to 3
 * frames; *np gets how many. */
static int recv_frames(TrainGroup *g, zmq_msg_t *f, int *np, StkErr *err) {
    *np = 0;
    for (int more = 1; more;) {
        if (*np == 3) return stk_errf(err, "rank %d: a group message of more than 3 frames", g->rank);
        zmq_msg_init(&f[*np]);
        if (zmq_msg_recv(&f[*np], g->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&f[*np]);
            return stk_errf(err, "zmq_msg_recv: %s", zmq_strerror(zmq_errno()));
        }
        more = zmq_msg_more(&f[(*np)++]);
    }
    return 0;
}

static void close_frames(zmq_msg_t *f, int n) {
    for (int i = 0; i < n; i++) zmq_msg_close(&f[i]);
}

/* Checks a header against what this round expects. */
static int check_hdr(const TrainGroup *g, const zmq_msg_t *h, uint32_t kind, uint64_t bytes,
                     size_t payload, Hdr *out, StkErr *err) {
    if (zmq_msg_size((zmq_msg_t *)h) != sizeof *out)
        return stk_errf(err, "rank %d: a group message with a %zu-byte header", g->rank,
                        zmq_msg_size((zmq_msg_t *)h));
    memcpy(out, zmq_msg_data((zmq_msg_t *)h), sizeof *out);
    if (out->magic != MAGIC || out->world != g->world || out->rank < 0 || out->rank >= g->world)
        return stk_errf(err, "rank %d: a foreign group message (rank %d of world %d)", g->rank,
                        out->rank, out->world);
    if (out->kind != kind || out->round != g->round || out->bytes != bytes ||
        (kind != HELLO && payload != bytes))
        return stk_errf(err, "rank %d expected %s of round %llu, %llu bytes; rank %d sent %s of "
                        "round %llu, %llu bytes (ranks out of step, or different models)",
                        g->rank, kind_name(kind), (unsigned long long)g->round,
                        (unsigned long long)bytes, out->rank, kind_name(out->kind),
                        (unsigned long long)out->round, (unsigned long long)out->bytes);
    return 0;
}

/* Sends header + payload; rank 0 addresses rank `to` by its routing id. */
static int send_msg(TrainGroup *g, int to, uint32_t kind, const void *data, size_t bytes,
                    StkErr *err) {
    Hdr h = {MAGIC, kind, g->rank, g->world, g->round, bytes};
    char id[16];
    int len = snprintf(id, sizeof id, "r%d", to);
    int has_payload = kind != HELLO;
    if ((g->rank == 0 && zmq_send(g->sock, id, (size_t)len, ZMQ_SNDMORE) < 0) ||
        zmq_send(g->sock, &h, sizeof h, has_payload ? ZMQ_SNDMORE : 0) < 0 ||
        (has_payload && zmq_send(g->sock, data, bytes, 0) < 0))
        return stk_errf(err, "rank %d: sending %s to rank %d: %s", g->rank, kind_name(kind), to,
                        zmq_strerror(zmq_errno()));
    return 0;
}

/* Names the ranks rank 0 has not heard from this round. */
static void name_missing(const TrainGroup *g, const uint8_t *got, StkErr *err) {
    char list[256] = "";
    size_t len = 0;
    for (int r = 1; r < g->world && len + 8 < sizeof list; r++)
        if (!got[r]) len += (size_t)snprintf(list + len, sizeof list - len, " %d", r);
    stk_err_wrap(err, "missing ranks:%s", list);
}

/* Rank 0: one message of kind from every other rank, payloads kept in g->held. */
static int gather(TrainGroup *g, uint32_t kind, uint64_t bytes, StkErr *err) {
    uint8_t got[256] = {0};
    if (g->world > 256) return stk_errf(err, "train_group: world %d (at most 256)", g->world);
    for (int have = 1; have < g->world;) {
        int rc = wait_readable(g, kind_name(kind), err);
        if (rc < 0) name_missing(g, got, err);
        if (rc) return rc;
        zmq_msg_t f[3];
        int n;
        Hdr h;
        if (recv_frames(g, f, &n, err)) return -1;
        size_t payload = n == 3 ? zmq_msg_size(&f[2]) : 0;
        rc = n < 2 ? stk_errf(err, "rank 0: a group message of %d frame(s)", n)
                   : check_hdr(g, &f[1], kind, bytes, payload, &h, err);
        if (!rc && (h.rank == 0 || got[h.rank]))
            rc = stk_errf(err, "rank 0: %s of round %llu twice from rank %d", kind_name(kind),
                          (unsigned long long)g->round, h.rank);
        if (!rc && n == 3) {
            g->held[h.rank] = malloc(sizeof(zmq_msg_t));
            if (!g->held[h.rank]) rc = stk_errf(err, "rank 0: out of memory");
            else zmq_msg_init(g->held[h.rank]), zmq_msg_move(g->held[h.rank], &f[2]);
        }
        close_frames(f, n);
        if (rc) return release_held(g), -1;
        got[h.rank] = 1, have++;
    }
    return 0;
}

/* Ranks > 0: rank 0's answer of kind into data. */
static int receive_answer(TrainGroup *g, uint32_t kind, void *data, size_t bytes, StkErr *err) {
    int rc = wait_readable(g, kind_name(kind), err);
    if (rc) return rc;
    zmq_msg_t f[3];
    int n;
    Hdr h;
    if (recv_frames(g, f, &n, err)) return -1;
    rc = n != 2 ? stk_errf(err, "rank %d: a group answer of %d frame(s)", g->rank, n)
                : check_hdr(g, &f[0], kind, bytes, zmq_msg_size(&f[1]), &h, err);
    if (!rc) memcpy(data, zmq_msg_data(&f[1]), bytes);
    close_frames(f, n);
    return rc;
}

int train_group_broadcast(TrainGroup *g, void *data, size_t bytes, StkErr *err) {
    int rc = 0;
    if (g->rank) {
        if (send_msg(g, 0, HELLO, NULL, bytes, err)) return -1;
        rc = receive_answer(g, BCAST, data, bytes, err);
    } else {
        rc = gather(g, HELLO, bytes, err);
        for (int r = 1; !rc && r < g->world; r++) rc = send_msg(g, r, BCAST, data, bytes, err);
    }
    if (!rc) g->round++;
    return rc;
}

/* Rank 0: x = (x + x_1 + ... + x_{W-1}) / W, summed in rank order. A received frame's
 * bytes need not be float-aligned (ZeroMQ keeps small messages inside its own struct),
 * so each is copied into the aligned scratch's second half before it is added. */
static void mean_in_place(TrainGroup *g, float *x, size_t n) {
    float *sum = g->sum, *y = g->sum + n;
    memcpy(sum, x, n * sizeof *x);
    for (int r = 1; r < g->world; r++) {
        memcpy(y, zmq_msg_data(g->held[r]), n * sizeof *y);
        for (size_t i = 0; i < n; i++) sum[i] += y[i];
    }
    for (size_t i = 0; i < n; i++) x[i] = sum[i] / (float)g->world;
}

int train_group_mean(TrainGroup *g, float *x, size_t n, StkErr *err) {
    size_t bytes = n * sizeof *x;
    int rc = 0;
    if (g->rank) {
        if (send_msg(g, 0, GRAD, x, bytes, err)) return -1;
        rc = receive_answer(g, MEAN, x, bytes, err);
    } else {
        if (n > g->cap) {
            float *s = realloc(g->sum, 2 * bytes + 1); /* the sum, then one rank's copy */
            if (!s) return stk_errf(err, "train_group_mean: out of memory for %zu floats", n);
            g->sum = s, g->cap = n;
        }
        if ((rc = gather(g, GRAD, bytes, err))) return rc;
        mean_in_place(g, x, n);
        release_held(g);
        for (int r = 1; !rc && r < g->world; r++) rc = send_msg(g, r, MEAN, x, bytes, err);
    }
    if (!rc) g->round++;
    return rc;
}
