/* proto_zmq.c: framing of stoker messages on ZeroMQ sockets (see proto_zmq.h). */
#include "proto_zmq.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* PROTO_AGAIN for the errnos that mean "not now", PROTO_FAIL (with the call named)
 * otherwise. */
static int zmq_status(const char *call, StkErr *err) {
    int e = zmq_errno();
    if (e == EAGAIN || e == EINTR) return PROTO_AGAIN;
    stk_errf(err, "%s: %s", call, zmq_strerror(e));
    return PROTO_FAIL;
}

int proto_zmq_setup(void *sock, int sndhwm, int rcvhwm, int linger_ms, StkErr *err) {
    int64_t maxmsg = PROTO_MAX_FRAME_BYTES;
    if (zmq_setsockopt(sock, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm) ||
        zmq_setsockopt(sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm) ||
        zmq_setsockopt(sock, ZMQ_LINGER, &linger_ms, sizeof linger_ms) ||
        zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg))
        return stk_errf(err, "zmq_setsockopt: %s", zmq_strerror(zmq_errno()));
    return 0;
}

int proto_out_init(ProtoOut *o, StkErr *err) {
    o->buf = malloc(PROTO_MAX_HEADER_BYTES);
    if (!o->buf) return stk_errf(err, "proto_out_init: out of memory (%u bytes)",
                                 PROTO_MAX_HEADER_BYTES);
    return 0;
}

void proto_out_free(ProtoOut *o) {
    free(o->buf);
    o->buf = NULL;
}

/* Sends the pixel frame of a batch whose header already went with ZMQ_SNDMORE. ZeroMQ
 * delivers multipart messages atomically, so this frame cannot hit the high-water mark. */
static int send_pixels(void *sock, const ProtoBatch *b, const ProtoPixelsOwner *owner,
                       StkErr *err) {
    size_t len = (size_t)proto_batch_pixel_bytes(b);
    if (!owner) {
        if (zmq_send(sock, b->pixels, len, 0) < 0) return zmq_status("zmq_send(pixels)", err);
        return PROTO_OK;
    }
    zmq_msg_t frame;
    if (zmq_msg_init_data(&frame, (void *)b->pixels, len, owner->free_fn, owner->hint)) {
        owner->free_fn((void *)b->pixels, owner->hint);
        return stk_errf(err, "zmq_msg_init_data: %s", zmq_strerror(zmq_errno())), PROTO_FAIL;
    }
    if (zmq_msg_send(&frame, sock, 0) < 0) {
        int rc = zmq_status("zmq_msg_send(pixels)", err);
        zmq_msg_close(&frame); /* calls free_fn */
        return rc == PROTO_AGAIN ? (stk_errf(err, "zmq_msg_send(pixels): interrupted"),
                                    PROTO_FAIL) : rc;
    }
    return PROTO_OK;
}

int proto_send(ProtoOut *o, void *sock, const ProtoMsg *m, const ProtoPixelsOwner *owner,
               int flags, StkErr *err) {
    size_t len;
    if (proto_encode(m, o->buf, PROTO_MAX_HEADER_BYTES, &len, err)) return PROTO_FAIL;
    int more = m->type == PROTO_BATCH ? ZMQ_SNDMORE : 0;
    if (zmq_send(sock, o->buf, len, flags | more) < 0) return zmq_status("zmq_send", err);
    return more ? send_pixels(sock, &m->u.batch, owner, err) : PROTO_OK;
}

/* Receives and discards the remaining frames of a message we are rejecting. */
static void drain(void *sock) {
    int more = 1;
    size_t sz = sizeof more;
    while (zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t junk;
        zmq_msg_init(&junk);
        int rc = zmq_msg_recv(&junk, sock, 0);
        zmq_msg_close(&junk);
        if (rc < 0) break;
    }
}

/* Receives frame i of r; *more says whether another follows. */
static int recv_frame(void *sock, ProtoRecv *r, int flags, int *more, StkErr *err) {
    zmq_msg_t *f = &r->frames[r->nframes];
    zmq_msg_init(f);
    if (zmq_msg_recv(f, sock, flags) < 0) {
        zmq_msg_close(f);
        return zmq_status("zmq_msg_recv", err);
    }
    r->nframes++;
    *more = zmq_msg_more(f);
    return PROTO_OK;
}

int proto_recv(void *sock, ProtoRecv *r, int flags, StkErr *err) {
    int more, rc;
    r->nframes = 0;
    if ((rc = recv_frame(sock, r, flags, &more, err))) return rc;
    /* Later frames of a multipart message are already here: never wait on them. */
    if (more && (rc = recv_frame(sock, r, 0, &more, err))) {
        proto_recv_release(r);
        return rc;
    }
    if (more) {
        drain(sock);
        proto_recv_release(r);
        return stk_errf(err, "message: more than 2 frames"), PROTO_BAD;
    }
    const void *pay = r->nframes == 2 ? zmq_msg_data(&r->frames[1]) : NULL;
    size_t pay_len = r->nframes == 2 ? zmq_msg_size(&r->frames[1]) : 0;
    if (r->nframes == 2 && !pay) pay = ""; /* an empty second frame is still a frame */
    if (proto_decode(zmq_msg_data(&r->frames[0]), zmq_msg_size(&r->frames[0]), pay, pay_len,
                     &r->msg, err)) {
        proto_recv_release(r);
        return PROTO_BAD;
    }
    return PROTO_OK;
}

void proto_recv_release(ProtoRecv *r) {
    for (int i = 0; i < r->nframes; i++) zmq_msg_close(&r->frames[i]);
    r->nframes = 0;
}
