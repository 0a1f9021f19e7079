/* FULLY_CONNECTED backward over independent rows:
 *   grad_in[r][i]   = sum over o of w[o][i] * grad_out[r][o]
 *   grad_w[o][i]   += sum over r of grad_out[r][o] * in[r][i]
 *   grad_bias[o]   += sum over r of grad_out[r][o]
 * Both sums are gathered PEFT_KERNEL_BLOCK input features at a time, the
 * innermost loop running over those features (contiguous in the weights and
 * the input); each sum is finished before it is stored or added. */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "../peft_kernel_loops.h"
#include "peft/peft_kernels.h"

static void fc_bwd_input(const peft_fc_params *p, const peft_wsrc *w, const float *grad_out,
			 float *grad_in, bool accumulate)
{
	const int32_t n_in = p->in_features;
	float acc[PEFT_KERNEL_BLOCK];

	for (int32_t r = 0; r < p->rows; r++) {
		const float *g = grad_out + r * p->out_features;
		float *gi = grad_in + r * n_in;

		for (int32_t i0 = 0; i0 < n_in; i0 += PEFT_KERNEL_BLOCK) {
			const int32_t nb = peft_block_len(n_in, i0);

			peft_zero_f32(nb, acc);
			for (int32_t oc = 0; oc < p->out_features; oc++) {
				/* The scale belongs to the output feature: fold it into g. */
				peft_wsrc_axpy(w, oc * n_in + i0, nb,
					       g[oc] * peft_wsrc_scale(w, oc), acc);
			}
			peft_store_block(nb, acc, gi + i0, accumulate);
		}
	}
}

peft_status peft_fc_bwd_input_s8(const peft_fc_params *p, const peft_weights_s8 *w,
				 const float *grad_out, float *grad_in, bool accumulate)
{
	if (!peft_fc_params_ok(p) || grad_out == NULL || grad_in == NULL ||
	    !peft_weights_s8_ok(w, p->out_features)) {
		return PEFT_ERR_ARG;
	}
	const peft_wsrc src = peft_wsrc_s8(w);

	fc_bwd_input(p, &src, grad_out, grad_in, accumulate);
	return PEFT_OK;
}

peft_status peft_fc_bwd_input_f32(const peft_fc_params *p, const float *w, const float *grad_out,
				  float *grad_in, bool accumulate)
{
	if (!peft_fc_params_ok(p) || w == NULL || grad_out == NULL || grad_in == NULL) {
		return PEFT_ERR_ARG;
	}
	const peft_wsrc src = peft_wsrc_f32(w);

	fc_bwd_input(p, &src, grad_out, grad_in, accumulate);
	return PEFT_OK;
}

peft_status peft_fc_bwd_weight_f32(const peft_fc_params *p, const float *in, const float *grad_out,
				   float *grad_w)
{
	if (!peft_fc_params_ok(p) || in == NULL || grad_out == NULL || grad_w == NULL) {
		return PEFT_ERR_ARG;
	}
	const int32_t n_in = p->in_features;
	float acc[PEFT_KERNEL_BLOCK];

	for (int32_t oc = 0; oc < p->out_features; oc++) {
		for (int32_t i0 = 0; i0 < n_in; i0 += PEFT_KERNEL_BLOCK) {
			const int32_t nb = peft_block_len(n_in, i0);

			peft_zero_f32(nb, acc);
			for (int32_t r = 0; r < p->rows; r++) {
				peft_axpy_f32(nb, grad_out[r * p->out_features + oc],
					      in + r * n_in + i0, acc);
			}
			peft_store_block(nb, acc, grad_w + oc * n_in + i0, true);
		}
	}
	return PEFT_OK;
}

peft_status peft_fc_bwd_bias_f32(const peft_fc_params *p, const float *grad_out, float *grad_bias)
{
	if (!peft_fc_params_ok(p) || grad_out == NULL || grad_bias == NULL) {
		return PEFT_ERR_ARG;
	}
	peft_add_column_sums(p->rows, p->out_features, grad_out, grad_bias);
	return PEFT_OK;
}
