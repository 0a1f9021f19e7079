/* FULLY_CONNECTED input gradient, int8 path (see peft_kernels.h): each row of
 * grad_out quantized to int16 values in [-127, 127], multiplied by the int8
 * weights in exact int32 sums, one input feature at a time. */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "../peft_kernel_loops.h"
#include "peft/peft_kernels.h"

int32_t peft_fc_bwd_input_s8s8_get_buffer_size(const peft_fc_params *p)
{
	return peft_fc_params_ok(p) ? peft_s8s8_scratch_bytes(p) : 0;
}

peft_status peft_fc_bwd_input_s8s8(const peft_fc_params *p, const peft_weights_s8 *w,
				   const float *grad_out, float *grad_in, bool accumulate,
				   int16_t *scratch, int32_t scratch_bytes)
{
	if (!peft_s8s8_args_ok(p, w, grad_out, grad_in, scratch, scratch_bytes)) {
		return PEFT_ERR_ARG;
	}
	const int32_t n_in = p->in_features;
	const int32_t n_out = p->out_features;
	const peft_wsrc src = peft_wsrc_s8(w);

	for (int32_t r = 0; r < p->rows; r++) {
		const float s = peft_quantize_grad_row(n_out, grad_out + r * n_out, &src, scratch);
		float *gi = grad_in + r * n_in;

		for (int32_t i = 0; i < n_in; i++) {
			int32_t acc = 0;

			for (int32_t o = 0; o < n_out; o++) {
				acc += (int32_t)w->data[o * n_in + i] * scratch[o];
			}
			gi[i] = accumulate ? gi[i] + (float)acc * s : (float)acc * s;
		}
	}
	return PEFT_OK;
}
