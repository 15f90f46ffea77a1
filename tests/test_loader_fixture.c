/* test_loader_fixture.c: scratch-tree helpers shared by the loader and data suites
 * (see test_loader_fixture.h). Not a suite itself. */
#include "test_loader_fixture.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <turbojpeg.h>
#include <unistd.h>
#include <zlib.h>

char *fx_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/stoker-test-XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(buf), "mkdtemp %s: %s", buf, strerror(errno));
    return strdup(buf);
}

char *fx_path(const char *root, const char *rel) {
    size_t n = strlen(root) + strlen(rel) + 2;
    char *p = malloc(n);
    cr_assert_not_null(p);
    snprintf(p, n, "%s/%s", root, rel);
    return p;
}

static void rm_at(int dfd, const char *name) {
    if (unlinkat(dfd, name, 0) == 0) return;
    int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    if (fd < 0) return;
    DIR *d = fdopendir(fd);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) rm_at(dirfd(d), de->d_name);
    if (d) closedir(d);
    unlinkat(dfd, name, AT_REMOVEDIR);
}

void fx_rmtree(const char *path) {
    if (path) rm_at(AT_FDCWD, path);
}

/* mkdir -p of the directory part of path (everything before the last '/'). */
static void mkdir_parents(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", path,
                  strerror(errno));
        *p = '/';
    }
}

void fx_write(const char *root, const char *rel, const void *data, size_t n) {
    char *p = fx_path(root, rel);
    mkdir_parents(p);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f, "fopen %s: %s", p, strerror(errno));
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
    free(p);
}

void fx_touch(const char *root, const char *rel) {
    fx_write(root, rel, "\xff\xd8\xff\xe0 not decoded", 16);
}

void fx_mkdir(const char *root, const char *rel) {
    char *p = fx_path(root, rel);
    mkdir_parents(p);
    cr_assert(mkdir(p, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", p, strerror(errno));
    free(p);
}

void fx_symlink(const char *target, const char *root, const char *rel) {
    char *p = fx_path(root, rel);
    mkdir_parents(p);
    cr_assert_eq(symlink(target, p), 0, "symlink %s: %s", p, strerror(errno));
    free(p);
}

uint8_t *fx_read(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "fopen %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(size > 0 ? (size_t)size : 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    *n = (size_t)size;
    return buf;
}

int fx_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

uint8_t *fx_idx_bytes(uint32_t magic, uint32_t count, uint32_t rows, uint32_t cols,
                      const uint8_t *payload, size_t payload_len, size_t *n) {
    size_t head = (magic & 0xff) == 3 ? 16 : 8;
    uint8_t *buf = malloc(head + payload_len + 1);
    cr_assert_not_null(buf);
    put_be32(buf, magic);
    put_be32(buf + 4, count);
    if (head == 16) {
        put_be32(buf + 8, rows);
        put_be32(buf + 12, cols);
    }
    if (payload_len) memcpy(buf + head, payload, payload_len);
    *n = head + payload_len;
    return buf;
}

void fx_write_gz(const char *root, const char *rel, const void *data, size_t n) {
    fx_mkdir(root, ".");
    char *p = fx_path(root, rel);
    mkdir_parents(p);
    gzFile gz = gzopen(p, "wb");
    cr_assert_not_null(gz, "gzopen %s", p);
    cr_assert_eq(gzwrite(gz, data, (unsigned)n), (int)n);
    cr_assert_eq(gzclose(gz), Z_OK);
    free(p);
}

void fx_jpeg_dataset(const char *root) {
    static const char *good[FX_DATASET_GOOD] = {
        "ycc420", "ycc444", "progressive", "gray", "cmyk", "restart",
        "one_pixel", "strip_2000x3", "tall_3x200", "scaled_256x192"};
    for (size_t i = 0; i < FX_DATASET_GOOD; i++) {
        char src[512], rel[128];
        snprintf(src, sizeof src, "%s/jpeg/%s.jpg", STOKER_TEST_DATA, good[i]);
        size_t n;
        uint8_t *bytes = fx_read(src, &n);
        snprintf(rel, sizeof rel, "train/%c/%s.jpg", "abc"[i % 3], good[i]);
        fx_write(root, rel, bytes, n);
        if (i < 6) {
            snprintf(rel, sizeof rel, "val/%c/%s.jpg", "abc"[i % 3], good[i]);
            fx_write(root, rel, bytes, n);
        }
        if (i == 0) fx_write(root, "train/b/truncated.jpg", bytes, n / 2);
        free(bytes);
    }
    fx_write(root, "train/b/empty.jpg", "", 0);
    fx_write(root, "train/b/text.jpg", "hello, not a jpeg\n", 18);
}

double fx_gradient_value(double x, double y, int w, int h, int ch, int gray) {
    double r = w > 1 ? 255.0 * x / (w - 1) : 0, g = h > 1 ? 255.0 * y / (h - 1) : 0;
    if (gray) return (r + g) / 2;
    return ch == 0 ? r : ch == 1 ? g : 255.0 - r;
}

void fx_gradient_jpeg(const char *root, const char *rel, int w, int h, int gray) {
    int c = gray ? 1 : 3;
    uint8_t *px = malloc((size_t)w * h * c);
    cr_assert_not_null(px);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++)
                px[((size_t)y * w + x) * c + ch] =
                    (uint8_t)(fx_gradient_value(x, y, w, h, ch, gray) + 0.5);
    tjhandle tj = tjInitCompress();
    cr_assert_not_null(tj);
    unsigned char *jpeg = NULL;
    unsigned long n = 0;
    cr_assert_eq(tjCompress2(tj, px, w, 0, h, gray ? TJPF_GRAY : TJPF_RGB, &jpeg, &n,
                             gray ? TJSAMP_GRAY : TJSAMP_420, 95, 0), 0, "tjCompress2: %s",
                 tjGetErrorStr2(tj));
    fx_write(root, rel, jpeg, n);
    tjFree(jpeg);
    tjDestroy(tj);
    free(px);
}

/* Copies file path into buf (cap bytes, NUL-terminated, truncated). */
static void read_log(const char *path, char *buf, size_t cap) {
    if (!buf || !cap) return;
    size_t n;
    uint8_t *text = fx_read(path, &n);
    n = n < cap - 1 ? n : cap - 1;
    memcpy(buf, text, n);
    buf[n] = '\0';
    free(text);
}

int fx_run_tool(const char *dir, const char *tool, const char *args, char *out,
                size_t out_cap, char *errout, size_t err_cap) {
    char cmd[8192], *log = fx_path(dir, "tool.out"), *elog = fx_path(dir, "tool.err");
    snprintf(cmd, sizeof cmd, "'%s/%s' %s >'%s' 2>'%s'", STOKER_BIN_DIR, tool, args, log,
             elog);
    int st = system(cmd);
    read_log(log, out, out_cap);
    read_log(elog, errout, err_cap);
    unlink(log);
    unlink(elog);
    free(log);
    free(elog);
    cr_assert(WIFEXITED(st), "%s %s did not exit", tool, args);
    return WEXITSTATUS(st);
}
