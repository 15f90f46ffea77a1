/* eval_pace.c: the evaluator's duty cycle (see eval_pace.h). */
#include "eval_pace.h"

void eval_pace_init(EvalPace *p, double duty) {
    p->duty = duty > 0 && duty <= 1 ? duty : 1;
    p->next_s = 0;
}

void eval_pace_done(EvalPace *p, double busy_s, double end_s) {
    p->next_s = end_s + (busy_s > 0 ? busy_s : 0) * (1 / p->duty - 1);
}

int eval_pace_ready(const EvalPace *p, double now_s, int final) {
    return final || p->duty >= 1 || now_s >= p->next_s;
}

int eval_pace_wait_ms(const EvalPace *p, double now_s, int cap_ms) {
    if (p->duty >= 1 || now_s >= p->next_s) return 0;
    double ms = (p->next_s - now_s) * 1e3;
    return ms >= cap_ms ? cap_ms : (int)ms + 1; /* + 1: never wake just before it */
}
