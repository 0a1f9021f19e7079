/* FULLY_CONNECTED backward, optimized backend (same contract as
 * kernels/fully_connected/peft_fc_bwd.c):
 *   grad_in[r][i]   = sum over o of w[o][i] * grad_out[r][o]
 *   grad_w[o][i]   += sum over r of grad_out[r][o] * in[r][i]
 *   grad_bias[o]   += sum over r of grad_out[r][o]
 * Blocks of 4 x 4 sums in registers: rows x input features for grad_in
 * (int8 weights converted and scaled once per load, each load feeding 4
 * rows), outputs x input features for grad_w. A block that runs past the end
 * starts 4 before it and stores only its new lanes; each sum is finished
 * before it is stored or added, so `accumulate` gives buffer + a fresh call. */
#include <stddef.h>

#include "../../kernels/peft_kernel_check.h"
#include "../../kernels/peft_kernel_loops.h"
#include "../peft_kernel_blocks.h"
#include "../peft_kernel_blocks8.h"
#include "peft/peft_kernels.h"

/* int8 weights, rows >= PEFT_TILE_MIN_ROWS, 4 or more input features: per
 * block of 4 input features and tile of PEFT_TILE_K outputs, the scaled
 * weights are converted once (the values pc4x4_s8 computes per load) and
 * every block of 4 rows reads them. Between tiles a sum waits in grad_in,
 * which `accumulate` forbids unless one tile holds every output
 * (fc_bwd_input checks). Overlapping blocks store only their new lanes. */
static void fc_bwd_input_tiled(const peft_fc_params *p, const peft_wsrc *w, const float *grad_out,
			       float *grad_in, bool accumulate)
{
	const int32_t n_in = p->in_features;
	const int32_t n_out = p->out_features;
	float tile[PEFT_TILE_K * 4];
	float acc[16];

	for (int32_t j = 0; j < n_in; j += 4) {
		const int32_t c0 = peft_blk_start(j, n_in);

		for (int32_t k0 = 0; k0 < n_out; k0 += PEFT_TILE_K) {
			const int32_t kn = peft_tile_len(n_out, k0);
			const bool last = k0 + kn == n_out;

			peft_tile_cols_s8(kn, w->q + k0 * n_in + c0, n_in,
					  w->scales + k0 * w->scale_step, w->scale_step, tile);
			for (int32_t i = 0; i < p->rows; i += 4) {
				const int32_t r0 = peft_blk_start(i, p->rows);
				float *gi = grad_in + r0 * n_in + c0;
				const float *g = grad_out + r0 * n_out + k0;

				if (i == r0 && j == c0) {
					peft_blk_pt4x4_f32_y(kn, g, n_out, tile, gi, n_in, k0 > 0,
							     NULL, NULL, last && accumulate);
					continue;
				}
				if (k0 == 0) {
					peft_blk_zero(16, acc);
				} else {
					peft_blk_in4x4(acc, gi, n_in);
				}
				peft_blk_pt4x4_f32(kn, g, n_out, tile, acc);
				peft_blk_grad4x4(acc, gi, n_in, i - r0, j - c0, last, accumulate);
			}
		}
	}
}

/* fc_bwd_input_tiled where the lanes are 8-wide vectors (PEFT_F8_VECTOR:
 * hosts), 8 or more input features, int8 or float weights: blocks of 8 input
 * features over a [k][8] tile of the (scaled) weights, 4 rows at a time.
 * Overlapping blocks store only their new rows and input features (an
 * accumulating call must not add a sum twice). */
static void fc_bwd_input_tiled8(const peft_fc_params *p, const peft_wsrc *w, const float *grad_out,
				float *grad_in, bool accumulate)
{
	const int32_t n_in = p->in_features;
	const int32_t n_out = p->out_features;
	float tile[PEFT_TILE_K * 8];

	for (int32_t j = 0; j < n_in; j += 8) {
		const int32_t c0 = peft_blk8_start(j, n_in);

		for (int32_t k0 = 0; k0 < n_out; k0 += PEFT_TILE_K) {
			const int32_t kn = peft_tile_len(n_out, k0);
			const bool last = k0 + kn == n_out;

			if (w->q != NULL) {
				peft_tile8_cols_s8(kn, w->q + k0 * n_in + c0, n_in,
						   w->scales + k0 * w->scale_step, w->scale_step,
						   tile);
			} else {
				peft_tile8_cols_f32(kn, w->f + k0 * n_in + c0, n_in, tile);
			}
			for (int32_t i = 0; i < p->rows; i += 4) {
				const int32_t r0 = peft_blk_start(i, p->rows);

				peft_blk_pt4x8_f32_store(kn, grad_out + r0 * n_out + k0, n_out,
							 tile, grad_in + r0 * n_in + c0, n_in,
							 k0 > 0, NULL, NULL, last && accumulate,
							 i - r0, j - c0);
			}
		}
	}
}

/* int8 weights, 4 to PEFT_TILE_MIN_ROWS - 1 rows (too few to repay a weight
 * tile), 4 or more input features: per block of 4 rows and tile of
 * PEFT_TILE_K outputs, the rows' gradients times the outputs' scales go into
 * a float tile once (the reference's g * scale), and every block of 4 input
 * features reads it against the raw int8 weights. Partial sums wait in
 * grad_in between tiles, as in fc_bwd_input_tiled. */
static void fc_bwd_input_scaled(const peft_fc_params *p, const peft_wsrc *w, const float *grad_out,
				float *grad_in, bool accumulate)
{
	const int32_t n_in = p->in_features;
	const int32_t n_out = p->out_features;
	float gs[4 * PEFT_TILE_K];
	float acc[16];

	for (int32_t i = 0; i < p->rows; i += 4) {
		const int32_t r0 = peft_blk_start(i, p->rows);

		for (int32_t k0 = 0; k0 < n_out; k0 += PEFT_TILE_K) {
			const int32_t kn = peft_tile_len(n_out, k0);
			const bool last = k0 + kn == n_out;

			for (int32_t r = 0; r < 4; r++) {
				const float *g = grad_out + (r0 + r) * n_out + k0;

				for (int32_t o = 0; o < kn; o++) {
					gs[r * kn + o] = g[o] * peft_wsrc_scale(w, k0 + o);
				}
			}
			for (int32_t j = 0; j < n_in; j += 4) {
				const int32_t c0 = peft_blk_start(j, n_in);
				float *gi = grad_in + r0 * n_in + c0;

				if (k0 == 0) {
					peft_blk_zero(16, acc);
				} else {
					peft_blk_in4x4(acc, gi, n_in);
				}
				peft_blk_pc4x4_s8u(kn, gs, kn, w->q + k0 * n_in + c0, n_in, acc);
				peft_blk_grad4x4(acc, gi, n_in, i - r0, j - c0, last, accumulate);
			}
		}
	}
}

static void fc_bwd_input(const peft_fc_params *p, const peft_wsrc *w, const float *grad_out,
			 float *grad_in, bool accumulate)
{
	const int32_t n_in = p->in_features;
	const int32_t n_out = p->out_features;
	const int32_t nr = p->rows >= 4 ? 4 : 1;
	float acc[16];

	if (PEFT_F8_VECTOR && p->rows >= PEFT_TILE_MIN_ROWS && n_in >= 8 &&
	    (!accumulate || n_out <= PEFT_TILE_K)) {
		fc_bwd_input_tiled8(p, w, grad_out, grad_in, accumulate);
		return;
	}
	if (w->q != NULL && p->rows >= PEFT_TILE_MIN_ROWS && n_in >= 4 &&
	    (!accumulate || n_out <= PEFT_TILE_K)) {
		fc_bwd_input_tiled(p, w, grad_out, grad_in, accumulate);
		return;
	}
	if (w->q != NULL && p->rows >= 4 && n_in >= 4 && (!accumulate || n_out <= PEFT_TILE_K)) {
		fc_bwd_input_scaled(p, w, grad_out, grad_in, accumulate);
		return;
	}
	for (int32_t i = 0; i < p->rows; i += nr) {
		const int32_t r0 = nr == 4 ? peft_blk_start(i, p->rows) : i;
		const float *g = grad_out + r0 * n_out;

		for (int32_t j = 0; j < n_in; j += 4) {
			const int32_t c0 = n_in >= 4 ? peft_blk_start(j, n_in) : j;
			const int32_t nc = n_in >= 4 ? 4 : n_in;

			peft_blk_zero(16, acc);
			if (nc < 4) {
				/* Fewer than 4 input features: one sum per element. */
				for (int32_t r = 0; r < nr; r++) {
					for (int32_t c = 0; c < nc; c++) {
						for (int32_t o = 0; o < n_out; o++) {
							const float wv =
								w->q != NULL
									? (float)w->q[o * n_in +
										      c] *
										  peft_wsrc_scale(w,
												  o)
									: w->f[o * n_in + c];

							acc[r * 4 + c] += g[r * n_out + o] * wv;
						}
					}
				}
			} else if (nr == 4 && w->q != NULL) {
				peft_blk_pc4x4_s8(n_out, g, n_out, w->q + c0, n_in, w->scales,
						  w->scale_step, acc);
			} else if (nr == 4) {
				peft_blk_pc4x4_f32(n_out, g, n_out, w->f + c0, n_in, acc);
			} else if (w->q != NULL) {
				peft_blk_pc1x4_s8(n_out, g, w->q + c0, n_in, w->scales,
						  w->scale_step, acc);
			} else {
				peft_blk_pc1x4_f32(n_out, g, w->f + c0, n_in, acc);
			}
			const int32_t r_new = i - r0;
			const int32_t c_new = j - c0;

			for (int32_t r = r_new; r < nr; r++) {
				for (int32_t c = c_new; c < nc; c++) {
					peft_blk_put(grad_in + (r0 + r) * n_in + c0 + c,
						     acc[r * 4 + c], accumulate);
				}
			}
		}
	}
}

peft_status peft_fc_bwd_input_s8(const peft_fc_params *p, const peft_weights_s8 *w,
				 const float *grad_out, float *grad_in, bool accumulate)
{
	if (!peft_fc_params_ok(p) || grad_out == NULL || grad_in == NULL ||
	    !peft_weights_s8_ok(w, p->out_features)) {
		return PEFT_ERR_ARG;
	}
	const peft_wsrc src = peft_wsrc_s8(w);

	fc_bwd_input(p, &src, grad_out, grad_in, accumulate);
	return PEFT_OK;
}

peft_status peft_fc_bwd_input_f32(const peft_fc_params *p, const float *w, const float *grad_out,
				  float *grad_in, bool accumulate)
{
	if (!peft_fc_params_ok(p) || w == NULL || grad_out == NULL || grad_in == NULL) {
		return PEFT_ERR_ARG;
	}
	const peft_wsrc src = peft_wsrc_f32(w);

	fc_bwd_input(p, &src, grad_out, grad_in, accumulate);
	return PEFT_OK;
}

peft_status peft_fc_bwd_weight_f32(const peft_fc_params *p, const float *in, const float *grad_out,
				   float *grad_w)
{
	if (!peft_fc_params_ok(p) || in == NULL || grad_out == NULL || grad_w == NULL) {
		return PEFT_ERR_ARG;
	}
	const int32_t n_in = p->in_features;
	const int32_t n_out = p->out_features;
	float acc[16];

	if (p->rows < 4) {
		/* A batch-1 head: each weight's sum has at most 3 products, an outer
		 * product per row pair; no block would fill its lanes. */
		for (int32_t o = 0; o < n_out; o++) {
			float *gw = grad_w + o * n_in;

			for (int32_t i = 0; i < n_in; i++) {
				float sum = grad_out[o] * in[i];

				for (int32_t r = 1; r < p->rows; r++) {
					sum += grad_out[r * n_out + o] * in[r * n_in + i];
				}
				gw[i] += sum;
			}
		}
		return PEFT_OK;
	}
	if (PEFT_F8_VECTOR && n_out >= 4 && n_in >= 8) {
		/* Hosts with 8-lane vectors: 4 outputs x 8 input features a block. */
		for (int32_t j = 0; j < n_out; j += 4) {
			const int32_t o0 = peft_blk_start(j, n_out);

			for (int32_t k = 0; k < n_in; k += 8) {
				const int32_t c0 = peft_blk8_start(k, n_in);

				peft_blk_cc4x8_add(p->rows, grad_out + o0, n_out, in + c0, n_in,
						   grad_w + o0 * n_in + c0, n_in, j - o0, k - c0);
			}
		}
		return PEFT_OK;
	}
	for (int32_t j = 0; j < n_out; j += 4) {
		const int32_t o0 = n_out >= 4 ? peft_blk_start(j, n_out) : j;
		const int32_t no = n_out >= 4 ? 4 : n_out;

		for (int32_t k = 0; k < n_in; k += 4) {
			const int32_t c0 = n_in >= 4 ? peft_blk_start(k, n_in) : k;
			const int32_t nc = n_in >= 4 ? 4 : n_in;

			peft_blk_zero(16, acc);
			if (no == 4 && nc == 4) {
				peft_blk_cc4x4_f32(p->rows, grad_out + o0, n_out, in + c0, n_in,
						   acc);
			} else {
				peft_blk_cc_tail_f32(p->rows, no, nc, grad_out + o0, n_out, in + c0,
						     n_in, acc);
			}
			for (int32_t o = j - o0; o < no; o++) {
				for (int32_t c = k - c0; c < nc; c++) {
					grad_w[(o0 + o) * n_in + c0 + c] += acc[o * nc + c];
				}
			}
		}
	}
	return PEFT_OK;
}

peft_status peft_fc_bwd_bias_f32(const peft_fc_params *p, const float *grad_out, float *grad_bias)
{
	if (!peft_fc_params_ok(p) || grad_out == NULL || grad_bias == NULL) {
		return PEFT_ERR_ARG;
	}
	peft_blk_column_sums(p->rows, p->out_features, grad_out, grad_bias);
	return PEFT_OK;
}
