/* The reference's depthwise loops (kernels/depthwise_conv2d/
 * peft_depthwise_loops.h) four channels at a time with the four sums in
 * registers, for the layers whose planes would not repay their copy (a few
 * pixels per channel, many channels) and for kernels other than 3 x 3. Sums
 * run in the reference's order; the channels left over after the last group
 * of four run the reference's loops themselves. Private to this folder. */
#ifndef PEFT_DEPTHWISE_QUAD_H
#define PEFT_DEPTHWISE_QUAD_H

#include <stdbool.h>
#include <stdint.h>

#include "../../kernels/depthwise_conv2d/peft_depthwise_loops.h"
#include "../../kernels/peft_kernel_loops.h"
#include "peft/peft_kernels.h"

/* Channels c..c+3 of weight tap `at` as floats (raw int8 or float weights). */
#define PEFT_DW_QUAD_W(w, at, v0, v1, v2, v3)                                               \
	do {                                                                                \
		if ((w)->q != NULL) {                                                       \
			const int8_t *q_ = (w)->q + (at);                                   \
			v0 = (float)q_[0], v1 = (float)q_[1], v2 = (float)q_[2];            \
			v3 = (float)q_[3];                                                  \
		} else {                                                                    \
			const float *f_ = (w)->f + (at);                                    \
			v0 = f_[0], v1 = f_[1], v2 = f_[2], v3 = f_[3];                     \
		}                                                                           \
	} while (0)

/* peft_dw_fwd_pixel for every channel of output pixel (oy, ox). */
static inline void peft_dw_quad_fwd_pixel(const peft_conv_params *p, const float *in,
					  const peft_wsrc *w, const float *bias, int32_t oy,
					  int32_t ox, float *out)
{
	const int32_t ch = p->in.c;
	const int32_t iy0 = oy * p->stride_h - p->pad_top;
	const int32_t ix0 = ox * p->stride_w - p->pad_left;
	int32_t ky_lo, ky_hi, kx_lo, kx_hi;
	float *o = out + (oy * p->out.w + ox) * ch;
	int32_t c = 0;

	peft_tap_range(iy0, p->kernel_h, p->in.h, &ky_lo, &ky_hi);
	peft_tap_range(ix0, p->kernel_w, p->in.w, &kx_lo, &kx_hi);
	for (; c + 4 <= ch; c += 4) {
		float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;

		for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
			const float *x = in + ((iy0 + ky) * p->in.w + ix0 + kx_lo) * ch + c;
			int32_t at = (ky * p->kernel_w + kx_lo) * ch + c;

			for (int32_t kx = kx_lo; kx < kx_hi; kx++) {
				float v0, v1, v2, v3;

				PEFT_DW_QUAD_W(w, at, v0, v1, v2, v3);
				a0 += v0 * x[0];
				a1 += v1 * x[1];
				a2 += v2 * x[2];
				a3 += v3 * x[3];
				x += ch;
				at += ch;
			}
		}
		o[c] = a0 * peft_wsrc_scale(w, c) + (bias != NULL ? bias[c] : 0.0f);
		o[c + 1] = a1 * peft_wsrc_scale(w, c + 1) + (bias != NULL ? bias[c + 1] : 0.0f);
		o[c + 2] = a2 * peft_wsrc_scale(w, c + 2) + (bias != NULL ? bias[c + 2] : 0.0f);
		o[c + 3] = a3 * peft_wsrc_scale(w, c + 3) + (bias != NULL ? bias[c + 3] : 0.0f);
	}
	if (c < ch) {
		peft_dw_fwd_pixel(p, in, w, bias, oy, ox, c, ch, out);
	}
}

/* peft_dw_input_pixel for every channel of input pixel (iy, ix). */
static inline void peft_dw_quad_input_pixel(const peft_conv_params *p, const peft_wsrc *w,
					    const float *grad_out, int32_t iy, int32_t ix,
					    float *grad_in, bool accumulate)
{
	const int32_t ch = p->in.c;
	const int32_t ry = iy + p->pad_top;
	const int32_t rx = ix + p->pad_left;
	float *gi = grad_in + (iy * p->in.w + ix) * ch;
	int32_t c = 0;

	for (; c + 4 <= ch; c += 4) {
		float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;

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
				const float *g = grad_out + (oy * p->out.w + ox) * ch + c;
				float v0, v1, v2, v3;

				PEFT_DW_QUAD_W(w, (ky * p->kernel_w + kx) * ch + c, v0, v1, v2, v3);
				a0 += v0 * g[0];
				a1 += v1 * g[1];
				a2 += v2 * g[2];
				a3 += v3 * g[3];
			}
		}
		if (w->q != NULL) {
			a0 *= peft_wsrc_scale(w, c);
			a1 *= peft_wsrc_scale(w, c + 1);
			a2 *= peft_wsrc_scale(w, c + 2);
			a3 *= peft_wsrc_scale(w, c + 3);
		}
		gi[c] = accumulate ? gi[c] + a0 : a0;
		gi[c + 1] = accumulate ? gi[c + 1] + a1 : a1;
		gi[c + 2] = accumulate ? gi[c + 2] + a2 : a2;
		gi[c + 3] = accumulate ? gi[c + 3] + a3 : a3;
	}
	if (c < ch) {
		peft_dw_input_pixel(p, w, grad_out, iy, ix, c, ch, grad_in, accumulate);
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
