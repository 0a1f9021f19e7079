/* DEPTHWISE_CONV_2D forward (depth multiplier 1): each channel is convolved
 * with its own kernel, out[oy][ox][c] = bias[c] + sum over ky, kx of
 * w[ky][kx][c] * in[oy * stride_h - pad_top + ky][ox * stride_w - pad_left + kx][c],
 * where positions outside the input read zero (padding). */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "../peft_kernel_loops.h"
#include "peft/peft_kernels.h"

/* The output pixel's channels are the accumulators: each in-bounds tap adds
 * w[ky][kx][:] * in[iy][ix][:], contiguous over channels in both. An int8 sum
 * is scaled once per channel at the end. */
static void depthwise_fwd(const peft_conv_params *p, const float *in, const peft_wsrc *w,
			  const float *bias, float *out)
{
	const int32_t ch = p->in.c;

	for (int32_t oy = 0; oy < p->out.h; oy++) {
		const int32_t iy0 = oy * p->stride_h - p->pad_top;
		int32_t ky_lo;
		int32_t ky_hi;

		peft_tap_range(iy0, p->kernel_h, p->in.h, &ky_lo, &ky_hi);
		for (int32_t ox = 0; ox < p->out.w; ox++) {
			const int32_t ix0 = ox * p->stride_w - p->pad_left;
			int32_t kx_lo;
			int32_t kx_hi;

			peft_tap_range(ix0, p->kernel_w, p->in.w, &kx_lo, &kx_hi);
			float *o = out + (oy * p->out.w + ox) * ch;

			peft_zero_f32(ch, o);
			for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
				for (int32_t kx = kx_lo; kx < kx_hi; kx++) {
					const float *x =
						in + ((iy0 + ky) * p->in.w + ix0 + kx) * ch;
					const int32_t at = (ky * p->kernel_w + kx) * ch;

					if (w->q != NULL) {
						peft_vmac_s8(ch, w->q + at, x, o);
					} else {
						peft_vmac_f32(ch, w->f + at, x, o);
					}
				}
			}
			for (int32_t c = 0; c < ch; c++) {
				o[c] = o[c] * peft_wsrc_scale(w, c) +
				       (bias != NULL ? bias[c] : 0.0f);
			}
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
