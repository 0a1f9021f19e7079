/* Depthwise loops for cores whose float lanes are a vector (PEFT_F4_VECTOR:
 * hosts; private to kernels_optimized/depthwise_conv2d). The M4's loops keep
 * one channel's taps in registers over a padded plane; a host instead runs
 * each tap over many outputs, channels innermost (contiguous values): the
 * input gradient a row at a time into the row's sums on the stack (at stride 1
 * without accumulating, a tap at a time as the forward), the
 * stride-1 forward a tap at a time over the whole output, where a row's
 * pixels and channels are one run against the tap's weights repeated along
 * the row (measured faster than the planes on a host; the strided forward is
 * not, and keeps them). Taps are added in the reference's order
 * (ky, then kx, ascending; taps outside the input skipped), so the sums are
 * the reference's bit for bit. Rows longer than PEFT_DW_ROW floats return
 * false: the caller runs its other loops. */
#ifndef PEFT_DEPTHWISE_ROWS_H
#define PEFT_DEPTHWISE_ROWS_H

#include <stdbool.h>
#include <stdint.h>

#include "../../kernels/peft_kernel_check.h"
#include "../../kernels/peft_kernel_loops.h"
#include "peft/peft_kernels.h"

/* Floats of a row buffer: 2 KiB of stack (hosts with small stacks too, such as
 * Zephyr's native_sim_64 with an 8 KiB main stack). */
#define PEFT_DW_ROW 512

/* The stride-1 taps, both directions: per tap (ky, then kx, the reference's
 * order for every pixel of either side), for each output (oy, ox) whose input
 * (oy - pad + ky, ox - pad + kx) is in bounds, the destination pixel gets
 * w[tap][:] * the source pixel: the output from the input (forward) or the
 * input from the output (to_input: the input gradient). A row's pixels and
 * channels are one run against the tap's weights repeated along it. dst is
 * zeroed first; the caller scales. */
static inline void peft_dw_taps_stride1(const peft_conv_params *p, const peft_wsrc *w,
					const float *src, float *dst, bool to_input)
{
	const int32_t ch = p->in.c;
	float wrow[PEFT_DW_ROW];

	peft_zero_f32((to_input ? p->in.h * p->in.w : p->out.h * p->out.w) * ch, dst);
	for (int32_t ky = 0; ky < p->kernel_h; ky++) {
		int32_t oy_lo, oy_hi;

		peft_out_range(ky, 1, p->pad_top, p->in.h, p->out.h, &oy_lo, &oy_hi);
		for (int32_t kx = 0; kx < p->kernel_w; kx++) {
			const int32_t tap = (ky * p->kernel_w + kx) * ch;
			int32_t lo, hi;

			peft_out_range(kx, 1, p->pad_left, p->in.w, p->out.w, &lo, &hi);
			if (lo >= hi || oy_lo >= oy_hi) {
				continue;
			}
			for (int32_t o = 0; o < hi - lo; o++) {
				for (int32_t c = 0; c < ch; c++) {
					wrow[o * ch + c] =
						w->q != NULL ? (float)w->q[tap + c] : w->f[tap + c];
				}
			}
			const int32_t run = (hi - lo) * ch;

			for (int32_t oy = oy_lo; oy < oy_hi; oy++) {
				const int32_t at_in =
					((oy - p->pad_top + ky) * p->in.w + lo - p->pad_left + kx) *
					ch;
				const int32_t at_out = (oy * p->out.w + lo) * ch;

				peft_vmac_f32(run, wrow, src + (to_input ? at_out : at_in),
					      dst + (to_input ? at_in : at_out));
			}
		}
	}
}

/* The stride-1 forward: the taps from the input, then each sum scaled and
 * shifted once. */
static inline bool peft_dw_rows_fwd_stride1(const peft_conv_params *p, const float *in,
					    const peft_wsrc *w, const float *bias, float *out)
{
	const int32_t ch = p->in.c;

	if (p->out.w * ch > PEFT_DW_ROW || p->stride_h != 1 || p->stride_w != 1) {
		return false;
	}
	peft_dw_taps_stride1(p, w, in, out, false);
	for (int32_t i = 0; i < p->out.h * p->out.w; i++) {
		float *y = out + i * ch;

		for (int32_t c = 0; c < ch; c++) {
			y[c] = y[c] * peft_wsrc_scale(w, c) + (bias != NULL ? bias[c] : 0.0f);
		}
	}
	return true;
}

/* The stride-1 input gradient of a call that does not accumulate: the taps
 * from the output gradient, then int8 taps' sums scaled once. */
static inline bool peft_dw_rows_bwd_input_stride1(const peft_conv_params *p, const peft_wsrc *w,
						  const float *grad_out, float *grad_in,
						  bool accumulate)
{
	const int32_t ch = p->in.c;

	if (accumulate || p->stride_h != 1 || p->stride_w != 1 || p->out.w * ch > PEFT_DW_ROW) {
		return false;
	}
	peft_dw_taps_stride1(p, w, grad_out, grad_in, true);
	if (w->q != NULL) {
		for (int32_t i = 0; i < p->in.h * p->in.w; i++) {
			float *gi = grad_in + i * ch;

			for (int32_t c = 0; c < ch; c++) {
				gi[c] *= peft_wsrc_scale(w, c);
			}
		}
	}
	return true;
}

/* Input row iy's gradient: for each covering tap (ky ascending, then kx), the
 * outputs that read row iy through it add w * grad_out into the row's sums,
 * which are then scaled (int8 taps) and stored or added. */
static inline bool peft_dw_rows_bwd_input(const peft_conv_params *p, const peft_wsrc *w,
					  const float *grad_out, float *grad_in, bool accumulate)
{
	const int32_t ch = p->in.c;
	const int32_t row = p->in.w * ch;
	float acc[PEFT_DW_ROW];

	if (row > PEFT_DW_ROW) {
		return false;
	}
	for (int32_t iy = 0; iy < p->in.h; iy++) {
		int32_t ky_lo, ky_hi;

		peft_covering_taps(iy + p->pad_top, p->stride_h, p->kernel_h, p->out.h, &ky_lo,
				   &ky_hi);
		peft_zero_f32(row, acc);
		for (int32_t ky = ky_lo; ky < ky_hi; ky += p->stride_h) {
			const int32_t oy = (iy + p->pad_top - ky) / p->stride_h;

			for (int32_t kx = 0; kx < p->kernel_w; kx++) {
				int32_t lo, hi;

				/* outputs ox reading input ix = ox * sw - pad + kx of this row */
				peft_out_range(kx, p->stride_w, p->pad_left, p->in.w, p->out.w, &lo,
					       &hi);
				if (lo >= hi) {
					continue;
				}
				const int32_t ix = lo * p->stride_w - p->pad_left + kx;
				const float *g = grad_out + (oy * p->out.w + lo) * ch;
				const int32_t tap = (ky * p->kernel_w + kx) * ch;

				for (int32_t o = 0; o < hi - lo; o++) {
					float *a = acc + (ix + o * p->stride_w) * ch;

					if (w->q != NULL) {
						peft_vmac_s8(ch, w->q + tap, g + o * ch, a);
					} else {
						peft_vmac_f32(ch, w->f + tap, g + o * ch, a);
					}
				}
			}
		}
		float *gi = grad_in + iy * row;

		for (int32_t x = 0; x < p->in.w; x++) {
			float *a = acc + x * ch;

			if (w->q != NULL) {
				for (int32_t c = 0; c < ch; c++) {
					a[c] *= peft_wsrc_scale(w, c);
				}
			}
			peft_store_block(ch, a, gi + x * ch, accumulate);
		}
	}
	return true;
}

#endif /* PEFT_DEPTHWISE_ROWS_H */
