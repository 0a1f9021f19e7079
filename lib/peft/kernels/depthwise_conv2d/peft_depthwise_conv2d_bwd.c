/* DEPTHWISE_CONV_2D backward (depth multiplier 1). With
 * iy = oy * stride_h - pad_top + ky (same for x):
 *   grad_in[iy][ix][c]   = sum over oy, ox of w[ky][kx][c] * grad_out[oy][ox][c]
 *   grad_w[ky][kx][c]   += sum over oy, ox of in[iy][ix][c] * grad_out[oy][ox][c]
 *   grad_bias[c]        += sum over oy, ox of grad_out[oy][ox][c]
 * The input gradient is gathered (each element written once). */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "peft/peft_kernels.h"

/* sum of q[ky][kx][c] * grad_out[oy][ox][c] over the outputs reading input
 * (iy, ix), unscaled. */
static float gather_s8(const peft_conv_params *p, const int8_t *q, const float *grad_out,
		       int32_t iy, int32_t ix, int32_t c)
{
	const int32_t ch = p->in.c;
	float acc = 0.0f;

	for (int32_t ky = 0; ky < p->kernel_h; ky++) {
		int32_t oy = peft_out_index(iy, ky, p->stride_h, p->pad_top, p->out.h);

		if (oy < 0) {
			continue;
		}
		for (int32_t kx = 0; kx < p->kernel_w; kx++) {
			int32_t ox = peft_out_index(ix, kx, p->stride_w, p->pad_left, p->out.w);

			if (ox >= 0) {
				acc += (float)q[(ky * p->kernel_w + kx) * ch + c] *
				       grad_out[(oy * p->out.w + ox) * ch + c];
			}
		}
	}
	return acc;
}

/* The same with float weights. */
static float gather_f32(const peft_conv_params *p, const float *w, const float *grad_out,
			int32_t iy, int32_t ix, int32_t c)
{
	const int32_t ch = p->in.c;
	float acc = 0.0f;

	for (int32_t ky = 0; ky < p->kernel_h; ky++) {
		int32_t oy = peft_out_index(iy, ky, p->stride_h, p->pad_top, p->out.h);

		if (oy < 0) {
			continue;
		}
		for (int32_t kx = 0; kx < p->kernel_w; kx++) {
			int32_t ox = peft_out_index(ix, kx, p->stride_w, p->pad_left, p->out.w);

			if (ox >= 0) {
				acc += w[(ky * p->kernel_w + kx) * ch + c] *
				       grad_out[(oy * p->out.w + ox) * ch + c];
			}
		}
	}
	return acc;
}

peft_status peft_depthwise_conv2d_bwd_input_s8(const peft_conv_params *p, const peft_weights_s8 *w,
					       const float *grad_out, float *grad_in,
					       bool accumulate)
{
	if (!peft_depthwise_params_ok(p) || grad_out == NULL || grad_in == NULL ||
	    !peft_weights_s8_ok(w, p->out.c)) {
		return PEFT_ERR_ARG;
	}
	for (int32_t iy = 0; iy < p->in.h; iy++) {
		for (int32_t ix = 0; ix < p->in.w; ix++) {
			float *gi = grad_in + (iy * p->in.w + ix) * p->in.c;

			for (int32_t c = 0; c < p->in.c; c++) {
				/* One channel, one scale: applied once to the raw sum. */
				float acc = gather_s8(p, w->data, grad_out, iy, ix, c) *
					    peft_weight_scale(w, c);

				gi[c] = accumulate ? gi[c] + acc : acc;
			}
		}
	}
	return PEFT_OK;
}

peft_status peft_depthwise_conv2d_bwd_input_f32(const peft_conv_params *p, const float *w,
						const float *grad_out, float *grad_in,
						bool accumulate)
{
	if (!peft_depthwise_params_ok(p) || w == NULL || grad_out == NULL || grad_in == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t iy = 0; iy < p->in.h; iy++) {
		for (int32_t ix = 0; ix < p->in.w; ix++) {
			float *gi = grad_in + (iy * p->in.w + ix) * p->in.c;

			for (int32_t c = 0; c < p->in.c; c++) {
				float acc = gather_f32(p, w, grad_out, iy, ix, c);

				gi[c] = accumulate ? gi[c] + acc : acc;
			}
		}
	}
	return PEFT_OK;
}

/* sum over every output of in[iy][ix][c] * grad_out[oy][ox][c] for tap (ky, kx). */
static float weight_grad(const peft_conv_params *p, const float *in, const float *grad_out,
			 int32_t ky, int32_t kx, int32_t c)
{
	const int32_t ch = p->in.c;
	float acc = 0.0f;

	for (int32_t oy = 0; oy < p->out.h; oy++) {
		int32_t iy = oy * p->stride_h - p->pad_top + ky;

		if (iy < 0 || iy >= p->in.h) {
			continue;
		}
		for (int32_t ox = 0; ox < p->out.w; ox++) {
			int32_t ix = ox * p->stride_w - p->pad_left + kx;

			if (ix >= 0 && ix < p->in.w) {
				acc += in[(iy * p->in.w + ix) * ch + c] *
				       grad_out[(oy * p->out.w + ox) * ch + c];
			}
		}
	}
	return acc;
}

peft_status peft_depthwise_conv2d_bwd_weight_f32(const peft_conv_params *p, const float *in,
						 const float *grad_out, float *grad_w)
{
	if (!peft_depthwise_params_ok(p) || in == NULL || grad_out == NULL || grad_w == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t ky = 0; ky < p->kernel_h; ky++) {
		for (int32_t kx = 0; kx < p->kernel_w; kx++) {
			float *gw = grad_w + (ky * p->kernel_w + kx) * p->in.c;

			for (int32_t c = 0; c < p->in.c; c++) {
				gw[c] += weight_grad(p, in, grad_out, ky, kx, c);
			}
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
	const int32_t pixels = out->h * out->w;

	for (int32_t c = 0; c < out->c; c++) {
		float acc = 0.0f;

		for (int32_t i = 0; i < pixels; i++) {
			acc += grad_out[i * out->c + c];
		}
		grad_bias[c] += acc;
	}
	return PEFT_OK;
}
