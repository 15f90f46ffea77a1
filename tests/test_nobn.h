/* test_nobn.h: the small model without batch norm that the accumulation and data-parallel
 * tests share: there K micro-batches (or K ranks) summed are the same function as one
 * batch of K times the size, so results can be compared across batch splits.
 * conv3x3 (bias) - ReLU - maxpool 2 - conv3x3 (bias) - ReLU - avgpool - linear. */
#ifndef TEST_NOBN_H
#define TEST_NOBN_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

/* Builds it for c x s x s inputs and `classes` outputs, laid out; 0, or -1 (m->err). */
int test_nobn_build(Model *m, int c, int s, int classes);

/* Sample i of a run (c x s x s floats in NCHW, and a label): the same in every process. */
void test_nobn_sample(size_t i, int c, int s, int classes, float *x, int32_t *label);

#endif
