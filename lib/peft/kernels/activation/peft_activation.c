/* Fused activations, in place. The backward pass reads the forward OUTPUT y:
 * relu'(x) is 1 exactly where y > 0, relu6'(x) exactly where 0 < y < 6 (TF's
 * convention at the kinks: gradient 0 at x == 0 and x == 6), so the runtime
 * needs to keep only the output. */
#include <stddef.h>

#include "peft/peft_kernels.h"
#include "peft_activation_mask.h"

peft_status peft_activation_fwd_f32(peft_activation act, int32_t n, float *x)
{
	if (!peft_activation_ok(act) || n <= 0 || x == NULL) {
		return PEFT_ERR_ARG;
	}
	if (act == PEFT_ACT_NONE) {
		return PEFT_OK;
	}
	for (int32_t i = 0; i < n; i++) {
		float v = x[i] > 0.0f ? x[i] : 0.0f;

		if (act == PEFT_ACT_RELU6 && v > 6.0f) {
			v = 6.0f;
		}
		x[i] = v;
	}
	return PEFT_OK;
}

peft_status peft_activation_bwd_f32(peft_activation act, int32_t n, const float *y, float *grad)
{
	if (!peft_activation_ok(act) || n <= 0 || y == NULL || grad == NULL) {
		return PEFT_ERR_ARG;
	}
	if (act == PEFT_ACT_NONE) {
		return PEFT_OK;
	}
	for (int32_t i = 0; i < n; i++) {
		bool pass = y[i] > 0.0f && (act != PEFT_ACT_RELU6 || y[i] < 6.0f);

		if (!pass) {
			grad[i] = 0.0f;
		}
	}
	return PEFT_OK;
}
