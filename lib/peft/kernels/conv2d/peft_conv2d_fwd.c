/* CONV_2D forward: out[oy][ox][oc] = bias[oc] + sum over ky, kx, ic of
 * w[oc][ky][kx][ic] * in[oy * stride_h - pad_top + ky][ox * stride_w - pad_left + kx][ic],
 * where positions outside the input read zero (padding). */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "peft/peft_kernels.h"

/* sum of q * x over the window of output (oy, ox), channel oc, unscaled. */
static float window_sum_s8(const peft_conv_params *p, const float *in, const int8_t *q,
			   int32_t oy, int32_t ox, int32_t oc)
{
	float acc = 0.0f;

	for (int32_t ky = 0; ky < p->kernel_h; ky++) {
		int32_t iy = oy * p->stride_h - p->pad_top + ky;

		if (iy < 0 || iy >= p->in.h) {
			continue;
		}
		for (int32_t kx = 0; kx < p->kernel_w; kx++) {
			int32_t ix = ox * p->stride_w - p->pad_left + kx;

			if (ix < 0 || ix >= p->in.w) {
				continue;
			}
			const float *x = in + (iy * p->in.w + ix) * p->in.c;
			const int8_t *qk =
				q + ((oc * p->kernel_h + ky) * p->kernel_w + kx) * p->in.c;

			for (int32_t ic = 0; ic < p->in.c; ic++) {
				acc += (float)qk[ic] * x[ic];
			}
		}
	}
	return acc;
}

/* sum of w * x over the window of output (oy, ox), channel oc. */
static float window_sum_f32(const peft_conv_params *p, const float *in, const float *w,
			    int32_t oy, int32_t ox, int32_t oc)
{
	float acc = 0.0f;

	for (int32_t ky = 0; ky < p->kernel_h; ky++) {
		int32_t iy = oy * p->stride_h - p->pad_top + ky;

		if (iy < 0 || iy >= p->in.h) {
			continue;
		}
		for (int32_t kx = 0; kx < p->kernel_w; kx++) {
			int32_t ix = ox * p->stride_w - p->pad_left + kx;

			if (ix < 0 || ix >= p->in.w) {
				continue;
			}
			const float *x = in + (iy * p->in.w + ix) * p->in.c;
			const float *wk =
				w + ((oc * p->kernel_h + ky) * p->kernel_w + kx) * p->in.c;

			for (int32_t ic = 0; ic < p->in.c; ic++) {
				acc += wk[ic] * x[ic];
			}
		}
	}
	return acc;
}

peft_status peft_conv2d_fwd_s8(const peft_conv_params *p, const float *in, const peft_weights_s8 *w,
			       const float *bias, float *out)
{
	if (!peft_conv2d_params_ok(p) || in == NULL || out == NULL ||
	    !peft_weights_s8_ok(w, p->out.c)) {
		return PEFT_ERR_ARG;
	}
	for (int32_t oy = 0; oy < p->out.h; oy++) {
		for (int32_t ox = 0; ox < p->out.w; ox++) {
			float *o = out + (oy * p->out.w + ox) * p->out.c;

			for (int32_t oc = 0; oc < p->out.c; oc++) {
				/* Raw int8 sum, scaled once per channel. */
				float acc = window_sum_s8(p, in, w->data, oy, ox, oc);

				o[oc] = acc * peft_weight_scale(w, oc) +
					(bias != NULL ? bias[oc] : 0.0f);
			}
		}
	}
	return PEFT_OK;
}

peft_status peft_conv2d_fwd_f32(const peft_conv_params *p, const float *in, const float *w,
				const float *bias, float *out)
{
	if (!peft_conv2d_params_ok(p) || in == NULL || w == NULL || out == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t oy = 0; oy < p->out.h; oy++) {
		for (int32_t ox = 0; ox < p->out.w; ox++) {
			float *o = out + (oy * p->out.w + ox) * p->out.c;

			for (int32_t oc = 0; oc < p->out.c; oc++) {
				float acc = window_sum_f32(p, in, w, oy, ox, oc);

				o[oc] = acc + (bias != NULL ? bias[oc] : 0.0f);
			}
		}
	}
	return PEFT_OK;
}
