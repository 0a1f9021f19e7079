/* CONV_2D backward, optimized backend (same contract as
 * kernels/conv2d/peft_conv2d_bwd.c). A 1x1 stride-1 convolution runs as the
 * fully connected kernels (all passes). Otherwise:
 * - grad_in is gathered per input pixel. Input pixels whose x position has
 *   the same remainder modulo stride_w read the same taps, the outputs of
 *   consecutive such pixels are consecutive: 4 of them x 4 input channels run
 *   as one block of 16 sums in registers over every tap and output channel
 *   (int8 weights converted and scaled once per load, for 4 pixels). Pixels
 *   at the edges, whose taps are cut, run one at a time.
 * - grad_w is, per tap, 4 output x 4 input channels summed over the outputs
 *   that read the input through that tap.
 * Each sum is finished before it is stored or added. */
#include <stddef.h>

#include "../../kernels/peft_kernel_check.h"
#include "../../kernels/peft_kernel_loops.h"
#include "../peft_kernel_blocks.h"
#include "peft/peft_kernels.h"

/* The taps of one input row or column: ky = first + m * stride < kernel,
 * ky <= r (r = i + pad), with output (r - ky) / stride < out_n. A position is
 * `full` when every ky == first (mod stride) below kernel qualifies. */
typedef struct {
	int32_t first;
	int32_t count; /* qualifying taps: first, first + stride, ... */
	int32_t skip;  /* leading taps that do not qualify (output past the end) */
	bool full;
} tap_set;

static tap_set taps_of(int32_t i, int32_t pad, int32_t kernel, int32_t stride, int32_t out_n)
{
	const int32_t r = i + pad;
	tap_set t = {r % stride, 0, 0, true};

	for (int32_t k = t.first; k < kernel; k += stride) {
		if (k > r) {
			t.full = false;
			break;
		}
		if ((r - k) / stride >= out_n) {
			t.full = false;
			t.skip++;
			continue;
		}
		t.count++;
	}
	return t;
}

/* grad_in for input pixels ix + lane * stride_w (lanes 0..3, all `full`
 * along x) of row iy, every channel. */
static void input_block4(const peft_conv_params *p, const peft_wsrc *w, const float *grad_out,
			 int32_t iy, int32_t ix, const tap_set *ty, float *grad_in, bool accumulate)
{
	const int32_t in_c = p->in.c;
	const int32_t out_c = p->out.c;
	const int32_t kw = p->kernel_w;
	const int32_t oc_size = p->kernel_h * kw * in_c;
	const int32_t ry = iy + p->pad_top;
	const int32_t rx = ix + p->pad_left;
	const int32_t step = in_c >= 4 ? 4 : 1;
	float acc[16];

	for (int32_t j = 0; j < in_c; j += step) {
		const int32_t c0 = step == 4 ? peft_blk_start(j, in_c) : j;

		peft_blk_zero(16, acc);
		for (int32_t m = ty->skip; m < ty->skip + ty->count; m++) {
			const int32_t ky = ty->first + m * p->stride_h;
			const int32_t oy = (ry - ky) / p->stride_h;

			for (int32_t kx = rx % p->stride_w; kx < kw; kx += p->stride_w) {
				const int32_t ox = (rx - kx) / p->stride_w;
				const float *g = grad_out + (oy * p->out.w + ox) * out_c;
				const int32_t at = (ky * kw + kx) * in_c + c0;

				if (step == 4 && w->q != NULL) {
					peft_blk_pc4x4_s8(out_c, g, out_c, w->q + at, oc_size,
							  w->scales, w->scale_step, acc);
				} else if (step == 4) {
					peft_blk_pc4x4_f32(out_c, g, out_c, w->f + at, oc_size,
							   acc);
				} else if (w->q != NULL) {
					peft_blk_pc4x1_s8(out_c, g, out_c, w->q + at, oc_size,
							  w->scales, w->scale_step, acc);
				} else {
					peft_blk_pc4x1_f32(out_c, g, out_c, w->f + at, oc_size,
							   acc);
				}
			}
		}
		for (int32_t lane = 0; lane < 4; lane++) {
			float *gi = grad_in + (iy * p->in.w + ix + lane * p->stride_w) * in_c + c0;

			for (int32_t q = j - c0; q < step; q++) {
				peft_blk_put(gi + q, acc[step == 4 ? lane * 4 + q : lane],
					     accumulate);
			}
		}
	}
}

/* grad_in for one input pixel, every channel, over its in-bounds taps. */
static void input_pixel(const peft_conv_params *p, const peft_wsrc *w, const float *grad_out,
			int32_t iy, int32_t ix, const tap_set *ty, float *grad_in, bool accumulate)
{
	const int32_t in_c = p->in.c;
	const int32_t out_c = p->out.c;
	const int32_t kw = p->kernel_w;
	const int32_t oc_size = p->kernel_h * kw * in_c;
	const int32_t ry = iy + p->pad_top;
	const tap_set tx = taps_of(ix, p->pad_left, kw, p->stride_w, p->out.w);
	const int32_t rx = ix + p->pad_left;
	const int32_t step = in_c >= 4 ? 4 : 1;
	float *gi = grad_in + (iy * p->in.w + ix) * in_c;
	float acc[4];

	for (int32_t j = 0; j < in_c; j += step) {
		const int32_t c0 = step == 4 ? peft_blk_start(j, in_c) : j;

		peft_blk_zero(4, acc);
		for (int32_t m = ty->skip; m < ty->skip + ty->count; m++) {
			const int32_t ky = ty->first + m * p->stride_h;
			const int32_t oy = (ry - ky) / p->stride_h;

			for (int32_t n = tx.skip; n < tx.skip + tx.count; n++) {
				const int32_t kx = tx.first + n * p->stride_w;
				const int32_t ox = (rx - kx) / p->stride_w;
				const float *g = grad_out + (oy * p->out.w + ox) * out_c;
				const int32_t at = (ky * kw + kx) * in_c + c0;

				if (step == 4 && w->q != NULL) {
					peft_blk_pc1x4_s8(out_c, g, w->q + at, oc_size, w->scales,
							  w->scale_step, acc);
				} else if (step == 4) {
					peft_blk_pc1x4_f32(out_c, g, w->f + at, oc_size, acc);
				} else {
					for (int32_t oc = 0; oc < out_c; oc++) {
						acc[0] +=
							g[oc] *
							(w->q != NULL
								 ? (float)w->q[oc * oc_size + at] *
									   peft_wsrc_scale(w, oc)
								 : w->f[oc * oc_size + at]);
					}
				}
			}
		}
		for (int32_t q = j - c0; q < step; q++) {
			peft_blk_put(gi + c0 + q, acc[q], accumulate);
		}
	}
}

/* taps_of(i, ...).full without the loop: the class's taps first, first +
 * stride, ... up to the last below the kernel all satisfy k <= r and
 * (r - k) / stride < out_n (the smallest k decides the second). */
static bool taps_full(int32_t i, int32_t pad, int32_t kernel, int32_t stride, int32_t out_n)
{
	const int32_t r = i + pad;
	const int32_t first = r % stride;

	if (first >= kernel) {
		return true; /* no taps */
	}
	const int32_t last = first + (kernel - 1 - first) / stride * stride;

	return last <= r && (r - first) / stride < out_n;
}

static void conv2d_bwd_input(const peft_conv_params *p, const peft_wsrc *w, const float *grad_out,
			     float *grad_in, bool accumulate)
{
	const int32_t sw = p->stride_w;

	for (int32_t iy = 0; iy < p->in.h; iy++) {
		const tap_set ty = taps_of(iy, p->pad_top, p->kernel_h, p->stride_h, p->out.h);

		for (int32_t r = 0; r < sw && r < p->in.w; r++) {
			/* The input columns ix = r, r + sw, ... */
			for (int32_t ix = r; ix < p->in.w;) {
				const int32_t ix3 = ix + 3 * sw;

				if (ix3 < p->in.w &&
				    taps_full(ix, p->pad_left, p->kernel_w, sw, p->out.w) &&
				    taps_full(ix3, p->pad_left, p->kernel_w, sw, p->out.w)) {
					input_block4(p, w, grad_out, iy, ix, &ty, grad_in,
						     accumulate);
					ix += 4 * sw;
				} else {
					input_pixel(p, w, grad_out, iy, ix, &ty, grad_in,
						    accumulate);
					ix += sw;
				}
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
	if (peft_conv_is_pointwise(p)) {
		const peft_fc_params fp = peft_conv_pointwise_fc(p);

		return peft_fc_bwd_input_s8(&fp, w, grad_out, grad_in, accumulate);
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
	const int32_t out_c = p->out.c;
	const int32_t no = out_c >= 4 ? 4 : out_c;
	const int32_t nc = in_c >= 4 ? 4 : 1;
	float acc[16];

	for (int32_t ky = 0; ky < p->kernel_h; ky++) {
		int32_t oy_lo, oy_hi;

		peft_out_range(ky, p->stride_h, p->pad_top, p->in.h, p->out.h, &oy_lo, &oy_hi);
		for (int32_t kx = 0; kx < p->kernel_w; kx++) {
			int32_t ox_lo, ox_hi;

			peft_out_range(kx, p->stride_w, p->pad_left, p->in.w, p->out.w, &ox_lo,
				       &ox_hi);
			for (int32_t j = 0; j < out_c; j += no) {
				const int32_t o0 = no == 4 ? peft_blk_start(j, out_c) : j;

				for (int32_t k = 0; k < in_c; k += nc) {
					const int32_t c0 = nc == 4 ? peft_blk_start(k, in_c) : k;

					peft_blk_zero(16, acc);
					for (int32_t oy = oy_lo; oy < oy_hi && ox_lo < ox_hi;
					     oy++) {
						const int32_t iy =
							oy * p->stride_h - p->pad_top + ky;
						const int32_t ix =
							ox_lo * p->stride_w - p->pad_left + kx;
						const float *g = grad_out +
								 (oy * p->out.w + ox_lo) * out_c +
								 o0;
						const float *x =
							in + (iy * p->in.w + ix) * in_c + c0;
						const int32_t n = ox_hi - ox_lo;
						const int32_t xs = p->stride_w * in_c;

						if (no == 4 && nc == 4) {
							peft_blk_cc4x4_f32(n, g, out_c, x, xs, acc);
						} else if (no == 4) {
							peft_blk_cc4x1_f32(n, g, out_c, x, xs, acc);
						} else {
							peft_blk_cc_tail_f32(n, no, nc, g, out_c, x,
									     xs, acc);
						}
					}
					for (int32_t o = j - o0; o < no; o++) {
						float *gw = grad_w +
							    (((o0 + o) * p->kernel_h + ky) *
								     p->kernel_w +
							     kx) * in_c +
							    c0;

						for (int32_t c = k - c0; c < nc; c++) {
							gw[c] += acc[o * nc + c];
						}
					}
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
	peft_blk_column_sums(out->h * out->w, out->c, grad_out, grad_bias);
	return PEFT_OK;
}
