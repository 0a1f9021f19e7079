/* The parameter gradients of the per-channel scale and shift
 * (peft_scale_shift.c), over `pixels` rows of `channels`:
 *   grad_gamma[c] += sum over i of grad_out[i][c] * in[i][c]
 *   grad_beta[c]  += sum over i of grad_out[i][c]   (grad_beta NULL: not wanted)
 * each sum over i in order, then added. */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "peft/peft_kernels.h"

peft_status peft_scale_shift_bwd_param_f32(int32_t pixels, int32_t channels, const float *in,
					   const float *grad_out, float *grad_gamma,
					   float *grad_beta)
{
	if (!peft_size_ok(pixels, channels, 1, 1) || in == NULL || grad_out == NULL ||
	    grad_gamma == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t c = 0; c < channels; c++) {
		float acc_gamma = 0.0f;
		float acc_beta = 0.0f;

		for (int32_t i = 0; i < pixels; i++) {
			float g = grad_out[i * channels + c];

			acc_gamma += g * in[i * channels + c];
			acc_beta += g;
		}
		grad_gamma[c] += acc_gamma;
		if (grad_beta != NULL) {
			grad_beta[c] += acc_beta;
		}
	}
	return PEFT_OK;
}
