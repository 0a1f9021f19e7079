/* FULLY_CONNECTED forward over independent rows:
 * out[r][o] = bias[o] + sum over i of w[o][i] * in[r][i]. */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "../peft_kernel_loops.h"
#include "peft/peft_kernels.h"

/* One row at a time: each output is a contiguous dot product of a weight row
 * with the input row. An int8 sum is scaled once per output feature. */
static void fc_fwd(const peft_fc_params *p, const float *in, const peft_wsrc *w, const float *bias,
		   float *out)
{
	const int32_t n_in = p->in_features;

	for (int32_t r = 0; r < p->rows; r++) {
		const float *x = in + r * n_in;
		float *o = out + r * p->out_features;

		for (int32_t oc = 0; oc < p->out_features; oc++) {
			o[oc] = peft_wsrc_dot(w, oc * n_in, n_in, x, 0.0f) *
					peft_wsrc_scale(w, oc) +
				(bias != NULL ? bias[oc] : 0.0f);
		}
	}
}

peft_status peft_fc_fwd_s8(const peft_fc_params *p, const float *in, const peft_weights_s8 *w,
			   const float *bias, float *out)
{
	if (!peft_fc_params_ok(p) || in == NULL || out == NULL ||
	    !peft_weights_s8_ok(w, p->out_features)) {
		return PEFT_ERR_ARG;
	}
	const peft_wsrc src = peft_wsrc_s8(w);

	fc_fwd(p, in, &src, bias, out);
	return PEFT_OK;
}

peft_status peft_fc_fwd_f32(const peft_fc_params *p, const float *in, const float *w,
			    const float *bias, float *out)
{
	if (!peft_fc_params_ok(p) || in == NULL || w == NULL || out == NULL) {
		return PEFT_ERR_ARG;
	}
	const peft_wsrc src = peft_wsrc_f32(w);

	fc_fwd(p, in, &src, bias, out);
	return PEFT_OK;
}
