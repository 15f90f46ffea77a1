/* optim.h: optimizer steps with PyTorch's exact update rules (torch.optim.SGD and
 * AdamW, 1.13), over one parameter tensor at a time, so a step can be checked against
 * PyTorch element for element. State (momentum buffer, Adam moments) lives in the
 * optimizer-state arena; the caller passes it in. Weight decay can be exempted per
 * tensor (torchvision's --norm-weight-decay / bias exemption): pass wd = 0 for those. */
#ifndef OPTIM_H
#define OPTIM_H

#include <stddef.h>
#include <stdint.h>

typedef enum OptimKind { OPTIM_SGD = 0, OPTIM_ADAMW = 1 } OptimKind;

typedef struct OptimConfig {
    OptimKind kind;
    double momentum;      /* SGD: 0 turns momentum off (torchvision default 0.9) */
    double dampening;     /* SGD: PyTorch's dampening (0) */
    int nesterov;         /* SGD: Nesterov momentum */
    double beta1, beta2;  /* AdamW: 0.9, 0.999 */
    double eps;           /* AdamW: 1e-8 */
} OptimConfig;

/* State floats needed per parameter element: 1 (SGD with momentum), 0 (plain SGD),
 * 2 (AdamW: exp_avg then exp_avg_sq, each n long). */
int optim_state_per_element(const OptimConfig *c);

/* One SGD step on n elements: p -= lr * update. buf (n floats) is the momentum buffer;
 * first_step says it is uninitialised (PyTorch clones the gradient into it then). */
void optim_sgd_step(const OptimConfig *c, float *p, const float *g, float *buf, size_t n,
                    double lr, double wd, int first_step);

/* One AdamW step (decoupled weight decay) on n elements; state holds exp_avg[n] then
 * exp_avg_sq[n]; step counts from 1. */
void optim_adamw_step(const OptimConfig *c, float *p, const float *g, float *state, size_t n,
                      double lr, double wd, uint64_t step);

#endif
