/* CONV_2D backward. With iy = oy * stride_h - pad_top + ky (same for x):
 *   grad_in[iy][ix][ic]      = sum over oy, ox, oc of w[oc][ky][kx][ic] * grad_out[oy][ox][oc]
 *   grad_w[oc][ky][kx][ic]  += sum over oy, ox of in[iy][ix][ic] * grad_out[oy][ox][oc]
 *   grad_bias[oc]           += sum over oy, ox of grad_out[oy][ox][oc]
 * The input gradient is gathered (each element written once), so that
 * `accumulate` is a plain add and no zeroing pass is needed. */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "peft/peft_kernels.h"

/* sum over the outputs that read input (iy, ix) through channel oc of
 * q[oc][ky][kx][ic] * grad_out[oy][ox][oc], unscaled. */
static float gather_s8(const peft_conv_params *p, const int8_t *q, const float *grad_out,
		       int32_t iy, int32_t ix, int32_t ic, int32_t oc)
{
	float acc = 0.0f;

	for (int32_t ky = 0; ky < p->kernel_h; ky++) {
		int32_t oy = peft_out_index(iy, ky, p->stride_h, p->pad_top, p->out.h);

		if (oy < 0) {
			continue;
		}
		for (int32_t kx = 0; kx < p->kernel_w; kx++) {
			int32_t ox = peft_out_index(ix, kx, p->stride_w, p->pad_left, p->out.w);

			if (ox < 0) {
				continue;
			}
			int32_t wi = ((oc * p->kernel_h + ky) * p->kernel_w + kx) * p->in.c + ic;

			acc += (float)q[wi] * grad_out[(oy * p->out.w + ox) * p->out.c + oc];
		}
	}
	return acc;
}

/* dL/din[iy][ix][ic] with float weights, over every output channel. */
static float gather_f32(const peft_conv_params *p, const float *w, const float *grad_out,
			int32_t iy, int32_t ix, int32_t ic)
{
	float acc = 0.0f;

	for (int32_t ky = 0; ky < p->kernel_h; ky++) {
		int32_t oy = peft_out_index(iy, ky, p->stride_h, p->pad_top, p->out.h);

		if (oy < 0) {
			continue;
		}
		for (int32_t kx = 0; kx < p->kernel_w; kx++) {
			int32_t ox = peft_out_index(ix, kx, p->stride_w, p->pad_left, p->out.w);

			if (ox < 0) {
				continue;
			}
			const float *g = grad_out + (oy * p->out.w + ox) * p->out.c;
			const float *wk = w + (ky * p->kernel_w + kx) * p->in.c + ic;
			const int32_t oc_stride = p->kernel_h * p->kernel_w * p->in.c;

			for (int32_t oc = 0; oc < p->out.c; oc++) {
				acc += wk[oc * oc_stride] * g[oc];
			}
		}
	}
	return acc;
}

peft_status peft_conv2d_bwd_input_s8(const peft_conv_params *p, const peft_weights_s8 *w,
				     const float *grad_out, float *grad_in, bool accumulate)
{
	if (!peft_conv2d_params_ok(p) || grad_out == NULL || grad_in == NULL ||
	    !peft_weights_s8_ok(w, p->out.c)) {
		return PEFT_ERR_ARG;
	}
	for (int32_t iy = 0; iy < p->in.h; iy++) {
		for (int32_t ix = 0; ix < p->in.w; ix++) {
			float *gi = grad_in + (iy * p->in.w + ix) * p->in.c;

			for (int32_t ic = 0; ic < p->in.c; ic++) {
				float acc = 0.0f;

				/* Raw int8 sum per output channel, scaled once. */
				for (int32_t oc = 0; oc < p->out.c; oc++) {
					acc += gather_s8(p, w->data, grad_out, iy, ix, ic, oc) *
					       peft_weight_scale(w, oc);
				}
				gi[ic] = accumulate ? gi[ic] + acc : acc;
			}
		}
	}
	return PEFT_OK;
}

peft_status peft_conv2d_bwd_input_f32(const peft_conv_params *p, const float *w,
				      const float *grad_out, float *grad_in, bool accumulate)
{
	if (!peft_conv2d_params_ok(p) || w == NULL || grad_out == NULL || grad_in == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t iy = 0; iy < p->in.h; iy++) {
		for (int32_t ix = 0; ix < p->in.w; ix++) {
			float *gi = grad_in + (iy * p->in.w + ix) * p->in.c;

			for (int32_t ic = 0; ic < p->in.c; ic++) {
				float acc = gather_f32(p, w, grad_out, iy, ix, ic);

				gi[ic] = accumulate ? gi[ic] + acc : acc;
			}
		}
	}
	return PEFT_OK;
}

/* sum over every output of in[iy][ix][ic] * grad_out[oy][ox][oc] for tap (ky, kx). */
static float weight_grad(const peft_conv_params *p, const float *in, const float *grad_out,
			 int32_t oc, int32_t ky, int32_t kx, int32_t ic)
{
	float acc = 0.0f;

	for (int32_t oy = 0; oy < p->out.h; oy++) {
		int32_t iy = oy * p->stride_h - p->pad_top + ky;

		if (iy < 0 || iy >= p->in.h) {
			continue;
		}
		for (int32_t ox = 0; ox < p->out.w; ox++) {
			int32_t ix = ox * p->stride_w - p->pad_left + kx;

			if (ix < 0 || ix >= p->in.w) {
				continue;
			}
			acc += in[(iy * p->in.w + ix) * p->in.c + ic] *
			       grad_out[(oy * p->out.w + ox) * p->out.c + oc];
		}
	}
	return acc;
}

peft_status peft_conv2d_bwd_weight_f32(const peft_conv_params *p, const float *in,
				       const float *grad_out, float *grad_w)
{
	if (!peft_conv2d_params_ok(p) || in == NULL || grad_out == NULL || grad_w == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t oc = 0; oc < p->out.c; oc++) {
		for (int32_t ky = 0; ky < p->kernel_h; ky++) {
			for (int32_t kx = 0; kx < p->kernel_w; kx++) {
				float *gw = grad_w +
					    ((oc * p->kernel_h + ky) * p->kernel_w + kx) * p->in.c;

				for (int32_t ic = 0; ic < p->in.c; ic++) {
					gw[ic] += weight_grad(p, in, grad_out, oc, ky, kx, ic);
				}
			}
		}
	}
	return PEFT_OK;
}

peft_status peft_conv2d_bwd_bias_f32(const peft_dims *out, const float *grad_out, float *grad_bias)
{
	if (!peft_dims_ok(out) || grad_out == NULL || grad_bias == NULL) {
		return PEFT_ERR_ARG;
	}
	const int32_t pixels = out->h * out->w;

	for (int32_t oc = 0; oc < out->c; oc++) {
		float acc = 0.0f;

		for (int32_t i = 0; i < pixels; i++) {
			acc += grad_out[i * out->c + oc];
		}
		grad_bias[oc] += acc;
	}
	return PEFT_OK;
}
