/* test_eval_pace.c: the evaluator's duty cycle (eval_pace.h). */
#include <criterion/criterion.h>

#include "eval_pace.h"

/* 0.25: an evaluation of 1 s is followed by 3 s without one */
Test(eval_pace, a_quarter_duty_waits_three_times_the_evaluation) {
    EvalPace p;
    eval_pace_init(&p, 0.25);
    cr_assert(eval_pace_ready(&p, 0, 0), "the first is never held");
    eval_pace_done(&p, 1, 11);
    cr_assert_not(eval_pace_ready(&p, 13.9, 0));
    cr_assert(eval_pace_ready(&p, 14.0, 0));
    cr_assert_eq(eval_pace_wait_ms(&p, 13.0, 5000), 1001);
    cr_assert_eq(eval_pace_wait_ms(&p, 11.0, 1000), 1000, "capped");
    cr_assert_eq(eval_pace_wait_ms(&p, 14.5, 1000), 0);
}

Test(eval_pace, the_final_checkpoint_is_never_held) {
    EvalPace p;
    eval_pace_init(&p, 0.01);
    eval_pace_done(&p, 2, 2);
    cr_assert_not(eval_pace_ready(&p, 3, 0));
    cr_assert(eval_pace_ready(&p, 3, 1));
}

/* duty 1 (and anything out of (0, 1]) evaluates every notice at once */
Test(eval_pace, full_duty_never_waits) {
    double duties[] = {1, 0, -0.5, 2};
    for (int i = 0; i < 4; i++) {
        EvalPace p;
        eval_pace_init(&p, duties[i]);
        eval_pace_done(&p, 100, 100);
        cr_assert(eval_pace_ready(&p, 100, 0), "duty %g", duties[i]);
        cr_assert_eq(eval_pace_wait_ms(&p, 100, 1000), 0, "duty %g", duties[i]);
    }
}
