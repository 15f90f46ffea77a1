/* proto_zmq.h: sending and receiving stoker messages on ZeroMQ sockets.
 *
 * A message is one frame (the msgpack header); a batch adds a second frame with the
 * pixels, which the sender hands to ZeroMQ without copying (zmq_msg_init_data) and the
 * receiver reads in place. Received views stay valid until proto_recv_release(). */
#ifndef PROTO_ZMQ_H
#define PROTO_ZMQ_H

#include <zmq.h>

#include "proto.h"

/* What proto_send and proto_recv return. */
enum {
    PROTO_OK = 0,    /* done */
    PROTO_AGAIN = 1, /* ZMQ_DONTWAIT and the socket would block, or a signal came (EINTR):
                        nothing was sent or received, try again */
    PROTO_BAD = -1,  /* (recv) a malformed message arrived; it was consumed and dropped,
                        err says what was wrong; the socket is fine */
    PROTO_FAIL = -2, /* the socket or context failed (e.g. ETERM); err says which call */
};

/* Options every stoker socket gets: send and receive high-water marks (messages),
 * ZMQ_LINGER (ms; 0 drops unsent messages at close) and ZMQ_MAXMSGSIZE, so that a peer
 * sending a frame over PROTO_MAX_FRAME_BYTES is disconnected before ZeroMQ allocates
 * for it. Call before bind/connect. */
int proto_zmq_setup(void *sock, int sndhwm, int rcvhwm, int linger_ms, StkErr *err);

/* Scratch space for header frames, allocated once per sending thread. */
typedef struct ProtoOut {
    uint8_t *buf; /* PROTO_MAX_HEADER_BYTES, owned */
} ProtoOut;

int proto_out_init(ProtoOut *o, StkErr *err);
void proto_out_free(ProtoOut *o);

/* Who to tell when ZeroMQ is done with a batch's pixels (zero-copy send). */
typedef struct ProtoPixelsOwner {
    zmq_free_fn *free_fn; /* called once, maybe from ZeroMQ's I/O thread */
    void *hint;           /* passed to free_fn */
} ProtoPixelsOwner;

/* Sends m (flags: 0 or ZMQ_DONTWAIT). For a batch with owner != NULL the pixels go
 * zero-copy: on PROTO_OK ZeroMQ owns them until it calls owner->free_fn; on PROTO_AGAIN
 * nothing was taken and the caller still owns them; on PROTO_FAIL free_fn has been or
 * will be called. With owner == NULL the pixels are copied (tests, small batches).
 * Never returns PROTO_BAD: an invalid m gives PROTO_FAIL with the reason. */
int proto_send(ProtoOut *o, void *sock, const ProtoMsg *m, const ProtoPixelsOwner *owner,
               int flags, StkErr *err);

/* One received message: the frames and the decoded views into them. */
typedef struct ProtoRecv {
    zmq_msg_t frames[2]; /* header, pixels (batch only) */
    int nframes;         /* frames held, to be closed by proto_recv_release */
    ProtoMsg msg;        /* decoded; valid until proto_recv_release */
} ProtoRecv;

/* Receives one whole message (flags: 0 or ZMQ_DONTWAIT) and decodes it. Returns
 * PROTO_OK (r->msg is valid; call proto_recv_release when done), PROTO_AGAIN,
 * PROTO_BAD (dropped; nothing to release) or PROTO_FAIL. */
int proto_recv(void *sock, ProtoRecv *r, int flags, StkErr *err);

/* Closes the frames of a received message; safe to call twice. */
void proto_recv_release(ProtoRecv *r);

#endif
