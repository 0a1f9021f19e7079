/* FULLY_CONNECTED forward, optimized backend (same contract as
 * kernels/fully_connected/peft_fc_fwd.c):
 * out[r][o] = bias[o] + sum over i of w[o][i] * in[r][i].
 * Blocks of 4 rows x 4 outputs keep 16 sums in registers over the whole
 * input row; a single row (batch-1 head) runs 1 x 4 blocks. Fewer than 4
 * outputs fall back to one dot product each. */
#include <stddef.h>

#include "../../kernels/peft_kernel_check.h"
#include "../../kernels/peft_kernel_loops.h"
#include "../peft_kernel_blocks.h"
#include "peft/peft_kernels.h"

static void store_block(const peft_fc_params *p, const peft_wsrc *w, const float *bias, int32_t r0,
			int32_t nr, int32_t o0, const float *acc, float *out)
{
	for (int32_t r = 0; r < nr; r++) {
		for (int32_t q = 0; q < 4; q++) {
			const int32_t o = o0 + q;

			out[(r0 + r) * p->out_features + o] =
				acc[r * 4 + q] * peft_wsrc_scale(w, o) +
				(bias != NULL ? bias[o] : 0.0f);
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
			store_block(p, w, bias, r0, nr, o0, acc, out);
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
