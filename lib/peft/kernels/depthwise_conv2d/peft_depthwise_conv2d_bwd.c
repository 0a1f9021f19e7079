/* DEPTHWISE_CONV_2D backward (depth multiplier 1). With
 * iy = oy * stride_h - pad_top + ky (same for x):
 *   grad_in[iy][ix][c]   = sum over oy, ox of w[ky][kx][c] * grad_out[oy][ox][c]
 *   grad_w[ky][kx][c]   += sum over oy, ox of in[iy][ix][c] * grad_out[oy][ox][c]
 *   grad_bias[c]        += sum over oy, ox of grad_out[oy][ox][c]
 * Both sums are gathered per element, PEFT_KERNEL_BLOCK channels at a time,
 * with the innermost loop over those channels (contiguous in NHWC and in the
 * [kh][kw][c] weights); tap ranges come from one division per row. */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "../peft_kernel_loops.h"
#include "peft_depthwise_loops.h"
#include "peft/peft_kernels.h"

/* Every input pixel gathers the taps that reach an output
 * (peft_dw_input_pixel, peft_depthwise_loops.h). */
static void depthwise_bwd_input(const peft_conv_params *p, const peft_wsrc *w,
				const float *grad_out, float *grad_in, bool accumulate)
{
	for (int32_t iy = 0; iy < p->in.h; iy++) {
		for (int32_t ix = 0; ix < p->in.w; ix++) {
			peft_dw_input_pixel(p, w, grad_out, iy, ix, 0, p->in.c, grad_in,
					    accumulate);
		}
	}
}

peft_status peft_depthwise_conv2d_bwd_input_s8(const peft_conv_params *p, const peft_weights_s8 *w,
					       const float *grad_out, float *grad_in,
					       bool accumulate)
{
	if (!peft_depthwise_params_ok(p) || grad_out == NULL || grad_in == NULL ||
	    !peft_weights_s8_ok(w, p->out.c)) {
		return PEFT_ERR_ARG;
	}
	const peft_wsrc src = peft_wsrc_s8(w);

	depthwise_bwd_input(p, &src, grad_out, grad_in, accumulate);
	return PEFT_OK;
}

peft_status peft_depthwise_conv2d_bwd_input_f32(const peft_conv_params *p, const float *w,
						const float *grad_out, float *grad_in,
						bool accumulate)
{
	if (!peft_depthwise_params_ok(p) || w == NULL || grad_out == NULL || grad_in == NULL) {
		return PEFT_ERR_ARG;
	}
	const peft_wsrc src = peft_wsrc_f32(w);

	depthwise_bwd_input(p, &src, grad_out, grad_in, accumulate);
	return PEFT_OK;
}

peft_status peft_depthwise_conv2d_bwd_weight_f32(const peft_conv_params *p, const float *in,
						 const float *grad_out, float *grad_w)
{
	if (!peft_depthwise_params_ok(p) || in == NULL || grad_out == NULL || grad_w == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t ky = 0; ky < p->kernel_h; ky++) {
		for (int32_t kx = 0; kx < p->kernel_w; kx++) {
			peft_dw_weight_tap(p, in, grad_out, ky, kx, 0, p->in.c, grad_w);
		}
	}
	return PEFT_OK;
}

peft_status peft_depthwise_conv2d_bwd_bias_f32(const peft_dims *out, const float *grad_out,
					       float *grad_bias)
{
	if (!peft_dims_ok(out) || grad_out == NULL || grad_bias == NULL) {
		return PEFT_ERR_ARG;
	}
	peft_add_column_sums(out->h * out->w, out->c, grad_out, grad_bias);
	return PEFT_OK;
}
