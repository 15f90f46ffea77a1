/* stk_proc.c: child processes (see stk_proc.h). */
#include "stk_proc.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* In the child, between fork and exec: default dispositions, no blocked signals, the
 * parent-death signal, output and thread settings. */
static void child(const char *const *argv, const StkSpawn *o, pid_t parent) {
    signal(SIGTERM, SIG_DFL), signal(SIGCHLD, SIG_DFL);
    signal(SIGINT, o->ignore_sigint ? SIG_IGN : SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(1); /* the parent died before prctl took effect */
    if (o->out_fd >= 0) dup2(o->out_fd, STDOUT_FILENO), dup2(o->out_fd, STDERR_FILENO);
    if (o->threads > 0) {
        char n[16];
        snprintf(n, sizeof n, "%d", o->threads);
        setenv("OMP_NUM_THREADS", n, 0);
        setenv("OPENBLAS_NUM_THREADS", n, 0);
    }
    execv(argv[0], (char *const *)argv);
    fprintf(stderr, "%s: exec %s: %s\n", o->who ? o->who : "stoker", argv[0], strerror(errno));
    _exit(127);
}

int stk_spawn(const char *const *argv, const StkSpawn *o, pid_t *pid, StkErr *err) {
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    pid_t parent = getpid(), p = fork();
    if (p == 0) child(argv, o, parent);
    int saved = errno;
    sigprocmask(SIG_SETMASK, &old, NULL);
    if (p < 0) return stk_errf(err, "fork %s: %s", argv[0], strerror(saved));
    *pid = p;
    return 0;
}

void stk_stop(pid_t pid) {
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
}
