/* test_proc_fixture.h: helpers for suites that run stoker's processes: spawning with
 * logs, waiting with a deadline, receiving with a deadline, a tiny synthetic dataset.
 * Every helper asserts (Criterion) on failure. */
#ifndef TEST_PROC_FIXTURE_H
#define TEST_PROC_FIXTURE_H

#include <sys/types.h>

#include "proto_zmq.h"

/* Starts argv (argv[0] a path) with stdout and stderr appended to log (or inherited when
 * NULL), in its own process group so a test can signal it and its children at once. */
pid_t px_spawn(const char *const *argv, const char *log);

/* Waits up to ms for pid; returns its exit status, or 128 + signal. Asserts (after
 * killing it) if it is still running. */
int px_wait(pid_t pid, int ms);

/* 1 while pid (not yet reaped) is running, 0 once it exited (it is then reaped and its
 * status stored in *status when status is not NULL). */
int px_running(pid_t pid, int *status);

/* Receives one message within ms: PROTO_OK (release it) or PROTO_AGAIN on time out. */
int px_recv(void *sock, ProtoRecv *r, int ms);

/* A socket on ctx with the usual options, bound (bind = 1) or connected to ep. */
void *px_socket(void *ctx, int type, const char *ep, int bind);

/* Writes a synthetic ImageFolder (4 classes, 64 train + 16 val images each, 28x28) at
 * dir, indexed, with no bad file: sample accounting is then exact. */
void px_synth(const char *dir);

/* The whole of a (small) text file, NUL-terminated and malloc'd, or NULL if absent. */
char *px_slurp(const char *path);

/* Counts the entries of a directory other than . and .., -1 if it is absent. */
int px_count_entries(const char *dir);

#endif
