/* DEPTHWISE_CONV_2D forward, optimized backend (same contract as
 * kernels/depthwise_conv2d/peft_depthwise_conv2d_fwd.c). For a 3 x 3 kernel,
 * the outputs whose window lies inside the input run two channels at a time
 * with the channels' 18 taps in registers (int8 weights converted once per
 * call), reading the input in place; the border outputs, other kernel sizes
 * and an odd last channel run the reference's loops. */
#include <stddef.h>

#include "../../kernels/peft_kernel_check.h"
#include "../../kernels/peft_kernel_loops.h"
#include "peft/peft_kernels.h"
#include "peft_depthwise_3x3.h"

/* Output pixel (oy, ox), channels c_lo..c_hi - 1, over its in-bounds taps. */
static void fwd_pixel(const peft_conv_params *p, const float *in, const peft_wsrc *w,
		      const float *bias, int32_t oy, int32_t ox, int32_t c_lo, int32_t c_hi,
		      float *out)
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

/* The outputs [*lo, *hi) of one axis whose 3 taps are all inside the input. */
static void inner_range(int32_t in_n, int32_t out_n, int32_t stride, int32_t pad, int32_t *lo,
			int32_t *hi)
{
	const int32_t last = in_n - 3 + pad;

	*lo = (pad + stride - 1) / stride;
	*hi = last < 0 ? 0 : last / stride + 1;
	if (*hi > out_n) {
		*hi = out_n;
	}
	if (*hi < *lo) {
		*hi = *lo;
	}
}

/* Weights of channels c, c + 1 as [tap][2] floats, raw int8 values or floats. */
static void pair_weights(const peft_wsrc *w, int32_t ch, int32_t c, float *w18)
{
	for (int32_t t = 0; t < 9; t++) {
		for (int32_t k = 0; k < 2; k++) {
			const int32_t at = t * ch + c + k;

			w18[t * 2 + k] = w->q != NULL ? (float)w->q[at] : w->f[at];
		}
	}
}

static void depthwise_fwd(const peft_conv_params *p, const float *in, const peft_wsrc *w,
			  const float *bias, float *out)
{
	const int32_t ch = p->in.c;
	int32_t oy_lo = 0, oy_hi = 0, ox_lo = 0, ox_hi = 0;

	if (p->kernel_h == 3 && p->kernel_w == 3) {
		inner_range(p->in.h, p->out.h, p->stride_h, p->pad_top, &oy_lo, &oy_hi);
		inner_range(p->in.w, p->out.w, p->stride_w, p->pad_left, &ox_lo, &ox_hi);
	}
	for (int32_t oy = 0; oy < p->out.h; oy++) {
		const bool inner_row = oy >= oy_lo && oy < oy_hi;

		for (int32_t ox = 0; ox < p->out.w; ox++) {
			if (inner_row && ox >= ox_lo && ox < ox_hi) {
				if (ch % 2 != 0) {
					fwd_pixel(p, in, w, bias, oy, ox, ch - 1, ch, out);
				}
				continue;
			}
			fwd_pixel(p, in, w, bias, oy, ox, 0, ch, out);
		}
	}
	if (oy_hi <= oy_lo || ox_hi <= ox_lo) {
		return;
	}
	float w18[18];

	for (int32_t c = 0; c + 1 < ch; c += 2) {
		const float scale[2] = {peft_wsrc_scale(w, c), peft_wsrc_scale(w, c + 1)};
		const float shift[2] = {bias != NULL ? bias[c] : 0.0f,
					bias != NULL ? bias[c + 1] : 0.0f};

		pair_weights(w, ch, c, w18);
		for (int32_t oy = oy_lo; oy < oy_hi; oy++) {
			const int32_t iy0 = oy * p->stride_h - p->pad_top;
			const int32_t ix0 = ox_lo * p->stride_w - p->pad_left;

			peft_dw3x3_pair(ox_hi - ox_lo, in + (iy0 * p->in.w + ix0) * ch + c,
					p->in.w * ch, ch, p->stride_w * ch, w18, scale, shift,
					false, out + (oy * p->out.w + ox_lo) * ch + c, ch);
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
