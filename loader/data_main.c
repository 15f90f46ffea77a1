/* data_main.c: stoker-data, the dataset tool: index an ImageFolder tree, convert
 * Fashion-MNIST, generate a synthetic set, show an index, verify that every file
 * decodes, or shrink large photos. Parses arguments, calls the library, prints one
 * summary; the only place that exits.
 * Exit status: 0 done, 1 failed (verify: bad files found), 2 bad usage. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data_fmnist.h"
#include "data_pool.h"
#include "data_shrink.h"
#include "data_synth.h"
#include "data_verify.h"
#include "loader_decode.h"
#include "loader_index.h"
#include "proto_curve.h"

#define EXIT_USAGE 2

/* Every library call that can fail goes through DATA_CHECK: on failure it prints the
 * library's message and the call, and exits 1. */
#define DATA_CHECK(call, err) data_check((call), #call, __FILE__, __LINE__, (err))

static void data_check(int rc, const char *expr, const char *file, int line, const StkErr *err) {
    if (rc == 0) return;
    fprintf(stderr, "stoker-data: error: %s\n  (%s failed at %s:%d)\n", err->msg, expr, file,
            line);
    exit(EXIT_FAILURE);
}

static const char usage_main[] =
    "usage: stoker-data COMMAND [ARGS]   (stoker-data COMMAND --help for details)\n"
    "  index DIR          scan an ImageFolder tree and write its index\n"
    "  fashion-mnist OUT  write Fashion-MNIST as a JPEG ImageFolder tree, indexed\n"
    "  synth OUT          write a synthetic, learnable ImageFolder set, indexed\n"
    "  info INDEX         print an index's summary (and its samples with --list)\n"
    "  verify DIR         decode every file as the loader does; list the bad ones\n"
    "  shrink SRC DST     copy a dataset with large photos re-encoded smaller\n"
    "  keygen DIR NAME..  make CURVE key pairs for remote loaders (stoker-run --bind)\n";

static const char usage_keygen[] =
    "usage: stoker-data keygen DIR NAME [NAME...]\n"
    "Makes a ZeroMQ CURVE key pair per NAME: DIR/NAME.key (the secret, mode 0600) and\n"
    "DIR/NAME.pub (the public key, 0644), z85 text. DIR is made (mode 0700) if absent;\n"
    "existing keys are never overwritten. Typically: one `server` pair for the machine\n"
    "running stoker-run (--curve-key DIR/server.key) and one pair per loader machine,\n"
    "whose .pub files go in the directory given to stoker-run --curve-clients, while the\n"
    "loader gets --curve-key NAME.key --curve-server-key server.pub.\n";

static const char usage_index[] =
    "usage: stoker-data index DIR [--out FILE] [--val-fraction F] [--seed S]\n"
    "Scans DIR/train/<class>/ (and DIR/val/<class>/ if present) as torchvision's\n"
    "ImageFolder does and writes the index, by default to DIR/" LOADER_INDEX_DEFAULT_NAME ".\n"
    "Classes are train/'s sub-folders sorted by name (byte order of UTF-8); files are found\n"
    "recursively; only .jpg .jpeg .jpe .jfif (any case) count; names starting with '.' and\n"
    "class folders without a JPEG are skipped and reported.\n"
    "  --out FILE        where to write the index (default DIR/" LOADER_INDEX_DEFAULT_NAME ")\n"
    "  --val-fraction F  without DIR/val: share of train/ hashed into val, 0 <= F < 1\n"
    "                    (default 0.1); an error when DIR/val exists\n"
    "  --seed S          seed of that hash split (default 0); stable when files are added\n";

static const char usage_fmnist[] =
    "usage: stoker-data fashion-mnist OUT [--source DIR] [--limit N] [--quality Q] [-j N]\n"
    "Writes OUT/train/<class>/NNNNN.jpg (60,000) and OUT/val/<class>/NNNNN.jpg (10,000),\n"
    "28x28 grayscale, then OUT/" LOADER_INDEX_DEFAULT_NAME ". NNNNN is the image's position in\n"
    "the IDX file. Folders are the ten class names in the original order, \"T-shirt/top\"\n"
    "written as \"T-shirt_top\"; as in ImageFolder, labels are the sorted folder indices\n"
    "(\"Ankle boot\" = 0 ... \"Trouser\" = 9), not the original ids. Builds in\n"
    "OUT.partial-XXXXXX and renames at the end; if OUT is already complete, does nothing.\n"
    "  --source DIR  the four *-ubyte.gz files (default " DATA_FMNIST_DEFAULT_SOURCE ")\n"
    "  --limit N     only the first N images of each split (for tests)\n"
    "  --quality Q   JPEG quality 1..100 (default 95)\n"
    "  -j N          threads (default: online CPUs)\n";

static const char usage_synth[] =
    "usage: stoker-data synth OUT --classes C --per-class N [--val-per-class M]\n"
    "                         [--size WxH] [--seed S] [--quality Q] [-j N]\n"
    "Writes learnable synthetic RGB JPEGs: OUT/train/class_NNN/ and OUT/val/class_NNN/,\n"
    "then OUT/" LOADER_INDEX_DEFAULT_NAME ". A class fixes a shape kind, a hue and the shape's\n"
    "mean size and position; images vary around them under noise (about 100 KiB per\n"
    "500x375 file at quality 90). The same seed gives byte-identical files for any -j.\n"
    "  --classes C        number of classes (required)\n"
    "  --per-class N      train images per class (required)\n"
    "  --val-per-class M  val images per class (default N/10, at least 1)\n"
    "  --size WxH         image size (default 500x375)\n"
    "  --seed S           seed (default 0)\n"
    "  --quality Q        JPEG quality 1..100 (default 90)\n"
    "  -j N               threads (default: online CPUs)\n";

static const char usage_info[] =
    "usage: stoker-data info INDEX [--list]\n"
    "Validates INDEX and prints its root, split settings, classes with their sample\n"
    "counts; --list also prints every sample as: split <TAB> index <TAB> label <TAB> path.\n";

/* The help texts spell these defaults out. */
_Static_assert(LOADER_DEFAULT_MAX_PIXELS == 100000000ull, "update usage_verify, usage_shrink");
_Static_assert(DATA_SHRINK_MAX_SIDE == 8192 && DATA_SHRINK_DEFAULT_QUALITY == 90,
               "update usage_shrink");

static const char usage_verify[] =
    "usage: stoker-data verify DIR [--max-pixels N] [-j N]\n"
    "Decodes every sample of DIR/" LOADER_INDEX_DEFAULT_NAME " (train, then val) in full with the\n"
    "loader's decoder and pixel cap; prints each file the loader would skip as\n"
    "\"bad: PATH: REASON\" (PATH relative to DIR, in index order), then the line\n"
    "\"verified: N ok, M bad\". Files are read under DIR even if the index recorded\n"
    "another root. Without an index, DIR is scanned as `stoker-data index DIR` would\n"
    "scan it and nothing is written (a note on stderr says so); a damaged index is an error.\n"
    "  --max-pixels N  reject images over N pixels, as stoker-loader does (default 100000000)\n"
    "  -j N            threads (default: online CPUs)\n"
    "Exit status: 0 every file decodes, 1 bad files (or an error), 2 bad usage.\n";

static const char usage_shrink[] =
    "usage: stoker-data shrink SRC DST --max-side S [--quality Q] [--restart] [--max-pixels N]\n"
    "                          [-j N]\n"
    "Copies every sample of SRC's index (or of a scan of SRC, without one) to the same\n"
    "relative path under DST, which must not exist. Each file is decoded first, as\n"
    "`verify` does; bad files are listed as \"bad: PATH: REASON\" and left out. Images\n"
    "whose longer side is at most S are copied byte for byte; larger ones are decoded at\n"
    "a DCT scale, resized (Pillow's antialiased bilinear) to a longer side of S and a\n"
    "shorter side of round(short * S / long), at least 1, and encoded at quality Q, 4:2:0;\n"
    "grayscale stays grayscale, CMYK becomes RGB, EXIF and ICC data are dropped (the\n"
    "loader reads neither). Builds DST.partial-XXXXXX, renames it to DST, then writes\n"
    "DST/" LOADER_INDEX_DEFAULT_NAME " with SRC's split (the val/ folder, or the same hash fraction\n"
    "and seed).\n"
    "  --max-side S    longer side of shrunk images, 1..8192 (required)\n"
    "  --quality Q     JPEG quality 1..100 (default 90)\n"
    "  --restart       rewrite every file written losslessly (the same DCT coefficients,\n"
    "                  so the same pixels) with a restart marker per MCU: the loader then\n"
    "                  decodes only the part of each image its crop needs; with --max-side\n"
    "                  8192 every image up to 8192 px keeps its size and pixels\n"
    "  --max-pixels N  reject images over N pixels (default 100000000; raise it to\n"
    "                  shrink larger photos)\n"
    "  -j N            threads (default: online CPUs)\n"
    "Exit status: 0 DST written (bad files listed and left out), 1 failed, 2 bad usage.\n";

/* Prints a usage error and exits 2. */
static void usage_fail(const char *usage, const char *fmt, const char *arg) {
    fprintf(stderr, "stoker-data: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n%s", usage);
    exit(EXIT_USAGE);
}

/* Parses a whole decimal integer in [lo, hi] or exits 2 naming the option. */
static uint64_t parse_u64(const char *s, uint64_t lo, uint64_t hi, const char *opt,
                          const char *usage) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi) {
        char msg[160];
        snprintf(msg, sizeof msg, "%s: \"%%s\" is not an integer in [%llu, %llu]", opt,
                 (unsigned long long)lo, (unsigned long long)hi);
        usage_fail(usage, msg, s);
    }
    return v;
}

/* Parses --size WxH or exits 2. */
static void parse_size(const char *s, uint32_t *w, uint32_t *h) {
    char buf[64];
    const char *x = strchr(s, 'x');
    if (!x || (size_t)(x - s) >= sizeof buf) usage_fail(usage_synth, "--size: \"%s\" is not WxH", s);
    memcpy(buf, s, (size_t)(x - s));
    buf[x - s] = '\0';
    *w = (uint32_t)parse_u64(buf, DATA_SYNTH_MIN_SIDE, DATA_SYNTH_MAX_SIDE, "--size width",
                             usage_synth);
    *h = (uint32_t)parse_u64(x + 1, DATA_SYNTH_MIN_SIDE, DATA_SYNTH_MAX_SIDE, "--size height",
                             usage_synth);
}

/* Returns the one positional argument left after getopt, or exits 2. */
static const char *one_positional(int argc, char **argv, const char *what, const char *usage) {
    if (optind >= argc) usage_fail(usage, "missing %s", what);
    if (optind + 1 < argc) usage_fail(usage, "unexpected argument \"%s\"", argv[optind + 1]);
    return argv[optind];
}

/* Checks that SRC and DST are the two positional arguments left, or exits 2. */
static void two_positionals(int argc, char **argv, const char *usage) {
    if (optind + 2 > argc) usage_fail(usage, "missing %s", optind >= argc ? "SRC and DST" : "DST");
    if (optind + 2 < argc) usage_fail(usage, "unexpected argument \"%s\"", argv[optind + 2]);
}

/* Handles -h/--help and unknown options common to all commands; exits. */
static void common_option(int c, const char *usage) {
    if (c == 'h') {
        fputs(usage, stdout);
        exit(EXIT_SUCCESS);
    }
    fputs(usage, stderr); /* getopt already named the bad option */
    exit(EXIT_USAGE);
}

/* Progress on a terminal: "\r  done/total images". */
static void print_progress(void *ctx, uint64_t done, uint64_t total) {
    (void)ctx;
    fprintf(stderr, "\r  %llu/%llu images", (unsigned long long)done, (unsigned long long)total);
    if (done == total) fputc('\n', stderr);
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/* Prints the one-line summary of an index build, plus the names of skipped folders. */
static void print_scan(const char *what, const LoaderScanStats *st) {
    printf("%s: %u classes, %llu train + %llu val samples", what, st->num_classes,
           (unsigned long long)st->num_samples[LOADER_TRAIN],
           (unsigned long long)st->num_samples[LOADER_VAL]);
    if (st->val_from_folder) printf(" (val from val/)");
    else printf(" (val: hash split, fraction %g, seed %llu)", st->val_fraction,
                (unsigned long long)st->seed);
    printf("; skipped %llu hidden files, %llu hidden dirs, %llu non-JPEG, %llu other, "
           "%u empty class folders, %u val folders not in train\n",
           (unsigned long long)st->hidden_files, (unsigned long long)st->hidden_dirs,
           (unsigned long long)st->non_jpeg, (unsigned long long)st->other, st->empty_classes,
           st->unknown_val_classes);
    if (st->empty_classes) printf("  empty class folders (not classes): %s\n",
                                  st->empty_class_names);
    if (st->unknown_val_classes) printf("  val folders not in train (skipped): %s\n",
                                        st->unknown_val_names);
}

static int cmd_index(int argc, char **argv) {
    static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                         {"val-fraction", required_argument, 0, 'f'},
                                         {"seed", required_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    LoaderScanOptions so = {.val_fraction = -1, .seed = 0};
    const char *out = NULL;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        char *end;
        if (c == 'o') out = optarg;
        else if (c == 's') so.seed = parse_u64(optarg, 0, UINT64_MAX, "--seed", usage_index);
        else if (c == 'f') {
            so.val_fraction = strtod(optarg, &end);
            if (end == optarg || *end || !(so.val_fraction >= 0 && so.val_fraction < 1))
                usage_fail(usage_index, "--val-fraction: \"%s\" is not a number in [0, 1)",
                           optarg);
        } else common_option(c, usage_index);
    }
    const char *dir = one_positional(argc, argv, "DIR", usage_index);
    char def[PATH_MAX];
    if (!out) {
        snprintf(def, sizeof def, "%s/%s", dir, LOADER_INDEX_DEFAULT_NAME);
        out = def;
    }
    StkErr err;
    LoaderScanStats st;
    DATA_CHECK(loader_index_build(dir, &so, out, &st, &err), &err);
    char what[PATH_MAX + 16];
    snprintf(what, sizeof what, "indexed %s", out);
    print_scan(what, &st);
    return EXIT_SUCCESS;
}

static int cmd_fmnist(int argc, char **argv) {
    static const struct option opts[] = {{"source", required_argument, 0, 'S'},
                                         {"limit", required_argument, 0, 'l'},
                                         {"quality", required_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    DataFmnistOptions o = {.quality = DATA_FMNIST_DEFAULT_QUALITY,
                           .threads = data_pool_default_threads()};
    for (int c; (c = getopt_long(argc, argv, "hj:", opts, NULL)) != -1;) {
        if (c == 'S') o.source = optarg;
        else if (c == 'l') o.limit = (uint32_t)parse_u64(optarg, 1, UINT32_MAX, "--limit", usage_fmnist);
        else if (c == 'q') o.quality = (int)parse_u64(optarg, 1, 100, "--quality", usage_fmnist);
        else if (c == 'j') o.threads = (int)parse_u64(optarg, 1, DATA_POOL_MAX_THREADS, "-j", usage_fmnist);
        else common_option(c, usage_fmnist);
    }
    const char *out = one_positional(argc, argv, "OUT", usage_fmnist);
    if (isatty(STDERR_FILENO)) o.progress = print_progress;
    StkErr err;
    DataFmnistResult res;
    double t0 = now_s();
    DATA_CHECK(data_fmnist_write(out, &o, &res, &err), &err);
    if (res.stale_partials)
        fprintf(stderr, "stoker-data: note: %d %s.partial-* folder(s) from interrupted runs "
                "can be removed\n", res.stale_partials, out);
    if (res.already_complete)
        printf("%s is already complete (%llu train + %llu val images); nothing to do\n", out,
               (unsigned long long)res.written[0], (unsigned long long)res.written[1]);
    else
        printf("wrote %s: %llu train + %llu val images in %.1f s (-j %d)\n", out,
               (unsigned long long)res.written[0], (unsigned long long)res.written[1],
               now_s() - t0, o.threads);
    print_scan("index", &res.index);
    return EXIT_SUCCESS;
}

static int cmd_synth(int argc, char **argv) {
    static const struct option opts[] = {
        {"classes", required_argument, 0, 'c'}, {"per-class", required_argument, 0, 'n'},
        {"val-per-class", required_argument, 0, 'm'}, {"size", required_argument, 0, 'z'},
        {"seed", required_argument, 0, 's'}, {"quality", required_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    DataSynthOptions o = {.width = DATA_SYNTH_DEFAULT_WIDTH, .height = DATA_SYNTH_DEFAULT_HEIGHT,
                          .quality = DATA_SYNTH_DEFAULT_QUALITY,
                          .threads = data_pool_default_threads()};
    int64_t val = -1;
    for (int c; (c = getopt_long(argc, argv, "hj:", opts, NULL)) != -1;) {
        if (c == 'c') o.classes = (uint32_t)parse_u64(optarg, 1, DATA_SYNTH_MAX_CLASSES, "--classes", usage_synth);
        else if (c == 'n') o.per_class = (uint32_t)parse_u64(optarg, 1, UINT32_MAX, "--per-class", usage_synth);
        else if (c == 'm') val = (int64_t)parse_u64(optarg, 0, UINT32_MAX, "--val-per-class", usage_synth);
        else if (c == 'z') parse_size(optarg, &o.width, &o.height);
        else if (c == 's') o.seed = parse_u64(optarg, 0, UINT64_MAX, "--seed", usage_synth);
        else if (c == 'q') o.quality = (int)parse_u64(optarg, 1, 100, "--quality", usage_synth);
        else if (c == 'j') o.threads = (int)parse_u64(optarg, 1, DATA_POOL_MAX_THREADS, "-j", usage_synth);
        else common_option(c, usage_synth);
    }
    const char *out = one_positional(argc, argv, "OUT", usage_synth);
    if (!o.classes) usage_fail(usage_synth, "missing %s", "--classes");
    if (!o.per_class) usage_fail(usage_synth, "missing %s", "--per-class");
    o.val_per_class = val >= 0 ? (uint32_t)val : o.per_class / 10 ? o.per_class / 10 : 1;
    if (isatty(STDERR_FILENO)) o.progress = print_progress;
    StkErr err;
    DataSynthResult res;
    double t0 = now_s();
    DATA_CHECK(data_synth_write(out, &o, &res, &err), &err);
    uint64_t n = res.written[0] + res.written[1], bytes = res.bytes[0] + res.bytes[1];
    if (res.stale_partials)
        fprintf(stderr, "stoker-data: note: %d %s.partial-* folder(s) from interrupted runs "
                "can be removed\n", res.stale_partials, out);
    printf("%s %s: %llu train + %llu val images, mean %.1f KiB", res.already_complete
           ? "already complete, nothing to do:" : "wrote", out,
           (unsigned long long)res.written[0], (unsigned long long)res.written[1],
           n ? (double)bytes / n / 1024 : 0.0);
    if (!res.already_complete) printf(" in %.1f s (-j %d)", now_s() - t0, o.threads);
    printf("\n");
    print_scan("index", &res.index);
    return EXIT_SUCCESS;
}

/* Prints every sample of split as split, index, label, path. */
static void list_split(const LoaderIndex *ix, LoaderSplit split) {
    LoaderSample s;
    for (uint64_t i = 0; loader_index_get(ix, split, i, &s) == 0; i++)
        printf("%s\t%llu\t%d\t%s\n", split == LOADER_TRAIN ? "train" : "val",
               (unsigned long long)i, s.label, s.path);
}

static int cmd_info(int argc, char **argv) {
    static const struct option opts[] = {{"list", no_argument, 0, 'l'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int list = 0;
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) {
        if (c == 'l') list = 1;
        else common_option(c, usage_info);
    }
    const char *path = one_positional(argc, argv, "INDEX", usage_info);
    StkErr err;
    LoaderIndex ix;
    DATA_CHECK(loader_index_open(&ix, path, &err), &err);
    const LoaderIndexHeader *h = ix.header;
    printf("index %s: format %u, %llu bytes, root %s\n", path, h->version,
           (unsigned long long)h->file_size, loader_index_root(&ix));
    printf("%u classes, %llu train + %llu val samples, ", h->num_classes,
           (unsigned long long)h->num_samples[0], (unsigned long long)h->num_samples[1]);
    if (h->split_mode == LOADER_SPLIT_FOLDER) printf("val from val/\n");
    else printf("val: hash split, fraction %g, seed %llu\n", h->val_fraction,
                (unsigned long long)h->split_seed);
    for (uint32_t c = 0; c < h->num_classes; c++)
        printf("  %4u  %-24s %8llu train %8llu val\n", c, loader_index_class_name(&ix, c),
               (unsigned long long)loader_index_class_count(&ix, c, LOADER_TRAIN),
               (unsigned long long)loader_index_class_count(&ix, c, LOADER_VAL));
    if (list) {
        list_split(&ix, LOADER_TRAIN);
        list_split(&ix, LOADER_VAL);
    }
    loader_index_close(&ix);
    return EXIT_SUCCESS;
}

static int cmd_keygen(int argc, char **argv) {
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;) common_option(c, usage_keygen);
    if (argc - optind < 2) usage_fail(usage_keygen, "need DIR and at least one NAME%s", "");
    const char *dir = argv[optind];
    if (mkdir(dir, 0700) && errno != EEXIST) {
        fprintf(stderr, "stoker-data: mkdir %s: %s\n", dir, strerror(errno));
        return EXIT_FAILURE;
    }
    StkErr err;
    for (int i = optind + 1; i < argc; i++) {
        char base[PATH_MAX], pub[PROTO_CURVE_Z85 + 1];
        if (!argv[i][0] || strchr(argv[i], '/'))
            usage_fail(usage_keygen, "NAME \"%s\" must be a plain file name", argv[i]);
        snprintf(base, sizeof base, "%s/%s", dir, argv[i]);
        DATA_CHECK(proto_curve_keygen(base, &err), &err);
        snprintf(base, sizeof base, "%s/%s.pub", dir, argv[i]);
        DATA_CHECK(proto_curve_load_public(base, pub, &err), &err);
        printf("%s/%s.key (secret, 0600) and %s.pub: public key %s\n", dir, argv[i], argv[i], pub);
    }
    return EXIT_SUCCESS;
}

/* Prints each bad file as "bad: PATH: REASON", in index order. */
static void print_bad(const DataBadList *b) {
    for (size_t i = 0; i < b->count; i++) printf("bad: %s\n", b->items[i].text);
}

static int cmd_verify(int argc, char **argv) {
    static const struct option opts[] = {{"max-pixels", required_argument, 0, 'p'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    DataVerifyOptions o = {.threads = data_pool_default_threads(),
                           .max_pixels = LOADER_DEFAULT_MAX_PIXELS};
    for (int c; (c = getopt_long(argc, argv, "hj:", opts, NULL)) != -1;) {
        if (c == 'p') o.max_pixels = parse_u64(optarg, 1, UINT64_MAX, "--max-pixels", usage_verify);
        else if (c == 'j') o.threads = (int)parse_u64(optarg, 1, DATA_POOL_MAX_THREADS, "-j", usage_verify);
        else common_option(c, usage_verify);
    }
    const char *dir = one_positional(argc, argv, "DIR", usage_verify);
    if (isatty(STDERR_FILENO)) o.progress = print_progress;
    StkErr err;
    DataVerifyResult res;
    double t0 = now_s();
    DATA_CHECK(data_verify_run(dir, &o, &res, &err), &err);
    double dt = now_s() - t0;
    uint64_t n = res.ok + res.bad.count;
    if (!res.from_index)
        fprintf(stderr, "stoker-data: note: %s has no %s: verified a scan of it, nothing "
                "written (`stoker-data index %s` writes the index)\n", dir,
                LOADER_INDEX_DEFAULT_NAME, dir);
    fprintf(stderr, "stoker-data: decoded %llu files in %.2f s (%.0f files/s, -j %d)\n",
            (unsigned long long)n, dt, dt > 0 ? n / dt : 0.0, o.threads);
    print_bad(&res.bad);
    printf("verified: %llu ok, %zu bad\n", (unsigned long long)res.ok, res.bad.count);
    int rc = res.bad.count ? EXIT_FAILURE : EXIT_SUCCESS;
    data_verify_result_free(&res);
    return rc;
}

/* Prints shrink's summary: counts, bytes before and after, time. */
static void print_shrink(const char *src, const char *dst, const DataShrinkResult *r,
                         double dt, int threads, int restart) {
    uint64_t n = r->copied + r->shrunk + r->bad.count;
    printf("shrunk %s -> %s: %llu %s, %llu shrunk, %zu bad; %.1f MiB -> %.1f MiB (%.0f%%) "
           "in %.1f s (%.0f files/s, -j %d)\n", src, dst, (unsigned long long)r->copied,
           restart ? "rewritten with restart markers" : "copied",
           (unsigned long long)r->shrunk, r->bad.count, r->bytes_in / 1048576.0,
           r->bytes_out / 1048576.0, r->bytes_in ? 100.0 * r->bytes_out / r->bytes_in : 100.0,
           dt, dt > 0 ? n / dt : 0.0, threads);
    if (r->index.num_classes != r->src_classes)
        fprintf(stderr, "stoker-data: warning: %s has %u classes, %s had %u: a class lost "
                "every file, so labels differ\n", dst, r->index.num_classes, src,
                r->src_classes);
}

static int cmd_shrink(int argc, char **argv) {
    static const struct option opts[] = {{"max-side", required_argument, 0, 'm'},
                                         {"quality", required_argument, 0, 'q'},
                                         {"max-pixels", required_argument, 0, 'p'},
                                         {"restart", no_argument, 0, 'r'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    DataShrinkOptions o = {.quality = DATA_SHRINK_DEFAULT_QUALITY,
                           .threads = data_pool_default_threads(),
                           .max_pixels = LOADER_DEFAULT_MAX_PIXELS};
    for (int c; (c = getopt_long(argc, argv, "hj:", opts, NULL)) != -1;) {
        if (c == 'm') o.max_side = (int)parse_u64(optarg, 1, DATA_SHRINK_MAX_SIDE, "--max-side", usage_shrink);
        else if (c == 'q') o.quality = (int)parse_u64(optarg, 1, 100, "--quality", usage_shrink);
        else if (c == 'p') o.max_pixels = parse_u64(optarg, 1, UINT64_MAX, "--max-pixels", usage_shrink);
        else if (c == 'j') o.threads = (int)parse_u64(optarg, 1, DATA_POOL_MAX_THREADS, "-j", usage_shrink);
        else if (c == 'r') o.restart = 1;
        else common_option(c, usage_shrink);
    }
    two_positionals(argc, argv, usage_shrink);
    const char *src = argv[optind], *dst = argv[optind + 1];
    if (!o.max_side) usage_fail(usage_shrink, "missing %s", "--max-side");
    if (isatty(STDERR_FILENO)) o.progress = print_progress;
    StkErr err;
    DataShrinkResult res;
    double t0 = now_s();
    DATA_CHECK(data_shrink_run(src, dst, &o, &res, &err), &err);
    if (res.stale_partials)
        fprintf(stderr, "stoker-data: note: %d %s.partial-* folder(s) from interrupted runs "
                "can be removed\n", res.stale_partials, dst);
    if (!res.from_index)
        fprintf(stderr, "stoker-data: note: %s has no %s: shrank the files of a scan of it\n",
                src, LOADER_INDEX_DEFAULT_NAME);
    print_bad(&res.bad);
    print_shrink(src, dst, &res, now_s() - t0, o.threads, o.restart);
    print_scan("index", &res.index);
    data_shrink_result_free(&res);
    return EXIT_SUCCESS;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        return EXIT_SUCCESS;
    }
    /* getopt sees "stoker-data CMD" as argv[0] (it names it in its messages); it
     * permutes, so options may follow DIR. */
    static char prog[64];
    snprintf(prog, sizeof prog, "stoker-data %s", cmd);
    argv[1] = prog;
    if (strcmp(cmd, "index") == 0) return cmd_index(argc - 1, argv + 1);
    if (strcmp(cmd, "fashion-mnist") == 0) return cmd_fmnist(argc - 1, argv + 1);
    if (strcmp(cmd, "synth") == 0) return cmd_synth(argc - 1, argv + 1);
    if (strcmp(cmd, "info") == 0) return cmd_info(argc - 1, argv + 1);
    if (strcmp(cmd, "verify") == 0) return cmd_verify(argc - 1, argv + 1);
    if (strcmp(cmd, "shrink") == 0) return cmd_shrink(argc - 1, argv + 1);
    if (strcmp(cmd, "keygen") == 0) return cmd_keygen(argc - 1, argv + 1);
    fprintf(stderr, "stoker-data: unknown command \"%s\"\n%s", cmd, usage_main);
    return EXIT_USAGE;
}
