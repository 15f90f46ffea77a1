/* stk_proc.h: starting and stopping the pipeline's child processes (loaders started by
 * stoker-train and stoker-eval, every process started by stoker-run) the one careful way:
 * signals stay blocked across fork, so a stop sent right after the start cannot be
 * swallowed by the parent's handler still installed in the child before exec; the child
 * gets SIGTERM when its parent dies (no orphans, and a trainer still saves); then exec. */
#ifndef STK_PROC_H
#define STK_PROC_H

#include <sys/types.h>

#include "stk_err.h"

typedef struct StkSpawn {
    const char *who;     /* the parent's name, for the child's exec failure message */
    int ignore_sigint;   /* 1: the child ignores SIGINT (a terminal's Ctrl-C goes to the
                            whole process group; the parent stops its children itself) */
    int out_fd;          /* >= 0: the child's stdout and stderr; -1: inherited */
    int threads;         /* > 0: OMP_NUM_THREADS and OPENBLAS_NUM_THREADS, unless set */
} StkSpawn;

/* Forks and execs argv (argv[0] a path, NULL-terminated) as o says; *pid gets the child.
 * Returns 0, or -1 + err when fork fails (an exec failure shows as exit status 127). */
int stk_spawn(const char *const *argv, const StkSpawn *o, pid_t *pid, StkErr *err);

/* SIGTERM to pid (if > 0), then waits for it (EINTR-safe). */
void stk_stop(pid_t pid);

#endif
