/* ckpt_meta.h: what a checkpoint says about its model, in its safetensors __metadata__
 * (strings only, as the format requires), so stoker-predict needs nothing but the file:
 *
 *   "format": "pt"          (huggingface's marker for PyTorch-layout tensors)
 *   "arch": "resnet18"      "num_classes": "10"
 *   "classes": a JSON array of the class names in label order (the dataset index's
 *              sorted ImageFolder names), e.g. ["cat", "dog"]
 *   "train_crop", "val_resize", "val_crop": the sizes it was trained and evaluated at
 *   "normalize": "imagenet" (the trainer's mean and std, cpu_input.h)
 *   "epoch": written by stoker-train beside these
 *
 * Every key is optional on reading: checkpoints written before these keys existed carry
 * "format" and "epoch" only, and still load (ckpt.h reads only tensors). */
#ifndef CKPT_META_H
#define CKPT_META_H

#include <stddef.h>

#include "st_file.h"

#define CKPT_META_MAX 10

typedef struct CkptMeta {
    char arch[32];          /* "" when the file does not say */
    int num_classes;        /* 0 when the file does not say */
    int train_crop, val_resize, val_crop; /* 0 when the file does not say */
    char **classes;         /* [num_classes] names (owned), or NULL when not recorded */
    char *classes_json;     /* the "classes" value (owned), or NULL */
    char num[4][16];        /* decimal strings behind entry[] */
    StMeta entry[CKPT_META_MAX]; /* for ckpt_save: views into the fields above */
    size_t count;
} CkptMeta;

/* Fills cm for writing: classes may be NULL (names not known). Returns 0 or -1 + err
 * (out of memory, a name that is not UTF-8). */
int ckpt_meta_init(CkptMeta *cm, const char *arch, int num_classes, const char *const *classes,
                   int train_crop, int val_resize, int val_crop, StkErr *err);

/* The entries for ckpt_save plus ("epoch", epoch) when epoch is not NULL (epoch must
 * outlive the call that writes). Returns the entry array; *count gets its length. */
const StMeta *ckpt_meta_entries(CkptMeta *cm, const char *epoch, size_t *count);

/* Reads what f says (see above); a "classes" value that is not a JSON array of
 * num_classes strings fails, naming the file. */
int ckpt_meta_read(CkptMeta *cm, const StFile *f, StkErr *err);

/* Frees what cm owns; safe on a zeroed CkptMeta. */
void ckpt_meta_free(CkptMeta *cm);

#endif
