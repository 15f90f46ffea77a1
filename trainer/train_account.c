/* train_account.c: per-epoch sample-id bitmap (see train_account.h). */
#include "train_account.h"

#include <stdlib.h>
#include <string.h>

int train_account_init(TrainAccount *a, uint64_t samples, StkErr *err) {
    *a = (TrainAccount){.samples = samples};
    a->seen = calloc((size_t)(samples + 7) / 8 + 1, 1);
    if (!a->seen) return stk_errf(err, "train_account: out of memory for %llu samples",
                                  (unsigned long long)samples);
    return 0;
}

void train_account_free(TrainAccount *a) {
    free(a->seen);
    a->seen = NULL;
}

void train_account_reset(TrainAccount *a) {
    memset(a->seen, 0, (size_t)(a->samples + 7) / 8 + 1);
    a->consumed = a->unique = a->foreign = 0;
}

void train_account_add(TrainAccount *a, const uint64_t *ids, uint32_t n) {
    for (uint32_t i = 0; i < n; i++) {
        uint64_t id = ids[i];
        a->consumed++;
        if (id >= a->samples) {
            a->foreign++;
            continue;
        }
        uint8_t bit = (uint8_t)(1u << (id % 8));
        if (!(a->seen[id / 8] & bit)) a->unique++;
        a->seen[id / 8] |= bit;
    }
}

uint64_t train_account_lost(const TrainAccount *a, uint64_t expected) {
    return a->unique < expected ? expected - a->unique : 0;
}

uint64_t train_account_repeated(const TrainAccount *a) { return a->consumed - a->unique; }
