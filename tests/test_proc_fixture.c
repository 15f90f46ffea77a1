/* test_proc_fixture.c: process and socket helpers for the pipeline suites. */
#include "test_proc_fixture.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

pid_t px_spawn(const char *const *argv, const char *log) {
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork");
    if (pid == 0) {
        setpgid(0, 0);
        if (log) {
            int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (fd < 0) _exit(126);
            dup2(fd, 1), dup2(fd, 2), close(fd);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    setpgid(pid, pid); /* both sides, so it holds whichever runs first */
    return pid;
}

int px_running(pid_t pid, int *status) {
    int st;
    if (waitpid(pid, &st, WNOHANG) != pid) return 1;
    if (status) *status = st;
    return 0;
}

int px_wait(pid_t pid, int ms) {
    int st;
    for (int t = 0; t < ms; t += 10) {
        if (!px_running(pid, &st)) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        usleep(10000);
    }
    kill(-pid, SIGKILL);
    waitpid(pid, &st, 0);
    cr_assert_fail("process %d still running after %d ms", (int)pid, ms);
    return -1;
}

int px_recv(void *sock, ProtoRecv *r, int ms) {
    StkErr err;
    zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
    for (;;) {
        int n = zmq_poll(&it, 1, ms);
        cr_assert(n >= 0, "zmq_poll: %s", zmq_strerror(zmq_errno()));
        if (n == 0) return PROTO_AGAIN;
        int rc = proto_recv(sock, r, ZMQ_DONTWAIT, &err);
        cr_assert(rc != PROTO_FAIL, "%s", err.msg);
        if (rc == PROTO_OK) return rc; /* PROTO_BAD or AGAIN: poll again */
    }
}

void *px_socket(void *ctx, int type, const char *ep, int bind) {
    void *s = zmq_socket(ctx, type);
    StkErr err;
    cr_assert(s && proto_zmq_setup(s, 1000, 1000, 0, &err) == 0);
    if (type == ZMQ_SUB) cr_assert_eq(zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0), 0);
    int rc = bind ? zmq_bind(s, ep) : zmq_connect(s, ep);
    cr_assert_eq(rc, 0, "%s %s: %s", bind ? "bind" : "connect", ep, zmq_strerror(zmq_errno()));
    return s;
}

void px_synth(const char *dir) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s/stoker-data' synth '%s' --classes 4 --per-class 64 "
             "--val-per-class 16 --size 28x28 -j 1 >/dev/null 2>&1", STOKER_BIN_DIR, dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
}

char *px_slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t n = 0, cap = 4096; /* read to the end: /proc files say their size is 0 */
    char *b = malloc(cap);
    cr_assert(b);
    for (size_t got; (got = fread(b + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (cap - n < 2) cr_assert((b = realloc(b, cap *= 2)));
    }
    b[n] = 0;
    fclose(f);
    return b;
}

int px_count_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.' ||
        (e->d_name[1] && (e->d_name[1] != '.' || e->d_name[2]));
    closedir(d);
    return n;
}
