/* train_account.h: which sample ids one epoch of training consumed, so a run can say
 * exactly how many samples were lost or repeated (a loader killed and restarted must
 * cost neither: its batches are regenerated and duplicates dropped by train_input). */
#ifndef TRAIN_ACCOUNT_H
#define TRAIN_ACCOUNT_H

#include <stdint.h>

#include "stk_err.h"

typedef struct TrainAccount {
    uint8_t *seen;     /* [ceil(samples / 8)] bitmap of sample ids consumed this epoch */
    uint64_t samples;  /* ids are in [0, samples) */
    uint64_t consumed; /* samples consumed this epoch, repeats included */
    uint64_t unique;   /* distinct ids among them */
    uint64_t foreign;  /* ids outside [0, samples) */
} TrainAccount;

int train_account_init(TrainAccount *a, uint64_t samples, StkErr *err);
void train_account_free(TrainAccount *a);

/* Starts a new epoch: every counter and the bitmap back to zero. */
void train_account_reset(TrainAccount *a);

/* Counts n consumed sample ids. */
void train_account_add(TrainAccount *a, const uint64_t *ids, uint32_t n);

/* Samples expected but not consumed, and consumed more than once (foreign ids count as
 * repeated: they were not owed). */
uint64_t train_account_lost(const TrainAccount *a, uint64_t expected);
uint64_t train_account_repeated(const TrainAccount *a);

#endif
