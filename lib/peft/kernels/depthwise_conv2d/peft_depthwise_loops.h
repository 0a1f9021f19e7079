/* The depthwise loops of the reference kernels, over a range of channels, as
 * static inline functions: the reference backend runs them for every pixel,
 * the optimized backend for the cases its 3 x 3 loops do not cover (other
 * kernel sizes, planes too wide for its stack), so that both compute one
 * definition. */
#ifndef PEFT_DEPTHWISE_LOOPS_H
#define PEFT_DEPTHWISE_LOOPS_H

#include <stddef.h>

#include "../peft_kernel_loops.h"
#include "peft/peft_kernels.h"

/* Output pixel (oy, ox), channels c_lo..c_hi - 1: the channels are the
 * accumulators, each in-bounds tap adds w[ky][kx][:] * in[iy][ix][:]
 * (contiguous over channels in both); an int8 sum is scaled once per
 * channel at the end. */
static inline void peft_dw_fwd_pixel(const peft_conv_params *p, const float *in, const peft_wsrc *w,
				     const float *bias, int32_t oy, int32_t ox, int32_t c_lo,
				     int32_t c_hi, float *out)
{
	const int32_t ch = p->in.c;
	const int32_t n = c_hi - c_lo;
	const int32_t iy0 = oy * p->stride_h - p->pad_top;
	const int32_t ix0 = ox * p->stride_w - p->pad_left;
	int32_t ky_lo, ky_hi, kx_lo, kx_hi;
	float *o = out + (oy * p->out.w + ox) * ch + c_lo;

	peft_tap_range(iy0, p->kernel_h, p->in.h, &ky_lo, &ky_hi);
	peft_tap_range(ix0, p->kernel_w, p->in.w, &kx_lo, &kx_hi);
	peft_zero_f32(n, o);
	for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
		for (int32_t kx = kx_lo; kx < kx_hi; kx++) {
			const float *x = in + ((iy0 + ky) * p->in.w + ix0 + kx) * ch + c_lo;
			const int32_t at = (ky * p->kernel_w + kx) * ch + c_lo;

			if (w->q != NULL) {
				peft_vmac_s8(n, w->q + at, x, o);
			} else {
				peft_vmac_f32(n, w->f + at, x, o);
			}
		}
	}
	for (int32_t c = 0; c < n; c++) {
		o[c] = o[c] * peft_wsrc_scale(w, c_lo + c) + (bias != NULL ? bias[c_lo + c] : 0.0f);
	}
}

/* For one input pixel, channels c0..c0+nb: sum over the taps that reach an
 * output of w[ky][kx][c] * grad_out[oy][ox][c] into acc (raw int8 values,
 * scaled by the caller; the taps: peft_covering_taps). */
static inline void peft_dw_gather_input(const peft_conv_params *p, const peft_wsrc *w,
					const float *grad_out, int32_t iy, int32_t ix, int32_t c0,
					int32_t nb, float *acc)
{
	const int32_t ch = p->in.c;
	const int32_t ry = iy + p->pad_top;
	const int32_t rx = ix + p->pad_left;

	peft_zero_f32(nb, acc);
	int32_t ky_lo, ky_hi, kx_lo, kx_hi;

	peft_covering_taps(ry, p->stride_h, p->kernel_h, p->out.h, &ky_lo, &ky_hi);
	peft_covering_taps(rx, p->stride_w, p->kernel_w, p->out.w, &kx_lo, &kx_hi);
	for (int32_t ky = ky_lo; ky < ky_hi; ky += p->stride_h) {
		const int32_t oy = (ry - ky) / p->stride_h;

		for (int32_t kx = kx_lo; kx < kx_hi; kx += p->stride_w) {
			const int32_t ox = (rx - kx) / p->stride_w;

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

/* grad_in of input pixel (iy, ix), channels c_lo..c_hi - 1, in blocks of
 * PEFT_KERNEL_BLOCK channels: each sum scaled once and then stored or added. */
static inline void peft_dw_input_pixel(const peft_conv_params *p, const peft_wsrc *w,
				       const float *grad_out, int32_t iy, int32_t ix, int32_t c_lo,
				       int32_t c_hi, float *grad_in, bool accumulate)
{
	float *gi = grad_in + (iy * p->in.w + ix) * p->in.c;
	float acc[PEFT_KERNEL_BLOCK];

	for (int32_t c0 = c_lo; c0 < c_hi; c0 += PEFT_KERNEL_BLOCK) {
		const int32_t nb = c_hi - c0 < PEFT_KERNEL_BLOCK ? c_hi - c0 : PEFT_KERNEL_BLOCK;

		peft_dw_gather_input(p, w, grad_out, iy, ix, c0, nb, acc);
		if (w->q != NULL) {
			/* One channel, one scale: applied once to the raw sum. */
			for (int32_t b = 0; b < nb; b++) {
				acc[b] *= peft_wsrc_scale(w, c0 + b);
			}
		}
		peft_store_block(nb, acc, gi + c0, accumulate);
	}
}

/* grad_w of tap (ky, kx), channels c_lo..c_hi - 1: the sum over every output
 * that reads the input through the tap of in[iy][ix][:] * grad_out[oy][ox][:],
 * then added to grad_w. */
static inline void peft_dw_weight_tap(const peft_conv_params *p, const float *in,
				      const float *grad_out, int32_t ky, int32_t kx, int32_t c_lo,
				      int32_t c_hi, float *grad_w)
{
	const int32_t ch = p->in.c;
	int32_t oy_lo, oy_hi, ox_lo, ox_hi;
	float acc[PEFT_KERNEL_BLOCK];

	peft_out_range(ky, p->stride_h, p->pad_top, p->in.h, p->out.h, &oy_lo, &oy_hi);
	peft_out_range(kx, p->stride_w, p->pad_left, p->in.w, p->out.w, &ox_lo, &ox_hi);
	for (int32_t c0 = c_lo; c0 < c_hi; c0 += PEFT_KERNEL_BLOCK) {
		const int32_t nb = c_hi - c0 < PEFT_KERNEL_BLOCK ? c_hi - c0 : PEFT_KERNEL_BLOCK;

		peft_zero_f32(nb, acc);
		for (int32_t oy = oy_lo; oy < oy_hi; oy++) {
			const int32_t iy = oy * p->stride_h - p->pad_top + ky;

			for (int32_t ox = ox_lo; ox < ox_hi; ox++) {
				const int32_t ix = ox * p->stride_w - p->pad_left + kx;

				peft_vmac_f32(nb, in + (iy * p->in.w + ix) * ch + c0,
					      grad_out + (oy * p->out.w + ox) * ch + c0, acc);
			}
		}
		peft_store_block(nb, acc, grad_w + (ky * p->kernel_w + kx) * ch + c0, true);
	}
}

#endif /* PEFT_DEPTHWISE_LOOPS_H */
