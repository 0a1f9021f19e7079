/* CONV_2D backward. With iy = oy * stride_h - pad_top + ky (same for x):
 *   grad_in[iy][ix][ic]      = sum over oy, ox, oc of w[oc][ky][kx][ic] * grad_out[oy][ox][oc]
 *   grad_w[oc][ky][kx][ic]  += sum over oy, ox of in[iy][ix][ic] * grad_out[oy][ox][oc]
 *   grad_bias[oc]           += sum over oy, ox of grad_out[oy][ox][oc]
 * Both sums are gathered per element, PEFT_KERNEL_BLOCK input channels at a
 * time, with the innermost loop contiguous over those channels (in the
 * weights, the input and the block of sums). Tap ranges come from one
 * division per row, not per element; a 1x1 stride-1 convolution runs as a
 * fully connected layer, except for the int8 input gradient, whose rounding
 * (per-channel raw sum, scaled once) differs from the FC kernel's. */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "../peft_kernel_loops.h"
#include "peft/peft_kernels.h"

/* For one input pixel, channels c0..c0+nb, and one output channel (or all of
 * them, oc == -1): sum of w[oc][ky][kx][c0..] * grad_out[oy][ox][oc] over the
 * taps that reach an output, added to acc in tap order, contiguous over the
 * input channels of the weights (the taps: peft_covering_taps). */
static void gather_taps(const peft_conv_params *p, const peft_wsrc *w, const float *grad_out,
			int32_t iy, int32_t ix, int32_t c0, int32_t nb, int32_t oc, float *acc)
{
	const int32_t in_c = p->in.c;
	const int32_t oc_size = p->kernel_h * p->kernel_w * in_c;
	const int32_t ry = iy + p->pad_top;
	const int32_t rx = ix + p->pad_left;
	const int32_t oc_lo = oc < 0 ? 0 : oc;
	const int32_t oc_hi = oc < 0 ? p->out.c : oc + 1;

	int32_t ky_lo, ky_hi, kx_lo, kx_hi;

	peft_covering_taps(ry, p->stride_h, p->kernel_h, p->out.h, &ky_lo, &ky_hi);
	peft_covering_taps(rx, p->stride_w, p->kernel_w, p->out.w, &kx_lo, &kx_hi);
	for (int32_t ky = ky_lo; ky < ky_hi; ky += p->stride_h) {
		const int32_t oy = (ry - ky) / p->stride_h;

		for (int32_t kx = kx_lo; kx < kx_hi; kx += p->stride_w) {
			const int32_t ox = (rx - kx) / p->stride_w;

			const float *g = grad_out + (oy * p->out.w + ox) * p->out.c;
			const int32_t tap = (ky * p->kernel_w + kx) * in_c + c0;

			for (int32_t c = oc_lo; c < oc_hi; c++) {
				peft_wsrc_axpy(w, c * oc_size + tap, nb, g[c], acc);
			}
		}
	}
}

/* dL/din for channels c0..c0+nb of one input pixel. Float weights: one sum
 * over taps and output channels. Int8 weights: each output channel's raw sum,
 * scaled once (as the forward does), then summed over the channels. */
static void gather_input(const peft_conv_params *p, const peft_wsrc *w, const float *grad_out,
			 int32_t iy, int32_t ix, int32_t c0, int32_t nb, float *acc)
{
	peft_zero_f32(nb, acc);
	if (w->q == NULL) {
		gather_taps(p, w, grad_out, iy, ix, c0, nb, -1, acc);
		return;
	}
	float raw[PEFT_KERNEL_BLOCK];

	for (int32_t oc = 0; oc < p->out.c; oc++) {
		const float s = peft_wsrc_scale(w, oc);

		peft_zero_f32(nb, raw);
		gather_taps(p, w, grad_out, iy, ix, c0, nb, oc, raw);
		for (int32_t b = 0; b < nb; b++) {
			acc[b] += raw[b] * s;
		}
	}
}

static void conv2d_bwd_input(const peft_conv_params *p, const peft_wsrc *w, const float *grad_out,
			     float *grad_in, bool accumulate)
{
	float acc[PEFT_KERNEL_BLOCK];

	for (int32_t iy = 0; iy < p->in.h; iy++) {
		for (int32_t ix = 0; ix < p->in.w; ix++) {
			float *gi = grad_in + (iy * p->in.w + ix) * p->in.c;

			for (int32_t c0 = 0; c0 < p->in.c; c0 += PEFT_KERNEL_BLOCK) {
				const int32_t nb = peft_block_len(p->in.c, c0);

				gather_input(p, w, grad_out, iy, ix, c0, nb, acc);
				peft_store_block(nb, acc, gi + c0, accumulate);
			}
		}
	}
}

peft_status peft_conv2d_bwd_input_s8(const peft_conv_params *p, const peft_weights_s8 *w,
				     const float *grad_out, float *grad_in, bool accumulate)
{
	if (!peft_conv2d_params_ok(p) || grad_out == NULL || grad_in == NULL ||
	    !peft_weights_s8_ok(w, p->out.c)) {
		return PEFT_ERR_ARG;
	}
	const peft_wsrc src = peft_wsrc_s8(w);

	conv2d_bwd_input(p, &src, grad_out, grad_in, accumulate);
	return PEFT_OK;
}

peft_status peft_conv2d_bwd_input_f32(const peft_conv_params *p, const float *w,
				      const float *grad_out, float *grad_in, bool accumulate)
{
	if (!peft_conv2d_params_ok(p) || w == NULL || grad_out == NULL || grad_in == NULL) {
		return PEFT_ERR_ARG;
	}
	if (peft_conv_is_pointwise(p)) {
		const peft_fc_params fp = peft_conv_pointwise_fc(p);

		return peft_fc_bwd_input_f32(&fp, w, grad_out, grad_in, accumulate);
	}
	const peft_wsrc src = peft_wsrc_f32(w);

	conv2d_bwd_input(p, &src, grad_out, grad_in, accumulate);
	return PEFT_OK;
}

/* sum over every output of in[iy][ix][c0..c0+nb] * grad_out[oy][ox][oc] for
 * tap (ky, kx), into acc: contiguous over the input channels. */
static void gather_weight(const peft_conv_params *p, const float *in, const float *grad_out,
			  int32_t oc, int32_t ky, int32_t kx, int32_t c0, int32_t nb, float *acc)
{
	int32_t oy_lo;
	int32_t oy_hi;
	int32_t ox_lo;
	int32_t ox_hi;

	peft_out_range(ky, p->stride_h, p->pad_top, p->in.h, p->out.h, &oy_lo, &oy_hi);
	peft_out_range(kx, p->stride_w, p->pad_left, p->in.w, p->out.w, &ox_lo, &ox_hi);
	peft_zero_f32(nb, acc);
	for (int32_t oy = oy_lo; oy < oy_hi; oy++) {
		const int32_t iy = oy * p->stride_h - p->pad_top + ky;

		for (int32_t ox = ox_lo; ox < ox_hi; ox++) {
			const int32_t ix = ox * p->stride_w - p->pad_left + kx;
			const float g = grad_out[(oy * p->out.w + ox) * p->out.c + oc];

			peft_axpy_f32(nb, g, in + (iy * p->in.w + ix) * p->in.c + c0, acc);
		}
	}
}

peft_status peft_conv2d_bwd_weight_f32(const peft_conv_params *p, const float *in,
				       const float *grad_out, float *grad_w)
{
	if (!peft_conv2d_params_ok(p) || in == NULL || grad_out == NULL || grad_w == NULL) {
		return PEFT_ERR_ARG;
	}
	if (peft_conv_is_pointwise(p)) {
		const peft_fc_params fp = peft_conv_pointwise_fc(p);

		return peft_fc_bwd_weight_f32(&fp, in, grad_out, grad_w);
	}
	const int32_t in_c = p->in.c;
	float acc[PEFT_KERNEL_BLOCK];

	for (int32_t oc = 0; oc < p->out.c; oc++) {
		for (int32_t ky = 0; ky < p->kernel_h; ky++) {
			for (int32_t kx = 0; kx < p->kernel_w; kx++) {
				float *gw = grad_w +
					    ((oc * p->kernel_h + ky) * p->kernel_w + kx) * in_c;

				for (int32_t c0 = 0; c0 < in_c; c0 += PEFT_KERNEL_BLOCK) {
					const int32_t nb = peft_block_len(in_c, c0);

					gather_weight(p, in, grad_out, oc, ky, kx, c0, nb, acc);
					peft_store_block(nb, acc, gw + c0, true);
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
	peft_add_column_sums(out->h * out->w, out->c, grad_out, grad_bias);
	return PEFT_OK;
}
