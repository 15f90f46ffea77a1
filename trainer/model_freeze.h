/* model_freeze.h: which parts of a model train when fine-tuning: the head and the last
 * N blocks, counted from the output as torchvision's detection backbones count them
 * (resnet_fpn_backbone(trainable_layers=N)).
 *
 * The head is the module of the model's last parameterised layer: "fc" for ResNets,
 * "classifier" (every classifier.N) for the others. Blocks, from the input:
 *   resnet*:  0 the stem (conv1 + bn1), 1..4 layer1..layer4 (5 blocks)
 *   smallcnn: its three stages of conv-BN pairs (features.0-5, 7-12, 14-19)
 *   others:   each features.<i> is block i (torchvision's MobileNet/EfficientNet stages)
 * Freezing a layer makes its parameters non-trainable: they leave the gradient and
 * optimizer-state arenas (model_layout runs again), the backend computes no weight
 * gradient for them and runs their batch norms in eval mode, so running statistics and
 * num_batches_tracked stay as loaded (what a user freezing a backbone expects; it is
 * torchvision's FrozenBatchNorm2d in detection). */
#ifndef MODEL_FREEZE_H
#define MODEL_FREEZE_H

#include "model.h"

/* 1 if layer li belongs to the head. */
int model_layer_is_head(const Model *m, int li);

/* Block of layer li (0 = nearest the input), or -1 for the head. */
int model_layer_block(const Model *m, int li);

/* Blocks outside the head: 1 + the largest block of a parameterised layer. */
int model_num_blocks(const Model *m);

/* Freezes everything but the head and the last `trainable_blocks` blocks (0: the head
 * only, as --freeze-backbone) and lays the parameter table out again. Call before
 * cpu_net_init and before filling parameters (offsets move). Returns 0, or -1 + err when
 * trainable_blocks is negative or above model_num_blocks (the message says how many). */
int model_freeze(Model *m, int trainable_blocks, StkErr *err);

/* 1 if layer li has parameters and they are frozen. */
int model_layer_frozen(const Model *m, int li);

#endif
