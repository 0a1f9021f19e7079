/* FULLY_CONNECTED input gradient, int8 path, optimized backend (same contract
 * and identical results as kernels/fully_connected/peft_fc_bwd_input_s8s8.c).
 * PEFT_S8S8_ROWS rows (or all of a smaller call) are quantized at once into
 * the scratch; then, 4 input
 * features at a time, the 4 weight columns are widened once into int16 pairs
 * interleaved as peft_fc_s8s8_dot.h lays them out, read by every row of the
 * chunk, two rows per pass (peft_fc_s8s8_dot4x2: SMLAD on cores with the DSP
 * extension). */
#include <stddef.h>

#include "../../kernels/peft_kernel_check.h"
#include "../../kernels/peft_kernel_loops.h"
#include "peft/peft_kernels.h"
#include "peft_fc_s8s8_dot.h"

int32_t peft_fc_bwd_input_s8s8_get_buffer_size(const peft_fc_params *p)
{
	return peft_fc_params_ok(p) ? peft_s8s8_scratch_bytes(p) : 0;
}

static void put(float *y, int32_t acc, float s, bool add)
{
	*y = add ? *y + (float)acc * s : (float)acc * s;
}

/* cols (peft_fc_s8s8_dot.h's layout, 4 * pairs values) = the int8 weights of
 * input features i0 .. i0 + nc - 1 (0 for j >= nc and for the odd output's
 * partner). */
static void widen_columns(const int8_t *wq, int32_t n_in, int32_t n_out, int32_t i0, int32_t nc,
			  int16_t *cols)
{
	const int32_t pairs = n_out + n_out % 2;

	if (nc == 4) {
		for (int32_t o = 0; o < n_out; o++) {
			const int8_t *src = wq + o * n_in + i0;
			int16_t *dst = cols + (o / 2) * 8 + o % 2;

			dst[0] = src[0];
			dst[2] = src[1];
			dst[4] = src[2];
			dst[6] = src[3];
		}
	} else {
		for (int32_t o = 0; o < n_out; o++) {
			for (int32_t j = 0; j < 4; j++) {
				cols[(o / 2) * 8 + j * 2 + o % 2] =
					j < nc ? wq[o * n_in + i0 + j] : 0;
			}
		}
	}
	if (pairs > n_out) {
		for (int32_t j = 0; j < 4; j++) {
			cols[(n_out / 2) * 8 + j * 2 + 1] = 0;
		}
	}
}

peft_status peft_fc_bwd_input_s8s8(const peft_fc_params *p, const peft_weights_s8 *w,
				   const float *grad_out, float *grad_in, bool accumulate,
				   int16_t *scratch, int32_t scratch_bytes)
{
	if (!peft_s8s8_args_ok(p, w, grad_out, grad_in, scratch, scratch_bytes)) {
		return PEFT_ERR_ARG;
	}
	const int32_t n_in = p->in_features;
	const int32_t n_out = p->out_features;
	const int32_t pairs = n_out + n_out % 2;
	const peft_wsrc src = peft_wsrc_s8(w);
	const int32_t chunk = peft_s8s8_chunk_rows(p);
	int16_t *q = scratch;                                /* [chunk][pairs] */
	int16_t *cols = q + chunk * pairs;                   /* [4][pairs] */
	float *scales = (float *)(void *)(cols + 4 * pairs); /* [chunk] */

	for (int32_t r0 = 0; r0 < p->rows; r0 += chunk) {
		const int32_t nr = p->rows - r0 < chunk ? p->rows - r0 : chunk;

		for (int32_t r = 0; r < nr; r++) {
			scales[r] = peft_quantize_grad_row(n_out, grad_out + (r0 + r) * n_out, &src,
							   q + r * pairs);
		}
		for (int32_t i0 = 0; i0 < n_in; i0 += 4) {
			const int32_t nc = n_in - i0 < 4 ? n_in - i0 : 4;
			int32_t r = 0;

			widen_columns(w->data, n_in, n_out, i0, nc, cols);
			for (; r + 2 <= nr; r += 2) {
				int32_t acc0[4] = {0, 0, 0, 0}, acc1[4] = {0, 0, 0, 0};
				float *gi0 = grad_in + (r0 + r) * n_in + i0;
				float *gi1 = gi0 + n_in;

				peft_fc_s8s8_dot4x2(pairs, cols, q + r * pairs, q + (r + 1) * pairs,
						    acc0, acc1);
				for (int32_t j = 0; j < nc; j++) {
					put(gi0 + j, acc0[j], scales[r], accumulate);
					put(gi1 + j, acc1[j], scales[r + 1], accumulate);
				}
			}
			if (r < nr) {
				int32_t acc[4] = {0, 0, 0, 0};
				float *gi = grad_in + (r0 + r) * n_in + i0;

				peft_fc_s8s8_dot4(pairs, cols, q + r * pairs, acc);
				for (int32_t j = 0; j < nc; j++) {
					put(gi + j, acc[j], scales[r], accumulate);
				}
			}
		}
	}
	return PEFT_OK;
}
