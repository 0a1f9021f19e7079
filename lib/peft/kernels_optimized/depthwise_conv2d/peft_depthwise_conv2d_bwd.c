/* DEPTHWISE_CONV_2D backward, optimized backend (same contract as
 * kernels/depthwise_conv2d/peft_depthwise_conv2d_bwd.c). For a 3 x 3 kernel:
 * - grad_in, stride 1: an input pixel whose 9 taps all reach an output is a
 *   3 x 3 window of grad_out with the kernel flipped, run two channels at a
 *   time with the 18 flipped taps in registers (as the forward does);
 * - grad_w: per channel pair, the 18 sums stay in registers while the
 *   outputs whose window lies inside the input stream past; the border
 *   outputs add their in-bounds taps to the same sums first.
 * The other cases (border input pixels, stride 2 grad_in, other kernels, an
 * odd last channel) run the reference's loops. Each sum is finished before it
 * is stored or added. */
#include <stddef.h>

#include "../../kernels/peft_kernel_check.h"
#include "../../kernels/peft_kernel_loops.h"
#include "peft/peft_kernels.h"
#include "peft_depthwise_3x3.h"

/* grad_in of input pixel (iy, ix), channels c_lo..c_hi - 1 (the reference's gather). */
static void input_pixel(const peft_conv_params *p, const peft_wsrc *w, const float *grad_out,
			int32_t iy, int32_t ix, int32_t c_lo, int32_t c_hi, float *grad_in,
			bool accumulate)
{
	const int32_t ch = p->in.c;
	const int32_t ry = iy + p->pad_top;
	const int32_t rx = ix + p->pad_left;
	float acc[PEFT_KERNEL_BLOCK];

	for (int32_t c0 = c_lo; c0 < c_hi; c0 += PEFT_KERNEL_BLOCK) {
		const int32_t nb = c_hi - c0 < PEFT_KERNEL_BLOCK ? c_hi - c0 : PEFT_KERNEL_BLOCK;

		peft_zero_f32(nb, acc);
		for (int32_t ky = ry % p->stride_h; ky < p->kernel_h && ky <= ry;
		     ky += p->stride_h) {
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
		if (w->q != NULL) {
			for (int32_t b = 0; b < nb; b++) {
				acc[b] *= peft_wsrc_scale(w, c0 + b);
			}
		}
		peft_store_block(nb, acc, grad_in + (iy * p->in.w + ix) * ch + c0, accumulate);
	}
}

/* The input positions [*lo, *hi) of one axis (stride 1, kernel 3) whose 3
 * taps all reach an output: 0 <= i + pad - 2 and i + pad < out_n. */
static void inner_inputs(int32_t in_n, int32_t out_n, int32_t pad, int32_t *lo, int32_t *hi)
{
	*lo = 2 - pad > 0 ? 2 - pad : 0;
	*hi = out_n - pad < in_n ? out_n - pad : in_n;
	if (*hi < *lo) {
		*hi = *lo;
	}
}

static void depthwise_bwd_input(const peft_conv_params *p, const peft_wsrc *w,
				const float *grad_out, float *grad_in, bool accumulate)
{
	const int32_t ch = p->in.c;
	int32_t iy_lo = 0, iy_hi = 0, ix_lo = 0, ix_hi = 0;

	if (p->kernel_h == 3 && p->kernel_w == 3 && p->stride_h == 1 && p->stride_w == 1) {
		inner_inputs(p->in.h, p->out.h, p->pad_top, &iy_lo, &iy_hi);
		inner_inputs(p->in.w, p->out.w, p->pad_left, &ix_lo, &ix_hi);
	}
	for (int32_t iy = 0; iy < p->in.h; iy++) {
		const bool inner_row = iy >= iy_lo && iy < iy_hi;

		for (int32_t ix = 0; ix < p->in.w; ix++) {
			if (inner_row && ix >= ix_lo && ix < ix_hi) {
				if (ch % 2 != 0) {
					input_pixel(p, w, grad_out, iy, ix, ch - 1, ch, grad_in,
						    accumulate);
				}
				continue;
			}
			input_pixel(p, w, grad_out, iy, ix, 0, ch, grad_in, accumulate);
		}
	}
	if (iy_hi <= iy_lo || ix_hi <= ix_lo) {
		return;
	}
	float w18[18];

	for (int32_t c = 0; c + 1 < ch; c += 2) {
		const float scale[2] = {peft_wsrc_scale(w, c), peft_wsrc_scale(w, c + 1)};
		const float shift[2] = {0.0f, 0.0f};

		/* Window tap t of grad_out (from its top-left) is kernel tap 8 - t. */
		for (int32_t t = 0; t < 9; t++) {
			for (int32_t k = 0; k < 2; k++) {
				const int32_t at = (8 - t) * ch + c + k;

				w18[t * 2 + k] = w->q != NULL ? (float)w->q[at] : w->f[at];
			}
		}
		for (int32_t iy = iy_lo; iy < iy_hi; iy++) {
			const int32_t oy0 = iy + p->pad_top - 2;
			const int32_t ox0 = ix_lo + p->pad_left - 2;

			peft_dw3x3_pair(ix_hi - ix_lo, grad_out + (oy0 * p->out.w + ox0) * ch + c,
					p->out.w * ch, ch, ch, w18, scale, shift, accumulate,
					grad_in + (iy * p->in.w + ix_lo) * ch + c, ch);
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

/* grad_w of tap (ky, kx), channels c_lo..c_hi - 1 (the reference's gather). */
static void weight_tap(const peft_conv_params *p, const float *in, const float *grad_out,
		       int32_t ky, int32_t kx, int32_t c_lo, int32_t c_hi, float *grad_w)
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

/* 3 x 3 grad_w of channels c, c + 1: the border outputs' in-bounds taps, then
 * the inner outputs (window inside the input) with the 18 sums in registers. */
static void weight_pair3x3(const peft_conv_params *p, const float *in, const float *grad_out,
			   int32_t c, float *grad_w)
{
	const int32_t ch = p->in.c;
	const int32_t sh = p->stride_h;
	const int32_t sw = p->stride_w;
	const int32_t oy_lo = (p->pad_top + sh - 1) / sh;
	const int32_t ox_lo = (p->pad_left + sw - 1) / sw;
	const int32_t last_y = p->in.h - 3 + p->pad_top;
	const int32_t last_x = p->in.w - 3 + p->pad_left;
	int32_t oy_hi = last_y < 0 ? 0 : last_y / sh + 1;
	int32_t ox_hi = last_x < 0 ? 0 : last_x / sw + 1;
	float acc[18];

	oy_hi = oy_hi > p->out.h ? p->out.h : oy_hi;
	ox_hi = ox_hi > p->out.w ? p->out.w : ox_hi;
	peft_zero_f32(18, acc);
	for (int32_t oy = 0; oy < p->out.h; oy++) {
		const int32_t iy0 = oy * sh - p->pad_top;
		const bool inner_row = oy >= oy_lo && oy < oy_hi;

		for (int32_t ox = 0; ox < p->out.w; ox++) {
			if (inner_row && ox >= ox_lo && ox < ox_hi) {
				continue;
			}
			const int32_t ix0 = ox * sw - p->pad_left;
			const float *g = grad_out + (oy * p->out.w + ox) * ch + c;

			for (int32_t t = 0; t < 9; t++) {
				const int32_t iy = iy0 + t / 3;
				const int32_t ix = ix0 + t % 3;

				if (iy < 0 || iy >= p->in.h || ix < 0 || ix >= p->in.w) {
					continue;
				}
				const float *x = in + (iy * p->in.w + ix) * ch + c;

				acc[t * 2] += x[0] * g[0];
				acc[t * 2 + 1] += x[1] * g[1];
			}
		}
		if (inner_row && ox_hi > ox_lo) {
			const int32_t ix0 = ox_lo * sw - p->pad_left;

			peft_dw3x3_weight_pair(
				ox_hi - ox_lo, in + (iy0 * p->in.w + ix0) * ch + c, p->in.w * ch,
				ch, sw * ch, grad_out + (oy * p->out.w + ox_lo) * ch + c, ch, acc);
		}
	}
	for (int32_t t = 0; t < 9; t++) {
		grad_w[t * ch + c] += acc[t * 2];
		grad_w[t * ch + c + 1] += acc[t * 2 + 1];
	}
}

peft_status peft_depthwise_conv2d_bwd_weight_f32(const peft_conv_params *p, const float *in,
						 const float *grad_out, float *grad_w)
{
	if (!peft_depthwise_params_ok(p) || in == NULL || grad_out == NULL || grad_w == NULL) {
		return PEFT_ERR_ARG;
	}
	const int32_t ch = p->in.c;
	const bool k3 = p->kernel_h == 3 && p->kernel_w == 3;
	const int32_t paired = k3 ? ch / 2 * 2 : 0;

	for (int32_t c = 0; c < paired; c += 2) {
		weight_pair3x3(p, in, grad_out, c, grad_w);
	}
	if (paired < ch) {
		for (int32_t ky = 0; ky < p->kernel_h; ky++) {
			for (int32_t kx = 0; kx < p->kernel_w; kx++) {
				weight_tap(p, in, grad_out, ky, kx, paired, ch, grad_w);
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
