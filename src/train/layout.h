/* layout.h — building a td_model_layout (train.h): the one helper every family's layout
 * uses. A leaf: it includes only the public train.h. */
#ifndef TRAIND_LAYOUT_H
#define TRAIND_LAYOUT_H

#include <stdint.h>

#include "traind/train.h"

/* Appends tensor `name` (layer, rows x cols, penalized, skip_rows) at *off to t[*n],
 * zeroing the rest of the entry; advances *n and *off. */
void td_tensor_add(td_tensor_desc *t, int *n, int64_t *off, const char *name, int layer,
                   int64_t rows, int64_t cols, int penalized, int64_t skip_rows);

#endif
