/* run_ranks.c: stoker-run's rank layout (see run_ranks.h). */
#include "run_ranks.h"

int run_ranks_loader_rank(int i, int gpus) { return i % gpus; }

int run_ranks_loader_id(int i, int gpus) { return i / gpus; }

int run_ranks_loaders_of(int rank, int workers, int gpus) {
    return rank < workers ? (workers - rank + gpus - 1) / gpus : 0;
}

int run_ranks_trainer_slot(int rank, int workers) {
    return rank == 0 ? 0 : RUN_FIRST_LOADER + workers + rank - 1;
}

int run_ranks_default_workers(long cores, int gpus, int evaluator) {
    long left = cores - gpus - 2L * (evaluator != 0); /* a core per trainer rank, two for evaluation */
    return left > gpus ? (int)left : gpus;
}
