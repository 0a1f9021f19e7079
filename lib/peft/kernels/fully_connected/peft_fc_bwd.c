/* FULLY_CONNECTED backward over independent rows:
 *   grad_in[r][i]   = sum over o of w[o][i] * grad_out[r][o]
 *   grad_w[o][i]   += sum over r of grad_out[r][o] * in[r][i]
 *   grad_bias[o]   += sum over r of grad_out[r][o] */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "peft/peft_kernels.h"

peft_status peft_fc_bwd_input_s8(const peft_fc_params *p, const peft_weights_s8 *w,
				 const float *grad_out, float *grad_in, bool accumulate)
{
	if (!peft_fc_params_ok(p) || grad_out == NULL || grad_in == NULL ||
	    !peft_weights_s8_ok(w, p->out_features)) {
		return PEFT_ERR_ARG;
	}
	for (int32_t r = 0; r < p->rows; r++) {
		const float *g = grad_out + r * p->out_features;
		float *gi = grad_in + r * p->in_features;

		for (int32_t i = 0; i < p->in_features; i++) {
			float acc = 0.0f;

			for (int32_t o = 0; o < p->out_features; o++) {
				/* The scale belongs to the output feature: fold it into g. */
				acc += (float)w->data[o * p->in_features + i] *
				       (g[o] * peft_weight_scale(w, o));
			}
			gi[i] = accumulate ? gi[i] + acc : acc;
		}
	}
	return PEFT_OK;
}

peft_status peft_fc_bwd_input_f32(const peft_fc_params *p, const float *w, const float *grad_out,
				  float *grad_in, bool accumulate)
{
	if (!peft_fc_params_ok(p) || w == NULL || grad_out == NULL || grad_in == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t r = 0; r < p->rows; r++) {
		const float *g = grad_out + r * p->out_features;
		float *gi = grad_in + r * p->in_features;

		for (int32_t i = 0; i < p->in_features; i++) {
			float acc = 0.0f;

			for (int32_t o = 0; o < p->out_features; o++) {
				acc += w[o * p->in_features + i] * g[o];
			}
			gi[i] = accumulate ? gi[i] + acc : acc;
		}
	}
	return PEFT_OK;
}

peft_status peft_fc_bwd_weight_f32(const peft_fc_params *p, const float *in, const float *grad_out,
				   float *grad_w)
{
	if (!peft_fc_params_ok(p) || in == NULL || grad_out == NULL || grad_w == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t o = 0; o < p->out_features; o++) {
		float *gw = grad_w + o * p->in_features;

		for (int32_t i = 0; i < p->in_features; i++) {
			float acc = 0.0f;

			for (int32_t r = 0; r < p->rows; r++) {
				acc += grad_out[r * p->out_features + o] *
				       in[r * p->in_features + i];
			}
			gw[i] += acc;
		}
	}
	return PEFT_OK;
}

peft_status peft_fc_bwd_bias_f32(const peft_fc_params *p, const float *grad_out, float *grad_bias)
{
	if (!peft_fc_params_ok(p) || grad_out == NULL || grad_bias == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t o = 0; o < p->out_features; o++) {
		float acc = 0.0f;

		for (int32_t r = 0; r < p->rows; r++) {
			acc += grad_out[r * p->out_features + o];
		}
		grad_bias[o] += acc;
	}
	return PEFT_OK;
}
