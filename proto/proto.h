/* proto.h: every message on every stoker socket, and how it is packed and checked.
 *
 * A message is one msgpack array [version, type, fields...] in one ZeroMQ frame. The
 * batch message alone has a second frame: the raw uint8 NHWC pixels, sent zero-copy
 * (see proto_zmq.h and docs/ARCHITECTURE.md for why two frames beat one msgpack bin).
 *
 * Decoding never copies pixels or strings: the decoded structs hold views (pointers)
 * into the received frames, valid as long as those frames are. The decoder validates
 * every type, length and limit below before anything is used; a malformed or hostile
 * message yields -1 and a message naming the field and what is wrong, never a crash, an
 * out-of-bounds read or an allocation (the decoder allocates nothing at all).
 *
 * Wire layout per type (all integers unsigned unless noted, strings msgpack str):
 *   BATCH          [1, 1, epoch, loader, seq, index, n, h, w, c, labels:bin(4n), ids:bin(8n)]
 *                  + frame 2: pixels, exactly n*h*w*c bytes
 *   END_OF_EPOCH   [1, 2, loader, epoch, samples, batches]
 *   BAD_FILE       [1, 3, loader, sample_id, path, reason]
 *   HEARTBEAT      [1, 4, role, id, pid, time_ms]
 *   SHUTDOWN       [1, 5, reason]
 *   CHECKPOINT     [1, 6, path, epoch, step]
 *   METRICS        [1, 7, role, id, epoch, step, {name: float64, ...}]
 *   ERROR          [1, 8, role, id, text]
 * labels are little-endian int32 (0 <= label < PROTO_MAX_CLASSES), ids little-endian
 * uint64. */
#ifndef PROTO_H
#define PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "stk_err.h"

#define PROTO_VERSION 1u

/* Limits the decoder enforces (and the encoder refuses to exceed). */
#define PROTO_MAX_BATCH_N 65536u           /* samples in one batch */
#define PROTO_MAX_SIDE 16384u              /* height or width of a batch image */
#define PROTO_MAX_CHANNELS 4u              /* 1 (gray), 3 (RGB), 4 */
#define PROTO_MAX_PIXEL_BYTES (1ull << 31) /* n*h*w*c: 2 GiB */
#define PROTO_MAX_CLASSES (1u << 24)       /* labels are in [0, this) */
#define PROTO_MAX_PATH 4096u               /* bytes of a path */
#define PROTO_MAX_TEXT 1024u               /* bytes of a reason or error text */
#define PROTO_MAX_METRICS 64u              /* name/value pairs in one metrics message */
#define PROTO_MAX_METRIC_NAME 64u          /* bytes of a metric name */
/* Largest header frame any message needs: a full batch's labels and ids plus fields. */
#define PROTO_MAX_HEADER_BYTES (64u + 16u + 12u * PROTO_MAX_BATCH_N)
/* Largest frame a receiving socket accepts (ZMQ_MAXMSGSIZE); anything bigger makes
 * ZeroMQ drop the peer before allocating. */
#define PROTO_MAX_FRAME_BYTES ((int64_t)PROTO_MAX_PIXEL_BYTES)

typedef enum ProtoType {
    PROTO_BATCH = 1,
    PROTO_END_OF_EPOCH = 2,
    PROTO_BAD_FILE = 3,
    PROTO_HEARTBEAT = 4,
    PROTO_SHUTDOWN = 5,
    PROTO_CHECKPOINT = 6,
    PROTO_METRICS = 7,
    PROTO_ERROR = 8,
} ProtoType;

/* Who sent a heartbeat, metrics or error. */
typedef enum ProtoRole {
    PROTO_ROLE_SUPERVISOR = 0,
    PROTO_ROLE_LOADER = 1,
    PROTO_ROLE_TRAINER = 2,
    PROTO_ROLE_EVALUATOR = 3,
    PROTO_ROLE_COUNT
} ProtoRole;

/* A string inside a message: not NUL-terminated (print with "%.*s"); never contains a
 * NUL byte (the decoder rejects those), so copying it out gives a valid C string. */
typedef struct ProtoStr {
    const char *ptr; /* view into the frame; NULL only when len == 0 */
    uint32_t len;    /* bytes */
} ProtoStr;

/* A batch of n images of h x w x c uint8, NHWC, produced by one loader. */
typedef struct ProtoBatch {
    uint32_t epoch;        /* epoch the batch belongs to, from 0 */
    uint32_t loader;       /* id of the loader that produced it */
    uint64_t seq;          /* per-loader count of batches sent, from 0 */
    uint64_t index;        /* batch index within the epoch's order */
    uint32_t n, h, w, c;   /* samples, height, width, channels */
    const uint8_t *pixels; /* n*h*w*c bytes, NHWC; the second frame */
    const void *labels;    /* n little-endian int32, maybe unaligned: proto_batch_label() */
    const void *ids;       /* n little-endian uint64, maybe unaligned: proto_batch_id() */
} ProtoBatch;

/* A loader finished its share of an epoch. */
typedef struct ProtoEndOfEpoch {
    uint32_t loader;  /* loader id */
    uint32_t epoch;   /* the epoch it finished */
    uint64_t samples; /* samples it sent in that epoch */
    uint64_t batches; /* batches it sent in that epoch */
} ProtoEndOfEpoch;

/* A sample could not be used (corrupt, truncated, too large, not a JPEG...). */
typedef struct ProtoBadFile {
    uint32_t loader;    /* loader that found it */
    uint64_t sample_id; /* index of the sample in the dataset index */
    ProtoStr path;      /* the file, 1..PROTO_MAX_PATH bytes */
    ProtoStr reason;    /* the decoder's words, 1..PROTO_MAX_TEXT bytes */
} ProtoBadFile;

/* I am alive. */
typedef struct ProtoHeartbeat {
    uint32_t role;    /* a ProtoRole */
    uint32_t id;      /* index among processes of that role */
    uint32_t pid;     /* operating-system process id */
    uint64_t time_ms; /* sender's CLOCK_REALTIME in milliseconds */
} ProtoHeartbeat;

/* Everyone stop now (control socket). */
typedef struct ProtoShutdown {
    ProtoStr reason; /* 0..PROTO_MAX_TEXT bytes */
} ProtoShutdown;

/* The trainer wrote a checkpoint (atomically) and it is ready to evaluate. */
typedef struct ProtoCheckpoint {
    ProtoStr path;  /* 1..PROTO_MAX_PATH bytes */
    uint32_t epoch; /* epoch in which it was written */
    uint64_t step;  /* optimizer steps taken so far */
    uint32_t final; /* 1: the run's last (training ended or was stopped); else 0. An
                       evaluator that paces itself never holds this one back */
} ProtoCheckpoint;

typedef struct ProtoMetric {
    ProtoStr name; /* 1..PROTO_MAX_METRIC_NAME bytes, unique within the message */
    double value;  /* any double, NaN and infinities included (a diverged loss is news) */
} ProtoMetric;

/* Named measurements at a point of training or evaluation. */
typedef struct ProtoMetrics {
    uint32_t role;  /* a ProtoRole */
    uint32_t id;    /* index among processes of that role */
    uint32_t epoch; /* epoch the figures belong to */
    uint64_t step;  /* optimizer step they belong to */
    uint32_t count; /* 0..PROTO_MAX_METRICS entries of items used */
    ProtoMetric items[PROTO_MAX_METRICS];
} ProtoMetrics;

/* A process hit an error it cannot recover from and is about to exit. */
typedef struct ProtoError {
    uint32_t role; /* a ProtoRole */
    uint32_t id;   /* index among processes of that role */
    ProtoStr text; /* 1..PROTO_MAX_TEXT bytes */
} ProtoError;

/* Any message: type says which member of u is meant. */
typedef struct ProtoMsg {
    ProtoType type;
    union {
        ProtoBatch batch;
        ProtoEndOfEpoch end_of_epoch;
        ProtoBadFile bad_file;
        ProtoHeartbeat heartbeat;
        ProtoShutdown shutdown;
        ProtoCheckpoint checkpoint;
        ProtoMetrics metrics;
        ProtoError error;
    } u;
} ProtoMsg;

/* Human name of a message type ("batch", ...), "unknown" for anything else. */
const char *proto_type_name(uint32_t type);

/* Makes a ProtoStr view of a NUL-terminated C string (which must outlive the view). */
ProtoStr proto_str(const char *s);

/* Packs m's header frame into buf[0..cap) and sets *len. For a batch the pixels are not
 * written: they travel as the second frame (m->u.batch.pixels). Validates m against the
 * same rules as the decoder and fails (-1, err) rather than send something invalid or
 * when cap is too small; PROTO_MAX_HEADER_BYTES always suffices. Allocates nothing. */
int proto_encode(const ProtoMsg *m, void *buf, size_t cap, size_t *len, StkErr *err);

/* Decodes and validates one message. hdr/hdr_len is the first frame; payload is the
 * second frame, required for a batch (its pixels) and must be NULL/0 for every other
 * type. On success *out holds views into hdr and payload. On failure returns -1 and err
 * names the field and the problem; *out is then unspecified. Allocates nothing. */
int proto_decode(const void *hdr, size_t hdr_len, const void *payload, size_t payload_len,
                 ProtoMsg *out, StkErr *err);

/* Label i of a decoded or to-be-encoded batch (i < n). */
int32_t proto_batch_label(const ProtoBatch *b, uint32_t i);

/* Sample id i of a batch (i < n). */
uint64_t proto_batch_id(const ProtoBatch *b, uint32_t i);

/* Bytes of pixels of a batch: n*h*w*c. */
uint64_t proto_batch_pixel_bytes(const ProtoBatch *b);

#endif
