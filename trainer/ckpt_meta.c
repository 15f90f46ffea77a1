/* ckpt_meta.c: the model description in a checkpoint's metadata (see ckpt_meta.h); the
 * class list is JSON (jansson) so any name survives, quotes and commas included. */
#include "ckpt_meta.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ckpt_meta_init(CkptMeta *cm, const char *arch, int num_classes, const char *const *classes,
                   int train_crop, int val_resize, int val_crop, StkErr *err) {
    memset(cm, 0, sizeof *cm);
    snprintf(cm->arch, sizeof cm->arch, "%s", arch);
    cm->num_classes = num_classes;
    cm->train_crop = train_crop, cm->val_resize = val_resize, cm->val_crop = val_crop;
    if (classes) {
        json_t *a = json_array();
        for (int i = 0; a && i < num_classes; i++)
            if (json_array_append_new(a, json_string(classes[i]))) json_decref(a), a = NULL;
        cm->classes_json = a ? json_dumps(a, JSON_COMPACT) : NULL;
        json_decref(a);
        if (!cm->classes_json)
            return stk_errf(err, "checkpoint metadata: class names not encodable (UTF-8?)");
    }
    int v[4] = {num_classes, train_crop, val_resize, val_crop};
    for (int i = 0; i < 4; i++) snprintf(cm->num[i], sizeof cm->num[i], "%d", v[i]);
    return 0;
}

const StMeta *ckpt_meta_entries(CkptMeta *cm, const char *epoch, size_t *count) {
    size_t n = 0;
    cm->entry[n++] = (StMeta){"format", "pt"};
    cm->entry[n++] = (StMeta){"arch", cm->arch};
    cm->entry[n++] = (StMeta){"num_classes", cm->num[0]};
    if (cm->train_crop) cm->entry[n++] = (StMeta){"train_crop", cm->num[1]};
    if (cm->val_resize) cm->entry[n++] = (StMeta){"val_resize", cm->num[2]};
    if (cm->val_crop) cm->entry[n++] = (StMeta){"val_crop", cm->num[3]};
    cm->entry[n++] = (StMeta){"normalize", "imagenet"};
    if (cm->classes_json) cm->entry[n++] = (StMeta){"classes", cm->classes_json};
    if (epoch) cm->entry[n++] = (StMeta){"epoch", epoch};
    *count = cm->count = n;
    return cm->entry;
}

static int meta_int(const StFile *f, const char *key) {
    const char *v = st_meta(f, key);
    return v ? atoi(v) : 0;
}

/* Parses the "classes" JSON array into cm->classes. */
static int read_classes(CkptMeta *cm, const StFile *f, const char *json, StkErr *err) {
    json_error_t je;
    json_t *a = json_loads(json, 0, &je);
    int n = a && json_is_array(a) ? (int)json_array_size(a) : -1;
    if (n < 1 || (cm->num_classes && n != cm->num_classes)) {
        json_decref(a);
        return stk_errf(err, "%s: metadata \"classes\" is not a list of %d names", f->path,
                        cm->num_classes);
    }
    cm->num_classes = n;
    cm->classes = calloc((size_t)n, sizeof *cm->classes);
    for (int i = 0; cm->classes && i < n; i++) {
        const char *s = json_string_value(json_array_get(a, (size_t)i));
        if (!s || !(cm->classes[i] = strdup(s))) {
            json_decref(a);
            return stk_errf(err, "%s: metadata \"classes\"[%d] is not a string", f->path, i);
        }
    }
    json_decref(a);
    return cm->classes ? 0 : stk_errf(err, "out of memory");
}

int ckpt_meta_read(CkptMeta *cm, const StFile *f, StkErr *err) {
    memset(cm, 0, sizeof *cm);
    const char *arch = st_meta(f, "arch"), *classes = st_meta(f, "classes");
    if (arch) snprintf(cm->arch, sizeof cm->arch, "%s", arch);
    cm->num_classes = meta_int(f, "num_classes");
    cm->train_crop = meta_int(f, "train_crop");
    cm->val_resize = meta_int(f, "val_resize");
    cm->val_crop = meta_int(f, "val_crop");
    if (classes && read_classes(cm, f, classes, err)) {
        ckpt_meta_free(cm);
        return -1;
    }
    return 0;
}

void ckpt_meta_free(CkptMeta *cm) {
    for (int i = 0; cm->classes && i < cm->num_classes; i++) free(cm->classes[i]);
    free(cm->classes);
    free(cm->classes_json);
    memset(cm, 0, sizeof *cm);
}
