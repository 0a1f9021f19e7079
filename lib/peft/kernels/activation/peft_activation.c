/* Fused activations, in place. The backward pass reads the forward OUTPUT y:
 * relu'(x) is 1 exactly where y > 0, relu6'(x) exactly where 0 < y < 6 (TF's
 * convention at the kinks: gradient 0 at x == 0 and x == 6), so the runtime
 * needs to keep only the output. */
#include <stddef.h>

#include "peft/peft_kernels.h"
#include "peft_activation_mask.h"

static bool activation_ok(peft_activation act)
{
	return act == PEFT_ACT_NONE || act == PEFT_ACT_RELU || act == PEFT_ACT_RELU6;
}

peft_status peft_activation_fwd_f32(peft_activation act, int32_t n, float *x)
{
	if (!activation_ok(act) || n <= 0 || x == NULL) {
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

static bool passes(peft_activation act, float y)
{
	return y > 0.0f && (act != PEFT_ACT_RELU6 || y < 6.0f);
}

peft_status peft_activation_mask_f32(peft_activation act, int32_t n, const float *y, uint8_t *mask)
{
	if (!activation_ok(act) || act == PEFT_ACT_NONE || n <= 0 || y == NULL || mask == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t i = 0; i < n; i += 8) {
		uint8_t bits = 0;

		for (int32_t j = 0; j < 8 && i + j < n; j++) {
			bits |= (uint8_t)(passes(act, y[i + j]) ? 1u << j : 0u);
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

peft_status peft_activation_bwd_f32(peft_activation act, int32_t n, const float *y, float *grad)
{
	if (!activation_ok(act) || n <= 0 || y == NULL || grad == NULL) {
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
