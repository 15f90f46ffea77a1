/* run_args.c: stoker-run's command line and config.json (see run_sup.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "run_sup.h"
#include "loader_index.h"
#include "st_file.h"
#include "train_plan.h"

static void usage(FILE *f) {
    fprintf(f,
        "usage: stoker-run --data-path DIR [-j N] [--output-dir DIR] [stoker-train flags]\n"
        "       stoker-run --resume RUNDIR [flags]\n"
        "Starts N loaders, stoker-train and stoker-eval, shows progress and writes the run\n"
        "directory (config.json, metrics.jsonl, metrics.csv, bad_files.log, checkpoints/,\n"
        "plots/). Ctrl-C stops it with a final checkpoint, which is then evaluated (Ctrl-C\n"
        "again skips that); --resume continues that run.\n"
        "  -j, --workers N     loader processes (default: the cores left after the trainer,\n"
        "                      the evaluator and its val loader, at least 1)\n"
        "  --output-dir DIR    the run directory (runs/<time>)\n"
        "  --resume RUNDIR     continue the run in RUNDIR from checkpoints/last.safetensors\n"
        "  --tcp PORT          sockets on tcp://127.0.0.1:PORT..PORT+3 instead of private ipc\n"
        "  --bind ADDR         with --tcp: bind that IPv4 address, or * for all, so loaders\n"
        "                      on other hosts can connect; refused without --curve-key unless\n"
        "                      it is loopback (127.x.x.x)\n"
        "  --curve-key FILE    CURVE on every socket: this server's key pair (stoker-data\n"
        "                      keygen DIR server: DIR/server.key, mode 0600)\n"
        "  --curve-clients DIR admit the loaders whose public keys are DIR/*.pub; every other\n"
        "                      key is refused (logged)\n"
        "  --remote-loaders R  R more loaders run on other hosts (ids after the -j local ones);\n"
        "                      their command lines are printed at the start\n"
        "  --gpus N            N trainer ranks (data parallel; -b is per rank), the loaders\n"
        "                      dealt out to them; ports PORT+4.. with --tcp (see README)\n"
        "  --no-eval           no evaluator beside training (checkpoints are still written;\n"
        "                      evaluate one later with stoker-eval --checkpoint FILE)\n"
        "  --eval-duty F       the evaluator spends at most F of the time evaluating: a notice\n"
        "                      sooner after the last evaluation waits, newer ones replacing\n"
        "                      it, the final checkpoint's never (stoker-eval --duty; default\n"
        "                      0.025 on a GPU, where it takes time from the trainer; 1 on the\n"
        "                      CPU, where it has a core of its own: every checkpoint)\n"
        "  --hang-timeout S    a loader without a heartbeat for S s is killed and restarted;\n"
        "                      the trainer silent for 5 S is named (60)\n"
        "Every other flag goes to stoker-train (see stoker-train --help).\n");
}

static void bad(const char *what) {
    fprintf(stderr, "stoker-run: %s (see --help)\n", what);
    exit(2);
}

/* The flags recorded in RUNDIR/config.json, for a bare --resume. */
static void recorded_args(Sup *s) {
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/config.json", s->resume_dir);
    json_error_t je;
    json_t *c = json_load_file(p, 0, &je), *a = c ? json_object_get(c, "train_args") : NULL;
    if (!json_is_array(a)) {
        fprintf(stderr, "stoker-run: --resume: %s: %s\n", p, c ? "no train_args" : je.text);
        exit(2);
    }
    for (size_t i = 0; i < json_array_size(a) && s->nuser < RUN_MAX_USER_ARGS; i++)
        if (json_is_string(json_array_get(a, i)))
            s->user[s->nuser++] = strdup(json_string_value(json_array_get(a, i)));
    json_decref(c);
}

/* The epoch after the one the run's last checkpoint completed. */
static int resume_epoch(const char *dir) {
    char p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/checkpoints/last.state.safetensors", dir);
    StFile f;
    StkErr err;
    if (st_open(&f, p, &err)) {
        fprintf(stderr, "stoker-run: --resume: %s\n", err.msg);
        exit(2);
    }
    const char *e = st_meta(&f, "epoch");
    int epoch = e ? atoi(e) + 1 : 0;
    st_close(&f);
    return epoch;
}

/* s->out made absolute: the children and checkpoint notices use it from other cwds. */
static void absolute_out(Sup *s, const char *dir) {
    char cwd[PATH_MAX / 2];
    if (dir[0] == '/' || !getcwd(cwd, sizeof cwd)) snprintf(s->out, sizeof s->out, "%s", dir);
    else snprintf(s->out, sizeof s->out, "%s/%s", cwd, dir);
}

static void split_args(Sup *s, int argc, char **argv, const char **out) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) usage(stdout), exit(0);
        if (!strcmp(a, "-j") || !strcmp(a, "--workers") || !strncmp(a, "-j", 2) ||
            !strncmp(a, "--workers=", 10)) {
            const char *n = a[1] == 'j' && a[2] ? a + 2 : !strncmp(a, "--workers=", 10) ? a + 10 : v;
            if (n == v) i++;
            if (!n || (s->workers = atoi(n)) < 1 || s->workers > RUN_MAX_PROCS - 2) bad("bad -j");
        } else if (!strcmp(a, "--no-eval")) {
            s->no_eval = 1;
        } else if (!strcmp(a, "--eval-duty")) {
            char *end = NULL;
            if (v) s->eval_duty = strtod(v, &end);
            if (!v || end == v || *end || !(s->eval_duty > 0 && s->eval_duty <= 1))
                bad("--eval-duty: a fraction in (0, 1]");
            i++;
        } else if (!strcmp(a, "--hang-timeout")) {
            if (!v || (s->hang_s = atoi(v)) < 1) bad("bad --hang-timeout");
            i++;
        } else if (!strcmp(a, "--bind")) {
            if (!v || strlen(v) >= sizeof s->bind_host) bad("bad --bind address");
            snprintf(s->bind_host, sizeof s->bind_host, "%s", v);
            i++;
        } else if (!strcmp(a, "--curve-key") || !strcmp(a, "--curve-clients")) {
            if (!v) bad("a flag without its value");
            if (a[8] == 'k') s->curve_key = v;
            else s->curve_clients = v;
            i++;
        } else if (!strcmp(a, "--remote-loaders")) {
            if (!v || (s->remote = atoi(v)) < 1 || s->remote > RUN_MAX_PROCS) bad("bad --remote-loaders");
            i++;
        } else if (!strcmp(a, "--tcp")) {
            if (!v || (s->tcp_port = atoi(v)) < 1 || s->tcp_port > 65532) bad("bad --tcp port");
            i++;
        } else if (!strcmp(a, "--output-dir") || !strcmp(a, "--resume")) {
            if (!v) bad("a flag without its value");
            if (a[2] == 'o') *out = v;
            else s->resume_dir = v;
            i++;
        } else if (s->nuser < RUN_MAX_USER_ARGS) {
            s->user[s->nuser++] = a;
        } else {
            bad("too many flags");
        }
    }
}

/* 1 for a loopback address: only this host can reach it. */
static int loopback(const char *host) {
    struct in_addr a;
    return inet_pton(AF_INET, host, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

/* An absolute path for a key file or directory: children and config.json see the same. */
static const char *absolute(const char *path) {
    char *r = realpath(path, NULL);
    if (!r) {
        fprintf(stderr, "stoker-run: %s: %s\n", path, strerror(errno));
        exit(2);
    }
    return r;
}

/* --tcp, --bind, CURVE and remote loaders fit together: a socket others can reach is
 * never plain. */
static void check_network(Sup *s) {
    if (s->bind_host[0] && !s->tcp_port) bad("--bind needs --tcp PORT");
    if (!s->bind_host[0] || !strcmp(s->bind_host, "localhost")) /* ZeroMQ binds addresses */
        snprintf(s->bind_host, sizeof s->bind_host, "127.0.0.1");
    struct in_addr a;
    if (strcmp(s->bind_host, "*") && inet_pton(AF_INET, s->bind_host, &a) != 1)
        bad("--bind takes an IPv4 address or *");
    if ((s->curve_key || s->curve_clients || s->remote) && !s->tcp_port)
        bad("--curve-key, --curve-clients and --remote-loaders are for tcp: add --tcp PORT");
    if (s->curve_clients && !s->curve_key) bad("--curve-clients needs --curve-key");
    if (!loopback(s->bind_host) && !s->curve_key) {
        fprintf(stderr, "stoker-run: --bind %s is not a loopback address: other hosts could "
                "connect, so it needs CURVE: --curve-key FILE (the server key pair) and "
                "--curve-clients DIR (the loaders' public keys); make them with `stoker-data "
                "keygen DIR server NAME...`\n", s->bind_host);
        exit(2);
    }
    if (s->remote && !loopback(s->bind_host) && !s->curve_clients)
        bad("--remote-loaders over CURVE need --curve-clients DIR with their public keys");
    if (s->curve_key) s->curve_key = absolute(s->curve_key);
    if (s->curve_clients) s->curve_clients = absolute(s->curve_clients);
    int any = !strcmp(s->bind_host, "*") || !strcmp(s->bind_host, "0.0.0.0");
    snprintf(s->conn_host, sizeof s->conn_host, "%s", any ? "127.0.0.1" : s->bind_host);
}

void parse_args(Sup *s, int argc, char **argv) {
    const char *out = NULL;
    split_args(s, argc, argv, &out);
    check_network(s);
    if (s->resume_dir && !s->nuser) recorded_args(s);
    char *check[RUN_MAX_USER_ARGS + 2] = {"stoker-run"};
    for (int i = 0; i < s->nuser; i++) check[i + 1] = (char *)s->user[i];
    if (train_config_parse(&s->tc, s->nuser + 1, check)) exit(2); /* getopt permutes: a copy */
    if (!s->hang_s) s->hang_s = 60;
    s->gpus = s->tc.gpus;
    if (!s->workers) s->workers = run_ranks_default_workers(sysconf(_SC_NPROCESSORS_ONLN), s->gpus, !s->no_eval);
    if (s->workers < s->gpus) bad("-j must be at least --gpus: each rank needs its own loaders");
    if (s->workers + s->gpus + 1 > RUN_MAX_PROCS) bad("too many loaders and ranks");
    if (s->tcp_port && s->tcp_port + 4 + s->gpus > 65535) bad("--tcp PORT: too high for --gpus");
    if (s->gpus > 1 && s->remote)
        bad("--remote-loaders with --gpus > 1: not yet (remote loaders feed one rank)");
    if (s->gpus > 1 && (s->tc.rank || s->tc.dist_endpoint))
        bad("--rank and --dist-endpoint are stoker-run's to give, one per rank");
    if (s->resume_dir) {
        if (out) bad("--resume continues in its own directory: no --output-dir");
        absolute_out(s, s->resume_dir);
        s->start_epoch = resume_epoch(s->out);
        if (s->start_epoch >= s->tc.epochs) bad("--resume: that run has done all its epochs");
    } else if (out) {
        absolute_out(s, out);
    } else {
        char name[64];
        time_t t = time(NULL);
        strftime(name, sizeof name, "runs/%Y%m%d-%H%M%S", localtime(&t));
        absolute_out(s, name);
    }
    s->train_epoch = (uint32_t)s->start_epoch;
}

/* The dataset's index, built now if it has none: the loaders start with the trainer and
 * need it at once, and the plan below reads its class count. */
static void ensure_index(const Sup *s) {
    char path[PATH_MAX];
    StkErr err;
    snprintf(path, sizeof path, "%s/%s", s->tc.data_path, LOADER_INDEX_DEFAULT_NAME);
    if (!access(path, R_OK)) return;
    LoaderScanOptions opt = {.val_fraction = -1};
    printf("stoker-run: indexing %s\n", s->tc.data_path);
    if (loader_index_build(s->tc.data_path, &opt, NULL, NULL, &err)) {
        fprintf(stderr, "stoker-run: index %s: %s\n", s->tc.data_path, err.msg);
        exit(1);
    }
}

void plan_batches(Sup *s) {
    ensure_index(s);
    TrainSplit sp;
    StkErr err;
    if (train_plan_split_flags(&s->tc, NULL, &sp, &err)) {
        fprintf(stderr, "stoker-run: memory plan: %s\n", err.msg);
        exit(2);
    }
    s->micro = sp.micro, s->accum = sp.accum;
}

void *config_json(const Sup *s, int argc, char **argv) {
    const TrainConfig *c = &s->tc;
    json_t *o = json_object(), *a = json_array(), *t = json_array();
    for (int i = 0; i < argc; i++) json_array_append_new(a, json_string(argv[i]));
    for (int i = 0; i < s->nuser; i++) json_array_append_new(t, json_string(s->user[i]));
    static const char *const opts[] = {"sgd", "adamw"};
    static const char *const scheds[] = {"steplr", "cosineannealinglr", "exponentiallr"};
    json_object_set_new(o, "argv", a);
    json_object_set_new(o, "train_args", t);
    json_object_set_new(o, "data_path", json_string(c->data_path));
    json_object_set_new(o, "model", json_string(c->model));
    json_object_set_new(o, "backend", json_string("cpu"));
    json_object_set_new(o, "output_dir", json_string(s->out));
    json_object_set_new(o, "resume", s->resume_dir ? json_string(s->resume_dir) : json_null());
    json_object_set_new(o, "start_epoch", json_integer(s->start_epoch));
    json_object_set_new(o, "epochs", json_integer(c->epochs));
    json_object_set_new(o, "batch_size", json_integer(c->batch_size));
    json_object_set_new(o, "micro_batch", json_integer(s->micro));
    json_object_set_new(o, "accum_steps", json_integer(s->accum));
    json_object_set_new(o, "workers", json_integer(s->workers));
    json_object_set_new(o, "opt", json_string(opts[c->opt.kind]));
    json_object_set_new(o, "lr", json_real(c->sched.lr));
    json_object_set_new(o, "momentum", json_real(c->opt.momentum));
    json_object_set_new(o, "nesterov", json_boolean(c->opt.nesterov));
    json_object_set_new(o, "weight_decay", json_real(c->weight_decay));
    json_object_set_new(o, "norm_weight_decay", json_real(c->norm_weight_decay));
    json_object_set_new(o, "label_smoothing", json_real(c->label_smoothing));
    json_object_set_new(o, "lr_scheduler", json_string(scheds[c->sched.kind]));
    json_object_set_new(o, "lr_step_size", json_integer(c->sched.step_size));
    json_object_set_new(o, "lr_gamma", json_real(c->sched.gamma));
    json_object_set_new(o, "lr_min", json_real(c->sched.lr_min));
    json_object_set_new(o, "lr_warmup_epochs", json_integer(c->sched.warmup_epochs));
    json_object_set_new(o, "lr_warmup_decay", json_real(c->sched.warmup_decay));
    json_object_set_new(o, "lr_per_iteration", json_boolean(c->lr_per_iteration));
    json_object_set_new(o, "seed", json_integer((json_int_t)c->seed));
    json_object_set_new(o, "train_crop_size", json_integer(c->train_crop));
    json_object_set_new(o, "val_resize_size", json_integer(c->val_resize));
    json_object_set_new(o, "val_crop_size", json_integer(c->val_crop));
    json_object_set_new(o, "rrc_scale", c->rrc_scale ? json_string(c->rrc_scale) : json_null());
    json_object_set_new(o, "deterministic", json_boolean(c->deterministic));
    json_object_set_new(o, "print_freq", json_integer(c->print_freq));
    json_object_set_new(o, "gpus", json_integer(s->gpus));
    json_object_set_new(o, "sockets", json_pack("{s:s, s:s, s:s, s:s}", "data", s->ep_data[0],
                                                "checkpoints", s->ep_ckpt, "control", s->ep_ctl,
                                                "reports", s->ep_rep));
    json_object_set_new(o, "bind", json_string(s->tcp_port ? s->bind_host : "ipc"));
    json_object_set_new(o, "curve", s->curve_key ? json_pack("{s:s, s:s?, s:s}", "key", s->curve_key,
                        "clients", s->curve_clients, "public_key", s->curve.pub) : json_null());
    json_object_set_new(o, "remote_loaders", json_integer(s->remote));
    json_object_set_new(o, "evaluator", json_boolean(!s->no_eval));
    json_object_set_new(o, "eval_duty", s->eval_duty > 0 ? json_real(s->eval_duty) : json_null());
    return o;
}
