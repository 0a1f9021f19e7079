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
#include "peft/peft_kernels.h"

/* For one input pixel, channels c0..c0+nb: sum over the taps that reach an
 * output of w[ky][kx][c] * grad_out[oy][ox][c] into acc (raw int8 values,
 * scaled by the caller). The taps are ky = ry - oy * stride_h
 * (ry = iy + pad_top): they start at ry % stride_h and step by the stride. */
static void gather_input(const peft_conv_params *p, const peft_wsrc *w, const float *grad_out,
			 int32_t iy, int32_t ix, int32_t c0, int32_t nb, float *acc)
{
	const int32_t ch = p->in.c;
	const int32_t ry = iy + p->pad_top;
	const int32_t rx = ix + p->pad_left;

	peft_zero_f32(nb, acc);
	for (int32_t ky = ry % p->stride_h; ky < p->kernel_h && ky <= ry; ky += p->stride_h) {
		const int32_t oy = (ry - ky) / p->stride_h;

		if (oy >= p->out.h) {
			continue;
		}
		for (int32_t kx = rx % p->stride_w; kx < p->kernel_w && kx <= rx;
		     kx += p->stride_w) {
			const int32_t ox = (rx - kx) / p->stride_w;

			if (ox >= p->out.w) {
				continue;
			}
			const float *g = grad_out + (oy * p->out.w + ox) * ch + c0;
			const int32_t tap = (ky * p->kernel_w + kx) * ch + c0;

			if (w->q != NULL) {
				peft_vmac_s8(nb, w->q + tap, g, acc);
			} else {
				peft_vmac_f32(nb, w->f + tap, g, acc);
			}
		}
	}
}

static void depthwise_bwd_input(const peft_conv_params *p, const peft_wsrc *w,
				const float *grad_out, float *grad_in, bool accumulate)
{
	const int32_t ch = p->in.c;
	float acc[PEFT_KERNEL_BLOCK];

	for (int32_t iy = 0; iy < p->in.h; iy++) {
		for (int32_t ix = 0; ix < p->in.w; ix++) {
			float *gi = grad_in + (iy * p->in.w + ix) * ch;

			for (int32_t c0 = 0; c0 < ch; c0 += PEFT_KERNEL_BLOCK) {
				const int32_t nb = peft_block_len(ch, c0);

				gather_input(p, w, grad_out, iy, ix, c0, nb, acc);
				if (w->q != NULL) {
					/* One channel, one scale: applied once to the raw sum. */
					for (int32_t b = 0; b < nb; b++) {
						acc[b] *= peft_wsrc_scale(w, c0 + b);
					}
				}
				peft_store_block(nb, acc, gi + c0, accumulate);
			}
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

/* sum over every output of in[iy][ix][c0..c0+nb] * grad_out[oy][ox][c0..c0+nb]
 * for tap (ky, kx), into acc: contiguous over channels in both. */
static void gather_weight(const peft_conv_params *p, const float *in, const float *grad_out,
			  int32_t ky, int32_t kx, int32_t c0, int32_t nb, float *acc)
{
	const int32_t ch = p->in.c;
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

			peft_vmac_f32(nb, in + (iy * p->in.w + ix) * ch + c0,
				      grad_out + (oy * p->out.w + ox) * ch + c0, acc);
		}
	}
}

peft_status peft_depthwise_conv2d_bwd_weight_f32(const peft_conv_params *p, const float *in,
						 const float *grad_out, float *grad_w)
{
	if (!peft_depthwise_params_ok(p) || in == NULL || grad_out == NULL || grad_w == NULL) {
		return PEFT_ERR_ARG;
	}
	const int32_t ch = p->in.c;
	float acc[PEFT_KERNEL_BLOCK];

	for (int32_t ky = 0; ky < p->kernel_h; ky++) {
		for (int32_t kx = 0; kx < p->kernel_w; kx++) {
			float *gw = grad_w + (ky * p->kernel_w + kx) * ch;

			for (int32_t c0 = 0; c0 < ch; c0 += PEFT_KERNEL_BLOCK) {
				const int32_t nb = peft_block_len(ch, c0);

				gather_weight(p, in, grad_out, ky, kx, c0, nb, acc);
				peft_store_block(nb, acc, gw + c0, true);
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
	peft_add_column_sums(out->h * out->w, out->c, grad_out, grad_bias);
	return PEFT_OK;
}
