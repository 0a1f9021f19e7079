/* DEPTHWISE_CONV_2D backward, optimized backend (same contract as
 * kernels/depthwise_conv2d/peft_depthwise_conv2d_bwd.c). Where the lanes are a
 * vector (hosts), grad_in runs a row at a time (peft_depthwise_rows.h). Else,
 * for a 3 x 3 kernel,
 * one channel at a time over zero-padded planes (peft_depthwise_plane.h),
 * the channel's taps or sums in registers:
 * - grad_in, stride 1: a 3 x 3 window of the padded grad_out with the kernel
 *   flipped, for every input pixel, summed in the reference's tap order;
 * - grad_in, stride 2: an input pixel's taps depend on the parity of its row
 *   and column (4, 2, 2 or 1 of them, in the reference's order); each parity
 *   runs its own loop over the padded grad_out;
 * - grad_w: per tap, four channels' sums in registers while the outputs that
 *   read the input through the tap stream past (peft_depthwise_quad.h: the
 *   reads are contiguous in NHWC, which a plane's copy does not beat).
 * Other kernels and strides, layers with few pixels per channel and planes
 * too wide for the stack run the reference's loops (peft_depthwise_loops.h).
 * Each sum is finished before it is stored or added. */
#include <stddef.h>

#include "../../kernels/depthwise_conv2d/peft_depthwise_loops.h"
#include "../../kernels/peft_kernel_check.h"
#include "../../kernels/peft_kernel_loops.h"
#include "../peft_kernel_blocks.h"
#include "peft/peft_kernels.h"
#include "peft_depthwise_plane.h"
#include "peft_depthwise_quad.h"
#include "peft_depthwise_rows.h"

static void channel_taps(const peft_wsrc *w, int32_t ch, int32_t c, float *k)
{
	for (int32_t t = 0; t < 9; t++) {
		k[t] = w->q != NULL ? (float)w->q[t * ch + c] : w->f[t * ch + c];
	}
}

static void store(float *y, float v, bool add)
{
	*y = add ? *y + v : v;
}

/* Stride 1: input pixel (iy, ix) reads grad_out rows iy + pad_top - 2 .. + 2
 * and columns ix + pad_left - 2 .. + 2, window position 8 - t holding the
 * output that reads it through kernel tap t (peft_dw3x3_slide_gather adds
 * them in tap order, as the reference does). */
static bool input_stride1(const peft_conv_params *p, const peft_wsrc *w, const float *grad_out,
			  float *grad_in, bool accumulate)
{
	const int32_t ch = p->in.c;
	const int32_t pw = p->in.w + 2;
	const int32_t band = peft_dw_band(pw, 1);
	float buf[PEFT_DW_BUF];
	peft_dw_plane pl;
	float k[9];

	if (band == 0) {
		return false;
	}
	peft_dw_plane_init(&pl, buf, pw, (p->in.h < band ? p->in.h : band) + 2);
	for (int32_t c = 0; c < ch; c++) {
		const float scale = peft_wsrc_scale(w, c);

		channel_taps(w, ch, c, k);
		for (int32_t iy0 = 0; iy0 < p->in.h; iy0 += band) {
			const int32_t n = p->in.h - iy0 < band ? p->in.h - iy0 : band;

			peft_dw_fill(&pl, grad_out, &p->out, c, iy0 + p->pad_top - 2, n + 2,
				     p->pad_left - 2);
			float *y = grad_in + iy0 * p->in.w * ch + c;

			if (pl.pitch == PEFT_DW_PITCH) {
				peft_dw3x3_slide_gather(n, p->in.w, buf, PEFT_DW_PITCH,
							PEFT_DW_PITCH, k, scale, 0.0f, accumulate,
							y, p->in.w * ch, ch);
			} else {
				peft_dw3x3_slide_gather(n, p->in.w, buf, pl.pitch, pl.pitch, k,
							scale, 0.0f, accumulate, y, p->in.w * ch,
							ch);
			}
		}
	}
	return true;
}

/* Stride 2, one input row, the n pixels of one column parity (output stride
 * os): y = sum of a0 * ra[j] + a1 * ra[j - 1] + b0 * rb[j] + b1 * rb[j - 1]
 * over the taps present (rb NULL: one row; !two: one column, j only), in
 * that order, then scaled and stored; j advances by one per pixel. */
static void stride2_run(int32_t n, const float *ra, const float *rb, bool two, const float *kk,
			float scale, bool add, float *out, int32_t os)
{
	const float a0 = kk[0], a1 = kk[1], b0 = kk[2], b1 = kk[3];

	if (rb != NULL && two) {
		for (int32_t i = 0; i < n; i++) {
			float y = a0 * ra[i];

			y += a1 * ra[i - 1];
			y += b0 * rb[i];
			y += b1 * rb[i - 1];
			store(out, y * scale, add);
			out += os;
		}
	} else if (rb != NULL) {
		for (int32_t i = 0; i < n; i++) {
			float y = a0 * ra[i];

			y += b0 * rb[i];
			store(out, y * scale, add);
			out += os;
		}
	} else if (two) {
		for (int32_t i = 0; i < n; i++) {
			float y = a0 * ra[i];

			y += a1 * ra[i - 1];
			store(out, y * scale, add);
			out += os;
		}
	} else {
		for (int32_t i = 0; i < n; i++) {
			store(out, a0 * ra[i] * scale, add);
			out += os;
		}
	}
}

/* Stride 2: input row ry = iy + pad_top reads, through ky = ry % 2 (+ 2),
 * grad_out rows oy = (ry - ky) / 2; columns likewise. The plane's row i and
 * column j hold grad_out row row0 + i and column j - 1 (zero outside). */
static bool input_stride2(const peft_conv_params *p, const peft_wsrc *w, const float *grad_out,
			  float *grad_in, bool accumulate)
{
	const int32_t ch = p->in.c;
	const int32_t pw = (p->in.w - 1 + p->pad_left) / 2 + 2;
	const int32_t max_rows = PEFT_DW_PLANE / peft_dw_pitch(pw);
	const int32_t band = 2 * (max_rows - 2);
	float buf[PEFT_DW_BUF];
	peft_dw_plane pl;
	float k[9];

	if (max_rows < 3) {
		return false;
	}
	peft_dw_plane_init(&pl, buf, pw, max_rows);
	for (int32_t c = 0; c < ch; c++) {
		const float scale = peft_wsrc_scale(w, c);

		channel_taps(w, ch, c, k);
		for (int32_t iy0 = 0; iy0 < p->in.h; iy0 += band) {
			const int32_t n = p->in.h - iy0 < band ? p->in.h - iy0 : band;
			const int32_t row0 = (iy0 + p->pad_top) / 2 - 1;
			const int32_t rows = (iy0 + n - 1 + p->pad_top) / 2 - row0 + 1;

			peft_dw_fill(&pl, grad_out, &p->out, c, row0, rows, -1);
			for (int32_t iy = iy0; iy < iy0 + n; iy++) {
				const int32_t ry = iy + p->pad_top;
				const float *ra =
					buf + (ry / 2 - row0) * pl.pitch; /* ky = ry % 2 */
				const float *rb = ry % 2 == 0 ? ra - pl.pitch : NULL; /* ky = 2 */
				const int32_t ky = ry % 2;
				float *gi = grad_in + iy * p->in.w * ch + c;

				for (int32_t par = 0; par < 2 && par < p->in.w; par++) {
					const int32_t rx = par + p->pad_left;
					const int32_t kx = rx % 2;
					const bool two = kx == 0;
					const int32_t j =
						rx / 2 + 1; /* kx: column rx / 2 (+1 shift) */
					const float kk[4] = {k[ky * 3 + kx],
							     two ? k[ky * 3 + 2] : 0.0f,
							     rb != NULL ? k[6 + kx] : 0.0f,
							     rb != NULL && two ? k[8] : 0.0f};

					stride2_run((p->in.w - par + 1) / 2, ra + j,
						    rb != NULL ? rb + j : NULL, two, kk, scale,
						    accumulate, gi + par * ch, 2 * ch);
				}
			}
		}
	}
	return true;
}

static void depthwise_bwd_input(const peft_conv_params *p, const peft_wsrc *w,
				const float *grad_out, float *grad_in, bool accumulate)
{
	if (PEFT_F4_VECTOR &&
	    (peft_dw_rows_bwd_input_stride1(p, w, grad_out, grad_in, accumulate) ||
	     peft_dw_rows_bwd_input(p, w, grad_out, grad_in, accumulate))) {
		return;
	}
	if (p->kernel_h == 3 && p->kernel_w == 3 && p->in.h * p->in.w >= PEFT_DW_MIN_PIXELS) {
		if (p->stride_h == 1 && p->stride_w == 1 &&
		    input_stride1(p, w, grad_out, grad_in, accumulate)) {
			return;
		}
		if (p->stride_h == 2 && p->stride_w == 2 &&
		    input_stride2(p, w, grad_out, grad_in, accumulate)) {
			return;
		}
	}
	for (int32_t iy = 0; iy < p->in.h; iy++) {
		for (int32_t ix = 0; ix < p->in.w; ix++) {
			peft_dw_input_pixel(p, w, grad_out, iy, ix, 0, p->in.c, grad_in,
					    accumulate);
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

peft_status peft_depthwise_conv2d_bwd_weight_f32(const peft_conv_params *p, const float *in,
						 const float *grad_out, float *grad_w)
{
	if (!peft_depthwise_params_ok(p) || in == NULL || grad_out == NULL || grad_w == NULL) {
		return PEFT_ERR_ARG;
	}
	for (int32_t ky = 0; ky < p->kernel_h; ky++) {
		for (int32_t kx = 0; kx < p->kernel_w; kx++) {
			peft_dw_quad_weight_tap(p, in, grad_out, ky, kx, grad_w);
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
	peft_blk_column_sums(out->h * out->w, out->c, grad_out, grad_bias);
	return PEFT_OK;
}
