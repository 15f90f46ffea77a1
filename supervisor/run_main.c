/* run_main.c: stoker-run, the supervisor. It starts N loaders, stoker-train and
 * stoker-eval (all next to this program) on sockets in a private 0700 directory, writes
 * the run directory from the reports socket, shows progress, restarts a loader or the
 * evaluator that dies (a loader regenerates its shard of the trainer's current epoch:
 * duplicates are dropped, nothing is lost), stops everything when the trainer dies
 * (--resume DIR continues), and on Ctrl-C/SIGTERM sends shutdown, lets the trainer write
 * a final checkpoint and has every child gone within 5 s.
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

#define POLL_MS 100
#define STOP_GRACE_MS 4500          /* then SIGKILL: every child gone within 5 s */
#define FINAL_EVAL_TIMEOUT_MS 600000
#define NOTICE_GRACE_MS 300
#define MAX_RESTARTS 20             /* per child: a crash loop is a failure, not a run */

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t stop_signal;

static void on_signal(int sig) {
    int saved = errno;
    if (sig != SIGCHLD) stop_signal = sig;
    ssize_t rc = write(sig_pipe[1], "s", 1); /* wakes the poll: a death is seen at once */
    (void)rc;
    errno = saved;
}

static void die(const char *what, const StkErr *err) {
    fprintf(stderr, "stoker-run: %s: %s\n", what, err ? err->msg : strerror(errno));
    exit(1);
}

static double now_ms(void) { return run_now_ms(); }

/* A socket with the usual options: SUB connects (to the trainer), the rest bind. */
static void *open_sock(Sup *s, int type, const char *ep, int hwm) {
    StkErr err;
    void *z = zmq_socket(s->ctx, type);
    if (!z || proto_zmq_setup(z, hwm, hwm, 0, &err)) die("socket", z ? &err : NULL);
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

/* ipc:// in a private directory, or with --tcp loopback ports (binding only 127.0.0.1:
 * remote peers would need CURVE, which is not built yet). */
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
        if (s->tcp_port) snprintf(eps[i], sizeof s->ep_ckpt, "tcp://127.0.0.1:%d", s->tcp_port + i);
        else snprintf(eps[i], sizeof s->ep_ckpt, "ipc://%s/%s", s->sock, names[i]);
    }
    /* --gpus: the group socket, then each further rank's data socket */
    if (s->tcp_port) snprintf(s->ep_dist, sizeof s->ep_dist, "tcp://127.0.0.1:%d", s->tcp_port + 4);
    else snprintf(s->ep_dist, sizeof s->ep_dist, "ipc://%s/dist", s->sock);
    for (int r = 1; r < s->gpus; r++) {
        if (s->tcp_port) snprintf(s->ep_data[r], sizeof s->ep_data[r], "tcp://127.0.0.1:%d", s->tcp_port + 4 + r);
        else snprintf(s->ep_data[r], sizeof s->ep_data[r], "ipc://%s/data%d", s->sock, r);
    }
}

static void open_sockets(Sup *s) {
    make_endpoints(s);
    StkErr err;
    if (!(s->ctx = zmq_ctx_new()) || proto_out_init(&s->po, &err)) die("zeromq", NULL);
    s->pub = open_sock(s, ZMQ_PUB, s->ep_ctl, 1000);
    s->pull = open_sock(s, ZMQ_PULL, s->ep_rep, 100000); /* large: senders never block */
    s->notices = open_sock(s, ZMQ_SUB, s->ep_ckpt, 1000);
}

/* Removes the socket files and the private dir. */
static void remove_sockets(Sup *s) {
    if (s->tcp_port) return;
    if (remove_socket_dir(s->sock)) fprintf(stderr, "stoker-run: rmdir %s: %s\n", s->sock, strerror(errno));
}

/* Loader p->id feeds rank p->id mod gpus as one of that rank's loaders (run_ranks.h). */
static void start_loader(Sup *s, RunProc *p) {
    char id[16], n[16], b[16], e[16], st[16], seed[32], crop[16], rank[16], world[16];
    int start = (int)s->train_epoch > s->start_epoch ? (int)s->train_epoch : s->start_epoch;
    int r = run_ranks_loader_rank(p->id, s->gpus);
    snprintf(id, sizeof id, "%d", run_ranks_loader_id(p->id, s->gpus));
    snprintf(n, sizeof n, "%d", run_ranks_loaders_of(r, s->workers, s->gpus));
    snprintf(rank, sizeof rank, "%d", r), snprintf(world, sizeof world, "%d", s->gpus);
    snprintf(b, sizeof b, "%d", s->tc.batch_size);
    snprintf(e, sizeof e, "%d", s->tc.epochs - start), snprintf(st, sizeof st, "%d", start);
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)s->tc.seed);
    snprintf(crop, sizeof crop, "%d", s->tc.train_crop);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/stoker-loader", s->bin);
    const char *argv[36] = {path, "--data", s->ep_data[r], "--id", id, "--loaders", n, "--batch", b,
                            "--epochs", e, "--start-epoch", st, "--seed", seed,
                            "--train-crop-size", crop, "--drop-last", "-q", "--stay",
                            "--control", s->ep_ctl, "--reports", s->ep_rep, "--rank", rank,
                            "--world", world};
    int k = 28;
    if (s->tc.rrc_scale) argv[k++] = "--rrc-scale", argv[k++] = s->tc.rrc_scale;
    argv[k++] = s->tc.data_path;
    StkErr err;
    if (run_proc_start(p, argv, s->out_pipe[1], &err)) die("start a loader", &err);
}

/* Trainer rank p->id: its own data socket; rank 0 alone publishes checkpoint notices
 * (it alone writes checkpoints); with --gpus every rank gets --rank and the group socket. */
static void start_trainer(Sup *s, RunProc *p) {
    char path[PATH_MAX + 16], ckpt[PATH_MAX + 64], rank[16];
    snprintf(path, sizeof path, "%s/stoker-train", s->bin);
    snprintf(rank, sizeof rank, "%d", p->id);
    const char *argv[RUN_MAX_USER_ARGS + 28] = {path, "--print-freq", "10"};
    int k = 3;
    for (int i = 0; i < s->nuser; i++) argv[k++] = s->user[i];
    const char *tail[] = {"--output-dir", s->out, "--data-endpoint", s->ep_data[p->id], "--control",
                          s->ep_ctl, "--reports", s->ep_rep, "--checkpoints", s->ep_ckpt};
    for (int i = 0; i < (p->id ? 8 : 10); i++) argv[k++] = tail[i];
    if (s->gpus > 1)
        argv[k++] = "--rank", argv[k++] = rank, argv[k++] = "--dist-endpoint", argv[k++] = s->ep_dist;
    if (s->resume_dir) {
        snprintf(ckpt, sizeof ckpt, "%s/checkpoints/last.safetensors", s->out);
        argv[k++] = "--resume", argv[k++] = ckpt;
    }
    StkErr err;
    if (run_proc_start(p, argv, s->out_pipe[1], &err)) die("start the trainer", &err);
}

static void start_evaluator(Sup *s, RunProc *p) {
    char path[PATH_MAX + 16], best[PATH_MAX + 64], b[16], res[16], crop[16];
    snprintf(path, sizeof path, "%s/stoker-eval", s->bin);
    snprintf(best, sizeof best, "%s/checkpoints/best.safetensors", s->out);
    snprintf(b, sizeof b, "%d", s->tc.batch_size);
    snprintf(res, sizeof res, "%d", s->tc.val_resize);
    snprintf(crop, sizeof crop, "%d", s->tc.val_crop);
    /* a restarted evaluator missed the notices before it subscribed: it starts with the
     * newest checkpoint announced */
    const char *argv[] = {path, "--data-path", s->tc.data_path, "--model", s->tc.model, "-b", b,
                          "--val-resize-size", res, "--val-crop-size", crop, "-j", "1",
                          "--checkpoints", s->ep_ckpt, "--control", s->ep_ctl, "--reports",
                          s->ep_rep, "--best", best, s->have_notice ? "--checkpoint" : NULL,
                          s->final_path, NULL};
    StkErr err;
    if (run_proc_start(p, argv, s->out_pipe[1], &err)) die("start the evaluator", &err);
}

static void start(Sup *s, RunProc *p) {
    if (p->role == RUN_LOADER) start_loader(s, p);
    else if (p->role == RUN_TRAINER) start_trainer(s, p);
    else start_evaluator(s, p);
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

/* After the trainer's exit: 1 once its final checkpoint was evaluated. Its notice may
 * still be on the way when the exit is seen, hence the grace; with no notice at all (a
 * disk too full for any checkpoint) there is nothing to wait for. */
static int final_evaluated(Sup *s, double *done_at) {
    if (!*done_at) *done_at = now_ms();
    double waited = now_ms() - *done_at;
    if (waited < NOTICE_GRACE_MS) return 0;
    if (!s->have_notice) return 1;
    if (s->evaluations && s->evaluated_step >= s->final_step) return 1;
    if (waited > FINAL_EVAL_TIMEOUT_MS || !s->procs.p[RUN_EVALUATOR_SLOT].pid) {
        run_progress_say(&s->prog, "stoker-run: the final checkpoint was not evaluated");
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

/* Runs until done, failed or interrupted; then every child is stopped. Returns the exit
 * status: 0 done, 1 failed, 130 interrupted. */
static int supervise(Sup *s) {
    int rc = -1, killed = 0;
    double stop_at = 0, done_at = 0;
    for (;;) {
        wait_events(s);
        /* a terminal's Ctrl-C also reaches the children, which then exit: the signal is
         * looked at before their exits, so they are not restarted */
        if (rc < 0 && stop_signal) {
            run_progress_say(&s->prog, "stoker-run: %s: stopping (final checkpoint)",
                             strsignal(stop_signal));
            rc = 130;
        }
        for (RunProc *p; (p = run_procs_reap(&s->procs));)
            if (rc < 0 && child_ended(s, p)) rc = 1;
        if (rc < 0 && s->trainer_done && final_evaluated(s, &done_at)) rc = 0;
        if (rc < 0) check_hangs(s);
        if (rc < 0) continue;
        if (!stop_at) stop_at = now_ms();
        if (!run_procs_alive(&s->procs)) return rc;
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
    printf("stoker-run: %s on %s, epochs %d..%d, %d loaders + %s (%s backend) + evaluator "
           "(CPU); run directory %s\n", s.tc.model, s.tc.data_path, s.start_epoch, s.tc.epochs - 1,
           s.workers, ranks, s.tc.device && !strcmp(s.tc.device, "cuda") ? "CUDA" : "CPU", s.out);
    start_all(&s);
    int rc = supervise(&s);
    run_reports_drain(&s); /* the last reports and lines sent before the children went */
    drain_output(&s);
    if (s.out_len) run_progress_say(&s.prog, "%.*s", (int)s.out_len, s.out_line);
    run_progress_end(&s.prog);
    zmq_close(s.pub), zmq_close(s.pull), zmq_close(s.notices);
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
