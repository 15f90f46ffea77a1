/* run_procs.h: the children stoker-run starts: who they are, starting, restarting,
 * noticing at once when one ends (waitpid without blocking, polled every loop turn),
 * naming it and how it ended, stopping them all. */
#ifndef RUN_PROCS_H
#define RUN_PROCS_H

#include <sys/types.h>

#include "stk_err.h"

#define RUN_MAX_PROCS 1030 /* loaders + trainer + evaluator */
#define RUN_MAX_ARGS 96

typedef enum RunRole { RUN_LOADER, RUN_TRAINER, RUN_EVALUATOR } RunRole;

typedef struct RunProc {
    RunRole role;
    int id;                     /* loader id; 0 otherwise */
    pid_t pid;                  /* 0 once it has ended */
    int status;                 /* waitpid status of its end */
    int restarts;               /* times it was restarted */
    int threads;                /* > 0: OMP/OpenBLAS threads for it, unless the user set them */
    double heard_ms;            /* when it was started or last sent a heartbeat (run_now_ms) */
    char name[48];              /* "stoker-loader 3" ... for messages */
} RunProc;

typedef struct RunProcs {
    RunProc p[RUN_MAX_PROCS];
    int n;
} RunProcs;

/* Starts argv (argv[0] a path) as a child with SIGINT ignored at exec (the terminal's
 * Ctrl-C goes to the whole foreground group; the supervisor decides how children stop:
 * the shutdown message), SIGTERM on the supervisor's death, and its stdout and stderr
 * on out_fd (>= 0; -1 keeps them), so its lines cannot land inside the live progress
 * line. proc gets the pid. */
int run_proc_start(RunProc *proc, const char *const *argv, int out_fd, StkErr *err);

/* Reaps one child that ended, if any: returns it (pid cleared, status set), or NULL. */
RunProc *run_procs_reap(RunProcs *ps);

/* How a child ended, in words: "exited with status 1", "killed by signal 9 (Killed)". */
void run_proc_describe(const RunProc *p, char *buf, size_t cap);

/* CLOCK_MONOTONIC in milliseconds. */
double run_now_ms(void);

/* Children still running. */
int run_procs_alive(const RunProcs *ps);

/* Sends sig to every running child. */
void run_procs_signal(RunProcs *ps, int sig);

#endif
