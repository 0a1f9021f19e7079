/* FULLY_CONNECTED forward over independent rows:
 * out[r][o] = bias[o] + sum over i of w[o][i] * in[r][i]. */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "peft/peft_kernels.h"

peft_status peft_fc_fwd_s8(const peft_fc_params *p, const float *in, const peft_weights_s8 *w,
			   const float *bias, float *out)
{
	if (!peft_fc_params_ok(p) || in == NULL || out == NULL ||
	    !peft_weights_s8_ok(w, p->out_features)) {
		return PEFT_ERR_ARG;
	}
	for (int32_t r = 0; r < p->rows; r++) {
		const float *x = in + r * p->in_features;

		for (int32_t o = 0; o < p->out_features; o++) {
			const int8_t *q = w->data + o * p->in_features;
			/* Sum the raw int8 values and scale once per output feature. */
			float acc = 0.0f;

			for (int32_t i = 0; i < p->in_features; i++) {
				acc += (float)q[i] * x[i];
			}
			out[r * p->out_features + o] =
				acc * peft_weight_scale(w, o) + (bias != NULL ? bias[o] : 0.0f);
		}
	}
	return PEFT_OK;
}

peft_status peft_fc_fwd_f32(const peft_fc_params *p, const float *in, const float *w,
			    const float *bias, float *out)
{
	if (!peft_fc_params_ok(p) || in == NULL || w == NULL || out == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t r = 0; r < p->rows; r++) {
		const float *x = in + r * p->in_features;

		for (int32_t o = 0; o < p->out_features; o++) {
			const float *wo = w + o * p->in_features;
			float acc = 0.0f;

			for (int32_t i = 0; i < p->in_features; i++) {
				acc += wo[i] * x[i];
			}
			out[r * p->out_features + o] = acc + (bias != NULL ? bias[o] : 0.0f);
		}
	}
	return PEFT_OK;
}
