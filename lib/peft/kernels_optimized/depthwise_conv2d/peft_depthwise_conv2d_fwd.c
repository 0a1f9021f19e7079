/* DEPTHWISE_CONV_2D forward, optimized backend (same contract as
 * kernels/depthwise_conv2d/peft_depthwise_conv2d_fwd.c). A 3 x 3 kernel runs
 * one channel at a time over zero-padded planes of its input (a band of rows
 * at a time, peft_depthwise_plane.h), its 9 taps in registers, int8 taps
 * converted once per channel; every output, border or not, takes the same
 * loop. At stride 2 under 64 outputs, four channels at a time with the taps
 * converted once (peft_depthwise_quad.h); other kernel sizes, layers with
 * few pixels per channel and inputs too wide for a plane run the
 * reference's loops (peft_depthwise_loops.h). Where the lanes are a vector
 * (hosts), stride 1 runs a tap at a time over the whole output instead
 * (peft_depthwise_rows.h). */
#include <stddef.h>

#include "../../kernels/depthwise_conv2d/peft_depthwise_loops.h"
#include "../../kernels/peft_kernel_check.h"
#include "../../kernels/peft_kernel_loops.h"
#include "peft/peft_kernels.h"
#include "peft_depthwise_plane.h"
#include "../peft_kernel_blocks.h"
#include "peft_depthwise_quad.h"
#include "peft_depthwise_rows.h"

/* Taps of channel c as floats (raw int8 values or the float weights). */
static void channel_taps(const peft_wsrc *w, int32_t ch, int32_t c, float *k)
{
	for (int32_t t = 0; t < 9; t++) {
		k[t] = w->q != NULL ? (float)w->q[t * ch + c] : w->f[t * ch + c];
	}
}

static void depthwise_fwd(const peft_conv_params *p, const float *in, const peft_wsrc *w,
			  const float *bias, float *out)
{
	const int32_t ch = p->in.c;
	const int32_t sh = p->stride_h;
	const int32_t pw = (p->out.w - 1) * p->stride_w + 3;
	/* At stride 2 a plane holds 4 inputs per output: 64 outputs repay it. */
	const int32_t min_pixels = sh == 1 ? PEFT_DW_MIN_PIXELS : 4 * PEFT_DW_MIN_PIXELS;
	const bool planes =
		p->kernel_h == 3 && p->kernel_w == 3 && p->out.h * p->out.w >= min_pixels;
	const int32_t band = planes ? peft_dw_band(pw, sh) : 0;

	if (PEFT_F4_VECTOR && peft_dw_rows_fwd_stride1(p, in, w, bias, out)) {
		return;
	}
	if (band == 0 && sh > 1 && p->out.h * p->out.w >= PEFT_DW_MIN_PIXELS) {
		peft_dw_quad_fwd_region(p, in, w, bias, 0, p->out.h, 0, p->out.w, out);
		return;
	}
	if (band == 0) {
		/* A few pixels, many channels: the reference's loops over them. */
		for (int32_t oy = 0; oy < p->out.h; oy++) {
			for (int32_t ox = 0; ox < p->out.w; ox++) {
				peft_dw_fwd_pixel(p, in, w, bias, oy, ox, 0, ch, out);
			}
		}
		return;
	}
	float buf[PEFT_DW_BUF];
	peft_dw_plane pl;
	float k[9];

	peft_dw_plane_init(&pl, buf, pw, ((p->out.h < band ? p->out.h : band) - 1) * sh + 3);
	for (int32_t c = 0; c < ch; c++) {
		const float scale = peft_wsrc_scale(w, c);
		const float shift = bias != NULL ? bias[c] : 0.0f;

		channel_taps(w, ch, c, k);
		for (int32_t oy0 = 0; oy0 < p->out.h; oy0 += band) {
			const int32_t n = p->out.h - oy0 < band ? p->out.h - oy0 : band;

			peft_dw_fill(&pl, in, &p->in, c, oy0 * sh - p->pad_top, (n - 1) * sh + 3,
				     -p->pad_left);
			float *y = out + oy0 * p->out.w * ch + c;

			/* A constant pitch makes the window rows immediate offsets. */
			if (pl.pitch == PEFT_DW_PITCH) {
				peft_dw3x3_rows(n, p->out.w, buf, sh * PEFT_DW_PITCH, PEFT_DW_PITCH,
						p->stride_w, k, scale, shift, false, y,
						p->out.w * ch, ch);
			} else {
				peft_dw3x3_rows(n, p->out.w, buf, sh * pl.pitch, pl.pitch,
						p->stride_w, k, scale, shift, false, y,
						p->out.w * ch, ch);
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
