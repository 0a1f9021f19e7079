/* CONV_2D forward, optimized backend (same contract as
 * kernels/conv2d/peft_conv2d_fwd.c). A 1x1 stride-1 convolution runs as the
 * fully connected kernel. Otherwise, per output row: the output pixels whose
 * window lies inside the input along x run 4 pixels x 4 output channels at a
 * time, the window's rows (ky) as segments of kw * in.c contiguous values
 * (the weights of those rows are contiguous too), with the 16 sums in
 * registers over the whole window; the other pixels run 1 x 4 over their
 * in-bounds taps. Fewer than 4 output channels: one dot product per row of
 * taps, as the reference does. */
#include <stddef.h>

#include "../../kernels/peft_kernel_check.h"
#include "../../kernels/peft_kernel_loops.h"
#include "../peft_kernel_blocks.h"
#include "peft/peft_kernels.h"

/* Output channels oc0..oc0+3 of pixel `o` from the sums acc[lane * 4 + q]. */
static void store_pixel(const peft_wsrc *w, const float *bias, int32_t oc0, const float *acc,
			float *o)
{
	for (int32_t q = 0; q < 4; q++) {
		const int32_t oc = oc0 + q;

		o[oc] = acc[q] * peft_wsrc_scale(w, oc) + (bias != NULL ? bias[oc] : 0.0f);
	}
}

/* One output pixel, any channel count: the reference's dot products. */
static void pixel_scalar(const peft_conv_params *p, const float *in, const peft_wsrc *w,
			 const float *bias, int32_t oy, int32_t ox, float *out)
{
	const int32_t in_c = p->in.c;
	const int32_t oc_size = p->kernel_h * p->kernel_w * in_c;
	const int32_t iy0 = oy * p->stride_h - p->pad_top;
	const int32_t ix0 = ox * p->stride_w - p->pad_left;
	int32_t ky_lo, ky_hi, kx_lo, kx_hi;

	peft_tap_range(iy0, p->kernel_h, p->in.h, &ky_lo, &ky_hi);
	peft_tap_range(ix0, p->kernel_w, p->in.w, &kx_lo, &kx_hi);
	const int32_t n = (kx_hi - kx_lo) * in_c;
	float *o = out + (oy * p->out.w + ox) * p->out.c;

	for (int32_t oc = 0; oc < p->out.c; oc++) {
		float acc = 0.0f;

		for (int32_t ky = ky_lo; ky < ky_hi && n > 0; ky++) {
			acc = peft_wsrc_dot(w, oc * oc_size + (ky * p->kernel_w + kx_lo) * in_c, n,
					    in + ((iy0 + ky) * p->in.w + ix0 + kx_lo) * in_c, acc);
		}
		o[oc] = acc * peft_wsrc_scale(w, oc) + (bias != NULL ? bias[oc] : 0.0f);
	}
}

/* One output pixel, 1 x 4 blocks over its in-bounds taps (out.c >= 4). */
static void pixel_blocked(const peft_conv_params *p, const float *in, const peft_wsrc *w,
			  const float *bias, int32_t oy, int32_t ox, float *out)
{
	const int32_t in_c = p->in.c;
	const int32_t kw = p->kernel_w;
	const int32_t oc_size = p->kernel_h * kw * in_c;
	const int32_t iy0 = oy * p->stride_h - p->pad_top;
	const int32_t ix0 = ox * p->stride_w - p->pad_left;
	int32_t ky_lo, ky_hi, kx_lo, kx_hi;
	float acc[4];

	peft_tap_range(iy0, p->kernel_h, p->in.h, &ky_lo, &ky_hi);
	peft_tap_range(ix0, kw, p->in.w, &kx_lo, &kx_hi);
	const int32_t segs = ky_hi > ky_lo && kx_hi > kx_lo ? ky_hi - ky_lo : 0;
	const int32_t n = (kx_hi - kx_lo) * in_c;
	const float *x = in + ((iy0 + ky_lo) * p->in.w + ix0 + kx_lo) * in_c;
	const int32_t tap = (ky_lo * kw + kx_lo) * in_c;
	float *o = out + (oy * p->out.w + ox) * p->out.c;

	for (int32_t j = 0; j < p->out.c; j += 4) {
		const int32_t oc0 = peft_blk_start(j, p->out.c);

		peft_blk_zero(4, acc);
		if (segs > 0 && w->q != NULL) {
			peft_blk_pp1x4_s8(segs, n, x, p->in.w * in_c - n,
					  w->q + oc0 * oc_size + tap, oc_size, kw * in_c - n, acc);
		} else if (segs > 0) {
			peft_blk_pp1x4_f32(segs, n, x, p->in.w * in_c - n,
					   w->f + oc0 * oc_size + tap, oc_size, kw * in_c - n, acc);
		}
		store_pixel(w, bias, oc0, acc, o);
	}
}

static void conv2d_fwd(const peft_conv_params *p, const float *in, const peft_wsrc *w,
		       const float *bias, float *out)
{
	const int32_t in_c = p->in.c;
	const int32_t kw = p->kernel_w;
	const int32_t oc_size = p->kernel_h * kw * in_c;
	const int32_t sw = p->stride_w;
	/* Pixels ox_a..ox_b - 1 have all kw taps inside the input along x. */
	const int32_t ox_a = (p->pad_left + sw - 1) / sw;
	const int32_t last = p->in.w - kw + p->pad_left;
	int32_t ox_b = last < 0 ? 0 : last / sw + 1;
	float acc[16];

	if (ox_b > p->out.w) {
		ox_b = p->out.w;
	}
	for (int32_t oy = 0; oy < p->out.h; oy++) {
		if (p->out.c < 4) {
			for (int32_t ox = 0; ox < p->out.w; ox++) {
				pixel_scalar(p, in, w, bias, oy, ox, out);
			}
			continue;
		}
		const int32_t iy0 = oy * p->stride_h - p->pad_top;
		int32_t ky_lo, ky_hi;

		peft_tap_range(iy0, p->kernel_h, p->in.h, &ky_lo, &ky_hi);
		const int32_t segs = ky_hi > ky_lo ? ky_hi - ky_lo : 0;
		int32_t ox = 0;

		for (; ox < ox_a && ox < p->out.w; ox++) {
			pixel_blocked(p, in, w, bias, oy, ox, out);
		}
		for (; ox + 4 <= ox_b && segs > 0; ox += 4) {
			const int32_t ix0 = ox * sw - p->pad_left;
			const float *x = in + ((iy0 + ky_lo) * p->in.w + ix0) * in_c;
			const int32_t tap = ky_lo * kw * in_c;

			for (int32_t j = 0; j < p->out.c; j += 4) {
				const int32_t oc0 = peft_blk_start(j, p->out.c);

				peft_blk_zero(16, acc);
				if (w->q != NULL) {
					peft_blk_pp4x4_s8(segs, kw * in_c, x, sw * in_c,
							  (p->in.w - kw) * in_c,
							  w->q + oc0 * oc_size + tap, oc_size, 0,
							  acc);
				} else {
					peft_blk_pp4x4_f32(segs, kw * in_c, x, sw * in_c,
							   (p->in.w - kw) * in_c,
							   w->f + oc0 * oc_size + tap, oc_size, 0,
							   acc);
				}
				for (int32_t lane = 0; lane < 4; lane++) {
					store_pixel(w, bias, oc0, acc + lane * 4,
						    out + (oy * p->out.w + ox + lane) * p->out.c);
				}
			}
		}
		for (; ox < p->out.w; ox++) {
			pixel_blocked(p, in, w, bias, oy, ox, out);
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
