/* bench_proto.c: how a batch should cross the data socket. A sender process pushes
 * batches of N x H x W x 3 over ipc:// to this process, which decodes each one and copies
 * its pixels once into a staging buffer (as the trainer fills its pinned buffer).
 *
 *   two-frame   msgpack header frame + pixel frame sent zero-copy (what proto_zmq does)
 *   one-frame   one msgpack message whose last field is the pixel bin, built in place
 *               around pixels already in the send buffer, sent zero-copy, bin read in place
 *   naive       msgpack-c the obvious way: pack everything into an sbuffer (copying the
 *               pixels), zmq_send (copying again), msgpack_unpack_next on receipt
 *
 * usage: bench_proto [--n 256] [--size 224] [--batches 60] [--reps 2]
 * Prints one line per variant: batches/s, GB/s, sender CPU ms per batch. */
#include <msgpack.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proto_mpr.h"
#include "proto_zmq.h"

#define POOL 4    /* send buffers in flight: HWM 2 plus what ZeroMQ is writing */
#define ROOM 4096 /* bytes reserved before the pixels for the one-frame header */

typedef enum { TWO_FRAME, ONE_FRAME, NAIVE } Variant;
static const char *variant_name[] = {"two-frame", "one-frame", "naive"};

typedef struct Cfg {
    uint32_t n, side, batches;
    size_t pixel_bytes;
} Cfg;

static atomic_int busy[POOL];
static void release(void *data, void *hint) {
    (void)data;
    atomic_store(&busy[(intptr_t)hint], 0);
}

static int take_slot(void) {
    for (;;) {
        for (int i = 0; i < POOL; i++) {
            int expect = 0;
            if (atomic_compare_exchange_strong(&busy[i], &expect, 1)) return i;
        }
        usleep(50);
    }
}

static void die(const char *what) {
    fprintf(stderr, "bench_proto: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

static int fixed_write(void *data, const char *buf, size_t len) {
    uint8_t **p = data;
    memcpy(*p, buf, len);
    *p += len;
    return 0;
}

/* One-frame: packs the header into scratch, then copies it to end right where the
 * pixels start, so header + pixels + nothing else is one contiguous message. */
static size_t one_frame_header(uint8_t *room_end, const ProtoBatch *b) {
    uint8_t tmp[ROOM + 12 * 256], *p = tmp;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &p, fixed_write);
    msgpack_pack_array(&pk, 13);
    msgpack_pack_uint32(&pk, PROTO_VERSION); msgpack_pack_uint32(&pk, PROTO_BATCH);
    msgpack_pack_uint32(&pk, b->epoch); msgpack_pack_uint32(&pk, b->loader);
    msgpack_pack_uint64(&pk, b->seq); msgpack_pack_uint64(&pk, b->index);
    msgpack_pack_uint32(&pk, b->n); msgpack_pack_uint32(&pk, b->h);
    msgpack_pack_uint32(&pk, b->w); msgpack_pack_uint32(&pk, b->c);
    msgpack_pack_bin(&pk, 4 * b->n); msgpack_pack_bin_body(&pk, b->labels, 4 * b->n);
    msgpack_pack_bin(&pk, 8 * b->n); msgpack_pack_bin_body(&pk, b->ids, 8 * b->n);
    msgpack_pack_bin(&pk, proto_batch_pixel_bytes(b));
    size_t len = (size_t)(p - tmp);
    memcpy(room_end - len, tmp, len);
    return len;
}

static void send_all(void *push, const Cfg *cfg, Variant v) {
    uint8_t *bufs[POOL];
    int32_t labels[256];
    uint64_t ids[256];
    for (uint32_t i = 0; i < 256; i++) labels[i] = (int32_t)i, ids[i] = i;
    for (int i = 0; i < POOL; i++) {
        bufs[i] = aligned_alloc(4096, ROOM + cfg->pixel_bytes);
        memset(bufs[i], i + 1, ROOM + cfg->pixel_bytes); /* fault the pages in once */
    }
    ProtoOut out;
    StkErr err;
    if (proto_out_init(&out, &err)) exit(1);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    for (uint32_t k = 0; k < cfg->batches; k++) {
        int slot = take_slot();
        uint8_t *pix = bufs[slot] + ROOM;
        ProtoMsg m = {.type = PROTO_BATCH};
        m.u.batch = (ProtoBatch){.seq = k, .index = k, .n = cfg->n, .h = cfg->side,
                                 .w = cfg->side, .c = 3, .pixels = pix, .labels = labels,
                                 .ids = ids};
        if (v == TWO_FRAME) {
            ProtoPixelsOwner owner = {release, (void *)(intptr_t)slot};
            if (proto_send(&out, push, &m, &owner, 0, &err)) die(err.msg);
        } else if (v == ONE_FRAME) {
            size_t hl = one_frame_header(pix, &m.u.batch);
            zmq_msg_t f;
            if (zmq_msg_init_data(&f, pix - hl, hl + cfg->pixel_bytes, release,
                                  (void *)(intptr_t)slot) ||
                zmq_msg_send(&f, push, 0) < 0)
                die("zmq_msg_send");
        } else {
            msgpack_sbuffer_clear(&sb);
            msgpack_packer pk;
            msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
            msgpack_pack_array(&pk, 13);
            msgpack_pack_uint32(&pk, PROTO_VERSION); msgpack_pack_uint32(&pk, PROTO_BATCH);
            for (int i = 0; i < 8; i++) msgpack_pack_uint32(&pk, i == 4 ? cfg->n : 0);
            msgpack_pack_bin(&pk, 4 * cfg->n); msgpack_pack_bin_body(&pk, labels, 4 * cfg->n);
            msgpack_pack_bin(&pk, 8 * cfg->n); msgpack_pack_bin_body(&pk, ids, 8 * cfg->n);
            msgpack_pack_bin(&pk, cfg->pixel_bytes);
            msgpack_pack_bin_body(&pk, pix, cfg->pixel_bytes);
            if (zmq_send(push, sb.data, sb.size, 0) < 0) die("zmq_send");
            release(NULL, (void *)(intptr_t)slot);
        }
    }
    sleep(1); /* let ZeroMQ flush before the context goes */
}

/* Reads the one-frame layout: the same fields, pixels as the last bin, in place. */
static const uint8_t *one_frame_pixels(const void *data, size_t len, uint32_t n, size_t want) {
    Mpr r;
    uint32_t count;
    uint64_t x;
    const uint8_t *b;
    StkErr err;
    mpr_init(&r, data, len);
    if (mpr_array(&r, &count, "msg", &err) || count != 13) return NULL;
    for (int i = 0; i < 10; i++)
        if (mpr_uint(&r, UINT64_MAX, &x, "field", &err)) return NULL;
    if (mpr_bin(&r, 4ull * n, &b, "labels", &err) || mpr_bin(&r, 8ull * n, &b, "ids", &err) ||
        mpr_bin(&r, want, &b, "pixels", &err))
        return NULL;
    return b;
}

/* Receives one batch, returns its pixels' address (valid until frames are closed). */
static const uint8_t *recv_one(void *pull, Variant v, ProtoRecv *r, zmq_msg_t *f,
                               msgpack_unpacked *up, const Cfg *cfg) {
    StkErr err;
    if (v == TWO_FRAME) {
        if (proto_recv(pull, r, 0, &err) != PROTO_OK) die(err.msg);
        return r->msg.u.batch.pixels;
    }
    zmq_msg_init(f);
    if (zmq_msg_recv(f, pull, 0) < 0) die("zmq_msg_recv");
    if (v == ONE_FRAME) return one_frame_pixels(zmq_msg_data(f), zmq_msg_size(f), cfg->n,
                                                cfg->pixel_bytes);
    size_t off = 0;
    if (msgpack_unpack_next(up, zmq_msg_data(f), zmq_msg_size(f), &off) != MSGPACK_UNPACK_SUCCESS)
        die("msgpack_unpack_next");
    return (const uint8_t *)up->data.via.array.ptr[12].via.bin.ptr;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void run(const Cfg *cfg, Variant v, uint8_t *staging) {
    char ep[64];
    snprintf(ep, sizeof ep, "ipc:///tmp/stoker-bench-%d", getpid());
    fflush(stdout);
    pid_t child = fork();
    void *ctx = zmq_ctx_new();
    StkErr err;
    if (child == 0) {
        void *push = zmq_socket(ctx, ZMQ_PUSH);
        if (proto_zmq_setup(push, 2, 2, -1, &err) || zmq_connect(push, ep)) die("connect");
        send_all(push, cfg, v);
        zmq_close(push);
        zmq_ctx_term(ctx);
        _exit(0);
    }
    void *pull = zmq_socket(ctx, ZMQ_PULL);
    if (proto_zmq_setup(pull, 2, 2, 0, &err) || zmq_bind(pull, ep)) die("bind");
    ProtoRecv r;
    zmq_msg_t f;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    double t0 = 0;
    const uint32_t warm = 5;
    for (uint32_t k = 0; k < cfg->batches; k++) {
        if (k == warm) t0 = now_s();
        const uint8_t *pix = recv_one(pull, v, &r, &f, &up, cfg);
        if (!pix) die("bad batch");
        memcpy(staging, pix, cfg->pixel_bytes);
        if (v == TWO_FRAME) proto_recv_release(&r);
        else zmq_msg_close(&f);
    }
    double dt = now_s() - t0;
    int status;
    struct rusage ru;
    wait4(child, &status, 0, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
    uint32_t timed = cfg->batches - warm;
    printf("%-10s %8.1f batches/s %7.2f GB/s  sender CPU %6.2f ms/batch\n", variant_name[v],
           timed / dt, timed * (double)cfg->pixel_bytes / dt / 1e9, 1e3 * cpu / cfg->batches);
    msgpack_unpacked_destroy(&up);
    zmq_close(pull);
    zmq_ctx_term(ctx);
}

int main(int argc, char **argv) {
    Cfg cfg = {.n = 256, .side = 224, .batches = 60};
    int reps = 2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--n")) cfg.n = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--size")) cfg.side = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batches")) cfg.batches = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else { fprintf(stderr, "usage: bench_proto [--n N] [--size S] [--batches B] [--reps R]\n"); return 2; }
    }
    if (cfg.n < 1 || cfg.n > 256 || cfg.side < 1 || cfg.batches < 10) {
        fprintf(stderr, "bench_proto: need 1 <= n <= 256, size >= 1, batches >= 10\n");
        return 2;
    }
    cfg.pixel_bytes = (size_t)cfg.n * cfg.side * cfg.side * 3;
    uint8_t *staging = aligned_alloc(4096, cfg.pixel_bytes);
    memset(staging, 0, cfg.pixel_bytes);
    printf("batch %ux%ux%ux3 = %.1f MB, %u batches over ipc://, receiver copies once\n", cfg.n,
           cfg.side, cfg.side, cfg.pixel_bytes / 1e6, cfg.batches);
    /* variants interleaved, order rotated each repetition, so drift favours none */
    for (int rep = 0; rep < reps; rep++)
        for (int k = 0; k < 3; k++) run(&cfg, (Variant)((k + rep) % 3), staging);
    free(staging);
    return 0;
}
