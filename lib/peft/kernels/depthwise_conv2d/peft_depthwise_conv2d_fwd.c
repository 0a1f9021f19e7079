/* DEPTHWISE_CONV_2D forward (depth multiplier 1): each channel is convolved
 * with its own kernel, out[oy][ox][c] = bias[c] + sum over ky, kx of
 * w[ky][kx][c] * in[oy * stride_h - pad_top + ky][ox * stride_w - pad_left + kx][c],
 * where positions outside the input read zero (padding). */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "../peft_kernel_loops.h"
#include "peft_depthwise_loops.h"
#include "peft/peft_kernels.h"

/* Every output pixel runs peft_dw_fwd_pixel (peft_depthwise_loops.h): the
 * output pixel's channels are the accumulators. */
static void depthwise_fwd(const peft_conv_params *p, const float *in, const peft_wsrc *w,
			  const float *bias, float *out)
{
	for (int32_t oy = 0; oy < p->out.h; oy++) {
		for (int32_t ox = 0; ox < p->out.w; ox++) {
			peft_dw_fwd_pixel(p, in, w, bias, oy, ox, 0, p->in.c, out);
		}
	}
}

peft_status peft_depthwise_conv2d_fwd_s8(const peft_conv_params *p, const float *in,
					 const peft_weights_s8 *w, const float *bias, float *out)
{
	if (!peft_depthwise_params_ok(p) || in == NULL || out == NULL ||
	    !peft_weights_s8_ok(w, p->out.c)) {
		return PEFT_ERR_ARG;
	}
	const peft_wsrc src = peft_wsrc_s8(w);

	depthwise_fwd(p, in, &src, bias, out);
	return PEFT_OK;
}

peft_status peft_depthwise_conv2d_fwd_f32(const peft_conv_params *p, const float *in,
					  const float *w, const float *bias, float *out)
{
	if (!peft_depthwise_params_ok(p) || in == NULL || w == NULL || out == NULL) {
		return PEFT_ERR_ARG;
	}
	const peft_wsrc src = peft_wsrc_f32(w);

	depthwise_fwd(p, in, &src, bias, out);
	return PEFT_OK;
}
