/* fuzz_proto_seeds.c: writes one valid message of every type, in the fuzz target's
 * input layout, into DIR, as the fuzzer's starting corpus. usage: fuzz_proto_seeds DIR */
#include <stdio.h>
#include <string.h>

#include "proto.h"

static uint8_t buf[1 << 16];

static int write_seed(const char *dir, const ProtoMsg *m, const void *pay, size_t plen) {
    size_t len;
    StkErr err;
    if (proto_encode(m, buf + 3, sizeof buf - 3 - plen, &len, &err)) {
        fprintf(stderr, "fuzz_proto_seeds: %s\n", err.msg);
        return -1;
    }
    buf[0] = pay != NULL;
    buf[1] = (uint8_t)(len >> 8);
    buf[2] = (uint8_t)len;
    if (pay) memcpy(buf + 3 + len, pay, plen);
    char path[4096];
    snprintf(path, sizeof path, "%s/seed-%s", dir, proto_type_name(m->type));
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, 3 + len + plen, f) != 3 + len + plen || fclose(f)) {
        perror(path);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fuzz_proto_seeds DIR\n");
        return 2;
    }
    static uint8_t pixels[2 * 3 * 3 * 3];
    int32_t labels[2] = {1, 2};
    uint64_t ids[2] = {3, 4};
    ProtoMsg m[8] = {{.type = PROTO_BATCH}, {.type = PROTO_END_OF_EPOCH},
                     {.type = PROTO_BAD_FILE}, {.type = PROTO_HEARTBEAT},
                     {.type = PROTO_SHUTDOWN}, {.type = PROTO_CHECKPOINT},
                     {.type = PROTO_METRICS}, {.type = PROTO_ERROR}};
    m[0].u.batch = (ProtoBatch){.n = 2, .h = 3, .w = 3, .c = 3, .pixels = pixels,
                                .labels = labels, .ids = ids};
    m[2].u.bad_file = (ProtoBadFile){.path = proto_str("a/b.jpg"), .reason = proto_str("bad")};
    m[4].u.shutdown.reason = proto_str("done");
    m[5].u.checkpoint = (ProtoCheckpoint){.path = proto_str("ck/last.safetensors"), .step = 9};
    m[6].u.metrics.count = 2;
    m[6].u.metrics.items[0] = (ProtoMetric){proto_str("loss"), 2.5};
    m[6].u.metrics.items[1] = (ProtoMetric){proto_str("top1"), 0.5};
    m[7].u.error.text = proto_str("oops");
    for (int i = 0; i < 8; i++)
        if (write_seed(argv[1], &m[i], i == 0 ? pixels : NULL, i == 0 ? sizeof pixels : 0))
            return 1;
    return 0;
}
