/* run_ranks.h: how stoker-run lays out a data-parallel run (--gpus N): one stoker-train
 * per rank and the -j loaders dealt out to the ranks round-robin, each rank's loaders
 * counted among themselves (loader_shard.h: loader i of L for rank r).
 *
 * Process slots (RunProcs): rank 0's trainer at 0, the evaluator at 1, loader i at 2 + i,
 * then the trainers of ranks 1..N-1 (so a single-GPU run has the layout it always had). */
#ifndef RUN_RANKS_H
#define RUN_RANKS_H

#define RUN_MAX_RANKS 64    /* --gpus at most (train_config's limit) */
#define RUN_EVALUATOR_SLOT 1 /* procs: rank 0's trainer at 0, the evaluator at 1, */
#define RUN_FIRST_LOADER 2   /* then loader i at 2 + i, then ranks 1.. */

/* The rank global loader i (0 <= i < workers) feeds, and its id among that rank's. */
int run_ranks_loader_rank(int i, int gpus);
int run_ranks_loader_id(int i, int gpus);

/* How many of `workers` loaders feed rank (workers >= gpus gives each at least one). */
int run_ranks_loaders_of(int rank, int workers, int gpus);

/* The process slot of rank's trainer. */
int run_ranks_trainer_slot(int rank, int workers);

/* Default -j: the cores left after the trainers and, when there is one (evaluator 1), the
 * evaluator and its val loader, at least one loader per rank (one GPU: cores - 3). The
 * val loader decodes 10,000 Fashion-MNIST JPEGs per evaluation: counted as a loader, it
 * would share a core with a training loader or the trainer, whose host thread then
 * launches late and the GPU waits. */
int run_ranks_default_workers(long cores, int gpus, int evaluator);

#endif
