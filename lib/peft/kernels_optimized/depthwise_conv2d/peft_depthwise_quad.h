/* The reference's depthwise loops (kernels/depthwise_conv2d/
 * peft_depthwise_loops.h) four channels at a time with the four sums in
 * registers and the taps converted once per group of four channels: the
 * weight gradient (its reads are contiguous in NHWC, which a plane's copy
 * does not beat), and the forward at stride 2 below the outputs that repay
 * a plane. Sums run in the reference's order; the channels after the last
 * group of four run the reference's loops themselves. (Layers of a few
 * pixels and many channels, the 2 x 2 and 1 x 1 ones, keep the reference's
 * loops over contiguous channels: measured cheaper in the training step.)
 * Private to this folder. */
#ifndef PEFT_DEPTHWISE_QUAD_H
#define PEFT_DEPTHWISE_QUAD_H

#include <stdbool.h>
#include <stdint.h>

#include "../../kernels/depthwise_conv2d/peft_depthwise_loops.h"
#include "../../kernels/peft_kernel_loops.h"
#include "peft/peft_kernels.h"

/* Kernels of up to this many taps have their weights converted once per
 * group of four channels (a stack array of 4 x PEFT_DW_QUAD_TAPS floats). */
#define PEFT_DW_QUAD_TAPS 25

/* wq[t * 4 + j] = weight of tap t, channel c + j, as a float. */
static inline void peft_dw_quad_taps(const peft_wsrc *w, int32_t taps, int32_t ch, int32_t c,
				     float *wq)
{
	for (int32_t t = 0; t < taps; t++) {
		for (int32_t j = 0; j < 4; j++) {
			const int32_t at = t * ch + c + j;

			wq[t * 4 + j] = w->q != NULL ? (float)w->q[at] : w->f[at];
		}
	}
}

/* Outputs (oy, ox) in [oy_lo, oy_hi) x [ox_lo, ox_hi), channels c..c+3 (taps
 * wq, peft_dw_quad_taps): peft_dw_fwd_pixel's sums, in its order. */
static inline void peft_dw_quad_fwd(const peft_conv_params *p, const float *in, const float *wq,
				    const float *scale, const float *shift, int32_t c,
				    int32_t oy_lo, int32_t oy_hi, int32_t ox_lo, int32_t ox_hi,
				    float *out)
{
	const int32_t ch = p->in.c;
	const int32_t kw = p->kernel_w;

	for (int32_t oy = oy_lo; oy < oy_hi; oy++) {
		const int32_t iy0 = oy * p->stride_h - p->pad_top;
		int32_t ky_lo, ky_hi;

		peft_tap_range(iy0, p->kernel_h, p->in.h, &ky_lo, &ky_hi);
		for (int32_t ox = ox_lo; ox < ox_hi; ox++) {
			const int32_t ix0 = ox * p->stride_w - p->pad_left;
			int32_t kx_lo, kx_hi;
			float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;

			peft_tap_range(ix0, kw, p->in.w, &kx_lo, &kx_hi);
			for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
				const float *x = in + ((iy0 + ky) * p->in.w + ix0 + kx_lo) * ch + c;
				const float *v = wq + (ky * kw + kx_lo) * 4;

				for (int32_t kx = kx_lo; kx < kx_hi; kx++) {
					a0 += v[0] * x[0];
					a1 += v[1] * x[1];
					a2 += v[2] * x[2];
					a3 += v[3] * x[3];
					x += ch;
					v += 4;
				}
			}
			float *o = out + (oy * p->out.w + ox) * ch + c;

			o[0] = a0 * scale[0] + shift[0];
			o[1] = a1 * scale[1] + shift[1];
			o[2] = a2 * scale[2] + shift[2];
			o[3] = a3 * scale[3] + shift[3];
		}
	}
}

/* peft_dw_fwd_pixel over outputs [oy_lo, oy_hi) x [ox_lo, ox_hi), every channel. */
static inline void peft_dw_quad_fwd_region(const peft_conv_params *p, const float *in,
					   const peft_wsrc *w, const float *bias, int32_t oy_lo,
					   int32_t oy_hi, int32_t ox_lo, int32_t ox_hi, float *out)
{
	const int32_t ch = p->in.c;
	const int32_t taps = p->kernel_h * p->kernel_w;
	int32_t c = 0;
	float wq[4 * PEFT_DW_QUAD_TAPS];

	for (; c + 4 <= ch && taps <= PEFT_DW_QUAD_TAPS; c += 4) {
		float scale[4], shift[4];

		for (int32_t j = 0; j < 4; j++) {
			scale[j] = peft_wsrc_scale(w, c + j);
			shift[j] = bias != NULL ? bias[c + j] : 0.0f;
		}
		peft_dw_quad_taps(w, taps, ch, c, wq);
		peft_dw_quad_fwd(p, in, wq, scale, shift, c, oy_lo, oy_hi, ox_lo, ox_hi, out);
	}
	for (int32_t oy = oy_lo; oy < oy_hi && c < ch; oy++) {
		for (int32_t ox = ox_lo; ox < ox_hi; ox++) {
			peft_dw_fwd_pixel(p, in, w, bias, oy, ox, c, ch, out);
		}
	}
}

/* peft_dw_weight_tap for every channel of tap (ky, kx). */
static inline void peft_dw_quad_weight_tap(const peft_conv_params *p, const float *in,
					   const float *grad_out, int32_t ky, int32_t kx,
					   float *grad_w)
{
	const int32_t ch = p->in.c;
	int32_t oy_lo, oy_hi, ox_lo, ox_hi;
	float *gw = grad_w + (ky * p->kernel_w + kx) * ch;
	int32_t c = 0;

	peft_out_range(ky, p->stride_h, p->pad_top, p->in.h, p->out.h, &oy_lo, &oy_hi);
	peft_out_range(kx, p->stride_w, p->pad_left, p->in.w, p->out.w, &ox_lo, &ox_hi);
	for (; c + 4 <= ch; c += 4) {
		float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;

		for (int32_t oy = oy_lo; oy < oy_hi; oy++) {
			const int32_t iy = oy * p->stride_h - p->pad_top + ky;
			const int32_t ix = ox_lo * p->stride_w - p->pad_left + kx;
			const float *x = in + (iy * p->in.w + ix) * ch + c;
			const float *g = grad_out + (oy * p->out.w + ox_lo) * ch + c;

			for (int32_t ox = ox_lo; ox < ox_hi; ox++) {
				a0 += x[0] * g[0];
				a1 += x[1] * g[1];
				a2 += x[2] * g[2];
				a3 += x[3] * g[3];
				x += p->stride_w * ch;
				g += ch;
			}
		}
		gw[c] += a0;
		gw[c + 1] += a1;
		gw[c + 2] += a2;
		gw[c + 3] += a3;
	}
	if (c < ch) {
		peft_dw_weight_tap(p, in, grad_out, ky, kx, c, ch, grad_w);
	}
}

#endif /* PEFT_DEPTHWISE_QUAD_H */
