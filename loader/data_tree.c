/* data_tree.c: partial directory, completion marker, atomic rename, and the small file
 * system helpers the dataset writers share. */
#include "data_tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loader_index.h"

int data_tree_mkdirs(const char *path, StkErr *err) {
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return stk_errf(err, "mkdir %s: path too long", path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') continue;
        char saved = *p;
        *p = '\0';
        struct stat st;
        if (mkdir(buf, 0755) != 0 && (errno != EEXIST || stat(buf, &st) != 0 ||
                                      !S_ISDIR(st.st_mode)))
            return stk_errf(err, "mkdir %s: %s", buf,
                            errno == EEXIST ? "exists and is not a directory" : strerror(errno));
        *p = saved;
        if (saved == '\0') return 0;
    }
}

int data_tree_write_file(const char *path, const void *buf, size_t n, StkErr *err) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return stk_errf(err, "create %s: %s", path, strerror(errno));
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            stk_errf(err, "write %s: %s", path, w < 0 ? strerror(errno) : "wrote nothing");
            close(fd);
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    if (close(fd) != 0) return stk_errf(err, "close %s: %s", path, strerror(errno));
    return 0;
}

/* Removes everything inside the directory open as fd, then closes fd. */
static int rmtree_fd(int fd) {
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return -1;
    }
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
        if (unlinkat(dirfd(d), name, 0) == 0) continue;
        if (errno != EISDIR && errno != EPERM) { rc = -1; continue; }
        int sub = openat(dirfd(d), name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub < 0 || rmtree_fd(sub) != 0 || unlinkat(dirfd(d), name, AT_REMOVEDIR) != 0)
            rc = -1;
    }
    closedir(d);
    return rc;
}

int data_tree_rmtree(const char *path) {
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return unlink(path);
    if (rmtree_fd(fd) != 0) return -1;
    return rmdir(path);
}

/* Copies the first line-ish part of a marker for a message: newlines become "; ". */
static void marker_quote(char *dst, size_t size, const char *text) {
    size_t j = 0;
    for (size_t i = 0; text[i] && j + 3 < size; i++) {
        if (text[i] != '\n') dst[j++] = text[i];
        else if (text[i + 1]) { dst[j++] = ';'; dst[j++] = ' '; }
    }
    dst[j] = '\0';
}

int data_tree_check(const char *out, const char *params, int *complete, char *marker,
                    size_t marker_size, StkErr *err) {
    *complete = 0;
    struct stat st;
    if (stat(out, &st) != 0) {
        if (errno == ENOENT) return 0;
        return stk_errf(err, "%s: %s", out, strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) return stk_errf(err, "%s exists and is not a directory", out);
    char path[PATH_MAX], text[DATA_TREE_MARKER_MAX] = {0};
    snprintf(path, sizeof path, "%s/%s", out, DATA_TREE_MARKER);
    FILE *f = fopen(path, "r");
    if (!f)
        return stk_errf(err, "%s exists but has no %s marker (an interrupted or foreign "
                        "tree): remove it or choose another directory", out, DATA_TREE_MARKER);
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    if (strncmp(text, params, strlen(params)) != 0) {
        char have[256], want[256];
        marker_quote(have, sizeof have, text);
        marker_quote(want, sizeof want, params);
        return stk_errf(err, "%s holds another build (%s; wanted %s): remove it or choose "
                        "another directory", out, have, want);
    }
    if (marker) snprintf(marker, marker_size, "%s", text);
    *complete = 1;
    return 0;
}

/* Checks a class folder name: non-empty, not hidden (the scan would skip it), no '/'. */
static int check_class_name(const char *name, StkErr *err) {
    if (!name[0] || name[0] == '.' || strchr(name, '/'))
        return stk_errf(err, "class name \"%s\" cannot be a folder name", name);
    return 0;
}

/* Makes partial/<split>/<class> for both splits and every class. */
static int tree_class_dirs(DataTree *t, const char *const *classes, uint32_t n, StkErr *err) {
    static const char *const splits[] = {"train", "val"};
    char path[PATH_MAX];
    for (int s = 0; s < 2; s++) {
        for (uint32_t c = 0; c < n; c++) {
            if (check_class_name(classes[c], err) != 0) return -1;
            if (snprintf(path, sizeof path, "%s/%s/%s", t->partial, splits[s], classes[c]) >=
                (int)sizeof path)
                return stk_errf(err, "%s/%s/%s: path too long", t->partial, splits[s],
                                classes[c]);
            if (data_tree_mkdirs(path, err) != 0) return -1;
        }
    }
    return 0;
}

int data_tree_begin(DataTree *t, const char *out, const char *const *classes, uint32_t n,
                    StkErr *err) {
    memset(t, 0, sizeof *t);
    size_t len = strlen(out);
    while (len > 1 && out[len - 1] == '/') len--;
    if (len == 0 || len + 32 >= sizeof t->out) return stk_errf(err, "output directory \"%s\": "
                                                               "empty or too long", out);
    memcpy(t->out, out, len);
    char parent[PATH_MAX];
    memcpy(parent, t->out, len + 1);
    if (data_tree_mkdirs(dirname(parent), err) != 0) return -1;
    if (snprintf(t->partial, sizeof t->partial, "%s.partial-XXXXXX", t->out) >=
        (int)sizeof t->partial) {
        t->partial[0] = '\0';
        return stk_errf(err, "output directory %s: path too long", t->out);
    }
    if (!mkdtemp(t->partial)) {
        int e = errno;
        char tmpl[PATH_MAX];
        snprintf(tmpl, sizeof tmpl, "%s", t->partial);
        t->partial[0] = '\0';
        return stk_errf(err, "mkdtemp %s: %s", tmpl, strerror(e));
    }
    chmod(t->partial, 0755); /* mkdtemp makes it 0700; the tree is meant to be shared */
    if (tree_class_dirs(t, classes, n, err) != 0) {
        data_tree_abort(t);
        return -1;
    }
    return 0;
}

int data_tree_commit(DataTree *t, const char *marker_text, StkErr *err) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", t->partial, DATA_TREE_MARKER) >= (int)sizeof path)
        return stk_errf(err, "%s: path too long", t->partial);
    if (data_tree_write_file(path, marker_text, strlen(marker_text), err) != 0) return -1;
    sync(); /* the marker must not reach the disk before the images it vouches for */
    if (rename(t->partial, t->out) != 0)
        return stk_errf(err, "rename %s to %s: %s", t->partial, t->out,
                        errno == EEXIST || errno == ENOTEMPTY
                            ? "the target appeared meanwhile (another run?)" : strerror(errno));
    t->partial[0] = '\0';
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", t->out);
    int fd = open(dirname(parent), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return 0;
}

void data_tree_abort(DataTree *t) {
    if (t->partial[0]) data_tree_rmtree(t->partial);
    t->partial[0] = '\0';
}

int data_tree_stale(const char *out) {
    char buf[PATH_MAX], prefix[PATH_MAX];
    size_t len = strlen(out);
    while (len > 1 && out[len - 1] == '/') len--;
    if (len >= sizeof buf) return 0;
    memcpy(buf, out, len);
    buf[len] = '\0';
    snprintf(prefix, sizeof prefix, "%s.partial-", basename(buf));
    memcpy(buf, out, len);
    buf[len] = '\0';
    DIR *d = opendir(dirname(buf));
    if (!d) return 0;
    int count = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) count++;
    closedir(d);
    return count;
}

int data_tree_index(const char *out, LoaderScanStats *stats, StkErr *err) {
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", out, LOADER_INDEX_DEFAULT_NAME) >= (int)sizeof path)
        return stk_errf(err, "%s: path too long", out);
    LoaderIndex ix;
    if (loader_index_open(&ix, path, NULL) == 0) {
        memset(stats, 0, sizeof *stats);
        stats->num_classes = loader_index_num_classes(&ix);
        stats->num_samples[LOADER_TRAIN] = loader_index_count(&ix, LOADER_TRAIN);
        stats->num_samples[LOADER_VAL] = loader_index_count(&ix, LOADER_VAL);
        stats->val_from_folder = ix.header->split_mode == LOADER_SPLIT_FOLDER;
        loader_index_close(&ix);
        return 0;
    }
    return loader_index_build(out, NULL, path, stats, err);
}
