/* model_freeze.c: the head, blocks per architecture and freezing (see model_freeze.h). */
#include "model_freeze.h"

#include <stdio.h>
#include <string.h>

/* Length of the first dotted component of name ("classifier.3" -> 10). */
static size_t top_len(const char *name) {
    const char *dot = strchr(name, '.');
    return dot ? (size_t)(dot - name) : strlen(name);
}

int model_layer_is_head(const Model *m, int li) {
    int last = m->nlayers - 1;
    while (last >= 0 && !m->layer[last].nparams) last--;
    if (last < 0 || !m->layer[li].nparams) return 0;
    const char *head = m->layer[last].name, *name = m->layer[li].name;
    size_t n = top_len(head);
    return top_len(name) == n && !strncmp(name, head, n);
}

int model_layer_block(const Model *m, int li) {
    if (model_layer_is_head(m, li)) return -1;
    const char *name = m->layer[li].name;
    int i;
    if (!strncmp(m->arch, "resnet", 6)) return sscanf(name, "layer%d", &i) == 1 ? i : 0;
    if (sscanf(name, "features.%d", &i) == 1) return strcmp(m->arch, "smallcnn") ? i : i / 7;
    return 0;
}

int model_num_blocks(const Model *m) {
    int top = -1;
    for (int li = 0; li < m->nlayers; li++) {
        int b = m->layer[li].nparams ? model_layer_block(m, li) : -1;
        top = b > top ? b : top;
    }
    return top + 1;
}

int model_freeze(Model *m, int trainable_blocks, StkErr *err) {
    int nb = model_num_blocks(m);
    if (trainable_blocks < 0 || trainable_blocks > nb)
        return stk_errf(err, "%s has %d blocks besides its head; %d trainable ones asked for",
                        m->arch, nb, trainable_blocks);
    for (int li = 0; li < m->nlayers; li++) {
        const ModelLayer *l = &m->layer[li];
        int b = model_layer_block(m, li);
        if (!l->nparams || b < 0 || b >= nb - trainable_blocks) continue;
        /* running statistics are already buffers; weights and biases join them */
        for (int k = 0; k < l->nparams; k++) m->param[l->param0 + k].trainable = 0;
    }
    model_layout(m);
    return 0;
}

int model_layer_frozen(const Model *m, int li) {
    const ModelLayer *l = &m->layer[li];
    return l->nparams > 0 && !m->param[l->param0].trainable;
}
