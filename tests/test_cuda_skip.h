/* test_cuda_skip.h: what every GPU suite calls first in a test: skip it (not fail it)
 * where no CUDA device is present, as on CI, with the runtime's reason. */
#ifndef TEST_CUDA_SKIP_H
#define TEST_CUDA_SKIP_H

#include <criterion/criterion.h>

#include "cuda_device.h"

static inline void need_gpu(void) {
    int count;
    StkErr err;
    cuda_device_count(&count, &err);
    if (count == 0) cr_skip_test("%s", err.msg);
}

#endif
