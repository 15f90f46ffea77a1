/* run_sup.h: stoker-run's state, shared by its main loop (run_main.c) and its handling
 * of what arrives on the reports and checkpoint sockets (run_reports.c). */
#ifndef RUN_SUP_H
#define RUN_SUP_H

#include <limits.h>
#include <stdint.h>

#include "proto_curve.h"
#include "proto_zmq.h"
#include "run_dir.h"
#include "run_procs.h"
#include "run_progress.h"
#include "run_ranks.h"
#include "train_config.h"

#define RUN_MAX_USER_ARGS 200

#define RUN_PENDING_NOTICES 256

typedef struct Sup {
    TrainConfig tc;                  /* the training flags, parsed as stoker-train does */
    const char *user[RUN_MAX_USER_ARGS]; /* the flags passed on to stoker-train */
    int nuser;
    int workers;                     /* loader processes started here */
    int micro;                       /* samples per loader batch: the micro-batch */
    int accum;                       /* micro-batches per optimizer step */
    const char *resume_dir;          /* --resume DIR */
    int tcp_port;                    /* --tcp PORT: tcp://HOST:PORT..PORT+3, not ipc */
    char bind_host[64];              /* --bind ADDR: the interface tcp binds (127.0.0.1) */
    char conn_host[64];              /* where local children connect (loopback for "*") */
    const char *curve_key;           /* --curve-key FILE: server key pair; CURVE on */
    const char *curve_clients;       /* --curve-clients DIR: client keys admitted */
    int remote;                      /* --remote-loaders R: loader ids workers.. not ours */
    ProtoCurve curve;                /* the keys, when curve_key is set */
    ProtoZap *zap;                   /* the allow-list of this process's CURVE sockets */
    int hang_s;                      /* --hang-timeout: a loader silent this long is killed */
    int no_eval;                     /* --no-eval: no evaluator process (its slot stays empty) */
    double eval_duty;                /* --eval-duty F; 0: stoker-eval's --duty left to
                                        start_evaluator (0.05 on a GPU, else 1) */
    char out[PATH_MAX], bin[PATH_MAX], sock[64];
    int gpus;                        /* --gpus: trainer ranks (1) */
    char ep_data[RUN_MAX_RANKS][128]; /* each rank's data socket, where its loaders connect */
    char ep_data_bind[RUN_MAX_RANKS][128]; /* where each rank's trainer binds it (tcp: --bind) */
    char ep_ckpt[128], ep_ctl[128], ep_rep[128]; /* where peers connect */
    char ep_bind[4][128];            /* where rank 0's data, ckpt, ctl, rep bind (tcp: --bind) */
    char ep_dist[128];               /* --gpus > 1: the ranks' group socket (rank 0 binds; local) */
    int ranks_done;                  /* trainer ranks that exited 0 */
    void *ctx, *pub, *pull, *notices;
    ProtoOut po;
    RunProcs procs;
    RunDir dir;
    RunProgress prog;
    RunEval ev;                      /* the evaluation being assembled */
    int start_epoch;                 /* first epoch of this (maybe resumed) run */
    uint32_t train_epoch;            /* the trainer's current epoch: where loaders restart */
    uint64_t final_step;             /* step of the newest checkpoint notice */
    uint32_t final_epoch;            /* and its epoch */
    char final_path[PROTO_MAX_PATH + 1]; /* its file: a restarted evaluator starts there */
    int have_notice;
    uint64_t evaluated_step;         /* step of the newest evaluation */
    uint64_t pending[RUN_PENDING_NOTICES]; /* steps of notices newer than it, oldest first: at
                                        the next evaluation, those before its step were
                                        not evaluated (the evaluator's pace, conflation) */
    int npending;
    uint64_t pending_lost;           /* notices beyond the array: counted as not evaluated */
    int evaluations;
    double best_top1;
    uint32_t best_epoch;
    uint64_t dropped;                /* malformed or foreign messages */
    int trainer_done;                /* every trainer rank exited 0 */
    int out_pipe[2];                 /* children's stdout/stderr, read by the supervisor */
    char out_line[4096];             /* a line from them not yet complete */
    size_t out_len;
} Sup;

/* Parses stoker-run's own flags (-j/--workers, --output-dir, --resume DIR, --tcp, --bind,
 * --curve-key, --curve-clients, --remote-loaders) and checks
 * the rest as stoker-train would (they are passed on to it); exits on bad usage. With
 * --resume DIR and no other flags the run's recorded flags (config.json) are reused. */
void parse_args(Sup *s, int argc, char **argv);

/* Indexes the dataset if it has no index and decides the micro-batch the loaders make
 * and the trainer trains on (train_plan.h: --micro-batch, or the memory plan); exits on
 * failure. */
void plan_batches(Sup *s);

/* Every setting of the run as a JSON object (jansson json_t *) for config.json. */
void *config_json(const Sup *s, int argc, char **argv);

/* Reads everything waiting on the reports socket and the notices; never blocks. */
void run_reports_drain(Sup *s);

#endif
