/* run_procs.c: stoker-run's children (see run_procs.h). */
#include "run_procs.h"

#include "stk_proc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int run_proc_start(RunProc *proc, const char *const *argv, int out_fd, StkErr *err) {
    /* Ctrl-C is the supervisor's to handle; a supervisor killed outright sends SIGTERM, so
     * the trainer still saves and exits (stk_proc.h) */
    StkSpawn o = {"stoker-run", 1, out_fd, proc->threads};
    pid_t pid;
    if (stk_spawn(argv, &o, &pid, err)) return -1;
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
