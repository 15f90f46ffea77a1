/* test_st_file.c: safetensors checkpoints: round trip, atomic replacement when the disk
 * fills up, and rejection of every kind of malformed file with a message. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "st_file.h"

static char dir[64], path[128];

static void setup(void) {
    strcpy(dir, "/tmp/stoker-st-XXXXXX");
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
}

static void teardown(void) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[512];
    while (d && (e = readdir(d)))
        if (e->d_name[0] != '.') snprintf(p, sizeof p, "%s/%s", dir, e->d_name), unlink(p);
    if (d) closedir(d);
    rmdir(dir);
}

TestSuite(st_file, .init = setup, .fini = teardown);

static float w[2][3] = {{1, 2, 3}, {4, 5, 6}};
static int64_t tracked = 42;
static uint16_t half[5] = {1, 2, 3, 4, 5};

static size_t sample(StTensor *t) {
    t[0] = (StTensor){.name = "layer1.0.conv1.weight", .dtype = ST_F32, .ndim = 2, .shape = {2, 3}, .data = w};
    t[1] = (StTensor){.name = "bn1.num_batches_tracked", .dtype = ST_I64, .ndim = 0, .data = &tracked};
    t[2] = (StTensor){.name = "fc.bias", .dtype = ST_BF16, .ndim = 1, .shape = {5}, .data = half};
    t[3] = (StTensor){.name = "empty", .dtype = ST_F32, .ndim = 2, .shape = {0, 7}, .data = NULL};
    return 4;
}

Test(st_file, round_trip_keeps_names_shapes_bytes_and_metadata) {
    StTensor t[4];
    size_t n = sample(t);
    StMeta meta[2] = {{"epoch", "3"}, {"format", "pt"}};
    StkErr err;
    cr_assert_eq(st_write(path, t, n, meta, 2, &err), 0, "%s", err.msg);
    StFile f;
    cr_assert_eq(st_open(&f, path, &err), 0, "%s", err.msg);
    cr_assert_eq(f.count, 4);
    for (size_t i = 0; i < n; i++) {
        const StTensor *g = st_find(&f, t[i].name);
        cr_assert(g, "%s missing", t[i].name);
        cr_assert_eq(g->dtype, t[i].dtype);
        cr_assert_eq(g->ndim, t[i].ndim);
        for (int d = 0; d < g->ndim; d++) cr_assert_eq(g->shape[d], t[i].shape[d]);
        cr_assert_eq(g->nbytes, (size_t)st_numel(&t[i]) * st_dtype_size(t[i].dtype));
        if (g->nbytes) cr_assert(!memcmp(g->data, t[i].data, g->nbytes), "%s bytes", t[i].name);
    }
    cr_assert_str_eq(st_meta(&f, "epoch"), "3");
    cr_assert_str_eq(st_meta(&f, "format"), "pt");
    cr_assert_null(st_meta(&f, "nope"));
    /* the buffer starts 8-byte aligned: 8 + header length is a multiple of 8 */
    uint64_t hlen;
    memcpy(&hlen, f.map, 8);
    cr_assert_eq((8 + hlen) % 8, 0);
    st_close(&f);
}

Test(st_file, full_disk_leaves_the_previous_file_intact) {
    StTensor t[4];
    size_t n = sample(t);
    StkErr err;
    cr_assert_eq(st_write(path, t, n, NULL, 0, &err), 0, "%s", err.msg);
    /* a 64-byte file size limit makes the next write fail part-way, like a full disk */
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {64, 64};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    static float big[1000];
    StTensor b = {.name = "big", .dtype = ST_F32, .ndim = 1, .shape = {1000}, .data = big};
    cr_assert_eq(st_write(path, &b, 1, NULL, 0, &err), -1);
    cr_assert(strstr(err.msg, "File too large") && strstr(err.msg, "previous file"), "%s", err.msg);
    StFile f;
    cr_assert_eq(st_open(&f, path, &err), 0, "%s", err.msg);
    cr_assert(st_find(&f, "layer1.0.conv1.weight") && !st_find(&f, "big"));
    st_close(&f);
    DIR *d = opendir(dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) files += e->d_name[0] != '.';
    closedir(d);
    cr_assert_eq(files, 1, "a temporary file was left behind");
}

Test(st_file, writer_refuses_duplicate_names) {
    StTensor t[4];
    sample(t);
    t[2].name = t[0].name;
    StkErr err;
    cr_assert_eq(st_write(path, t, 3, NULL, 0, &err), -1);
    cr_assert(strstr(err.msg, "name used twice"), "%s", err.msg);
    cr_assert_eq(access(path, F_OK), -1, "a file was written");
}

/* Writes a raw file: u64 header length, header, then buffer bytes of zeros. */
static void raw(const char *header, size_t buffer, long declared) {
    FILE *fp = fopen(path, "wb");
    uint64_t n = declared >= 0 ? (uint64_t)declared : strlen(header);
    fwrite(&n, 8, 1, fp);
    fwrite(header, 1, strlen(header), fp);
    for (size_t i = 0; i < buffer; i++) fputc(0, fp);
    fclose(fp);
}

static void expect_bad(const char *want) {
    StFile f;
    StkErr err;
    cr_assert_eq(st_open(&f, path, &err), -1, "accepted; expected '%s'", want);
    cr_assert(strstr(err.msg, want) && strstr(err.msg, path), "'%s' lacks '%s'", err.msg, want);
}

Test(st_file, rejects_malformed_files) {
    raw("", 0, -1);
    cr_assert_eq(truncate(path, 5), 0);
    expect_bad("5 bytes, not a safetensors file");
    raw("{}", 0, 1000);
    expect_bad("header length 1000 does not fit");
    raw("{\"a\": ", 0, -1);
    expect_bad("header is not valid JSON");
    raw("[1, 2]", 0, -1);
    expect_bad("header is not a JSON object");
    raw("{\"a\":{\"dtype\":\"Q8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1, -1);
    expect_bad("tensor a: dtype Q8 not supported");
    raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, -1);
    expect_bad("tensor a: data_offsets outside the 4-byte buffer");
    raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, -1);
    expect_bad("tensor a: shape and dtype make 12 bytes, offsets 8");
    raw("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, -1);
    expect_bad("tensor b starts at 4, expected 8 (overlap)");
    raw("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[2,4]}}", 4, -1);
    expect_bad("tensor a starts at 2, expected 0 (hole)");
    raw("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}", 3, -1);
    expect_bad("tensors end at 2 but the buffer has 3 bytes");
    raw("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
        "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}", 2, -1);
    expect_bad("duplicate object key");
    raw("{\"__metadata__\":{\"epoch\":3}}", 0, -1);
    expect_bad("__metadata__.epoch is not a string");
    raw("{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", 1, -1);
    expect_bad("tensor a: bad shape");
}

Test(st_file, missing_file_names_it) {
    StFile f;
    StkErr err;
    cr_assert_eq(st_open(&f, "/nonexistent/m.safetensors", &err), -1);
    cr_assert(strstr(err.msg, "/nonexistent/m.safetensors: No such file"), "%s", err.msg);
}

/* The reference reader, where it is installed (the GPU test machine has it; Debian 12
 * does not package it): huggingface's safetensors must read what we write. */
Test(st_file, huggingface_safetensors_reads_our_files) {
    if (system("LD_LIBRARY_PATH= python3 -c 'import safetensors.numpy' 2>/dev/null"))
        cr_skip_test("python3 has no safetensors package here");
    StTensor t[4];
    size_t n = sample(t);
    StMeta meta[1] = {{"epoch", "3"}};
    StkErr err;
    cr_assert_eq(st_write(path, t, n, meta, 1, &err), 0, "%s", err.msg);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "LD_LIBRARY_PATH= python3 -c \"import sys; from safetensors import safe_open; "
             "f = safe_open('%s', 'np'); w = f.get_tensor('layer1.0.conv1.weight'); "
             "ok = w.shape == (2, 3) and w[1, 2] == 6 and int(f.get_tensor('bn1.num_batches_tracked')) == 42 "
             "and f.get_tensor('empty').shape == (0, 7) and f.metadata()['epoch'] == '3'; "
             "sys.exit(0 if ok else 1)\"", path);
    cr_assert_eq(system(cmd), 0, "safetensors could not read our file as written");
}
