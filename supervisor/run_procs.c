/* run_procs.c: stoker-run's children (see run_procs.h). */
#include "run_procs.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int run_proc_start(RunProc *proc, const char *const *argv, int out_fd, StkErr *err) {
    /* Signals stay blocked across fork: until exec the child would run the supervisor's
     * handler, and a stop meant for it would be swallowed. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        return stk_errf(err, "fork %s: %s", argv[0], strerror(errno));
    }
    if (pid == 0) {
        signal(SIGTERM, SIG_DFL), signal(SIGCHLD, SIG_DFL);
        signal(SIGINT, SIG_IGN);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        /* a supervisor killed outright: SIGTERM, so the trainer still saves and exits */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(1);
        if (out_fd >= 0) dup2(out_fd, STDOUT_FILENO), dup2(out_fd, STDERR_FILENO);
        if (proc->threads > 0) {
            char n[16];
            snprintf(n, sizeof n, "%d", proc->threads);
            setenv("OMP_NUM_THREADS", n, 0);
            setenv("OPENBLAS_NUM_THREADS", n, 0);
        }
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "stoker-run: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    sigprocmask(SIG_SETMASK, &old, NULL);
    proc->pid = pid;
    proc->heard_ms = run_now_ms();
    proc->status = 0;
    return 0;
}

RunProc *run_procs_reap(RunProcs *ps) {
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (int i = 0; i < ps->n; i++)
            if (ps->p[i].pid == pid) {
                ps->p[i].pid = 0;
                ps->p[i].status = st;
                return &ps->p[i];
            }
        /* not ours (a helper such as gnuplot is waited for where it runs) */
    }
    return NULL;
}

void run_proc_describe(const RunProc *p, char *buf, size_t cap) {
    if (WIFSIGNALED(p->status))
        snprintf(buf, cap, "killed by signal %d (%s)", WTERMSIG(p->status),
                 strsignal(WTERMSIG(p->status)));
    else
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(p->status));
}

double run_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int run_procs_alive(const RunProcs *ps) {
    int n = 0;
    for (int i = 0; i < ps->n; i++) n += ps->p[i].pid > 0;
    return n;
}

void run_procs_signal(RunProcs *ps, int sig) {
    for (int i = 0; i < ps->n; i++)
        if (ps->p[i].pid > 0) kill(ps->p[i].pid, sig);
}
