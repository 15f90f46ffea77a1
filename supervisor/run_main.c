/* run_main.c: stoker-run, the supervisor. It starts N loaders, stoker-train and
 * stoker-eval (all next to this program) on sockets in a private 0700 directory, writes
 * the run directory from the reports socket, shows progress, restarts a loader or the
 * evaluator that dies (a loader regenerates its shard of the trainer's current epoch:
 * duplicates are dropped, nothing is lost), stops everything when the trainer dies
 * (--resume DIR continues), and on Ctrl-C/SIGTERM sends shutdown, lets the trainer write
 * a final checkpoint, has every child gone within 5 s and then evaluates that checkpoint
 * (a second Ctrl-C skips it). With --curve-key every socket is CURVE (proto_curve.h) and
 * loaders on other hosts (--remote-loaders) may join.
 *
 * usage: stoker-run --data-path DIR [-j N] [--output-dir DIR] [stoker-train flags]
 *        stoker-run --resume DIR [flags]      (continues the run in DIR) */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "run_plots.h"
#include "run_sup.h"
#include "st_file.h"
#include "vram_plan.h"

#define POLL_MS 100
#define STOP_GRACE_MS 4500          /* then SIGKILL: every child gone within 5 s */
#define FINAL_EVAL_TIMEOUT_MS 600000
#define NOTICE_GRACE_MS 300
#define MAX_RESTARTS 20             /* per child: a crash loop is a failure, not a run */
#define SKIP_KILL_MS 1000           /* a final evaluation skipped midway: SIGTERM, then SIGKILL */
/* --eval-duty beside a GPU trainer (start_evaluator). 0.05 cost the trainer 1.6-1.9% in
 * Fashion-MNIST runs at the H200's fast pace and 4.0-5.4% at its slow one (2026-12-03,
 * with CUDA graphs): where the trainer keeps the GPU busy, the evaluator's share is the
 * trainer's loss, so the share is kept under the 3% the trainer may lose */
#define RUN_EVAL_DUTY_GPU 0.025

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t stop_signal, stop_count; /* the second skips the final eval */

static void on_signal(int sig) {
    int saved = errno;
    if (sig != SIGCHLD) stop_signal = sig, stop_count++;
    ssize_t rc = write(sig_pipe[1], "s", 1); /* wakes the poll: a death is seen at once */
    (void)rc;
    errno = saved;
}

static void die(const char *what, const StkErr *err) {
    fprintf(stderr, "stoker-run: %s: %s\n", what, err ? err->msg : strerror(errno));
    exit(1);
}

static double now_ms(void) { return run_now_ms(); }

/* A socket with the usual options: SUB connects (to the trainer), the rest bind. With
 * CURVE the bound ones are servers and the SUB a client (of the trainer's, same keys). */
static void *open_sock(Sup *s, int type, const char *ep, int hwm) {
    StkErr err;
    void *z = zmq_socket(s->ctx, type);
    if (!z || proto_zmq_setup(z, hwm, hwm, 0, &err) ||
        proto_curve_apply(z, s->zap ? &s->curve : NULL, type != ZMQ_SUB, &err))
        die("socket", z ? &err : NULL);
    if (type == ZMQ_SUB ? zmq_setsockopt(z, ZMQ_SUBSCRIBE, "", 0) || zmq_connect(z, ep)
                        : zmq_bind(z, ep)) {
        stk_errf(&err, "%s: %s", ep, zmq_strerror(zmq_errno()));
        die("socket", &err);
    }
    return z;
}

static const char *const sock_names[4] = {"data", "ckpt", "ctl", "rep"};

/* Removes a socket directory's files (ZeroMQ leaves ipc files behind) and the directory:
 * the four above, then with --gpus "dist" and "data1".. (a stale one's rank count is not
 * known, so every possible name). */
static int remove_socket_dir(const char *dir) {
    char p[PATH_MAX];
    for (int i = 0; i < 4; i++) snprintf(p, sizeof p, "%s/%s", dir, sock_names[i]), unlink(p);
    snprintf(p, sizeof p, "%s/dist", dir), unlink(p);
    for (int r = 1; r < RUN_MAX_RANKS; r++) snprintf(p, sizeof p, "%s/data%d", dir, r), unlink(p);
    return rmdir(dir);
}

/* Socket directories are /tmp/stk-<pid>-XXXXXX: a supervisor killed outright (SIGKILL)
 * cannot remove its own, so each start removes this user's whose supervisor is gone. */
static void sweep_stale_socket_dirs(void) {
    DIR *d = opendir("/tmp");
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        int pid = 0, used = 0;
        if (sscanf(e->d_name, "stk-%d-%*6[A-Za-z0-9]%n", &pid, &used) != 1 || used != (int)strlen(e->d_name))
            continue;
        char dir[PATH_MAX];
        struct stat st;
        snprintf(dir, sizeof dir, "/tmp/%s", e->d_name);
        if (pid <= 0 || stat(dir, &st) || st.st_uid != getuid() || !S_ISDIR(st.st_mode)) continue;
        if (kill(pid, 0) == 0 || errno != ESRCH) continue; /* its supervisor is alive */
        if (!remove_socket_dir(dir)) fprintf(stderr, "stoker-run: removed %s (its stoker-run %d is gone)\n", dir, pid);
    }
    closedir(d);
}

/* ipc:// in a private directory, or with --tcp ports on --bind's address (loopback by
 * default; another only with CURVE, run_args.c). Children connect to conn_host. */
static void make_endpoints(Sup *s) {
    char *eps[4] = {s->ep_data[0], s->ep_ckpt, s->ep_ctl, s->ep_rep};
    const char *const *names = sock_names;
    if (!s->tcp_port) {
        sweep_stale_socket_dirs();
        /* short: an ipc path must fit in ~107 bytes; mode 0700: private to this user */
        snprintf(s->sock, sizeof s->sock, "/tmp/stk-%d-XXXXXX", (int)getpid());
        if (!mkdtemp(s->sock)) die("mkdtemp", NULL);
    }
    for (int i = 0; i < 4; i++) {
        if (s->tcp_port) {
            snprintf(eps[i], sizeof s->ep_ckpt, "tcp://%s:%d", s->conn_host, s->tcp_port + i);
            snprintf(s->ep_bind[i], sizeof s->ep_bind[i], "tcp://%s:%d", s->bind_host, s->tcp_port + i);
        } else {
            snprintf(eps[i], sizeof s->ep_ckpt, "ipc://%s/%s", s->sock, names[i]);
            snprintf(s->ep_bind[i], sizeof s->ep_bind[i], "%s", eps[i]);
        }
    }
    snprintf(s->ep_data_bind[0], sizeof s->ep_data_bind[0], "%s", s->ep_bind[0]);
    /* --gpus: the group socket (local to this host: loopback or ipc), then each further
     * rank's data socket, bound like rank 0's */
    if (s->tcp_port) snprintf(s->ep_dist, sizeof s->ep_dist, "tcp://127.0.0.1:%d", s->tcp_port + 4);
    else snprintf(s->ep_dist, sizeof s->ep_dist, "ipc://%s/dist", s->sock);
    for (int r = 1; r < s->gpus; r++) {
        if (s->tcp_port) {
            snprintf(s->ep_data[r], sizeof s->ep_data[r], "tcp://%s:%d", s->conn_host, s->tcp_port + 4 + r);
            snprintf(s->ep_data_bind[r], sizeof s->ep_data_bind[r], "tcp://%s:%d", s->bind_host,
                     s->tcp_port + 4 + r);
        } else {
            snprintf(s->ep_data[r], sizeof s->ep_data[r], "ipc://%s/data%d", s->sock, r);
            snprintf(s->ep_data_bind[r], sizeof s->ep_data_bind[r], "%s", s->ep_data[r]);
        }
    }
}

/* --curve-key: the key pair serves every socket and is also the client key of this
 * process and of its local children (the ZAP handler admits it with --curve-clients). */
static void open_curve(Sup *s) {
    StkErr err;
    if (!s->curve_key) return;
    if (proto_curve_open(&s->curve, s->curve_key, s->curve_key, &err) ||
        proto_zap_start(&s->zap, s->ctx, "stoker-run", s->curve.pub, s->curve_clients, &err))
        die("--curve-key", &err);
    printf("stoker-run: CURVE on every socket; server public key %s; %d client keys admitted "
           "(this one included)\n", s->curve.pub, proto_zap_keys(s->zap));
}

static void open_sockets(Sup *s) {
    make_endpoints(s);
    StkErr err;
    if (!(s->ctx = zmq_ctx_new()) || proto_out_init(&s->po, &err)) die("zeromq", NULL);
    open_curve(s); /* the ZAP handler must exist before a CURVE server binds */
    s->pub = open_sock(s, ZMQ_PUB, s->ep_bind[2], 1000);
    s->pull = open_sock(s, ZMQ_PULL, s->ep_bind[3], 100000); /* large: senders never block */
    s->notices = open_sock(s, ZMQ_SUB, s->ep_ckpt, 1000);
}

/* Removes the socket files and the private dir. */
static void remove_sockets(Sup *s) {
    if (s->tcp_port) return;
    if (remove_socket_dir(s->sock)) fprintf(stderr, "stoker-run: rmdir %s: %s\n", s->sock, strerror(errno));
}

/* Loaders in all: the local ones and those on other hosts. */
static int all_loaders(const Sup *s) { return s->workers + s->remote; }

/* Strings a loader's command line points into. */
typedef struct LoaderArgs {
    char id[16], n[16], b[16], e[16], st[16], seed[32], crop[16], rank[16], world[16];
    char path[PATH_MAX + 16];
    const char *argv[44];
} LoaderArgs;

/* Loader id's command line, as started here or (remote) to be run on another host,
 * where the key files are the user's to name. The batch is the micro-batch: the trainer
 * counts and trains micro-batches (train_plan.h). Loader id feeds rank id mod gpus as
 * one of that rank's loaders (run_ranks.h; remote loaders only with one rank). */
static void loader_args(const Sup *s, int id, const char *const ep[3], int remote, LoaderArgs *a) {
    int start = (int)s->train_epoch > s->start_epoch ? (int)s->train_epoch : s->start_epoch;
    int r = run_ranks_loader_rank(id, s->gpus);
    snprintf(a->id, sizeof a->id, "%d", run_ranks_loader_id(id, s->gpus));
    snprintf(a->n, sizeof a->n, "%d", run_ranks_loaders_of(r, all_loaders(s), s->gpus));
    snprintf(a->rank, sizeof a->rank, "%d", r), snprintf(a->world, sizeof a->world, "%d", s->gpus);
    snprintf(a->b, sizeof a->b, "%d", s->micro);
    snprintf(a->e, sizeof a->e, "%d", s->tc.epochs - start), snprintf(a->st, sizeof a->st, "%d", start);
    snprintf(a->seed, sizeof a->seed, "%llu", (unsigned long long)s->tc.seed);
    snprintf(a->crop, sizeof a->crop, "%d", s->tc.train_crop);
    snprintf(a->path, sizeof a->path, "%s/stoker-loader", remote ? "" : s->bin);
    const char *fixed[] = {remote ? "stoker-loader" : a->path, "--data", r ? s->ep_data[r] : ep[0], "--id", a->id,
                           "--loaders", a->n, "--batch", a->b, "--epochs", a->e, "--start-epoch",
                           a->st, "--seed", a->seed, "--train-crop-size", a->crop, "--drop-last",
                           "-q", "--stay", "--control", ep[1], "--reports", ep[2], "--rank", a->rank,
                           "--world", a->world};
    int k = 0;
    for (; k < (int)(sizeof fixed / sizeof *fixed); k++) a->argv[k] = fixed[k];
    if (s->tc.rrc_scale) a->argv[k++] = "--rrc-scale", a->argv[k++] = s->tc.rrc_scale;
    if (s->curve_key) {
        a->argv[k++] = "--curve-key", a->argv[k++] = remote ? "LOADER.key" : s->curve_key;
        a->argv[k++] = "--curve-server-key", a->argv[k++] = remote ? "SERVER.pub" : s->curve_key;
    }
    a->argv[k++] = remote ? "DATASET" : s->tc.data_path;
    a->argv[k] = NULL;
}

static void start_loader(Sup *s, RunProc *p) {
    LoaderArgs a;
    const char *ep[3] = {s->ep_data[0], s->ep_ctl, s->ep_rep};
    loader_args(s, p->id, ep, 0, &a);
    StkErr err;
    if (run_proc_start(p, a.argv, s->out_pipe[1], &err)) die("start a loader", &err);
}

/* What to run on each loader host, with the address they reach us at: --bind's, or
 * this host's name when bound to every interface. */
static void print_remote_loaders(Sup *s) {
    if (!s->remote) return;
    char host[256] = "";
    if (strcmp(s->conn_host, s->bind_host) && gethostname(host, sizeof host)) host[0] = 0;
    char eps[3][300]; /* data, control, reports as seen from there */
    const int port_of[3] = {0, 2, 3};
    for (int i = 0; i < 3; i++)
        snprintf(eps[i], sizeof eps[i], "tcp://%s:%d", host[0] ? host : s->conn_host,
                 s->tcp_port + port_of[i]);
    const char *ep[3] = {eps[0], eps[1], eps[2]};
    printf("stoker-run: waiting for %d remote loader%s: on each, with DATASET the same dataset "
           "indexed the same way%s, run:\n", s->remote, s->remote > 1 ? "s" : "",
           s->curve_key ? ", LOADER.key its key pair (its .pub in --curve-clients) and "
                          "SERVER.pub this server's public key" : "");
    for (int id = s->workers; id < all_loaders(s); id++) {
        LoaderArgs a;
        loader_args(s, id, ep, 1, &a);
        char line[8192];
        size_t n = 0;
        for (int i = 0; a.argv[i] && n < sizeof line - 1; i++)
            n += (size_t)snprintf(line + n, sizeof line - n, "%s%s", i ? " " : "  ", a.argv[i]);
        printf("%s\n", line);
    }
    printf("stoker-run: a remote loader that stops is not restarted from here: run its line "
           "again with --start-epoch at the current epoch (batches it repeats are dropped)\n");
}

/* Trainer rank p->id: its own data socket; rank 0 alone publishes checkpoint notices
 * (it alone writes checkpoints); with --gpus every rank gets --rank and the group socket. */
static void start_trainer(Sup *s, RunProc *p) {
    char path[PATH_MAX + 16], ckpt[PATH_MAX + 64], rank[16];
    snprintf(path, sizeof path, "%s/stoker-train", s->bin);
    snprintf(rank, sizeof rank, "%d", p->id);
    const char *argv[RUN_MAX_USER_ARGS + 40] = {path, "--print-freq", "10"};
    int k = 3;
    for (int i = 0; i < s->nuser; i++) argv[k++] = s->user[i];
    char nl[16], micro[16];
    snprintf(nl, sizeof nl, "%d", run_ranks_loaders_of(p->id, all_loaders(s), s->gpus));
    snprintf(micro, sizeof micro, "%d", s->micro);
    /* -j sizes its window for every loader of this rank; --micro-batch as the loaders were
     * told; only rank 0 gets the checkpoint socket */
    const char *tail[] = {"--output-dir", s->out, "--data-endpoint", s->ep_data_bind[p->id], "--control",
                          s->ep_ctl, "--reports", s->ep_rep, "-j", nl, "--micro-batch", micro,
                          "--checkpoints", s->ep_bind[1]};
    for (int i = 0; i < (p->id ? 12 : 14); i++) argv[k++] = tail[i];
    if (s->curve_key) argv[k++] = "--curve-key", argv[k++] = s->curve_key;
    if (s->curve_clients) argv[k++] = "--curve-clients", argv[k++] = s->curve_clients;
    if (s->gpus > 1)
        argv[k++] = "--rank", argv[k++] = rank, argv[k++] = "--dist-endpoint", argv[k++] = s->ep_dist;
    if (s->resume_dir) {
        snprintf(ckpt, sizeof ckpt, "%s/checkpoints/last.safetensors", s->out);
        argv[k++] = "--resume", argv[k++] = ckpt;
    }
    StkErr err;
    if (run_proc_start(p, argv, s->out_pipe[1], &err)) die("start the trainer", &err);
}

/* The evaluator runs on the trainer's GPU beside a CUDA trainer, unless a memory plan
 * (--gpu/--vram-budget) left it no share of the card (--eval-share): it holds an
 * inference-only network of its own there, fitted to that share (eval_plan.h). */
static int eval_on_gpu(const Sup *s) {
    if (!s->tc.device || strcmp(s->tc.device, "cuda")) return 0;
    return !(s->tc.gpu || s->tc.vram_budget) || s->tc.eval_share > 0;
}

/* Bytes of the card the trainer's plan left to the evaluator (--eval-share of --vram-budget
 * or the --gpu preset's capacity); 0 without a plan. */
static uint64_t eval_share_bytes(const Sup *s) {
    const VramPreset *p = vram_preset(s->tc.gpu);
    uint64_t budget = s->tc.vram_budget ? s->tc.vram_budget : p ? p->capacity : 0;
    return (uint64_t)(s->tc.eval_share * (double)budget);
}

/* The evaluator following checkpoint notices, or (once = 1) evaluating final_path alone
 * and exiting: the final checkpoint after an interrupt, when the trainer is gone. */
static void start_evaluator(Sup *s, RunProc *p, int once) {
    char path[PATH_MAX + 16], best[PATH_MAX + 64], b[16], res[16], crop[16], share[32], duty[32];
    snprintf(path, sizeof path, "%s/stoker-eval", s->bin);
    snprintf(best, sizeof best, "%s/checkpoints/best.safetensors", s->out);
    snprintf(b, sizeof b, "%d", s->tc.batch_size);
    snprintf(res, sizeof res, "%d", s->tc.val_resize);
    snprintf(crop, sizeof crop, "%d", s->tc.val_crop);
    /* a restarted evaluator missed the notices before it subscribed: it starts with the
     * newest checkpoint announced */
    const char *argv[48] = {path, "--data-path", s->tc.data_path, "--model", s->tc.model, "-b", b,
                            "--val-resize-size", res, "--val-crop-size", crop, "-j", "1",
                            "--control", s->ep_ctl, "--reports", s->ep_rep, "--best", best};
    int k = 19; /* at most 18 more below, and the NULL */
    /* beside a CUDA trainer the evaluator runs on the same GPU: on the CPU it would take
     * the cores the loaders need, and lag far behind the checkpoints */
    if (eval_on_gpu(s)) {
        argv[k++] = "--device", argv[k++] = "cuda";
        if (s->tc.precision) argv[k++] = "--precision", argv[k++] = s->tc.precision;
        if (s->tc.gpu) argv[k++] = "--gpu", argv[k++] = s->tc.gpu;
        if (eval_share_bytes(s)) { /* the plan left it this much: it fits its batch to it */
            snprintf(share, sizeof share, "%llu", (unsigned long long)eval_share_bytes(s));
            argv[k++] = "--vram-budget", argv[k++] = share;
        }
    }
    /* beside a GPU trainer every second evaluating is the trainer's (they time-slice the
     * card): a small model writing a checkpoint a second would lose 5-10% of its images/s
     * to evaluating each (docs/BENCHMARKS.md); the final one is never held (eval_pace.h) */
    double d = s->eval_duty > 0 ? s->eval_duty : eval_on_gpu(s) ? RUN_EVAL_DUTY_GPU : 1;
    snprintf(duty, sizeof duty, "%g", d);
    argv[k++] = "--duty", argv[k++] = duty;
    if (!once) argv[k++] = "--checkpoints", argv[k++] = s->ep_ckpt;
    if (s->curve_key)
        argv[k++] = "--curve-key", argv[k++] = s->curve_key, argv[k++] = "--curve-server-key",
        argv[k++] = s->curve_key;
    if (s->have_notice || once) argv[k++] = "--checkpoint", argv[k++] = s->final_path;
    StkErr err;
    if (run_proc_start(p, argv, s->out_pipe[1], &err)) die("start the evaluator", &err);
}

static void start(Sup *s, RunProc *p) {
    if (p->role == RUN_LOADER) start_loader(s, p);
    else if (p->role == RUN_TRAINER) start_trainer(s, p);
    else if (!s->no_eval) start_evaluator(s, p, 0); /* --no-eval: the slot keeps pid 0 */
}

/* Trainer rank r's slot entry (run_ranks.h): "stoker-train", or "stoker-train rank r". */
static void add_trainer(Sup *s, int r) {
    RunProc *p = &s->procs.p[s->procs.n++];
    *p = (RunProc){.role = RUN_TRAINER, .id = r, .name = "stoker-train"};
    if (s->gpus > 1) snprintf(p->name, sizeof p->name, "stoker-train rank %d", r);
}

static void start_all(Sup *s) {
    RunProcs *ps = &s->procs;
    add_trainer(s, 0);
    /* the evaluator gets one core: the trainer keeps the rest of what loaders leave */
    ps->p[ps->n++] = (RunProc){.role = RUN_EVALUATOR, .name = "stoker-eval", .threads = 1};
    for (int i = 0; i < s->workers; i++) {
        RunProc *p = &ps->p[ps->n++];
        *p = (RunProc){.role = RUN_LOADER, .id = i};
        snprintf(p->name, sizeof p->name, "stoker-loader %d", i);
        if (s->gpus > 1)
            snprintf(p->name, sizeof p->name, "stoker-loader %d (rank %d)", i,
                     run_ranks_loader_rank(i, s->gpus));
    }
    for (int r = 1; r < s->gpus; r++) add_trainer(s, r);
    for (int i = 0; i < ps->n; i++) start(s, &ps->p[i]);
}

/* A child ended while the run goes on: restart it, or decide the run is over. Returns 1
 * when the run must stop (the trainer failed, or a child keeps dying). */
static int child_ended(Sup *s, RunProc *p) {
    char how[96];
    run_proc_describe(p, how, sizeof how);
    if (p->role == RUN_TRAINER && !p->status) {
        s->trainer_done = ++s->ranks_done == s->gpus;
        return 0;
    }
    if (p->role == RUN_TRAINER && s->gpus > 1) {
        /* every step waits for every rank: the group cannot go on without it; the others
         * are told to stop, rank 0 saves, and --resume restarts all ranks from there */
        run_progress_say(&s->prog, "stoker-run: %s %s: stopping the group (ranks 0-%d) and the "
                         "run; rank 0 writes checkpoints/last.safetensors (the last complete "
                         "epoch); continue with: stoker-run --resume %s", p->name, how,
                         s->gpus - 1, s->out);
        return 1;
    }
    if (p->role == RUN_TRAINER) {
        run_progress_say(&s->prog, "stoker-run: stoker-train %s: stopping the run; continue it "
                         "with: stoker-run --resume %s", how, s->out);
        return 1;
    }
    if (p->restarts >= MAX_RESTARTS) {
        run_progress_say(&s->prog, "stoker-run: %s %s after %d restarts: stopping the run",
                         p->name, how, p->restarts);
        return 1;
    }
    p->restarts++;
    start(s, p);
    if (p->role == RUN_LOADER)
        run_progress_say(&s->prog, "stoker-run: %s %s; restarted (pid %d) at epoch %u", p->name,
                         how, (int)p->pid, s->train_epoch);
    else
        run_progress_say(&s->prog, "stoker-run: %s %s; restarted (pid %d)", p->name, how, (int)p->pid);
    return 0;
}

static void send_shutdown(Sup *s, const char *why) {
    ProtoMsg m = {.type = PROTO_SHUTDOWN};
    m.u.shutdown.reason = proto_str(why);
    StkErr err;
    if (proto_send(&s->po, s->pub, &m, NULL, ZMQ_DONTWAIT, &err) == PROTO_FAIL)
        fprintf(stderr, "stoker-run: shutdown not sent: %s\n", err.msg);
}

/* The children's output pipe: their stdout and stderr, shown line by line. */
static void open_output(Sup *s) {
    if (pipe(s->out_pipe)) die("pipe", NULL);
    fcntl(s->out_pipe[0], F_SETFL, O_NONBLOCK);
    fcntl(s->out_pipe[0], F_SETFD, FD_CLOEXEC); /* children keep only the write end */
}

/* Prints the complete lines the children wrote (a line longer than the buffer is cut). */
static void drain_output(Sup *s) {
    for (;;) {
        ssize_t n = read(s->out_pipe[0], s->out_line + s->out_len, sizeof s->out_line - 1 - s->out_len);
        if (n <= 0) return;
        s->out_len += (size_t)n;
        char *start = s->out_line, *nl;
        while ((nl = memchr(start, '\n', s->out_len - (size_t)(start - s->out_line)))) {
            run_progress_say(&s->prog, "%.*s", (int)(nl - start), start);
            start = nl + 1;
        }
        s->out_len -= (size_t)(start - s->out_line);
        memmove(s->out_line, start, s->out_len);
        if (s->out_len == sizeof s->out_line - 1) {
            run_progress_say(&s->prog, "%.*s", (int)s->out_len, s->out_line);
            s->out_len = 0;
        }
    }
}

/* Waits for the sockets, the signal pipe or the children's output, then reads what came. */
static void wait_events(Sup *s) {
    zmq_pollitem_t it[4] = {{s->pull, 0, ZMQ_POLLIN, 0}, {s->notices, 0, ZMQ_POLLIN, 0},
                            {NULL, sig_pipe[0], ZMQ_POLLIN, 0},
                            {NULL, s->out_pipe[0], ZMQ_POLLIN, 0}};
    if (zmq_poll(it, 4, POLL_MS) < 0 && zmq_errno() != EINTR) die("zmq_poll", NULL);
    char c;
    while (read(sig_pipe[0], &c, 1) == 1) {}
    drain_output(s);
    run_reports_drain(s);
}

/* Says the final checkpoint was not evaluated, on screen and in metrics.jsonl. */
static void not_evaluated(Sup *s, const char *path, uint32_t epoch, uint64_t step, const char *why) {
    run_progress_say(&s->prog, "stoker-run: the final checkpoint (epoch %u, step %llu) was not "
                     "evaluated: %s", epoch, (unsigned long long)step, why);
    run_dir_unevaluated(&s->dir, epoch, step, path, why);
}

/* After the trainer's exit: 1 once its final checkpoint was evaluated. Its notice may
 * still be on the way when the exit is seen, hence the grace; with no notice at all (a
 * disk too full for any checkpoint) there is nothing to wait for. */
static int final_evaluated(Sup *s, double *done_at) {
    if (!*done_at) *done_at = now_ms();
    double waited = now_ms() - *done_at;
    if (waited < NOTICE_GRACE_MS) return 0;
    if (!s->have_notice || s->no_eval) return 1;
    if (s->evaluations && s->evaluated_step >= s->final_step) return 1;
    if (waited > FINAL_EVAL_TIMEOUT_MS || !s->procs.p[RUN_EVALUATOR_SLOT].pid) {
        not_evaluated(s, s->final_path, s->final_epoch, s->final_step,
                      waited > FINAL_EVAL_TIMEOUT_MS ? "no result in time" : "no evaluator");
        return 1;
    }
    return 0;
}

/* Loaders and the evaluator heartbeat every second, even when blocked (a loader on a full
 * socket, the evaluator waiting for a notice or a val batch): one silent for hang_s is
 * hung (or stopped) and is killed, which restarts it. The trainer heartbeats once a step,
 * and a step may be long: it is only named, once per silence. */
static void check_hangs(Sup *s) {
    double now = now_ms();
    for (int i = RUN_EVALUATOR_SLOT; i < s->procs.n; i++) {
        RunProc *p = &s->procs.p[i];
        if (p->role == RUN_TRAINER || p->pid <= 0 || now - p->heard_ms < s->hang_s * 1e3) continue;
        run_progress_say(&s->prog, "stoker-run: %s (pid %d) sent no heartbeat for %d s: "
                         "killing it", p->name, (int)p->pid, s->hang_s);
        kill(p->pid, SIGKILL); /* its end is reaped and it restarts like any death */
        p->heard_ms = now;
    }
    for (int r = 0; r < s->gpus; r++) {
        RunProc *t = &s->procs.p[run_ranks_trainer_slot(r, s->workers)];
        if (t->pid > 0 && now - t->heard_ms > 5e3 * s->hang_s) {
            run_progress_say(&s->prog, "stoker-run: %s (pid %d) silent for %d s", t->name,
                             (int)t->pid, 5 * s->hang_s);
            t->heard_ms = now;
        }
    }
}

/* checkpoints/last.safetensors, the trainer's final checkpoint, with the epoch and step
 * it records (what the evaluator reports it as); -1 if there is none. */
static int last_checkpoint(Sup *s, char *path, size_t cap, uint32_t *epoch, uint64_t *step) {
    StFile f;
    StkErr err;
    snprintf(path, cap, "%s/checkpoints/last.safetensors", s->out);
    if (st_open(&f, path, &err)) return -1;
    const char *e = st_meta(&f, "epoch"), *st = st_meta(&f, "steps");
    *epoch = e && atoi(e) > 0 ? (uint32_t)atoi(e) : 0;
    *step = st ? strtoull(st, NULL, 10) : 0;
    st_close(&f);
    return 0;
}

/* Waits for the one-shot evaluator; a second interrupt stops it (SIGTERM, then SIGKILL).
 * Returns 1 if it was stopped so. */
static int wait_final_evaluator(Sup *s, RunProc *p) {
    double stopped_at = 0;
    while (p->pid > 0) {
        wait_events(s);
        while (run_procs_reap(&s->procs)) {}
        if (p->pid <= 0) break;
        if (stop_count > 1 && !stopped_at) {
            run_progress_say(&s->prog, "stoker-run: interrupted again: stopping the final evaluation");
            kill(p->pid, SIGTERM), stopped_at = now_ms();
        }
        if (stopped_at && now_ms() - stopped_at > SKIP_KILL_MS) kill(p->pid, SIGKILL);
        if (!stopped_at) check_hangs(s); /* a hung one is killed: named below */
    }
    return stopped_at > 0;
}

/* After an interrupt, every child gone: the final checkpoint is evaluated, by a
 * one-shot stoker-eval, unless that was done already or a second interrupt skips it
 * (then metrics.jsonl records it as unevaluated). The trainer and loaders were gone
 * within 5 s; this wait is the evaluator's alone, and shown. */
static void evaluate_final(Sup *s) {
    if (s->no_eval) return; /* asked for none */
    char path[PATH_MAX + 64], how[96], why[160];
    uint32_t epoch;
    uint64_t step;
    run_reports_drain(s); /* an evaluation that finished meanwhile */
    if (last_checkpoint(s, path, sizeof path, &epoch, &step)) return;
    if (s->evaluations && s->evaluated_step >= step) return;
    if (stop_count > 1) return not_evaluated(s, path, epoch, step, "skipped by a second interrupt");
    run_progress_say(&s->prog, "stoker-run: evaluating the final checkpoint (epoch %u, step %llu); "
                     "interrupt again to skip", epoch, (unsigned long long)step);
    if (strlen(path) >= sizeof s->final_path) return not_evaluated(s, path, epoch, step, "path too long");
    memcpy(s->final_path, path, strlen(path) + 1);
    RunProc *p = &s->procs.p[RUN_EVALUATOR_SLOT];
    start_evaluator(s, p, 1);
    int stopped = wait_final_evaluator(s, p);
    run_reports_drain(s);
    if (s->evaluations && s->evaluated_step >= step) return;
    run_proc_describe(p, how, sizeof how);
    snprintf(why, sizeof why, stopped ? "stopped by a second interrupt" : "stoker-eval %s", how);
    not_evaluated(s, path, epoch, step, why);
}

/* Runs until done, failed or interrupted; then every child is stopped. Returns the exit
 * status: 0 done, 1 failed, 130 interrupted. */
static int supervise(Sup *s) {
    int rc = -1, killed = 0, said_skip = 0;
    double stop_at = 0, done_at = 0;
    for (;;) {
        wait_events(s);
        /* a terminal's Ctrl-C also reaches the children, which then exit: the signal is
         * looked at before their exits, so they are not restarted */
        if (rc < 0 && stop_signal) {
            run_progress_say(&s->prog, "stoker-run: %s: stopping (final checkpoint, then its "
                             "evaluation; interrupt again to skip that)", strsignal(stop_signal));
            rc = 130;
        }
        if (rc == 130 && stop_count > 1 && !said_skip)
            said_skip = 1, run_progress_say(&s->prog, "stoker-run: interrupted again: the final "
                                            "checkpoint will not be evaluated");
        for (RunProc *p; (p = run_procs_reap(&s->procs));)
            if (rc < 0 && child_ended(s, p)) rc = 1;
        if (rc < 0 && s->trainer_done && final_evaluated(s, &done_at)) rc = 0;
        if (rc < 0) check_hangs(s);
        if (rc < 0) continue;
        if (!stop_at) stop_at = now_ms();
        if (!run_procs_alive(&s->procs)) {
            if (rc == 130) evaluate_final(s);
            return rc;
        }
        send_shutdown(s, rc == 0 ? "done" : rc == 1 ? "failed" : "interrupted");
        if (!killed && now_ms() - stop_at > STOP_GRACE_MS) {
            for (int i = 0; i < s->procs.n; i++)
                if (s->procs.p[i].pid > 0)
                    run_progress_say(&s->prog, "stoker-run: %s (pid %d) did not stop: killed",
                                     s->procs.p[i].name, (int)s->procs.p[i].pid);
            run_procs_signal(&s->procs, SIGKILL);
            killed = 1;
        }
    }
}

static void install_signals(void) {
    if (pipe(sig_pipe)) die("pipe", NULL);
    for (int i = 0; i < 2; i++) fcntl(sig_pipe[i], F_SETFL, O_NONBLOCK);
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT), sigaddset(&sa.sa_mask, SIGTERM); /* counted one at a time */
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL) ||
        sigaction(SIGCHLD, &sa, NULL))
        die("sigaction", NULL);
    signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv) {
    static Sup s;
    setvbuf(stdout, NULL, _IOLBF, 0);
    parse_args(&s, argc, argv);
    plan_batches(&s);
    /* the tools are next to this program; argv[0] has no directory when found on PATH */
    char self[PATH_MAX] = {0};
    if (readlink("/proc/self/exe", self, sizeof self - 1) <= 0)
        snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(s.bin, sizeof s.bin, "%s", dirname(self));
    StkErr err;
    if (run_dir_open(&s.dir, s.out, &err)) die("run directory", &err);
    install_signals();
    open_output(&s);
    open_sockets(&s);
    if (run_dir_config(&s.dir, config_json(&s, argc, argv), &err)) die("config.json", &err);
    run_progress_init(&s.prog, s.tc.epochs, s.tc.batch_size);
    char ranks[48] = "trainer";
    if (s.gpus > 1) snprintf(ranks, sizeof ranks, "%d trainer ranks", s.gpus);
    printf("stoker-run: %s on %s, epochs %d..%d, %d loaders + %s (%s backend)%s; run directory %s\n",
           s.tc.model, s.tc.data_path, s.start_epoch, s.tc.epochs - 1, s.workers, ranks,
           s.tc.device && !strcmp(s.tc.device, "cuda") ? "CUDA" : "CPU",
           s.no_eval ? ", no evaluator (--no-eval)" : eval_on_gpu(&s) ? " + evaluator (CUDA)" : " + evaluator (CPU)",
           s.out);
    start_all(&s);
    print_remote_loaders(&s);
    int rc = supervise(&s);
    run_reports_drain(&s); /* the last reports and lines sent before the children went */
    drain_output(&s);
    if (s.out_len) run_progress_say(&s.prog, "%.*s", (int)s.out_len, s.out_line);
    run_progress_end(&s.prog);
    zmq_close(s.pub), zmq_close(s.pull), zmq_close(s.notices);
    if (s.zap && proto_zap_denied(s.zap))
        printf("stoker-run: %llu connections refused (CURVE keys not admitted)\n",
               (unsigned long long)proto_zap_denied(s.zap));
    proto_zap_stop(s.zap); /* its socket is in the context */
    zmq_ctx_term(s.ctx);
    proto_out_free(&s.po);
    remove_sockets(&s);
    run_dir_close(&s.dir);
    if (run_plots_draw(s.out, &err)) printf("stoker-run: plots skipped: %s\n", err.msg);
    if (s.dropped) printf("stoker-run: %llu malformed or foreign messages dropped\n",
                          (unsigned long long)s.dropped);
    if (s.evaluations)
        printf("stoker-run: best val top-1 %.2f%% (epoch %u); last %.2f%%; run directory %s\n",
               s.best_top1, s.best_epoch, s.ev.top1, s.out);
    printf("stoker-run: %s\n", rc == 0 ? "done" : rc == 130 ? "interrupted; continue with "
                                                               "--resume" : "failed");
    free(s.ev.class_acc), free(s.ev.confusion);
    return rc;
}
