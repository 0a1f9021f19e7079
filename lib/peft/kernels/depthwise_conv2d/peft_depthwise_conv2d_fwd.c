/* DEPTHWISE_CONV_2D forward (depth multiplier 1): each channel is convolved
 * with its own kernel, out[oy][ox][c] = bias[c] + sum over ky, kx of
 * w[ky][kx][c] * in[oy * stride_h - pad_top + ky][ox * stride_w - pad_left + kx][c],
 * where positions outside the input read zero (padding). */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "peft/peft_kernels.h"

/* sum of q * x over the window of output (oy, ox), channel c, unscaled. */
static float window_sum_s8(const peft_conv_params *p, const float *in, const int8_t *q,
			   int32_t oy, int32_t ox, int32_t c)
{
	const int32_t ch = p->in.c;
	float acc = 0.0f;

	for (int32_t ky = 0; ky < p->kernel_h; ky++) {
		int32_t iy = oy * p->stride_h - p->pad_top + ky;

		if (iy < 0 || iy >= p->in.h) {
			continue;
		}
		for (int32_t kx = 0; kx < p->kernel_w; kx++) {
			int32_t ix = ox * p->stride_w - p->pad_left + kx;

			if (ix >= 0 && ix < p->in.w) {
				acc += (float)q[(ky * p->kernel_w + kx) * ch + c] *
				       in[(iy * p->in.w + ix) * ch + c];
			}
		}
	}
	return acc;
}

/* sum of w * x over the window of output (oy, ox), channel c. */
static float window_sum_f32(const peft_conv_params *p, const float *in, const float *w,
			    int32_t oy, int32_t ox, int32_t c)
{
	const int32_t ch = p->in.c;
	float acc = 0.0f;

	for (int32_t ky = 0; ky < p->kernel_h; ky++) {
		int32_t iy = oy * p->stride_h - p->pad_top + ky;

		if (iy < 0 || iy >= p->in.h) {
			continue;
		}
		for (int32_t kx = 0; kx < p->kernel_w; kx++) {
			int32_t ix = ox * p->stride_w - p->pad_left + kx;

			if (ix >= 0 && ix < p->in.w) {
				acc += w[(ky * p->kernel_w + kx) * ch + c] *
				       in[(iy * p->in.w + ix) * ch + c];
			}
		}
	}
	return acc;
}

peft_status peft_depthwise_conv2d_fwd_s8(const peft_conv_params *p, const float *in,
					 const peft_weights_s8 *w, const float *bias, float *out)
{
	if (!peft_depthwise_params_ok(p) || in == NULL || out == NULL ||
	    !peft_weights_s8_ok(w, p->out.c)) {
		return PEFT_ERR_ARG;
	}
	for (int32_t oy = 0; oy < p->out.h; oy++) {
		for (int32_t ox = 0; ox < p->out.w; ox++) {
			float *o = out + (oy * p->out.w + ox) * p->out.c;

			for (int32_t c = 0; c < p->out.c; c++) {
				/* Raw int8 sum, scaled once per channel. */
				float acc = window_sum_s8(p, in, w->data, oy, ox, c);

				o[c] = acc * peft_weight_scale(w, c) +
				       (bias != NULL ? bias[c] : 0.0f);
			}
		}
	}
	return PEFT_OK;
}

peft_status peft_depthwise_conv2d_fwd_f32(const peft_conv_params *p, const float *in,
					  const float *w, const float *bias, float *out)
{
	if (!peft_depthwise_params_ok(p) || in == NULL || w == NULL || out == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t oy = 0; oy < p->out.h; oy++) {
		for (int32_t ox = 0; ox < p->out.w; ox++) {
			float *o = out + (oy * p->out.w + ox) * p->out.c;

			for (int32_t c = 0; c < p->out.c; c++) {
				float acc = window_sum_f32(p, in, w, oy, ox, c);

				o[c] = acc + (bias != NULL ? bias[c] : 0.0f);
			}
		}
	}
	return PEFT_OK;
}
