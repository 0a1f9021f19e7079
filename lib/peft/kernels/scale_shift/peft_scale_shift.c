/* Per-channel scale and shift over `pixels` rows of `channels`:
 *   out[i][c]       = in[i][c] * gamma[c] + beta[c]
 *   grad_in[i][c]   = grad_out[i][c] * gamma[c]
 * (the parameter gradients: peft_scale_shift_bwd_param.c, a file of its own that
 * the optimized backend replaces). */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "peft/peft_kernels.h"

peft_status peft_scale_shift_fwd_f32(int32_t pixels, int32_t channels, const float *in,
				     const float *gamma, const float *beta, float *out)
{
	if (!peft_size_ok(pixels, channels, 1, 1) || in == NULL || gamma == NULL || beta == NULL ||
	    out == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t i = 0; i < pixels; i++) {
		for (int32_t c = 0; c < channels; c++) {
			out[i * channels + c] = in[i * channels + c] * gamma[c] + beta[c];
		}
	}
	return PEFT_OK;
}

peft_status peft_scale_shift_bwd_input_f32(int32_t pixels, int32_t channels, const float *gamma,
					   const float *grad_out, float *grad_in, bool accumulate)
{
	if (!peft_size_ok(pixels, channels, 1, 1) || gamma == NULL || grad_out == NULL ||
	    grad_in == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t i = 0; i < pixels; i++) {
		for (int32_t c = 0; c < channels; c++) {
			float g = grad_out[i * channels + c] * gamma[c];
			float *gi = grad_in + i * channels + c;

			*gi = accumulate ? *gi + g : g;
		}
	}
	return PEFT_OK;
}
