/* CONV_2D forward: out[oy][ox][oc] = bias[oc] + sum over ky, kx, ic of
 * w[oc][ky][kx][ic] * in[oy * stride_h - pad_top + ky][ox * stride_w - pad_left + kx][ic],
 * where positions outside the input read zero (padding). */
#include <stddef.h>

#include "../peft_kernel_check.h"
#include "../peft_kernel_loops.h"
#include "peft/peft_kernels.h"

/* The in-bounds taps of a window are a block of rows ky_lo..ky_hi, each row
 * holding the taps kx_lo..kx_hi: in NHWC and in [oc][kh][kw][ic] weights both
 * are (kx_hi - kx_lo) * in.c contiguous values, so every row is one dot
 * product. An int8 sum is scaled once per output channel. */
static void conv2d_fwd(const peft_conv_params *p, const float *in, const peft_wsrc *w,
		       const float *bias, float *out)
{
	const int32_t in_c = p->in.c;
	const int32_t oc_size = p->kernel_h * p->kernel_w * in_c;

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
			const int32_t n = (kx_hi - kx_lo) * in_c;
			float *o = out + (oy * p->out.w + ox) * p->out.c;

			for (int32_t oc = 0; oc < p->out.c; oc++) {
				float acc = 0.0f;

				for (int32_t ky = ky_lo; ky < ky_hi && n > 0; ky++) {
					const float *x =
						in + ((iy0 + ky) * p->in.w + ix0 + kx_lo) * in_c;

					/* One running sum, in the reference's order. */
					acc = peft_wsrc_dot(
						w, oc * oc_size + (ky * p->kernel_w + kx_lo) * in_c,
						n, x, acc);
				}
				o[oc] = acc * peft_wsrc_scale(w, oc) +
					(bias != NULL ? bias[oc] : 0.0f);
			}
		}
	}
}

peft_status peft_conv2d_fwd_s8(const peft_conv_params *p, const float *in, const peft_weights_s8 *w,
			       const float *bias, float *out)
{
	if (!peft_conv2d_params_ok(p) || in == NULL || out == NULL ||
	    !peft_weights_s8_ok(w, p->out.c)) {
		return PEFT_ERR_ARG;
	}
	if (peft_conv_is_pointwise(p)) {
		const peft_fc_params fp = peft_conv_pointwise_fc(p);

		return peft_fc_fwd_s8(&fp, in, w, bias, out);
	}
	const peft_wsrc src = peft_wsrc_s8(w);

	conv2d_fwd(p, in, &src, bias, out);
	return PEFT_OK;
}

peft_status peft_conv2d_fwd_f32(const peft_conv_params *p, const float *in, const float *w,
				const float *bias, float *out)
{
	if (!peft_conv2d_params_ok(p) || in == NULL || w == NULL || out == NULL) {
		return PEFT_ERR_ARG;
	}
	if (peft_conv_is_pointwise(p)) {
		const peft_fc_params fp = peft_conv_pointwise_fc(p);

		return peft_fc_fwd_f32(&fp, in, w, bias, out);
	}
	const peft_wsrc src = peft_wsrc_f32(w);

	conv2d_fwd(p, in, &src, bias, out);
	return PEFT_OK;
}
