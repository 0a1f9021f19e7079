/* The fused ReLU/ReLU6 derivative kept as 1 bit per element (private to
 * lib/peft: the trainer keeps it for backward instead of a copy of the output).
 * Bit i of byte i / 8, LSB first, is set where act'(y) = 1 (0 < y, and y < 6 for
 * ReLU6); backward multiplies the gradient by the bit. Equal to
 * peft_activation_bwd_f32 on the same forward output y. Both functions are
 * kernels (peft_activation_mask.c; the optimized backend has its own). */
#ifndef PEFT_ACTIVATION_MASK_H
#define PEFT_ACTIVATION_MASK_H

#include <stdbool.h>
#include <stdint.h>

#include "peft/peft_kernels.h"

static inline bool peft_activation_ok(peft_activation act)
{
	return act == PEFT_ACT_NONE || act == PEFT_ACT_RELU || act == PEFT_ACT_RELU6;
}

/* x = act(x) in place, as peft_activation_fwd_f32, and the mask of the result
 * (act not PEFT_ACT_NONE). */
peft_status peft_activation_fwd_mask_f32(peft_activation act, int32_t n, float *x, uint8_t *mask);
peft_status peft_activation_bwd_mask_f32(int32_t n, const uint8_t *mask, float *grad);

#endif /* PEFT_ACTIVATION_MASK_H */
