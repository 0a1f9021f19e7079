/* The parameter gradients of the per-channel scale and shift, optimized
 * backend (same contract and sums as
 * kernels/scale_shift/peft_scale_shift_bwd_param.c: each channel's sums run
 * over the rows in order, then are added). The reference reads one channel down
 * the rows at a time. Here, where the lanes are a vector (PEFT_F4_VECTOR:
 * hosts), a row's run of up to PEFT_SS_CHUNK channels adds into sums on the
 * stack, a loop over contiguous values that vectorizes; on the M4 four
 * channels' eight sums stay in registers down the rows. */
#include <stddef.h>

#include "../../kernels/peft_kernel_check.h"
#include "../peft_kernel_blocks.h"
#include "peft/peft_kernels.h"

#define PEFT_SS_CHUNK 64

/* Channels c0 .. c0 + n - 1 (n <= PEFT_SS_CHUNK), row by row. */
static void chunk_sums(int32_t pixels, int32_t channels, int32_t c0, int32_t n,
		       const float *restrict in, const float *restrict grad_out,
		       float *restrict grad_gamma, float *restrict grad_beta)
{
	float sg[PEFT_SS_CHUNK], sb[PEFT_SS_CHUNK];

	for (int32_t c = 0; c < n; c++) {
		sg[c] = 0.0f, sb[c] = 0.0f;
	}
	for (int32_t i = 0; i < pixels; i++) {
		const float *g = grad_out + i * channels + c0;
		const float *x = in + i * channels + c0;

		for (int32_t c = 0; c < n; c++) {
			sg[c] += g[c] * x[c];
			sb[c] += g[c];
		}
	}
	for (int32_t c = 0; c < n; c++) {
		grad_gamma[c0 + c] += sg[c];
		if (grad_beta != NULL) {
			grad_beta[c0 + c] += sb[c];
		}
	}
}

/* Channels c0 .. c0 + 3 with their eight sums in registers. */
static void quad_sums(int32_t pixels, int32_t channels, int32_t c0, const float *in,
		      const float *grad_out, float *grad_gamma, float *grad_beta)
{
	float g0 = 0.0f, g1 = 0.0f, g2 = 0.0f, g3 = 0.0f;
	float b0 = 0.0f, b1 = 0.0f, b2 = 0.0f, b3 = 0.0f;
	const float *g = grad_out + c0, *x = in + c0;

	for (int32_t i = 0; i < pixels; i++) {
		g0 += g[0] * x[0], g1 += g[1] * x[1], g2 += g[2] * x[2], g3 += g[3] * x[3];
		b0 += g[0], b1 += g[1], b2 += g[2], b3 += g[3];
		g += channels, x += channels;
	}
	grad_gamma[c0] += g0, grad_gamma[c0 + 1] += g1;
	grad_gamma[c0 + 2] += g2, grad_gamma[c0 + 3] += g3;
	if (grad_beta != NULL) {
		grad_beta[c0] += b0, grad_beta[c0 + 1] += b1;
		grad_beta[c0 + 2] += b2, grad_beta[c0 + 3] += b3;
	}
}

peft_status peft_scale_shift_bwd_param_f32(int32_t pixels, int32_t channels, const float *in,
					   const float *grad_out, float *grad_gamma,
					   float *grad_beta)
{
	if (!peft_size_ok(pixels, channels, 1, 1) || in == NULL || grad_out == NULL ||
	    grad_gamma == NULL) {
		return PEFT_ERR_ARG;
	}
	int32_t c0 = 0;

	if (PEFT_F4_VECTOR) {
		for (; c0 < channels; c0 += PEFT_SS_CHUNK) {
			const int32_t n =
				channels - c0 < PEFT_SS_CHUNK ? channels - c0 : PEFT_SS_CHUNK;

			chunk_sums(pixels, channels, c0, n, in, grad_out, grad_gamma, grad_beta);
		}
	}
	for (; c0 + 4 <= channels; c0 += 4) {
		quad_sums(pixels, channels, c0, in, grad_out, grad_gamma, grad_beta);
	}
	for (; c0 < channels; c0++) {
		chunk_sums(pixels, channels, c0, 1, in, grad_out, grad_gamma, grad_beta);
	}
	return PEFT_OK;
}
