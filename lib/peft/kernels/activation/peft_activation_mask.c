/* The fused activation with its 1-bit derivative (peft_activation_mask.h),
 * reference backend: the forward kernel, then the mask of its output. */
#include <stddef.h>

#include "../../common/peft_try.h"
#include "peft/peft_kernels.h"
#include "peft_activation_mask.h"

static bool passes(peft_activation act, float y)
{
	return y > 0.0f && (act != PEFT_ACT_RELU6 || y < 6.0f);
}

peft_status peft_activation_fwd_mask_f32(peft_activation act, int32_t n, float *x, uint8_t *mask)
{
	if (act == PEFT_ACT_NONE || mask == NULL) {
		return PEFT_ERR_ARG;
	}
	PEFT_TRY(peft_activation_fwd_f32(act, n, x));
	for (int32_t i = 0; i < n; i += 8) {
		uint8_t bits = 0;

		for (int32_t j = 0; j < 8 && i + j < n; j++) {
			bits |= (uint8_t)(passes(act, x[i + j]) ? 1u << j : 0u);
		}
		mask[i / 8] = bits;
	}
	return PEFT_OK;
}

peft_status peft_activation_bwd_mask_f32(int32_t n, const uint8_t *mask, float *grad)
{
	if (n <= 0 || mask == NULL || grad == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t i = 0; i < n; i++) {
		if ((mask[i / 8] & (1u << (i % 8))) == 0) {
			grad[i] = 0.0f;
		}
	}
	return PEFT_OK;
}
