/* FULLY_CONNECTED forward, optimized backend (same contract as
 * kernels/fully_connected/peft_fc_fwd.c):
 * out[r][o] = bias[o] + sum over i of w[o][i] * in[r][i].
 * Blocks of 4 rows x 4 outputs keep 16 sums in registers over the whole
 * input row; a single row (batch-1 head) runs 1 x 4 blocks. Fewer than 4
 * outputs fall back to one dot product each. With int8 weights and enough
 * rows, each block of 4 outputs converts its weights once into a float tile
 * that every row block reads (fc_fwd_tiled). */
#include <stddef.h>

#include "../../kernels/peft_kernel_check.h"
#include "../../kernels/peft_kernel_loops.h"
#include "../peft_kernel_blocks.h"
#include "../peft_kernel_blocks8.h"
#include "peft/peft_kernels.h"

/* The scale and bias of outputs o0..o0 + 3 (1 and 0 for float weights and
 * no bias: the reference's acc * scale + bias, written the same way). */
static void block_scale_shift(const peft_wsrc *w, const float *bias, int32_t o0, float *sc,
			      float *sh)
{
	for (int32_t q = 0; q < 4; q++) {
		sc[q] = peft_wsrc_scale(w, o0 + q);
		sh[q] = bias != NULL ? bias[o0 + q] : 0.0f;
	}
}

/* int8 weights (float ones where the lanes are a vector: PEFT_F4_VECTOR),
 * rows >= PEFT_TILE_MIN_ROWS, 4 or more outputs: per block of 4
 * outputs and tile of PEFT_TILE_K inputs, the tile is converted once and
 * every block of 4 rows reads it. Between tiles a sum waits in `out`
 * unscaled (a float holds it exactly), so every sum is fc_fwd's. A block
 * that overlaps the one before it (the last 4 rows or outputs) stores only
 * its new lanes; its other lanes read whatever `out` holds and are dropped. */
static void fc_fwd_tiled(const peft_fc_params *p, const float *in, const peft_wsrc *w,
			 const float *bias, float *out)
{
	const int32_t n_in = p->in_features;
	const int32_t n_out = p->out_features;
	float tile[PEFT_TILE_K * 4];
	float acc[16];

	for (int32_t j = 0; j < n_out; j += 4) {
		const int32_t o0 = peft_blk_start(j, n_out);
		float sc[4], sh[4];

		block_scale_shift(w, bias, o0, sc, sh);
		for (int32_t k0 = 0; k0 < n_in; k0 += PEFT_TILE_K) {
			const int32_t kn = peft_tile_len(n_in, k0);
			const bool last = k0 + kn == n_in;

			if (w->q != NULL) {
				peft_tile_rows_s8(kn, w->q + o0 * n_in + k0, n_in, tile);
			} else {
				peft_tile_rows_f32(kn, w->f + o0 * n_in + k0, n_in, tile);
			}
			for (int32_t i = 0; i < p->rows; i += 4) {
				const int32_t r0 = peft_blk_start(i, p->rows);
				float *y = out + r0 * n_out + o0;

				const float *x = in + r0 * n_in + k0;

				if (i == r0 && j == o0) {
					peft_blk_pt4x4_f32_y(kn, x, n_in, tile, y, n_out, k0 > 0,
							     last ? sc : NULL, sh, false);
					continue;
				}
				if (k0 == 0) {
					peft_blk_zero(16, acc);
				} else {
					peft_blk_in4x4(acc, y, n_out);
				}
				peft_blk_pt4x4_f32(kn, x, n_in, tile, acc);
				peft_blk_out4x4(acc, y, n_out, i - r0, j - o0, last ? sc : NULL,
						sh);
			}
		}
	}
}

/* fc_fwd_tiled where the lanes are 8-wide vectors (PEFT_F8_VECTOR: hosts),
 * 8 or more outputs, any number of rows: blocks of 8 outputs over a [k][8]
 * tile, 4 rows at a time (one at a time in a call of fewer than 4: the tile's
 * conversion costs what the direct loops' does, its vector sums less).
 * An output block that overlaps the one before recomputes its shared lanes to
 * the same values (every lane's sums start at 0 in the block's first tile); a
 * row block that overlaps stores only its new rows (the others already hold
 * this tile's sums). */
static void fc_fwd_tiled8(const peft_fc_params *p, const float *in, const peft_wsrc *w,
			  const float *bias, float *out)
{
	const int32_t n_in = p->in_features;
	const int32_t n_out = p->out_features;
	float tile[PEFT_TILE_K * 8];

	for (int32_t j = 0; j < n_out; j += 8) {
		const int32_t o0 = peft_blk8_start(j, n_out);
		float sc[8], sh[8];

		block_scale_shift(w, bias, o0, sc, sh);
		block_scale_shift(w, bias, o0 + 4, sc + 4, sh + 4);
		for (int32_t k0 = 0; k0 < n_in; k0 += PEFT_TILE_K) {
			const int32_t kn = peft_tile_len(n_in, k0);
			const bool last = k0 + kn == n_in;

			if (w->q != NULL) {
				peft_tile8_rows_s8(kn, w->q + o0 * n_in + k0, n_in, tile);
			} else {
				peft_tile8_rows_f32(kn, w->f + o0 * n_in + k0, n_in, tile);
			}
			for (int32_t i = 0; p->rows >= 4 && i < p->rows; i += 4) {
				const int32_t r0 = peft_blk_start(i, p->rows);

				peft_blk_pt4x8_f32_y(kn, in + r0 * n_in + k0, n_in, tile,
						     out + r0 * n_out + o0, n_out, k0 > 0,
						     last ? sc : NULL, sh, i - r0);
			}
			for (int32_t r = 0; p->rows < 4 && r < p->rows; r++) {
				peft_blk_pt1x8_f32_y(kn, in + r * n_in + k0, tile,
						     out + r * n_out + o0, k0 > 0, last ? sc : NULL,
						     sh);
			}
		}
	}
}

static void fc_fwd(const peft_fc_params *p, const float *in, const peft_wsrc *w, const float *bias,
		   float *out)
{
	const int32_t n_in = p->in_features;
	const int32_t n_out = p->out_features;
	float acc[16];

	if (n_out < 4) {
		for (int32_t r = 0; r < p->rows; r++) {
			for (int32_t o = 0; o < n_out; o++) {
				out[r * n_out + o] =
					peft_wsrc_dot(w, o * n_in, n_in, in + r * n_in, 0.0f) *
						peft_wsrc_scale(w, o) +
					(bias != NULL ? bias[o] : 0.0f);
			}
		}
		return;
	}
	if (PEFT_F8_VECTOR && n_out >= 8) {
		fc_fwd_tiled8(p, in, w, bias, out);
		return;
	}
	if ((w->q != NULL || PEFT_F4_VECTOR) && p->rows >= PEFT_TILE_MIN_ROWS) {
		fc_fwd_tiled(p, in, w, bias, out);
		return;
	}
	const int32_t nr = p->rows >= 4 ? 4 : 1;

	for (int32_t i = 0; i < p->rows; i += nr) {
		const int32_t r0 = nr == 4 ? peft_blk_start(i, p->rows) : i;
		const float *x = in + r0 * n_in;

		for (int32_t j = 0; j < n_out; j += 4) {
			const int32_t o0 = peft_blk_start(j, n_out);

			peft_blk_zero(16, acc);
			if (nr == 4 && w->q != NULL) {
				peft_blk_pp4x4_s8(1, n_in, x, n_in, 0, w->q + o0 * n_in, n_in, 0,
						  acc);
			} else if (nr == 4) {
				peft_blk_pp4x4_f32(1, n_in, x, n_in, 0, w->f + o0 * n_in, n_in, 0,
						   acc);
			} else if (w->q != NULL) {
				peft_blk_pp1x4_s8(1, n_in, x, 0, w->q + o0 * n_in, n_in, 0, acc);
			} else {
				peft_blk_pp1x4_f32(1, n_in, x, 0, w->f + o0 * n_in, n_in, 0, acc);
			}
			float sc[4], sh[4];

			block_scale_shift(w, bias, o0, sc, sh);
			if (nr == 4) {
				peft_blk_out4x4(acc, out + r0 * n_out + o0, n_out, 0, 0, sc, sh);
			} else {
				for (int32_t q = 0; q < 4; q++) {
					out[r0 * n_out + o0 + q] = acc[q] * sc[q] + sh[q];
				}
			}
		}
	}
}

peft_status peft_fc_fwd_s8(const peft_fc_params *p, const float *in, const peft_weights_s8 *w,
			   const float *bias, float *out)
{
	if (!peft_fc_params_ok(p) || in == NULL || out == NULL ||
	    !peft_weights_s8_ok(w, p->out_features)) {
		return PEFT_ERR_ARG;
	}
	const peft_wsrc src = peft_wsrc_s8(w);

	fc_fwd(p, in, &src, bias, out);
	return PEFT_OK;
}

peft_status peft_fc_fwd_f32(const peft_fc_params *p, const float *in, const float *w,
			    const float *bias, float *out)
{
	if (!peft_fc_params_ok(p) || in == NULL || w == NULL || out == NULL) {
		return PEFT_ERR_ARG;
	}
	const peft_wsrc src = peft_wsrc_f32(w);

	fc_fwd(p, in, &src, bias, out);
	return PEFT_OK;
}
