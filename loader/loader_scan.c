/* loader_scan.c: walks an ImageFolder tree (see loader_scan.h) into one string arena and
 * one sample array, then sorts them into torchvision's order.
 *
 * Directories are opened relative to their parent (openat) so that stat calls stay
 * short; the path relative to DIR is kept in one buffer for messages and samples. */
#include "loader_scan.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stk_rng.h"

/* The state of one walk: where we are (relative path and the chain of directories that
 * led here, to catch symlink loops) and where the results go. */
typedef struct ScanCtx {
    LoaderScan *scan;                        /* results */
    LoaderScanStats *st;                     /* counters */
    StkErr *err;                             /* first failure */
    char path[PATH_MAX];                     /* current directory, relative to DIR */
    size_t len;                              /* strlen(path) */
    dev_t dev[LOADER_SCAN_MAX_DEPTH + 2];    /* devices of the directories above */
    ino_t ino[LOADER_SCAN_MAX_DEPTH + 2];    /* inodes of the directories above */
    int depth;                               /* entries used in dev/ino */
} ScanCtx;

/* A sorted list of folder names (class candidates), each malloc'd. */
typedef struct NameList {
    char **names; /* [count] */
    size_t count; /* names used */
    size_t cap;   /* names allocated */
} NameList;

int loader_scan_is_jpeg_name(const char *name) {
    static const char *const exts[] = {"jpg", "jpeg", "jpe", "jfif"};
    const char *dot = strrchr(name, '.');
    if (!dot || dot == name) return 0;
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++)
        if (strcasecmp(dot + 1, exts[i]) == 0) return 1;
    return 0;
}

const char *loader_scan_class_name(const LoaderScan *scan, uint32_t c) {
    return scan->strings + scan->class_off[c];
}

void loader_scan_free(LoaderScan *scan) {
    free(scan->root);
    free(scan->strings);
    free(scan->class_off);
    free(scan->samples);
    memset(scan, 0, sizeof *scan);
}

static void names_free(NameList *l) {
    for (size_t i = 0; i < l->count; i++) free(l->names[i]);
    free(l->names);
    memset(l, 0, sizeof *l);
}

/* Appends "name" to a ", "-separated report buffer, marking truncation with "...". */
static void names_report(char *buf, const char *name) {
    size_t used = strlen(buf), room = LOADER_SCAN_NAMES_LEN - used;
    if (used >= 3 && strcmp(buf + used - 3, "...") == 0) return;
    int n = snprintf(buf + used, room, "%s%s", used ? ", " : "", name);
    if (n < 0 || (size_t)n >= room) strcpy(buf + LOADER_SCAN_NAMES_LEN - 4, "...");
}

/* Copies len bytes of s plus a NUL into the arena; returns the offset in *off. */
static int arena_push(ScanCtx *c, const char *s, size_t len, uint64_t *off) {
    LoaderScan *sc = c->scan;
    if (sc->strings_len + len + 1 > sc->strings_cap) {
        size_t cap = sc->strings_cap ? sc->strings_cap : 1 << 16;
        while (cap < sc->strings_len + len + 1) cap *= 2;
        char *p = realloc(sc->strings, cap);
        if (!p) return stk_errf(c->err, "scan: out of memory for %zu bytes of paths", cap);
        sc->strings = p;
        sc->strings_cap = cap;
    }
    memcpy(sc->strings + sc->strings_len, s, len);
    sc->strings[sc->strings_len + len] = '\0';
    *off = sc->strings_len;
    sc->strings_len += len + 1;
    return 0;
}

/* Appends the file c->path + "/" + name as a sample. */
static int scan_add(ScanCtx *c, const char *name, uint64_t size, int32_t label, uint8_t split) {
    LoaderScan *sc = c->scan;
    if (sc->num_samples == sc->sample_cap) {
        uint64_t cap = sc->sample_cap ? sc->sample_cap * 2 : 4096;
        LoaderScanSample *p = realloc(sc->samples, cap * sizeof *p);
        if (!p) return stk_errf(c->err, "scan: out of memory for %llu samples",
                                (unsigned long long)cap);
        sc->samples = p;
        sc->sample_cap = cap;
    }
    size_t nlen = strlen(name);
    if (c->len + 1 + nlen >= PATH_MAX)
        return stk_errf(c->err, "%s/%s/%s: path too long", sc->root, c->path, name);
    char full[PATH_MAX];
    memcpy(full, c->path, c->len);
    full[c->len] = '/';
    memcpy(full + c->len + 1, name, nlen + 1);
    LoaderScanSample *s = &sc->samples[sc->num_samples];
    if (arena_push(c, full, c->len + 1 + nlen, &s->path_off) != 0) return -1;
    s->path = NULL;
    s->size = size;
    s->label = label;
    s->path_len = (uint32_t)(c->len + 1 + nlen);
    s->dir_len = (uint32_t)c->len;
    s->split = split;
    sc->num_samples++;
    return 0;
}

static int scan_walk(ScanCtx *c, int fd, int32_t label, uint8_t split);

/* Pushes the directory open as fd (not taken) on the ancestor chain. Returns 1 if it
 * already is on it (a symlink loop: skip it), 0 if pushed, -1 on error. */
static int scan_push_dir(ScanCtx *c, int fd) {
    struct stat st;
    if (fstat(fd, &st) != 0)
        return stk_errf(c->err, "stat %s/%s: %s", c->scan->root, c->path, strerror(errno));
    for (int i = 0; i < c->depth; i++) {
        if (c->dev[i] == st.st_dev && c->ino[i] == st.st_ino) {
            c->st->other++;
            return 1;
        }
    }
    if (c->depth >= LOADER_SCAN_MAX_DEPTH + 2)
        return stk_errf(c->err, "%s/%s: more than %d directories deep", c->scan->root,
                        c->path, LOADER_SCAN_MAX_DEPTH);
    c->dev[c->depth] = st.st_dev;
    c->ino[c->depth] = st.st_ino;
    c->depth++;
    return 0;
}

/* Enters sub-directory name of the directory open as dfd (whose path is c->path). */
static int scan_descend(ScanCtx *c, int dfd, const char *name, int32_t label, uint8_t split) {
    size_t nlen = strlen(name), old = c->len;
    if (old + 1 + nlen >= PATH_MAX)
        return stk_errf(c->err, "%s/%s/%s: path too long", c->scan->root, c->path, name);
    c->path[old] = '/';
    memcpy(c->path + old + 1, name, nlen + 1);
    c->len = old + 1 + nlen;
    int rc = 0, fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        rc = stk_errf(c->err, "open directory %s/%s: %s", c->scan->root, c->path,
                      strerror(errno));
    } else {
        int pushed = scan_push_dir(c, fd);
        if (pushed == 0) {
            rc = scan_walk(c, fd, label, split); /* closes fd */
            c->depth--;
        } else {
            rc = pushed < 0 ? -1 : 0;
            close(fd);
        }
    }
    c->len = old;
    c->path[old] = '\0';
    return rc;
}

/* Classifies one directory entry and counts, skips, records or descends into it. */
static int scan_entry(ScanCtx *c, int dfd, const char *name, unsigned char type,
                      int32_t label, uint8_t split) {
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) return 0;
    int hidden = name[0] == '.';
    int jpeg = !hidden && loader_scan_is_jpeg_name(name);
    int known = type != DT_UNKNOWN && type != DT_LNK;
    int is_dir = type == DT_DIR, is_reg = type == DT_REG;
    struct stat st = {0};
    if (!known || (jpeg && is_reg)) { /* symlinks are followed, as os.walk(followlinks) */
        if (fstatat(dfd, name, &st, 0) != 0) {
            if (errno != ENOENT && errno != ELOOP)
                return stk_errf(c->err, "stat %s/%s/%s: %s", c->scan->root, c->path, name,
                                strerror(errno));
            c->st->other++; /* dangling symlink */
            return 0;
        }
        is_dir = S_ISDIR(st.st_mode);
        is_reg = S_ISREG(st.st_mode);
    }
    if (hidden) {
        if (is_dir) c->st->hidden_dirs++;
        else c->st->hidden_files++;
        return 0;
    }
    if (is_dir) return scan_descend(c, dfd, name, label, split);
    if (!is_reg) c->st->other++;
    else if (!jpeg) c->st->non_jpeg++;
    else return scan_add(c, name, (uint64_t)st.st_size, label, split);
    return 0;
}

/* Walks the directory open as fd (path c->path), taking ownership of fd. */
static int scan_walk(ScanCtx *c, int fd, int32_t label, uint8_t split) {
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return stk_errf(c->err, "opendir %s/%s: %s", c->scan->root, c->path, strerror(errno));
    }
    int rc = 0;
    struct dirent *de;
    for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
        if ((rc = scan_entry(c, dirfd(d), de->d_name, de->d_type, label, split)) != 0) break;
    }
    if (rc == 0 && errno != 0)
        rc = stk_errf(c->err, "readdir %s/%s: %s", c->scan->root, c->path, strerror(errno));
    closedir(d);
    return rc;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lists the non-hidden sub-directories of fd (path c->path: train or val), sorted by
 * byte order; counts hidden entries and stray files. */
static int scan_list_folders(ScanCtx *c, int fd, NameList *out) {
    DIR *d = fdopendir(dup(fd));
    if (!d) return stk_errf(c->err, "opendir %s/%s: %s", c->scan->root, c->path, strerror(errno));
    int rc = 0;
    struct dirent *de;
    for (errno = 0; rc == 0 && (de = readdir(d)) != NULL; errno = 0) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
        struct stat st;
        if (fstatat(fd, name, &st, 0) != 0) { c->st->other++; continue; }
        if (name[0] == '.') {
            if (S_ISDIR(st.st_mode)) c->st->hidden_dirs++;
            else c->st->hidden_files++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) { c->st->other++; continue; }
        if (out->count == out->cap) {
            size_t cap = out->cap ? out->cap * 2 : 64;
            char **p = realloc(out->names, cap * sizeof *p);
            if (!p) { rc = stk_errf(c->err, "scan: out of memory"); break; }
            out->names = p;
            out->cap = cap;
        }
        if (!(out->names[out->count] = strdup(name))) rc = stk_errf(c->err, "scan: out of memory");
        else out->count++;
    }
    if (rc == 0 && errno != 0)
        rc = stk_errf(c->err, "readdir %s/%s: %s", c->scan->root, c->path, strerror(errno));
    closedir(d);
    if (rc == 0 && out->count) qsort(out->names, out->count, sizeof *out->names, cmp_name);
    return rc;
}

/* Records class name at the next label. */
static int scan_add_class(ScanCtx *c, const char *name) {
    LoaderScan *sc = c->scan;
    if (sc->num_classes == sc->class_cap) {
        uint32_t cap = sc->class_cap ? sc->class_cap * 2 : 64;
        uint64_t *p = realloc(sc->class_off, cap * sizeof *p);
        if (!p) return stk_errf(c->err, "scan: out of memory");
        sc->class_off = p;
        sc->class_cap = cap;
    }
    if (arena_push(c, name, strlen(name), &sc->class_off[sc->num_classes]) != 0) return -1;
    sc->num_classes++;
    return 0;
}

/* Returns the label of a train class by name (binary search), or -1. */
static int32_t scan_find_class(const LoaderScan *sc, const char *name) {
    uint32_t lo = 0, hi = sc->num_classes;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int r = strcmp(loader_scan_class_name(sc, mid), name);
        if (r == 0) return (int32_t)mid;
        if (r < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

/* Walks every folder of split_dir ("train" or "val", open as fd). In train, each folder
 * with a JPEG becomes the next class; in val, folders map onto train's classes. */
static int scan_split(ScanCtx *c, int fd, const char *split_dir, uint8_t split) {
    NameList folders = {0};
    strcpy(c->path, split_dir);
    c->len = strlen(split_dir);
    int rc = scan_push_dir(c, fd);
    if (rc > 0) return stk_errf(c->err, "%s/%s: links back to the dataset directory",
                                c->scan->root, split_dir);
    if (rc < 0) return -1;
    rc = scan_list_folders(c, fd, &folders);
    for (size_t i = 0; rc == 0 && i < folders.count; i++) {
        const char *name = folders.names[i];
        int32_t label = split == LOADER_TRAIN ? (int32_t)c->scan->num_classes
                                              : scan_find_class(c->scan, name);
        if (label < 0) {
            c->st->unknown_val_classes++;
            names_report(c->st->unknown_val_names, name);
            continue;
        }
        uint64_t before = c->scan->num_samples;
        rc = scan_descend(c, fd, name, label, split);
        if (rc == 0 && split == LOADER_TRAIN) {
            if (c->scan->num_samples > before) {
                rc = scan_add_class(c, name);
            } else {
                c->st->empty_classes++;
                names_report(c->st->empty_class_names, name);
            }
        }
    }
    c->depth--;
    names_free(&folders);
    return rc;
}

/* Sort key: split, label, then torchvision's walk order (directory path, file name). */
static int cmp_sample(const void *pa, const void *pb) {
    const LoaderScanSample *a = pa, *b = pb;
    if (a->split != b->split) return a->split < b->split ? -1 : 1;
    if (a->label != b->label) return a->label < b->label ? -1 : 1;
    uint32_t n = a->dir_len < b->dir_len ? a->dir_len : b->dir_len;
    int r = memcmp(a->path, b->path, n);
    if (r != 0) return r;
    if (a->dir_len != b->dir_len) return a->dir_len < b->dir_len ? -1 : 1;
    return strcmp(a->path + a->dir_len + 1, b->path + b->dir_len + 1);
}

/* Moves train samples whose hash of (seed, path) falls under fraction to val. */
static void scan_hash_split(LoaderScan *sc, double fraction, uint64_t seed) {
    uint64_t key = stk_rng_mix(seed ^ 0x5354414B53504C54ull);
    for (uint64_t i = 0; i < sc->num_samples; i++) {
        LoaderScanSample *s = &sc->samples[i];
        uint64_t h = stk_rng_mix(stk_rng_fnv1a(s->path) ^ key);
        if (stk_rng_unit(h) < fraction) s->split = LOADER_VAL;
    }
}

/* Opens DIR and the split folders and runs the scan proper. */
static int scan_tree(ScanCtx *c, const char *dir, const LoaderScanOptions *opt) {
    LoaderScan *sc = c->scan;
    if (!(sc->root = realpath(dir, NULL)))
        return stk_errf(c->err, "dataset directory %s: %s", dir, strerror(errno));
    int root = open(sc->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) return stk_errf(c->err, "dataset directory %s: %s", dir, strerror(errno));
    int rc = -1, train = -1, val = -1;
    if (scan_push_dir(c, root) != 0) goto bailout;
    train = openat(root, "train", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (train < 0) {
        stk_errf(c->err, "%s/train: %s (expected DIR/train/<class>/*.jpg)", sc->root,
                 strerror(errno));
        goto bailout;
    }
    val = openat(root, "val", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (val < 0 && errno != ENOENT) {
        stk_errf(c->err, "%s/val: %s", sc->root, strerror(errno));
        goto bailout;
    }
    if (val >= 0 && opt->val_fraction >= 0) {
        stk_errf(c->err, "%s/val exists: a val fraction applies only to a tree without val/",
                 sc->root);
        goto bailout;
    }
    if (scan_split(c, train, "train", LOADER_TRAIN) != 0) goto bailout;
    if (sc->num_classes == 0) {
        stk_errf(c->err, "%s/train: no class folder with a JPEG file (.jpg .jpeg .jpe .jfif)",
                 sc->root);
        goto bailout;
    }
    if (val >= 0 && scan_split(c, val, "val", LOADER_VAL) != 0) goto bailout;
    c->st->val_from_folder = val >= 0;
    rc = 0;
bailout:
    if (val >= 0) close(val);
    if (train >= 0) close(train);
    close(root);
    return rc;
}

int loader_scan_run(LoaderScan *scan, const char *dir, const LoaderScanOptions *opt,
                    LoaderScanStats *stats, StkErr *err) {
    LoaderScanOptions defaults = {.val_fraction = -1, .seed = 0};
    LoaderScanStats local;
    if (!opt) opt = &defaults;
    if (!stats) stats = &local;
    memset(scan, 0, sizeof *scan);
    memset(stats, 0, sizeof *stats);
    if (opt->val_fraction >= 1 || opt->val_fraction != opt->val_fraction)
        return stk_errf(err, "val fraction %g: must be in [0, 1)", opt->val_fraction);
    ScanCtx *c = calloc(1, sizeof *c); /* PATH_MAX buffer: keep it off the stack */
    if (!c) return stk_errf(err, "scan: out of memory");
    c->scan = scan;
    c->st = stats;
    c->err = err;
    int rc = scan_tree(c, dir, opt);
    free(c);
    if (rc != 0) return -1;
    for (uint64_t i = 0; i < scan->num_samples; i++)
        scan->samples[i].path = scan->strings + scan->samples[i].path_off;
    stats->seed = opt->seed;
    if (!stats->val_from_folder) {
        stats->val_fraction = opt->val_fraction < 0 ? LOADER_SCAN_DEFAULT_VAL_FRACTION
                                                    : opt->val_fraction;
        scan_hash_split(scan, stats->val_fraction, opt->seed);
    }
    qsort(scan->samples, scan->num_samples, sizeof *scan->samples, cmp_sample);
    for (uint64_t i = 0; i < scan->num_samples; i++) scan->split_count[scan->samples[i].split]++;
    stats->num_classes = scan->num_classes;
    memcpy(stats->num_samples, scan->split_count, sizeof stats->num_samples);
    return 0;
}
