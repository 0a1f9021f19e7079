/* ADD (residual connection): out = a + b. Both inputs receive grad_out
 * unchanged, so the backward kernel is called once per input. */
#include <stddef.h>

#include "peft/peft_kernels.h"

peft_status peft_add_fwd_f32(int32_t n, const float *a, const float *b, float *out)
{
	if (n <= 0 || a == NULL || b == NULL || out == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t i = 0; i < n; i++) {
		out[i] = a[i] + b[i];
	}
	return PEFT_OK;
}

peft_status peft_add_bwd_input_f32(int32_t n, const float *grad_out, float *grad_in,
				   bool accumulate)
{
	if (n <= 0 || grad_out == NULL || grad_in == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t i = 0; i < n; i++) {
		grad_in[i] = accumulate ? grad_in[i] + grad_out[i] : grad_out[i];
	}
	return PEFT_OK;
}
